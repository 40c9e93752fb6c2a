//! The durable outbox of outcome reports: once `serve` has answered 202 for a report, the report
//! reaches the CRM, across a crash and a restart, or is counted and logged as expired.
//!
//! - **Stored first.** A report is written to an embedded [`redb`] database (one file,
//!   `outbox.redb`, in the outbox directory) and committed with `fsync` before the 202. Reports
//!   that arrive together share one commit ([`store`]'s writer thread), so a burst costs a few
//!   `fsync`s, not one each.
//! - **At least once.** Each report keeps its id (its `Idempotency-Key`) on every attempt, so a
//!   CRM drops duplicates: a report delivered just before a crash, whose removal was not yet
//!   written, is sent again after the restart.
//! - **Backoff with jitter.** A failed attempt is tried again after `min_backoff` doubling up to
//!   `max_backoff`, each wait drawn between half and all of it, for up to the scheme's
//!   `outcome_retry_hours`. A report older than that is removed, counted (`expired`) and
//!   logged, never dropped silently.
//! - **One queue per tenant.** Each scheme's reports have their own queue and at most
//!   `concurrency` attempts in flight, so one CRM's outage delays no other tenant's reports. A
//!   tenant's queue holds at most `max_reports_per_scheme`; past it a report is refused (503),
//!   never taken and lost.
//!
//! The delivery itself is the [`Deliverer`]'s (`serve`: the router's `report`, through the
//! sandbox, the outbound guard and the scheme's breakers).

mod store;

use callroute_plugin::report::{Delivery, Outcome, report_id};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{Entry, Store};
use tokio::sync::Notify;

/// The name of the database file in the outbox directory.
pub const FILE_NAME: &str = "outbox.redb";

/// How an outbox queues and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// Most reports one scheme may have waiting; past it, a report is refused (503).
    pub max_reports_per_scheme: usize,
    /// Most attempts of one scheme in flight at once.
    pub concurrency: usize,
    /// The wait after a first failed attempt.
    pub min_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            max_reports_per_scheme: 100_000,
            concurrency: 4,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Why a report was not taken, or the outbox not opened.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The scheme already has `max_reports_per_scheme` reports waiting.
    #[error("the outbox holds {0} reports for this scheme already; try again later")]
    Full(usize),
    /// The database could not be opened, read or written.
    #[error("the outbox's store failed: {0}")]
    Store(String),
}

/// What delivers one attempt of a report (`serve`: its router, through the sandbox).
pub trait Deliverer: Send + Sync + 'static {
    /// Deliver `outcome` of `scheme` once, as `delivery` numbers it: `Ok` when the CRM took it.
    /// Also says how long the scheme keeps trying (its `outcome_retry_hours`).
    fn deliver<'a>(
        &'a self,
        scheme: &'a str,
        outcome: &'a Outcome,
        delivery: &'a Delivery,
    ) -> Pin<Box<dyn Future<Output = Attempted> + Send + 'a>>;
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempted {
    /// `Ok` when the CRM took the report; why not otherwise (masked, for the log).
    pub result: Result<(), String>,
    /// How long after its acceptance the report may still be tried.
    pub retry_for: Duration,
}

/// A scheme's reports now, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    /// The scheme.
    pub scheme: String,
    /// Reports waiting (in flight included).
    pub reports: usize,
    /// Age of the oldest, in whole seconds (0 when none waits).
    pub oldest_secs: u64,
}

/// What happened to reports, for the counters: `received`, `delivered`, `retrying`,
/// `expired`.
pub type Counted = Arc<dyn Fn(&str, &'static str) + Send + Sync>;

/// The outbox (see the module docs). Cloning shares it.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: OutboxSettings,
    queues: Mutex<HashMap<String, Queue>>,
    deliverer: OnceLock<Arc<dyn Deliverer>>,
    counted: OnceLock<Counted>,
    /// This process's own, in each report id: two identical outcomes accepted in the same
    /// nanosecond still get different ids.
    salt: [u8; 16],
}

/// One scheme's reports.
#[derive(Default)]
struct Queue {
    /// Every report waiting, by its sequence number.
    entries: HashMap<u64, Entry>,
    /// Those not in flight, by when they are due: `(due, seq)`.
    due: BTreeSet<(u64, u64)>,
    /// Wakes the scheme's worker: a report arrived, or an attempt ended.
    wake: Arc<Notify>,
    /// Whether its worker runs.
    worker: bool,
}

impl Outbox {
    /// Open (or create) the outbox in `dir`, with every report a previous run left.
    pub fn open(dir: &Path, settings: OutboxSettings) -> Result<Outbox, OutboxError> {
        let (store, entries) = Store::open(&dir.join(FILE_NAME))?;
        let mut queues: HashMap<String, Queue> = HashMap::new();
        let now = now_ms();
        for entry in entries {
            let queue = queues.entry(entry.scheme.clone()).or_default();
            // A restart tries what it found at once: whatever waited, waited for this process.
            queue.due.insert((entry.due_ms.min(now), entry.seq));
            queue.entries.insert(entry.seq, entry);
        }
        let waiting: usize = queues.values().map(|q| q.entries.len()).sum();
        if waiting > 0 {
            tracing::info!(reports = waiting, "outbox: reports left by the last run");
        }
        Ok(Outbox {
            inner: Arc::new(Inner {
                store,
                settings,
                queues: Mutex::new(queues),
                deliverer: OnceLock::new(),
                counted: OnceLock::new(),
                salt: fastrand::u128(..).to_be_bytes(),
            }),
        })
    }

    /// Start delivering with `deliverer` (once; later calls change nothing), counting what
    /// happens with `counted`. Needs a tokio runtime.
    pub fn start(&self, deliverer: Arc<dyn Deliverer>, counted: Counted) {
        let _ = self.inner.counted.set(counted);
        if self.inner.deliverer.set(deliverer).is_err() {
            return;
        }
        let schemes: Vec<String> = self.lock().keys().cloned().collect();
        for scheme in schemes {
            self.ensure_worker(&scheme);
        }
    }

    /// Take a report: stored durably before this returns its id. Refused when the scheme's
    /// queue is full or the store fails.
    pub async fn accept(&self, scheme: &str, outcome: Outcome) -> Result<String, OutboxError> {
        let max = self.inner.settings.max_reports_per_scheme;
        if self
            .lock()
            .get(scheme)
            .is_some_and(|q| q.entries.len() >= max)
        {
            return Err(OutboxError::Full(max));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.inner.store.next_seq();
        let mut salt = self.inner.salt.to_vec();
        salt.extend(seq.to_be_bytes());
        let entry = Entry {
            seq,
            scheme: scheme.to_owned(),
            id: report_id(&outcome, now, &salt),
            outcome,
            accepted_ms: now.as_millis() as u64,
            attempts: 0,
            due_ms: now.as_millis() as u64,
        };
        self.inner.store.insert(&entry).await?;
        let id = entry.id.clone();
        {
            let mut queues = self.lock();
            let queue = queues.entry(scheme.to_owned()).or_default();
            queue.due.insert((entry.due_ms, seq));
            queue.entries.insert(seq, entry);
            queue.wake.notify_one();
        }
        self.count(scheme, "received");
        self.ensure_worker(scheme);
        Ok(id)
    }

    /// Each scheme's reports waiting now.
    pub fn depths(&self) -> Vec<Depth> {
        let now = now_ms();
        let mut depths: Vec<Depth> = self
            .lock()
            .iter()
            .map(|(scheme, queue)| Depth {
                scheme: scheme.clone(),
                reports: queue.entries.len(),
                oldest_secs: queue
                    .entries
                    .values()
                    .map(|e| now.saturating_sub(e.accepted_ms) / 1000)
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        depths.sort_by(|a, b| a.scheme.cmp(&b.scheme));
        depths
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.inner.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, scheme: &str, what: &'static str) {
        if let Some(counted) = self.inner.counted.get() {
            counted(scheme, what);
        }
    }

    /// Start `scheme`'s worker if delivery has started and it has none.
    fn ensure_worker(&self, scheme: &str) {
        let Some(deliverer) = self.inner.deliverer.get().cloned() else {
            return;
        };
        let wake = {
            let mut queues = self.lock();
            let queue = queues.entry(scheme.to_owned()).or_default();
            if queue.worker {
                return;
            }
            queue.worker = true;
            queue.wake.clone()
        };
        let outbox = Arc::downgrade(&self.inner);
        let scheme = scheme.to_owned();
        tokio::spawn(work(outbox, scheme, deliverer, wake));
    }

    /// One attempt of `entry`, and what follows: removed when delivered or expired, due again
    /// after a backoff otherwise.
    async fn attempt(&self, mut entry: Entry, deliverer: &dyn Deliverer) {
        entry.attempts += 1;
        let delivery = Delivery {
            report_id: entry.id.clone(),
            attempt: entry.attempts,
        };
        let attempted = deliverer
            .deliver(&entry.scheme, &entry.outcome, &delivery)
            .await;
        let now = now_ms();
        let age = Duration::from_millis(now.saturating_sub(entry.accepted_ms));
        let outcome = match &attempted.result {
            Ok(()) => "delivered",
            Err(_) if age >= attempted.retry_for => "expired",
            Err(_) => "retrying",
        };
        if let (Err(error), "expired") = (&attempted.result, outcome) {
            tracing::warn!(
                scheme = %entry.scheme,
                report = %entry.id,
                attempts = entry.attempts,
                %error,
                "outcome report expired undelivered (outcome_retry_hours)"
            );
        } else if let Err(error) = &attempted.result {
            // A CRM that is down fails every attempt: counted (`retrying`), and logged at
            // debug, not once per attempt at the default level.
            tracing::debug!(
                scheme = %entry.scheme,
                report = %entry.id,
                attempt = entry.attempts,
                %error,
                "outcome report not delivered; will try again"
            );
        }
        if outcome == "retrying" {
            entry.due_ms = now + backoff(&self.inner.settings, entry.attempts).as_millis() as u64;
            self.inner.store.put(&entry);
        } else {
            self.inner.store.remove(entry.seq);
        }
        {
            let mut queues = self.lock();
            let queue = queues.entry(entry.scheme.clone()).or_default();
            if outcome == "retrying" {
                queue.due.insert((entry.due_ms, entry.seq));
                queue.entries.insert(entry.seq, entry.clone());
            } else {
                queue.entries.remove(&entry.seq);
            }
        }
        self.count(&entry.scheme, outcome);
    }
}

/// One scheme's worker: start what is due, up to `concurrency` at once; sleep until the next
/// is due or something changes. It holds the outbox only while it starts attempts, and ends
/// once the outbox is gone (the attempts in flight hold it until they end).
async fn work(
    outbox: std::sync::Weak<Inner>,
    scheme: String,
    deliverer: Arc<dyn Deliverer>,
    wake: Arc<Notify>,
) {
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let sleep = {
            let Some(inner) = outbox.upgrade() else {
                return;
            };
            let outbox = Outbox { inner };
            let concurrency = outbox.inner.settings.concurrency.max(1);
            let now = now_ms();
            let (started, next_due) = {
                let mut queues = outbox.lock();
                let queue = queues.entry(scheme.clone()).or_default();
                let mut started = Vec::new();
                while in_flight.len() + started.len() < concurrency {
                    match queue.due.first().copied() {
                        Some((due, seq)) if due <= now => {
                            queue.due.remove(&(due, seq));
                            if let Some(entry) = queue.entries.get(&seq) {
                                started.push(entry.clone());
                            }
                        }
                        _ => break,
                    }
                }
                (started, queue.due.first().map(|(due, _)| *due))
            };
            for entry in started {
                let (outbox, deliverer) = (outbox.clone(), deliverer.clone());
                in_flight.spawn(async move { outbox.attempt(entry, &*deliverer).await });
            }
            match next_due {
                Some(due) if in_flight.len() < concurrency => {
                    Duration::from_millis(due.saturating_sub(now_ms()))
                }
                // Nothing due, or no room: only a change or an attempt's end wakes it (and
                // now and then a look whether the outbox is still there).
                _ => Duration::from_secs(1),
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
}

/// The wait after the `attempts`-th failed attempt: `min_backoff` doubling, at most
/// `max_backoff`, drawn between half and all of it (so that reports that failed together do
/// not come back together).
fn backoff(settings: &OutboxSettings, attempts: u32) -> Duration {
    let doubled = settings
        .min_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let ceiling = doubled.min(settings.max_backoff);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests;
