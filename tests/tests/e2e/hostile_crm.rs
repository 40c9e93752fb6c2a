//! Hostile CRMs. Each case asserts the outcome and that the call ended within its deadline
//! plus 0.5 s (the deadline here is 1 s).

use callroute_tests::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

const DEADLINE: &str = "1";
const LIMIT: Duration = Duration::from_millis(1500);

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
            "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n",
            br#"{"n":[1,2,3]} "#,
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
