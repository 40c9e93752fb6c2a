//! The last exchanges of each scheme, in memory: what `serve`'s admin API shows an operator
//! asking "what did we send the CRM, and what did it answer?".
//!
//! Each record is [`crate::exchange::record_json`] with the time it ended: the call (numbers
//! masked unless the server shows them), the outcome, and every attempt, as the router masked
//! them ([`crate::redact`]).
//! A scheme keeps its last `capacity` records; an attempt keeps at most 4 KiB of its request
//! and of its answer, so the memory is bounded whatever the CRMs answer.

use crate::Call;
use crate::exchange::CallShown;
use crate::report::RouteReport;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Default for how many exchanges each scheme keeps.
pub const DEFAULT_CAPACITY: usize = 200;

/// The recent exchanges of every scheme.
#[derive(Debug)]
pub struct Exchanges {
    capacity: usize,
    show_numbers: bool,
    by_scheme: Mutex<HashMap<String, VecDeque<Arc<Record>>>>,
}

/// One call's exchange as it was kept: its JSON form is made when it is read, not on the
/// call's path.
#[derive(Debug)]
struct Record {
    call: CallShown,
    report: RouteReport,
    time_ms: u64,
    /// The call's outcome reports' delivery attempts, oldest first (at most
    /// [`MAX_REPORT_ATTEMPTS`], the latest kept).
    reports: Mutex<VecDeque<Value>>,
}

/// Most delivery attempts of outcome reports one call's record keeps.
const MAX_REPORT_ATTEMPTS: usize = 20;

impl Record {
    fn json(&self) -> Value {
        let mut json = crate::exchange::record_of(&self.call, &self.report);
        if let Some(object) = json.as_object_mut() {
            object.insert("time_ms".into(), self.time_ms.into());
            let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            if !reports.is_empty() {
                object.insert(
                    "reports".into(),
                    Value::Array(reports.iter().cloned().collect()),
                );
            }
        }
        json
    }
}

impl Exchanges {
    /// Keep the last `capacity` exchanges of each scheme; show callers' and callees' numbers
    /// whole only with `show_numbers`.
    pub fn new(capacity: usize, show_numbers: bool) -> Exchanges {
        Exchanges {
            capacity: capacity.max(1),
            show_numbers,
            by_scheme: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Arc<Record>>>> {
        self.by_scheme.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether callers' and callees' numbers are shown whole.
    pub fn shows_numbers(&self) -> bool {
        self.show_numbers
    }

    /// `call` as the records show it (its numbers masked unless the server shows them).
    pub fn shown(&self, call: &Call) -> CallShown {
        CallShown::of(call, self.show_numbers)
    }

    /// Keep the exchange of `call`, routed with the scheme named `scheme` (its report masked
    /// by the router).
    pub fn record(&self, scheme: &str, call: &Call, report: RouteReport) {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let record = Arc::new(Record {
            call: self.shown(call),
            report,
            time_ms,
            reports: Mutex::default(),
        });
        let mut by_scheme = self.lock();
        let kept = by_scheme.entry(scheme.to_owned()).or_default();
        if kept.len() == self.capacity {
            kept.pop_back();
        }
        kept.push_front(record);
    }

    /// Keep an attempt to deliver the outcome report of a call of `scheme`, with that call's
    /// record (when the call is among the recent ones).
    pub fn record_report(
        &self,
        scheme: &str,
        outcome: &callroute_plugin::report::Outcome,
        delivery: &callroute_plugin::report::Delivery,
        attempt: &crate::router::ReportAttempt,
    ) {
        let Some(record) = self
            .kept(scheme)
            .into_iter()
            .find(|r| r.call.call_id == outcome.call_id)
        else {
            return;
        };
        let json = crate::exchange::report_json(outcome, delivery, attempt);
        let mut reports = record.reports.lock().unwrap_or_else(|e| e.into_inner());
        if reports.len() == MAX_REPORT_ATTEMPTS {
            reports.pop_front();
        }
        reports.push_back(json);
    }

    /// A scheme's recent exchanges, newest first.
    pub fn recent(&self, scheme: &str) -> Vec<Value> {
        self.kept(scheme).iter().map(|r| r.json()).collect()
    }

    /// The newest exchange of `call_id` in a scheme's recent ones.
    pub fn find(&self, scheme: &str, call_id: &str) -> Option<Value> {
        self.kept(scheme)
            .iter()
            .find(|r| r.call.call_id == call_id)
            .map(|r| r.json())
    }

    /// A scheme's records, newest first, taken from under the lock: what is made of them is
    /// made without holding up the calls that are being recorded.
    fn kept(&self, scheme: &str) -> Vec<Arc<Record>> {
        self.lock()
            .get(scheme)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A scheme's health over its recent exchanges: how many, the share of each outcome, and
    /// the time to route (p50, p99).
    pub fn health(&self, scheme: &str) -> Value {
        let kept = self.kept(scheme);
        let calls = kept.len();
        let share = |outcome: &str| {
            if calls == 0 {
                0.0
            } else {
                kept.iter()
                    .filter(|r| r.report.outcome() == outcome)
                    .count() as f64
                    / calls as f64
            }
        };
        let mut times: Vec<u64> = kept.iter().map(|r| r.report.elapsed_ms()).collect();
        times.sort_unstable();
        let at = |p: f64| -> Value {
            if times.is_empty() {
                Value::Null
            } else {
                times[((times.len() - 1) as f64 * p).round() as usize].into()
            }
        };
        json!({
            "calls": calls,
            "routed": share("routed"),
            "fallback": share("fallback"),
            "failed": share("failed"),
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
        })
    }

    /// Forget the schemes not in `keep` (gone at a reload).
    pub fn retain(&self, keep: &[&str]) {
        self.lock()
            .retain(|scheme, _| keep.contains(&scheme.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RouteFailure;
    use callroute_plugin::error::ErrorKind;
    use std::time::Duration;

    fn report(ms: u64) -> RouteReport {
        RouteReport {
            result: Err(RouteFailure::new(ErrorKind::Timeout, "slow")),
            elapsed: Duration::from_millis(ms),
            rejected: None,
            attempts: Vec::new(),
        }
    }

    fn call(id: &str) -> Call {
        Call::from_json(&format!(
            r#"{{"call_id":"{id}","caller":"+380501112233","callee":"380441234567"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn keeps_the_last_exchanges_of_each_scheme_newest_first() {
        let exchanges = Exchanges::new(3, false);
        for (i, ms) in [10, 20, 30, 40].into_iter().enumerate() {
            exchanges.record("acme", &call(&format!("c{i}")), report(ms));
        }
        let recent = exchanges.recent("acme");
        let ids: Vec<_> = recent.iter().map(|r| r["call_id"].clone()).collect();
        assert_eq!(ids, ["c3", "c2", "c1"]);
        assert_eq!(recent[0]["caller"], "+38050•••2233");
        assert_eq!(recent[0]["outcome"], "failed");
        assert!(exchanges.find("acme", "c0").is_none(), "the oldest is gone");
        assert_eq!(exchanges.find("acme", "c2").unwrap()["elapsed_ms"], 30);
        let health = exchanges.health("acme");
        assert_eq!(health["calls"], 3);
        assert_eq!(health["failed"], 1.0);
        assert_eq!(health["p50_ms"], 30);
        assert!(exchanges.recent("globex").is_empty());
        assert_eq!(exchanges.health("globex")["p99_ms"], Value::Null);
        exchanges.retain(&["globex"]);
        assert!(exchanges.recent("acme").is_empty());
    }

    #[test]
    fn numbers_are_shown_whole_only_when_asked() {
        let exchanges = Exchanges::new(3, true);
        exchanges.record("acme", &call("c1"), report(5));
        assert_eq!(exchanges.recent("acme")[0]["caller"], "+380501112233");
    }
}
