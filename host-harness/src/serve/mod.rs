//! `callroute serve`: routing over HTTP for call platforms (Kamailio's `http_client`,
//! Asterisk's `CURL()`, FreeSWITCH's `mod_httapi`, anything that can make a request).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/route/{scheme}` with the call JSON | the outcome JSON `callroute route` prints, 200 |
//! | `GET /v1/route/{scheme}?call_id=…&caller=…&callee=…&<var>=…` | the same |
//! | either, with `Accept: text/plain` | the bare target and `X-Ring-Timeout`, 200; or 503 with the error kind |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | OpenMetrics text ([`metrics`]): routes by scheme and outcome, error kinds, latency |
//!
//! A failed route is still a 200 with outcome `failed` and its kind, so a PBX can tell "CRM
//! down" from "our bug"; an unknown scheme is a 404 and a malformed request a 400, each with a
//! JSON error saying what is wrong. Every call runs in a fresh sandbox with its tenant's scheme;
//! the server keeps no state between calls beyond counters, so any number of instances can
//! stand behind a load balancer. On SIGTERM or SIGINT it stops accepting, lets calls in flight
//! finish, and exits.

pub mod metrics;

pub use metrics::Metrics;

use crate::Call;
use crate::outbound::HOP_HEADER;
use crate::report::RouteReport;
use crate::router::{CALL_GRACE, PreparedScheme, Router};
use crate::scheme_file::SchemeFile;
use bytes::Bytes;
use callroute_plugin::call::{MAX_CALL_BODY, RequestError};
use callroute_plugin::error::excerpt;
use callroute_plugin::outcome;
use callroute_plugin::scheme::MAX_RESPONSE_TIMEOUT;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for calls in flight: the longest a call can take.
pub const DRAIN_LIMIT: Duration = MAX_RESPONSE_TIMEOUT.saturating_add(CALL_GRACE);
/// Once the calls in flight are answered, how long shutdown still lets their answers go out
/// and a request whose body is arriving become a call.
pub const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most connections open at once; further clients wait (in the kernel's accept queue) for
    /// one to close. Also kept below what the process's file-descriptor limit allows (see
    /// [`connection_limit`]).
    pub max_connections: usize,
    /// Most time a request's head, and then its body, may take to arrive: a head that does
    /// not closes the connection (as does a keep-alive connection idle that long), a body that
    /// does not is answered 408, so a client that stalls cannot hold a connection.
    pub read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// The routing service: the component, the tenants' schemes, and counters.
pub struct Service {
    router: Router,
    schemes: HashMap<String, PreparedScheme>,
    metrics: Metrics,
    limits: ServeLimits,
    calls: InFlight,
}

/// A schemes file that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    File(#[from] crate::scheme_file::SchemeFileError),
    /// A scheme without a `name` cannot be addressed.
    #[error(
        "scheme #{0} has no `name`; every served scheme needs one (it is the {{scheme}} in /v1/route/{{scheme}})"
    )]
    Unnamed(usize),
}

impl Service {
    /// A service for every named scheme of `file`.
    pub fn new(router: Router, file: &SchemeFile) -> Result<Service, ServeError> {
        let mut schemes = HashMap::new();
        for (i, entry) in file.schemes.iter().enumerate() {
            let name = entry.name.clone().ok_or(ServeError::Unnamed(i + 1))?;
            let scheme = PreparedScheme::new(entry.pairs.clone());
            if let Some(problem) = scheme.problem() {
                tracing::warn!(scheme = %name, %problem, "every call of this scheme will fail");
            }
            schemes.insert(name, scheme);
        }
        Ok(Service {
            router,
            metrics: Metrics::new(schemes.keys()),
            schemes,
            limits: ServeLimits::default(),
            calls: InFlight::default(),
        })
    }

    /// The same service under other limits.
    pub fn with_limits(mut self, limits: ServeLimits) -> Service {
        self.limits = limits;
        self
    }

    /// The names of the schemes served, sorted.
    pub fn scheme_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.schemes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Answer one HTTP request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/metrics") => {
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            // A webhook of a callroute (this one or another) routed back into a callroute: a
            // scheme pointed at its own server. Answering would call it again, without end.
            (_, p) if p.starts_with("/v1/route/") && request.headers().contains_key(HOP_HEADER) => {
                rejection(
                    StatusCode::LOOP_DETECTED,
                    "loop-detected",
                    "this request is a callroute webhook: a scheme's url points at a callroute \
                     server, which would call it again"
                        .into(),
                )
            }
            (_, p) if p.starts_with("/v1/route/") => {
                let name = p.trim_start_matches("/v1/route/").to_owned();
                self.route(&name, request).await
            }
            _ => rejection(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint; use /v1/route/{scheme}, /healthz or /metrics".into(),
            ),
        }
    }

    async fn route(&self, name: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let name: String = form_urlencoded::parse(format!("n={name}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        // Which tenants a server holds is not for its callers to learn: the answer names only
        // what was asked for.
        let Some(scheme) = self.schemes.get(&name) else {
            return rejection(
                StatusCode::NOT_FOUND,
                "unknown-scheme",
                format!("no scheme named `{}`", excerpt(&name, 64)),
            );
        };
        let wants_text = outcome::prefers_text(
            request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let call = match read_call(request, self.limits.read_timeout).await {
            Ok(call) => call,
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                return rejection(status, "bad-request", e.message);
            }
        };
        let report = {
            let _in_flight = self.calls.enter();
            self.router.route(scheme, &call).await
        };
        self.metrics.observe(&name, &report);
        log_call(&name, &report);
        response(outcome::http_answer(
            &report.result,
            report.elapsed_ms(),
            wants_text,
        ))
    }
}

/// One line per call: scheme, outcome, error kind, elapsed time. Never a URL query or a
/// header value (error messages never hold them).
fn log_call(scheme: &str, report: &RouteReport) {
    let outcome = report.outcome();
    match report.error() {
        None => tracing::info!(
            target: "callroute::call",
            scheme,
            outcome,
            elapsed_ms = report.elapsed_ms(),
            "call routed"
        ),
        Some(e) => tracing::info!(
            target: "callroute::call",
            scheme,
            outcome,
            error_kind = e.kind.as_str(),
            error = %e.message,
            elapsed_ms = report.elapsed_ms(),
            "call not routed by the CRM"
        ),
    }
}

/// Read the request body (at most [`MAX_CALL_BODY`] bytes, within `timeout`) and parse the
/// call it carries.
async fn read_call(request: Request<Incoming>, timeout: Duration) -> Result<Call, RequestError> {
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        tokio::time::timeout(timeout, Limited::new(body, MAX_CALL_BODY).collect())
            .await
            .map_err(|_| RequestError {
                status: 408,
                message: format!(
                    "the call body did not arrive within {} s",
                    timeout.as_secs_f64()
                ),
            })?
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    // Over the limit: the same answer as every front end gives.
                    RequestError::too_large()
                } else {
                    RequestError {
                        status: 400,
                        message: "the call body was cut off".into(),
                    }
                }
            })?
            .to_bytes()
    } else {
        Bytes::new()
    };
    Call::from_http(parts.method.as_str(), parts.uri.query(), &body)
}

/// The HTTP response for an answer (see [`outcome::http_answer`]).
fn response(answer: outcome::HttpAnswer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(answer.content_type),
    );
    if let Some(secs) = answer.ring_timeout {
        response
            .headers_mut()
            .insert("x-ring-timeout", header::HeaderValue::from(secs));
    }
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(outcome::TEXT),
    );
    response
}

/// A request the server will not route (see [`outcome::http_rejection`]).
fn rejection(status: StatusCode, kind: &str, message: String) -> Response<Full<Bytes>> {
    let mut response = response(outcome::http_rejection(status.as_u16(), kind, &message));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
    }
    response
}

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
    // No scheme may send its webhook here.
    let _listening = listener
        .local_addr()
        .ok()
        .map(crate::guard::Listening::register);
    let connections = Arc::new(tokio::sync::Semaphore::new(connection_limit(
        service.limits.max_connections,
    )));
    loop {
        // At the limit, wait for a connection to close before accepting another.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
        };
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
        let handler_service = service.clone();
        let handler = service_fn(move |request| {
            let service = handler_service.clone();
            async move { Ok::<_, Infallible>(service.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(service.limits.read_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
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
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    /// Count a call until the returned guard is dropped.
    fn enter(&self) -> impl Drop + '_ {
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
