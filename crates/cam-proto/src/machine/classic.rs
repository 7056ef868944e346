//! The original Python example's protocol behind the common traits: images become frames
//! without a camstream header (size and capture time unknown until decoded), replies become
//! the acks, given-up images the dropped frames.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{
    AbandonReason, CompleteFrame, FrameReceiver, FrameSender, OutgoingFrame, ReceiveEvent,
    SendError, SendEvent, SendStats, Transmit,
};
use crate::classic::{
    ClassicConfig, ClassicEvent, ClassicReceiver, ClassicSendError, ClassicSender,
    ClassicSenderConfig, ClassicSenderEvent, ClassicStats, GiveUp,
};
use crate::receiver::ReceiverStats;

/// The classic client: one image at a time to one server.
#[derive(Debug)]
pub struct ClassicFrameSender {
    inner: ClassicSender,
    peer: SocketAddr,
    events: std::collections::VecDeque<SendEvent>,
    /// Time from each image to its reply, summed: the round trip is this over the replies.
    reply_total: Duration,
    next_seq: u32,
    in_flight_seq: Option<u32>,
}

impl ClassicFrameSender {
    pub fn new(peer: SocketAddr, config: ClassicSenderConfig) -> ClassicFrameSender {
        ClassicFrameSender {
            inner: ClassicSender::new(config),
            peer,
            events: Default::default(),
            reply_total: Duration::ZERO,
            next_seq: 0,
            in_flight_seq: None,
        }
    }

    fn collect(&mut self) {
        while let Some(e) = self.inner.poll_event() {
            let Some(seq) = self.in_flight_seq.take() else {
                continue;
            };
            self.events.push_back(match e {
                ClassicSenderEvent::Replied { after, lost } => {
                    self.reply_total += after;
                    if lost {
                        SendEvent::Abandoned {
                            seq,
                            reason: AbandonReason::ViewerGone,
                        }
                    } else {
                        SendEvent::Acked {
                            seq,
                            delivery_time: after,
                            retransmits: 0,
                        }
                    }
                }
                ClassicSenderEvent::TimedOut => SendEvent::Abandoned {
                    seq,
                    reason: AbandonReason::Deadline,
                },
            });
        }
    }
}

impl FrameSender for ClassicFrameSender {
    fn can_send(&self) -> bool {
        self.inner.can_send()
    }
    fn send_frame(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, SendError> {
        self.inner
            .send_frame(now, frame.data)
            .map_err(|e| match e {
                ClassicSendError::Busy => SendError::WindowFull,
                ClassicSendError::Empty => SendError::Empty,
                e @ ClassicSendError::TooLargeForOneDatagram { .. } => {
                    SendError::Unfit(e.to_string())
                }
            })?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight_seq = Some(seq);
        Ok(seq)
    }
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, bytes: &[u8]) {
        self.inner.handle_datagram(now, bytes);
        self.collect();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.collect();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let sent = self.inner.poll_transmit(buf);
        sent.then_some(Transmit {
            to: self.peer,
            len: buf.len(),
        })
    }
    fn poll_event(&mut self) -> Option<SendEvent> {
        self.events.pop_front()
    }
    fn stats(&self) -> SendStats {
        let s = self.inner.stats();
        SendStats {
            frames_sent: s.frames_sent,
            frames_acked: s.frames_replied,
            frames_timed_out: s.frames_timed_out,
            frames_refused: s.frames_reported_lost,
            datagrams_sent: s.datagrams_sent,
            bytes_sent: s.bytes_sent,
            acks_received: s.replies_received,
            ..SendStats::default()
        }
    }
    fn frames_in_flight(&self) -> usize {
        usize::from(!self.inner.can_send())
    }
    fn has_heard_peer(&self) -> bool {
        self.inner.stats().replies_received > 0
    }
    /// Mean time from sending an image to its reply: the classic protocol's round trip.
    fn rtt(&self) -> Option<Duration> {
        let replies = u32::try_from(self.inner.stats().frames_replied).unwrap_or(u32::MAX);
        (replies > 0).then(|| self.reply_total / replies)
    }
    fn stream_name(&self) -> String {
        "classic".into()
    }
}

/// The classic server: images from any number of senders, each answered.
#[derive(Debug)]
pub struct ClassicFrameReceiver {
    inner: ClassicReceiver,
    stats: ReceiverStats,
}

impl ClassicFrameReceiver {
    pub fn new(config: ClassicConfig) -> ClassicFrameReceiver {
        ClassicFrameReceiver {
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

impl FrameReceiver for ClassicFrameReceiver {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.inner.handle_datagram(now, from, bytes);
        self.sync_stats();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.sync_stats();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<ReceiveEvent> {
        loop {
            match self.inner.poll_event()? {
                ClassicEvent::Image(image) => {
                    return Some(ReceiveEvent::Frame(CompleteFrame {
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
                    return Some(ReceiveEvent::StreamStarted {
                        stream_id: 0,
                        remote,
                        replaced: None,
                    })
                }
                ClassicEvent::GaveUp {
                    remote,
                    why,
                    replied,
                } => log::debug!(
                    "gave up an image from {remote}: {}{}",
                    describe(why),
                    if replied { "; told the sender" } else { "" }
                ),
            }
        }
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let to = self.inner.poll_transmit(buf);
        self.sync_stats();
        to.map(|to| Transmit { to, len: buf.len() })
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
