//! One attempt to deliver an outcome report: the report's pipeline, beside the call's.
//!
//! A report goes the way a call's webhooks go, so the CRM is only ever reached from the
//! sandbox: a fresh instance of the component (its `report` export), the scheme's outbound
//! guard and its endpoints' circuit breakers, within `response_timeout_secs`. It takes a slot
//! of the pool but no place in the tenant's share of calls. Every string of the result is
//! masked as a call's are. Retrying is the outbox's (`crate::outbox`), with the same report id.

use super::{Door, Purpose, Router, explain, within_grace};
use crate::exchange::{Attempt, Recorder};
use crate::prepare::PreparedScheme;
use crate::redact::Redactor;
use crate::report::RouteFailure;
use crate::sandbox::component::Contract;
use callroute_plugin::error::ErrorKind;
use callroute_plugin::report::{Delivery, Outcome};
use callroute_plugin::scheme::format_seconds;
use std::time::Duration;
use tokio::time::Instant;

/// The result of one attempt to deliver a report.
#[derive(Debug, Clone)]
pub struct ReportAttempt {
    /// `Ok` when the CRM took it (2xx); why not otherwise, masked.
    pub result: Result<(), RouteFailure>,
    /// From the start of the attempt to its end.
    pub elapsed: Duration,
    /// The report's exchange with the CRM, when the router records exchanges (else empty).
    pub attempts: Vec<Attempt>,
}

impl Router {
    /// The contract the router's component implements.
    pub fn contract(&self) -> Contract {
        self.loaded.contract()
    }

    /// Deliver `outcome` once, as `delivery` numbers it. Always returns, within the scheme's
    /// `response_timeout_secs` plus [`super::CALL_GRACE`].
    pub async fn report(
        &self,
        scheme: &PreparedScheme,
        outcome: &Outcome,
        delivery: &Delivery,
    ) -> ReportAttempt {
        let start = Instant::now();
        let recorder = self
            .config
            .record_exchanges
            .then(|| Recorder::new(scheme.secrets().longest()));
        let result = match scheme.problem() {
            Some(problem) => Err(RouteFailure::new(ErrorKind::Config, problem)),
            None => {
                self.deliver(scheme, outcome, delivery, &recorder, start)
                    .await
            }
        };
        let numbers = [&outcome.caller, &outcome.callee].map(|n| n.as_deref().unwrap_or(""));
        let redactor = Redactor::new(scheme.secrets(), numbers, self.config.show_numbers);
        let mut attempt = ReportAttempt {
            result,
            elapsed: start.elapsed(),
            attempts: recorder.map(|r| r.attempts()).unwrap_or_default(),
        };
        if let Err(failure) = &mut attempt.result {
            failure.message = redactor.mask(&failure.message);
        }
        for exchange in &mut attempt.attempts {
            exchange.redact(&redactor);
        }
        attempt
    }

    async fn deliver(
        &self,
        scheme: &PreparedScheme,
        outcome: &Outcome,
        delivery: &Delivery,
        recorder: &Option<Recorder>,
        start: Instant,
    ) -> Result<(), RouteFailure> {
        if let Some(refusal) = self.contract().refuses_reports() {
            return Err(RouteFailure::new(ErrorKind::Config, refusal));
        }
        let deadline = start + scheme.policy.response_timeout;
        let admission = self.admit_work()?;
        let door = Door {
            detail: Default::default(),
            recorder: recorder.clone(),
        };
        let detail = door.detail.clone();
        let result = within_grace(
            deadline,
            async {
                let (mut sandbox, _admission) = self
                    .sandbox(scheme, Purpose::Report, deadline, door, admission)
                    .await?;
                sandbox.report(outcome, delivery).await
            },
            || {
                format!(
                    "no answer within {} s; the host stopped the report",
                    format_seconds(scheme.policy.response_timeout)
                )
            },
        )
        .await;
        result.map_err(|mut failure| {
            explain(&detail, &mut failure);
            failure
        })
    }
}
