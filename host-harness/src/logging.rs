//! Logs: `tracing` events on stderr, filtered by `RUST_LOG`, and never a secret at any level.
//!
//! callroute's own events carry no URL query, header value, secret or phone number. Its
//! dependencies do not promise that: wasmtime's generated bindings trace every WASI call with
//! its arguments (the webhook's path and query, header values, the call's numbers), and hyper
//! traces what it parses. So below `info`, only callroute's own events are ever written,
//! whatever `RUST_LOG` asks for; a dependency's `info`, `warn` and `error` events still are.

use tracing::Metadata;
use tracing_subscriber::prelude::*;

/// Start logging to stderr at `default_level` unless `RUST_LOG` says otherwise.
pub fn init(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(may_be_logged))
        .with(output.with_filter(filter))
        .init();
}

/// Whether an event or span may be written at all: callroute's own at any level, others from
/// `info` up.
pub fn may_be_logged(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let own = target
        .strip_prefix("callroute")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['_', ':']));
    own || *metadata.level() <= tracing::Level::INFO
}
