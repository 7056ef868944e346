//! `RtpReceiver`: RTP/JPEG in, whole JPEG frames out, one stream per SSRC. Toward a
//! sender that speaks RTCP on the media port it answers with receiver reports and
//! generic NACKs; toward one that sends no RTCP (GStreamer `udpsink`, `ffmpeg -f rtp`) it
//! stays silent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::jpeg::{q_tables, rebuild_jpeg};
use super::rtcp::{ntp_middle, unix_us_from_ntp, NackRepr, ReportBlock, RtcpRepr};
use super::wire::{is_rtcp, JpegPayloadRepr, RtpPacket, RtpRepr, JPEG_CLOCK_HZ, PT_JPEG};
use crate::machine::{CompleteFrame, FrameReceiver, ReceiveEvent, ReceiverStats, Transmit};
use crate::wire::{Codec, HeaderRepr};

/// How `RtpReceiver` behaves.
#[derive(Debug, Clone)]
pub struct RtpReceiverConfig {
    /// Our SSRC in RTCP. `None`: random.
    pub ssrc: Option<u32>,
    /// Payload types taken as RTP/JPEG: 26 and, when set, one dynamic type from an SDP.
    pub dynamic_payload_type: Option<u8>,
    /// No frame's scan grows beyond this; a fragment reaching past it is refused.
    pub max_frame_bytes: usize,
    /// SSRCs tracked at once; the least recently heard makes room for a new one.
    pub max_streams: usize,
    /// Frames assembled at once per stream; the oldest is dropped for a new one.
    pub max_frames_assembling: usize,
    /// A hole may be reordering: wait this long before asking for it (or, toward a
    /// sender without RTCP, before giving up its frame once a later frame is whole).
    pub reorder_wait: Duration,
    /// Between two NACKs for the same packet.
    pub nack_interval: Duration,
    /// NACKs per missing packet before it is given up.
    pub max_nacks: u32,
    /// An incomplete frame is dropped this long after its first packet.
    pub frame_deadline: Duration,
    /// Receiver reports this often, to senders heard speaking RTCP.
    pub report_interval: Duration,
    /// A stream silent this long is reported stalled.
    pub stall_after: Duration,
    /// Send NACKs to senders heard speaking RTCP.
    pub nack: bool,
    pub cname: String,
}

impl Default for RtpReceiverConfig {
    fn default() -> Self {
        RtpReceiverConfig {
            ssrc: None,
            dynamic_payload_type: None,
            max_frame_bytes: 8 << 20,
            max_streams: 8,
            max_frames_assembling: 8,
            reorder_wait: Duration::from_millis(10),
            nack_interval: Duration::from_millis(40),
            max_nacks: 5,
            frame_deadline: Duration::from_millis(500),
            report_interval: Duration::from_secs(1),
            stall_after: Duration::from_secs(1),
            nack: true,
            cname: "camstream-viewer".into(),
        }
    }
}

/// A jump in sequence numbers larger than this is a restart, not loss (RFC 3550 A.1).
const MAX_DROPOUT: i64 = 3000;
/// Quantization tables remembered per stream for Q 128–254.
const MAX_CACHED_TABLES: usize = 16;
/// Missing packets remembered per stream for NACKs.
const MAX_MISSING: usize = 2048;
/// Packets named per NACK datagram at most (each item covers 17).
const MAX_NACK_ITEMS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameShape {
    jpeg_type: u8,
    q: u8,
    width: u16,
    height: u16,
}

#[derive(Debug)]
struct Assembly {
    ts: u32,
    first_seen: Instant,
    shape: FrameShape,
    restart_interval: u16,
    tables: Option<[[u16; 64]; 2]>,
    fragments: BTreeMap<u32, Vec<u8>>,
    /// The extended sequence number each fragment came with: the same offset under another
    /// number is another frame (or a duplicate, under the same).
    fragment_exts: BTreeMap<u32, u64>,
    bytes: usize,
    /// Where the scan ends: offset plus length of the marked packet.
    end: Option<u32>,
    largest_fragment: usize,
    complete_at: Option<Instant>,
    /// Extended sequence number of the marked packet: a packet after it with the same
    /// timestamp belongs to the next frame.
    marker_ext: Option<u64>,
}

impl Assembly {
    fn is_complete(&self) -> bool {
        let Some(end) = self.end else {
            return false;
        };
        if self.tables.is_none() || self.bytes != end as usize {
            return false;
        }
        let mut at = 0u32;
        for (&off, data) in &self.fragments {
            if off != at {
                return false;
            }
            at += data.len() as u32;
        }
        at == end
    }
}

#[derive(Debug)]
struct Missing {
    since: Instant,
    tries: u32,
    last_nack: Option<Instant>,
}

#[derive(Debug)]
struct Stream {
    ssrc: u32,
    remote: SocketAddr,
    /// When the first packet came: the origin of arrival times for jitter.
    origin: Instant,
    last_heard: Instant,
    stalled: bool,
    /// Extended (cycle-counting) highest sequence number, and the first.
    max_ext: u64,
    base_ext: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: f64,
    last_transit: Option<i64>,
    /// Where this sender's RTCP comes from: it speaks RTCP, answer there.
    rtcp_peer: Option<SocketAddr>,
    /// Last SR: LSR value, when it came, NTP and RTP time.
    last_sr: Option<(u32, Instant, u64, u32)>,
    next_report: Option<Instant>,
    frames: Vec<Assembly>,
    released_ts: Option<u32>,
    /// The marked packet's extended sequence number of the frame released last, if seen.
    released_marker_ext: Option<u64>,
    frame_counter: u32,
    tables: HashMap<u8, [[u16; 64]; 2]>,
    missing: BTreeMap<u64, Missing>,
}

impl Stream {
    fn new(ssrc: u32, remote: SocketAddr, seq: u16, now: Instant) -> Stream {
        let ext = (1u64 << 16) + u64::from(seq);
        Stream {
            ssrc,
            remote,
            origin: now,
            last_heard: now,
            stalled: false,
            max_ext: ext - 1,
            base_ext: ext,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            rtcp_peer: None,
            last_sr: None,
            next_report: None,
            frames: Vec::new(),
            released_ts: None,
            released_marker_ext: None,
            frame_counter: 0,
            tables: HashMap::new(),
            missing: BTreeMap::new(),
        }
    }

    fn extend(&self, seq: u16) -> u64 {
        let delta = i64::from(seq.wrapping_sub(self.max_ext as u16) as i16);
        (self.max_ext as i64 + delta).max(0) as u64
    }

    fn nacking(&self, config: &RtpReceiverConfig) -> bool {
        config.nack && self.rtcp_peer.is_some()
    }

    /// Capture time in µs since the Unix epoch, from the last SR's clock mapping.
    fn capture_us(&self, ts: u32) -> Option<u64> {
        let (_, _, ntp, rtp) = self.last_sr?;
        let ticks = i64::from(ts.wrapping_sub(rtp) as i32);
        let us = unix_us_from_ntp(ntp) as i64 + ticks * 1_000_000 / i64::from(JPEG_CLOCK_HZ);
        (us > 0).then_some(us as u64)
    }

    fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.max_ext + 1 - self.base_ext;
        let lost = expected as i64 - self.received as i64;
        // A sequence restart lowers `expected` below the last report's: an empty interval,
        // not an underflow.
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at, _, _)) => {
                let held = now.saturating_duration_since(at);
                (lsr, (held.as_micros() as u64 * 65_536 / 1_000_000) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-(1 << 23), (1 << 23) - 1) as i32,
            highest_seq: self.max_ext as u32,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        }
    }

    fn sort_frames(&mut self) {
        self.frames
            .sort_by(|a, b| (a.ts.wrapping_sub(b.ts) as i32).cmp(&0));
    }

    /// Whether a packet with timestamp `ts` and extended sequence number `ext` belongs to a
    /// frame already released or given up. A sender whose frames carry no time (GStreamer's
    /// `multifilesrc ! rtpjpegpay`) gives every frame the same timestamp: a packet after the
    /// released frame's marked one is a new frame, as the marker bit says, if it starts
    /// one (offset 0) or one has started. (Not any later packet: a retransmission that comes
    /// after its frame was given up is no new frame.)
    fn is_released(&self, ts: u32, ext: u64, offset: u32) -> bool {
        let Some(r) = self.released_ts else {
            return false;
        };
        let older = (ts.wrapping_sub(r) as i32) < 0;
        let next_frame = self.released_marker_ext.is_some_and(|m| ext > m)
            && (offset == 0 || self.frames.iter().any(|f| f.ts == ts));
        older || (ts == r && !next_frame)
    }

    /// Forgets a frame, released or given up: later packets of it are duplicates. A frame
    /// given up before its marked packet came ends, as far as anyone knows, at the newest
    /// packet it had.
    fn mark_released(&mut self, f: &Assembly) {
        self.released_ts = Some(f.ts);
        self.released_marker_ext = f
            .marker_ext
            .or_else(|| f.fragment_exts.values().max().copied());
    }
}

/// Receives RTP/JPEG from any number of senders (one stream per SSRC).
#[derive(Debug)]
pub struct RtpReceiver {
    config: RtpReceiverConfig,
    ssrc: u32,
    streams: Vec<Stream>,
    events: VecDeque<ReceiveEvent>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: ReceiverStats,
    nacks_sent: u64,
    /// SRs from SSRCs not seen yet: SSRC, from, when, NTP, RTP time.
    early_reports: VecDeque<(u32, SocketAddr, Instant, u64, u32)>,
}

impl RtpReceiver {
    pub fn new(config: RtpReceiverConfig) -> RtpReceiver {
        let ssrc = config.ssrc.unwrap_or_else(rand::random);
        RtpReceiver {
            config: RtpReceiverConfig {
                max_streams: config.max_streams.max(1),
                max_frames_assembling: config.max_frames_assembling.max(1),
                ..config
            },
            ssrc,
            streams: Vec::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: ReceiverStats::default(),
            nacks_sent: 0,
            early_reports: VecDeque::new(),
        }
    }

    /// NACK datagrams sent so far.
    pub fn nacks_sent(&self) -> u64 {
        self.nacks_sent
    }

    /// Bytes held in incomplete frames (bounded by streams × frames × `max_frame_bytes`).
    pub fn buffered_bytes(&self) -> usize {
        self.streams
            .iter()
            .flat_map(|s| &s.frames)
            .map(|f| f.bytes)
            .sum()
    }

    fn refuse(&mut self, from: SocketAddr, why: &str) {
        self.stats.datagrams_invalid += 1;
        log::debug!("refused a datagram from {from}: {why}");
    }

    fn stream_index(&mut self, ssrc: u32, from: SocketAddr, seq: u16, now: Instant) -> usize {
        if let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) {
            return i;
        }
        let mut replaced = None;
        if self.streams.len() >= self.config.max_streams {
            if let Some(i) = (0..self.streams.len()).min_by_key(|&i| self.streams[i].last_heard) {
                let old = self.streams.swap_remove(i);
                self.stats.frames_dropped += old.frames.len() as u64;
                replaced = Some(old.ssrc);
            }
        }
        let mut stream = Stream::new(ssrc, from, seq, now);
        if let Some(k) = self.early_reports.iter().position(|r| r.0 == ssrc) {
            if let Some((_, rtcp_from, at, ntp, rtp)) = self.early_reports.remove(k) {
                if now < at + self.config.stall_after {
                    stream.last_sr = Some((ntp_middle(ntp), at, ntp, rtp));
                    stream.rtcp_peer = Some(rtcp_from);
                    stream.next_report = Some(now);
                }
            }
        }
        self.streams.push(stream);
        self.stats.streams_started += 1;
        self.events.push_back(ReceiveEvent::StreamStarted {
            stream_id: ssrc,
            remote: from,
            replaced,
        });
        self.streams.len() - 1
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(packet) = RtpPacket::new_checked(bytes) else {
            return self.refuse(from, "short or inconsistent RTP header");
        };
        let Ok(rtp) = RtpRepr::parse(&packet) else {
            return self.refuse(from, "not RTP version 2");
        };
        if rtp.payload_type != PT_JPEG && Some(rtp.payload_type) != self.config.dynamic_payload_type
        {
            self.stats.datagrams_foreign += 1;
            return self.refuse(from, "not an RTP/JPEG payload type");
        }
        let payload = match JpegPayloadRepr::parse(packet.payload()) {
            Ok(p) => p,
            Err(e) => return self.refuse(from, &format!("bad RTP/JPEG payload: {e}")),
        };
        let h = payload.header;
        // Every fragment carries scan bytes; empty ones would cost bookkeeping and bring
        // nothing (memory per frame is bounded by its bytes).
        if payload.data.is_empty() {
            return self.refuse(from, "RTP/JPEG packet without scan data");
        }
        if h.jpeg_type & !64 > 1 {
            return self.refuse(from, "RTP/JPEG type other than 0, 1, 64, 65");
        }
        let end = h.fragment_offset as usize + payload.data.len();
        if end > self.config.max_frame_bytes {
            self.stats.datagrams_invalid += 1;
            return;
        }
        // Tables: in-band (Q ≥ 128, first packet), cached (Q 128–254), or Appendix A.
        let mut tables = None;
        if let Some(q) = payload.qtables {
            if q.tables.is_empty() {
                // Q 128–254 with no tables: the stream's cached ones, looked up below.
            } else {
                // Two tables (luma, chroma) as §3.1.8 says; ffmpeg sends only the tables
                // its JPEG defines, one when all components share it.
                match (q.decode(2), q.decode(1)) {
                    (Some(t), _) => tables = Some([t[0], t[1]]),
                    (None, Some(t)) => tables = Some([t[0], t[0]]),
                    _ => return self.refuse(from, "quantization table length disagrees"),
                }
            }
        }
        let i = self.stream_index(rtp.ssrc, from, rtp.seq, now);
        let config = &self.config;
        let stream = &mut self.streams[i];
        stream.last_heard = now;
        stream.remote = from;
        stream.stalled = false;
        if h.q < 128 {
            tables = Some(widen(q_tables(h.q)));
        } else if h.q < 255 {
            if let Some(t) = tables {
                if stream.tables.len() >= MAX_CACHED_TABLES && !stream.tables.contains_key(&h.q) {
                    stream.tables.clear();
                }
                stream.tables.insert(h.q, t);
            } else {
                tables = stream.tables.get(&h.q).copied();
            }
        }

        // Sequence numbers: extend, note holes, forget what arrived.
        let ext = stream.extend(rtp.seq);
        if stream.is_released(rtp.timestamp, ext, h.fragment_offset) {
            stream.missing.remove(&ext);
            self.stats.datagrams_duplicate += 1;
            return;
        }
        let shape = FrameShape {
            jpeg_type: h.jpeg_type,
            q: h.q,
            width: h.width,
            height: h.height,
        };
        // An incomplete frame with this timestamp that this packet cannot belong to (it
        // comes after the frame's marked packet, or brings an offset the frame has under
        // another sequence number) is the previous frame of a sender that repeats
        // timestamps: it is given up, never mixed with the next.
        if let Some(fi) = stream.frames.iter().position(|f| {
            f.ts == rtp.timestamp
                && (f.marker_ext.is_some_and(|m| ext > m)
                    || f.fragment_exts
                        .get(&h.fragment_offset)
                        .is_some_and(|&had| had != ext))
        }) {
            let old = stream.frames.remove(fi);
            stream.frame_counter = stream.frame_counter.wrapping_add(1);
            stream.released_ts = Some(old.ts);
            stream.released_marker_ext = Some(ext.saturating_sub(1));
            self.stats.frames_dropped += 1;
        }
        let fi = match stream.frames.iter().position(|f| f.ts == rtp.timestamp) {
            Some(fi) => {
                let f = &stream.frames[fi];
                if f.shape != shape {
                    return self.refuse(from, "disagrees with its frame's earlier packets");
                }
                if f.fragments.contains_key(&h.fragment_offset) {
                    stream.missing.remove(&ext);
                    self.stats.datagrams_duplicate += 1;
                    return;
                }
                fi
            }
            None => {
                if stream.frames.len() >= config.max_frames_assembling {
                    stream.sort_frames();
                    let old = stream.frames.remove(0);
                    stream.mark_released(&old);
                    stream.frame_counter = stream.frame_counter.wrapping_add(1);
                    self.stats.frames_dropped += 1;
                    if stream.is_released(rtp.timestamp, ext, h.fragment_offset) {
                        return;
                    }
                }
                stream.frames.push(Assembly {
                    ts: rtp.timestamp,
                    first_seen: now,
                    shape,
                    restart_interval: 0,
                    tables: None,
                    fragments: BTreeMap::new(),
                    fragment_exts: BTreeMap::new(),
                    bytes: 0,
                    end: None,
                    largest_fragment: 0,
                    complete_at: None,
                    marker_ext: None,
                });
                stream.frames.len() - 1
            }
        };
        let f = &mut stream.frames[fi];
        if f.bytes + payload.data.len() > config.max_frame_bytes
            || f.end.is_some_and(|e| end > e as usize)
            || (rtp.marker
                && f.fragments
                    .keys()
                    .next_back()
                    .is_some_and(|&o| o as usize >= end))
        {
            return self.refuse(from, "fragment beyond the frame's end or its size limit");
        }
        if let Some(r) = payload.restart {
            f.restart_interval = r.interval;
        }
        if tables.is_some() && (h.fragment_offset == 0 || f.tables.is_none()) {
            f.tables = tables;
        }
        f.fragments.insert(h.fragment_offset, payload.data.to_vec());
        f.fragment_exts.insert(h.fragment_offset, ext);
        f.bytes += payload.data.len();
        f.largest_fragment = f.largest_fragment.max(payload.data.len());
        if rtp.marker {
            f.end = Some(end as u32);
            f.marker_ext = Some(ext);
        }
        if f.complete_at.is_none() && f.is_complete() {
            f.complete_at = Some(now);
        }

        // Counted only now: a packet taken into a frame.
        stream.received += 1;
        stream.missing.remove(&ext);
        let delta = ext as i64 - stream.max_ext as i64;
        if delta > 0 {
            if delta < MAX_DROPOUT && stream.nacking(config) {
                // Holes are remembered only to be asked for, and only so many.
                while stream.missing.len() + delta as usize > MAX_MISSING {
                    if stream.missing.pop_first().is_none() {
                        break;
                    }
                }
                for s in stream.max_ext + 1..ext {
                    stream.missing.insert(
                        s,
                        Missing {
                            since: now,
                            tries: 0,
                            last_nack: None,
                        },
                    );
                }
            } else if delta >= MAX_DROPOUT {
                // A restart of the numbering, not 3000 losses.
                stream.missing.clear();
                stream.base_ext = ext - stream.received.min(ext);
            }
            stream.max_ext = ext;
        }
        // RFC 3550 A.8 interarrival jitter, in timestamp units.
        let arrival = (now.duration_since(stream.origin).as_micros() as i64)
            * i64::from(JPEG_CLOCK_HZ)
            / 1_000_000;
        let transit = arrival - i64::from(rtp.timestamp);
        if let Some(prev) = stream.last_transit {
            let d = (transit - prev).abs() as f64;
            stream.jitter += (d - stream.jitter) / 16.0;
        }
        stream.last_transit = Some(transit);
        self.release(i, now);
    }

    fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let packets = match RtcpRepr::parse_compound(bytes) {
            Ok(p) => p,
            Err(e) => return self.refuse(from, &format!("bad RTCP: {e}")),
        };
        for p in packets {
            match p {
                RtcpRepr::SenderReport { ssrc, info, .. } => {
                    let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) else {
                        // An SR before any media (the sender's first report precedes its
                        // first frame): kept for when the stream starts.
                        self.early_reports.retain(|r| r.0 != ssrc);
                        if self.early_reports.len() >= self.config.max_streams {
                            self.early_reports.pop_front();
                        }
                        self.early_reports.push_back((
                            ssrc,
                            from,
                            now,
                            info.ntp,
                            info.rtp_timestamp,
                        ));
                        continue;
                    };
                    s.last_sr = Some((ntp_middle(info.ntp), now, info.ntp, info.rtp_timestamp));
                    s.last_heard = now;
                    if s.rtcp_peer.is_none() {
                        // First word from this sender: answer at once, so it learns we hear it.
                        s.next_report = Some(now);
                    }
                    s.rtcp_peer = Some(from);
                }
                RtcpRepr::Bye { ssrcs } => {
                    for ssrc in ssrcs {
                        if let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) {
                            if !s.stalled {
                                s.stalled = true;
                                self.events.push_back(ReceiveEvent::Stalled {
                                    stream_id: s.ssrc,
                                    remote: s.remote,
                                });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Releases whole frames in timestamp order; gives up those that cannot be finished.
    fn release(&mut self, i: usize, now: Instant) {
        let config = &self.config;
        let stream = &mut self.streams[i];
        let nacking = stream.nacking(config);
        stream.sort_frames();
        while let Some(oldest) = stream.frames.first() {
            if oldest.complete_at.is_some() {
                let f = stream.frames.remove(0);
                let mut data = Vec::with_capacity(f.bytes + 700);
                let scan: Vec<u8> = f.fragments.into_values().flatten().collect();
                let Some(tables) = f.tables else {
                    continue;
                };
                rebuild_jpeg(
                    f.shape.jpeg_type,
                    f.shape.width,
                    f.shape.height,
                    &tables,
                    f.restart_interval,
                    &scan,
                    &mut data,
                );
                let header = stream.capture_us(f.ts).map(|capture_ts_us| HeaderRepr {
                    total_len: data.len() as u32,
                    chunk_size: f.largest_fragment.clamp(1, usize::from(u16::MAX)) as u16,
                    codec: Codec::Jpeg,
                    width: f.shape.width,
                    height: f.shape.height,
                    capture_ts_us,
                    crc32: crc32fast::hash(&data),
                });
                stream.released_ts = Some(f.ts);
                stream.released_marker_ext = f.marker_ext;
                let seq = stream.frame_counter;
                stream.frame_counter = stream.frame_counter.wrapping_add(1);
                self.stats.frames_completed += 1;
                self.events.push_back(ReceiveEvent::Frame(CompleteFrame {
                    stream_id: stream.ssrc,
                    seq,
                    data,
                    header,
                    remote: stream.remote,
                    first_seen: f.first_seen,
                    completed_at: now,
                }));
                continue;
            }
            let newer_complete = stream.frames.iter().filter_map(|f| f.complete_at).min();
            let expired = now >= oldest.first_seen + config.frame_deadline;
            let hopeless =
                !nacking && newer_complete.is_some_and(|t| now >= t + config.reorder_wait);
            if expired || hopeless {
                let f = stream.frames.remove(0);
                stream.mark_released(&f);
                stream.frame_counter = stream.frame_counter.wrapping_add(1);
                self.stats.frames_dropped += 1;
                log::debug!(
                    "dropped an incomplete frame of stream {:08x} ({} bytes of {:?})",
                    stream.ssrc,
                    f.bytes,
                    f.end
                );
                continue;
            }
            break;
        }
    }

    fn queue_rtcp(&mut self, now: Instant) {
        let config = &self.config;
        for s in &mut self.streams {
            let Some(peer) = s.rtcp_peer else { continue };
            // NACKs for holes older than the reordering wait, each at most max_nacks times.
            let mut seqs = Vec::new();
            if config.nack {
                s.missing.retain(|_, m| {
                    now < m.since + config.frame_deadline
                        && (m.tries < config.max_nacks
                            || m.last_nack.is_some_and(|t| now < t + config.nack_interval))
                });
                // A NACK item names a packet and the 16 after it. Only packets that fit the
                // items this NACK may carry count as asked for: the rest keep their tries
                // for the next one.
                let mut items = 0;
                let mut item_start: Option<u64> = None;
                for (&ext, m) in s.missing.iter_mut() {
                    let due = now >= m.since + config.reorder_wait
                        && m.tries < config.max_nacks
                        && m.last_nack.is_none_or(|t| now >= t + config.nack_interval);
                    if !due {
                        continue;
                    }
                    if !item_start.is_some_and(|start| (1..=16).contains(&(ext - start))) {
                        if items == MAX_NACK_ITEMS {
                            break;
                        }
                        items += 1;
                        item_start = Some(ext);
                    }
                    m.tries += 1;
                    m.last_nack = Some(now);
                    seqs.push(ext as u16);
                }
            }
            let report_due = s.next_report.is_some_and(|t| now >= t);
            if seqs.is_empty() && !report_due {
                continue;
            }
            let mut packets = vec![RtcpRepr::ReceiverReport {
                ssrc: self.ssrc,
                reports: vec![s.report_block(now)],
            }];
            if report_due {
                s.next_report = Some(now + config.report_interval);
                packets.push(RtcpRepr::Sdes {
                    ssrc: self.ssrc,
                    cname: config.cname.clone(),
                });
            }
            if !seqs.is_empty() {
                let nack = NackRepr::from_seqs(self.ssrc, s.ssrc, &seqs);
                debug_assert!(nack.items.len() <= MAX_NACK_ITEMS);
                packets.push(RtcpRepr::Nack(nack));
                self.nacks_sent += 1;
            }
            let mut buf = Vec::new();
            RtcpRepr::emit_compound(&packets, &mut buf);
            self.transmits.push_back((peer, buf));
        }
    }
}

fn widen(t: [[u8; 64]; 2]) -> [[u16; 64]; 2] {
    super::jpeg::widen(&t)
}

impl FrameReceiver for RtpReceiver {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if is_rtcp(bytes) {
            self.handle_rtcp(now, from, bytes);
        } else {
            self.handle_rtp(now, from, bytes);
        }
        self.queue_rtcp(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.streams.len() {
            self.release(i, now);
            let s = &mut self.streams[i];
            if !s.stalled && now >= s.last_heard + self.config.stall_after {
                s.stalled = true;
                self.events.push_back(ReceiveEvent::Stalled {
                    stream_id: s.ssrc,
                    remote: s.remote,
                });
            }
        }
        self.queue_rtcp(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let c = &self.config;
        self.streams
            .iter()
            .flat_map(|s| {
                let nacking = s.nacking(c);
                let frames = s.frames.first().map(|f| f.first_seen + c.frame_deadline);
                let hopeless = (!nacking)
                    .then(|| s.frames.iter().filter_map(|f| f.complete_at).min())
                    .flatten()
                    .map(|t| t + c.reorder_wait);
                let nack = nacking
                    .then(|| {
                        s.missing
                            .values()
                            .filter(|m| m.tries < c.max_nacks)
                            .map(|m| match m.last_nack {
                                None => m.since + c.reorder_wait,
                                Some(t) => t + c.nack_interval,
                            })
                            .min()
                    })
                    .flatten();
                let stall = (!s.stalled).then_some(s.last_heard + c.stall_after);
                [
                    frames,
                    hopeless,
                    nack,
                    s.next_report.filter(|_| s.rtcp_peer.is_some()),
                    stall,
                ]
            })
            .flatten()
            .min()
    }

    fn poll_event(&mut self) -> Option<ReceiveEvent> {
        self.events.pop_front()
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let (to, bytes) = self.transmits.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&bytes);
        self.stats.acks_sent += 1;
        Some(Transmit { to, len: buf.len() })
    }

    /// RTP has no flow control: the sender never hears of our queue. A no-op.
    fn set_credit(&mut self, _credit: u16) {}

    fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    fn current_stream(&self) -> Option<(u32, SocketAddr)> {
        self.streams
            .iter()
            .max_by_key(|s| s.last_heard)
            .map(|s| (s.ssrc, s.remote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_the_wrap_both_ways() {
        let now = Instant::now();
        let addr = SocketAddr::from(([10, 0, 0, 2], 5004));
        let mut s = Stream::new(1, addr, 65534, now);
        s.max_ext = s.extend(65534);
        assert_eq!(s.max_ext, 65536 + 65534);
        assert_eq!(s.extend(65535), 65536 + 65535);
        assert_eq!(s.extend(0), 2 * 65536);
        assert_eq!(s.extend(5), 2 * 65536 + 5);
        s.max_ext = s.extend(5);
        // a late packet from before the wrap stays in the old cycle
        assert_eq!(s.extend(65530), 65536 + 65530);
        assert_eq!(s.extend(4), 2 * 65536 + 4);
    }

    /// Holes too far apart to share NACK items: those beyond what one NACK carries are not
    /// counted as asked for, and the next NACK names them.
    #[test]
    fn holes_beyond_one_nacks_items_are_asked_for_next_time() {
        let t0 = Instant::now();
        let peer = SocketAddr::from(([10, 0, 0, 2], 5004));
        let config = RtpReceiverConfig::default();
        let mut rx = RtpReceiver::new(config.clone());
        let mut s = Stream::new(7, peer, 0, t0);
        s.rtcp_peer = Some(peer);
        let holes: Vec<u64> = (0..40u64).map(|i| s.base_ext + 1 + 20 * i).collect();
        for &ext in &holes {
            s.missing.insert(
                ext,
                Missing {
                    since: t0,
                    tries: 0,
                    last_nack: None,
                },
            );
        }
        rx.streams.push(s);
        let named = |rx: &mut RtpReceiver| -> Vec<u16> {
            let mut out = Vec::new();
            while let Some((_, bytes)) = rx.transmits.pop_front() {
                for p in RtcpRepr::parse_compound(&bytes).unwrap() {
                    if let RtcpRepr::Nack(n) = p {
                        assert!(n.items.len() <= MAX_NACK_ITEMS);
                        out.extend(n.seqs());
                    }
                }
            }
            out
        };
        let t1 = t0 + config.reorder_wait;
        rx.queue_rtcp(t1);
        let first = named(&mut rx);
        assert_eq!(first.len(), MAX_NACK_ITEMS);
        // Not sent, so not tried: still due at the next NACK.
        let untried = rx.streams[0]
            .missing
            .values()
            .filter(|m| m.tries == 0)
            .count();
        assert_eq!(untried, holes.len() - MAX_NACK_ITEMS);
        rx.queue_rtcp(t1 + config.nack_interval / 2);
        let second = named(&mut rx);
        let mut all: Vec<u16> = first.into_iter().chain(second).collect();
        all.sort_unstable();
        all.dedup();
        let expected: Vec<u16> = holes.iter().map(|&e| e as u16).collect();
        assert_eq!(all, expected, "every hole asked for within two NACKs");
    }

    #[test]
    fn report_block_counts_loss_per_interval() {
        let now = Instant::now();
        let addr = SocketAddr::from(([10, 0, 0, 2], 5004));
        let mut s = Stream::new(1, addr, 100, now);
        s.max_ext = s.base_ext + 99; // 100 expected
        s.received = 75;
        let r = s.report_block(now);
        assert_eq!((r.fraction_lost, r.cumulative_lost), (64, 25));
        s.max_ext += 100;
        s.received += 100;
        let r = s.report_block(now);
        assert_eq!((r.fraction_lost, r.cumulative_lost), (0, 25));
        assert_eq!(r.highest_seq as u64, s.max_ext & 0xffff_ffff);
    }
}
