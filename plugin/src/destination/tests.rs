//! Destinations, SIP addresses and the allowlist, case by case.

use super::*;
use crate::scheme::{Allowlist, HostPolicy, SchemeError};

/// The allowlist a host reads from `pairs`.
fn parse_allowlist<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Allowlist, SchemeError> {
    HostPolicy::from_pairs(pairs).map(|policy| policy.allowlist)
}

fn phone_of(s: &str) -> String {
    match Target::parse(s) {
        Ok(Target::Phone(p)) => p,
        other => panic!("{s:?} -> {other:?}"),
    }
}

fn sip_of(s: &str) -> String {
    match Target::parse(s) {
        Ok(Target::Sip(p)) => p,
        other => panic!("{s:?} -> {other:?}"),
    }
}

#[test]
fn phones_are_normalised() {
    assert_eq!(phone_of("3 80123456789"), "380123456789");
    assert_eq!(phone_of("380123456789"), "380123456789");
    assert_eq!(phone_of(" +38 (044) 123-45-67 "), "+380441234567");
    assert_eq!(phone_of("+1.415.555.0100"), "+14155550100");
    assert_eq!(phone_of("101"), "101");
}

#[test]
fn sip_logins_and_uris_are_kept() {
    for sip in [
        "manager_7",
        "*97",
        "alice@pbx.example.com",
        "sip:alice@pbx.example.com:5061;transport=tls",
        "sips:380441234567@10.0.0.5",
        "sip:pbx.example.com",
        "sip:bob@[2001:db8::1]:5060",
        "sip:alice@pbx.example.com;transport=tls;lr",
        "SIP:Alice.Smith@PBX.example.com;TRANSPORT=TLS",
        "sip:+380441234567@pbx.example.com;user=phone",
        "sip:a-b_c.d!e~f*g+h@pbx.example.com",
        "alice@pbx.example.com;transport=tcp",
        "sip:alice@localhost",
        "sip:alice@pbx-1.example.com",
        "sip:10.0.0.5:5060",
    ] {
        assert_eq!(sip_of(sip), sip);
    }
    // RFC 3261 allows escapes (`%61` is `a`), the strict profile does not: a PBX decodes
    // them, and `%0d%0a` would smuggle a line break past validation.
    let err = Target::parse("sip:%61lice@h").unwrap_err();
    assert!(err.contains("percent-escapes"), "{err}");
}

#[test]
fn sip_addresses_are_taken_apart() {
    let address = SipAddress::parse("SIPS:Alice@PBX.example.com:5061;transport=tls;lr");
    assert_eq!(
        address,
        Ok(SipAddress {
            scheme: Some("SIPS"),
            user: Some("Alice"),
            host: Some("PBX.example.com"),
            port: Some(5061),
            params: "transport=tls;lr",
        })
    );
    let address = SipAddress::parse("sip:bob@[2001:db8::1]:5060").unwrap();
    assert_eq!(
        (address.user, address.host, address.port),
        (Some("bob"), Some("2001:db8::1"), Some(5060))
    );
    let address = SipAddress::parse("sip:pbx.example.com").unwrap();
    assert_eq!(
        (address.user, address.host),
        (None, Some("pbx.example.com"))
    );
    let address = SipAddress::parse("manager_7").unwrap();
    assert_eq!(
        (address.scheme, address.user, address.host, address.params),
        (None, Some("manager_7"), None, "")
    );
    let address = SipAddress::parse("alice@pbx.example.com").unwrap();
    assert_eq!(
        (address.scheme, address.user, address.host),
        (None, Some("alice"), Some("pbx.example.com"))
    );
    let err = SipAddress::parse("a\u{0}b").unwrap_err();
    assert_eq!(err, "the user part contains `\\u{0}`");
    for (sip, number) in [
        ("sip:19005551234@h;user=phone", Some("19005551234")),
        ("sip:+1-900-555-1234@h", Some("+1-900-555-1234")),
        ("*6719005551234", Some("*6719005551234")),
        ("sip:manager_7@h", None),
        ("sip:h", None),
        ("sip:agent1@h", None),
    ] {
        assert_eq!(
            SipAddress::parse(sip).unwrap().number_user(),
            number,
            "{sip}"
        );
    }
}

#[test]
fn dial_string_syntax_and_redirections_are_refused() {
    for (bad, why) in [
        (
            "sip:1000&SIP/x@pbx.example.com",
            "`&`, which a PBX dial string would read as a separator",
        ),
        ("1000&SIP/evil", "separator"),
        (
            "sip:1000,30,D(x)@pbx.example.com",
            "`,`, which a PBX dial string would read",
        ),
        ("sip:1000|30@pbx.example.com", "separator"),
        ("sip:SIP/evil@pbx.example.com", "`/`"),
        ("sip:a(b)@pbx.example.com", "options"),
        ("sip:${EXTEN}@pbx.example.com", "variable"),
        ("sip:[x]@pbx.example.com", "expression"),
        ("sip:1000%0d%0aVia:x@pbx.example.com", "percent-escapes"),
        ("sip:alice%00@pbx.example.com", "percent-escapes"),
        ("sip:al%zzice@host", "percent-escapes"),
        ("sip:alice@pbx.example.com;x=%0d%0a", "percent-escapes"),
        ("sip:o'brien@pbx.example.com", "`'`"),
        ("sip:alice:secret@pbx.example.com", "`:`"),
        ("sip:a=b@pbx.example.com", "`=`"),
        (
            "manager;maddr=evil.example.net",
            "the user part contains `;`",
        ),
        (
            "sip:alice@pbx.example.com;maddr=evil.example.net",
            "`maddr` parameter sends",
        ),
        ("sip:alice@pbx.example.com;MADDR=evil.example.net", "maddr"),
        ("sip:alice@pbx.example.com;lr;maddr", "maddr"),
        (
            "sip:alice@pbx.example.com;alias=203.0.113.9~5060~1",
            "alias",
        ),
        ("sip:alice@pbx.example.com;method=REGISTER", "method"),
        (
            "sip:alice@pbx.example.com;transport=tls;Transport=udp",
            "`Transport` parameter is repeated",
        ),
        ("sip:1-900-555-1234@h;user=ip;user=phone", "repeated"),
        (
            "sip:alice@pbx.example.com;x=a,b",
            "parameter value contains `,`",
        ),
        ("sip:alice@pbx.example.com;x=a=b", "`=`"),
        ("sip:alice@pbx.example.com;", "a parameter name is empty"),
        ("sip:alice@pbx.example.com;=x", "a parameter name is empty"),
        ("sip:alice@pbx.example.com;x=", "a parameter value is empty"),
        ("sip:alice@pbx.example.com;x;;lr", "empty"),
        (
            "sip:alice@pbx.example.com?Route=%3Csip:evil%3E",
            "`?headers`",
        ),
        ("sip:alice@evil.example.net@pbx.example.com", "host"),
        ("sip:alice@pbx.example.com:+80", "host"),
        ("sip:alice@pbx.example.com:0", "host"),
        ("sip:alice@pbx.example.com:", "host"),
        ("sip:alice@[2001:db8::1", "host"),
        ("sip:alice@[fe80::1%eth0]", "host"),
        ("sip:alice@[2001:db8::1]5060", "host"),
        ("sip:alice@3232235777", "host"),
        ("sip:alice@010.0.0.5", "host"),
        ("sip:alice@10.0.0.256", "host"),
        ("sip:alice@10.0.5", "host"),
        ("sip:19005551234", "host"),
        ("sip:alice@pbx.example.123", "host"),
        ("sip:@pbx.example.com", "the user part is empty"),
        ("sip:-.-@pbx.example.com", "no letter or digit"),
        ("alice smith", "` `"),
    ] {
        let err = Target::parse(bad).unwrap_err();
        assert!(err.contains(why), "{bad:?}: {err}");
        assert!(
            err.contains(&crate::error::excerpt(bad, 64)),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn hostile_or_malformed_destinations_are_refused() {
    for bad in [
        "",
        "   ",
        "+",
        "()-",
        "3801\r\nVia: evil",
        "alice\0",
        "sip:alice@pbx.example.com?Route=%3Csip:evil%3E",
        "sip:alice@pbx.example.com>;evil",
        "sip:",
        "sip:@host",
        "alice smith",
        "<sip:alice@host>",
        "sip:alice@-bad-.com",
        "sip:al%zzice@host",
        "sip:alice@host:99999",
        "123456789012345678901",
        "\"quoted\"",
        "tel:+380441234567",
    ] {
        assert!(
            Target::parse(bad).is_err(),
            "{bad:?} was accepted as {:?}",
            Target::parse(bad)
        );
    }
    let long = "a".repeat(MAX_DESTINATION_LEN + 1);
    assert!(Target::parse(&long).unwrap_err().contains("bytes long"));
    let err = Target::parse("line\nbreak").unwrap_err();
    assert!(err.contains("control"), "{err}");
    let err = Target::parse(&format!("sip:{}&x@h", "a".repeat(200))).unwrap_err();
    assert!(err.contains('…') && err.len() < 300, "{err}");
}

#[test]
fn kind_and_value() {
    let t = Target::parse("+380441234567").unwrap();
    assert_eq!((t.kind(), t.value()), ("phone", "+380441234567"));
    let t = Target::parse("sip:a@b").unwrap();
    assert_eq!((t.kind(), t.value()), ("sip", "sip:a@b"));
}

#[test]
fn numeric_sip_users_are_held_to_allowed_prefixes() {
    let list = parse_allowlist([
        ("allowed_prefixes", "+380"),
        ("allowed_sip_domains", "pbx.example.com"),
    ])
    .unwrap();
    let check = |t: &str| list.check(&Target::parse(t).unwrap());
    for bad in [
        "sip:19005551234@pbx.example.com;user=phone",
        "19005551234@pbx.example.com",
        "sip:+19005551234@pbx.example.com",
        "sips:1-900-555-1234@pbx.example.com;user=phone",
        "sip:1.900.555.1234@PBX.example.com",
        "*6719005551234",
        // Prefixes match the digits as written, as they do for a phone `00380…`.
        "sip:00380441234567@pbx.example.com",
    ] {
        let err = check(bad).unwrap_err();
        assert!(
            err.contains("SIP user") && err.contains("outside allowed_prefixes"),
            "{bad}: {err}"
        );
    }
    for good in [
        "sip:380441234567@pbx.example.com",
        "sip:+380441234567@pbx.example.com;user=phone",
        "sips:380-44-123-45-67@pbx.example.com:5061;transport=tls",
        "380441234567@pbx.example.com",
        "sip:manager_7@pbx.example.com",
        "manager_7",
        "alice@PBX.example.com",
        "sip:pbx.example.com",
        "sip:alice@pbx.example.com;transport=tls;lr",
    ] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
    assert!(
        check("+19005551234")
            .unwrap_err()
            .contains("outside allowed_prefixes")
    );
    assert_eq!(
        check("sip:alice@EVIL.example.net").unwrap_err(),
        "the CRM routed to SIP domain evil.example.net, outside allowed_sip_domains"
    );
    assert!(
        check("sip:380441234567@evil.example.net")
            .unwrap_err()
            .contains("outside allowed_sip_domains")
    );

    // Prefixes alone: a numeric user is held to them at any domain, a name is not.
    let prefixes = parse_allowlist([("allowed_prefixes", "380")]).unwrap();
    let sip = |t: &str| Target::Sip(t.into());
    assert!(
        prefixes
            .check(&sip("sip:19005551234@anywhere.example.org"))
            .is_err()
    );
    assert!(
        prefixes
            .check(&sip("sip:380441234567@anywhere.example.org"))
            .is_ok()
    );
    assert!(
        prefixes
            .check(&sip("sip:alice@anywhere.example.org"))
            .is_ok()
    );
    // Domains alone: any user at an allowed domain.
    let domains = parse_allowlist([("allowed_sip_domains", "pbx.example.com")]).unwrap();
    assert!(
        domains
            .check(&sip("sip:19005551234@pbx.example.com"))
            .is_ok()
    );

    // `maddr` never reaches the allowlist (it is refused as a destination), and a target
    // built without validation is refused by the allowlist's own parse.
    let err = Target::parse("sip:alice@pbx.example.com;maddr=evil.example.net").unwrap_err();
    assert!(err.contains("maddr"), "{err}");
    let err = list
        .check(&sip("sip:alice@pbx.example.com;maddr=evil.example.net"))
        .unwrap_err();
    assert!(
        err.contains("invalid SIP address") && err.contains("maddr"),
        "{err}"
    );
    // No lists, no restriction.
    assert!(
        Allowlist::default()
            .check(&sip("sip:19005551234@evil.example.net"))
            .is_ok()
    );
}
