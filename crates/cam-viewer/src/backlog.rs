//! How many complete frames the viewer lets wait for the decoder: the credit's ceiling.
//!
//! Credit covers the decode queue and the worker's pending frames, so that a long round trip
//! can have several frames granted ahead (a bandwidth-delay product). When the decoder is the
//! slowest stage, though, every granted frame arrives and waits: the queue stands at the full
//! credit, and each frame waits for all the others. At 4K, 30 fps, with a decoder managing
//! 23 fps, that was 10 frames, about 440 ms of the 500 ms capture-to-decode latency measured.
//!
//! A queue that absorbs bursts empties now and then; a standing one never does. So, as CoDel
//! does for packets, after an [`INTERVAL`] in which the queue never emptied the ceiling drops
//! to its minimum, and it grows by one for every interval in which the queue did empty. (A
//! decoder slower than a long link then sees a sawtooth between the two; it is the bottleneck
//! either way.) A decoder that keeps up
//! (the usual case, on any link) leaves the full ceiling; a slow one settles at one or two
//! frames waiting, and the sender, short of credit, sends newer frames less often instead of
//! older frames late.

use std::time::{Duration, Instant};

/// How long a queue must stay non-empty to count as standing: a few frame times at 30 fps.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The ceiling on frames waiting for the decoder, adjusted to what the decoder drains.
#[derive(Debug, Clone)]
pub struct Backlog {
    ceiling: usize,
    min: usize,
    max: usize,
    interval_start: Option<Instant>,
    /// Fewest frames seen waiting in the current interval.
    lowest: usize,
}

impl Backlog {
    /// `min` frames are always allowed (the decode queue, so the decoder never starves for a
    /// hand-over), `max` at most (the credit's old fixed ceiling).
    pub fn new(min: usize, max: usize) -> Backlog {
        let min = min.max(1);
        Backlog {
            ceiling: max.max(min),
            min,
            max: max.max(min),
            interval_start: None,
            lowest: usize::MAX,
        }
    }

    /// Records that `waiting` frames wait for the decoder now; returns the current ceiling.
    pub fn update(&mut self, now: Instant, waiting: usize) -> usize {
        self.lowest = self.lowest.min(waiting);
        let start = *self.interval_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= INTERVAL {
            if self.lowest == 0 {
                self.ceiling = (self.ceiling + 1).min(self.max);
            } else {
                // A queue that stood a whole interval is cut to the minimum at once: a busy
                // spell on the decoder then costs one interval of queue, not ten frames.
                self.ceiling = self.min;
            }
            self.interval_start = Some(now);
            self.lowest = waiting;
        }
        self.ceiling
    }

    pub fn ceiling(&self) -> usize {
        self.ceiling
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated time: a decoder slower than the sender, then a fast one.
    #[test]
    fn a_standing_queue_shrinks_the_ceiling_and_an_emptying_one_restores_it() {
        let t0 = Instant::now();
        let mut b = Backlog::new(2, 10);
        assert_eq!(b.update(t0, 0), 10);
        // The decoder never catches up: the queue stays at the ceiling.
        let mut t = t0;
        for _ in 0..200 {
            t += Duration::from_millis(10);
            let c = b.ceiling();
            b.update(t, c);
        }
        assert_eq!(b.ceiling(), 2, "standing queue: down to the minimum");
        // It drains now and then: one frame more per interval, up to the maximum.
        for _ in 0..200 {
            t += Duration::from_millis(10);
            b.update(t, 0);
            t += Duration::from_millis(10);
            let c = b.ceiling();
            b.update(t, c);
        }
        assert_eq!(b.ceiling(), 10);
    }

    #[test]
    fn a_busy_spell_is_cut_after_one_interval() {
        let t0 = Instant::now();
        let mut b = Backlog::new(2, 10);
        let mut t = t0;
        // The decoder falls behind: one more frame waiting every 30 ms.
        let mut waiting = 0;
        let mut worst = 0;
        for _ in 0..40 {
            t += Duration::from_millis(30);
            waiting = (waiting + 1).min(b.ceiling());
            worst = worst.max(waiting);
            b.update(t, waiting);
        }
        assert!(worst <= 5, "{worst} frames stood before the cut");
        assert_eq!(b.ceiling(), 2);
    }

    #[test]
    fn a_burst_that_drains_within_an_interval_costs_nothing() {
        let t0 = Instant::now();
        let mut b = Backlog::new(2, 10);
        let mut t = t0;
        for i in 0..100 {
            t += Duration::from_millis(10);
            // Eight frames at once every 50 ms, drained in between.
            b.update(t, if i % 5 == 0 { 8 } else { 0 });
        }
        assert_eq!(b.ceiling(), 10);
    }
}
