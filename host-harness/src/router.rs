//! Loading the routing component once and running every call in a fresh sandbox.
//!
//! [`Router::new`] compiles the component and links it once (`InstancePre`); each
//! [`Router::route`] creates a new store and instance holding only that call's scheme (in
//! `wasi:config`), its outbound door ([`Outbound`]) and its limits, and drops them when the
//! answer is in. Nothing is shared between calls, so nothing leaks between tenants.
//!
//! The host never trusts the component to keep time: the whole call is capped at the
//! scheme's `response_timeout_secs` plus [`CALL_GRACE`], and a running component yields to
//! the executor on every epoch tick so the cap can fire even while it computes.

use crate::EMBEDDED_PLUGIN;
use crate::bindings::{PluginPre, wit};
use crate::guard::AddressPolicy;
use crate::guard::OutboundGuard;
use crate::outbound::{CannedAnswer, DetailSlot, Outbound, OutboundClient, tls_config};
use crate::report::{RouteFailure, RouteReport};
use callroute_plugin::call::Call;
use callroute_plugin::destination::{Destination, Target};
use callroute_plugin::error::{ErrorKind, RouteError, excerpt};
use callroute_plugin::routing::Routing;
use callroute_plugin::scheme::{
    Allowlist, DEFAULT_RESPONSE_TIMEOUT, Endpoint, format_seconds, parse_allowlist, parse_fallback,
    parse_response_timeout, ring_timeout_of,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Time allowed beyond `response_timeout_secs` for creating the instance and reading the
/// answer, before the host gives up on the call itself.
pub const CALL_GRACE: Duration = Duration::from_millis(250);
/// How often the epoch advances; a running component yields to the executor at each tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Default cap on a call instance's linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Default CPU budget of one call: routing takes well under a millisecond of guest time.
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_millis(200);
/// Most bytes of a component's stderr kept to explain a crash.
const STDERR_CAPTURE: usize = 4096;

/// Host policy shared by every call.
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
        }
    }
}

/// A component that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component, or it does not fit the `plugin` world.
    #[error("cannot load the routing component: {0:#}")]
    Component(wasmtime::Error),
    /// The engine could not be configured.
    #[error("cannot configure the wasm engine: {0:#}")]
    Engine(wasmtime::Error),
}

/// A scheme ready to route with: its flat keys for `wasi:config`, and what the host itself
/// needs from it (the endpoints the sandbox may reach, the deadline, the static fallback).
#[derive(Clone)]
pub struct PreparedScheme {
    /// This scheme's identity (see [`identity`]): its calls share keep-alive connections
    /// with each other and with no other scheme.
    id: u64,
    /// Why the scheme cannot be used at all (an unresolvable secret reference).
    problem: Option<String>,
    vars: Arc<WasiConfigVariables>,
    /// The endpoints the sandbox may reach, checked on every request of every call.
    guard: Arc<OutboundGuard>,
    response_timeout: Duration,
    fallback: Vec<Target>,
    /// Where the component may route: checked on the host too (see [`check_allowlist`]).
    allowlist: Arc<Allowlist>,
    ring_timeout_secs: u32,
}

impl PreparedScheme {
    /// Prepare flat scheme pairs. The host reads only what it enforces itself, with the
    /// component's own field parsers: `url` and `fallback_url` (the only endpoints the sandbox
    /// may reach), `response_timeout_secs` (the deadline), `fallback` (what a call gets when
    /// the component cannot answer), and `allowed_prefixes`/`allowed_sip_domains` (where it
    /// may route). Judging the rest is the component's job, so an invalid scheme is reported by
    /// the component as a `config` error naming the field, and when the URL is invalid the
    /// guard lets nothing out.
    ///
    /// `${env:NAME}` references are resolved here ([`crate::secrets`]); one that cannot be, or
    /// an allowlist that cannot be read, is a `config` failure of every call.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let (pairs, problem) = match crate::secrets::resolve(pairs.clone()) {
            Ok(resolved) => (resolved, None),
            Err(problem) => (pairs, Some(problem)),
        };
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let endpoints = ["url", "fallback_url"]
            .into_iter()
            .filter_map(|name| field(name).and_then(|url| Endpoint::parse(url.trim()).ok()))
            .collect();
        let pair_refs = pairs.iter().map(|(k, v)| (k, v));
        // An allowlist the host cannot read fails every call: it would otherwise hold a
        // component to nothing.
        let allowlist = parse_allowlist(pair_refs.clone());
        let problem = problem.or_else(|| allowlist.as_ref().err().map(ToString::to_string));
        PreparedScheme {
            id: identity(&pairs),
            problem,
            guard: Arc::new(OutboundGuard::new(endpoints)),
            response_timeout: field("response_timeout_secs")
                .and_then(|t| parse_response_timeout(t).ok())
                .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
            fallback: parse_fallback(pair_refs.clone()).unwrap_or_default(),
            allowlist: Arc::new(allowlist.unwrap_or_default()),
            ring_timeout_secs: ring_timeout_of(pair_refs),
            vars: Arc::new(pairs.into_iter().collect()),
        }
    }

    /// The longest the CRM may take.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Why this scheme cannot route anything, if so.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

/// A scheme's identity: a hash of all its pairs, its name among them, so two tenants never
/// share connections, while the same scheme prepared again (per call, or at a reload) finds
/// its connections where it left them.
fn identity(pairs: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    pairs.hash(&mut hasher);
    hasher.finish()
}

/// The per-call store data: a bare WASI context (no files, sockets, env or args), the HTTP
/// context with this call's outbound door, the scheme, and limits.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: Outbound,
    config: Arc<WasiConfigVariables>,
    limits: StoreLimits,
    /// The time the component has spent running.
    cpu: CpuMeter,
}

/// The time a call's component spends running wasm code, measured at each transition between
/// wasm and the host (wasmtime's call hook). Time in host calls, waiting on the CRM above all,
/// is not counted, however often the component is woken.
#[derive(Debug, Default)]
struct CpuMeter {
    /// Time counted so far, not including the current stretch.
    used: Duration,
    /// When the component started running this stretch, while it runs.
    running_since: Option<std::time::Instant>,
}

impl CpuMeter {
    /// Account a transition: wasm starts or resumes running, or stops (calls the host, returns).
    fn on(&mut self, hook: wasmtime::CallHook) {
        let now = std::time::Instant::now();
        if let Some(since) = self.running_since.take() {
            self.used += now - since;
        }
        if hook.exiting_host() {
            self.running_since = Some(now);
        }
    }

    /// The time used so far, the current stretch included.
    fn used(&self) -> Duration {
        self.used
            + self
                .running_since
                .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

/// A call's component ran longer than its CPU budget.
#[derive(Debug, thiserror::Error)]
#[error("the component ran for more than its CPU budget of {} ms", .0.as_millis())]
struct CpuBudgetExceeded(Duration);

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Advances the engine's epoch on a background thread until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("callroute-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every call shares: the compiled, linked component and the engine's clock.
struct Loaded {
    engine: Engine,
    pre: PluginPre<CallState>,
    _ticker: EpochTicker,
}

/// The loaded routing component and the host policy: route any number of calls, concurrently.
/// Cloning is cheap and shares the compiled component.
#[derive(Clone)]
pub struct Router {
    loaded: Arc<Loaded>,
    config: RouterConfig,
    client: OutboundClient,
    /// One permit per call this router may route at once: a call that finds none is
    /// `overloaded` at once, rather than failing inside the allocator as if it had crashed.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Router {
    /// Load the component embedded in this binary.
    pub fn embedded(config: RouterConfig) -> Result<Router, LoadError> {
        Router::new(EMBEDDED_PLUGIN, config)
    }

    /// Compile and link a component (binary `.wasm`) of the `plugin` world.
    pub fn new(wasm: &[u8], config: RouterConfig) -> Result<Router, LoadError> {
        let engine = Engine::new(&engine_config(&config)).map_err(LoadError::Engine)?;
        let (component, source) = crate::cache::load(&engine, wasm, config.cache_dir.as_deref())
            .map_err(LoadError::Component)?;
        tracing::debug!(?source, "component ready");
        Router::from_component(engine, &component, config)
    }

    /// Link an already compiled component (see [`engine_config`]).
    pub fn from_component(
        engine: Engine,
        component: &Component,
        config: RouterConfig,
    ) -> Result<Router, LoadError> {
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Component)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(LoadError::Component)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s| WasiConfig::new(&s.config))
            .map_err(LoadError::Component)?;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(LoadError::Component)?;
        let pre = PluginPre::new(instance_pre).map_err(LoadError::Component)?;
        Ok(Router {
            loaded: Arc::new(Loaded {
                _ticker: EpochTicker::start(engine.clone()),
                engine,
                pre,
            }),
            client: outbound_client(&config),
            slots: slots(&config),
            config,
        })
    }

    /// The same component under another host policy.
    pub fn with_config(&self, config: RouterConfig) -> Router {
        Router {
            loaded: self.loaded.clone(),
            client: outbound_client(&config),
            slots: slots(&config),
            config,
        }
    }

    /// The engine, configured for routing components.
    pub fn engine(&self) -> &Engine {
        &self.loaded.engine
    }

    /// Route one call in a fresh instance. Always returns: a destination or a typed failure,
    /// within the scheme's `response_timeout_secs` plus [`CALL_GRACE`].
    pub async fn route(&self, scheme: &PreparedScheme, call: &Call) -> RouteReport {
        let start = Instant::now();
        if let Some(problem) = &scheme.problem {
            return RouteReport {
                result: Err(RouteFailure::new(ErrorKind::Config, problem.clone())),
                elapsed: start.elapsed(),
            };
        }
        let deadline = start + scheme.response_timeout;
        let detail = DetailSlot::default();
        let result = match tokio::time::timeout_at(
            deadline + CALL_GRACE,
            self.run(scheme, call, deadline, detail.clone()),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(RouteFailure::new(
                ErrorKind::Timeout,
                format!(
                    "no answer within {} s; the host stopped the call",
                    format_seconds(scheme.response_timeout)
                ),
            )),
        };
        // The host's reason for a refusal or a failed TLS handshake is only known here: add it
        // to the error the component made of the bare error code.
        let explain = |failure: &mut RouteFailure| {
            let mut detail = detail.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = detail.take_if(|d| d.kind == failure.kind) {
                failure.message = format!("{}: {}", failure.message, found.reason);
            }
        };
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
                Routing::fallback(&scheme.fallback, scheme.ring_timeout_secs, failure)
            }
            Err(failure) => Err(failure),
        };
        RouteReport {
            result,
            elapsed: start.elapsed(),
        }
    }

    /// A fresh store for one call: the scheme in `wasi:config`, the outbound door, limits,
    /// and a yield at every epoch tick. Also returns the component's captured stderr.
    fn new_store(
        &self,
        scheme: &PreparedScheme,
        deadline: Instant,
        detail: DetailSlot,
    ) -> (Store<CallState>, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let state = CallState {
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(
                scheme.guard.clone(),
                scheme.id,
                deadline,
                self.client.clone(),
                detail,
            ),
            config: scheme.vars.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.config.memory_limit)
                .instances(8)
                .build(),
            cpu: CpuMeter::default(),
        };
        let mut store = Store::new(&self.loaded.engine, state);
        store.limiter(|s| &mut s.limits);
        store.call_hook(|mut ctx, hook| {
            ctx.data_mut().cpu.on(hook);
            Ok(())
        });
        // At every epoch tick the running component is held to its CPU budget; within it, it
        // yields, so the executor (and the call's deadline) keep going.
        let cpu_limit = self.config.cpu_limit;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if ctx.data().cpu.used() > cpu_limit {
                return Err(CpuBudgetExceeded(cpu_limit).into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        (store, stderr)
    }

    async fn run(
        &self,
        scheme: &PreparedScheme,
        call: &Call,
        deadline: Instant,
        detail: DetailSlot,
    ) -> Result<Routing, RouteFailure> {
        let _slot = self.slot()?;
        let (mut store, stderr) = self.new_store(scheme, deadline, detail);
        let trap = |error: wasmtime::Error| trap_failure(error, &stderr);
        let plugin = self
            .loaded
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(trap)?;
        let call = wit::Call {
            call_id: call.call_id.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            vars: call.vars.clone(),
        };
        let answer = plugin
            .callroute_router_router()
            .call_route(&mut store, &call)
            .await
            .map_err(trap)?;
        match answer {
            Ok(routing) => routing_from_wit(routing),
            Err(error) => Err(error_from_wit(error).into()),
        }
    }

    /// A free instance slot for one call, held until the call's store is dropped.
    fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, RouteFailure> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            overloaded(format_args!(
                "all {} are routing calls",
                self.config.max_concurrent_calls
            ))
        })
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

        let deadline = Instant::now() + scheme.response_timeout;
        let _slot = self.slot()?;
        let (mut store, stderr) = self.new_store(scheme, deadline, DetailSlot::default());
        let trap = |error: wasmtime::Error| trap_failure(error, &stderr);
        let work = async {
            let plugin = self
                .loaded
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(trap)?;
            let request = store
                .data_mut()
                .http()
                .new_incoming_request(UriScheme::Http, request)
                .map_err(trap)?;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let out = store
                .data_mut()
                .http()
                .new_response_outparam(sender)
                .map_err(trap)?;
            // The handler streams the body after handing over the response: read both at once.
            let handle = plugin
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out);
            let answer = async {
                let response = receiver
                    .await
                    .map_err(|_| {
                        RouteFailure::new(
                            ErrorKind::Trap,
                            "the component never answered the HTTP request",
                        )
                    })?
                    .map_err(|code| {
                        RouteFailure::new(
                            ErrorKind::Trap,
                            format!("the component answered with an error: {code:?}"),
                        )
                    })?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| {
                        RouteFailure::new(
                            ErrorKind::Trap,
                            format!("the component's answer body failed: {e:?}"),
                        )
                    })?
                    .to_bytes();
                Ok::<_, RouteFailure>(http::Response::from_parts(parts, body))
            };
            let (handled, answer) = tokio::join!(handle, answer);
            handled.map_err(trap)?;
            answer
        };
        tokio::time::timeout_at(deadline + CALL_GRACE, work)
            .await
            .unwrap_or_else(|_| {
                Err(RouteFailure::new(
                    ErrorKind::Timeout,
                    "the component's HTTP handler did not finish in time",
                ))
            })
    }
}

/// Default for [`RouterConfig::max_concurrent_calls`]: the size of the instance pool. A call
/// beyond it is answered at once as `overloaded` (and gets the scheme's fallback).
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 1000;

/// The permits for a router's calls in flight.
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

/// How much of a pooled memory or table slot is kept resident between calls (see
/// [`engine_config`]); a call that dirtied more has the rest decommitted.
const KEEP_RESIDENT: usize = 1024 * 1024;

/// The engine configuration every router uses: async with epoch interruption, and wasmtime's
/// pooling allocator, so a call's fresh instance comes from preallocated slots (memory reset
/// copy-on-write) instead of new mappings.
pub fn engine_config(router: &RouterConfig) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let memory = router.memory_limit.max(64 * 1024);
    let calls = router.max_concurrent_calls.max(1);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        .total_core_instances(calls * 4)
        .total_memories(calls)
        .total_tables(calls * 4)
        .total_stacks(calls)
        .max_memory_size(memory)
        // A call touches a few dozen pages. Resetting just those with `memcpy` when the
        // instance is dropped (Linux's PAGEMAP_SCAN finds them) instead of `madvise` on the
        // whole slot spares a third of a call's sandbox cost: the syscall, the TLB shootdown,
        // and the page faults of the next call in that slot.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    // Reserve only what a call may use: a thousand slots of 4 GiB would be address space
    // wasted; the bounds checks this costs are noise next to the CRM round trip.
    config.memory_reservation(memory as u64);
    config
}

/// A component's routing, every destination re-validated (see [`destination_from_wit`]).
fn routing_from_wit(routing: wit::Routing) -> Result<Routing, RouteFailure> {
    Ok(Routing {
        destination: destination_from_wit(routing.destination)?,
        alternatives: routing
            .alternatives
            .into_iter()
            .map(destination_from_wit)
            .collect::<Result<_, _>>()?,
        fallback_cause: routing.fallback_cause.map(|e| error_from_wit(e).into()),
    })
}

/// A component's destinations must be inside the scheme's allowlist or be the scheme's own
/// fallback: a component loaded with `--plugin` is not trusted to have applied either. One
/// outside both is a `bad-response`, and the call gets the scheme's fallback.
fn check_allowlist(scheme: &PreparedScheme, routing: Routing) -> Result<Routing, RouteFailure> {
    for destination in std::iter::once(&routing.destination).chain(&routing.alternatives) {
        if scheme.fallback.contains(&destination.target) {
            continue;
        }
        scheme
            .allowlist
            .check(&destination.target)
            .map_err(|reason| {
                RouteFailure::new(
                    ErrorKind::BadResponse,
                    format!("the component's destination was refused: {reason}"),
                )
            })?;
    }
    Ok(routing)
}

/// A component's answer is re-validated on the host: a component loaded with `--plugin` is
/// not trusted to have checked what it returns.
fn destination_from_wit(destination: wit::Destination) -> Result<Destination, RouteFailure> {
    let (raw, sip) = match destination.target {
        wit::Target::Phone(p) => (p, false),
        wit::Target::Sip(s) => (s, true),
    };
    let target = Target::parse(&raw).map_err(|reason| {
        RouteFailure::new(
            ErrorKind::BadResponse,
            format!("the component returned an invalid destination: {reason}"),
        )
    })?;
    if matches!(target, Target::Sip(_)) != sip {
        return Err(RouteFailure::new(
            ErrorKind::BadResponse,
            format!(
                "the component returned `{}` as the wrong kind of destination",
                excerpt(&raw, 64)
            ),
        ));
    }
    Ok(Destination {
        target,
        ring_timeout_secs: destination.ring_timeout_secs,
    })
}

fn error_from_wit(error: wit::RouteError) -> RouteError {
    match error {
        wit::RouteError::Config(m) => RouteError::Config(m),
        wit::RouteError::Denied(m) => RouteError::Denied(m),
        wit::RouteError::Timeout(m) => RouteError::Timeout(m),
        wit::RouteError::Transport(m) => RouteError::Transport(m),
        wit::RouteError::HttpStatus(e) => RouteError::HttpStatus {
            status: e.status,
            message: e.message,
        },
        wit::RouteError::BadResponse(m) => RouteError::BadResponse(m),
        wit::RouteError::NoDestination(m) => RouteError::NoDestination(m),
    }
}

/// A crash or broken limit inside the component, in one line, with what it printed (a Rust
/// panic message); the full error, with its wasm backtrace, is logged at debug level. The pool
/// having no free slot is not the component's doing: that is `overloaded`.
fn trap_failure(error: wasmtime::Error, stderr: &MemoryOutputPipe) -> RouteFailure {
    if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return overloaded(full.to_string());
    }
    tracing::debug!(error = ?error, "component trapped");
    let reason = match (
        error.downcast_ref::<wasmtime::Trap>(),
        error.downcast_ref::<CpuBudgetExceeded>(),
    ) {
        (Some(trap), _) => trap.to_string(),
        (None, Some(budget)) => budget.to_string(),
        (None, None) => error.root_cause().to_string(),
    };
    let reason = reason.lines().next().unwrap_or_default();
    let said = String::from_utf8_lossy(&stderr.contents()).into_owned();
    // Rust's advice to set RUST_BACKTRACE is no use to whoever reads the error.
    let said = said
        .split("\nnote: run with `RUST_BACKTRACE")
        .next()
        .unwrap_or_default()
        .trim();
    let message = if said.is_empty() {
        format!("the component crashed: {reason}")
    } else {
        format!(
            "the component crashed: {reason}; it said: {}",
            excerpt(said, 300)
        )
    };
    tracing::warn!(%message, "component trapped");
    RouteFailure::new(ErrorKind::Trap, message)
}

/// A call the host has no room for: answered at once, never queued past its deadline.
fn overloaded(reason: impl std::fmt::Display) -> RouteFailure {
    RouteFailure::new(
        ErrorKind::Overloaded,
        format!("no sandbox free for this call: {reason}"),
    )
}
