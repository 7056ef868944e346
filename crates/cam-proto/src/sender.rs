//! The sending side's state machine: cuts frames into chunks, keeps a small window of
//! frames in flight, answers the viewer's acks with selective retransmissions, probes when
//! acks stop coming, and abandons a frame at its deadline so live video never stalls.
//!
//! Sans-IO: `handle_*` take input with the current time, `poll_*` give output.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::congestion::RateController;
use crate::rtt::RttEstimator;
use crate::secure::{Aead, AeadSet, ClientKeys, ClientOpened, Psk, RekeyLimits, SecureError};
use crate::seq::seq_newer;
use crate::wire::{
    AckRepr, AckStatus, Body, ChunkRepr, Codec, CommonRepr, Datagram, HeaderRepr, Kind, NameRepr,
    WireError, CHECK_LEN, FLAG_SEALED, TAG_LEN,
};

/// Longest wait between probes: bounds how long a restarted viewer goes unnoticed.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Send times kept for RTT samples; older packet numbers simply give no sample.
const SENT_TIMES_KEPT: usize = 1 << 15;
/// Pacing runs this much faster than the target rate, so a frame leaves well within its
/// interval while the queue it leaves behind stays small.
const PACING_GAIN: f64 = 1.25;
/// Datagrams may leave this far ahead of the pacing schedule (timer granularity).
const PACING_BURST: Duration = Duration::from_millis(2);
/// Smallest reordering window (RACK's `reo_wnd`): a chunk reported missing counts as lost
/// only if it left at least this long (or a quarter of the minimum RTT, if longer) before
/// the newest datagram the viewer has; one sent later may just have been overtaken.
const MIN_REORDER_WINDOW: Duration = Duration::from_millis(1);
/// Corrupt datagrams the viewer reported that may excuse later losses, at most.
const CORRUPT_EXCUSE_MAX: u32 = 1024;
/// Marks the header in a frame's list of suspected losses.
const HEADER_INDEX: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Frame bytes per chunk datagram.
    pub chunk_size: u16,
    /// Upper bound on frames in flight at once.
    pub max_in_flight: usize,
    /// Overrides the RTT-derived wait before probing a frame whose ack is overdue.
    pub ack_timeout: Option<Duration>,
    /// Overrides the derived time after which an unacknowledged frame is abandoned.
    pub frame_deadline: Option<Duration>,
    /// Target interval between frames (`None`: as fast as acks allow).
    pub frame_interval: Option<Duration>,
    /// RTT assumed before the first sample.
    pub initial_rtt: Duration,
    /// Spread datagrams at the estimated path rate once congestion has been seen.
    pub pacing: bool,
    /// Keyed mode: handshake first, then every datagram sealed (see `crate::secure`).
    pub psk: Option<Psk>,
    /// Keyed mode: the AEADs offered (what this machine runs fast, by default).
    pub aeads: AeadSet,
    /// Keyed mode: when a working session is replaced by a new handshake.
    pub rekey: RekeyLimits,
    /// What the stream is called (`cam-client --name`), sent in Name datagrams; at most
    /// `wire::MAX_NAME_LEN` bytes, checked with `wire::is_valid_name`.
    pub name: Option<String>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            chunk_size: 1200,
            max_in_flight: 8,
            ack_timeout: None,
            frame_deadline: None,
            frame_interval: None,
            initial_rtt: Duration::from_millis(100),
            pacing: true,
            psk: None,
            aeads: AeadSet::fast_here(),
            rekey: RekeyLimits::default(),
            name: None,
        }
    }
}

/// A stream's name goes again this often while it streams: a viewer that starts late, or
/// lost the first one, learns it within this time.
pub const NAME_INTERVAL: Duration = Duration::from_secs(2);

/// A frame to send: encoded bytes plus what the header says about them.
#[derive(Debug, Clone)]
pub struct OutgoingFrame {
    pub data: Vec<u8>,
    pub width: u16,
    pub height: u16,
    /// Wall-clock microseconds since the Unix epoch.
    pub capture_ts_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbandonReason {
    /// No complete ack before the frame's deadline.
    Deadline,
    /// The viewer said it dropped the frame.
    ViewerGone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    Acked {
        seq: u32,
        /// From the frame's first datagram to its complete ack.
        delivery_time: Duration,
        retransmits: u32,
    },
    Abandoned {
        seq: u32,
        reason: AbandonReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// `can_send` was false: the window or the viewer's credit is full.
    WindowFull,
    /// Empty frames carry nothing to show.
    Empty,
    /// Larger than 4 GiB: the wire's length field cannot say it.
    TooLarge,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::WindowFull => "no room in the send window",
            SendError::Empty => "empty frame",
            SendError::TooLarge => "frame larger than 4 GiB",
        })
    }
}
impl std::error::Error for SendError {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub frames_sent: u64,
    pub frames_acked: u64,
    pub frames_timed_out: u64,
    pub frames_refused: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Chunks and headers sent again after the viewer reported them missing.
    pub retransmits: u64,
    pub probes: u64,
    pub acks_received: u64,
    pub datagrams_invalid: u64,
    /// Keyed mode: refused for failing authentication (or not sealed); also in `datagrams_invalid`.
    pub datagrams_unauthenticated: u64,
    /// Keyed mode: authentic but seen before or too old; also in `datagrams_invalid`.
    pub datagrams_replayed: u64,
    /// Keyed mode: handshakes completed.
    pub handshakes: u64,
    /// Answers saying the viewer serves all the streams it may (`--max-streams`).
    pub receiver_full: u64,
}

#[derive(Debug)]
struct InFlight {
    seq: u32,
    header: HeaderRepr,
    data: Vec<u8>,
    chunk_count: u32,
    next_new: u32,
    /// Packet number of each chunk's latest transmission (`u64::MAX`: not yet sent).
    sent_pn: Vec<u64>,
    queued: Vec<bool>,
    retransmit: VecDeque<u32>,
    header_pn: u64,
    header_pending: bool,
    probe_pending: bool,
    first_sent: Option<Instant>,
    last_sent: Instant,
    probe_at: Option<Instant>,
    probes_unanswered: u32,
    deadline: Instant,
    retransmits: u32,
    /// Fewest chunks the viewer has reported missing: a smaller count is progress.
    fewest_missing: u32,
    /// Reported missing, but sent within the reordering window of the newest datagram the
    /// viewer had: lost only if no complete ack came by `reorder_at`.
    suspects: Vec<u32>,
    reorder_at: Option<Instant>,
}

impl InFlight {
    fn has_data_pending(&self) -> bool {
        self.header_pending || !self.retransmit.is_empty() || self.next_new < self.chunk_count
    }

    /// Frame bytes still queued to go out (retransmissions and chunks never sent).
    fn bytes_queued(&self) -> u32 {
        let chunks = self.retransmit.len() as u64 + u64::from(self.chunk_count - self.next_new);
        u32::try_from(chunks * u64::from(self.header.chunk_size)).unwrap_or(u32::MAX)
    }
}

#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    stream_id: u32,
    next_pn: u64,
    next_seq: u32,
    in_flight: VecDeque<InFlight>,
    /// Highest frame sequence the viewer currently lets us send.
    credit_limit: u32,
    credit_seq: Option<u32>,
    zero_window_probe_at: Option<Instant>,
    zero_window_probe_pending: bool,
    rtt: RttEstimator,
    controller: RateController,
    next_send_at: Option<Instant>,
    chunks_sent: u32,
    chunks_reported_lost: u32,
    bytes_since_ack: u64,
    largest_acked_pn: Option<u64>,
    /// The viewer's last count of corrupt datagrams (`AckRepr::corrupt`), and how many of
    /// them have not yet excused a loss.
    corrupt_reported: u16,
    corrupt_unexcused: u32,
    sent_times: VecDeque<Instant>,
    sent_times_base: u64,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    /// Keyed mode's handshake and sessions.
    keys: Option<ClientKeys>,
    /// Where a sealed datagram is opened.
    scratch: Vec<u8>,
    /// When the stream's name goes next (`None`: no name, or no frame sent yet).
    name_at: Option<Instant>,
}

impl Sender {
    pub fn new(stream_id: u32, first_seq: u32, config: SenderConfig) -> Sender {
        let rtt = RttEstimator::new(config.initial_rtt);
        let keys = config
            .psk
            .clone()
            .map(|psk| ClientKeys::with_aeads(psk, config.aeads).with_rekey(config.rekey));
        Sender {
            config,
            stream_id,
            next_pn: 0,
            next_seq: first_seq,
            in_flight: VecDeque::new(),
            credit_limit: first_seq,
            credit_seq: None,
            zero_window_probe_at: None,
            zero_window_probe_pending: false,
            rtt,
            controller: RateController::new(),
            next_send_at: None,
            chunks_sent: 0,
            chunks_reported_lost: 0,
            bytes_since_ack: 0,
            largest_acked_pn: None,
            corrupt_reported: 0,
            corrupt_unexcused: 0,
            sent_times: VecDeque::new(),
            sent_times_base: 0,
            events: VecDeque::new(),
            stats: SenderStats::default(),
            keys,
            scratch: Vec::new(),
            name_at: None,
        }
    }

    /// Keyed mode: a handshake first, then everything sealed.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// Keyed mode: the AEAD the current session uses.
    pub fn aead(&self) -> Option<Aead> {
        self.keys.as_ref().and_then(ClientKeys::aead)
    }

    /// Keyed mode: a session with the viewer is up (always true without a key).
    pub fn is_established(&self) -> bool {
        self.keys.as_ref().is_none_or(ClientKeys::is_established)
    }

    /// The viewer has answered at least once (an ack, or in keyed mode a handshake).
    pub fn has_heard_viewer(&self) -> bool {
        self.stats.acks_received > 0 || self.stats.handshakes > 0
    }

    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }
    pub fn frames_in_flight(&self) -> usize {
        self.in_flight.len()
    }
    pub fn controller(&self) -> &RateController {
        &self.controller
    }

    /// The rate the path is believed to carry (`None`: no congestion seen, unlimited).
    pub fn target_rate_bps(&self) -> Option<f64> {
        self.controller.target_bps()
    }

    /// Datagrams are spread at this rate; `None` sends them as fast as the socket takes them.
    pub fn pacing_rate_bps(&self) -> Option<f64> {
        if !self.config.pacing {
            return None;
        }
        self.controller.target_bps().map(|t| t * PACING_GAIN)
    }

    /// Frames allowed in flight: enough to cover one round trip at the target frame rate
    /// (RTT × fps + 1), so a long link still carries the full rate; 1 when unpaced or on
    /// a short link, where waiting for each ack costs nothing.
    pub fn window(&self) -> usize {
        let w = match self.config.frame_interval {
            Some(interval) if self.rtt.has_sample() && !interval.is_zero() => {
                // The path's delay, not a queue's: a standing queue must not widen the window.
                let rtt = (self.rtt.min() + self.rtt.var()).as_secs_f64();
                (rtt / interval.as_secs_f64()).ceil() as usize + 1
            }
            _ => 1,
        };
        w.clamp(1, self.config.max_in_flight.max(1))
    }

    fn pto(&self) -> Duration {
        self.config.ack_timeout.unwrap_or_else(|| self.rtt.pto())
    }

    /// A few probe timeouts, and never less than two frame intervals.
    pub fn frame_deadline(&self) -> Duration {
        self.config.frame_deadline.unwrap_or_else(|| {
            let by_rtt = self.rtt.pto() * 4;
            let by_rate = self.config.frame_interval.unwrap_or_default() * 2;
            by_rtt.max(by_rate)
        })
    }

    /// Unpaced (`--fps 0`), no newer frame waits to be fresher: while the viewer reports
    /// progress on a frame, its deadline stays this far ahead, so loss alone never costs a
    /// frame; a viewer that stops making progress, or vanished, still ends it a few probe
    /// timeouts later. Progress is finite (each report must name fewer missing chunks), so
    /// this never blocks forever. Paced streams and an explicit `--frame-deadline` keep a
    /// fixed deadline: there the newest frame wins.
    fn progress_extension(&self) -> Option<Duration> {
        (self.config.frame_interval.is_none() && self.config.frame_deadline.is_none())
            .then(|| self.frame_deadline())
    }

    /// Time pacing spends putting `bytes` on the wire (zero when not pacing).
    fn pacing_time(&self, bytes: u32) -> Duration {
        self.pacing_rate_bps().map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(f64::from(bytes) * 8.0 / rate.max(1.0))
        })
    }

    /// True when a new frame may go now: a free slot in the window and credit from the viewer.
    pub fn can_send(&self) -> bool {
        self.in_flight.len() < self.window()
            && !seq_newer(self.next_seq, self.credit_limit)
            && self.keys.as_ref().is_none_or(|k| k.can_seal(self.next_pn))
    }

    /// Queues a frame; its datagrams come out of `poll_transmit`. Returns its sequence number.
    pub fn send_frame(&mut self, now: Instant, frame: OutgoingFrame) -> Result<u32, SendError> {
        if !self.can_send() {
            return Err(SendError::WindowFull);
        }
        if frame.data.is_empty() {
            return Err(SendError::Empty);
        }
        let total_len = u32::try_from(frame.data.len()).map_err(|_| SendError::TooLarge)?;
        let header = HeaderRepr {
            total_len,
            chunk_size: self.config.chunk_size.max(1),
            codec: Codec::Jpeg,
            width: frame.width,
            height: frame.height,
            capture_ts_us: frame.capture_ts_us,
            crc32: crc32fast::hash(&frame.data),
        };
        let chunk_count = header.chunk_count();
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight.push_back(InFlight {
            seq,
            header,
            data: frame.data,
            chunk_count,
            next_new: 0,
            sent_pn: vec![u64::MAX; chunk_count as usize],
            queued: vec![false; chunk_count as usize],
            retransmit: VecDeque::new(),
            header_pn: u64::MAX,
            header_pending: true,
            probe_pending: false,
            first_sent: None,
            last_sent: now,
            probe_at: None,
            probes_unanswered: 0,
            deadline: now + self.frame_deadline() + self.pacing_time(total_len),
            retransmits: 0,
            fewest_missing: chunk_count,
            suspects: Vec::new(),
            reorder_at: None,
        });
        self.stats.frames_sent += 1;
        self.zero_window_probe_at = None;
        Ok(seq)
    }

    /// Feeds one datagram from the viewer. A refused datagram is counted and changes nothing.
    /// In keyed mode it is authenticated (and opened) before anything else looks at it.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SecureError> {
        let result = match self.keys.is_some() {
            true => self.handle_keyed(now, bytes),
            false => Datagram::parse(bytes)
                .and_then(|d| self.handle_ack(now, d))
                .map_err(SecureError::from),
        };
        if let Err(why) = result {
            self.stats.datagrams_invalid += 1;
            match why {
                SecureError::Replayed => self.stats.datagrams_replayed += 1,
                SecureError::Unauthenticated
                | SecureError::NotSealed
                | SecureError::Wire(WireError::Handshake)
                | SecureError::Wire(WireError::BadFlags(FLAG_SEALED)) => {
                    self.stats.datagrams_unauthenticated += 1
                }
                _ => {}
            }
        }
        result
    }

    fn handle_keyed(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SecureError> {
        let Some(keys) = self.keys.as_mut() else {
            return Ok(());
        };
        let mut clear = std::mem::take(&mut self.scratch);
        let opened = keys.open(now, self.stream_id, bytes, &mut clear);
        self.stats.handshakes = keys.handshakes;
        let result = match opened {
            Ok(ClientOpened::Data) => Datagram::parse_opened(&clear)
                .and_then(|d| self.handle_ack(now, d))
                .map_err(SecureError::from),
            // Delivered twice by the network: not a replay, and nothing to do.
            Err(SecureError::Duplicate) => Ok(()),
            Ok(ClientOpened::Established { viewer_silent }) => {
                if viewer_silent {
                    // The viewer may have restarted without these frames: ask where they stand.
                    for frame in self.in_flight.iter_mut() {
                        frame.probe_pending = true;
                    }
                }
                Ok(())
            }
            Ok(ClientOpened::DuplicateReply) => Ok(()),
            Err(e) => Err(e),
        };
        self.scratch = clear;
        result
    }

    fn handle_ack(&mut self, now: Instant, datagram: Datagram<'_>) -> Result<(), WireError> {
        let ack = match datagram.body {
            Body::Ack(ack) if datagram.common.stream_id == self.stream_id => ack,
            Body::Ack(_) => return Err(WireError::BadReserved),
            _ => return Err(WireError::BadKind(datagram.common.kind as u8)),
        };
        // About a frame never sent: no viewer of this stream says that.
        if seq_newer(datagram.common.frame_seq, self.next_seq) {
            return Err(WireError::Implausible);
        }
        if ack.status == AckStatus::Full {
            // A refusal, not an answer: the stream is not served, and nothing is measured.
            self.stats.receiver_full += 1;
            return Ok(());
        }
        self.stats.acks_received += 1;
        // A packet number never sent is not believed: no RTT sample, and for loss it means
        // no more than "everything sent so far".
        let mut ack = ack;
        let claimed = ack.largest_pn;
        ack.largest_pn = claimed.min(self.next_pn.saturating_sub(1));
        if ack.largest_pn == claimed {
            self.take_rtt_sample(now, &ack);
        }
        let corrupt = ack.corrupt.wrapping_sub(self.corrupt_reported);
        if corrupt < 1 << 15 {
            self.corrupt_reported = ack.corrupt;
            self.corrupt_unexcused =
                (self.corrupt_unexcused + u32::from(corrupt)).min(CORRUPT_EXCUSE_MAX);
        }
        // Chunks lost to corruption were repaired, but say nothing about congestion.
        let excused = self.chunks_reported_lost.min(self.corrupt_unexcused);
        self.corrupt_unexcused -= excused;
        self.controller.on_chunks(
            now,
            self.chunks_sent,
            self.chunks_reported_lost - excused,
            self.bytes_since_ack,
        );
        self.chunks_sent = 0;
        self.bytes_since_ack = 0;
        self.chunks_reported_lost = 0;
        let seq = datagram.common.frame_seq;
        self.update_credit(seq, ack.window);
        log::trace!("ack seq {seq} {:?} window {}", ack.status, ack.window);
        let Some(pos) = self.in_flight.iter().position(|f| f.seq == seq) else {
            self.arm_window_probe(now);
            return Ok(());
        };
        match ack.status {
            AckStatus::Complete => {
                if let Some(frame) = self.in_flight.remove(pos) {
                    self.stats.frames_acked += 1;
                    let delivery_time = frame
                        .first_sent
                        .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                    self.controller.on_frame_acked(
                        now,
                        u64::from(frame.header.total_len),
                        delivery_time,
                        frame.retransmits == 0,
                    );
                    self.events.push_back(SenderEvent::Acked {
                        seq,
                        delivery_time: frame
                            .first_sent
                            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
                        retransmits: frame.retransmits,
                    });
                }
            }
            // Returned before counting the ack, above.
            AckStatus::Full => {}
            AckStatus::Gone => {
                self.in_flight.remove(pos);
                self.stats.frames_refused += 1;
                self.events.push_back(SenderEvent::Abandoned {
                    seq,
                    reason: AbandonReason::ViewerGone,
                });
                self.credit_after_loss(seq);
            }
            AckStatus::Incomplete => {
                let pto = self.pto();
                let extension = self.progress_extension();
                let reorder_window = self.reorder_window();
                let sent = SentTimes {
                    times: &self.sent_times,
                    base: self.sent_times_base,
                };
                let frame = &mut self.in_flight[pos];
                frame.probes_unanswered = 0;
                frame.probe_at = None;
                self.chunks_reported_lost += queue_missing(frame, &ack, &sent, reorder_window, now);
                if !frame.has_data_pending() {
                    frame.probe_at = Some(now + pto);
                }
                let missing = missing_count(&ack, frame.chunk_count);
                let progressed = missing < frame.fewest_missing;
                frame.fewest_missing = frame.fewest_missing.min(missing);
                let queued = frame.bytes_queued();
                if let Some(extension) = extension.filter(|_| progressed) {
                    // Pacing may spread what is queued over a while: that time is not stalling.
                    let until = now + extension + self.pacing_time(queued);
                    let frame = &mut self.in_flight[pos];
                    frame.deadline = frame.deadline.max(until);
                }
            }
        }
        self.arm_window_probe(now);
        Ok(())
    }

    /// The viewer's window is closed and nothing is in flight: start the window-probe timer
    /// now. Waiting for `handle_timeout` to start it would wait forever, as `poll_timeout`
    /// has nothing to report, and a lost window update (the viewer's re-ack when room frees
    /// up) would leave both sides waiting for each other.
    fn arm_window_probe(&mut self, now: Instant) {
        if self.in_flight.is_empty()
            && seq_newer(self.next_seq, self.credit_limit)
            && self.zero_window_probe_at.is_none()
        {
            self.zero_window_probe_at = Some(now + self.pto());
        }
    }

    /// How long after a later datagram reached the viewer an earlier one may still be on
    /// its way (RACK's reordering window): a quarter of the minimum RTT, at least 1 ms.
    pub fn reorder_window(&self) -> Duration {
        let min_rtt = self.controller.min_rtt().unwrap_or_else(|| self.rtt.min());
        (min_rtt / 4).max(MIN_REORDER_WINDOW)
    }

    fn take_rtt_sample(&mut self, now: Instant, ack: &AckRepr<'_>) {
        if self.largest_acked_pn.is_some_and(|pn| ack.largest_pn <= pn) {
            return;
        }
        let Some(sent) = ack
            .largest_pn
            .checked_sub(self.sent_times_base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.sent_times.get(i))
        else {
            return;
        };
        self.largest_acked_pn = Some(ack.largest_pn);
        let sample = now.saturating_duration_since(*sent);
        self.rtt
            .update(sample, Duration::from_micros(u64::from(ack.ack_delay_us)));
        self.controller.on_rtt_sample(now, self.rtt.latest());
    }

    fn update_credit(&mut self, seq: u32, window: u16) {
        let newer = match self.credit_seq {
            None => true,
            Some(s) => !seq_newer(s, seq),
        };
        if newer {
            self.credit_seq = Some(seq);
            let limit = seq.wrapping_add(u32::from(window));
            // Credit given for an older frame is not taken back by a later, smaller grant
            // that merely reflects frames already sent.
            if seq_newer(limit, self.credit_limit) || window == 0 {
                self.credit_limit = limit;
            }
            if window > 0 {
                self.zero_window_probe_at = None;
            }
        }
    }

    /// A frame that will never be acknowledged must not hold back the next one.
    fn credit_after_loss(&mut self, seq: u32) {
        let next = seq.wrapping_add(1);
        if seq_newer(next, self.credit_limit) {
            self.credit_limit = next;
        }
    }

    /// Runs timers: probes for overdue acks, abandons frames past their deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        let pto = self.pto();
        let mut i = 0;
        while i < self.in_flight.len() {
            let frame = &mut self.in_flight[i];
            if now >= frame.deadline {
                let seq = frame.seq;
                self.in_flight.remove(i);
                self.stats.frames_timed_out += 1;
                log::debug!("frame {seq} abandoned at its deadline");
                self.events.push_back(SenderEvent::Abandoned {
                    seq,
                    reason: AbandonReason::Deadline,
                });
                self.credit_after_loss(seq);
                continue;
            }
            if frame.reorder_at.is_some_and(|t| now >= t) {
                frame.reorder_at = None;
                self.chunks_reported_lost += queue_suspects(frame);
            }
            if frame.probe_at.is_some_and(|t| now >= t) {
                frame.probe_pending = true;
                frame.probes_unanswered += 1;
                frame.probe_at = Some(now + probe_interval(pto, frame.probes_unanswered));
            }
            i += 1;
        }
        if self.in_flight.is_empty() && seq_newer(self.next_seq, self.credit_limit) {
            match self.zero_window_probe_at {
                None => self.zero_window_probe_at = Some(now + pto),
                Some(t) if now >= t => {
                    self.zero_window_probe_pending = true;
                    self.zero_window_probe_at = Some(now + probe_interval(pto, 2));
                }
                Some(_) => {}
            }
        }
        let busy = self.awaiting_answer();
        if let Some(keys) = self.keys.as_mut() {
            keys.handle_timeout(now, pto, busy);
        }
    }

    /// Frames, or a window probe, wait for the viewer.
    fn awaiting_answer(&self) -> bool {
        !self.in_flight.is_empty() || self.zero_window_probe_at.is_some()
    }

    /// When `handle_timeout` next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let frames = self
            .in_flight
            .iter()
            .flat_map(|f| [Some(f.deadline), f.probe_at, f.reorder_at])
            .flatten();
        let paced = self.next_send_at.filter(|_| self.has_pending());
        let keys = self
            .keys
            .as_ref()
            .and_then(|k| k.poll_timeout(self.pto(), self.awaiting_answer()));
        frames
            .chain(self.zero_window_probe_at)
            .chain(paced)
            .chain(keys)
            .min()
    }

    /// Something is waiting to be sent (perhaps held back by pacing).
    pub fn has_pending(&self) -> bool {
        self.zero_window_probe_pending
            || self
                .in_flight
                .iter()
                .any(|f| f.probe_pending || f.has_data_pending())
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// Writes the next datagram to send into `buf` (replacing its contents). Returns false
    /// when there is nothing to send now. In keyed mode a due HELLO goes first, and every
    /// other datagram is sealed.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let pto = self.pto();
        let Some(keys) = self.keys.as_mut() else {
            return self.poll_transmit_clear(now, buf);
        };
        if keys.poll_hello(now, pto, self.stream_id, self.next_pn, buf) {
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += buf.len() as u64;
            self.next_pn += 1;
            self.sent_times.push_back(now);
            if self.sent_times.len() > SENT_TIMES_KEPT {
                self.sent_times.pop_front();
                self.sent_times_base += 1;
            }
            return true;
        }
        if !keys.can_seal(self.next_pn) || !self.poll_transmit_clear(now, buf) {
            return false;
        }
        let sealed = self.keys.as_mut().map(|k| k.seal(buf));
        match sealed {
            Some(Ok(())) => {
                // The tag took the place of the check.
                self.stats.bytes_sent += (TAG_LEN - CHECK_LEN) as u64;
                true
            }
            // Unreachable after `can_seal`; a datagram not sent is a datagram lost.
            _ => {
                buf.clear();
                false
            }
        }
    }

    fn poll_transmit_clear(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let pacing = self.pacing_rate_bps();
        if pacing.is_some() && self.next_send_at.is_some_and(|t| now < t) {
            return false;
        }
        let pto = self.pto();
        let pn = self.next_pn;
        let stream_id = self.stream_id;
        let common = |kind, frame_seq| CommonRepr {
            kind,
            stream_id,
            packet_number: pn,
            frame_seq,
        };
        let mut sent_retransmit = false;
        let mut built = false;
        if let Some(name) = self.config.name.as_deref() {
            if self.name_at.is_some_and(|t| now >= t) {
                let seq = self.next_seq.wrapping_sub(1);
                Datagram {
                    common: common(Kind::Name, seq),
                    body: Body::Name(NameRepr { name }),
                }
                .emit(buf);
                self.name_at = Some(now + NAME_INTERVAL);
                built = true;
            }
        }
        // A due Name goes first; otherwise the first frame with something to send.
        if !built {
            for frame in self.in_flight.iter_mut() {
                let seq = frame.seq;
                let body = if frame.probe_pending {
                    frame.probe_pending = false;
                    self.stats.probes += 1;
                    Body::Probe
                } else if frame.header_pending {
                    frame.header_pending = false;
                    if frame.header_pn != u64::MAX {
                        sent_retransmit = true;
                    }
                    frame.header_pn = pn;
                    if self.config.name.is_some() && self.name_at.is_none() {
                        // The name follows the first header, once the stream can be adopted.
                        self.name_at = Some(now);
                    }
                    Body::Header(frame.header)
                } else if let Some(index) = frame.retransmit.pop_front() {
                    frame.queued[index as usize] = false;
                    sent_retransmit = true;
                    self.chunks_sent += 1;
                    frame.sent_pn[index as usize] = pn;
                    chunk_body(frame, index)
                } else if frame.next_new < frame.chunk_count {
                    let index = frame.next_new;
                    frame.next_new += 1;
                    self.chunks_sent += 1;
                    frame.sent_pn[index as usize] = pn;
                    chunk_body(frame, index)
                } else {
                    continue;
                };
                let kind = match body {
                    Body::Probe => Kind::Probe,
                    Body::Header(_) => Kind::Header,
                    _ => Kind::Chunk,
                };
                Datagram {
                    common: common(kind, seq),
                    body,
                }
                .emit(buf);
                frame.first_sent.get_or_insert(now);
                frame.last_sent = now;
                if sent_retransmit {
                    frame.retransmits += 1;
                }
                if !frame.has_data_pending() && frame.probe_at.is_none() {
                    frame.probe_at = Some(now + pto);
                }
                built = true;
                break;
            }
        }
        if !built && self.zero_window_probe_pending {
            self.zero_window_probe_pending = false;
            let Some(seq) = self.credit_seq else {
                return false;
            };
            self.stats.probes += 1;
            Datagram {
                common: common(Kind::Probe, seq),
                body: Body::Probe,
            }
            .emit(buf);
            built = true;
        }
        if !built {
            return false;
        }
        if sent_retransmit {
            self.stats.retransmits += 1;
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        self.bytes_since_ack += buf.len() as u64;
        if let Some(rate) = pacing {
            // Credit for idle time is capped at one burst, so pauses do not turn into bursts.
            let base = self
                .next_send_at
                .map_or(now, |t| t.max(now.checked_sub(PACING_BURST).unwrap_or(now)));
            let wire_bits = (buf.len() as f64 + 28.0) * 8.0;
            self.next_send_at = Some(base + Duration::from_secs_f64(wire_bits / rate.max(1.0)));
        }
        self.next_pn += 1;
        self.sent_times.push_back(now);
        if self.sent_times.len() > SENT_TIMES_KEPT {
            self.sent_times.pop_front();
            self.sent_times_base += 1;
        }
        true
    }
}

fn chunk_body(frame: &InFlight, index: u32) -> Body<'_> {
    let size = usize::from(frame.header.chunk_size);
    let start = index as usize * size;
    let end = (start + size).min(frame.data.len());
    Body::Chunk(ChunkRepr {
        index,
        total_len: frame.header.total_len,
        crc32: frame.header.crc32,
        chunk_size: frame.header.chunk_size,
        codec: frame.header.codec,
        payload: &frame.data[start..end],
    })
}

/// Send times by packet number (the sender's recent history).
struct SentTimes<'a> {
    times: &'a VecDeque<Instant>,
    base: u64,
}

impl SentTimes<'_> {
    fn get(&self, pn: u64) -> Option<Instant> {
        let i = usize::try_from(pn.checked_sub(self.base)?).ok()?;
        self.times.get(i).copied()
    }
}

/// Queues the chunks an ack reports missing, but only those whose latest transmission the
/// viewer must already have seen (sent before its largest received packet): later ones
/// may still be on their way, and sending them again would only duplicate. Of those, one
/// sent within `reorder_window` of that largest packet may have been overtaken by it (as
/// jitter does): it is only suspected, and queued at `reorder_at` unless the frame's
/// complete ack came first (RACK, RFC 8985).
fn queue_missing(
    frame: &mut InFlight,
    ack: &AckRepr<'_>,
    sent: &SentTimes<'_>,
    reorder_window: Duration,
    now: Instant,
) -> u32 {
    let newest_there = sent.get(ack.largest_pn);
    let overtaken = |pn: u64| match (sent.get(pn), newest_there) {
        (Some(at), Some(newest)) => newest.saturating_duration_since(at) < reorder_window,
        _ => false,
    };
    let mut queued = 0;
    let mut suspected = false;
    if ack.header_missing && frame.header_pn <= ack.largest_pn && !frame.header_pending {
        if overtaken(frame.header_pn) {
            if !frame.suspects.contains(&HEADER_INDEX) {
                frame.suspects.push(HEADER_INDEX);
            }
            suspected = true;
        } else {
            frame.header_pending = true;
            frame.suspects.retain(|&s| s != HEADER_INDEX);
        }
    }
    for range in ack.missing.iter() {
        let end = range.end().min(u64::from(frame.next_new)) as u32;
        for index in range.start..end {
            let i = index as usize;
            if frame.queued[i] || frame.sent_pn[i] > ack.largest_pn {
                continue;
            }
            if overtaken(frame.sent_pn[i]) {
                if !frame.suspects.contains(&index) {
                    frame.suspects.push(index);
                }
                suspected = true;
                continue;
            }
            frame.queued[i] = true;
            frame.retransmit.push_back(index);
            frame.suspects.retain(|&s| s != index);
            queued += 1;
        }
    }
    if suspected {
        frame.reorder_at.get_or_insert(now + reorder_window);
    }
    queued
}

/// The reordering window of a frame's suspects passed without a complete ack: they are lost.
fn queue_suspects(frame: &mut InFlight) -> u32 {
    let mut queued = 0;
    for index in std::mem::take(&mut frame.suspects) {
        if index == HEADER_INDEX {
            frame.header_pending = true;
            continue;
        }
        let i = index as usize;
        if i < frame.queued.len() && !frame.queued[i] {
            frame.queued[i] = true;
            frame.retransmit.push_back(index);
            queued += 1;
        }
    }
    queued
}

/// Chunks an ack reports missing, counting only those the frame has.
fn missing_count(ack: &AckRepr<'_>, chunk_count: u32) -> u32 {
    let count = u64::from(chunk_count);
    let missing: u64 = ack
        .missing
        .iter()
        .map(|r| {
            let start = u64::from(r.start).min(count);
            r.end().min(count).saturating_sub(start)
        })
        .sum();
    u32::try_from(missing).unwrap_or(u32::MAX)
}

/// Exponential backoff for unanswered probes, capped so a restarted viewer is found quickly.
pub(crate) fn probe_interval(pto: Duration, unanswered: u32) -> Duration {
    let factor = 1u32 << unanswered.min(6);
    (pto * factor).min(MAX_PROBE_INTERVAL).max(pto)
}
