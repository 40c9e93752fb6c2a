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

use super::{Service, Tenants, json_response, path_segment, rejection, token_of, unauthorized};
use crate::Call;
use crate::outbound::CannedAnswer;
use crate::router::PreparedScheme;
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
    /// A sample answer to route with instead of asking the CRM.
    #[serde(default)]
    crm_answer: Option<SampleAnswer>,
}

/// What the CRM is supposed to have answered.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleAnswer {
    /// The HTTP status (200 if not given).
    #[serde(default = "ok")]
    status: u16,
    /// The body.
    #[serde(default)]
    body: String,
}

fn ok() -> u16 {
    200
}

impl Service {
    /// The admin API's `GET` requests (see the module docs).
    pub(super) fn admin<B>(&self, path: &str, request: &Request<B>) -> Response<Full<Bytes>> {
        let tenants = self.tenants();
        if let Err(refused) = self.admin_access(&tenants, request) {
            return refused;
        }
        let segments = segments(path);
        let not_found = |what: String| rejection(StatusCode::NOT_FOUND, "not-found", what);
        let known = |name: &str| tenants.get(name).map(|(scheme, _)| scheme);
        match segments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => {
                let schemes: Vec<Value> = tenants
                    .names()
                    .into_iter()
                    .filter_map(|name| Some(self.summary(name, known(name)?)))
                    .collect();
                json_response(json!({ "schemes": schemes }))
            }
            [name] if let Some(scheme) = known(name) => {
                let mut summary = self.summary(name, scheme);
                let settings: Vec<Value> = scheme
                    .settings()
                    .iter()
                    .map(|(key, value)| json!({ "key": key, "value": value }))
                    .collect();
                summary["settings"] = settings.into();
                summary["problem"] = scheme.problem().into();
                json_response(summary)
            }
            [name, "exchanges"] if known(name).is_some() => {
                json_response(json!({ "exchanges": self.exchanges.recent(name) }))
            }
            [name, "exchanges", call_id] if known(name).is_some() => {
                match self.exchanges.find(name, call_id) {
                    Some(record) => json_response(record),
                    None => not_found(format!(
                        "no recent exchange of call `{}`",
                        excerpt(call_id, 64)
                    )),
                }
            }
            [name, ..] if known(name).is_none() => unknown_scheme(name),
            _ => not_found("no such endpoint of the admin API".into()),
        }
    }

    /// `POST /v1/schemes/{name}/try`: route a trial call and answer its exchange.
    pub(super) async fn try_call(
        &self,
        path: &str,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let tenants = self.tenants();
        if let Err(refused) = self.admin_access(&tenants, &request) {
            return refused;
        }
        let segments = segments(path);
        let [name, action] = &segments[..] else {
            return rejection(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint of the admin API; trial calls go to /v1/schemes/{name}/try"
                    .into(),
            );
        };
        let Some((scheme, _)) = tenants.get(name) else {
            return unknown_scheme(name);
        };
        if action != "try" {
            return rejection(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint of the admin API; trial calls go to /v1/schemes/{name}/try"
                    .into(),
            );
        }
        let body = match super::read_body(request, self.limits.read_timeout).await {
            Ok(body) => body,
            Err(e) => return bad_request(e),
        };
        let (call, sample) = match read_trial(&body) {
            Ok(trial) => trial,
            Err(e) => return bad_request(e),
        };
        let report = match sample {
            Some(answer) => {
                self.router
                    .answering_with(answer)
                    .route(scheme, &call)
                    .await
            }
            None => self.router.route(scheme, &call).await,
        };
        json_response(crate::exchange::record_of(
            &self.exchanges.shown(&call),
            &report,
        ))
    }

    /// Whether `request` may use the admin API: 403 on a server without server-wide tokens,
    /// 401 without one of them.
    fn admin_access<B>(
        &self,
        tenants: &Tenants,
        request: &Request<B>,
    ) -> Result<(), Response<Full<Bytes>>> {
        if tenants.server_tokens().is_empty() {
            return Err(rejection(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the admin API needs server-wide tokens ([server] api_tokens)".into(),
            ));
        }
        if !tenants.may_read_metrics(token_of(request)) {
            self.metrics.unauthorized();
            return Err(unauthorized());
        }
        Ok(())
    }

    /// One scheme as `GET /v1/schemes` lists it.
    fn summary(&self, name: &str, scheme: &PreparedScheme) -> Value {
        let breakers: Vec<Value> = scheme
            .breakers()
            .states()
            .into_iter()
            .map(|(origin, state)| {
                json!({
                    "endpoint": origin.to_string(),
                    "state": format!("{state:?}").to_lowercase(),
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

/// The segments of an admin path after `/v1/schemes`, percent-decoded.
fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches("/v1/schemes")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(path_segment)
        .collect()
}

fn unknown_scheme(name: &str) -> Response<Full<Bytes>> {
    rejection(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no scheme named `{}`", excerpt(name, 64)),
    )
}

fn bad_request(e: RequestError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    rejection(status, "bad-request", e.message)
}

/// A trial's call, and its sample answer if it has one. Errors name what is wrong.
fn read_trial(body: &[u8]) -> Result<(Call, Option<CannedAnswer>), RequestError> {
    let invalid = |message: String| RequestError {
        status: 400,
        message,
    };
    let trial: Trial = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the trial call is not valid: {e}")))?;
    let call = Call::from_json(trial.call.get())
        .map_err(|e| invalid(format!("the trial's `call`: {e}")))?;
    let answer = trial
        .crm_answer
        .map(|answer| {
            if !(100..=599).contains(&answer.status) {
                return Err(invalid(format!(
                    "the trial's `crm_answer.status` {} is not an HTTP status (100-599)",
                    answer.status
                )));
            }
            if answer.body.len() > MAX_CALL_BODY {
                return Err(RequestError::too_large());
            }
            Ok(CannedAnswer {
                status: answer.status,
                body: answer.body.into(),
            })
        })
        .transpose()?;
    Ok((call, answer))
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
            (br#"{"call":{},"crm_answer":{"status":42}}"#, "status"),
            (br#"not json"#, "not valid"),
        ] {
            let error = read_trial(body).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains(named), "{}", error.message);
        }
    }
}
