//! The outbox's promise, as a process keeps it: a report `serve` has answered 202 for reaches
//! the CRM, across a SIGKILL and a restart, under the id it was accepted with.

use callroute_host::crm::{CrmReply, TestCrm};
use callroute_tests::until;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{Scratch, ServeProcess};

mod support;

const REPORTS: usize = 1000;

#[test]
fn accepted_reports_reach_the_crm_across_a_sigkill_and_a_restart() {
    // The CRM is down (503) until it comes back.
    let up = Arc::new(AtomicBool::new(false));
    let crm = {
        let up = up.clone();
        TestCrm::start(move |_| {
            if up.load(Ordering::SeqCst) {
                CrmReply::status(204)
            } else {
                CrmReply::status(503)
            }
        })
        .unwrap()
    };
    let dir = Scratch::new("outbox-crash");
    let schemes = dir.file(
        "schemes.toml",
        &format!(
            // Breakers off: every attempt reaches the CRM, so many are in flight when the
            // server is killed.
            "name = \"acme\"\nurl = \"{}\"\noutcome_url = \"{}\"\nbreaker_failures = 0\n\
             [outcome_params]\ncall_id = \"{{call_id}}\"\nstatus = \"{{status}}\"\n",
            crm.url("/route"),
            crm.url("/outcome"),
        ),
    );
    let outbox = dir.0.join("outbox").display().to_string();
    let options = ["--outbox", &outbox, "--outbox-max-backoff-secs", "1"];
    let server = ServeProcess::start_with(&schemes, &options, None);
    let addr = server.addr;

    // 1,000 reports, from 8 clients at once; each accepted (202) with its own id.
    let clients: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for n in (client..REPORTS).step_by(8) {
                    let body = format!(r#"{{"call_id":"call-{n}","status":"no-answer"}}"#);
                    let answer = callroute_tests::client::request(
                        addr,
                        "POST",
                        "/v1/outcome/acme",
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    )
                    .unwrap();
                    assert_eq!(answer.status, 202, "{}", answer.text());
                    let json = answer.json();
                    assert_eq!(json["status"], "accepted");
                    accepted.push((
                        json["report"].as_str().unwrap().to_owned(),
                        format!("call-{n}"),
                    ));
                }
                accepted
            })
        })
        .collect();
    let accepted: HashMap<String, String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(accepted.len(), REPORTS, "every report has an id of its own");

    // Mid-delivery: attempts are going out (and failing) when the server is killed.
    until("attempts reach the CRM", Duration::from_secs(30), || {
        crm.requests()
            .iter()
            .filter(|r| r.path == "/outcome")
            .count()
            > 200
    });
    drop(server); // SIGKILL, and wait for it.

    let restarted = ServeProcess::start_with(&schemes, &options, None);
    up.store(true, Ordering::SeqCst);
    let delivered = || -> HashMap<String, String> {
        // What the CRM took (after it came back), by Idempotency-Key: the call it reports.
        crm.requests()
            .iter()
            .filter(|r| r.path == "/outcome")
            .filter_map(|r| {
                let key = r.header("idempotency-key")?.to_owned();
                Some((key, r.json()["call_id"].as_str()?.to_owned()))
            })
            .collect()
    };
    until(
        "every accepted report delivered",
        Duration::from_secs(90),
        || {
            let delivered = delivered();
            accepted.keys().all(|id| delivered.contains_key(id))
        },
    );
    // Every attempt of a report, before and after the kill, carried its id, and each id
    // always the same call: the CRM can drop duplicates by it.
    let mut calls_by_key: HashMap<String, HashSet<String>> = HashMap::new();
    for request in crm.requests().iter().filter(|r| r.path == "/outcome") {
        let key = request
            .header("idempotency-key")
            .expect("every report has its key");
        let call = request.json()["call_id"].as_str().unwrap().to_owned();
        calls_by_key.entry(key.to_owned()).or_default().insert(call);
    }
    for (id, call) in &accepted {
        assert_eq!(
            calls_by_key.get(id),
            Some(&HashSet::from([call.clone()])),
            "report {id}"
        );
    }
    assert_eq!(
        calls_by_key.len(),
        REPORTS,
        "no report the server did not accept"
    );
    // Nothing is left waiting, and nothing expired.
    let metrics = || {
        callroute_tests::client::request(restarted.addr, "GET", "/metrics", &[], b"")
            .unwrap()
            .text()
    };
    until("the outbox empty", Duration::from_secs(10), || {
        metrics().contains("callroute_outbox_reports{scheme=\"acme\"} 0")
    });
    let metrics = metrics();
    assert!(!metrics.contains("result=\"expired\""), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "callroute_reports_total{{scheme=\"acme\",result=\"delivered\"}} {REPORTS}"
        )),
        "the restarted server delivered every report: {metrics}"
    );
}
