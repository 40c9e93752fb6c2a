//! JSON-RPC answers: a plain result, a nested result, and an error.

use callroute_tests::*;
use serde_json::json;

async fn rpc(answer: serde_json::Value, field: Option<&str>) -> callroute_host::RouteReport {
    let crm = TestCrm::start(move |_| CrmReply::json(answer.clone())).unwrap();
    let url = crm.url("/rpc");
    let mut pairs = vec![
        ("url", url.as_str()),
        ("submission", "json-rpc"),
        ("import", "json-rpc"),
        ("jsonrpc_method", "getManager"),
    ];
    if let Some(field) = field {
        pairs.push(("destination_field", field));
    }
    let report = route(&pairs, &seed_call()).await;
    let request = crm.single_request();
    assert_eq!(request.json()["method"], "getManager");
    assert_eq!(request.json()["jsonrpc"], "2.0");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_result_is_the_destination() {
    let report = rpc(
        json!({"jsonrpc": "2.0", "result": "380441234567", "id": "pkv"}),
        None,
    )
    .await;
    assert_eq!(routed(&report).0, Target::Phone("380441234567".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nested_result_is_read_by_destination_field() {
    let answer = json!({"jsonrpc": "2.0", "result": {"manager": {"number_01": "3 80123456789"}}, "id": "pkv"});
    let report = rpc(answer, Some("manager.number_01")).await;
    assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_means_no_destination() {
    let answer = json!({"jsonrpc": "2.0", "error": {"code": -32000, "message": "no manager on duty"}, "id": "pkv"});
    let report = rpc(answer, None).await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::NoDestination);
    assert!(
        error.message.contains("-32000") && error.message.contains("no manager on duty"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_for_another_request_is_refused() {
    let report = rpc(
        json!({"jsonrpc": "2.0", "result": "101", "id": "someone-else"}),
        None,
    )
    .await;
    assert_eq!(failed(&report).kind, ErrorKind::BadResponse);
}
