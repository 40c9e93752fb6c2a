//! `callroute serve`: routing over HTTP for call platforms (Kamailio's `http_client`,
//! Asterisk's `CURL()`, FreeSWITCH's `mod_httapi`, anything that can make a request).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/route/{scheme}` with the call JSON | the outcome JSON `callroute route` prints, 200 |
//! | `GET /v1/route/{scheme}?call_id=…&caller=…&callee=…&<var>=…` | the same |
//! | either, with `Accept: text/plain` | the bare target and `X-Ring-Timeout`, 200; or 503 with the error kind |
//! | `POST /v1/outcome/{scheme}` with an outcome JSON | 202 once the report is in the outbox ([`outcomes`]) |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | OpenMetrics text ([`metrics`]): routes by scheme and outcome, error kinds, latency |
//! | `GET /` | the web [`console`] |
//! | `/v1/schemes…` | the [`admin`] API: tenants, their health and settings, exchanges, trial calls |
//!
//! | module | what |
//! |---|---|
//! | here | [`Service`]: the tenants, reloads, the router, the counters |
//! | [`listener`] | accepting connections within their limit, SIGHUP, the drain at shutdown |
//! | `routes` | which endpoint answers a path (a maintained router), names in paths, `/v1/route` |
//! | `http` | reading calls and bodies within their limits; the responses all endpoints share |
//! | [`errors`] | why a schemes file cannot be served |
//! | [`tenants`], [`auth`] | the tenants and who may route their calls |
//! | [`outcomes`] | outcome reports: taken into the outbox, delivered through the router |
//! | [`admin`], [`console`], [`exchanges`], [`metrics`] | what an operator sees |
//!
//! A failed route is still a 200 with outcome `failed` and its kind, so a PBX can tell "CRM
//! down" from "our bug"; an unknown scheme is a 404 and a malformed request a 400, each with a
//! JSON error saying what is wrong. Every call runs in a fresh sandbox with its tenant's scheme;
//! the server keeps no state between calls beyond counters and the recent exchanges, so any
//! number of instances can stand behind a load balancer. On SIGTERM or SIGINT it stops accepting, lets calls in flight
//! finish, and exits.

pub mod admin;
pub mod auth;
mod connections;
pub mod console;
pub mod errors;
pub mod exchanges;
mod http;
pub mod listener;
pub mod metrics;
pub mod outcomes;
mod routes;
pub mod tenants;

pub use errors::ServeError;
pub use exchanges::Exchanges;
pub use listener::{
    ANSWER_GRACE, DRAIN_LIMIT, MAX_CONNECTIONS, connection_limit, reload_on_hangup, run,
    shutdown_signal,
};
pub use metrics::Metrics;
pub use routes::canonical;
pub use tenants::Tenants;

use crate::outbox::Outbox;
use crate::router::Router;
use crate::scheme_file::SchemeFile;
use listener::InFlight;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most connections open at once. At the limit, a newcomer takes the place of the
    /// connection that has waited longest for a complete request head (one that never carried
    /// a request before an idle keep-alive one); when every connection has a request under way,
    /// further clients wait (in the kernel's accept queue) for one to finish. Also kept below
    /// what the process's file-descriptor limit allows (see [`connection_limit`]).
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
    /// Held by the reload in progress.
    reloading: std::sync::Mutex<()>,
    /// Where outcome reports wait for delivery; `None` takes none.
    outbox: Option<Outbox>,
    /// Recent calls' callers, for outcomes that do not name theirs.
    recent_callers: outcomes::Recent,
    /// The ids of reports taken lately under a platform's `Idempotency-Key`.
    reported: outcomes::Recent,
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
            reloading: std::sync::Mutex::default(),
            outbox: None,
            recent_callers: outcomes::Recent::default(),
            reported: outcomes::Recent::default(),
        })
    }

    /// The same service taking outcome reports into `outbox` (delivered once the service
    /// runs: [`Service::deliver_reports`]).
    pub fn with_outbox(mut self, outbox: Outbox) -> Service {
        self.outbox = Some(outbox);
        self
    }

    /// Start delivering the outbox's reports (those a previous run left, and every new one)
    /// through this service's router, counting them in `/metrics`. [`run`] calls it; later
    /// calls change nothing. Needs a tokio runtime.
    pub fn deliver_reports(self: &Arc<Self>) {
        if let Some(outbox) = &self.outbox {
            let counts = self.metrics.report_counts();
            outbox.start(
                Arc::new(outcomes::ServiceReports(Arc::downgrade(self))),
                Arc::new(move |scheme, what| metrics::count_report(&counts, scheme, what)),
            );
        }
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
        // One reload at a time: each builds on the set it replaces. Calls go on meanwhile:
        // the set in use is only locked to be swapped.
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let file = SchemeFile::load_settled(path)?;
        let current = self.tenants();
        let next = Tenants::build(
            &file,
            self.router.max_concurrent_calls(),
            self.router.rules(),
            Some(&current),
        )?;
        let changes = next.changes_since(&current);
        self.metrics.add_schemes(next.names());
        self.exchanges.retain(&next.names());
        *self.tenants.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
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
}
