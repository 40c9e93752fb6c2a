//! Host bindings for the `callroute:router/plugin` world: the current contract
//! (`wit/world.wit`, 0.3.0) and, in [`v0_2`] and [`v0_1`], the frozen contracts
//! (`wit/legacy/`), so that a component built against an older one still loads.
//!
//! The WASI interfaces the worlds import are implemented by `wasmtime-wasi`,
//! `wasmtime-wasi-http` and `wasmtime-wasi-config`; only the `router` export (and the HTTP
//! handler, for [`crate::Router::handle_http`]) is used from here.

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

/// The 0.2.0 contract: routing only (no decision id, no `report`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        // The WASI packages come from the current WIT directory; the frozen package needs
        // nothing else.
        path: ["../wit", "../wit/legacy/0.2.0"],
        world: "callroute:router/plugin@0.2.0",
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });

    // Several versions of the package are in view, so the names carry the version.
    pub use exports::callroute::router0_2_0::router as wit;
}

/// The 0.1.0 contract: one `destination` and its `alternatives`, always rung in turn.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        // The WASI packages come from the current WIT directory; the frozen 0.1.0 package
        // needs nothing else.
        path: ["../wit", "../wit/legacy/0.1.0"],
        world: "callroute:router/plugin@0.1.0",
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });

    // Two versions of the package are in view, so the names carry the version.
    pub use exports::callroute::router0_1_0::router as wit;
}
