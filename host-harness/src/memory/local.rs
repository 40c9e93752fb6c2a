//! The in-process memory store, the default: entries with their expiry, bounded in entries
//! and in bytes (keys and values), the oldest write going first when a cap is reached.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The in-process store: entries with their expiry, and the order they came in, so that the
/// oldest go first when a cap is reached.
pub(super) struct Local {
    entries: HashMap<String, (Vec<u8>, Instant, u64)>,
    order: VecDeque<(String, u64)>,
    next_generation: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Local {
    /// An empty store of at most `max_entries` entries (at least one) and `max_bytes` bytes.
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Local {
        Local {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// Keep `value` under `key` until `expires`, the oldest entries going if a cap is passed;
    /// an entry larger than the byte cap is not kept.
    pub(super) fn put(&mut self, key: String, value: Vec<u8>, expires: Instant) {
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

    /// The value under `key`, unless it has expired by `now` (then it is dropped).
    pub(super) fn get(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
