//! Keep-alive connections to the CRMs, one pool per scheme, and the rules for reusing them.
//!
//! A new TCP and TLS handshake is most of a webhook's cost, so a connection is kept after an
//! exchange, but only on terms that keep one call's answer from reaching another:
//!
//! - **Never across schemes.** Connections are pooled by scheme and origin ([`PoolKey`]): a
//!   CRM shared by two tenants gets a connection per tenant, so nothing a CRM sends on one
//!   tenant's connection can answer the other's call.
//! - **Only after a complete exchange.** A connection goes back to the pool when its response
//!   body was read to its end, well framed ([`PooledBody`]); one whose body was cut short, cut
//!   off or not read to the end is closed.
//! - **Nothing unread.** A response nobody asked for (a CRM that answers twice) must not become
//!   the answer to the connection's next request. hyper closes a connection on which bytes
//!   arrive while it is idle, or that still holds unread bytes when it goes idle; and should
//!   such a response still be waiting when a request goes out (the socket delivered nothing
//!   after the request was sent, counted above TLS), the connection is closed and the request
//!   goes again on a fresh one. (One that arrives only after the next request went out cannot
//!   be told from its answer: it can only mislead the same scheme's next call, never another
//!   scheme's.)
//! - **A stale connection costs nothing.** A request that fails on a reused connection before
//!   any byte of an answer (the CRM closed it while it was idle) is sent once more on a fresh
//!   connection, within the call's deadline, as browsers and hyper-util do.

use super::connector::{Conn, ConnectError, Connector, Origin};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

/// How long an idle connection to a CRM is kept for the next call.
pub const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The most idle connections a router keeps, all schemes together (each holds a file
/// descriptor, which `serve` budgets for).
pub const MAX_IDLE: usize = 256;
/// How long a kept-alive connection may take to be ready for the next request before another
/// (or a new) one is used instead.
const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// A pool's key: one scheme's connections to one origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The scheme ([`crate::prepare::PreparedScheme`]'s identity).
    pub scheme: u64,
    /// Where the connections go.
    pub origin: Origin,
}

/// The idle connections of a router, by scheme and origin.
#[derive(Default)]
pub struct Pools {
    idle: Mutex<HashMap<PoolKey, Vec<(Conn, Instant)>>>,
    /// Whether the task that closes expired connections runs.
    sweeping: std::sync::atomic::AtomicBool,
}

impl Pools {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<(Conn, Instant)>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection for `key` that is still open, if there is one.
    fn checkout(&self, key: &PoolKey) -> Option<Conn> {
        let mut idle = self.lock();
        let conns = idle.get_mut(key)?;
        let found = std::iter::from_fn(|| conns.pop()).find(usable);
        if conns.is_empty() {
            idle.remove(key);
        }
        found.map(|(conn, _)| conn)
    }

    /// Keep `conn` for the next call of the same scheme to the same origin, if the router
    /// keeps fewer than [`MAX_IDLE`].
    fn checkin(self: &Arc<Self>, key: PoolKey, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        self.start_sweeping();
        let mut idle = self.lock();
        if idle.values().map(Vec::len).sum::<usize>() < MAX_IDLE {
            idle.entry(key).or_default().push((conn, Instant::now()));
        }
    }

    /// Close expired connections every half [`POOL_IDLE_TIMEOUT`], whether or not their
    /// scheme still calls (a scheme may be gone), until the pools are dropped. Once: the first
    /// check-in made on a runtime starts it.
    fn start_sweeping(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pools = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(POOL_IDLE_TIMEOUT / 2);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pools) = pools.upgrade() else { return };
                pools.lock().retain(|_, conns| {
                    conns.retain(usable);
                    !conns.is_empty()
                });
            }
        });
    }
}

/// Whether an idle connection may still be used: open, and idle for less than
/// [`POOL_IDLE_TIMEOUT`].
fn usable((conn, since): &(Conn, Instant)) -> bool {
    since.elapsed() < POOL_IDLE_TIMEOUT && !conn.sender.is_closed()
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// No connection could be made.
    Connect(ConnectError),
    /// The exchange failed on an open connection.
    Http(hyper::Error),
    /// The CRM sent a response before the request, on a fresh connection.
    Unasked,
    /// The deadline passed.
    Timeout,
}

/// Send `request` to `key`'s origin over one of its scheme's connections (or a new one), by
/// `deadline`, by the rules in the [module docs](self).
pub async fn exchange(
    pools: &Arc<Pools>,
    connector: &Connector,
    key: PoolKey,
    request: http::Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<http::Response<PooledBody>, ExchangeError> {
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            pools.checkout(&key)
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => tokio::time::timeout_at(deadline, connector.connect(&key.origin))
                .await
                .map_err(|_| ExchangeError::Timeout)?
                .map_err(ExchangeError::Connect)?,
        };
        // An idle connection may have closed since, or still be finishing its last request;
        // then the next one (or a new one) is used.
        let ready_by = if reused {
            deadline.min(Instant::now() + READY_WAIT)
        } else {
            deadline
        };
        match tokio::time::timeout_at(ready_by, conn.sender.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) if reused => continue,
            Ok(Err(e)) => return Err(ExchangeError::Http(e)),
            Err(_) => return Err(ExchangeError::Timeout),
        }
        let before = conn.bytes_read();
        let sent = tokio::time::timeout_at(deadline, conn.sender.send_request(request.clone()))
            .await
            .map_err(|_| ExchangeError::Timeout)?;
        let answered = conn.bytes_read() != before;
        match sent {
            Ok(_) if !answered => {
                // Not the origin: its host may be a secret (from the environment).
                tracing::warn!(
                    scheme = key.scheme,
                    "the CRM sent a response nobody asked for; its connection is closed"
                );
                if fresh_only {
                    return Err(ExchangeError::Unasked);
                }
                fresh_only = true;
            }
            Ok(response) => {
                return Ok(response.map(|body| PooledBody {
                    inner: body,
                    ended: false,
                    home: Some((pools.clone(), key, conn)),
                }));
            }
            Err(e) if reused && !fresh_only && (!answered || e.is_canceled()) => {
                tracing::debug!(
                    crm = %key.origin,
                    "a kept-alive connection failed before any answer; sending again on a new one"
                );
                fresh_only = true;
            }
            Err(e) => return Err(ExchangeError::Http(e)),
        }
    }
}

/// A response body that hands its connection back to the pool once it has been read to its
/// end, and closes it otherwise.
pub struct PooledBody {
    inner: Incoming,
    ended: bool,
    home: Option<(Arc<Pools>, PoolKey, Conn)>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended = true,
            Poll::Ready(Some(Err(_))) => self.home = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if (self.ended || self.inner.is_end_stream())
            && let Some((pools, key, conn)) = self.home.take()
        {
            pools.checkin(key, conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::AddressPolicy;
    use crate::outbound::tls_config;

    /// A connection to a local server that accepts and holds its connections.
    async fn conn(connector: &Connector, origin: &Origin) -> Conn {
        connector.connect(origin).await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_serves_only_its_scheme_and_origin() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let connector = Connector::new(AddressPolicy::new(true), tls_config(&[]));
        let origin = Origin {
            tls: false,
            host: "127.0.0.1".into(),
            port: addr.port(),
        };
        let key = |scheme| PoolKey {
            scheme,
            origin: origin.clone(),
        };
        let pools = Arc::new(Pools::default());
        pools.checkin(key(1), conn(&connector, &origin).await);
        // Another tenant, or the same tenant elsewhere, never gets it.
        assert!(pools.checkout(&key(2)).is_none());
        let elsewhere = PoolKey {
            scheme: 1,
            origin: Origin {
                port: addr.port().wrapping_add(1),
                ..origin.clone()
            },
        };
        assert!(pools.checkout(&elsewhere).is_none());
        assert!(pools.checkout(&key(1)).is_some());
        // Taken: not handed out twice.
        assert!(pools.checkout(&key(1)).is_none());
        server.abort();
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // Accept, then close at once.
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let connector = Connector::new(AddressPolicy::new(true), tls_config(&[]));
        let origin = Origin {
            tls: false,
            host: "127.0.0.1".into(),
            port: addr.port(),
        };
        let conn = conn(&connector, &origin).await;
        server.await.unwrap();
        // hyper sees the close once its connection task reads the end of the stream.
        for _ in 0..100 {
            if conn.sender.is_closed() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let pools = Arc::new(Pools::default());
        let key = PoolKey { scheme: 1, origin };
        pools.checkin(key.clone(), conn);
        assert!(pools.checkout(&key).is_none());
    }
}
