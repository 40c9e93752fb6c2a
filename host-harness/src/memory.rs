//! The host's memory of the last good answer: where the CRM last routed each caller, per
//! scheme, for the scheme's `remember_secs`, to route the caller there when the CRMs fail.
//!
//! The component stays stateless: the host applies the memory around its answer
//! ([`crate::Router::route`]). A call the CRM routes is remembered; a call the CRMs could not
//! route because they failed ([`recalls_for`]: a timeout, no connection or an open breaker,
//! a 5xx or 429, no free sandbox) gets the remembered destinations before the static
//! fallback, marked `source: "memory"`. A CRM that answered "no destination" (or a
//! destination the scheme refuses) is an answer, not a failure: the static fallback applies.
//!
//! Two stores:
//! - in-process (the default): bounded in entries and bytes, oldest first out, expiry honoured;
//! - Redis or Valkey (`--memory-store redis://…`), shared by a fleet behind a load balancer.
//!
//! A store that is down or slow never fails a call: a lookup waits at most
//! [`RECALL_TIMEOUT`], a write happens off the call's path, and every failure is logged and
//! counted (`callroute_memory_total{result="error"}`). Keys are a hash of the scheme's name and
//! the caller, so the store never holds a phone number in clear; values are re-validated when
//! read, as a store is not trusted.

use crate::report::RouteFailure;
use callroute_plugin::destination::{Destination, RingStrategy, Target};
use callroute_plugin::error::ErrorKind;
use callroute_plugin::routing::Routing;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a lookup may add to a call whose CRMs failed.
pub const RECALL_TIMEOUT: Duration = Duration::from_millis(100);
/// The most bytes of a remembered routing read back (32 destinations fit in a third of it).
const MAX_VALUE_BYTES: usize = 8192;
/// Default cap on the in-process store's entries.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default cap on the in-process store's bytes (keys and values).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// What a memory lookup or write came to, counted by `result`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabels {
    /// `hit`, `miss`, `stored` or `error`.
    pub result: &'static str,
}

/// Where calls are remembered.
#[derive(Clone)]
pub struct Memory {
    store: Store,
    counts: Family<MemoryLabels, Counter>,
}

#[derive(Clone)]
enum Store {
    Off,
    Local(Arc<Mutex<Local>>),
    Redis(Arc<RedisStore>),
}

/// A memory store that cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The URL is not a Redis URL the client can use.
    #[error("--memory-store: {0}")]
    Url(String),
}

impl Memory {
    /// No memory: nothing is remembered or recalled (a trial call with a sample answer).
    pub fn off() -> Memory {
        Memory {
            store: Store::Off,
            counts: Family::default(),
        }
    }

    /// An in-process store of at most `max_entries` entries and `max_bytes` bytes.
    pub fn local(max_entries: usize, max_bytes: usize) -> Memory {
        Memory {
            store: Store::Local(Arc::new(Mutex::new(Local::new(max_entries, max_bytes)))),
            counts: Family::default(),
        }
    }

    /// A store in Redis or Valkey at `url` (`redis://host:port/db`, `rediss://` for TLS is
    /// not built in). Nothing is connected yet: a store that is down at start is tried again
    /// as calls need it.
    pub fn redis(url: &str) -> Result<Memory, MemoryError> {
        let client = redis::Client::open(url).map_err(|e| MemoryError::Url(e.to_string()))?;
        Ok(Memory {
            store: Store::Redis(Arc::new(RedisStore {
                client,
                connection: tokio::sync::Mutex::new(None),
                next_try: Mutex::new(None),
            })),
            counts: Family::default(),
        })
    }

    /// The counts by result, for `/metrics`.
    pub fn counts(&self) -> Family<MemoryLabels, Counter> {
        self.counts.clone()
    }

    fn count(&self, result: &'static str) {
        self.counts.get_or_create(&MemoryLabels { result }).inc();
    }

    /// Apply the memory around a call's result: remember a routing the CRM made for `for_`,
    /// or route a call whose CRMs failed where the CRM last routed its caller (those of the
    /// remembered destinations the scheme still `allows`; none is a miss), looking no later
    /// than `until`. A caller with fewer than 3 digits (withheld, `anonymous`) is not a
    /// person to remember: many calls share it.
    pub(crate) async fn around(
        &self,
        scheme: &str,
        caller: &str,
        for_: Duration,
        result: Result<Routing, RouteFailure>,
        until: tokio::time::Instant,
        allows: impl Fn(&Destination) -> bool,
    ) -> Result<Routing, RouteFailure> {
        let digits = caller.bytes().filter(u8::is_ascii_digit).count();
        if matches!(self.store, Store::Off) || digits < 3 {
            return result;
        }
        let key = key(scheme, caller);
        match &result {
            Ok(routing) if routing.fallback_cause.is_none() => {
                self.remember(key, encode(routing), for_);
                result
            }
            _ => {
                let cause = match &result {
                    Ok(routing) => routing.fallback_cause.clone(),
                    Err(failure) => Some(failure.clone()),
                };
                let Some(cause) = cause.filter(recalls_for) else {
                    return result;
                };
                let recalled = self.recall(&key, until).await.and_then(|v| decode(&v));
                let recalled = recalled
                    .map(|(d, strategy)| (d.into_iter().filter(|d| allows(d)).collect(), strategy))
                    .filter(|(d, _): &(Vec<Destination>, _)| !d.is_empty());
                match recalled {
                    Some((destinations, strategy)) => {
                        self.count("hit");
                        Ok(Routing {
                            destinations,
                            strategy,
                            refused: Vec::new(),
                            fallback_cause: Some(cause),
                            remembered: true,
                        })
                    }
                    None => {
                        self.count("miss");
                        result
                    }
                }
            }
        }
    }

    fn remember(&self, key: String, value: Vec<u8>, for_: Duration) {
        match &self.store {
            Store::Off => {}
            Store::Local(local) => {
                local.lock().unwrap_or_else(|e| e.into_inner()).put(
                    key,
                    value,
                    Instant::now() + for_,
                );
                self.count("stored");
            }
            Store::Redis(redis) => {
                // Off the call's path: the answer does not wait for the store.
                let (redis, memory) = (redis.clone(), self.clone());
                tokio::spawn(async move {
                    match redis.set(&key, &value, for_).await {
                        Ok(()) => memory.count("stored"),
                        Err(e) => {
                            memory.count("error");
                            tracing::warn!(error = %e, "memory store: not remembered");
                        }
                    }
                });
            }
        }
    }

    async fn recall(&self, key: &str, until: tokio::time::Instant) -> Option<Vec<u8>> {
        let until = until.min(tokio::time::Instant::now() + RECALL_TIMEOUT);
        match &self.store {
            Store::Off => None,
            Store::Local(local) => local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key, Instant::now()),
            Store::Redis(redis) => match tokio::time::timeout_at(until, redis.get(key)).await {
                Ok(Ok(value)) => value,
                Ok(Err(e)) => {
                    self.count("error");
                    tracing::warn!(error = %e, "memory store: lookup failed; skipped");
                    None
                }
                Err(_) => {
                    self.count("error");
                    tracing::warn!("memory store: no answer in time; skipped");
                    None
                }
            },
        }
    }
}

/// Whether a call that failed this way gets what was remembered: the CRMs failed (no answer
/// in time, no connection or an open breaker, a 5xx or 429) or the host had no sandbox for
/// it; not when a CRM answered (no destination, a bad or refused one, a 4xx), nor for an
/// invalid scheme or a crashed component.
pub fn recalls_for(cause: &RouteFailure) -> bool {
    match cause.kind {
        ErrorKind::Timeout | ErrorKind::Transport | ErrorKind::Overloaded => true,
        ErrorKind::HttpStatus => cause.status.is_some_and(|s| s >= 500 || s == 429),
        _ => false,
    }
}

/// The store's key for a caller of a scheme: a hash, so no number is stored in clear.
fn key(scheme: &str, caller: &str) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(scheme.as_bytes());
    hash.update([0]);
    hash.update(caller.as_bytes());
    let digest = callroute_plugin::request::hex(&hash.finalize()[..16]);
    format!("callroute:memory:v1:{digest}")
}

/// A routing as the store keeps it: its strategy and each destination's kind, target and ring
/// time, as JSON.
fn encode(routing: &Routing) -> Vec<u8> {
    use std::fmt::Write as _;
    // Written directly (on every remembered call's path): a validated target holds no `"`,
    // `\` or control character, so it needs no escaping.
    let mut json = String::with_capacity(64 + 48 * routing.destinations.len());
    let _ = write!(
        json,
        r#"{{"strategy":"{}","destinations":["#,
        routing.strategy.as_str()
    );
    for (i, d) in routing.destinations.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(
            json,
            r#"{comma}["{}","{}",{}]"#,
            d.target.kind(),
            d.target.value(),
            d.ring_timeout_secs
        );
    }
    json.push_str("]}");
    json.into_bytes()
}

/// What [`encode`] wrote, every destination validated again; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<(Vec<Destination>, RingStrategy)> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let strategy = value.get("strategy")?.as_str()?.parse().ok()?;
    let destinations = value
        .get("destinations")?
        .as_array()?
        .iter()
        .map(|d| {
            let [kind, target, ring] = d.as_array()?.as_slice() else {
                return None;
            };
            let target = Target::parse(target.as_str()?).ok()?;
            (target.kind() == kind.as_str()?).then_some(())?;
            let ring = u32::try_from(ring.as_u64()?).ok()?;
            (1..=callroute_plugin::scheme::MAX_RING_TIMEOUT_SECS)
                .contains(&ring)
                .then_some(Destination {
                    target,
                    ring_timeout_secs: ring,
                })
        })
        .collect::<Option<Vec<_>>>()?;
    (!destinations.is_empty() && destinations.len() <= callroute_plugin::scheme::MAX_DESTINATIONS)
        .then_some((destinations, strategy))
}

/// The in-process store: entries with their expiry, and the order they came in, so that the
/// oldest go first when a cap is reached.
struct Local {
    entries: HashMap<String, (Vec<u8>, Instant, u64)>,
    order: VecDeque<(String, u64)>,
    next_generation: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Local {
    fn new(max_entries: usize, max_bytes: usize) -> Local {
        Local {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn put(&mut self, key: String, value: Vec<u8>, expires: Instant) {
        let size = key.len() + value.len();
        if size > self.max_bytes {
            return;
        }
        self.remove(&key);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.bytes += size;
        self.order.push_back((key.clone(), generation));
        self.entries.insert(key, (value, expires, generation));
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            // An entry written again since has a newer generation: this place is stale.
            if self.entries.get(&oldest).is_some_and(|e| e.2 == generation) {
                self.remove(&oldest);
            }
        }
        // Keep the order queue from growing with stale places.
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(key, generation)| entries.get(key).is_some_and(|e| e.2 == *generation));
        }
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
        let (value, expires, _) = self.entries.get(key)?;
        if *expires <= now {
            self.remove(key);
            return None;
        }
        Some(value.clone())
    }

    fn remove(&mut self, key: &str) {
        if let Some((value, _, _)) = self.entries.remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }
}

/// The Redis store: one multiplexed connection, made when first needed and made again after
/// a failure, at most once a second.
struct RedisStore {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Not before this instant may a new connection be tried.
    next_try: Mutex<Option<Instant>>,
}

/// How long a failed connection keeps the store from being tried again.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

impl RedisStore {
    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut connection = self.connection.lock().await;
        if let Some(connection) = connection.as_ref() {
            return Ok(connection.clone());
        }
        {
            // The pause is set before trying, so that an attempt cut short by a call's
            // deadline still keeps the next calls from trying at once.
            let mut next_try = self.next_try.lock().unwrap_or_else(|e| e.into_inner());
            if next_try.is_some_and(|at| Instant::now() < at) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the store was unreachable a moment ago",
                )));
            }
            *next_try = Some(Instant::now() + RECONNECT_PAUSE);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RECALL_TIMEOUT / 2))
            .set_response_timeout(Some(RECALL_TIMEOUT / 2));
        let made = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *connection = Some(made.clone());
        *self.next_try.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(made)
    }

    /// Forget a connection that failed: the next use makes a new one, after the pause.
    async fn drop_connection(&self) {
        *self.connection.lock().await = None;
        *self.next_try.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RECONNECT_PAUSE);
    }

    async fn get(&self, key: &str) -> redis::RedisResult<Option<Vec<u8>>> {
        let mut connection = self.connection().await?;
        // At most what a routing can take (a store is not trusted to send little).
        let result = redis::cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(MAX_VALUE_BYTES - 1)
            .query_async::<Vec<u8>>(&mut connection)
            .await
            .map(|value| (!value.is_empty()).then_some(value));
        if result.is_err() {
            self.drop_connection().await;
        }
        result
    }

    async fn set(&self, key: &str, value: &[u8], for_: Duration) -> redis::RedisResult<()> {
        let mut connection = self.connection().await?;
        let result = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(for_.as_millis().max(1) as u64)
            .query_async::<()>(&mut connection)
            .await;
        if result.is_err() {
            self.drop_connection().await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(targets: &[&str]) -> Routing {
        Routing {
            destinations: targets
                .iter()
                .map(|t| Destination {
                    target: Target::parse(t).unwrap(),
                    ring_timeout_secs: 20,
                })
                .collect(),
            strategy: RingStrategy::Parallel,
            refused: Vec::new(),
            fallback_cause: None,
            remembered: false,
        }
    }

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    fn failure(kind: ErrorKind, status: Option<u16>) -> RouteFailure {
        let mut failure = RouteFailure::new(kind, "down");
        failure.status = status;
        failure
    }

    #[tokio::test]
    async fn a_routed_caller_is_routed_there_again_when_the_crm_fails() {
        let memory = Memory::local(10, 1 << 20);
        let day = Duration::from_secs(86_400);
        let routed = memory
            .around(
                "acme",
                "380501112233",
                day,
                Ok(routing(&["101", "manager_7"])),
                far(),
                |_| true,
            )
            .await
            .unwrap();
        assert!(!routed.remembered);
        let down = memory
            .around(
                "acme",
                "380501112233",
                day,
                Err(failure(ErrorKind::Timeout, None)),
                far(),
                |_| true,
            )
            .await
            .unwrap();
        assert!(down.remembered);
        assert_eq!(
            down.destinations,
            routing(&["101", "manager_7"]).destinations
        );
        assert_eq!(down.strategy, RingStrategy::Parallel);
        assert_eq!(down.fallback_cause.unwrap().kind, ErrorKind::Timeout);
        // A destination the scheme no longer allows (its allowlist changed) is not used.
        let narrowed = memory
            .around(
                "acme",
                "380501112233",
                day,
                Err(failure(ErrorKind::Timeout, None)),
                far(),
                |d| d.target.value() != "101",
            )
            .await
            .unwrap();
        assert_eq!(narrowed.destinations, routing(&["manager_7"]).destinations);
        let none_left = memory
            .around(
                "acme",
                "380501112233",
                day,
                Err(failure(ErrorKind::Timeout, None)),
                far(),
                |_| false,
            )
            .await;
        assert!(none_left.is_err());
        // Another caller, another scheme: nothing remembered.
        for (scheme, caller) in [("acme", "380509999999"), ("globex", "380501112233")] {
            let result = memory
                .around(
                    scheme,
                    caller,
                    day,
                    Err(failure(ErrorKind::Transport, None)),
                    far(),
                    |_| true,
                )
                .await;
            assert!(result.is_err(), "{scheme} {caller}");
        }
        // An answer is not a failure: no memory for "no destination" or a 404.
        for (kind, status) in [
            (ErrorKind::NoDestination, None),
            (ErrorKind::BadResponse, None),
            (ErrorKind::HttpStatus, Some(404)),
            (ErrorKind::Config, None),
        ] {
            let result = memory
                .around(
                    "acme",
                    "380501112233",
                    day,
                    Err(failure(kind, status)),
                    far(),
                    |_| true,
                )
                .await;
            assert!(result.is_err(), "{kind:?}");
        }
        // A withheld caller is not remembered: many calls share it.
        let anonymous = memory
            .around(
                "acme",
                "anonymous",
                day,
                Ok(routing(&["101"])),
                far(),
                |_| true,
            )
            .await;
        assert!(anonymous.is_ok());
        let counts = memory.counts();
        let count = |result| counts.get_or_create(&MemoryLabels { result }).get();
        assert_eq!((count("stored"), count("hit"), count("miss")), (1, 2, 3));
    }

    #[test]
    fn the_local_store_honours_expiry_and_its_caps() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut local = Local::new(2, 1 << 20);
        local.put("a".into(), b"1".to_vec(), later);
        local.put("b".into(), b"2".to_vec(), now);
        assert_eq!(local.get("a", now), Some(b"1".to_vec()));
        assert_eq!(local.get("b", now), None, "expired");
        local.put("b".into(), b"2".to_vec(), later);
        local.put("a".into(), b"3".to_vec(), later);
        local.put("c".into(), b"4".to_vec(), later);
        // Two entries at most: `b` was the oldest write.
        assert_eq!(local.get("b", now), None);
        assert_eq!(local.get("a", now), Some(b"3".to_vec()));
        assert_eq!(local.get("c", now), Some(b"4".to_vec()));
        // Bytes: each entry is 1 + 100 bytes; 250 hold two.
        let mut local = Local::new(100, 250);
        for key in ["x", "y", "z"] {
            local.put(key.into(), vec![0; 100], later);
        }
        assert_eq!(local.get("x", now), None);
        assert!(local.get("z", now).is_some());
        assert!(local.bytes <= 250);
        // Rewriting one key many times keeps the order queue small.
        let mut local = Local::new(10, 1 << 20);
        for i in 0..1000u32 {
            local.put("same".into(), i.to_be_bytes().to_vec(), later);
        }
        assert!(local.order.len() < 40, "{}", local.order.len());
    }

    #[test]
    fn what_the_store_holds_is_validated_again() {
        let routing = routing(&["101", "sip:lead@pbx.example.com"]);
        assert_eq!(
            decode(&encode(&routing)),
            Some((routing.destinations.clone(), RingStrategy::Parallel))
        );
        for forged in [
            r#"{"strategy":"serial","destinations":[["phone","1000&SIP/evil",20]]}"#,
            r#"{"strategy":"serial","destinations":[["sip","101",20]]}"#,
            r#"{"strategy":"serial","destinations":[["phone","101",0]]}"#,
            r#"{"strategy":"serial","destinations":[]}"#,
            r#"{"strategy":"sideways","destinations":[["phone","101",20]]}"#,
            "not json",
        ] {
            assert_eq!(decode(forged.as_bytes()), None, "{forged}");
        }
        assert!(!key("acme", "380501112233").contains("380501112233"));
    }
}
