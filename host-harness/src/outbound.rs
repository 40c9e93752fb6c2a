//! The component's outbound HTTP, behind `wasmtime_wasi_http`'s [`WasiHttpHooks`].
//!
//! Every request a component makes goes through [`Outbound::send_request`]: the call's
//! [`OutboundGuard`] checks the target, then the router's [`OutboundClient`] sends it over a
//! keep-alive connection to that CRM, reused across calls (a new TCP and TLS handshake per call
//! is most of a webhook's cost), or, for a dry run, answers it itself ([`CannedAnswer`]). Its connector resolves host names (with a small cache) and
//! checks each address against the host's policy right before connecting to it, so DNS cannot
//! swap in a forbidden address; TLS always verifies certificates. The call's deadline bounds
//! connecting, the first byte and every body byte, whatever request options the component
//! asked for. Response headers and bodies are capped.

use crate::guard::{AddressPolicy, Denial, OutboundGuard, normalized_host};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The most response bytes the host passes to a component, whatever the component reads.
pub const MAX_RESPONSE_BODY: u64 = 1024 * 1024;
/// The most response headers accepted.
pub const MAX_RESPONSE_HEADERS: usize = 100;
/// The largest response head (status line and headers), in bytes.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How far the host's bound on the response body trails the call's deadline.
const BODY_DEADLINE_SLACK: std::time::Duration = std::time::Duration::from_millis(100);

/// Where a denial's reason is left for the harness, which puts it in the `denied` error (the
/// component only learns "denied").
pub type DenialSlot = Arc<Mutex<Option<Denial>>>;

/// The outbound side of one call's sandbox.
pub struct Outbound {
    guard: Arc<OutboundGuard>,
    deadline: Instant,
    client: OutboundClient,
    denial: DenialSlot,
}

impl Outbound {
    /// Outbound HTTP for one call, allowed by `guard`, bounded by `deadline`, sent by `client`.
    pub fn new(
        guard: Arc<OutboundGuard>,
        deadline: Instant,
        client: OutboundClient,
        denial: DenialSlot,
    ) -> Self {
        Outbound {
            guard,
            deadline,
            client,
            denial,
        }
    }
}

/// How long an idle connection to a CRM is kept for the next call.
pub const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a resolved address is reused.
pub const DNS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A router's keep-alive HTTP client: connections to each CRM are reused across calls.
#[derive(Clone)]
pub struct OutboundClient {
    sender: Sender,
}

#[derive(Clone)]
enum Sender {
    Network(hyper_util::client::legacy::Client<GuardedConnector, WasiBody>),
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
    pub fn canned(answer: CannedAnswer, allow_private_network: bool) -> Self {
        OutboundClient {
            sender: Sender::Canned(
                Arc::new(answer),
                AddressPolicy {
                    allow_private_network,
                },
            ),
        }
    }

    /// A client whose connections obey `allow_private_network` and trust `tls`'s roots.
    pub fn new(allow_private_network: bool, tls: Arc<rustls::ClientConfig>) -> Self {
        let connector = GuardedConnector {
            policy: AddressPolicy {
                allow_private_network,
            },
            tls: tokio_rustls::TlsConnector::from(tls),
            dns: Arc::default(),
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .http1_max_headers(MAX_RESPONSE_HEADERS)
                .http1_max_buf_size(MAX_RESPONSE_HEAD)
                .build(connector);
        OutboundClient {
            sender: Sender::Network(client),
        }
    }
}

/// Why a connection could not be made; carried through the client's error to the call.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Denied(Denial),
    #[error("cannot resolve the host")]
    Dns,
    #[error("no address to connect to")]
    NoAddress,
    #[error("connection refused")]
    Refused,
    #[error("connect failed: {0}")]
    Io(std::io::Error),
    #[error("TLS failed: {0}")]
    Tls(std::io::Error),
    #[error("the URI has no host")]
    NoHost,
}

/// Resolves (with a cache), checks each address against the host's policy, connects, and
/// adds TLS for `https`.
#[derive(Clone)]
struct GuardedConnector {
    policy: AddressPolicy,
    tls: tokio_rustls::TlsConnector,
    dns: Arc<Mutex<DnsCache>>,
}

/// Resolved addresses by `(host, port)`, with when they were resolved.
type DnsCache = HashMap<(String, u16), (Vec<SocketAddr>, std::time::Instant)>;

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tls = uri.scheme_str() == Some("https");
            let host = normalized_host(uri.host().ok_or(ConnectError::NoHost)?);
            let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let addrs = this.resolve(&host, port).await?;
            let mut allowed = Vec::new();
            let mut refused = None;
            for addr in addrs {
                match this.policy.check_addr(&host, addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(denial) => refused = Some(denial),
                }
            }
            if allowed.is_empty() {
                return Err(refused
                    .map(ConnectError::Denied)
                    .unwrap_or(ConnectError::NoAddress));
            }
            let tcp = connect(&allowed).await?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if tls {
                let name = match host.parse::<IpAddr>() {
                    Ok(ip) => rustls::pki_types::ServerName::from(ip),
                    Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|_| ConnectError::Dns)?,
                };
                Box::new(
                    this.tls
                        .connect(name, tcp)
                        .await
                        .map_err(ConnectError::Tls)?,
                )
            } else {
                Box::new(tcp)
            };
            Ok(Conn(hyper_util::rt::TokioIo::new(io)))
        })
    }
}

impl GuardedConnector {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let key = (host.to_owned(), port);
        if let Some((addrs, at)) = self.dns.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && at.elapsed() < DNS_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| ConnectError::Dns)?
            .collect();
        if addrs.is_empty() {
            return Err(ConnectError::Dns);
        }
        let mut cache = self.dns.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key, (addrs.clone(), std::time::Instant::now()));
        Ok(addrs)
    }
}

/// A connection the client can pool.
struct Conn(hyper_util::rt::TokioIo<Box<dyn Io>>);

impl hyper_util::client::legacy::connect::Connection for Conn {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The TLS client configuration: the webpki (Mozilla) roots plus `extra_roots` (a private
/// CA, `--ca-cert`); certificate verification is always on.
pub fn tls_config(extra_roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let (added, ignored) = roots.add_parsable_certificates(extra_roots.iter().cloned());
    if ignored > 0 {
        tracing::warn!(
            added,
            ignored,
            "some extra CA certificates could not be used"
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Read PEM CA certificates to trust in addition to the webpki roots.
pub fn load_ca_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
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
        let denial = self.denial.clone();
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
            let result = send(&guard, &client, request, deadline, body_deadline).await;
            if let Err(Failure::Denied(reason)) = &result {
                tracing::debug!(%reason, "outbound request denied");
                *denial.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
            }
            result.map_err(Failure::into_error)
        })
    }
}

enum Failure {
    Denied(Denial),
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Denied(Denial::PrivateAddress { .. }) => Error::DestinationIpProhibited,
            Failure::Denied(_) => Error::HttpRequestDenied,
            Failure::Other(e) => e,
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
    request: http::Request<WasiBody>,
    deadline: Instant,
    body_deadline: Instant,
) -> Result<(http::Response<WasiBody>, IoFuture), Failure> {
    let endpoint = guard.check_target(request.uri()).map_err(Failure::Denied)?;
    let response = match &client.sender {
        Sender::Network(client) => exchange(client, request, deadline, body_deadline).await?,
        Sender::Canned(answer, policy) => {
            if let Ok(ip) = endpoint.host.parse() {
                policy
                    .check_addr(&endpoint.host, ip)
                    .map_err(Failure::Denied)?;
            }
            let body = http_body_util::Full::new(answer.body.clone())
                .map_err(|never| match never {})
                .boxed_unsync();
            let mut response = http::Response::new(body);
            *response.status_mut() = http::StatusCode::from_u16(answer.status)
                .map_err(|_| Error::InternalError(Some("invalid canned status".into())))?;
            response
        }
    };
    // The client drives its connections itself.
    let io: IoFuture = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// One request over the pooled client, its response body capped and bounded by the deadline.
async fn exchange(
    client: &hyper_util::client::legacy::Client<GuardedConnector, WasiBody>,
    request: http::Request<WasiBody>,
    deadline: Instant,
    body_deadline: Instant,
) -> Result<http::Response<WasiBody>, Failure> {
    let response = tokio::time::timeout_at(deadline, client.request(request))
        .await
        .map_err(|_| Error::HttpResponseTimeout)?
        .map_err(client_error)?;
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > MAX_RESPONSE_BODY
    {
        return Err(Error::HttpResponseBodySize(Some(length)).into());
    }
    let response = response.map(|body| {
        CappedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(body_deadline)),
            remaining: MAX_RESPONSE_BODY,
        }
        .boxed_unsync()
    });
    Ok(response)
}

/// What went wrong, from the client's error: a denial, a connect failure, or the exchange.
fn client_error(error: hyper_util::client::legacy::Error) -> Failure {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectError>() {
            return match connect {
                ConnectError::Denied(denial) => Failure::Denied(denial.clone()),
                ConnectError::Dns | ConnectError::NoHost => Error::DnsError {
                    rcode: Some("lookup failed".into()),
                    info_code: None,
                }
                .into(),
                ConnectError::NoAddress => Error::DestinationNotFound.into(),
                ConnectError::Refused => Error::ConnectionRefused.into(),
                ConnectError::Io(_) => Error::ConnectionRefused.into(),
                ConnectError::Tls(_) => Error::TlsProtocolError.into(),
            };
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return classify_hyper(hyper).into();
        }
        source = cause.source();
    }
    if error.is_connect() {
        Error::ConnectionRefused.into()
    } else {
        Error::ConnectionTerminated.into()
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

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Connect to the first address that accepts, in resolver order.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        Some(e) => ConnectError::Io(e),
        None => ConnectError::NoAddress,
    })
}

/// A response body bounded by the call's deadline and [`MAX_RESPONSE_BODY`].
struct CappedBody {
    inner: Incoming,
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
