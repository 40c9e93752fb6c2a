//! callroute's routing logic: ask the customer's CRM where a call goes.
//!
//! Built for `wasm32-wasip2` this crate is the routing component (the `plugin` world in
//! `wit/world.wit`): the [`wasi`](crate) glue module reads the scheme from `wasi:config`, sends
//! the webhook through `wasi:http` within the scheme's deadline and exports `router.route`.
//! Everything else is plain Rust that compiles and is tested natively, and that hosts reuse:
//!
//! - [`scheme`]: the scheme's fields, validated, each error naming its field; CRM URLs and
//!   their origins; the [`HostPolicy`](scheme::HostPolicy) a host enforces, read by the same
//!   code;
//! - [`template`]: `{caller}`-style parameter and header templates;
//! - [`call`]: the call and its JSON form;
//! - [`routing`]: the routing loop: retries, the secondary CRM, the destination guard and the
//!   static fallback, within one deadline;
//! - [`request`]: the webhook request;
//! - [`answer`]: reading the CRM's answer;
//! - [`destination`]: normalising and validating what the CRM routes to, and the allowlist;
//! - [`error`]: the error kinds every layer shares;
//! - [`json`]: the small JSON reader and writer the component uses;
//! - [`outcome`]: the outcome of routing a call as JSON, the one format every front end
//!   answers with;
//! - [`report`]: how a routed call ended, and the report that tells the CRM.

#![deny(missing_docs)]

pub mod answer;
pub mod call;
pub mod destination;
pub mod error;
pub mod hostport;
pub mod json;
pub mod outcome;
pub mod report;
pub mod request;
pub mod routing;
pub mod scheme;
pub mod template;

#[cfg(target_arch = "wasm32")]
mod wasi;

use error::RouteError;
use scheme::SchemeError;

impl From<SchemeError> for RouteError {
    fn from(error: SchemeError) -> Self {
        RouteError::Config(error.to_string())
    }
}

pub use routing::{Routing, Transport, route};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::RawAnswer;
    use crate::call::Call;
    use crate::destination::Target;
    use crate::error::ErrorKind;
    use crate::routing::InHand;
    use crate::scheme::Endpoint;

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
        let mut transport = InHand {
            inspect: |endpoint: &Endpoint, request: &crate::request::Request| {
                assert_eq!(endpoint.origin.host, "crm.example.com");
                assert_eq!(request.body, br#"{"call_id":"pkv"}"#);
            },
            answer: Ok(RawAnswer {
                status: 200,
                body: br#"{"number_01":"3 80123456789"}"#.to_vec(),
            }),
        };
        let routing = route(pairs, &call, &mut transport).unwrap();
        assert_eq!(routing.first().target, Target::Phone("380123456789".into()));
        assert_eq!(routing.first().ring_timeout_secs, 30);
        assert!(routing.fallback_cause.is_none());
    }

    #[test]
    fn an_invalid_scheme_is_a_config_error_and_sends_nothing() {
        let mut transport = InHand {
            inspect: |_: &Endpoint, _: &crate::request::Request| {
                panic!("nothing may be sent for an invalid scheme")
            },
            answer: Err(RouteError::Transport("unused".into())),
        };
        let err = route(
            [("url", "http://crm/"), ("method", "PATCH")],
            &Call::default(),
            &mut transport,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("`method`"), "{err}");
    }

    #[test]
    fn transport_errors_pass_through() {
        let mut transport = InHand {
            inspect: |_: &Endpoint, _: &crate::request::Request| {},
            answer: Err(RouteError::Transport("connection refused".into())),
        };
        let err = route([("url", "http://crm/")], &Call::default(), &mut transport).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
    }
}
