//! Every method × submission × import combination, with the CRM checking what it received.

use callroute_tests::*;
use serde_json::json;

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const SUBMISSIONS: [&str; 4] = ["http", "form", "json", "json-rpc"];
const IMPORTS: [&str; 3] = ["http", "json", "json-rpc"];

/// Answers by the import type named in the path, echoing a JSON-RPC id when there is one.
fn answer(request: &CrmRequest) -> CrmReply {
    match request.path.as_str() {
        "/http" => CrmReply::html("+38 (044) 123-45-67"),
        "/json" => CrmReply::json(json!({"data": {"manager": {"phone": "3 80123456789"}}})),
        _ => CrmReply::json(json!({
            "jsonrpc": "2.0",
            "result": {"data": {"manager": {"phone": "sip:manager_7@pbx.example.com"}}},
            "id": request.json().get("id").cloned().unwrap_or(json!("pkv")),
        })),
    }
}

fn expected_target(import: &str) -> Target {
    match import {
        "http" => Target::Phone("+380441234567".into()),
        "json" => Target::Phone("380123456789".into()),
        _ => Target::Sip("sip:manager_7@pbx.example.com".into()),
    }
}

fn sent_method<'a>(method: &'a str, submission: &str) -> &'a str {
    match (submission, method) {
        ("json" | "json-rpc", _) | ("form", "GET") => "POST",
        _ => method,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_submission_and_import() {
    let crm = TestCrm::start(answer).unwrap();
    let call = seed_call();
    let params = vec![
        ("call_id".to_string(), "pkv".to_string()),
        ("caller".to_string(), "+380501112233".to_string()),
        (
            "uuid".to_string(),
            "842d921d-5334-4eca-812d-9a478dc8c884".to_string(),
        ),
    ];
    let params_json = json!({"call_id": "pkv", "caller": "+380501112233", "uuid": "842d921d-5334-4eca-812d-9a478dc8c884"});
    let mut combinations = 0;
    for method in METHODS {
        for submission in SUBMISSIONS {
            for import in IMPORTS {
                let case = format!("{method} {submission} {import}");
                let url = crm.url(&format!("/{import}?tenant=acme"));
                let report = route(
                    &[
                        ("url", &url),
                        ("method", method),
                        ("submission", submission),
                        ("import", import),
                        ("destination_field", "data.manager.phone"),
                        ("jsonrpc_method", "route.get"),
                        ("ring_timeout_secs", "17"),
                        ("params.call_id", "{call_id}"),
                        ("params.caller", "{caller}"),
                        ("params.uuid", "{uuid}"),
                    ],
                    &call,
                )
                .await;
                assert_eq!(routed(&report), (expected_target(import), 17), "{case}");

                let request = crm.requests().pop().expect("the CRM got a request");
                assert_eq!(request.method, sent_method(method, submission), "{case}");
                assert_eq!(request.path, format!("/{import}"), "{case}");
                let mut query = vec![("tenant".to_string(), "acme".to_string())];
                match submission {
                    "http" => {
                        query.extend(params.iter().cloned());
                        assert!(request.body.is_empty(), "{case}");
                    }
                    "form" => {
                        assert_eq!(
                            request.header("content-type"),
                            Some("application/x-www-form-urlencoded"),
                            "{case}"
                        );
                        assert_eq!(request.form_pairs(), params, "{case}");
                    }
                    "json" => {
                        assert_eq!(
                            request.header("content-type"),
                            Some("application/json"),
                            "{case}"
                        );
                        assert_eq!(request.json(), params_json, "{case}");
                    }
                    _ => {
                        assert_eq!(
                            request.header("content-type"),
                            Some("application/json"),
                            "{case}"
                        );
                        assert_eq!(
                            request.json(),
                            json!({"jsonrpc": "2.0", "method": "route.get", "params": params_json, "id": "pkv"}),
                            "{case}"
                        );
                    }
                }
                assert_eq!(request.query_pairs(), query, "{case}");
                combinations += 1;
            }
        }
    }
    assert_eq!(combinations, 48);
    assert_eq!(crm.requests().len(), 48, "one request per call, no retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_forces_post_whatever_the_scheme_says() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/");
    for method in METHODS {
        let report = route(
            &[("url", &url), ("method", method), ("submission", "json")],
            &seed_call(),
        )
        .await;
        assert_eq!(routed(&report).0, Target::Phone("101".into()));
        assert_eq!(
            crm.requests().pop().unwrap().method,
            "POST",
            "scheme asked for {method}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_and_reserved_characters_are_encoded_for_where_they_go() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/");
    let mut call = seed_call();
    call.vars
        .push(("name".into(), "Олена & Co =?\"\r\n".into()));
    for submission in ["http", "form", "json"] {
        let report = route(
            &[
                ("url", &url),
                ("submission", submission),
                ("params.name", "{name}"),
            ],
            &call,
        )
        .await;
        routed(&report);
        let request = crm.requests().pop().unwrap();
        let received = match submission {
            "http" => request.query_pairs()[0].1.clone(),
            "form" => request.form_pairs()[0].1.clone(),
            _ => request.json()["name"].as_str().unwrap().to_owned(),
        };
        assert_eq!(received, "Олена & Co =?\"\r\n", "{submission}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn call_values_cannot_inject_headers() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/");
    let mut call = seed_call();
    call.vars.push((
        "note".into(),
        "hi\r\nX-Injected: 1\r\n\r\nGET /admin HTTP/1.1\0".into(),
    ));
    let report = route(&[("url", &url), ("headers.X-Note", "{note}")], &call).await;
    routed(&report);
    let request = crm.single_request();
    assert!(
        request.header("x-injected").is_none(),
        "{:?}",
        request.headers
    );
    let note = request.header("x-note").unwrap();
    assert!(
        !note.contains('\r') && !note.contains('\n') && !note.contains('\0'),
        "{note:?}"
    );
    assert_eq!(crm.requests().len(), 1, "no smuggled second request");
}
