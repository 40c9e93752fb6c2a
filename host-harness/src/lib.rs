//! The callroute host: runs the routing component (a WASI 0.2 component of the
//! `callroute:router/plugin` world) on wasmtime, one sandboxed instance per call.
//!
//! - [`router`]: the call pipeline, one way for every call: admit, sandbox, re-validate,
//!   allowlist, fallback, remember, mask;
//! - [`prepare`]: a scheme's pairs made ready to route with, the one way for `route`, `serve`
//!   and `check`;
//! - [`redact`]: which values are secret, and how every string that leaves the process is
//!   masked;
//! - [`sandbox`]: the engine, the component loaded once, one call's store and limits, and the
//!   component's answer in the host's types;
//! - [`cache`]: precompiled components, so a restart does not recompile;
//! - [`guard`]: the outbound guard, the sandbox's only door to the network;
//! - [`outbound`]: the HTTP transport behind `wasi:http`, guarded and deadline-bound;
//! - [`logging`]: logs on stderr that never hold a secret, at any level;
//! - [`scheme_file`]: scheme files (TOML) and their flat `wasi:config` form;
//! - [`secrets`]: `${env:NAME}` references in schemes, resolved from the host's environment;
//! - [`report`]: the outcome of a call and its JSON form;
//! - [`crm`]: a small local CRM for the demo (and the tests);
//! - [`serve`]: routing over HTTP for call platforms, with metrics;
//! - [`demo`] and [`cli`]: the `callroute` command.

pub mod admission;
pub mod bindings;
pub mod cache;
pub mod cli;
pub mod crm;
pub mod demo;
pub mod exchange;
pub mod guard;
pub mod logging;
pub mod memory;
pub mod outbound;
pub mod prepare;
pub mod redact;
pub mod report;
pub mod router;
pub mod sandbox;
pub mod scheme_file;
pub mod secrets;
pub mod serve;

/// The routing component this harness embeds (built by the `callroute-artifact` crate).
pub use callroute_artifact::{COMPONENT_SIZE_BUDGET, EMBEDDED_PLUGIN, PLUGIN_WASM_PATH};

pub use callroute_plugin::call::Call;
pub use prepare::PreparedScheme;
pub use report::{RouteFailure, RouteReport};
pub use router::{Router, RouterConfig};
