use super::*;
use callroute_plugin::report::CallStatus;
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory of its own under the system's temporary one, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "callroute-outbox-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn outcome(call_id: &str) -> Outcome {
    Outcome::from_json(&format!(r#"{{"call_id":"{call_id}","status":"busy"}}"#)).unwrap()
}

fn quick() -> OutboxSettings {
    OutboxSettings {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        ..OutboxSettings::default()
    }
}

/// A CRM that refuses a scheme's first `failures` attempts of each report (a scheme named
/// `slow` never answers; one named `panics` makes the delivery panic), recording every attempt.
struct Crm {
    failures: u32,
    attempts: Mutex<Vec<(String, String, u32)>>,
    in_flight: AtomicU32,
}

const HOUR: Duration = Duration::from_secs(3600);

impl Crm {
    fn new(failures: u32) -> Arc<Crm> {
        Arc::new(Crm {
            failures,
            attempts: Mutex::default(),
            in_flight: AtomicU32::new(0),
        })
    }

    fn attempts(&self) -> Vec<(String, String, u32)> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Deliverer for Crm {
    fn deliver<'a>(
        &'a self,
        scheme: &'a str,
        outcome: &'a Outcome,
        delivery: &'a Delivery,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.attempts.lock().unwrap().push((
                scheme.to_owned(),
                delivery.report_id.clone(),
                delivery.attempt,
            ));
            assert_eq!(outcome.status, CallStatus::Busy);
            let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(in_flight <= 64);
            if scheme == "slow" {
                tokio::time::sleep(HOUR).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if scheme == "panics" && delivery.attempt == 1 {
                panic!("a delivery that panics");
            }
            if delivery.attempt > self.failures {
                Ok(())
            } else {
                Err("the CRM answered 503".into())
            }
        })
    }
}

/// What the outbox counted, by scheme and event.
#[derive(Default)]
struct Counts(Mutex<Vec<(String, &'static str)>>);

impl Counts {
    fn counted(self: &Arc<Self>) -> Counted {
        let counts = self.clone();
        Arc::new(move |scheme, event: ReportEvent| {
            counts
                .0
                .lock()
                .unwrap()
                .push((scheme.to_owned(), event.as_str()))
        })
    }

    fn of(&self, scheme: &str, what: &str) -> usize {
        let counts = self.0.lock().unwrap();
        counts
            .iter()
            .filter(|(s, w)| s == scheme && *w == what)
            .count()
    }
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_report_is_stored_before_it_is_acknowledged_and_survives_a_reopen() {
    let dir = Dir::new("reopen");
    let ids = {
        let outbox = Outbox::open(&dir.0, quick()).unwrap();
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                outbox
                    .accept("acme", &outcome(&n.to_string()), HOUR)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(outbox.depths()[0].reports, 3);
        ids
        // Dropped without ever delivering: as a process that stopped.
    };
    let reopened = Outbox::open(&dir.0, quick()).unwrap();
    assert_eq!(
        reopened.depths(),
        [Depth {
            scheme: "acme".into(),
            reports: 3,
            oldest_secs: 0
        }]
    );
    let crm = Crm::new(0);
    let counts = Arc::new(Counts::default());
    reopened.start(crm.clone(), counts.counted());
    until("all three delivered", || {
        counts.of("acme", "delivered") == 3
    })
    .await;
    let mut delivered: Vec<String> = crm.attempts().into_iter().map(|(_, id, _)| id).collect();
    delivered.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(
        delivered, ids,
        "each report once, under the id it was accepted with"
    );
    until("removed", || reopened.depths()[0].reports == 0).await;
    drop(reopened);
    // Removed on disk too.
    let again = Outbox::open(&dir.0, quick()).unwrap();
    assert!(again.depths().is_empty());
}

#[tokio::test]
async fn every_attempt_of_a_report_carries_its_id_and_its_number() {
    let dir = Dir::new("retry");
    let outbox = Outbox::open(&dir.0, quick()).unwrap();
    let crm = Crm::new(3);
    let counts = Arc::new(Counts::default());
    outbox.start(crm.clone(), counts.counted());
    let id = outbox.accept("acme", &outcome("c1"), HOUR).await.unwrap();
    until("delivered", || counts.of("acme", "delivered") == 1).await;
    assert_eq!(
        crm.attempts(),
        (1..=4)
            .map(|n| ("acme".to_owned(), id.clone(), n))
            .collect::<Vec<_>>()
    );
    assert_eq!(counts.of("acme", "retrying"), 3);
    assert_eq!(counts.of("acme", "received"), 1);
}

#[tokio::test]
async fn a_report_past_its_retry_time_is_counted_and_removed() {
    let dir = Dir::new("expire");
    let outbox = Outbox::open(&dir.0, quick()).unwrap();
    let crm = Crm::new(u32::MAX);
    let counts = Arc::new(Counts::default());
    outbox.start(crm.clone(), counts.counted());
    outbox
        .accept("acme", &outcome("c1"), Duration::from_millis(100))
        .await
        .unwrap();
    until("expired", || counts.of("acme", "expired") == 1).await;
    assert!(crm.attempts().len() >= 2, "{:?}", crm.attempts());
    assert_eq!(counts.of("acme", "delivered"), 0);
    until("removed", || outbox.depths()[0].reports == 0).await;
}

#[tokio::test]
async fn a_full_queue_refuses_rather_than_drops() {
    let dir = Dir::new("full");
    let outbox = Outbox::open(
        &dir.0,
        OutboxSettings {
            max_reports_per_scheme: 2,
            ..quick()
        },
    )
    .unwrap();
    for n in 0..2 {
        outbox
            .accept("acme", &outcome(&n.to_string()), HOUR)
            .await
            .unwrap();
    }
    let refused = outbox
        .accept("acme", &outcome("2"), HOUR)
        .await
        .unwrap_err();
    assert!(matches!(refused, OutboxError::Full(_)), "{refused}");
    assert!(refused.to_string().contains("2 reports"), "{refused}");
    // Another scheme's queue is its own.
    outbox.accept("other", &outcome("0"), HOUR).await.unwrap();
}

#[tokio::test]
async fn a_scheme_is_held_to_its_bytes_too() {
    let dir = Dir::new("bytes");
    let outbox = Outbox::open(
        &dir.0,
        OutboxSettings {
            max_bytes_per_scheme: 1000,
            ..quick()
        },
    )
    .unwrap();
    let big = Outbox::accept(
        &outbox,
        "acme",
        &Outcome {
            hangup_cause: Some("x".repeat(2000)),
            ..outcome("c1")
        },
        HOUR,
    )
    .await
    .unwrap_err();
    assert!(big.to_string().contains("1000 bytes"), "{big}");
    outbox.accept("acme", &outcome("c2"), HOUR).await.unwrap();
}

#[tokio::test]
async fn a_delivery_that_panics_is_a_failed_attempt_and_tried_again() {
    let dir = Dir::new("panic");
    let outbox = Outbox::open(&dir.0, quick()).unwrap();
    let crm = Crm::new(0);
    let counts = Arc::new(Counts::default());
    outbox.start(crm.clone(), counts.counted());
    outbox.accept("panics", &outcome("c1"), HOUR).await.unwrap();
    until("delivered on the second attempt", || {
        counts.of("panics", "delivered") == 1
    })
    .await;
    assert_eq!(counts.of("panics", "retrying"), 1);
}

#[tokio::test]
async fn a_scheme_whose_crm_hangs_delays_no_other() {
    let dir = Dir::new("isolation");
    let outbox = Outbox::open(&dir.0, quick()).unwrap();
    let crm = Crm::new(0);
    let counts = Arc::new(Counts::default());
    outbox.start(crm.clone(), counts.counted());
    for n in 0..20 {
        outbox
            .accept("slow", &outcome(&n.to_string()), HOUR)
            .await
            .unwrap();
    }
    until("the slow scheme's attempts started", || {
        crm.attempts().len() == quick().concurrency
    })
    .await;
    let started = std::time::Instant::now();
    for n in 0..20 {
        outbox
            .accept("fast", &outcome(&n.to_string()), HOUR)
            .await
            .unwrap();
    }
    until("the other scheme's delivered", || {
        counts.of("fast", "delivered") == 20
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The hanging scheme never has more than its concurrency in flight.
    let slow = crm.attempts().iter().filter(|(s, ..)| s == "slow").count();
    assert_eq!(slow, quick().concurrency);
}

#[test]
fn backoff_doubles_up_to_its_ceiling_with_jitter() {
    let settings = OutboxSettings {
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        ..OutboxSettings::default()
    };
    for (attempts, ceiling) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
        for _ in 0..50 {
            let wait = backoff(&settings, attempts);
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempts}: {wait:?}"
            );
        }
    }
}
