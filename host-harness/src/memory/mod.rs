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
//! This module holds the recall policy ([`Memory`]); the parts it uses each have a file:
//! - `codec`: the store's key for a caller and the stored value (serde JSON), validated
//!   again when read;
//! - `local`: the in-process store (the default), bounded in entries and bytes, oldest first
//!   out, expiry honoured;
//! - `redis`: Redis or Valkey (`--memory-store redis://…`), shared by a fleet behind a load
//!   balancer, through the `redis` crate's connection manager.
//!
//! A store that is down or slow never fails a call: a lookup waits at most
//! [`RECALL_TIMEOUT`], a write happens off the call's path (and is given up after
//! [`WRITE_TIMEOUT`]), and every failure is logged and counted
//! (`callroute_memory_total{result="error"}`). An error in a store's reply (a key of the
//! wrong type, a server out of memory) fails that one lookup or write, never the others.
//! Keys are a hash of the scheme's name and the caller, so the store never holds a phone
//! number in clear; values are re-validated when read, as a store is not trusted.

mod codec;
mod local;
mod redis;

use self::codec::{decode, encode, key};
use self::local::Local;
use self::redis::{RedisStore, is_reply_error};
use crate::report::RouteFailure;
use callroute_plugin::destination::Destination;
use callroute_plugin::error::ErrorKind;
use callroute_plugin::routing::Routing;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a lookup may add to a call whose CRMs failed.
pub const RECALL_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest a write to a shared store may take, off the call's path, before it is given up
/// and counted as an error (so that writes do not pile up while the store is unreachable).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
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
    /// not built in). Nothing is connected yet (and no async runtime is needed here): a store
    /// that is down at start is tried as calls need it, and tried again by the connection
    /// manager after it goes down.
    pub fn redis(url: &str) -> Result<Memory, MemoryError> {
        let store = RedisStore::open(url, RECALL_TIMEOUT / 2)
            .map_err(|e| MemoryError::Url(e.to_string()))?;
        Ok(Memory {
            store: Store::Redis(Arc::new(store)),
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
                            // The webhooks were made (and failed): their decision id stands.
                            decision: result.ok().and_then(|r| r.decision),
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

    /// Remember that `destination` answered `caller`'s last call of `scheme` (an `answered`
    /// outcome): who really took the call is a better guess than the CRM's whole ring group,
    /// so when the CRMs fail the caller goes there ("last agent" routing), still held to the
    /// scheme's allowlist when recalled.
    pub(crate) fn learn(
        &self,
        scheme: &str,
        caller: &str,
        destination: Destination,
        for_: Duration,
    ) {
        let digits = caller.bytes().filter(u8::is_ascii_digit).count();
        if matches!(self.store, Store::Off) || digits < 3 {
            return;
        }
        let routing = Routing {
            destinations: vec![destination],
            strategy: callroute_plugin::destination::RingStrategy::Serial,
            refused: Vec::new(),
            fallback_cause: None,
            remembered: false,
            decision: None,
        };
        self.remember(key(scheme, caller), encode(&routing), for_);
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
                    match tokio::time::timeout(WRITE_TIMEOUT, redis.set(&key, &value, for_)).await {
                        Ok(Ok(())) => memory.count("stored"),
                        Ok(Err(e)) => {
                            memory.count("error");
                            tracing::warn!(
                                error = %e,
                                reply_error = is_reply_error(&e),
                                "memory store: not remembered"
                            );
                        }
                        Err(_) => {
                            memory.count("error");
                            tracing::warn!("memory store: no answer in time; not remembered");
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
                    tracing::warn!(
                        error = %e,
                        reply_error = is_reply_error(&e),
                        "memory store: lookup failed; skipped"
                    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use callroute_plugin::destination::{RingStrategy, Target};

    /// A routing the CRM made to `targets`, rung at once (shared with the codec's tests).
    pub(super) fn routing(targets: &[&str]) -> Routing {
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
            decision: None,
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
    fn a_redis_store_needs_no_runtime_and_no_server_to_be_made() {
        // `serve` makes it before anything runs; a store down at start fails no start-up.
        assert!(Memory::redis("redis://127.0.0.1:1/0").is_ok());
        assert!(matches!(
            Memory::redis("http://example.com/"),
            Err(MemoryError::Url(_))
        ));
    }
}
