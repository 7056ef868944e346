//! camstream's own machines behind the common traits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{FrameReceiver, FrameSender, ReceiveEvent, SendError, SendEvent, SendStats, Transmit};
use crate::receiver::{Receiver, ReceiverStats};
use crate::secure::Aead;
use crate::sender::{self, OutgoingFrame, Sender, SenderConfig};

/// `Sender` plus the one address it talks to.
#[derive(Debug)]
pub struct CamstreamSender {
    inner: Sender,
    peer: SocketAddr,
}

impl CamstreamSender {
    pub fn new(peer: SocketAddr, stream_id: u32, config: SenderConfig) -> CamstreamSender {
        CamstreamSender {
            inner: Sender::new(stream_id, 0, config),
            peer,
        }
    }
}

impl FrameSender for CamstreamSender {
    fn can_send(&self) -> bool {
        self.inner.can_send()
    }
    fn send_frame(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, SendError> {
        self.inner.send_frame(now, frame).map_err(|e| match e {
            sender::SendError::WindowFull => SendError::WindowFull,
            sender::SendError::Empty => SendError::Empty,
            sender::SendError::TooLarge => {
                SendError::Unfit("a frame larger than 4 GiB cannot be described".into())
            }
        })
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Err(e) = self.inner.handle_datagram(now, bytes) {
            log::debug!("refused a datagram from {from}: {e}");
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let sent = self.inner.poll_transmit(now, buf);
        sent.then_some(Transmit {
            to: self.peer,
            len: buf.len(),
        })
    }
    fn poll_event(&mut self) -> Option<SendEvent> {
        self.inner.poll_event()
    }
    fn stats(&self) -> SendStats {
        let s = self.inner.stats();
        SendStats {
            frames_sent: s.frames_sent,
            frames_acked: s.frames_acked,
            frames_timed_out: s.frames_timed_out,
            frames_refused: s.frames_refused,
            datagrams_sent: s.datagrams_sent,
            bytes_sent: s.bytes_sent,
            retransmits: s.retransmits,
            probes: s.probes,
            acks_received: s.acks_received,
            datagrams_invalid: s.datagrams_invalid,
            handshakes: s.handshakes,
            receiver_full: s.receiver_full,
        }
    }
    fn frames_in_flight(&self) -> usize {
        self.inner.frames_in_flight()
    }
    fn has_heard_peer(&self) -> bool {
        self.inner.has_heard_viewer()
    }
    fn rtt(&self) -> Option<Duration> {
        Some(self.inner.rtt().smoothed())
    }
    fn target_rate_bps(&self) -> Option<f64> {
        self.inner.target_rate_bps()
    }
    fn aead(&self) -> Option<Aead> {
        self.inner.aead()
    }
    fn is_keyed(&self) -> bool {
        self.inner.is_keyed()
    }
    fn stream_name(&self) -> String {
        format!("{:08x}", self.inner.stream_id())
    }
}

impl FrameReceiver for Receiver {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // A refused datagram is counted and logged by the receiver itself.
        let _refused = Receiver::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Receiver::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Receiver::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<ReceiveEvent> {
        Receiver::poll_event(self)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        Receiver::poll_transmit(self, now, buf).map(|to| Transmit { to, len: buf.len() })
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
    fn is_keyed(&self) -> bool {
        Receiver::is_keyed(self)
    }
}
