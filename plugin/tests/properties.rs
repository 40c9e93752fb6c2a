//! Properties of the parsers that face untrusted input (scheme, CRM answer, call JSON,
//! destinations), over generated inputs. The fuzz targets in `fuzz/` drive the same functions
//! with coverage guidance; these run in every `cargo test`. The component's own JSON reader and
//! writer are checked against `serde_json`, the reference.

use callroute_plugin::answer::{self, RawAnswer};
use callroute_plugin::call::Call;
use callroute_plugin::destination::Target;
use callroute_plugin::error::ErrorKind;
use callroute_plugin::json;
use callroute_plugin::request;
use callroute_plugin::scheme::{HostPolicy, Scheme};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "url",
    "method",
    "submission",
    "import",
    "destination_field",
    "jsonrpc_method",
    "ring_timeout_secs",
    "response_timeout_secs",
    "fallback",
    "fallback.0",
    "fallback.1",
    "fallback_url",
    "retries",
    "allowed_prefixes",
    "allowed_sip_domains",
    "signing_secret",
    "params.a",
    "params.call_id",
    "headers.X-A",
    "headers.Host",
    "name",
    "bogus",
];

fn scheme_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let value = prop_oneof![
        Just("http://crm.example.com/r?k=1".to_string()),
        Just("json".to_string()),
        Just("json-rpc".to_string()),
        Just("GET".to_string()),
        Just("{caller}".to_string()),
        Just("3".to_string()),
        ".{0,24}",
    ];
    proptest::collection::vec(
        (
            proptest::sample::select(KEYS).prop_map(str::to_string),
            value,
        ),
        0..10,
    )
}

/// Schemes that are mostly valid and dwell on the fields a host reads itself: each policy
/// field with values valid and not, keys repeated (the last must win), lists single and
/// indexed, beside other fields.
fn policy_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let pair = prop_oneof![
        proptest::sample::select(
            &[
                ("url", "http://crm.example.com/route?k=1"),
                ("url", "https://CRM.example.com:8443/"),
                ("url", "http://[::1]:9000"),
                ("url", "ftp://crm/"),
                ("fallback_url", "https://backup.example.com/"),
                ("fallback_url", "http://crm:65536/"),
                ("response_timeout_secs", "2.5"),
                ("response_timeout_secs", " 0.1 "),
                ("response_timeout_secs", "61"),
                ("ring_timeout_secs", "12"),
                ("ring_timeout_secs", "600"),
                ("ring_timeout_secs", "0"),
                ("fallback", "101"),
                ("fallback", "sip:reception@pbx.example.com"),
                ("fallback", ""),
                ("fallback.0", "+38 044 123 45 67"),
                ("fallback.1", "manager_7"),
                ("fallback.1", "not a destination!"),
                ("fallback.31", "102"),
                ("fallback.32", "102"),
                ("allowed_prefixes", "380, +48"),
                ("allowed_prefixes.1", "1"),
                ("allowed_prefixes", "+38a"),
                ("allowed_sip_domains", "PBX.example.com"),
                ("allowed_sip_domains.0", "bad domain"),
                ("signing_secret", "s3cret"),
                ("signing_secret.1", "next"),
                ("retries", "2"),
                ("method", "GET"),
                ("params.uuid", "{call_id}"),
                ("name", "acme"),
            ][..]
        )
        .prop_map(|(k, v)| (k.to_string(), v.to_string())),
        (
            proptest::sample::select(KEYS).prop_map(str::to_string),
            ".{0,12}"
        ),
    ];
    proptest::collection::vec(pair, 0..12).prop_map(|mut pairs| {
        pairs.insert(0, ("url".into(), "http://crm.example.com/".into()));
        pairs
    })
}

fn valid_scheme(import: &'static str) -> Scheme {
    Scheme::from_pairs([
        ("url", "http://crm.example.com/"),
        ("import", import),
        ("destination_field", "a.b"),
        ("jsonrpc_method", "m"),
    ])
    .unwrap()
}

/// A destination that made it through validation is safe to hand to a PBX.
fn assert_safe(target: &Target) {
    let value = target.value();
    assert!(!value.is_empty() && value.len() <= 256, "{value:?}");
    assert!(!value.chars().any(char::is_control), "{value:?}");
    assert!(!value.contains(['<', '>', '"', ' ', '?']), "{value:?}");
    // Validation is idempotent: what passed once passes again, unchanged.
    assert_eq!(Target::parse(value).as_ref(), Ok(target));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_scheme_parses_or_names_a_field(pairs in scheme_pairs()) {
        match Scheme::from_pairs(pairs) {
            Ok(scheme) => {
                prop_assert!(scheme.response_timeout.as_secs_f64() >= 0.1);
                prop_assert!(scheme.fallback.iter().all(|t| Target::parse(t.value()).is_ok()));
            }
            Err(e) => prop_assert!(e.to_string().contains("scheme field `"), "{e}"),
        }
    }

    /// The host and the component read a scheme's policy fields alike: whenever the component
    /// accepts a scheme, the host's policy is the scheme's, field by field; and a policy the
    /// host refuses is a scheme the component refuses.
    #[test]
    fn the_host_reads_the_policy_as_the_component_does(pairs in policy_pairs()) {
        let policy = HostPolicy::from_pairs(pairs.clone());
        match (Scheme::from_pairs(pairs), policy) {
            (Ok(scheme), Ok(policy)) => {
                let expected = scheme.host_policy();
                prop_assert_eq!(&policy.url, &expected.url);
                prop_assert_eq!(&policy.fallback_url, &expected.fallback_url);
                prop_assert_eq!(policy.response_timeout, expected.response_timeout);
                prop_assert_eq!(policy.ring_timeout_secs, expected.ring_timeout_secs);
                prop_assert_eq!(&policy.fallback, &expected.fallback);
                prop_assert_eq!(&policy.allowlist, &expected.allowlist);
            }
            (Ok(_), Err(error)) => prop_assert!(false, "the component accepted what the host refused: {}", error),
            (Err(_), _) => {}
        }
    }

    #[test]
    fn any_answer_is_a_safe_destination_or_a_typed_error(
        status in prop_oneof![Just(200u16), Just(204), 100u16..600],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            "\\{\"a\":\\{\"b\":\"[ -~]{0,20}\"\\}\\}".prop_map(String::into_bytes),
            "\\{\"jsonrpc\":\"2.0\",\"result\":\"[0-9+ ()-]{0,20}\"\\}".prop_map(String::into_bytes),
        ],
        import in proptest::sample::select(&["http", "json", "json-rpc"][..]),
    ) {
        let answer = RawAnswer { status, body };
        match answer::read(&valid_scheme(import), &Call::default(), &answer) {
            Ok(answered) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!answered.destinations.is_empty());
                prop_assert!(answered.destinations.len() <= callroute_plugin::scheme::DEFAULT_MAX_DESTINATIONS);
                for destination in &answered.destinations {
                    assert_safe(&destination.target);
                }
            }
            Err(e) => {
                if !(200..300).contains(&status) {
                    prop_assert_eq!(e.kind(), ErrorKind::HttpStatus);
                    prop_assert_eq!(e.status(), Some(status));
                }
            }
        }
    }

    #[test]
    fn any_string_is_a_safe_destination_or_refused(raw in ".{0,80}") {
        if let Ok(target) = Target::parse(&raw) {
            assert_safe(&target);
        }
    }

    #[test]
    fn any_call_json_parses_or_names_what_is_wrong(text in prop_oneof![
        ".{0,60}",
        "\\{\"call_id\":\"[ -~]{0,8}\",\"vars\":\\{\"[a-z]{1,5}\":[0-9a-z\"]{0,6}\\}\\}",
    ]) {
        if let Err(e) = Call::from_json(&text) {
            prop_assert!(e.to_string().starts_with("call"), "{e}");
        }
    }

    #[test]
    fn any_call_values_survive_encoding(
        caller in ".{0,30}",
        note in ".{0,30}",
        submission in proptest::sample::select(&["http", "form", "json"][..]),
    ) {
        let scheme = Scheme::from_pairs([
            ("url", "http://crm.example.com/r"),
            ("submission", submission),
            ("params.caller", "{caller}"),
            ("params.note", "{note}"),
            ("headers.X-Note", "{note}"),
        ])
        .unwrap();
        let call = Call { caller: caller.clone(), vars: vec![("note".into(), note.clone())], ..Call::default() };
        let req = request::build(&scheme, &call).unwrap();
        let header = req.header("x-note").unwrap().as_bytes();
        prop_assert!(!header.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0));
        let received: Vec<(String, String)> = match submission {
            "http" => form_urlencoded::parse(req.query().unwrap_or("").as_bytes()).into_owned().collect(),
            "form" => form_urlencoded::parse(&req.body).into_owned().collect(),
            _ => {
                let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                vec![
                    ("caller".into(), json["caller"].as_str().unwrap().into()),
                    ("note".into(), json["note"].as_str().unwrap().into()),
                ]
            }
        };
        prop_assert_eq!(received, vec![("caller".to_string(), caller), ("note".to_string(), note)]);
    }

    #[test]
    fn json_strings_are_written_as_serde_json_writes_them(text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
        prop_assert_eq!(json::string(&text), serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn json_is_accepted_exactly_when_serde_json_accepts_it(tokens in proptest::collection::vec(
        // No exponents: serde_json refuses numbers beyond f64 (`1e999`), which are valid JSON
        // and which the component keeps as text; everything else must agree.
        proptest::sample::select(&[
            "{", "}", "[", "]", ",", ":", " ", "\"", "\\", "\"a\"", "\"\\u00e9\"", "\"\\ud83d\"",
            "\\ude00", "\"\\n\"", "1", "0", "-", ".", "true", "null", "x", "\u{1}", "\"Олена\"",
        ][..]),
        0..14,
    )) {
        let text = tokens.concat();
        let ours = json::parse(&text);
        let reference = serde_json::from_str::<serde_json::Value>(&text);
        prop_assert_eq!(ours.is_ok(), reference.is_ok(), "{:?}: ours {:?}, serde_json {:?}", text, ours, reference);
        if let (Ok(ours), Ok(reference)) = (ours, reference) {
            // Written back, the value reads the same to serde_json (up to its key order).
            let rewritten: serde_json::Value = serde_json::from_str(&ours.to_string()).unwrap();
            prop_assert_eq!(rewritten, reference);
        }
    }

    #[test]
    fn json_documents_serde_json_writes_read_back_the_same(value in json_value()) {
        let text = serde_json::to_string_pretty(&value).unwrap();
        let ours = json::parse(&text).unwrap();
        let rewritten: serde_json::Value = serde_json::from_str(&ours.to_string()).unwrap();
        prop_assert_eq!(rewritten, value);
    }
}

/// Arbitrary JSON documents (integers only: a float's text is serde_json's own choice).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
