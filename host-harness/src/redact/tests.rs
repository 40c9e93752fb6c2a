//! Which values are secret, and every form of one that is masked.

use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn secrets(list: &[(&str, &str)]) -> Secrets {
    Secrets::of_scheme(&pairs(list), Vec::new())
}

const SECRET: &str = "k3y+with/slash=and\"quote";

#[test]
fn every_covered_form_of_a_secret_is_masked() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let secrets = secrets(&[("headers.X-Key", SECRET)]);
    let forms = [
        SECRET.to_owned(),
        SECRET.to_uppercase(),
        "k3y%2Bwith%2Fslash%3Dand%22quote".to_owned(),
        "k3y%2bwith%2fslash%3dand%22quote".to_owned(),
        r#"k3y+with/slash=and\"quote"#.to_owned(),
        r#"k3y+with\/slash=and\"quote"#.to_owned(),
        "k3y+with/slash=and&quot;quote".to_owned(),
        callroute_plugin::request::hex(SECRET.as_bytes()).to_uppercase(),
    ];
    for form in forms {
        let masked = secrets.mask(&format!("sent {form}."));
        assert_eq!(masked, "sent •••.", "{form}");
    }
    // Base64 of a longer text holding it, at each alignment, in both alphabets.
    for prefix in ["", "u:", "ab:"] {
        for encoded in [
            STANDARD.encode(format!("{prefix}{SECRET}!")),
            URL_SAFE_NO_PAD.encode(format!("{prefix}{SECRET}!")),
        ] {
            let masked = secrets.mask(&encoded);
            assert!(masked.contains(MASK), "{prefix}: {encoded} -> {masked}");
            // What is left is at most the characters shared with the surrounding text.
            assert!(masked.len() <= MASK.len() + 12, "{masked}");
        }
    }
}

#[test]
fn a_cut_leaves_no_recognisable_start_of_a_secret() {
    let secrets = secrets(&[("headers.Authorization", "Bearer 0123456789abcdefXYZ")]);
    for cut in [4, 10, 18] {
        let start = &"0123456789abcdefXYZ"[..cut];
        let excerpt = secrets.mask(&format!("key {start}…"));
        assert_eq!(excerpt, "key •••…");
        let body = secrets.mask_body(&format!("key {start}"), true);
        assert_eq!(body, "key •••");
        // A text that was not cut may end as a secret starts.
        assert_eq!(
            secrets.mask(&format!("key {start}")),
            format!("key {start}")
        );
    }
    // Too short to tell, and text that merely ends alike, are left alone.
    assert_eq!(secrets.mask("key 012…"), "key 012…");
    assert_eq!(secrets.mask("not a secret…"), "not a secret…");
}

#[test]
fn which_values_are_secret() {
    let secrets = Secrets::of_scheme(
        &pairs(&[
            ("name", "acme-corp"),
            (
                "url",
                "https://crm.example.com/r?token=t0psecret&tenant=7777",
            ),
            ("headers.Authorization", "Bearer h3adertoken"),
            ("signing_secret", "s1gningkey"),
            ("api_tokens.0", "an-api-token-of-some-length"),
            ("params.key", "LITERAL-key-{caller}"),
            ("params.caller", "+{caller}"),
            ("behaviour", "own-key-value"),
            ("destination_field", "number_01"),
        ]),
        vec!["from-the-environment".into()],
    );
    for secret in [
        "t0psecret",
        "7777",
        "h3adertoken",
        "Bearer h3adertoken",
        "s1gningkey",
        "an-api-token-of-some-length",
        "LITERAL-key-",
        "own-key-value",
        "from-the-environment",
    ] {
        assert_eq!(secrets.mask(secret), MASK, "{secret}");
    }
    for plain in ["acme-corp", "number_01", "crm.example.com"] {
        assert_eq!(secrets.mask(plain), plain);
    }
    assert!(only_placeholders("+{caller}"));
    assert!(!only_placeholders("LITERAL-{caller}"));
}

#[test]
fn a_body_is_whole_unless_it_was_cut_and_its_own_marks_are_no_cuts() {
    let secrets = secrets(&[("headers.X-Key", "0123456789abcdef")]);
    // A CRM's own `…` is not a cut in a body.
    assert_eq!(secrets.mask_body("a 0123… b", false), "a 0123… b");
    assert_eq!(secrets.mask_body("a 0123", true), "a •••");
    // A secret that holds the mark itself cannot make a cut go wrong.
    let marked = Secrets::of_scheme(&pairs(&[("headers.X-Key", "ab…cd…ef")]), Vec::new());
    assert_eq!(marked.mask("x ab…cd…ef… y ab…"), "x •••… y ab…");
    // Many marks: only the last few are looked at, and nothing panics.
    let many = format!("{}0123…", "…".repeat(1000));
    assert!(secrets.mask(&many).ends_with("•••…"));
}

#[test]
fn numbers_are_masked_unless_shown() {
    let none = Secrets::default();
    let redactor = Redactor::new(&none, ["+380501112233", "101"], false);
    assert_eq!(
        redactor.mask("caller=%2B380501112233 for +380501112233, ext 101"),
        "caller=%2B380501•••2233 for +38050•••2233, ext 101"
    );
    assert_eq!(shown_number("+380501112233", false), "+38050•••2233");
    assert_eq!(shown_number("101", false), "•••01");
    let shown = Redactor::new(&none, ["+380501112233", "101"], true);
    assert_eq!(shown.mask("+380501112233"), "+380501112233");
    assert_eq!(shown_number("101", true), "101");
}

#[test]
fn numbers_are_masked_but_recognisable() {
    assert_eq!(mask_number("+380501112233"), "+38050•••2233");
    assert_eq!(mask_number("380441234567"), "380441•••4567");
    assert_eq!(mask_number("1234567"), "123•••4567");
    assert_eq!(mask_number("101"), "•••01");
    assert_eq!(mask_number(""), "•••");
}
