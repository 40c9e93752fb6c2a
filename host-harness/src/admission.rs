//! Who gets a sandbox: a call must fit within its tenant's share and find a free slot in the
//! router's pool, or it is answered at once as `overloaded` (with the scheme's fallback)
//! rather than wait past its deadline or fail inside the allocator.
//!
//! The pool ([`crate::router::RouterConfig::max_concurrent_calls`]) is what the whole
//! process may run at once. A tenant's [`Share`] keeps one tenant from taking all of it: a
//! CRM that hangs holds each of its calls for the whole deadline, and without a share its
//! calls alone would fill the pool and turn every other tenant's calls away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a call got no sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Its tenant had its whole share in flight.
    TenantShare,
    /// The router's pool was full.
    PoolFull,
}

impl Rejection {
    /// The reason's name in metrics: `tenant-share` or `pool-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::TenantShare => "tenant-share",
            Rejection::PoolFull => "pool-full",
        }
    }
}

/// A tenant's calls in flight, and the most it may have. The limit can change while calls
/// are in flight (a reload gives a new default share): calls already in keep their place,
/// and new ones are held to the new limit.
#[derive(Debug)]
pub struct Share {
    limit: AtomicU32,
    in_flight: AtomicU32,
}

impl Share {
    /// A share of at most `limit` calls at once (`u32::MAX`: no limit of its own).
    pub fn new(limit: u32) -> Arc<Share> {
        Arc::new(Share {
            limit: AtomicU32::new(limit.max(1)),
            in_flight: AtomicU32::new(0),
        })
    }

    /// Hold the share to `limit` calls from now on.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
    }

    /// The most calls at once.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// The calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A place for one more call, held until the returned guard is dropped; `None` when the
    /// share is full.
    pub fn try_enter(self: &Arc<Self>) -> Option<InShare> {
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(InShare(self.clone()))
    }
}

/// One call's place in its tenant's [`Share`].
#[derive(Debug)]
pub struct InShare(Arc<Share>);

impl Drop for InShare {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The default share of each tenant when a service holds `tenants` of them in a pool of
/// `pool` calls: the whole pool for one, half for two, a third for three, a quarter for four
/// or more. So any one tenant whose CRM hangs leaves most of the pool to the others, while a
/// busy tenant still has room (a quarter of the default 1,000 calls in flight is some 2,500
/// calls a second at a 100 ms CRM).
pub fn default_share(pool: u32, tenants: usize) -> u32 {
    let parts = tenants.clamp(1, 4) as u32;
    pool.max(1).div_ceil(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_holds_its_limit_and_frees_a_place_when_a_call_ends() {
        let share = Share::new(2);
        let first = share.try_enter().unwrap();
        let _second = share.try_enter().unwrap();
        assert!(share.try_enter().is_none());
        assert_eq!(share.in_flight(), 2);
        drop(first);
        assert_eq!(share.in_flight(), 1);
        let _third = share.try_enter().unwrap();
        // A lower limit holds new calls, and lets the ones in flight finish.
        share.set_limit(1);
        assert!(share.try_enter().is_none());
        assert_eq!(share.in_flight(), 2);
    }

    #[test]
    fn the_default_share_leaves_room_for_the_others() {
        assert_eq!(default_share(1000, 1), 1000);
        assert_eq!(default_share(1000, 2), 500);
        assert_eq!(default_share(1000, 3), 334);
        assert_eq!(default_share(1000, 40), 250);
        assert_eq!(default_share(3, 40), 1);
        assert_eq!(default_share(0, 0), 1);
    }
}
