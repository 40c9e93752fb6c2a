//! Reading CRM answers, form by form.

use super::*;
use crate::error::ErrorKind;

fn scheme(import: &str, field: Option<&str>) -> Scheme {
    scheme_with(import, field, &[])
}

fn scheme_with(import: &str, field: Option<&str>, extra: &[(&str, &str)]) -> Scheme {
    let mut pairs = vec![
        ("url", "http://crm/"),
        ("import", import),
        ("jsonrpc_method", "route"),
        ("ring_timeout_secs", "25"),
    ];
    if let Some(field) = field {
        pairs.push(("destination_field", field));
    }
    pairs.extend_from_slice(extra);
    Scheme::from_pairs(pairs).unwrap()
}

fn call() -> Call {
    Call {
        call_id: "c-1".into(),
        ..Call::default()
    }
}

fn read_as(
    import: &str,
    field: Option<&str>,
    status: u16,
    body: &str,
) -> Result<Answered, RouteError> {
    read(
        &scheme(import, field),
        &call(),
        &RawAnswer {
            status,
            body: body.as_bytes().to_vec(),
        },
    )
}

fn target(r: Result<Answered, RouteError>) -> Target {
    let answered = r.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(answered.destinations.len(), 1, "{answered:?}");
    answered.destinations[0].target.clone()
}

fn kind(r: Result<Answered, RouteError>) -> ErrorKind {
    r.unwrap_err().kind()
}

/// The targets and ring times of a list answer, and the reasons of those refused.
fn list(scheme: &Scheme, body: &str) -> (Vec<(String, u32)>, Vec<String>) {
    let answered = read(
        scheme,
        &call(),
        &RawAnswer {
            status: 200,
            body: body.as_bytes().to_vec(),
        },
    )
    .unwrap_or_else(|e| panic!("{body}: {e}"));
    (
        answered
            .destinations
            .iter()
            .map(|d| (d.target.value().to_owned(), d.ring_timeout_secs))
            .collect(),
        answered
            .refused
            .iter()
            .map(|r| format!("{}: {}", r.value, r.reason))
            .collect(),
    )
}

#[test]
fn the_seed_examples() {
    let d = read_as(
        "json",
        Some("number_01"),
        200,
        r#"{"number_01":"3 80123456789"}"#,
    )
    .unwrap()
    .destinations
    .remove(0);
    assert_eq!(d.target, Target::Phone("380123456789".into()));
    assert_eq!(d.ring_timeout_secs, 25);
    assert_eq!(
        target(read_as("http", None, 200, "380123456789\n")),
        Target::Phone("380123456789".into())
    );
}

#[test]
fn plain_text_answers() {
    assert_eq!(
        target(read_as("http", None, 200, "\u{feff} manager_7 ")),
        Target::Sip("manager_7".into())
    );
    assert_eq!(
        target(read_as("http", None, 200, "\"+380441234567\"")),
        Target::Phone("+380441234567".into())
    );
    assert_eq!(
        kind(read_as("http", None, 200, "  \n")),
        ErrorKind::NoDestination
    );
    assert_eq!(
        kind(read_as("http", None, 200, "\"\"")),
        ErrorKind::NoDestination
    );
    assert_eq!(
        kind(read_as("http", None, 200, "<html>error</html>")),
        ErrorKind::BadResponse
    );
}

#[test]
fn json_answers() {
    assert_eq!(
        target(read_as("json", Some("n"), 200, r#"{"n":380441234567}"#)),
        Target::Phone("380441234567".into())
    );
    assert_eq!(
        target(read_as(
            "json",
            Some("data.manager.sip"),
            200,
            r#"{"data":{"manager":{"sip":"sip:m@pbx.example.com"}}}"#
        )),
        Target::Sip("sip:m@pbx.example.com".into())
    );
    assert_eq!(
        target(read_as(
            "json",
            Some("routes.1"),
            200,
            r#"{"routes":["1","202"]}"#
        )),
        Target::Phone("202".into())
    );
    for body in [
        r#"{}"#,
        r#"{"n":null}"#,
        r#"{"n":""}"#,
        r#"{"n":"  "}"#,
        r#"null"#,
    ] {
        assert_eq!(
            kind(read_as("json", Some("n"), 200, body)),
            ErrorKind::NoDestination,
            "{body}"
        );
    }
    for body in [
        r#"{"n":true}"#,
        r#"{"n":-5}"#,
        r#"{"n":1.5}"#,
        r#"{"n":{}}"#,
        r#"{"n":["not a number!"]}"#,
        "[1,",
        "<html>",
        r#"{"n":"a\nb"}"#,
        r#""x""#,
    ] {
        assert_eq!(
            kind(read_as("json", Some("n"), 200, body)),
            ErrorKind::BadResponse,
            "{body}"
        );
    }
    let err = read_as("json", Some("a.b"), 200, r#"{"a":{}}"#).unwrap_err();
    assert!(err.to_string().contains("`a.b`"), "{err}");
}

#[test]
fn json_rpc_answers() {
    let ok = |body: &str, field| target(read_as("json-rpc", field, 200, body));
    assert_eq!(
        ok(
            r#"{"jsonrpc":"2.0","result":"380441234567","id":"c-1"}"#,
            None
        ),
        Target::Phone("380441234567".into())
    );
    assert_eq!(
        ok(r#"{"jsonrpc":"2.0","result":101,"id":null}"#, None),
        Target::Phone("101".into())
    );
    assert_eq!(
        ok(
            r#"{"jsonrpc":"2.0","result":{"manager":{"number":"3 80123456789"}},"id":"c-1"}"#,
            Some("manager.number")
        ),
        Target::Phone("380123456789".into())
    );
    let err = read_as(
        "json-rpc",
        None,
        200,
        r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"c-1"}"#,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoDestination);
    assert!(
        err.to_string().contains("-32601") && err.to_string().contains("Method not found"),
        "{err}"
    );
    assert_eq!(
        kind(read_as(
            "json-rpc",
            None,
            200,
            r#"{"jsonrpc":"2.0","result":null,"id":"c-1"}"#
        )),
        ErrorKind::NoDestination
    );
    assert_eq!(
        kind(read_as(
            "json-rpc",
            None,
            200,
            r#"{"jsonrpc":"2.0","id":"c-1"}"#
        )),
        ErrorKind::BadResponse
    );
    assert_eq!(
        kind(read_as(
            "json-rpc",
            None,
            200,
            r#"{"jsonrpc":"2.0","result":"1","id":"other"}"#
        )),
        ErrorKind::BadResponse
    );
    assert_eq!(
        kind(read_as(
            "json-rpc",
            None,
            200,
            r#"{"jsonrpc":"2.0","result":{"n":"1"},"id":"c-1"}"#
        )),
        ErrorKind::BadResponse
    );
    assert_eq!(
        kind(read_as("json-rpc", None, 200, r#"["batch"]"#)),
        ErrorKind::BadResponse
    );
    let err = read_as("json-rpc", Some("n"), 200, r#"{"result":{},"id":"c-1"}"#).unwrap_err();
    assert!(err.to_string().contains("`result.n`"), "{err}");
}

#[test]
fn lists_of_destinations_in_every_form() {
    let json = scheme("json", Some("managers"));
    // Strings and numbers, in order, each with the scheme's ring time.
    assert_eq!(
        list(
            &json,
            r#"{"managers":["380441234567", 101, "sip:team@pbx.example.com"]}"#
        ),
        (
            vec![
                ("380441234567".into(), 25),
                ("101".into(), 25),
                ("sip:team@pbx.example.com".into(), 25)
            ],
            vec![]
        )
    );
    // Objects with a target and a ring time of their own, the field names configurable.
    assert_eq!(
        list(
            &json,
            r#"{"managers":[{"target":"101","ring_timeout_secs":10},{"target":"102"}]}"#
        )
        .0,
        vec![("101".into(), 10), ("102".into(), 25)]
    );
    let named = scheme_with(
        "json",
        Some("managers"),
        &[
            ("target_field", "phone.work"),
            ("ring_timeout_field", "ring"),
        ],
    );
    assert_eq!(
        list(
            &named,
            r#"{"managers":[{"phone":{"work":"101"},"ring":"15"}]}"#
        )
        .0,
        vec![("101".into(), 15)]
    );
    // Invalid ones are left out with their reasons; the rest still ring.
    let (rung, refused) = list(
        &json,
        r#"{"managers":["101", "not a number!", null, {"target":"102","ring_timeout_secs":0}, {"name":"x"}, "103"]}"#,
    );
    assert_eq!(rung, vec![("101".into(), 25), ("103".into(), 25)]);
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused[0].starts_with("not a number!: "), "{refused:?}");
    assert!(refused[1].contains("`managers.2` is null"), "{refused:?}");
    assert!(
        refused[2].contains("`managers.3.ring_timeout_secs`"),
        "{refused:?}"
    );
    assert!(
        refused[3].contains("`managers.4.target` is missing"),
        "{refused:?}"
    );
    // At most max_destinations; the rest are refused, saying why.
    let two = scheme_with("json", Some("managers"), &[("max_destinations", "2")]);
    let (rung, refused) = list(&two, r#"{"managers":["101","102","103"]}"#);
    assert_eq!(rung.len(), 2);
    assert_eq!(
        refused,
        vec!["103: beyond max_destinations (2): the rest of the list is not rung".to_owned()]
    );
    // A JSON-RPC result array, and plain-text lines.
    let rpc = scheme("json-rpc", None);
    assert_eq!(
        list(
            &rpc,
            r#"{"jsonrpc":"2.0","result":["101","102"],"id":"c-1"}"#
        )
        .0,
        vec![("101".into(), 25), ("102".into(), 25)]
    );
    let text = scheme("http", None);
    let (rung, refused) = list(&text, "101\r\n\nmanager_7\n");
    assert_eq!(rung, vec![("101".into(), 25), ("manager_7".into(), 25)]);
    assert!(refused.is_empty());
    // Plain text with a line that is no destination is an error page, not a list.
    for page in ["ERROR\nDB down", "101\n<html>"] {
        let err = read_as("http", None, 200, page).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse, "{page}");
        assert!(err.to_string().starts_with("line 2: "), "{err}");
    }
    // The cap counts only what the allowlist lets through.
    let capped = scheme_with(
        "json",
        Some("managers"),
        &[("max_destinations", "1"), ("allowed_prefixes", "380")],
    );
    let (rung, refused) = list(
        &capped,
        r#"{"managers":["+1900555","380441234567","380441234568"]}"#,
    );
    assert_eq!(rung, vec![("380441234567".into(), 25)]);
    assert!(refused[0].contains("allowed_prefixes"), "{refused:?}");
    assert!(
        refused[1].contains("beyond max_destinations"),
        "{refused:?}"
    );
    // However long the list, the refusals listed are bounded.
    let many = format!(r#"{{"managers":["101",{}]}}"#, vec!["true"; 1000].join(","));
    let (rung, refused) = list(&json, &many);
    assert_eq!(rung.len(), 1);
    assert_eq!(refused.len(), MAX_REFUSED_LISTED + 1);
    assert_eq!(refused[MAX_REFUSED_LISTED], "…: 968 more left out");
    // None usable: no-destination when all were empty, bad-response otherwise.
    for (body, expected) in [
        (r#"{"managers":[]}"#, ErrorKind::NoDestination),
        (r#"{"managers":[null, ""]}"#, ErrorKind::NoDestination),
        (r#"{"managers":["x y", "a&b"]}"#, ErrorKind::BadResponse),
        (r#"{"managers":[true]}"#, ErrorKind::BadResponse),
    ] {
        assert_eq!(
            kind(read_as("json", Some("managers"), 200, body)),
            expected,
            "{body}"
        );
    }
    let err = read_as(
        "json",
        Some("managers"),
        200,
        r#"{"managers":["x y", "a&b"]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("none of the 2 destinations in `managers`"),
        "{err}"
    );
}

#[test]
fn statuses() {
    let err = read_as("http", None, 503, "busy").unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.to_string(), "the CRM answered 503 Service Unavailable");
    assert_eq!(
        read_as("http", None, 404, "").unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        read_as("http", None, 302, "").unwrap_err().status(),
        Some(302)
    );
    assert_eq!(
        kind(read_as("http", None, 204, "")),
        ErrorKind::NoDestination
    );
    assert_eq!(
        target(read_as("http", None, 201, "101")),
        Target::Phone("101".into())
    );
}

#[test]
fn invalid_utf8_and_deep_nesting() {
    let bad = read(
        &scheme("http", None),
        &call(),
        &RawAnswer {
            status: 200,
            body: vec![0x33, 0xff, 0xfe],
        },
    );
    assert_eq!(kind(bad), ErrorKind::BadResponse);
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        kind(read_as("json", Some("n"), 200, &deep)),
        ErrorKind::BadResponse
    );
}
