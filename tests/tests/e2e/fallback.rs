//! Never drop a call: retries, the secondary CRM, the static fallback, the destination guard.

use callroute_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_secondary_crm_answers_when_the_primary_is_down() {
    let secondary = TestCrm::start(|_| CrmReply::html("manager_7")).unwrap();
    let report = route(
        &[
            ("url", &refused_url("/")),
            ("fallback_url", &secondary.url("/backup")),
            ("retries", "1"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(routed(&report).0, Target::Sip("manager_7".into()));
    assert_eq!(secondary.single_request().path, "/backup");
    assert_within(&report, Duration::from_millis(5500));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_is_retried_and_the_retry_routes() {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let crm = TestCrm::start(move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            CrmReply::status(502)
        } else {
            CrmReply::html("380123456789")
        }
    })
    .unwrap();
    let report = route(&[("url", &crm.url("/")), ("retries", "1")], &seed_call()).await;
    assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
    assert_eq!(crm.requests().len(), 2);
    assert_within(&report, Duration::from_millis(5500));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_primary_leaves_the_secondary_its_share_of_the_deadline() {
    let primary =
        TestCrm::start(|_| CrmReply::html("101").after(Duration::from_secs(3600))).unwrap();
    let secondary = TestCrm::start(|_| CrmReply::html("202")).unwrap();
    let report = route(
        &[
            ("url", &primary.url("/")),
            ("fallback_url", &secondary.url("/")),
            ("response_timeout_secs", "1"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(routed(&report).0, Target::Phone("202".into()));
    assert!(
        report.elapsed >= Duration::from_millis(450),
        "the primary had its half: {:?}",
        report.elapsed
    );
    assert_within(&report, Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_crm_gets_the_fallback_within_the_deadline() {
    let crm = TestCrm::start(|_| CrmReply::html("101").after(Duration::from_secs(3600))).unwrap();
    let report = route(
        &[
            ("url", &crm.url("/")),
            ("response_timeout_secs", "0.8"),
            ("fallback.0", "reception"),
            ("fallback.1", "+380441234567"),
            ("ring_timeout_secs", "25"),
        ],
        &seed_call(),
    )
    .await;
    let routing = fell_back(&report);
    assert_eq!(routing.first().target, Target::Sip("reception".into()));
    assert_eq!(routing.first().ring_timeout_secs, 25);
    assert_eq!(
        routing.destinations[1].target,
        Target::Phone("+380441234567".into())
    );
    assert_eq!(
        routing.fallback_cause.as_ref().unwrap().kind,
        ErrorKind::Timeout
    );
    assert_within(&report, Duration::from_millis(1300));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["outcome"], "fallback");
    assert_eq!(json["error"]["kind"], "timeout");
    assert_eq!(json["destinations"][1]["target"], "+380441234567");
    assert_eq!(json["strategy"], "serial");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_outside_the_allowlists_gets_the_fallback() {
    let crm = TestCrm::start(|_| CrmReply::html("+1 900 555 0100")).unwrap();
    let report = route(
        &[
            ("url", &crm.url("/")),
            ("allowed_prefixes", "+380"),
            ("fallback", "reception"),
        ],
        &seed_call(),
    )
    .await;
    let routing = fell_back(&report);
    assert_eq!(routing.first().target, Target::Sip("reception".into()));
    let cause = routing.fallback_cause.as_ref().unwrap();
    assert_eq!(cause.kind, ErrorKind::BadResponse);
    assert!(cause.message.contains("allowed_prefixes"), "{cause}");

    let crm = TestCrm::start(|_| CrmReply::html("sip:boss@evil.example.com")).unwrap();
    let report = route(
        &[
            ("url", &crm.url("/")),
            ("allowed_sip_domains", "pbx.example.com"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(
        failed(&report).kind,
        ErrorKind::BadResponse,
        "no fallback configured: refused outright"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_applies_the_fallback_when_the_component_crashes() {
    for (behaviour, kind) in [
        ("crash-by-panic", ErrorKind::Trap),
        ("fail", ErrorKind::Transport),
        ("loop", ErrorKind::Trap),
    ] {
        let pairs = [
            ("url", "http://127.0.0.1:9/"),
            ("behaviour", behaviour),
            ("response_timeout_secs", "0.5"),
            ("fallback", "reception"),
        ];
        let report = hostile_router().route(&scheme(&pairs), &seed_call()).await;
        let routing = fell_back(&report);
        assert_eq!(
            routing.first().target,
            Target::Sip("reception".into()),
            "{behaviour}"
        );
        assert_eq!(
            routing.fallback_cause.as_ref().unwrap().kind,
            kind,
            "{behaviour}"
        );
        assert!(
            report.elapsed <= Duration::from_millis(1000),
            "{behaviour}: {:?}",
            report.elapsed
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_scheme_never_falls_back() {
    let report = route(
        &[
            ("url", "http://127.0.0.1:9/"),
            ("method", "PATCH"),
            ("fallback", "reception"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(failed(&report).kind, ErrorKind::Config);
}

/// A call the host has no room for is answered at once as `overloaded`, with the scheme's
/// fallback when it has one: never taken for a crash (`trap`), never kept waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_beyond_the_routers_capacity_is_overloaded_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CONNECTED: AtomicUsize = AtomicUsize::new(0);
    let crm = RawCrm::start(|mut s| {
        CONNECTED.fetch_add(1, Ordering::SeqCst);
        RawCrm::read_request(&mut s);
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    let router = router().with_config(callroute_host::RouterConfig {
        allow_private_network: true,
        max_concurrent_calls: 2,
        ..Default::default()
    });
    let url = crm.url();
    let busy = scheme(&[("url", &url), ("response_timeout_secs", "2")]);
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let (router, busy) = (router.clone(), busy.clone());
            tokio::spawn(async move { router.route(&busy, &seed_call()).await })
        })
        .collect();
    while CONNECTED.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let other = scheme(&[("url", &url), ("fallback", "reception")]);
    let report = router.route(&other, &seed_call()).await;
    let routing = fell_back(&report);
    let cause = routing.fallback_cause.as_ref().unwrap();
    assert_eq!(cause.kind, ErrorKind::Overloaded, "{cause}");
    assert_within(&report, std::time::Duration::from_millis(100));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["error"]["kind"], "overloaded", "{json}");

    let report = router.route(&busy, &seed_call()).await;
    assert_eq!(failed(&report).kind, ErrorKind::Overloaded);
    assert_eq!(
        CONNECTED.load(Ordering::SeqCst),
        2,
        "an overloaded call reached the CRM"
    );
    for call in holding {
        assert_eq!(failed(&call.await.unwrap()).kind, ErrorKind::Timeout);
    }
}
