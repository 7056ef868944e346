//! Every protocol through the same two traits: one harness, one set of scenarios. A
//! protocol joins by adding a line to `PROTOCOLS`; the scenarios do not change.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::classic::{ClassicConfig, ClassicSenderConfig};
use cam_proto::machine::camstream::CamstreamSender;
use cam_proto::machine::classic::{ClassicFrameReceiver, ClassicFrameSender};
use cam_proto::machine::{FrameReceiver, FrameSender, OutgoingFrame, ReceiveEvent, Transmit};
use cam_proto::receiver::{Receiver, ReceiverConfig};
use cam_proto::rtp::{check_jpeg, RtpReceiver, RtpReceiverConfig, RtpSender, RtpSenderConfig};
use cam_proto::sender::SenderConfig;
use cam_proto::sim::{Impairment, Link};

/// A real baseline JPEG (our test card, 320x240, 4:2:0), so protocols that look inside
/// frames see what a camera gives them.
const JPEG: &[u8] = include_bytes!("../../../assets/testcard-320x240.jpg");

const MS: Duration = Duration::from_millis(1);

fn client_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}
fn viewer_addr() -> SocketAddr {
    "127.0.0.1:9999".parse().unwrap()
}

/// What a scenario may expect of a protocol.
#[derive(Debug, Clone, Copy)]
struct Traits {
    /// Lost datagrams are sent again, so every frame arrives.
    repairs_loss: bool,
    /// Frames arrive as the sender's bytes. RTP/JPEG carries the scan and the tables and the
    /// receiver rebuilds the headers around them: the same picture, other bytes.
    exact_bytes: bool,
}

impl Traits {
    /// Whether `delivered` is the frame the harness sent (`JPEG`), as this protocol keeps it.
    fn is_sent_frame(&self, delivered: &[u8]) -> bool {
        if self.exact_bytes {
            return delivered == JPEG;
        }
        let (Ok(got), Ok(sent)) = (check_jpeg(delivered), check_jpeg(JPEG)) else {
            return false;
        };
        got.scan(delivered) == sent.scan(JPEG)
            && got.table_bytes() == sent.table_bytes()
            && (got.width, got.height, got.jpeg_type) == (sent.width, sent.height, sent.jpeg_type)
    }
}

/// The two ends of one protocol, ready to talk.
type Ends = (Box<dyn FrameSender>, Box<dyn FrameReceiver>);

struct Protocol {
    name: &'static str,
    traits: Traits,
    build: fn() -> Ends,
}

const PROTOCOLS: &[Protocol] = &[
    Protocol {
        name: "camstream",
        traits: Traits {
            repairs_loss: true,
            exact_bytes: true,
        },
        build: || {
            (
                Box::new(CamstreamSender::new(
                    viewer_addr(),
                    0x5eed,
                    SenderConfig::default(),
                )),
                Box::new(Receiver::new(ReceiverConfig::default())),
            )
        },
    },
    Protocol {
        name: "classic",
        traits: Traits {
            repairs_loss: false,
            exact_bytes: true,
        },
        build: || {
            (
                Box::new(ClassicFrameSender::new(
                    viewer_addr(),
                    ClassicSenderConfig {
                        chunk_size: 1024,
                        reply_timeout: 200 * MS,
                    },
                )),
                Box::new(ClassicFrameReceiver::new(ClassicConfig::default())),
            )
        },
    },
    Protocol {
        name: "rtp",
        // Between two camstream ends: NACKs over the multiplexed RTCP, and the sender's
        // first report goes out with its first frame, so the receiver asks for what is
        // missing from the start (unless that report is lost: then from the next, 1 s on).
        traits: Traits {
            repairs_loss: true,
            exact_bytes: false,
        },
        build: || {
            (
                Box::new(RtpSender::new(
                    viewer_addr(),
                    RtpSenderConfig {
                        ssrc: Some(0x5eed),
                        initial_seq: Some(65_500), // wraps within the first frames
                        ..RtpSenderConfig::default()
                    },
                )),
                Box::new(RtpReceiver::new(RtpReceiverConfig::default())),
            )
        },
    },
];

/// A sender and a receiver over two seeded links, on simulated time.
struct Pair {
    now: Instant,
    sender: Box<dyn FrameSender>,
    receiver: Box<dyn FrameReceiver>,
    to_viewer: Link<SocketAddr>,
    to_client: Link<SocketAddr>,
    buf: Vec<u8>,
    delivered: Vec<Vec<u8>>,
    offered: usize,
}

impl Pair {
    fn new(protocol: &Protocol, forward: Impairment, back: Impairment) -> Pair {
        let (sender, receiver) = (protocol.build)();
        Pair {
            now: Instant::now(),
            sender,
            receiver,
            to_viewer: Link::new(forward),
            to_client: Link::new(back),
            buf: Vec::new(),
            delivered: Vec::new(),
            offered: 0,
        }
    }

    /// One instant: timers, then exchange until nothing moves; returns the next wake-up.
    fn step(&mut self) -> Option<Instant> {
        let now = self.now;
        if self.sender.poll_timeout().is_some_and(|t| t <= now) {
            self.sender.handle_timeout(now);
        }
        if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
            self.receiver.handle_timeout(now);
        }
        loop {
            let mut moved = false;
            while let Some(Transmit { to, len }) = self.sender.poll_transmit(now, &mut self.buf) {
                assert_eq!(to, viewer_addr());
                self.to_viewer.send_to(now, to, &self.buf[..len]);
                moved = true;
            }
            while let Some((to, d)) = self.to_viewer.poll_deliver_to(now) {
                assert_eq!(to, viewer_addr());
                self.receiver.handle_datagram(now, client_addr(), &d);
                moved = true;
            }
            while let Some(event) = self.receiver.poll_event() {
                if let ReceiveEvent::Frame(f) = event {
                    self.delivered.push(f.data);
                }
            }
            while let Some(Transmit { to, len }) = self.receiver.poll_transmit(now, &mut self.buf) {
                assert_eq!(
                    to,
                    client_addr(),
                    "an answer goes where the frames came from"
                );
                self.to_client.send_to(now, to, &self.buf[..len]);
                moved = true;
            }
            while let Some((_, d)) = self.to_client.poll_deliver_to(now) {
                self.sender.handle_datagram(now, viewer_addr(), &d);
                moved = true;
            }
            while self.sender.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
        [
            self.sender.poll_timeout(),
            self.receiver.poll_timeout(),
            self.to_viewer.next_delivery(),
            self.to_client.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Offers `frames` frames, each as soon as the sender takes one (30 fps at most), and
    /// runs until all are settled or `limit` of simulated time has passed.
    fn run(&mut self, frames: usize, limit: Duration) {
        let end = self.now + limit;
        let mut next_frame = self.now;
        while self.now < end {
            if self.offered < frames && self.now >= next_frame && self.sender.can_send() {
                let frame = OutgoingFrame {
                    data: JPEG.to_vec(),
                    width: 320,
                    height: 240,
                    capture_ts_us: 1_700_000_000_000_000 + self.offered as u64 * 33_333,
                };
                self.sender.send_frame(self.now, frame).unwrap();
                self.offered += 1;
                next_frame = self.now + 33 * MS;
            }
            let wake = self.step();
            let idle = self.offered == frames
                && self.sender.frames_in_flight() == 0
                && self.to_viewer.is_idle()
                && self.to_client.is_idle();
            if idle {
                break;
            }
            let frame_due = (self.offered < frames).then_some(next_frame);
            let next = [wake, frame_due].into_iter().flatten().min();
            self.now = next.map_or(self.now + MS, |t| {
                t.max(self.now + Duration::from_micros(1))
            });
        }
    }
}

fn lossy(loss: f64, seed: u64) -> Impairment {
    Impairment {
        loss,
        delay: 5 * MS,
        seed,
        ..Impairment::default()
    }
}

#[test]
fn every_protocol_delivers_exact_frames_on_a_clean_link() {
    for p in PROTOCOLS {
        let mut pair = Pair::new(p, lossy(0.0, 1), lossy(0.0, 2));
        pair.run(30, Duration::from_secs(10));
        assert_eq!(pair.delivered.len(), 30, "{}", p.name);
        assert!(
            pair.delivered.iter().all(|d| p.traits.is_sent_frame(d)),
            "{}",
            p.name
        );
        assert!(pair.sender.has_heard_peer(), "{}", p.name);
        let s = pair.sender.stats();
        assert_eq!(s.frames_sent, 30, "{}: {s:?}", p.name);
        assert_eq!(pair.receiver.stats().frames_completed, 30, "{}", p.name);
    }
}

#[test]
fn every_protocol_survives_five_percent_loss_each_way_without_a_damaged_frame() {
    for p in PROTOCOLS {
        let mut pair = Pair::new(p, lossy(0.05, 11), lossy(0.05, 12));
        pair.run(60, Duration::from_secs(60));
        let s = pair.sender.stats();
        eprintln!(
            "{}: {} of 60 delivered, {} retransmits",
            p.name,
            pair.delivered.len(),
            s.retransmits
        );
        // Never a damaged frame, whatever the protocol.
        assert!(
            pair.delivered.iter().all(|d| p.traits.is_sent_frame(d)),
            "{}",
            p.name
        );
        assert_eq!(s.frames_sent, 60, "{}: the sender stalled: {s:?}", p.name);
        if p.traits.repairs_loss {
            assert_eq!(pair.delivered.len(), 60, "{}: {s:?}", p.name);
            assert!(s.retransmits > 0, "{}", p.name);
        } else {
            // Each frame is 4 datagrams or so: most still arrive whole.
            assert!(
                pair.delivered.len() >= 30,
                "{}: {}",
                p.name,
                pair.delivered.len()
            );
        }
    }
}

#[test]
fn every_protocol_counts_garbage_and_goes_on() {
    for p in PROTOCOLS {
        let mut pair = Pair::new(p, lossy(0.0, 3), lossy(0.0, 4));
        pair.run(5, Duration::from_secs(5));
        let before = pair.receiver.stats().datagrams_invalid;
        for garbage in [&b""[..], b"\x00", b"CS\x7f", &[0xffu8; 1500][..]] {
            pair.receiver
                .handle_datagram(pair.now, "127.0.0.1:1".parse().unwrap(), garbage);
        }
        pair.run(10, Duration::from_secs(10));
        assert!(
            pair.receiver.stats().datagrams_invalid > before,
            "{}: garbage not counted",
            p.name
        );
        assert_eq!(pair.delivered.len(), 10, "{}", p.name);
    }
}
