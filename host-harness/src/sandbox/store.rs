//! One call's store: a bare WASI context (no files, sockets, env or args; stderr captured),
//! the scheme in `wasi:config`, the call's outbound door, a memory cap and a CPU budget.
//! Whatever goes wrong inside it is a trap, reported in one line (`trap_failure`).

use super::Limits;
use crate::outbound::Outbound;
use crate::report::RouteFailure;
use callroute_plugin::error::{ErrorKind, excerpt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Most bytes of a component's stderr kept to explain a crash.
const STDERR_CAPTURE: usize = 4096;

/// The per-call store data: a bare WASI context (no files, sockets, env or args), the HTTP
/// context with this call's outbound door, the scheme, and limits.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: Outbound,
    pub(crate) config: Arc<WasiConfigVariables>,
    limits: StoreLimits,
    /// The time the component has spent running, counted by whoever polls it.
    pub(crate) cpu: Arc<CpuMeter>,
}

/// A fresh store for one call: the scheme's `vars` in `wasi:config`, the call's `outbound`
/// door, the router's memory cap, and a yield at every epoch tick while within the CPU
/// budget. Also returns the component's captured stderr.
pub(crate) fn new_store(
    engine: &Engine,
    config: &Limits,
    vars: Arc<WasiConfigVariables>,
    outbound: Outbound,
) -> (Store<CallState>, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
    let state = CallState {
        wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        outbound,
        config: vars,
        limits: StoreLimitsBuilder::new()
            .memory_size(config.memory_limit)
            .instances(8)
            .build(),
        cpu: Arc::default(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    // At every epoch tick the running component is held to its CPU budget; within it, it
    // yields, so the executor (and the call's deadline) keep going.
    let cpu_limit = config.cpu_limit;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if ctx.data().cpu.used() > cpu_limit {
            return Err(CpuBudgetExceeded(cpu_limit).into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    (store, stderr)
}

/// The time a call's component spends running: every poll of a future that runs its code
/// ([`CpuMeter::metered`]), timed from start to end. The component only runs inside such a
/// poll, and a wait (on the CRM above all) ends the poll as pending, so waiting is never
/// counted, however often the component is woken; the host's own work for it within a poll
/// (lifting and lowering its values, building its request) is. Two clock reads a poll, where
/// timing each switch between wasm and the host (wasmtime's call hook) read the clock hundreds
/// of times a call.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// Nanoseconds counted so far, not including the poll under way.
    used_ns: AtomicU64,
    /// When the poll under way started, in nanoseconds since [`origin`]; 0 between polls.
    since_ns: AtomicU64,
}

/// What the meter's instants count from.
fn origin() -> std::time::Instant {
    static ORIGIN: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    *ORIGIN
}

/// Nanoseconds since [`origin`], at least 1 (0 means "not running").
fn now_ns() -> u64 {
    (origin().elapsed().as_nanos() as u64).max(1)
}

impl CpuMeter {
    /// The time used so far, the poll under way included.
    pub(crate) fn used(&self) -> Duration {
        let since = self.since_ns.load(Ordering::Relaxed);
        let running = if since == 0 {
            0
        } else {
            now_ns().saturating_sub(since)
        };
        Duration::from_nanos(self.used_ns.load(Ordering::Relaxed) + running)
    }

    /// `work` (a future that runs the component's code), each of its polls counted.
    pub(crate) async fn metered<F: Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            let start = now_ns();
            self.since_ns.store(start, Ordering::Relaxed);
            let polled = work.as_mut().poll(cx);
            self.since_ns.store(0, Ordering::Relaxed);
            self.used_ns
                .fetch_add(now_ns().saturating_sub(start), Ordering::Relaxed);
            polled
        })
        .await
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

/// A crash or broken limit inside the component, in one line, with what it printed (a Rust
/// panic message); the full error, with its wasm backtrace, is logged at debug level. The pool
/// having no free slot is not the component's doing: that is `overloaded`.
pub(crate) fn trap_failure(error: wasmtime::Error, stderr: &MemoryOutputPipe) -> RouteFailure {
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
    // The message is the call's error, logged by whoever routed the call once it is masked:
    // what the component said may quote a secret or a caller.
    tracing::warn!(reason = %reason, "component trapped");
    RouteFailure::new(ErrorKind::Trap, message)
}

/// A call the host has no room for: answered at once, never queued past its deadline.
pub(crate) fn overloaded(reason: impl std::fmt::Display) -> RouteFailure {
    RouteFailure::new(
        ErrorKind::Overloaded,
        format!("no sandbox free for this call: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_time_spent_in_polls_counts() {
        let meter = CpuMeter::default();
        assert_eq!(meter.used(), Duration::ZERO);
        // A poll that runs for 20 ms, then a wait of 50 ms (pending), then a poll of 5 ms.
        let work = async {
            std::thread::sleep(Duration::from_millis(20));
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::thread::sleep(Duration::from_millis(5));
        };
        let started = std::time::Instant::now();
        meter.metered(work).await;
        let used = meter.used();
        assert!(used >= Duration::from_millis(25), "{used:?}");
        assert!(
            // Had the 50 ms wait been counted, at least 75 ms: the rest is room for a slow
            // machine.
            used < Duration::from_millis(70),
            "the wait was counted: {used:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(75));
        // Between polls nothing runs up.
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(meter.used(), used);
    }

    #[test]
    fn a_full_pool_is_overloaded_not_a_crash() {
        let full = overloaded("all 2 are routing calls");
        assert_eq!(full.kind, ErrorKind::Overloaded);
        let budget = trap_failure(
            CpuBudgetExceeded(Duration::from_millis(200)).into(),
            &MemoryOutputPipe::new(16),
        );
        assert_eq!(budget.kind, ErrorKind::Trap);
        assert_eq!(
            budget.message,
            "the component crashed: the component ran for more than its CPU budget of 200 ms"
        );
    }
}
