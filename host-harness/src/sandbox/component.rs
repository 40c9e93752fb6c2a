//! The routing component, loaded once: compiled (or read from the cache), linked against
//! WASI, `wasi:http` and `wasi:config`, and its contract's version found. Every call gets a
//! fresh instance of it ([`Loaded::instantiate`]), called the same way whatever contract it
//! implements ([`Instance::route`], [`Instance::handle`]): the version dispatch is written
//! here and nowhere else.

use super::Limits;
use super::convert::{
    error_from_v0_1, error_from_v0_2, error_from_wit, routing_from_v0_1, routing_from_v0_2,
    routing_from_wit,
};
use super::engine::{EpochTicker, engine_config};
use super::store::{CallState, CpuMeter, new_store, trap_failure};
use crate::bindings::{Plugin, PluginPre, v0_1, v0_2, wit};
use crate::outbound::Outbound;
use crate::report::RouteFailure;
use callroute_plugin::call::Call;
use callroute_plugin::error::ErrorKind;
use callroute_plugin::report::{CallStatus, Delivery, Outcome};
use callroute_plugin::routing::Routing;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::p2::bindings::http::types::{IncomingRequest, ResponseOutparam};

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

/// What every call shares: the compiled, linked component, the engine and its clock.
pub(crate) struct Loaded {
    engine: Engine,
    pre: Pre,
    _ticker: EpochTicker,
}

/// A linked component, by the contract it implements.
enum Pre {
    /// `callroute:router@0.3.0`, this host's.
    Current(PluginPre<CallState>),
    /// `callroute:router@0.2.0`: routing only.
    V0_2(v0_2::PluginPre<CallState>),
    /// `callroute:router@0.1.0`: one destination and its alternatives.
    V0_1(v0_1::PluginPre<CallState>),
}

/// One call's instance of the component.
pub(crate) enum Instance {
    Current(Plugin),
    V0_2(v0_2::Plugin),
    V0_1(v0_1::Plugin),
}

/// The contract a component implements, as `callroute:router@<version>` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// 0.3.0, this host's: routing, decision ids and outcome reports.
    V0_3,
    /// 0.2.0: routing to one or more destinations, no reports.
    V0_2,
    /// 0.1.0: one destination and its alternatives, no reports.
    V0_1,
}

impl Contract {
    /// The version, as the package names it (`0.2.0`).
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_3 => "0.3.0",
            Contract::V0_2 => "0.2.0",
            Contract::V0_1 => "0.1.0",
        }
    }

    /// Whether components of this contract can report outcomes (`router.report`).
    pub fn reports(self) -> bool {
        self == Contract::V0_3
    }

    /// Why components of this contract take no outcome reports, when they take none: the one
    /// message every place that refuses a report gives.
    pub fn refuses_reports(self) -> Option<String> {
        (!self.reports()).then(|| {
            format!(
                "the component implements callroute:router@{}, which has no `report`: build it \
                 against 0.3.0 to send outcome reports",
                self.version()
            )
        })
    }
}

impl Loaded {
    /// Compile (or read from `cache_dir`) and link a component (binary `.wasm`).
    pub(crate) fn compile(
        wasm: &[u8],
        limits: Limits,
        cache_dir: Option<&std::path::Path>,
    ) -> Result<Loaded, LoadError> {
        let engine = Engine::new(&engine_config(&limits)).map_err(LoadError::Engine)?;
        let (component, source) =
            crate::cache::load(&engine, wasm, cache_dir).map_err(LoadError::Component)?;
        tracing::debug!(?source, "component ready");
        Loaded::link(engine, &component)
    }

    /// Link an already compiled component (see [`engine_config`]).
    pub(crate) fn link(engine: Engine, component: &Component) -> Result<Loaded, LoadError> {
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(LoadError::Component)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(LoadError::Component)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s| WasiConfig::new(&s.config))
            .map_err(LoadError::Component)?;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(LoadError::Component)?;
        // This host's contract first; a component built against an older one still loads.
        let pre = match PluginPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Current(pre),
            Err(current) => {
                if let Ok(pre) = v0_2::PluginPre::new(instance_pre.clone()) {
                    tracing::info!(
                        "the component implements callroute:router@0.2.0: it routes calls, \
                         and outcome reports to it are refused"
                    );
                    Pre::V0_2(pre)
                } else if let Ok(pre) = v0_1::PluginPre::new(instance_pre) {
                    tracing::info!(
                        "the component implements callroute:router@0.1.0: each call gets its \
                         one destination and alternatives, rung in turn, and outcome reports \
                         to it are refused"
                    );
                    Pre::V0_1(pre)
                } else {
                    return Err(LoadError::Component(current));
                }
            }
        };
        Ok(Loaded {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            pre,
        })
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The contract the component implements.
    pub(crate) fn contract(&self) -> Contract {
        match self.pre {
            Pre::Current(_) => Contract::V0_3,
            Pre::V0_2(_) => Contract::V0_2,
            Pre::V0_1(_) => Contract::V0_1,
        }
    }

    /// A fresh instance for one call, in a new store holding the scheme's `vars`, the call's
    /// `outbound` door and `limits`. A failure to instantiate is a trap ([`trap_failure`]).
    pub(crate) async fn instantiate(
        &self,
        limits: &Limits,
        vars: Arc<WasiConfigVariables>,
        outbound: Outbound,
    ) -> Result<Sandbox, RouteFailure> {
        let (mut store, stderr) = new_store(&self.engine, limits, vars, outbound);
        let cpu = store.data().cpu.clone();
        // Instantiating runs the component's start functions: metered like any of its code.
        let instance = cpu
            .metered(async {
                match &self.pre {
                    Pre::Current(pre) => pre
                        .instantiate_async(&mut store)
                        .await
                        .map(Instance::Current),
                    Pre::V0_2(pre) => pre.instantiate_async(&mut store).await.map(Instance::V0_2),
                    Pre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(Instance::V0_1),
                }
            })
            .await
            .map_err(|error| trap_failure(error, &stderr))?;
        Ok(Sandbox {
            store,
            instance,
            stderr,
            cpu,
        })
    }
}

/// A report to a component of `contract`, which has none.
fn no_report(contract: Contract) -> RouteFailure {
    RouteFailure::new(
        ErrorKind::Config,
        contract.refuses_reports().unwrap_or_default(),
    )
}

/// One call's sandbox: a fresh instance in its own store, and what the component prints (to
/// explain a crash).
pub(crate) struct Sandbox {
    pub(crate) store: Store<CallState>,
    instance: Instance,
    stderr: MemoryOutputPipe,
    /// The store's CPU meter, which every call into the component goes through.
    cpu: Arc<CpuMeter>,
}

impl Sandbox {
    /// A trap of this sandbox as a call's failure, with what the component printed.
    pub(crate) fn trap(&self, error: wasmtime::Error) -> RouteFailure {
        trap_failure(error, &self.stderr)
    }

    /// Route `call` with the component's `route` export, whatever its contract's version.
    pub(crate) async fn route(&mut self, call: &Call) -> Result<Routing, RouteFailure> {
        let call = wit::Call {
            call_id: call.call_id.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            vars: call.vars.clone(),
        };
        let store = &mut self.store;
        let answer = self
            .cpu
            .metered(async {
                match &self.instance {
                    Instance::Current(plugin) => plugin
                        .callroute_router_router()
                        .call_route(store, &call)
                        .await
                        .map(|answer| match answer {
                            Ok(routing) => routing_from_wit(routing),
                            Err(error) => Err(error_from_wit(error).into()),
                        }),
                    Instance::V0_2(plugin) => {
                        let call = v0_2::wit::Call {
                            call_id: call.call_id,
                            caller: call.caller,
                            callee: call.callee,
                            vars: call.vars,
                        };
                        plugin
                            .callroute_router0_2_0_router()
                            .call_route(store, &call)
                            .await
                            .map(|answer| match answer {
                                Ok(routing) => routing_from_v0_2(routing),
                                Err(error) => Err(error_from_wit(error_from_v0_2(error)).into()),
                            })
                    }
                    Instance::V0_1(plugin) => {
                        let call = v0_1::wit::Call {
                            call_id: call.call_id,
                            caller: call.caller,
                            callee: call.callee,
                            vars: call.vars,
                        };
                        plugin
                            .callroute_router0_1_0_router()
                            .call_route(store, &call)
                            .await
                            .map(|answer| match answer {
                                Ok(routing) => routing_from_v0_1(routing),
                                Err(error) => Err(error_from_wit(error_from_v0_1(error)).into()),
                            })
                    }
                }
            })
            .await;
        answer.unwrap_or_else(|error| Err(self.trap(error)))
    }

    /// Report `outcome` with the component's `report` export: `Ok` when the CRM took it. A
    /// component of an older contract has none: a `config` failure that says so.
    pub(crate) async fn report(
        &mut self,
        outcome: &Outcome,
        delivery: &Delivery,
    ) -> Result<(), RouteFailure> {
        let plugin = match &self.instance {
            Instance::Current(plugin) => plugin,
            Instance::V0_2(_) => return Err(no_report(Contract::V0_2)),
            Instance::V0_1(_) => return Err(no_report(Contract::V0_1)),
        };
        let outcome = wit::Outcome {
            call_id: outcome.call_id.clone(),
            status: match outcome.status {
                CallStatus::Answered => wit::CallStatus::Answered,
                CallStatus::NoAnswer => wit::CallStatus::NoAnswer,
                CallStatus::Busy => wit::CallStatus::Busy,
                CallStatus::Failed => wit::CallStatus::Failed,
                CallStatus::Cancelled => wit::CallStatus::Cancelled,
            },
            answered_by: outcome.answered_by.clone(),
            ring_secs: outcome.ring_secs,
            talk_secs: outcome.talk_secs,
            hangup_cause: outcome.hangup_cause.clone(),
            decision: outcome.decision.clone(),
            caller: outcome.caller.clone(),
            callee: outcome.callee.clone(),
            vars: outcome.vars.clone(),
        };
        let delivery = wit::Delivery {
            report_id: delivery.report_id.clone(),
            attempt: delivery.attempt,
        };
        let store = &mut self.store;
        let answer = self
            .cpu
            .metered(async {
                plugin
                    .callroute_router_router()
                    .call_report(store, &outcome, &delivery)
                    .await
            })
            .await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error_from_wit(error).into()),
            Err(error) => Err(self.trap(error)),
        }
    }

    /// Hand `request` to the component's `wasi:http/incoming-handler` export.
    pub(crate) async fn handle(
        &mut self,
        request: wasmtime::component::Resource<IncomingRequest>,
        out: wasmtime::component::Resource<ResponseOutparam>,
    ) -> wasmtime::Result<()> {
        let store = &mut self.store;
        self.cpu
            .metered(async {
                match &self.instance {
                    Instance::Current(p) => {
                        p.wasi_http_incoming_handler()
                            .call_handle(store, request, out)
                            .await
                    }
                    Instance::V0_2(p) => {
                        p.wasi_http_incoming_handler()
                            .call_handle(store, request, out)
                            .await
                    }
                    Instance::V0_1(p) => {
                        p.wasi_http_incoming_handler()
                            .call_handle(store, request, out)
                            .await
                    }
                }
            })
            .await
    }
}
