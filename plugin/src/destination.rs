//! Destinations: what a CRM answer may route a call to, normalised and validated, and the
//! allowlist that holds them to the scheme's `allowed_prefixes` and `allowed_sip_domains`.
//!
//! A phone number keeps its digits and an optional leading `+`; the separators people write
//! (space, `-`, `(`, `)`, `.`) are dropped, so Ringostat's `"3 80123456789"` becomes
//! `380123456789`. Anything else must be a SIP login (`manager_7`, `alice@pbx.example.com`)
//! or a `sip:`/`sips:` URI. Control characters, CR/LF and oversized values never pass:
//! whatever the CRM says is about to reach a PBX's dial string.
//!
//! # The strict SIP profile
//!
//! RFC 3261 allows far more in a SIP URI than is safe to hand a PBX: the destination ends up in
//! a dial string (Asterisk's `Dial(PJSIP/${DEST})`, a FreeSWITCH `bridge`), where some
//! characters are syntax, and the PBX decodes escapes. [`SipAddress::parse`] accepts a strict
//! subset instead, and refuses the rest with a message that names what was wrong:
//!
//! - **User part** (`alice` in `sip:alice@host`, or a whole bare login such as `manager_7`):
//!   letters, digits and `-` `_` `.` `!` `~` `*` `+`, with at least one letter or digit. These
//!   are RFC 3261's unreserved marks without `'`, `(` and `)`, plus `+` for E.164 numbers; none
//!   of them is syntax in Asterisk's `Dial()`, and `*`/`+` occur in real extensions (`*97`,
//!   `+380…`). Refused, among others: `&` (`Dial()` reads `1000&SIP/x` as "also dial
//!   `SIP/x`"), `,` and `|` (argument separators: `1000,30,D(…)` would add a timeout and
//!   options), `(` `)` (option arguments), `$` `{` `}` `[` `]` (variable and expression
//!   expansion), `/` (the technology/resource separator), `'` (a quote), and `;` `=` `?` `:`
//!   `@` (URI syntax that has no business in a user part; `:` would start a password).
//! - **No percent-escapes.** RFC 3261 allows `%XX` anywhere in a user part or parameter, and a
//!   PBX decodes them; `%0d%0a` or `%00` would smuggle CR, LF or NUL past every check here,
//!   and `%26` an `&`. Any `%` is refused: whatever an escape stands for is either allowed as
//!   itself or not allowed at all.
//! - **Host**: a domain name (labels of letters, digits and inner `-`, the last one starting
//!   with a letter as RFC 3261's `toplabel` does), an IPv4 address in its four-octet decimal
//!   form (not `3232235777` or `010.0.0.1`, which resolvers read as other addresses) or a
//!   bracketed IPv6 address, then an optional `:port` from 1 to 65535.
//! - **Parameters** after the host: `;name` or `;name=value`, both made of the user part's
//!   characters, each name at most once (a repeated one may be read one way here and another
//!   way by the PBX). `maddr` is refused outright: it sends the request to another host than
//!   the URI's, past `allowed_sip_domains`; so is `alias`, with which Kamailio does the same;
//!   and `method`, which turns the INVITE into another request.
//! - **No `?headers`**: they would add SIP headers of the CRM's choosing to the PBX's request.
//!
//! [`Allowlist::check`] reads the same [`SipAddress`]: its host must be one of
//! `allowed_sip_domains`, and a user part that is a telephone number (see
//! [`SipAddress::number_user`]) must start with one of `allowed_prefixes`, with or without
//! `;user=phone`: a PBX may hand such a user to a trunk that dials it.

use crate::scheme::lists::list_items;
use crate::scheme::{SchemeError, invalid};

/// Longest destination accepted, in bytes.
pub const MAX_DESTINATION_LEN: usize = 256;
/// Most digits a phone number may have (E.164's 15, plus room for an international prefix).
pub const MAX_PHONE_DIGITS: usize = 20;

/// Where a call is sent (the WIT `target` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Digits with an optional leading `+`.
    Phone(String),
    /// A SIP login or `sip:`/`sips:` URI, as [`SipAddress::parse`] accepts it.
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

    /// Normalise and validate a destination as a CRM wrote it (see the module docs). The error
    /// says why it was refused, quoting at most a short, sanitised excerpt.
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
        match SipAddress::parse(raw) {
            Ok(_) => Ok(Target::Sip(raw.to_owned())),
            Err(reason) => Err(format!(
                "destination `{}` is not a phone number or an acceptable SIP address: {reason}",
                crate::error::excerpt(raw, 64)
            )),
        }
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

/// How several destinations are rung (the WIT `ring-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingStrategy {
    /// One after another, in order, each for its ring time.
    #[default]
    Serial,
    /// All at once; the first to answer takes the call.
    Parallel,
}

impl RingStrategy {
    /// The strategy's name, as the scheme and the outcome JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RingStrategy::Serial => "serial",
            RingStrategy::Parallel => "parallel",
        }
    }
}

impl std::str::FromStr for RingStrategy {
    type Err = String;

    /// `serial` or `parallel`, in any case.
    fn from_str(value: &str) -> Result<RingStrategy, String> {
        match value.to_ascii_lowercase().as_str() {
            "serial" => Ok(RingStrategy::Serial),
            "parallel" => Ok(RingStrategy::Parallel),
            _ => Err(format!(
                "`{}` is not one of serial, parallel",
                crate::error::excerpt(value, 32)
            )),
        }
    }
}

/// A destination the CRM named that is left out, and why (the WIT `refused-destination`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What the CRM gave, cut to at most 64 characters.
    pub value: String,
    /// Why it was left out.
    pub reason: String,
}

impl Refused {
    /// `value` (cut to 64 characters) refused for `reason`.
    pub fn new(value: &str, reason: impl Into<String>) -> Refused {
        Refused {
            value: crate::error::excerpt(value, 64),
            reason: reason.into(),
        }
    }
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

/// A SIP login or URI taken apart: what [`Target::parse`] validates through and what
/// [`Allowlist::check`] reads, so the two never disagree about where a call goes. It borrows
/// from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipAddress<'a> {
    /// `sip` or `sips` as written (in any case); `None` for a bare login (`manager_7`,
    /// `alice@pbx.example.com`).
    pub scheme: Option<&'a str>,
    /// The user part: `alice` in `sip:alice@host`, the whole of a bare `manager_7`; `None` for
    /// a URI without one (`sip:pbx.example.com`).
    pub user: Option<&'a str>,
    /// The host as written (an IPv6 address without its brackets); compare it ignoring ASCII
    /// case. `None` for a bare login without `@`, which is dialled at the PBX's own domain.
    pub host: Option<&'a str>,
    /// The port, 1 to 65535, when one is written.
    pub port: Option<u16>,
    /// The URI parameters as written, without the leading `;` (`transport=tls;lr`); empty when
    /// there are none.
    pub params: &'a str,
}

/// Parameters refused by name (compared ignoring ASCII case), with the reason.
const REFUSED_PARAMS: [(&str, &str); 3] = [
    (
        "maddr",
        "sends the request to another host than the URI's, past allowed_sip_domains",
    ),
    (
        "alias",
        "makes Kamailio send the request to another address",
    ),
    ("method", "turns the call into another SIP request"),
];

impl<'a> SipAddress<'a> {
    /// Take a SIP login or `sip:`/`sips:` URI apart, holding it to the strict profile in the
    /// module docs. The error says what was wrong, without quoting `raw` (the caller does).
    /// Length and control characters are [`Target::parse`]'s to check.
    pub fn parse(raw: &'a str) -> Result<SipAddress<'a>, String> {
        let (scheme, rest) = match raw.split_once(':') {
            Some((s, rest)) if s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips") => {
                (Some(s), rest)
            }
            _ => (None, raw),
        };
        if rest.contains('?') {
            return Err(
                "`?headers` would add SIP headers of the CRM's choosing to the PBX's request"
                    .into(),
            );
        }
        let (user, hostpart) = match rest.split_once('@') {
            Some((user, hostpart)) => (Some(user), Some(hostpart)),
            // `sip:host` is a URI without a user; a bare login has no `@` and no host.
            None if scheme.is_some() => (None, Some(rest)),
            None => (Some(rest), None),
        };
        if let Some(user) = user {
            check_chars(user, "the user part")?;
            if !user.bytes().any(|b| b.is_ascii_alphanumeric()) {
                return Err("the user part has no letter or digit".into());
            }
        }
        let mut address = SipAddress {
            scheme,
            user,
            host: None,
            port: None,
            params: "",
        };
        if let Some(hostpart) = hostpart {
            let (hostport, params) = match hostpart.split_once(';') {
                Some((hostport, params)) => (hostport, Some(params)),
                None => (hostpart, None),
            };
            let (host, port) = host_and_port(hostport).ok_or(
                "the host is not a domain name, an IPv4 address or a bracketed IPv6 address \
                 with an optional port from 1 to 65535",
            )?;
            (address.host, address.port) = (Some(host), port);
            if let Some(params) = params {
                check_params(params)?;
                address.params = params;
            }
        }
        Ok(address)
    }

    /// The user part when it is a telephone number: it has a digit and no letter
    /// (`19005551234`, `+1-900-555-1234`, `*6719005551234`). Whatever else it holds (`+`, the
    /// visual separators `-` and `.`, a star code's `*`) does not make it less of a number to
    /// a PBX that passes it to a trunk, so [`Allowlist::check`] holds it to `allowed_prefixes`
    /// by its digits, whether or not the URI says `;user=phone`.
    pub fn number_user(&self) -> Option<&'a str> {
        self.user.filter(|user| {
            user.bytes().any(|b| b.is_ascii_digit())
                && !user.bytes().any(|b| b.is_ascii_alphabetic())
        })
    }
}

/// `Err` naming the first character of `text` outside the profile (letters, digits and
/// `-_.!~*+`), and why it matters when it is dial-string syntax; `Err` too when `text` is empty.
fn check_chars(text: &str, part: &str) -> Result<(), String> {
    let Some(c) = text
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !"-_.!~*+".contains(c))
    else {
        if text.is_empty() {
            return Err(format!("{part} is empty"));
        }
        return Ok(());
    };
    let why = match c {
        '&' | ',' | '|' | '/' => ", which a PBX dial string would read as a separator",
        '(' | ')' => ", which a PBX dial string would read as options",
        '$' | '{' | '}' | '[' | ']' => ", which a PBX would expand as a variable or expression",
        '%' => ": percent-escapes are refused, as a PBX decodes them (they can hide CR, LF or NUL)",
        _ => "",
    };
    let shown = if c.is_control() {
        c.escape_unicode().to_string()
    } else {
        c.to_string()
    };
    Err(format!("{part} contains `{shown}`{why}"))
}

/// URI parameters (`transport=tls;lr`, without the leading `;`): each `name` or `name=value`
/// in the profile's characters, no name twice, none of [`REFUSED_PARAMS`].
fn check_params(params: &str) -> Result<(), String> {
    for (i, param) in params.split(';').enumerate() {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param, None),
        };
        check_chars(name, "a parameter name")?;
        if let Some(value) = value {
            check_chars(value, "a parameter value")?;
        }
        if let Some((refused, why)) = REFUSED_PARAMS
            .iter()
            .find(|(refused, _)| name.eq_ignore_ascii_case(refused))
        {
            return Err(format!("the `{refused}` parameter {why}"));
        }
        if params.split(';').take(i).any(|earlier| {
            let earlier = earlier.split('=').next().unwrap_or_default();
            earlier.eq_ignore_ascii_case(name)
        }) {
            return Err(format!("the `{name}` parameter is repeated"));
        }
    }
    Ok(())
}

/// A host name, IPv4 literal or bracketed IPv6 literal (returned without its brackets), with
/// an optional `:port` from 1 to 65535.
fn host_and_port(s: &str) -> Option<(&str, Option<u16>)> {
    let split = crate::hostport::split(s).ok()?;
    if !split.ipv6 {
        let host = split.host;
        let label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        // RFC 3261's `toplabel` starts with a letter: an all-digit host is an IPv4 address in
        // its four-octet form or nothing (not `3232235777` or `010.0.0.1`, which resolvers
        // read as other addresses).
        let top = host.rsplit('.').next().unwrap_or_default();
        let named = top.starts_with(|c: char| c.is_ascii_alphabetic());
        if host.len() > 253
            || !host.split('.').all(label)
            || !(named || host.parse::<std::net::Ipv4Addr>().is_ok())
        {
            return None;
        }
    }
    let port = match split.port {
        None => None,
        Some(p) => Some(crate::hostport::port(p)?),
    };
    Some((split.host, port))
}

/// Where a CRM may route calls: the scheme's `allowed_prefixes` and `allowed_sip_domains`.
/// Both the component and the host check every destination against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Phone prefixes (digits, no `+`); empty means any phone number.
    pub prefixes: Vec<String>,
    /// SIP domains (lower case); empty means any domain.
    pub sip_domains: Vec<String>,
}

impl Allowlist {
    /// From the entries of the two list fields, each item validated.
    pub(crate) fn from_entries(
        prefixes: Vec<(String, String)>,
        sip_domains: Vec<(String, String)>,
    ) -> Result<Allowlist, SchemeError> {
        let prefixes = list_items(prefixes)
            .into_iter()
            .map(|(key, prefix)| {
                let digits = prefix.strip_prefix('+').unwrap_or(&prefix);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        &key,
                        format!("`{prefix}` is not a phone prefix (digits, optional +)"),
                    ));
                }
                Ok(digits.to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sip_domains = list_items(sip_domains)
            .into_iter()
            .map(|(key, domain)| {
                let valid = !domain.is_empty()
                    && domain.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !valid {
                    return Err(invalid(&key, format!("`{domain}` is not a domain name")));
                }
                Ok(domain.to_ascii_lowercase())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Allowlist {
            prefixes,
            sip_domains,
        })
    }

    /// Whether a destination is inside the allowlist; `Err` says why not. A phone number must
    /// start with one of `allowed_prefixes`; a SIP address must be at one of
    /// `allowed_sip_domains` (a bare login, dialled at the PBX's own domain, always is), and if
    /// its user part is a telephone number ([`SipAddress::number_user`]) that must start with
    /// one of `allowed_prefixes` too. An empty list allows anything.
    pub fn check(&self, target: &Target) -> Result<(), String> {
        match target {
            Target::Phone(phone) if !self.allows_number(phone) => Err(format!(
                "the CRM routed to {phone}, outside allowed_prefixes"
            )),
            Target::Sip(sip) if !self.prefixes.is_empty() || !self.sip_domains.is_empty() => {
                let address = SipAddress::parse(sip).map_err(|reason| {
                    format!("the CRM routed to an invalid SIP address: {reason}")
                })?;
                if let Some(host) = address.host
                    && !self.sip_domains.is_empty()
                    && !self
                        .sip_domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(host))
                {
                    return Err(format!(
                        "the CRM routed to SIP domain {}, outside allowed_sip_domains",
                        host.to_ascii_lowercase()
                    ));
                }
                match address.number_user() {
                    Some(user) if !self.allows_number(user) => Err(format!(
                        "the CRM routed to SIP user {user}, a phone number outside allowed_prefixes"
                    )),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the digits of `number`, in order and ignoring anything else, start with one of
    /// the prefixes (any number when there are none).
    fn allows_number(&self, number: &str) -> bool {
        self.prefixes.is_empty()
            || self.prefixes.iter().any(|prefix| {
                let mut digits = number.bytes().filter(u8::is_ascii_digit);
                prefix.bytes().all(|p| digits.next() == Some(p))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::HostPolicy;

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
}
