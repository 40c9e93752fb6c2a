//! `POST /v1/outcome/{scheme}`: a call platform reports how a routed call ended; `serve`
//! stores the report in its outbox ([`crate::outbox`]) and answers 202, and the outbox delivers
//! it to the scheme's `outcome_url` through the router ([`ServiceReports`]).
//!
//! The endpoint takes the same tokens and tenant rules as `/v1/route`. Before a report is
//! taken, everything that would keep it from ever being delivered is refused at once, naming
//! it: a malformed outcome (400), a scheme without `outcome_url` or a component without
//! `report` (422), no outbox (503), a full queue (503 with `Retry-After`). A platform may name
//! its report with an `Idempotency-Key` header: sent again (its 202 lost), it gets the same 202
//! and is not taken twice, as long as this process remembers the name ([`Recent`]). With
//! `remember_secs`, an `answered` outcome also teaches the memory who answered ("last agent"
//! routing).

use super::Service;
use super::http::{read_body, rejection, response};
use crate::outbox::{Deliverer, OutboxError};
use crate::prepare::PreparedScheme;
use bytes::Bytes;
use callroute_plugin::destination::{Destination, Target};
use callroute_plugin::report::{self, CallStatus, Delivery, MAX_OUTCOME_BODY, Outcome};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Mutex, Weak};

/// The request header a platform names its report with.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest such name.
const MAX_KEY_LEN: usize = 256;

/// Whether `key` can name a report: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn usable_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

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
        let (name, scheme) = match self.tenant(&tenants, name, &request) {
            Ok(tenant) => tenant,
            Err(refused) => return *refused,
        };
        let bad = |message: String| rejection(StatusCode::BAD_REQUEST, "bad-request", message);
        // A platform may name its report, so that sending it again (its 202 lost) is not a
        // second report.
        let key = match request.headers().get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => match value.to_str().ok().filter(|k| usable_key(k)) {
                Some(key) => Some(key.to_owned()),
                None => {
                    return bad(format!(
                        "the `Idempotency-Key` header must be 1 to {MAX_KEY_LEN} visible ASCII \
                         characters"
                    ));
                }
            },
        };
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
            // The message names the field and may quote the platform's own input back to it,
            // as `/v1/route` does: as written, never masked, since masking what a caller
            // sent would tell it which of its guesses are the scheme's secrets.
            Err(e) => return bad(e.to_string()),
        };
        let unsendable =
            |message: String| rejection(StatusCode::UNPROCESSABLE_ENTITY, "config", message);
        if let Some(problem) = scheme.problem() {
            return unsendable(format!("the scheme cannot be used: {problem}"));
        }
        if scheme.policy().outcome_url.is_none() {
            return unsendable(report::NO_OUTCOME_URL.to_owned());
        }
        if let Some(refusal) = self.router.contract().refuses_reports() {
            return unsendable(refusal);
        }
        if let Some(id) = key.as_deref().and_then(|k| self.reported.get(name, k)) {
            return response(report::accepted_answer(&id));
        }
        let Some(outbox) = &self.outbox else {
            return rejection(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-outbox",
                "this server keeps no outbox (--no-outbox), so it takes no outcome reports".into(),
            );
        };
        // Stored and queued on a task of its own: a client that goes away meanwhile cannot
        // leave a report on disk but out of its queue.
        let stored = {
            let (outbox, name, outcome) = (outbox.clone(), name.to_owned(), outcome.clone());
            let retry_for = scheme.policy().service.outcome_retry;
            tokio::spawn(async move { outbox.accept(&name, &outcome, retry_for).await })
        };
        let stored = stored
            .await
            .unwrap_or_else(|_| Err(OutboxError::Store("the report was not stored".into())));
        match stored {
            Ok(id) => {
                if let Some(key) = &key {
                    self.reported.note(name, key, &id);
                }
                self.learn(name, scheme, &outcome);
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
            .or_else(|| self.recent_callers.get(name, &outcome.call_id))
        else {
            return;
        };
        let Ok(target) = Target::parse(answered_by) else {
            return;
        };
        let destination = Destination {
            target,
            ring_timeout_secs: scheme.policy().ring_timeout_secs,
        };
        // Held to what the scheme lets a call go to, as every routing is.
        if crate::router::allowed(scheme, &destination).is_err() {
            return;
        }
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
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let service = self.0.upgrade().ok_or("the server is stopping")?;
            let tenants = service.tenants();
            // Kept until it expires: the scheme may come back with a reload.
            let scheme = tenants
                .scheme(name)
                .ok_or_else(|| format!("the scheme `{name}` is no longer served"))?;
            let attempt = service.router.report(scheme, outcome, delivery).await;
            service
                .exchanges
                .record_report(name, outcome, delivery, &attempt);
            attempt
                .result
                .map_err(|f| format!("{}: {}", f.kind.as_str(), f.message))
        })
    }
}

/// Recent values by scheme and a name (a call id, a platform's `Idempotency-Key`), kept to look
/// up later: the callers of the calls this server routed for schemes with `remember_secs` and
/// `outcome_url` (an `answered` outcome without its `caller` still teaches the memory), and the
/// report ids of outcomes taken under a platform's key (a platform that sends one again gets the
/// same 202, and the report is not taken twice).
///
/// On the path of every such call, so cheap: one allocation (the value), the name kept as a
/// 64-bit digest (keyed per process), at most [`RECENT`] per scheme, the oldest forgotten
/// first; one scheme's never push out another's. In memory: a restart forgets them.
#[derive(Default)]
pub(super) struct Recent {
    by_scheme: Mutex<HashMap<String, Kept>>,
    keys: std::hash::RandomState,
}

/// One scheme's recent values.
#[derive(Default)]
struct Kept {
    by_name: HashMap<u64, Box<str>>,
    order: VecDeque<u64>,
}

/// Most values [`Recent`] keeps per scheme.
const RECENT: usize = 16_384;

impl Recent {
    fn digest(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one(name)
    }

    /// Keep `value` under `name` of `scheme`.
    pub(super) fn note(&self, scheme: &str, name: &str, value: &str) {
        let digest = self.digest(name);
        let mut by_scheme = self.by_scheme.lock().unwrap_or_else(|e| e.into_inner());
        let kept = match by_scheme.get_mut(scheme) {
            Some(kept) => kept,
            None => by_scheme.entry(scheme.to_owned()).or_default(),
        };
        if kept.by_name.insert(digest, value.into()).is_none() {
            kept.order.push_back(digest);
        }
        if kept.order.len() > RECENT
            && let Some(oldest) = kept.order.pop_front()
        {
            kept.by_name.remove(&oldest);
        }
    }

    /// The value under `name` of `scheme`, if it is still kept.
    fn get(&self, scheme: &str, name: &str) -> Option<String> {
        let digest = self.digest(name);
        let by_scheme = self.by_scheme.lock().unwrap_or_else(|e| e.into_inner());
        Some(by_scheme.get(scheme)?.by_name.get(&digest)?.to_string())
    }
}
