//! callroute's routing logic: ask the customer's CRM where a call goes.
//!
//! Built for `wasm32-wasip2` this crate is the routing component (the `plugin` world in
//! `wit/world.wit`): the [`wasi`](crate) glue module reads the scheme from `wasi:config`, sends
//! the webhook through `wasi:http` within the scheme's deadline and exports `router.route`.
//! Everything else is plain Rust that compiles and is tested natively, and that hosts reuse:
//!
//! - [`scheme`]: the scheme's fields, validated, each error naming its field;
//! - [`template`]: `{caller}`-style parameter and header templates;
//! - [`call`]: the call and its JSON form;
//! - [`request`]: the webhook request, built with the `http` crate;
//! - [`answer`]: reading the CRM's answer;
//! - [`destination`]: normalising and validating what the CRM routes to;
//! - [`error`]: the error kinds every layer shares;
//! - [`outcome`]: the outcome of a call as JSON, the one format every front end answers with.

pub mod answer;
pub mod call;
pub mod destination;
pub mod error;
pub mod outcome;
pub mod request;
pub mod scheme;
pub mod template;

#[cfg(target_arch = "wasm32")]
mod wasi;

use answer::RawAnswer;
use call::Call;
use destination::Destination;
use error::RouteError;
use scheme::{Scheme, SchemeError};

impl From<SchemeError> for RouteError {
    fn from(error: SchemeError) -> Self {
        RouteError::Config(error.to_string())
    }
}

/// Route one call: validate the scheme, build the webhook request, hand it to `send` (the
/// transport: `wasi:http` in the component, any client natively) and read the answer.
pub fn route<K, V, S>(
    scheme_pairs: impl IntoIterator<Item = (K, V)>,
    call: &Call,
    send: S,
) -> Result<Destination, RouteError>
where
    K: AsRef<str>,
    V: AsRef<str>,
    S: FnOnce(&Scheme, http::Request<Vec<u8>>) -> Result<RawAnswer, RouteError>,
{
    let scheme = Scheme::from_pairs(scheme_pairs)?;
    let request = request::build(&scheme, call)?;
    let answer = send(&scheme, request)?;
    answer::read(&scheme, call, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Target;
    use crate::error::ErrorKind;

    #[test]
    fn route_runs_the_whole_flow_with_any_transport() {
        let call = Call {
            call_id: "pkv".into(),
            ..Call::default()
        };
        let pairs = [
            ("url", "http://crm.example.com/route"),
            ("submission", "json"),
            ("import", "json"),
            ("destination_field", "number_01"),
            ("params.call_id", "{call_id}"),
        ];
        let destination = route(pairs, &call, |scheme, request| {
            assert_eq!(scheme.endpoint.host, "crm.example.com");
            assert_eq!(request.body(), br#"{"call_id":"pkv"}"#);
            Ok(RawAnswer {
                status: 200,
                body: br#"{"number_01":"3 80123456789"}"#.to_vec(),
            })
        })
        .unwrap();
        assert_eq!(destination.target, Target::Phone("380123456789".into()));
        assert_eq!(destination.ring_timeout_secs, 30);
    }

    #[test]
    fn an_invalid_scheme_is_a_config_error_and_sends_nothing() {
        let err = route(
            [("url", "http://crm/"), ("method", "PATCH")],
            &Call::default(),
            |_, _| panic!("nothing may be sent for an invalid scheme"),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("`method`"), "{err}");
    }

    #[test]
    fn transport_errors_pass_through() {
        let err = route([("url", "http://crm/")], &Call::default(), |_, _| {
            Err(RouteError::Transport("connection refused".into()))
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
    }
}
