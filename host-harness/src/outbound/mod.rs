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

mod body;
pub mod breaker;
pub mod connector;
mod errors;
pub mod pool;
pub mod tls;

use crate::exchange::{AttemptHandle, Recorder};
use crate::guard::{AddressPolicy, OutboundGuard};
use body::{capped, read_request_body};
use breaker::{Breakers, Outcome};
use bytes::Bytes;
use callroute_plugin::error::ErrorKind;
use connector::{ConnectError, Connector};
use errors::{Failure, exchange_failure};
use http_body_util::{BodyExt, Full};
use pool::{ExchangeError, PoolKey, Pools};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub use body::{MAX_REQUEST_BODY, MAX_RESPONSE_BODY};
pub use connector::{MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS};
pub use pool::POOL_IDLE_TIMEOUT;
pub use tls::{load_ca_certs, tls_config};

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
    scheme: OutboundScheme,
    deadline: Instant,
    client: OutboundClient,
    detail: DetailSlot,
    /// Where the call's attempts are recorded, when they are.
    recorder: Option<Recorder>,
}

/// What the outbound side keeps per scheme, across its calls.
#[derive(Clone)]
pub struct OutboundScheme {
    /// The scheme's identity: connections are pooled per scheme.
    pub id: u64,
    /// Its CRM endpoints' circuit breakers.
    pub breakers: Arc<Breakers>,
}

impl Outbound {
    /// Outbound HTTP for one call of `scheme`, allowed by `guard`, bounded by `deadline`,
    /// sent by `client`.
    pub fn new(
        guard: Arc<OutboundGuard>,
        scheme: OutboundScheme,
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
            recorder: None,
        }
    }

    /// Record each attempt of the call with `recorder` ([`crate::exchange`]).
    pub fn recording(mut self, recorder: Option<Recorder>) -> Self {
        self.recorder = recorder;
        self
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
        let scheme = self.scheme.clone();
        let recorder = self.recorder.clone();
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
            let mut attempt = None;
            let result = send(
                &guard,
                &client,
                &scheme,
                request,
                (deadline, body_deadline),
                (recorder.as_ref(), &mut attempt),
            )
            .await;
            if let (Err(failure), Some(attempt)) = (&result, &attempt) {
                attempt.failed(failure.describe());
            }
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

/// Send one request of the component's through the door: `deadlines` bound the answer's
/// head and its body; with a recorder, the attempt it begins is left in `record.1`.
async fn send(
    guard: &OutboundGuard,
    client: &OutboundClient,
    scheme: &OutboundScheme,
    request: http::Request<WasiBody>,
    (deadline, body_deadline): (Instant, Instant),
    record: (Option<&Recorder>, &mut Option<AttemptHandle>),
) -> Result<http::Response<WasiBody>, Failure> {
    let endpoint = guard.check_target(request.uri()).map_err(Failure::Denied)?;
    let origin = endpoint.origin.clone();
    let (recorder, attempt) = record;
    // Where it goes, never its query (which often holds a key); only when recording.
    let url = recorder.map(|_| format!("{origin}{}", request.uri().path()));
    match &client.sender {
        Sender::Network(connector, pools) => {
            let (mut parts, body) = request.into_parts();
            let body = read_request_body(body, deadline).await?;
            *attempt = recorder
                .zip(url)
                .map(|(r, url)| r.begin(parts.method.as_str(), url, &body));
            // Taken once the component's body is in: only the CRM's part counts.
            let ticket = scheme
                .breakers
                .admit(&origin, deadline)
                .map_err(Failure::BreakerOpen)?;
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
            let key = PoolKey {
                scheme: scheme.id,
                origin,
            };
            let exchanged = pool::exchange(pools, connector, key, request, deadline).await;
            // The CRM's part in it, for its breaker: it answered (5xx is a failure), or it
            // could not be reached, did not answer in time, or broke the protocol. A refusal
            // by the address policy is not the CRM's doing.
            match &exchanged {
                Ok(response) if response.status().is_server_error() => {
                    ticket.record(Outcome::Failure)
                }
                Ok(_) => ticket.record(Outcome::Success),
                Err(ExchangeError::Connect(ConnectError::Denied(_))) => drop(ticket),
                Err(_) => ticket.record(Outcome::Failure),
            }
            let response = exchanged.map_err(exchange_failure)?;
            if let Some(attempt) = attempt.as_ref() {
                attempt.answered(response.status().as_u16());
            }
            capped(response, body_deadline, attempt.take())
        }
        Sender::Canned(answer, policy) => {
            if let Ok(ip) = origin.host.parse() {
                policy
                    .check_socket(&origin.host, std::net::SocketAddr::new(ip, origin.port))
                    .map_err(Failure::Denied)?;
            }
            if let (Some(recorder), Some(url)) = (recorder, url) {
                let (parts, body) = request.into_parts();
                let body = read_request_body(body, deadline).await?;
                let canned = recorder.begin(parts.method.as_str(), url, &body);
                canned.answered(answer.status);
                // Canned answers are read whole: recorded here rather than as they stream.
                canned.body(&answer.body);
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
