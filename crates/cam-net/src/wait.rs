//! How long a driver loop may block before its next wake-up.

use std::time::{Duration, Instant};

/// Longest a loop blocks, so Ctrl-C and the end of a run are seen promptly.
pub const MAX_IDLE: Duration = Duration::from_millis(100);

/// Until the earliest of `wakes` (a past one means "now"), and never longer than `MAX_IDLE`.
/// A wake-up that no longer applies must be left out by the caller (`None`), or it would
/// keep the loop spinning.
pub fn time_to_wait(now: Instant, wakes: impl IntoIterator<Item = Option<Instant>>) -> Duration {
    wakes
        .into_iter()
        .flatten()
        .min()
        .map_or(MAX_IDLE, |t| t.saturating_duration_since(now))
        .min(MAX_IDLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_wake_bounded_by_max_idle() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(time_to_wait(now, [None, None]), MAX_IDLE);
        assert_eq!(
            time_to_wait(now, [Some(now + ms(30)), Some(now + ms(10))]),
            ms(10)
        );
        assert_eq!(time_to_wait(now, [Some(now + ms(500))]), MAX_IDLE);
        assert_eq!(time_to_wait(now + ms(5), [Some(now)]), Duration::ZERO);
    }
}
