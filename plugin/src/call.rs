//! The call being routed, and its JSON form.
//!
//! JSON form (the CLI's call file, `callroute serve`'s request body):
//! `{"call_id":"…","caller":"…","callee":"…","vars":{"uuid":"…", …}}`. Variable values may be
//! strings, numbers or booleans; numbers and booleans are used as their JSON text.

use crate::json::{self, Value};

/// Most call variables accepted; a call platform sends a handful.
pub const MAX_VARS: usize = 256;
/// Longest value (in bytes) of any call field or variable.
pub const MAX_VALUE_LEN: usize = 4096;

/// A call waiting to be routed (the WIT `call` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The platform's identifier of the call.
    pub call_id: String,
    /// The calling party.
    pub caller: String,
    /// The dialled number or address.
    pub callee: String,
    /// Further named variables, in the order given.
    pub vars: Vec<(String, String)>,
}

/// Largest call body accepted over HTTP.
pub const MAX_CALL_BODY: usize = 64 * 1024;

/// An HTTP request for routing that carries no usable call, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// 400, 405 or 413.
    pub status: u16,
    /// What is wrong, for the client.
    pub message: String,
}

impl RequestError {
    /// A call body over [`MAX_CALL_BODY`]: 413, in the same words from every front end.
    pub fn too_large() -> RequestError {
        RequestError {
            status: 413,
            message: format!("the call body is larger than {MAX_CALL_BODY} bytes"),
        }
    }

    /// A body over `limit` bytes: 413, in the words of [`RequestError::too_large`] for a call's
    /// limit, and with the limit for any other (an outcome's, a trial's).
    pub fn over_limit(limit: usize) -> RequestError {
        if limit == MAX_CALL_BODY {
            return RequestError::too_large();
        }
        RequestError {
            status: 413,
            message: format!("the request body is larger than {limit} bytes"),
        }
    }

    /// Whether a call body of `len` bytes (so far) is within [`MAX_CALL_BODY`]: every front
    /// end checks the limit with this as it reads.
    pub fn check_body_len(len: usize) -> Result<(), RequestError> {
        if len > MAX_CALL_BODY {
            return Err(RequestError::too_large());
        }
        Ok(())
    }
}

/// A call JSON document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not JSON at all.
    #[error("call is not valid JSON: {0}")]
    Syntax(String),
    /// Valid JSON of the wrong shape; the message names the field.
    #[error("call field `{field}`: {reason}")]
    Field {
        /// The offending field (`vars.uuid` for a variable).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Call {
    /// The value a template placeholder `{name}` stands for: `call_id`, `caller`, `callee`,
    /// or a call variable. `None` when the call has no such value.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        match name {
            "call_id" => Some(&self.call_id),
            "caller" => Some(&self.caller),
            "callee" => Some(&self.callee),
            _ => self
                .vars
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str()),
        }
    }

    /// Every value by name: `call_id`, `caller`, `callee`, then the variables. This is what a
    /// scheme without `[params]` sends. A variable named like one of the three fields is left
    /// out, as [`Call::lookup`] leaves it out: each name stands for one value.
    pub fn all_values(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("call_id", self.call_id.as_str()),
            ("caller", self.caller.as_str()),
            ("callee", self.callee.as_str()),
        ]
        .into_iter()
        .chain(
            self.vars
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "call_id" | "caller" | "callee"))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// Parse the JSON form of a call. Unknown top-level fields are refused so that a typo
    /// (`caler`) is reported rather than routed as an empty caller.
    pub fn from_json(text: &str) -> Result<Call, CallError> {
        let value = json::parse(text).map_err(|e| CallError::Syntax(e.to_string()))?;
        let Value::Object(members) = &value else {
            return Err(CallError::Field {
                field: "(top level)".into(),
                reason: "must be a JSON object".into(),
            });
        };
        refuse_repeated(members.iter().map(|(key, _)| key.as_str()), "")?;
        let mut call = Call::default();
        for (key, value) in members {
            match key.as_str() {
                "call_id" => call.call_id = scalar(key, value)?,
                "caller" => call.caller = scalar(key, value)?,
                "callee" => call.callee = scalar(key, value)?,
                "vars" => call.vars = vars(value)?,
                _ => {
                    return Err(CallError::Field {
                        field: key.clone(),
                        reason: "unknown field (expected call_id, caller, callee, vars)".into(),
                    });
                }
            }
        }
        Ok(call)
    }

    /// Build a call from a URL query string: `call_id`, `caller` and `callee` by name, every
    /// other parameter a call variable (`?call_id=pkv&caller=380…&uuid=842d…`). A parameter
    /// given twice is refused rather than guessed at.
    pub fn from_query(query: &str) -> Result<Call, CallError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        refuse_repeated(pairs.iter().map(|(key, _)| key.as_str()), "")?;
        let mut call = Call::default();
        for (key, value) in pairs {
            match key.as_str() {
                "call_id" => call.call_id = value,
                "caller" => call.caller = value,
                "callee" => call.callee = value,
                _ => call.vars.push((key, value)),
            }
        }
        Ok(call)
    }

    /// The call an HTTP routing request carries: `POST` with the JSON form as its body, or
    /// `GET` with the call in the query ([`Call::from_query`]). Used by every HTTP front end.
    pub fn from_http(method: &str, query: Option<&str>, body: &[u8]) -> Result<Call, RequestError> {
        let bad = |message: String| RequestError {
            status: 400,
            message,
        };
        let call = match method {
            "GET" => {
                Call::from_query(query.unwrap_or("")).map_err(|e| bad(format!("query: {e}")))?
            }
            "POST" => {
                RequestError::check_body_len(body.len())?;
                let text = std::str::from_utf8(body)
                    .map_err(|_| bad("the call body is not UTF-8".into()))?;
                Call::from_json(text).map_err(|e| bad(e.to_string()))?
            }
            _ => {
                return Err(RequestError {
                    status: 405,
                    message: "use POST with the call JSON, or GET with the call in the query"
                        .into(),
                });
            }
        };
        call.check_limits().map_err(|e| bad(e.to_string()))?;
        Ok(call)
    }

    /// Check the limits a call from an untrusted source must keep: value lengths and the
    /// number of variables.
    pub fn check_limits(&self) -> Result<(), CallError> {
        if self.vars.len() > MAX_VARS {
            return Err(CallError::Field {
                field: "vars".into(),
                reason: format!("more than {MAX_VARS} variables"),
            });
        }
        for (name, value) in self.all_values() {
            if value.len() > MAX_VALUE_LEN || name.len() > MAX_VALUE_LEN {
                return Err(CallError::Field {
                    field: name.into(),
                    reason: format!("longer than {MAX_VALUE_LEN} bytes"),
                });
            }
        }
        Ok(())
    }
}

impl crate::template::Values for Call {
    fn lookup(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        Call::lookup(self, name).map(std::borrow::Cow::Borrowed)
    }
}

/// A string, number or boolean as text; `null` as the empty string.
pub(crate) fn scalar(field: &str, value: &Value) -> Result<String, CallError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(CallError::Field {
            field: field.into(),
            reason: "must be a string, number or boolean".into(),
        }),
    }
}

/// A name given twice (in a query or a JSON object) is refused rather than guessed at.
/// Sorting rather than hashing: no hash map code, and no random seed from the host, in the
/// component.
pub(crate) fn refuse_repeated<'a>(
    keys: impl Iterator<Item = &'a str>,
    prefix: &str,
) -> Result<(), CallError> {
    let mut keys: Vec<&str> = keys.collect();
    keys.sort_unstable();
    match keys.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(CallError::Field {
            field: format!("{prefix}{}", pair[0]),
            reason: "given more than once".into(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn vars(value: &Value) -> Result<Vec<(String, String)>, CallError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(members) => {
            refuse_repeated(members.iter().map(|(key, _)| key.as_str()), "vars.")?;
            members
                .iter()
                .map(|(name, value)| Ok((name.clone(), scalar(&format!("vars.{name}"), value)?)))
                .collect()
        }
        _ => Err(CallError::Field {
            field: "vars".into(),
            reason: "must be a JSON object of name to value".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let call = Call::from_json(
            r#"{"call_id":"pkv","caller":"380501112233","callee":"380441234567",
                "vars":{"uuid":"842d921d","attempt":2,"vip":true,"none":null}}"#,
        )
        .unwrap();
        assert_eq!(call.call_id, "pkv");
        assert_eq!(call.caller, "380501112233");
        assert_eq!(call.lookup("callee"), Some("380441234567"));
        assert_eq!(call.lookup("uuid"), Some("842d921d"));
        assert_eq!(call.lookup("attempt"), Some("2"));
        assert_eq!(call.lookup("vip"), Some("true"));
        assert_eq!(call.lookup("none"), Some(""));
        assert_eq!(call.lookup("missing"), None);
        assert_eq!(call.all_values().count(), 7);
    }

    #[test]
    fn names_what_is_wrong() {
        let err = Call::from_json("{").unwrap_err();
        assert!(matches!(err, CallError::Syntax(_)), "{err}");
        let err = Call::from_json(r#"{"caler":"1"}"#).unwrap_err();
        assert!(err.to_string().contains("`caler`"), "{err}");
        let err = Call::from_json(r#"{"vars":{"x":[1]}}"#).unwrap_err();
        assert!(err.to_string().contains("`vars.x`"), "{err}");
        let err = Call::from_json(r#"{"vars":[1]}"#).unwrap_err();
        assert!(err.to_string().contains("`vars`"), "{err}");
        let err = Call::from_json("[]").unwrap_err();
        assert!(err.to_string().contains("object"), "{err}");
    }

    #[test]
    fn parses_a_query_string() {
        let call = Call::from_query("call_id=pkv&caller=%2B380501112233&callee=380441234567&uuid=842d&utm_source=google+ads").unwrap();
        assert_eq!(call.call_id, "pkv");
        assert_eq!(call.caller, "+380501112233");
        assert_eq!(call.callee, "380441234567");
        assert_eq!(
            call.vars,
            [
                ("uuid".to_string(), "842d".to_string()),
                ("utm_source".into(), "google ads".into())
            ]
        );
        assert_eq!(Call::from_query("").unwrap(), Call::default());
        let err = Call::from_query("caller=1&caller=2").unwrap_err();
        assert!(
            err.to_string().contains("`caller`") && err.to_string().contains("more than once"),
            "{err}"
        );
    }

    #[test]
    fn json_names_given_twice_are_refused_and_vars_cannot_shadow_fields() {
        for (text, field) in [
            (r#"{"caller":"1","caller":"2"}"#, "`caller`"),
            (r#"{"vars":{"uuid":"a","x":1,"uuid":"b"}}"#, "`vars.uuid`"),
        ] {
            let err = Call::from_json(text).unwrap_err().to_string();
            assert!(
                err.contains(field) && err.contains("more than once"),
                "{err}"
            );
        }
        // Variables come in the order given; one named like a field is not sent twice.
        let call =
            Call::from_json(r#"{"caller":"1","vars":{"z":2,"caller":"9","a":true}}"#).unwrap();
        assert_eq!(call.lookup("caller"), Some("1"));
        let names: Vec<_> = call.all_values().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(names, ["call_id=", "caller=1", "callee=", "z=2", "a=true"]);
    }

    #[test]
    fn http_requests_carry_calls() {
        let call = Call::from_http("GET", Some("call_id=a&caller=1"), b"").unwrap();
        assert_eq!((call.call_id.as_str(), call.caller.as_str()), ("a", "1"));
        let call = Call::from_http("POST", None, br#"{"call_id":"b"}"#).unwrap();
        assert_eq!(call.call_id, "b");
        assert_eq!(Call::from_http("PUT", None, b"").unwrap_err().status, 405);
        assert_eq!(Call::from_http("POST", None, b"{").unwrap_err().status, 400);
        assert_eq!(
            Call::from_http("POST", None, b"\xff").unwrap_err().status,
            400
        );
        assert_eq!(
            Call::from_http("POST", None, &vec![b' '; MAX_CALL_BODY + 1])
                .unwrap_err()
                .status,
            413
        );
        let err = Call::from_http("GET", Some("caller=1&caller=2"), b"").unwrap_err();
        assert!(err.message.starts_with("query: "), "{err}");
    }

    #[test]
    fn limits_are_enforced() {
        let mut call = Call {
            caller: "x".repeat(MAX_VALUE_LEN + 1),
            ..Call::default()
        };
        assert!(
            call.check_limits()
                .unwrap_err()
                .to_string()
                .contains("caller")
        );
        call.caller.clear();
        call.vars = (0..=MAX_VARS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(
            call.check_limits()
                .unwrap_err()
                .to_string()
                .contains("vars")
        );
        call.vars.truncate(3);
        call.check_limits().unwrap();
    }
}
