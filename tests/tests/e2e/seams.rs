//! Where features meet (issue 18): reloads held to the component's rules, trials kept out of
//! the memory, names in paths with one spelling, one spelling of each kind and state, and
//! errors that quote a CRM's answer masked in every answer `serve` gives.

use callroute_host::serve::Service;
use callroute_tests::*;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ADMIN: &str = "admin-token-0123456789";
const CALL: &str = r#"{"call_id":"c1","caller":"+380501112233","callee":"380441234567"}"#;

fn as_admin() -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {ADMIN}"))]
}

fn admin(
    served: &Served,
    method: &str,
    path: &str,
    body: &str,
) -> callroute_tests::client::Response {
    let auth = as_admin();
    let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    served.request(method, path, &headers, body)
}

/// A schemes file in a directory of its own, removed on drop.
struct SchemesFile(std::path::PathBuf);

impl SchemesFile {
    fn new(text: &str) -> SchemesFile {
        let dir = std::env::temp_dir().join(format!(
            "callroute-seams-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = SchemesFile(dir.join("schemes.toml"));
        std::fs::write(&file.0, text).unwrap();
        file
    }
}

impl Drop for SchemesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn schemes(names: &[&str], extra: &str) -> String {
    names
        .iter()
        .map(|n| {
            format!("[[scheme]]\nname = \"{n}\"\nurl = \"http://crm.example.com/{n}\"\n{extra}")
        })
        .collect()
}

#[test]
fn a_reload_refuses_what_check_and_the_component_refuse() {
    let file = SchemesFile::new(&schemes(&["acme", "globex"], ""));
    let service = Service::load(router(), &file.0).unwrap();
    for (refused, why) in [
        // A scheme with only a name: the component requires a url.
        (
            "[[scheme]]\nname = \"acme\"\n".to_owned(),
            "`url` is required",
        ),
        (schemes(&["acme"], "submission = \"jso\"\n"), "`submission`"),
        (
            schemes(&["acme"], "methd = \"GET\"\n"),
            "`methd` is unknown",
        ),
    ] {
        std::fs::write(&file.0, &refused).unwrap();
        let error = service.reload().unwrap_err().to_string();
        assert!(error.contains(why), "{error}");
        // `check` says the same of the same file.
        let checked = callroute_host::scheme_file::check(
            &callroute_host::scheme_file::SchemeFile::load(&file.0).unwrap(),
        );
        assert!(checked.iter().any(|p| p.contains(why)), "{checked:?}");
        // The previous set serves on.
        assert_eq!(service.scheme_names(), ["acme", "globex"]);
    }
}

#[test]
fn a_reload_never_applies_a_file_still_being_written() {
    let whole = schemes(
        &["acme", "globex", "initech"],
        "max_concurrent_calls = 100\n",
    );
    let file = SchemesFile::new(&schemes(&["acme"], ""));
    let service = Service::load(router(), &file.0).unwrap();
    // Cut between two schemes, as a writer that pauses midway leaves it: valid TOML with
    // fewer tenants, and `max_concurrent_calls = 1` cut from `100`.
    let cut = whole.find("max_concurrent_calls = 1").unwrap() + "max_concurrent_calls = 1".len();
    let (first, rest) = whole.split_at(cut);
    let writer = {
        let (path, first, rest) = (file.0.clone(), first.to_owned(), rest.to_owned());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut out = std::fs::File::create(&path).unwrap();
            out.write_all(first.as_bytes()).unwrap();
            out.flush().unwrap();
            // Well within the 50 ms a reload waits for the file to settle.
            std::thread::sleep(Duration::from_millis(15));
            out.write_all(rest.as_bytes()).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(5));
    service.reload().unwrap();
    writer.join().unwrap();
    assert_eq!(service.scheme_names(), ["acme", "globex", "initech"]);
    let tenants = service.tenants();
    for (name, scheme) in tenants.schemes() {
        assert_eq!(scheme.share_limit(), 100, "{name}");
    }
}

#[test]
fn a_trial_is_never_remembered() {
    let down = Arc::new(AtomicBool::new(false));
    let crm = {
        let down = down.clone();
        TestCrm::start(move |_| {
            if down.load(Ordering::SeqCst) {
                CrmReply::status(503)
            } else {
                CrmReply::html("380441111111")
            }
        })
        .unwrap()
    };
    let served = Served::start(
        router(),
        &format!(
            "[server]\napi_tokens = \"{ADMIN}\"\n[[scheme]]\nname = \"acme\"\nurl = \"{}\"\n\
             remember_secs = 600\nfallback = \"100\"\n",
            crm.url("/route")
        ),
    );
    // A trial routed by the real CRM.
    let tried = admin(
        &served,
        "POST",
        "/v1/schemes/acme/try",
        &format!(r#"{{"call":{CALL}}}"#),
    );
    assert_eq!(tried.status, 200, "{}", tried.text());
    assert_eq!(tried.json()["outcome"], "routed");
    down.store(true, Ordering::SeqCst);
    // The same caller's real call, with the CRM down: the static fallback, not the trial's
    // destination from memory.
    let routed = admin(&served, "POST", "/v1/route/acme", CALL).json();
    assert_eq!(routed["outcome"], "fallback", "{routed}");
    assert_eq!(routed["source"], "fallback", "{routed}");
    assert_eq!(routed["destination"]["target"], "100");
}

#[test]
fn a_name_in_a_path_has_one_spelling() {
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let served = Served::start(
        router(),
        &format!(
            "[[scheme]]\nname = \"acme\"\nurl = \"{0}\"\n\
             [[scheme]]\nname = \"a b\"\nurl = \"{0}\"\n",
            crm.url("/")
        ),
    );
    let post = |path: &str| served.request("POST", path, &[], CALL);
    assert_eq!(post("/v1/route/acme").status, 200);
    assert_eq!(post("/v1/route/a%20b").status, 200);
    for other in [
        "/v1/route/%61cme",
        "/v1/route//v1/route/acme",
        "/v1/route/acme/",
        "/v1/route/a+b",
        "/v1/route/a%20b%",
        "/v1/route/%2561cme",
    ] {
        let answer = post(other);
        assert_eq!(answer.status, 404, "{other}: {}", answer.text());
    }
    assert_eq!(crm.requests().len(), 2, "only the canonical names routed");
}

#[test]
fn each_kind_and_state_has_one_spelling() {
    let served = Served::start(
        router(),
        &format!(
            "[server]\napi_tokens = \"{ADMIN}\"\n[[scheme]]\nname = \"acme\"\nurl = \"{}\"\n\
             breaker_failures = 1\nbreaker_cooldown_secs = 0.1\nfallback = \"100\"\n",
            callroute_host::crm::refused_url("/route")
        ),
    );
    for path in ["/v1/route/nobody", "/v1/schemes/nobody"] {
        let method = if path.starts_with("/v1/route") {
            "POST"
        } else {
            "GET"
        };
        let answer = admin(&served, method, path, CALL);
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json()["error"]["kind"], "unknown-scheme", "{path}");
    }
    // One failure opens the breaker; past its cool-down it is half-open.
    assert_eq!(
        admin(&served, "POST", "/v1/route/acme", CALL).json()["outcome"],
        "fallback"
    );
    std::thread::sleep(Duration::from_millis(150));
    let acme = admin(&served, "GET", "/v1/schemes/acme", "").json();
    assert_eq!(acme["breakers"][0]["state"], "half-open", "{acme}");
}

#[test]
fn a_crm_quoting_a_secret_or_a_number_is_masked_in_every_answer() {
    // A JSON-RPC error, which the component quotes in its error.
    let crm = TestCrm::start(|_| {
        CrmReply::json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32000, "message": "Invalid key crm-key-0123456789abcdef for +380501112233"}
        }))
    })
    .unwrap();
    let served = Served::start(
        router(),
        &format!(
            "name = \"acme\"\nurl = \"{}\"\nimport = \"json-rpc\"\n\
             jsonrpc_method = \"route\"\nfallback = \"100\"\n\
             [headers]\nAuthorization = \"Bearer crm-key-0123456789abcdef\"\n",
            crm.url("/route")
        ),
    );
    let answer = served.request("POST", "/v1/route/acme", &[], CALL);
    let text = answer.text();
    let json: Value = answer.json();
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Invalid key ••• for +38050•••2233"),
        "{text}"
    );
    assert!(!text.contains("crm-key-0123456789abcdef"), "{text}");
    assert!(!text.contains("380501112233"), "{text}");
}
