//! The durable outbox of outcome reports: once `serve` has answered 202 for a report, the report
//! reaches the CRM, across a crash and a restart, or is counted and logged as expired.
//!
//! - **Stored first.** A report is written to an embedded [`redb`] database (one file,
//!   `outbox.redb`, in the outbox directory) and committed with `fsync` before the 202. Reports
//!   that arrive together share one commit ([`store`]'s writer thread), so a burst costs a few
//!   `fsync`s, not one each. Memory holds only what schedules a report (its id, times and
//!   size); its outcome is read from disk when it is attempted.
//! - **At least once.** Each report keeps its id (its `Idempotency-Key`) on every attempt, so a
//!   CRM drops duplicates: a report delivered just before a crash, whose removal was not yet
//!   written, is sent again after the restart.
//! - **Backoff with jitter.** A failed attempt is tried again after `min_backoff` doubling up to
//!   `max_backoff`, each wait drawn between half and all of it, until the report's deadline
//!   (its scheme's `outcome_retry_hours` when it was accepted). Then it is removed, counted
//!   ([`ReportEvent::Expired`]) and logged, never dropped silently.
//! - **One queue per tenant.** Each scheme's reports have their own queue and at most
//!   `concurrency` attempts in flight, so one CRM's outage delays no other tenant's reports. A
//!   tenant's queue holds at most `max_reports_per_scheme` reports and `max_bytes_per_scheme`
//!   bytes; past either a report is refused (503), never taken and lost.
//!
//! The delivery itself is the [`Deliverer`]'s (`serve`: the router's `report`, through the
//! sandbox, the outbound guard and the scheme's breakers). Waits are measured on the monotonic
//! clock (a wall clock set back never stalls delivery); acceptance and deadlines are wall-clock
//! times, as they must survive a restart.

mod store;

use callroute_plugin::report::{Delivery, Outcome, report_id};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{Entry, Store};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The name of the database file in the outbox directory.
pub const FILE_NAME: &str = "outbox.redb";

/// How an outbox queues and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// Most reports one scheme may have waiting; past it, a report is refused (503).
    pub max_reports_per_scheme: usize,
    /// Most bytes of reports one scheme may have waiting on disk; past it, the same.
    pub max_bytes_per_scheme: usize,
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
            max_bytes_per_scheme: 64 << 20,
            concurrency: 4,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Why a report was not taken, or the outbox not opened.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The scheme already has as many reports, or bytes of them, waiting as it may.
    #[error("the outbox holds as many reports for this scheme as it may ({0}); try again later")]
    Full(String),
    /// The database could not be opened, read or written.
    #[error("the outbox's store failed: {0}")]
    Store(String),
}

/// What delivers one attempt of a report (`serve`: its router, through the sandbox).
pub trait Deliverer: Send + Sync + 'static {
    /// Deliver `outcome` of `scheme` once, as `delivery` numbers it: `Ok` when the CRM took it,
    /// why not otherwise (masked: it is logged).
    fn deliver<'a>(
        &'a self,
        scheme: &'a str,
        outcome: &'a Outcome,
        delivery: &'a Delivery,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// What happened to a report, as the outbox counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportEvent {
    /// Taken (202).
    Received,
    /// The CRM took it.
    Delivered,
    /// An attempt failed; it will be tried again.
    Retrying,
    /// Its deadline passed before the CRM took it; removed.
    Expired,
}

impl ReportEvent {
    /// The event as `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportEvent::Received => "received",
            ReportEvent::Delivered => "delivered",
            ReportEvent::Retrying => "retrying",
            ReportEvent::Expired => "expired",
        }
    }
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

/// What the outbox counts with: a scheme and what happened to one of its reports.
pub type Counted = Arc<dyn Fn(&str, ReportEvent) + Send + Sync>;

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
    /// Every report waiting, oldest first.
    entries: BTreeMap<u64, Entry>,
    /// Those not in flight, by when they are due.
    due: BTreeSet<(Instant, u64)>,
    /// Places taken by reports being stored: counted against the limits before they are in
    /// `entries`, so concurrent reports cannot pass them together.
    reserved: (usize, usize),
    /// Bytes of `entries` on disk.
    bytes: usize,
    /// Wakes the scheme's worker: a report arrived, or an attempt ended.
    wake: Arc<Notify>,
    /// Whether its worker runs.
    worker: bool,
}

impl Outbox {
    /// Open (or create) the outbox in `dir`, with every report a previous run left (tried at
    /// once: whatever waited, waited for this process).
    pub fn open(dir: &Path, settings: OutboxSettings) -> Result<Outbox, OutboxError> {
        let (store, entries) = Store::open(&dir.join(FILE_NAME))?;
        let mut queues: HashMap<String, Queue> = HashMap::new();
        let now = Instant::now();
        for entry in entries {
            let queue = queues.entry(entry.scheme.clone()).or_default();
            queue.due.insert((now, entry.seq));
            queue.bytes += entry.size;
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

    /// Take a report of `scheme`, to be tried for `retry_for` (its `outcome_retry_hours`):
    /// stored durably before this returns its id. Refused when the scheme's queue is full or
    /// the store fails.
    pub async fn accept(
        &self,
        scheme: &str,
        outcome: &Outcome,
        retry_for: Duration,
    ) -> Result<String, OutboxError> {
        let now = unix_now();
        let seq = self.inner.store.next_seq();
        let mut salt = self.inner.salt.to_vec();
        salt.extend(seq.to_be_bytes());
        let accepted_ms = now.as_millis() as u64;
        let mut entry = Entry {
            seq,
            scheme: scheme.to_owned(),
            id: report_id(outcome, now, &salt),
            accepted_ms,
            expires_ms: accepted_ms.saturating_add(retry_for.as_millis() as u64),
            attempts: 0,
            size: 0,
        };
        let bytes = store::encode(&entry, outcome);
        entry.size = bytes.len();
        self.reserve(scheme, entry.size)?;
        let stored = self.inner.store.insert(seq, bytes).await;
        let id = entry.id.clone();
        {
            let mut queues = self.lock();
            let queue = queues.entry(scheme.to_owned()).or_default();
            queue.reserved.0 -= 1;
            queue.reserved.1 -= entry.size;
            if stored.is_ok() {
                queue.due.insert((Instant::now(), seq));
                queue.bytes += entry.size;
                queue.entries.insert(seq, entry);
                queue.wake.notify_one();
            }
        }
        stored?;
        self.count(scheme, ReportEvent::Received);
        self.ensure_worker(scheme);
        Ok(id)
    }

    /// Take a place for a report of `size` bytes in `scheme`'s queue, or say why not.
    fn reserve(&self, scheme: &str, size: usize) -> Result<(), OutboxError> {
        let settings = &self.inner.settings;
        let mut queues = self.lock();
        let queue = queues.entry(scheme.to_owned()).or_default();
        let reports = queue.entries.len() + queue.reserved.0;
        let bytes = queue.bytes + queue.reserved.1;
        if reports >= settings.max_reports_per_scheme {
            return Err(OutboxError::Full(format!(
                "{} reports",
                settings.max_reports_per_scheme
            )));
        }
        if bytes + size > settings.max_bytes_per_scheme {
            return Err(OutboxError::Full(format!(
                "{} bytes",
                settings.max_bytes_per_scheme
            )));
        }
        queue.reserved.0 += 1;
        queue.reserved.1 += size;
        Ok(())
    }

    /// Each scheme's reports waiting now.
    pub fn depths(&self) -> Vec<Depth> {
        let now = unix_now().as_millis() as u64;
        let mut depths: Vec<Depth> = self
            .lock()
            .iter()
            .map(|(scheme, queue)| Depth {
                scheme: scheme.clone(),
                reports: queue.entries.len(),
                // The smallest number is the oldest report.
                oldest_secs: queue
                    .entries
                    .values()
                    .next()
                    .map_or(0, |e| now.saturating_sub(e.accepted_ms) / 1000),
            })
            .collect();
        depths.sort_by(|a, b| a.scheme.cmp(&b.scheme));
        depths
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.inner.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, scheme: &str, event: ReportEvent) {
        if let Some(counted) = self.inner.counted.get() {
            counted(scheme, event);
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

    /// One attempt of `entry`, and what follows: removed when delivered or past its deadline,
    /// due again after a backoff otherwise.
    async fn attempt(&self, mut entry: Entry, deliverer: Arc<dyn Deliverer>) {
        entry.attempts += 1;
        let result = match self.inner.store.outcome(entry.seq) {
            Ok(outcome) => {
                let delivery = Delivery {
                    report_id: entry.id.clone(),
                    attempt: entry.attempts,
                };
                // On a task of its own: a delivery that panics is a failed attempt, never a
                // report stranded out of its queue.
                let scheme = entry.scheme.clone();
                let attempt = tokio::spawn(async move {
                    let result = deliverer.deliver(&scheme, &outcome, &delivery).await;
                    (result, outcome)
                })
                .await;
                match attempt {
                    Ok((result, outcome)) => result.map_err(|e| (e, Some(outcome))),
                    Err(_) => Err(("the delivery failed unexpectedly".to_owned(), None)),
                }
            }
            Err(e) => Err((format!("cannot read the report: {e}"), None)),
        };
        let now_ms = unix_now().as_millis() as u64;
        let event = match &result {
            Ok(()) => ReportEvent::Delivered,
            Err(_) if now_ms >= entry.expires_ms => ReportEvent::Expired,
            Err(_) => ReportEvent::Retrying,
        };
        match (&result, event) {
            (Err((error, _)), ReportEvent::Expired) => tracing::warn!(
                scheme = %entry.scheme,
                report = %entry.id,
                attempts = entry.attempts,
                %error,
                "outcome report expired undelivered (outcome_retry_hours)"
            ),
            // A CRM that is down fails every attempt: counted (`retrying`), and logged at
            // debug, not once per attempt at the default level.
            (Err((error, _)), _) => tracing::debug!(
                scheme = %entry.scheme,
                report = %entry.id,
                attempt = entry.attempts,
                %error,
                "outcome report not delivered; will try again"
            ),
            _ => {}
        }
        let due = Instant::now() + backoff(&self.inner.settings, entry.attempts);
        match (&result, event) {
            (Err((_, Some(outcome))), ReportEvent::Retrying) => {
                self.inner.store.put(&entry, outcome)
            }
            (_, ReportEvent::Retrying) => {}
            _ => self.inner.store.remove(entry.seq),
        }
        {
            let mut queues = self.lock();
            let queue = queues.entry(entry.scheme.clone()).or_default();
            if event == ReportEvent::Retrying {
                queue.due.insert((due, entry.seq));
                queue.entries.insert(entry.seq, entry.clone());
            } else if let Some(gone) = queue.entries.remove(&entry.seq) {
                queue.bytes -= gone.size;
            }
        }
        self.count(&entry.scheme, event);
    }
}

/// One scheme's worker: start what is due, up to `concurrency` at once; sleep until the next
/// is due or something changes. It holds the outbox only while it starts attempts, and ends
/// once the outbox is gone (the attempts in flight hold it until they end).
async fn work(
    outbox: Weak<Inner>,
    scheme: String,
    deliverer: Arc<dyn Deliverer>,
    wake: Arc<Notify>,
) {
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let sleep_until = {
            let Some(inner) = outbox.upgrade() else {
                return;
            };
            let outbox = Outbox { inner };
            let concurrency = outbox.inner.settings.concurrency.max(1);
            let now = Instant::now();
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
                in_flight.spawn(async move { outbox.attempt(entry, deliverer).await });
            }
            // Nothing due, or no room: only a change or an attempt's end wakes it (and now
            // and then a look whether the outbox is still there).
            let idle = now + Duration::from_secs(1);
            match next_due {
                Some(due) if in_flight.len() < concurrency => due.min(idle),
                _ => idle,
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(sleep_until) => {}
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

/// The wall-clock time, as acceptance and deadlines are kept (they survive a restart).
fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
