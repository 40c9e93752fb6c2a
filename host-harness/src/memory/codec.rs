//! What a memory store holds, whichever the store: the key for a caller of a scheme (a hash,
//! so no number is stored in clear) and the remembered routing as JSON through serde, read
//! back with every destination validated again (a shared store is not trusted).
//!
//! The value is `{"strategy":"…","destinations":[["kind","target",ring_secs],…]}`; instances
//! of a fleet that share a store read each other's values, so the form only changes with the
//! key's version (`callroute:memory:v1:`).

use callroute_plugin::destination::{Destination, RingStrategy, Target};
use callroute_plugin::routing::Routing;
use callroute_plugin::scheme::{MAX_DESTINATIONS, MAX_RING_TIMEOUT_SECS};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// The most bytes of a remembered routing read back from a shared store (32 destinations fit
/// in a third of it).
pub(super) const MAX_VALUE_BYTES: usize = 8192;

/// The store's key for a caller of a scheme: a hash, so no number is stored in clear.
pub(super) fn key(scheme: &str, caller: &str) -> String {
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
pub(super) fn encode(routing: &Routing) -> Vec<u8> {
    // On every remembered call's path: written straight into one buffer, the destinations
    // streamed from the routing without a copy.
    let mut json = Vec::with_capacity(64 + 48 * routing.destinations.len());
    // Strings and integers into a `Vec` cannot fail to serialize.
    let _ = serde_json::to_writer(&mut json, &Stored(routing));
    json
}

/// What [`encode`] wrote, every destination validated again; `None` for anything else.
pub(super) fn decode(bytes: &[u8]) -> Option<(Vec<Destination>, RingStrategy)> {
    let read: Remembered = serde_json::from_slice(bytes).ok()?;
    let strategy = read.strategy.parse().ok()?;
    if read.destinations.is_empty() || read.destinations.len() > MAX_DESTINATIONS {
        return None;
    }
    let destinations = read
        .destinations
        .iter()
        .map(|(kind, target, ring)| {
            let target = Target::parse(target).ok()?;
            (target.kind() == kind.as_str()).then_some(())?;
            let ring = u32::try_from(*ring).ok()?;
            (1..=MAX_RING_TIMEOUT_SECS)
                .contains(&ring)
                .then_some(Destination {
                    target,
                    ring_timeout_secs: ring,
                })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((destinations, strategy))
}

/// A routing, borrowed, in the form the store keeps.
struct Stored<'a>(&'a Routing);

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut stored = serializer.serialize_struct("Stored", 2)?;
        stored.serialize_field("strategy", self.0.strategy.as_str())?;
        stored.serialize_field("destinations", &Destinations(&self.0.destinations))?;
        stored.end()
    }
}

/// The destinations, each as `[kind, target, ring_secs]`.
struct Destinations<'a>(&'a [Destination]);

impl Serialize for Destinations<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|d| (d.target.kind(), d.target.value(), d.ring_timeout_secs)),
        )
    }
}

/// What a store sent back, before it is validated: any other shape is refused.
#[derive(Deserialize)]
struct Remembered {
    strategy: String,
    destinations: Vec<(String, String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::tests::routing;

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
            r#"{"strategy":"serial","destinations":[["phone","101",20,1]]}"#,
            r#"{"strategy":"serial","destinations":[["phone","101",-20]]}"#,
            r#"{"strategy":"serial","destinations":[]}"#,
            r#"{"strategy":"sideways","destinations":[["phone","101",20]]}"#,
            r#"{"destinations":[["phone","101",20]]}"#,
            r#"[["phone","101",20]]"#,
            "not json",
        ] {
            assert_eq!(decode(forged.as_bytes()), None, "{forged}");
        }
        assert!(!key("acme", "380501112233").contains("380501112233"));
    }

    #[test]
    fn the_stored_form_is_the_one_a_fleet_shares() {
        // Instances of an older release read and write the same store: the form is fixed.
        assert_eq!(
            String::from_utf8(encode(&routing(&["101", "manager_7"]))).unwrap(),
            r#"{"strategy":"parallel","destinations":[["phone","101",20],["sip","manager_7",20]]}"#
        );
    }
}
