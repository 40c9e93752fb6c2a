//! Outcome reports end to end: a PBX reports how a routed call ended to `serve`, which keeps
//! the report in its outbox and delivers it to the CRM through the real component, joined to
//! the routing by its decision id; seen in the exchange log and `/metrics`; teaching the
//! memory who answered; one tenant's outage delaying no other's reports.

use callroute_tests::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-0123456789";
const TENANT: &str = "acme-token-0123456789";
const CALL: &str = r#"{"call_id":"c1","caller":"+380501112233","callee":"380441234567"}"#;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn outcomes_at(crm: &TestCrm) -> Vec<CrmRequest> {
    crm.requests()
        .into_iter()
        .filter(|r| r.path == "/outcome")
        .collect()
}

#[test]
fn a_routed_call_and_its_outcome_meet_at_the_crm_under_one_decision() {
    let crm = TestCrm::start(|request| match request.path.as_str() {
        "/route" => CrmReply::html("manager_7"),
        _ => CrmReply::status(204),
    })
    .unwrap();
    let dir = TempDir::new("outcome-decision");
    let served = Served::start_with_outbox(
        router(),
        &format!(
            "[server]\napi_tokens = [\"{ADMIN}\"]\n\
             [[scheme]]\nname = \"acme\"\nurl = \"{}\"\noutcome_url = \"{}\"\n\
             signing_secret = \"s3cret\"\napi_tokens = [\"{TENANT}\"]\n\
             [scheme.outcome_params]\ncall = \"{{call_id}}\"\nstatus = \"{{status}}\"\n\
             by = \"{{answered_by}}\"\ntalk = \"{{talk_secs}}\"\ndecision = \"{{decision}}\"\n",
            crm.url("/route"),
            crm.url("/outcome"),
        ),
        dir.path(),
    );
    let tenant = bearer(TENANT);
    let auth = [("authorization", tenant.as_str())];

    // The routing answer carries its decision: the Idempotency-Key of its webhook.
    let routed = served.request("POST", "/v1/route/acme", &auth, CALL).json();
    let decision = routed["decision"].as_str().unwrap().to_owned();
    assert_eq!(decision.len(), 32, "{routed}");
    assert_eq!(
        crm.requests()[0].header("idempotency-key"),
        Some(decision.as_str())
    );
    let text = served.request(
        "POST",
        "/v1/route/acme",
        &[auth[0], ("accept", "text/plain")],
        CALL,
    );
    let other = text.header("x-callroute-decision").unwrap();
    assert!(
        other.len() == 32 && other != decision,
        "a decision per routing"
    );

    // Only the tenant's callers may report its calls.
    let outcome = json!({"call_id": "c1", "status": "answered", "answered_by": "manager_7",
        "ring_secs": 3, "talk_secs": 62, "decision": decision})
    .to_string();
    let refused = served.request("POST", "/v1/outcome/acme", &[], &outcome);
    assert_eq!(refused.status, 401);
    let accepted = served.request("POST", "/v1/outcome/acme", &auth, &outcome);
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let report = accepted.json()["report"].as_str().unwrap().to_owned();
    assert_eq!(accepted.json()["status"], "accepted");
    assert_ne!(report, decision, "a report has an id of its own");

    until("the report delivered", Duration::from_secs(10), || {
        outcomes_at(&crm).len() == 1
    });
    let delivered = &outcomes_at(&crm)[0];
    assert_eq!(delivered.header("idempotency-key"), Some(report.as_str()));
    assert_eq!(delivered.header("x-callroute-attempt"), Some("1"));
    assert_eq!(
        delivered.header("x-callroute-decision"),
        Some(decision.as_str())
    );
    assert_eq!(
        delivered.json(),
        json!({"by": "manager_7", "call": "c1", "decision": decision, "status": "answered",
               "talk": "62"})
    );
    // Signed exactly as routing webhooks are: v2 over the stamp and the body.
    let signature = delivered.header("x-callroute-signature").unwrap();
    let t: u64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    let stamp = format!("{report}.1..");
    let v2 =
        callroute_plugin::request::signature("s3cret", t, &[stamp.as_bytes(), &delivered.body]);
    assert!(signature.contains(&format!("v2={v2}")), "{signature}");

    // Seen by the operator: the call's exchange holds its report's delivery, and the counts.
    let admin = bearer(ADMIN);
    let exchange = || {
        served
            .request(
                "GET",
                "/v1/schemes/acme/exchanges/c1",
                &[("authorization", &admin)],
                "",
            )
            .json()
    };
    until("the delivery recorded", Duration::from_secs(5), || {
        exchange()["reports"][0]["delivered"] == true
    });
    let exchange = exchange();
    let shown = &exchange["reports"][0];
    assert_eq!(shown["report"], report.as_str());
    assert_eq!(shown["status"], "answered");
    assert_eq!(shown["attempts"][0]["status"], 204, "{shown}");
    let metrics = served
        .request("GET", "/metrics", &[("authorization", &admin)], "")
        .text();
    for line in [
        "callroute_reports_total{scheme=\"acme\",result=\"received\"} 1",
        "callroute_reports_total{scheme=\"acme\",result=\"delivered\"} 1",
        "callroute_outbox_reports{scheme=\"acme\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[test]
fn what_could_never_be_delivered_is_refused_at_once_naming_why() {
    let crm = TestCrm::start(|_| CrmReply::status(204)).unwrap();
    let dir = TempDir::new("outcome-refusals");
    let served = Served::start_with_outbox(
        router(),
        &format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{0}\"\noutcome_url = \"{0}\"\n\
             signing_secret = \"s3cret-signing-key\"\n\
             [[scheme]]\nname = \"plain\"\nurl = \"{0}\"\n",
            crm.url("/outcome"),
        ),
        dir.path(),
    );
    let post = |path: &str, body: &str| served.request("POST", path, &[], body);
    for (body, status, says) in [
        (r#"{"call_id":"c1"}"#, 400, "`status`"),
        (
            r#"{"call_id":"c1","status":"answered"}"#,
            400,
            "`answered_by`",
        ),
        (
            r#"{"call_id":"c1","status":"busy","talk_secs":-1}"#,
            400,
            "`talk_secs`",
        ),
        (
            r#"{"call_id":"c1","status":"busy","sip":486}"#,
            400,
            "`sip`",
        ),
        ("not json", 400, "not valid JSON"),
    ] {
        let answer = post("/v1/outcome/acme", body);
        assert_eq!(answer.status, status, "{body}: {}", answer.text());
        assert!(answer.text().contains(says), "{body}: {}", answer.text());
    }
    // The platform's own input comes back as written, a secret's start or not: a mask on it
    // would tell a caller which of its guesses begin a secret.
    for guess in ["s3cret-si…", "x3cret-si…"] {
        let body = format!(r#"{{"call_id":"c1","status":"{guess}"}}"#);
        let answer = post("/v1/outcome/acme", &body);
        assert_eq!(answer.status, 400);
        assert!(answer.text().contains(guess), "{guess}: {}", answer.text());
    }
    let ok = r#"{"call_id":"c1","status":"busy"}"#;
    let answer = post("/v1/outcome/plain", ok);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("`outcome_url`"), "{}", answer.text());
    assert_eq!(post("/v1/outcome/nobody", ok).status, 404);
    let huge = format!(r#"{{"call_id":"{}","status":"busy"}}"#, "x".repeat(70_000));
    assert_eq!(post("/v1/outcome/acme", &huge).status, 413);
    let get = served.request("GET", "/v1/outcome/acme", &[], "");
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    // Nothing refused reached the outbox, or the CRM.
    std::thread::sleep(Duration::from_millis(300));
    assert!(crm.requests().is_empty());
}

#[test]
fn one_tenants_crm_outage_delays_no_other_tenants_reports() {
    let hanging = TestCrm::start(|_| CrmReply::status(204).after(Duration::from_secs(30))).unwrap();
    let healthy = TestCrm::start(|_| CrmReply::status(204)).unwrap();
    let dir = TempDir::new("outcome-isolation");
    let served = Served::start_with_outbox(
        router(),
        &format!(
            "[[scheme]]\nname = \"down\"\nurl = \"{0}\"\noutcome_url = \"{0}\"\n\
             response_timeout_secs = 5\n\
             [[scheme]]\nname = \"up\"\nurl = \"{1}\"\noutcome_url = \"{1}\"\n",
            hanging.url("/outcome"),
            healthy.url("/outcome"),
        ),
        dir.path(),
    );
    let report = |scheme: &str, n: usize| {
        let body = format!(r#"{{"call_id":"{scheme}-{n}","status":"no-answer"}}"#);
        let answer = served.request("POST", &format!("/v1/outcome/{scheme}"), &[], &body);
        assert_eq!(answer.status, 202, "{}", answer.text());
    };
    for n in 0..50 {
        report("down", n);
    }
    until(
        "the hanging CRM holds its tenant's attempts",
        Duration::from_secs(5),
        || !hanging.requests().is_empty(),
    );
    let started = Instant::now();
    for n in 0..10 {
        report("up", n);
    }
    until(
        "the other tenant's reports delivered",
        Duration::from_secs(5),
        || healthy.requests().len() == 10,
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the other tenant's reports took {:?}",
        started.elapsed()
    );
    // The hanging tenant holds no more than its own few attempts.
    assert!(
        hanging.requests().len() <= 4,
        "{}",
        hanging.requests().len()
    );
}

#[test]
fn the_caller_goes_to_who_last_answered_them_when_the_crm_is_down() {
    let down = Arc::new(AtomicBool::new(false));
    let crm = {
        let down = down.clone();
        TestCrm::start(move |request| match request.path.as_str() {
            "/route" if down.load(Ordering::SeqCst) => CrmReply::status(503),
            // A ring group: both managers at once.
            "/route" => CrmReply::html("manager_1\nmanager_2"),
            _ => CrmReply::status(204),
        })
        .unwrap()
    };
    let dir = TempDir::new("outcome-last-agent");
    // A memory of its own: the process's shared router is every test's.
    let memory = callroute_host::memory::Memory::local(1000, 1 << 20);
    let served = Served::start_with_outbox(
        router().with_memory(memory),
        &format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{}\"\noutcome_url = \"{}\"\n\
             ring_strategy = \"parallel\"\nremember_secs = 600\n\
             allowed_sip_domains = [\"pbx.example.com\"]\n",
            crm.url("/route"),
            crm.url("/outcome"),
        ),
        dir.path(),
    );
    let route = || served.request("POST", "/v1/route/acme", &[], CALL).json();
    let targets = |routed: &Value| -> Vec<String> {
        routed["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["target"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = route();
    assert_eq!(targets(&first), ["manager_1", "manager_2"], "{first}");
    // The second member answered; the outcome does not repeat the caller: serve knows it.
    let answered = json!({"call_id": "c1", "status": "answered", "answered_by": "manager_2",
        "talk_secs": 40, "decision": first["decision"]})
    .to_string();
    assert_eq!(
        served
            .request("POST", "/v1/outcome/acme", &[], &answered)
            .status,
        202
    );
    // An answer the allowlist refuses teaches nothing.
    let outside = json!({"call_id": "c1", "status": "answered",
        "answered_by": "sip:evil@elsewhere.example.org", "caller": "+380501112233"})
    .to_string();
    assert_eq!(
        served
            .request("POST", "/v1/outcome/acme", &[], &outside)
            .status,
        202
    );

    down.store(true, Ordering::SeqCst);
    let second = route();
    assert_eq!(second["source"], "memory", "{second}");
    assert_eq!(targets(&second), ["manager_2"], "{second}");
    assert_eq!(second["error"]["kind"], "http-status", "{second}");
}

#[test]
fn a_report_sent_again_under_its_platforms_key_is_taken_once() {
    let crm = TestCrm::start(|_| CrmReply::status(204)).unwrap();
    let dir = TempDir::new("outcome-key");
    let served = Served::start_with_outbox(
        router(),
        &format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{0}\"\noutcome_url = \"{0}\"\n",
            crm.url("/outcome"),
        ),
        dir.path(),
    );
    let post = |key: &str, call: &str| {
        let body = format!(r#"{{"call_id":"{call}","status":"busy"}}"#);
        served.request(
            "POST",
            "/v1/outcome/acme",
            &[("idempotency-key", key)],
            &body,
        )
    };
    let first = post("pbx-report-1", "c1");
    assert_eq!(first.status, 202, "{}", first.text());
    let again = post("pbx-report-1", "c1");
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["report"], first.json()["report"]);
    let other = post("pbx-report-2", "c2");
    assert_ne!(other.json()["report"], first.json()["report"]);
    until("both reports delivered", Duration::from_secs(10), || {
        crm.requests().len() == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        crm.requests().len(),
        2,
        "the report sent again was not taken twice"
    );
    let refused = post("two words", "c3");
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("Idempotency-Key"),
        "{}",
        refused.text()
    );
}

/// Waiting reports follow their scheme: a reload that moves `outcome_url` delivers them to the
/// new one, with their ids.
#[test]
fn a_reload_moves_waiting_reports_to_the_new_outcome_url() {
    let old = TestCrm::start(|_| CrmReply::status(503)).unwrap();
    let new = TestCrm::start(|_| CrmReply::status(204)).unwrap();
    let dir = TempDir::new("outcome-reload");
    let file = dir.path().join("schemes.toml");
    let write = |crm: &TestCrm| {
        let toml = format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{0}\"\noutcome_url = \"{0}\"\n\
             api_tokens = [\"{TENANT}\"]\n",
            crm.url("/outcome")
        );
        std::fs::write(&file, toml).unwrap();
    };
    write(&old);
    let service = std::sync::Arc::new(
        callroute_host::serve::Service::load(router(), &file)
            .unwrap()
            .with_outbox(quick_outbox(&dir.path().join("outbox"))),
    );
    let served = Served::start_shared(service.clone());
    let tenant = bearer(TENANT);
    let mut ids = Vec::new();
    for n in 0..3 {
        let body = format!(r#"{{"call_id":"c{n}","status":"busy"}}"#);
        let answer = served.request(
            "POST",
            "/v1/outcome/acme",
            &[("authorization", &tenant)],
            &body,
        );
        assert_eq!(answer.status, 202, "{}", answer.text());
        ids.push(answer.json()["report"].as_str().unwrap().to_owned());
    }
    until("the old CRM refused each", Duration::from_secs(10), || {
        old.requests().len() >= 3
    });
    write(&new);
    let changes = service.reload().unwrap();
    assert_eq!(changes.changed, ["acme"]);
    until("the new CRM took each", Duration::from_secs(10), || {
        new.requests().len() == 3
    });
    let mut taken: Vec<String> = new
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    taken.sort();
    ids.sort();
    assert_eq!(
        taken, ids,
        "the same reports, under the ids they were accepted with"
    );
}

/// The 0.2.0 release build (`cargo xtask dist` before outcome reports), kept to prove that this
/// host still routes with it and says why it takes no reports for it.
const V0_2_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/legacy/callroute-router-0.2.0.wasm"
);

#[test]
fn a_0_2_component_routes_and_its_outcomes_are_refused_saying_why() {
    let crm = TestCrm::start(|_| CrmReply::html("manager_7")).unwrap();
    let wasm = std::fs::read(V0_2_COMPONENT).unwrap();
    let legacy = callroute_host::Router::new(
        &wasm,
        callroute_host::RouterConfig {
            allow_private_network: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(legacy.contract().version(), "0.2.0");
    let dir = TempDir::new("outcome-legacy");
    let served = Served::start_with_outbox(
        legacy,
        &format!(
            // The report's fields are never handed to a route call: the 0.2.0 component,
            // which would refuse them, routes as before.
            "[[scheme]]\nname = \"acme\"\nurl = \"{0}\"\noutcome_url = \"{0}\"\n\
             [scheme.outcome_params]\nstatus = \"{{status}}\"\n",
            crm.url("/route"),
        ),
        dir.path(),
    );
    let routed = served.request("POST", "/v1/route/acme", &[], CALL).json();
    assert_eq!(routed["destination"]["target"], "manager_7", "{routed}");
    assert!(routed.get("decision").is_none(), "{routed}");
    let answer = served.request(
        "POST",
        "/v1/outcome/acme",
        &[],
        r#"{"call_id":"c1","status":"busy"}"#,
    );
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("0.2.0"), "{}", answer.text());
}
