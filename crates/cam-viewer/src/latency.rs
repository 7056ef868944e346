//! Capture-to-decoded latency: from the capture time in the frame header (wall clock of the
//! sender) to the moment the frame is decoded here. Exact when both ends share a clock (one
//! machine); across machines it is only as good as their clock synchronisation.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Samples kept; beyond this every other sample is thinned out, so a long run keeps a
/// spread over its whole length in bounded memory.
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Default)]
pub struct LatencyRecorder {
    samples: Mutex<Samples>,
}

#[derive(Debug, Default)]
struct Samples {
    micros: Vec<u32>,
    /// Keep one sample in `stride` once the buffer has been thinned.
    stride: u64,
    seen: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl LatencyRecorder {
    /// Records one frame captured at `capture_ts_us` and decoded now. Frames without a
    /// capture time (header lost) or from a clock ahead of ours are skipped.
    pub fn record(&self, capture_ts_us: Option<u64>) {
        let Some(captured) = capture_ts_us else {
            return;
        };
        let Some(age) = now_us().checked_sub(captured) else {
            return;
        };
        let Ok(mut s) = self.samples.lock() else {
            return;
        };
        s.seen += 1;
        let stride = s.stride.max(1);
        if s.seen % stride != 0 {
            return;
        }
        s.micros.push(u32::try_from(age).unwrap_or(u32::MAX));
        if s.micros.len() >= MAX_SAMPLES {
            let thinned: Vec<u32> = s.micros.iter().step_by(2).copied().collect();
            s.micros = thinned;
            s.stride = stride * 2;
        }
    }

    /// The `p`-quantile (0..=1) in milliseconds, if any frame was recorded.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        self.percentiles_ms([p]).map(|[v]| v)
    }

    /// Several quantiles from one sort of the samples.
    pub fn percentiles_ms<const N: usize>(&self, ps: [f64; N]) -> Option<[f64; N]> {
        let s = self.samples.lock().ok()?;
        if s.micros.is_empty() {
            return None;
        }
        let mut sorted = s.micros.clone();
        drop(s);
        sorted.sort_unstable();
        Some(ps.map(|p| {
            let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
            f64::from(sorted[i]) / 1000.0
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_recorded_ages() {
        let r = LatencyRecorder::default();
        assert_eq!(r.percentile_ms(0.5), None);
        let now = now_us();
        for ms in 1..=100u64 {
            r.record(Some(now - ms * 1000));
        }
        r.record(None);
        r.record(Some(now + 10_000_000)); // a clock ahead of ours
        let p50 = r.percentile_ms(0.5).unwrap();
        let p99 = r.percentile_ms(0.99).unwrap();
        assert!((49.0..53.0).contains(&p50), "{p50}");
        assert!((98.0..102.0).contains(&p99), "{p99}");
        // One sort for both gives what two separate ones give.
        assert_eq!(r.percentiles_ms([0.5, 0.99]), Some([p50, p99]));
    }

    #[test]
    fn memory_stays_bounded() {
        let r = LatencyRecorder::default();
        let now = now_us();
        for _ in 0..(MAX_SAMPLES * 3) {
            r.record(Some(now - 1000));
        }
        assert!(r.samples.lock().unwrap().micros.len() < MAX_SAMPLES);
        assert!(r.percentile_ms(0.5).is_some());
    }
}
