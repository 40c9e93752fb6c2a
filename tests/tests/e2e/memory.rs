//! The memory of the last good answer (`remember_secs`): a caller the CRM routed is routed
//! there again when the CRMs fail, within the deadline and marked `source: "memory"`; not
//! when the CRM answered "no destination", not once expired, not for another caller; in
//! process, and shared by two `serve` instances through a real Redis that can go down
//! without failing a call.

use callroute_host::memory::Memory;
use callroute_tests::*;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

const UP: u8 = 0;
const DOWN: u8 = 1;
const NO_DESTINATION: u8 = 2;

/// A CRM that routes to `101`, answers 503 or answers 204, as `mode` says.
fn switchable_crm() -> (TestCrm, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(UP));
    let seen = mode.clone();
    let crm = TestCrm::start(move |_| match seen.load(Ordering::SeqCst) {
        UP => CrmReply::html("101"),
        DOWN => CrmReply::status(503),
        _ => CrmReply::status(204),
    })
    .unwrap();
    (crm, mode)
}

fn schemes(crm: &TestCrm, remember_secs: u32) -> String {
    format!(
        "name = \"acme\"\nurl = \"{}\"\nfallback = \"reception\"\nremember_secs = {remember_secs}\n\
         response_timeout_secs = 1\n",
        crm.url("/")
    )
}

fn call(served: &Served, caller: &str) -> Value {
    let started = Instant::now();
    let answer = served
        .request(
            "POST",
            "/v1/route/acme",
            &[],
            &format!(r#"{{"call_id":"c","caller":"{caller}","callee":"101"}}"#),
        )
        .json();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "within the deadline: {answer}"
    );
    answer
}

/// A router with a memory of its own: tests running at once never see each other's callers.
fn own_memory() -> callroute_host::Router {
    router().with_memory(Memory::local(1000, 1 << 20))
}

fn routed_by(answer: &Value) -> (&str, &str) {
    (
        answer["source"].as_str().unwrap_or("none"),
        answer["destination"]["target"].as_str().unwrap_or("none"),
    )
}

#[test]
fn a_caller_is_routed_where_the_crm_last_routed_them_when_it_fails() {
    let (crm, mode) = switchable_crm();
    let served = Served::start(own_memory(), &schemes(&crm, 60));
    assert_eq!(routed_by(&call(&served, "380501112233")), ("crm", "101"));

    mode.store(DOWN, Ordering::SeqCst);
    let answer = call(&served, "380501112233");
    assert_eq!(routed_by(&answer), ("memory", "101"), "{answer}");
    assert_eq!(answer["outcome"], "fallback");
    assert_eq!(answer["error"]["kind"], "http-status");
    // Another caller has nothing remembered: the static fallback.
    assert_eq!(
        routed_by(&call(&served, "380509999999")),
        ("fallback", "reception")
    );
    // The plain-text answer says where the destination comes from.
    let text = served.request(
        "POST",
        "/v1/route/acme",
        &[("accept", "text/plain")],
        r#"{"caller":"380501112233"}"#,
    );
    assert_eq!(text.text(), "101");
    assert_eq!(text.header("x-route-source"), Some("memory"));

    // A CRM that answers "no destination" has answered: the static fallback, not the memory.
    mode.store(NO_DESTINATION, Ordering::SeqCst);
    assert_eq!(
        routed_by(&call(&served, "380501112233")),
        ("fallback", "reception")
    );
    let metrics = served.request("GET", "/metrics", &[], "").text();
    assert!(
        metrics.contains("callroute_memory_total{result=\"hit\"} 2"),
        "{metrics}"
    );
}

#[test]
fn what_is_remembered_expires() {
    let (crm, mode) = switchable_crm();
    let served = Served::start(own_memory(), &schemes(&crm, 1));
    assert_eq!(routed_by(&call(&served, "380501112233")), ("crm", "101"));
    std::thread::sleep(Duration::from_millis(1100));
    mode.store(DOWN, Ordering::SeqCst);
    assert_eq!(
        routed_by(&call(&served, "380501112233")),
        ("fallback", "reception")
    );
}

#[test]
fn two_instances_share_what_they_learn_through_redis_which_may_go_down() {
    let mut redis = RedisServer::start();
    let (crm, mode) = switchable_crm();
    let serve = || {
        let memory = Memory::redis(&redis.url()).unwrap();
        Served::start(router().with_memory(memory), &schemes(&crm, 60))
    };
    let (first, second) = (serve(), serve());
    assert_eq!(routed_by(&call(&first, "380501112233")), ("crm", "101"));

    // Learned through the first, used by the second (the write is off the call's path, so
    // it may take a moment to land).
    mode.store(DOWN, Ordering::SeqCst);
    let start = Instant::now();
    loop {
        let answer = call(&second, "380501112233");
        if routed_by(&answer) == ("memory", "101") {
            break;
        }
        assert_eq!(routed_by(&answer), ("fallback", "reception"));
        assert!(start.elapsed() < Duration::from_secs(5), "never shared");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The store goes down: no call fails, each gets the static fallback within the deadline,
    // and the errors are counted.
    redis.stop();
    for _ in 0..3 {
        assert_eq!(
            routed_by(&call(&second, "380501112233")),
            ("fallback", "reception")
        );
    }
    mode.store(UP, Ordering::SeqCst);
    assert_eq!(routed_by(&call(&second, "380501112233")), ("crm", "101"));
    let metrics = second.request("GET", "/metrics", &[], "").text();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("callroute_memory_total{result=\"error\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no memory error count in {metrics}"));
    assert!(errors >= 1, "{metrics}");

    // And it comes back: the instances use it again.
    redis.restart();
    let start = Instant::now();
    loop {
        mode.store(UP, Ordering::SeqCst);
        call(&first, "380507777777");
        mode.store(DOWN, Ordering::SeqCst);
        if routed_by(&call(&second, "380507777777")) == ("memory", "101") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never used again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One command to the Redis at `url` (`redis://127.0.0.1:PORT/0`) and its one-line reply
/// (`+OK`, `:1`, `-OOM …`), without the line end: enough to set a store up.
fn redis_command(url: &str, args: &[&str]) -> String {
    redis_lines(url, args, |_| 0).remove(0)
}

/// The keys matching `pattern` in the Redis at `url`.
fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let lines = redis_lines(url, &["KEYS", pattern], |first| {
        // `*N`, then a `$len` line and the key for each.
        2 * first[1..].parse::<usize>().unwrap()
    });
    lines[1..].chunks(2).map(|pair| pair[1].clone()).collect()
}

fn redis_lines(url: &str, args: &[&str], more: impl Fn(&str) -> usize) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let address = url.trim_start_matches("redis://").trim_end_matches("/0");
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command += &format!("${}\r\n{arg}\r\n", arg.len());
    }
    (&stream).write_all(command.as_bytes()).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut read_line = || {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    };
    let first = read_line();
    let count = more(first.as_str());
    let mut lines = vec![first];
    for _ in 0..count {
        lines.push(read_line());
    }
    lines
}

/// `callroute_memory_total{result}` as `/metrics` shows it now.
fn memory_count(served: &Served, result: &str) -> u64 {
    let metrics = served.request("GET", "/metrics", &[], "").text();
    let prefix = format!("callroute_memory_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// An error in one reply (a key of the wrong type, a server at `maxmemory`) fails that lookup or
/// write only: the remembered callers are still recalled.
#[test]
fn an_error_in_one_reply_fails_that_lookup_or_write_only() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (crm, mode) = switchable_crm();
    let served = Served::start(
        router().with_memory(Memory::redis(&url).unwrap()),
        &schemes(&crm, 600),
    );
    // Writes are off the call's path: wait until they are counted.
    let wait_for = |result: &str, count: u64| {
        let start = Instant::now();
        while memory_count(&served, result) < count {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{result} never reached {count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A caller whose key holds a list (another program's key, or a bug): WRONGTYPE on lookup.
    let wrong = "380500000999";
    assert_eq!(routed_by(&call(&served, wrong)), ("crm", "101"));
    wait_for("stored", 1);
    let keys = redis_keys(&url, "callroute:memory:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(redis_command(&url, &["DEL", &keys[0]]), ":1");
    assert_eq!(redis_command(&url, &["RPUSH", &keys[0], "x"]), ":1");

    // 40 callers remembered while the store has room.
    let remembered: Vec<String> = (0..40).map(|i| format!("3805010{i:05}")).collect();
    for caller in &remembered {
        assert_eq!(routed_by(&call(&served, caller)), ("crm", "101"));
    }
    wait_for("stored", 41);

    // Another tenant fills the store: at `maxmemory` with `noeviction`, every write is refused
    // with OOM from now on (reads still work).
    let filler = "x".repeat(2 << 20);
    assert_eq!(
        redis_command(&url, &["SET", "another-tenant", &filler]),
        "+OK"
    );
    assert_eq!(
        redis_command(&url, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "+OK"
    );
    assert_eq!(
        redis_command(&url, &["CONFIG", "SET", "maxmemory", "1mb"]),
        "+OK"
    );
    assert!(redis_command(&url, &["SET", "probe", "1"]).starts_with("-OOM"));

    // The wrong-typed caller gets the static fallback: that lookup's error is its own.
    mode.store(DOWN, Ordering::SeqCst);
    assert_eq!(routed_by(&call(&served, wrong)), ("fallback", "reception"));
    wait_for("error", 1);
    // Each new caller's write fails with OOM; a remembered caller right after is still
    // recalled (with the old code the OOM dropped the shared connection for 1 s).
    for (i, caller) in remembered.iter().enumerate() {
        mode.store(UP, Ordering::SeqCst);
        let new_caller = format!("3805020{i:05}");
        assert_eq!(routed_by(&call(&served, &new_caller)), ("crm", "101"));
        wait_for("error", 2 + i as u64);
        mode.store(DOWN, Ordering::SeqCst);
        let answer = call(&served, caller);
        assert_eq!(
            routed_by(&answer),
            ("memory", "101"),
            "caller {i}: {answer}"
        );
    }
    assert_eq!(memory_count(&served, "hit"), 40);
    assert_eq!(memory_count(&served, "error"), 41);
}
