//! The customer's routing scheme: where the CRM is, how to ask it, how to read its answer.
//!
//! A scheme arrives as flat string pairs (that is what `wasi:config/store` holds); the host's
//! TOML file maps onto them one to one:
//!
//! | key | meaning |
//! |---|---|
//! | `name` | the scheme's name (informational) |
//! | `url` | the CRM endpoint, `http` or `https`, any port |
//! | `method` | `GET`, `POST`, `PUT` or `DELETE` (default `POST`) |
//! | `submission` | `http` (URL query), `form`, `json` or `json-rpc` (default `http`) |
//! | `import` | `http` (plain text), `json` or `json-rpc` (default `http`) |
//! | `destination_field` | the answer's field holding the destination, dotted paths allowed |
//! | `jsonrpc_method` | the JSON-RPC method, required when submission or import is `json-rpc` |
//! | `ring_timeout_secs` | how long the destination rings, 1 to 600 (default 30) |
//! | `response_timeout_secs` | the most the CRM may take, 0.1 to 60 (default 5) |
//! | `fallback_url` | a secondary CRM, asked (same scheme otherwise) when the first is unavailable |
//! | `retries` | extra attempts per CRM on connection failures and 5xx, 0 to 3 (default 0) |
//! | `fallback` | a static destination, or an ordered list (`fallback.0`, `fallback.1`, …) |
//! | `allowed_prefixes` | phone prefixes a CRM may route to (a list; default: any) |
//! | `allowed_sip_domains` | SIP domains a CRM may route to (a list; default: any) |
//! | `signing_secret` | sign each request with HMAC-SHA256 (a list of up to two, for rotation) |
//! | `params.<name>` | a webhook parameter, a [`Template`] |
//! | `headers.<name>` | an extra request header, a [`Template`] |
//!
//! A list field is either one key (`fallback = "101"`, or comma-separated for the allowlists)
//! or indexed keys (`fallback.0`, `fallback.1`, …, what a TOML array flattens to).
//!
//! Every problem is a [`SchemeError`] that names the field.

use crate::destination::Target;
use crate::template::Template;
use std::time::Duration;

/// Default for `ring_timeout_secs` (Twilio's and Telnyx's default too).
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;
/// Longest `ring_timeout_secs` accepted.
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;
/// Default for `response_timeout_secs`.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest `response_timeout_secs` accepted.
pub const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest `response_timeout_secs` accepted.
pub const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most `retries` accepted.
pub const MAX_RETRIES: u32 = 3;
/// Most entries in a list field.
pub const MAX_LIST_LEN: usize = 32;

/// The HTTP method the scheme asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// How the call's parameters are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// In the URL's query string, with any method (Ringostat's "HTTP(S)" type).
    Http,
    /// As an `application/x-www-form-urlencoded` body.
    Form,
    /// As a JSON object body (always POST).
    Json,
    /// As a JSON-RPC 2.0 request body (always POST).
    JsonRpc,
}

/// How the CRM's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    /// The trimmed plain-text body is the destination.
    Http,
    /// The value of `destination_field` in a JSON body.
    Json,
    /// The `result` of a JSON-RPC 2.0 response.
    JsonRpc,
}

/// The CRM endpoint, split into what the request and the host's guard need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `true` for `https`.
    pub tls: bool,
    /// The host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path and query as written in the scheme (`/` when empty).
    pub path_and_query: String,
}

impl Endpoint {
    /// Parse and check a CRM URL. The error text never repeats the URL's query.
    ///
    /// An absolute `http://` or `https://` URL: a host name, IPv4 address or bracketed IPv6
    /// address, an optional port from 1 to 65535 (else 80 or 443), then the path and query,
    /// where what a URL cannot carry as is (a space, `<`, `"`, non-ASCII text…) is
    /// percent-encoded as a browser would. A `#fragment` is never sent, so it is dropped. (Parsed here rather than with the `http` crate's `Uri`: the component is
    /// size-budgeted, and `Uri` also turned an out-of-range port such as `:65536` into "no
    /// port", silently calling port 80.)
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("must be an absolute http:// or https:// URL")?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                return Err("must be an absolute http:// or https:// URL".into());
            }
            other => {
                return Err(format!(
                    "scheme `{other}` is not supported (use http or https)"
                ));
            }
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; send them in [headers]".into());
        }
        let (host, port) = split_host_port(authority)?;
        if path_and_query.chars().any(char::is_control) {
            return Err("the path or query holds a control character".into());
        }
        let path_and_query = match percent_encoded(path_and_query) {
            p if p.is_empty() => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p,
        };
        Ok(Endpoint {
            tls,
            host,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path_and_query,
        })
    }

    /// `host:port`, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    /// `https` or `http`.
    pub fn uri_scheme(&self) -> &'static str {
        uri_scheme(self.tls)
    }

    /// `scheme://host:port`: where requests go, without the path (what the host's guard
    /// compares, and all a denial shows).
    pub fn origin(&self) -> String {
        origin(self.tls, &self.host, self.port)
    }

    /// The URL without its query string: safe for logs and error messages (queries often
    /// carry API keys).
    pub fn redacted(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        format!("{}://{}{}", self.uri_scheme(), self.authority(), path)
    }
}

/// A path and query with every byte that RFC 3986 does not allow there as is percent-encoded
/// (`%` is kept: what is already encoded stays so).
fn percent_encoded(path_and_query: &str) -> String {
    let mut out = String::with_capacity(path_and_query.len());
    for byte in path_and_query.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `https` for TLS, else `http`.
pub fn uri_scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// `scheme://host:port`.
pub fn origin(tls: bool, host: &str, port: u16) -> String {
    format!("{}://{}", uri_scheme(tls), authority(host, port))
}

/// Split a URL's authority into its host (lower case, an IPv6 address without brackets) and
/// its port, if one is written.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let split = crate::hostport::split(authority)?;
    if split.host.is_empty() {
        return Err("has no host".into());
    }
    if !split.ipv6
        && !split
            .host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(format!(
            "`{}` is not a host name or IP address",
            crate::error::excerpt(split.host, 64)
        ));
    }
    let port = match split.port {
        // `http://host:/` is the default port (RFC 3986).
        None | Some("") => None,
        Some(port) => Some(crate::hostport::port(port).ok_or_else(|| {
            format!(
                "port `{}` is not a port number from 1 to 65535",
                crate::error::excerpt(port, 16)
            )
        })?),
    };
    Ok((split.host.to_ascii_lowercase(), port))
}

/// A named template (a webhook parameter or an extra header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The parameter or header name.
    pub name: String,
    /// Its value template.
    pub template: Template,
}

/// A validated routing scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// The scheme's name (may be empty).
    pub name: String,
    /// The CRM endpoint.
    pub endpoint: Endpoint,
    /// The method asked for; see [`Scheme::effective_method`] for the one sent.
    pub method: Method,
    /// How parameters are sent.
    pub submission: Submission,
    /// How the answer is read.
    pub import: Import,
    /// The answer's destination field, split on dots.
    pub destination_field: Option<Vec<String>>,
    /// The JSON-RPC method.
    pub jsonrpc_method: Option<String>,
    /// How long the destination rings.
    pub ring_timeout_secs: u32,
    /// The most the CRM may take to answer.
    pub response_timeout: Duration,
    /// The secondary CRM.
    pub fallback_url: Option<Endpoint>,
    /// Extra attempts per CRM on connection failures and 5xx.
    pub retries: u32,
    /// The static fallback destinations, in order.
    pub fallback: Vec<Target>,
    /// Where the CRM may route calls.
    pub allowlist: Allowlist,
    /// Secrets each request is signed with (at most two: current and next).
    pub signing_secrets: Vec<String>,
    /// Webhook parameters, sorted by name; `None` means "every call value".
    pub params: Option<Vec<Field>>,
    /// Extra request headers, sorted by name.
    pub headers: Vec<Field>,
}

/// A scheme that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// A required field is absent.
    #[error("scheme field `{field}` is required{hint}")]
    Missing {
        /// The field.
        field: &'static str,
        /// Why it is required, with a leading separator, or empty.
        hint: &'static str,
    },
    /// A field holds a value that cannot be used.
    #[error("scheme field `{field}`: {reason}")]
    Invalid {
        /// The field (`params.uuid` for a parameter).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A key the scheme does not know (usually a typo).
    #[error(
        "scheme field `{field}` is unknown (known: {KNOWN_FIELDS}, params.<name>, headers.<name>)"
    )]
    Unknown {
        /// The unknown key.
        field: String,
    },
}

const KNOWN_FIELDS: &str = "name, url, method, submission, import, destination_field, jsonrpc_method, ring_timeout_secs, response_timeout_secs, fallback_url, retries, fallback, allowed_prefixes, allowed_sip_domains, signing_secret";

/// The list fields: one key, or indexed keys `field.N`.
const LIST_FIELDS: [&str; 4] = [
    "fallback",
    "allowed_prefixes",
    "allowed_sip_domains",
    "signing_secret",
];

/// Most signing secrets at once: the current one and the next (rotation).
pub const MAX_SIGNING_SECRETS: usize = 2;

/// Headers a scheme may not set: the transport owns them, and some would let a scheme smuggle
/// a second request or confuse the CRM's framing.
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    // The request's signature (`signing_secret`) and the host's hop header: a scheme setting
    // them would send a second, forged copy.
    "x-callroute-signature",
    "x-callroute-hop",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> SchemeError {
    SchemeError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Scheme {
    /// Build a scheme from flat key/value pairs (see the module docs).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Scheme, SchemeError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut name = String::new();
        let mut url = None;
        let mut method = None;
        let mut submission = Submission::Http;
        let mut import = Import::Http;
        let mut destination_field = None;
        let mut jsonrpc_method = None;
        let mut ring_timeout_secs = DEFAULT_RING_TIMEOUT_SECS;
        let mut response_timeout = DEFAULT_RESPONSE_TIMEOUT;
        let mut params: Option<Vec<Field>> = None;
        let mut headers = Vec::new();
        let mut fallback_url = None;
        let mut retries = 0;
        let mut lists = Lists::default();

        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            if let Some((field, index)) = list_key(key)? {
                if !lists.insert(field, index, key, value) {
                    return Err(invalid(
                        key,
                        format!("repeated, or more than {MAX_LIST_LEN} entries"),
                    ));
                }
                continue;
            }
            match key {
                "name" => name = value.to_owned(),
                "url" => url = Some(Endpoint::parse(value).map_err(|r| invalid(key, r))?),
                "method" => method = Some(parse_method(value).map_err(|r| invalid(key, r))?),
                "submission" => {
                    submission = match value.to_ascii_lowercase().as_str() {
                        "http" | "query" => Submission::Http,
                        "form" => Submission::Form,
                        "json" => Submission::Json,
                        "json-rpc" | "jsonrpc" => Submission::JsonRpc,
                        _ => {
                            return Err(invalid(
                                key,
                                format!("`{value}` is not one of http, form, json, json-rpc"),
                            ));
                        }
                    }
                }
                "import" => {
                    import = match value.to_ascii_lowercase().as_str() {
                        "http" | "text" => Import::Http,
                        "json" => Import::Json,
                        "json-rpc" | "jsonrpc" => Import::JsonRpc,
                        _ => {
                            return Err(invalid(
                                key,
                                format!("`{value}` is not one of http, json, json-rpc"),
                            ));
                        }
                    }
                }
                "destination_field" => {
                    destination_field = Some(parse_field_path(value).map_err(|r| invalid(key, r))?)
                }
                "jsonrpc_method" => {
                    if value.is_empty() {
                        return Err(invalid(key, "must not be empty"));
                    }
                    jsonrpc_method = Some(value.to_owned());
                }
                "ring_timeout_secs" => {
                    ring_timeout_secs = parse_ring_timeout(value).map_err(|r| invalid(key, r))?
                }
                "response_timeout_secs" => {
                    response_timeout = parse_response_timeout(value).map_err(|r| invalid(key, r))?
                }
                "fallback_url" => {
                    fallback_url = Some(Endpoint::parse(value).map_err(|r| invalid(key, r))?)
                }
                "retries" => {
                    retries = value
                        .parse::<u32>()
                        .ok()
                        .filter(|r| *r <= MAX_RETRIES)
                        .ok_or_else(|| {
                            invalid(
                                key,
                                format!("`{value}` is not a whole number from 0 to {MAX_RETRIES}"),
                            )
                        })?
                }
                _ => {
                    if let Some(param) = key.strip_prefix("params.") {
                        if param.is_empty() {
                            return Err(invalid(key, "parameter name is empty"));
                        }
                        let template = Template::parse(value).map_err(|r| invalid(key, r))?;
                        params.get_or_insert_with(Vec::new).push(Field {
                            name: param.to_owned(),
                            template,
                        });
                    } else if let Some(header) = key.strip_prefix("headers.") {
                        headers.push(parse_header(key, header, value)?);
                    } else {
                        return Err(SchemeError::Unknown {
                            field: key.to_owned(),
                        });
                    }
                }
            }
        }

        let endpoint = url.ok_or(SchemeError::Missing {
            field: "url",
            hint: "",
        })?;
        if import == Import::Json && destination_field.is_none() {
            return Err(SchemeError::Missing {
                field: "destination_field",
                hint: " when import is json (the answer's field holding the number, e.g. number_01)",
            });
        }
        if (submission == Submission::JsonRpc || import == Import::JsonRpc)
            && jsonrpc_method.is_none()
        {
            return Err(SchemeError::Missing {
                field: "jsonrpc_method",
                hint: " when submission or import is json-rpc",
            });
        }
        if let Some(params) = params.as_mut() {
            params.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let mut list = |field: &str| lists.take(field);
        let fallback = parse_fallback_entries(list("fallback"))?;
        let allowlist =
            Allowlist::from_entries(list("allowed_prefixes"), list("allowed_sip_domains"))?;
        let signing_secrets: Vec<String> = list("signing_secret")
            .into_iter()
            .filter(|(_, secret)| !secret.is_empty())
            .map(|(_, secret)| secret)
            .collect();
        if signing_secrets.len() > MAX_SIGNING_SECRETS {
            return Err(invalid(
                "signing_secret",
                format!("at most {MAX_SIGNING_SECRETS} secrets (the current one and the next)"),
            ));
        }
        headers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Scheme {
            name,
            endpoint,
            method: method.unwrap_or(Method::Post),
            submission,
            import,
            destination_field,
            jsonrpc_method,
            ring_timeout_secs,
            response_timeout,
            fallback_url,
            retries,
            fallback,
            allowlist,
            signing_secrets,
            params,
            headers,
        })
    }

    /// The method actually sent: JSON and JSON-RPC always POST (as Ringostat does), and a form
    /// body is never sent with GET, which cannot portably carry one.
    pub fn effective_method(&self) -> Method {
        match (self.submission, self.method) {
            (Submission::Json | Submission::JsonRpc, _) => Method::Post,
            (Submission::Form, Method::Get) => Method::Post,
            (_, method) => method,
        }
    }
}

/// Parse `ring_timeout_secs`: whole seconds from 1 to [`MAX_RING_TIMEOUT_SECS`].
pub fn parse_ring_timeout(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=MAX_RING_TIMEOUT_SECS).contains(s))
        .ok_or_else(|| {
            format!("`{value}` is not a whole number of seconds from 1 to {MAX_RING_TIMEOUT_SECS}")
        })
}

/// Parse `response_timeout_secs`: fractional seconds from 0.1 to 60. Hosts use this too, to
/// enforce the same deadline the component keeps.
pub fn parse_response_timeout(value: &str) -> Result<Duration, String> {
    parse_seconds(value.trim())
        .filter(|d| (MIN_RESPONSE_TIMEOUT..=MAX_RESPONSE_TIMEOUT).contains(d))
        .ok_or_else(|| {
            format!(
                "`{value}` is not a number of seconds from {} to {}",
                format_seconds(MIN_RESPONSE_TIMEOUT),
                format_seconds(MAX_RESPONSE_TIMEOUT)
            )
        })
}

/// Decimal seconds (`5`, `2.5`, `.25`) to nanosecond precision. Integer arithmetic only: the
/// component links no float parsing or formatting (it is a fifth of a small component).
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0
        || fraction.len() > 9
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let secs = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let nanos = format!("{fraction:0<9}").parse().ok()?;
    Some(Duration::new(secs, nanos))
}

/// A duration as decimal seconds for messages, to the millisecond: `5`, `2.5`, `0.05`.
pub fn format_seconds(duration: Duration) -> String {
    let millis = duration.subsec_millis();
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    format!("{}{fraction}", duration.as_secs())
}

/// Parse the static `fallback` from flat scheme pairs: `fallback`, or `fallback.0`,
/// `fallback.1`, …, each a destination. Hosts use this too, to apply the same fallback when
/// the component cannot answer.
pub fn parse_fallback<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<Target>, SchemeError> {
    parse_fallback_entries(list_entries(pairs, &["fallback"])?.take("fallback"))
}

/// Parse the allowlist (`allowed_prefixes`, `allowed_sip_domains`) from flat scheme pairs.
/// Hosts use this too, to hold a component's destinations to it.
pub fn parse_allowlist<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Allowlist, SchemeError> {
    let mut lists = list_entries(pairs, &["allowed_prefixes", "allowed_sip_domains"])?;
    Allowlist::from_entries(
        lists.take("allowed_prefixes"),
        lists.take("allowed_sip_domains"),
    )
}

/// The entries of the list fields `fields` among flat scheme pairs.
fn list_entries<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
    fields: &[&str],
) -> Result<Lists, SchemeError> {
    let mut lists = Lists::default();
    for (key, value) in pairs {
        if let Some((field, index)) = list_key(key.as_ref())?
            && fields.contains(&field)
        {
            lists.insert(field, index, key.as_ref(), value.as_ref().trim());
        }
    }
    Ok(lists)
}

// `Allowlist` lives next to the destinations it checks, over the same parsed SIP address.
pub use crate::destination::Allowlist;

/// The entries of list fields as they come, `(field, index, key, value)`; a `Vec` rather than
/// maps, as the lists are a handful of entries and every map type costs component size.
#[derive(Default)]
struct Lists(Vec<(&'static str, usize, String, String)>);

impl Lists {
    /// Add an entry; `false` when its index is repeated or its field already has
    /// [`MAX_LIST_LEN`] entries.
    fn insert(&mut self, field: &'static str, index: usize, key: &str, value: &str) -> bool {
        let mut same_field = self.0.iter().filter(|e| e.0 == field);
        if same_field.clone().count() >= MAX_LIST_LEN || same_field.any(|e| e.1 == index) {
            return false;
        }
        self.0
            .push((field, index, key.to_owned(), value.to_owned()));
        true
    }

    /// The `(key, value)` entries of `field` in index order.
    fn take(&mut self, field: &str) -> Vec<(String, String)> {
        let mut entries: Vec<_> = self.0.extract_if(.., |e| e.0 == field).collect();
        entries.sort_by_key(|e| e.1);
        entries
            .into_iter()
            .map(|(_, _, key, value)| (key, value))
            .collect()
    }
}

/// Parse `ring_timeout_secs` from flat scheme pairs (the default when absent or invalid).
pub fn ring_timeout_of<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> u32 {
    pairs
        .into_iter()
        .find(|(k, _)| k.as_ref() == "ring_timeout_secs")
        .and_then(|(_, v)| parse_ring_timeout(v.as_ref()).ok())
        .unwrap_or(DEFAULT_RING_TIMEOUT_SECS)
}

fn parse_fallback_entries(entries: Vec<(String, String)>) -> Result<Vec<Target>, SchemeError> {
    entries
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| Target::parse(&value).map_err(|r| invalid(&key, r)))
        .collect()
}

/// `Some((field, index))` for a list field's key: `fallback` is index 0, `fallback.2` index 2.
fn list_key(key: &str) -> Result<Option<(&'static str, usize)>, SchemeError> {
    for field in LIST_FIELDS {
        if key == field {
            return Ok(Some((field, 0)));
        }
        if let Some(index) = key
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            let index = index
                .parse::<usize>()
                .ok()
                .filter(|i| *i < MAX_LIST_LEN)
                .ok_or_else(|| {
                    invalid(
                        key,
                        format!("`{index}` is not a list index below {MAX_LIST_LEN}"),
                    )
                })?;
            return Ok(Some((field, index)));
        }
    }
    Ok(None)
}

/// The items of a list field's entries, each with the key it came from: an entry may itself
/// be comma-separated (`allowed_prefixes = "+380, +48"`).
pub(crate) fn list_items(entries: Vec<(String, String)>) -> Vec<(String, String)> {
    entries
        .into_iter()
        .flat_map(|(key, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| (key.clone(), item.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse_method(value: &str) -> Result<Method, String> {
    match value.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::Get),
        "POST" => Ok(Method::Post),
        "PUT" => Ok(Method::Put),
        "DELETE" => Ok(Method::Delete),
        _ => Err(format!("`{value}` is not one of GET, POST, PUT, DELETE")),
    }
}

fn parse_field_path(value: &str) -> Result<Vec<String>, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let parts: Vec<String> = value.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!(
            "`{value}` has an empty segment (write e.g. data.manager.phone)"
        ));
    }
    Ok(parts)
}

fn parse_header(key: &str, name: &str, value: &str) -> Result<Field, SchemeError> {
    if !is_token(name) {
        return Err(invalid(key, format!("`{name}` is not a valid header name")));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(invalid(
            key,
            format!("header `{name}` is set by the transport and cannot be overridden"),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(key, "contains control characters"));
    }
    let template = Template::parse(value).map_err(|r| invalid(key, r))?;
    Ok(Field {
        name: lower,
        template,
    })
}

/// An HTTP token (RFC 9110 §5.6.2): what a header name is made of.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(s.endpoint.port, 80);
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
        assert!(s.endpoint.tls);
        assert_eq!(s.endpoint.host, "crm.example.com");
        assert_eq!(s.endpoint.port, 8443);
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
        assert_eq!(s.fallback_url.unwrap().host, "backup.example.com");
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
        assert_eq!(
            parse_fallback([
                ("url", "x"),
                ("fallback.0", "101"),
                ("fallback.1", "sip:a@b")
            ])
            .unwrap()
            .len(),
            2
        );
        assert_eq!(ring_timeout_of([("ring_timeout_secs", "12")]), 12);
        assert_eq!(ring_timeout_of([("ring_timeout_secs", "0")]), 30);

        assert!(err(&[URL, ("retries", "4")]).contains("`retries`"));
        assert!(err(&[URL, ("fallback_url", "ftp://x/")]).contains("`fallback_url`"));
        assert!(err(&[URL, ("fallback.1", "not a destination!")]).contains("`fallback.1`"));
        assert!(err(&[URL, ("fallback.x", "101")]).contains("`fallback.x`"));
        assert!(err(&[URL, ("allowed_prefixes", "+38a")]).contains("`allowed_prefixes`"));
        assert!(
            err(&[URL, ("allowed_sip_domains.0", "bad domain")])
                .contains("`allowed_sip_domains.0`")
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
        assert_eq!(parse_allowlist(pairs).unwrap(), s.allowlist);
        let bad = parse_allowlist([("allowed_prefixes.1", "+38a")]).unwrap_err();
        assert!(bad.to_string().contains("`allowed_prefixes.1`"), "{bad}");
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
    fn response_timeouts_are_decimal_seconds() {
        for (text, millis) in [
            ("5", 5000),
            ("2.5", 2500),
            (" .25 ", 250),
            ("0.1", 100),
            ("60", 60_000),
            ("1.000000001", 1000),
        ] {
            let parsed = parse_response_timeout(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_millis(), millis, "{text}");
        }
        for text in [
            "",
            ".",
            "0.09",
            "60.001",
            "-1",
            "+5",
            "1e1",
            "NaN",
            "inf",
            "1.2.3",
            "1,5",
            "0.0000000001",
            "99999999999999999999",
        ] {
            let error = parse_response_timeout(text).unwrap_err();
            assert!(error.contains("from 0.1 to 60"), "{text}: {error}");
        }
        assert_eq!(format_seconds(Duration::from_millis(5000)), "5");
        assert_eq!(format_seconds(Duration::from_millis(2500)), "2.5");
        assert_eq!(format_seconds(Duration::from_millis(50)), "0.05");
        assert_eq!(format_seconds(Duration::from_micros(1_234_567)), "1.234");
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
        for (url, port) in [
            ("http://crm:65535/", 65535),
            ("http://crm:1/", 1),
            ("http://crm:/", 80),
            ("https://crm/", 443),
            ("https://[::1]:8443/", 8443),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().port, port, "{url}");
        }
    }

    #[test]
    fn urls_are_parsed_without_the_http_crate() {
        let e = Endpoint::parse("HTTPS://CRM.Example.com:8443/a/b?x=1&y=%20#frag").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path_and_query.as_str()),
            (true, "crm.example.com", 8443, "/a/b?x=1&y=%20")
        );
        let e = Endpoint::parse("http://10.0.0.5?k=1").unwrap();
        assert_eq!(
            (e.host.as_str(), e.path_and_query.as_str()),
            ("10.0.0.5", "/?k=1")
        );
        // What a URL cannot carry as is goes percent-encoded, as a browser sends it.
        for (url, sent) in [
            (
                "http://crm/ä?city=Київ",
                "/%C3%A4?city=%D0%9A%D0%B8%D1%97%D0%B2",
            ),
            ("http://crm/a b?q=<\"x\">", "/a%20b?q=%3C%22x%22%3E"),
            ("http://crm/a%20b?k=`{}`", "/a%20b?k=%60%7B%7D%60"),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().path_and_query, sent, "{url}");
        }
        for bad in [
            "http://",
            "http:///path",
            "http://[::1/",
            "http://[zz]/",
            "http://crm/a\tb",
            "http://cr m/",
            "//crm/",
            "mailto:x@y",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn redacted_url_drops_the_query() {
        let e = Endpoint::parse("https://crm.example.com/api/route?token=SECRET").unwrap();
        assert_eq!(e.redacted(), "https://crm.example.com:443/api/route");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority(), "[::1]:9000");
        assert_eq!(e.path_and_query, "/");
        // The query never appears in an error about the URL either.
        let msg = err(&[("url", "http://exa mple.com/?token=SECRET")]);
        assert!(!msg.contains("SECRET"), "{msg}");
    }
}
