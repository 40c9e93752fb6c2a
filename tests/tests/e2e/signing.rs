//! Signed webhooks: the CRM recomputes the HMAC and checks it, with one secret or two.

use callroute_plugin::request::signature;
use callroute_tests::*;

/// `(t, [v1 signatures], [v2 signatures])` from an `X-Callroute-Signature` header.
fn parse(header: &str) -> (u64, Vec<String>, Vec<String>) {
    let mut t = 0;
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse().unwrap(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            Some(("v2", value)) => v2.push(value.to_owned()),
            _ => panic!("unexpected part {part:?} in {header:?}"),
        }
    }
    (t, v1, v2)
}

/// What `v2` signs before the payload: the request's idempotency key, attempt number and
/// primary error (empty when absent), each followed by a dot.
fn stamped(request: &CrmRequest) -> String {
    format!(
        "{}.{}.{}.",
        request
            .header("idempotency-key")
            .expect("an idempotency key"),
        request
            .header("x-callroute-attempt")
            .expect("an attempt number"),
        request.header("x-callroute-primary-error").unwrap_or("")
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crm_can_verify_the_body_signature_with_either_secret() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/");
    let report = route(
        &[
            ("url", &url),
            ("submission", "json"),
            ("signing_secret.0", "current-secret"),
            ("signing_secret.1", "next-secret"),
        ],
        &seed_call(),
    )
    .await;
    routed(&report);
    let request = crm.single_request();
    let (t, v1, v2) = parse(request.header("x-callroute-signature").expect("signed"));
    assert!(t.abs_diff(unix_now()) <= 5, "the timestamp is now: {t}");
    assert_eq!(
        v1,
        [
            signature("current-secret", t, &[&request.body]),
            signature("next-secret", t, &[&request.body])
        ]
    );
    assert_ne!(v1[0], signature("wrong-secret", t, &[&request.body]));
    let stamp = stamped(&request);
    assert_eq!(
        v2,
        [
            signature("current-secret", t, &[stamp.as_bytes(), &request.body]),
            signature("next-secret", t, &[stamp.as_bytes(), &request.body])
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_body_the_query_string_is_signed() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/route?tenant=acme");
    let report = route(
        &[("url", &url), ("method", "GET"), ("signing_secret", "k")],
        &seed_call(),
    )
    .await;
    routed(&report);
    let request = crm.single_request();
    let (t, v1, _) = parse(request.header("x-callroute-signature").unwrap());
    assert_eq!(
        v1,
        [signature(
            "k",
            t,
            &[request.query.as_deref().unwrap().as_bytes()]
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_webhook_of_a_decision_shares_its_key_and_the_secondary_says_why() {
    let primary = TestCrm::start(|_| CrmReply::status(503)).unwrap();
    let secondary = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let (primary_url, secondary_url) = (primary.url("/"), secondary.url("/"));
    let pairs = [
        ("url", primary_url.as_str()),
        ("fallback_url", secondary_url.as_str()),
        ("retries", "1"),
        ("submission", "json"),
        ("signing_secret", "k"),
    ];
    routed(&route(&pairs, &seed_call()).await);
    let mut requests = primary.requests();
    requests.extend(secondary.requests());
    assert_eq!(requests.len(), 3, "the primary twice, then the secondary");
    let key = requests[0].header("idempotency-key").unwrap().to_owned();
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
        let number = (i + 1).to_string();
        assert_eq!(request.header("x-callroute-attempt"), Some(number.as_str()));
        // Signed, the stamp with the body.
        let (t, _, v2) = parse(request.header("x-callroute-signature").unwrap());
        let stamp = stamped(request);
        assert_eq!(v2, [signature("k", t, &[stamp.as_bytes(), &request.body])]);
    }
    assert_eq!(requests[0].header("x-callroute-primary-error"), None);
    assert_eq!(
        requests[2].header("x-callroute-primary-error"),
        Some("http-status; status=503")
    );

    // Another decision, even for the same call, has a key of its own.
    routed(&route(&pairs, &seed_call()).await);
    let again = secondary.requests();
    assert_ne!(again[1].header("idempotency-key"), Some(key.as_str()));
}
