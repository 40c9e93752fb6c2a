//! The call pipeline: every call goes the one way through it.
//!
//! admit → sandbox → re-validate → allowlist → fallback → remember → mask
//!
//! 1. **admit** ([`Router::admit`]): a place in the tenant's share, then a slot of the pool;
//!    else `overloaded` at once.
//! 2. **sandbox**: a fresh instance of the component ([`crate::sandbox::component`]) with the
//!    call's scheme, outbound door and limits, run under the call's deadline: the scheme's
//!    `response_timeout_secs` plus [`CALL_GRACE`], enforced here ([`within_grace`]) whatever
//!    the component does; a running component yields at every epoch tick, so the deadline
//!    fires even while it computes.
//! 3. **re-validate**: the component's answer in the host's types, each destination parsed
//!    again ([`crate::sandbox::convert`]).
//! 4. **allowlist**: every destination held to the scheme's allowlist, or its own fallback.
//! 5. **fallback**: a call the component could not answer gets the scheme's static fallback
//!    (never for an invalid scheme).
//! 6. **remember**: with `remember_secs`, the CRM's answer is remembered, or recalled when the
//!    CRMs failed ([`crate::memory`]).
//! 7. **mask**: every string of the report that may quote a secret or a number
//!    ([`crate::redact`]), before anything sees it.

use crate::EMBEDDED_PLUGIN;
use crate::admission::{InShare, Rejection};
use crate::exchange::Recorder;
use crate::guard::AddressPolicy;
use crate::memory::Memory;
use crate::outbound::{
    CannedAnswer, DetailSlot, Outbound, OutboundClient, OutboundScheme, tls_config,
};
use crate::prepare::{PreparedScheme, Rules, prepare};
use crate::redact::Redactor;
use crate::report::{RouteFailure, RouteReport};
use crate::sandbox::Limits;
use crate::sandbox::component::{Loaded, Sandbox};
use crate::sandbox::store::overloaded;
use callroute_plugin::call::Call;
use callroute_plugin::destination::{Destination, Refused};
use callroute_plugin::error::ErrorKind;
use callroute_plugin::routing::Routing;
use callroute_plugin::scheme::format_seconds;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiHttpView;

pub use crate::sandbox::component::LoadError;
pub use crate::sandbox::engine::{EPOCH_TICK, engine_config};
pub use crate::sandbox::{
    DEFAULT_CPU_LIMIT, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MEMORY_LIMIT, Limits as SandboxLimits,
};

/// Time allowed beyond `response_timeout_secs` for creating the instance and reading the
/// answer, before the host gives up on the call itself.
pub const CALL_GRACE: Duration = Duration::from_millis(250);

/// The router's settings, the same for every call and scheme: the sandbox's limits, the
/// network policy, the pool's size. (What a scheme asks of the host is its
/// [`callroute_plugin::scheme::HostPolicy`].)
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Let components reach loopback, private and link-local addresses (local CRMs, tests).
    pub allow_private_network: bool,
    /// Cap on each call instance's linear memory, in bytes.
    pub memory_limit: usize,
    /// Most time a call's component may spend running (not waiting on the CRM); measured in
    /// epoch ticks of [`EPOCH_TICK`].
    pub cpu_limit: Duration,
    /// CA certificates trusted for `https` CRMs besides the webpki roots.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Where precompiled components are kept between runs ([`crate::cache`]); `None` compiles
    /// at every start.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Answer every webhook the guard allows with this instead of calling the CRM
    /// ([`CannedAnswer`]); `None` calls the CRM.
    pub canned_answer: Option<CannedAnswer>,
    /// Most calls routed at once; a call beyond it is `overloaded` at once. The engine's
    /// instance pool is sized by the router that creates it ([`Router::new`]); a router made
    /// with [`Router::with_config`] shares that pool and can use at most its size.
    pub max_concurrent_calls: u32,
    /// Record what each call asked its CRM and what it answered ([`crate::exchange`]) in its
    /// report.
    pub record_exchanges: bool,
    /// Show callers' and callees' numbers whole in what a report quotes (errors, exchanges);
    /// by default they are masked ([`crate::redact::mask_number`]).
    pub show_numbers: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            allow_private_network: false,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cpu_limit: DEFAULT_CPU_LIMIT,
            extra_roots: Vec::new(),
            cache_dir: None,
            canned_answer: None,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            record_exchanges: false,
            show_numbers: false,
        }
    }
}

impl RouterConfig {
    /// The sandbox's limits under these settings.
    pub fn limits(&self) -> Limits {
        Limits {
            memory_limit: self.memory_limit,
            cpu_limit: self.cpu_limit,
            max_concurrent_calls: self.max_concurrent_calls,
        }
    }
}

/// The loaded routing component and the host policy: route any number of calls, concurrently.
/// Cloning is cheap and shares the compiled component.
#[derive(Clone)]
pub struct Router {
    loaded: Arc<Loaded>,
    config: RouterConfig,
    /// Whose rules this router's schemes are prepared by.
    rules: Rules,
    client: OutboundClient,
    /// Where the CRM last routed each caller, for schemes with `remember_secs`
    /// ([`crate::memory`]); in-process unless [`Router::with_memory`] says otherwise.
    memory: Memory,
    /// One permit per call this router may route at once: a call that finds none is
    /// `overloaded` at once, rather than failing inside the allocator as if it had crashed.
    slots: Arc<tokio::sync::Semaphore>,
    /// The part of the pool work that is not a call may take (outcome reports): a quarter,
    /// so that reports never hold calls back.
    work_slots: Arc<tokio::sync::Semaphore>,
    /// Set for an operator's trial calls ([`Router::for_trial`]).
    trial: Option<Trial>,
}

/// An operator's trial call (`POST /v1/schemes/{name}/try`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trial {
    /// Against a sample answer the host gives in the CRM's place.
    Sample,
    /// Through the scheme's real CRM.
    Crm,
}

/// What a trial through the CRM shows of each request body it sent.
pub const WITHHELD_IN_A_TRIAL: &str = "(not shown in a trial through the CRM: it mixes the scheme's secrets with the trial's own values)";

impl Router {
    /// Load the component embedded in this binary.
    pub fn embedded(config: RouterConfig) -> Result<Router, LoadError> {
        Router::new(EMBEDDED_PLUGIN, config)
    }

    /// Compile and link a component (binary `.wasm`) of the `plugin` world. This host's own
    /// component (the embedded one) has its schemes judged by its own rules before any call
    /// ([`Rules::Component`]); any other by the host's only.
    pub fn new(wasm: &[u8], config: RouterConfig) -> Result<Router, LoadError> {
        let loaded = Loaded::compile(wasm, config.limits(), config.cache_dir.as_deref())?;
        let rules = if wasm == EMBEDDED_PLUGIN {
            Rules::Component
        } else {
            Rules::Host
        };
        Ok(Router::with_loaded(loaded, config, rules))
    }

    /// Link an already compiled component (see [`engine_config`]), of unknown rules.
    pub fn from_component(
        engine: Engine,
        component: &Component,
        config: RouterConfig,
    ) -> Result<Router, LoadError> {
        let loaded = Loaded::link(engine, component)?;
        Ok(Router::with_loaded(loaded, config, Rules::Host))
    }

    fn with_loaded(loaded: Loaded, config: RouterConfig, rules: Rules) -> Router {
        Router {
            loaded: Arc::new(loaded),
            client: outbound_client(&config),
            slots: slots(&config),
            work_slots: work_slots(&config),
            memory: Memory::local(
                crate::memory::DEFAULT_MAX_ENTRIES,
                crate::memory::DEFAULT_MAX_BYTES,
            ),
            rules,
            config,
            trial: None,
        }
    }

    /// The same component under another host policy.
    pub fn with_config(&self, config: RouterConfig) -> Router {
        Router {
            loaded: self.loaded.clone(),
            client: outbound_client(&config),
            slots: slots(&config),
            work_slots: work_slots(&config),
            memory: self.memory.clone(),
            rules: self.rules,
            config,
            trial: None,
        }
    }

    /// The same router, remembering calls in `memory` (a Redis store, shared by a fleet).
    pub fn with_memory(mut self, memory: Memory) -> Router {
        self.memory = memory;
        self
    }

    /// Where this router remembers calls.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Prepare a scheme's pairs under this router's component's rules: the one way `route`,
    /// `serve` and `check` prepare a scheme ([`crate::prepare`]).
    pub fn prepare(&self, pairs: Vec<(String, String)>) -> PreparedScheme {
        prepare(pairs, self.rules)
    }

    /// Whose rules this router's schemes are prepared by.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// The same router (its pool, its limits) for an operator's trial call: nothing it routes
    /// is remembered or recalled, and nothing it shows tells the operator whether what they
    /// wrote equals a secret (masking it would). With `answer`, which the host then gives in
    /// the CRM's place ([`CannedAnswer`]), the call is routed with the scheme's stand-in
    /// ([`PreparedScheme::stand_in`]), which holds no secret, so nothing needs masking and
    /// everything is shown as written. Through the CRM, the real secrets are sent: everything
    /// is masked as for any call, and the request bodies, which mix the scheme's secrets with
    /// the operator's values, are withheld ([`WITHHELD_IN_A_TRIAL`]).
    pub fn for_trial(&self, answer: Option<CannedAnswer>) -> Router {
        let mut router = self.clone();
        // A trial is not a call: nothing is remembered from it, or recalled.
        router.memory = Memory::off();
        router.trial = Some(if answer.is_some() {
            Trial::Sample
        } else {
            Trial::Crm
        });
        if let Some(answer) = answer {
            router.config.canned_answer = Some(answer);
            router.client = outbound_client(&router.config);
        }
        router
    }

    /// The same router, recording each call's exchange in its report
    /// ([`RouterConfig::record_exchanges`]); it shares everything else with this one.
    pub fn recording_exchanges(&self) -> Router {
        let mut router = self.clone();
        router.config.record_exchanges = true;
        router
    }

    /// The same router, showing numbers whole ([`RouterConfig::show_numbers`]).
    pub fn showing_numbers(&self, show: bool) -> Router {
        let mut router = self.clone();
        router.config.show_numbers = show;
        router
    }

    /// The most calls this router runs at once (its pool).
    pub fn max_concurrent_calls(&self) -> u32 {
        self.config.max_concurrent_calls
    }

    /// The engine, configured for routing components.
    pub fn engine(&self) -> &Engine {
        self.loaded.engine()
    }

    /// Route one call in a fresh instance. Always returns: a destination or a typed failure,
    /// within the scheme's `response_timeout_secs` plus [`CALL_GRACE`], every string of it
    /// masked (see the module docs).
    pub async fn route(&self, scheme: &PreparedScheme, call: &Call) -> RouteReport {
        let start = Instant::now();
        let stand_in;
        let scheme = if self.trial == Some(Trial::Sample) {
            stand_in = scheme.stand_in();
            &stand_in
        } else {
            scheme
        };
        let mut report = match scheme.problem() {
            Some(problem) => RouteReport {
                result: Err(RouteFailure::new(ErrorKind::Config, problem)),
                elapsed: start.elapsed(),
                rejected: None,
                attempts: Vec::new(),
            },
            None => self.run(scheme, call, start).await,
        };
        report.redact(&self.redactor(scheme, call));
        if self.trial == Some(Trial::Crm) {
            for attempt in &mut report.attempts {
                attempt.request_body = WITHHELD_IN_A_TRIAL.into();
            }
        }
        report
    }

    /// How this router masks what a call of `scheme` shows: its secrets (none in a trial's
    /// stand-in), and the call's numbers unless they are shown.
    fn redactor<'a>(&self, scheme: &'a PreparedScheme, call: &'a Call) -> Redactor<'a> {
        static NONE: std::sync::LazyLock<crate::redact::Secrets> =
            std::sync::LazyLock::new(Default::default);
        let secrets = match self.trial {
            Some(Trial::Sample) => &*NONE,
            _ => scheme.secrets(),
        };
        Redactor::new(
            secrets,
            [&call.caller, &call.callee],
            self.config.show_numbers,
        )
    }

    /// The pipeline after its problems are ruled out: admit, sandbox, check, fall back,
    /// remember.
    async fn run(&self, scheme: &PreparedScheme, call: &Call, start: Instant) -> RouteReport {
        let deadline = start + scheme.policy.response_timeout;
        let detail = DetailSlot::default();
        let recorder = self
            .config
            .record_exchanges
            .then(|| Recorder::new(scheme.secrets().longest()));
        let mut rejected = None;
        let result = match self.admit(scheme) {
            Ok(admission) => {
                let door = Door {
                    detail: detail.clone(),
                    recorder: recorder.clone(),
                };
                within_grace(
                    deadline,
                    async {
                        let (mut sandbox, _admission) = self
                            .sandbox(scheme, Purpose::Route, deadline, door, admission)
                            .await?;
                        sandbox.route(call).await
                    },
                    || {
                        format!(
                            "no answer within {} s; the host stopped the call",
                            format_seconds(scheme.policy.response_timeout)
                        )
                    },
                )
                .await
            }
            Err((rejection, failure)) => {
                rejected = Some(rejection);
                Err(failure)
            }
        };
        let explain = |failure: &mut RouteFailure| explain(&detail, failure);
        let result = result.and_then(|routing| check_allowlist(scheme, routing));
        let result = match result {
            Ok(mut routing) => {
                if let Some(cause) = routing.fallback_cause.as_mut() {
                    explain(cause);
                }
                Ok(routing)
            }
            // A call whose component could not answer (a crash, a limit, the host's deadline;
            // or a component without fallbacks of its own) still gets the scheme's fallback.
            // An invalid scheme never does: its fallback cannot be trusted either.
            Err(mut failure) if failure.kind != ErrorKind::Config => {
                explain(&mut failure);
                Routing::fallback(
                    &scheme.policy.fallback,
                    scheme.policy.ring_timeout_secs,
                    failure,
                )
            }
            Err(failure) => Err(failure),
        };
        let result = match scheme.policy.service.remember {
            // A lookup ends by the call's own limit, whatever the store does.
            Some(for_) => {
                self.memory
                    .around(
                        &scheme.name,
                        &call.caller,
                        for_,
                        result,
                        deadline + CALL_GRACE,
                        |d| allowed(scheme, d).is_ok(),
                    )
                    .await
            }
            None => result,
        };
        RouteReport {
            result,
            elapsed: start.elapsed(),
            rejected,
            attempts: recorder.map(|r| r.attempts()).unwrap_or_default(),
        }
    }

    /// A fresh instance of the component for one admitted call (the scheme in `wasi:config`,
    /// the call's outbound door, the limits), what both [`Router::route`] and
    /// [`Router::handle_http`] run. The admission comes back with it, to be dropped after the
    /// sandbox: another call never finds the pool's slot taken.
    async fn sandbox(
        &self,
        scheme: &PreparedScheme,
        purpose: Purpose,
        deadline: Instant,
        door: Door,
        admission: Admission,
    ) -> Result<(Sandbox, Admission), RouteFailure> {
        // What the component reads, and which breakers its requests go through.
        let (vars, breakers) = match purpose {
            Purpose::Route => (&scheme.vars, scheme.breakers()),
            Purpose::Report => (&scheme.report_vars, scheme.report_breakers()),
            // The handler takes outcome reports too, so it is handed the report's fields,
            // unless its contract has no reports (its scheme reader would refuse them).
            Purpose::Http if self.contract().reports() => (&scheme.report_vars, scheme.breakers()),
            Purpose::Http => (&scheme.vars, scheme.breakers()),
        };
        let outbound = Outbound::new(
            scheme.guard.clone(),
            OutboundScheme {
                id: scheme.id,
                breakers: breakers.clone(),
            },
            deadline,
            self.client.clone(),
            door.detail,
        )
        .recording(door.recorder);
        let sandbox = self
            .loaded
            .instantiate(&self.config.limits(), vars.clone(), outbound)
            .await?;
        Ok((sandbox, admission))
    }

    /// A place for one call of `scheme`, held until its store is dropped: within the
    /// scheme's share, then a free slot of the pool; else why not, and its `overloaded`
    /// failure, at once.
    fn admit(&self, scheme: &PreparedScheme) -> Result<Admission, (Rejection, RouteFailure)> {
        let share = scheme.share.try_enter().ok_or_else(|| {
            let failure = overloaded(format_args!(
                "the scheme has all {} of its calls in flight",
                scheme.share.limit()
            ));
            (Rejection::TenantShare, failure)
        })?;
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            let failure = overloaded(format_args!(
                "all {} are routing calls",
                self.config.max_concurrent_calls
            ));
            (Rejection::PoolFull, failure)
        })?;
        Ok(Admission {
            _share: Some(share),
            _work: None,
            _slot: slot,
        })
    }

    /// A free slot of the pool, for work that is not a call (an outcome report): within the
    /// quarter of the pool such work may hold, and no place in the tenant's share of calls, so
    /// reports never hold calls back.
    fn admit_work(&self) -> Result<Admission, RouteFailure> {
        let work = self.work_slots.clone().try_acquire_owned().map_err(|_| {
            overloaded(format_args!(
                "all {} slots for reports are in use",
                self.work_slots_limit()
            ))
        })?;
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            overloaded(format_args!(
                "all {} are routing calls",
                self.config.max_concurrent_calls
            ))
        })?;
        Ok(Admission {
            _share: None,
            _work: Some(work),
            _slot: slot,
        })
    }

    fn work_slots_limit(&self) -> u32 {
        work_slots_limit(&self.config)
    }

    /// Hand one HTTP request to the component's own `wasi:http/incoming-handler` export, the
    /// way `wasmtime serve` runs it (a fresh instance, the scheme in `wasi:config`), and
    /// collect its answer. Bounded like [`Router::route`].
    pub async fn handle_http(
        &self,
        scheme: &PreparedScheme,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<http::Response<bytes::Bytes>, RouteFailure> {
        use http_body_util::BodyExt;
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme as UriScheme;

        let deadline = Instant::now() + scheme.policy.response_timeout;
        let admission = self.admit(scheme).map_err(|(_, failure)| failure)?;
        let work = async {
            let (mut sandbox, _admission) = self
                .sandbox(scheme, Purpose::Http, deadline, Door::default(), admission)
                .await?;
            let request = sandbox
                .store
                .data_mut()
                .http()
                .new_incoming_request(UriScheme::Http, request)
                .map_err(|e| sandbox.trap(e))?;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let out = sandbox
                .store
                .data_mut()
                .http()
                .new_response_outparam(sender)
                .map_err(|e| sandbox.trap(e))?;
            let trap = |what: String| RouteFailure::new(ErrorKind::Trap, what);
            // The handler streams the body after handing over the response: read both at once.
            let answer = async {
                let response = receiver
                    .await
                    .map_err(|_| trap("the component never answered the HTTP request".into()))?
                    .map_err(|code| {
                        trap(format!("the component answered with an error: {code:?}"))
                    })?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| trap(format!("the component's answer body failed: {e:?}")))?
                    .to_bytes();
                Ok::<_, RouteFailure>(http::Response::from_parts(parts, body))
            };
            let (handled, answer) = tokio::join!(sandbox.handle(request, out), answer);
            handled.map_err(|e| sandbox.trap(e))?;
            answer
        };
        within_grace(deadline, work, || {
            "the component's HTTP handler did not finish in time".into()
        })
        .await
    }
}

/// `work`, unless it runs past `deadline` and [`CALL_GRACE`]: then the call is dropped (its
/// store and instance with it) and is a `timeout` saying `late`.
async fn within_grace<T>(
    deadline: Instant,
    work: impl Future<Output = Result<T, RouteFailure>>,
    late: impl FnOnce() -> String,
) -> Result<T, RouteFailure> {
    tokio::time::timeout_at(deadline + CALL_GRACE, work)
        .await
        .unwrap_or_else(|_| Err(RouteFailure::new(ErrorKind::Timeout, late())))
}

/// The host's reason for a refusal or a failed TLS handshake is only known to the host: add it
/// to the error the component made of the bare error code.
fn explain(detail: &DetailSlot, failure: &mut RouteFailure) {
    let mut detail = detail.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = detail.take_if(|d| d.kind == failure.kind) {
        failure.message = format!("{}: {}", failure.message, found.reason);
    }
}

/// What one call's outbound door leaves for the host: the host's reason for a refusal, and
/// the record of its attempts (when they are recorded).
#[derive(Default)]
struct Door {
    detail: DetailSlot,
    recorder: Option<Recorder>,
}

/// What a sandbox is for: it decides what the component is handed and which breakers guard
/// its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A call's routing (`route`).
    Route,
    /// An outcome report (`report`).
    Report,
    /// The component's own HTTP handler, as `wasmtime serve` runs it (routing or a report).
    Http,
}

/// One call's place: in its tenant's share (a call's; not a report's) and in the router's
/// pool.
struct Admission {
    _share: Option<InShare>,
    /// A report's place in the part of the pool reports may take.
    _work: Option<tokio::sync::OwnedSemaphorePermit>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// The permits for a router's calls in flight.
/// The most slots of the pool work that is not a call may hold at once: a quarter, at least one.
fn work_slots_limit(config: &RouterConfig) -> u32 {
    (config.max_concurrent_calls / 4).max(1)
}

/// The permits for that work ([`work_slots_limit`]).
fn work_slots(config: &RouterConfig) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(
        work_slots_limit(config) as usize
    ))
}

fn slots(config: &RouterConfig) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(
        config.max_concurrent_calls.max(1) as usize,
    ))
}

/// The outbound client a router's policy asks for: the CRM over the network, or a canned answer.
fn outbound_client(config: &RouterConfig) -> OutboundClient {
    let policy = AddressPolicy::new(config.allow_private_network);
    match &config.canned_answer {
        Some(answer) => OutboundClient::canned(answer.clone(), policy),
        None => OutboundClient::new(policy, tls_config(&config.extra_roots)),
    }
}

/// Whether `scheme` lets a call go to `destination`: inside its allowlist, or its own fallback.
pub(crate) fn allowed(scheme: &PreparedScheme, destination: &Destination) -> Result<(), String> {
    if scheme.policy.fallback.contains(&destination.target) {
        return Ok(());
    }
    scheme.policy.allowlist.check(&destination.target)
}

/// A component's destinations must be inside the scheme's allowlist or be the scheme's own
/// fallback: a component loaded with `--plugin` is not trusted to have applied either. One
/// outside both is left out (refused, saying why); none left is a `bad-response`, and the call
/// gets the scheme's fallback.
fn check_allowlist(scheme: &PreparedScheme, mut routing: Routing) -> Result<Routing, RouteFailure> {
    let mut first_reason = None;
    let destinations = std::mem::take(&mut routing.destinations);
    for destination in destinations {
        match allowed(scheme, &destination) {
            Ok(()) => routing.destinations.push(destination),
            Err(reason) => {
                routing
                    .refused
                    .push(Refused::new(destination.target.value(), reason.clone()));
                first_reason.get_or_insert(reason);
            }
        }
    }
    if routing.destinations.is_empty() {
        return Err(RouteFailure::new(
            ErrorKind::BadResponse,
            format!(
                "the component's destination was refused: {}",
                first_reason.unwrap_or_default()
            ),
        ));
    }
    Ok(routing)
}

mod report;

pub use report::ReportAttempt;

#[cfg(test)]
mod tests;
