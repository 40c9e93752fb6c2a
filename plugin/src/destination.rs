//! Destinations: what a CRM answer may route a call to, normalised and validated. (The
//! allowlist that holds them to the scheme's `allowed_prefixes` and `allowed_sip_domains` is
//! the scheme's: [`crate::scheme::Allowlist`], over the same [`SipAddress`].)
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
//! [`crate::scheme::Allowlist::check`] reads the same [`SipAddress`]: its host must be one of
//! `allowed_sip_domains`, and a user part that is a telephone number (see
//! [`SipAddress::number_user`]) must start with one of `allowed_prefixes`, with or without
//! `;user=phone`: a PBX may hand such a user to a trunk that dials it.

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

#[cfg(test)]
mod tests;
