//! The admin API: what an operator (or the [console](super::console)) sees of every tenant.
//! Server-wide tokens only, since it shows every tenant; a server without them answers 403.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/schemes` | every scheme: health over its recent exchanges, in flight, share, breakers |
//! | `GET /v1/schemes/{name}` | the same for one scheme, with its settings (secrets masked) |
//! | `GET /v1/schemes/{name}/exchanges` | its recent exchanges, newest first |
//! | `GET /v1/schemes/{name}/exchanges/{call_id}` | the newest exchange of that call |
//! | `POST /v1/schemes/{name}/try` | route a trial call with the scheme and answer its exchange |
//!
//! A trial call is routed as a PBX's would be (the same sandbox, share and breakers), by the
//! CRM or, with `crm_answer`, by a sample answer the host gives in the CRM's place (as
//! `callroute route --crm-answer` does). It is not a call: it is kept out of the exchange
//! log and the metrics.

use super::http::{
    Names, json_response, method_not_allowed, rejection, token_of, unauthorized, unknown_scheme,
};
use super::{Service, Tenants};
use crate::Call;
use crate::outbound::CannedAnswer;
use crate::prepare::PreparedScheme;
use bytes::Bytes;
use callroute_plugin::call::{MAX_CALL_BODY, RequestError};
use callroute_plugin::error::excerpt;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

/// A trial call, as `POST /v1/schemes/{name}/try` takes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Trial {
    /// The call, as `POST /v1/route/{scheme}` takes it (read by the same parser, so its
    /// variables keep their order and a name given twice is refused as there).
    call: Box<serde_json::value::RawValue>,
    /// A sample answer to route with instead of asking the CRM: `status` (200 if not given)
    /// and `body`. Read by [`sample_answer`], whose errors name the field.
    #[serde(default)]
    crm_answer: Option<Value>,
}

/// The most a trial's body may hold: a call and a sample answer as large as a CRM's may be,
/// written as a JSON string.
const MAX_TRIAL_BODY: usize = 4 * MAX_CALL_BODY;

/// An endpoint of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admin {
    /// `GET /v1/schemes`
    Schemes,
    /// `GET /v1/schemes/{name}`
    Scheme,
    /// `GET /v1/schemes/{name}/exchanges`
    Exchanges,
    /// `GET /v1/schemes/{name}/exchanges/{call_id}`
    Exchange,
    /// `POST /v1/schemes/{name}/try`
    Try,
}

impl Service {
    /// The admin API (see the module docs).
    pub(super) async fn admin(
        &self,
        endpoint: Admin,
        names: Names,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let tenants = self.tenants();
        if let Some(refused) = self.admin_refusal(&tenants, &request) {
            return refused;
        }
        let allowed = match endpoint {
            Admin::Try => "POST",
            _ => "GET",
        };
        // `None`: the name in the path is not in its canonical form, so no scheme has it.
        let scheme = match names.scheme {
            Some(Some(name)) => match tenants.get(&name) {
                Some((scheme, _)) => Some((name, scheme)),
                None => return unknown_scheme(&name),
            },
            Some(None) => return unknown_scheme(""),
            None => None,
        };
        if request.method().as_str() != allowed {
            return method_not_allowed(allowed);
        }
        match (endpoint, scheme) {
            (Admin::Schemes, _) => {
                let schemes: Vec<Value> = tenants
                    .names()
                    .into_iter()
                    .filter_map(|name| Some(self.summary(name, tenants.get(name)?.0)))
                    .collect();
                json_response(json!({ "schemes": schemes }))
            }
            (Admin::Scheme, Some((name, scheme))) => {
                let mut summary = self.summary(&name, scheme);
                let settings: Vec<Value> = scheme
                    .settings()
                    .iter()
                    .map(|(key, value)| json!({ "key": key, "value": value }))
                    .collect();
                summary["settings"] = settings.into();
                summary["problem"] = scheme.problem().into();
                json_response(summary)
            }
            (Admin::Exchanges, Some((name, _))) => {
                json_response(json!({ "exchanges": self.exchanges.recent(&name) }))
            }
            (Admin::Exchange, Some((name, _))) => {
                let found = names
                    .call_id
                    .flatten()
                    .and_then(|call_id| self.exchanges.find(&name, &call_id));
                match found {
                    Some(record) => json_response(record),
                    None => rejection(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        "no recent exchange of that call".into(),
                    ),
                }
            }
            (Admin::Try, Some((_, scheme))) => self.try_call(scheme, request).await,
            _ => unreachable!("every endpoint but the list names a scheme"),
        }
    }

    /// Route a trial call with `scheme` and answer its exchange.
    async fn try_call(
        &self,
        scheme: &PreparedScheme,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let body =
            match super::http::read_body(request, MAX_TRIAL_BODY, self.limits.read_timeout).await {
                Ok(body) => body,
                Err(e) => return bad_request(e),
            };
        let (call, sample) = match read_trial(&body) {
            Ok(trial) => trial,
            Err(e) => return bad_request(e),
        };
        let report = {
            // A call in flight like any other: shutdown waits for it.
            let _in_flight = self.calls.enter();
            // Never remembered, even when the CRM routes it; the operator's own call and
            // sample come back as written.
            self.router.for_trial(sample).route(scheme, &call).await
        };
        json_response(crate::exchange::record_json(
            &call,
            &report,
            self.exchanges.shows_numbers(),
        ))
    }

    /// Why `request` may not use the admin API, if it may not: 403 on a server without
    /// server-wide tokens, 401 without one of them.
    fn admin_refusal<B>(
        &self,
        tenants: &Tenants,
        request: &Request<B>,
    ) -> Option<Response<Full<Bytes>>> {
        if tenants.server_tokens().is_empty() {
            return Some(rejection(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the admin API needs server-wide tokens ([server] api_tokens)".into(),
            ));
        }
        if !tenants.may_read_metrics(token_of(request)) {
            self.metrics.unauthorized();
            return Some(unauthorized());
        }
        None
    }

    /// One scheme as `GET /v1/schemes` lists it.
    fn summary(&self, name: &str, scheme: &PreparedScheme) -> Value {
        let breakers: Vec<Value> = scheme
            .breakers()
            .states()
            .into_iter()
            .map(|(origin, state)| {
                json!({
                    "endpoint": origin,
                    "state": state.as_str(),
                })
            })
            .collect();
        json!({
            "name": name,
            "health": self.exchanges.health(name),
            "in_flight": scheme.in_flight(),
            "share": scheme.share_limit(),
            "breakers": breakers,
        })
    }
}

fn bad_request(e: RequestError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    rejection(status, "bad-request", e.message)
}

/// A trial's call, and its sample answer if it has one. Errors name what is wrong.
fn read_trial(body: &[u8]) -> Result<(Call, Option<CannedAnswer>), RequestError> {
    let trial: Trial = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the trial call is not valid: {e}")))?;
    let call = Call::from_json(trial.call.get())
        .map_err(|e| invalid(format!("the trial's `call`: {e}")))?;
    let answer = trial.crm_answer.map(sample_answer).transpose()?;
    Ok((call, answer))
}

/// A trial's `crm_answer`: `{"status": 200, "body": "…"}`, both optional.
fn sample_answer(answer: Value) -> Result<CannedAnswer, RequestError> {
    let Value::Object(fields) = answer else {
        return Err(invalid(
            "the trial's `crm_answer` must be an object: {\"status\": 200, \"body\": \"…\"}".into(),
        ));
    };
    let mut sample = CannedAnswer {
        status: 200,
        body: Bytes::new(),
    };
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("status", Value::Number(n))
                if n.as_u64().is_some_and(|n| (100..=599).contains(&n)) =>
            {
                sample.status = n.as_u64().unwrap_or(200) as u16;
            }
            ("status", _) => {
                return Err(invalid(
                    "the trial's `crm_answer.status` must be an HTTP status, a number from 100 to 599"
                        .into(),
                ));
            }
            ("body", Value::String(body)) => sample.body = body.into(),
            ("body", _) => {
                return Err(invalid(
                    "the trial's `crm_answer.body` must be a string: the answer's text as the CRM would send it"
                        .into(),
                ));
            }
            (other, _) => {
                return Err(invalid(format!(
                    "the trial's `crm_answer.{}` is unknown (expected status, body)",
                    excerpt(other, 64)
                )));
            }
        }
    }
    Ok(sample)
}

fn invalid(message: String) -> RequestError {
    RequestError {
        status: 400,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_is_read_with_errors_that_name_the_field() {
        let (call, answer) =
            read_trial(br#"{"call":{"caller":"380501112233","callee":"101"}}"#).unwrap();
        assert_eq!(call.caller, "380501112233");
        assert!(answer.is_none());
        let (_, answer) = read_trial(
            br#"{"call":{"caller":"1"},"crm_answer":{"body":"{\"destination\":\"102\"}"}}"#,
        )
        .unwrap();
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], br#"{"destination":"102"}"#);
        for (body, named) in [
            (&br#"{"call":{"caler":"1"}}"#[..], "caler"),
            (br#"{"call":{},"answer":{}}"#, "answer"),
            (br#"{"crm_answer":{}}"#, "call"),
            (
                br#"{"call":{},"crm_answer":{"status":42}}"#,
                "crm_answer.status",
            ),
            (
                br#"{"call":{},"crm_answer":{"status":70000}}"#,
                "crm_answer.status",
            ),
            (
                br#"{"call":{},"crm_answer":{"status":"200"}}"#,
                "crm_answer.status",
            ),
            (
                br#"{"call":{},"crm_answer":{"body":{"a":1}}}"#,
                "crm_answer.body",
            ),
            (br#"{"call":{},"crm_answer":{"bdy":""}}"#, "crm_answer.bdy"),
            (br#"{"call":{},"crm_answer":"x"}"#, "crm_answer"),
            (br#"not json"#, "not valid"),
        ] {
            let error = read_trial(body).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains(named), "{}", error.message);
        }
    }
}
