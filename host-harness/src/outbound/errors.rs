//! What the component is told when a request gets no response: a `wasi:http` error code,
//! and the host's own words (a [`Detail`]) where the code says too little.

use super::Detail;
use super::connector::ConnectError;
use super::pool::ExchangeError;
use super::tls;
use crate::guard::Denial;
use callroute_plugin::error::ErrorKind;
use wasmtime_wasi_http::Error;

/// Why a request got no response, with the host's explanation where the code says too little.
pub(crate) enum Failure {
    Denied(Denial),
    /// The endpoint's circuit breaker is open.
    BreakerOpen(super::breaker::Open),
    Tls(tls::TlsFailure),
    Other(Error),
}

impl Failure {
    /// The `wasi:http` error code the component gets.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Denied(Denial::PrivateAddress { .. } | Denial::OwnListener { .. }) => {
                Error::DestinationIpProhibited
            }
            Failure::Denied(_) => Error::HttpRequestDenied,
            // The component reads it as "held back": no retry at this CRM, the secondary and
            // the fallback at once.
            Failure::BreakerOpen(_) => Error::ConnectionLimitReached,
            Failure::Tls(tls) if tls.certificate => Error::TlsCertificateError,
            Failure::Tls(_) => Error::TlsProtocolError,
            Failure::Other(e) => e,
        }
    }

    /// What the attempt's record says of it: the host's reason, or the error code.
    pub(crate) fn describe(&self) -> String {
        match (self.detail(), self) {
            (Some(detail), _) => detail.reason,
            (None, Failure::Other(code)) => format!("{code:?}"),
            (None, _) => "refused".into(),
        }
    }

    /// What the host can add to the component's error.
    pub(crate) fn detail(&self) -> Option<Detail> {
        match self {
            Failure::Denied(denial) => Some(Detail {
                kind: ErrorKind::Denied,
                reason: denial.to_string(),
            }),
            Failure::BreakerOpen(open) => Some(Detail {
                kind: ErrorKind::Transport,
                reason: open.to_string(),
            }),
            Failure::Tls(tls) => Some(Detail {
                kind: ErrorKind::Transport,
                reason: tls.reason.clone(),
            }),
            Failure::Other(_) => None,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// What the component is told when an exchange failed.
pub(crate) fn exchange_failure(error: ExchangeError) -> Failure {
    match error {
        ExchangeError::Connect(e) => match e {
            ConnectError::Denied(denial) => Failure::Denied(denial),
            ConnectError::Dns => Error::DnsError {
                rcode: Some("lookup failed".into()),
                info_code: None,
            }
            .into(),
            ConnectError::Refused | ConnectError::Io(_) => Error::ConnectionRefused.into(),
            ConnectError::Tls(tls) => Failure::Tls(tls),
            ConnectError::Http(e) => classify_hyper(&e).into(),
        },
        ExchangeError::Http(e) => classify_hyper(&e).into(),
        ExchangeError::Unasked => Error::HttpProtocolError.into(),
        ExchangeError::Timeout => Error::HttpResponseTimeout.into(),
    }
}

/// Classify a hyper error for the component: an oversized or unparsable answer is the CRM's
/// fault (the component reports `bad-response`), a cut-off one a transport failure.
pub(crate) fn classify_hyper(error: &hyper::Error) -> Error {
    if error.is_parse_too_large() {
        Error::HttpResponseHeaderSectionSize(None)
    } else if error.is_parse() || error.is_parse_status() {
        Error::HttpProtocolError
    } else if error.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if error.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::ConnectionTerminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::AddressClass;

    #[test]
    fn a_refusal_is_a_code_the_component_reads_as_denied_and_the_host_explains() {
        let private = Failure::Denied(Denial::PrivateAddress {
            host: "crm.internal".into(),
            addr: "10.0.0.5".parse().unwrap(),
            class: AddressClass::Private,
        });
        let detail = private.detail().unwrap();
        assert_eq!(detail.kind, ErrorKind::Denied);
        assert!(detail.reason.contains("10.0.0.5"), "{}", detail.reason);
        assert!(matches!(
            private.into_error(),
            Error::DestinationIpProhibited
        ));
        let elsewhere = Failure::Denied(Denial::NoScheme);
        assert!(matches!(elsewhere.into_error(), Error::HttpRequestDenied));
    }

    #[test]
    fn failed_exchanges_map_to_wasi_http_codes() {
        let code = |error| exchange_failure(error).into_error();
        assert!(matches!(
            code(ExchangeError::Connect(ConnectError::Dns)),
            Error::DnsError { .. }
        ));
        assert!(matches!(
            code(ExchangeError::Connect(ConnectError::Refused)),
            Error::ConnectionRefused
        ));
        assert!(matches!(
            code(ExchangeError::Timeout),
            Error::HttpResponseTimeout
        ));
        // An answer to a request not asked (a stray response) is the CRM's protocol error.
        assert!(matches!(
            code(ExchangeError::Unasked),
            Error::HttpProtocolError
        ));
        assert!(exchange_failure(ExchangeError::Timeout).detail().is_none());
    }
}
