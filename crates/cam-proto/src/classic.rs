//! The original Python example's protocol ("classic mode"), as sans-IO state machines.
//!
//! What crosses the wire: an encoded image (JPEG or PNG) either as **one datagram**, or as a
//! **length header** (a C `long` from `struct.pack('l', n)`: 8 bytes little-endian on x86-64 and
//! ARM64, 4 bytes on Windows and 32-bit ARM) followed by the image bytes in datagrams of a fixed
//! size (1024 in the example), the last one shorter. The original client adds an empty datagram
//! when the length is a multiple of 1024. The server answers each image with a short text and the
//! client blocks until it comes. There are no sequence numbers and no checksums.
//!
//! [`ClassicReceiver`] keeps that conversation going where the original server cannot: it never
//! releases an image with missing or foreign bytes (the header's length, the chunk size, datagram
//! timing and the JPEG/PNG start and end markers tell where an image begins and ends; a PNG's
//! chunk CRCs are checked too), resynchronises on the next header or whole image, and after giving
//! up on a damaged image still answers, so that a blocking client carries on.
//! [`ClassicSender`] is the client side: header and chunks, then any reply or a timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The original server's answer to an image.
pub const REPLY_IMAGE: &[u8] = b"get message!!!";
/// Our answer after giving up on a damaged image: any reply unblocks an original client.
pub const REPLY_LOST: &[u8] = b"lost frame, send the next";
/// Largest UDP payload over IPv4: the bound for an image sent as one datagram.
pub const MAX_ONE_DATAGRAM: usize = 65_507;
/// The length header the classic sender writes: `struct.pack('l', n)` on a 64-bit machine.
pub const HEADER_LEN: usize = 8;
/// The example's chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 1024;

const JPEG_SOI: &[u8] = &[0xFF, 0xD8, 0xFF];
const JPEG_EOI: &[u8] = &[0xFF, 0xD9];
const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
/// Length, type and CRC around a PNG chunk's data.
const PNG_CHUNK_OVERHEAD: usize = 12;
/// Replies waiting for credit; beyond this the oldest is forgotten.
const REPLIES_MAX: usize = 64;

/// What an image's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    /// By the start marker alone: for choosing a decoder or a file name, not for trusting.
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(JPEG_SOI) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(PNG_SIGNATURE) {
            Some(ImageKind::Png)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
        }
    }
}

/// The kind of `bytes` if they hold exactly one whole image: a JPEG from its start marker to
/// its end marker (nothing after it), or a PNG from its signature through a chain of chunks with
/// correct CRCs to `IEND`, nothing after it.
pub fn whole_image(bytes: &[u8]) -> Option<ImageKind> {
    match ImageKind::sniff(bytes)? {
        ImageKind::Jpeg => (bytes.len() >= JPEG_SOI.len() + JPEG_EOI.len()
            && bytes.ends_with(JPEG_EOI))
        .then_some(ImageKind::Jpeg),
        ImageKind::Png => png_chunks_intact(bytes).then_some(ImageKind::Png),
    }
}

fn png_chunks_intact(bytes: &[u8]) -> bool {
    let mut at = PNG_SIGNATURE.len();
    let mut first = true;
    loop {
        let Some(rest) = bytes.get(at..) else {
            return false;
        };
        if rest.len() < PNG_CHUNK_OVERHEAD {
            return false;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > rest.len() - PNG_CHUNK_OVERHEAD {
            return false;
        }
        let kind = &rest[4..8];
        let typed = &rest[4..8 + len];
        let crc = &rest[8 + len..12 + len];
        if !kind.iter().all(u8::is_ascii_alphabetic)
            || crc32fast::hash(typed).to_be_bytes() != crc
            || (first && kind != b"IHDR")
        {
            return false;
        }
        first = false;
        at += PNG_CHUNK_OVERHEAD + len;
        if kind == b"IEND" {
            return len == 0 && at == bytes.len();
        }
    }
}

/// The length a 4- or 8-byte little-endian header announces, if it is one between 1 and `max`.
pub fn parse_length_header(bytes: &[u8], max: usize) -> Option<usize> {
    let value = match *bytes {
        [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => return None,
    };
    usize::try_from(value)
        .ok()
        .filter(|n| (1..=max).contains(n))
}

#[derive(Debug, Clone)]
pub struct ClassicConfig {
    /// Headers announcing more bytes are refused, and no image grows beyond this.
    pub max_frame_bytes: usize,
    /// Silence from a sender in the middle of an image after which the image is given up and
    /// the sender told so. Inside an image datagrams come back to back; a longer gap means the
    /// sender has sent everything and is waiting for the answer.
    pub give_up_after: Duration,
    /// Senders tracked at once; the one heard from least recently makes room.
    pub max_senders: usize,
}

impl Default for ClassicConfig {
    fn default() -> Self {
        ClassicConfig {
            max_frame_bytes: 8 << 20,
            give_up_after: Duration::from_millis(300),
            max_senders: 8,
        }
    }
}

/// A whole image, its bytes exactly as sent.
#[derive(Debug, Clone)]
pub struct ClassicImage {
    /// Images released so far, over all senders.
    pub seq: u32,
    pub data: Vec<u8>,
    pub kind: ImageKind,
    pub remote: SocketAddr,
    pub first_seen: Instant,
    pub completed_at: Instant,
}

/// Why an image in progress was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The last, shorter datagram came before all the announced bytes.
    ShortImage,
    /// The sender fell silent before all the announced bytes came.
    Silence,
    /// The sender started another image (a new header or a whole image).
    Superseded,
    /// All the announced bytes came, but they are not one whole JPEG or PNG.
    NotAnImage,
    /// A datagram longer than the rest of the image or than its chunks.
    Overrun,
    /// Image data without a header (the header was lost, or was refused).
    Headless,
    /// Another sender needed the slot.
    Evicted,
}

#[derive(Debug, Clone)]
pub enum ClassicEvent {
    Image(ClassicImage),
    /// The first datagram from a sender.
    NewSender(SocketAddr),
    GaveUp {
        remote: SocketAddr,
        why: GiveUp,
        /// Whether the sender is told (it is when it is evidently waiting for an answer).
        replied: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicStats {
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Datagrams that belong to no image: headless data, impossible headers, overruns.
    pub datagrams_invalid: u64,
    /// The original client's empty datagram after a length that is a multiple of 1024.
    pub datagrams_empty: u64,
    pub images_completed: u64,
    pub images_given_up: u64,
    pub replies_sent: u64,
    pub senders_seen: u64,
}

#[derive(Debug)]
enum Assembly {
    Idle,
    Image {
        expected: usize,
        data: Vec<u8>,
        /// The size of the first data datagram: all but the last are this size.
        chunk_len: Option<usize>,
        first_seen: Instant,
    },
    /// Data with no header: thrown away until the sender falls silent, then answered.
    Headless,
}

#[derive(Debug)]
struct Peer {
    remote: SocketAddr,
    last_heard: Instant,
    assembly: Assembly,
}

/// The classic viewer's state machine: datagrams and time in; images, events and replies out.
#[derive(Debug)]
pub struct ClassicReceiver {
    config: ClassicConfig,
    peers: Vec<Peer>,
    events: VecDeque<ClassicEvent>,
    replies: VecDeque<(SocketAddr, &'static [u8])>,
    credit: u16,
    next_seq: u32,
    stats: ClassicStats,
}

impl ClassicReceiver {
    pub fn new(config: ClassicConfig) -> ClassicReceiver {
        ClassicReceiver {
            config,
            peers: Vec::new(),
            events: VecDeque::new(),
            replies: VecDeque::new(),
            credit: 1,
            next_seq: 0,
            stats: ClassicStats::default(),
        }
    }

    pub fn stats(&self) -> &ClassicStats {
        &self.stats
    }

    /// The sender heard from most recently.
    pub fn latest_sender(&self) -> Option<SocketAddr> {
        self.peers
            .iter()
            .max_by_key(|p| p.last_heard)
            .map(|p| p.remote)
    }

    /// How many more images the application can take now. While it is zero, answers are held
    /// back: the answer is the classic client's only flow control.
    pub fn set_credit(&mut self, credit: u16) {
        self.credit = credit;
    }

    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let i = self.peer_index(now, remote);
        // Overdue silence that `handle_timeout` has not seen yet: the sender has moved on, so
        // the abandoned image gets no answer (it would be taken for the next image's).
        if self.peers[i].assembly.in_progress()
            && now.saturating_duration_since(self.peers[i].last_heard) >= self.config.give_up_after
        {
            self.give_up(i, GiveUp::Silence, false);
        }
        self.peers[i].last_heard = now;
        if bytes.is_empty() {
            self.stats.datagrams_empty += 1;
            return;
        }
        match &self.peers[i].assembly {
            Assembly::Idle | Assembly::Headless => self.start(i, now, bytes),
            Assembly::Image { .. } => self.continue_image(i, now, bytes),
        }
    }

    fn peer_index(&mut self, now: Instant, remote: SocketAddr) -> usize {
        if let Some(i) = self.peers.iter().position(|p| p.remote == remote) {
            return i;
        }
        if self.peers.len() >= self.config.max_senders.max(1) {
            let oldest = self
                .peers
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_heard)
                .map_or(0, |(i, _)| i);
            if self.peers[oldest].assembly.in_progress() {
                self.give_up(oldest, GiveUp::Evicted, false);
            }
            self.peers.swap_remove(oldest);
        }
        self.stats.senders_seen += 1;
        self.events.push_back(ClassicEvent::NewSender(remote));
        self.peers.push(Peer {
            remote,
            last_heard: now,
            assembly: Assembly::Idle,
        });
        self.peers.len() - 1
    }

    /// A datagram while no image is in progress: a header, a whole image, or stray data.
    fn start(&mut self, i: usize, now: Instant, bytes: &[u8]) {
        let headless = matches!(self.peers[i].assembly, Assembly::Headless);
        if let Some(expected) = parse_length_header(bytes, self.config.max_frame_bytes) {
            if headless {
                // A new header: the sender is no longer waiting for the headless image.
                self.give_up(i, GiveUp::Headless, false);
            }
            self.peers[i].assembly = Assembly::Image {
                expected,
                data: Vec::new(),
                chunk_len: None,
                first_seen: now,
            };
        } else if let Some(kind) = whole_image(bytes) {
            if headless {
                self.give_up(i, GiveUp::Headless, false);
            }
            self.release(i, now, now, bytes.to_vec(), kind);
        } else {
            // Data of an image whose header was lost, or an impossible header: throw it away,
            // and answer once the sender falls silent.
            self.stats.datagrams_invalid += 1;
            self.peers[i].assembly = Assembly::Headless;
        }
    }

    fn continue_image(&mut self, i: usize, now: Instant, bytes: &[u8]) {
        let Assembly::Image {
            expected,
            data,
            chunk_len,
            ..
        } = &self.peers[i].assembly
        else {
            return;
        };
        let remaining = expected - data.len();
        let n = bytes.len();
        let completes = n == remaining;
        let header = parse_length_header(bytes, self.config.max_frame_bytes).is_some();
        // A last chunk of 4 or 8 bytes looks like a header; the image's end marker decides.
        let completes_whole = header && completes && {
            let mut joined = Vec::with_capacity(*expected);
            joined.extend_from_slice(data);
            joined.extend_from_slice(bytes);
            whole_image(&joined).is_some()
        };
        let fits_chunk = chunk_len.is_none_or(|c| n <= c) && n <= remaining;

        if header && !completes_whole {
            // The next image's header: the sender gave up waiting on this one.
            self.give_up(i, GiveUp::Superseded, false);
            self.start(i, now, bytes);
        } else if !fits_chunk {
            self.give_up(i, GiveUp::Overrun, false);
            self.start(i, now, bytes);
        } else if completes {
            let Assembly::Image {
                mut data,
                first_seen,
                ..
            } = std::mem::replace(&mut self.peers[i].assembly, Assembly::Idle)
            else {
                return;
            };
            data.extend_from_slice(bytes);
            match whole_image(&data) {
                Some(kind) => self.release(i, first_seen, now, data, kind),
                None => self.give_up(i, GiveUp::NotAnImage, true),
            }
        } else if chunk_len.is_some_and(|c| n < c) {
            // The short last datagram, yet bytes are missing: some chunk was lost.
            self.give_up(i, GiveUp::ShortImage, true);
        } else if let Assembly::Image {
            data, chunk_len, ..
        } = &mut self.peers[i].assembly
        {
            chunk_len.get_or_insert(n);
            data.extend_from_slice(bytes);
        }
    }

    fn release(
        &mut self,
        i: usize,
        first_seen: Instant,
        now: Instant,
        data: Vec<u8>,
        kind: ImageKind,
    ) {
        let remote = self.peers[i].remote;
        self.peers[i].assembly = Assembly::Idle;
        self.stats.images_completed += 1;
        self.events.push_back(ClassicEvent::Image(ClassicImage {
            seq: self.next_seq,
            data,
            kind,
            remote,
            first_seen,
            completed_at: now,
        }));
        self.next_seq = self.next_seq.wrapping_add(1);
        self.queue_reply(remote, REPLY_IMAGE);
    }

    fn give_up(&mut self, i: usize, why: GiveUp, reply: bool) {
        let remote = self.peers[i].remote;
        self.peers[i].assembly = Assembly::Idle;
        self.stats.images_given_up += 1;
        self.events.push_back(ClassicEvent::GaveUp {
            remote,
            why,
            replied: reply,
        });
        if reply {
            self.queue_reply(remote, REPLY_LOST);
        }
    }

    fn queue_reply(&mut self, to: SocketAddr, text: &'static [u8]) {
        if self.replies.len() >= REPLIES_MAX {
            self.replies.pop_front();
        }
        self.replies.push_back((to, text));
    }

    /// Gives up images whose sender fell silent, answering the sender.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let peer = &self.peers[i];
            if !peer.assembly.in_progress()
                || now.saturating_duration_since(peer.last_heard) < self.config.give_up_after
            {
                continue;
            }
            let why = match peer.assembly {
                Assembly::Headless => GiveUp::Headless,
                _ => GiveUp::Silence,
            };
            self.give_up(i, why, true);
        }
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter(|p| p.assembly.in_progress())
            .map(|p| p.last_heard + self.config.give_up_after)
            .min()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClassicEvent> {
        self.events.pop_front()
    }

    /// Writes the next answer into `buf`; returns where to send it.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.credit == 0 {
            return None;
        }
        let (to, text) = self.replies.pop_front()?;
        buf.clear();
        buf.extend_from_slice(text);
        self.stats.replies_sent += 1;
        Some(to)
    }
}

impl Assembly {
    fn in_progress(&self) -> bool {
        !matches!(self, Assembly::Idle)
    }
}

#[derive(Debug, Clone)]
pub struct ClassicSenderConfig {
    /// Image bytes per datagram after the header; 0 sends each image as one datagram.
    pub chunk_size: usize,
    /// A reply not here within this time counts as timed out, and the next image may go.
    pub reply_timeout: Duration,
}

impl Default for ClassicSenderConfig {
    fn default() -> Self {
        ClassicSenderConfig {
            chunk_size: DEFAULT_CHUNK_SIZE,
            reply_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassicSendError {
    #[error(
        "an image of {len} bytes does not fit one datagram (at most {MAX_ONE_DATAGRAM} bytes); \
         send it in chunks (--chunk-size 1024) or lower the size or quality"
    )]
    TooLargeForOneDatagram { len: usize },
    #[error("an empty image cannot be sent")]
    Empty,
    #[error("still waiting for the answer to the previous image")]
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicSenderEvent {
    /// Any answer came; `lost` when it was the viewer's "lost frame" answer.
    Replied {
        after: Duration,
        lost: bool,
    },
    TimedOut,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicSenderStats {
    pub frames_sent: u64,
    /// Images answered in time, whatever the answer said.
    pub frames_replied: u64,
    /// Of those, answered with "lost frame": the viewer gave the image up.
    pub frames_reported_lost: u64,
    pub frames_timed_out: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub replies_received: u64,
    /// Replies that came when no image was waiting for one (after a timeout).
    pub replies_late: u64,
}

#[derive(Debug)]
struct Outgoing {
    data: Vec<u8>,
    /// Bytes of `data` already sent.
    sent: usize,
    header_sent: bool,
}

/// The classic client's state machine: one image at a time, header and chunks, then any
/// reply, or a timeout after which the next image may go.
#[derive(Debug)]
pub struct ClassicSender {
    config: ClassicSenderConfig,
    outgoing: Option<Outgoing>,
    /// When the image went and when waiting for its answer ends.
    waiting: Option<(Instant, Instant)>,
    events: VecDeque<ClassicSenderEvent>,
    stats: ClassicSenderStats,
}

impl ClassicSender {
    pub fn new(config: ClassicSenderConfig) -> ClassicSender {
        ClassicSender {
            config,
            outgoing: None,
            waiting: None,
            events: VecDeque::new(),
            stats: ClassicSenderStats::default(),
        }
    }

    pub fn stats(&self) -> &ClassicSenderStats {
        &self.stats
    }

    /// No image being sent or waiting for its answer.
    pub fn can_send(&self) -> bool {
        self.outgoing.is_none() && self.waiting.is_none()
    }

    /// Checks that an image of `len` bytes can go with this configuration.
    pub fn check_len(&self, len: usize) -> Result<(), ClassicSendError> {
        if len == 0 {
            return Err(ClassicSendError::Empty);
        }
        if self.config.chunk_size == 0 && len > MAX_ONE_DATAGRAM {
            return Err(ClassicSendError::TooLargeForOneDatagram { len });
        }
        Ok(())
    }

    pub fn send_frame(&mut self, now: Instant, data: Vec<u8>) -> Result<(), ClassicSendError> {
        if !self.can_send() {
            return Err(ClassicSendError::Busy);
        }
        self.check_len(data.len())?;
        self.stats.frames_sent += 1;
        self.outgoing = Some(Outgoing {
            data,
            sent: 0,
            header_sent: self.config.chunk_size == 0,
        });
        self.waiting = Some((now, now + self.config.reply_timeout));
        Ok(())
    }

    /// Writes the next datagram into `buf`: the header, then the chunks.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(out) = self.outgoing.as_mut() else {
            return false;
        };
        buf.clear();
        if out.header_sent {
            let chunk = match self.config.chunk_size {
                0 => out.data.len(),
                size => size.min(out.data.len() - out.sent),
            };
            buf.extend_from_slice(&out.data[out.sent..out.sent + chunk]);
            out.sent += chunk;
        } else {
            buf.extend_from_slice(&(out.data.len() as u64).to_le_bytes());
            out.header_sent = true;
        }
        if out.sent == out.data.len() {
            self.outgoing = None;
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        true
    }

    /// Any datagram from the viewer is an answer.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.replies_received += 1;
        match self.waiting.take() {
            Some((sent_at, _)) => {
                let lost = bytes.starts_with(b"lost frame");
                self.stats.frames_replied += 1;
                if lost {
                    self.stats.frames_reported_lost += 1;
                }
                self.events.push_back(ClassicSenderEvent::Replied {
                    after: now.saturating_duration_since(sent_at),
                    lost,
                });
            }
            None => self.stats.replies_late += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outgoing.is_none() && self.waiting.is_some_and(|(_, end)| now >= end) {
            self.waiting = None;
            self.stats.frames_timed_out += 1;
            self.events.push_back(ClassicSenderEvent::TimedOut);
        }
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting.map(|(_, end)| end)
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClassicSenderEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use crate::sim::{Impairment, Link};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const MS: Duration = Duration::from_millis(1);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Bytes that pass as a JPEG: start and end markers around noise without 0xFF.
    fn fake_jpeg(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut v = JPEG_SOI.to_vec();
        v.extend((0..len - 5).map(|_| rng.gen_range(0..0xFF)));
        v.extend_from_slice(JPEG_EOI);
        v
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// A structurally valid PNG (signature, IHDR, IDAT of noise, IEND) of exactly `len` bytes.
    fn fake_png(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut v = PNG_SIGNATURE.to_vec();
        png_chunk(&mut v, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
        let idat = len - v.len() - 2 * PNG_CHUNK_OVERHEAD;
        let noise: Vec<u8> = (0..idat).map(|_| rng.gen()).collect();
        png_chunk(&mut v, b"IDAT", &noise);
        png_chunk(&mut v, b"IEND", &[]);
        assert_eq!(v.len(), len);
        v
    }

    /// The datagrams the original client sends for one image.
    fn original_datagrams(image: &[u8], header_len: usize) -> Vec<Vec<u8>> {
        let mut out = vec![(image.len() as u64).to_le_bytes()[..header_len].to_vec()];
        for i in 0..image.len() / 1024 + 1 {
            out.push(image[i * 1024..((i + 1) * 1024).min(image.len())].to_vec());
        }
        out
    }

    fn drain(rx: &mut ClassicReceiver) -> (Vec<ClassicImage>, Vec<GiveUp>, Vec<&'static [u8]>) {
        let mut images = Vec::new();
        let mut gave_up = Vec::new();
        while let Some(e) = rx.poll_event() {
            match e {
                ClassicEvent::Image(img) => images.push(img),
                ClassicEvent::GaveUp { why, .. } => gave_up.push(why),
                ClassicEvent::NewSender(_) => {}
            }
        }
        let mut replies = Vec::new();
        let mut buf = Vec::new();
        while rx.poll_transmit(&mut buf).is_some() {
            replies.push(if buf == REPLY_IMAGE {
                REPLY_IMAGE
            } else {
                REPLY_LOST
            });
        }
        (images, gave_up, replies)
    }

    #[test]
    fn markers_and_headers() {
        let jpeg = fake_jpeg(2000, 1);
        assert_eq!(whole_image(&jpeg), Some(ImageKind::Jpeg));
        assert_eq!(whole_image(&jpeg[..1999]), None);
        assert_eq!(whole_image(&jpeg[..1024]), None);
        let png = fake_png(3000, 2);
        assert_eq!(whole_image(&png), Some(ImageKind::Png));
        assert_eq!(whole_image(&png[..2999]), None);
        let mut flipped = png.clone();
        flipped[1500] ^= 1;
        assert_eq!(
            whole_image(&flipped),
            None,
            "a PNG CRC must catch a flipped bit"
        );
        let mut longer = png.clone();
        longer.push(0);
        assert_eq!(whole_image(&longer), None);
        assert_eq!(ImageKind::sniff(&png[..20]), Some(ImageKind::Png));
        assert_eq!(whole_image(b"hello"), None);

        assert_eq!(
            parse_length_header(&800_000u64.to_le_bytes(), 1 << 20),
            Some(800_000)
        );
        assert_eq!(
            parse_length_header(&800_000u32.to_le_bytes(), 1 << 20),
            Some(800_000)
        );
        assert_eq!(parse_length_header(&0u64.to_le_bytes(), 1 << 20), None);
        assert_eq!(
            parse_length_header(&(2u64 << 20).to_le_bytes(), 1 << 20),
            None
        );
        assert_eq!(parse_length_header(&[1, 0, 0], 1 << 20), None);
    }

    #[test]
    fn both_forms_and_both_header_sizes_arrive_whole() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        let one = fake_jpeg(5000, 3);
        rx.handle_datagram(t, addr(1), &one);
        // A length that is a multiple of 1024: the original adds an empty datagram.
        let png = fake_png(4096, 4);
        for d in original_datagrams(&png, 8) {
            rx.handle_datagram(t, addr(1), &d);
        }
        let jpeg = fake_jpeg(3000, 5);
        for d in original_datagrams(&jpeg, 4) {
            rx.handle_datagram(t, addr(1), &d);
        }
        let (images, gave_up, replies) = drain(&mut rx);
        assert_eq!(images.len(), 3);
        assert_eq!(images[0].data, one);
        assert_eq!(images[1].data, png);
        assert_eq!(images[1].kind, ImageKind::Png);
        assert_eq!(images[2].data, jpeg);
        assert!(gave_up.is_empty(), "{gave_up:?}");
        assert_eq!(replies, vec![REPLY_IMAGE; 3]);
        assert_eq!(rx.stats().datagrams_empty, 1);
        assert_eq!(rx.stats().datagrams_invalid, 0);
    }

    #[test]
    fn a_lost_middle_chunk_is_answered_at_the_short_last_one() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        let jpeg = fake_jpeg(5000, 6);
        let mut datagrams = original_datagrams(&jpeg, 8);
        datagrams.remove(2);
        for d in &datagrams {
            rx.handle_datagram(t, addr(1), d);
        }
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::ShortImage]);
        assert_eq!(replies, vec![REPLY_LOST]);
        assert_eq!(rx.poll_timeout(), None, "nothing left in progress");
    }

    #[test]
    fn a_lost_last_chunk_is_answered_after_silence_exactly() {
        let config = ClassicConfig::default();
        let mut rx = ClassicReceiver::new(config.clone());
        let t = Instant::now();
        let jpeg = fake_jpeg(5000, 7);
        let mut datagrams = original_datagrams(&jpeg, 8);
        datagrams.pop();
        for d in &datagrams {
            rx.handle_datagram(t, addr(1), d);
        }
        assert_eq!(rx.poll_timeout(), Some(t + config.give_up_after));
        rx.handle_timeout(t + config.give_up_after - MS);
        assert!(drain(&mut rx).2.is_empty(), "too early");
        rx.handle_timeout(t + config.give_up_after);
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::Silence]);
        assert_eq!(replies, vec![REPLY_LOST]);
    }

    #[test]
    fn a_lost_header_makes_headless_data_answered_once_then_resync() {
        let config = ClassicConfig::default();
        let mut rx = ClassicReceiver::new(config.clone());
        let t = Instant::now();
        let first = fake_jpeg(5000, 8);
        for d in &original_datagrams(&first, 8)[1..] {
            rx.handle_datagram(t, addr(1), d);
        }
        rx.handle_timeout(t + config.give_up_after);
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::Headless]);
        assert_eq!(replies, vec![REPLY_LOST]);
        let t2 = t + config.give_up_after + MS;
        let second = fake_jpeg(4000, 9);
        for d in original_datagrams(&second, 8) {
            rx.handle_datagram(t2, addr(1), &d);
        }
        let (images, _, replies) = drain(&mut rx);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].data, second);
        assert_eq!(replies, vec![REPLY_IMAGE]);
    }

    #[test]
    fn a_new_header_mid_image_supersedes_it_without_an_answer() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        let first = fake_jpeg(5000, 10);
        let second = fake_jpeg(6000, 11);
        let mut datagrams = original_datagrams(&first, 8);
        datagrams.pop();
        datagrams.extend(original_datagrams(&second, 8));
        for d in &datagrams {
            rx.handle_datagram(t, addr(1), d);
        }
        let (images, gave_up, replies) = drain(&mut rx);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].data, second);
        assert_eq!(gave_up, vec![GiveUp::Superseded]);
        assert_eq!(replies, vec![REPLY_IMAGE]);
    }

    #[test]
    fn a_last_chunk_that_looks_like_a_header_still_completes() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        // 1024 + 8 bytes: the last chunk is 8 bytes long, ending in the JPEG end marker.
        let jpeg = fake_jpeg(1032, 12);
        for d in original_datagrams(&jpeg, 8) {
            rx.handle_datagram(t, addr(1), &d);
        }
        let (images, gave_up, _) = drain(&mut rx);
        assert_eq!(images.len(), 1, "{gave_up:?}");
        assert_eq!(images[0].data, jpeg);
    }

    #[test]
    fn senders_never_mix() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        let a = fake_jpeg(5000, 13);
        let b = fake_png(7000, 14);
        let da = original_datagrams(&a, 8);
        let db = original_datagrams(&b, 8);
        for i in 0..da.len().max(db.len()) {
            if let Some(d) = da.get(i) {
                rx.handle_datagram(t, addr(1), d);
            }
            if let Some(d) = db.get(i) {
                rx.handle_datagram(t, addr(2), d);
            }
        }
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(gave_up.is_empty());
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].data, a);
        assert_eq!(images[0].remote, addr(1));
        assert_eq!(images[1].data, b);
        assert_eq!(replies.len(), 2);
    }

    #[test]
    fn impossible_headers_and_overruns_are_refused() {
        let config = ClassicConfig {
            max_frame_bytes: 10_000,
            ..ClassicConfig::default()
        };
        let mut rx = ClassicReceiver::new(config.clone());
        let t = Instant::now();
        // Announces more than the limit: its data is headless.
        rx.handle_datagram(t, addr(1), &20_000u64.to_le_bytes());
        rx.handle_datagram(t, addr(1), &[7u8; 1024]);
        rx.handle_timeout(t + config.give_up_after);
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::Headless]);
        assert_eq!(replies, vec![REPLY_LOST]);
        // A datagram longer than the announced rest.
        let t = t + Duration::from_secs(1);
        rx.handle_datagram(t, addr(1), &100u64.to_le_bytes());
        rx.handle_datagram(t, addr(1), &[7u8; 200]);
        let (images, gave_up, _) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::Overrun]);
        // Announced bytes that are no image.
        rx.handle_datagram(t, addr(1), &100u64.to_le_bytes());
        rx.handle_datagram(t, addr(1), &[7u8; 100]);
        let (images, gave_up, replies) = drain(&mut rx);
        assert!(images.is_empty());
        assert_eq!(gave_up, vec![GiveUp::Headless, GiveUp::NotAnImage]);
        assert_eq!(replies, vec![REPLY_LOST]);
    }

    #[test]
    fn answers_wait_for_credit() {
        let mut rx = ClassicReceiver::new(ClassicConfig::default());
        let t = Instant::now();
        rx.set_credit(0);
        rx.handle_datagram(t, addr(1), &fake_jpeg(900, 15));
        let mut buf = Vec::new();
        assert_eq!(rx.poll_transmit(&mut buf), None);
        rx.set_credit(1);
        assert_eq!(rx.poll_transmit(&mut buf), Some(addr(1)));
        assert_eq!(buf, REPLY_IMAGE);
    }

    #[test]
    fn sender_sends_the_examples_bytes_and_times_out() {
        let mut tx = ClassicSender::new(ClassicSenderConfig::default());
        let t = Instant::now();
        let image = fake_jpeg(2048, 16);
        tx.send_frame(t, image.clone()).unwrap();
        assert_eq!(tx.send_frame(t, image.clone()), Err(ClassicSendError::Busy));
        let mut sent = Vec::new();
        let mut buf = Vec::new();
        while tx.poll_transmit(&mut buf) {
            sent.push(buf.clone());
        }
        // Exactly the header and two full chunks: no empty datagram after them.
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0], 2048u64.to_le_bytes());
        assert_eq!(sent[1..].concat(), image);
        assert_eq!(tx.poll_timeout(), Some(t + Duration::from_secs(1)));
        tx.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(tx.poll_event(), Some(ClassicSenderEvent::TimedOut));
        assert!(tx.can_send());
        tx.handle_datagram(t + Duration::from_secs(2), REPLY_IMAGE);
        assert_eq!(tx.stats().replies_late, 1);
        assert_eq!(tx.stats().frames_replied, 0);

        let mut one = ClassicSender::new(ClassicSenderConfig {
            chunk_size: 0,
            ..ClassicSenderConfig::default()
        });
        assert_eq!(
            one.send_frame(t, vec![0; MAX_ONE_DATAGRAM + 1]),
            Err(ClassicSendError::TooLargeForOneDatagram {
                len: MAX_ONE_DATAGRAM + 1
            })
        );
        one.send_frame(t, image.clone()).unwrap();
        assert!(one.poll_transmit(&mut buf));
        assert_eq!(buf, image);
        assert!(!one.poll_transmit(&mut buf));
    }

    proptest::proptest! {
        /// Whatever arrives, in whatever order: no panic, and nothing released that is not one
        /// whole image by its markers. (Exactness needs the datagrams in order and a sender that
        /// waits for its answer: the lossy test below. Reordered or forged datagrams can splice
        /// two images: the protocol has no integrity check.)
        #[test]
        fn arbitrary_datagrams_never_release_damage(
            ops in proptest::collection::vec(
                (0u8..4, 0usize..64, proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0u64..400),
                1..200,
            )
        ) {
            let images = [fake_jpeg(3000, 1), fake_png(2500, 2), fake_jpeg(1100, 3)];
            let pieces: Vec<Vec<u8>> = images
                .iter()
                .flat_map(|img| original_datagrams(img, 8))
                .collect();
            let mut rx = ClassicReceiver::new(ClassicConfig::default());
            let mut now = Instant::now();
            let mut buf = Vec::new();
            for (kind, index, junk, wait_ms) in ops {
                now += Duration::from_millis(wait_ms);
                let from = addr(1 + u16::from(kind % 2));
                match kind {
                    0 | 1 => rx.handle_datagram(now, from, &pieces[index % pieces.len()]),
                    2 => rx.handle_datagram(now, from, &junk),
                    _ => rx.handle_timeout(now),
                }
                while let Some(e) = rx.poll_event() {
                    if let ClassicEvent::Image(img) = e {
                        proptest::prop_assert!(whole_image(&img.data).is_some());
                    }
                }
                while rx.poll_transmit(&mut buf).is_some() {}
            }
        }
    }

    /// The lossy case on simulated time: 2% of the client's datagrams lost. Every image is
    /// answered before the client's timeout, within the give-up time of its last datagram, and
    /// every image released is exactly the one sent.
    #[test]
    fn two_percent_loss_every_image_answered_none_damaged() {
        let config = ClassicConfig::default();
        let mut rx = ClassicReceiver::new(config.clone());
        let mut tx = ClassicSender::new(ClassicSenderConfig::default());
        let mut link = Link::new(Impairment {
            loss: 0.02,
            delay: MS,
            seed: 42,
            ..Impairment::default()
        });
        let viewer_to_client = MS;
        let mut now = Instant::now();
        let mut buf = Vec::new();
        let (mut good, mut lost) = (0, 0);
        for n in 0..1000u64 {
            let image = if n % 3 == 0 {
                fake_png(20_000 + (n as usize * 37) % 5000, n)
            } else {
                fake_jpeg(5_000 + (n as usize * 101) % 30_000, n)
            };
            tx.send_frame(now, image.clone()).unwrap();
            let sent_at = now;
            while tx.poll_transmit(&mut buf) {
                link.send(now, &buf);
            }
            let last_sent = now;
            // Drive the viewer until it answers.
            let answered_at = loop {
                let wake = [link.next_delivery(), rx.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .expect("the viewer must have something pending until it answers");
                now = now.max(wake);
                while let Some(d) = link.poll_deliver(now) {
                    rx.handle_datagram(now, addr(9), &d);
                }
                rx.handle_timeout(now);
                if let Some(to) = rx.poll_transmit(&mut buf) {
                    assert_eq!(to, addr(9));
                    break now + viewer_to_client;
                }
            };
            assert!(
                answered_at <= last_sent + MS + config.give_up_after + viewer_to_client,
                "image {n} answered {:?} after its last datagram",
                answered_at - last_sent
            );
            tx.handle_datagram(answered_at, &buf);
            now = answered_at;
            while let Some(event) = rx.poll_event() {
                match event {
                    ClassicEvent::Image(img) => {
                        assert_eq!(img.data, image, "image {n} released damaged");
                        good += 1;
                    }
                    ClassicEvent::GaveUp { replied, .. } => lost += u64::from(replied),
                    ClassicEvent::NewSender(_) => {}
                }
            }
            assert!(now - sent_at < Duration::from_secs(1));
            // The next image goes a little later, as after a decode and a capture.
            now += 5 * MS;
        }
        let s = tx.stats();
        eprintln!("1000 images at 2% loss: {good} whole, {lost} answered lost; {s:?}");
        assert_eq!(s.frames_replied, 1000);
        assert_eq!(s.frames_timed_out, 0);
        assert_eq!(good + lost, 1000);
        assert_eq!(s.frames_reported_lost, lost);
        assert!(
            lost > 50,
            "2% loss over ~20 datagrams should cost images: {lost}"
        );
        assert_eq!(rx.stats().images_completed, good);
    }
}
