//! The two examples of Ringostat's help article, exactly.

use callroute_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn post_json_with_number_01_routes_to_the_normalised_phone() {
    let crm = TestCrm::start(|_| CrmReply::json(serde_json::json!({"number_01": "3 80123456789"})))
        .unwrap();
    let url = crm.url("/api/addnumber/");
    let report = route(
        &[
            ("url", &url),
            ("method", "POST"),
            ("submission", "json"),
            ("import", "json"),
            ("destination_field", "number_01"),
            ("params.call_id", "{call_id}"),
            ("params.step_forward", "{step_forward}"),
            ("params.uuid", "{uuid}"),
            ("params.google_id", "{google_id}"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(routed(&report), (Target::Phone("380123456789".into()), 30));

    let request = crm.single_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/addnumber/");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("content-length"),
        Some(request.body.len().to_string().as_str())
    );
    assert_eq!(
        request.header("transfer-encoding"),
        None,
        "a fixed-length body, not chunked"
    );
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("callroute/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        request.json(),
        serde_json::json!({
            "call_id": "pkv",
            "step_forward": "webhookNumber:120",
            "uuid": "842d921d-5334-4eca-812d-9a478dc8c884",
            "google_id": "UA-38222689-2"
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_php_style_plain_text_answer_routes() {
    // The article's plain answer comes as `text/html; charset=UTF-8` from PHP.
    let crm = TestCrm::start(|_| CrmReply::html("380123456789")).unwrap();
    let url = crm.url("/route.php");
    let report = route(
        &[
            ("url", &url),
            ("method", "GET"),
            ("params.caller", "{caller}"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(routed(&report), (Target::Phone("380123456789".into()), 30));
    let request = crm.single_request();
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.query_pairs(),
        [("caller".to_string(), "+380501112233".to_string())]
    );
    assert!(request.body.is_empty());
}
