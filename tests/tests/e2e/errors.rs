//! Every error kind the component reports, through the harness, against real servers.

use callroute_tests::*;
use std::time::Duration;

fn text_crm(reply: CrmReply) -> TestCrm {
    TestCrm::start(move |_| reply.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_scheme_is_a_config_error_naming_the_field() {
    let crm = text_crm(CrmReply::html("101"));
    let url = crm.url("/");
    for (pairs, field) in [
        (vec![("url", url.as_str()), ("method", "PATCH")], "`method`"),
        (
            vec![("url", url.as_str()), ("import", "json")],
            "`destination_field`",
        ),
        (
            vec![("url", url.as_str()), ("submission", "json-rpc")],
            "`jsonrpc_method`",
        ),
        (vec![("url", "ftp://example.com/")], "`url`"),
        (
            vec![("url", url.as_str()), ("ring_timeout", "5")],
            "`ring_timeout`",
        ),
    ] {
        let report = route(&pairs, &seed_call()).await;
        let error = failed(&report);
        assert_eq!(error.kind, ErrorKind::Config, "{pairs:?}");
        assert!(error.message.contains(field), "{field}: {error}");
    }
    assert!(crm.requests().is_empty(), "an invalid scheme sends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_denied_without_allow_private_network() {
    let crm = text_crm(CrmReply::html("101"));
    let report = strict_router()
        .route(
            &scheme(&[("url", &crm.url("/?token=SECRET"))]),
            &seed_call(),
        )
        .await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Denied);
    assert!(error.message.contains("loopback"), "{error}");
    assert!(error.message.contains("--allow-private-network"), "{error}");
    assert!(
        !error.message.contains("SECRET"),
        "the query never reaches an error: {error}"
    );
    assert!(crm.requests().is_empty(), "nothing reached the CRM");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crm_that_never_answers_times_out_within_the_deadline() {
    let crm = text_crm(CrmReply::html("101").after(Duration::from_secs(3600)));
    let url = crm.url("/");
    let report = route(
        &[("url", &url), ("response_timeout_secs", "0.7")],
        &seed_call(),
    )
    .await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(
        report.elapsed >= Duration::from_millis(700),
        "{:?}",
        report.elapsed
    );
    assert_within(&report, Duration::from_millis(1200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_tcp_peer_times_out_within_the_deadline() {
    // Accepts the connection and never says a word: no HTTP server behind it at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let report = route(
        &[("url", &url), ("response_timeout_secs", "0.5")],
        &seed_call(),
    )
    .await;
    assert_eq!(failed(&report).kind, ErrorKind::Timeout);
    assert_within(&report, Duration::from_millis(1000));
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_is_a_transport_error() {
    let url = refused_url("/route?key=SECRET");
    let report = route(&[("url", &url)], &seed_call()).await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Transport, "{error}");
    // The message names the CRM as `127.0.0.1:PORT/route`, without the query.
    let shown = url.trim_start_matches("http://").split('?').next().unwrap();
    assert!(error.message.contains(shown), "{error}");
    assert!(!error.message.contains("SECRET"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_2xx_answer_is_an_http_status_error() {
    for status in [500, 503, 404, 301] {
        let crm = text_crm(CrmReply::new(status, "text/html", "<h1>oops</h1>"));
        let url = crm.url("/");
        let report = route(&[("url", &url)], &seed_call()).await;
        let error = failed(&report);
        assert_eq!(error.kind, ErrorKind::HttpStatus);
        assert_eq!(error.status, Some(status));
        assert_eq!(crm.requests().len(), 1, "redirects are not followed");
    }
}

/// The error kind of a call whose CRM gives `reply`, read as `import` (field `number_01`).
async fn answer_kind(import: &str, reply: CrmReply) -> ErrorKind {
    let crm = text_crm(reply);
    let url = crm.url("/");
    let pairs = [
        ("url", url.as_str()),
        ("import", import),
        ("destination_field", "number_01"),
    ];
    failed(&route(&pairs, &seed_call()).await).kind
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_answers_are_bad_responses() {
    for (import, reply) in [
        (
            "json",
            CrmReply::html("<html><body>Fatal error</body></html>"),
        ),
        (
            "json",
            CrmReply::json(serde_json::json!({"number_01": true})),
        ),
        ("http", CrmReply::html("call me maybe")),
        (
            "http",
            CrmReply::new(200, "text/plain", vec![0x33, 0x38, 0xff]),
        ),
        ("http", CrmReply::html(&"9".repeat(70 * 1024))),
    ] {
        assert_eq!(
            answer_kind(import, reply).await,
            ErrorKind::BadResponse,
            "{import}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_without_a_destination_are_no_destination() {
    for (import, reply) in [
        ("http", CrmReply::status(204)),
        ("http", CrmReply::html("   ")),
        (
            "json",
            CrmReply::json(serde_json::json!({"number_01": null})),
        ),
        ("json", CrmReply::json(serde_json::json!({"other": "101"}))),
        ("json", CrmReply::json(serde_json::json!({"number_01": ""}))),
    ] {
        assert_eq!(
            answer_kind(import, reply).await,
            ErrorKind::NoDestination,
            "{import}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_in_headers_are_sent_but_never_reported() {
    let crm = text_crm(CrmReply::status(401));
    let url = crm.url("/?api_key=QUERYSECRET");
    let report = route(
        &[
            ("url", &url),
            ("headers.Authorization", "Bearer HEADERSECRET"),
        ],
        &seed_call(),
    )
    .await;
    assert_eq!(
        crm.single_request().header("authorization"),
        Some("Bearer HEADERSECRET")
    );
    let json = report.to_json();
    assert!(json.contains("\"status\":401"), "{json}");
    assert!(!json.contains("SECRET"), "{json}");
}

/// A bare-bones HTTP/1.0 CRM: answers once per connection with `response`, then closes.
fn http10_crm(response: &'static str) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(response.as_bytes());
    });
    (url, thread)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http10_crm_that_closes_after_answering_is_read() {
    // No Content-Length: the body ends when the connection does, as old PHP setups answer.
    let (url, crm) = http10_crm("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n380123456789");
    let report = route(&[("url", &url)], &seed_call()).await;
    assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
    crm.join().unwrap();

    let (url, crm) =
        http10_crm("HTTP/1.0 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nmanager_7");
    let report = route(&[("url", &url)], &seed_call()).await;
    assert_eq!(routed(&report).0, Target::Sip("manager_7".into()));
    crm.join().unwrap();
}
