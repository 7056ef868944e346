//! The viewing side's state machine: picks the one stream it serves, assembles the few
//! frames in flight, verifies them, releases them in order (never an older frame after a
//! newer one), and acknowledges each: complete, missing ranges, or gone, with credit.
//!
//! Sans-IO: `handle_*` take input with the current time, `poll_*` give output.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::assembler::{Accepted, FrameAssembly};
use crate::secure::{Aead, AeadSet, Psk, SecureError, ViewerKeys, ViewerOpened};
use crate::seq::{seq_distance, seq_newer};
use crate::wire::{
    AckRepr, AckStatus, Body, ChunkRepr, CommonRepr, Datagram, HeaderRepr, Kind, MissingRange,
    MissingRanges, Packet, WireError, FLAG_SEALED, MAX_ACK_RANGES,
};

/// Completed frame numbers remembered, to re-acknowledge a frame whose ack was lost.
const COMPLETED_KEPT: usize = 64;
/// Acks waiting to go out; beyond this the oldest request is forgotten (the sender probes).
const PENDING_ACKS_MAX: usize = 64;
/// Repair time assumed before one is measured.
const DEFAULT_REPAIR_TIME: Duration = Duration::from_millis(100);
/// Shortest wait for an older frame under repair.
const MIN_HOLD: Duration = Duration::from_millis(20);
/// A packet number this far beyond the largest seen is not believed on one datagram's
/// word: it is refused, and the next datagram not far from it confirms the jump. Only a
/// run of this many datagrams lost at once makes a genuine jump this large.
pub const MAX_PN_JUMP: u64 = 1024;
/// Likewise for a new frame this many frames beyond the newest one seen.
pub const MAX_SEQ_JUMP: u32 = 64;
/// Datagrams of one new stream id, from the address of the stream being served, with
/// increasing packet numbers, that make the viewer believe the client restarted (without a
/// key; a keyed restart is proven by its handshake). One spoofed datagram cannot.
pub const RESTART_CONFIRMATIONS: u32 = 3;
/// "Everything is missing": the answer for a frame of which nothing arrived.
const ALL_MISSING: [MissingRange; 1] = [MissingRange {
    start: 0,
    len: u32::MAX,
}];

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Frames declaring more bytes are refused before any memory is reserved.
    pub max_frame_bytes: u32,
    /// Frames assembled at once; older incomplete ones are given up.
    pub max_in_flight: u32,
    /// Silence after which another stream may take over.
    pub switch_after: Duration,
    /// Silence after which the stream is reported stalled.
    pub stall_after: Duration,
    /// An incomplete frame that made no progress for this long is dropped.
    pub frame_timeout: Duration,
    /// Keyed mode: only sealed datagrams of a session set up with this key are taken.
    pub psk: Option<Psk>,
    /// Keyed mode: the AEADs accepted (what this machine runs fast, by default).
    pub aeads: AeadSet,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_frame_bytes: 8 << 20,
            max_in_flight: 8,
            switch_after: Duration::from_millis(500),
            stall_after: Duration::from_secs(1),
            frame_timeout: Duration::from_secs(2),
            psk: None,
            aeads: AeadSet::fast_here(),
        }
    }
}

/// A verified frame, its bytes exactly as sent.
#[derive(Debug, Clone)]
pub struct CompleteFrame {
    pub stream_id: u32,
    pub seq: u32,
    pub data: Vec<u8>,
    /// `None` when every chunk arrived but the header never did.
    pub header: Option<HeaderRepr>,
    pub remote: SocketAddr,
    pub first_seen: Instant,
    pub completed_at: Instant,
}

#[derive(Debug, Clone)]
pub enum ReceiverEvent {
    Frame(CompleteFrame),
    /// A stream was adopted: the first one, or a new one after silence or a restart.
    StreamStarted {
        stream_id: u32,
        remote: SocketAddr,
        replaced: Option<u32>,
    },
    /// The sender named its stream (`cam-client --name`), or renamed it.
    StreamNamed {
        stream_id: u32,
        remote: SocketAddr,
        name: String,
    },
    /// The stream went silent.
    Stalled {
        stream_id: u32,
        remote: SocketAddr,
    },
}

/// Why a datagram was refused; every refusal is counted in `datagrams_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    #[error("from another stream or address than the one being shown")]
    Foreign,
    #[error("frame larger than the limit")]
    TooLarge,
    #[error("disagrees with the frame's earlier datagrams")]
    Mismatch,
    #[error("not a datagram a client sends")]
    Unexpected,
    #[error("failed authentication: not sealed with a session of this viewer's key")]
    Unauthenticated,
    #[error("not sealed, but this viewer has a key")]
    NotSealed,
    #[error("sealed or handshake datagram, but this viewer has no key")]
    NoKey,
    #[error("replayed: packet number already seen or too old")]
    Replayed,
    #[error("a HELLO with this viewer's key, offering no AEAD this viewer accepts")]
    NoCommonAead,
    #[error("a packet number or frame far beyond the stream's, not yet confirmed")]
    Implausible,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub datagrams_received: u64,
    pub bytes_received: u64,
    pub datagrams_invalid: u64,
    pub datagrams_foreign: u64,
    pub datagrams_duplicate: u64,
    pub frames_completed: u64,
    /// Incomplete frames given up (superseded, too old, timed out, evicted).
    pub frames_dropped: u64,
    pub crc_failures: u64,
    pub acks_sent: u64,
    pub streams_started: u64,
    /// Refused as not authenticated under this viewer's key (or its lack of one): a bad
    /// tag or handshake MAC, no session, clear data to a keyed viewer, keyed datagrams to
    /// an unkeyed one. Also in `datagrams_invalid`.
    pub datagrams_unauthenticated: u64,
    /// Authentic, but a packet number seen before or too old. Also in `datagrams_invalid`.
    pub datagrams_replayed: u64,
    /// Keyed mode: handshakes answered with a new session.
    pub handshakes: u64,
    /// Keyed mode: HELLOs with this viewer's key offering no AEAD it accepts (`--aead` set
    /// differently on the two ends). Also in `datagrams_invalid`.
    pub hellos_without_common_aead: u64,
    /// Refused for a failed CRC-32C (keyed: a failed tag) on the served stream: corruption
    /// on the path. Also in `datagrams_invalid`.
    pub datagrams_corrupt: u64,
    /// Refused for a packet number or frame sequence far beyond the stream's, before a
    /// second datagram confirmed it. Also in `datagrams_invalid`.
    pub datagrams_implausible: u64,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    remote: SocketAddr,
    last_heard: Instant,
    /// Highest packet number accepted: the reference for `MAX_PN_JUMP`.
    largest_pn: u64,
    /// Packet number of the datagram accepted last, and when: what acks report. Not the
    /// largest, so that a forged number (were it confirmed) is reported only until the next
    /// genuine datagram, and cannot keep the sender from RTT samples.
    latest_pn: u64,
    latest_pn_at: Instant,
    slots: Vec<FrameAssembly>,
    completed: VecDeque<u32>,
    released: Option<u32>,
    newest_seen: Option<u32>,
    pending_acks: VecDeque<u32>,
    stalled: bool,
    /// Smoothed time from reporting holes to the first repair arriving: about one round trip.
    repair_time: Option<Duration>,
    /// A packet number beyond `MAX_PN_JUMP`, refused, which a next one may confirm.
    pn_candidate: Option<u64>,
    /// Likewise a frame beyond `MAX_SEQ_JUMP`.
    seq_candidate: Option<u32>,
    /// Datagrams of this stream refused as corrupt (wrapping), told to the sender in acks.
    corrupt: u16,
    /// What the sender calls the stream (`cam-client --name`), once a Name datagram came.
    name: Option<String>,
}

/// A new stream id seen from the served stream's address, not yet believed.
#[derive(Debug, Clone, Copy)]
struct Challenger {
    id: u32,
    remote: SocketAddr,
    last_pn: u64,
    seen: u32,
}

enum FrameState {
    Done,
    Stale,
    Assembling(usize),
    Unknown,
}

impl Stream {
    fn new(id: u32, remote: SocketAddr, now: Instant, first_pn: u64) -> Stream {
        Stream {
            id,
            remote,
            last_heard: now,
            largest_pn: first_pn,
            latest_pn: first_pn,
            latest_pn_at: now,
            slots: Vec::new(),
            completed: VecDeque::new(),
            released: None,
            newest_seen: None,
            pending_acks: VecDeque::new(),
            stalled: false,
            repair_time: None,
            pn_candidate: None,
            seq_candidate: None,
            corrupt: 0,
            name: None,
        }
    }

    /// Takes `pn` as the largest packet number unless it jumps too far ahead unconfirmed.
    /// An authenticated one (keyed mode) is believed at once.
    fn note_pn(&mut self, pn: u64, now: Instant, authenticated: bool) -> Result<(), Refused> {
        if pn <= self.largest_pn {
            self.latest_pn = pn;
            self.latest_pn_at = now;
            return Ok(());
        }
        if pn - self.largest_pn > MAX_PN_JUMP && !authenticated {
            let confirmed = self
                .pn_candidate
                .is_some_and(|c| pn > c && pn - c <= MAX_PN_JUMP);
            if !confirmed {
                self.pn_candidate = Some(pn);
                return Err(Refused::Implausible);
            }
        }
        self.pn_candidate = None;
        self.largest_pn = pn;
        self.latest_pn = pn;
        self.latest_pn_at = now;
        Ok(())
    }

    /// Refuses a new frame too far beyond the newest seen, until a second datagram near it
    /// confirms the jump (a frame has several, so a genuine one soon does).
    fn check_new_seq(&mut self, seq: u32) -> Result<(), Refused> {
        let Some(newest) = self.newest_seen.or(self.released) else {
            return Ok(());
        };
        if seq_distance(seq, newest) <= MAX_SEQ_JUMP {
            return Ok(());
        }
        let confirmed = self
            .seq_candidate
            .is_some_and(|c| !seq_newer(c, seq) && seq_distance(seq, c) <= MAX_SEQ_JUMP);
        if confirmed {
            self.seq_candidate = None;
            Ok(())
        } else {
            self.seq_candidate = Some(seq);
            Err(Refused::Implausible)
        }
    }

    /// How long a complete frame waits for an older one still being repaired before that
    /// one is given up: a couple of repair round trips.
    fn hold_limit(&self, frame_timeout: Duration) -> Duration {
        let repair = self.repair_time.unwrap_or(DEFAULT_REPAIR_TIME);
        (repair * 2 + Duration::from_millis(10)).clamp(MIN_HOLD, frame_timeout)
    }

    fn oldest_slot(&self) -> Option<usize> {
        (0..self.slots.len()).min_by(|&a, &b| {
            if seq_newer(self.slots[a].seq(), self.slots[b].seq()) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        })
    }

    /// When the oldest complete frame held behind an incomplete one will be let go.
    fn hold_expiry(&self, frame_timeout: Duration) -> Option<Instant> {
        let hold = self.hold_limit(frame_timeout);
        self.slots
            .iter()
            .filter_map(|s| s.verified_at)
            .min()
            .map(|t| t + hold)
    }

    fn state(&self, seq: u32, max_in_flight: u32) -> FrameState {
        if self.completed.contains(&seq) {
            return FrameState::Done;
        }
        if let Some(i) = self.slots.iter().position(|s| s.seq() == seq) {
            return FrameState::Assembling(i);
        }
        if self.released.is_some_and(|r| !seq_newer(seq, r)) {
            return FrameState::Stale;
        }
        if self
            .newest_seen
            .is_some_and(|n| seq_distance(n, seq) >= max_in_flight)
        {
            return FrameState::Stale;
        }
        FrameState::Unknown
    }

    fn queue_ack(&mut self, seq: u32) {
        if !self.pending_acks.contains(&seq) {
            if self.pending_acks.len() >= PENDING_ACKS_MAX {
                self.pending_acks.pop_front();
            }
            self.pending_acks.push_back(seq);
        }
    }
}

#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    stream: Option<Stream>,
    challenger: Option<Challenger>,
    credit: u16,
    next_pn: u64,
    ranges: Vec<MissingRange>,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
    /// Keyed mode's handshakes and sessions.
    keys: Option<ViewerKeys>,
    /// Where a sealed datagram is opened.
    scratch: Vec<u8>,
}

impl From<SecureError> for Refused {
    fn from(e: SecureError) -> Refused {
        match e {
            SecureError::Wire(w) => Refused::Malformed(w),
            SecureError::Replayed => Refused::Replayed,
            // Handled before: a duplicate is not refused as invalid.
            SecureError::Duplicate => Refused::Replayed,
            SecureError::NotSealed => Refused::NotSealed,
            SecureError::Unauthenticated
            | SecureError::CounterExhausted
            | SecureError::Random
            | SecureError::SessionExhausted => Refused::Unauthenticated,
            SecureError::NoCommonAead => Refused::NoCommonAead,
        }
    }
}

/// The answer to a stream a viewer will not serve because it serves `--max-streams`
/// already: an ack saying `Full`, so the client names the limit instead of "no viewer".
/// Unsealed: a keyed client, which takes only sealed answers, learns nothing from it.
pub fn emit_full_ack(stream_id: u32, frame_seq: u32, buf: &mut Vec<u8>) {
    Datagram {
        common: CommonRepr {
            kind: Kind::Ack,
            stream_id,
            packet_number: 0,
            frame_seq,
        },
        body: Body::Ack(AckRepr {
            status: AckStatus::Full,
            header_missing: false,
            window: 0,
            largest_pn: 0,
            ack_delay_us: 0,
            corrupt: 0,
            missing: MissingRanges::List(&[]),
        }),
    }
    .emit(buf);
}

impl Receiver {
    pub fn new(config: ReceiverConfig) -> Receiver {
        let credit = u16::try_from(config.max_in_flight).unwrap_or(u16::MAX);
        let keys = config
            .psk
            .clone()
            .map(|psk| ViewerKeys::with_aeads(psk, config.aeads));
        Receiver {
            config,
            stream: None,
            challenger: None,
            credit,
            next_pn: 0,
            ranges: Vec::with_capacity(MAX_ACK_RANGES),
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
            keys,
            scratch: Vec::new(),
        }
    }

    /// Keyed mode: sealed datagrams of authenticated sessions only.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// Keyed mode: the AEAD of the served stream's session.
    pub fn aead(&self) -> Option<Aead> {
        self.keys.as_ref().and_then(ViewerKeys::aead)
    }

    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The stream being served, if any.
    pub fn current_stream(&self) -> Option<(u32, SocketAddr)> {
        self.stream.as_ref().map(|s| (s.id, s.remote))
    }

    /// Bytes held in frames being assembled: the memory bound made visible.
    pub fn buffered_bytes(&self) -> usize {
        self.stream
            .as_ref()
            .map_or(0, |s| s.slots.iter().map(|a| a.total_len() as usize).sum())
    }

    /// How many more frames the application can take right now. Acks carry it, so the
    /// sender never runs ahead of decoding; when it grows from zero, a window update goes out.
    pub fn set_credit(&mut self, credit: u16) {
        let reopened = self.credit == 0 && credit > 0;
        self.credit = credit;
        if reopened {
            if let Some(stream) = self.stream.as_mut() {
                if let Some(&seq) = stream.completed.back() {
                    stream.queue_ack(seq);
                }
            }
        }
    }

    /// Feeds one datagram. A refused one is counted, logged at debug, and changes nothing.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Refused> {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let result = self.handle_inner(now, remote, bytes);
        if let Err(why) = result {
            self.stats.datagrams_invalid += 1;
            if matches!(
                why,
                Refused::Malformed(WireError::BadChecksum) | Refused::Unauthenticated
            ) {
                self.count_corrupt(remote, bytes);
            }
            match why {
                Refused::Foreign => self.stats.datagrams_foreign += 1,
                Refused::Unauthenticated | Refused::NotSealed | Refused::NoKey => {
                    self.stats.datagrams_unauthenticated += 1
                }
                Refused::Replayed => self.stats.datagrams_replayed += 1,
                Refused::NoCommonAead => self.stats.hellos_without_common_aead += 1,
                Refused::Implausible => self.stats.datagrams_implausible += 1,
                _ => {}
            }
            log::debug!("refused {} bytes from {remote}: {why}", bytes.len());
        }
        result
    }

    /// A datagram that failed its check, from the served stream's address and naming its
    /// id: corruption on its path, which the sender repairs but must not take for
    /// congestion. (The id is unchecked; an off-path sender of junk must guess it.)
    fn count_corrupt(&mut self, remote: SocketAddr, bytes: &[u8]) {
        let named = Packet::new_checked(bytes).ok().map(|p| p.stream_id());
        if let Some(stream) = self
            .stream
            .as_mut()
            .filter(|s| s.remote == remote && Some(s.id) == named)
        {
            stream.corrupt = stream.corrupt.wrapping_add(1);
            self.stats.datagrams_corrupt += 1;
        }
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Refused> {
        let Some(keys) = self.keys.as_mut() else {
            return match self.handle_clear(now, remote, bytes) {
                Err(Refused::Malformed(
                    WireError::Handshake | WireError::BadFlags(FLAG_SEALED),
                )) => Err(Refused::NoKey),
                other => other,
            };
        };
        // Authenticated and opened before anything looks at the body or touches a stream.
        let mut clear = std::mem::take(&mut self.scratch);
        let opened = keys.open(remote, bytes, &mut clear, &mut self.next_pn);
        self.stats.handshakes = keys.handshakes;
        let result = match opened {
            Ok(ViewerOpened::Hello) => Ok(()),
            // The network delivered it twice: nothing to do, and nobody to warn.
            Err(SecureError::Duplicate) => {
                self.stats.datagrams_duplicate += 1;
                Ok(())
            }
            Ok(ViewerOpened::Data { pending }) => match Datagram::parse_opened(&clear) {
                // The usual rules decide whether this stream is served; only then does its
                // new session become the stream's.
                Ok(datagram) => self
                    .select_stream(now, remote, &datagram.common, true)
                    .and_then(|()| {
                        if let (Some(i), Some(keys)) = (pending, self.keys.as_mut()) {
                            keys.promote(i);
                        }
                        self.handle_parsed(now, remote, datagram)
                    }),
                Err(e) => Err(Refused::Malformed(e)),
            },
            Err(e) => Err(Refused::from(e)),
        };
        self.scratch = clear;
        result
    }

    fn handle_clear(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Refused> {
        let datagram = Datagram::parse(bytes)?;
        self.handle_parsed(now, remote, datagram)
    }

    /// A clear datagram (or an opened one), parsed once by the caller.
    fn handle_parsed(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        datagram: Datagram<'_>,
    ) -> Result<(), Refused> {
        let common = datagram.common;
        let declared_len = match &datagram.body {
            Body::Header(h) => Some(h.total_len),
            Body::Chunk(c) => Some(c.total_len),
            Body::Probe | Body::Name(_) => None,
            Body::Ack(_) => return Err(Refused::Unexpected),
        };
        if declared_len.is_some_and(|len| len > self.config.max_frame_bytes) {
            return Err(Refused::TooLarge);
        }
        let authenticated = self.keys.is_some();
        self.select_stream(now, remote, &common, authenticated)?;
        let max_in_flight = self.config.max_in_flight;
        let Some(stream) = self.stream.as_mut() else {
            return Err(Refused::Foreign);
        };
        stream.note_pn(common.packet_number, now, authenticated)?;
        let seq = common.frame_seq;
        if declared_len.is_some() && matches!(stream.state(seq, max_in_flight), FrameState::Unknown)
        {
            stream.check_new_seq(seq)?;
        }
        stream.last_heard = now;
        stream.stalled = false;
        log::trace!("{:?} seq {seq} pn {}", common.kind, common.packet_number);
        match datagram.body {
            Body::Probe => {
                stream.queue_ack(seq);
                Ok(())
            }
            Body::Header(header) => match stream.state(seq, max_in_flight) {
                FrameState::Done | FrameState::Stale => {
                    self.stats.datagrams_duplicate += 1;
                    stream.queue_ack(seq);
                    Ok(())
                }
                FrameState::Assembling(i) => match stream.slots[i].accept_header(&header, now) {
                    Accepted::Mismatch => Err(Refused::Mismatch),
                    Accepted::Duplicate => {
                        self.stats.datagrams_duplicate += 1;
                        Ok(())
                    }
                    Accepted::New | Accepted::Reshaped => {
                        self.after_progress(now, i);
                        Ok(())
                    }
                },
                FrameState::Unknown => {
                    let assembly = FrameAssembly::from_header(seq, &header, now);
                    let i = self.insert_slot(assembly);
                    self.after_progress(now, i);
                    Ok(())
                }
            },
            Body::Chunk(chunk) => self.handle_chunk(now, seq, &chunk),
            Body::Name(n) => {
                if stream.name.as_deref() != Some(n.name) {
                    stream.name = Some(n.name.to_owned());
                    self.events.push_back(ReceiverEvent::StreamNamed {
                        stream_id: stream.id,
                        remote: stream.remote,
                        name: n.name.to_owned(),
                    });
                }
                Ok(())
            }
            Body::Ack(_) => Err(Refused::Unexpected),
        }
    }

    fn handle_chunk(
        &mut self,
        now: Instant,
        seq: u32,
        chunk: &ChunkRepr<'_>,
    ) -> Result<(), Refused> {
        let max_in_flight = self.config.max_in_flight;
        let Some(stream) = self.stream.as_mut() else {
            return Err(Refused::Foreign);
        };
        let i = match stream.state(seq, max_in_flight) {
            FrameState::Done | FrameState::Stale => {
                self.stats.datagrams_duplicate += 1;
                stream.queue_ack(seq);
                return Ok(());
            }
            FrameState::Assembling(i) => i,
            FrameState::Unknown => self.insert_slot(FrameAssembly::from_chunk(seq, chunk, now)),
        };
        let Some(stream) = self.stream.as_mut() else {
            return Err(Refused::Foreign);
        };
        let slot = &mut stream.slots[i];
        match slot.accept_chunk(chunk, now) {
            Accepted::Mismatch => Err(Refused::Mismatch),
            Accepted::Duplicate => {
                self.stats.datagrams_duplicate += 1;
                Ok(())
            }
            Accepted::New | Accepted::Reshaped => {
                if let Some(asked) = slot.nack_sent_at.take() {
                    let sample = now.saturating_duration_since(asked);
                    stream.repair_time = Some(match stream.repair_time {
                        Some(r) => (r * 7 + sample) / 8,
                        None => sample,
                    });
                }
                // The tail, or the last chunk asked for again, arrived but holes remain:
                // report them now rather than wait for a probe.
                let tail = chunk.index + 1 == slot.chunk_count()
                    || slot.repair_tail.is_some_and(|t| chunk.index >= t);
                if tail && !slot.is_complete() {
                    slot.repair_tail = None;
                    stream.queue_ack(seq);
                }
                self.after_progress(now, i);
                Ok(())
            }
        }
    }

    /// Serves the stream `common` belongs to, or refuses it as foreign. The first stream is
    /// taken at once, another after the served one fell silent. From the served stream's
    /// address a new id means the client restarted, but only an authenticated datagram (keyed
    /// mode) or `RESTART_CONFIRMATIONS` consistent ones say so: one spoofed datagram must
    /// not wipe the stream's state.
    fn select_stream(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        common: &CommonRepr,
        authenticated: bool,
    ) -> Result<(), Refused> {
        let id = common.stream_id;
        let served = self.stream.as_ref().map(|s| (s.id, s.remote, s.last_heard));
        let replaced = match served {
            Some((old, from, _)) if old == id && from == remote => return Ok(()),
            Some((old, _, heard))
                if now.saturating_duration_since(heard) >= self.config.switch_after =>
            {
                Some(old)
            }
            Some((old, from, _)) if from == remote => {
                if !authenticated && !self.confirm_restart(remote, common) {
                    return Err(Refused::Foreign);
                }
                Some(old)
            }
            Some(_) => return Err(Refused::Foreign),
            None => None,
        };
        self.challenger = None;
        if let Some(old) = self.stream.take() {
            self.stats.frames_dropped += old.slots.len() as u64;
        }
        self.stream = Some(Stream::new(id, remote, now, common.packet_number));
        self.stats.streams_started += 1;
        log::debug!("serving stream {id:08x} from {remote}");
        self.events.push_back(ReceiverEvent::StreamStarted {
            stream_id: id,
            remote,
            replaced,
        });
        Ok(())
    }

    /// Counts a datagram of a would-be new stream from the served stream's address; true
    /// once enough consistent ones (one id, packet numbers rising by little) came.
    fn confirm_restart(&mut self, remote: SocketAddr, common: &CommonRepr) -> bool {
        let pn = common.packet_number;
        match self.challenger.as_mut() {
            Some(c)
                if c.id == common.stream_id
                    && c.remote == remote
                    && pn > c.last_pn
                    && pn - c.last_pn <= MAX_PN_JUMP =>
            {
                c.last_pn = pn;
                c.seen += 1;
            }
            _ => {
                self.challenger = Some(Challenger {
                    id: common.stream_id,
                    remote,
                    last_pn: pn,
                    seen: 1,
                });
            }
        }
        self.challenger
            .is_some_and(|c| c.seen >= RESTART_CONFIRMATIONS)
    }

    /// Adds a slot for a frame newer than anything released, making room by giving up the
    /// frames that fell out of the window, then the oldest.
    fn insert_slot(&mut self, assembly: FrameAssembly) -> usize {
        let max_in_flight = self.config.max_in_flight;
        let Some(stream) = self.stream.as_mut() else {
            return 0;
        };
        let seq = assembly.seq();
        if stream.newest_seen.is_none_or(|n| seq_newer(seq, n)) {
            stream.newest_seen = Some(seq);
        }
        let newest = stream.newest_seen.unwrap_or(seq);
        let before = stream.slots.len();
        stream
            .slots
            .retain(|s| seq_distance(newest, s.seq()) < max_in_flight);
        let mut dropped = before - stream.slots.len();
        while stream.slots.len() >= max_in_flight.max(1) as usize {
            let oldest = stream.oldest_slot().unwrap_or(0);
            stream.slots.swap_remove(oldest);
            dropped += 1;
        }
        self.stats.frames_dropped += dropped as u64;
        stream.slots.push(assembly);
        stream.slots.len() - 1
    }

    /// After new bytes: verify the frame if it is complete, then release what is in order.
    fn after_progress(&mut self, now: Instant, i: usize) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let slot = &mut stream.slots[i];
        if !slot.is_complete() || slot.verified_at.is_some() {
            return;
        }
        let seq = slot.seq();
        if !slot.crc_matches() {
            self.stats.crc_failures += 1;
            log::debug!("frame {seq}: CRC mismatch, asking for it again");
            slot.reset();
            stream.queue_ack(seq);
            return;
        }
        slot.verified_at = Some(now);
        if stream.completed.len() >= COMPLETED_KEPT {
            stream.completed.pop_front();
        }
        stream.completed.push_back(seq);
        // Acked now, so the sender's window moves on even while the frame waits its turn.
        stream.queue_ack(seq);
        self.stats.frames_completed += 1;
        self.release_ready(now);
    }

    /// Releases complete frames oldest first. A complete frame behind an incomplete older
    /// one waits (that one may be repaired within a round trip) up to the hold limit; then
    /// the older ones are given up, so one lost chunk never stalls the picture for long and
    /// an older frame is never shown after a newer one.
    fn release_ready(&mut self, now: Instant) {
        let frame_timeout = self.config.frame_timeout;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while let Some(oldest) = stream.oldest_slot() {
            if stream.slots[oldest].verified_at.is_some() {
                let assembly = stream.slots.swap_remove(oldest);
                let seq = assembly.seq();
                let first_seen = assembly.started;
                let completed_at = assembly.verified_at.unwrap_or(now);
                let (data, header) = assembly.into_data();
                if stream.released.is_none_or(|r| seq_newer(seq, r)) {
                    stream.released = Some(seq);
                }
                self.events.push_back(ReceiverEvent::Frame(CompleteFrame {
                    stream_id: stream.id,
                    seq,
                    data,
                    header,
                    remote: stream.remote,
                    first_seen,
                    completed_at,
                }));
                continue;
            }
            let waited_long_enough = stream.hold_expiry(frame_timeout).is_some_and(|t| now >= t);
            if !waited_long_enough {
                break;
            }
            // Give up every incomplete frame older than the oldest complete one.
            let Some(first_done) = stream
                .slots
                .iter()
                .filter(|s| s.verified_at.is_some())
                .map(|s| s.seq())
                .min_by(|&a, &b| {
                    if seq_newer(a, b) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    }
                })
            else {
                break;
            };
            let before = stream.slots.len();
            stream
                .slots
                .retain(|s| s.verified_at.is_some() || seq_newer(s.seq(), first_done));
            self.stats.frames_dropped += (before - stream.slots.len()) as u64;
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if !stream.stalled
            && now.saturating_duration_since(stream.last_heard) >= self.config.stall_after
        {
            stream.stalled = true;
            self.events.push_back(ReceiverEvent::Stalled {
                stream_id: stream.id,
                remote: stream.remote,
            });
        }
        let timeout = self.config.frame_timeout;
        let before = stream.slots.len();
        stream.slots.retain(|s| {
            s.verified_at.is_some() || now.saturating_duration_since(s.last_progress) < timeout
        });
        if stream.slots.len() < before {
            // A frame far ahead that never got anywhere (forged, and confirmed by a second
            // forgery) must not keep every real frame "stale": the newest frame seen is
            // what is still held or was released.
            stream.newest_seen = stream
                .slots
                .iter()
                .map(FrameAssembly::seq)
                .chain(stream.released)
                .reduce(|a, b| if seq_newer(b, a) { b } else { a });
        }
        self.stats.frames_dropped += (before - stream.slots.len()) as u64;
        self.release_ready(now);
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stream = self.stream.as_ref()?;
        let stall = (!stream.stalled).then(|| stream.last_heard + self.config.stall_after);
        let slots = stream
            .slots
            .iter()
            .filter(|s| s.verified_at.is_none())
            .map(|s| s.last_progress + self.config.frame_timeout);
        let hold = stream.hold_expiry(self.config.frame_timeout);
        slots.chain(stall).chain(hold).min()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// Writes the next datagram (an ack; in keyed mode also a handshake reply) into `buf`;
    /// returns where to send it. In keyed mode acks are sealed.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let Some(keys) = self.keys.as_mut() else {
            return self.poll_transmit_clear(now, buf);
        };
        if let Some((to, reply)) = keys.poll_reply() {
            buf.clear();
            buf.extend_from_slice(&reply);
            return Some(to);
        }
        let to = self.poll_transmit_clear(now, buf)?;
        match self.keys.as_mut().map(|k| k.seal(buf)) {
            Some(Ok(())) => Some(to),
            // No session for the stream (cannot happen: a stream is served only after a
            // datagram authenticated): the ack is dropped, the sender probes again.
            _ => {
                buf.clear();
                None
            }
        }
    }

    fn poll_transmit_clear(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let max_in_flight = self.config.max_in_flight;
        let stream = self.stream.as_mut()?;
        let seq = stream.pending_acks.pop_front()?;
        let mut header_missing = false;
        let (status, missing) = match stream.state(seq, max_in_flight) {
            FrameState::Done => (AckStatus::Complete, MissingRanges::List(&[])),
            FrameState::Stale => (AckStatus::Gone, MissingRanges::List(&[])),
            FrameState::Assembling(i) => {
                let slot = &mut stream.slots[i];
                slot.nack_sent_at.get_or_insert(now);
                header_missing = slot.header().is_none();
                slot.missing_ranges(&mut self.ranges, MAX_ACK_RANGES);
                slot.repair_tail = self.ranges.last().map(|r| (r.end() - 1) as u32);
                (AckStatus::Incomplete, MissingRanges::List(&self.ranges))
            }
            FrameState::Unknown => {
                header_missing = true;
                (AckStatus::Incomplete, MissingRanges::List(&ALL_MISSING))
            }
        };
        let delay = now.saturating_duration_since(stream.latest_pn_at);
        Datagram {
            common: CommonRepr {
                kind: Kind::Ack,
                stream_id: stream.id,
                packet_number: self.next_pn,
                frame_seq: seq,
            },
            body: Body::Ack(AckRepr {
                status,
                header_missing,
                window: self.credit,
                largest_pn: stream.latest_pn,
                ack_delay_us: u32::try_from(delay.as_micros()).unwrap_or(u32::MAX),
                corrupt: stream.corrupt,
                missing,
            }),
        }
        .emit(buf);
        self.next_pn += 1;
        self.stats.acks_sent += 1;
        Some(stream.remote)
    }
}
