//! The routing loop: ask the CRM (retrying, then the secondary CRM) within one deadline, guard
//! the destination, and fall back to the scheme's static destination when the CRMs give no
//! usable answer.
//!
//! It runs over a [`Transport`] (time, waiting, one HTTP exchange), so the same logic runs in
//! the component over `wasi:http` and natively in tests and benchmarks.
//!
//! Deadline budgeting: the whole call has `response_timeout_secs`. Each attempt may use the
//! time left divided by the number of CRMs still to ask, so a primary CRM that hangs leaves
//! the secondary its share. Retries (`retries`) follow connection failures and 5xx only, after
//! a short pause, and only while time is left; a timed-out CRM is not retried.

use crate::answer::{self, Answered};
use crate::call::Call;
use crate::destination::{Destination, Refused, RingStrategy, Target};
use crate::error::{Failure, RouteError};
use crate::request;
use crate::scheme::{Endpoint, Scheme};
use std::time::Duration;

/// Shortest time worth starting an attempt with.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(50);
/// Pause before a retry.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The time one request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTime {
    /// How long it may take.
    pub timeout: Duration,
    /// Whether that is a share of the time left, with a secondary CRM still to be asked after
    /// it, rather than all of it: a host that keeps only the call's deadline must then be told
    /// when the request is given up, or a CRM that never answers would never count against
    /// its circuit breaker.
    pub shared: bool,
}

/// What the routing loop needs from where it runs.
pub trait Transport {
    /// A monotonic instant (any origin).
    fn now(&mut self) -> Duration;
    /// Wall-clock time since the Unix epoch (request signatures take its seconds; a routing
    /// decision's idempotency key, its nanoseconds too).
    fn unix_time(&mut self) -> Duration;
    /// Wait for `duration`.
    fn sleep(&mut self, duration: Duration);
    /// Send one request to `endpoint` and read the whole answer, all within `timeout`.
    fn send(
        &mut self,
        endpoint: &Endpoint,
        request: request::Request,
        time: AttemptTime,
    ) -> Result<answer::RawAnswer, RouteError>;
}

/// A transport with the CRM's answer already in hand, on a clock that stands still: the routing
/// logic alone, for tests and for measuring that logic (`cargo xtask bench`). `inspect` sees each
/// request before it gets `answer`.
pub struct InHand<F: FnMut(&Endpoint, &request::Request)> {
    /// Looks at each request (a test's assertions; `|_, _| {}` otherwise).
    pub inspect: F,
    /// What every request gets.
    pub answer: Result<answer::RawAnswer, RouteError>,
}

impl<F: FnMut(&Endpoint, &request::Request)> Transport for InHand<F> {
    fn now(&mut self) -> Duration {
        Duration::ZERO
    }
    fn unix_time(&mut self) -> Duration {
        Duration::ZERO
    }
    fn sleep(&mut self, _: Duration) {}
    fn send(
        &mut self,
        endpoint: &Endpoint,
        request: request::Request,
        _: AttemptTime,
    ) -> Result<answer::RawAnswer, RouteError> {
        (self.inspect)(endpoint, &request);
        self.answer.clone()
    }
}

/// Where a call goes (the WIT `routing` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The destinations to ring, in order; never empty.
    pub destinations: Vec<Destination>,
    /// How to ring them.
    pub strategy: RingStrategy,
    /// Destinations the CRM named that were left out, with their reasons.
    pub refused: Vec<Refused>,
    /// Set when `destinations` is not the CRM's answer (the scheme's static fallback, or what
    /// the host remembered): why the CRM's answer was not used (a host adds its own causes,
    /// such as a component that trapped).
    pub fallback_cause: Option<Failure>,
    /// Set by a host that routed the call where the CRM last routed this caller, because the
    /// CRMs failed (see `remember_secs`); a component never sets it.
    pub remembered: bool,
    /// The routing decision's id: the `Idempotency-Key` its webhooks carried, so a platform
    /// can pass it back with the call's outcome. `None` when no webhook was made for this
    /// routing (a host's own fallback before the component ran, a component built against a
    /// contract without it).
    pub decision: Option<String>,
}

impl Routing {
    /// The CRM's own destinations, rung with `strategy`.
    pub fn direct(answered: Answered, strategy: RingStrategy) -> Routing {
        Routing {
            destinations: answered.destinations,
            strategy,
            refused: answered.refused,
            fallback_cause: None,
            remembered: false,
            decision: None,
        }
    }

    /// The first destination: the one a single-destination front end (a plain-text answer,
    /// a 0.1.0 host) rings.
    pub fn first(&self) -> &Destination {
        &self.destinations[0]
    }

    /// The static fallback `targets` because of `cause`, or `cause` itself when there is none.
    /// Hosts use this too, when the component cannot answer.
    pub fn fallback(
        targets: &[Target],
        ring_timeout_secs: u32,
        cause: Failure,
    ) -> Result<Routing, Failure> {
        if targets.is_empty() {
            return Err(cause);
        }
        Ok(Routing {
            destinations: targets
                .iter()
                .map(|target| Destination {
                    target: target.clone(),
                    ring_timeout_secs,
                })
                .collect(),
            strategy: RingStrategy::Serial,
            refused: Vec::new(),
            fallback_cause: Some(cause),
            remembered: false,
            decision: None,
        })
    }
}

/// Route a call: the whole flow, from the scheme's flat pairs to a routing decision.
pub fn route<K, V>(
    scheme_pairs: impl IntoIterator<Item = (K, V)>,
    call: &Call,
    transport: &mut impl Transport,
) -> Result<Routing, RouteError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let scheme = Scheme::from_pairs(scheme_pairs)?;
    let deadline = transport.now() + scheme.response_timeout;
    // Every webhook of this decision carries the same key, and the routing carries it back.
    let decision = request::idempotency_key(call, transport.unix_time());
    // The answer's destinations are already held to the allowlist ([`answer::read`]).
    let routing = match ask(&scheme, call, transport, deadline, &decision) {
        Ok(answered) => Routing::direct(answered, scheme.ring_strategy),
        Err(RouteError::Config(message)) => return Err(RouteError::Config(message)),
        Err(cause) => Routing::fallback(
            &scheme.fallback,
            scheme.ring_timeout_secs,
            Failure::from(cause.clone()),
        )
        .map_err(|_| cause)?,
    };
    Ok(Routing {
        decision: Some(decision),
        ..routing
    })
}

/// Whether an error is worth retrying at the same CRM: it never answered properly (and the
/// host did not hold the request back).
fn retryable(error: &RouteError) -> bool {
    match error {
        RouteError::Transport(_) => true,
        RouteError::HttpStatus { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Whether the CRM was unavailable (worth asking the secondary), rather than answering.
fn unavailable(error: &RouteError) -> bool {
    retryable(error)
        || matches!(error, RouteError::Timeout(_) | RouteError::Unavailable(_))
        || matches!(error, RouteError::HttpStatus { status: 429, .. })
}

/// Ask the CRMs in turn until one answers; the last error otherwise.
fn ask(
    scheme: &Scheme,
    call: &Call,
    transport: &mut impl Transport,
    deadline: Duration,
    key: &str,
) -> Result<Answered, RouteError> {
    let crms: Vec<&Endpoint> = std::iter::once(&scheme.endpoint)
        .chain(scheme.fallback_url.as_ref())
        .collect();
    // Every webhook of this decision carries the same key and its own number, and the
    // secondary says why the primary was not used, so a CRM can de-duplicate and explain.
    let mut number = 0;
    let mut last_error: Option<RouteError> = None;
    for (i, endpoint) in crms.iter().enumerate() {
        let crms_left = (crms.len() - i) as u32;
        let primary_error = (i > 0)
            .then(|| last_error.as_ref().map(request::error_header))
            .flatten();
        for attempt in 0..=scheme.retries {
            if attempt > 0 {
                if deadline.saturating_sub(transport.now()) < RETRY_PAUSE + MIN_ATTEMPT {
                    break;
                }
                transport.sleep(RETRY_PAUSE);
            }
            let remaining = deadline.saturating_sub(transport.now());
            if remaining < MIN_ATTEMPT {
                break;
            }
            let mut request = request::build_for(scheme, endpoint, call)?;
            number += 1;
            let stamp = request::Stamp {
                idempotency_key: key,
                attempt: number,
                primary_error: primary_error.as_deref(),
            };
            stamp.apply(&mut request);
            let unix_seconds = transport.unix_time().as_secs();
            request::sign(&mut request, &scheme.signing_secrets, unix_seconds, &stamp);
            let time = AttemptTime {
                timeout: remaining / crms_left,
                shared: crms_left > 1,
            };
            let result = transport
                .send(endpoint, request, time)
                .and_then(|raw| answer::read(scheme, call, &raw));
            match result {
                Ok(answered) => return Ok(answered),
                Err(error) if !unavailable(&error) => return Err(error),
                Err(error) => {
                    let again = retryable(&error);
                    last_error = Some(error);
                    if !again {
                        break;
                    }
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        RouteError::Timeout(format!(
            "no time left to ask the CRM within {} s",
            crate::scheme::format_seconds(scheme.response_timeout)
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A scripted CRM on a fake clock: each request takes `cost` and gets the next answer
    /// scripted for its host.
    struct Script {
        clock: Duration,
        answers: Vec<(
            &'static str,
            Duration,
            Result<answer::RawAnswer, RouteError>,
        )>,
        sent: Vec<(String, Duration)>,
    }

    impl Script {
        fn new(
            answers: Vec<(
                &'static str,
                Duration,
                Result<answer::RawAnswer, RouteError>,
            )>,
        ) -> Script {
            Script {
                clock: Duration::ZERO,
                answers,
                sent: Vec::new(),
            }
        }
    }

    impl Transport for Script {
        fn now(&mut self) -> Duration {
            self.clock
        }
        fn unix_time(&mut self) -> Duration {
            Duration::from_secs(1_700_000_000) + self.clock
        }
        fn sleep(&mut self, duration: Duration) {
            self.clock += duration;
        }
        fn send(
            &mut self,
            endpoint: &Endpoint,
            _request: request::Request,
            time: AttemptTime,
        ) -> Result<answer::RawAnswer, RouteError> {
            let timeout = time.timeout;
            self.sent.push((endpoint.origin.host.clone(), timeout));
            let i = self
                .answers
                .iter()
                .position(|(host, ..)| *host == endpoint.origin.host)
                .unwrap_or_else(|| panic!("unexpected request to {}", endpoint.origin.host));
            let (_, cost, answer) = self.answers.remove(i);
            if cost > timeout {
                self.clock += timeout;
                return Err(RouteError::Timeout("attempt timed out".into()));
            }
            self.clock += cost;
            answer
        }
    }

    fn ok(body: &str) -> Result<answer::RawAnswer, RouteError> {
        Ok(answer::RawAnswer {
            status: 200,
            body: body.as_bytes().to_vec(),
        })
    }

    fn status(status: u16) -> Result<answer::RawAnswer, RouteError> {
        Ok(answer::RawAnswer {
            status,
            body: Vec::new(),
        })
    }

    fn refused() -> Result<answer::RawAnswer, RouteError> {
        Err(RouteError::Transport("connection refused".into()))
    }

    const MS: Duration = Duration::from_millis(1);

    fn run(extra: &[(&str, &str)], script: &mut Script) -> Result<Routing, RouteError> {
        let mut pairs = vec![("url", "http://primary/"), ("response_timeout_secs", "2")];
        pairs.extend_from_slice(extra);
        route(pairs, &Call::default(), script)
    }

    #[test]
    fn a_direct_answer() {
        let mut script = Script::new(vec![("primary", 10 * MS, ok("101"))]);
        let routing = run(&[], &mut script).unwrap();
        assert_eq!(
            routing,
            Routing {
                destinations: vec![Destination {
                    target: Target::Phone("101".into()),
                    ring_timeout_secs: 30
                }],
                strategy: RingStrategy::Serial,
                refused: Vec::new(),
                fallback_cause: None,
                remembered: false,
                // The key every webhook of the decision carried (the clock is the script's).
                decision: Some(request::idempotency_key(
                    &Call::default(),
                    Duration::from_secs(1_700_000_000)
                )),
            }
        );
        assert_eq!(script.sent, [("primary".to_string(), 2000 * MS)]);
    }

    #[test]
    fn retries_follow_connection_failures_and_5xx_only() {
        let mut script = Script::new(vec![
            ("primary", MS, refused()),
            ("primary", MS, status(503)),
            ("primary", MS, ok("101")),
        ]);
        let routing = run(&[("retries", "2")], &mut script).unwrap();
        assert_eq!(routing.first().target, Target::Phone("101".into()));
        assert_eq!(script.sent.len(), 3);
        assert!(script.clock >= 2 * RETRY_PAUSE, "retries pause first");

        let mut script = Script::new(vec![("primary", MS, status(404))]);
        assert_eq!(
            run(&[("retries", "2")], &mut script).unwrap_err().status(),
            Some(404)
        );
        assert_eq!(script.sent.len(), 1, "a 4xx is an answer, not a failure");

        // A CRM the host holds back (its breaker is open): no retry, no pause, the secondary
        // at once.
        let mut script = Script::new(vec![
            (
                "primary",
                Duration::ZERO,
                Err(RouteError::Unavailable("held back".into())),
            ),
            ("secondary", MS, ok("102")),
        ]);
        let routing = run(
            &[("retries", "3"), ("fallback_url", "http://secondary/")],
            &mut script,
        )
        .unwrap();
        assert_eq!(routing.first().target, Target::Phone("102".into()));
        assert_eq!(script.sent.len(), 2);
        assert_eq!(script.clock, MS, "no pause before the secondary");

        let mut script = Script::new(vec![("primary", 5000 * MS, ok("101"))]);
        assert_eq!(
            run(&[("retries", "2")], &mut script).unwrap_err().kind(),
            ErrorKind::Timeout
        );
        assert_eq!(
            script.sent.len(),
            1,
            "a CRM that timed out is not asked again"
        );
    }

    #[test]
    fn the_secondary_gets_its_share_of_the_deadline() {
        let mut script = Script::new(vec![
            ("primary", 5000 * MS, ok("101")),
            ("backup", 10 * MS, ok("202")),
        ]);
        let routing = run(&[("fallback_url", "http://backup/")], &mut script).unwrap();
        assert_eq!(routing.first().target, Target::Phone("202".into()));
        assert_eq!(
            script.sent[0],
            ("primary".to_string(), 1000 * MS),
            "half the time for the primary"
        );
        assert_eq!(
            script.sent[1],
            ("backup".to_string(), 1000 * MS),
            "the rest for the secondary"
        );
        assert!(script.clock <= 2000 * MS);
    }

    #[test]
    fn a_definitive_answer_does_not_go_to_the_secondary() {
        let mut script = Script::new(vec![("primary", MS, status(204))]);
        let err = run(&[("fallback_url", "http://backup/")], &mut script).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoDestination);
        assert_eq!(script.sent.len(), 1);
    }

    #[test]
    fn the_static_fallback_catches_every_failure() {
        let fallback = [
            ("fallback.0", "+380441234567"),
            ("fallback.1", "manager_7"),
            ("ring_timeout_secs", "20"),
        ];
        for answer in [
            refused(),
            status(500),
            status(404),
            status(204),
            ok("<html>"),
            ok(""),
        ] {
            let mut script = Script::new(vec![("primary", MS, answer)]);
            let routing = run(&fallback, &mut script).unwrap();
            assert_eq!(
                routing.destinations,
                [
                    Destination {
                        target: Target::Phone("+380441234567".into()),
                        ring_timeout_secs: 20
                    },
                    Destination {
                        target: Target::Sip("manager_7".into()),
                        ring_timeout_secs: 20
                    }
                ]
            );
            assert_eq!(routing.strategy, RingStrategy::Serial);
            assert!(routing.fallback_cause.is_some());
        }
        let mut script = Script::new(vec![("primary", 5000 * MS, ok("101"))]);
        let routing = run(&fallback, &mut script).unwrap();
        assert_eq!(routing.fallback_cause.unwrap().kind, ErrorKind::Timeout);
        assert!(
            script.clock <= 2000 * MS,
            "the fallback comes within the deadline"
        );
    }

    #[test]
    fn a_destination_outside_the_allowlist_falls_back() {
        let mut script = Script::new(vec![("primary", MS, ok("+19005550100"))]);
        let routing = run(
            &[("allowed_prefixes", "380"), ("fallback", "101")],
            &mut script,
        )
        .unwrap();
        assert_eq!(routing.first().target, Target::Phone("101".into()));
        let cause = routing.fallback_cause.unwrap();
        assert_eq!(cause.kind, ErrorKind::BadResponse);
        assert!(cause.message.contains("allowed_prefixes"), "{cause}");

        let mut script = Script::new(vec![("primary", MS, ok("+19005550100"))]);
        assert_eq!(
            run(&[("allowed_prefixes", "380")], &mut script)
                .unwrap_err()
                .kind(),
            ErrorKind::BadResponse
        );
    }

    #[test]
    fn an_invalid_scheme_never_falls_back() {
        let mut script = Script::new(vec![]);
        let err = run(&[("method", "PATCH"), ("fallback", "101")], &mut script).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(script.sent.is_empty());
    }

    #[test]
    fn a_list_keeps_what_the_allowlist_allows_and_says_what_it_refused() {
        let mut script = Script::new(vec![(
            "primary",
            MS,
            ok("+380441234567\n+19005550100\n101"),
        )]);
        let routing = run(
            &[
                ("allowed_prefixes", "380,101"),
                ("ring_strategy", "parallel"),
            ],
            &mut script,
        )
        .unwrap();
        let targets: Vec<&str> = routing
            .destinations
            .iter()
            .map(|d| d.target.value())
            .collect();
        assert_eq!(targets, ["+380441234567", "101"]);
        assert_eq!(routing.strategy, RingStrategy::Parallel);
        assert_eq!(routing.refused.len(), 1);
        assert_eq!(routing.refused[0].value, "+19005550100");
        assert!(routing.refused[0].reason.contains("allowed_prefixes"));

        // None allowed: the static fallback, serially, with what was refused.
        let mut script = Script::new(vec![("primary", MS, ok("+19005550100\n+19005550101"))]);
        let routing = run(
            &[
                ("allowed_prefixes", "380"),
                ("fallback", "reception"),
                ("ring_strategy", "parallel"),
            ],
            &mut script,
        )
        .unwrap();
        assert_eq!(routing.first().target, Target::Sip("reception".into()));
        assert_eq!(routing.strategy, RingStrategy::Serial);
        let cause = routing.fallback_cause.unwrap();
        assert_eq!(cause.kind, ErrorKind::BadResponse);
        assert!(cause.message.contains("allowed_prefixes"), "{cause}");
        assert!(
            cause.message.contains("none of the 2 destinations"),
            "{cause}"
        );
    }
}
