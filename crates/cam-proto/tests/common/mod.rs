//! The `Pair` harness: a sender and a receiver over simulated links on simulated time.
//! `step()` runs both sides until nothing moves at this instant, then moves time to the
//! earliest wake-up of either side, either link or the frame source.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::adapt::{AdaptConfig, Adapter, Settings};
use cam_proto::receiver::{Receiver, ReceiverConfig, ReceiverEvent};
use cam_proto::secure::Psk;
use cam_proto::sender::{OutgoingFrame, Sender, SenderConfig, SenderEvent};
use cam_proto::sim::{Impairment, Link};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const MS: Duration = Duration::from_millis(1);

/// What the frame source does when the sender has no room when a frame is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Offers the next frame as soon as there is room (files, an unpaced test card).
    Waiting,
    /// A camera: a frame every interval; one that cannot go when due is dropped.
    Live,
}

pub struct Delivered {
    pub seq: u32,
    pub data: Vec<u8>,
    /// Capture (offer) time to complete at the receiver.
    pub latency: Duration,
    pub at: Instant,
}

/// Changes a datagram on its way (index, bytes): see `Pair::tamper`.
pub type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>)>;

pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub sender: Sender,
    pub receiver: Receiver,
    pub to_viewer: Link,
    pub to_client: Link,
    pub client_addr: SocketAddr,
    pub buf: Vec<u8>,
    /// Frames the sender was given: sequence number, bytes, capture time.
    pub sent: Vec<(u32, Vec<u8>, Instant)>,
    pub delivered: Vec<Delivered>,
    pub acked: Vec<u32>,
    pub abandoned: Vec<u32>,
    pub rng: SmallRng,
    pub frame_size: std::ops::Range<usize>,
    pub frame_interval: Option<Duration>,
    pub next_frame_at: Instant,
    pub source: Source,
    /// Live frames dropped because the sender had no room.
    pub source_dropped: u64,
    /// With an adapter, frame sizes follow a model of a textured picture at its settings.
    pub adapter: Option<Adapter>,
    /// Frame bytes at quality 80 and full size (with an adapter).
    pub base_frame_bytes: usize,
    /// Frames left to offer.
    pub to_send: usize,
    /// Sees (and may change) every datagram the sender sends, with its index, before the
    /// link does: an attacker or a faulty device on the path.
    pub tamper: Option<Tamper>,
    /// Datagrams the sender has sent.
    pub sent_datagrams: usize,
}

impl Pair {
    pub fn new(sender_config: SenderConfig, forward: Impairment, back: Impairment) -> Pair {
        let now = Instant::now();
        Pair {
            start: now,
            now,
            frame_interval: sender_config.frame_interval,
            sender: Sender::new(0x5eed, 0, sender_config),
            receiver: Receiver::new(ReceiverConfig::default()),
            to_viewer: Link::new(forward),
            to_client: Link::new(back),
            client_addr: "10.0.0.2:5000".parse().unwrap(),
            buf: Vec::new(),
            sent: Vec::new(),
            delivered: Vec::new(),
            acked: Vec::new(),
            abandoned: Vec::new(),
            rng: SmallRng::seed_from_u64(99),
            frame_size: 3_000..60_000,
            next_frame_at: now,
            source: Source::Waiting,
            source_dropped: 0,
            adapter: None,
            base_frame_bytes: 0,
            to_send: 0,
            tamper: None,
            sent_datagrams: 0,
        }
    }

    /// Like `new`, with keys: the client's and the viewer's (`None`: that side has none).
    pub fn keyed(
        sender_config: SenderConfig,
        forward: Impairment,
        back: Impairment,
        client: Option<Psk>,
        viewer: Option<Psk>,
    ) -> Pair {
        let mut pair = Pair::new(
            SenderConfig {
                psk: client,
                ..sender_config
            },
            forward,
            back,
        );
        pair.receiver = Receiver::new(ReceiverConfig {
            psk: viewer,
            ..ReceiverConfig::default()
        });
        pair
    }

    /// A live camera at `fps` whose frames weigh `base_bytes` at quality 80, full size, with
    /// the sender's adaptation choosing quality, size and rate.
    pub fn with_adaptive_camera(mut self, fps: u32, base_bytes: usize) -> Pair {
        self.source = Source::Live;
        self.frame_interval = Some(Duration::from_secs_f64(1.0 / f64::from(fps)));
        self.adapter = Some(Adapter::new(AdaptConfig {
            max_quality: 80,
            min_quality: 30,
            fps,
            can_reencode: true,
        }));
        self.base_frame_bytes = base_bytes;
        self
    }

    pub fn settings(&self) -> Option<Settings> {
        self.adapter.as_ref().map(Adapter::settings)
    }

    fn next_frame_len(&mut self) -> usize {
        let noise = self.rng.gen_range(0.9..1.1);
        match &self.adapter {
            Some(a) => {
                (cam_proto::adapt::model_bytes(self.base_frame_bytes as f64, &a.settings()) * noise)
                    as usize
            }
            None => self.rng.gen_range(self.frame_size.clone()),
        }
    }

    pub fn offer_frame(&mut self) {
        let len = self.next_frame_len().max(1);
        let data: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
        let seq = self
            .sender
            .send_frame(
                self.now,
                OutgoingFrame {
                    data: data.clone(),
                    width: 64,
                    height: 48,
                    capture_ts_us: 1,
                },
            )
            .expect("window has room");
        if let Some(a) = self.adapter.as_mut() {
            let used = a.settings();
            a.on_frame(len, used);
        }
        self.sent.push((seq, data, self.now));
        self.to_send -= 1;
    }

    fn frame_tick(&mut self) {
        if self.to_send == 0 || self.next_frame_at > self.now {
            return;
        }
        if let Some(a) = self.adapter.as_mut() {
            let target = self.sender.target_rate_bps();
            if let Some(s) = a.update(self.now, target) {
                self.frame_interval = Some(Duration::from_secs_f64(1.0 / f64::from(s.fps.max(1))));
            }
        }
        match self.source {
            Source::Waiting => {
                if self.sender.can_send() {
                    self.offer_frame();
                    if let Some(i) = self.frame_interval {
                        self.next_frame_at += i;
                    }
                }
            }
            Source::Live => {
                if self.sender.can_send() {
                    self.offer_frame();
                } else {
                    self.source_dropped += 1;
                    self.to_send -= 1;
                }
                let interval = self.frame_interval.unwrap_or(MS);
                self.next_frame_at = (self.next_frame_at + interval).max(self.now);
            }
        }
    }

    /// One round: timers, transmissions, deliveries; then time moves to the next event.
    pub fn step(&mut self) -> bool {
        let now = self.now;
        if self.sender.poll_timeout().is_some_and(|t| t <= now) {
            self.sender.handle_timeout(now);
        }
        if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
            self.receiver.handle_timeout(now);
        }
        self.frame_tick();
        // Exchange until nothing moves at this instant, then let time advance.
        loop {
            let mut moved = false;
            while self.sender.poll_transmit(now, &mut self.buf) {
                if let Some(tamper) = self.tamper.as_mut() {
                    tamper(self.sent_datagrams, &mut self.buf);
                }
                self.sent_datagrams += 1;
                self.to_viewer.send(now, &self.buf);
                moved = true;
            }
            while let Some(d) = self.to_viewer.poll_deliver(now) {
                let _ = self.receiver.handle_datagram(now, self.client_addr, &d);
                moved = true;
            }
            while let Some(ev) = self.receiver.poll_event() {
                if let ReceiverEvent::Frame(f) = ev {
                    let captured = self
                        .sent
                        .iter()
                        .rev()
                        .find(|(s, _, _)| *s == f.seq)
                        .map_or(now, |(_, _, t)| *t);
                    self.delivered.push(Delivered {
                        seq: f.seq,
                        data: f.data,
                        latency: now - captured,
                        at: now,
                    });
                }
            }
            while self.receiver.poll_transmit(now, &mut self.buf).is_some() {
                self.to_client.send(now, &self.buf);
                moved = true;
            }
            while let Some(d) = self.to_client.poll_deliver(now) {
                let _ = self.sender.handle_datagram(now, &d);
                moved = true;
            }
            while let Some(ev) = self.sender.poll_event() {
                match ev {
                    SenderEvent::Acked { seq, .. } => self.acked.push(seq),
                    SenderEvent::Abandoned { seq, .. } => self.abandoned.push(seq),
                }
            }
            if !moved {
                break;
            }
        }
        let frame_due = match self.source {
            Source::Waiting => {
                (self.to_send > 0 && self.sender.can_send()).then_some(self.next_frame_at)
            }
            Source::Live => (self.to_send > 0).then_some(self.next_frame_at),
        };
        let next = [
            self.sender.poll_timeout(),
            self.receiver.poll_timeout(),
            self.to_viewer.next_delivery(),
            self.to_client.next_delivery(),
            frame_due,
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => {
                self.now = t.max(now);
                true
            }
            None => false,
        }
    }

    pub fn run_frames(&mut self, frames: usize, limit: Duration) {
        self.to_send += frames;
        let end = self.now + limit;
        let mut steps = 0;
        while self.now < end && steps < 5_000_000 {
            steps += 1;
            let busy = self.step();
            let idle = self.to_send == 0
                && self.sender.frames_in_flight() == 0
                && self.to_viewer.is_idle()
                && self.to_client.is_idle();
            if !busy || idle {
                break;
            }
        }
    }

    /// Runs the source for `time` of simulated time.
    pub fn run_for(&mut self, time: Duration) {
        let end = self.now + time;
        self.to_send = usize::MAX / 2;
        while self.now < end {
            if !self.step() {
                break;
            }
        }
        self.to_send = 0;
    }

    pub fn assert_delivered_exact(&self) {
        let mut last = None;
        for d in &self.delivered {
            let sent = self
                .sent
                .iter()
                .find(|(s, _, _)| *s == d.seq)
                .unwrap_or_else(|| panic!("frame {} delivered but never sent", d.seq));
            assert!(sent.1 == d.data, "frame {} bytes differ", d.seq);
            if let Some(l) = last {
                assert!(d.seq > l, "frame {} delivered after {l}", d.seq);
            }
            last = Some(d.seq);
        }
    }

    /// Frames delivered per second, and the median and 99th-percentile latency, over
    /// deliveries in `from..to` (offsets from the start).
    pub fn window_stats(&self, from: Duration, to: Duration) -> (f64, Duration, Duration) {
        let mut lat: Vec<Duration> = self
            .delivered
            .iter()
            .filter(|d| d.at >= self.start + from && d.at < self.start + to)
            .map(|d| d.latency)
            .collect();
        let fps = lat.len() as f64 / (to - from).as_secs_f64();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(Duration::MAX)
        };
        (fps, pct(0.5), pct(0.99))
    }
}

/// A link with `loss` and a millisecond of delay each way.
pub fn lossy(loss: f64, seed: u64) -> Impairment {
    Impairment {
        loss,
        delay: MS,
        seed,
        ..Impairment::default()
    }
}

/// 300 frames through `loss` both ways, with the same key on both ends (or none): frames
/// the sender did not abandon arrive byte-exact, nearly all do, and the retransmission
/// count is close to what the loss rate predicts (no storms). Returns the pair to look at.
pub fn survives_loss(loss: f64, key: Option<Psk>) -> Pair {
    let mut pair = Pair::keyed(
        SenderConfig {
            frame_deadline: Some(Duration::from_secs(2)),
            ..SenderConfig::default()
        },
        lossy(loss, 11),
        lossy(loss, 12),
        key.clone(),
        key,
    );
    pair.run_frames(300, Duration::from_secs(600));
    pair.assert_delivered_exact();
    let stats = pair.sender.stats().clone();
    assert_eq!(pair.acked.len() + pair.abandoned.len(), 300, "{stats:?}");
    for seq in &pair.acked {
        assert!(
            pair.delivered.iter().any(|d| d.seq == *seq),
            "acked {seq} never delivered"
        );
    }
    assert!(
        pair.delivered.len() >= 297,
        "only {} of 300 delivered at {loss}: {stats:?} {:?} abandoned {:?}",
        pair.delivered.len(),
        pair.receiver.stats(),
        pair.abandoned
    );
    let first_sends = stats.datagrams_sent - stats.retransmits - stats.probes;
    // Each lost datagram needs about 1/(1-p) sends; allow generous slack for lost acks.
    let expected = first_sends as f64 * loss / (1.0 - loss);
    let ratio = stats.retransmits as f64 / expected;
    assert!(
        (0.5..2.0).contains(&ratio),
        "retransmits {} vs expected {expected:.0} at loss {loss} ({stats:?})",
        stats.retransmits
    );
    pair
}
