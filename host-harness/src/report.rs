//! The outcome of routing one call, and its JSON form (the CLI's stdout, the server's body).
//!
//! ```json
//! {"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"elapsed_ms":12}
//! {"outcome":"failed","error":{"kind":"http-status","message":"the CRM answered 503 Service Unavailable","status":503},"elapsed_ms":7}
//! ```

use callroute_plugin::destination::Destination;
use callroute_plugin::error::{ErrorKind, RouteError};
use serde::Serialize;
use std::time::Duration;

/// Why a call was not routed: the component's [`RouteError`] or a host-side failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFailure {
    /// The error kind.
    pub kind: ErrorKind,
    /// A description safe to log.
    pub message: String,
    /// The CRM's status, for [`ErrorKind::HttpStatus`].
    pub status: Option<u16>,
}

impl RouteFailure {
    /// A failure of `kind` without a status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RouteFailure {
            kind,
            message: message.into(),
            status: None,
        }
    }
}

impl From<RouteError> for RouteFailure {
    fn from(error: RouteError) -> Self {
        RouteFailure {
            kind: error.kind(),
            status: error.status(),
            message: error.to_string(),
        }
    }
}

impl std::fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The result of routing one call and how long it took.
#[derive(Debug, Clone)]
pub struct RouteReport {
    /// Where the call goes, or why it could not be routed.
    pub result: Result<Destination, RouteFailure>,
    /// From the start of routing (instance creation) to the answer.
    pub elapsed: Duration,
}

#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
enum Outcome<'a> {
    Routed {
        destination: DestinationJson<'a>,
        elapsed_ms: u64,
    },
    Failed {
        error: ErrorJson<'a>,
        elapsed_ms: u64,
    },
}

#[derive(Serialize)]
struct DestinationJson<'a> {
    kind: &'static str,
    target: &'a str,
    ring_timeout_secs: u32,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    kind: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

impl RouteReport {
    /// `true` when the call was routed.
    pub fn is_routed(&self) -> bool {
        self.result.is_ok()
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        let elapsed_ms = self.elapsed.as_millis() as u64;
        let outcome = match &self.result {
            Ok(d) => Outcome::Routed {
                destination: DestinationJson {
                    kind: d.target.kind(),
                    target: d.target.value(),
                    ring_timeout_secs: d.ring_timeout_secs,
                },
                elapsed_ms,
            },
            Err(e) => Outcome::Failed {
                error: ErrorJson {
                    kind: e.kind.as_str(),
                    message: &e.message,
                    status: e.status,
                },
                elapsed_ms,
            },
        };
        serde_json::to_string(&outcome).expect("a report always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callroute_plugin::destination::Target;

    #[test]
    fn json_matches_the_contract() {
        let routed = RouteReport {
            result: Ok(Destination {
                target: Target::Phone("380123456789".into()),
                ring_timeout_secs: 30,
            }),
            elapsed: Duration::from_micros(12_400),
        };
        assert_eq!(
            routed.to_json(),
            r#"{"outcome":"routed","destination":{"kind":"phone","target":"380123456789","ring_timeout_secs":30},"elapsed_ms":12}"#
        );
        let failed = RouteReport {
            result: Err(RouteError::HttpStatus {
                status: 503,
                message: "the CRM answered 503 Service Unavailable".into(),
            }
            .into()),
            elapsed: Duration::from_millis(7),
        };
        assert_eq!(
            failed.to_json(),
            r#"{"outcome":"failed","error":{"kind":"http-status","message":"the CRM answered 503 Service Unavailable","status":503},"elapsed_ms":7}"#
        );
        let timeout = RouteReport {
            result: Err(RouteFailure::new(ErrorKind::Timeout, "slow")),
            elapsed: Duration::from_millis(5001),
        };
        assert_eq!(
            timeout.to_json(),
            r#"{"outcome":"failed","error":{"kind":"timeout","message":"slow"},"elapsed_ms":5001}"#
        );
    }
}
