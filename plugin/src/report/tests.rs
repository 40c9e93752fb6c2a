use super::*;
use crate::answer::RawAnswer;
use crate::routing::InHand;
use crate::scheme::Endpoint;

const ANSWERED: &str = r#"{"call_id":"pkv","status":"answered","answered_by":"manager_7",
    "ring_secs":4,"talk_secs":"62","hangup_cause":"BYE","decision":"9f0c1d2e",
    "caller":"+380501112233","callee":"380441234567","vars":{"queue":"sales","n":3}}"#;

fn answered() -> Outcome {
    Outcome::from_json(ANSWERED).unwrap()
}

fn delivery() -> Delivery {
    Delivery {
        report_id: "0123456789abcdef0123456789abcdef".into(),
        attempt: 3,
    }
}

/// Report `outcome` under `pairs` to a CRM answering `status`: the result and the request sent.
fn send(
    pairs: &[(&str, &str)],
    outcome: &Outcome,
    status: u16,
) -> (Result<(), RouteError>, Vec<(String, Request)>) {
    let mut sent = Vec::new();
    let mut transport = InHand {
        inspect: |endpoint: &Endpoint, request: &Request| {
            sent.push((endpoint.redacted(), request.clone()))
        },
        answer: Ok(RawAnswer {
            status,
            body: b"ok".to_vec(),
        }),
    };
    let result = report(pairs.iter().copied(), outcome, &delivery(), &mut transport);
    (result, sent)
}

const SCHEME: [(&str, &str); 2] = [
    ("url", "http://crm.example.com/route"),
    (
        "outcome_url",
        "https://crm.example.com/calls/outcome?key=k1",
    ),
];

#[test]
fn reads_the_documented_form_and_writes_it_back() {
    let outcome = answered();
    assert_eq!(outcome.call_id, "pkv");
    assert_eq!(outcome.status, CallStatus::Answered);
    assert_eq!(outcome.answered_by.as_deref(), Some("manager_7"));
    assert_eq!((outcome.ring_secs, outcome.talk_secs), (4, 62));
    assert_eq!(outcome.decision.as_deref(), Some("9f0c1d2e"));
    assert_eq!(
        outcome.vars,
        [("queue".into(), "sales".into()), ("n".into(), "3".into())]
    );
    assert_eq!(Outcome::from_json(&outcome.to_json()), Ok(outcome));
    // The least a platform sends.
    let least = Outcome::from_json(r#"{"call_id":"c1","status":"no-answer"}"#).unwrap();
    assert_eq!((least.ring_secs, least.talk_secs), (0, 0));
    assert_eq!(least.answered_by, None);
    assert_eq!(Outcome::from_json(&least.to_json()), Ok(least));
}

#[test]
fn every_status_is_spelled_as_the_readme_spells_it() {
    for status in CallStatus::ALL {
        assert_eq!(status.as_str().parse(), Ok(status));
    }
    assert_eq!("no-answer".parse::<CallStatus>(), Ok(CallStatus::NoAnswer));
    assert!("noanswer".parse::<CallStatus>().is_err());
}

#[test]
fn bad_input_names_its_field() {
    for (json, field, says) in [
        (r#"{"status":"busy"}"#, "call_id", "required"),
        (r#"{"call_id":"","status":"busy"}"#, "call_id", "required"),
        (r#"{"call_id":"c"}"#, "status", "required"),
        (
            r#"{"call_id":"c","status":"ok"}"#,
            "status",
            "answered, no-answer",
        ),
        (r#"{"call_id":"c","status":1}"#, "status", "string"),
        (
            r#"{"call_id":"c","status":"answered"}"#,
            "answered_by",
            "required when",
        ),
        (
            r#"{"call_id":"c","status":"busy","talk_secs":-1}"#,
            "talk_secs",
            "whole number",
        ),
        (
            r#"{"call_id":"c","status":"busy","ring_secs":1.5}"#,
            "ring_secs",
            "whole number",
        ),
        (
            r#"{"call_id":"c","status":"busy","ring_secs":999999999}"#,
            "ring_secs",
            "604800",
        ),
        (
            r#"{"call_id":"c","status":"busy","talk_sec":1}"#,
            "talk_sec",
            "unknown field",
        ),
        (
            r#"{"call_id":"c","status":"busy","decision":"a\r\nX: y"}"#,
            "decision",
            "letters",
        ),
        (
            r#"{"call_id":"c","status":"busy","vars":{"q":[1]}}"#,
            "vars.q",
            "string",
        ),
        (
            r#"{"call_id":"c","status":"busy","status":"busy"}"#,
            "status",
            "more than once",
        ),
        ("[]", "(top level)", "object"),
    ] {
        let error = Outcome::from_json(json).unwrap_err().to_string();
        assert!(
            error.contains(&format!("`{field}`")) && error.contains(says),
            "{json}: {error}"
        );
    }
    assert!(matches!(
        Outcome::from_json("{"),
        Err(OutcomeError::Syntax(_))
    ));
}

#[test]
fn by_default_a_report_posts_every_value_as_json() {
    let (result, sent) = send(&SCHEME, &answered(), 202);
    assert_eq!(result, Ok(()));
    let [(url, request)] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(url, "https://crm.example.com:443/calls/outcome");
    assert_eq!(request.method, crate::scheme::Method::Post);
    assert_eq!(request.path_and_query, "/calls/outcome?key=k1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"call_id":"pkv","status":"answered","answered_by":"manager_7","ring_secs":"4","talk_secs":"62","hangup_cause":"BYE","decision":"9f0c1d2e","caller":"+380501112233","callee":"380441234567","queue":"sales","n":"3"}"#
    );
    // Stamped with the delivery, the decision beside it; unsigned without a secret.
    assert_eq!(
        request.header(request::IDEMPOTENCY_KEY_HEADER),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(request.header(request::ATTEMPT_HEADER), Some("3"));
    assert_eq!(request.header(request::DECISION_HEADER), Some("9f0c1d2e"));
    assert_eq!(request.header(request::SIGNATURE_HEADER), None);
}

#[test]
fn outcome_params_headers_and_signatures_as_routing_has_them() {
    let mut pairs = SCHEME.to_vec();
    pairs.extend([
        ("outcome_method", "GET"),
        ("outcome_submission", "http"),
        ("outcome_params.id", "{call_id}"),
        (
            "outcome_params.result",
            "{status}/{talk_secs}s by {answered_by}",
        ),
        ("outcome_params.key", "{report_id}"),
        ("outcome_params.q", "{queue}{missing}"),
        ("headers.Authorization", "Bearer t0k"),
        ("signing_secret", "s3cret"),
        // Routing's parameters are not the report's.
        ("params.ignored", "{caller}"),
    ]);
    let outcome = Outcome {
        decision: None,
        ..answered()
    };
    let (result, sent) = send(&pairs, &outcome, 200);
    assert_eq!(result, Ok(()));
    let request = &sent[0].1;
    assert_eq!(request.method, crate::scheme::Method::Get);
    let query =
        "id=pkv&key=0123456789abcdef0123456789abcdef&q=sales&result=answered%2F62s+by+manager_7";
    assert_eq!(
        request.path_and_query,
        format!("/calls/outcome?key=k1&{query}")
    );
    assert!(request.body.is_empty());
    assert_eq!(request.header("authorization"), Some("Bearer t0k"));
    assert_eq!(request.header(request::DECISION_HEADER), None);
    // Signed over the query, the stamp being the delivery's.
    let signature = request.header(request::SIGNATURE_HEADER).unwrap();
    let payload = format!("key=k1&{query}");
    let v2 = request::signature(
        "s3cret",
        0,
        &[b"0123456789abcdef0123456789abcdef.3..", payload.as_bytes()],
    );
    assert!(signature.contains(&format!("v2={v2}")), "{signature}");
}

#[test]
fn a_json_rpc_report_names_its_method_and_report() {
    let mut pairs = SCHEME.to_vec();
    pairs.extend([
        ("outcome_submission", "json-rpc"),
        ("outcome_params.status", "{status}"),
    ]);
    let (_, sent) = send(&pairs, &answered(), 200);
    assert_eq!(
        std::str::from_utf8(&sent[0].1.body).unwrap(),
        r#"{"jsonrpc":"2.0","method":"outcome","params":{"status":"answered"},"id":"0123456789abcdef0123456789abcdef"}"#
    );
}

#[test]
fn a_crm_that_does_not_take_it_is_an_error_to_retry() {
    let (result, _) = send(&SCHEME, &answered(), 503);
    assert_eq!(
        result.unwrap_err(),
        RouteError::HttpStatus {
            status: 503,
            message: "the CRM answered 503 Service Unavailable".into()
        }
    );
    let mut transport = InHand {
        inspect: |_: &Endpoint, _: &Request| {},
        answer: Err(RouteError::Timeout("no answer".into())),
    };
    let result = report(SCHEME, &answered(), &delivery(), &mut transport);
    assert_eq!(result, Err(RouteError::Timeout("no answer".into())));
}

#[test]
fn without_outcome_url_nothing_is_sent() {
    let (result, sent) = send(&SCHEME[..1], &answered(), 200);
    let error = result.unwrap_err();
    assert_eq!(error.kind(), crate::error::ErrorKind::Config);
    assert!(error.to_string().contains("`outcome_url`"), "{error}");
    assert!(sent.is_empty());
    // The report's fields without the URL are a scheme error that names it.
    let error = Scheme::from_pairs([SCHEME[0], ("outcome_params.x", "{status}")]).unwrap_err();
    assert!(
        error.to_string().contains("`outcome_url` is required"),
        "{error}"
    );
    // An outcome a host forwards unchecked is checked again.
    let unanswered = Outcome {
        answered_by: None,
        ..answered()
    };
    let (result, sent) = send(&SCHEME, &unanswered, 200);
    assert!(result.unwrap_err().to_string().contains("`answered_by`"));
    assert!(sent.is_empty());
}

#[test]
fn report_ids_differ_by_outcome_time_and_salt() {
    let at = Duration::from_secs(1_700_000_000);
    let id = report_id(&answered(), at, b"a");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(id, report_id(&answered(), at, b"a"));
    assert_ne!(id, report_id(&answered(), at, b"b"));
    assert_ne!(
        id,
        report_id(&answered(), at + Duration::from_nanos(1), b"a")
    );
    let busy = Outcome {
        status: CallStatus::Busy,
        ..answered()
    };
    assert_ne!(id, report_id(&busy, at, b"a"));
}
