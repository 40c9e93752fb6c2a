//! `GET /metrics`: what `serve` has routed, in the OpenMetrics text format (which Prometheus
//! scrapes), written by `prometheus-client`, the Prometheus project's Rust client.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `callroute_routes_total` | `scheme`, `outcome` | calls answered: `routed`, `fallback`, `failed` |
//! | `callroute_route_errors_total` | `scheme`, `kind` | calls the CRM did not route, by error kind |
//! | `callroute_route_duration_seconds` | | time to route a call (histogram) |
//!
//! Label values come only from the configured scheme names and the fixed outcome and
//! error-kind sets, so a client cannot grow them; nothing secret is a label.

use crate::report::RouteReport;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
}

impl Metrics {
    /// The metrics of a service with these schemes: each scheme's route counters are there
    /// from the start, at zero, so a dashboard sees a tenant before its first call.
    pub fn new<'a>(schemes: impl Iterator<Item = &'a String>) -> Metrics {
        let routes = Family::<RouteLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(LATENCY_BUCKETS);
        let mut registry = Registry::default();
        registry.register(
            "callroute_routes",
            "Calls handled, by scheme and outcome",
            routes.clone(),
        );
        registry.register(
            "callroute_route_errors",
            "Calls the CRM did not route (failed or fallback), by scheme and error kind",
            errors.clone(),
        );
        registry.register(
            "callroute_route_duration_seconds",
            "Time to route a call, from instance creation to the answer",
            duration.clone(),
        );
        for scheme in schemes {
            for outcome in ["routed", "fallback", "failed"] {
                let _ = routes.get_or_create(&RouteLabels {
                    scheme: SchemeLabel(scheme.clone()),
                    outcome,
                });
            }
        }
        Metrics {
            registry,
            routes,
            errors,
            duration,
        }
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
        self.duration.observe(report.elapsed.as_secs_f64());
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> String {
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
        let schemes = ["acme".to_owned(), "we\"ird\\\nx".to_owned()];
        let metrics = Metrics::new(schemes.iter());
        let failed = RouteReport {
            result: Err(Failure::new(ErrorKind::Timeout, "slow")),
            elapsed: Duration::from_millis(30),
        };
        metrics.observe("acme", &failed);
        metrics.observe("acme", &failed);
        let text = metrics.render();
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
