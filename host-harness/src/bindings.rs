//! Host bindings for the `callroute:router/plugin` world (`wit/world.wit`).
//!
//! The WASI interfaces the world imports are implemented by `wasmtime-wasi`,
//! `wasmtime-wasi-http` and `wasmtime-wasi-config`; only the `router` export is used from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "callroute:router/plugin",
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});

pub use exports::callroute::router::router as wit;
