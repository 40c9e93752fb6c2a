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

fn call_with(var: &str) -> Call {
    Call::from_json(&format!(
        r#"{{"call_id":"c1","caller":"+380501112233","callee":"101","vars":{{"k":"{var}"}}}}"#
    ))
    .unwrap()
}

/// Everything a report shows.
fn shown(report: &RouteReport) -> String {
    format!(
        "{} {}",
        report.to_json(),
        serde_json::to_string(&report.attempts).unwrap()
    )
}

#[tokio::test]
async fn a_trial_tells_nothing_of_the_schemes_secrets() {
    // The CRM's sample answer quotes the guess back, so an error would quote it too.
    let plain = router(200, "101");
    let scheme = scheme(
        &plain,
        &[
            ("url", "http://127.0.0.1:9/route?key=4821"),
            ("submission", "form"),
            ("params.api_key", "LITERAL-api-key-value"),
        ],
    );
    // A real call masks the secret wherever it appears, the caller's own value included.
    let report = plain.route(&scheme, &call_with("4821")).await;
    assert!(shown(&report).contains("k=•••"), "{}", shown(&report));
    // A trial against a sample: the same whatever the guess, and no secret in it.
    let sample = |body: &str| {
        plain.for_trial(Some(CannedAnswer {
            status: 200,
            body: body.as_bytes().to_vec().into(),
        }))
    };
    let mut seen = Vec::new();
    for guess in [
        "4821",
        "4822",
        "LITERAL-api-key-value",
        "LITERAL-api-key-valuf",
    ] {
        let answer = format!("{guess} is not a destination");
        let mut report = sample(&answer).route(&scheme, &call_with(guess)).await;
        // Times differ from run to run, and so does the decision's id (a digest of the call
        // and the time); nothing else may.
        report.elapsed = std::time::Duration::ZERO;
        report.attempts.iter_mut().for_each(|a| a.elapsed_ms = 0);
        if let Ok(routing) = &mut report.result {
            assert!(routing.decision.take().is_some());
        }
        let text = shown(&report);
        assert!(text.contains(&format!("k={guess}")), "{text}");
        assert!(text.contains(&answer), "the sample as written: {text}");
        assert!(!text.contains("api_key=LITERAL"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        seen.push(text.replace(guess, "GUESS"));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    // Through the CRM the real secrets go out: the bodies, which mix them with the trial's
    // own values, are withheld; the rest is masked as for any call.
    let report = plain
        .for_trial(None)
        .route(&scheme, &call_with("4821"))
        .await;
    assert_eq!(report.attempts[0].request_body, WITHHELD_IN_A_TRIAL);
    assert!(!shown(&report).contains("4821"), "{}", shown(&report));
}
