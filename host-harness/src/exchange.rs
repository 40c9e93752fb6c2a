//! What a call asked its CRM, and what the CRM answered: one [`Attempt`] per request the
//! component made (the primary, its retries, the secondary), recorded by the host at the
//! sandbox's door, whatever component runs.
//!
//! Each attempt keeps the method, the URL without its query, the request body as sent and the
//! first [`MAX_RECORDED`] bytes of the answer, the status or why there was none, and the time.
//! Header values are never recorded, and every secret of the scheme (its `${env:…}` values,
//! header values, signing secrets, tokens, the URLs' query values) is masked wherever it
//! appears in a body, so a record is safe to show an operator.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// The most bytes of a request body or an answer kept per attempt.
pub const MAX_RECORDED: usize = 4096;

/// What stands for a secret in a record.
pub const MASK: &str = "•••";

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
}

/// One call's attempts, as they happen. Cheap to clone: clones share the record.
#[derive(Debug, Clone)]
pub struct Recorder {
    attempts: Arc<Mutex<Vec<Raw>>>,
    secrets: Arc<[String]>,
    /// How many bytes of a body are kept before masking: [`MAX_RECORDED`] and the longest
    /// secret, so that a secret that starts within the first [`MAX_RECORDED`] bytes is
    /// masked whole before the rest is cut off.
    keep: usize,
}

/// An attempt as recorded, before masking.
#[derive(Debug)]
struct Raw {
    method: String,
    url: String,
    request: Vec<u8>,
    status: Option<u16>,
    answer: Vec<u8>,
    error: Option<String>,
    sent: Instant,
    elapsed_ms: Option<u64>,
}

impl Recorder {
    /// A recorder that masks `secrets` (the values themselves; empty ones are ignored).
    pub fn new(secrets: Arc<[String]>) -> Recorder {
        let longest = secrets.iter().map(String::len).max().unwrap_or(0);
        Recorder {
            attempts: Arc::default(),
            secrets,
            keep: MAX_RECORDED + longest,
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
            status: None,
            answer: Vec::new(),
            error: None,
            sent: Instant::now(),
            elapsed_ms: None,
        });
        AttemptHandle {
            recorder: self.clone(),
            index: attempts.len() - 1,
        }
    }

    /// The attempts so far, secrets masked.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock()
            .iter()
            .map(|raw| Attempt {
                method: raw.method.clone(),
                // A secret can be in a URL's path too (`/rest/1/${env:TOKEN}/…`).
                url: mask_secrets(raw.url.clone(), &self.secrets),
                request_body: self.masked(&raw.request),
                status: raw.status,
                answer: self.masked(&raw.answer),
                error: raw
                    .error
                    .clone()
                    .map(|error| mask_secrets(error, &self.secrets)),
                elapsed_ms: raw.elapsed_ms.unwrap_or(0),
            })
            .collect()
    }

    /// A kept body, secrets masked, then cut to [`MAX_RECORDED`] bytes.
    fn masked(&self, bytes: &[u8]) -> String {
        let mut text = mask_secrets(String::from_utf8_lossy(bytes).into_owned(), &self.secrets);
        if text.len() > MAX_RECORDED {
            let mut end = MAX_RECORDED;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
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
            let room = keep.saturating_sub(raw.answer.len());
            raw.answer
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
    }
}

/// The record of one call's exchange, as JSON: the call (its numbers masked unless
/// `show_numbers`), the outcome as `callroute route` prints it (outcome, destination, error,
/// elapsed time), and the attempts.
pub fn record_json(
    call: &crate::Call,
    report: &crate::RouteReport,
    show_numbers: bool,
    secrets: &[String],
) -> serde_json::Value {
    record_of(&CallShown::of(call, show_numbers), report, secrets)
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
    /// Each number masked, and its mask: also applied to what was sent and answered.
    masked: Vec<(String, String)>,
}

/// The shortest number masked inside bodies too: shorter ones (an extension, `101`) are not
/// anyone's phone number, and masking them would garble the rest.
const MIN_MASKED_IN_BODIES: usize = 7;

impl CallShown {
    /// `call` with its numbers masked, unless `show_numbers`.
    pub fn of(call: &crate::Call, show_numbers: bool) -> CallShown {
        let shown = |number: &str| {
            if show_numbers {
                number.to_owned()
            } else {
                mask_number(number)
            }
        };
        let mut masked = Vec::new();
        if !show_numbers {
            for number in [&call.caller, &call.callee] {
                // As written first; then without its `+`, so that `%2B380…` in a form body
                // is masked too.
                let digits = number.trim_start_matches('+');
                if digits.chars().count() >= MIN_MASKED_IN_BODIES {
                    masked.push((number.clone(), mask_number(number)));
                    if digits != number {
                        masked.push((digits.to_owned(), mask_number(digits)));
                    }
                }
            }
        }
        CallShown {
            call_id: call.call_id.clone(),
            caller: shown(&call.caller),
            callee: shown(&call.callee),
            masked,
        }
    }

    /// `text` with the call's numbers masked as they are in the record.
    fn mask(&self, mut text: String) -> String {
        for (number, mask) in &self.masked {
            if text.contains(number.as_str()) {
                text = text.replace(number.as_str(), mask);
            }
        }
        text
    }
}

/// The record of a call as shown, and its report (see [`record_json`]). Every string in it
/// (the attempts, and the error, which may quote a URL or a CRM's answer) has the scheme's
/// `secrets` masked, and the numbers masked in the call masked too.
pub fn record_of(
    call: &CallShown,
    report: &crate::RouteReport,
    secrets: &[String],
) -> serde_json::Value {
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
    mask_strings(&mut record, &|text| call.mask(mask_secrets(text, secrets)));
    record
}

/// Apply `mask` to every string in `value`.
fn mask_strings(value: &mut serde_json::Value, mask: &impl Fn(String) -> String) {
    match value {
        serde_json::Value::String(text) => *text = mask(std::mem::take(text)),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| mask_strings(v, mask)),
        serde_json::Value::Object(members) => {
            members.values_mut().for_each(|v| mask_strings(v, mask))
        }
        _ => {}
    }
}

/// `text` with every one of `secrets` in it replaced by [`MASK`] (empty ones are ignored;
/// a secret that contains another should come first).
pub fn mask_secrets(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

/// A phone number as a record shows it by default: enough to recognise, not to dial
/// (`+38050•••2233`). Short values keep only their last two characters.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        let tail: String = chars[chars.len().saturating_sub(2)..].iter().collect();
        return format!("{MASK}{tail}");
    }
    let head: String = chars[..(chars.len() - 4).min(6)].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{MASK}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_keep_bounded_bodies_and_mask_secrets() {
        let recorder = Recorder::new(Arc::from(vec!["s3cret".to_owned(), String::new()]));
        let attempt = recorder.begin("POST", "http://crm/route".into(), b"key=s3cret&caller=1");
        attempt.answered(200);
        attempt.body(&vec![b'x'; 3000]);
        attempt.body(&vec![b'y'; 3000]);
        let failed = recorder.begin("POST", "http://backup/route".into(), b"");
        failed.failed("refused".into());
        let attempts = recorder.attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].request_body, "key=•••&caller=1");
        assert_eq!(attempts[0].status, Some(200));
        assert_eq!(attempts[0].answer.len(), MAX_RECORDED);
        assert!(attempts[0].answer.ends_with('y'));
        assert_eq!(attempts[1].error.as_deref(), Some("refused"));
        assert_eq!(attempts[1].status, None);
    }

    #[test]
    fn masked_numbers_are_masked_in_what_was_sent_and_answered_too() {
        let call =
            crate::Call::from_json(r#"{"call_id":"c1","caller":"+380501112233","callee":"101"}"#)
                .unwrap();
        let recorder = Recorder::new(Arc::from(Vec::new()));
        let attempt = recorder.begin(
            "POST",
            "http://crm/".into(),
            b"caller=%2B380501112233&callee=101",
        );
        attempt.answered(200);
        attempt.body(br#"{"for":"+380501112233","destination":"101"}"#);
        let report = crate::RouteReport {
            result: Err(crate::report::RouteFailure::new(
                callroute_plugin::error::ErrorKind::Timeout,
                "slow",
            )),
            elapsed: std::time::Duration::ZERO,
            rejected: None,
            attempts: recorder.attempts(),
        };
        let masked = record_json(&call, &report, false, &[]);
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
        let whole = record_json(&call, &report, true, &[]);
        assert_eq!(
            whole["attempts"][0]["request_body"],
            "caller=%2B380501112233&callee=101"
        );
    }

    #[test]
    fn numbers_are_masked_but_recognisable() {
        assert_eq!(mask_number("+380501112233"), "+38050•••2233");
        assert_eq!(mask_number("380441234567"), "380441•••4567");
        assert_eq!(mask_number("1234567"), "123•••4567");
        assert_eq!(mask_number("101"), "•••01");
        assert_eq!(mask_number(""), "•••");
    }
}
