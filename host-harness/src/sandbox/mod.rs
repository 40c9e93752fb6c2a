//! The sandbox each call runs in.
//!
//! | module | what |
//! |---|---|
//! | [`engine`] | the engine every call shares: pooling allocator sized for the calls in flight, epoch interruption and its clock |
//! | [`component`] | the component, compiled and linked once, its contract's version found; one instance per call, called the same way whatever that version |
//! | [`store`] | one call's store: a bare WASI context, the scheme in `wasi:config`, the outbound door, memory and CPU limits; traps reported in one line |
//! | [`convert`] | the component's WIT answer in the host's types, every destination re-validated |
//!
//! [`crate::router`] puts them together: a router loads the component once, and routes each
//! call in a fresh store and instance.

pub mod component;
pub mod convert;
pub mod engine;
pub mod store;

use std::time::Duration;

/// Default cap on a call instance's linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Default CPU budget of one call: routing takes well under a millisecond of guest time.
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_millis(200);
/// Default for the calls in flight at once: the size of the instance pool. A call beyond it
/// is answered at once as `overloaded` (and gets the scheme's fallback).
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 1000;

/// The sandbox's limits, the same for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on each call instance's linear memory, in bytes.
    pub memory_limit: usize,
    /// Most time a call's component may spend running (not waiting on the CRM).
    pub cpu_limit: Duration,
    /// Most instances alive at once: the engine's pool is sized for them.
    pub max_concurrent_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cpu_limit: DEFAULT_CPU_LIMIT,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        }
    }
}
