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
use crate::admission::{InShare, Rejection, Share};
use crate::bindings::{Plugin, PluginPre, v0_1, wit};
use crate::exchange::Recorder;
use crate::guard::AddressPolicy;
use crate::guard::OutboundGuard;
use crate::memory::Memory;
use crate::outbound::breaker::{BreakerSettings, Breakers};
use crate::outbound::{
    CannedAnswer, DetailSlot, Outbound, OutboundClient, OutboundScheme, tls_config,
};
use crate::report::{RouteFailure, RouteReport};
use crate::sandbox::convert::{
    error_from_v0_1, error_from_wit, routing_from_v0_1, routing_from_wit,
};
use crate::sandbox::engine::EpochTicker;
use crate::sandbox::store::{CallState, new_store, overloaded, trap_failure};
use callroute_plugin::call::Call;
use callroute_plugin::destination::{Destination, Refused};
use callroute_plugin::error::ErrorKind;
use callroute_plugin::routing::Routing;
use callroute_plugin::scheme::{HostPolicy, format_seconds};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::WasiHttpView;

pub use crate::sandbox::engine::{EPOCH_TICK, engine_config};

/// Time allowed beyond `response_timeout_secs` for creating the instance and reading the
/// answer, before the host gives up on the call itself.
pub const CALL_GRACE: Duration = Duration::from_millis(250);
/// Default cap on a call instance's linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Default CPU budget of one call: routing takes well under a millisecond of guest time.
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_millis(200);

/// The router's settings, the same for every call and scheme: the sandbox's limits, the
/// network policy, the pool's size. (What a scheme asks of the host is its [`HostPolicy`].)
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
/// enforces ([`HostPolicy`]: the endpoints the sandbox may reach, the deadline, the static
/// fallback, the allowlist).
#[derive(Clone)]
pub struct PreparedScheme {
    /// This scheme's identity (see [`identity`]): its calls share keep-alive connections
    /// with each other and with no other scheme.
    id: u64,
    /// Why the scheme cannot be used at all (an unresolvable secret reference, or a policy
    /// field that cannot be read).
    problem: Option<String>,
    vars: Arc<WasiConfigVariables>,
    /// The endpoints the sandbox may reach, checked on every request of every call.
    guard: Arc<OutboundGuard>,
    /// What the host enforces, whatever the component does.
    policy: Arc<HostPolicy>,
    /// The scheme's name (`name`; empty when it has none), for logs.
    name: Arc<str>,
    /// Its calls in flight, held to its `max_concurrent_calls` or the service's default share.
    share: Arc<Share>,
    /// Its CRM endpoints' circuit breakers, shared by all its calls.
    breakers: Arc<Breakers>,
    /// Its secrets' values, masked wherever a record of its exchanges would show them.
    secrets: Arc<[String]>,
    /// Its settings as an operator may see them (see [`PreparedScheme::settings`]).
    settings: Arc<[(String, String)]>,
}

impl PreparedScheme {
    /// Prepare flat scheme pairs. The host reads only what it enforces itself, its
    /// [`HostPolicy`], with the component's own code and rules: `url` and `fallback_url` (the
    /// only endpoints the sandbox may reach), `response_timeout_secs` (the deadline),
    /// `fallback` and `ring_timeout_secs` (what a call gets when the component cannot
    /// answer), and `allowed_prefixes`/`allowed_sip_domains` (where it may route). Judging the
    /// other fields is the component's job (a component loaded with `--plugin` may read keys
    /// of its own), so a scheme invalid there is reported by the component as a `config`
    /// error naming the field.
    ///
    /// `${env:NAME}` references are resolved here ([`crate::secrets`]); one that cannot be, or
    /// a policy field that cannot be read, is a `config` failure of every call (a fallback or
    /// an allowlist the host cannot read cannot be applied, and the guard lets nothing out).
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        // The component reads the scheme from `wasi:config`, a map, where a key given twice
        // is there once, with its last value: the host reads exactly those pairs.
        let pairs = last_value_of_each_key(pairs);
        let referenced = crate::secrets::referenced_values(&pairs);
        let written = pairs.clone();
        let (pairs, problem) = match crate::secrets::resolve(pairs.clone()) {
            Ok(resolved) => (resolved, None),
            Err(problem) => (pairs, Some(problem)),
        };
        let (policy, problem) = match HostPolicy::from_pairs(pairs.iter().map(|(k, v)| (k, v))) {
            Ok(policy) => (policy, problem),
            Err(error) => (HostPolicy::default(), problem.or(Some(error.to_string()))),
        };
        let name: Arc<str> = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .map_or("", |(_, v)| v.as_str())
            .into();
        let service = &policy.service;
        let breakers = Breakers::new(
            &name,
            BreakerSettings {
                failures: service.breaker_failures,
                cooldown: service.breaker_cooldown,
            },
        );
        // The component needs none of the service's settings, and the tokens are secrets.
        // `remember_secs` is the host's alone (and a 0.1.0 component would refuse it).
        let vars = pairs
            .iter()
            .filter(|(k, _)| {
                k != "api_tokens" && !k.starts_with("api_tokens.") && k != "remember_secs"
            })
            .cloned()
            .collect();
        let secrets = secret_values(&pairs, referenced);
        PreparedScheme {
            settings: shown_settings(&written, &secrets),
            secrets,
            id: identity(&pairs),
            problem,
            guard: Arc::new(OutboundGuard::new(policy.endpoints())),
            share: Share::new(service.max_concurrent_calls.unwrap_or(u32::MAX)),
            breakers,
            name,
            policy: Arc::new(policy),
            vars: Arc::new(vars),
        }
    }

    /// This scheme as the next version of `old` (the same tenant, changed fields): the calls
    /// `old` still has in flight count against this one's share, and its breakers carry on
    /// if their settings are the same.
    pub fn carry_over(mut self, old: &PreparedScheme) -> PreparedScheme {
        let limit = self.share.limit();
        self.share = old.share.clone();
        self.share.set_limit(limit);
        if self.breakers.settings() == old.breakers.settings() {
            self.breakers = old.breakers.clone();
        }
        self
    }

    /// A place in this scheme's share, as a call takes one.
    #[cfg(test)]
    pub(crate) fn admit_for_test(&self) -> InShare {
        self.share.try_enter().expect("room in the share")
    }

    /// Hold this scheme to `limit` calls in flight, unless it sets its own
    /// `max_concurrent_calls` (a service gives each tenant a default share of its pool).
    pub fn set_default_share(&self, limit: u32) {
        if self.policy.service.max_concurrent_calls.is_none() {
            self.share.set_limit(limit);
        }
    }

    /// What the host enforces for this scheme.
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// Its calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.share.in_flight()
    }

    /// The most calls it may have in flight.
    pub fn share_limit(&self) -> u32 {
        self.share.limit()
    }

    /// Its CRM endpoints' breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// The longest the CRM may take.
    pub fn response_timeout(&self) -> Duration {
        self.policy.response_timeout
    }

    /// This scheme's identity: the same pairs (secrets resolved) give the same identity.
    pub fn identity(&self) -> u64 {
        self.id
    }

    /// Its settings as an operator may see them (`serve`'s admin API and console): every key
    /// in the order written, with its value as written (an `${env:…}` reference, not its
    /// value) for the fields known to hold nothing secret; the URLs with the values of their
    /// query and any user information as [`crate::exchange::MASK`]; a parameter whose value
    /// is only placeholders (`{caller}`) as it is; and every other value (headers, the
    /// signing secret, tokens, literal parameters, keys the host does not know) as the mask.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// Its secrets' values, as a record of its exchanges masks them
    /// ([`crate::exchange::record_of`]).
    pub fn secrets(&self) -> Arc<[String]> {
        self.secrets.clone()
    }

    /// Why this scheme cannot route anything, if so.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

impl std::fmt::Debug for PreparedScheme {
    /// The scheme's name and identity, never its values (they hold secrets).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedScheme")
            .field("name", &self.name)
            .field("identity", &self.id)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

/// Every value of a scheme a record must not show: what `${env:…}` references resolved to,
/// header values, signing secrets, tokens, and the values in its URLs' queries.
fn secret_values(pairs: &[(String, String)], mut secrets: Vec<String>) -> Arc<[String]> {
    for (key, value) in pairs {
        if is_secret_field(key) {
            secrets.push(value.clone());
            // `Bearer <token>`: the token alone too, should a CRM echo it.
            secrets.extend(
                value
                    .split_whitespace()
                    .filter(|word| word.len() >= 8)
                    .map(str::to_owned),
            );
        } else if is_url_field(key)
            && let Some((_, query)) = value.split_once('?')
        {
            let query = query.split('#').next().unwrap_or_default();
            secrets.extend(form_urlencoded::parse(query.as_bytes()).map(|(_, v)| v.into_owned()));
        }
    }
    // Too short to mask without masking everything else too.
    secrets.retain(|s| s.chars().count() >= 4);
    // As a form body or a query writes them, and as a JSON string does.
    let encoded: Vec<String> = secrets
        .iter()
        .flat_map(|secret| {
            let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let json = serde_json::to_string(secret).unwrap_or_default();
            [form, json.trim_matches('"').to_owned()]
        })
        .filter(|variant| !secrets.contains(variant))
        .collect();
    secrets.extend(encoded);
    // Longest first: a secret that contains another is masked whole. (Equal ones side by
    // side, so that each is kept once.)
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets.into()
}

/// A field whose whole value is a secret: a header's value, the signing secret, an API token.
fn is_secret_field(key: &str) -> bool {
    ["headers.", "signing_secret", "api_tokens"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// A field holding a CRM's URL, whose query may carry a token.
fn is_url_field(key: &str) -> bool {
    key == "url" || key == "fallback_url"
}

/// The fields known to hold nothing secret, shown as written (lists item by item).
const PLAIN_FIELDS: &[&str] = &[
    "name",
    "method",
    "submission",
    "import",
    "destination_field",
    "jsonrpc_method",
    "retries",
    "response_timeout_secs",
    "ring_timeout_secs",
    "fallback",
    "allowed_prefixes",
    "allowed_sip_domains",
    "max_concurrent_calls",
    "breaker_failures",
    "breaker_cooldown_secs",
];

/// Whether `key` is one of [`PLAIN_FIELDS`], or an item of one (`fallback.0`).
fn is_plain_field(key: &str) -> bool {
    let (field, item) = key.split_once('.').unwrap_or((key, "0"));
    PLAIN_FIELDS.contains(&field) && item.parse::<usize>().is_ok()
}

/// The settings an operator may see (see [`PreparedScheme::settings`]), from the pairs as
/// written.
fn shown_settings(written: &[(String, String)], secrets: &[String]) -> Arc<[(String, String)]> {
    use crate::exchange::{MASK, mask_secrets};
    written
        .iter()
        .map(|(key, value)| {
            let shown = if is_plain_field(key) {
                value.clone()
            } else if is_url_field(key) {
                url_shown(value)
            } else if key.starts_with("params.") && only_placeholders(value) {
                value.clone()
            } else {
                MASK.to_owned()
            };
            // A literal that happens to be a secret's value is masked too.
            (key.clone(), mask_secrets(shown, secrets))
        })
        .collect()
}

/// A URL with its user information and its query's values masked.
fn url_shown(url: &str) -> String {
    use crate::exchange::MASK;
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            match authority.rfind('@') {
                Some(at) => format!("{scheme}://{MASK}{}", &rest[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    if let Some(query) = query {
        let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| format!("{name}={MASK}"))
            .collect();
        shown.push('?');
        shown.push_str(&names.join("&"));
    }
    shown
}

/// Whether a parameter's template is only placeholders (`{caller}`, `+{callee}`): nothing
/// literal in it could be a key.
fn only_placeholders(template: &str) -> bool {
    let mut depth = 0usize;
    for c in template.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 && c.is_alphanumeric() => return false,
            _ => {}
        }
    }
    true
}

/// `pairs` with each key once, in the place it first came, with the value it last had.
fn last_value_of_each_key(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut distinct: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    let mut index = std::collections::HashMap::new();
    for (key, value) in pairs {
        match index.get(&key) {
            Some(&i) => distinct[i] = (key, value),
            None => {
                index.insert(key.clone(), distinct.len());
                distinct.push((key, value));
            }
        }
    }
    distinct
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

/// What every call shares: the compiled, linked component and the engine's clock.
struct Loaded {
    engine: Engine,
    pre: Pre,
    _ticker: EpochTicker,
}

/// A linked component, by the contract it implements.
enum Pre {
    /// `callroute:router@0.2.0`, this host's.
    Current(PluginPre<CallState>),
    /// `callroute:router@0.1.0`: one destination and its alternatives.
    V0_1(v0_1::PluginPre<CallState>),
}

/// One call's instance of the component.
enum Instance {
    Current(Plugin),
    V0_1(v0_1::Plugin),
}

/// The loaded routing component and the host policy: route any number of calls, concurrently.
/// Cloning is cheap and shares the compiled component.
#[derive(Clone)]
pub struct Router {
    loaded: Arc<Loaded>,
    config: RouterConfig,
    client: OutboundClient,
    /// Where the CRM last routed each caller, for schemes with `remember_secs`
    /// ([`crate::memory`]); in-process unless [`Router::with_memory`] says otherwise.
    memory: Memory,
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
        // This host's contract first; a component built against 0.1.0 still loads.
        let pre = match PluginPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Current(pre),
            Err(current) => match v0_1::PluginPre::new(instance_pre) {
                Ok(pre) => {
                    tracing::info!(
                        "the component implements callroute:router@0.1.0: each call gets its \
                         one destination and alternatives, rung in turn"
                    );
                    Pre::V0_1(pre)
                }
                Err(_) => return Err(LoadError::Component(current)),
            },
        };
        Ok(Router {
            loaded: Arc::new(Loaded {
                _ticker: EpochTicker::start(engine.clone()),
                engine,
                pre,
            }),
            client: outbound_client(&config),
            slots: slots(&config),
            memory: Memory::local(
                crate::memory::DEFAULT_MAX_ENTRIES,
                crate::memory::DEFAULT_MAX_BYTES,
            ),
            config,
        })
    }

    /// The same component under another host policy.
    pub fn with_config(&self, config: RouterConfig) -> Router {
        Router {
            loaded: self.loaded.clone(),
            client: outbound_client(&config),
            slots: slots(&config),
            memory: self.memory.clone(),
            config,
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

    /// The same router (its pool, its limits), answering every webhook itself with `answer`
    /// instead of calling the CRM ([`CannedAnswer`]): to try a scheme on a sample answer.
    pub fn answering_with(&self, answer: CannedAnswer) -> Router {
        let mut router = self.clone();
        router.config.canned_answer = Some(answer);
        router.client = outbound_client(&router.config);
        // A sample answer is not the CRM's: nothing is remembered from it, or recalled.
        router.memory = Memory::off();
        router
    }

    /// The same router, recording each call's exchange in its report
    /// ([`RouterConfig::record_exchanges`]); it shares everything else with this one.
    pub fn recording_exchanges(&self) -> Router {
        let mut router = self.clone();
        router.config.record_exchanges = true;
        router
    }

    /// The most calls this router runs at once (its pool).
    pub fn max_concurrent_calls(&self) -> u32 {
        self.config.max_concurrent_calls
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
                rejected: None,
                attempts: Vec::new(),
            };
        }
        let deadline = start + scheme.policy.response_timeout;
        let detail = DetailSlot::default();
        let recorder = self
            .config
            .record_exchanges
            .then(|| Recorder::new(scheme.secrets.clone()));
        let mut rejected = None;
        let result = match self.admit(scheme) {
            Ok(admission) => {
                let door = Door {
                    detail: detail.clone(),
                    recorder: recorder.clone(),
                };
                within_grace(
                    deadline,
                    self.run(scheme, call, deadline, door, admission),
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

    async fn run(
        &self,
        scheme: &PreparedScheme,
        call: &Call,
        deadline: Instant,
        door: Door,
        admission: Admission,
    ) -> Result<Routing, RouteFailure> {
        // The admission is bound first so that it is dropped last, after the store has given
        // its instance back to the pool: another call never finds the slot taken.
        let Sandbox {
            _admission,
            mut store,
            plugin,
            stderr,
        } = self.sandbox(scheme, deadline, door, admission).await?;
        let call = wit::Call {
            call_id: call.call_id.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            vars: call.vars.clone(),
        };
        let trap = |error| trap_failure(error, &stderr);
        match plugin {
            Instance::Current(plugin) => {
                match plugin
                    .callroute_router_router()
                    .call_route(&mut store, &call)
                    .await
                    .map_err(trap)?
                {
                    Ok(routing) => routing_from_wit(routing),
                    Err(error) => Err(error_from_wit(error).into()),
                }
            }
            Instance::V0_1(plugin) => {
                let call = v0_1::wit::Call {
                    call_id: call.call_id,
                    caller: call.caller,
                    callee: call.callee,
                    vars: call.vars,
                };
                match plugin
                    .callroute_router0_1_0_router()
                    .call_route(&mut store, &call)
                    .await
                    .map_err(trap)?
                {
                    Ok(routing) => routing_from_v0_1(routing),
                    Err(error) => Err(error_from_wit(error_from_v0_1(error)).into()),
                }
            }
        }
    }

    /// A fresh instance of the component in a new store for one admitted call (the scheme in
    /// `wasi:config`, the call's outbound door, the limits), what both [`Router::route`] and
    /// [`Router::handle_http`] run; a failure to instantiate is a trap ([`trap_failure`]).
    async fn sandbox(
        &self,
        scheme: &PreparedScheme,
        deadline: Instant,
        door: Door,
        admission: Admission,
    ) -> Result<Sandbox, RouteFailure> {
        let outbound = Outbound::new(
            scheme.guard.clone(),
            OutboundScheme {
                id: scheme.id,
                breakers: scheme.breakers.clone(),
            },
            deadline,
            self.client.clone(),
            door.detail,
        )
        .recording(door.recorder);
        let (mut store, stderr) = new_store(
            &self.loaded.engine,
            &self.config,
            scheme.vars.clone(),
            outbound,
        );
        let plugin = match &self.loaded.pre {
            Pre::Current(pre) => pre
                .instantiate_async(&mut store)
                .await
                .map(Instance::Current),
            Pre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(Instance::V0_1),
        }
        .map_err(|error| trap_failure(error, &stderr))?;
        Ok(Sandbox {
            store,
            plugin,
            stderr,
            _admission: admission,
        })
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
            _share: share,
            _slot: slot,
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

        let deadline = Instant::now() + scheme.policy.response_timeout;
        let admission = self.admit(scheme).map_err(|(_, failure)| failure)?;
        let work = async {
            let Sandbox {
                _admission,
                mut store,
                plugin,
                stderr,
            } = self
                .sandbox(scheme, deadline, Door::default(), admission)
                .await?;
            let trap = |error: wasmtime::Error| trap_failure(error, &stderr);
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
            let handle = async {
                match &plugin {
                    Instance::Current(p) => {
                        p.wasi_http_incoming_handler()
                            .call_handle(&mut store, request, out)
                            .await
                    }
                    Instance::V0_1(p) => {
                        p.wasi_http_incoming_handler()
                            .call_handle(&mut store, request, out)
                            .await
                    }
                }
            };
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

/// One call's sandbox: a fresh instance in its own store, what the component prints (to
/// explain a crash), and the call's admission, held until the store is dropped.
struct Sandbox {
    store: Store<CallState>,
    plugin: Instance,
    stderr: MemoryOutputPipe,
    _admission: Admission,
}

/// What one call's outbound door leaves for the host: the host's reason for a refusal, and
/// the record of its attempts (when they are recorded).
#[derive(Default)]
struct Door {
    detail: DetailSlot,
    recorder: Option<Recorder>,
}

/// One call's place: in its tenant's share and in the router's pool.
struct Admission {
    _share: InShare,
    _slot: tokio::sync::OwnedSemaphorePermit,
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

/// Whether `scheme` lets a call go to `destination`: inside its allowlist, or its own fallback.
fn allowed(scheme: &PreparedScheme, destination: &Destination) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_host_reads_each_key_as_the_component_sees_it() {
        // What wasi:config holds: a map, the last value of a repeated key.
        let distinct = last_value_of_each_key(pairs(&[
            ("url", "http://first/"),
            ("fallback.0", "101"),
            ("url", "http://second/"),
            ("fallback.0", "102"),
        ]));
        assert_eq!(
            distinct,
            pairs(&[("url", "http://second/"), ("fallback.0", "102")])
        );
        // So a list key given twice (a TOML file can: `fallback = [..]` and a quoted
        // "fallback.0") is one entry for both, not a problem for the host alone.
        let scheme = PreparedScheme::new(pairs(&[
            ("url", "http://crm.example.com/"),
            ("fallback.0", "101"),
            ("fallback.0", "102"),
        ]));
        assert_eq!(scheme.problem(), None);
        assert_eq!(
            scheme.policy.fallback,
            [callroute_plugin::destination::Target::Phone("102".into())]
        );
    }

    #[test]
    fn settings_show_every_key_and_no_secret() {
        let scheme = PreparedScheme::new(pairs(&[
            ("name", "acme"),
            ("url", "https://crm.example.com/r?token=t0psecret&tenant=7"),
            ("fallback_url", "https://user:pa55word@backup.example.com/r"),
            ("headers.Authorization", "Bearer h3adertoken"),
            ("signing_secret", "s1gningkey"),
            ("api_tokens.0", "an-api-token-of-some-length"),
            ("params.caller", "+{caller}"),
            ("params.key", "literal-key"),
            ("headers.X-Key", "k3y+with/slash=and\"quote"),
            // Misspelt, or read by a component of one's own: not known to be harmless.
            ("api_token", "another-token"),
            // A secret's value in a field shown as written.
            ("destination_field", "t0psecret"),
            ("fallback.0", "101"),
            // As written: the reference, not its value (unset here).
            ("retries", "${env:CALLROUTE_NEVER_SET_RETRIES}"),
        ]));
        let shown: Vec<(&str, &str)> = scheme
            .settings()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("name", "acme"),
                ("url", "https://crm.example.com/r?token=•••&tenant=•••"),
                ("fallback_url", "https://•••@backup.example.com/r"),
                ("headers.Authorization", "•••"),
                ("signing_secret", "•••"),
                ("api_tokens.0", "•••"),
                ("params.caller", "+{caller}"),
                ("params.key", "•••"),
                ("headers.X-Key", "•••"),
                ("api_token", "•••"),
                ("destination_field", "•••"),
                ("fallback.0", "101"),
                ("retries", "${env:CALLROUTE_NEVER_SET_RETRIES}"),
            ]
        );
    }

    #[test]
    fn secrets_are_masked_as_a_form_and_as_json_write_them_too() {
        let scheme = PreparedScheme::new(pairs(&[
            ("url", "https://crm.example.com/r"),
            ("headers.X-Key", "k3y+with/slash=and\"quote"),
        ]));
        let secrets = scheme.secrets();
        for written in [
            "k3y+with/slash=and\"quote",
            "k3y%2Bwith%2Fslash%3Dand%22quote",
            r#"k3y+with/slash=and\"quote"#,
        ] {
            let text = format!("sent {written}.");
            assert_eq!(
                crate::exchange::mask_secrets(text, &secrets),
                "sent •••.",
                "{written}"
            );
        }
    }

    #[test]
    fn a_policy_the_host_cannot_read_fails_every_call_with_its_reason() {
        let scheme = PreparedScheme::new(pairs(&[
            ("url", "http://crm.example.com/"),
            ("fallback", "not a destination!"),
        ]));
        let problem = scheme.problem().unwrap();
        assert!(problem.contains("`fallback`"), "{problem}");
        // And its guard lets nothing out.
        assert!(scheme.policy.endpoints().is_empty());
    }
}
