//! The outcome of routing one call, as JSON: the one format that `callroute route` prints,
//! `callroute serve` answers, and the component's own `wasi:http` handler answers; and the
//! whole HTTP answer those two front ends give ([`http_answer`], [`http_rejection`]), so they
//! answer alike by construction.
//!
//! ```json
//! {"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"elapsed_ms":12}
//! {"outcome":"fallback","destination":{"kind":"sip","target":"reception","ring_timeout_secs":30},"error":{"kind":"timeout","message":"…"},"elapsed_ms":5003}
//! {"outcome":"failed","error":{"kind":"http-status","message":"the CRM answered 503 Service Unavailable","status":503},"elapsed_ms":7}
//! ```
//!
//! Keys come in the documented order; `status` appears only for `http-status`, and
//! `alternatives` (the rest of a fallback list, in order) only when there are some.

use crate::destination::Destination;
use crate::error::Failure;
use crate::json::Object;
use crate::routing::Routing;

/// `"routed"`, `"fallback"` or `"failed"`.
pub fn outcome_name(result: &Result<Routing, Failure>) -> &'static str {
    match result {
        Ok(r) if r.fallback_cause.is_some() => "fallback",
        Ok(_) => "routed",
        Err(_) => "failed",
    }
}

fn destination_json(d: &Destination) -> Object {
    Object::new()
        .string("kind", d.target.kind())
        .string("target", d.target.value())
        .number("ring_timeout_secs", d.ring_timeout_secs)
}

fn error_json(e: &Failure) -> Object {
    let error = Object::new()
        .string("kind", e.kind.as_str())
        .string("message", &e.message);
    match e.status {
        Some(status) => error.number("status", status),
        None => error,
    }
}

/// The outcome as one line of JSON.
pub fn to_json(result: &Result<Routing, Failure>, elapsed_ms: u64) -> String {
    let mut json = Object::new().string("outcome", outcome_name(result));
    match result {
        Ok(r) => {
            json = json.object("destination", destination_json(&r.destination));
            if !r.alternatives.is_empty() {
                json = json.array("alternatives", r.alternatives.iter().map(destination_json));
            }
            if let Some(cause) = &r.fallback_cause {
                json = json.object("error", error_json(cause));
            }
        }
        Err(e) => json = json.object("error", error_json(e)),
    }
    json.number("elapsed_ms", elapsed_ms).finish()
}

/// What an HTTP front end answers: status, content type, body, and the ring timeout for the
/// `X-Ring-Timeout` header of a plain-text answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// `X-Ring-Timeout`, for a plain-text destination.
    pub ring_timeout: Option<u32>,
}

/// The `Content-Type` of JSON answers.
pub const JSON: &str = "application/json";
/// The `Content-Type` of plain-text answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The answer to a routing request: the outcome JSON with 200 whatever the outcome (so a PBX
/// can tell "CRM down" from "our bug"), or, for a client that [`prefers_text`], the
/// [`plain_text`] answer.
pub fn http_answer(
    result: &Result<Routing, Failure>,
    elapsed_ms: u64,
    prefers_text: bool,
) -> HttpAnswer {
    if prefers_text {
        let (status, body, ring_timeout) = plain_text(result);
        HttpAnswer {
            status,
            content_type: TEXT,
            body,
            ring_timeout,
        }
    } else {
        HttpAnswer {
            status: 200,
            content_type: JSON,
            body: to_json(result, elapsed_ms),
            ring_timeout: None,
        }
    }
}

/// The answer to a request that is not routed at all (malformed, unknown scheme, a loop):
/// `status` with `{"error":{"kind":…,"message":…}}`.
pub fn http_rejection(status: u16, kind: &str, message: &str) -> HttpAnswer {
    HttpAnswer {
        status,
        content_type: JSON,
        body: rejection_json(kind, message),
        ring_timeout: None,
    }
}

/// Whether a client asked for the plain-text answer: the first of `text/plain` and
/// `application/json` among its `Accept` values is `text/plain`.
pub fn prefers_text<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    accept
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .find(|v| {
            v.eq_ignore_ascii_case("text/plain") || v.eq_ignore_ascii_case("application/json")
        })
        .is_some_and(|v| v.eq_ignore_ascii_case("text/plain"))
}

/// The plain-text answer to a client that [`prefers_text`]: `(status, body, ring timeout)`.
/// A routed call (or its fallback) is `200` with the bare target, so the simplest PBX script
/// can dial it; a failed one is `503` with the error kind.
pub fn plain_text(result: &Result<Routing, Failure>) -> (u16, String, Option<u32>) {
    match result {
        Ok(r) => (
            200,
            r.destination.target.value().to_owned(),
            Some(r.destination.ring_timeout_secs),
        ),
        Err(e) => (503, e.kind.as_str().to_owned(), None),
    }
}

/// A request that is not routed at all (malformed, unknown scheme):
/// `{"error":{"kind":…,"message":…}}`.
pub fn rejection_json(kind: &str, message: &str) -> String {
    let error = Object::new()
        .string("kind", kind)
        .string("message", message);
    Object::new().object("error", error).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Target;
    use crate::error::{ErrorKind, RouteError};
    use serde_json::Value;

    #[test]
    fn json_matches_the_contract() {
        let routed = Ok(Routing::direct(Destination {
            target: Target::Phone("380123456789".into()),
            ring_timeout_secs: 30,
        }));
        assert_eq!(
            to_json(&routed, 12),
            r#"{"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"elapsed_ms":12}"#
        );
        let failed = Err(Failure::from(RouteError::HttpStatus {
            status: 503,
            message: "the CRM answered 503 Service Unavailable".into(),
        }));
        assert_eq!(
            to_json(&failed, 7),
            r#"{"outcome":"failed","error":{"kind":"http-status","message":"the CRM answered 503 Service Unavailable","status":503},"elapsed_ms":7}"#
        );
        let fallback = Routing::fallback(
            &[Target::Sip("reception".into()), Target::Phone("101".into())],
            20,
            Failure::new(ErrorKind::Timeout, "slow"),
        );
        assert_eq!(
            to_json(&fallback, 5003),
            r#"{"outcome":"fallback","destination":{"kind":"sip","target":"reception","ring_timeout_secs":20},"alternatives":[{"kind":"phone","target":"101","ring_timeout_secs":20}],"error":{"kind":"timeout","message":"slow"},"elapsed_ms":5003}"#
        );
        assert_eq!(outcome_name(&fallback), "fallback");
        let trap = Err(Failure::new(ErrorKind::Trap, "said \"no\"\n"));
        let json: Value = serde_json::from_str(&to_json(&trap, 5001)).unwrap();
        assert_eq!(json["error"]["message"], "said \"no\"\n");
        assert_eq!(json["error"]["kind"], "trap");
        assert!(json["error"].get("status").is_none());
        assert_eq!(json["elapsed_ms"], 5001);
    }

    #[test]
    fn both_front_ends_answer_alike() {
        let routed = Ok(Routing::direct(Destination {
            target: Target::Phone("380123456789".into()),
            ring_timeout_secs: 25,
        }));
        assert_eq!(
            http_answer(&routed, 9, true),
            HttpAnswer {
                status: 200,
                content_type: TEXT,
                body: "380123456789".into(),
                ring_timeout: Some(25),
            }
        );
        let json = http_answer(&routed, 9, false);
        assert_eq!((json.status, json.content_type), (200, JSON));
        assert_eq!(json.body, to_json(&routed, 9));
        assert_eq!(json.ring_timeout, None);
        let failed = Err(Failure::new(ErrorKind::Transport, "down"));
        assert_eq!(
            (
                http_answer(&failed, 1, false).status,
                http_answer(&failed, 1, true).status
            ),
            (200, 503)
        );
        let rejected = http_rejection(404, "unknown-scheme", "no scheme named `x`");
        assert_eq!((rejected.status, rejected.content_type), (404, JSON));
        assert_eq!(
            rejected.body,
            rejection_json("unknown-scheme", "no scheme named `x`")
        );
    }

    #[test]
    fn accept_negotiation() {
        assert!(prefers_text(["text/plain"]));
        assert!(prefers_text(["text/plain;q=0.9, application/json;q=0.5"]));
        assert!(prefers_text(["text/html", "TEXT/PLAIN"]));
        assert!(!prefers_text(["application/json, text/plain"]));
        assert!(!prefers_text(["*/*"]));
        assert!(!prefers_text([]));
    }

    #[test]
    fn plain_text_and_rejections() {
        let routed = Ok(Routing::direct(Destination {
            target: Target::Sip("manager_7".into()),
            ring_timeout_secs: 20,
        }));
        assert_eq!(plain_text(&routed), (200, "manager_7".into(), Some(20)));
        let failed = Err(Failure::new(ErrorKind::Timeout, "slow"));
        assert_eq!(plain_text(&failed), (503, "timeout".into(), None));
        let json: Value =
            serde_json::from_str(&rejection_json("bad-request", "call field `x`")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"kind": "bad-request", "message": "call field `x`"}})
        );
    }
}
