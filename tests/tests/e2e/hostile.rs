//! A misbehaving component: every crash is a typed error, and the harness keeps serving.

use callroute_tests::*;
use std::time::Duration;

async fn behave(behaviour: &str, timeout: &str) -> callroute_host::RouteReport {
    behave_with(behaviour, &[("response_timeout_secs", timeout)]).await
}

async fn behave_with(behaviour: &str, extra: &[(&str, &str)]) -> callroute_host::RouteReport {
    let mut pairs = vec![("url", "http://127.0.0.1:9/"), ("behaviour", behaviour)];
    pairs.extend_from_slice(extra);
    hostile_router().route(&scheme(&pairs), &seed_call()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_component_is_a_trap_with_its_message() {
    let report = behave("crash-by-panic", "2").await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Trap);
    assert!(error.message.contains("panicked on purpose"), "{error}");
    assert_one_line(&error.message);
    // The same loaded component keeps routing.
    assert_eq!(
        routed(&behave("behave", "2").await).0,
        Target::Phone("380123456789".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_instruction_is_a_trap() {
    let error = failed(&behave("crash-by-trap", "2").await).clone();
    assert_eq!(error.kind, ErrorKind::Trap);
    assert!(error.message.contains("unreachable"), "{error}");
    assert_one_line(&error.message);
}

/// A trap's message is one line in the JSON and the logs; its wasm backtrace goes to the
/// debug log only.
fn assert_one_line(message: &str) {
    assert!(
        !message.contains('\n') && !message.contains("backtrace") && !message.contains("BACKTRACE"),
        "{message}"
    );
}

/// The CPU budget counts the time the component runs: a spinning one is stopped by it (200
/// ms), long before its 2 s deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_component_is_stopped_by_its_cpu_budget() {
    let report = behave("loop", "2").await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Trap, "{error}");
    assert!(error.message.contains("CPU budget of 200 ms"), "{error}");
    assert_one_line(&error.message);
    assert_within(&report, Duration::from_millis(1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_allocates_without_end_hits_the_memory_limit() {
    let report = behave("alloc", "5").await;
    assert_eq!(failed(&report).kind, ErrorKind::Trap);
    assert_one_line(&failed(&report).message);
    assert_eq!(
        routed(&behave("behave", "2").await).0,
        Target::Phone("380123456789".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_component_is_stopped_at_the_deadline() {
    let report = behave("loop", "0.3").await;
    let error = failed(&report);
    assert!(
        matches!(error.kind, ErrorKind::Timeout | ErrorKind::Trap),
        "{error}"
    );
    assert_within(&report, Duration::from_millis(800));
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_destinations_are_refused_by_the_host() {
    for behaviour in ["inject", "mislabel"] {
        let error = failed(&behave(behaviour, "2").await).clone();
        assert_eq!(error.kind, ErrorKind::BadResponse, "{behaviour}: {error}");
    }
}

/// The host holds a component to the scheme's allowlist itself: a component that ignores
/// `allowed_prefixes` gets the scheme's fallback, not a premium line.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_cannot_route_outside_the_allowlist() {
    let allowlist = ("allowed_prefixes", "380");
    let report = behave_with("premium", &[allowlist, ("fallback", "reception")]).await;
    let routing = fell_back(&report);
    assert_eq!(routing.first().target, Target::Sip("reception".into()));
    let cause = routing.fallback_cause.as_ref().unwrap();
    assert_eq!(cause.kind, ErrorKind::BadResponse, "{cause}");
    assert!(
        cause.message.contains("outside allowed_prefixes"),
        "{cause}"
    );

    let error = failed(&behave_with("premium", &[allowlist]).await).clone();
    assert_eq!(error.kind, ErrorKind::BadResponse, "{error}");
    // Inside the allowlist, or without one, the same component is routed.
    for extra in [&[allowlist][..], &[]] {
        let report = behave_with("behave", extra).await;
        assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
    }
    assert_eq!(
        routed(&behave_with("premium", &[]).await).0,
        Target::Phone("+19005550100".into())
    );

    // An allowlist the host cannot read fails the call rather than allowing everything.
    let error = failed(&behave_with("premium", &[("allowed_prefixes", "38x")]).await).clone();
    assert_eq!(error.kind, ErrorKind::Config, "{error}");
    assert!(error.message.contains("`allowed_prefixes`"), "{error}");
}

/// A decision id that would add a header to a PBX's answer is the component's to break, not
/// the host's: it is dropped, and the call is routed as the component said.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_decision_id_never_reaches_an_answer() {
    let report = behave("inject-decision", "2").await;
    let routing = report.result.as_ref().unwrap();
    assert_eq!(routing.first().target, Target::Phone("380123456789".into()));
    assert_eq!(routing.decision, None);
    let answer = callroute_plugin::outcome::plain_text(&report.result);
    assert!(
        answer.headers.iter().all(|(_, v)| !v.contains('\n')),
        "{answer:?}"
    );
    // A well-formed one is carried.
    let routing = behave("behave", "2").await.result.unwrap();
    assert_eq!(
        routing.decision.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
}

/// A component whose `report` crashes or spins is a typed failure, and the harness goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_misbehaving_report_is_a_typed_failure() {
    let outcome =
        callroute_plugin::report::Outcome::from_json(r#"{"call_id":"c1","status":"busy"}"#)
            .unwrap();
    let delivery = callroute_plugin::report::Delivery {
        report_id: "0123456789abcdef0123456789abcdef".into(),
        attempt: 1,
    };
    let report = |behaviour: &'static str| {
        let outcome = outcome.clone();
        let delivery = delivery.clone();
        async move {
            let scheme = scheme(&[
                ("url", "http://127.0.0.1:9/"),
                ("behaviour", behaviour),
                ("response_timeout_secs", "1"),
            ]);
            hostile_router().report(&scheme, &outcome, &delivery).await
        }
    };
    let crashed = report("crash-by-panic").await.result.unwrap_err();
    assert_eq!(crashed.kind, ErrorKind::Trap, "{crashed}");
    let spun = report("loop").await;
    assert!(
        matches!(
            spun.result.as_ref().unwrap_err().kind,
            ErrorKind::Trap | ErrorKind::Timeout
        ),
        "{:?}",
        spun.result
    );
    assert!(spun.elapsed < Duration::from_secs(2), "{:?}", spun.elapsed);
    assert_eq!(report("behave").await.result, Ok(()));
}
