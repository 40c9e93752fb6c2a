//! The pipeline over a canned answer: the host answers the webhook itself, after the guard,
//! so each stage is seen without a CRM.

use super::*;
use crate::outbound::CannedAnswer;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn router(status: u16, body: &str) -> Router {
    static ROUTER: std::sync::OnceLock<Router> = std::sync::OnceLock::new();
    let router = ROUTER.get_or_init(|| {
        Router::embedded(RouterConfig {
            allow_private_network: true,
            max_concurrent_calls: 8,
            ..RouterConfig::default()
        })
        .expect("the embedded component loads")
    });
    router.with_config(RouterConfig {
        allow_private_network: true,
        max_concurrent_calls: 8,
        record_exchanges: true,
        canned_answer: Some(CannedAnswer {
            status,
            body: body.as_bytes().to_vec().into(),
        }),
        ..RouterConfig::default()
    })
}

fn call(caller: &str) -> Call {
    Call::from_json(&format!(
        r#"{{"call_id":"c1","caller":"{caller}","callee":"101","vars":{{"k":"guess-4821"}}}}"#
    ))
    .unwrap()
}

const TOKEN: &str = "tok-0123456789abcdef";

fn scheme(router: &Router, extra: &[(&str, &str)]) -> PreparedScheme {
    let mut list = vec![
        ("name", "acme"),
        ("url", "http://127.0.0.1:9/route"),
        ("fallback", "100"),
        ("headers.Authorization", "Bearer tok-0123456789abcdef"),
        ("params.k", "{k}"),
    ];
    list.extend_from_slice(extra);
    router.prepare(pairs(&list))
}

#[tokio::test]
async fn routes_holds_to_the_allowlist_and_falls_back() {
    let router = router(200, "380441234567");
    let open = scheme(&router, &[]);
    let report = router.route(&open, &call("+380501112233")).await;
    assert_eq!(report.outcome(), "routed", "{:?}", report.result);
    // The allowlist refuses the CRM's answer: the scheme's fallback, saying why.
    let held = scheme(&router, &[("allowed_prefixes", "48")]);
    let report = router.route(&held, &call("+380501112233")).await;
    assert_eq!(report.outcome(), "fallback", "{}", report.to_json());
    let routing = report.result.as_ref().unwrap();
    assert_eq!(routing.destinations[0].target.value(), "100");
    assert!(
        report.to_json().contains("allowed_prefixes"),
        "{}",
        report.to_json()
    );
}

#[tokio::test]
async fn a_problem_fails_at_once_and_its_reason_is_masked() {
    let router = router(200, "101");
    let scheme = router.prepare(pairs(&[("name", "acme"), ("submission", "jso")]));
    let report = router.route(&scheme, &call("+380501112233")).await;
    let failure = report.result.unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Config);
    assert!(
        report.attempts.is_empty(),
        "no sandbox for an invalid scheme"
    );
}

#[tokio::test]
async fn every_string_of_a_report_is_masked() {
    // The CRM quotes the scheme's token and the caller in an answer the component cannot use.
    let router = router(
        200,
        r#"{"n":"Invalid key tok-0123456789abcdef for +380501112233"}"#,
    );
    let scheme = scheme(&router, &[("import", "json"), ("destination_field", "to")]);
    let report = router.route(&scheme, &call("+380501112233")).await;
    let shown = format!(
        "{} {}",
        report.to_json(),
        serde_json::to_string(&report.attempts).unwrap()
    );
    assert_eq!(report.outcome(), "fallback", "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains("380501112233"), "{shown}");
    assert!(shown.contains("+38050•••2233"), "{shown}");
    // Numbers whole when asked for.
    let report = router
        .showing_numbers(true)
        .route(&scheme, &call("+380501112233"))
        .await;
    let shown = serde_json::to_string(&report.attempts).unwrap();
    assert!(shown.contains("+380501112233"), "{shown}");
    assert!(!shown.contains(TOKEN));
}

#[tokio::test]
async fn a_trial_shows_the_operators_own_text_as_written() {
    let plain = router(200, "101");
    // The guess is a URL query value of the scheme: a real call masks it where it appears.
    let scheme = scheme(
        &plain,
        &[
            ("url", "http://127.0.0.1:9/route?key=guess-4821"),
            ("submission", "form"),
        ],
    );
    let report = plain.route(&scheme, &call("+380501112233")).await;
    let body = &report.attempts[0].request_body;
    assert!(body.contains("k=•••"), "{body}");
    // A trial gives no such signal: the operator's call variable and sample come back as
    // written, whether they equal a secret or not.
    let trial = plain.for_trial(Some(CannedAnswer {
        status: 200,
        body: b"guess-4821".to_vec().into(),
    }));
    let report = trial.route(&scheme, &call("+380501112233")).await;
    let attempt = &report.attempts[0];
    assert!(attempt.request_body.contains("k=guess-4821"), "{attempt:?}");
    assert_eq!(attempt.answer, "guess-4821");
    // What the scheme itself sends stays masked.
    assert!(!attempt.request_body.contains(TOKEN));
}
