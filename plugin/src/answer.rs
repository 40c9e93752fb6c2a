//! Reading the CRM's answer: status, then the body as the scheme's import type says.
//!
//! | answer | result |
//! |---|---|
//! | non-2xx | `http-status` |
//! | 204/205, empty body, missing/null/empty field, JSON-RPC `error` | `no-destination` |
//! | not UTF-8, not JSON, wrong JSON type, invalid destination, none inside the allowlist | `bad-response` |
//!
//! JSON numbers are accepted as phone numbers (`{"number_01": 380123456789}`). Every
//! destination is held to the scheme's allowlist here, one by one, so that a list's
//! `max_destinations` counts only what may be rung.

use crate::call::Call;
use crate::destination::{Destination, Refused, Target};
use crate::error::{RouteError, excerpt};
use crate::json::{self, Value};
use crate::request::jsonrpc_id;
use crate::scheme::{Import, Scheme};

/// The largest answer body read; a longer one is a `bad-response` without reading the rest.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What came back from the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// The HTTP status code.
    pub status: u16,
    /// The complete body (at most [`MAX_ANSWER_BYTES`]).
    pub body: Vec<u8>,
}

/// What the CRM's answer names: the destinations to ring, in order (never empty), and those
/// left out with their reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The destinations, in the CRM's order, at most the scheme's `max_destinations`.
    pub destinations: Vec<Destination>,
    /// The destinations the CRM named that cannot be used.
    pub refused: Vec<Refused>,
}

/// Turn the CRM's answer into its destinations, or say why it holds none.
pub fn read(scheme: &Scheme, call: &Call, answer: &RawAnswer) -> Result<Answered, RouteError> {
    let status = answer.status;
    if !(200..300).contains(&status) {
        return Err(RouteError::http_status(status));
    }
    if status == 204 || status == 205 {
        return Err(RouteError::NoDestination(format!(
            "the CRM answered {status} with no content"
        )));
    }
    let body = answer
        .body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&answer.body);
    let text = std::str::from_utf8(body)
        .map_err(|_| RouteError::BadResponse("the answer is not valid UTF-8".into()))?
        .trim();
    if text.is_empty() {
        return Err(RouteError::NoDestination(
            "the CRM answered with an empty body".into(),
        ));
    }
    match scheme.import {
        Import::Http => plain_text(scheme, text),
        Import::Json => {
            let value = parse_json(text)?;
            let path = scheme.destination_field.as_deref().unwrap_or_default();
            destinations(scheme, field_value(&value, path)?, &path.join("."))
        }
        Import::JsonRpc => json_rpc(scheme, call, &parse_json(text)?),
    }
}

/// The reason phrase of the statuses a CRM plausibly answers with (RFC 9110, RFC 6585), for
/// messages; empty for the rest, which are shown by number only.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// A plain-text answer: one destination, or one per line.
fn plain_text(scheme: &Scheme, text: &str) -> Result<Answered, RouteError> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() > 1 {
        // A list in plain text has no structure to tell it from an error page ("ERROR\nDB
        // down"): it is one only if every line is a destination.
        let destinations = lines
            .iter()
            .enumerate()
            .map(|(i, line)| one_line(scheme, line, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return collect(
            scheme,
            lines
                .iter()
                .map(|l| l.to_string())
                .zip(destinations.into_iter().map(Ok)),
            &format!("the answer's {} lines", lines.len()),
        );
    }
    // A CRM that JSON-encodes its plain answer (`"380123456789"`) still means the number.
    let text = match json::parse(text) {
        Ok(Value::String(s)) if text.starts_with('"') => s,
        _ => text.to_owned(),
    };
    if text.trim().is_empty() {
        return Err(RouteError::NoDestination(
            "the CRM answered with an empty destination".into(),
        ));
    }
    let target = Target::parse(&text).map_err(RouteError::BadResponse)?;
    Answered::one(scheme, target)
}

/// Line `number` of a plain-text answer with several.
fn one_line(scheme: &Scheme, line: &str, number: usize) -> Result<Destination, RouteError> {
    Target::parse(line)
        .map(|target| Destination {
            target,
            ring_timeout_secs: scheme.ring_timeout_secs,
        })
        .map_err(|reason| RouteError::BadResponse(format!("line {number}: {reason}")))
}

impl Answered {
    /// One destination, ringing for the scheme's ring time, if the scheme's allowlist lets
    /// the call go there (`bad-response` saying why not).
    fn one(scheme: &Scheme, target: Target) -> Result<Answered, RouteError> {
        scheme
            .allowlist
            .check(&target)
            .map_err(RouteError::BadResponse)?;
        Ok(Answered {
            destinations: vec![Destination {
                target,
                ring_timeout_secs: scheme.ring_timeout_secs,
            }],
            refused: Vec::new(),
        })
    }
}

fn parse_json(text: &str) -> Result<Value, RouteError> {
    json::parse(text).map_err(|e| {
        RouteError::BadResponse(format!(
            "the answer is not valid JSON ({e}); it starts with `{}`",
            excerpt(text, 40)
        ))
    })
}

/// The value at a dotted path; array elements are addressed by index (`routes.0.number`).
fn field_value<'a>(root: &'a Value, path: &[String]) -> Result<&'a Value, RouteError> {
    let name = path.join(".");
    let mut value = root;
    for segment in path {
        let next = match value {
            Value::Object(_) => value.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Null => None,
            other => {
                return Err(RouteError::BadResponse(format!(
                    "cannot read `{name}`: the answer has {} where an object was expected",
                    type_name(other)
                )));
            }
        };
        value =
            next.ok_or_else(|| RouteError::NoDestination(format!("the answer has no `{name}`")))?;
    }
    Ok(value)
}

/// The destinations a JSON value names: one (a string or a whole number), or a list (an
/// array of them, or of objects with a target and a ring time).
fn destinations(scheme: &Scheme, value: &Value, name: &str) -> Result<Answered, RouteError> {
    let Value::Array(items) = value else {
        return Answered::one(scheme, value_target(value, name)?);
    };
    if items.is_empty() {
        return Err(RouteError::NoDestination(format!(
            "`{name}` is an empty list"
        )));
    }
    collect(
        scheme,
        items.iter().enumerate().map(|(i, item)| {
            let item_name = format!("{name}.{i}");
            (shown(scheme, item), list_item(scheme, item, &item_name))
        }),
        &format!("`{name}`"),
    )
}

/// One item of a list of destinations: a target, or an object holding one (and maybe its
/// own ring time).
fn list_item(scheme: &Scheme, item: &Value, name: &str) -> Result<Destination, RouteError> {
    let Value::Object(_) = item else {
        return Ok(Destination {
            target: value_target(item, name)?,
            ring_timeout_secs: scheme.ring_timeout_secs,
        });
    };
    let target_name = format!("{name}.{}", scheme.target_field.join("."));
    let target = match lookup(item, &scheme.target_field) {
        Some(value) => value_target(value, &target_name)?,
        None => {
            return Err(RouteError::NoDestination(format!(
                "`{target_name}` is missing"
            )));
        }
    };
    let ring_timeout_secs = match lookup(item, &scheme.ring_timeout_field) {
        None | Some(Value::Null) => scheme.ring_timeout_secs,
        Some(value) => {
            let text = match value {
                Value::Number(n) | Value::String(n) => n.as_str(),
                _ => "",
            };
            crate::scheme::parse_ring_timeout(text).map_err(|reason| {
                RouteError::BadResponse(format!(
                    "`{name}.{}`: {reason}",
                    scheme.ring_timeout_field.join(".")
                ))
            })?
        }
    };
    Ok(Destination {
        target,
        ring_timeout_secs,
    })
}

/// The value at a dotted path inside an object, if there is one.
fn lookup<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |value, segment| value.get(segment))
}

/// How a refused item is shown: its target as written, or the item itself.
fn shown(scheme: &Scheme, item: &Value) -> String {
    match lookup(item, &scheme.target_field).unwrap_or(item) {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Most refused destinations listed one by one; the rest are counted in one more entry.
pub const MAX_REFUSED_LISTED: usize = 32;

/// The destinations of a list, in order: the valid ones inside the scheme's allowlist, up to
/// `max_destinations` of them, the rest refused with their reasons (at most
/// [`MAX_REFUSED_LISTED`] listed). None valid is the error of the only one, or `bad-response`
/// (`no-destination` when every item was empty).
fn collect(
    scheme: &Scheme,
    candidates: impl Iterator<Item = (String, Result<Destination, RouteError>)>,
    what: &str,
) -> Result<Answered, RouteError> {
    let mut answered = Answered {
        destinations: Vec::new(),
        refused: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut unlisted = 0usize;
    let mut refuse = |answered: &mut Answered, value: &str, reason: String| {
        if answered.refused.len() < MAX_REFUSED_LISTED {
            answered.refused.push(Refused::new(value, reason));
        } else {
            unlisted += 1;
        }
    };
    for (raw, candidate) in candidates {
        // Held to the allowlist before the cap: only what may be rung counts toward it.
        let candidate = candidate.and_then(|destination| {
            scheme
                .allowlist
                .check(&destination.target)
                .map(|()| destination)
                .map_err(RouteError::BadResponse)
        });
        match candidate {
            Ok(destination) if answered.destinations.len() < scheme.max_destinations => {
                answered.destinations.push(destination)
            }
            Ok(destination) => refuse(
                &mut answered,
                destination.target.value(),
                format!(
                    "beyond max_destinations ({}): the rest of the list is not rung",
                    scheme.max_destinations
                ),
            ),
            Err(error) => {
                refuse(&mut answered, &raw, error.to_string());
                errors.push(error);
            }
        }
    }
    if unlisted > 0 {
        answered
            .refused
            .push(Refused::new("…", format!("{unlisted} more left out")));
    }
    if !answered.destinations.is_empty() {
        return Ok(answered);
    }
    if errors.len() == 1 {
        return Err(errors.remove(0));
    }
    let first = errors.first().map(ToString::to_string).unwrap_or_default();
    if errors
        .iter()
        .all(|e| matches!(e, RouteError::NoDestination(_)))
    {
        return Err(RouteError::NoDestination(format!(
            "none of {what} holds a destination: {first}"
        )));
    }
    Err(RouteError::BadResponse(format!(
        "none of the {} destinations in {what} can be used; the first: {first}",
        errors.len()
    )))
}

fn value_target(value: &Value, name: &str) -> Result<Target, RouteError> {
    match value {
        Value::Null => Err(RouteError::NoDestination(format!("`{name}` is null"))),
        Value::String(s) if s.trim().is_empty() => {
            Err(RouteError::NoDestination(format!("`{name}` is empty")))
        }
        Value::String(s) => Target::parse(s).map_err(RouteError::BadResponse),
        // A whole number is a phone number written without quotes; it is validated like one.
        Value::Number(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
            Target::parse(n).map_err(RouteError::BadResponse)
        }
        other => Err(RouteError::BadResponse(format!(
            "`{name}` is {}, not a phone number or SIP login",
            type_name(other)
        ))),
    }
}

fn json_rpc(scheme: &Scheme, call: &Call, value: &Value) -> Result<Answered, RouteError> {
    if !matches!(value, Value::Object(_)) {
        return Err(RouteError::BadResponse(format!(
            "the JSON-RPC answer is {}, not an object",
            type_name(value)
        )));
    }
    let response = value;
    if let Some(id) = response.get("id").filter(|id| !id.is_null())
        && id.as_str() != Some(jsonrpc_id(call))
    {
        return Err(RouteError::BadResponse(format!(
            "the JSON-RPC answer's id {} is not this call's id",
            excerpt(&id.to_string(), 40)
        )));
    }
    if let Some(error) = response.get("error").filter(|e| !e.is_null()) {
        let code = error.get("code").map(Value::to_string).unwrap_or_default();
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(RouteError::NoDestination(format!(
            "the CRM answered JSON-RPC error {code}: {}",
            excerpt(message, 120)
        )));
    }
    let result = response.get("result").ok_or_else(|| {
        RouteError::BadResponse("the JSON-RPC answer has neither `result` nor `error`".into())
    })?;
    match (result, scheme.destination_field.as_deref()) {
        (Value::Object(_) | Value::Array(_), Some(path)) => field_value(result, path)
            .and_then(|value| destinations(scheme, value, &path.join(".")))
            .map_err(prefix_result),
        (Value::Array(_), None) => destinations(scheme, result, "result"),
        (Value::Object(_), None) => Err(RouteError::BadResponse(
            "the JSON-RPC result is an object; set destination_field to the field holding the destination".into(),
        )),
        (value, _) => destinations(scheme, value, "result"),
    }
}

/// Errors about a field inside a JSON-RPC result name it as `result.<field>`.
fn prefix_result(error: RouteError) -> RouteError {
    match error {
        RouteError::NoDestination(m) => RouteError::NoDestination(m.replacen('`', "`result.", 1)),
        RouteError::BadResponse(m) => RouteError::BadResponse(m.replacen('`', "`result.", 1)),
        other => other,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a non-integer number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
