//! Reading the CRM's answer: status, then the body as the scheme's import type says.
//!
//! | answer | result |
//! |---|---|
//! | non-2xx | `http-status` |
//! | 204/205, empty body, missing/null/empty field, JSON-RPC `error` | `no-destination` |
//! | not UTF-8, not JSON, wrong JSON type, invalid destination | `bad-response` |
//!
//! JSON numbers are accepted as phone numbers (`{"number_01": 380123456789}`).

use crate::call::Call;
use crate::destination::{Destination, Target};
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

/// Turn the CRM's answer into a destination, or say why it holds none.
pub fn read(scheme: &Scheme, call: &Call, answer: &RawAnswer) -> Result<Destination, RouteError> {
    let status = answer.status;
    if !(200..300).contains(&status) {
        let reason = reason_phrase(status);
        return Err(RouteError::HttpStatus {
            status,
            message: format!("the CRM answered {status} {reason}")
                .trim_end()
                .to_owned(),
        });
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
    let target = match scheme.import {
        Import::Http => plain_text(text)?,
        Import::Json => {
            let value = parse_json(text)?;
            let path = scheme.destination_field.as_deref().unwrap_or_default();
            field_target(&value, path)?
        }
        Import::JsonRpc => json_rpc(scheme, call, &parse_json(text)?)?,
    };
    Ok(Destination {
        target,
        ring_timeout_secs: scheme.ring_timeout_secs,
    })
}

/// The reason phrase of the statuses a CRM plausibly answers with (RFC 9110, RFC 6585), for
/// messages; empty for the rest, which are shown by number only.
fn reason_phrase(status: u16) -> &'static str {
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

fn plain_text(text: &str) -> Result<Target, RouteError> {
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
    Target::parse(&text).map_err(RouteError::BadResponse)
}

fn parse_json(text: &str) -> Result<Value, RouteError> {
    json::parse(text).map_err(|e| {
        RouteError::BadResponse(format!(
            "the answer is not valid JSON ({e}); it starts with `{}`",
            excerpt(text, 40)
        ))
    })
}

/// The destination at a dotted path; array elements are addressed by index (`routes.0.number`).
fn field_target(root: &Value, path: &[String]) -> Result<Target, RouteError> {
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
    value_target(value, &name)
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

fn json_rpc(scheme: &Scheme, call: &Call, value: &Value) -> Result<Target, RouteError> {
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
        (Value::Object(_) | Value::Array(_), Some(path)) => {
            field_target(result, path).map_err(prefix_result)
        }
        (Value::Object(_) | Value::Array(_), None) => Err(RouteError::BadResponse(
            "the JSON-RPC result is an object; set destination_field to the field holding the destination".into(),
        )),
        (value, _) => value_target(value, "result"),
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
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn scheme(import: &str, field: Option<&str>) -> Scheme {
        let mut pairs = vec![
            ("url", "http://crm/"),
            ("import", import),
            ("jsonrpc_method", "route"),
            ("ring_timeout_secs", "25"),
        ];
        if let Some(field) = field {
            pairs.push(("destination_field", field));
        }
        Scheme::from_pairs(pairs).unwrap()
    }

    fn call() -> Call {
        Call {
            call_id: "c-1".into(),
            ..Call::default()
        }
    }

    fn read_as(
        import: &str,
        field: Option<&str>,
        status: u16,
        body: &str,
    ) -> Result<Destination, RouteError> {
        read(
            &scheme(import, field),
            &call(),
            &RawAnswer {
                status,
                body: body.as_bytes().to_vec(),
            },
        )
    }

    fn target(r: Result<Destination, RouteError>) -> Target {
        r.unwrap_or_else(|e| panic!("{e:?}")).target
    }

    fn kind(r: Result<Destination, RouteError>) -> ErrorKind {
        r.unwrap_err().kind()
    }

    #[test]
    fn the_seed_examples() {
        let d = read_as(
            "json",
            Some("number_01"),
            200,
            r#"{"number_01":"3 80123456789"}"#,
        )
        .unwrap();
        assert_eq!(d.target, Target::Phone("380123456789".into()));
        assert_eq!(d.ring_timeout_secs, 25);
        assert_eq!(
            target(read_as("http", None, 200, "380123456789\n")),
            Target::Phone("380123456789".into())
        );
    }

    #[test]
    fn plain_text_answers() {
        assert_eq!(
            target(read_as("http", None, 200, "\u{feff} manager_7 ")),
            Target::Sip("manager_7".into())
        );
        assert_eq!(
            target(read_as("http", None, 200, "\"+380441234567\"")),
            Target::Phone("+380441234567".into())
        );
        assert_eq!(
            kind(read_as("http", None, 200, "  \n")),
            ErrorKind::NoDestination
        );
        assert_eq!(
            kind(read_as("http", None, 200, "\"\"")),
            ErrorKind::NoDestination
        );
        assert_eq!(
            kind(read_as("http", None, 200, "<html>error</html>")),
            ErrorKind::BadResponse
        );
    }

    #[test]
    fn json_answers() {
        assert_eq!(
            target(read_as("json", Some("n"), 200, r#"{"n":380441234567}"#)),
            Target::Phone("380441234567".into())
        );
        assert_eq!(
            target(read_as(
                "json",
                Some("data.manager.sip"),
                200,
                r#"{"data":{"manager":{"sip":"sip:m@pbx.example.com"}}}"#
            )),
            Target::Sip("sip:m@pbx.example.com".into())
        );
        assert_eq!(
            target(read_as(
                "json",
                Some("routes.1"),
                200,
                r#"{"routes":["1","202"]}"#
            )),
            Target::Phone("202".into())
        );
        for body in [
            r#"{}"#,
            r#"{"n":null}"#,
            r#"{"n":""}"#,
            r#"{"n":"  "}"#,
            r#"null"#,
        ] {
            assert_eq!(
                kind(read_as("json", Some("n"), 200, body)),
                ErrorKind::NoDestination,
                "{body}"
            );
        }
        for body in [
            r#"{"n":true}"#,
            r#"{"n":-5}"#,
            r#"{"n":1.5}"#,
            r#"{"n":{}}"#,
            r#"{"n":["1"]}"#,
            "[1,",
            "<html>",
            r#"{"n":"a\nb"}"#,
            r#""x""#,
        ] {
            assert_eq!(
                kind(read_as("json", Some("n"), 200, body)),
                ErrorKind::BadResponse,
                "{body}"
            );
        }
        let err = read_as("json", Some("a.b"), 200, r#"{"a":{}}"#).unwrap_err();
        assert!(err.to_string().contains("`a.b`"), "{err}");
    }

    #[test]
    fn json_rpc_answers() {
        let ok = |body: &str, field| target(read_as("json-rpc", field, 200, body));
        assert_eq!(
            ok(
                r#"{"jsonrpc":"2.0","result":"380441234567","id":"c-1"}"#,
                None
            ),
            Target::Phone("380441234567".into())
        );
        assert_eq!(
            ok(r#"{"jsonrpc":"2.0","result":101,"id":null}"#, None),
            Target::Phone("101".into())
        );
        assert_eq!(
            ok(
                r#"{"jsonrpc":"2.0","result":{"manager":{"number":"3 80123456789"}},"id":"c-1"}"#,
                Some("manager.number")
            ),
            Target::Phone("380123456789".into())
        );
        let err = read_as(
            "json-rpc",
            None,
            200,
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"c-1"}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoDestination);
        assert!(
            err.to_string().contains("-32601") && err.to_string().contains("Method not found"),
            "{err}"
        );
        assert_eq!(
            kind(read_as(
                "json-rpc",
                None,
                200,
                r#"{"jsonrpc":"2.0","result":null,"id":"c-1"}"#
            )),
            ErrorKind::NoDestination
        );
        assert_eq!(
            kind(read_as(
                "json-rpc",
                None,
                200,
                r#"{"jsonrpc":"2.0","id":"c-1"}"#
            )),
            ErrorKind::BadResponse
        );
        assert_eq!(
            kind(read_as(
                "json-rpc",
                None,
                200,
                r#"{"jsonrpc":"2.0","result":"1","id":"other"}"#
            )),
            ErrorKind::BadResponse
        );
        assert_eq!(
            kind(read_as(
                "json-rpc",
                None,
                200,
                r#"{"jsonrpc":"2.0","result":{"n":"1"},"id":"c-1"}"#
            )),
            ErrorKind::BadResponse
        );
        assert_eq!(
            kind(read_as("json-rpc", None, 200, r#"["batch"]"#)),
            ErrorKind::BadResponse
        );
        let err = read_as("json-rpc", Some("n"), 200, r#"{"result":{},"id":"c-1"}"#).unwrap_err();
        assert!(err.to_string().contains("`result.n`"), "{err}");
    }

    #[test]
    fn statuses() {
        let err = read_as("http", None, 503, "busy").unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.to_string(), "the CRM answered 503 Service Unavailable");
        assert_eq!(
            read_as("http", None, 404, "").unwrap_err().status(),
            Some(404)
        );
        assert_eq!(
            read_as("http", None, 302, "").unwrap_err().status(),
            Some(302)
        );
        assert_eq!(
            kind(read_as("http", None, 204, "")),
            ErrorKind::NoDestination
        );
        assert_eq!(
            target(read_as("http", None, 201, "101")),
            Target::Phone("101".into())
        );
    }

    #[test]
    fn invalid_utf8_and_deep_nesting() {
        let bad = read(
            &scheme("http", None),
            &call(),
            &RawAnswer {
                status: 200,
                body: vec![0x33, 0xff, 0xfe],
            },
        );
        assert_eq!(kind(bad), ErrorKind::BadResponse);
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            kind(read_as("json", Some("n"), 200, &deep)),
            ErrorKind::BadResponse
        );
    }
}
