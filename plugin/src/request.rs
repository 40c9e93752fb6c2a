//! Building the webhook request a scheme describes for a call, and signing it.
//!
//! Values are encoded for where they go: percent-encoding in a query or form body, JSON
//! string escaping in JSON bodies (Unicode kept as is), and for headers the call's control
//! characters are dropped, so a caller ID holding CR/LF can never add a header.

use crate::call::Call;
use crate::error::RouteError;
use crate::json;
use crate::scheme::{Endpoint, Method, Scheme, Submission};
use crate::template::Values;

/// The `User-Agent` every webhook request carries.
pub const USER_AGENT_VALUE: &str = concat!("callroute/", env!("CARGO_PKG_VERSION"));

/// A webhook request, complete before it is sent; the transport takes the scheme, host and
/// port from the [`Endpoint`] it sends it to.
///
/// Not `http::Request`: the `http` crate (its header tables, URI parser and method type) was an
/// eighth of the component's code, and a request built from validated parts needs none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method sent.
    pub method: Method,
    /// The path and query (`/route?key=1&caller=%2B380…`).
    pub path_and_query: String,
    /// The headers in the order sent, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }

    /// The absolute URL the request goes to at `endpoint`.
    pub fn url(&self, endpoint: &Endpoint) -> String {
        format!("{}{}", endpoint.origin, self.path_and_query)
    }
}

/// The JSON-RPC `id` of the request for a call: the call's id, so a CRM can correlate.
pub fn jsonrpc_id(call: &Call) -> &str {
    &call.call_id
}

/// The webhook parameters for a call, in order: the scheme's `[params]` rendered, or every
/// call value when the scheme lists none.
pub fn params(scheme: &Scheme, call: &Call) -> Vec<(String, String)> {
    match &scheme.params {
        Some(fields) => render(fields, call),
        None => call
            .all_values()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// Each parameter's template rendered with `values`, in order.
pub fn render(fields: &[crate::scheme::Field], values: &dyn Values) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.name.clone(), f.template.render(values)))
        .collect()
}

/// Build the complete request (path and query, headers, body) for a call to the scheme's CRM.
pub fn build(scheme: &Scheme, call: &Call) -> Result<Request, RouteError> {
    build_for(scheme, &scheme.endpoint, call)
}

/// Build the request for a call to `endpoint` (the scheme's CRM or its `fallback_url`).
pub fn build_for(scheme: &Scheme, endpoint: &Endpoint, call: &Call) -> Result<Request, RouteError> {
    let accept = match scheme.import {
        crate::scheme::Import::Http => "text/plain, */*;q=0.5",
        _ => "application/json, */*;q=0.5",
    };
    Ok(Parts {
        endpoint,
        method: scheme.effective_method(),
        submission: scheme.submission,
        params: params(scheme, call),
        jsonrpc: (
            scheme.jsonrpc_method.as_deref().unwrap_or_default(),
            jsonrpc_id(call),
        ),
        accept,
    }
    .assemble(&scheme.headers, call))
}

/// What distinguishes one kind of request (a routing webhook, an outcome report) from another;
/// [`Parts::assemble`] builds either the same way.
pub(crate) struct Parts<'a> {
    /// Where it goes.
    pub(crate) endpoint: &'a Endpoint,
    /// The method sent.
    pub(crate) method: Method,
    /// How the parameters are sent.
    pub(crate) submission: Submission,
    /// The parameters, rendered.
    pub(crate) params: Vec<(String, String)>,
    /// The JSON-RPC method and id, for [`Submission::JsonRpc`].
    pub(crate) jsonrpc: (&'a str, &'a str),
    /// The `Accept` header.
    pub(crate) accept: &'a str,
}

impl Parts<'_> {
    /// The complete request, with the scheme's `headers` rendered with `values`.
    pub(crate) fn assemble(self, headers: &[crate::scheme::Field], values: &dyn Values) -> Request {
        let Parts {
            endpoint,
            method,
            submission,
            params,
            jsonrpc: (jsonrpc_method, jsonrpc_id),
            accept,
        } = self;
        let mut path_and_query = endpoint.path_and_query.clone();
        let (content_type, body) = match submission {
            Submission::Http => {
                if !params.is_empty() {
                    path_and_query.push(if path_and_query.contains('?') {
                        '&'
                    } else {
                        '?'
                    });
                    path_and_query.push_str(&urlencoded(&params));
                }
                (None, Vec::new())
            }
            Submission::Form => (
                Some("application/x-www-form-urlencoded"),
                urlencoded(&params).into_bytes(),
            ),
            Submission::Json => (
                Some("application/json"),
                json_object(&params).finish().into_bytes(),
            ),
            Submission::JsonRpc => {
                let request = json::Object::new()
                    .string("jsonrpc", "2.0")
                    .string("method", jsonrpc_method)
                    .object("params", json_object(&params))
                    .string("id", jsonrpc_id)
                    .finish();
                (Some("application/json"), request.into_bytes())
            }
        };
        let mut out = vec![
            ("user-agent".to_owned(), USER_AGENT_VALUE.to_owned()),
            ("accept".to_owned(), accept.to_owned()),
        ];
        if let Some(content_type) = content_type {
            out.push(("content-type".to_owned(), content_type.to_owned()));
        }
        // The body is complete before sending, so say how long it is: a streamed (chunked)
        // request body is lost on servers that do not read chunked requests (Python's
        // http.server, some PHP setups), and a POST without a length can be refused with 411.
        if method != Method::Get || !body.is_empty() {
            out.push(("content-length".to_owned(), body.len().to_string()));
        }
        // Header names were checked when the scheme was read (`parse_header`); control
        // characters are dropped from values, so a caller ID cannot add a header.
        for field in headers {
            let value: String = field
                .template
                .render(values)
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            out.push((field.name.clone(), value));
        }
        Request {
            method,
            path_and_query,
            headers: out,
            body,
        }
    }
}

/// The signature header every signed request carries.
pub const SIGNATURE_HEADER: &str = "x-callroute-signature";
/// The same for every webhook of one routing decision (its retries, the secondary CRM's).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Which webhook of the decision this is: 1, 2, … across the primary's attempts and then the
/// secondary's.
pub const ATTEMPT_HEADER: &str = "x-callroute-attempt";
/// On an outcome report: the routing decision it reports on, when the platform kept it.
pub const DECISION_HEADER: &str = "x-callroute-decision";
/// On the secondary CRM's requests: why the primary was not used (`timeout`, `transport`,
/// `http-status; status=503`).
pub const PRIMARY_ERROR_HEADER: &str = "x-callroute-primary-error";

/// What ties one webhook to its routing decision: the headers [`Stamp::apply`] adds, which
/// [`sign`] covers with its `v2` signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The decision's idempotency key ([`idempotency_key`]).
    pub idempotency_key: &'a str,
    /// The webhook's number in the decision, from 1.
    pub attempt: u32,
    /// On the secondary's requests, why the primary was not used ([`error_header`]).
    pub primary_error: Option<&'a str>,
}

impl Stamp<'_> {
    /// Add the stamp's headers to `request`.
    pub fn apply(&self, request: &mut Request) {
        request.headers.push((
            IDEMPOTENCY_KEY_HEADER.to_owned(),
            self.idempotency_key.to_owned(),
        ));
        request
            .headers
            .push((ATTEMPT_HEADER.to_owned(), self.attempt.to_string()));
        if let Some(error) = self.primary_error {
            request
                .headers
                .push((PRIMARY_ERROR_HEADER.to_owned(), error.to_owned()));
        }
    }
}

/// A routing decision's idempotency key: 32 hex digits of SHA-256 over the call's id and
/// numbers and the time the decision started (to the nanosecond), so that two decisions
/// (even for the same call id) never share one, and the key reveals nothing of the call.
pub fn idempotency_key(call: &Call, started: std::time::Duration) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [&call.call_id, &call.caller, &call.callee] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(started.as_nanos().to_be_bytes());
    hex(&hash.finalize()[..16])
}

/// How the secondary's requests say why the primary was not used: the error kind, and the
/// status for `http-status` (`http-status; status=503`). Never the message, which may quote
/// the primary's answer.
pub fn error_header(error: &RouteError) -> String {
    match error.status() {
        Some(status) => format!("{}; status={status}", error.kind().as_str()),
        None => error.kind().as_str().to_owned(),
    }
}

/// Sign a request: `X-Callroute-Signature: t=<unix seconds>,v1=<hex>,v2=<hex>`, one `v1=` and
/// one `v2=` per secret (so a CRM can rotate its secret without downtime), each a hex
/// HMAC-SHA256 keyed with the secret:
///
/// - `v1` over `"<t>.<payload>"`, where the payload is the body, or the query string (without
///   `?`) when there is no body;
/// - `v2` over `"<t>.<idempotency key>.<attempt>.<primary error>.<payload>"` (the primary error
///   empty when there is none): the same, and the [`Stamp`]'s headers too.
pub fn sign(request: &mut Request, secrets: &[String], unix_seconds: u64, stamp: &Stamp) {
    if secrets.is_empty() {
        return;
    }
    let payload: &[u8] = if request.body.is_empty() {
        request.query().unwrap_or("").as_bytes()
    } else {
        &request.body
    };
    let stamped = format!(
        "{}.{}.{}.",
        stamp.idempotency_key,
        stamp.attempt,
        stamp.primary_error.unwrap_or("")
    );
    let mut v1 = String::new();
    let mut v2 = String::new();
    for secret in secrets {
        v1.push_str(",v1=");
        v1.push_str(&signature(secret, unix_seconds, &[payload]));
        v2.push_str(",v2=");
        v2.push_str(&signature(
            secret,
            unix_seconds,
            &[stamped.as_bytes(), payload],
        ));
    }
    request.headers.push((
        SIGNATURE_HEADER.to_owned(),
        format!("t={unix_seconds}{v1}{v2}"),
    ));
}

/// Hex HMAC-SHA256 of `"<t>."` and then `parts` with `secret`: what a CRM recomputes to
/// verify (`v1`: the payload; `v2`: the stamp, then the payload).
pub fn signature(secret: &str, unix_seconds: u64, parts: &[&[u8]]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    for part in parts {
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

/// `text` percent-encoded (RFC 3986): each byte `keep` accepts as it is, every other as `%XX`
/// in upper case. One writer for every place that encodes: a URL's path and query, a name in
/// one of `serve`'s paths, a secret's encoded forms.
pub fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_`, `~`.
pub fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)
}

/// `bytes` in lower-case hex, as signatures, idempotency keys and the host's digests write
/// them (one allocation, whatever the length).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

fn urlencoded(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The parameters as a JSON object of strings, in order.
fn json_object(params: &[(String, String)]) -> json::Object {
    params
        .iter()
        .fold(json::Object::new(), |object, (k, v)| object.string(k, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::Scheme;
    use serde_json::Value;

    fn call() -> Call {
        Call {
            call_id: "pkv".into(),
            caller: "+380 50 111".into(),
            callee: "380441234567".into(),
            vars: vec![
                ("uuid".into(), "842d921d-5334-4eca-812d-9a478dc8c884".into()),
                ("step_forward".into(), "webhookNumber:120".into()),
                ("google_id".into(), "UA-38222689-2".into()),
                ("note".into(), "Олена & \"co\"\r\nX-Evil: 1".into()),
            ],
        }
    }

    fn build_for(pairs: &[(&str, &str)]) -> Request {
        let scheme = Scheme::from_pairs(pairs.iter().copied()).unwrap();
        build(&scheme, &call()).unwrap()
    }

    fn body_json(req: &Request) -> Value {
        serde_json::from_slice(&req.body).unwrap()
    }

    #[test]
    fn http_submission_puts_params_in_the_query_for_any_method() {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let req = build_for(&[
                ("url", "http://crm.example.com/route?key=k1"),
                ("method", method),
                ("params.caller", "{caller}"),
                ("params.note", "{note}"),
            ]);
            assert_eq!(req.method.as_str(), method);
            assert_eq!(
                req.url(&Endpoint::parse("http://crm.example.com/route?key=k1").unwrap()),
                "http://crm.example.com:80/route?key=k1&caller=%2B380+50+111&note=%D0%9E%D0%BB%D0%B5%D0%BD%D0%B0+%26+%22co%22%0D%0AX-Evil%3A+1"
            );
            assert!(req.body.is_empty());
            assert!(req.header("content-type").is_none());
            let length = req.header("content-length");
            assert_eq!(
                length,
                if method == "GET" { None } else { Some("0") },
                "{method}"
            );
        }
    }

    #[test]
    fn form_submission_encodes_the_body() {
        let req = build_for(&[
            ("url", "http://crm/route"),
            ("method", "PUT"),
            ("submission", "form"),
            ("params.id", "{call_id}"),
            ("params.from", "{caller}"),
        ]);
        assert_eq!(req.method, Method::Put);
        assert_eq!(req.body, b"from=%2B380+50+111&id=pkv");
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn json_submission_is_the_seed_example() {
        let req = build_for(&[
            ("url", "http://api.asterisk/api/addnumber/"),
            ("method", "GET"),
            ("submission", "json"),
            ("params.call_id", "{call_id}"),
            ("params.step_forward", "{step_forward}"),
            ("params.uuid", "{uuid}"),
            ("params.google_id", "{google_id}"),
        ]);
        assert_eq!(req.method, Method::Post, "JSON forces POST");
        assert_eq!(req.path_and_query, "/api/addnumber/");
        assert_eq!(
            body_json(&req),
            serde_json::json!({"call_id":"pkv","step_forward":"webhookNumber:120",
                "uuid":"842d921d-5334-4eca-812d-9a478dc8c884","google_id":"UA-38222689-2"})
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("content-length"),
            Some(req.body.len().to_string().as_str())
        );
        assert_eq!(req.header("user-agent"), Some(USER_AGENT_VALUE));
        assert_eq!(req.header("accept"), Some("text/plain, */*;q=0.5"));
    }

    #[test]
    fn json_keeps_unicode_and_escapes_quotes() {
        let req = build_for(&[
            ("url", "http://crm/"),
            ("submission", "json"),
            ("params.note", "{note}"),
        ]);
        let text = String::from_utf8(req.body.clone()).unwrap();
        assert!(text.contains("Олена"), "{text}");
        assert_eq!(body_json(&req)["note"], "Олена & \"co\"\r\nX-Evil: 1");
    }

    #[test]
    fn json_rpc_submission_wraps_params() {
        let req = build_for(&[
            ("url", "http://crm/rpc"),
            ("submission", "json-rpc"),
            ("jsonrpc_method", "route.get"),
            ("params.caller", "{caller}"),
        ]);
        assert_eq!(
            body_json(&req),
            serde_json::json!({"jsonrpc":"2.0","method":"route.get","params":{"caller":"+380 50 111"},"id":"pkv"})
        );
    }

    #[test]
    fn without_params_every_call_value_is_sent() {
        let req = build_for(&[("url", "http://crm/"), ("submission", "json")]);
        let body = body_json(&req);
        assert_eq!(body["call_id"], "pkv");
        assert_eq!(body["caller"], "+380 50 111");
        assert_eq!(body["callee"], "380441234567");
        assert_eq!(body["google_id"], "UA-38222689-2");
        assert_eq!(body.as_object().unwrap().len(), 7);
    }

    #[test]
    fn headers_are_templated_and_cannot_be_split() {
        let req = build_for(&[
            ("url", "http://crm/"),
            ("headers.Authorization", "Bearer t0k"),
            ("headers.X-Note", "{note}"),
            ("headers.X-Call", "{call_id}"),
        ]);
        assert_eq!(req.header("authorization"), Some("Bearer t0k"));
        assert_eq!(req.header("x-call"), Some("pkv"));
        let note = req.header("x-note").unwrap().as_bytes();
        assert!(!note.contains(&b'\r') && !note.contains(&b'\n'));
        assert_eq!(req.headers.len(), 6, "{:?}", req.headers);
    }

    #[test]
    fn signatures_cover_the_body_or_the_query() {
        // RFC 4231 test case 2 (key "Jefe"), as a check that this is plain HMAC-SHA256.
        let mac = {
            use hmac::Mac;
            let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
            m.update(b"what do ya want for nothing?");
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(
            mac,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );

        let mut req = build_for(&[
            ("url", "http://crm/"),
            ("submission", "json"),
            ("params.id", "{call_id}"),
        ]);
        let stamp = Stamp {
            idempotency_key: "k1",
            attempt: 2,
            primary_error: Some("timeout"),
        };
        stamp.apply(&mut req);
        sign(
            &mut req,
            &["s3cret".into(), "next".into()],
            1_700_000_000,
            &stamp,
        );
        let header = req.header(SIGNATURE_HEADER).unwrap().to_owned();
        let body: &[u8] = br#"{"id":"pkv"}"#;
        let expected = format!(
            "t=1700000000,v1={},v1={},v2={},v2={}",
            signature("s3cret", 1_700_000_000, &[body]),
            signature("next", 1_700_000_000, &[body]),
            signature("s3cret", 1_700_000_000, &[b"k1.2.timeout.", body]),
            signature("next", 1_700_000_000, &[b"k1.2.timeout.", body]),
        );
        assert_eq!(header, expected);
        assert_eq!(req.header(IDEMPOTENCY_KEY_HEADER), Some("k1"));
        assert_eq!(req.header(ATTEMPT_HEADER), Some("2"));
        assert_eq!(req.header(PRIMARY_ERROR_HEADER), Some("timeout"));

        let mut req = build_for(&[
            ("url", "http://crm/r?k=1"),
            ("method", "GET"),
            ("params.id", "{call_id}"),
        ]);
        let stamp = Stamp {
            idempotency_key: "k1",
            attempt: 1,
            primary_error: None,
        };
        sign(&mut req, &["s3cret".into()], 42, &stamp);
        assert_eq!(
            req.header(SIGNATURE_HEADER),
            Some(
                format!(
                    "t=42,v1={},v2={}",
                    signature("s3cret", 42, &[b"k=1&id=pkv"]),
                    signature("s3cret", 42, &[b"k1.1..", b"k=1&id=pkv"])
                )
                .as_str()
            )
        );

        let mut req = build_for(&[("url", "http://crm/")]);
        sign(&mut req, &[], 42, &stamp);
        assert!(req.header(SIGNATURE_HEADER).is_none());
    }

    #[test]
    fn signatures_match_the_documented_formula() {
        // Computed outside this crate (Python's hmac), from the README's formulas.
        let mut req = build_for(&[
            ("url", "http://crm/"),
            ("submission", "json"),
            ("params.id", "{call_id}"),
        ]);
        let stamp = Stamp {
            idempotency_key: "9f0c",
            attempt: 3,
            primary_error: Some("http-status; status=503"),
        };
        sign(&mut req, &["s3cret".into()], 1_700_000_000, &stamp);
        assert_eq!(
            req.header(SIGNATURE_HEADER),
            Some(
                "t=1700000000,\
                 v1=2fec2da24c86422c6d7fa32306c78385a3923bd2fe6fd5516c226c3a42163134,\
                 v2=b3ac96776663130d9e0d0bd397e4d51219c6d44d15df872b2660f421330d722e"
            )
        );
    }

    #[test]
    fn idempotency_keys_differ_by_call_and_by_start() {
        let call = Call {
            call_id: "pkv".into(),
            caller: "380501112233".into(),
            ..Call::default()
        };
        let at = std::time::Duration::from_nanos(1_700_000_000_000_000_001);
        let key = idempotency_key(&call, at);
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key, idempotency_key(&call, at));
        assert_ne!(
            key,
            idempotency_key(&call, at + std::time::Duration::from_nanos(1))
        );
        let other = Call {
            call_id: "pkw".into(),
            ..call.clone()
        };
        assert_ne!(key, idempotency_key(&other, at));
        assert!(!key.contains("380501112233"));
        assert_eq!(
            error_header(&RouteError::HttpStatus {
                status: 503,
                message: "busy".into()
            }),
            "http-status; status=503"
        );
        assert_eq!(error_header(&RouteError::Timeout("slow".into())), "timeout");
    }

    #[test]
    fn accept_follows_the_import_type() {
        let req = build_for(&[
            ("url", "http://crm/"),
            ("import", "json"),
            ("destination_field", "n"),
        ]);
        assert_eq!(req.header("accept"), Some("application/json, */*;q=0.5"));
    }
}
