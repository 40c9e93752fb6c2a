//! The web console in a real browser (headless Chromium through WebDriver), against a running
//! `serve` and a local CRM: sign in with the admin token, the tenants with their health, a
//! routed, a fallback and a failed call with their attempts, auto-refresh, the settings, and
//! Try a call by the CRM and by a sample answer. Nothing secret reaches the page, and a CRM's
//! markup is shown as text, never run.

use crate::browser::Browser;
use crate::exchanges::{ADMIN, MARKUP, SECRETS, call, call_with_mood, tenants_with_secrets};

#[test]
fn the_console_shows_every_exchange_and_tries_a_call() {
    // The servers run on runtimes of their own, started outside the browser's.
    let (crm, served) = tenants_with_secrets();
    let admin = format!("Bearer {ADMIN}");
    let post_call = |scheme: &str, call: String| {
        let response = served.request(
            "POST",
            &format!("/v1/route/{scheme}"),
            &[("authorization", &admin)],
            &call,
        );
        response.json()["outcome"].as_str().unwrap().to_owned()
    };
    let post = |scheme: &str, id: &str| post_call(scheme, call(id));
    assert_eq!(post("acme", "up"), "routed");
    assert_eq!(post("acme", "down"), "fallback");
    assert_eq!(post("globex", "down"), "failed");
    // Markup where the page shows a call id, an error and an answer.
    let hostile_id = "<img src=x onerror=window.pwned=3>";
    assert_eq!(
        post_call("globex", call_with_mood(hostile_id, "hostile")),
        "failed"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let base = format!("http://{}", served.addr());
        browser.client().goto(&base).await.unwrap();

        // A wrong token is refused, and the form says so.
        browser.type_into("#token", "not-the-admin-token").await;
        browser.click("#token-form button[type=submit]").await;
        browser.text_with("#sign-in-error", "not accepted").await;
        browser.type_into("#token", ADMIN).await;
        browser.click("#token-form button[type=submit]").await;

        // Signed in: the form is gone.
        browser.find("tr[data-scheme=acme]").await;
        let form = browser.find("#sign-in").await;
        assert!(
            !form.is_displayed().await.unwrap(),
            "the sign-in form still shows"
        );

        // The tenants, with their health over their recent calls.
        let acme = browser.text_with("tr[data-scheme=acme]", "50 %").await;
        assert!(acme.starts_with("acme 2 "), "{acme}");
        let globex = browser.text_with("tr[data-scheme=globex]", "globex").await;
        assert!(globex.starts_with("globex 2 "), "{globex}");
        assert!(globex.contains("100 %"), "all failed: {globex}");

        // A fallback call's exchange: the attempt, what was sent, what came back.
        browser.click("tr[data-scheme=acme]").await;
        browser
            .click("#calls tbody[data-scheme=acme] tr[data-call-id=down]")
            .await;
        let exchange = browser.text_with("#exchange", "503").await;
        assert!(exchange.contains("fallback"), "{exchange}");
        assert!(exchange.contains("http-status"), "{exchange}");
        assert!(
            exchange.contains(&format!("POST {}", crm.url("/route"))),
            "{exchange}"
        );
        assert!(exchange.contains(r#""mood":"down""#), "{exchange}");
        assert!(exchange.contains("down; got "), "{exchange}");

        // A routed one: the destination, and the CRM's markup shown as text, not run.
        browser.click("tr[data-call-id=up]").await;
        let exchange = browser.text_with("#exchange", "380123456789").await;
        assert!(exchange.contains("routed"), "{exchange}");
        // (As the CRM sent it: inside a JSON string, its quotes escaped.)
        let as_sent = serde_json::to_string(MARKUP).unwrap();
        assert!(
            exchange.contains(as_sent.trim_matches('"')),
            "the markup as text: {exchange}"
        );

        // A new call appears without reloading the page.
        assert_eq!(post("acme", "later"), "routed");
        browser.find("tr[data-call-id=later]").await;

        // The failed call, on the other tenant.
        browser.click("tr[data-scheme=globex]").await;
        browser
            .click("#calls tbody[data-scheme=globex] tr[data-call-id=down]")
            .await;
        let exchange = browser.text_with("#exchange", "failed").await;
        assert!(exchange.contains("503"), "{exchange}");

        // Markup in a call's id, in an error quoting the CRM, in an answer: all text.
        let calls = browser.text_with("#calls", hostile_id).await;
        assert!(calls.contains("bad-response"), "{calls}");
        let injected = browser
            .client()
            .execute(
                "return [window.pwned, document.querySelectorAll('img, script:not([src])').length]",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            injected,
            serde_json::json!([null, 0]),
            "markup became elements"
        );

        // The settings, secrets masked.
        browser.click("tr[data-scheme=acme]").await;
        browser.click("[data-tab=settings]").await;
        let settings = browser.text_with("#settings", "signing_secret").await;
        assert!(
            settings.contains(&format!("url {}?key=•••", crm.url("/route"))),
            "{settings}"
        );
        assert!(settings.contains("headers.Authorization •••"), "{settings}");

        // Try a call with a sample answer: the CRM is not asked.
        let asked = crm.requests().len();
        browser.click("[data-tab=try]").await;
        browser
            .type_into("#try-form [name=caller]", "380501112233")
            .await;
        browser
            .type_into("#try-form [name=callee]", "380441234567")
            .await;
        browser.click("#try-form [name=use_sample]").await;
        browser
            .type_into("#try-form [name=body]", r#"{"number_01": "380991112233"}"#)
            .await;
        browser.click("#try-form button[type=submit]").await;
        let tried = browser.text_with("#try-result", "380991112233").await;
        assert!(tried.starts_with("routed"), "{tried}");
        assert!(tried.contains(" → 200"), "{tried}");
        assert_eq!(
            crm.requests().len(),
            asked,
            "a sample answer never asks the CRM"
        );

        // And through the real CRM, with a variable the CRM reads.
        browser.click("#try-form [name=use_sample]").await;
        browser
            .type_into("#try-form [name=vars]", "mood=down")
            .await;
        browser.click("#try-form button[type=submit]").await;
        let tried = browser.text_with("#try-result", "503").await;
        assert!(tried.starts_with("fallback"), "{tried}");
        assert_eq!(crm.requests().len(), asked + 1);

        // Nothing secret anywhere in the page, whichever tab it went through.
        let page = browser.document().await;
        for secret in SECRETS {
            assert!(!page.contains(secret), "{secret} is in the page");
        }
        // Nor a caller's whole number (the server does not --show-numbers), even inside the
        // bodies sent and answered.
        assert!(page.contains("380501•••2233"), "masked numbers are shown");
        assert!(
            !page.contains("380501112233"),
            "a whole number is in the page"
        );

        // The picture in the README: the calls of a tenant, one exchange open.
        browser.click("[data-tab=calls]").await;
        browser.click("tr[data-call-id=down]").await;
        browser.text_with("#exchange", "503").await;
        browser.client().set_window_size(1280, 1000).await.unwrap();
        let png = browser.client().screenshot().await.unwrap();
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
        std::fs::write(&shot, png).unwrap();
        eprintln!("console screenshot: {}", shot.display());

        browser.close().await;
    });
}

/// A call's outcome in the console: how it ended, and each attempt to tell the CRM, the
/// platform's text shown as text.
#[test]
fn the_console_shows_a_calls_outcome_and_its_deliveries() {
    use callroute_tests::*;
    let crm = TestCrm::start(|request| match request.path.as_str() {
        "/route" => CrmReply::html("manager_7"),
        _ => CrmReply::status(204),
    })
    .unwrap();
    let dir = TempDir::new("console-outcome");
    let served = Served::start_with_outbox(
        router(),
        &format!(
            "[server]\napi_tokens = [\"{ADMIN}\"]\n\
             [[scheme]]\nname = \"acme\"\nurl = \"{}\"\noutcome_url = \"{}\"\n",
            crm.url("/route"),
            crm.url("/outcome"),
        ),
        dir.path(),
    );
    let admin = format!("Bearer {ADMIN}");
    let auth = [("authorization", admin.as_str())];
    let routed = served.request("POST", "/v1/route/acme", &auth, &call("c1"));
    assert_eq!(routed.json()["outcome"], "routed");
    let hostile_cause = "<img src=x onerror=window.pwned=4>";
    let outcome = serde_json::json!({"call_id": "c1", "status": "answered",
        "answered_by": "manager_7", "ring_secs": 3, "talk_secs": 41,
        "hangup_cause": hostile_cause})
    .to_string();
    let accepted = served.request("POST", "/v1/outcome/acme", &auth, &outcome);
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let report = accepted.json()["report"].as_str().unwrap().to_owned();
    until(
        "the report delivered",
        std::time::Duration::from_secs(10),
        || crm.requests().iter().any(|r| r.path == "/outcome"),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        browser
            .client()
            .goto(&format!("http://{}", served.addr()))
            .await
            .unwrap();
        browser.type_into("#token", ADMIN).await;
        browser.click("#token-form button[type=submit]").await;
        browser.click("tr[data-scheme=acme]").await;
        let row = browser
            .text_with("tr[data-call-id=c1]", "call answered")
            .await;
        assert!(row.contains("manager_7"), "{row}");
        browser.click("tr[data-call-id=c1]").await;
        let exchange = browser.text_with("#exchange", "delivered").await;
        for shown in [
            "The call ended answered, answered by manager_7, rang 3 s, talked 41 s",
            hostile_cause,
            &format!("Attempt 1 of report {report}"),
            &format!("POST {}", crm.url("/outcome")),
        ] {
            assert!(exchange.contains(shown), "{shown:?} not in {exchange}");
        }
        let injected = browser
            .client()
            .execute("return window.pwned", Vec::new())
            .await
            .unwrap();
        assert_eq!(injected, serde_json::Value::Null, "markup became elements");
        browser.close().await;
    });
}
