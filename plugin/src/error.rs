//! Why a call could not be routed: the typed errors every layer shares.
//!
//! [`RouteError`] mirrors the WIT `route-error` variant case for case; [`Failure`] is any
//! failure by kind (the component's, or the host's own), as outputs carry it; [`ErrorKind`]
//! names the kinds as they appear in the CLI's and the server's JSON (`error.kind`), including
//! `trap` and `overloaded`, which only a host can report. Messages never carry a URL query, a
//! header value or a secret.

use std::fmt;

/// The kind of a routing failure, as spelled in `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The scheme is invalid.
    Config,
    /// The host refused the outbound connection.
    Denied,
    /// No complete answer within `response_timeout_secs`.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    Transport,
    /// The CRM answered with a non-2xx status.
    HttpStatus,
    /// The answer was malformed or its destination invalid.
    BadResponse,
    /// A well-formed answer without a destination.
    NoDestination,
    /// The component crashed or broke a sandbox limit (reported by the host only).
    Trap,
    /// The host had no room for the call: every sandbox slot was busy (reported by the host
    /// only, at once, instead of making the caller wait).
    Overloaded,
}

impl ErrorKind {
    /// Every kind, in the order of the WIT variant (then the host's `trap` and `overloaded`).
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Config,
        ErrorKind::Denied,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::HttpStatus,
        ErrorKind::BadResponse,
        ErrorKind::NoDestination,
        ErrorKind::Trap,
        ErrorKind::Overloaded,
    ];

    /// The kebab-case name used in JSON output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Denied => "denied",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::HttpStatus => "http-status",
            ErrorKind::BadResponse => "bad-response",
            ErrorKind::NoDestination => "no-destination",
            ErrorKind::Trap => "trap",
            ErrorKind::Overloaded => "overloaded",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A routing failure as the component reports it (the WIT `route-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The scheme is invalid; the message names the field.
    #[error("{0}")]
    Config(String),
    /// The host refused the outbound connection.
    #[error("{0}")]
    Denied(String),
    /// No complete answer arrived in time.
    #[error("{0}")]
    Timeout(String),
    /// The connection failed.
    #[error("{0}")]
    Transport(String),
    /// The host did not send the request: it holds requests to this CRM back for now (its
    /// circuit breaker is open). Reported as `transport`; never retried at the same CRM, and
    /// the secondary CRM is asked at once.
    #[error("{0}")]
    Unavailable(String),
    /// The CRM answered with a non-2xx status.
    #[error("{message}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// A description safe to log.
        message: String,
    },
    /// The answer was malformed or its destination invalid.
    #[error("{0}")]
    BadResponse(String),
    /// A well-formed answer without a destination.
    #[error("{0}")]
    NoDestination(String),
}

impl RouteError {
    /// The CRM answered `status` (not 2xx): "the CRM answered 503 Service Unavailable".
    pub fn http_status(status: u16) -> RouteError {
        let reason = crate::answer::reason_phrase(status);
        RouteError::HttpStatus {
            status,
            message: format!("the CRM answered {status} {reason}")
                .trim_end()
                .to_owned(),
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RouteError::Config(_) => ErrorKind::Config,
            RouteError::Denied(_) => ErrorKind::Denied,
            RouteError::Timeout(_) => ErrorKind::Timeout,
            RouteError::Transport(_) | RouteError::Unavailable(_) => ErrorKind::Transport,
            RouteError::HttpStatus { .. } => ErrorKind::HttpStatus,
            RouteError::BadResponse(_) => ErrorKind::BadResponse,
            RouteError::NoDestination(_) => ErrorKind::NoDestination,
        }
    }

    /// The HTTP status, for [`RouteError::HttpStatus`] only.
    pub fn status(&self) -> Option<u16> {
        match self {
            RouteError::HttpStatus { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why a call was not routed, by kind: a component's [`RouteError`], or a host-side failure
/// (`trap`, `overloaded`, the host's own timeout). What the outcome JSON and the routing's
/// `fallback_cause` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error kind.
    pub kind: ErrorKind,
    /// A description safe to log.
    pub message: String,
    /// The CRM's status, for [`ErrorKind::HttpStatus`].
    pub status: Option<u16>,
}

impl Failure {
    /// A failure of `kind` without a status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            status: None,
        }
    }
}

impl From<RouteError> for Failure {
    fn from(error: RouteError) -> Self {
        Failure {
            kind: error.kind(),
            status: error.status(),
            message: error.to_string(),
        }
    }
}

impl From<Failure> for RouteError {
    /// The component's error for a failure, keeping its kind and words; the host's own kinds
    /// (`trap`, `overloaded`), which no component reports, become `transport`.
    fn from(failure: Failure) -> Self {
        let m = failure.message;
        match failure.kind {
            ErrorKind::Config => RouteError::Config(m),
            ErrorKind::Denied => RouteError::Denied(m),
            ErrorKind::Timeout => RouteError::Timeout(m),
            ErrorKind::HttpStatus => RouteError::HttpStatus {
                status: failure.status.unwrap_or(0),
                message: m,
            },
            ErrorKind::BadResponse => RouteError::BadResponse(m),
            ErrorKind::NoDestination => RouteError::NoDestination(m),
            ErrorKind::Transport | ErrorKind::Trap | ErrorKind::Overloaded => {
                RouteError::Transport(m)
            }
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Make text taken from outside (a CRM's answer, a header) safe to put in an error message:
/// control characters become spaces and the text is cut to `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_spelled_as_in_the_contract() {
        let names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "config",
                "denied",
                "timeout",
                "transport",
                "http-status",
                "bad-response",
                "no-destination",
                "trap",
                "overloaded"
            ]
        );
    }

    #[test]
    fn each_error_reports_its_kind_and_status() {
        let cases = [
            (RouteError::Config("c".into()), ErrorKind::Config),
            (RouteError::Denied("d".into()), ErrorKind::Denied),
            (RouteError::Timeout("t".into()), ErrorKind::Timeout),
            (RouteError::Transport("t".into()), ErrorKind::Transport),
            (
                RouteError::HttpStatus {
                    status: 502,
                    message: "m".into(),
                },
                ErrorKind::HttpStatus,
            ),
            (RouteError::BadResponse("b".into()), ErrorKind::BadResponse),
            (
                RouteError::NoDestination("n".into()),
                ErrorKind::NoDestination,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind);
            assert_eq!(error.status().is_some(), kind == ErrorKind::HttpStatus);
        }
    }

    #[test]
    fn excerpt_strips_control_characters_and_cuts() {
        assert_eq!(excerpt("a\r\nb\0c", 100), "a  b c");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("абв", 3), "абв");
    }

    #[test]
    fn a_failure_goes_back_to_the_same_error_and_host_kinds_to_transport() {
        for error in [
            RouteError::Config("c".into()),
            RouteError::Denied("d".into()),
            RouteError::Timeout("t".into()),
            RouteError::Transport("t".into()),
            RouteError::HttpStatus {
                status: 502,
                message: "m".into(),
            },
            RouteError::BadResponse("b".into()),
            RouteError::NoDestination("n".into()),
        ] {
            assert_eq!(RouteError::from(Failure::from(error.clone())), error);
        }
        for kind in [ErrorKind::Trap, ErrorKind::Overloaded] {
            assert_eq!(
                RouteError::from(Failure::new(kind, "m")),
                RouteError::Transport("m".into())
            );
        }
    }
}
