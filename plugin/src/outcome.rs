//! The outcome of routing one call, as JSON: the one format that `callroute route` prints,
//! `callroute serve` answers, and the component's own `wasi:http` handler answers; and the
//! whole HTTP answer those two front ends give ([`http_answer`], [`http_rejection`]), so they
//! answer alike by construction.
//!
//! ```json
//! {"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"destinations":[{"kind":"phone","target":"380123456789","ring_timeout_secs":30}],"strategy":"serial","source":"crm","elapsed_ms":12}
//! {"outcome":"fallback","destination":{"kind":"sip","target":"reception","ring_timeout_secs":30},"destinations":[…],"strategy":"serial","error":{"kind":"timeout","message":"…"},"elapsed_ms":5003}
//! {"outcome":"failed","error":{"kind":"http-status","message":"the CRM answered 503 Service Unavailable","status":503},"elapsed_ms":7}
//! ```
//!
//! Keys come in the documented order. `destination` is the first of `destinations` (what a
//! client that rings one target needs); `source` says where they come from ([`source_name`]); `refused` (`[{"value","reason"}]`, the CRM's
//! destinations left out) appears only when there are some, and `status` only for
//! `http-status`.

use crate::call::RequestError;
use crate::destination::{Destination, Refused, Target};
use crate::error::Failure;
use crate::json::Object;
use crate::routing::Routing;

/// Where a routing's destinations come from: `"crm"`, `"memory"` (where the CRM last routed
/// this caller, because the CRMs failed) or `"fallback"` (the scheme's static fallback).
pub fn source_name(routing: &Routing) -> &'static str {
    match (routing.remembered, &routing.fallback_cause) {
        (true, _) => "memory",
        (false, Some(_)) => "fallback",
        (false, None) => "crm",
    }
}

/// [`ROUTE_SOURCE_HEADER`] for a routing the CRM did not make (`fallback`, `memory`).
fn source_header(routing: &Routing) -> Option<(&'static str, String)> {
    routing
        .fallback_cause
        .is_some()
        .then(|| (ROUTE_SOURCE_HEADER, source_name(routing).to_owned()))
}

/// `"routed"`, `"fallback"` or `"failed"`: a call routed by what the host remembered is a
/// `"fallback"` too (the CRM did not route it), with `source` `"memory"`.
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

fn refused_json(r: &Refused) -> Object {
    Object::new()
        .string("value", &r.value)
        .string("reason", &r.reason)
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
            json = json
                .object("destination", destination_json(r.first()))
                .array("destinations", r.destinations.iter().map(destination_json))
                .string("strategy", r.strategy.as_str())
                .string("source", source_name(r));
            if let Some(decision) = &r.decision {
                json = json.string("decision", decision);
            }
            if !r.refused.is_empty() {
                json = json.array("refused", r.refused.iter().map(refused_json));
            }
            if let Some(cause) = &r.fallback_cause {
                json = json.object("error", error_json(cause));
            }
        }
        Err(e) => json = json.object("error", error_json(e)),
    }
    json.number("elapsed_ms", elapsed_ms).finish()
}

/// What an HTTP front end answers: status, content type, body, and the headers of a
/// plain-text answer ([`plain_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Further headers, names in lower case.
    pub headers: Vec<(&'static str, String)>,
}

/// A plain-text answer's header: how long the target rings, in seconds.
pub const RING_TIMEOUT_HEADER: &str = "x-ring-timeout";
/// A plain-text answer's header: the destinations after the first, in order, comma-separated
/// (none of them can hold a comma): `102, sip:lead@pbx.example.com;transport=tls`.
pub const NEXT_DESTINATIONS_HEADER: &str = "x-next-destinations";
/// A plain-text answer's header: the ring times of [`NEXT_DESTINATIONS_HEADER`]'s, in the
/// same order, in seconds: `20, 30`.
pub const NEXT_RING_TIMEOUTS_HEADER: &str = "x-next-ring-timeouts";
/// A plain-text answer's header: how the destinations are rung, `serial` or `parallel`.
pub const RING_STRATEGY_HEADER: &str = "x-ring-strategy";
/// A plain-text answer's header, when the CRM did not route the call: where the destination
/// comes from, `fallback` or `memory` ([`source_name`]).
pub const ROUTE_SOURCE_HEADER: &str = "x-route-source";
/// A plain-text or rtjson answer's header: the routing decision's id ([`Routing::decision`]),
/// to pass back with the call's outcome.
pub const DECISION_HEADER: &str = crate::request::DECISION_HEADER;

/// The `Content-Type` of JSON answers.
pub const JSON: &str = "application/json";
/// The `Content-Type` of plain-text answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The `Accept` (and `Content-Type`) of Kamailio's `rtjson` routing documents.
pub const RTJSON: &str = "application/vnd.kamailio.rtjson+json";
/// The request header naming where an rtjson answer dials phone numbers and bare logins: a
/// PBX or gateway, `host[:port]`.
pub const SIP_DOMAIN_HEADER: &str = "x-sip-domain";

/// How a front end answers a routing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The outcome JSON (the default).
    Json,
    /// The [`plain_text`] answer.
    Text,
    /// Kamailio's rtjson document ([`rtjson`]), phone numbers and bare logins dialled at
    /// `sip_domain`.
    Rtjson {
        /// `host[:port]`, valid in a SIP URI.
        sip_domain: String,
    },
}

/// The format a request asks for: the first of `text/plain`, `application/json` and
/// [`RTJSON`] among its `Accept` values (JSON when none is). An rtjson request must say in
/// [`SIP_DOMAIN_HEADER`] where numbers are dialled; without a usable one it is refused before
/// anything is routed, naming what is wrong.
pub fn requested_format<'a>(
    accept: impl IntoIterator<Item = &'a str>,
    sip_domain: Option<&str>,
) -> Result<Format, RequestError> {
    let wanted = accept
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .find(|v| {
            ["text/plain", JSON, RTJSON]
                .iter()
                .any(|known| v.eq_ignore_ascii_case(known))
        });
    match wanted {
        Some(v) if v.eq_ignore_ascii_case("text/plain") => Ok(Format::Text),
        Some(v) if v.eq_ignore_ascii_case(RTJSON) => {
            let domain = sip_domain.map(str::trim).unwrap_or_default();
            let usable = !domain.is_empty()
                && matches!(
                    Target::parse(&format!("sip:x@{domain}")),
                    Ok(Target::Sip(_))
                );
            if !usable {
                return Err(RequestError {
                    status: 400,
                    message: format!(
                        "an rtjson answer needs the header X-Sip-Domain: host[:port], where phone \
                         numbers and logins are dialled (got `{}`)",
                        crate::error::excerpt(domain, 64)
                    ),
                });
            }
            Ok(Format::Rtjson {
                sip_domain: domain.to_owned(),
            })
        }
        _ => Ok(Format::Json),
    }
}

/// The answer to a routing request, in the `format` it asked for: the outcome JSON with 200
/// whatever the outcome (so a PBX can tell "CRM down" from "our bug"), the [`plain_text`]
/// answer, or the [`rtjson`] document.
pub fn http_answer(
    result: &Result<Routing, Failure>,
    elapsed_ms: u64,
    format: &Format,
) -> HttpAnswer {
    match format {
        Format::Text => plain_text(result),
        Format::Rtjson { sip_domain } => rtjson(result, sip_domain),
        Format::Json => HttpAnswer {
            status: 200,
            content_type: JSON,
            body: to_json(result, elapsed_ms),
            headers: Vec::new(),
        },
    }
}

/// Longest a route of an rtjson document waits for a first reply (a dead target gives up
/// sooner than its ring time), in milliseconds.
const RTJSON_FIRST_REPLY_MS: u32 = 5000;

/// The rtjson document Kamailio's `rtjson` module rings (`rtjson_init_routes`,
/// `rtjson_push_routes`, `rtjson_next_route`): `routing` is the strategy, each route's `uri`
/// its target ([`sip_uri`]), `fr_inv_timer` its ring time and `fr_timer` how long it may take
/// to reply at all, in milliseconds. The same two timers at the top are the largest of the
/// routes' (rtjson applies a route's own timers in serial routing only; a proxy sets these
/// for a parallel one). A failed call is `503` with the error kind, as in [`plain_text`].
pub fn rtjson(result: &Result<Routing, Failure>, sip_domain: &str) -> HttpAnswer {
    let Ok(routing) = result else {
        return plain_text(result);
    };
    let timers = |d: &Destination| {
        let ring_ms = d.ring_timeout_secs.saturating_mul(1000);
        (ring_ms.min(RTJSON_FIRST_REPLY_MS), ring_ms)
    };
    let (fr, fr_inv) = routing
        .destinations
        .iter()
        .map(timers)
        .fold((0, 0), |(a, b), (fr, fr_inv)| (a.max(fr), b.max(fr_inv)));
    let routes = routing.destinations.iter().map(|d| {
        let (fr, fr_inv) = timers(d);
        Object::new()
            .string("uri", &sip_uri(&d.target, sip_domain))
            .number("fr_timer", fr)
            .number("fr_inv_timer", fr_inv)
    });
    let mut body = Object::new()
        .string("version", "1.0")
        .string("routing", routing.strategy.as_str())
        .number("fr_timer", fr)
        .number("fr_inv_timer", fr_inv)
        .array("routes", routes);
    // In the document too: a proxy's HTTP client may not show it the headers (Kamailio's
    // `http_client` does not); rtjson leaves fields it does not know alone.
    if let Some(decision) = &routing.decision {
        body = body.string("decision", decision);
    }
    let body = body.finish();
    // As in plain text: a proxy can tell a route the CRM did not make.
    let headers = source_header(routing)
        .into_iter()
        .chain(decision_header(routing))
        .collect();
    HttpAnswer {
        status: 200,
        content_type: RTJSON,
        body,
        headers,
    }
}

/// A target as a SIP URI: a `sip:`/`sips:` URI as it is, `user@host` with `sip:` before it,
/// and a phone number or a bare login at `sip_domain` (`sip:101@pbx.example.com`).
pub fn sip_uri(target: &Target, sip_domain: &str) -> String {
    match target {
        Target::Phone(number) => format!("sip:{number}@{sip_domain}"),
        Target::Sip(address) => {
            let lower = address.get(..5).unwrap_or_default().to_ascii_lowercase();
            if lower.starts_with("sip:") || lower.starts_with("sips:") {
                address.clone()
            } else if address.contains('@') {
                format!("sip:{address}")
            } else {
                format!("sip:{address}@{sip_domain}")
            }
        }
    }
}

/// [`DECISION_HEADER`], when the routing has a decision id.
fn decision_header(routing: &Routing) -> Option<(&'static str, String)> {
    routing
        .decision
        .as_ref()
        .map(|decision| (DECISION_HEADER, decision.clone()))
}

/// The answer to a request that is not routed at all (malformed, unknown scheme, a loop):
/// `status` with `{"error":{"kind":…,"message":…}}`.
pub fn http_rejection(status: u16, kind: &str, message: &str) -> HttpAnswer {
    HttpAnswer {
        status,
        content_type: JSON,
        body: rejection_json(kind, message),
        headers: Vec::new(),
    }
}

/// The plain-text answer ([`Format::Text`]). A routed call (or its fallback)
/// is `200` with the first target bare, so the simplest PBX script can dial it, its ring time
/// in [`RING_TIMEOUT_HEADER`], and, when there are more, the rest in
/// [`NEXT_DESTINATIONS_HEADER`] and the strategy in [`RING_STRATEGY_HEADER`]; a failed call is
/// `503` with the error kind.
pub fn plain_text(result: &Result<Routing, Failure>) -> HttpAnswer {
    match result {
        Ok(r) => {
            let first = r.first();
            let mut headers = vec![(RING_TIMEOUT_HEADER, first.ring_timeout_secs.to_string())];
            if r.destinations.len() > 1 {
                let next = &r.destinations[1..];
                let targets: Vec<&str> = next.iter().map(|d| d.target.value()).collect();
                let rings: Vec<String> = next
                    .iter()
                    .map(|d| d.ring_timeout_secs.to_string())
                    .collect();
                headers.push((NEXT_DESTINATIONS_HEADER, targets.join(", ")));
                headers.push((NEXT_RING_TIMEOUTS_HEADER, rings.join(", ")));
                headers.push((RING_STRATEGY_HEADER, r.strategy.as_str().to_owned()));
            }
            headers.extend(source_header(r));
            headers.extend(decision_header(r));
            HttpAnswer {
                status: 200,
                content_type: TEXT,
                body: first.target.value().to_owned(),
                headers,
            }
        }
        Err(e) => HttpAnswer {
            status: 503,
            content_type: TEXT,
            body: e.kind.as_str().to_owned(),
            headers: Vec::new(),
        },
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
    use crate::destination::{RingStrategy, Target};
    use crate::error::{ErrorKind, RouteError};
    use serde_json::Value;

    /// The CRM's routing to `targets`, rung in turn: the static fallback's shape, without its
    /// cause.
    fn routed(targets: &[Target], ring_timeout_secs: u32) -> Result<Routing, Failure> {
        let unused = Failure::new(ErrorKind::Timeout, "");
        let mut routing = Routing::fallback(targets, ring_timeout_secs, unused)?;
        routing.fallback_cause = None;
        Ok(routing)
    }

    #[test]
    fn json_matches_the_contract() {
        let routed = routed(&[Target::Phone("380123456789".into())], 30);
        assert_eq!(
            to_json(&routed, 12),
            r#"{"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"destinations":[{"kind":"phone","target":"380123456789","ring_timeout_secs":30}],"strategy":"serial","source":"crm","elapsed_ms":12}"#
        );
        let mut group = routed_group();
        if let Ok(r) = &mut group {
            r.strategy = RingStrategy::Parallel;
            r.refused.push(Refused::new("x!", "not a number"));
        }
        assert_eq!(
            to_json(&group, 3),
            r#"{"outcome":"routed","destination":{"kind":"phone","target":"101","ring_timeout_secs":20},"destinations":[{"kind":"phone","target":"101","ring_timeout_secs":20},{"kind":"sip","target":"manager_7","ring_timeout_secs":20}],"strategy":"parallel","source":"crm","refused":[{"value":"x!","reason":"not a number"}],"elapsed_ms":3}"#
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
            r#"{"outcome":"fallback","destination":{"kind":"sip","target":"reception","ring_timeout_secs":20},"destinations":[{"kind":"sip","target":"reception","ring_timeout_secs":20},{"kind":"phone","target":"101","ring_timeout_secs":20}],"strategy":"serial","source":"fallback","error":{"kind":"timeout","message":"slow"},"elapsed_ms":5003}"#
        );
        assert_eq!(outcome_name(&fallback), "fallback");
        let trap = Err(Failure::new(ErrorKind::Trap, "said \"no\"\n"));
        let json: Value = serde_json::from_str(&to_json(&trap, 5001)).unwrap();
        assert_eq!(json["error"]["message"], "said \"no\"\n");
        assert_eq!(json["error"]["kind"], "trap");
        assert!(json["error"].get("status").is_none());
        assert_eq!(json["elapsed_ms"], 5001);
    }

    fn routed_group() -> Result<Routing, Failure> {
        routed(
            &[Target::Phone("101".into()), Target::Sip("manager_7".into())],
            20,
        )
    }

    #[test]
    fn both_front_ends_answer_alike() {
        let routed = routed(&[Target::Phone("380123456789".into())], 25);
        assert_eq!(
            http_answer(&routed, 9, &Format::Text),
            HttpAnswer {
                status: 200,
                content_type: TEXT,
                body: "380123456789".into(),
                headers: vec![(RING_TIMEOUT_HEADER, "25".into())],
            }
        );
        let json = http_answer(&routed, 9, &Format::Json);
        assert_eq!((json.status, json.content_type), (200, JSON));
        assert_eq!(json.body, to_json(&routed, 9));
        assert!(json.headers.is_empty());
        // Several: the first bare, the rest and the strategy in headers.
        assert_eq!(
            http_answer(&routed_group(), 9, &Format::Text).headers,
            vec![
                (RING_TIMEOUT_HEADER, "20".into()),
                (NEXT_DESTINATIONS_HEADER, "manager_7".into()),
                (NEXT_RING_TIMEOUTS_HEADER, "20".into()),
                (RING_STRATEGY_HEADER, "serial".into()),
            ]
        );
        let failed = Err(Failure::new(ErrorKind::Transport, "down"));
        assert_eq!(
            (
                http_answer(&failed, 1, &Format::Json).status,
                http_answer(&failed, 1, &Format::Text).status
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
        let format = |accept: &[&str]| requested_format(accept.iter().copied(), None).unwrap();
        assert_eq!(format(&["text/plain"]), Format::Text);
        assert_eq!(
            format(&["text/plain;q=0.9, application/json;q=0.5"]),
            Format::Text
        );
        assert_eq!(format(&["text/html", "TEXT/PLAIN"]), Format::Text);
        assert_eq!(format(&["application/json, text/plain"]), Format::Json);
        assert_eq!(format(&["*/*"]), Format::Json);
        assert_eq!(format(&[]), Format::Json);
        // rtjson needs a domain to dial numbers at, and a valid one.
        let rtjson = |domain| requested_format([RTJSON], domain);
        assert_eq!(
            rtjson(Some("pbx.example.com:5080")),
            Ok(Format::Rtjson {
                sip_domain: "pbx.example.com:5080".into()
            })
        );
        for bad in [
            None,
            Some(""),
            Some("pbx.example.com>;evil"),
            Some("a b"),
            Some("x@y"),
        ] {
            let error = rtjson(bad).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains("X-Sip-Domain"), "{}", error.message);
        }
    }

    #[test]
    fn rtjson_documents_for_kamailio() {
        let mut group = routed(
            &[
                Target::Phone("+380441234567".into()),
                Target::Sip("manager_7".into()),
                Target::Sip("alice@pbx.example.com".into()),
                Target::Sip("sips:lead@pbx.example.com".into()),
            ],
            20,
        );
        if let Ok(r) = &mut group {
            r.strategy = RingStrategy::Parallel;
            r.destinations[0].ring_timeout_secs = 3;
        }
        let answer = rtjson(&group, "gw.example.com");
        assert_eq!((answer.status, answer.content_type), (200, RTJSON));
        assert_eq!(
            answer.body,
            r#"{"version":"1.0","routing":"parallel","fr_timer":5000,"fr_inv_timer":20000,"routes":[{"uri":"sip:+380441234567@gw.example.com","fr_timer":3000,"fr_inv_timer":3000},{"uri":"sip:manager_7@gw.example.com","fr_timer":5000,"fr_inv_timer":20000},{"uri":"sip:alice@pbx.example.com","fr_timer":5000,"fr_inv_timer":20000},{"uri":"sips:lead@pbx.example.com","fr_timer":5000,"fr_inv_timer":20000}]}"#
        );
        let failed = Err(Failure::new(ErrorKind::Timeout, "slow"));
        let answer = rtjson(&failed, "gw.example.com");
        assert_eq!((answer.status, answer.body.as_str()), (503, "timeout"));
    }

    #[test]
    fn every_format_carries_the_decision_id() {
        let mut routed = routed(&[Target::Sip("manager_7".into())], 20);
        if let Ok(r) = &mut routed {
            r.decision = Some("9f0c1d2e".into());
        }
        let json: Value = serde_json::from_str(&to_json(&routed, 1)).unwrap();
        assert_eq!(json["decision"], "9f0c1d2e");
        let header = (DECISION_HEADER, "9f0c1d2e".to_owned());
        assert!(plain_text(&routed).headers.contains(&header));
        let answer = rtjson(&routed, "gw.example.com");
        assert!(answer.headers.contains(&header));
        let document: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(document["decision"], "9f0c1d2e");
        // None to give: none shown.
        let without = self::routed(&[Target::Sip("manager_7".into())], 20);
        assert!(!to_json(&without, 1).contains("decision"));
        assert!(
            plain_text(&without)
                .headers
                .iter()
                .all(|(n, _)| *n != DECISION_HEADER)
        );
    }

    #[test]
    fn plain_text_and_rejections() {
        let routed = routed(&[Target::Sip("manager_7".into())], 20);
        let answer = plain_text(&routed);
        assert_eq!((answer.status, answer.body.as_str()), (200, "manager_7"));
        let failed = Err(Failure::new(ErrorKind::Timeout, "slow"));
        let answer = plain_text(&failed);
        assert_eq!((answer.status, answer.body.as_str()), (503, "timeout"));
        assert!(answer.headers.is_empty());
        let json: Value =
            serde_json::from_str(&rejection_json("bad-request", "call field `x`")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"kind": "bad-request", "message": "call field `x`"}})
        );
    }
}
