//! How a routed call ended ([`Outcome`]), and the report that tells the CRM ([`report`]).
//!
//! A call platform hands the outcome over after the call: `POST /v1/outcome/{scheme}` to
//! `callroute serve`, a `POST …/outcome` to the component's own HTTP handler elsewhere, or the
//! WIT `router.report`. Its JSON form, read by [`Outcome::from_json`] for every front end:
//!
//! ```json
//! {"call_id":"pkv","status":"answered","answered_by":"manager_7","ring_secs":4,"talk_secs":62,
//!  "hangup_cause":"BYE","decision":"9f0c…","caller":"+380501112233","callee":"380441234567",
//!  "vars":{"queue":"sales"}}
//! ```
//!
//! `call_id` and `status` are required, and `answered_by` when the status is `answered`; the
//! rest may be left out. The report is one request to the scheme's `outcome_url`, its
//! parameters the scheme's `[outcome_params]` rendered over the outcome's values (or every
//! value), signed as routing webhooks are ([`request::sign`]), with the delivery's report id as
//! its `Idempotency-Key`: a host that keeps reports retries them with the same id.

use crate::call::{self, CallError, MAX_VALUE_LEN, MAX_VARS};
use crate::error::RouteError;
use crate::json::{self, Value};
use crate::outcome::{self, HttpAnswer};
use crate::request::{self, Request};
use crate::routing::{AttemptTime, Transport};
use crate::scheme::{OUTCOME_JSONRPC_METHOD, OutcomeTarget, Scheme};
use crate::template::Values;
use std::borrow::Cow;
use std::time::Duration;

/// How a routed call ended (the WIT `call-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// A destination answered; the call was connected.
    Answered,
    /// Every destination rang until its ring time ran out.
    NoAnswer,
    /// The destination was busy.
    Busy,
    /// No destination could be reached.
    Failed,
    /// The caller gave up before anyone answered.
    Cancelled,
}

impl CallStatus {
    /// Every status, in the order the README lists them.
    pub const ALL: [CallStatus; 5] = [
        CallStatus::Answered,
        CallStatus::NoAnswer,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::Cancelled,
    ];

    /// The status as the JSON form and templates spell it (`no-answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Answered => "answered",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for CallStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                format!("`{text}` is not one of answered, no-answer, busy, failed, cancelled")
            })
    }
}

/// How a routed call ended, as the platform reports it (the WIT `outcome` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The platform's identifier of the call.
    pub call_id: String,
    /// How it ended.
    pub status: CallStatus,
    /// The destination that took the call (required when `answered`).
    pub answered_by: Option<String>,
    /// Whole seconds it rang.
    pub ring_secs: u32,
    /// Whole seconds it was connected.
    pub talk_secs: u32,
    /// A SIP status or a short cause text.
    pub hangup_cause: Option<String>,
    /// The routing decision's id, from the routing answer.
    pub decision: Option<String>,
    /// The calling party.
    pub caller: Option<String>,
    /// The number or address dialled.
    pub callee: Option<String>,
    /// Further named values, in the order given.
    pub vars: Vec<(String, String)>,
}

/// One attempt to deliver a report (the WIT `delivery` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The report's id, its `Idempotency-Key`: the same on every attempt.
    pub report_id: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// Why a scheme without `outcome_url` takes no reports, in every front end's words.
pub const NO_OUTCOME_URL: &str = "the scheme has no `outcome_url`: it sends no outcome reports";

/// Largest outcome body accepted over HTTP (the same as a call's).
pub const MAX_OUTCOME_BODY: usize = call::MAX_CALL_BODY;
/// Longest decision id accepted: ours are 32 hex digits, another host's may be longer.
pub const MAX_DECISION_LEN: usize = 128;
/// Most seconds a call may have rung or talked: a week.
pub const MAX_CALL_SECS: u32 = 7 * 24 * 3600;

/// An outcome that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    /// Not JSON at all.
    #[error("outcome is not valid JSON: {0}")]
    Syntax(String),
    /// Valid JSON of the wrong shape, or a value out of bounds; the message names the field.
    #[error("outcome field `{field}`: {reason}")]
    Field {
        /// The offending field (`vars.queue` for a variable).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<CallError> for OutcomeError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Syntax(message) => OutcomeError::Syntax(message),
            CallError::Field { field, reason } => OutcomeError::Field { field, reason },
        }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> OutcomeError {
    OutcomeError::Field {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Outcome {
    /// Parse and check the JSON form (see the module docs). Unknown fields are refused, so a
    /// typo (`talk_sec`) is reported rather than sent as an empty value.
    pub fn from_json(text: &str) -> Result<Outcome, OutcomeError> {
        let value = json::parse(text).map_err(|e| OutcomeError::Syntax(e.to_string()))?;
        let Value::Object(members) = &value else {
            return Err(bad("(top level)", "must be a JSON object"));
        };
        call::refuse_repeated(members.iter().map(|(key, _)| key.as_str()), "")?;
        let (mut call_id, mut status) = (None, None);
        let mut outcome = Outcome {
            call_id: String::new(),
            status: CallStatus::Failed,
            answered_by: None,
            ring_secs: 0,
            talk_secs: 0,
            hangup_cause: None,
            decision: None,
            caller: None,
            callee: None,
            vars: Vec::new(),
        };
        let text = |key: &str, value: &Value| -> Result<Option<String>, OutcomeError> {
            Ok(Some(call::scalar(key, value)?).filter(|s| !s.is_empty()))
        };
        for (key, value) in members {
            match key.as_str() {
                "call_id" => call_id = text(key, value)?,
                "status" => {
                    let Some(name) = value.as_str() else {
                        return Err(bad(key, "must be a string"));
                    };
                    status = Some(name.parse().map_err(|reason| bad(key, reason))?);
                }
                "answered_by" => outcome.answered_by = text(key, value)?,
                "ring_secs" => outcome.ring_secs = seconds(key, value)?,
                "talk_secs" => outcome.talk_secs = seconds(key, value)?,
                "hangup_cause" => outcome.hangup_cause = text(key, value)?,
                "decision" => outcome.decision = text(key, value)?,
                "caller" => outcome.caller = text(key, value)?,
                "callee" => outcome.callee = text(key, value)?,
                "vars" => outcome.vars = call::vars(value)?,
                _ => {
                    return Err(bad(
                        key,
                        "unknown field (expected call_id, status, answered_by, ring_secs, \
                         talk_secs, hangup_cause, decision, caller, callee, vars)",
                    ));
                }
            }
        }
        outcome.call_id = call_id.ok_or_else(|| bad("call_id", "is required"))?;
        outcome.status = status.ok_or_else(|| bad("status", "is required"))?;
        outcome.check()?;
        Ok(outcome)
    }

    /// Check what every outcome must keep, however it arrived (JSON, or the WIT record from
    /// a host): a call id, who answered an answered call, lengths and counts in bounds, and a
    /// decision id that can travel in a header.
    pub fn check(&self) -> Result<(), OutcomeError> {
        if self.call_id.is_empty() {
            return Err(bad("call_id", "is required"));
        }
        if self.status == CallStatus::Answered && self.answered_by.is_none() {
            return Err(bad("answered_by", "is required when status is answered"));
        }
        for (field, secs) in [("ring_secs", self.ring_secs), ("talk_secs", self.talk_secs)] {
            if secs > MAX_CALL_SECS {
                return Err(bad(field, format!("more than {MAX_CALL_SECS} seconds")));
            }
        }
        if let Some(decision) = &self.decision
            && !valid_decision(decision)
        {
            return Err(bad(
                "decision",
                format!(
                    "a decision id is at most {MAX_DECISION_LEN} letters, digits, `-`, `_` or \
                     `.` (as the routing answer gave it)"
                ),
            ));
        }
        if self.vars.len() > MAX_VARS {
            return Err(bad("vars", format!("more than {MAX_VARS} variables")));
        }
        for (name, value) in self.all_values() {
            if value.len() > MAX_VALUE_LEN || name.len() > MAX_VALUE_LEN {
                return Err(bad(name, format!("longer than {MAX_VALUE_LEN} bytes")));
            }
        }
        Ok(())
    }

    /// The JSON form [`Outcome::from_json`] reads, with only the fields that are set (what a
    /// host keeps in its outbox).
    pub fn to_json(&self) -> String {
        let mut object = json::Object::new()
            .string("call_id", &self.call_id)
            .string("status", self.status.as_str());
        for (key, value) in [
            ("answered_by", &self.answered_by),
            ("hangup_cause", &self.hangup_cause),
            ("decision", &self.decision),
            ("caller", &self.caller),
            ("callee", &self.callee),
        ] {
            if let Some(value) = value {
                object = object.string(key, value);
            }
        }
        object = object
            .number("ring_secs", self.ring_secs)
            .number("talk_secs", self.talk_secs);
        if !self.vars.is_empty() {
            let vars = self
                .vars
                .iter()
                .fold(json::Object::new(), |vars, (k, v)| vars.string(k, v));
            object = object.object("vars", vars);
        }
        object.finish()
    }

    /// Every value by name, as a scheme without `[outcome_params]` sends them: `call_id`,
    /// `status`, `answered_by`, `ring_secs`, `talk_secs`, `hangup_cause`, `decision`,
    /// `caller`, `callee` (the optional ones as empty strings when absent), then the
    /// variables not named like one of these.
    pub fn all_values(&self) -> Vec<(&str, Cow<'_, str>)> {
        fn optional(value: &Option<String>) -> Cow<'_, str> {
            Cow::Borrowed(value.as_deref().unwrap_or(""))
        }
        let mut values = vec![
            ("call_id", Cow::Borrowed(self.call_id.as_str())),
            ("status", Cow::Borrowed(self.status.as_str())),
            ("answered_by", optional(&self.answered_by)),
            ("ring_secs", Cow::Owned(self.ring_secs.to_string())),
            ("talk_secs", Cow::Owned(self.talk_secs.to_string())),
            ("hangup_cause", optional(&self.hangup_cause)),
            ("decision", optional(&self.decision)),
            ("caller", optional(&self.caller)),
            ("callee", optional(&self.callee)),
        ];
        let named = values.len();
        for (name, value) in &self.vars {
            if !values[..named].iter().any(|(n, _)| n == name) {
                values.push((name.as_str(), Cow::Borrowed(value.as_str())));
            }
        }
        values
    }
}

/// Whether `decision` can be a decision id: at most [`MAX_DECISION_LEN`] letters, digits, `-`,
/// `_` or `.`, so it travels in a header, a query and a SIP proxy's variables as it is. A host
/// holds a component's decision ids to this too.
pub fn valid_decision(decision: &str) -> bool {
    !decision.is_empty()
        && decision.len() <= MAX_DECISION_LEN
        && decision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whole seconds: a non-negative whole JSON number (or its text, as some platforms send).
fn seconds(field: &str, value: &Value) -> Result<u32, OutcomeError> {
    let text = match value {
        Value::Number(n) => n.as_str(),
        Value::String(s) => s.as_str(),
        Value::Null => return Ok(0),
        _ => return Err(bad(field, "must be a whole number of seconds")),
    };
    text.parse::<u32>()
        .ok()
        .filter(|secs| *secs <= MAX_CALL_SECS)
        .ok_or_else(|| {
            bad(
                field,
                format!("`{text}` is not a whole number of seconds from 0 to {MAX_CALL_SECS}"),
            )
        })
}

/// An outcome and one attempt to deliver it: what a report's templates are rendered with
/// (the outcome's values, and `report_id`).
struct Rendered<'a> {
    outcome: &'a Outcome,
    delivery: &'a Delivery,
}

impl Values for Rendered<'_> {
    fn lookup(&self, name: &str) -> Option<Cow<'_, str>> {
        if name == "report_id" {
            return Some(Cow::Borrowed(&self.delivery.report_id));
        }
        self.outcome
            .all_values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }
}

/// A report's id: 32 hex digits of SHA-256 over the outcome's values, the time it was accepted
/// (to the nanosecond) and `salt` (a host's own, so that two reports of the same outcome
/// accepted at the same instant still differ). It reveals nothing of the call.
pub fn report_id(outcome: &Outcome, accepted: Duration, salt: &[u8]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for (name, value) in outcome.all_values() {
        for part in [name, &value] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
    }
    hash.update(accepted.as_nanos().to_be_bytes());
    hash.update(salt);
    request::hex(&hash.finalize()[..16])
}

/// Build the report request for `outcome` to the scheme's `outcome_url` (stamped with the
/// delivery, not yet signed).
pub fn build(
    scheme: &Scheme,
    target: &OutcomeTarget,
    outcome: &Outcome,
    delivery: &Delivery,
) -> Request {
    let values = Rendered { outcome, delivery };
    let params = match &target.params {
        Some(fields) => request::render(fields, &values),
        None => outcome
            .all_values()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect(),
    };
    let mut request = request::Parts {
        endpoint: &target.endpoint,
        method: target.effective_method(),
        submission: target.submission,
        params,
        jsonrpc: (OUTCOME_JSONRPC_METHOD, &delivery.report_id),
        accept: "*/*",
    }
    .assemble(&scheme.headers, &values);
    if let Some(decision) = &outcome.decision {
        request
            .headers
            .push((request::DECISION_HEADER.to_owned(), decision.clone()));
    }
    request
}

/// Report an outcome: the whole flow, from the scheme's flat pairs to the CRM's 2xx. One
/// request within `response_timeout_secs`; retrying is the host's (with the same
/// `delivery.report_id`).
pub fn report<K, V>(
    scheme_pairs: impl IntoIterator<Item = (K, V)>,
    outcome: &Outcome,
    delivery: &Delivery,
    transport: &mut impl Transport,
) -> Result<(), RouteError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let scheme = Scheme::from_pairs(scheme_pairs)?;
    let target = scheme
        .outcome
        .as_ref()
        .ok_or_else(|| RouteError::Config(NO_OUTCOME_URL.to_owned()))?;
    outcome
        .check()
        .map_err(|e| RouteError::Config(e.to_string()))?;
    let mut request = build(&scheme, target, outcome, delivery);
    let stamp = request::Stamp {
        idempotency_key: &delivery.report_id,
        attempt: delivery.attempt,
        primary_error: None,
    };
    stamp.apply(&mut request);
    let unix_seconds = transport.unix_time().as_secs();
    request::sign(&mut request, &scheme.signing_secrets, unix_seconds, &stamp);
    let time = AttemptTime {
        timeout: scheme.response_timeout,
        shared: false,
    };
    let answer = transport.send(&target.endpoint, request, time)?;
    if !(200..300).contains(&answer.status) {
        return Err(RouteError::http_status(answer.status));
    }
    Ok(())
}

/// A front end's answer to a report it sent at once (the component's HTTP handler): 202 with
/// `{"report":"<id>","status":"delivered"}`.
pub fn delivered_answer(report_id: &str) -> HttpAnswer {
    accepted(report_id, "delivered")
}

/// A front end's answer to a report it kept to deliver later (`callroute serve`'s outbox): 202
/// with `{"report":"<id>","status":"accepted"}`.
pub fn accepted_answer(report_id: &str) -> HttpAnswer {
    accepted(report_id, "accepted")
}

fn accepted(report_id: &str, status: &str) -> HttpAnswer {
    HttpAnswer {
        status: 202,
        content_type: outcome::JSON,
        body: json::Object::new()
            .string("report", report_id)
            .string("status", status)
            .finish(),
        headers: Vec::new(),
    }
}

/// A front end's answer to a report that could not be sent: 422 when the scheme sends no
/// reports or cannot (`config`: nothing will change until the scheme does), 502 with the
/// error's kind when the CRM did not take it.
pub fn failed_answer(error: &RouteError) -> HttpAnswer {
    let status = match error {
        RouteError::Config(_) => 422,
        _ => 502,
    };
    outcome::http_rejection(status, error.kind().as_str(), &error.to_string())
}

#[cfg(test)]
mod tests;
