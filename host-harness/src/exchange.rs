//! What a call asked its CRM, and what the CRM answered: one [`Attempt`] per request the
//! component made (the primary, its retries, the secondary), recorded by the host at the
//! sandbox's door, whatever component runs.
//!
//! Each attempt keeps the method, the URL without its query, the request body as sent and the
//! first [`MAX_RECORDED`] bytes of the answer, the status or why there was none, and the time.
//! Header values are never recorded. The router masks every string of an attempt
//! ([`Attempt::redact`], with the rules of [`crate::redact`]) before the record leaves it.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// The most bytes of a request body or an answer kept per attempt.
pub const MAX_RECORDED: usize = 4096;

pub use crate::redact::MASK;

/// One request to a CRM and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The HTTP method.
    pub method: String,
    /// Where it went, without the query.
    pub url: String,
    /// The body as sent (the first [`MAX_RECORDED`] bytes, secrets masked).
    pub request_body: String,
    /// The CRM's status, when it answered.
    pub status: Option<u16>,
    /// The answer (the first [`MAX_RECORDED`] bytes the component read, secrets masked).
    pub answer: String,
    /// Why there was no answer, when there was none.
    pub error: Option<String>,
    /// From sending the request to the answer's head, or to the failure.
    pub elapsed_ms: u64,
    /// Whether the request body and the answer were kept only in part, until masked.
    #[serde(skip)]
    pub cut: (bool, bool),
}

/// One call's attempts, as they happen. Cheap to clone: clones share the record.
#[derive(Debug, Clone)]
pub struct Recorder {
    attempts: Arc<Mutex<Vec<Raw>>>,
    /// How many bytes of a body are kept before masking: [`MAX_RECORDED`] and the longest
    /// form of a secret, so that a secret that starts within the first [`MAX_RECORDED`] bytes
    /// is masked whole before the rest is cut off.
    keep: usize,
}

/// An attempt as recorded, before masking.
#[derive(Debug)]
struct Raw {
    method: String,
    url: String,
    request: Vec<u8>,
    request_len: usize,
    status: Option<u16>,
    answer: Vec<u8>,
    answer_len: usize,
    error: Option<String>,
    sent: Instant,
    elapsed_ms: Option<u64>,
}

impl Recorder {
    /// A recorder keeping [`MAX_RECORDED`] bytes of each body and `longest_secret` more.
    pub fn new(longest_secret: usize) -> Recorder {
        Recorder {
            attempts: Arc::default(),
            keep: MAX_RECORDED + longest_secret,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Raw>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request goes out.
    pub(crate) fn begin(&self, method: &str, url: String, body: &[u8]) -> AttemptHandle {
        let mut attempts = self.lock();
        attempts.push(Raw {
            method: method.to_owned(),
            url,
            request: body[..body.len().min(self.keep)].to_vec(),
            request_len: body.len(),
            status: None,
            answer: Vec::new(),
            answer_len: 0,
            error: None,
            sent: Instant::now(),
            elapsed_ms: None,
        });
        AttemptHandle {
            recorder: self.clone(),
            index: attempts.len() - 1,
        }
    }

    /// The attempts so far, not yet masked: [`Attempt::redact`] masks and cuts them.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock()
            .iter()
            .map(|raw| Attempt {
                method: raw.method.clone(),
                url: raw.url.clone(),
                request_body: String::from_utf8_lossy(&raw.request).into_owned(),
                status: raw.status,
                answer: String::from_utf8_lossy(&raw.answer).into_owned(),
                error: raw.error.clone(),
                elapsed_ms: raw.elapsed_ms.unwrap_or(0),
                cut: (
                    raw.request_len > raw.request.len(),
                    raw.answer_len > raw.answer.len(),
                ),
            })
            .collect()
    }
}

impl Attempt {
    /// Mask every string of this attempt with `redactor` (a body kept in part as a text cut
    /// at its end), then cut each body to [`MAX_RECORDED`] bytes.
    pub fn redact(&mut self, redactor: &crate::redact::Redactor) {
        // A secret can be in a URL's path too (`/rest/1/${env:TOKEN}/…`).
        self.url = redactor.mask(&self.url);
        self.request_body = cut(redactor.mask_body(&self.request_body, self.cut.0));
        self.answer = cut(redactor.mask_body(&self.answer, self.cut.1));
        self.error = self.error.as_deref().map(|e| redactor.mask(e));
        self.cut = (false, false);
    }
}

/// `text` cut to [`MAX_RECORDED`] bytes.
fn cut(mut text: String) -> String {
    if text.len() > MAX_RECORDED {
        let mut end = MAX_RECORDED;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// One attempt, to be told how it went.
#[derive(Debug)]
pub(crate) struct AttemptHandle {
    recorder: Recorder,
    index: usize,
}

impl AttemptHandle {
    fn update(&self, change: impl FnOnce(&mut Raw)) {
        if let Some(raw) = self.recorder.lock().get_mut(self.index) {
            change(raw);
        }
    }

    /// The CRM answered with `status`.
    pub(crate) fn answered(&self, status: u16) {
        self.update(|raw| {
            raw.status = Some(status);
            raw.elapsed_ms = Some(raw.sent.elapsed().as_millis() as u64);
        });
    }

    /// There was no answer, for `reason`.
    pub(crate) fn failed(&self, reason: String) {
        self.update(|raw| {
            raw.error = Some(reason);
            raw.elapsed_ms = Some(raw.sent.elapsed().as_millis() as u64);
        });
    }

    /// Part of the answer's body, as the component reads it.
    pub(crate) fn body(&self, bytes: &[u8]) {
        let keep = self.recorder.keep;
        self.update(|raw| {
            raw.answer_len += bytes.len();
            let room = keep.saturating_sub(raw.answer.len());
            raw.answer
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
    }
}

/// The record of one call's exchange, as JSON: the call (its numbers masked unless
/// `show_numbers`), the outcome as `callroute route` prints it (outcome, destination, error,
/// elapsed time), and the attempts. The report comes masked from the router.
pub fn record_json(
    call: &crate::Call,
    report: &crate::RouteReport,
    show_numbers: bool,
) -> serde_json::Value {
    record_of(&CallShown::of(call, show_numbers), report)
}

/// A call as a record shows it: its id, and its numbers masked or whole.
#[derive(Debug, Clone)]
pub struct CallShown {
    /// The call's id.
    pub call_id: String,
    /// The caller, as shown.
    pub caller: String,
    /// The callee, as shown.
    pub callee: String,
}

impl CallShown {
    /// `call` with its numbers masked, unless `show_numbers`.
    pub fn of(call: &crate::Call, show_numbers: bool) -> CallShown {
        let shown = |number: &str| crate::redact::shown_number(number, show_numbers);
        CallShown {
            call_id: call.call_id.clone(),
            caller: shown(&call.caller),
            callee: shown(&call.callee),
        }
    }
}

/// The record of a call as shown, and its report, already masked by the router (see
/// [`record_json`]).
pub fn record_of(call: &CallShown, report: &crate::RouteReport) -> serde_json::Value {
    let mut record = serde_json::json!({
        "call_id": call.call_id,
        "caller": call.caller,
        "callee": call.callee,
    });
    if let (Some(record), Ok(serde_json::Value::Object(outcome))) = (
        record.as_object_mut(),
        serde_json::from_str::<serde_json::Value>(&report.to_json()),
    ) {
        record.extend(outcome);
        record.insert(
            "attempts".into(),
            serde_json::to_value(&report.attempts).unwrap_or_default(),
        );
    }
    record
}

/// One attempt to deliver an outcome report, as JSON: the outcome (who answered shown whole,
/// as a routing's destinations are: it is where the call went, not a caller's number), the
/// report's id and attempt, the result, and the exchange with the CRM. The attempt comes
/// masked from the router.
pub fn report_json(
    outcome: &callroute_plugin::report::Outcome,
    delivery: &callroute_plugin::report::Delivery,
    attempt: &crate::router::ReportAttempt,
) -> serde_json::Value {
    let mut json = serde_json::json!({
        "report": delivery.report_id,
        "attempt": delivery.attempt,
        "status": outcome.status.as_str(),
        "answered_by": outcome.answered_by,
        "ring_secs": outcome.ring_secs,
        "talk_secs": outcome.talk_secs,
        "hangup_cause": outcome.hangup_cause,
        "decision": outcome.decision,
        "delivered": attempt.result.is_ok(),
        "elapsed_ms": attempt.elapsed.as_millis() as u64,
        "attempts": serde_json::to_value(&attempt.attempts).unwrap_or_default(),
    });
    if let (Err(failure), Some(object)) = (&attempt.result, json.as_object_mut()) {
        object.insert(
            "error".into(),
            serde_json::json!({"kind": failure.kind.as_str(), "message": failure.message}),
        );
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{Redactor, Secrets};

    fn secrets(value: &str) -> Secrets {
        Secrets::of_scheme(&[("headers.X-Key".into(), value.into())], Vec::new())
    }

    #[test]
    fn attempts_keep_bounded_bodies_and_are_masked_whole() {
        let secrets = secrets("s3cret-value");
        let recorder = Recorder::new(secrets.longest());
        let attempt = recorder.begin(
            "POST",
            "http://crm/route".into(),
            b"key=s3cret-value&caller=1",
        );
        attempt.answered(200);
        attempt.body(&vec![b'x'; 3000]);
        // A secret that starts within the kept bytes and ends beyond them is masked whole.
        let mut answer = vec![b'y'; MAX_RECORDED - 3000 - 4];
        answer.extend_from_slice(b"s3cret-value and more");
        attempt.body(&answer);
        let failed = recorder.begin("POST", "http://backup/route".into(), b"");
        failed.failed("refused: s3cret-value".into());
        let redactor = Redactor::new(&secrets, ["1", "2"], false);
        let mut attempts = recorder.attempts();
        attempts.iter_mut().for_each(|a| a.redact(&redactor));
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].request_body, "key=•••&caller=1");
        assert_eq!(attempts[0].status, Some(200));
        assert!(attempts[0].answer.len() <= MAX_RECORDED);
        assert!(
            attempts[0].answer.ends_with("y•"),
            "{}",
            &attempts[0].answer[4000..]
        );
        assert!(!attempts[0].answer.contains("s3cr"));
        assert_eq!(attempts[1].error.as_deref(), Some("refused: •••"));
        assert_eq!(attempts[1].status, None);
    }

    #[test]
    fn masked_numbers_are_masked_in_what_was_sent_and_answered_too() {
        let call =
            crate::Call::from_json(r#"{"call_id":"c1","caller":"+380501112233","callee":"101"}"#)
                .unwrap();
        let recorder = Recorder::new(0);
        let attempt = recorder.begin(
            "POST",
            "http://crm/".into(),
            b"caller=%2B380501112233&callee=101",
        );
        attempt.answered(200);
        attempt.body(br#"{"for":"+380501112233","destination":"101"}"#);
        let mut report = crate::RouteReport {
            result: Err(crate::report::RouteFailure::new(
                callroute_plugin::error::ErrorKind::Timeout,
                "slow for +380501112233",
            )),
            elapsed: std::time::Duration::ZERO,
            rejected: None,
            attempts: recorder.attempts(),
        };
        let whole = record_json(&call, &report, true);
        assert_eq!(
            whole["attempts"][0]["request_body"],
            "caller=%2B380501112233&callee=101"
        );
        report.redact(&Redactor::new(
            &Secrets::default(),
            [&call.caller, &call.callee],
            false,
        ));
        let masked = record_json(&call, &report, false);
        assert_eq!(
            masked["attempts"][0]["request_body"],
            "caller=%2B380501•••2233&callee=101"
        );
        // As the record shows the caller, where the body has the number as written.
        assert_eq!(masked["caller"], "+38050•••2233");
        assert_eq!(
            masked["attempts"][0]["answer"],
            r#"{"for":"+38050•••2233","destination":"101"}"#
        );
        assert_eq!(masked["error"]["message"], "slow for +38050•••2233");
    }
}
