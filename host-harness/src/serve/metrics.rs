//! `GET /metrics`: what `serve` has routed, in the OpenMetrics text format (which Prometheus
//! scrapes), written by `prometheus-client`, the Prometheus project's Rust client.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `callroute_routes_total` | `scheme`, `outcome` | calls answered: `routed`, `fallback`, `failed` |
//! | `callroute_route_errors_total` | `scheme`, `kind` | calls the CRM did not route, by error kind |
//! | `callroute_route_duration_seconds` | | time to route a call (histogram) |
//! | `callroute_calls_in_flight` | `scheme` | calls being routed now |
//! | `callroute_call_share` | `scheme` | the most calls the scheme may have in flight |
//! | `callroute_rejections_total` | `scheme`, `reason` | calls given no sandbox: `tenant-share`, `pool-full` |
//! | `callroute_breaker_state` | `scheme`, `endpoint` | each CRM endpoint's breaker: 0 closed, 1 open, 2 half-open |
//! | `callroute_unauthorized_total` | | requests refused for want of a valid token |
//! | `callroute_config_reloads_total` | `result` | reloads of the schemes file: `ok`, `error` |
//! | `callroute_memory_total` | `result` | the memory of callers' last routing ([`crate::memory`]): `hit`, `miss`, `stored`, `error` |
//! | `callroute_reports_total` | `scheme`, `result` | outcome reports ([`crate::outbox`]): `received`, `delivered`, `retrying` (an attempt failed), `expired` |
//! | `callroute_outbox_reports` | `scheme` | outcome reports waiting in the outbox |
//! | `callroute_outbox_oldest_seconds` | `scheme` | the age of the oldest report waiting |
//!
//! Label values come only from the configured scheme names, their CRM origins (scheme, host
//! and port; never a path or query) and fixed sets, so a client cannot grow them; nothing
//! secret is a label.

use super::Tenants;
use crate::report::RouteReport;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt::Write as _;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A scheme's name as a label value, escaped as the text format requires (`\\`, `\"`,
/// `\n`): `prometheus-client` writes label values as they are, and a scheme's name is
/// whatever its file says.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct SchemeLabel(String);

impl EncodeLabelValue for SchemeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The labels of `callroute_routes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    scheme: SchemeLabel,
    outcome: &'static str,
}

/// The labels of the per-scheme gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemeLabels {
    scheme: SchemeLabel,
}

/// The labels of `callroute_rejections_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    scheme: SchemeLabel,
    reason: &'static str,
}

/// The labels of `callroute_breaker_state`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    scheme: SchemeLabel,
    endpoint: SchemeLabel,
}

/// The labels of `callroute_config_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// The labels of `callroute_reports_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    scheme: SchemeLabel,
    result: &'static str,
}

/// Count one event of a scheme's outcome reports in `counts` ([`Metrics::report_counts`]).
pub fn count_report(
    counts: &Family<ReportLabels, Counter>,
    scheme: &str,
    event: crate::outbox::ReportEvent,
) {
    counts
        .get_or_create(&ReportLabels {
            scheme: SchemeLabel(scheme.to_owned()),
            result: event.as_str(),
        })
        .inc();
}

/// The labels of `callroute_route_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    scheme: SchemeLabel,
    kind: &'static str,
}

/// The metrics of one `serve`.
pub struct Metrics {
    registry: Registry,
    routes: Family<RouteLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    in_flight: Family<SchemeLabels, Gauge>,
    share: Family<SchemeLabels, Gauge>,
    rejections: Family<RejectionLabels, Counter>,
    breakers: Family<BreakerLabels, Gauge>,
    unauthorized: Counter,
    reloads: Family<ReloadLabels, Counter>,
    reports: Family<ReportLabels, Counter>,
    outbox_reports: Family<SchemeLabels, Gauge>,
    outbox_oldest: Family<SchemeLabels, Gauge>,
    /// One scrape at a time: each refills the gauges before writing them.
    rendering: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The metrics of a service, all at zero.
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            routes: Family::default(),
            errors: Family::default(),
            duration: Histogram::new(LATENCY_BUCKETS),
            in_flight: Family::default(),
            share: Family::default(),
            rejections: Family::default(),
            breakers: Family::default(),
            unauthorized: Counter::default(),
            reloads: Family::default(),
            reports: Family::default(),
            outbox_reports: Family::default(),
            outbox_oldest: Family::default(),
            rendering: std::sync::Mutex::new(()),
        };
        let mut registry = Registry::default();
        registry.register(
            "callroute_routes",
            "Calls handled, by scheme and outcome",
            metrics.routes.clone(),
        );
        registry.register(
            "callroute_route_errors",
            "Calls the CRM did not route (failed or fallback), by scheme and error kind",
            metrics.errors.clone(),
        );
        registry.register(
            "callroute_route_duration_seconds",
            "Time to route a call, from instance creation to the answer",
            metrics.duration.clone(),
        );
        registry.register(
            "callroute_calls_in_flight",
            "Calls being routed now, by scheme",
            metrics.in_flight.clone(),
        );
        registry.register(
            "callroute_call_share",
            "The most calls a scheme may have in flight",
            metrics.share.clone(),
        );
        registry.register(
            "callroute_rejections",
            "Calls given no sandbox, answered at once as overloaded, by scheme and reason",
            metrics.rejections.clone(),
        );
        registry.register(
            "callroute_breaker_state",
            "Each CRM endpoint's circuit breaker: 0 closed, 1 open, 2 half-open",
            metrics.breakers.clone(),
        );
        registry.register(
            "callroute_unauthorized",
            "Requests refused for want of a valid bearer token",
            metrics.unauthorized.clone(),
        );
        registry.register(
            "callroute_config_reloads",
            "Reloads of the schemes file, by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "callroute_reports",
            "Outcome reports, by scheme and result: received, delivered, retrying (an attempt \
             failed), expired",
            metrics.reports.clone(),
        );
        registry.register(
            "callroute_outbox_reports",
            "Outcome reports waiting in the outbox, by scheme",
            metrics.outbox_reports.clone(),
        );
        registry.register(
            "callroute_outbox_oldest_seconds",
            "The age of the oldest outcome report waiting in the outbox, by scheme",
            metrics.outbox_oldest.clone(),
        );
        let _ = metrics
            .reloads
            .get_or_create(&ReloadLabels { result: "ok" });
        let _ = metrics
            .reloads
            .get_or_create(&ReloadLabels { result: "error" });
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Show the memory's counts (its `hit`s, `miss`es, `stored` and `error`s) from now on.
    pub fn add_memory(&mut self, counts: Family<crate::memory::MemoryLabels, Counter>) {
        for result in ["hit", "miss", "stored", "error"] {
            let _ = counts.get_or_create(&crate::memory::MemoryLabels { result });
        }
        self.registry.register(
            "callroute_memory",
            "The memory of where the CRM last routed each caller, by result",
            counts,
        );
    }

    /// Show these schemes' route counters from now on, at zero until their first call, so a
    /// dashboard sees a tenant before it is called.
    pub fn add_schemes<'a>(&self, schemes: impl IntoIterator<Item = &'a str>) {
        for scheme in schemes {
            for outcome in ["routed", "fallback", "failed"] {
                let _ = self.routes.get_or_create(&RouteLabels {
                    scheme: SchemeLabel(scheme.to_owned()),
                    outcome,
                });
            }
        }
    }

    /// The outcome reports' counters, for the outbox to count in ([`count_report`]).
    pub fn report_counts(&self) -> Family<ReportLabels, Counter> {
        self.reports.clone()
    }

    /// Count a request refused for want of a valid token.
    pub fn unauthorized(&self) {
        self.unauthorized.inc();
    }

    /// Count a reload of the schemes file.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Count one call of `scheme`.
    pub fn observe(&self, scheme: &str, report: &RouteReport) {
        self.routes
            .get_or_create(&RouteLabels {
                scheme: SchemeLabel(scheme.to_owned()),
                outcome: report.outcome(),
            })
            .inc();
        if let Some(error) = report.error() {
            self.errors
                .get_or_create(&ErrorLabels {
                    scheme: SchemeLabel(scheme.to_owned()),
                    kind: error.kind.as_str(),
                })
                .inc();
        }
        if let Some(rejection) = report.rejected {
            self.rejections
                .get_or_create(&RejectionLabels {
                    scheme: SchemeLabel(scheme.to_owned()),
                    reason: rejection.as_str(),
                })
                .inc();
        }
        self.duration.observe(report.elapsed.as_secs_f64());
    }

    /// The exposition, in the OpenMetrics text format, with the gauges read from `tenants`
    /// and the outbox's `depths` now (a scheme that is gone has none).
    pub fn render(&self, tenants: &Tenants, depths: &[crate::outbox::Depth]) -> String {
        let _one_at_a_time = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        self.in_flight.clear();
        self.share.clear();
        self.breakers.clear();
        self.outbox_reports.clear();
        self.outbox_oldest.clear();
        for depth in depths {
            let labels = SchemeLabels {
                scheme: SchemeLabel(depth.scheme.clone()),
            };
            self.outbox_reports
                .get_or_create(&labels)
                .set(depth.reports as i64);
            self.outbox_oldest
                .get_or_create(&labels)
                .set(depth.oldest_secs as i64);
        }
        for (name, scheme) in tenants.schemes() {
            let labels = SchemeLabels {
                scheme: SchemeLabel(name.to_owned()),
            };
            self.in_flight
                .get_or_create(&labels)
                .set(i64::from(scheme.in_flight()));
            self.share
                .get_or_create(&labels)
                .set(i64::from(scheme.share_limit()));
            for (origin, state) in scheme.breakers().states() {
                self.breakers
                    .get_or_create(&BreakerLabels {
                        scheme: SchemeLabel(name.to_owned()),
                        endpoint: SchemeLabel(origin),
                    })
                    .set(state.as_gauge());
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callroute_plugin::error::{ErrorKind, Failure};
    use std::time::Duration;

    #[test]
    fn counts_by_scheme_outcome_and_kind() {
        let metrics = Metrics::new();
        metrics.add_schemes(["acme", "we\"ird\\\nx"]);
        let failed = RouteReport {
            result: Err(Failure::new(ErrorKind::Timeout, "slow")),
            elapsed: Duration::from_millis(30),
            rejected: None,
            attempts: Vec::new(),
        };
        metrics.observe("acme", &failed);
        metrics.observe("acme", &failed);
        let text = metrics.render(&Tenants::default(), &[]);
        for line in [
            "# TYPE callroute_routes counter",
            "callroute_routes_total{scheme=\"acme\",outcome=\"failed\"} 2",
            "callroute_routes_total{scheme=\"acme\",outcome=\"routed\"} 0",
            // Label values are escaped.
            "callroute_routes_total{scheme=\"we\\\"ird\\\\\\nx\",outcome=\"routed\"} 0",
            "callroute_route_errors_total{scheme=\"acme\",kind=\"timeout\"} 2",
            "callroute_route_duration_seconds_bucket{le=\"0.025\"} 0",
            "callroute_route_duration_seconds_bucket{le=\"0.05\"} 2",
            "callroute_route_duration_seconds_count 2",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
