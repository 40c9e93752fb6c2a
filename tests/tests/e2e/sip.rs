//! SIP logins and SIP URIs as answers.

use callroute_tests::*;

async fn answer_as_text(body: &'static str) -> callroute_host::RouteReport {
    let crm = TestCrm::start(move |_| CrmReply::html(body)).unwrap();
    let url = crm.url("/");
    route(&[("url", &url)], &seed_call()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sip_login_routes_as_sip() {
    let report = answer_as_text("manager_7\n").await;
    assert_eq!(routed(&report), (Target::Sip("manager_7".into()), 30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sip_uri_routes_as_sip() {
    let report = answer_as_text("sips:alice@pbx.example.com:5061;transport=tls").await;
    assert_eq!(
        routed(&report).0,
        Target::Sip("sips:alice@pbx.example.com:5061;transport=tls".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sip_uri_in_json_routes_as_sip() {
    let crm = TestCrm::start(|_| CrmReply::json(serde_json::json!({"agent": "sip:bob@10.0.0.5"})))
        .unwrap();
    let url = crm.url("/");
    let report = route(
        &[
            ("url", &url),
            ("import", "json"),
            ("destination_field", "agent"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(routed(&report).0, Target::Sip("sip:bob@10.0.0.5".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sip_uri_carrying_headers_is_refused() {
    // `?Route=` would make the PBX add a header of the CRM's choosing.
    let report = answer_as_text("sip:alice@pbx.example.com?Route=%3Csip:evil.example.com%3E").await;
    assert_eq!(failed(&report).kind, ErrorKind::BadResponse);
}
