//! Destinations: what a CRM answer may route a call to, normalised and validated.
//!
//! A phone number keeps its digits and an optional leading `+`; the separators people write
//! (space, `-`, `(`, `)`, `.`) are dropped, so Ringostat's `"3 80123456789"` becomes
//! `380123456789`. Anything else must be a SIP login (`manager_7`, `alice@pbx.example.com`)
//! or a `sip:`/`sips:` URI made of RFC 3261 characters. Control characters, CR/LF and oversized
//! values never pass: whatever the CRM says is about to reach a PBX's dial string.

/// Longest destination accepted, in bytes.
pub const MAX_DESTINATION_LEN: usize = 256;
/// Most digits a phone number may have (E.164's 15, plus room for an international prefix).
pub const MAX_PHONE_DIGITS: usize = 20;

/// Where a call is sent (the WIT `target` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Digits with an optional leading `+`.
    Phone(String),
    /// A SIP login or `sip:`/`sips:` URI.
    Sip(String),
}

impl Target {
    /// `"phone"` or `"sip"`, as in the JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Phone(_) => "phone",
            Target::Sip(_) => "sip",
        }
    }

    /// The number or SIP address.
    pub fn value(&self) -> &str {
        match self {
            Target::Phone(v) | Target::Sip(v) => v,
        }
    }

    /// Normalise and validate a destination as a CRM wrote it. The error says why it was
    /// refused, quoting at most a short, sanitised excerpt.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let raw = raw.trim();
        if raw.len() > MAX_DESTINATION_LEN {
            return Err(format!(
                "destination is {} bytes long, more than {MAX_DESTINATION_LEN}",
                raw.len()
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("destination contains control characters".into());
        }
        if let Some(phone) = phone(raw) {
            return Ok(Target::Phone(phone));
        }
        let digits = raw.chars().filter(char::is_ascii_digit).count();
        if digits > MAX_PHONE_DIGITS
            && raw
                .chars()
                .all(|c| c.is_ascii_digit() || "+ -().".contains(c))
        {
            return Err(format!(
                "phone number has {digits} digits, more than {MAX_PHONE_DIGITS}"
            ));
        }
        if is_sip(raw) {
            return Ok(Target::Sip(raw.to_owned()));
        }
        Err(format!(
            "destination `{}` is neither a phone number nor a SIP login or URI",
            crate::error::excerpt(raw, 64)
        ))
    }
}

/// A routing decision (the WIT `destination` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Where the call goes.
    pub target: Target,
    /// How long it rings there, in seconds.
    pub ring_timeout_secs: u32,
}

/// `Some(normalised)` when `raw` is a phone number once separators are dropped.
fn phone(raw: &str) -> Option<String> {
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", raw),
    };
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let valid = !digits.is_empty()
        && digits.len() <= MAX_PHONE_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| format!("{plus}{digits}"))
}

/// RFC 3261 `unreserved` / `escaped` / `user-unreserved` characters allowed in a user part.
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c)
}

/// Host names, IPv4 literals and bracketed IPv6 literals, with an optional `:port`.
fn is_hostport(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => ("", after.strip_prefix(':').unwrap_or("x")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (s, ""),
        }
    };
    let port_ok = port.is_empty() || (port.len() <= 5 && port.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = s.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    port_ok && host_ok
}

/// URI parameters after the host: `;transport=tls;lr`.
fn is_uri_params(s: &str) -> bool {
    s.split(';').skip(1).all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%=[]/:&+$".contains(c))
    })
}

/// A SIP login (`user` or `user@host`) or a `sip:`/`sips:` URI.
fn is_sip(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    let (uri, rest) = if lower.starts_with("sip:") {
        (true, &raw[4..])
    } else if lower.starts_with("sips:") {
        (true, &raw[5..])
    } else {
        (false, raw)
    };
    // `?headers` in a URI would let a CRM inject SIP headers into the PBX's request.
    if rest.is_empty() || rest.contains('?') {
        return false;
    }
    match rest.split_once('@') {
        Some((user, hostpart)) => {
            let (hostport, params) = match hostpart.find(';') {
                Some(i) => hostpart.split_at(i),
                None => (hostpart, ""),
            };
            !user.is_empty()
                && user.chars().all(is_user_char)
                && !user.contains(';')
                && valid_escapes(user)
                && is_hostport(hostport)
                && is_uri_params(params)
        }
        // `sip:host` is a valid URI; a bare login has no `@` and no host.
        None if uri => {
            let (hostport, params) = match rest.find(';') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            is_hostport(hostport) && is_uri_params(params)
        }
        None => {
            rest.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'+".contains(c))
                && rest.chars().any(|c| c.is_ascii_alphanumeric())
        }
    }
}

/// Every `%` starts a two-hex-digit escape.
fn valid_escapes(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(sip_of("manager_7"), "manager_7");
        assert_eq!(sip_of("alice@pbx.example.com"), "alice@pbx.example.com");
        assert_eq!(
            sip_of("sip:alice@pbx.example.com:5061;transport=tls"),
            "sip:alice@pbx.example.com:5061;transport=tls"
        );
        assert_eq!(
            sip_of("sips:380441234567@10.0.0.5"),
            "sips:380441234567@10.0.0.5"
        );
        assert_eq!(sip_of("sip:pbx.example.com"), "sip:pbx.example.com");
        assert_eq!(
            sip_of("sip:bob@[2001:db8::1]:5060"),
            "sip:bob@[2001:db8::1]:5060"
        );
        assert_eq!(sip_of("sip:%61lice@h"), "sip:%61lice@h");
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
    }

    #[test]
    fn kind_and_value() {
        let t = Target::parse("+380441234567").unwrap();
        assert_eq!((t.kind(), t.value()), ("phone", "+380441234567"));
        let t = Target::parse("sip:a@b").unwrap();
        assert_eq!((t.kind(), t.value()), ("sip", "sip:a@b"));
    }
}
