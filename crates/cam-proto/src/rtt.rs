//! Round-trip estimation (RFC 6298 smoothing, RFC 9002's use of the peer's ack delay).
//! Every timer of the sender derives from this, so one code path suits localhost and a
//! 200 ms intercontinental link alike.

use std::time::Duration;

/// Lower bound of the probe timeout: below this, scheduler jitter on a busy machine would
/// cause spurious probes (harmless, but noise).
pub const MIN_PTO: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct RttEstimator {
    initial: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
    latest: Duration,
}

impl RttEstimator {
    pub fn new(initial: Duration) -> RttEstimator {
        RttEstimator {
            initial,
            smoothed: None,
            var: initial / 2,
            min: Duration::MAX,
            latest: initial,
        }
    }

    /// Adds one sample: the time from sending a datagram to receiving the ack naming it,
    /// less the time the viewer says it held that ack.
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        self.min = self.min.min(sample);
        // Only trust the peer's delay where it leaves a plausible sample (RFC 9002, 5.3).
        let adjusted = if sample >= self.min + ack_delay {
            sample - ack_delay
        } else {
            sample
        };
        self.latest = adjusted;
        match self.smoothed {
            None => {
                self.smoothed = Some(adjusted);
                self.var = adjusted / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(adjusted);
                self.var = (self.var * 3 + diff) / 4;
                self.smoothed = Some((srtt * 7 + adjusted) / 8);
            }
        }
    }

    pub fn has_sample(&self) -> bool {
        self.smoothed.is_some()
    }

    pub fn smoothed(&self) -> Duration {
        self.smoothed.unwrap_or(self.initial)
    }

    pub fn var(&self) -> Duration {
        self.var
    }

    /// Smallest sample seen: the path's propagation delay, for queueing-delay estimates.
    pub fn min(&self) -> Duration {
        if self.min == Duration::MAX {
            self.initial
        } else {
            self.min
        }
    }

    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// How long to wait for an ack before asking again.
    pub fn pto(&self) -> Duration {
        (self.smoothed() + (self.var * 4).max(Duration::from_millis(1))).max(MIN_PTO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn starts_from_initial_then_converges() {
        let mut rtt = RttEstimator::new(100 * MS);
        assert!(!rtt.has_sample());
        assert_eq!(rtt.smoothed(), 100 * MS);
        assert_eq!(rtt.pto(), 300 * MS);
        for _ in 0..50 {
            rtt.update(20 * MS, Duration::ZERO);
        }
        let srtt = rtt.smoothed();
        assert!(srtt >= 19 * MS && srtt <= 21 * MS, "{srtt:?}");
        assert!(rtt.pto() < 30 * MS, "{:?}", rtt.pto());
        assert_eq!(rtt.min(), 20 * MS);
    }

    #[test]
    fn ack_delay_is_subtracted_only_when_plausible() {
        let mut rtt = RttEstimator::new(100 * MS);
        rtt.update(10 * MS, Duration::ZERO);
        rtt.update(30 * MS, 15 * MS);
        assert_eq!(rtt.latest(), 15 * MS);
        rtt.update(12 * MS, 50 * MS);
        assert_eq!(rtt.latest(), 12 * MS);
    }

    #[test]
    fn pto_has_a_floor() {
        let mut rtt = RttEstimator::new(100 * MS);
        rtt.update(Duration::from_micros(50), Duration::ZERO);
        for _ in 0..20 {
            rtt.update(Duration::from_micros(50), Duration::ZERO);
        }
        assert_eq!(rtt.pto(), MIN_PTO);
    }
}
