//! How long a driver loop may block before its next wake-up.

use std::time::{Duration, Instant};

/// Until the earliest of `wakes` (a past one means "now"), and never longer than `max_idle`
/// (so Ctrl-C and the end of a run are seen promptly). A wake-up that no longer applies must
/// be left out by the caller (`None`), or it would keep the loop spinning.
pub fn time_to_wait(
    now: Instant,
    wakes: impl IntoIterator<Item = Option<Instant>>,
    max_idle: Duration,
) -> Duration {
    wakes
        .into_iter()
        .flatten()
        .min()
        .map_or(max_idle, |t| t.saturating_duration_since(now))
        .min(max_idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_wake_bounded_by_max_idle() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let max = ms(100);
        assert_eq!(time_to_wait(now, [None, None], max), max);
        assert_eq!(
            time_to_wait(now, [Some(now + ms(30)), Some(now + ms(10))], max),
            ms(10)
        );
        assert_eq!(time_to_wait(now, [Some(now + ms(500))], max), max);
        assert_eq!(time_to_wait(now + ms(5), [Some(now)], max), Duration::ZERO);
    }
}
