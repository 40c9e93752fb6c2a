//! The component's outbound HTTP, behind `wasmtime_wasi_http`'s [`WasiHttpHooks`].
//!
//! Every request a component makes goes through [`Outbound::send_request`]: the
//! [`OutboundGuard`] checks the target, the host name is resolved here and each address is
//! checked right before it is connected to, TLS always verifies certificates, and the call's
//! deadline bounds resolving, connecting, the first byte and every body byte, whatever
//! request options the component asked for. Response headers and bodies are capped.

use crate::guard::{Denial, OutboundGuard};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use rustls::pki_types::CertificateDer;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
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
    tls: Arc<rustls::ClientConfig>,
    denial: DenialSlot,
}

impl Outbound {
    /// Outbound HTTP for one call, allowed by `guard`, bounded by `deadline`.
    pub fn new(
        guard: OutboundGuard,
        deadline: Instant,
        tls: Arc<rustls::ClientConfig>,
        denial: DenialSlot,
    ) -> Self {
        Outbound {
            guard: Arc::new(guard),
            deadline,
            tls,
            denial,
        }
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
        let tls = self.tls.clone();
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
            let result = send(&guard, &tls, request, deadline, body_deadline).await;
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
    tls: &Arc<rustls::ClientConfig>,
    mut request: http::Request<WasiBody>,
    deadline: Instant,
    body_deadline: Instant,
) -> Result<(http::Response<WasiBody>, IoFuture), Failure> {
    let endpoint = guard
        .check_target(request.uri())
        .map_err(Failure::Denied)?
        .clone();

    let addrs = tokio::time::timeout_at(deadline, resolve(&endpoint.host, endpoint.port))
        .await
        .map_err(|_| Error::DnsTimeout)??;
    let mut allowed = Vec::new();
    let mut refused = None;
    for addr in addrs {
        match guard.check_addr(&endpoint.host, addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(denial) => refused = Some(denial),
        }
    }
    if allowed.is_empty() {
        return Err(refused
            .map(Failure::Denied)
            .unwrap_or(Failure::Other(Error::DestinationNotFound)));
    }

    let tcp = tokio::time::timeout_at(deadline, connect(&allowed))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let _ = tcp.set_nodelay(true);

    let io: Box<dyn Io> = if endpoint.tls {
        let name =
            match endpoint.host.parse::<IpAddr>() {
                Ok(ip) => rustls::pki_types::ServerName::from(ip),
                Err(_) => rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(
                    |_| Error::DnsError {
                        rcode: Some("invalid dns name".into()),
                        info_code: None,
                    },
                )?,
            };
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        let stream = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };

    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_RESPONSE_HEADERS)
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(io))
        .await
        .map_err(hyper_error)?;

    // On the wire the request line carries only the path and query.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let response = tokio::time::timeout_at(deadline, async {
        let send = sender.send_request(request);
        tokio::pin!(send);
        tokio::select! {
            biased;
            response = &mut send => response.map_err(hyper_error),
            closed = &mut conn => {
                conn_done = true;
                match closed {
                    // The server closed right after answering (HTTP/1.0, `Connection: close`):
                    // the answer is already in, or the exchange failed; `send` says which.
                    Ok(()) => send.await.map_err(hyper_error),
                    Err(e) => Err(hyper_error(e)),
                }
            }
        }
    })
    .await
    .map_err(|_| Error::HttpResponseTimeout)??;

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
    let io: IoFuture = if conn_done {
        Box::new(async { Ok(()) })
    } else {
        Box::new(async move { conn.await.map_err(hyper_error) })
    };
    Ok((response, io))
}

/// Classify a hyper error for the component: an oversized or unparsable answer is the CRM's
/// fault (the component reports `bad-response`), a cut-off one a transport failure.
fn hyper_error(error: hyper::Error) -> Error {
    if error.is_parse_too_large() {
        Error::HttpResponseHeaderSectionSize(None)
    } else if error.is_parse() || error.is_parse_status() {
        Error::HttpProtocolError
    } else if error.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if error.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::from(error)
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Error::DnsError {
            rcode: Some("lookup failed".into()),
            info_code: None,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    Ok(addrs)
}

/// Connect to the first address that accepts, in resolver order.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        Some(e) => Error::Connect(e),
        None => Error::DestinationNotFound,
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
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(hyper_error(e)))),
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
