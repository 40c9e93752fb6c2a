//! The `callroute` command-line contract, run as a process against a CRM on 127.0.0.1.

use callroute_host::crm::{CrmReply, TestCrm};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use support::{Scratch, ServeProcess};

mod support;

const CALL: &str = r#"{"call_id":"pkv","caller":"+380501112233","callee":"380441234567","vars":{"uuid":"842d921d"}}"#;

fn callroute(args: &[&str], stdin: Option<&str>) -> Output {
    callroute_with_env(args, stdin, &[])
}

/// [`callroute`] with these environment variables set.
fn callroute_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callroute"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // A usage error ends the process before it reads its input: the pipe may be closed.
    match pipe.write_all(stdin.unwrap_or("").as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.unwrap(),
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// `callroute route --scheme <scheme> --call - <extra>` with [`CALL`] on stdin.
fn route_stdin(scheme: &str, extra: &[&str]) -> Output {
    route_stdin_with_env(scheme, extra, &[])
}

/// [`route_stdin`] with these environment variables set.
fn route_stdin_with_env(scheme: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["route", "--scheme", scheme, "--call", "-"];
    args.extend_from_slice(extra);
    callroute_with_env(&args, Some(CALL), env)
}

fn stdout_json(output: &Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON object on one line: {text:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The error of a call that was not routed: exit status 1, outcome `failed`, error `kind`.
fn failure(output: &Output, kind: &str) -> Value {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let json = stdout_json(output);
    assert_eq!(json["outcome"], "failed", "{json}");
    assert_eq!(json["error"]["kind"], kind, "{json}");
    json["error"].clone()
}

#[test]
fn a_routed_call_prints_the_destination_and_exits_0() {
    let crm = TestCrm::start(|_| CrmReply::json(serde_json::json!({"number_01": "3 80123456789"})))
        .unwrap();
    let dir = Scratch::new("routed");
    let scheme = dir.file(
        "s.toml",
        &format!(
            "url = \"{}\"\nsubmission = \"json\"\nimport = \"json\"\ndestination_field = \"number_01\"\nring_timeout_secs = 25\n",
            crm.url("/route")
        ),
    );
    let call = dir.file("call.json", CALL);
    let out = callroute(
        &[
            "route",
            "--scheme",
            &scheme,
            "--call",
            &call,
            "--allow-private-network",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = stdout_json(&out);
    assert_eq!(json["outcome"], "routed");
    assert_eq!(
        json["destination"],
        serde_json::json!({"kind": "phone", "target": "380123456789", "ring_timeout_secs": 25})
    );
    assert!(json["elapsed_ms"].is_u64(), "{json}");
    assert_eq!(json["destinations"][0], json["destination"]);
    assert_eq!(json["strategy"], "serial");
    assert_eq!(json["source"], "crm");
    // The decision's id: what its webhook carried as its Idempotency-Key.
    let request = crm.single_request();
    assert_eq!(
        json["decision"].as_str(),
        request.header("idempotency-key"),
        "{json}"
    );
    assert_eq!(json.as_object().unwrap().len(), 7, "{json}");
    assert_eq!(request.json()["uuid"], "842d921d");
}

#[test]
fn a_sample_crm_answer_is_read_without_calling_the_crm() {
    let dir = Scratch::new("crm-answer");
    // Nothing listens at crm.invalid: a routed call proves the CRM was not asked.
    let scheme = dir.file(
        "s.toml",
        "url = \"https://crm.invalid/route?token=s3cret\"\nimport = \"json\"\ndestination_field = \"routes.0.number\"\n",
    );
    let answer = dir.file(
        "answer.json",
        r#"{"routes":[{"number":"+380 12 345 6789"}]}"#,
    );
    let output = route_stdin(&scheme, &["--crm-answer", &answer]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["destination"]["target"], "+380123456789");

    let wrong = dir.file("wrong.json", r#"{"routes":[]}"#);
    failure(
        &route_stdin(&scheme, &["--crm-answer", &wrong]),
        "no-destination",
    );

    // The outbound guard still applies: a loopback CRM is refused unless allowed.
    let local = dir.file("local.toml", "url = \"http://127.0.0.1:9/route\"\n");
    let plain = dir.file("plain.txt", "380123456789");
    failure(&route_stdin(&local, &["--crm-answer", &plain]), "denied");
    let output = route_stdin(&local, &["--crm-answer", &plain, "--allow-private-network"]);
    assert_eq!(
        stdout_json(&output)["destination"]["target"],
        "380123456789"
    );

    let output = route_stdin(&scheme, &["--crm-answer", "/nonexistent/answer.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read CRM answer /nonexistent/answer.json"));
}

#[test]
fn a_failed_call_prints_the_error_and_exits_1() {
    let crm = TestCrm::start(|_| CrmReply::status(503)).unwrap();
    let dir = Scratch::new("failed");
    let scheme = dir.file("s.toml", &format!("url = \"{}\"\n", crm.url("/")));
    let out = route_stdin(&scheme, &["--allow-private-network"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json = stdout_json(&out);
    assert_eq!(json["outcome"], "failed");
    assert_eq!(json["error"]["kind"], "http-status");
    assert_eq!(json["error"]["status"], 503);
    assert!(json["error"]["message"].as_str().unwrap().contains("503"));
    assert!(json["elapsed_ms"].is_u64());
}

#[test]
fn an_invalid_scheme_is_a_config_failure_naming_the_field() {
    let dir = Scratch::new("config");
    let scheme = dir.file(
        "s.toml",
        "url = \"http://127.0.0.1:9/\"\nimport = \"json\"\n",
    );
    let error = failure(&route_stdin(&scheme, &[]), "config");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("destination_field"),
        "{error}"
    );
    assert!(
        error.get("status").is_none(),
        "status only for http-status: {error}"
    );
}

#[test]
fn loopback_is_denied_unless_allowed() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let dir = Scratch::new("denied");
    let scheme = dir.file("s.toml", &format!("url = \"{}\"\n", crm.url("/")));
    failure(&route_stdin(&scheme, &[]), "denied");
    assert!(crm.requests().is_empty());
}

#[test]
fn a_scheme_is_chosen_by_name_from_several() {
    let crm =
        TestCrm::start(|r| CrmReply::html(if r.path == "/b" { "202" } else { "101" })).unwrap();
    let dir = Scratch::new("named");
    let scheme = dir.file(
        "s.toml",
        &format!(
            "[[scheme]]\nname = \"a\"\nurl = \"{}\"\n\n[[scheme]]\nname = \"b\"\nurl = \"{}\"\n",
            crm.url("/a"),
            crm.url("/b")
        ),
    );
    let out = callroute(
        &[
            "route",
            "--scheme",
            &scheme,
            "--scheme-name",
            "b",
            "--call",
            "-",
            "--allow-private-network",
        ],
        Some(CALL),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["destination"]["target"], "202");

    let out = route_stdin(&scheme, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--scheme-name"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_or_malformed_inputs_exit_2_with_a_message() {
    let dir = Scratch::new("bad");
    let good_scheme = dir.file("s.toml", "url = \"http://127.0.0.1:9/\"\n");
    let bad_toml = dir.file("bad.toml", "url = \n");
    let bad_call = dir.file("bad.json", "{\"caller\": ");
    let typo_call = dir.file("typo.json", "{\"caler\": \"1\"}");
    let garbage = dir.file("garbage.wasm", "not wasm");
    for (args, expected) in [
        (
            vec!["route", "--scheme", "/nonexistent.toml", "--call", "-"],
            "cannot read scheme file /nonexistent.toml",
        ),
        (
            vec!["route", "--scheme", &bad_toml, "--call", "-"],
            "not valid TOML",
        ),
        (
            vec!["route", "--scheme", &good_scheme, "--call", &bad_call],
            "not valid JSON",
        ),
        (
            vec!["route", "--scheme", &good_scheme, "--call", &typo_call],
            "`caler`",
        ),
        (
            vec![
                "route",
                "--scheme",
                &good_scheme,
                "--call",
                "/nonexistent.json",
            ],
            "cannot read call file",
        ),
        (
            vec![
                "route",
                "--scheme",
                &good_scheme,
                "--call",
                "-",
                "--plugin",
                &garbage,
            ],
            "garbage.wasm",
        ),
        (vec!["route", "--call", "-"], "--scheme"),
        (
            vec!["route", "--scheme", &good_scheme, "--call", "-", "--bogus"],
            "--bogus",
        ),
    ] {
        let out = callroute(&args, Some(CALL));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn another_component_can_be_loaded_with_plugin() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let dir = Scratch::new("plugin");
    let scheme = dir.file("s.toml", &format!("url = \"{}\"\n", crm.url("/")));
    let plugin = callroute_host::PLUGIN_WASM_PATH;
    let out = callroute(
        &[
            "route",
            "--scheme",
            &scheme,
            "--call",
            "-",
            "--plugin",
            plugin,
            "--allow-private-network",
        ],
        Some(CALL),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["destination"]["target"], "101");
}

#[test]
fn demo_routes_every_combination() {
    let out = callroute(&["demo"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("phone 380123456789") || l.contains("sip sip:manager_7@pbx.example.com")
        })
        .collect();
    assert_eq!(rows.len(), 12, "{text}");
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn serve_logs_each_call_without_secrets_and_drains_on_sigterm() {
    let crm =
        TestCrm::start(|_| CrmReply::html("101").after(std::time::Duration::from_millis(500)))
            .unwrap();
    let dir = Scratch::new("serve");
    let schemes = dir.file(
        "schemes.toml",
        &format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{}\"\n[scheme.headers]\nAuthorization = \"Bearer HEADERSECRET\"\n",
            crm.url("/route?api_key=QUERYSECRET")
        ),
    );
    let mut server = ServeProcess::start(&schemes);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        callroute_tests::client::request(addr, "POST", "/v1/route/acme", &[], CALL.as_bytes())
            .unwrap()
    });
    while crm.requests().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let response = in_flight.join().unwrap();
    assert_eq!(response.status, 200, "the call in flight finished");
    assert_eq!(response.json()["destination"]["target"], "101");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let logs = server.logs();
    assert!(logs.contains("call routed"), "{logs}");
    assert!(
        logs.contains("scheme=\"acme\"") || logs.contains("scheme=acme"),
        "{logs}"
    );
    assert!(
        !logs.contains("QUERYSECRET") && !logs.contains("HEADERSECRET"),
        "{logs}"
    );
    assert_eq!(
        crm.single_request().header("authorization"),
        Some("Bearer HEADERSECRET")
    );
}

/// 150 clients that send a request head and stall, against a server allowed only 128 open
/// files: the server keeps its connections within that, times the stalled ones out, and a
/// legitimate call gets through (they used to take every descriptor, and every request after
/// them timed out).
#[test]
fn stalled_clients_cannot_exhaust_the_file_descriptors() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let dir = Scratch::new("stalled");
    let schemes = dir.file(
        "schemes.toml",
        &format!("[[scheme]]\nname = \"acme\"\nurl = \"{}\"\n", crm.url("/")),
    );
    let server = ServeProcess::start_with(&schemes, &["--read-timeout-secs", "1"], Some(128));
    let stalled: Vec<std::net::TcpStream> = (0..150)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
            stream
                .write_all(
                    b"POST /v1/route/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
                )
                .unwrap();
            stream
        })
        .collect();
    let start = std::time::Instant::now();
    let response =
        callroute_tests::client::request(server.addr, "GET", "/v1/route/acme?call_id=1", &[], b"")
            .unwrap();
    assert_eq!(response.json()["destination"]["target"], "101");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(8),
        "the call waited {:?}",
        start.elapsed()
    );
    drop(stalled);
}

#[test]
fn a_fallback_prints_the_destination_and_the_cause_and_exits_0() {
    let url = callroute_host::crm::refused_url("/");
    let dir = Scratch::new("fallback");
    let scheme = dir.file(
        "s.toml",
        &format!("url = \"{url}\"\nfallback = [\"reception\", \"+380441234567\"]\n"),
    );
    let out = route_stdin(&scheme, &["--allow-private-network"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = stdout_json(&out);
    assert_eq!(json["outcome"], "fallback");
    assert_eq!(
        json["destination"],
        serde_json::json!({"kind": "sip", "target": "reception", "ring_timeout_secs": 30})
    );
    assert_eq!(json["destinations"][1]["target"], "+380441234567");
    assert_eq!(json["error"]["kind"], "transport");
}

#[test]
fn secrets_come_from_the_environment_and_never_reach_the_output() {
    let crm = TestCrm::start(|r| {
        if r.header("authorization") == Some("Bearer env-token-123")
            && r.header("x-callroute-signature").is_some()
        {
            CrmReply::status(503)
        } else {
            CrmReply::status(401)
        }
    })
    .unwrap();
    let dir = Scratch::new("secrets");
    let scheme = dir.file(
        "s.toml",
        &format!(
            "url = \"{}\"\nsigning_secret = \"${{env:CALLROUTE_TEST_SIGNING}}\"\n[headers]\nAuthorization = \"Bearer ${{env:CALLROUTE_TEST_TOKEN}}\"\n",
            crm.url("/?key=querysecret")
        ),
    );
    let run =
        |env: &[(&str, &str)]| route_stdin_with_env(&scheme, &["--allow-private-network"], env);
    let out = run(&[
        ("CALLROUTE_TEST_TOKEN", "env-token-123"),
        ("CALLROUTE_TEST_SIGNING", "env-signing-456"),
    ]);
    let json = stdout_json(&out);
    assert_eq!(
        json["error"]["status"], 503,
        "the CRM saw the token and a signature: {json}"
    );
    let everything = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for secret in ["env-token-123", "env-signing-456", "querysecret"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }

    let error = failure(&run(&[("CALLROUTE_TEST_SIGNING", "x")]), "config");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("${env:CALLROUTE_TEST_TOKEN}"),
        "{error}"
    );
    assert_eq!(
        crm.requests().len(),
        1,
        "nothing is sent without the secret"
    );
}

#[test]
fn a_memory_store_that_is_not_a_redis_url_is_refused_at_start() {
    let dir = Scratch::new("memory-store");
    let schemes = dir.file("s.toml", "name = \"acme\"\nurl = \"http://127.0.0.1:9/\"\n");
    let out = callroute(
        &[
            "serve",
            "--schemes",
            &schemes,
            "--listen",
            "127.0.0.1:0",
            "--memory-store",
            "memcached://127.0.0.1:11211",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--memory-store"), "{}", stderr(&out));
}

#[test]
fn sandbox_options_are_checked() {
    let dir = Scratch::new("sandbox");
    let scheme = dir.file("s.toml", "url = \"http://127.0.0.1:9/\"\n");
    let not_pem = dir.file("ca.pem", "not a certificate");
    for (extra, expected) in [
        (
            vec!["--ca-cert", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem",
        ),
        (vec!["--ca-cert", not_pem.as_str()], "no PEM certificate"),
        (vec!["--memory-limit-mb", "0"], "--memory-limit-mb"),
        (vec!["--cpu-limit-ms", "1"], "--cpu-limit-ms"),
    ] {
        let mut args = vec!["route", "--scheme", &scheme, "--call", "-"];
        args.extend(extra.iter().copied());
        let out = callroute(&args, Some(CALL));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_cache_dir_keeps_the_compiled_component_between_runs() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let dir = Scratch::new("cache");
    let scheme = dir.file("s.toml", &format!("url = \"{}\"\n", crm.url("/")));
    let cache = dir.0.join("cache");
    let cache_arg = cache.display().to_string();
    for _ in 0..2 {
        let out = callroute(
            &[
                "route",
                "--scheme",
                &scheme,
                "--call",
                "-",
                "--allow-private-network",
                "--cache-dir",
                &cache_arg,
            ],
            Some(CALL),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout_json(&out)["destination"]["target"], "101");
    }
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one precompiled component: {entries:?}");
    assert!(entries[0].file_name().to_string_lossy().ends_with(".cwasm"));
}

/// Secrets never reach the logs, at any level: with `RUST_LOG=trace`, dependencies trace every
/// WASI call with its arguments (the URL with its query, header values, the call's numbers).
#[test]
fn nothing_secret_is_logged_even_at_trace_level() {
    let crm = TestCrm::start(|_| CrmReply::new(200, "text/plain", "380123456789")).unwrap();
    let dir = Scratch::new("trace");
    let scheme = dir.file(
        "s.toml",
        &format!(
            "url = \"{}\"\nsubmission = \"json\"\nsigning_secret = \"${{env:CALLROUTE_TEST_SIGNING}}\"\n\
             [headers]\nAuthorization = \"Bearer ${{env:CALLROUTE_TEST_TOKEN}}\"\n",
            crm.url("/route?api_key=QUERYSECRET42")
        ),
    );
    let output = route_stdin_with_env(
        &scheme,
        &["--allow-private-network"],
        &[
            ("RUST_LOG", "trace"),
            ("CALLROUTE_TEST_SIGNING", "SIGNINGSECRET42"),
            ("CALLROUTE_TEST_TOKEN", "TOKENSECRET42"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let logged = stderr(&output);
    // Trace logging was on: callroute's own debug events are there.
    assert!(logged.contains("component ready"), "{logged}");
    for secret in [
        "QUERYSECRET42",
        "SIGNINGSECRET42",
        "TOKENSECRET42",
        "380501112233",
        "380441234567",
    ] {
        assert!(
            !logged.contains(secret),
            "`{secret}` was logged:\n{}",
            logged
                .lines()
                .filter(|l| l.contains(secret))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Reloads under load: 20 of them, one with an invalid file, while calls go on; new schemes
/// appear, removed ones answer 404, and no call fails.
#[test]
fn sighup_reloads_the_schemes_while_calls_go_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let dir = Scratch::new("reload");
    let scheme = |name: &str| {
        format!(
            "[[scheme]]\nname = \"{name}\"\nurl = \"{}\"\n",
            crm.url("/route")
        )
    };
    let schemes = dir.file("schemes.toml", &scheme("acme"));
    let mut server = ServeProcess::start(&schemes);
    let addr = server.addr;
    let hangup = || {
        let sent = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let post = move |name: &str| {
        callroute_tests::client::request(
            addr,
            "POST",
            &format!("/v1/route/{name}"),
            &[],
            CALL.as_bytes(),
        )
        .unwrap()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (routed, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, routed, failed) = (stop.clone(), routed.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let response = post("acme");
                    if response.status == 200 && response.json()["outcome"] == "routed" {
                        routed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    // A steady load, not a flood of connections (each one is new).
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        })
        .collect();

    for i in 0..20 {
        let text = match i {
            // An invalid file changes nothing.
            7 => format!("{}this is not TOML", scheme("acme")),
            _ if i % 2 == 0 => format!("{}{}", scheme("acme"), scheme("globex")),
            _ => scheme("acme"),
        };
        std::fs::write(&schemes, text).unwrap();
        hangup();
        // A reload reads the file until it has settled (two reads 50 ms apart agree): the
        // next change comes after that.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "calls failed during reloads"
    );
    assert!(routed.load(Ordering::SeqCst) > 20);

    // The last file (i = 19) has acme alone.
    assert_eq!(post("globex").status, 404);
    std::fs::write(&schemes, format!("{}{}", scheme("acme"), scheme("globex"))).unwrap();
    hangup();
    let started = std::time::Instant::now();
    while post("globex").status != 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "globex never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let metrics = callroute_tests::client::request(addr, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    assert!(
        // SIGHUPs that arrive while a reload runs are one (signals coalesce): at least most.
        (15..=20).any(|n| metrics.contains(&format!(
            "callroute_config_reloads_total{{result=\"ok\"}} {n}"
        ))),
        "{metrics}"
    );
    assert!(
        metrics.contains("callroute_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    let _ = server.child.kill();
    let _ = server.child.wait();
    let logs = server.logs();
    assert!(
        logs.contains("schemes not reloaded; still serving the previous ones"),
        "{logs}"
    );
    assert!(logs.contains("is not valid TOML"), "{logs}");
}

#[test]
fn check_lists_every_problem_of_a_schemes_file() {
    let dir = Scratch::new("check");
    let good = dir.file(
        "good.toml",
        "[[scheme]]\nname = \"acme\"\nurl = \"http://crm.example.com/\"\n\
         [[scheme]]\nname = \"globex\"\nurl = \"http://crm.example.com/\"\nsigning_secret = \"${env:CHECK_SET}\"\n",
    );
    let output = callroute_with_env(&["check", &good], None, &[("CHECK_SET", "s3cret")]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).ends_with(": ok\n"));

    let bad = dir.file(
        "bad.toml",
        "[server]\napi_tokens = \"short\"\n\
         [[scheme]]\nname = \"acme\"\nurl = \"ftp://crm/\"\n\
         [[scheme]]\nurl = \"http://crm/\"\nretries = 9\n\
         [[scheme]]\nname = \"globex\"\nurl = \"http://crm/\"\nsigning_secret = \"${env:CHECK_UNSET_ONE}\"\n\
         [scheme.headers]\nAuthorization = \"Bearer ${env:CHECK_UNSET_TWO}\"\n",
    );
    let output = callroute(&["check", &bad], None);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "[server] scheme field `api_tokens`: a token must be at least 16 characters",
        "scheme `acme`: scheme field `url`: scheme `ftp` is not supported",
        "scheme #2 has no `name`",
        "scheme #2: scheme field `retries`",
        "scheme `globex`: scheme field `signing_secret`: refers to ${env:CHECK_UNSET_ONE}, which is not set",
        "scheme `globex`: scheme field `headers.Authorization`: refers to ${env:CHECK_UNSET_TWO}, which is not set",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(expected)),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        !stdout.contains("short\""),
        "a token reached the output: {stdout}"
    );
}

#[test]
fn serving_beyond_loopback_without_tokens_is_warned_about() {
    use std::io::BufRead;
    let dir = Scratch::new("exposed");
    let schemes = dir.file(
        "schemes.toml",
        "[[scheme]]\nname = \"open\"\nurl = \"http://crm.example.com/\"\n\
         [[scheme]]\nname = \"closed\"\nurl = \"http://crm.example.com/\"\napi_tokens = \"closed-token-0123456789\"\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_callroute"))
        .args(["serve", "--schemes", &schemes, "--listen", "0.0.0.0:0"])
        .current_dir(std::path::Path::new(&schemes).parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on http://0.0.0.0:"), "{line}");
    // The warnings follow the announcement; the server then waits for connections.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("schemes that need no token") && logs.contains("open"),
        "{logs}"
    );
    assert!(logs.contains("/metrics open"), "{logs}");
    assert!(!logs.contains("closed-token"), "{logs}");
}

/// `route --trace`: every attempt, what was sent and what came back, with no secret in it.
#[test]
fn trace_shows_each_attempt_without_secrets() {
    // The CRM echoes what it was sent, secrets included: the record must mask them.
    let primary = TestCrm::start(|r| {
        let token = r
            .header("authorization")
            .unwrap_or_default()
            .replace("Bearer ", "");
        CrmReply::new(
            503,
            "text/plain",
            format!(
                "busy; you sent {} with {token}",
                String::from_utf8_lossy(&r.body)
            ),
        )
    })
    .unwrap();
    let secondary = TestCrm::start(|_| CrmReply::html("manager_7")).unwrap();
    let dir = Scratch::new("trace");
    let scheme = dir.file(
        "s.toml",
        &format!(
            "url = \"{}\"\nfallback_url = \"{}\"\nsubmission = \"form\"\nretries = 1\n\
             [params]\ncaller = \"{{caller}}\"\nkey = \"${{env:CALLROUTE_TRACE_KEY}}\"\n\
             [headers]\nAuthorization = \"Bearer header-secret-789\"\n",
            primary.url("/route?token=query-secret-456"),
            // A secret in a URL's path, as a Bitrix-style webhook URL has.
            secondary.url("/route/${env:CALLROUTE_TRACE_PATH}"),
        ),
    );
    let out = route_stdin_with_env(
        &scheme,
        &["--allow-private-network", "--trace"],
        &[
            ("CALLROUTE_TRACE_KEY", "env-secret-123"),
            ("CALLROUTE_TRACE_PATH", "path-secret-321"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let logs = stderr(&out);
    let trace: Value = logs
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no trace in {logs}"));
    assert_eq!(trace["outcome"], "routed");
    assert_eq!(trace["caller"], "+38050•••2233");
    let attempts = trace["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{trace}");
    let primary_url = primary.url("/route");
    for attempt in &attempts[..2] {
        assert_eq!(attempt["method"], "POST");
        assert_eq!(attempt["url"], primary_url.as_str());
        assert_eq!(attempt["status"], 503);
        // The caller's number is masked in the bodies as in the record.
        assert_eq!(attempt["request_body"], "caller=%2B380501•••2233&key=•••");
        assert_eq!(
            attempt["answer"],
            "busy; you sent caller=%2B380501•••2233&key=••• with •••"
        );
    }
    assert_eq!(attempts[2]["status"], 200);
    assert_eq!(attempts[2]["answer"], "manager_7");
    assert_eq!(attempts[2]["url"], secondary.url("/route/•••").as_str());
    for secret in [
        "env-secret-123",
        "path-secret-321",
        "query-secret-456",
        "header-secret-789",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
}

#[test]
fn report_sends_an_outcome_once_and_traces_it_masked() {
    let crm = TestCrm::start(|request| match request.path.as_str() {
        "/outcome" => CrmReply::status(204),
        _ => CrmReply::status(503),
    })
    .unwrap();
    let dir = Scratch::new("report");
    let scheme = |path: &str| {
        dir.file(
            &format!("{}.toml", path.trim_start_matches('/')),
            &format!(
                "url = \"{}\"\noutcome_url = \"{}\"\n[outcome_params]\nstatus = \"{{status}}\"\n\
                 key = \"OUTCOMESECRET\"\n",
                crm.url("/route"),
                crm.url(&format!("{path}?token=QUERYSECRET")),
            ),
        )
    };
    let outcome = dir.file(
        "outcome.json",
        r#"{"call_id":"c1","status":"busy","hangup_cause":"486","caller":"+380501112233"}"#,
    );
    let out = callroute(
        &[
            "report",
            "--scheme",
            &scheme("/outcome"),
            "--outcome",
            &outcome,
            "--trace",
            "--allow-private-network",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = stdout_json(&out);
    assert_eq!(json["status"], "delivered");
    let sent = crm.single_request();
    assert_eq!(sent.header("idempotency-key"), json["report"].as_str());
    assert_eq!(sent.json()["status"], "busy");
    let trace: Value = serde_json::from_str(stderr(&out).lines().last().unwrap()).unwrap();
    assert_eq!(trace["delivered"], true, "{trace}");
    assert_eq!(trace["attempts"][0]["status"], 204, "{trace}");
    let shown = trace.to_string();
    assert!(
        !shown.contains("QUERYSECRET") && !shown.contains("OUTCOMESECRET"),
        "{shown}"
    );
    // A CRM that does not take it: exit 1, and why.
    let out = callroute(
        &[
            "report",
            "--scheme",
            &scheme("/refused"),
            "--outcome",
            &outcome,
            "--allow-private-network",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["error"]["kind"], "http-status");
    // An outcome that names no status is a usage error naming the field.
    let bad = dir.file("bad.json", r#"{"call_id":"c1"}"#);
    let out = callroute(
        &["report", "--scheme", &scheme("/outcome"), "--outcome", &bad],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`status`"), "{}", stderr(&out));
}
