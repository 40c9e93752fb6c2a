//! `POST /v1/outcome/{scheme}`: a call platform reports how a routed call ended; `serve`
//! stores the report in its outbox ([`crate::outbox`]) and answers 202, and the outbox delivers
//! it to the scheme's `outcome_url` through the router ([`ServiceReports`]).
//!
//! The endpoint takes the same tokens and tenant rules as `/v1/route`. Before a report is
//! taken, everything that would keep it from ever being delivered is refused at once, naming
//! it: a malformed outcome (400), a scheme without `outcome_url` or a component without
//! `report` (422), no outbox (503), a full queue (503 with `Retry-After`). With `remember_secs`,
//! an `answered` outcome also teaches the memory who answered ("last agent" routing).

use super::Service;
use super::auth::Access;
use super::http::{read_body, rejection, response, token_of, unauthorized, unknown_scheme};
use crate::outbox::{Attempted, Deliverer, OutboxError};
use crate::prepare::PreparedScheme;
use bytes::Bytes;
use callroute_plugin::destination::{Destination, Target};
use callroute_plugin::report::{self, CallStatus, Delivery, MAX_OUTCOME_BODY, Outcome};
use callroute_plugin::scheme::values::DEFAULT_OUTCOME_RETRY;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Mutex, Weak};

impl Service {
    /// `/v1/outcome/{scheme}`: take a platform's outcome report. `name` is `None` when the
    /// path's name is not in its canonical form: no scheme has it.
    pub(super) async fn outcome(
        &self,
        name: Option<&str>,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            return super::http::method_not_allowed("POST");
        }
        let tenants = self.tenants();
        let (name, scheme) = match (name, tenants.access(name, token_of(&request))) {
            (Some(name), Access::Route(scheme)) => (name, scheme),
            (_, Access::Unauthorized) => {
                self.metrics.unauthorized();
                return unauthorized();
            }
            (name, _) => return unknown_scheme(name.unwrap_or_default()),
        };
        let bad = |message: String| rejection(StatusCode::BAD_REQUEST, "bad-request", message);
        let body = match read_body(request, MAX_OUTCOME_BODY, self.limits.read_timeout).await {
            Ok(body) => body,
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                return rejection(status, "bad-request", e.message);
            }
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return bad("the outcome body is not UTF-8".into());
        };
        let outcome = match Outcome::from_json(text) {
            Ok(outcome) => outcome,
            // The message names the field; it may quote the platform's own values back to it.
            Err(e) => return bad(scheme.secrets().mask(&e.to_string())),
        };
        let unsendable =
            |message: String| rejection(StatusCode::UNPROCESSABLE_ENTITY, "config", message);
        if scheme.policy().outcome_url.is_none() {
            return unsendable(format!(
                "the scheme `{name}` has no `outcome_url`: it sends no outcome reports"
            ));
        }
        let contract = self.router.contract();
        if !contract.reports() {
            return unsendable(format!(
                "the component implements callroute:router@{}, which has no `report`",
                contract.version()
            ));
        }
        let Some(outbox) = &self.outbox else {
            return rejection(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-outbox",
                "this server keeps no outbox (--no-outbox), so it takes no outcome reports".into(),
            );
        };
        let learned = outcome.clone();
        match outbox.accept(name, outcome).await {
            Ok(id) => {
                self.learn(name, scheme, &learned);
                response(report::accepted_answer(&id))
            }
            Err(error @ OutboxError::Full(_)) => {
                let mut answer = rejection(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "outbox-full",
                    error.to_string(),
                );
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
                answer
            }
            Err(error) => {
                tracing::error!(scheme = name, %error, "outcome report not stored");
                rejection(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "outbox-failed",
                    "the report could not be stored; send it again".into(),
                )
            }
        }
    }

    /// With `remember_secs`: an answered call teaches the memory who answered (its caller from
    /// the outcome, or from the call this server routed), held to the scheme's allowlist.
    fn learn(&self, name: &str, scheme: &PreparedScheme, outcome: &Outcome) {
        let (Some(for_), CallStatus::Answered, Some(answered_by)) = (
            scheme.policy().service.remember,
            outcome.status,
            &outcome.answered_by,
        ) else {
            return;
        };
        let Some(caller) = outcome
            .caller
            .clone()
            .or_else(|| self.recent_callers.caller(name, &outcome.call_id))
        else {
            return;
        };
        let Ok(target) = Target::parse(answered_by) else {
            return;
        };
        let policy = scheme.policy();
        if !policy.fallback.contains(&target) && policy.allowlist.check(&target).is_err() {
            return;
        }
        let destination = Destination {
            target,
            ring_timeout_secs: policy.ring_timeout_secs,
        };
        self.router.memory().learn(name, &caller, destination, for_);
    }
}

/// The outbox's deliveries, made by a service's router (through the sandbox, the guard and
/// the breakers) with each scheme as it is now: a reload that changes a scheme's
/// `outcome_url` applies to its waiting reports too.
pub(super) struct ServiceReports(pub(super) Weak<Service>);

impl Deliverer for ServiceReports {
    fn deliver<'a>(
        &'a self,
        name: &'a str,
        outcome: &'a Outcome,
        delivery: &'a Delivery,
    ) -> Pin<Box<dyn Future<Output = Attempted> + Send + 'a>> {
        Box::pin(async move {
            let Some(service) = self.0.upgrade() else {
                return Attempted {
                    result: Err("the server is stopping".into()),
                    retry_for: DEFAULT_OUTCOME_RETRY,
                };
            };
            let tenants = service.tenants();
            let Some(scheme) = tenants.scheme(name) else {
                // Kept until it expires: the scheme may come back with a reload.
                return Attempted {
                    result: Err(format!("the scheme `{name}` is no longer served")),
                    retry_for: DEFAULT_OUTCOME_RETRY,
                };
            };
            let attempt = service.router.report(scheme, outcome, delivery).await;
            service
                .exchanges
                .record_report(name, outcome, delivery, &attempt);
            Attempted {
                result: attempt
                    .result
                    .map_err(|f| format!("{}: {}", f.kind.as_str(), f.message)),
                retry_for: scheme.policy().service.outcome_retry,
            }
        })
    }
}

/// The callers of the calls this server routed lately for schemes with `remember_secs`, by
/// scheme and call id: an `answered` outcome without its `caller` still teaches the memory.
/// Bounded: the oldest are forgotten first.
#[derive(Default)]
pub(super) struct RecentCallers(Mutex<RecentInner>);

#[derive(Default)]
struct RecentInner {
    by_call: HashMap<(String, String), String>,
    order: VecDeque<(String, String)>,
}

/// Most calls [`RecentCallers`] keeps.
const RECENT_CALLERS: usize = 65_536;

impl RecentCallers {
    /// Keep `caller` of `call_id` of `scheme`.
    pub(super) fn note(&self, scheme: &str, call_id: &str, caller: &str) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (scheme.to_owned(), call_id.to_owned());
        if inner
            .by_call
            .insert(key.clone(), caller.to_owned())
            .is_none()
        {
            inner.order.push_back(key);
        }
        while inner.order.len() > RECENT_CALLERS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.by_call.remove(&oldest);
            }
        }
    }

    /// The caller of `call_id` of `scheme`, if it is still kept.
    fn caller(&self, scheme: &str, call_id: &str) -> Option<String> {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .by_call
            .get(&(scheme.to_owned(), call_id.to_owned()))
            .cloned()
    }
}
