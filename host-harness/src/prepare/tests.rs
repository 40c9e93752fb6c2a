//! Preparing a scheme: one reading of its keys, its problems and what it shows.

use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_host_reads_each_key_as_the_component_sees_it() {
    // What wasi:config holds: a map, the last value of a repeated key.
    let distinct = last_value_of_each_key(pairs(&[
        ("url", "http://first/"),
        ("fallback.0", "101"),
        ("url", "http://second/"),
        ("fallback.0", "102"),
    ]));
    assert_eq!(
        distinct,
        pairs(&[("url", "http://second/"), ("fallback.0", "102")])
    );
    // So a list key given twice (a TOML file can: `fallback = [..]` and a quoted
    // "fallback.0") is one entry for both, not a problem for the host alone.
    let scheme = PreparedScheme::new(pairs(&[
        ("url", "http://crm.example.com/"),
        ("fallback.0", "101"),
        ("fallback.0", "102"),
    ]));
    assert_eq!(scheme.problem(), None);
    assert_eq!(
        scheme.policy.fallback,
        [callroute_plugin::destination::Target::Phone("102".into())]
    );
}

#[test]
fn settings_show_every_key_and_no_secret() {
    let scheme = PreparedScheme::new(pairs(&[
        ("name", "acme"),
        ("url", "https://crm.example.com/r?token=t0psecret&tenant=7"),
        ("fallback_url", "https://user:pa55word@backup.example.com/r"),
        ("headers.Authorization", "Bearer h3adertoken"),
        ("signing_secret", "s1gningkey"),
        ("api_tokens.0", "an-api-token-of-some-length"),
        ("params.caller", "+{caller}"),
        ("params.key", "literal-key"),
        ("headers.X-Key", "k3y+with/slash=and\"quote"),
        // Misspelt, or read by a component of one's own: not known to be harmless.
        ("api_token", "another-token"),
        // A secret's value in a field shown as written.
        ("destination_field", "t0psecret"),
        ("fallback.0", "101"),
        ("ring_strategy", "parallel"),
        // As written: the reference, not its value (unset here).
        ("retries", "${env:CALLROUTE_NEVER_SET_RETRIES}"),
    ]));
    let shown: Vec<(&str, &str)> = scheme
        .settings()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("name", "acme"),
            ("url", "https://crm.example.com/r?token=•••&tenant=•••"),
            ("fallback_url", "https://•••@backup.example.com/r"),
            ("headers.Authorization", "•••"),
            ("signing_secret", "•••"),
            ("api_tokens.0", "•••"),
            ("params.caller", "+{caller}"),
            ("params.key", "•••"),
            ("headers.X-Key", "•••"),
            ("api_token", "•••"),
            ("destination_field", "•••"),
            ("fallback.0", "101"),
            ("ring_strategy", "parallel"),
            ("retries", "${env:CALLROUTE_NEVER_SET_RETRIES}"),
        ]
    );
}

#[test]
fn a_literal_parameter_is_secret_in_every_view() {
    let scheme = PreparedScheme::new(pairs(&[
        ("url", "http://crm.example.com/"),
        ("params.api_key", "LITERAL-api-key-value"),
    ]));
    assert_eq!(scheme.settings()[1].1, MASK);
    assert_eq!(
        scheme
            .secrets()
            .mask("api_key=LITERAL-api-key-value&caller=1"),
        "api_key=•••&caller=1"
    );
}

#[test]
fn a_policy_the_host_cannot_read_fails_every_call_with_its_reason() {
    let scheme = PreparedScheme::new(pairs(&[
        ("url", "http://crm.example.com/"),
        ("fallback", "not a destination!"),
    ]));
    let problem = scheme.problem().unwrap();
    assert!(problem.contains("`fallback`"), "{problem}");
    // And its guard lets nothing out.
    assert!(scheme.policy.endpoints().is_empty());
}

#[test]
fn the_components_rules_refuse_what_the_component_would() {
    for (scheme, field) in [
        (pairs(&[("name", "acme")]), "`url` is required"),
        (
            pairs(&[("url", "http://crm/"), ("submission", "jso")]),
            "`submission`",
        ),
        (
            pairs(&[("url", "http://crm/"), ("behaviour", "x")]),
            "`behaviour` is unknown",
        ),
    ] {
        let prepared = prepare(scheme.clone(), Rules::Component);
        let problem = prepared.problem().unwrap_or_default();
        assert!(problem.contains(field), "{problem}");
        // A component of one's own judges its own keys: the host lets them pass.
        let own = prepare(scheme, Rules::Host);
        assert_eq!(own.problem(), None);
    }
    // Host-only fields are accepted, and not handed to the component.
    let prepared = prepare(
        pairs(&[("url", "http://crm/"), ("remember_secs", "60")]),
        Rules::Component,
    );
    assert_eq!(prepared.problem(), None);
    assert!(!handed_to_component("remember_secs"));
    assert!(!handed_to_component("api_tokens.0"));
    assert!(handed_to_component("url"));
    assert!(
        handed_to_component("behaviour"),
        "a --plugin component's own key"
    );
}

#[test]
fn a_secret_from_the_environment_is_masked_in_problems() {
    // SAFETY: this test alone sets this variable, and nothing reads it concurrently.
    unsafe {
        std::env::set_var(
            "CALLROUTE_TEST_PREPARE_URL",
            "http://crm.example.com:99999/?k=v",
        )
    };
    let prepared = prepare(
        pairs(&[("url", "${env:CALLROUTE_TEST_PREPARE_URL}")]),
        Rules::Component,
    );
    let problem = prepared.problem().unwrap();
    assert!(problem.contains("`url`"), "{problem}");
    assert!(!problem.contains("crm.example.com:99999"), "{problem}");
}

#[test]
fn a_crm_host_from_the_environment_is_secret_in_labels_too() {
    // SAFETY: this test alone sets this variable, and nothing reads it concurrently.
    unsafe {
        std::env::set_var(
            "CALLROUTE_TEST_PREPARE_HOST",
            "crm-secret-host.example:8080",
        )
    };
    let prepared = prepare(
        pairs(&[
            ("url", "http://${env:CALLROUTE_TEST_PREPARE_HOST}/route"),
            // A reference in the path alone leaves the host shown.
            (
                "fallback_url",
                "http://backup.example.com/${env:CALLROUTE_TEST_PREPARE_HOST}",
            ),
        ]),
        Rules::Component,
    );
    assert_eq!(prepared.problem(), None);
    let label = prepared
        .secrets()
        .mask("http://crm-secret-host.example:8080");
    assert!(!label.contains("crm-secret-host"), "{label}");
    // As the breakers show their endpoints (logs, `/metrics`, the admin API).
    let origin = prepared.policy().url.clone().unwrap().origin;
    let _ticket = prepared.breakers().admit(
        &origin,
        tokio::time::Instant::now() + std::time::Duration::from_secs(1),
    );
    let states = prepared.breakers().states();
    assert_eq!(states.len(), 1);
    assert!(!states[0].0.contains("crm-secret-host"), "{states:?}");
    assert_eq!(
        prepared.secrets().mask("http://backup.example.com:80"),
        "http://backup.example.com:80"
    );
}
