//! `callroute serve`'s admin API: each scheme's health and its recent exchanges, attempt by
//! attempt, with nothing secret in them.

use callroute_tests::*;
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789";
const HEADER_SECRET: &str = "header-secret-0123456789";
const QUERY_SECRET: &str = "query-secret-0123456789";
const SIGNING_SECRET: &str = "signing-secret-0123456789";

fn call(id: &str) -> String {
    format!(
        r#"{{"call_id":"{id}","caller":"+380501112233","callee":"380441234567","vars":{{"mood":"{id}"}}}}"#
    )
}

#[test]
fn routed_fallback_and_failed_calls_show_their_attempts_and_no_secret() {
    // The CRM echoes what it is sent, the signature and the token included.
    let crm = TestCrm::start(|r| {
        let echoed = format!(
            "{} {} {}",
            String::from_utf8_lossy(&r.body),
            r.header("authorization").unwrap_or_default(),
            r.header("x-callroute-signature").unwrap_or_default()
        );
        if String::from_utf8_lossy(&r.body).contains("\"mood\":\"down\"") {
            CrmReply::new(503, "text/plain", format!("down; got {echoed}"))
        } else {
            CrmReply::json(serde_json::json!({"number_01": "380123456789", "echo": echoed}))
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
        "{}{}{}",
        get("/v1/schemes").text(),
        get("/v1/schemes/acme/exchanges").text(),
        get("/v1/schemes/globex/exchanges").text()
    );
    for secret in [
        HEADER_SECRET,
        QUERY_SECRET,
        SIGNING_SECRET,
        ADMIN,
        "acme-token-0123456789",
    ] {
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
