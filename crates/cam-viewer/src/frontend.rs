//! The protocol the receive worker speaks: camstream's (`cam_proto::receiver`) or the original
//! Python example's (`cam_proto::classic`). Both are sans-IO state machines; this trait gives
//! them one face, so that the worker, the decoder, the display, `--save-frames` and the summary
//! are the same pipeline whichever protocol feeds it.

use std::net::SocketAddr;
use std::time::Instant;

use cam_proto::classic::{ClassicConfig, ClassicEvent, ClassicReceiver, ClassicStats, GiveUp};
use cam_proto::receiver::{CompleteFrame, Receiver, ReceiverConfig, ReceiverEvent, ReceiverStats};
use cam_proto::secure::Aead;
use clap::ValueEnum;

use crate::worker::canonical;

/// Which protocol `--port` speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// camstream's own: checked, acknowledged, retransmitted.
    #[default]
    Camstream,
    /// The original Python example's: a length header and 1024-byte chunks, or one datagram
    /// per image; JPEG or PNG; answered with "get message!!!".
    Classic,
}

/// What the receive worker needs from a protocol state machine.
pub trait FrontEnd: Send + std::fmt::Debug {
    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_event(&mut self) -> Option<ReceiverEvent>;
    /// Writes the next datagram for a sender into `buf`; returns where it goes.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr>;
    /// Room in the decode queue: the sender's flow control.
    fn set_credit(&mut self, credit: u16);
    fn stats(&self) -> &ReceiverStats;
    /// The stream (or classic sender) being served.
    fn current_stream(&self) -> Option<(u32, SocketAddr)>;
    /// Keyed mode: the AEAD of the served stream's session.
    fn aead(&self) -> Option<Aead> {
        None
    }
}

/// The state machine for `protocol`.
pub fn build(protocol: Protocol, config: &ReceiverConfig) -> Box<dyn FrontEnd> {
    match protocol {
        Protocol::Camstream => Box::new(Receiver::new(config.clone())),
        Protocol::Classic => Box::new(Classic::new(ClassicConfig {
            max_frame_bytes: config.max_frame_bytes as usize,
            ..ClassicConfig::default()
        })),
    }
}

impl FrontEnd for Receiver {
    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        // A refused datagram is counted and logged by the receiver itself.
        let _refused = Receiver::handle_datagram(self, now, remote, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Receiver::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Receiver::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<ReceiverEvent> {
        Receiver::poll_event(self)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        Receiver::poll_transmit(self, now, buf)
    }
    fn set_credit(&mut self, credit: u16) {
        Receiver::set_credit(self, credit);
    }
    fn stats(&self) -> &ReceiverStats {
        Receiver::stats(self)
    }
    fn current_stream(&self) -> Option<(u32, SocketAddr)> {
        Receiver::current_stream(self)
    }
    fn aead(&self) -> Option<Aead> {
        Receiver::aead(self)
    }
}

/// Classic mode behind the same face: images become frames without a camstream header (size
/// and capture time unknown until decoded), answers become the "acks", given-up images the
/// dropped frames.
#[derive(Debug)]
pub struct Classic {
    inner: ClassicReceiver,
    stats: ReceiverStats,
}

impl Classic {
    pub fn new(config: ClassicConfig) -> Classic {
        Classic {
            inner: ClassicReceiver::new(config),
            stats: ReceiverStats::default(),
        }
    }

    fn sync_stats(&mut self) {
        let ClassicStats {
            datagrams_received,
            bytes_received,
            datagrams_invalid,
            datagrams_empty: _,
            images_completed,
            images_given_up,
            replies_sent,
            senders_seen,
        } = *self.inner.stats();
        self.stats = ReceiverStats {
            datagrams_received,
            bytes_received,
            datagrams_invalid,
            frames_completed: images_completed,
            frames_dropped: images_given_up,
            acks_sent: replies_sent,
            streams_started: senders_seen,
            ..ReceiverStats::default()
        };
    }
}

impl FrontEnd for Classic {
    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        self.inner.handle_datagram(now, remote, bytes);
        self.sync_stats();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.sync_stats();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<ReceiverEvent> {
        loop {
            match self.inner.poll_event()? {
                ClassicEvent::Image(image) => {
                    return Some(ReceiverEvent::Frame(CompleteFrame {
                        stream_id: 0,
                        seq: image.seq,
                        data: image.data,
                        header: None,
                        remote: image.remote,
                        first_seen: image.first_seen,
                        completed_at: image.completed_at,
                    }))
                }
                ClassicEvent::NewSender(remote) => {
                    log::info!("receiving classic images from {}", canonical(remote));
                }
                ClassicEvent::GaveUp {
                    remote,
                    why,
                    replied,
                } => log::debug!(
                    "gave up an image from {}: {}{}",
                    canonical(remote),
                    describe(why),
                    if replied { "; told the sender" } else { "" }
                ),
            }
        }
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let to = self.inner.poll_transmit(buf);
        self.sync_stats();
        to
    }
    fn set_credit(&mut self, credit: u16) {
        self.inner.set_credit(credit);
    }
    fn stats(&self) -> &ReceiverStats {
        &self.stats
    }
    fn current_stream(&self) -> Option<(u32, SocketAddr)> {
        self.inner.latest_sender().map(|remote| (0, remote))
    }
}

fn describe(why: GiveUp) -> &'static str {
    match why {
        GiveUp::ShortImage => "its last datagram came before all its bytes",
        GiveUp::Silence => "the sender fell silent before all its bytes came",
        GiveUp::Superseded => "the sender started another image",
        GiveUp::NotAnImage => "its bytes are not one whole JPEG or PNG",
        GiveUp::Overrun => "more bytes came than its header announced",
        GiveUp::Headless => "its header was lost or refused",
        GiveUp::Evicted => "too many senders at once",
    }
}
