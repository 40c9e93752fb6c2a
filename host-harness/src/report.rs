//! The outcome of routing one call and how long it took; its JSON form is
//! [`callroute_plugin::outcome`], shared with the component's own HTTP handler.

use crate::admission::Rejection;
use callroute_plugin::routing::Routing;
use std::time::Duration;

pub use callroute_plugin::error::Failure as RouteFailure;

/// The result of routing one call and how long it took.
#[derive(Debug, Clone)]
pub struct RouteReport {
    /// Where the call goes (the CRM's answer or the scheme's fallback), or why it could not be
    /// routed.
    pub result: Result<Routing, RouteFailure>,
    /// From the start of routing (instance creation) to the answer.
    pub elapsed: Duration,
    /// Why the call got no sandbox, when it got none (it is then `overloaded`).
    pub rejected: Option<Rejection>,
    /// What the call asked its CRM and what it answered, attempt by attempt, when the router
    /// records exchanges (else empty).
    pub attempts: Vec<crate::exchange::Attempt>,
}

impl RouteReport {
    /// `true` when the call has a destination (the CRM's or the fallback).
    pub fn is_routed(&self) -> bool {
        self.result.is_ok()
    }

    /// `"routed"`, `"fallback"` or `"failed"`.
    pub fn outcome(&self) -> &'static str {
        callroute_plugin::outcome::outcome_name(&self.result)
    }

    /// The error behind a failure or a fallback.
    pub fn error(&self) -> Option<&RouteFailure> {
        match &self.result {
            Ok(routing) => routing.fallback_cause.as_ref(),
            Err(failure) => Some(failure),
        }
    }

    /// Whole milliseconds elapsed.
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed.as_millis() as u64
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        callroute_plugin::outcome::to_json(&self.result, self.elapsed_ms())
    }
}

impl RouteReport {
    /// Mask every string of this report that may quote a secret or a number with
    /// `redactor`: the error and the fallback's cause (which may quote a CRM's answer), what
    /// was refused and why, and each attempt (URL, bodies, error). The destinations are the
    /// answer, and are left as they are.
    pub fn redact(&mut self, redactor: &crate::redact::Redactor) {
        let failure = |f: &mut RouteFailure| f.message = redactor.mask(&f.message);
        match &mut self.result {
            Ok(routing) => {
                routing.fallback_cause.as_mut().map(failure);
                for refused in &mut routing.refused {
                    refused.value = redactor.mask(&refused.value);
                    refused.reason = redactor.mask(&refused.reason);
                }
            }
            Err(f) => failure(f),
        }
        for attempt in &mut self.attempts {
            attempt.redact(redactor);
        }
    }
}
