//! One face for every protocol: the two traits the programs' drivers run.
//!
//! camstream, classic and RTP each have a sending and a receiving state machine. They differ
//! in what crosses the wire, not in how they are driven: feed datagrams and the time in
//! (`handle_*`), drain datagrams, events and the next wake-up out (`poll_*`). With one shape
//! the client has one send loop and the viewer one receive loop, and the sans-IO harness can
//! run one loss scenario against every protocol.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::secure::Aead;

pub mod camstream;
pub mod classic;
pub mod multi;

pub use crate::receiver::{CompleteFrame, ReceiverEvent as ReceiveEvent, ReceiverStats};
pub use crate::sender::{AbandonReason, OutgoingFrame, SenderEvent as SendEvent};

/// A datagram ready to go: its bytes are `buf[..len]` of the buffer given to `poll_transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub len: usize,
}

/// Why a frame was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// `can_send` was false: the window or the receiver's credit is full. Try again later.
    #[error("no room in the send window")]
    WindowFull,
    #[error("an empty frame carries nothing to show")]
    Empty,
    /// This frame can never go with this configuration (it names the setting that fixes
    /// it); the driver stops rather than fail every frame the same way.
    #[error("{0}")]
    Unfit(String),
}

impl SendError {
    /// The run cannot go on: every later frame would fail the same way.
    pub fn is_fatal(&self) -> bool {
        matches!(self, SendError::Unfit(_))
    }
}

/// What a sender did, in one type for every protocol; a field a protocol lacks stays 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    pub frames_sent: u64,
    /// Frames the receiver confirmed (camstream: complete ack; classic: any reply).
    pub frames_acked: u64,
    pub frames_timed_out: u64,
    /// Frames the receiver said it gave up (camstream: "gone"; classic: "lost frame").
    pub frames_refused: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams sent again after the receiver reported them missing.
    pub retransmits: u64,
    pub probes: u64,
    /// Answers from the receiver: acks, replies, RTCP reports.
    pub acks_received: u64,
    /// Datagrams from the receiver's address that were refused for any reason.
    pub datagrams_invalid: u64,
    pub handshakes: u64,
    /// Answers saying the receiver serves all the streams it may (`--max-streams`).
    pub receiver_full: u64,
}

/// The sending half of a protocol.
pub trait FrameSender: Send + std::fmt::Debug {
    /// Flow control: room for another frame now.
    fn can_send(&self) -> bool;
    /// Queues a frame; its datagrams come out of `poll_transmit`. Returns its sequence number.
    fn send_frame(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, SendError>;
    /// A datagram from the receiver's side. Refusals are counted in `stats`, never fatal.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// Timers; an extra call is a harmless no-op.
    fn handle_timeout(&mut self, now: Instant);
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
    /// Writes the next datagram into `buf` (replacing its contents).
    #[must_use]
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit>;
    #[must_use]
    fn poll_event(&mut self) -> Option<SendEvent>;
    fn stats(&self) -> SendStats;
    /// Frames sent and not yet settled (acked, answered, abandoned).
    fn frames_in_flight(&self) -> usize;
    /// A valid answer has come from the receiver at least once.
    fn has_heard_peer(&self) -> bool;
    /// Whether a receiver is expected to answer at all. RTP toward GStreamer or ffmpeg
    /// never hears a word, and must not give up for that.
    fn expects_answers(&self) -> bool {
        true
    }
    /// Smoothed round trip, once measured.
    fn rtt(&self) -> Option<Duration> {
        None
    }
    /// What the path was found to carry (`None`: no limit seen, or the protocol cannot
    /// tell). Link adaptation follows it.
    fn target_rate_bps(&self) -> Option<f64> {
        None
    }
    /// Keyed mode: the AEAD agreed with the receiver.
    fn aead(&self) -> Option<Aead> {
        None
    }
    fn is_keyed(&self) -> bool {
        false
    }
    /// What the summary calls this stream.
    fn stream_name(&self) -> String;
}

/// The receiving half of a protocol.
pub trait FrameReceiver: Send + std::fmt::Debug {
    /// A datagram from anyone. Refusals are counted in `stats`, logged at debug, never fatal.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
    #[must_use]
    fn poll_event(&mut self) -> Option<ReceiveEvent>;
    /// Writes the next datagram for a sender (ack, reply, report) into `buf`.
    #[must_use]
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit>;
    /// Room in the decode queue: the senders' flow control.
    fn set_credit(&mut self, credit: u16);
    fn stats(&self) -> &ReceiverStats;
    /// The stream (or sender) being served: its id and address.
    fn current_stream(&self) -> Option<(u32, SocketAddr)>;
    /// Keyed mode: the AEAD of the served stream's session.
    fn aead(&self) -> Option<Aead> {
        None
    }
    fn is_keyed(&self) -> bool {
        false
    }
}
