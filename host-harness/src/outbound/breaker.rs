//! Circuit breakers, one per CRM endpoint (origin) of a scheme, shared by all its calls and
//! invisible to the component.
//!
//! A CRM that is down costs every caller the whole deadline of silence. After
//! `breaker_failures` consecutive failures of an endpoint (it could not be reached, it did
//! not answer in time, or it answered 5xx) its breaker **opens**: requests to it fail at once,
//! so the component moves on to the secondary `fallback_url`, then the static fallback,
//! without waiting. After `breaker_cooldown_secs` the breaker lets **one probe** through
//! (half-open); its success closes the breaker, its failure opens it again for twice as long
//! (up to [`MAX_COOLDOWN`], or the scheme's own cool-down if that is longer). Each transition
//! is logged once.
//!
//! "Consecutive" is counted in the order requests were sent, not the order they ended: a
//! failure counts only if its request went out after the endpoint's last success. Under load,
//! requests to a CRM that is merely slow now and then end in bunches (all those that waited
//! time out together), while others are answered meanwhile; those bunches must not open the
//! breaker of a CRM that answers most calls. A CRM that is down answers none, and every
//! failure counts.

use super::connector::Origin;
use crate::redact::Secrets;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a growing cool-down gets (unless the scheme's own is longer).
pub const MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// A breaker's state, as `/metrics` shows it (`0`, `1`, `2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Requests fail at once until the cool-down ends.
    Open,
    /// One probe is allowed through; the rest fail at once until it is answered.
    HalfOpen,
}

impl BreakerState {
    /// The state's one spelling, in the admin API and the console: `closed`, `open`,
    /// `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// The state's number in `/metrics`.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// How a scheme's breakers behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open a breaker; 0 turns breakers off.
    pub failures: u32,
    /// The first cool-down.
    pub cooldown: Duration,
}

/// One endpoint's breaker.
#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
        /// When the endpoint last answered.
        last_success: Option<Instant>,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    HalfOpen {
        /// Whether the probe is out (else the next request is the probe).
        probing: bool,
        cooldown: Duration,
    },
}

/// The breakers of one scheme, by endpoint.
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    /// The scheme's name, for the log.
    scheme: String,
    endpoints: Mutex<HashMap<Origin, Breaker>>,
    /// What an endpoint's name must not show.
    secrets: Secrets,
}

/// A request to an open breaker's endpoint, refused at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the circuit breaker of {origin} is open after {failures} consecutive failures; it lets a request through again in {} ms",
    .retry_in.as_millis()
)]
pub struct Open {
    /// The endpoint.
    pub origin: String,
    /// The failures that opened it.
    pub failures: u32,
    /// Until the next probe.
    pub retry_in: Duration,
}

/// How a request went, for its endpoint's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer other than 5xx.
    Success,
    /// No connection, no answer in time, or a 5xx.
    Failure,
}

impl Breakers {
    /// The breakers of scheme `scheme` (its name, for the log), whose endpoints are shown
    /// with `secrets` masked (a host may come from an `${env:…}` reference).
    pub fn new(scheme: &str, settings: BreakerSettings, secrets: Secrets) -> Arc<Breakers> {
        Arc::new(Breakers {
            settings,
            scheme: scheme.to_owned(),
            endpoints: Mutex::default(),
            secrets,
        })
    }

    /// An endpoint as logs, metrics and the admin API show it.
    fn shown(&self, origin: &Origin) -> String {
        self.secrets.mask(&origin.to_string())
    }

    /// How these breakers behave.
    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, Breaker>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let a request to `origin` through, or refuse it at once. What the request comes to
    /// must be told to the returned ticket ([`Ticket::record`]); a ticket dropped untold
    /// counts as a failure if the request ran out of time (`deadline` passed), as nothing
    /// otherwise (the call ended for another reason).
    pub fn admit(self: &Arc<Self>, origin: &Origin, deadline: Instant) -> Result<Ticket, Open> {
        let ticket = |probe| Ticket {
            breakers: self.clone(),
            origin: origin.clone(),
            sent: Instant::now(),
            deadline,
            probe,
            recorded: false,
        };
        if self.settings.failures == 0 {
            return Ok(ticket(false));
        }
        let now = Instant::now();
        let mut endpoints = self.lock();
        let breaker = endpoints.entry(origin.clone()).or_insert(Breaker::Closed {
            failures: 0,
            last_success: None,
        });
        match *breaker {
            Breaker::Closed { .. } => Ok(ticket(false)),
            Breaker::Open { until, cooldown } if now >= until => {
                *breaker = Breaker::HalfOpen {
                    probing: true,
                    cooldown,
                };
                tracing::info!(scheme = %self.scheme, crm = %self.shown(origin), "circuit breaker half-open: sending a probe");
                Ok(ticket(true))
            }
            Breaker::HalfOpen {
                probing: false,
                cooldown,
            } => {
                *breaker = Breaker::HalfOpen {
                    probing: true,
                    cooldown,
                };
                Ok(ticket(true))
            }
            Breaker::Open { until, .. } => Err(self.open(origin, until - now)),
            Breaker::HalfOpen { cooldown, .. } => Err(self.open(origin, cooldown)),
        }
    }

    fn open(&self, origin: &Origin, retry_in: Duration) -> Open {
        Open {
            origin: self.shown(origin),
            failures: self.settings.failures,
            retry_in,
        }
    }

    fn record(&self, origin: &Origin, sent: Instant, probe: bool, outcome: Option<Outcome>) {
        if self.settings.failures == 0 {
            return;
        }
        let mut endpoints = self.lock();
        let Some(breaker) = endpoints.get_mut(origin) else {
            return;
        };
        let base = self.settings.cooldown;
        match (outcome, *breaker) {
            (Some(Outcome::Success), Breaker::Closed { .. }) => {
                *breaker = Breaker::Closed {
                    failures: 0,
                    last_success: Some(Instant::now()),
                };
            }
            (Some(Outcome::Success), _) if probe => {
                *breaker = Breaker::Closed {
                    failures: 0,
                    last_success: Some(Instant::now()),
                };
                tracing::info!(scheme = %self.scheme, crm = %self.shown(origin), "circuit breaker closed: the CRM answers again");
            }
            // Sent before the endpoint last answered: it says nothing new about the endpoint.
            (
                Some(Outcome::Failure),
                Breaker::Closed {
                    last_success: Some(answered),
                    ..
                },
            ) if sent < answered => {}
            (
                Some(Outcome::Failure),
                Breaker::Closed {
                    failures,
                    last_success,
                },
            ) => {
                let failures = failures + 1;
                *breaker = if failures >= self.settings.failures {
                    tracing::warn!(
                        scheme = %self.scheme,
                        crm = %self.shown(origin),
                        failures,
                        cooldown_ms = base.as_millis() as u64,
                        "circuit breaker open: calls fall back at once"
                    );
                    Breaker::Open {
                        until: Instant::now() + base,
                        cooldown: base,
                    }
                } else {
                    Breaker::Closed {
                        failures,
                        last_success,
                    }
                };
            }
            (Some(Outcome::Failure), Breaker::HalfOpen { cooldown, .. }) if probe => {
                let cooldown = (cooldown * 2).min(MAX_COOLDOWN.max(base));
                tracing::warn!(
                    scheme = %self.scheme,
                    crm = %self.shown(origin),
                    cooldown_ms = cooldown.as_millis() as u64,
                    "circuit breaker open again: the probe failed"
                );
                *breaker = Breaker::Open {
                    until: Instant::now() + cooldown,
                    cooldown,
                };
            }
            // A probe that came to nothing: the next request is the probe.
            (None, Breaker::HalfOpen { cooldown, .. }) if probe => {
                *breaker = Breaker::HalfOpen {
                    probing: false,
                    cooldown,
                };
            }
            // Requests let through before the breaker opened, answered after.
            _ => {}
        }
    }

    /// Each endpoint, as shown, and its state.
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(origin, breaker)| {
                let state = match *breaker {
                    Breaker::Closed { .. } => BreakerState::Closed,
                    // Past its cool-down, the next request is a probe.
                    Breaker::Open { until, .. } if now >= until => BreakerState::HalfOpen,
                    Breaker::Open { .. } => BreakerState::Open,
                    Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
                };
                (self.shown(origin), state)
            })
            .collect()
    }
}

/// A request let through a breaker, to be told what it came to.
#[derive(Debug)]
pub struct Ticket {
    breakers: Arc<Breakers>,
    origin: Origin,
    /// When the request went out.
    sent: Instant,
    deadline: Instant,
    probe: bool,
    recorded: bool,
}

impl Ticket {
    /// Tell the breaker what the request came to.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breakers
            .record(&self.origin, self.sent, self.probe, Some(outcome));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        // Dropped untold: the call gave up on the request. At its deadline, that is the CRM
        // not answering in time; before it, the call ended for its own reasons.
        let outcome = (Instant::now() >= self.deadline).then_some(Outcome::Failure);
        self.breakers
            .record(&self.origin, self.sent, self.probe, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            tls: false,
            host: "crm.example.com".into(),
            port: 80,
        }
    }

    fn breakers(failures: u32, cooldown_ms: u64) -> Arc<Breakers> {
        Breakers::new(
            "acme",
            BreakerSettings {
                failures,
                cooldown: Duration::from_millis(cooldown_ms),
            },
            Secrets::default(),
        )
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn fail(breakers: &Arc<Breakers>) {
        breakers
            .admit(&origin(), later())
            .unwrap()
            .record(Outcome::Failure);
    }

    fn state(breakers: &Breakers) -> BreakerState {
        breakers.states()[0].1
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_probes_after_the_cooldown_and_closes() {
        let breakers = breakers(3, 1000);
        fail(&breakers);
        fail(&breakers);
        // A success in between starts the count again.
        breakers
            .admit(&origin(), later())
            .unwrap()
            .record(Outcome::Success);
        fail(&breakers);
        fail(&breakers);
        assert_eq!(state(&breakers), BreakerState::Closed);
        fail(&breakers);
        assert_eq!(state(&breakers), BreakerState::Open);
        let open = breakers.admit(&origin(), later()).unwrap_err();
        assert_eq!(open.failures, 3);
        assert!(
            open.to_string().contains("http://crm.example.com:80"),
            "{open}"
        );

        tokio::time::advance(Duration::from_millis(1000)).await;
        let probe = breakers.admit(&origin(), later()).unwrap();
        // While the probe is out, the others still fail at once.
        assert!(breakers.admit(&origin(), later()).is_err());
        assert_eq!(state(&breakers), BreakerState::HalfOpen);
        probe.record(Outcome::Success);
        assert_eq!(state(&breakers), BreakerState::Closed);
        assert!(breakers.admit(&origin(), later()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_sent_before_an_answer_do_not_count_towards_opening() {
        let breakers = breakers(2, 1000);
        // Three requests go out; one is answered, then the other two time out together, as
        // requests to a CRM that is slow now and then do.
        let slow: Vec<_> = (0..2)
            .map(|_| breakers.admit(&origin(), later()).unwrap())
            .collect();
        tokio::time::advance(Duration::from_millis(10)).await;
        breakers
            .admit(&origin(), later())
            .unwrap()
            .record(Outcome::Success);
        tokio::time::advance(Duration::from_millis(10)).await;
        for ticket in slow {
            ticket.record(Outcome::Failure);
        }
        assert_eq!(state(&breakers), BreakerState::Closed);
        // Failures of requests sent since: they count.
        fail(&breakers);
        fail(&breakers);
        assert_eq!(state(&breakers), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let breakers = breakers(1, 40_000);
        fail(&breakers);
        for expected in [40_000, 60_000, 60_000] {
            let open = breakers.admit(&origin(), later()).unwrap_err();
            assert!(open.retry_in <= Duration::from_millis(expected));
            tokio::time::advance(Duration::from_millis(expected)).await;
            fail(&breakers);
            let open = breakers.admit(&origin(), later()).unwrap_err();
            let doubled = (expected * 2).min(60_000);
            assert_eq!(open.retry_in, Duration::from_millis(doubled));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_at_its_deadline_is_a_failure_and_before_it_nothing() {
        let breakers = breakers(1, 1000);
        let deadline = Instant::now() + Duration::from_millis(500);
        drop(breakers.admit(&origin(), deadline).unwrap());
        assert_eq!(state(&breakers), BreakerState::Closed);
        let ticket = breakers.admit(&origin(), deadline).unwrap();
        tokio::time::advance(Duration::from_millis(500)).await;
        drop(ticket);
        assert_eq!(state(&breakers), BreakerState::Open);
        // A probe that came to nothing leaves the next request to probe.
        tokio::time::advance(Duration::from_millis(1000)).await;
        drop(breakers.admit(&origin(), later()).unwrap());
        assert!(breakers.admit(&origin(), later()).is_ok());
    }

    #[test]
    fn off_lets_everything_through() {
        let breakers = breakers(0, 1000);
        for _ in 0..10 {
            fail(&breakers);
        }
        assert!(breakers.admit(&origin(), later()).is_ok());
        assert!(breakers.states().is_empty());
    }
}
