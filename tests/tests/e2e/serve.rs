//! `callroute serve`'s HTTP API, in-process on a free port, against CRMs on 127.0.0.1.

use callroute_tests::*;
use serde_json::json;
use std::time::Duration;

const CALL: &str = r#"{"call_id":"pkv","caller":"+380501112233","callee":"380441234567","vars":{"uuid":"842d921d"}}"#;

/// Two tenants, each with its own CRM.
struct Tenants {
    acme: TestCrm,
    globex: TestCrm,
    served: Served,
}

fn tenants() -> Tenants {
    let acme = TestCrm::start(|_| CrmReply::json(json!({"number_01": "3 80123456789"}))).unwrap();
    let globex = TestCrm::start(
        |r| match r.query_pairs().iter().find(|(k, _)| k == "down") {
            Some(_) => CrmReply::status(503),
            None => CrmReply::html("manager_7"),
        },
    )
    .unwrap();
    let toml = format!(
        r#"
        [[scheme]]
        name = "acme"
        url = "{}"
        submission = "json"
        import = "json"
        destination_field = "number_01"
        ring_timeout_secs = 20

        [[scheme]]
        name = "globex"
        url = "{}"
        method = "GET"
        response_timeout_secs = 1
        "#,
        acme.url("/route"),
        globex.url("/route"),
    );
    let served = Served::start(router(), &toml);
    Tenants {
        acme,
        globex,
        served,
    }
}

#[test]
fn post_answers_with_the_same_json_as_the_cli() {
    let t = tenants();
    let response = t.served.request(
        "POST",
        "/v1/route/acme",
        &[("content-type", "application/json")],
        CALL,
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["outcome"], "routed");
    assert_eq!(
        body["destination"],
        json!({"kind": "phone", "target": "380123456789", "ring_timeout_secs": 20})
    );
    assert!(body["elapsed_ms"].is_u64());
    assert_eq!(t.acme.single_request().json()["uuid"], "842d921d");
    assert!(
        t.globex.requests().is_empty(),
        "each tenant reaches only its own CRM"
    );
}

#[test]
fn get_carries_the_call_in_the_query() {
    let t = tenants();
    let response = t.served.request(
        "GET",
        "/v1/route/globex?call_id=c1&caller=%2B380501112233&callee=101&utm_source=ads",
        &[],
        "",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["destination"]["target"], "manager_7");
    let sent = t.globex.single_request().query_pairs();
    assert!(
        sent.contains(&("caller".into(), "+380501112233".into())),
        "{sent:?}"
    );
    assert!(
        sent.contains(&("utm_source".into(), "ads".into())),
        "{sent:?}"
    );
}

#[test]
fn text_plain_answers_the_bare_target_or_503_with_the_kind() {
    let t = tenants();
    let response = t
        .served
        .request("POST", "/v1/route/acme", &[("accept", "text/plain")], CALL);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "380123456789");
    assert_eq!(response.header("x-ring-timeout"), Some("20"));

    let response = t.served.request(
        "GET",
        "/v1/route/globex?call_id=c1&down=1",
        &[("accept", "text/plain")],
        "",
    );
    assert_eq!(response.status, 503);
    assert_eq!(response.text(), "http-status");
}

#[test]
fn a_failed_route_is_200_with_its_kind() {
    let t = tenants();
    let response = t
        .served
        .request("GET", "/v1/route/globex?call_id=c1&down=1", &[], "");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["outcome"], "failed");
    assert_eq!(response.json()["error"]["kind"], "http-status");
    assert_eq!(response.json()["error"]["status"], 503);
}

#[test]
fn unknown_schemes_and_malformed_requests_are_refused_with_a_reason() {
    let t = tenants();
    let response = t.served.request("POST", "/v1/route/initech", &[], CALL);
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["kind"], "unknown-scheme");
    // Which tenants a server holds is not for its callers to learn.
    let text = response.text();
    assert!(!text.contains("acme") && !text.contains("globex"), "{text}");
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`initech`")
    );

    for (method, path, body, status, says) in [
        (
            "POST",
            "/v1/route/acme",
            "{\"caller\":",
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/route/acme",
            "{\"caler\":\"1\"}",
            400,
            "`caler`",
        ),
        (
            "GET",
            "/v1/route/acme?caller=1&caller=2",
            "",
            400,
            "more than once",
        ),
        ("PUT", "/v1/route/acme", CALL, 405, "POST"),
    ] {
        let response = t.served.request(method, path, &[], body);
        assert_eq!(response.status, status, "{method} {path}");
        assert_eq!(response.json()["error"]["kind"], "bad-request");
        assert!(
            response.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{}",
            response.text()
        );
    }
    let big = format!("{{\"call_id\":\"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(
        t.served.request("POST", "/v1/route/acme", &[], &big).status,
        413
    );
    assert_eq!(t.served.request("GET", "/nowhere", &[], "").status, 404);
    assert!(
        t.acme.requests().is_empty(),
        "nothing malformed reached a CRM"
    );
}

#[test]
fn health_and_metrics() {
    let t = tenants();
    assert_eq!(t.served.request("GET", "/healthz", &[], "").text(), "ok\n");
    for _ in 0..3 {
        t.served.request("POST", "/v1/route/acme", &[], CALL);
    }
    t.served.request("GET", "/v1/route/globex?down=1", &[], "");
    let metrics = t.served.request("GET", "/metrics", &[], "");
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = metrics.text();
    for line in [
        "callroute_routes_total{scheme=\"acme\",outcome=\"routed\"} 3",
        "callroute_routes_total{scheme=\"acme\",outcome=\"failed\"} 0",
        "callroute_routes_total{scheme=\"globex\",outcome=\"failed\"} 1",
        "callroute_route_errors_total{scheme=\"globex\",kind=\"http-status\"} 1",
        "callroute_route_duration_seconds_bucket{le=\"+Inf\"} 4",
        "callroute_route_duration_seconds_count 4",
        "# TYPE callroute_route_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn a_hundred_concurrent_clients_all_get_answers() {
    let t = tenants();
    let addr = t.served.addr();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for j in 0..3 {
                    let (path, body) = if (i + j) % 2 == 0 {
                        ("/v1/route/acme".to_string(), CALL.to_string())
                    } else {
                        (format!("/v1/route/globex?call_id={i}-{j}"), String::new())
                    };
                    let method = if body.is_empty() { "GET" } else { "POST" };
                    let response =
                        callroute_tests::client::request(addr, method, &path, &[], body.as_bytes())
                            .unwrap();
                    answers.push((
                        response.status,
                        response.json()["outcome"].as_str().unwrap_or("").to_owned(),
                    ));
                }
                answers
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(answers.len(), 300);
    assert!(
        answers
            .iter()
            .all(|(status, outcome)| *status == 200 && outcome == "routed"),
        "{answers:?}"
    );
    assert_eq!(t.acme.requests().len() + t.globex.requests().len(), 300);
}

#[test]
fn shutdown_waits_for_calls_in_flight() {
    let crm = TestCrm::start(|_| CrmReply::html("101").after(Duration::from_millis(600))).unwrap();
    let served = Served::start(
        router(),
        &format!("name = \"slow\"\nurl = \"{}\"\n", crm.url("/")),
    );
    let addr = served.addr();
    let in_flight = std::thread::spawn(move || {
        callroute_tests::client::request(addr, "GET", "/v1/route/slow?call_id=1", &[], b"").unwrap()
    });
    // Let the call reach the CRM, then shut down while it is waiting for the answer.
    while crm.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(served);
    let response = in_flight.join().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["destination"]["target"], "101");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no new connections after shutdown"
    );
}

#[test]
fn a_fallback_is_served_and_counted() {
    let crm = TestCrm::start(|_| CrmReply::status(503)).unwrap();
    let served = Served::start(
        router(),
        &format!(
            "name = \"fb\"\nurl = \"{}\"\nfallback = \"reception\"\n",
            crm.url("/")
        ),
    );
    let response = served.request("GET", "/v1/route/fb?call_id=1", &[], "");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["outcome"], "fallback");
    assert_eq!(response.json()["destination"]["target"], "reception");
    assert_eq!(response.json()["error"]["status"], 503);
    let response = served.request(
        "GET",
        "/v1/route/fb?call_id=2",
        &[("accept", "text/plain")],
        "",
    );
    assert_eq!(
        (response.status, response.text()),
        (200, "reception".to_string())
    );
    let metrics = served.request("GET", "/metrics", &[], "").text();
    assert!(
        metrics.contains("callroute_routes_total{scheme=\"fb\",outcome=\"fallback\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callroute_route_errors_total{scheme=\"fb\",kind=\"http-status\"} 2"),
        "{metrics}"
    );
}

/// A scheme pointed at a callroute server would call it again without end (one request became
/// 1,001 nested calls): every webhook carries a hop header that `serve` refuses (508), and
/// the guard refuses this process's own listening address outright.
#[test]
fn a_scheme_cannot_route_through_a_callroute_server() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let served = Served::start(
        router(),
        &format!("name = \"acme\"\nurl = \"{}\"\n", crm.url("/")),
    );
    // Webhooks say they are webhooks.
    let response = served.request("GET", "/v1/route/acme?call_id=1", &[], "");
    assert_eq!(response.json()["outcome"], "routed", "{}", response.text());
    assert_eq!(crm.single_request().header("x-callroute-hop"), Some("1"));

    // One that reaches a callroute server (another process's, behind a proxy) is refused.
    let looped = served.request(
        "GET",
        "/v1/route/acme?call_id=2",
        &[("x-callroute-hop", "1")],
        "",
    );
    assert_eq!(looped.status, 508, "{}", looped.text());
    assert_eq!(looped.json()["error"]["kind"], "loop-detected");
    assert_eq!(
        crm.requests().len(),
        1,
        "the looped request reached the CRM"
    );

    // And one aimed straight at this process's own server never leaves the sandbox.
    let direct = tokio::runtime::Runtime::new().unwrap().block_on(route(
        &[("url", &format!("http://{}/v1/route/acme", served.addr()))],
        &seed_call(),
    ));
    let error = failed(&direct);
    assert_eq!(error.kind, ErrorKind::Denied, "{}", error.message);
    assert!(
        error
            .message
            .contains("where this callroute server itself listens"),
        "{}",
        error.message
    );
    assert_eq!(crm.requests().len(), 1);
}

/// A POST whose body never comes is answered 408 once the read timeout passes, and clients
/// beyond the connection limit wait for a free connection instead of exhausting the process's
/// file descriptors: a legitimate call still gets through.
#[test]
fn stalled_request_bodies_cannot_hold_the_server() {
    use std::io::{Read, Write};
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let limits = callroute_host::serve::ServeLimits {
        max_connections: 8,
        read_timeout: Duration::from_millis(400),
    };
    let served = Served::start_with(
        router(),
        &format!("name = \"acme\"\nurl = \"{}\"\n", crm.url("/")),
        limits,
    );
    let stalled: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(served.addr()).unwrap();
            stream
                .write_all(
                    b"POST /v1/route/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                )
                .unwrap();
            stream
        })
        .collect();
    let start = std::time::Instant::now();
    let response = served.request("GET", "/v1/route/acme?call_id=1", &[], "");
    assert_eq!(response.json()["destination"]["target"], "101");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a legitimate call waited {:?}",
        start.elapsed()
    );
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a stalled request got {answer:?}"
        );
    }
}

/// Shutdown waits for the calls being routed, not for clients that stall mid-request.
#[test]
fn shutdown_does_not_wait_for_stalled_clients() {
    use std::io::Write;
    let served = Served::start(router(), "name = \"acme\"\nurl = \"http://crm.invalid/\"\n");
    let mut stalled = std::net::TcpStream::connect(served.addr()).unwrap();
    stalled
        .write_all(b"POST /v1/route/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = std::time::Instant::now();
    drop(served);
    assert!(
        start.elapsed() < callroute_host::serve::ANSWER_GRACE + Duration::from_secs(1),
        "shutdown took {:?}",
        start.elapsed()
    );
}

/// One client holding ten times the connection limit with request heads it never finishes,
/// and reopening each one the server closes, cannot keep a PBX waiting: at the
/// limit the connection that has waited longest for a head is closed to make room, so every
/// call is answered within a second, long before any stalled head times out.
#[test]
fn stalled_request_heads_cannot_hold_the_connection_limit() {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    const LIMIT: usize = 16;

    /// A connection that sends the start of a request head and never the rest.
    fn stall(addr: SocketAddr) -> Option<TcpStream> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        stream
            .write_all(b"POST /v1/route/acme HTTP/1.1\r\nHost: x\r\n")
            .ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    }

    /// One call as a PBX makes it, given `within` to be answered: the destination, or why
    /// there is none.
    fn call(addr: SocketAddr, id: usize, within: Duration) -> Result<serde_json::Value, String> {
        let mut stream =
            TcpStream::connect_timeout(&addr, within).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(within)).unwrap();
        stream
            .write_all(
                format!(
                    "GET /v1/route/acme?call_id={id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| format!("no answer: {e}"))?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no answer: {answer:?}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("answered {head:?}"));
        }
        let body: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("{e}: {body:?}"))?;
        Ok(body["destination"].clone())
    }

    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    // A head may take 5 s to arrive: far longer than the second a call is given here.
    let limits = callroute_host::serve::ServeLimits {
        max_connections: LIMIT,
        read_timeout: Duration::from_secs(5),
    };
    let served = Served::start_with(
        router(),
        &format!("name = \"acme\"\nurl = \"{}\"\n", crm.url("/")),
        limits,
    );
    let addr = served.addr();

    // Ten times the limit in stalled clients, each reopened as soon as the server closes it.
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, all_open) = std::sync::mpsc::channel();
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut stalled: Vec<Option<TcpStream>> =
                (0..10 * LIMIT).map(|_| stall(addr)).collect();
            let _ = opened.send(());
            let (mut closed, mut buffer) = (0usize, [0u8; 512]);
            while !stop.load(Ordering::SeqCst) {
                for stream in &mut stalled {
                    let open = matches!(
                        stream.as_mut().map(|s| s.read(&mut buffer)),
                        Some(Err(e)) if e.kind() == ErrorKind::WouldBlock
                    );
                    if !open {
                        closed += 1;
                        *stream = stall(addr);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            closed
        })
    };
    all_open.recv().unwrap();
    // The server has taken its fill of them.
    std::thread::sleep(Duration::from_millis(200));

    let within = Duration::from_secs(1);
    let answers: Vec<_> = (0..8)
        .map(|id| {
            let start = Instant::now();
            let answer = call(addr, id, within);
            (answer, start.elapsed())
        })
        .collect();
    stop.store(true, Ordering::SeqCst);
    let closed = attacker.join().unwrap();

    for (id, (answer, elapsed)) in answers.iter().enumerate() {
        match answer {
            Ok(destination) => {
                assert_eq!(destination["target"], "101", "call {id}");
                assert!(*elapsed < within, "call {id} answered after {elapsed:?}");
            }
            Err(e) => panic!("call {id} got no answer within {within:?}: {e} (after {elapsed:?})"),
        }
    }
    assert!(
        closed > 0,
        "the server closed none of the stalled connections"
    );
}
