//! The component's outbound HTTP, behind `wasmtime_wasi_http`'s [`WasiHttpHooks`]: the
//! sandbox's only door, and what the component is told when it stays shut.
//!
//! Every request a component makes goes through [`Outbound::send_request`]:
//!
//! 1. the call's [`OutboundGuard`] checks the target: the scheme's hosts and ports only;
//! 2. the request body is read whole from the component (at most [`MAX_REQUEST_BODY`], within
//!    the deadline), so that the request can go again on a fresh connection;
//! 3. the router's [`OutboundClient`] sends it over a keep-alive connection of the scheme's own
//!    pool ([`pool`]), opened by the [`connector`] (DNS, the address policy on each resolved
//!    address, TCP, [`tls`]); or, for a dry run, answers it itself ([`CannedAnswer`]).
//!
//! The call's deadline bounds connecting, the first byte and every body byte, whatever request
//! options the component asked for; response heads and bodies are capped. Every request
//! carries [`HOP_HEADER`], which `callroute serve` refuses, so a scheme cannot make a server
//! call itself in a loop.
//!
//! The component only learns a `wasi:http` error code; the host's own words for a refusal or a
//! failed TLS handshake are left in the call's [`DetailSlot`], and the harness adds them to the
//! call's error.

pub mod connector;
pub mod pool;
pub mod tls;

use crate::guard::{AddressPolicy, Denial, OutboundGuard};
use bytes::Bytes;
use callroute_plugin::error::ErrorKind;
use connector::{ConnectError, Connector};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame};
use pool::{ExchangeError, PoolKey, PooledBody, Pools};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub use connector::{MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS};
pub use pool::POOL_IDLE_TIMEOUT;
pub use tls::{load_ca_certs, tls_config};

/// The most response bytes the host passes to a component, whatever the component reads.
pub const MAX_RESPONSE_BODY: u64 = 1024 * 1024;
/// The largest request body a component may send (a webhook's parameters).
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// The header every webhook carries; `callroute serve` refuses requests that carry it.
pub const HOP_HEADER: &str = "x-callroute-hop";

/// How far the host's bound on the response body trails the call's deadline.
const BODY_DEADLINE_SLACK: std::time::Duration = std::time::Duration::from_millis(100);

/// The host's explanation of an outbound failure, which the component only sees as an error
/// code: why the guard refused, why TLS failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// The kind of error the component reports for it.
    pub kind: ErrorKind,
    /// The explanation, safe to show (no path, query or header).
    pub reason: String,
}

/// Where the last exchange's [`Detail`] is left for the harness, which adds it to an error of
/// the same kind.
pub type DetailSlot = Arc<Mutex<Option<Detail>>>;

/// The outbound side of one call's sandbox.
pub struct Outbound {
    guard: Arc<OutboundGuard>,
    scheme: u64,
    deadline: Instant,
    client: OutboundClient,
    detail: DetailSlot,
}

impl Outbound {
    /// Outbound HTTP for one call of scheme `scheme` (its identity: connections are pooled
    /// per scheme), allowed by `guard`, bounded by `deadline`, sent by `client`.
    pub fn new(
        guard: Arc<OutboundGuard>,
        scheme: u64,
        deadline: Instant,
        client: OutboundClient,
        detail: DetailSlot,
    ) -> Self {
        Outbound {
            guard,
            scheme,
            deadline,
            client,
            detail,
        }
    }
}

/// A router's HTTP client: connections to each CRM are kept and reused across the calls of a
/// scheme (see [`pool`]).
#[derive(Clone)]
pub struct OutboundClient {
    sender: Sender,
}

#[derive(Clone)]
enum Sender {
    Network(Connector, Arc<Pools>),
    Canned(Arc<CannedAnswer>, AddressPolicy),
}

/// An answer the host gives every webhook request itself, once the guard has allowed it,
/// instead of calling the CRM: to see what a scheme makes of a sample answer
/// (`callroute route --crm-answer`), and to measure the sandbox alone (`cargo xtask bench`).
/// Host names are not resolved; an address written in the URL is checked as on connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl OutboundClient {
    /// A client that answers every request with `answer` (see [`CannedAnswer`]).
    pub fn canned(answer: CannedAnswer, policy: AddressPolicy) -> Self {
        OutboundClient {
            sender: Sender::Canned(Arc::new(answer), policy),
        }
    }

    /// A client whose connections obey `policy` and trust `tls`'s roots.
    pub fn new(policy: AddressPolicy, tls: Arc<rustls::ClientConfig>) -> Self {
        OutboundClient {
            sender: Sender::Network(Connector::new(policy, tls), Arc::default()),
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let guard = self.guard.clone();
        let client = self.client.clone();
        let detail = self.detail.clone();
        let scheme = self.scheme;
        // The component's own timeouts can only shorten the call's deadline.
        let deadline = options
            .and_then(|o| {
                o.connect_timeout
                    .into_iter()
                    .chain(o.first_byte_timeout)
                    .min()
            })
            .map(|d| self.deadline.min(Instant::now() + d))
            .unwrap_or(self.deadline);
        // The component reads the body against its own timer, started a moment after ours;
        // the host's bound trails it slightly so the component reports its own timeout.
        let body_deadline = self.deadline + BODY_DEADLINE_SLACK;
        Box::new(async move {
            let result = send(&guard, &client, scheme, request, deadline, body_deadline).await;
            let explained = result.as_ref().err().and_then(Failure::detail);
            if let Some(explained) = &explained {
                tracing::debug!(reason = %explained.reason, "outbound request failed");
            }
            *detail.lock().unwrap_or_else(|e| e.into_inner()) = explained;
            let response = result.map_err(Failure::into_error)?;
            // The client drives its connections itself.
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// Why a request got no response, with the host's explanation where the code says too little.
enum Failure {
    Denied(Denial),
    Tls(tls::TlsFailure),
    Other(Error),
}

impl Failure {
    /// The `wasi:http` error code the component gets.
    fn into_error(self) -> Error {
        match self {
            Failure::Denied(Denial::PrivateAddress { .. } | Denial::OwnListener { .. }) => {
                Error::DestinationIpProhibited
            }
            Failure::Denied(_) => Error::HttpRequestDenied,
            Failure::Tls(tls) if tls.certificate => Error::TlsCertificateError,
            Failure::Tls(_) => Error::TlsProtocolError,
            Failure::Other(e) => e,
        }
    }

    /// What the host can add to the component's error.
    fn detail(&self) -> Option<Detail> {
        match self {
            Failure::Denied(denial) => Some(Detail {
                kind: ErrorKind::Denied,
                reason: denial.to_string(),
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

async fn send(
    guard: &OutboundGuard,
    client: &OutboundClient,
    scheme: u64,
    request: http::Request<WasiBody>,
    deadline: Instant,
    body_deadline: Instant,
) -> Result<http::Response<WasiBody>, Failure> {
    let endpoint = guard.check_target(request.uri()).map_err(Failure::Denied)?;
    let origin = endpoint.origin.clone();
    match &client.sender {
        Sender::Network(connector, pools) => {
            let (mut parts, body) = request.into_parts();
            let body = read_request_body(body, deadline).await?;
            // The request line names the path and query only (origin form): a URI with scheme
            // and authority is for proxies, and hyper sends the URI as it is given.
            parts.uri = http::Uri::builder()
                .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
                .build()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            parts
                .headers
                .insert(HOP_HEADER, http::HeaderValue::from_static("1"));
            let request = http::Request::from_parts(parts, Full::new(body));
            let key = PoolKey { scheme, origin };
            let response = pool::exchange(pools, connector, key, request, deadline)
                .await
                .map_err(exchange_failure)?;
            capped(response, body_deadline)
        }
        Sender::Canned(answer, policy) => {
            if let Ok(ip) = origin.host.parse() {
                policy
                    .check_socket(&origin.host, std::net::SocketAddr::new(ip, origin.port))
                    .map_err(Failure::Denied)?;
            }
            let body = Full::new(answer.body.clone())
                .map_err(|never| match never {})
                .boxed_unsync();
            let mut response = http::Response::new(body);
            *response.status_mut() = http::StatusCode::from_u16(answer.status)
                .map_err(|_| Error::InternalError(Some("invalid canned status".into())))?;
            Ok(response)
        }
    }
}

/// The component's request body, whole.
async fn read_request_body(body: WasiBody, deadline: Instant) -> Result<Bytes, Failure> {
    let read = tokio::time::timeout_at(deadline, Limited::new(body, MAX_REQUEST_BODY).collect())
        .await
        .map_err(|_| Error::ConnectionWriteTimeout)?;
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(_) => Error::HttpRequestBodySize(None),
        }
        .into()),
    }
}

/// The response with its body capped at [`MAX_RESPONSE_BODY`] and bounded by the deadline.
fn capped(
    response: http::Response<PooledBody>,
    body_deadline: Instant,
) -> Result<http::Response<WasiBody>, Failure> {
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > MAX_RESPONSE_BODY
    {
        return Err(Error::HttpResponseBodySize(Some(length)).into());
    }
    Ok(response.map(|body| {
        CappedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(body_deadline)),
            remaining: MAX_RESPONSE_BODY,
        }
        .boxed_unsync()
    }))
}

/// What the component is told when an exchange failed.
fn exchange_failure(error: ExchangeError) -> Failure {
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
fn classify_hyper(error: &hyper::Error) -> Error {
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

/// A response body bounded by the call's deadline and [`MAX_RESPONSE_BODY`].
struct CappedBody {
    inner: PooledBody,
    deadline: Pin<Box<Sleep>>,
    remaining: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(classify_hyper(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

    #[tokio::test]
    async fn a_request_body_over_the_limit_is_refused_before_connecting() {
        let body = |len: usize| {
            Full::new(Bytes::from(vec![b'x'; len]))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let read = read_request_body(body(MAX_REQUEST_BODY), deadline).await;
        assert_eq!(read.ok().map(|b| b.len()), Some(MAX_REQUEST_BODY));
        let over = read_request_body(body(MAX_REQUEST_BODY + 1), deadline).await;
        assert!(matches!(
            over.err().map(Failure::into_error),
            Some(Error::HttpRequestBodySize(_))
        ));
    }
}
