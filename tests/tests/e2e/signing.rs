//! Signed webhooks: the CRM recomputes the HMAC and checks it, with one secret or two.

use callroute_plugin::request::signature;
use callroute_tests::*;

/// `(t, [v1 signatures])` from an `X-Callroute-Signature` header.
fn parse(header: &str) -> (u64, Vec<String>) {
    let mut t = 0;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse().unwrap(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => panic!("unexpected part {part:?} in {header:?}"),
        }
    }
    (t, v1)
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
    let (t, v1) = parse(request.header("x-callroute-signature").expect("signed"));
    assert!(t.abs_diff(unix_now()) <= 5, "the timestamp is now: {t}");
    assert_eq!(
        v1,
        [
            signature("current-secret", t, &request.body),
            signature("next-secret", t, &request.body)
        ]
    );
    assert_ne!(v1[0], signature("wrong-secret", t, &request.body));
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
    let (t, v1) = parse(request.header("x-callroute-signature").unwrap());
    assert_eq!(
        v1,
        [signature(
            "k",
            t,
            request.query.as_deref().unwrap().as_bytes()
        )]
    );
}
