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
//! | `ring_timeout_secs` | how long each destination rings, 1 to 600 (default 30) |
//! | `ring_strategy` | how the CRM's destinations are rung: `serial` (in turn) or `parallel` (at once); default `serial` |
//! | `max_destinations` | the most destinations taken from one answer, 1 to 32 (default 10; the rest are refused) |
//! | `target_field` | in an answer's array of objects, the field holding each target (dotted paths allowed; default `target`) |
//! | `ring_timeout_field` | in the same objects, the field holding a target's own ring time in seconds (default `ring_timeout_secs`) |
//! | `response_timeout_secs` | the most the CRM may take, 0.1 to 60 (default 5) |
//! | `fallback_url` | a secondary CRM, asked (same scheme otherwise) when the first is unavailable |
//! | `retries` | extra attempts per CRM on connection failures and 5xx, 0 to 3 (default 0) |
//! | `fallback` | a static destination, or an ordered list (`fallback.0`, `fallback.1`, …) |
//! | `allowed_prefixes` | phone prefixes a CRM may route to (a list; default: any) |
//! | `allowed_sip_domains` | SIP domains a CRM may route to (a list; default: any) |
//! | `signing_secret` | sign each request with HMAC-SHA256 (a list of up to two, for rotation) |
//! | `params.<name>` | a webhook parameter, a [`Template`] |
//! | `headers.<name>` | an extra request header, a [`Template`] (on reports too) |
//! | `outcome_url` | where outcome reports go (`router.report`); none are sent without it |
//! | `outcome_method` | `POST` (default), `PUT`, `GET` or `DELETE`, as `method` |
//! | `outcome_submission` | `json` (default), `form`, `http` or `json-rpc` (method `outcome`) |
//! | `outcome_params.<name>` | a report parameter, a [`Template`] over the outcome's values |
//!
//! A host that serves many tenants reads a few more fields itself ([`HostPolicy`]); the
//! component accepts them and leaves them to the host:
//!
//! | key | meaning |
//! |---|---|
//! | `max_concurrent_calls` | the most calls of this scheme in flight at once, 1 to 100000 (default: the host's share) |
//! | `breaker_failures` | consecutive CRM failures that open an endpoint's circuit breaker, 0 (off) to 1000 (default 5) |
//! | `breaker_cooldown_secs` | how long an open breaker waits before a probe, 0.1 to 300 (default 5; doubles while probes fail, up to 60 or this value) |
//! | `remember_secs` | how long the host remembers where the CRM routed each caller, to route them there when the CRMs fail, 0 (off) to 2592000 (default 0) |
//! | `api_tokens` | bearer tokens that may route this scheme's calls (a list, for rotation; each at least 16 characters) |
//! | `outcome_retry_hours` | how long the host keeps trying to deliver an outcome report, 0.001 to 720 (default 24) |
//!
//! A list field is either one key (`fallback = "101"`, or comma-separated for the allowlists)
//! or indexed keys (`fallback.0`, `fallback.1`, …, what a TOML array flattens to).
//!
//! Every problem is a [`SchemeError`] that names the field.
//!
//! | module | what |
//! |---|---|
//! | here | [`Scheme`] and its parts: method, submission, import, parameters, headers |
//! | [`fields`] | the one table of fields: lists, who reads each, how each may be shown |
//! | [`allowlist`] | where a CRM may route: `allowed_prefixes`, `allowed_sip_domains` |
//! | [`endpoint`] | CRM URLs and their origins (what the host's guard compares) |
//! | [`values`] | timeouts and retries |
//! | [`lists`] | list fields: single or indexed keys, comma-separated items |
//! | [`policy`] | [`HostPolicy`], the fields a host enforces itself, read by the same code |
//!
//! Destinations (`fallback`) are parsed by [`crate::destination`].

pub mod allowlist;
pub mod endpoint;
pub mod fields;
pub mod lists;
pub mod policy;
pub mod values;

pub use allowlist::Allowlist;
pub use endpoint::{Endpoint, Origin, default_port};
pub use lists::MAX_LIST_LEN;
pub use policy::{ApiToken, HostPolicy, ServiceSettings};
pub use values::{
    DEFAULT_MAX_DESTINATIONS, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_RING_TIMEOUT_SECS,
    MAX_DESTINATIONS, MAX_RESPONSE_TIMEOUT, MAX_RETRIES, MAX_RING_TIMEOUT_SECS,
    MIN_RESPONSE_TIMEOUT, format_seconds, parse_response_timeout, parse_ring_timeout,
};

use crate::destination::{RingStrategy, Target};
use crate::template::Template;
use policy::PolicyFields;
use std::str::FromStr;
use std::time::Duration;

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

impl FromStr for Method {
    type Err = String;

    /// `GET`, `POST`, `PUT` or `DELETE`, in any case.
    fn from_str(value: &str) -> Result<Method, String> {
        match value.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            "DELETE" => Ok(Method::Delete),
            _ => Err(format!("`{value}` is not one of GET, POST, PUT, DELETE")),
        }
    }
}

impl FromStr for Submission {
    type Err = String;

    /// `http` (or `query`), `form`, `json`, `json-rpc` (or `jsonrpc`), in any case.
    fn from_str(value: &str) -> Result<Submission, String> {
        match value.to_ascii_lowercase().as_str() {
            "http" | "query" => Ok(Submission::Http),
            "form" => Ok(Submission::Form),
            "json" => Ok(Submission::Json),
            "json-rpc" | "jsonrpc" => Ok(Submission::JsonRpc),
            _ => Err(format!(
                "`{value}` is not one of http, form, json, json-rpc"
            )),
        }
    }
}

impl FromStr for Import {
    type Err = String;

    /// `http` (or `text`), `json`, `json-rpc` (or `jsonrpc`), in any case.
    fn from_str(value: &str) -> Result<Import, String> {
        match value.to_ascii_lowercase().as_str() {
            "http" | "text" => Ok(Import::Http),
            "json" => Ok(Import::Json),
            "json-rpc" | "jsonrpc" => Ok(Import::JsonRpc),
            _ => Err(format!("`{value}` is not one of http, json, json-rpc")),
        }
    }
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
    /// How long each destination rings, unless the CRM gives its own.
    pub ring_timeout_secs: u32,
    /// How the CRM's destinations are rung.
    pub ring_strategy: RingStrategy,
    /// The most destinations taken from one answer.
    pub max_destinations: usize,
    /// In an answer's array of objects, the field holding each target, split on dots.
    pub target_field: Vec<String>,
    /// In the same objects, the field holding a target's own ring time, split on dots.
    pub ring_timeout_field: Vec<String>,
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
    /// Where and how outcome reports go; `None` when the scheme has no `outcome_url` (or was
    /// handed to a `route` call, which is never given the report's fields).
    pub outcome: Option<OutcomeTarget>,
}

/// Where and how a scheme's outcome reports go.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeTarget {
    /// `outcome_url`.
    pub endpoint: Endpoint,
    /// `outcome_method`; see [`OutcomeTarget::effective_method`] for the one sent.
    pub method: Method,
    /// `outcome_submission`.
    pub submission: Submission,
    /// `[outcome_params]`, sorted by name; `None` means "every outcome value".
    pub params: Option<Vec<Field>>,
}

/// The JSON-RPC method of a report sent with `outcome_submission = "json-rpc"`.
pub const OUTCOME_JSONRPC_METHOD: &str = "outcome";

impl OutcomeTarget {
    /// The method actually sent, by the same rule as routing's ([`Scheme::effective_method`]).
    pub fn effective_method(&self) -> Method {
        effective_method(self.submission, self.method)
    }
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
    #[error("scheme field `{field}` is unknown (known: {})", fields::Known)]
    Unknown {
        /// The unknown key.
        field: String,
    },
}

/// Most signing secrets at once: the current one and the next (rotation).
pub const MAX_SIGNING_SECRETS: usize = 2;

/// Headers a scheme may not set: the transport owns them, and some would let a scheme smuggle
/// a second request or confuse the CRM's framing.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    // The request's signature (`signing_secret`), the decision's stamp and the host's hop
    // header: a scheme setting them would send a second, forged copy.
    "x-callroute-signature",
    "idempotency-key",
    "x-callroute-attempt",
    "x-callroute-primary-error",
    "x-callroute-decision",
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
    /// Build a scheme from flat key/value pairs (see the module docs). The fields a host
    /// enforces itself are read by [`HostPolicy`]'s code, so both read them alike.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Scheme, SchemeError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut name = String::new();
        let mut method = None;
        let mut submission = Submission::Http;
        let mut import = Import::Http;
        let mut destination_field = None;
        let mut jsonrpc_method = None;
        let mut params: Option<Vec<Field>> = None;
        let mut headers = Vec::new();
        let mut retries = 0;
        let mut ring_strategy = RingStrategy::default();
        let mut max_destinations = values::DEFAULT_MAX_DESTINATIONS;
        let mut target_field = vec!["target".to_owned()];
        let mut ring_timeout_field = vec!["ring_timeout_secs".to_owned()];
        let mut outcome_method = None;
        let mut outcome_submission = None;
        let mut outcome_params: Option<Vec<Field>> = None;
        let mut policy = PolicyFields::default();

        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            if fields::of(key).is_none() {
                return Err(SchemeError::Unknown {
                    field: key.to_owned(),
                });
            }
            if policy.offer(key, value)? {
                continue;
            }
            let field = |reason| invalid(key, reason);
            match key {
                "name" => name = value.to_owned(),
                "method" => method = Some(value.parse().map_err(field)?),
                "submission" => submission = value.parse().map_err(field)?,
                "import" => import = value.parse().map_err(field)?,
                "destination_field" => {
                    destination_field = Some(parse_field_path(value).map_err(field)?)
                }
                "jsonrpc_method" => {
                    if value.is_empty() {
                        return Err(invalid(key, "must not be empty"));
                    }
                    jsonrpc_method = Some(value.to_owned());
                }
                "retries" => retries = values::parse_retries(value).map_err(field)?,
                "ring_strategy" => ring_strategy = value.parse().map_err(field)?,
                "max_destinations" => {
                    max_destinations = values::parse_max_destinations(value).map_err(field)?
                }
                "target_field" => target_field = parse_field_path(value).map_err(field)?,
                "ring_timeout_field" => {
                    ring_timeout_field = parse_field_path(value).map_err(field)?
                }
                "outcome_method" => outcome_method = Some(value.parse().map_err(field)?),
                "outcome_submission" => outcome_submission = Some(value.parse().map_err(field)?),
                _ => {
                    if let Some(param) = key.strip_prefix("params.") {
                        params
                            .get_or_insert_with(Vec::new)
                            .push(parse_param(key, param, value)?);
                    } else if let Some(param) = key.strip_prefix("outcome_params.") {
                        outcome_params
                            .get_or_insert_with(Vec::new)
                            .push(parse_param(key, param, value)?);
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

        let endpoint = policy.read.url.take().ok_or(SchemeError::Missing {
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
        let params = params.map(by_name);
        let outcome_params = outcome_params.map(by_name);
        let (policy, mut lists) = policy.finish()?;
        let signing_secrets: Vec<String> = lists
            .take("signing_secret")
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
        let headers = by_name(headers);
        let outcome = match policy.outcome_url.clone() {
            Some(endpoint) => Some(OutcomeTarget {
                endpoint,
                method: outcome_method.unwrap_or(Method::Post),
                submission: outcome_submission.unwrap_or(Submission::Json),
                params: outcome_params,
            }),
            None if outcome_method.is_some()
                || outcome_submission.is_some()
                || outcome_params.is_some() =>
            {
                return Err(SchemeError::Missing {
                    field: "outcome_url",
                    hint: " when outcome_method, outcome_submission or outcome_params are set",
                });
            }
            None => None,
        };
        let HostPolicy {
            url: _,
            fallback_url,
            outcome_url: _,
            response_timeout,
            ring_timeout_secs,
            fallback,
            allowlist,
            service: _,
        } = policy;
        Ok(Scheme {
            name,
            endpoint,
            method: method.unwrap_or(Method::Post),
            submission,
            import,
            destination_field,
            jsonrpc_method,
            ring_timeout_secs,
            ring_strategy,
            max_destinations,
            target_field,
            ring_timeout_field,
            response_timeout,
            fallback_url,
            retries,
            fallback,
            allowlist,
            signing_secrets,
            params,
            headers,
            outcome,
        })
    }

    /// The part of this scheme a host enforces itself, as the component reads it (what
    /// [`HostPolicy::from_pairs`] reads from the same pairs, but for the service settings,
    /// which the component does not keep).
    pub fn host_policy(&self) -> HostPolicy {
        HostPolicy {
            url: Some(self.endpoint.clone()),
            fallback_url: self.fallback_url.clone(),
            outcome_url: self.outcome.as_ref().map(|o| o.endpoint.clone()),
            response_timeout: self.response_timeout,
            ring_timeout_secs: self.ring_timeout_secs,
            fallback: self.fallback.clone(),
            allowlist: self.allowlist.clone(),
            service: ServiceSettings::default(),
        }
    }

    /// The method actually sent: JSON and JSON-RPC always POST (as Ringostat does), and a form
    /// body is never sent with GET, which cannot portably carry one.
    pub fn effective_method(&self) -> Method {
        effective_method(self.submission, self.method)
    }
}

/// The method sent for `method` asked and `submission`: JSON and JSON-RPC always POST, and a
/// form body is never sent with GET.
fn effective_method(submission: Submission, method: Method) -> Method {
    match (submission, method) {
        (Submission::Json | Submission::JsonRpc, _) => Method::Post,
        (Submission::Form, Method::Get) => Method::Post,
        (_, method) => method,
    }
}

/// Parameters or headers sorted by name, the last of a repeated name kept (as for every
/// repeated key).
fn by_name(fields: Vec<Field>) -> Vec<Field> {
    let mut numbered: Vec<(usize, Field)> = fields.into_iter().enumerate().collect();
    // By name, and the latest first among equal names: `dedup_by` keeps the first of a run.
    numbered.sort_unstable_by(|(i, a), (j, b)| a.name.cmp(&b.name).then(j.cmp(i)));
    numbered.dedup_by(|later, kept| later.1.name == kept.1.name);
    numbered.into_iter().map(|(_, field)| field).collect()
}

/// A parameter (`params.<name>`, `outcome_params.<name>`): its name and template.
fn parse_param(key: &str, name: &str, value: &str) -> Result<Field, SchemeError> {
    if name.is_empty() {
        return Err(invalid(key, "parameter name is empty"));
    }
    let template = Template::parse(value).map_err(|r| invalid(key, r))?;
    Ok(Field {
        name: name.to_owned(),
        template,
    })
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
mod tests;
