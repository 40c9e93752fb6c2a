//! The component's answer, from its WIT types into the host's, trusting nothing: every
//! destination is validated again, as a component loaded with `--plugin` may return anything.

use crate::bindings::wit;
use crate::report::RouteFailure;
use callroute_plugin::destination::{Destination, Target};
use callroute_plugin::error::{ErrorKind, RouteError, excerpt};
use callroute_plugin::routing::Routing;

/// A component's routing, every destination re-validated (see [`destination_from_wit`]).
pub(crate) fn routing_from_wit(routing: wit::Routing) -> Result<Routing, RouteFailure> {
    Ok(Routing {
        destination: destination_from_wit(routing.destination)?,
        alternatives: routing
            .alternatives
            .into_iter()
            .map(destination_from_wit)
            .collect::<Result<_, _>>()?,
        fallback_cause: routing.fallback_cause.map(|e| error_from_wit(e).into()),
    })
}

/// A component's answer is re-validated on the host: a component loaded with `--plugin` is
/// not trusted to have checked what it returns.
fn destination_from_wit(destination: wit::Destination) -> Result<Destination, RouteFailure> {
    let (raw, sip) = match destination.target {
        wit::Target::Phone(p) => (p, false),
        wit::Target::Sip(s) => (s, true),
    };
    let target = Target::parse(&raw).map_err(|reason| {
        RouteFailure::new(
            ErrorKind::BadResponse,
            format!("the component returned an invalid destination: {reason}"),
        )
    })?;
    if matches!(target, Target::Sip(_)) != sip {
        return Err(RouteFailure::new(
            ErrorKind::BadResponse,
            format!(
                "the component returned `{}` as the wrong kind of destination",
                excerpt(&raw, 64)
            ),
        ));
    }
    Ok(Destination {
        target,
        ring_timeout_secs: destination.ring_timeout_secs,
    })
}

pub(crate) fn error_from_wit(error: wit::RouteError) -> RouteError {
    match error {
        wit::RouteError::Config(m) => RouteError::Config(m),
        wit::RouteError::Denied(m) => RouteError::Denied(m),
        wit::RouteError::Timeout(m) => RouteError::Timeout(m),
        wit::RouteError::Transport(m) => RouteError::Transport(m),
        wit::RouteError::HttpStatus(e) => RouteError::HttpStatus {
            status: e.status,
            message: e.message,
        },
        wit::RouteError::BadResponse(m) => RouteError::BadResponse(m),
        wit::RouteError::NoDestination(m) => RouteError::NoDestination(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(target: wit::Target) -> wit::Destination {
        wit::Destination {
            target,
            ring_timeout_secs: 30,
        }
    }

    #[test]
    fn destinations_are_validated_again() {
        let ok = destination_from_wit(destination(wit::Target::Phone("+38 044 123 45 67".into())))
            .unwrap();
        assert_eq!(ok.target, Target::Phone("+380441234567".into()));
        for (target, says) in [
            (wit::Target::Phone("0;drop".into()), "invalid destination"),
            (wit::Target::Phone("manager_7".into()), "wrong kind"),
            (wit::Target::Sip("101".into()), "wrong kind"),
        ] {
            let error = destination_from_wit(destination(target)).unwrap_err();
            assert_eq!(error.kind, ErrorKind::BadResponse);
            assert!(error.message.contains(says), "{}", error.message);
        }
    }

    #[test]
    fn every_error_keeps_its_kind() {
        let status = wit::RouteError::HttpStatus(wit::HttpStatusError {
            status: 503,
            message: "busy".into(),
        });
        let error = error_from_wit(status);
        assert_eq!(
            (error.kind(), error.status()),
            (ErrorKind::HttpStatus, Some(503))
        );
        for (error, kind) in [
            (wit::RouteError::Config("m".into()), ErrorKind::Config),
            (wit::RouteError::Denied("m".into()), ErrorKind::Denied),
            (wit::RouteError::Timeout("m".into()), ErrorKind::Timeout),
            (wit::RouteError::Transport("m".into()), ErrorKind::Transport),
            (
                wit::RouteError::BadResponse("m".into()),
                ErrorKind::BadResponse,
            ),
            (
                wit::RouteError::NoDestination("m".into()),
                ErrorKind::NoDestination,
            ),
        ] {
            assert_eq!(error_from_wit(error).kind(), kind);
        }
    }
}
