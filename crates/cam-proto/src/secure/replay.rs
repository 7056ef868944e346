//! The replay window: which packet numbers one session has already accepted, as a sliding
//! bitmap over the newest 2,048 (the shape of RFC 6479 and WireGuard's counter window).
//! Consulted only after a datagram authenticated, so forgeries cannot move it.

/// Packet numbers this far or further below the newest accepted one are refused as too old.
pub const REPLAY_WINDOW: u64 = 2048;
const WORD_BITS: u64 = 64;
/// One word more than the window needs, so advancing never clears bits still inside it.
const WORDS: usize = (REPLAY_WINDOW / WORD_BITS) as usize + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Never seen and inside (or ahead of) the window.
    Fresh,
    /// Accepted before.
    Duplicate,
    /// Below the window: cannot be told apart from a duplicate any more.
    TooOld,
}

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    pub const fn new() -> ReplayWindow {
        ReplayWindow {
            highest: None,
            bitmap: [0; WORDS],
        }
    }

    /// What `pn` would be; changes nothing.
    pub fn check(&self, pn: u64) -> ReplayVerdict {
        let Some(highest) = self.highest else {
            return ReplayVerdict::Fresh;
        };
        if pn > highest {
            return ReplayVerdict::Fresh;
        }
        if highest - pn >= REPLAY_WINDOW {
            return ReplayVerdict::TooOld;
        }
        if self.bitmap[word(pn)] & bit(pn) != 0 {
            ReplayVerdict::Duplicate
        } else {
            ReplayVerdict::Fresh
        }
    }

    /// Checks `pn` and, when fresh, records it.
    pub fn accept(&mut self, pn: u64) -> ReplayVerdict {
        let verdict = self.check(pn);
        if verdict != ReplayVerdict::Fresh {
            return verdict;
        }
        match self.highest {
            Some(highest) if pn <= highest => {}
            Some(highest) => {
                // Clear the words the window slides over (at most all of them).
                let steps = ((pn / WORD_BITS) - (highest / WORD_BITS)).min(WORDS as u64);
                for i in 1..=steps {
                    let w = (highest / WORD_BITS + i) % WORDS as u64;
                    self.bitmap[w as usize] = 0;
                }
                self.highest = Some(pn);
            }
            None => {
                self.bitmap = [0; WORDS];
                self.highest = Some(pn);
            }
        }
        self.bitmap[word(pn)] |= bit(pn);
        ReplayVerdict::Fresh
    }

    /// The newest packet number accepted.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

fn word(pn: u64) -> usize {
    ((pn / WORD_BITS) % WORDS as u64) as usize
}

fn bit(pn: u64) -> u64 {
    1 << (pn % WORD_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::new();
        for pn in 0..5000 {
            assert_eq!(w.accept(pn), ReplayVerdict::Fresh, "{pn}");
        }
        assert_eq!(w.accept(4999), ReplayVerdict::Duplicate);
        assert_eq!(w.accept(4999 - 2047), ReplayVerdict::Duplicate);
        assert_eq!(w.accept(4999 - 2048), ReplayVerdict::TooOld);
        assert_eq!(w.accept(0), ReplayVerdict::TooOld);
    }

    #[test]
    fn reordering_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(3000), ReplayVerdict::Fresh);
        for pn in (1000..3000).rev().step_by(7) {
            assert_eq!(w.accept(pn), ReplayVerdict::Fresh, "{pn}");
            assert_eq!(w.accept(pn), ReplayVerdict::Duplicate, "{pn}");
        }
        assert_eq!(w.accept(952), ReplayVerdict::TooOld);
        assert_eq!(w.accept(953), ReplayVerdict::Fresh);
    }

    #[test]
    fn a_jump_clears_old_bits_but_keeps_recent_ones() {
        let mut w = ReplayWindow::new();
        for pn in 0..64 {
            w.accept(pn);
        }
        // Jump by exactly the window: everything before falls out.
        assert_eq!(w.accept(63 + 2048), ReplayVerdict::Fresh);
        assert_eq!(w.accept(64), ReplayVerdict::Fresh);
        assert_eq!(w.accept(63), ReplayVerdict::TooOld);
        // A small step keeps what is still inside.
        assert_eq!(w.accept(63 + 2048 + 70), ReplayVerdict::Fresh);
        assert_eq!(w.accept(63 + 2048), ReplayVerdict::Duplicate);
        assert_eq!(w.accept(64), ReplayVerdict::TooOld);
        assert_eq!(w.accept(200), ReplayVerdict::Fresh);
        // A huge jump (a bitmap's worth of words and more) clears everything safely.
        assert_eq!(w.accept(u64::MAX - 1), ReplayVerdict::Fresh);
        assert_eq!(w.accept(u64::MAX - 2), ReplayVerdict::Fresh);
        assert_eq!(w.accept(u64::MAX - 1), ReplayVerdict::Duplicate);
    }

    #[test]
    fn matches_a_set_model() {
        use std::collections::BTreeSet;
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut highest: Option<u64> = None;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut base = 0u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base += x % 4;
            let pn = (base + x % 3000).saturating_sub(2500);
            let expected = match highest {
                Some(h) if pn <= h && h - pn >= REPLAY_WINDOW => ReplayVerdict::TooOld,
                _ if seen.contains(&pn) => ReplayVerdict::Duplicate,
                _ => ReplayVerdict::Fresh,
            };
            assert_eq!(w.accept(pn), expected, "pn {pn} highest {highest:?}");
            if expected == ReplayVerdict::Fresh {
                seen.insert(pn);
                highest = Some(highest.map_or(pn, |h| h.max(pn)));
            }
        }
    }
}
