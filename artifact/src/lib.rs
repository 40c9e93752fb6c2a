//! The routing component, built from `plugin/` for `wasm32-wasip2` by this crate's `build.rs`
//! (a nested cargo build; see `build/component.rs`) and stamped with its registry metadata.
//!
//! These bytes are the release artifact: the `callroute` binary embeds them, `cargo xtask
//! dist` writes them to `dist/`, and the tests load them. Depending on this crate alone gives
//! the component without compiling the harness or wasmtime.

#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/component.rs"));

/// The size budget of the released component, in bytes: it is fetched by every platform that
/// loads it and compiled at every cold start. A test holds it; `cargo xtask size` shows where
/// the bytes go.
pub const COMPONENT_SIZE_BUDGET: usize = 256 * 1024;
