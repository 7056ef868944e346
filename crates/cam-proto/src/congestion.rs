//! A delay-based rate controller: how fast the path takes our datagrams without building a
//! queue. It watches the round trip rise above its recent minimum (a standing queue at the
//! bottleneck) and the share of chunks reported lost, as delay-based controllers such as
//! WebRTC's GCC and LEDBAT do; it measures the rate at which frames are acknowledged, and
//! sets its target just under that when the queue grows, growing it again otherwise.
//!
//! Until the first sign of congestion there is no target at all: on a LAN or loopback the
//! stream is never slowed down or paced.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Over this window the minimum RTT is the path's propagation delay.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// Acknowledged bytes over this window give the delivery rate.
const DELIVERY_WINDOW: Duration = Duration::from_millis(500);
/// RTT samples over this window are reduced to their minimum, so that late samples
/// (scheduling jitter on a busy machine) are not taken for a queue; a standing queue raises
/// them all.
const QUEUE_FILTER: Duration = Duration::from_millis(200);
/// Target growth per second without congestion (multiplicative).
const GROWTH_PER_SECOND: f64 = 2.0;
/// After a decrease, give the queue time to drain before judging again.
const DECREASE_HOLD_MIN: Duration = Duration::from_millis(200);
/// Loss share that can count as congestion (random loss below it is repaired, not obeyed).
const LOSS_CONGESTION: f64 = 0.10;
/// Above `LOSS_CONGESTION`, loss counts only when it stands this far above the link's usual
/// loss: a lossy Wi-Fi link loses steadily whatever we send, a full queue loses more the
/// more we send. An absolute margin, because a share measured on a few hundred chunks
/// wanders by several points on its own. (A growing queue counts whatever the loss.)
const LOSS_RISE: f64 = 0.10;
/// Fewest chunks in the window for a loss share to mean anything.
const LOSS_MIN_SAMPLE: u64 = 100;
/// How slowly the usual loss follows the measured loss (per evaluation).
const LOSS_BASELINE_WEIGHT: f64 = 0.02;
/// The target never grows past this multiple of the rate actually measured: a stream that
/// sends little (app-limited) must not talk itself into an absurd estimate.
const GROWTH_CAP: f64 = 2.0;
const MIN_TARGET_BPS: f64 = 64_000.0;
/// Queueing delay that counts as a standing queue (plus a fifth of the propagation delay):
/// above the jitter of a loaded machine, well below a router buffer's 100 ms.
const QUEUE_THRESHOLD: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct RateController {
    target_bps: Option<f64>,
    rtts: VecDeque<(Instant, Duration)>,
    min_rtts: VecDeque<(Instant, Duration)>,
    acked: VecDeque<(Instant, u64)>,
    acked_sum: u64,
    /// Per-frame bottleneck estimates: a frame's bytes over the time its datagrams took
    /// beyond the propagation delay (a packet train measures the narrowest link).
    trains: VecDeque<(Instant, f64)>,
    sent_chunks: VecDeque<(Instant, u32, u32, u64)>,
    hold_until: Option<Instant>,
    last_growth: Option<Instant>,
    /// The filtered queue delay a little while ago: its trend tells a growing queue
    /// (decrease) from one that is draining after a decrease (wait).
    queue_then: Option<(Instant, Duration)>,
    /// The link's usual loss share, followed slowly.
    loss_baseline: f64,
    decreases: u64,
}

impl Default for RateController {
    fn default() -> Self {
        Self::new()
    }
}

impl RateController {
    pub fn new() -> RateController {
        RateController {
            target_bps: None,
            rtts: VecDeque::new(),
            min_rtts: VecDeque::new(),
            acked: VecDeque::new(),
            acked_sum: 0,
            trains: VecDeque::new(),
            sent_chunks: VecDeque::new(),
            hold_until: None,
            last_growth: None,
            queue_then: None,
            loss_baseline: 0.0,
            decreases: 0,
        }
    }

    /// The rate the path is believed to carry, or `None` while no congestion was ever seen.
    pub fn target_bps(&self) -> Option<f64> {
        self.target_bps
    }

    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// Propagation delay estimate: the smallest RTT of the last ten seconds.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtts.iter().map(|&(_, r)| r).min()
    }

    /// How far the filtered RTT stands above the propagation delay.
    pub fn queue_delay(&self) -> Option<Duration> {
        let min = self.min_rtt()?;
        let recent = self.rtts.iter().map(|&(_, r)| r).min()?;
        Some(recent.saturating_sub(min))
    }

    /// Bytes acknowledged per second over the last half second.
    pub fn delivery_rate_bps(&self, now: Instant) -> Option<f64> {
        let (first, _) = *self.acked.front()?;
        let span = now
            .saturating_duration_since(first)
            .max(DELIVERY_WINDOW / 4);
        Some(self.acked_sum as f64 * 8.0 / span.as_secs_f64())
    }

    pub fn on_rtt_sample(&mut self, now: Instant, rtt: Duration) {
        self.rtts.push_back((now, rtt));
        while self
            .rtts
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > QUEUE_FILTER)
        {
            self.rtts.pop_front();
        }
        // Monotonic deque: the front is the window's minimum.
        while self.min_rtts.back().is_some_and(|&(_, r)| r >= rtt) {
            self.min_rtts.pop_back();
        }
        self.min_rtts.push_back((now, rtt));
        while self
            .min_rtts
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > MIN_RTT_WINDOW)
        {
            self.min_rtts.pop_front();
        }
        self.evaluate(now);
    }

    /// The bottleneck rate the last frames' trains show (their median), if any.
    pub fn train_rate_bps(&self) -> Option<f64> {
        let mut rates: Vec<f64> = self.trains.iter().map(|&(_, r)| r).collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        Some(rates[rates.len() / 2])
    }

    /// A frame of `bytes` was acknowledged complete, `delivery_time` after its first
    /// datagram; `clean` when nothing of it had to be sent twice (only such a frame's train
    /// measures the link rather than the repair).
    pub fn on_frame_acked(
        &mut self,
        now: Instant,
        bytes: u64,
        delivery_time: Duration,
        clean: bool,
    ) {
        if let Some(min_rtt) = self.min_rtt().filter(|_| clean) {
            let spread = delivery_time.saturating_sub(min_rtt);
            // Below a millisecond the measurement is timer noise (and the link is fast).
            if spread >= Duration::from_millis(1) && bytes >= 8_000 {
                self.trains
                    .push_back((now, bytes as f64 * 8.0 / spread.as_secs_f64()));
                while self.trains.len() > 5 {
                    self.trains.pop_front();
                }
            }
        }
        self.acked.push_back((now, bytes));
        self.acked_sum += bytes;
        while self
            .acked
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > DELIVERY_WINDOW)
        {
            if let Some((_, b)) = self.acked.pop_front() {
                self.acked_sum -= b;
            }
        }
    }

    /// Chunks transmitted (and their bytes), and how many were reported missing, since the
    /// last call.
    pub fn on_chunks(&mut self, now: Instant, sent: u32, lost: u32, bytes: u64) {
        self.sent_chunks.push_back((now, sent, lost, bytes));
        while self
            .sent_chunks
            .front()
            .is_some_and(|&(t, ..)| now.saturating_duration_since(t) > DELIVERY_WINDOW)
        {
            self.sent_chunks.pop_front();
        }
    }

    /// What got through, judged from the sender's side: bytes sent over the last half second
    /// less the share reported lost. The estimate of last resort, when frames are too large
    /// for the link to complete any (so nothing is acknowledged to measure).
    fn goodput_bps(&self, now: Instant) -> Option<f64> {
        let (first, ..) = *self.sent_chunks.front()?;
        let bytes: u64 = self.sent_chunks.iter().map(|&(.., b)| b).sum();
        let span = now
            .saturating_duration_since(first)
            .max(DELIVERY_WINDOW / 4);
        Some(bytes as f64 * 8.0 * (1.0 - self.loss_share()) / span.as_secs_f64())
    }

    fn loss_share(&self) -> f64 {
        let (sent, lost) = self
            .sent_chunks
            .iter()
            .fold((0u64, 0u64), |(s, l), &(_, a, b, _)| {
                (s + u64::from(a), l + u64::from(b))
            });
        if sent < LOSS_MIN_SAMPLE {
            0.0
        } else {
            (lost as f64 / sent as f64).min(1.0)
        }
    }

    fn evaluate(&mut self, now: Instant) {
        let (Some(min_rtt), Some(queue)) = (self.min_rtt(), self.queue_delay()) else {
            return;
        };
        let trend_gap = (min_rtt / 2).max(QUEUE_FILTER / 2);
        let growing = match self.queue_then {
            Some((t, q)) if now.saturating_duration_since(t) >= trend_gap => {
                self.queue_then = Some((now, queue));
                queue >= q
            }
            Some((_, q)) => queue >= q,
            None => {
                self.queue_then = Some((now, queue));
                true
            }
        };
        // Followed on every sample, holds included, so steady loss soon counts as usual.
        self.loss_baseline += (self.loss_share() - self.loss_baseline) * LOSS_BASELINE_WEIGHT;
        if self.hold_until.is_some_and(|t| now < t) {
            return;
        }
        let threshold = QUEUE_THRESHOLD + min_rtt / 5;
        let loss = self.loss_share();
        let loss_congested = loss > LOSS_CONGESTION
            && (loss > self.loss_baseline + LOSS_RISE || queue > threshold / 2);
        if loss_congested || (queue > threshold && growing) {
            self.decrease(now, min_rtt, queue, loss);
        } else if queue > threshold / 2 {
            // Draining after a decrease: neither push nor back off further.
            self.last_growth = Some(now);
        } else if let Some(target) = self.target_bps {
            let last = self.last_growth.unwrap_or(now);
            let dt = now.saturating_duration_since(last).as_secs_f64();
            let mut grown = target * GROWTH_PER_SECOND.powf(dt);
            if let Some(measured) = self.measured_rate_bps(now) {
                grown = grown.min((measured * GROWTH_CAP).max(target));
            }
            self.target_bps = Some(grown);
            self.last_growth = Some(now);
        }
    }

    /// The rate frames were delivered at, or what their trains show the bottleneck carries,
    /// whichever is higher (a sender that sent little delivered little).
    fn measured_rate_bps(&self, now: Instant) -> Option<f64> {
        let delivered = self
            .delivery_rate_bps(now)
            .filter(|_| self.acked.len() >= 2);
        match (delivered, self.train_rate_bps()) {
            (Some(d), Some(t)) => Some(d.max(t)),
            (d, t) => d.or(t),
        }
    }

    fn decrease(&mut self, now: Instant, min_rtt: Duration, queue: Duration, loss: f64) {
        let measured = self
            .measured_rate_bps(now)
            .or_else(|| self.goodput_bps(now));
        let factor = if loss > LOSS_CONGESTION {
            (1.0 - 0.5 * loss).min(0.85)
        } else {
            0.85
        };
        let new_target = match (measured, self.target_bps) {
            (Some(d), Some(t)) => (d * factor).clamp(t * 0.5, t * 0.9),
            (Some(d), None) => d * factor,
            (None, Some(t)) => t * factor.max(0.5),
            (None, None) => return,
        }
        .max(MIN_TARGET_BPS);
        self.target_bps = Some(new_target);
        self.decreases += 1;
        log::debug!(
            "congestion (queue {queue:?}, loss {:.1}%): target {:.0} kbit/s",
            loss * 100.0,
            new_target / 1000.0
        );
        // Long enough for the queue to drain and the new rate to show in the RTT.
        self.hold_until = Some(now + (min_rtt * 2).max(DECREASE_HOLD_MIN));
        self.last_growth = None;
        self.queue_then = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_target_without_congestion() {
        let mut rc = RateController::new();
        let t0 = Instant::now();
        for i in 0..500 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 20_000, 50 * MS, true);
            // Jitter of a few ms on a 50 ms path is not a queue.
            rc.on_rtt_sample(now, 50 * MS + (i % 4) * MS);
        }
        assert_eq!(rc.target_bps(), None);
    }

    #[test]
    fn a_standing_queue_sets_a_target_under_the_delivery_rate() {
        let mut rc = RateController::new();
        let t0 = Instant::now();
        // 10 ms apart, 12,500 bytes each: 10 Mbit/s delivered, each frame's train 10 ms.
        for i in 0..100u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, true);
            let queue = if i > 50 {
                (i - 50) * 2 * MS
            } else {
                Duration::ZERO
            };
            rc.on_rtt_sample(now, 40 * MS + queue);
        }
        let target = rc.target_bps().expect("congestion seen");
        assert!((7.5e6..9.5e6).contains(&target), "{target}");
    }

    #[test]
    fn grows_again_when_the_queue_is_gone() {
        let mut rc = RateController::new();
        let t0 = Instant::now();
        for i in 0..80u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, true);
            rc.on_rtt_sample(now, if i < 40 { 40 * MS } else { 80 * MS });
        }
        let low = rc.target_bps().unwrap();
        for i in 80..400u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, true);
            rc.on_rtt_sample(now, 40 * MS);
        }
        let high = rc.target_bps().unwrap();
        assert!(high > low * 2.0, "{low} -> {high}");
    }

    #[test]
    fn steady_random_loss_is_not_congestion_for_long() {
        // 20% loss on a path with no queue (a bad radio link): after at most a first cut,
        // the target grows back instead of falling to the floor.
        let mut rc = RateController::new();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, false);
            rc.on_chunks(now, 100, 20, 124_000);
            rc.on_rtt_sample(now, 40 * MS);
        }
        let target = rc.target_bps().unwrap_or(f64::INFINITY);
        assert!(target > 8e6, "{target}");
        assert!(rc.decreases() <= 3, "{}", rc.decreases());
    }

    #[test]
    fn growth_stays_near_what_is_measured() {
        let mut rc = RateController::new();
        let t0 = Instant::now();
        // A queue sets a target; then a long quiet stretch at a modest rate.
        for i in 0..80u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, true);
            rc.on_rtt_sample(now, if i < 40 { 40 * MS } else { 80 * MS });
        }
        for i in 80..3000u32 {
            let now = t0 + i * 10 * MS;
            rc.on_frame_acked(now, 12_500, 50 * MS, true);
            rc.on_rtt_sample(now, 40 * MS);
        }
        let target = rc.target_bps().unwrap();
        assert!(target < 40e6, "{target}");
    }

    #[test]
    fn heavy_loss_counts_as_congestion_light_loss_does_not() {
        let t0 = Instant::now();
        let run = |lost_per_100| {
            let mut rc = RateController::new();
            for i in 0..100u32 {
                let now = t0 + i * 10 * MS;
                rc.on_frame_acked(now, 12_500, 41 * MS, true);
                rc.on_chunks(now, 100, lost_per_100, 124_000);
                rc.on_rtt_sample(now, 40 * MS);
            }
            rc.target_bps()
        };
        assert_eq!(run(5), None);
        assert!(run(30).is_some());
    }
}
