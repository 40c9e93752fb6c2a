//! The engine every call shares: async, with epoch interruption (a running component yields
//! at every tick, so a deadline can fire while it computes), and wasmtime's pooling allocator
//! sized for the calls a router may run at once.

use super::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine};

/// How often the epoch advances; a running component yields to the executor at each tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How much of a pooled memory or table slot is kept resident between calls (see
/// [`engine_config`]); a call that dirtied more has the rest decommitted.
const KEEP_RESIDENT: usize = 1024 * 1024;

/// The engine configuration every router uses: async with epoch interruption, and wasmtime's
/// pooling allocator, so a call's fresh instance comes from preallocated slots (memory reset
/// copy-on-write) instead of new mappings.
pub fn engine_config(router: &Limits) -> Config {
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

/// Advances the engine's epoch on a background thread until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engine`'s epoch every [`EPOCH_TICK`].
    pub(crate) fn start(engine: Engine) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Store;
    use wasmtime::component::{Component, Linker};

    #[tokio::test]
    async fn the_pool_holds_one_instance_per_call_in_flight() {
        let config = Limits {
            max_concurrent_calls: 2,
            ..Limits::default()
        };
        let engine = Engine::new(&engine_config(&config)).unwrap();
        let _ticker = EpochTicker::start(engine.clone());
        // The smallest component there is: its preamble alone.
        let component = Component::new(&engine, b"\0asm\x0d\0\x01\0").unwrap();
        let linker = Linker::<()>::new(&engine);
        let mut calls = Vec::new();
        for _ in 0..2 {
            let mut store = Store::new(&engine, ());
            linker
                .instantiate_async(&mut store, &component)
                .await
                .unwrap();
            calls.push(store);
        }
        let mut third = Store::new(&engine, ());
        let full = linker
            .instantiate_async(&mut third, &component)
            .await
            .unwrap_err();
        assert!(
            full.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some(),
            "{full:?}"
        );
        // A call's slot is free again once its store is gone.
        drop(calls.pop());
        linker
            .instantiate_async(&mut third, &component)
            .await
            .unwrap();
    }
}
