//! The component's own `wasi:http/incoming-handler` export, driven in-process the way
//! `wasmtime serve` runs it: one fresh instance per request, the scheme in `wasi:config`.

use bytes::Bytes;
use callroute_tests::*;
use http_body_util::Full;
use serde_json::json;

fn request(
    method: &str,
    uri: &str,
    accept: Option<&str>,
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(accept) = accept {
        builder = builder.header("accept", accept);
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_a_posted_call_and_answers_the_outcome_json() {
    let crm = TestCrm::start(|_| CrmReply::json(json!({"number_01": "3 80123456789"}))).unwrap();
    let url = crm.url("/route");
    let scheme = scheme(&[
        ("url", &url),
        ("submission", "json"),
        ("import", "json"),
        ("destination_field", "number_01"),
    ]);
    let call = r#"{"call_id":"pkv","caller":"+380501112233","vars":{"uuid":"842d"}}"#;
    let response = router()
        .handle_http(&scheme, request("POST", "http://localhost/", None, call))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["outcome"], "routed");
    assert_eq!(
        body["destination"],
        json!({"kind": "phone", "target": "380123456789", "ring_timeout_secs": 30})
    );
    assert_eq!(
        crm.single_request().json(),
        json!({"call_id": "pkv", "caller": "+380501112233", "callee": "", "uuid": "842d"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_plain_text_to_a_get() {
    let crm = TestCrm::start(|_| CrmReply::html("manager_7")).unwrap();
    let url = crm.url("/");
    let scheme = scheme(&[("url", &url), ("ring_timeout_secs", "15")]);
    let response = router()
        .handle_http(
            &scheme,
            request(
                "GET",
                "http://localhost/?call_id=c1&caller=101",
                Some("text/plain"),
                "",
            ),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"manager_7");
    assert_eq!(response.headers()["x-ring-timeout"], "15");
    assert_eq!(
        crm.single_request().query_pairs()[0],
        ("call_id".to_string(), "c1".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_failures_and_refuses_malformed_calls() {
    let crm = TestCrm::start(|_| CrmReply::status(502)).unwrap();
    let url = crm.url("/");
    let scheme = scheme(&[("url", &url)]);
    let response = router()
        .handle_http(
            &scheme,
            request(
                "GET",
                "http://localhost/?call_id=c1",
                Some("text/plain"),
                "",
            ),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.body().as_ref(), b"http-status");

    let response = router()
        .handle_http(&scheme, request("POST", "http://localhost/", None, "{oops"))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["error"]["kind"], "bad-request");
    assert_eq!(
        crm.requests().len(),
        1,
        "the malformed call never reached the CRM"
    );
}

/// Under `wasmtime serve` (no outbox), a `POST …/outcome` is sent to the CRM once, and the
/// answer says whether it took it.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_posted_to_the_handler_is_sent_once() {
    let crm = TestCrm::start(|request| match request.path.as_str() {
        "/outcome" => CrmReply::status(204),
        _ => CrmReply::status(503),
    })
    .unwrap();
    let (url, outcome_url, down) = (crm.url("/route"), crm.url("/outcome"), crm.url("/down"));
    let taking = scheme(&[("url", &url), ("outcome_url", &outcome_url)]);
    let outcome = r#"{"call_id":"c1","status":"answered","answered_by":"101","talk_secs":9}"#;
    let response = router()
        .handle_http(
            &taking,
            request("POST", "http://localhost/v1/outcome", None, outcome),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["status"], "delivered");
    let sent = crm.single_request();
    assert_eq!(sent.path, "/outcome");
    assert_eq!(sent.header("idempotency-key"), body["report"].as_str());
    assert_eq!(sent.json()["talk_secs"], "9");
    assert_eq!(sent.json()["answered_by"], "101");

    // Bad input names its field; a CRM that does not take it is a 502 with the kind.
    let bad = router()
        .handle_http(
            &taking,
            request(
                "POST",
                "http://localhost/outcome",
                None,
                r#"{"call_id":"c1"}"#,
            ),
        )
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(String::from_utf8_lossy(bad.body()).contains("`status`"));
    let refusing = scheme(&[("url", &url), ("outcome_url", &down)]);
    let refused = router()
        .handle_http(
            &refusing,
            request("POST", "http://localhost/outcome", None, outcome),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    let body: serde_json::Value = serde_json::from_slice(refused.body()).unwrap();
    assert_eq!(body["error"]["kind"], "http-status");
}
