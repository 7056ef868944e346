//! A seeded model of a bad network link: loss, duplication, reordering, bit flips,
//! propagation delay with jitter, a bottleneck rate with a drop-tail queue. The sans-IO tests and the programs'
//! `--simulate-*` flags share it, so a demo shows what the tests prove. Same seed, same
//! input: same output.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is lost (0..=1).
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back behind later ones.
    pub reorder: f64,
    /// Probability that one random bit of a datagram is flipped.
    pub corrupt: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Up to this much more delay, uniform per datagram (so datagrams close together may
    /// overtake each other, as on a real path with varying queues).
    pub jitter: Duration,
    /// Bottleneck rate in bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// Drop-tail queue depth at the bottleneck, as time at the bottleneck rate.
    pub queue: Duration,
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue: Duration::from_millis(100),
            seed: 1,
        }
    }
}

impl Impairment {
    pub fn is_perfect(&self) -> bool {
        self.loss == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.corrupt == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.rate_bps.is_none()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub offered: u64,
    pub lost: u64,
    pub queue_drops: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
}

/// One direction of a simulated link. Each datagram travels with its destination `A`, so a
/// delayed one reaches the address it was sent to, whatever else has happened since.
#[derive(Debug)]
pub struct Link<A = ()> {
    config: Impairment,
    rng: SmallRng,
    in_flight: BinaryHeap<Reverse<(Instant, u64, InFlight<A>)>>,
    order: u64,
    bottleneck_free_at: Option<Instant>,
    stats: LinkStats,
}

/// How far a reordered datagram is held back.
const REORDER_HOLD: Duration = Duration::from_millis(3);

/// A datagram on the link; ordered by the (time, order) before it, never by itself.
#[derive(Debug)]
struct InFlight<A>(A, Vec<u8>);

impl<A> PartialEq for InFlight<A> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<A> Eq for InFlight<A> {}
impl<A> PartialOrd for InFlight<A> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for InFlight<A> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Link<()> {
    /// Offers a datagram to the link at `now` (a link with one destination).
    pub fn send(&mut self, now: Instant, datagram: &[u8]) {
        self.send_to(now, (), datagram);
    }

    /// The next datagram due by `now`, if any.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.poll_deliver_to(now).map(|((), d)| d)
    }
}

impl<A: Clone> Link<A> {
    pub fn new(config: Impairment) -> Link<A> {
        let rng = SmallRng::seed_from_u64(config.seed);
        Link {
            config,
            rng,
            in_flight: BinaryHeap::new(),
            order: 0,
            bottleneck_free_at: None,
            stats: LinkStats::default(),
        }
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    pub fn set_rate(&mut self, rate_bps: Option<u64>) {
        self.config.rate_bps = rate_bps;
    }

    /// Offers a datagram for `to` to the link at `now`.
    pub fn send_to(&mut self, now: Instant, to: A, datagram: &[u8]) {
        self.stats.offered += 1;
        if self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss.min(1.0)) {
            self.stats.lost += 1;
            return;
        }
        let mut at = now;
        if let Some(rate) = self.config.rate_bps.filter(|r| *r > 0) {
            let start = self.bottleneck_free_at.map_or(now, |t| t.max(now));
            if start.saturating_duration_since(now) > self.config.queue {
                self.stats.queue_drops += 1;
                return;
            }
            let bits = (datagram.len() as u64 + 28) * 8;
            let serialize = Duration::from_nanos(bits.saturating_mul(1_000_000_000) / rate);
            at = start + serialize;
            self.bottleneck_free_at = Some(at);
        }
        at += self.config.delay;
        if !self.config.jitter.is_zero() {
            let nanos = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
            at += Duration::from_nanos(self.rng.gen_range(0..=nanos));
        }
        let mut datagram = std::borrow::Cow::Borrowed(datagram);
        if self.config.corrupt > 0.0
            && !datagram.is_empty()
            && self.rng.gen_bool(self.config.corrupt.min(1.0))
        {
            self.stats.corrupted += 1;
            let bit = self.rng.gen_range(0..datagram.len() * 8);
            datagram.to_mut()[bit / 8] ^= 1 << (bit % 8);
        }
        if self.config.reorder > 0.0 && self.rng.gen_bool(self.config.reorder.min(1.0)) {
            self.stats.reordered += 1;
            at += REORDER_HOLD;
        }
        if self.config.duplicate > 0.0 && self.rng.gen_bool(self.config.duplicate.min(1.0)) {
            self.stats.duplicated += 1;
            self.push(
                at + Duration::from_micros(100),
                to.clone(),
                datagram.to_vec(),
            );
        }
        self.push(at, to, datagram.to_vec());
    }

    fn push(&mut self, at: Instant, to: A, data: Vec<u8>) {
        self.order += 1;
        self.in_flight
            .push(Reverse((at, self.order, InFlight(to, data))));
    }

    /// The next datagram due by `now`, with its destination, if any.
    pub fn poll_deliver_to(&mut self, now: Instant) -> Option<(A, Vec<u8>)> {
        match self.in_flight.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self
                .in_flight
                .pop()
                .map(|Reverse((_, _, InFlight(to, data)))| (to, data)),
            _ => None,
        }
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_fate() {
        let run = |seed| {
            let mut link = Link::new(Impairment {
                loss: 0.3,
                seed,
                ..Impairment::default()
            });
            let now = Instant::now();
            let mut got = Vec::new();
            for i in 0..200u32 {
                link.send(now, &i.to_be_bytes());
            }
            while let Some(d) = link.poll_deliver(now) {
                got.push(d);
            }
            got
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let n = run(7).len();
        assert!((110..170).contains(&n), "{n} of 200 delivered at 30% loss");
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let mut link = Link::new(Impairment {
            corrupt: 0.5,
            ..Impairment::default()
        });
        let now = Instant::now();
        let sent = [0u8; 100];
        for _ in 0..200 {
            link.send(now, &sent);
        }
        let flipped: Vec<u32> = std::iter::from_fn(|| link.poll_deliver(now))
            .map(|d| d.iter().map(|b| b.count_ones()).sum())
            .collect();
        assert_eq!(flipped.len(), 200);
        assert!(flipped.iter().all(|&bits| bits <= 1));
        let corrupted = flipped.iter().filter(|&&bits| bits == 1).count() as u64;
        assert_eq!(corrupted, link.stats().corrupted);
        assert!((60..140).contains(&corrupted), "{corrupted}");
    }

    #[test]
    fn jitter_delays_within_its_bound_and_reorders() {
        let mut link = Link::new(Impairment {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(2),
            ..Impairment::default()
        });
        let now = Instant::now();
        for i in 0..100u32 {
            link.send(
                now + Duration::from_micros(u64::from(i) * 100),
                &i.to_be_bytes(),
            );
        }
        let mut order = Vec::new();
        while let Some(at) = link.next_delivery() {
            assert!(at >= now + Duration::from_millis(50));
            assert!(at <= now + Duration::from_millis(62));
            let d = link.poll_deliver(at).unwrap();
            order.push(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
        assert_eq!(order.len(), 100);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "nothing overtaken");
    }

    #[test]
    fn rate_limit_queues_then_drops_tail() {
        let mut link = Link::new(Impairment {
            rate_bps: Some(8_000_000), // 1 MB/s: a 972+28-byte datagram takes 1 ms
            queue: Duration::from_millis(10),
            ..Impairment::default()
        });
        let now = Instant::now();
        for _ in 0..50 {
            link.send(now, &[0u8; 972]);
        }
        assert_eq!(link.stats().queue_drops, 39);
        let last = std::iter::from_fn(|| {
            let t = link.next_delivery()?;
            link.poll_deliver(t).map(|_| t)
        })
        .last();
        assert_eq!(last, Some(now + Duration::from_millis(11)));
    }
}
