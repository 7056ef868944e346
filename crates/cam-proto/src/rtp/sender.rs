//! `RtpSender`: JPEG frames out as RTP/JPEG (RFC 2435), RTCP sender reports on the same
//! port (RFC 5761), retransmission of packets a receiver names in a generic NACK (RFC 4585).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::jpeg::{check_jpeg, JpegError};
use super::rtcp::{ntp_from_unix_us, ntp_middle, RtcpRepr, SenderInfo};
use super::wire::{
    is_rtcp, JpegHeaderRepr, JpegPayloadRepr, QTablesRepr, RestartRepr, RtpRepr, JPEG_CLOCK_HZ,
    JPEG_HEADER_LEN, MAX_FRAGMENT_OFFSET, PT_JPEG, QTABLE_HEADER_LEN, RESTART_COUNT_ANY,
    RESTART_HEADER_LEN, RTP_HEADER_LEN,
};
use crate::machine::{FrameSender, OutgoingFrame, SendError, SendEvent, SendStats, Transmit};

/// How `RtpSender` behaves.
#[derive(Debug, Clone)]
pub struct RtpSenderConfig {
    /// `None`: random, as RFC 3550 §8 asks.
    pub ssrc: Option<u32>,
    /// `None`: random (RFC 3550 §5.1).
    pub initial_seq: Option<u16>,
    /// `None`: random (RFC 3550 §5.1).
    pub initial_timestamp: Option<u32>,
    /// 26 is JPEG's static type; a dynamic one (96–127) needs an SDP saying so.
    pub payload_type: u8,
    /// Largest UDP payload: RTP header plus RTP/JPEG headers plus data. At least 200.
    pub max_datagram: usize,
    /// Packets kept for retransmission on NACK.
    pub history_packets: usize,
    /// RTCP sender reports this often (none when zero).
    pub report_interval: Duration,
    /// SDES CNAME sent with every report.
    pub cname: String,
}

impl Default for RtpSenderConfig {
    fn default() -> Self {
        RtpSenderConfig {
            ssrc: None,
            initial_seq: None,
            initial_timestamp: None,
            payload_type: PT_JPEG,
            max_datagram: 1400,
            history_packets: 1024,
            report_interval: Duration::from_secs(1),
            cname: "camstream".into(),
        }
    }
}

/// What the receiver's reports said, beyond `SendStats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtpSenderStats {
    pub ssrc: u32,
    pub sender_reports: u64,
    pub receiver_reports: u64,
    /// Fraction lost in the last report, 0–1.
    pub fraction_lost: f64,
    pub cumulative_lost: i64,
    /// Interarrival jitter from the last report.
    pub jitter: Duration,
    pub nacks_received: u64,
    /// Packets named in NACKs but not resent: the resend budget was spent.
    pub nacks_over_budget: u64,
    /// Packets named in NACKs that had left the history already.
    pub nacked_unavailable: u64,
}

/// Why `send_jpeg` refused a frame (the typed form of `send_frame`'s errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpSendError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Jpeg(#[from] JpegError),
}

/// Frames that each bring a sender report until the receiver answers.
const EARLY_REPORTS: u64 = 3;

#[derive(Debug)]
pub struct RtpSender {
    peer: SocketAddr,
    config: RtpSenderConfig,
    ssrc: u32,
    next_seq: u16,
    ts_offset: u32,
    /// Capture time (µs) of the first frame: the RTP clock's zero.
    base_capture_us: Option<u64>,
    /// The last frame's RTP timestamp, capture time and when it was queued.
    last_frame: Option<(u32, u64, Instant)>,
    frames: u32,
    queue: VecDeque<Arc<[u8]>>,
    retransmit: VecDeque<Arc<[u8]>>,
    /// The last packet again, once the stream has paused (see `tail_probe_at`).
    probe: Option<Arc<[u8]>>,
    /// Sent packets by sequence number, and whether a NACK has named each yet.
    history: VecDeque<(u16, Arc<[u8]>, bool)>,
    /// Retransmissions allowed now: a quarter of a token per new packet, one per resend.
    retransmit_tokens: f64,
    /// New packets, and packets NACKed for the first time, since the last receiver report:
    /// the loss the sender can see when the report's own count is blinded by repairs.
    new_since_report: u64,
    first_nacks_since_report: u64,
    next_report: Option<Instant>,
    report_due: bool,
    /// (LSR value, sent at) of recent sender reports, for RTT from report blocks.
    sent_reports: VecDeque<(u32, Instant)>,
    packets_sent: u32,
    octets_sent: u32,
    srtt: Option<Duration>,
    /// Bytes sent when the previous receiver report came, and when: the rate it covers.
    last_report: Option<(Instant, u64)>,
    /// What the path was found to carry, from the reports' loss (`None`: no limit seen).
    target_bps: Option<f64>,
    heard_peer: bool,
    /// Between the last two frames handed in: how long a pause means the stream ended.
    frame_interval: Option<Duration>,
    /// When to send the last packet again if no frame follows: a lost last packet leaves no
    /// hole the receiver could see and ask for.
    tail_probe_at: Option<Instant>,
    /// Until when NACKs may still come for the last frame: it counts as in flight till then.
    linger_until: Option<Instant>,
    stats: SendStats,
    rtp_stats: RtpSenderStats,
}

impl RtpSender {
    pub fn new(peer: SocketAddr, mut config: RtpSenderConfig) -> RtpSender {
        config.max_datagram = config.max_datagram.clamp(200, crate::wire::MAX_DATAGRAM);
        config.history_packets = config.history_packets.max(1);
        let ssrc = config.ssrc.unwrap_or_else(rand::random);
        RtpSender {
            peer,
            ssrc,
            next_seq: config.initial_seq.unwrap_or_else(rand::random),
            ts_offset: config.initial_timestamp.unwrap_or_else(rand::random),
            config,
            base_capture_us: None,
            last_frame: None,
            frames: 0,
            queue: VecDeque::new(),
            retransmit: VecDeque::new(),
            probe: None,
            history: VecDeque::new(),
            retransmit_tokens: RETRANSMIT_BURST,
            new_since_report: 0,
            first_nacks_since_report: 0,
            next_report: None,
            report_due: false,
            sent_reports: VecDeque::new(),
            packets_sent: 0,
            octets_sent: 0,
            srtt: None,
            last_report: None,
            target_bps: None,
            heard_peer: false,
            frame_interval: None,
            tail_probe_at: None,
            linger_until: None,
            stats: SendStats::default(),
            rtp_stats: RtpSenderStats {
                ssrc,
                ..RtpSenderStats::default()
            },
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn rtp_stats(&self) -> &RtpSenderStats {
        &self.rtp_stats
    }

    /// The RTP timestamp for a capture time: 90 kHz since the first frame, never going
    /// back (a wall clock stepped backwards gives the previous timestamp plus one).
    fn timestamp_for(&mut self, capture_us: u64) -> u32 {
        let base = *self.base_capture_us.get_or_insert(capture_us);
        let ticks = capture_us.saturating_sub(base) * u64::from(JPEG_CLOCK_HZ) / 1_000_000;
        let ts = self.ts_offset.wrapping_add(ticks as u32);
        match self.last_frame {
            Some((last, _, _)) if ts.wrapping_sub(last) as i32 <= 0 => last.wrapping_add(1),
            _ => ts,
        }
    }

    /// Like `send_frame`, with what RTP/JPEG cannot carry as a typed `JpegError`.
    pub fn send_jpeg(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, RtpSendError> {
        if frame.data.is_empty() {
            return Err(SendError::Empty.into());
        }
        let info = check_jpeg(&frame.data)?;
        let scan = info.scan(&frame.data);
        if scan.len() > MAX_FRAGMENT_OFFSET as usize {
            return Err(SendError::Unfit(format!(
                "a {} byte scan does not fit RTP/JPEG's 24-bit fragment offset; lower the quality or the --size",
                scan.len()
            ))
            .into());
        }
        let ts = self.timestamp_for(frame.capture_ts_us);
        let tables = info.table_bytes();
        let restart = (info.jpeg_type >= 64).then_some(RestartRepr {
            interval: info.restart_interval,
            first: true,
            last: true,
            count: RESTART_COUNT_ANY,
        });
        let room = self.config.max_datagram - RTP_HEADER_LEN;
        let mut offset = 0usize;
        loop {
            let first = offset == 0;
            let header_len = JPEG_HEADER_LEN
                + restart.map_or(0, |_| RESTART_HEADER_LEN)
                + if first {
                    QTABLE_HEADER_LEN + tables.len()
                } else {
                    0
                };
            let take = (room - header_len).min(scan.len() - offset);
            let last = offset + take == scan.len();
            let payload = JpegPayloadRepr {
                header: JpegHeaderRepr {
                    type_specific: 0,
                    fragment_offset: offset as u32,
                    jpeg_type: info.jpeg_type,
                    q: 255,
                    width: info.width,
                    height: info.height,
                },
                restart,
                qtables: first.then_some(QTablesRepr {
                    precision: 0,
                    tables: &tables,
                }),
                data: &scan[offset..offset + take],
            };
            let rtp = RtpRepr {
                marker: last,
                payload_type: self.config.payload_type,
                seq: self.next_seq,
                timestamp: ts,
                ssrc: self.ssrc,
            };
            let mut bytes = vec![0u8; RTP_HEADER_LEN + payload.buffer_len()];
            rtp.emit(&mut bytes);
            payload.emit(&mut bytes[RTP_HEADER_LEN..]);
            let bytes: Arc<[u8]> = bytes.into();
            if self.history.len() >= self.config.history_packets {
                self.history.pop_front();
            }
            self.history
                .push_back((self.next_seq, bytes.clone(), false));
            self.queue.push_back(bytes);
            self.next_seq = self.next_seq.wrapping_add(1);
            offset += take;
            if last {
                break;
            }
        }
        if let Some((_, _, previous)) = self.last_frame {
            self.frame_interval = Some(now.saturating_duration_since(previous));
        }
        self.tail_probe_at = None;
        self.linger_until = None;
        self.last_frame = Some((ts, frame.capture_ts_us, now));
        if self.next_report.is_none() && !self.config.report_interval.is_zero() {
            // The first report goes with the first frame: it tells the receiver this
            // peer speaks RTCP, and gives it the clock mapping at once.
            self.report_due = true;
            self.next_report = Some(now + self.config.report_interval);
        } else if !self.heard_peer
            && !self.config.report_interval.is_zero()
            && self.rtp_stats.sender_reports < EARLY_REPORTS
        {
            // Until a receiver answers, the first few frames each bring one: a lost first
            // report would otherwise leave a camstream receiver without NACKs for a second.
            self.report_due = true;
        }
        let seq = self.frames;
        self.frames = self.frames.wrapping_add(1);
        self.stats.frames_sent += 1;
        Ok(seq)
    }

    /// NTP and RTP time at `now`, extrapolated from the last frame's capture time.
    fn clock_at(&self, now: Instant) -> Option<(u64, u32)> {
        let (ts, capture_us, queued) = self.last_frame?;
        let since = now.saturating_duration_since(queued);
        let ntp = ntp_from_unix_us(capture_us + since.as_micros() as u64);
        let ticks = since.as_micros() as u64 * u64::from(JPEG_CLOCK_HZ) / 1_000_000;
        Some((ntp, ts.wrapping_add(ticks as u32)))
    }

    fn write_report(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let Some((ntp, rtp_timestamp)) = self.clock_at(now) else {
            return false;
        };
        RtcpRepr::emit_compound(
            &[
                RtcpRepr::SenderReport {
                    ssrc: self.ssrc,
                    info: SenderInfo {
                        ntp,
                        rtp_timestamp,
                        packet_count: self.packets_sent,
                        octet_count: self.octets_sent,
                    },
                    reports: vec![],
                },
                RtcpRepr::Sdes {
                    ssrc: self.ssrc,
                    cname: self.config.cname.clone(),
                },
            ],
            buf,
        );
        if self.sent_reports.len() >= 16 {
            self.sent_reports.pop_front();
        }
        self.sent_reports.push_back((ntp_middle(ntp), now));
        self.rtp_stats.sender_reports += 1;
        true
    }

    /// A pause this long after the last packet, with no new frame, means the stream has
    /// ended (or paused): time to probe the tail. Twice the frame interval, so a steady
    /// stream never probes, and at least a round trip and a little.
    fn tail_probe_delay(&self) -> Duration {
        let rtt = self.srtt.unwrap_or(Duration::from_millis(10));
        (self.frame_interval.unwrap_or_default() * 2).max(rtt * 2 + Duration::from_millis(20))
    }

    /// How long NACKs for the last frame may still come after the last packet: the
    /// receiver asks a few times, some tens of milliseconds apart.
    fn linger(&self) -> Duration {
        let rtt = self.srtt.unwrap_or(Duration::from_millis(10));
        (rtt * 4 + Duration::from_millis(250)).min(Duration::from_secs(2))
    }

    fn handle_rtcp(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let Ok(packets) = RtcpRepr::parse_compound(bytes) else {
            return false;
        };
        for p in packets {
            let reports = match p {
                RtcpRepr::ReceiverReport { reports, .. } => reports,
                RtcpRepr::SenderReport { reports, .. } => reports,
                RtcpRepr::Nack(n) if n.media_ssrc == self.ssrc => {
                    self.rtp_stats.nacks_received += 1;
                    for seq in n.seqs() {
                        // Sequence numbers in the history are consecutive: index, don't search
                        // (a NACK's size is the peer's to choose).
                        let front = self.history.front().map_or(0, |(s, _, _)| *s);
                        let at = usize::from(seq.wrapping_sub(front));
                        match self.history.get_mut(at).filter(|(s, _, _)| *s == seq) {
                            Some((_, bytes, nacked)) => {
                                if !*nacked {
                                    *nacked = true;
                                    self.first_nacks_since_report += 1;
                                }
                                // A path that loses this much needs a lower rate, not more
                                // packets: resends stay within a share of what is new.
                                if self.retransmit_tokens < 1.0 {
                                    self.rtp_stats.nacks_over_budget += 1;
                                } else if !self.retransmit.iter().any(|b| Arc::ptr_eq(b, bytes)) {
                                    self.retransmit_tokens -= 1.0;
                                    self.retransmit.push_back(bytes.clone());
                                }
                            }
                            None => self.rtp_stats.nacked_unavailable += 1,
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            let ssrc = self.ssrc;
            for r in reports.iter().filter(|r| r.ssrc == ssrc) {
                self.rtp_stats.receiver_reports += 1;
                self.rtp_stats.fraction_lost = f64::from(r.fraction_lost) / 256.0;
                self.update_target(now);
                self.rtp_stats.cumulative_lost = i64::from(r.cumulative_lost);
                self.rtp_stats.jitter = Duration::from_micros(
                    u64::from(r.jitter) * 1_000_000 / u64::from(JPEG_CLOCK_HZ),
                );
                if r.lsr != 0 {
                    if let Some(&(_, sent)) = self.sent_reports.iter().find(|(l, _)| *l == r.lsr) {
                        let held = Duration::from_micros(u64::from(r.dlsr) * 1_000_000 / 65_536);
                        let sample = now.saturating_duration_since(sent).saturating_sub(held);
                        self.srtt = Some(match self.srtt {
                            None => sample,
                            Some(s) => (s * 7 + sample) / 8,
                        });
                    }
                }
            }
        }
        true
    }
}

/// Resends allowed per new packet: a path that loses more needs a lower rate, which the
/// loss it reports brings, not a storm of resends that loses more.
const RETRANSMIT_SHARE: f64 = 0.25;
/// Resends allowed at once, before any new packet has earned more.
const RETRANSMIT_BURST: f64 = 32.0;

/// Loss above this in a report interval is congestion: the rate is cut (GCC's loss-based
/// controller, draft-ietf-rmcat-gcc §6, as far as RTCP receiver reports tell).
const LOSS_CONGESTED: f64 = 0.10;
/// Seconds of sending one rate judgement covers.
const RATE_INTERVAL: f64 = 0.5;
/// Loss below this lets the rate grow again.
const LOSS_CLEAR: f64 = 0.02;
/// Growth per clear report.
const RATE_GROWTH: f64 = 1.05;

impl RtpSender {
    /// Receiver reports feed the same link adaptation camstream mode has, as far as they
    /// can: the fraction lost says congestion, the bytes sent since the previous report say
    /// at what rate. Loss that NACKs repair still counts: the path dropped it.
    fn update_target(&mut self, now: Instant) {
        let sent = self.stats.bytes_sent;
        let Some((at, before)) = self.last_report else {
            self.last_report = Some((now, sent));
            self.new_since_report = 0;
            self.first_nacks_since_report = 0;
            return;
        };
        // Reports come with every NACK too: judge over about a second, not per datagram.
        let secs = now.saturating_duration_since(at).as_secs_f64();
        if secs < RATE_INTERVAL {
            return;
        }
        self.last_report = Some((now, sent));
        // Repairs can blind the report's own count (a resent packet counts as received):
        // the share of new packets NACKed says what the path dropped.
        let nacked = self.first_nacks_since_report as f64 / (self.new_since_report.max(1)) as f64;
        self.new_since_report = 0;
        self.first_nacks_since_report = 0;
        let loss = self.rtp_stats.fraction_lost.max(nacked.min(1.0));
        let rate = (sent.saturating_sub(before)) as f64 * 8.0 / secs;
        self.target_bps = if loss > LOSS_CONGESTED {
            Some(self.target_bps.unwrap_or(rate).min(rate) * (1.0 - 0.5 * loss))
        } else if loss < LOSS_CLEAR {
            // Far above what is being sent, the limit says nothing any more.
            self.target_bps
                .map(|t| t * RATE_GROWTH)
                .filter(|&t| t < rate.max(1.0) * 4.0)
        } else {
            self.target_bps
        };
    }
}

impl FrameSender for RtpSender {
    /// RTP has no flow control: there is always room.
    fn can_send(&self) -> bool {
        true
    }

    fn send_frame(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, SendError> {
        self.send_jpeg(now, frame).map_err(|e| match e {
            RtpSendError::Send(e) => e,
            RtpSendError::Jpeg(e) => e.send_error(),
        })
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let ok = from == self.peer && is_rtcp(bytes) && self.handle_rtcp(now, bytes);
        if ok {
            self.heard_peer = true;
            self.stats.acks_received += 1;
        } else {
            self.stats.datagrams_invalid += 1;
            log::debug!("refused a {} byte datagram from {from}", bytes.len());
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.tail_probe_at.is_some_and(|t| now >= t) {
            self.tail_probe_at = None;
            self.probe = self.history.back().map(|(_, last, _)| last.clone());
            self.linger_until = Some(now + self.linger());
        }
        if self.linger_until.is_some_and(|t| now >= t) {
            self.linger_until = None;
        }
        if let Some(at) = self.next_report {
            if now >= at {
                self.report_due = true;
                self.next_report = Some(now + self.config.report_interval);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.next_report, self.tail_probe_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        // A due report goes first: the first one precedes the first frame's packets, so
        // the receiver has the clock mapping (capture times) from the first frame on.
        if self.report_due && self.write_report(now, buf) {
            self.report_due = false;
        } else {
            let (bytes, again, probe) = if let Some(b) = self.retransmit.pop_front() {
                (b, true, false)
            } else if let Some(b) = self.probe.take() {
                (b, true, true)
            } else {
                (self.queue.pop_front()?, false, false)
            };
            buf.extend_from_slice(&bytes);
            if probe {
                self.stats.probes += 1;
            } else if again {
                self.stats.retransmits += 1;
            } else {
                self.new_since_report += 1;
                self.retransmit_tokens = (self.retransmit_tokens + RETRANSMIT_SHARE).min(
                    RETRANSMIT_BURST.max(self.config.history_packets as f64 * RETRANSMIT_SHARE),
                );
                self.packets_sent = self.packets_sent.wrapping_add(1);
                self.octets_sent = self
                    .octets_sent
                    .wrapping_add((bytes.len() - RTP_HEADER_LEN) as u32);
            }
            // Only a receiver that answers can ask for what the probe reveals missing.
            if self.heard_peer && self.queue.is_empty() && self.retransmit.is_empty() {
                if !again {
                    self.tail_probe_at = Some(now + self.tail_probe_delay());
                }
                let until = now + self.linger();
                self.linger_until = Some(self.linger_until.map_or(until, |t| t.max(until)));
            }
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        Some(Transmit {
            to: self.peer,
            len: buf.len(),
        })
    }

    /// RTP has no acknowledgements: no per-frame events (see PROTOCOL.md).
    fn poll_event(&mut self) -> Option<SendEvent> {
        None
    }

    fn stats(&self) -> SendStats {
        self.stats.clone()
    }

    /// Nothing waits for an answer, but a frame whose packets have not all left is still
    /// in flight: a run must not end before its last frame is out. Toward a receiver that
    /// answers, the last frame stays in flight until its tail has been probed and NACKs for
    /// it can have come and been served.
    fn frames_in_flight(&self) -> usize {
        usize::from(
            !self.queue.is_empty()
                || !self.retransmit.is_empty()
                || self.probe.is_some()
                || self.tail_probe_at.is_some()
                || self.linger_until.is_some(),
        )
    }

    fn has_heard_peer(&self) -> bool {
        self.heard_peer
    }

    fn expects_answers(&self) -> bool {
        false
    }

    fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    fn target_rate_bps(&self) -> Option<f64> {
        self.target_bps
    }

    fn stream_name(&self) -> String {
        format!("{:08x}", self.ssrc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::wire::RtpPacket;

    const J420: &[u8] = include_bytes!("../../tests/fixtures/testsrc-64x48-420.jpg");

    fn sender() -> RtpSender {
        RtpSender::new(
            SocketAddr::from(([127, 0, 0, 1], 5004)),
            RtpSenderConfig {
                ssrc: Some(0x0102_0304),
                initial_seq: Some(65534),
                initial_timestamp: Some(1000),
                max_datagram: 600,
                ..RtpSenderConfig::default()
            },
        )
    }

    fn frame(capture_ts_us: u64) -> OutgoingFrame {
        OutgoingFrame {
            data: J420.to_vec(),
            width: 64,
            height: 48,
            capture_ts_us,
        }
    }

    #[test]
    fn payloader_golden_first_packet() {
        let mut s = sender();
        let now = Instant::now();
        s.send_frame(now, frame(1_000_000)).unwrap();
        let mut buf = Vec::new();
        // the first report comes first, then the media
        let t = s.poll_transmit(now, &mut buf).unwrap();
        assert_eq!(buf[1], 200);
        assert_eq!(t.len, buf.len());
        s.poll_transmit(now, &mut buf).unwrap();
        let info = check_jpeg(J420).unwrap();
        let mut want = vec![
            0x80, 26, 0xff, 0xfe, 0, 0, 0x03, 0xe8, 1, 2, 3, 4, // RTP: seq 65534, ts 1000
            0, 0, 0, 0, 1, 255, 8, 6, // offset 0, type 1, Q 255, 64/8, 48/8
            0, 0, 0, 128, // tables: 8-bit, 128 bytes
        ];
        want.extend(info.table_bytes());
        let data_len = 600 - want.len();
        want.extend(&info.scan(J420)[..data_len]);
        assert_eq!(buf, want);
        // the next packets: seq wraps, no tables, marker on the last
        let mut offset = data_len;
        let mut seqs = vec![];
        while s.poll_transmit(now, &mut buf).is_some() {
            let p = RtpPacket::new_checked(&buf[..]).unwrap();
            let j = JpegPayloadRepr::parse(p.payload()).unwrap();
            assert_eq!(j.header.fragment_offset as usize, offset);
            assert!(j.qtables.is_none());
            offset += j.data.len();
            seqs.push(p.seq());
            assert_eq!(p.marker(), offset == info.scan.len());
        }
        assert_eq!(offset, info.scan.len());
        assert_eq!(seqs[..2], [65535, 0]);
    }

    #[test]
    fn the_first_frames_bring_reports_until_the_receiver_answers() {
        let start = Instant::now();
        let reports = |s: &mut RtpSender, at: Instant| {
            s.send_frame(at, frame(0)).unwrap();
            drain(s, at).iter().filter(|p| p.is_none()).count()
        };
        let mut s = sender();
        let counts: Vec<usize> = (0..5)
            .map(|i| reports(&mut s, start + Duration::from_millis(33 * i)))
            .collect();
        assert_eq!(counts, [1, 1, 1, 0, 0]);
        let mut s = sender();
        assert_eq!(reports(&mut s, start), 1);
        let mut rr = Vec::new();
        RtcpRepr::emit_compound(
            &[RtcpRepr::ReceiverReport {
                ssrc: 9,
                reports: vec![],
            }],
            &mut rr,
        );
        s.handle_datagram(start, s.peer, &rr);
        assert_eq!(reports(&mut s, start + Duration::from_millis(33)), 0);
    }

    #[test]
    fn timestamps_follow_capture_time_and_never_go_back() {
        let mut s = sender();
        let now = Instant::now();
        assert_eq!(s.timestamp_for(5_000_000), 1000);
        s.last_frame = Some((1000, 5_000_000, now));
        assert_eq!(s.timestamp_for(5_100_000), 1000 + 9000);
        s.last_frame = Some((10_000, 5_100_000, now));
        assert_eq!(s.timestamp_for(4_000_000), 10_001);
    }

    /// What the sender transmits at `now`, as (seq, marker) for media and None for RTCP.
    fn drain(s: &mut RtpSender, now: Instant) -> Vec<Option<(u16, bool)>> {
        let mut buf = Vec::new();
        let mut out = vec![];
        while s.poll_transmit(now, &mut buf).is_some() {
            out.push(if is_rtcp(&buf) {
                None
            } else {
                let p = RtpPacket::new_checked(&buf[..]).unwrap();
                Some((p.seq(), p.marker()))
            });
        }
        out
    }

    #[test]
    fn the_tail_is_probed_and_lingers_for_nacks_only_toward_a_peer_that_answers() {
        let start = Instant::now();
        let rr = {
            let mut b = Vec::new();
            RtcpRepr::emit_compound(
                &[RtcpRepr::ReceiverReport {
                    ssrc: 9,
                    reports: vec![],
                }],
                &mut b,
            );
            b
        };
        // A silent receiver (GStreamer, ffmpeg): the run ends when the last packet is out.
        let mut silent = sender();
        silent.send_frame(start, frame(0)).unwrap();
        drain(&mut silent, start);
        assert_eq!(silent.frames_in_flight(), 0);

        let mut s = sender();
        s.send_frame(start, frame(0)).unwrap();
        s.handle_datagram(start, s.peer, &rr);
        assert!(s.has_heard_peer());
        let sent = drain(&mut s, start);
        let (last_seq, marker) = sent.last().unwrap().unwrap();
        assert!(marker);
        // A steady stream never probes: the next frame comes before the probe is due.
        let t1 = start + Duration::from_millis(33);
        s.send_frame(t1, frame(33_000)).unwrap();
        assert!(drain(&mut s, t1)
            .iter()
            .flatten()
            .all(|&(seq, _)| seq != last_seq));
        let last_seq = last_seq.wrapping_add(sent.len() as u16 - 1);
        // Then the stream stops: after two frame intervals the last packet goes again.
        let probe_at = s.poll_timeout().unwrap();
        assert_eq!(probe_at, t1 + Duration::from_millis(66));
        assert!(s.frames_in_flight() > 0);
        s.handle_timeout(probe_at);
        let probe: Vec<_> = drain(&mut s, probe_at).into_iter().flatten().collect();
        assert_eq!(probe, [(last_seq, true)]);
        assert_eq!((s.stats().probes, s.stats().retransmits), (1, 0));
        // In flight until NACKs can have come, then done.
        let mut now = probe_at;
        while s.frames_in_flight() > 0 {
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
            drain(&mut s, now);
            assert!(now < probe_at + Duration::from_secs(3));
        }
        assert!(now >= probe_at + Duration::from_millis(250));
        assert_eq!((s.stats().probes, s.stats().retransmits), (1, 0));
    }

    #[test]
    fn refusals_are_typed() {
        let mut s = sender();
        let now = Instant::now();
        let mut f = frame(0);
        f.data = include_bytes!("../../tests/fixtures/testsrc-64x48-444.jpg").to_vec();
        match s.send_jpeg(now, f.clone()) {
            Err(RtpSendError::Jpeg(e)) => assert!(e.needs_reencode()),
            other => panic!("{other:?}"),
        }
        assert!(s.send_frame(now, f).unwrap_err().is_fatal());
        let mut f = frame(0);
        f.data = vec![0xff, 0xd8, 0xff];
        assert_eq!(s.send_frame(now, f), Err(SendError::Empty));
        assert_eq!(s.stats().frames_sent, 0);
    }
}
