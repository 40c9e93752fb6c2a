//! The scheme's readers, field by field.

use super::*;

fn scheme(pairs: &[(&str, &str)]) -> Result<Scheme, SchemeError> {
    Scheme::from_pairs(pairs.iter().copied())
}

fn err(pairs: &[(&str, &str)]) -> String {
    scheme(pairs).unwrap_err().to_string()
}

const URL: (&str, &str) = ("url", "http://crm.example.com/route");

#[test]
fn defaults() {
    let s = scheme(&[URL]).unwrap();
    assert_eq!(s.method, Method::Post);
    assert_eq!(s.submission, Submission::Http);
    assert_eq!(s.import, Import::Http);
    assert_eq!(s.ring_timeout_secs, 30);
    assert_eq!(s.response_timeout, Duration::from_secs(5));
    assert_eq!(s.params, None);
    assert!(s.headers.is_empty());
    assert_eq!(s.endpoint.origin.port, 80);
    assert_eq!(s.endpoint.path_and_query, "/route");
}

#[test]
fn every_field() {
    let s = scheme(&[
        ("name", "acme"),
        ("url", "https://CRM.example.com:8443/api?key=secret"),
        ("method", "put"),
        ("submission", "json-rpc"),
        ("import", "json-rpc"),
        ("destination_field", "data.manager.phone"),
        ("jsonrpc_method", "getManager"),
        ("ring_timeout_secs", "45"),
        ("response_timeout_secs", "2.5"),
        ("params.uuid", "{uuid}"),
        ("params.call_id", "{call_id}"),
        ("headers.Authorization", "Bearer abc"),
    ])
    .unwrap();
    assert_eq!(s.name, "acme");
    assert!(s.endpoint.origin.tls);
    assert_eq!(s.endpoint.origin.host, "crm.example.com");
    assert_eq!(s.endpoint.origin.port, 8443);
    assert_eq!(s.endpoint.path_and_query, "/api?key=secret");
    assert_eq!(s.method, Method::Put);
    assert_eq!(s.effective_method(), Method::Post);
    assert_eq!(s.submission, Submission::JsonRpc);
    assert_eq!(s.import, Import::JsonRpc);
    assert_eq!(
        s.destination_field.as_deref(),
        Some(&["data".to_string(), "manager".into(), "phone".into()][..])
    );
    assert_eq!(s.jsonrpc_method.as_deref(), Some("getManager"));
    assert_eq!(s.ring_timeout_secs, 45);
    assert_eq!(s.response_timeout, Duration::from_millis(2500));
    let names: Vec<_> = s.params.unwrap().iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, ["call_id", "uuid"]);
    assert_eq!(s.headers[0].name, "authorization");
}

#[test]
fn json_forces_post_and_form_never_gets() {
    for (submission, method, sent) in [
        ("json", "GET", Method::Post),
        ("json", "DELETE", Method::Post),
        ("json-rpc", "PUT", Method::Post),
        ("form", "GET", Method::Post),
        ("form", "PUT", Method::Put),
        ("http", "GET", Method::Get),
        ("http", "DELETE", Method::Delete),
    ] {
        let s = scheme(&[
            URL,
            ("submission", submission),
            ("method", method),
            ("jsonrpc_method", "m"),
        ])
        .unwrap();
        assert_eq!(s.effective_method(), sent, "{submission} {method}");
    }
}

#[test]
fn errors_name_the_field() {
    assert!(err(&[]).contains("`url` is required"));
    assert!(err(&[("url", "ftp://x/")]).contains("`url`"));
    assert!(err(&[("url", "crm.example.com")]).contains("`url`"));
    assert!(err(&[("url", "http://u:p@crm/")]).contains("credentials"));
    assert!(err(&[URL, ("method", "PATCH")]).contains("`method`"));
    assert!(err(&[URL, ("submission", "xml")]).contains("`submission`"));
    assert!(err(&[URL, ("import", "xml")]).contains("`import`"));
    assert!(err(&[URL, ("import", "json")]).contains("`destination_field` is required"));
    assert!(
        err(&[URL, ("import", "json"), ("destination_field", "a..b")])
            .contains("`destination_field`")
    );
    assert!(err(&[URL, ("submission", "json-rpc")]).contains("`jsonrpc_method` is required"));
    assert!(err(&[URL, ("import", "json-rpc")]).contains("`jsonrpc_method` is required"));
    assert!(err(&[URL, ("ring_timeout_secs", "0")]).contains("`ring_timeout_secs`"));
    assert!(err(&[URL, ("ring_timeout_secs", "1.5")]).contains("`ring_timeout_secs`"));
    assert!(err(&[URL, ("response_timeout_secs", "0.05")]).contains("`response_timeout_secs`"));
    assert!(err(&[URL, ("response_timeout_secs", "61")]).contains("`response_timeout_secs`"));
    assert!(err(&[URL, ("response_timeout_secs", "NaN")]).contains("`response_timeout_secs`"));
    assert!(err(&[URL, ("params.x", "{unclosed")]).contains("`params.x`"));
    assert!(err(&[URL, ("headers.Host", "evil")]).contains("`headers.Host`"));
    assert!(err(&[URL, ("headers.bad name", "v")]).contains("`headers.bad name`"));
    assert!(err(&[URL, ("headers.X-A", "a\u{1}b")]).contains("control"));
    assert!(err(&[URL, ("methd", "GET")]).contains("`methd` is unknown"));
}

#[test]
fn fallbacks_retries_and_allowlists() {
    let s = scheme(&[
        URL,
        ("fallback_url", "https://backup.example.com/route"),
        ("retries", "2"),
        ("fallback.1", "manager_7"),
        ("fallback.0", "+38 044 123 45 67"),
        ("allowed_prefixes", "+380, 48"),
        ("allowed_sip_domains.0", "PBX.example.com"),
    ])
    .unwrap();
    assert_eq!(s.fallback_url.unwrap().origin.host, "backup.example.com");
    assert_eq!(s.retries, 2);
    assert_eq!(
        s.fallback,
        [
            Target::Phone("+380441234567".into()),
            Target::Sip("manager_7".into())
        ]
    );
    assert_eq!(s.allowlist.prefixes, ["380", "48"]);
    assert_eq!(s.allowlist.sip_domains, ["pbx.example.com"]);
    let single = scheme(&[URL, ("fallback", "101")]).unwrap();
    assert_eq!(single.fallback, [Target::Phone("101".into())]);

    assert!(err(&[URL, ("retries", "4")]).contains("`retries`"));
    assert!(err(&[URL, ("fallback_url", "ftp://x/")]).contains("`fallback_url`"));
    assert!(err(&[URL, ("fallback.1", "not a destination!")]).contains("`fallback.1`"));
    assert!(err(&[URL, ("fallback.x", "101")]).contains("`fallback.x`"));
    assert!(err(&[URL, ("allowed_prefixes", "+38a")]).contains("`allowed_prefixes`"));
    assert!(
        err(&[URL, ("allowed_sip_domains.0", "bad domain")]).contains("`allowed_sip_domains.0`")
    );
}

#[test]
fn the_destination_guard() {
    let s = scheme(&[
        URL,
        ("allowed_prefixes", "380,+48"),
        ("allowed_sip_domains", "pbx.example.com"),
    ])
    .unwrap();
    // Hosts read the same allowlist from the same pairs.
    let pairs = [
        ("allowed_prefixes", "380,+48"),
        ("allowed_sip_domains", "pbx.example.com"),
    ];
    assert_eq!(
        HostPolicy::from_pairs(pairs).unwrap().allowlist,
        s.allowlist
    );
    let allowed = |t: &str| s.allowlist.check(&Target::parse(t).unwrap());
    assert!(allowed("+380441234567").is_ok());
    assert!(allowed("380441234567").is_ok());
    assert!(allowed("48221234567").is_ok());
    assert!(
        allowed("+1 900 555 0100")
            .unwrap_err()
            .contains("allowed_prefixes")
    );
    assert!(allowed("manager_7").is_ok());
    assert!(allowed("alice@PBX.example.com").is_ok());
    assert!(allowed("sip:alice@pbx.example.com:5061;transport=tls").is_ok());
    assert!(
        allowed("sip:alice@evil.example.com")
            .unwrap_err()
            .contains("evil.example.com")
    );
    assert!(allowed("sip:evil.example.com").is_err());
    assert!(allowed("sip:bob@[2001:db8::1]").is_err());
    // A SIP user that is a telephone number is held to allowed_prefixes as well.
    assert!(
        allowed("sip:19005551234@pbx.example.com;user=phone")
            .unwrap_err()
            .contains("outside allowed_prefixes")
    );
    assert!(allowed("sip:380441234567@pbx.example.com").is_ok());
    let open = scheme(&[URL]).unwrap();
    assert!(
        open.allowlist
            .check(&Target::Phone("+19005550100".into()))
            .is_ok()
    );
}

#[test]
fn ports_out_of_range_are_config_errors_not_the_default_port() {
    for (port, shown) in [
        ("65536", "65536"),
        ("99999999999", "99999999999"),
        ("-1", "-1"),
        ("0", "0"),
        ("80a", "80a"),
        ("+80", "+80"),
    ] {
        let msg = err(&[(
            "url",
            &format!("http://crm.example.com:{port}/route?k=SECRET"),
        )]);
        assert!(
            msg.contains("`url`") && msg.contains(&format!("port `{shown}`")),
            "{port}: {msg}"
        );
        assert!(!msg.contains("SECRET"), "{msg}");
        let msg = err(&[
            ("url", "http://crm/"),
            ("fallback_url", &format!("https://b:{port}/")),
        ]);
        assert!(msg.contains("`fallback_url`"), "{port}: {msg}");
    }
    // The query never appears in an error about the URL.
    let msg = err(&[("url", "http://exa mple.com/?token=SECRET")]);
    assert!(!msg.contains("SECRET"), "{msg}");
}

/// The readers and the table of fields agree: every field of [`fields::FIELDS`] has a
/// reader that takes a valid value and refuses an invalid one naming the field, and a key
/// outside the table is unknown. (A field added to the table needs a line here.)
#[test]
fn every_field_of_the_table_has_a_reader_and_nothing_else_does() {
    // (key, a valid value, an invalid value or "" when every value is valid)
    let samples: &[(&str, &str, &str)] = &[
        ("name", "acme", ""),
        ("url", "http://crm.example.com/", "ftp://crm/"),
        ("method", "GET", "PATCH"),
        ("submission", "form", "xml"),
        ("import", "http", "xml"),
        ("destination_field", "a.b", "a..b"),
        ("jsonrpc_method", "m", " "),
        ("ring_timeout_secs", "20", "0"),
        ("ring_strategy", "parallel", "random"),
        ("max_destinations", "3", "33"),
        ("target_field", "to", "a..b"),
        ("ring_timeout_field", "ring", "a..b"),
        ("response_timeout_secs", "2", "61"),
        ("fallback_url", "http://backup.example.com/", "ftp://b/"),
        ("retries", "1", "4"),
        ("fallback", "101", "not a destination!"),
        ("allowed_prefixes", "380", "+38a"),
        ("allowed_sip_domains", "pbx.example.com", "bad domain"),
        ("signing_secret", "s3cret", ""),
        ("max_concurrent_calls", "10", "0"),
        ("breaker_failures", "3", "x"),
        ("breaker_cooldown_secs", "2", "0"),
        ("remember_secs", "60", "-1"),
        ("api_tokens", "tok-0123456789abcdef", "short"),
        ("params.", "{caller}", "{unclosed"),
        ("headers.", "v", "a\u{1}b"),
        (
            "outcome_url",
            "http://crm.example.com/outcome",
            "crm/outcome",
        ),
        ("outcome_method", "PUT", "PATCH"),
        ("outcome_submission", "form", "xml"),
        ("outcome_params.", "{status}", "{unclosed"),
        ("outcome_retry_hours", "0.5", "0"),
    ];
    let names: Vec<&str> = fields::FIELDS.iter().map(|f| f.name).collect();
    let sampled: Vec<&str> = samples.iter().map(|s| s.0).collect();
    assert_eq!(
        names, sampled,
        "one sample per field of the table, in its order"
    );
    for &(name, valid, bad) in samples {
        let key = if name.ends_with('.') {
            format!("{name}x")
        } else {
            name.to_owned()
        };
        let with = |value: &str| {
            let mut pairs: Vec<(&str, &str)> = [
                ("url", "http://crm.example.com/"),
                ("jsonrpc_method", "m"),
                ("outcome_url", "http://crm.example.com/outcome"),
            ]
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect();
            pairs.push((key.as_str(), value));
            Scheme::from_pairs(pairs)
        };
        assert!(with(valid).is_ok(), "{key} = {valid:?}: {:?}", with(valid));
        if !bad.is_empty() {
            let error = with(bad).unwrap_err();
            assert!(
                !matches!(error, SchemeError::Unknown { .. })
                    && error.to_string().contains(&format!("`{key}`")),
                "{key} = {bad:?}: {error}"
            );
        }
        if fields::of(&key).is_some_and(|f| f.list) {
            assert!(with_list_item(&key, valid).is_ok(), "{key}.0");
        }
    }
    for unknown in ["api_token", "url.0", "param.x", "fallbacks"] {
        assert!(
            matches!(
                Scheme::from_pairs([("url", "http://crm/"), (unknown, "1")]),
                Err(SchemeError::Unknown { .. })
            ),
            "{unknown}"
        );
    }
}

fn with_list_item(field: &str, value: &str) -> Result<Scheme, SchemeError> {
    Scheme::from_pairs([
        ("url", "http://crm.example.com/"),
        (&format!("{field}.0"), value),
    ])
}

#[test]
fn parameters_and_headers_are_sorted_by_name_and_the_last_of_a_name_wins() {
    let scheme = Scheme::from_pairs([
        ("url", "http://crm.example.com/"),
        ("params.x", "first"),
        ("params.a", "{caller}"),
        ("params.x", "last"),
        ("headers.X-Key", "one"),
        ("headers.x-key", "two"),
        ("outcome_url", "http://crm.example.com/outcome"),
        ("outcome_params.s", "{status}"),
        ("outcome_params.b", "b"),
    ])
    .unwrap();
    let names = |fields: &[Field]| -> Vec<String> {
        fields
            .iter()
            .map(|f| {
                format!(
                    "{}={}",
                    f.name,
                    f.template.render(&crate::call::Call::default())
                )
            })
            .collect()
    };
    assert_eq!(names(scheme.params.as_deref().unwrap()), ["a=", "x=last"]);
    assert_eq!(names(&scheme.headers), ["x-key=two"]);
    assert_eq!(
        names(scheme.outcome.unwrap().params.as_deref().unwrap()),
        ["b=b", "s="]
    );
}
