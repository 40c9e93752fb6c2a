//! Opening a connection to a CRM: DNS (with a small cache), the host's address policy on each
//! resolved address right before connecting to it (so DNS cannot swap in a forbidden address
//! after the check), TCP, TLS, and the HTTP/1.1 handshake.

use super::tls::{TlsFailure, tls_failure};
use crate::guard::{AddressPolicy, Denial};
pub use callroute_plugin::scheme::Origin;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a resolved address is reused.
pub const DNS_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// The most response headers accepted.
pub const MAX_RESPONSE_HEADERS: usize = 100;
/// The largest response head (status line and headers), in bytes.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address policy refused every address.
    #[error("{0}")]
    Denied(Denial),
    /// The host name did not resolve.
    #[error("cannot resolve the host")]
    Dns,
    /// Every address refused the connection.
    #[error("connection refused")]
    Refused,
    /// Connecting failed otherwise.
    #[error("connect failed: {0}")]
    Io(std::io::Error),
    /// The TLS handshake failed.
    #[error("{}", .0.reason)]
    Tls(TlsFailure),
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Http(hyper::Error),
}

/// One HTTP/1.1 connection to a CRM: hyper's request side, and how many bytes the CRM has sent
/// on it (counted above TLS), which tells an answer to the request just sent from one that was
/// already waiting (see `pool`).
pub struct Conn {
    /// Sends requests; the connection itself is driven by its own task.
    pub sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    read: Arc<AtomicU64>,
}

impl Conn {
    /// Bytes read from the socket so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Acquire)
    }
}

/// Resolves (with a cache), checks each address against the host's policy, connects, adds TLS
/// for `https`, and starts HTTP/1.1. Shared by every call of a router; clones share the cache.
#[derive(Clone)]
pub struct Connector {
    policy: AddressPolicy,
    tls: tokio_rustls::TlsConnector,
    dns: Arc<Mutex<DnsCache>>,
}

/// Resolved addresses by `(host, port)`, with when they were resolved.
type DnsCache = HashMap<(String, u16), (Vec<SocketAddr>, std::time::Instant)>;

impl Connector {
    /// A connector under `policy`, trusting `tls`'s roots.
    pub fn new(policy: AddressPolicy, tls: Arc<rustls::ClientConfig>) -> Self {
        Connector {
            policy,
            tls: tokio_rustls::TlsConnector::from(tls),
            dns: Arc::default(),
        }
    }

    /// Open a connection to `origin`. (The caller bounds it by the call's deadline.)
    pub async fn connect(&self, origin: &Origin) -> Result<Conn, ConnectError> {
        let addrs = self.resolve(&origin.host, origin.port).await?;
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in addrs {
            match self.policy.check_socket(&origin.host, addr) {
                Ok(()) => allowed.push(addr),
                Err(denial) => refused = Some(denial),
            }
        }
        if allowed.is_empty() {
            return Err(refused
                .map(ConnectError::Denied)
                .unwrap_or(ConnectError::Dns));
        }
        let tcp = connect(&allowed).await?;
        let _ = tcp.set_nodelay(true);
        let read = Arc::new(AtomicU64::new(0));
        let io: Box<dyn Io> = if origin.tls {
            let name = match origin.host.parse::<IpAddr>() {
                Ok(ip) => rustls::pki_types::ServerName::from(ip),
                Err(_) => rustls::pki_types::ServerName::try_from(origin.host.clone())
                    .map_err(|_| ConnectError::Dns)?,
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Tls(tls_failure(&e, &origin.host)))?;
            // Counted above TLS: what the CRM sent, not alerts or session tickets.
            Box::new(Counted::new(tls, read.clone()))
        } else {
            Box::new(Counted::new(tcp, read.clone()))
        };
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_headers(MAX_RESPONSE_HEADERS)
            .max_buf_size(MAX_RESPONSE_HEAD)
            .handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(ConnectError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a CRM connection ended with an error");
            }
        });
        Ok(Conn { sender, read })
    }

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
        None => ConnectError::Dns,
    })
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A socket that counts the bytes it delivers.
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T> Counted<T> {
    fn new(inner: T, read: Arc<AtomicU64>) -> Self {
        Counted { inner, read }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.read.fetch_add(read, Ordering::Release);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::tls_config;
    use tokio::io::AsyncWriteExt;

    fn connector(allow_private_network: bool) -> Connector {
        Connector::new(AddressPolicy::new(allow_private_network), tls_config(&[]))
    }

    fn origin(addr: SocketAddr) -> Origin {
        Origin {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    #[tokio::test]
    async fn a_refused_address_is_never_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = connector(false).connect(&origin(addr)).await;
        assert!(
            matches!(
                refused,
                Err(ConnectError::Denied(Denial::PrivateAddress { .. }))
            ),
            "{:?}",
            refused.err()
        );
        // Nothing reached the listener.
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err(), "the guard let a connection through");
    }

    #[tokio::test]
    async fn bytes_read_counts_what_the_crm_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n101";
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            socket.write_all(ANSWER).await.unwrap();
            socket
        });
        let mut conn = connector(true).connect(&origin(addr)).await.unwrap();
        assert_eq!(conn.bytes_read(), 0);
        let request = http::Request::get("/route")
            .header(http::header::HOST, addr.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = conn.sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"101");
        assert_eq!(conn.bytes_read(), ANSWER.len() as u64);
        drop(server.await.unwrap());
    }
}
