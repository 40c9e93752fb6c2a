//! `callroute serve`'s admin API: each scheme's health and its recent exchanges, attempt by
//! attempt, with nothing secret in them.

use callroute_tests::*;
use serde_json::Value;

pub const ADMIN: &str = "admin-token-0123456789";
const HEADER_SECRET: &str = "header-secret-0123456789";
const QUERY_SECRET: &str = "query-secret-0123456789";
const SIGNING_SECRET: &str = "signing-secret-0123456789";

pub fn call(id: &str) -> String {
    call_with_mood(id, id)
}

/// A call whose variable `mood` is `mood`.
pub fn call_with_mood(id: &str, mood: &str) -> String {
    format!(
        r#"{{"call_id":"{id}","caller":"+380501112233","callee":"380441234567","vars":{{"mood":"{mood}"}}}}"#
    )
}

/// Markup a hostile CRM puts in its answers, which the console must show as text.
pub const MARKUP: &str = r#"<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>"#;

/// Every secret the tenants below are configured with.
pub const SECRETS: [&str; 5] = [
    HEADER_SECRET,
    QUERY_SECRET,
    SIGNING_SECRET,
    ADMIN,
    "acme-token-0123456789",
];

/// Two tenants served with a CRM that echoes what it is sent (the signature and the token
/// included) and puts [`MARKUP`] in its answers: `acme` has every kind of secret, `globex` no
/// fallback. A call whose `mood` is `down` gets a 503, one whose `mood` is `hostile` the markup
/// alone.
pub fn tenants_with_secrets() -> (TestCrm, Served) {
    let crm = TestCrm::start(|r| {
        let echoed = format!(
            "{} {} {}",
            String::from_utf8_lossy(&r.body),
            r.header("authorization").unwrap_or_default(),
            r.header("x-callroute-signature").unwrap_or_default()
        );
        let body = String::from_utf8_lossy(&r.body);
        if body.contains("\"mood\":\"down\"") {
            CrmReply::new(503, "text/plain", format!("down; got {echoed}"))
        } else if body.contains("\"mood\":\"hostile\"") {
            // Not JSON: the error quotes it.
            CrmReply::html(MARKUP)
        } else {
            CrmReply::json(
                serde_json::json!({"number_01": "380123456789", "echo": echoed, "note": MARKUP}),
            )
        }
    })
    .unwrap();
    let toml = format!(
        "[server]\napi_tokens = \"{ADMIN}\"\n\
         [[scheme]]\nname = \"acme\"\nurl = \"{url}\"\nsubmission = \"json\"\nimport = \"json\"\n\
         destination_field = \"number_01\"\nfallback = \"reception\"\nsigning_secret = \"{SIGNING_SECRET}\"\n\
         api_tokens = \"acme-token-0123456789\"\n\
         [scheme.headers]\nAuthorization = \"Bearer {HEADER_SECRET}\"\n\
         [[scheme]]\nname = \"globex\"\nurl = \"{url}\"\nsubmission = \"json\"\nimport = \"json\"\n\
         destination_field = \"number_01\"\n",
        url = crm.url(&format!("/route?key={QUERY_SECRET}")),
    );
    let served = Served::start(router(), &toml);
    (crm, served)
}

#[test]
fn routed_fallback_and_failed_calls_show_their_attempts_and_no_secret() {
    let (crm, served) = tenants_with_secrets();
    let admin = format!("Bearer {ADMIN}");
    let as_admin = [("authorization", admin.as_str())];
    let post = |scheme: &str, id: &str| {
        served.request("POST", &format!("/v1/route/{scheme}"), &as_admin, &call(id))
    };
    assert_eq!(post("acme", "up").json()["outcome"], "routed");
    assert_eq!(post("acme", "down").json()["outcome"], "fallback");
    assert_eq!(post("globex", "down").json()["outcome"], "failed");

    let get = |path: &str| served.request("GET", path, &as_admin, "");
    let schemes = get("/v1/schemes");
    assert_eq!(schemes.status, 200);
    let schemes = schemes.json();
    let acme = schemes["schemes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme["health"]["calls"], 2);
    assert_eq!(acme["health"]["routed"], 0.5);
    assert_eq!(acme["health"]["fallback"], 0.5);
    assert_eq!(acme["in_flight"], 0);

    let exchanges = get("/v1/schemes/acme/exchanges").json();
    let exchanges = exchanges["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 2);
    // Newest first: the fallback, then the routed call.
    let (fallback, routed) = (&exchanges[0], &exchanges[1]);
    assert_eq!(fallback["outcome"], "fallback");
    assert_eq!(fallback["error"]["kind"], "http-status");
    assert_eq!(fallback["caller"], "+38050•••2233");
    let attempt = &fallback["attempts"][0];
    assert_eq!(attempt["status"], 503);
    assert_eq!(attempt["method"], "POST");
    assert_eq!(attempt["url"], crm.url("/route").as_str());
    assert!(
        attempt["request_body"]
            .as_str()
            .unwrap()
            .contains("\"mood\":\"down\"")
    );
    assert!(
        attempt["answer"]
            .as_str()
            .unwrap()
            .starts_with("down; got ")
    );
    assert_eq!(routed["attempts"][0]["status"], 200);
    assert_eq!(routed["destination"]["target"], "380123456789");

    let one = get("/v1/schemes/globex/exchanges/down");
    assert_eq!(one.status, 200);
    let one: Value = one.json();
    assert_eq!(one["outcome"], "failed");
    assert_eq!(one["attempts"][0]["status"], 503);
    assert_eq!(get("/v1/schemes/globex/exchanges/nobody").status, 404);
    assert_eq!(get("/v1/schemes/nobody/exchanges").status, 404);

    // Only a server-wide token reads it: a tenant's own is not enough.
    assert_eq!(served.request("GET", "/v1/schemes", &[], "").status, 401);
    let tenant = [("authorization", "Bearer acme-token-0123456789")];
    assert_eq!(
        served.request("GET", "/v1/schemes", &tenant, "").status,
        401
    );

    let everything = format!(
        "{}{}{}{}",
        get("/v1/schemes").text(),
        get("/v1/schemes/acme").text(),
        get("/v1/schemes/acme/exchanges").text(),
        get("/v1/schemes/globex/exchanges").text()
    );
    for secret in SECRETS {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
}

#[test]
fn without_server_tokens_the_admin_api_is_closed() {
    let served = Served::start(
        router(),
        "name = \"acme\"\nurl = \"http://crm.example.com/\"\n",
    );
    let response = served.request("GET", "/v1/schemes", &[], "");
    assert_eq!(response.status, 403);
    assert!(response.text().contains("[server] api_tokens"));
}

#[test]
fn a_scheme_shows_its_settings_with_secrets_masked() {
    let (crm, served) = tenants_with_secrets();
    let admin = format!("Bearer {ADMIN}");
    let scheme = served.request("GET", "/v1/schemes/acme", &[("authorization", &admin)], "");
    assert_eq!(scheme.status, 200);
    let scheme = scheme.json();
    let setting = |key: &str| {
        scheme["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("no `{key}` in {scheme}"))["value"]
            .clone()
    };
    assert_eq!(setting("url"), format!("{}?key=•••", crm.url("/route")));
    assert_eq!(setting("headers.Authorization"), "•••");
    assert_eq!(setting("signing_secret"), "•••");
    assert_eq!(setting("destination_field"), "number_01");
    assert_eq!(scheme["problem"], Value::Null);
    assert_eq!(scheme["health"]["calls"], 0);
}

#[test]
fn a_trial_call_is_routed_by_the_crm_or_a_sample_answer_and_is_not_a_call() {
    let (crm, served) = tenants_with_secrets();
    let admin = format!("Bearer {ADMIN}");
    let as_admin = [("authorization", admin.as_str())];
    let trial = |body: &str| served.request("POST", "/v1/schemes/acme/try", &as_admin, body);

    // By the CRM: the same exchange a call gets.
    let by_crm = trial(&format!(r#"{{"call":{}}}"#, call("try-1")));
    assert_eq!(by_crm.status, 200, "{}", by_crm.text());
    let by_crm = by_crm.json();
    assert_eq!(by_crm["outcome"], "routed");
    assert_eq!(by_crm["destination"]["target"], "380123456789");
    assert_eq!(by_crm["attempts"][0]["status"], 200);
    assert_eq!(crm.requests().len(), 1);

    // By a sample answer: the CRM is not asked, and the scheme reads the sample.
    let by_sample = trial(&format!(
        r#"{{"call":{},"crm_answer":{{"body":"{{\"number_01\":\"380991112233\"}}"}}}}"#,
        call("try-2")
    ))
    .json();
    assert_eq!(
        by_sample["destination"]["target"], "380991112233",
        "{by_sample}"
    );
    assert_eq!(
        by_sample["attempts"][0]["answer"],
        r#"{"number_01":"380991112233"}"#
    );
    let failing_sample = trial(&format!(
        r#"{{"call":{},"crm_answer":{{"status":500,"body":"oops"}}}}"#,
        call("try-3")
    ))
    .json();
    assert_eq!(failing_sample["outcome"], "fallback");
    assert_eq!(failing_sample["error"]["status"], 500);
    assert_eq!(
        crm.requests().len(),
        1,
        "a sample answer never asks the CRM"
    );

    // Trials are not calls: the scheme's exchanges and health do not count them.
    let exchanges = served
        .request("GET", "/v1/schemes/acme/exchanges", &as_admin, "")
        .json();
    assert_eq!(exchanges["exchanges"].as_array().unwrap().len(), 0);

    // Errors name what is wrong; only a server-wide token may try.
    let typo = trial(r#"{"call":{"caler":"1"}}"#);
    assert_eq!(typo.status, 400);
    assert!(typo.text().contains("caler"), "{}", typo.text());
    let tenant = [("authorization", "Bearer acme-token-0123456789")];
    let body = format!(r#"{{"call":{}}}"#, call("try-4"));
    assert_eq!(
        served
            .request("POST", "/v1/schemes/acme/try", &tenant, &body)
            .status,
        401
    );
    assert_eq!(trial("").status, 400);
    // Each endpoint takes one method, and says which.
    let wrong = served.request("GET", "/v1/schemes/acme/try", &as_admin, "");
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    let wrong = served.request("POST", "/v1/schemes/acme", &as_admin, &body);
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET")));
    assert_eq!(
        served
            .request("POST", "/v1/schemes/nobody/try", &as_admin, &body)
            .status,
        404
    );
    for secret in SECRETS {
        assert!(
            !by_crm.to_string().contains(secret),
            "{secret} leaked: {by_crm}"
        );
    }
}
