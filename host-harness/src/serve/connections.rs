//! The client connections `serve` holds, and which to close when a newcomer finds them all
//! taken.
//!
//! At the connection limit a newcomer is taken in place of the connection that has waited
//! longest for a complete request head: one that never carried a request before an idle
//! keep-alive one. So a client that holds connections open with heads it never finishes (and
//! reopens them as they close) cannot lock a PBX out. A connection whose request is being read,
//! routed or answered is never closed for a newcomer; when every connection has one, newcomers
//! wait in the kernel's accept queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Waiting for a request head: its first, or the next one on a keep-alive connection.
const WAITING: u8 = 0;
/// A request's head has arrived: its body is being read, or it is routed or answered.
const BUSY: u8 = 1;
/// Closed to make room for a newcomer.
const EVICTED: u8 = 2;

/// How soon to look again when the only connections that could make room have bytes hyper
/// has not read yet (maybe a complete head): reading them wakes nobody.
const RECHECK: Duration = Duration::from_millis(2);

/// The least time a connection must have waited for a request head before it may be closed
/// for a newcomer: a PBX's head is read in microseconds, an attacker's never comes.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// The client connections open.
pub(super) struct Connections {
    /// Most open at once.
    limit: usize,
    /// The least a connection must have waited for a head to make room ([`MIN_WAIT`]).
    min_wait: Duration,
    open: Mutex<Open>,
    /// A connection closed or finished a request: there may be room now. (One waiter: the
    /// accept loop.)
    changed: tokio::sync::Notify,
    /// What [`Slot::since`] counts from.
    epoch: Instant,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
}

/// One connection, as the accept loop sees it.
pub(super) struct Slot {
    state: AtomicU8,
    /// Whether it has carried a request: those that never did are closed first.
    served: AtomicBool,
    /// Since when it has waited for a head, in nanoseconds from [`Connections::epoch`].
    since: AtomicU64,
    /// Close it now.
    evict: tokio::sync::Notify,
    socket: Socket,
}

#[cfg(unix)]
type Socket = std::os::fd::RawFd;
#[cfg(not(unix))]
type Socket = ();

enum Room {
    /// Below the limit.
    Free,
    /// At the limit; this connection can be closed.
    Victim(u64),
    /// At the limit; a connection waiting for a head still has bytes to read.
    Soon,
    /// At the limit, every connection busy.
    Full,
}

impl Connections {
    /// At most `limit` connections, a newcomer taking the place of one that has waited
    /// [`MIN_WAIT`] or more for a request head.
    pub(super) fn new(limit: usize) -> Arc<Connections> {
        Connections::waiting_at_least(limit, MIN_WAIT)
    }

    fn waiting_at_least(limit: usize, min_wait: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            limit: limit.max(1),
            min_wait,
            open: Mutex::default(),
            changed: tokio::sync::Notify::new(),
            epoch: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Resolves once a newcomer can be taken: below the limit, or with a connection to close.
    /// Cancel-safe.
    pub(super) async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            let room = {
                let open = self.lock();
                self.find(&open)
            };
            match room {
                Room::Free | Room::Victim(_) => return,
                Room::Soon => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep(RECHECK) => {}
                    }
                }
                Room::Full => changed.await,
            }
        }
    }

    /// Count `stream`, just accepted, among the open connections. At the limit, first close
    /// the one that has waited longest for a request head. `None` when there is none to close:
    /// wait for [`Connections::room`] and try again.
    pub(super) fn admit(self: &Arc<Self>, stream: &tokio::net::TcpStream) -> Option<Registration> {
        #[cfg(unix)]
        let socket = std::os::fd::AsRawFd::as_raw_fd(stream);
        #[cfg(not(unix))]
        let socket = {
            let _ = stream;
        };
        self.admit_socket(socket)
    }

    fn admit_socket(self: &Arc<Self>, socket: Socket) -> Option<Registration> {
        let mut open = self.lock();
        loop {
            match self.find(&open) {
                Room::Free => break,
                Room::Victim(id) => {
                    let victim = open.slots[&id].clone();
                    // It may have begun a request since: then look again.
                    if victim
                        .state
                        .compare_exchange(WAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        open.slots.remove(&id);
                        victim.evict.notify_one();
                        tracing::debug!(
                            served_before = victim.served.load(Ordering::Relaxed),
                            "at the connection limit: closed the connection waiting longest for a request head"
                        );
                        break;
                    }
                }
                Room::Soon | Room::Full => return None,
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let slot = Arc::new(Slot {
            state: AtomicU8::new(WAITING),
            served: AtomicBool::new(false),
            since: AtomicU64::new(self.now()),
            evict: tokio::sync::Notify::new(),
            socket,
        });
        open.slots.insert(id, slot.clone());
        Some(Registration {
            connections: self.clone(),
            id,
            slot,
        })
    }

    /// Which connection a newcomer may replace: of those waiting for a head with nothing left
    /// to read, one that never carried a request before one that did, then the one waiting
    /// longest.
    fn find(&self, open: &Open) -> Room {
        if open.slots.len() < self.limit {
            return Room::Free;
        }
        let mut waiting: Vec<(bool, u64, u64)> = open
            .slots
            .iter()
            .filter(|(_, slot)| slot.state.load(Ordering::Acquire) == WAITING)
            .map(|(&id, slot)| {
                (
                    slot.served.load(Ordering::Relaxed),
                    slot.since.load(Ordering::Relaxed),
                    id,
                )
            })
            .collect();
        if waiting.is_empty() {
            return Room::Full;
        }
        waiting.sort_unstable();
        // Only one that has waited a while: a connection just accepted, or just done with a
        // request, may have its next head on its way through the kernel and the executor.
        let waited_since = self.now().saturating_sub(self.min_wait.as_nanos() as u64);
        waiting
            .into_iter()
            .find(|&(_, since, id)| since <= waited_since && !open.slots[&id].has_unread_bytes())
            .map_or(Room::Soon, |(_, _, id)| Room::Victim(id))
    }
}

impl Slot {
    /// Whether the client has sent bytes hyper has not read yet: a head that may be complete.
    #[cfg(unix)]
    fn has_unread_bytes(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: recv writes at most one byte, into `byte`; MSG_PEEK leaves it for hyper and
        // MSG_DONTWAIT never blocks. The descriptor is the connection's socket, which leaves the
        // registry before it closes; were it another's by then, the answer only decides whether
        // a connection that is closing anyway is passed over.
        let read = unsafe {
            libc::recv(
                self.socket,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        read > 0
    }

    #[cfg(not(unix))]
    fn has_unread_bytes(&self) -> bool {
        false
    }

    /// Resolves when the connection is to close to make room.
    pub(super) fn evicted(&self) -> tokio::sync::futures::Notified<'_> {
        self.evict.notified()
    }
}

/// An open connection's place among [`Connections`]; given up when dropped.
pub(super) struct Registration {
    connections: Arc<Connections>,
    id: u64,
    slot: Arc<Slot>,
}

impl Registration {
    pub(super) fn slot(&self) -> Arc<Slot> {
        self.slot.clone()
    }

    /// What the connection's service marks its requests with.
    pub(super) fn tracker(&self) -> Tracker {
        Tracker {
            connections: self.connections.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().slots.remove(&self.id);
        self.connections.changed.notify_one();
    }
}

/// Marks when a connection's requests begin and end.
#[derive(Clone)]
pub(super) struct Tracker {
    connections: Arc<Connections>,
    slot: Arc<Slot>,
}

impl Tracker {
    /// A request's head has arrived: until [`Tracker::end`] the connection is not closed for a
    /// newcomer. False when it was just taken for one: the request must not begin.
    pub(super) fn begin(&self) -> bool {
        let begun = self
            .slot
            .state
            .compare_exchange(WAITING, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if begun {
            self.slot.served.store(true, Ordering::Relaxed);
        }
        begun
    }

    /// The request is answered; the connection waits for its next head from now.
    pub(super) fn end(&self) {
        self.slot
            .since
            .store(self.connections.now(), Ordering::Relaxed);
        let _ =
            self.slot
                .state
                .compare_exchange(BUSY, WAITING, Ordering::AcqRel, Ordering::Acquire);
        self.connections.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot with no socket to peek (on unix recv(-1) fails: nothing unread).
    #[cfg(unix)]
    const NO_SOCKET: Socket = -1;
    #[cfg(not(unix))]
    const NO_SOCKET: Socket = ();

    #[test]
    fn at_the_limit_a_newcomer_replaces_the_longest_waiting_connection_never_a_busy_one() {
        // A long least wait, so that "not yet" holds however slow the machine.
        const WAIT: Duration = Duration::from_millis(400);
        let connections = Connections::waiting_at_least(2, WAIT);
        // a carries a request and goes idle; then b connects and sends nothing.
        let a = connections.admit_socket(NO_SOCKET).unwrap();
        assert!(a.tracker().begin());
        a.tracker().end();
        let b = connections.admit_socket(NO_SOCKET).unwrap();
        // Nobody has waited long enough yet: a newcomer waits.
        assert!(connections.admit_socket(NO_SOCKET).is_none());
        std::thread::sleep(WAIT);
        // At the limit: b, which never carried a request, goes first though a waited longer.
        let c = connections.admit_socket(NO_SOCKET).unwrap();
        assert!(!b.tracker().begin(), "b was closed for c");
        assert!(a.tracker().begin(), "a was not");
        // a busy, c waiting, but only just: not yet.
        assert!(connections.admit_socket(NO_SOCKET).is_none());
        std::thread::sleep(WAIT);
        // Now c makes room.
        let d = connections.admit_socket(NO_SOCKET).unwrap();
        assert!(!c.tracker().begin());
        // a and d busy: nobody to close; a newcomer waits until one closes.
        assert!(d.tracker().begin());
        assert!(connections.admit_socket(NO_SOCKET).is_none());
        drop(d);
        assert!(connections.admit_socket(NO_SOCKET).is_some());
    }
}
