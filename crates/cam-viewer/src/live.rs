//! Counters the receive worker publishes for the window's on-screen display.
//!
//! The worker copies its statistics into one mutex-guarded slot about ten times a second; the
//! window reads the slot once per refresh. Both sides hold the lock only for a copy of a few
//! dozen integers, so neither ever waits on the other in practice, and new counters added to
//! `ReceiverStats` reach the display without touching this file.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cam_proto::receiver::ReceiverStats;

/// How often the worker publishes: often enough for a smooth rate display, rarely enough to cost
/// nothing.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// What the worker knows, as of `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// When this was published; `None` until the worker's first publication.
    pub at: Option<Instant>,
    pub receiver: ReceiverStats,
    /// Complete frames dropped because the decode side could not keep up.
    pub frames_overflowed: u64,
}

/// The slot shared by the worker (writer) and the window (reader).
#[derive(Debug, Default)]
pub struct LiveStats {
    latest: Mutex<LiveSnapshot>,
}

impl LiveStats {
    pub fn publish(&self, snapshot: LiveSnapshot) {
        *self.lock() = snapshot;
    }

    pub fn snapshot(&self) -> LiveSnapshot {
        self.lock().clone()
    }

    /// A panic elsewhere while holding the lock leaves plain counters behind, still worth showing.
    fn lock(&self) -> MutexGuard<'_, LiveSnapshot> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_the_latest_publication() {
        let live = LiveStats::default();
        assert_eq!(live.snapshot(), LiveSnapshot::default());
        let at = Instant::now();
        let mut snapshot = LiveSnapshot {
            at: Some(at),
            frames_overflowed: 2,
            ..LiveSnapshot::default()
        };
        snapshot.receiver.frames_completed = 7;
        live.publish(snapshot.clone());
        assert_eq!(live.snapshot(), snapshot);
    }
}
