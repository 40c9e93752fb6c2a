//! The component's answer, from its WIT types into the host's, trusting nothing: every
//! destination is validated again, as a component loaded with `--plugin` may return anything.

use crate::bindings::{v0_1, v0_2, wit};
use crate::report::RouteFailure;
use callroute_plugin::destination::{Destination, Refused, RingStrategy, Target};
use callroute_plugin::error::{ErrorKind, RouteError, excerpt};
use callroute_plugin::report::valid_decision;
use callroute_plugin::routing::Routing;
use callroute_plugin::scheme::MAX_DESTINATIONS;

/// A component's routing, every destination re-validated (see [`destination_from_wit`]): at
/// least one, and at most [`MAX_DESTINATIONS`] (the rest are refused here, whatever the
/// component says).
pub(crate) fn routing_from_wit(routing: wit::Routing) -> Result<Routing, RouteFailure> {
    if routing.destinations.is_empty() {
        return Err(RouteFailure::new(
            ErrorKind::BadResponse,
            "the component returned a routing with no destination",
        ));
    }
    let mut refused: Vec<Refused> = routing
        .refused
        .into_iter()
        .map(|r| Refused::new(&r.value, excerpt(&r.reason, 200)))
        .collect();
    let mut destinations = Vec::new();
    for destination in routing.destinations {
        let destination = destination_from_wit(destination)?;
        if destinations.len() < MAX_DESTINATIONS {
            destinations.push(destination);
        } else {
            refused.push(Refused::new(
                destination.target.value(),
                format!("beyond the host's limit of {MAX_DESTINATIONS} destinations"),
            ));
        }
    }
    Ok(Routing {
        destinations,
        strategy: match routing.strategy {
            wit::RingStrategy::Serial => RingStrategy::Serial,
            wit::RingStrategy::Parallel => RingStrategy::Parallel,
        },
        refused,
        fallback_cause: routing.fallback_cause.map(|e| error_from_wit(e).into()),
        remembered: false,
        // Carried into headers and documents as it is, so held to the plugin's rule; a
        // component that gives none (an older contract's) or a malformed one gives none.
        decision: Some(routing.decision).filter(|d| valid_decision(d)),
    })
}

/// A 0.2.0 component's routing: the same, without a decision id.
pub(crate) fn routing_from_v0_2(routing: v0_2::wit::Routing) -> Result<Routing, RouteFailure> {
    routing_from_wit(wit::Routing {
        destinations: routing
            .destinations
            .into_iter()
            .map(|d| wit::Destination {
                target: match d.target {
                    v0_2::wit::Target::Phone(p) => wit::Target::Phone(p),
                    v0_2::wit::Target::Sip(s) => wit::Target::Sip(s),
                },
                ring_timeout_secs: d.ring_timeout_secs,
            })
            .collect(),
        strategy: match routing.strategy {
            v0_2::wit::RingStrategy::Serial => wit::RingStrategy::Serial,
            v0_2::wit::RingStrategy::Parallel => wit::RingStrategy::Parallel,
        },
        refused: routing
            .refused
            .into_iter()
            .map(|r| wit::RefusedDestination {
                value: r.value,
                reason: r.reason,
            })
            .collect(),
        fallback_cause: routing.fallback_cause.map(error_from_v0_2),
        decision: String::new(),
    })
}

/// A 0.1.0 component's routing: its destination, then its alternatives, rung in turn.
pub(crate) fn routing_from_v0_1(routing: v0_1::wit::Routing) -> Result<Routing, RouteFailure> {
    let destinations = std::iter::once(routing.destination)
        .chain(routing.alternatives)
        .map(|d| wit::Destination {
            target: match d.target {
                v0_1::wit::Target::Phone(p) => wit::Target::Phone(p),
                v0_1::wit::Target::Sip(s) => wit::Target::Sip(s),
            },
            ring_timeout_secs: d.ring_timeout_secs,
        })
        .collect();
    routing_from_wit(wit::Routing {
        destinations,
        strategy: wit::RingStrategy::Serial,
        refused: Vec::new(),
        fallback_cause: routing.fallback_cause.map(error_from_v0_1),
        decision: String::new(),
    })
}

/// An older contract's `route-error`, as the current contract writes it: the cases are the
/// same in every version so far, so one conversion, written once, serves each.
macro_rules! route_error_from {
    ($name:ident, $old:path) => {
        #[doc = concat!("A `", stringify!($old), "` as the current contract writes it.")]
        pub(crate) fn $name(error: $old) -> wit::RouteError {
            use $old as Old;
            match error {
                Old::Config(m) => wit::RouteError::Config(m),
                Old::Denied(m) => wit::RouteError::Denied(m),
                Old::Timeout(m) => wit::RouteError::Timeout(m),
                Old::Transport(m) => wit::RouteError::Transport(m),
                Old::HttpStatus(e) => wit::RouteError::HttpStatus(wit::HttpStatusError {
                    status: e.status,
                    message: e.message,
                }),
                Old::BadResponse(m) => wit::RouteError::BadResponse(m),
                Old::NoDestination(m) => wit::RouteError::NoDestination(m),
            }
        }
    };
}

route_error_from!(error_from_v0_1, v0_1::wit::RouteError);
route_error_from!(error_from_v0_2, v0_2::wit::RouteError);

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
    fn a_routing_has_one_to_the_most_destinations() {
        let routing = |count: usize| wit::Routing {
            destinations: (0..count)
                .map(|i| destination(wit::Target::Phone(format!("10{i}"))))
                .collect(),
            strategy: wit::RingStrategy::Parallel,
            refused: Vec::new(),
            fallback_cause: None,
            decision: "0123456789abcdef0123456789abcdef".into(),
        };
        let error = routing_from_wit(routing(0)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadResponse);
        let many = routing_from_wit(routing(MAX_DESTINATIONS + 2)).unwrap();
        assert_eq!(many.destinations.len(), MAX_DESTINATIONS);
        assert_eq!(many.refused.len(), 2);
        assert_eq!(many.strategy, RingStrategy::Parallel);
        assert_eq!(
            many.decision.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn a_decision_id_that_cannot_travel_is_dropped() {
        for bad in ["", "d1\r\nx-evil: 1", &"a".repeat(129)] {
            let routing = routing_from_wit(wit::Routing {
                destinations: vec![destination(wit::Target::Phone("101".into()))],
                strategy: wit::RingStrategy::Serial,
                refused: Vec::new(),
                fallback_cause: None,
                decision: bad.to_owned(),
            })
            .unwrap();
            assert_eq!(routing.decision, None, "{bad:?}");
        }
    }

    #[test]
    fn a_0_1_routing_is_its_destination_then_its_alternatives_in_turn() {
        let old = |t: &str| v0_1::wit::Destination {
            target: v0_1::wit::Target::Phone(t.into()),
            ring_timeout_secs: 20,
        };
        let routing = routing_from_v0_1(v0_1::wit::Routing {
            destination: old("101"),
            alternatives: vec![old("102")],
            fallback_cause: Some(v0_1::wit::RouteError::Timeout("slow".into())),
        })
        .unwrap();
        let targets: Vec<&str> = routing
            .destinations
            .iter()
            .map(|d| d.target.value())
            .collect();
        assert_eq!(targets, ["101", "102"]);
        assert_eq!(routing.strategy, RingStrategy::Serial);
        assert_eq!(routing.fallback_cause.unwrap().kind, ErrorKind::Timeout);
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
