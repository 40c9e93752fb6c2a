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
//! | `GET /` | the web [`console`] |
//! | `/v1/schemes…` | the [`admin`] API: tenants, their health and settings, exchanges, trial calls |
//!
//! A failed route is still a 200 with outcome `failed` and its kind, so a PBX can tell "CRM
//! down" from "our bug"; an unknown scheme is a 404 and a malformed request a 400, each with a
//! JSON error saying what is wrong. Every call runs in a fresh sandbox with its tenant's scheme;
//! the server keeps no state between calls beyond counters and the recent exchanges, so any number of instances can
//! stand behind a load balancer. On SIGTERM or SIGINT it stops accepting, lets calls in flight
//! finish, and exits.

pub mod admin;
pub mod auth;
pub mod console;
pub mod exchanges;
pub mod metrics;
pub mod tenants;

pub use exchanges::Exchanges;
pub use metrics::Metrics;
pub use tenants::Tenants;

use crate::Call;
use crate::outbound::HOP_HEADER;
use crate::report::RouteReport;
use crate::router::{CALL_GRACE, Router};
use crate::scheme_file::SchemeFile;
use auth::Access;
use bytes::Bytes;
use callroute_plugin::call::{MAX_CALL_BODY, RequestError};
use callroute_plugin::error::excerpt;
use callroute_plugin::outcome;
use callroute_plugin::scheme::MAX_RESPONSE_TIMEOUT;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
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

/// The routing service: the component, the tenants, and counters.
pub struct Service {
    router: Router,
    /// The tenants now; a call keeps the set it started with.
    tenants: RwLock<Arc<Tenants>>,
    /// The schemes file the tenants come from, to reload.
    source: Option<PathBuf>,
    metrics: Metrics,
    /// Each scheme's recent exchanges, for the admin API.
    exchanges: Exchanges,
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
    /// The `[server]` table cannot be used.
    #[error("[server] {0}")]
    Server(String),
    /// At a reload, a new or changed scheme cannot be read.
    #[error("scheme `{name}`: {problem}")]
    Scheme {
        /// The scheme.
        name: String,
        /// What is wrong (never a value of a secret).
        problem: String,
    },
    /// The service was not loaded from a file, so there is nothing to reload.
    #[error("this service was not loaded from a file")]
    NoSource,
}

impl Service {
    /// A service for every named scheme of `file`.
    pub fn new(router: Router, file: &SchemeFile) -> Result<Service, ServeError> {
        let tenants = Tenants::build(file, router.max_concurrent_calls(), router.rules(), None)?;
        let mut metrics = Metrics::new();
        metrics.add_schemes(tenants.names());
        metrics.add_memory(router.memory().counts());
        Ok(Service {
            // Every call's exchange is kept for the admin API.
            router: router.recording_exchanges(),
            tenants: RwLock::new(Arc::new(tenants)),
            source: None,
            metrics,
            exchanges: Exchanges::new(exchanges::DEFAULT_CAPACITY, false),
            limits: ServeLimits::default(),
            calls: InFlight::default(),
        })
    }

    /// The same service keeping the last `capacity` exchanges of each scheme, callers' and
    /// callees' numbers whole only with `show_numbers`.
    pub fn with_exchange_log(mut self, capacity: usize, show_numbers: bool) -> Service {
        self.exchanges = Exchanges::new(capacity, show_numbers);
        self.router = self.router.showing_numbers(show_numbers);
        self
    }

    /// A service for every named scheme of the file at `path`, which [`Service::reload`]
    /// reads again.
    pub fn load(router: Router, path: &Path) -> Result<Service, ServeError> {
        let file = SchemeFile::load(path)?;
        let mut service = Service::new(router, &file)?;
        service.source = Some(path.to_owned());
        Ok(service)
    }

    /// The tenants now.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Read the schemes file again and serve what it says from now on: new schemes are
    /// served, removed ones answer 404, changed ones apply to new calls (calls in flight
    /// finish with the scheme they started with), unchanged ones carry on as they were. A
    /// file that cannot be served changes nothing. Either way the outcome is logged and
    /// counted (`callroute_config_reloads_total`).
    pub fn reload(&self) -> Result<tenants::Changes, ServeError> {
        let result = self.try_reload();
        match &result {
            Ok(changes) => {
                self.metrics.reloaded(true);
                tracing::info!(
                    added = ?changes.added,
                    removed = ?changes.removed,
                    changed = ?changes.changed,
                    "schemes reloaded"
                );
            }
            Err(e) => {
                self.metrics.reloaded(false);
                tracing::error!(error = %e, "schemes not reloaded; still serving the previous ones");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<tenants::Changes, ServeError> {
        let path = self.source.as_deref().ok_or(ServeError::NoSource)?;
        let file = SchemeFile::load_settled(path)?;
        // One reload at a time: each builds on the set it replaces.
        let mut current = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let next = Tenants::build(
            &file,
            self.router.max_concurrent_calls(),
            self.router.rules(),
            Some(&current),
        )?;
        let changes = next.changes_since(&current);
        self.metrics.add_schemes(next.names());
        self.exchanges.retain(&next.names());
        *current = Arc::new(next);
        Ok(changes)
    }

    /// The same service under other limits.
    pub fn with_limits(mut self, limits: ServeLimits) -> Service {
        self.limits = limits;
        self
    }

    /// The names of the schemes served, sorted.
    pub fn scheme_names(&self) -> Vec<String> {
        self.tenants()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// What a server reachable beyond loopback gives to anyone: the schemes routable without
    /// a token, and whether `/metrics` (which names every tenant) is open.
    pub fn open_to_anyone(&self) -> (Vec<String>, bool) {
        let tenants = self.tenants();
        let schemes = tenants
            .open_schemes()
            .into_iter()
            .map(str::to_owned)
            .collect();
        (schemes, tenants.may_read_metrics(None))
    }

    /// Answer one HTTP request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/metrics") => {
                let tenants = self.tenants();
                if !tenants.may_read_metrics(token_of(&request)) {
                    self.metrics.unauthorized();
                    return unauthorized();
                }
                let mut response = text(StatusCode::OK, self.metrics.render(&tenants));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            (&Method::GET, "/") => console::page(),
            (&Method::GET, p) if p.starts_with(console::ASSETS) => console::asset(p),
            // A webhook of a callroute (this one or another) routed back into a callroute: a
            // scheme pointed at its own server (its routes, or its trial calls). Answering
            // would call it again, without end.
            (_, p) if p.starts_with("/v1/") && request.headers().contains_key(HOP_HEADER) => {
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
            (_, p) if p == "/v1/schemes" || p.starts_with("/v1/schemes/") => {
                self.admin(p, request).await
            }
            _ => rejection(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint; use /v1/route/{scheme}, /healthz, /metrics, / (the console) \
                 or /v1/schemes (the admin API)"
                    .into(),
            ),
        }
    }

    async fn route(&self, name: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let name = path_segment(name);
        // The set this call starts with; a reload meanwhile does not change its scheme.
        let tenants = self.tenants();
        // Which tenants a server holds is not for its callers to learn: the answer names only
        // what was asked for, and is the same for a scheme this caller may not use.
        let scheme = match tenants.access(&name, token_of(&request)) {
            Access::Route(scheme) => scheme,
            Access::Unauthorized => {
                self.metrics.unauthorized();
                return unauthorized();
            }
            Access::NotFound => {
                return rejection(
                    StatusCode::NOT_FOUND,
                    "unknown-scheme",
                    format!("no scheme named `{}`", excerpt(&name, 64)),
                );
            }
        };
        let format = outcome::requested_format(
            request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            request
                .headers()
                .get(outcome::SIP_DOMAIN_HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let format = match format {
            Ok(format) => format,
            Err(e) => return rejection(StatusCode::BAD_REQUEST, "bad-request", e.message),
        };
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
        let answer = response(outcome::http_answer(
            &report.result,
            report.elapsed_ms(),
            &format,
        ));
        self.exchanges.record(&name, &call, report);
        answer
    }
}

/// A path segment percent-decoded (a scheme's name, a call's id).
fn path_segment(segment: &str) -> String {
    form_urlencoded::parse(format!("s={segment}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default()
}

/// A 200 with `value` as JSON, for the admin API: never kept by a cache.
fn json_response(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(outcome::JSON),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
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
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let body = if method == Method::POST {
        read_body(request, MAX_CALL_BODY, timeout).await?
    } else {
        Bytes::new()
    };
    Call::from_http(method.as_str(), query.as_deref(), &body)
}

/// Read a request's body: at most `limit` bytes, within `timeout`.
async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, RequestError> {
    let body = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect())
        .await
        .map_err(|_| RequestError {
            status: 408,
            message: format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        })?
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                // Over a call's limit: the same answer as every front end gives.
                if limit == MAX_CALL_BODY {
                    RequestError::too_large()
                } else {
                    RequestError {
                        status: 413,
                        message: format!("the request body is larger than {limit} bytes"),
                    }
                }
            } else {
                RequestError {
                    status: 400,
                    message: "the request body was cut off".into(),
                }
            }
        })?;
    Ok(body.to_bytes())
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
    for (name, value) in answer.headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
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

/// The bearer token a request presents.
fn token_of<B>(request: &Request<B>) -> Option<&str> {
    auth::bearer(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// 401, with the scheme of authentication a client should use.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = rejection(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required (Authorization: Bearer <token>)".into(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"callroute\""),
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
