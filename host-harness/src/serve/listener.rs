//! The listener: accepting connections within the connection limit (at the limit, the one
//! that has waited longest for a request head makes room: [`super::connections`]), the
//! file-descriptor limit, reloads on SIGHUP, and the drain at shutdown.

use super::Service;
use super::connections::Connections;
use super::http::closed_for_room;
use crate::router::CALL_GRACE;
use callroute_plugin::scheme::MAX_RESPONSE_TIMEOUT;
use hyper::service::service_fn;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// How long shutdown waits for calls in flight: the longest a call can take.
pub const DRAIN_LIMIT: Duration = MAX_RESPONSE_TIMEOUT.saturating_add(CALL_GRACE);
/// Once the calls in flight are answered, how long shutdown still lets their answers go out
/// and a request whose body is arriving become a call.
pub const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// Serve until `shutdown` resolves, then stop accepting, let the calls in flight finish (at
/// most [`DRAIN_LIMIT`]) and their answers go out (at most [`ANSWER_GRACE`] more): a client
/// that stalls mid-request does not hold the server up.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Reports a previous run left go out as soon as the server is up.
    service.deliver_reports();
    // No scheme may send its webhook here.
    let _listening = listener
        .local_addr()
        .ok()
        .map(crate::guard::Listening::register);
    let connections = Connections::new(connection_limit(service.limits.max_connections));
    'serve: loop {
        // At the limit with every connection's request under way, wait for one to finish or
        // close before accepting another (further clients wait in the kernel's accept queue).
        tokio::select! {
            _ = &mut shutdown => break,
            _ = connections.room() => {}
        }
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Room for it: at the limit, the connection that has waited longest for a request
        // head is closed. (Rarely, the one found began a request meanwhile: wait again.)
        let registration = loop {
            if let Some(registration) = connections.admit(&stream) {
                break registration;
            }
            tokio::select! {
                _ = &mut shutdown => break 'serve,
                _ = connections.room() => {}
            }
        };
        let tracker = registration.tracker();
        let handler_service = service.clone();
        let handler = service_fn(move |request| {
            let service = handler_service.clone();
            // hyper calls this as soon as a head is complete, in the poll that read it: from
            // here until the answer the connection is not closed for a newcomer.
            let begun = tracker.begin();
            let tracker = tracker.clone();
            async move {
                if !begun {
                    return Ok::<_, Infallible>(closed_for_room());
                }
                let response = service.handle(request).await;
                // hyper writes and flushes the answer in this same poll, before the connection
                // task can see an eviction.
                tracker.end();
                Ok(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(service.limits.read_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let slot = registration.slot();
            let mut connection = std::pin::pin!(connection);
            let mut evicted = std::pin::pin!(slot.evicted());
            // The connection first, so what it can read and write is done before an eviction
            // is seen; dropping it (below) closes the socket, which graceful_shutdown would
            // not do for a partial head.
            let ended = std::future::poll_fn(|cx| match connection.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(Some(result)),
                Poll::Pending => evicted.as_mut().poll(cx).map(|()| None),
            })
            .await;
            match ended {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
                None => tracing::debug!("connection closed to make room for a newcomer"),
            }
            // Out of the registry before the socket closes.
            drop(registration);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing calls in flight");
    let drained = async {
        let all_closed = graceful.shutdown();
        // A request whose body was still arriving may become a call during the grace: wait
        // for it too.
        let answered = async {
            loop {
                service.calls.idle().await;
                tokio::time::sleep(ANSWER_GRACE).await;
                if service.calls.is_idle() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = all_closed => {}
            _ = answered => {}
        }
    };
    if tokio::time::timeout(DRAIN_LIMIT + ANSWER_GRACE, drained)
        .await
        .is_err()
    {
        tracing::warn!("calls still in flight after {DRAIN_LIMIT:?}; exiting anyway");
    }
}

/// The calls being routed, and a way to wait until there are none.
#[derive(Default)]
pub(super) struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    /// Count a call until the returned guard is dropped.
    pub(super) fn enter(&self) -> impl Drop + '_ {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        struct Leave<'a>(&'a InFlight);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                if self
                    .0
                    .count
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                    == 1
                {
                    self.0.idle.notify_waiters();
                }
            }
        }
        Leave(self)
    }

    /// Whether no call is being routed.
    fn is_idle(&self) -> bool {
        self.count.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    /// Resolves when no call is being routed.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }
}

/// The most `max_connections` can be.
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// File descriptors kept for everything but client connections and their calls' CRM
/// connections (the listener, the pools' idle connections, files): at most this many, and at
/// most a quarter of the limit.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The most client connections the server takes at once: `wanted`, unless the process's
/// file-descriptor limit (raised towards what `wanted` needs, up to its hard limit) cannot
/// hold that many beside a CRM connection for each and some reserve; then fewer, with a
/// warning. Running out of descriptors would fail every call, not just the excess.
pub fn connection_limit(wanted: usize) -> usize {
    let wanted = wanted.clamp(1, MAX_CONNECTIONS);
    let Some(available) = descriptor_limit(2 * wanted as u64 + RESERVED_DESCRIPTORS) else {
        return wanted;
    };
    let reserve = RESERVED_DESCRIPTORS.min(available / 4);
    let fits = (available.saturating_sub(reserve) / 2).max(1) as usize;
    if fits < wanted {
        tracing::warn!(
            wanted,
            limit = fits,
            descriptors = available,
            "the file-descriptor limit (ulimit -n) holds fewer connections than asked for"
        );
    }
    wanted.min(fits)
}

/// The process's open-file limit, raised towards `needed` (not past the hard limit).
#[cfg(unix)]
fn descriptor_limit(needed: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: needed.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn descriptor_limit(_: u64) -> Option<u64> {
    None
}

/// From now on, reload `service`'s schemes file at every SIGHUP, for as long as the process
/// runs. The handler is in place when this returns (a SIGHUP before it would end the
/// process); must be called within the runtime.
pub fn reload_on_hangup(service: Arc<Service>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot install the SIGHUP handler: schemes reload only on restart");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // Reading the file is quick but blocking.
                let service = service.clone();
                let _ = tokio::task::spawn_blocking(move || service.reload()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = service;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
