//! The outcome of routing one call and how long it took; its JSON form is
//! [`callroute_plugin::outcome`], shared with the component's own HTTP handler.

use callroute_plugin::destination::Destination;
use std::time::Duration;

pub use callroute_plugin::outcome::Failure as RouteFailure;

/// The result of routing one call and how long it took.
#[derive(Debug, Clone)]
pub struct RouteReport {
    /// Where the call goes, or why it could not be routed.
    pub result: Result<Destination, RouteFailure>,
    /// From the start of routing (instance creation) to the answer.
    pub elapsed: Duration,
}

impl RouteReport {
    /// `true` when the call was routed.
    pub fn is_routed(&self) -> bool {
        self.result.is_ok()
    }

    /// Whole milliseconds elapsed.
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed.as_millis() as u64
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        callroute_plugin::outcome::to_json(&self.result, self.elapsed_ms())
    }
}
