//! Hostile CRMs. Each case asserts the outcome and that the call ended within its deadline
//! plus 0.5 s (the deadline here is 1 s unless a case says otherwise). A case that depends on
//! which of two things happens first is run [`RUNS`] times, and every run must come out right.

use callroute_host::outbound::CannedAnswer;
use callroute_host::{PreparedScheme, RouterConfig};
use callroute_tests::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DEADLINE: &str = "1";
const LIMIT: Duration = Duration::from_millis(1500);
/// How often a racy case is repeated.
const RUNS: usize = 50;

async fn against(crm: &RawCrm, import: &str) -> callroute_host::RouteReport {
    let url = crm.url();
    let report = route(
        &[
            ("url", &url),
            ("import", import),
            ("destination_field", "n"),
            ("response_timeout_secs", DEADLINE),
        ],
        &seed_call(),
    )
    .await;
    assert_within(&report, LIMIT);
    report
}

/// The error kind of a call to `crm` that must fail (within the deadline, see [`against`]).
async fn failure_kind(crm: &RawCrm, import: &str) -> ErrorKind {
    failed(&against(crm, import).await).kind
}

fn answer(stream: &mut TcpStream, head: &str, body: &[u8]) {
    RawCrm::read_request(stream);
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

#[tokio::test(flavor = "multi_thread")]
async fn never_answers() {
    let crm = RawCrm::start(|mut s| {
        RawCrm::read_request(&mut s);
        std::thread::sleep(Duration::from_secs(10));
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_after_the_deadline() {
    let crm = RawCrm::start(|mut s| {
        RawCrm::read_request(&mut s);
        std::thread::sleep(Duration::from_millis(1500));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n101");
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread")]
async fn trickles_one_byte_a_second() {
    let crm = RawCrm::start(|mut s| {
        RawCrm::read_request(&mut s);
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n380123456789" {
            if s.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread")]
async fn trickles_the_body_after_a_quick_head() {
    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
            b"3",
        );
        for byte in b"80123456789" {
            std::thread::sleep(Duration::from_millis(300));
            if s.write_all(&[*byte]).is_err() {
                return;
            }
        }
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread")]
async fn resets_mid_body() {
    // Closing with the request still unread makes the kernel send RST, not FIN.
    let crm = RawCrm::start(|mut s| {
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n3801");
        std::thread::sleep(Duration::from_millis(50));
        drop(s);
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::Transport);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_ten_megabytes() {
    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n",
            b"",
        );
        let chunk = vec![b'9'; 64 * 1024];
        for _ in 0..160 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::BadResponse);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_ten_megabytes_without_a_length() {
    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"",
        );
        let chunk = format!("10000\r\n{}\r\n", "9".repeat(0x10000));
        for _ in 0..160 {
            if s.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::BadResponse);
}

#[tokio::test(flavor = "multi_thread")]
async fn floods_headers() {
    let crm = RawCrm::start(|mut s| {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..5000 {
            head.push_str(&format!("X-Junk-{i}: {}\r\n", "x".repeat(20)));
        }
        head.push_str("Content-Length: 3\r\n\r\n");
        answer(&mut s, &head, b"101");
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::BadResponse);
}

#[tokio::test(flavor = "multi_thread")]
async fn speaks_garbage_instead_of_http() {
    let crm = RawCrm::start(|mut s| answer(&mut s, "SSH-2.0-OpenSSH_9.6\r\n\r\n", b""));
    let kind = failure_kind(&crm, "http").await;
    assert!(
        matches!(kind, ErrorKind::BadResponse | ErrorKind::Transport),
        "{kind}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_html_pages_wrong_types_and_deep_nesting() {
    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
            b"38\xff\xfe",
        )
    });
    assert_eq!(failure_kind(&crm, "http").await, ErrorKind::BadResponse);

    let crm = RawCrm::start(|mut s| {
        let page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>";
        answer(
            &mut s,
            &format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                page.len()
            ),
            page,
        )
    });
    assert_eq!(failure_kind(&crm, "json").await, ErrorKind::BadResponse);

    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n",
            br#"{"n":[true,{},1.5]}   "#,
        )
    });
    assert_eq!(failure_kind(&crm, "json").await, ErrorKind::BadResponse);

    let crm = RawCrm::start(|mut s| {
        let deep = format!("{{\"n\":{}1{}}}", "[".repeat(50_000), "]".repeat(50_000));
        answer(
            &mut s,
            &format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", deep.len()),
            deep.as_bytes(),
        )
    });
    assert_eq!(failure_kind(&crm, "json").await, ErrorKind::BadResponse);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed() {
    let crm = RawCrm::start(|mut s| {
        answer(
            &mut s,
            "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n",
            b"",
        )
    });
    let report = against(&crm, "http").await;
    assert_eq!(failed(&report).status, Some(302));
}

/// Answers `{"n":[[…1…]]}` with `ARRAYS` arrays: the object is one level, each array another.
fn nested<const ARRAYS: usize>(mut s: TcpStream) {
    let deep = format!("{{\"n\":{}1{}}}", "[".repeat(ARRAYS), "]".repeat(ARRAYS));
    answer(
        &mut s,
        &format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", deep.len()),
        deep.as_bytes(),
    )
}

/// JSON nested to the reader's limit is read through in the component (its stack holds that
/// recursion: a trap here would mean the guest's stack is too small); deeper is refused, not
/// a crash.
#[tokio::test(flavor = "multi_thread")]
async fn nests_json_to_the_limit_and_beyond() {
    const MAX: usize = callroute_plugin::json::MAX_DEPTH;
    for (crm, expected) in [
        (RawCrm::start(nested::<{ MAX - 1 }>), "is an array"),
        (RawCrm::start(nested::<MAX>), "nested too deeply"),
        (RawCrm::start(nested::<30_000>), "nested too deeply"),
    ] {
        let report = against(&crm, "json").await;
        let failure = failed(&report);
        assert_eq!(failure.kind, ErrorKind::BadResponse, "{failure:?}");
        assert!(failure.message.contains(expected), "{failure:?}");
    }
}

/// The submissions that send a request body, as scheme pairs.
const BODY_SUBMISSIONS: [&[(&str, &str)]; 3] = [
    &[("submission", "form")],
    &[("submission", "json")],
    &[("submission", "json-rpc"), ("jsonrpc_method", "route.get")],
];

/// A connection the host refuses (loopback, under the default policy) is `denied` for every
/// submission that sends a body, in every run: the host used to refuse it while the component
/// was still writing the body, and the component then reported its failed write (`transport`)
/// instead of the refusal, depending on which came first. With a `fallback` the cause is
/// `denied` as well, and `retries` (which follow transport failures) are not spent on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_is_denied_whatever_the_body_write_does() {
    static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
    let crm = RawCrm::start(|mut s| {
        CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        answer(
            &mut s,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            b"202",
        )
    });
    let url = crm.url();
    let strict = strict_router();
    for submission in BODY_SUBMISSIONS {
        let pairs = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![("url", url.as_str()), ("response_timeout_secs", DEADLINE)];
            pairs.extend_from_slice(submission);
            pairs.extend_from_slice(extra);
            scheme(&pairs)
        };
        let (plain, with_fallback, with_retries) = (
            pairs(&[]),
            pairs(&[("fallback", "101")]),
            pairs(&[("retries", "2")]),
        );
        for run in 0..RUNS {
            for (scheme, what) in [(&plain, ""), (&with_retries, " with retries")] {
                let report = strict.route(scheme, &seed_call()).await;
                let error = failed(&report);
                assert_eq!(
                    error.kind,
                    ErrorKind::Denied,
                    "{submission:?}{what}, run {run}: {error}"
                );
                assert_within(&report, Duration::from_secs(1));
            }

            let report = strict.route(&with_fallback, &seed_call()).await;
            let routing = fell_back(&report);
            assert_eq!(routing.first().target, Target::Phone("101".into()));
            let cause = routing.fallback_cause.as_ref().unwrap();
            assert_eq!(
                cause.kind,
                ErrorKind::Denied,
                "{submission:?} with a fallback, run {run}: {cause}"
            );
            assert_within(&report, LIMIT);
        }
    }
    assert_eq!(
        CONNECTIONS.load(Ordering::SeqCst),
        0,
        "nothing reached the CRM"
    );
}

/// A CRM that answers `401` as soon as the request starts to arrive, before reading the rest of
/// it (the body above all), then drains what was sent and closes: every run is the CRM's
/// `http-status` 401, never a `transport` error made of the body write that could not finish.
///
/// The CRM waits for the first byte of the request: an answer sent before any request is one
/// nobody asked for, which the host rightly refuses (see `outbound::pool`).
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_before_the_body_is_read_is_the_crms_status() {
    let crm = RawCrm::start(|mut s| {
        let mut first = [0u8; 1];
        if s.read_exact(&mut first).is_err() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        // Read what else comes for a moment, so that closing sends FIN, not RST.
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut drain = [0u8; 4096];
        while matches!(s.read(&mut drain), Ok(n) if n > 0) {}
    });
    let url = crm.url();
    for run in 0..RUNS {
        let report = route(
            &[
                ("url", &url),
                ("submission", "json"),
                ("response_timeout_secs", DEADLINE),
            ],
            &seed_call(),
        )
        .await;
        let error = failed(&report);
        assert_eq!(error.kind, ErrorKind::HttpStatus, "run {run}: {error}");
        assert_eq!(error.status, Some(401), "run {run}: {error}");
        assert_within(&report, LIMIT);
    }
}

/// `--crm-answer` (a canned answer) answers a webhook without taking the component's request
/// body: every call with a body is routed to the canned destination, never failed by the body
/// write that the host cut short. Nothing listens at the URL, so only the canned answer can
/// route the call.
#[tokio::test(flavor = "multi_thread")]
async fn a_canned_answer_routes_every_call_that_sends_a_body() {
    let canned = router().with_config(RouterConfig {
        allow_private_network: true,
        canned_answer: Some(CannedAnswer {
            status: 200,
            body: "380123456789".into(),
        }),
        ..RouterConfig::default()
    });
    let json = scheme(&[
        ("url", &refused_url("/")),
        ("submission", "json"),
        ("response_timeout_secs", DEADLINE),
    ]);
    for run in 0..60 {
        let report = canned.route(&json, &seed_call()).await;
        assert!(report.is_routed(), "run {run}: {}", report.to_json());
        assert_eq!(
            routed(&report).0,
            Target::Phone("380123456789".into()),
            "run {run}"
        );
        assert_within(&report, LIMIT);
    }
}

/// The response [`answers_twice_at_first`] adds to its first answer on each connection.
const STRAY: &str = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n380999999999";

/// A CRM shared by tenants `a` and `b`, serving keep-alive requests on each connection:
/// `tenant=a` is routed to 380111111111, `tenant=b` to 380222222222. Its first answer on each
/// connection is followed, in the same write, by a second complete response nobody asked for
/// ([`STRAY`]); later requests on the connection get their own answer.
fn answers_twice_at_first(mut s: TcpStream) {
    let mut first = true;
    while let Some(head) = RawCrm::read_full_request(&mut s) {
        let request_line = head.lines().next().unwrap_or_default();
        let number = if request_line.contains("tenant=b") {
            "380222222222"
        } else {
            "380111111111"
        };
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{number}");
        if std::mem::take(&mut first) {
            out.push_str(STRAY);
        }
        if s.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// A tenant's scheme for [`answers_twice_at_first`]: `params.tenant` in the query.
fn tenant(crm: &RawCrm, name: &str) -> PreparedScheme {
    scheme(&[
        ("url", &crm.url()),
        ("method", "GET"),
        ("params.tenant", name),
        ("response_timeout_secs", DEADLINE),
    ])
}

/// Route `calls` in turn (each a tenant's scheme and the number it must get), 20 times over,
/// one call after another.
async fn route_in_turn(calls: &[(&PreparedScheme, &str)]) {
    let router = router();
    for run in 0..20 {
        for (i, (scheme, number)) in calls.iter().enumerate() {
            let report = router.route(scheme, &seed_call()).await;
            assert!(
                report.is_routed(),
                "run {run}, call {i}: {}",
                report.to_json()
            );
            assert_eq!(
                routed(&report).0,
                Target::Phone(number.to_string()),
                "run {run}, call {i}: a call got another call's answer"
            );
            assert_within(&report, LIMIT);
        }
    }
}

/// A response nobody asked for that comes with an answer (in the same write) never answers a
/// later call, of the same tenant or another: a connection holding unread bytes is closed
/// rather than reused (hyper's idle check, and the pool's check that an answer arrives after
/// its request). None gets 380999999999. For the stray no client can catch, see
/// [`another_tenants_call_never_shares_a_connection`].
#[tokio::test(flavor = "multi_thread")]
async fn a_stray_response_never_answers_another_call() {
    let crm = RawCrm::start(answers_twice_at_first);
    let (a, b) = (tenant(&crm, "a"), tenant(&crm, "b"));
    route_in_turn(&[
        (&a, "380111111111"),
        (&b, "380222222222"),
        (&a, "380111111111"),
    ])
    .await;

    let crm = RawCrm::start(answers_twice_at_first);
    let a = tenant(&crm, "a");
    route_in_turn(&[(&a, "380111111111"), (&a, "380111111111")]).await;
}

/// A CRM that, on a kept-alive connection, puts a response nobody asked for ([`STRAY`]) ahead
/// of every answer after the first: it arrives only once the next request has gone out, so
/// no client can tell it from that request's answer on that connection.
fn answers_twice_when_reused(mut s: TcpStream) {
    let mut answered = 0;
    while let Some(head) = RawCrm::read_full_request(&mut s) {
        let request_line = head.lines().next().unwrap_or_default();
        let number = if request_line.contains("tenant=b") {
            "380222222222"
        } else {
            "380111111111"
        };
        let stray = if answered > 0 { STRAY } else { "" };
        let out = format!("{stray}HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{number}");
        if s.write_all(out.as_bytes()).is_err() {
            return;
        }
        answered += 1;
    }
}

/// Another tenant's call never goes on a connection a CRM has used for a tenant: when tenant
/// B's call follows tenant A's to the same CRM, it opens its own connection, so whatever the
/// CRM still sends on A's (here, a response nobody asked for, ahead of the next answer)
/// cannot answer B. (On a connection shared by every scheme, B got 380999999999 every time.)
#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_call_never_shares_a_connection() {
    for run in 0..20 {
        let crm = RawCrm::start(answers_twice_when_reused);
        for (name, number) in [("a", "380111111111"), ("b", "380222222222")] {
            let report = router().route(&tenant(&crm, name), &seed_call()).await;
            assert_eq!(
                routed(&report).0,
                Target::Phone(number.into()),
                "run {run}, tenant {name}: {}",
                report.to_json()
            );
        }
    }
}

/// Requests on kept-alive connections that [`closes_on_the_next_request`] closed unanswered.
static CLOSED_UNANSWERED: AtomicUsize = AtomicUsize::new(0);

/// Answers the first request on each connection, keeping it alive, and closes the connection
/// when the next request comes, without answering: a CRM whose idle timeout fired just as the
/// request went out. (The request is read first, so the close is a FIN.)
fn closes_on_the_next_request(mut s: TcpStream) {
    if RawCrm::read_full_request(&mut s).is_none() {
        return;
    }
    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n380123456789")
        .is_err()
    {
        return;
    }
    if RawCrm::read_full_request(&mut s).is_some() {
        CLOSED_UNANSWERED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Answers one request, keeping the connection alive, and closes it 100 ms later.
fn closes_when_idle(mut s: TcpStream) {
    if RawCrm::read_full_request(&mut s).is_none() {
        return;
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n380123456789");
    std::thread::sleep(Duration::from_millis(100));
}

/// A kept-alive connection the CRM has closed costs a call nothing: a request that fails on a
/// reused connection before any answer goes again on a fresh one, within the deadline. The CRM
/// closes either as the request arrives (every call after the first finds its connection so)
/// or while the connection is idle between calls 150 ms apart. Every call is routed; none is a
/// `transport` error.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_the_crm_closed_is_replaced() {
    routes_every_call(
        &RawCrm::start(closes_on_the_next_request),
        30,
        Duration::ZERO,
    )
    .await;
    assert!(
        CLOSED_UNANSWERED.load(Ordering::SeqCst) > 0,
        "the calls reused kept-alive connections (the case this test is about)"
    );
    routes_every_call(
        &RawCrm::start(closes_when_idle),
        10,
        Duration::from_millis(150),
    )
    .await;
}

/// Route `calls` calls to `crm`, `pause` apart: every one is routed within the deadline.
async fn routes_every_call(crm: &RawCrm, calls: usize, pause: Duration) {
    let scheme = scheme(&[("url", &crm.url()), ("response_timeout_secs", DEADLINE)]);
    for run in 0..calls {
        let report = router().route(&scheme, &seed_call()).await;
        assert!(report.is_routed(), "run {run}: {}", report.to_json());
        assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
        assert_within(&report, LIMIT);
        tokio::time::sleep(pause).await;
    }
}

/// A valid answer whose body arrives in 45-byte TCP segments 10 ms apart (about 60 of them,
/// 0.6 s, well within the 3 s deadline) is routed. The CPU budget counts the time the
/// component spends running, not how often it is woken: it used to count every wake-up as a
/// whole epoch tick, so a valid, timely answer in more than about 42 segments was a `trap`.
/// (The body is what trickles: the component is woken for each piece of the body, while the
/// host waits for the whole head by itself.)
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_in_many_small_segments_stays_within_the_cpu_budget() {
    let crm = RawCrm::start(|mut s| {
        RawCrm::read_request(&mut s);
        let _ = s.set_nodelay(true);
        let body = format!(
            "{{\"pad\":\"{}\",\"n\":\"380123456789\"}}",
            "x".repeat(2700)
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for segment in response.as_bytes().chunks(45) {
            if s.write_all(segment).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let report = route(
        &[
            ("url", &crm.url()),
            ("import", "json"),
            ("destination_field", "n"),
            ("response_timeout_secs", "3"),
        ],
        &seed_call(),
    )
    .await;
    assert!(report.is_routed(), "{}", report.to_json());
    assert_eq!(routed(&report).0, Target::Phone("380123456789".into()));
    assert!(
        report.elapsed >= Duration::from_millis(500),
        "the answer really trickled in: {:?}",
        report.elapsed
    );
    assert_within(&report, Duration::from_millis(3500));
}

/// The request line names the path and query only, as HTTP/1.1 servers expect from a client
/// (the absolute form is for proxies, and simple CRMs route on the raw target).
#[tokio::test(flavor = "multi_thread")]
async fn the_request_line_carries_the_path_only() {
    static LINE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let crm = RawCrm::start(|mut s| {
        let head = RawCrm::read_full_request(&mut s).unwrap_or_default();
        *LINE.lock().unwrap() = head.lines().next().unwrap_or_default().to_owned();
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n101");
    });
    let url = format!("{}route?key=1", crm.url());
    let report = route(&[("url", &url), ("submission", "json")], &seed_call()).await;
    assert_eq!(routed(&report).0, Target::Phone("101".into()));
    assert_eq!(*LINE.lock().unwrap(), "POST /route?key=1 HTTP/1.1");
}
