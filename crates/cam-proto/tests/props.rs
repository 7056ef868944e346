//! Property tests: the parser on arbitrary bytes, and the receiver and sender on arbitrary
//! interleavings of genuine, duplicated, truncated, mutated and forged datagrams. Nothing
//! panics, nothing is emitted that does not parse, and no frame is ever released whose bytes
//! differ from a frame that was sent.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::{Receiver, ReceiverConfig, ReceiverEvent};
use cam_proto::sender::{OutgoingFrame, Sender, SenderConfig};
use cam_proto::wire::{
    chunk_count, AckRepr, AckStatus, Body, ChunkRepr, Codec, CommonRepr, Datagram, HeaderRepr,
    Kind, MissingRange, MissingRanges, HEADER_LEN, MAX_ACK_RANGES,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

/// A datagram's meaning with owned storage, so a strategy can produce it.
#[derive(Debug, Clone)]
enum OwnedBody {
    Header(HeaderRepr),
    Chunk {
        index: u32,
        total_len: u32,
        crc32: u32,
        chunk_size: u16,
        payload: Vec<u8>,
    },
    Ack {
        status: AckStatus,
        header_missing: bool,
        window: u16,
        largest_pn: u64,
        ack_delay_us: u32,
        ranges: Vec<MissingRange>,
    },
    Probe,
}

#[derive(Debug, Clone)]
struct Owned {
    stream_id: u32,
    packet_number: u64,
    frame_seq: u32,
    body: OwnedBody,
}

impl Owned {
    fn datagram(&self) -> Datagram<'_> {
        let (kind, body) = match &self.body {
            OwnedBody::Header(h) => (Kind::Header, Body::Header(*h)),
            OwnedBody::Chunk {
                index,
                total_len,
                crc32,
                chunk_size,
                payload,
            } => (
                Kind::Chunk,
                Body::Chunk(ChunkRepr {
                    index: *index,
                    total_len: *total_len,
                    crc32: *crc32,
                    chunk_size: *chunk_size,
                    codec: Codec::Jpeg,
                    payload,
                }),
            ),
            OwnedBody::Ack {
                status,
                header_missing,
                window,
                largest_pn,
                ack_delay_us,
                ranges,
            } => (
                Kind::Ack,
                Body::Ack(AckRepr {
                    status: *status,
                    header_missing: *header_missing,
                    window: *window,
                    largest_pn: *largest_pn,
                    ack_delay_us: *ack_delay_us,
                    corrupt: 0,
                    missing: MissingRanges::List(ranges),
                }),
            ),
            OwnedBody::Probe => (Kind::Probe, Body::Probe),
        };
        Datagram {
            common: CommonRepr {
                kind,
                stream_id: self.stream_id,
                packet_number: self.packet_number,
                frame_seq: self.frame_seq,
            },
            body,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.datagram().emit(&mut buf);
        buf
    }
}

fn header_strategy() -> impl Strategy<Value = HeaderRepr> {
    (
        1..=u32::MAX,
        1..=u16::MAX,
        any::<u16>(),
        any::<u16>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(total_len, chunk_size, width, height, capture_ts_us, crc32)| HeaderRepr {
                total_len,
                chunk_size,
                codec: Codec::Jpeg,
                width,
                height,
                capture_ts_us,
                crc32,
            },
        )
}

fn chunk_strategy() -> impl Strategy<Value = OwnedBody> {
    // Small frames most of the time, so payloads are short but every index is reachable.
    let total_len = prop_oneof![3 => 1..5_000u32, 1 => 1..=u32::MAX];
    (total_len, 1..=1_500u16, any::<u32>()).prop_flat_map(|(total_len, chunk_size, crc32)| {
        let count = chunk_count(total_len, chunk_size);
        (0..count).prop_flat_map(move |index| {
            let start = u64::from(index) * u64::from(chunk_size);
            let len = (u64::from(total_len) - start).min(u64::from(chunk_size)) as usize;
            prop::collection::vec(any::<u8>(), len..=len).prop_map(move |payload| {
                OwnedBody::Chunk {
                    index,
                    total_len,
                    crc32,
                    chunk_size,
                    payload,
                }
            })
        })
    })
}

/// Ascending, disjoint, non-empty ranges, as the parser demands.
fn ranges_strategy() -> impl Strategy<Value = Vec<MissingRange>> {
    prop_oneof![
        1 => Just(vec![MissingRange { start: 0, len: u32::MAX }]),
        4 => prop::collection::vec((0..5_000u32, 1..5_000u32), 0..=MAX_ACK_RANGES).prop_map(
            |gaps| {
                let mut next = 0u32;
                gaps.into_iter()
                    .map(|(gap, len)| {
                        let start = next + gap;
                        next = start + len;
                        MissingRange { start, len }
                    })
                    .collect()
            }
        ),
    ]
}

fn ack_strategy() -> impl Strategy<Value = OwnedBody> {
    (
        0..3u8,
        any::<bool>(),
        any::<u16>(),
        any::<u64>(),
        any::<u32>(),
        ranges_strategy(),
    )
        .prop_map(
            |(status, header_missing, window, largest_pn, ack_delay_us, ranges)| {
                let (status, header_missing, ranges) = match status {
                    0 => (AckStatus::Complete, false, Vec::new()),
                    1 => (AckStatus::Gone, false, Vec::new()),
                    // Incomplete must name something missing.
                    _ => (
                        AckStatus::Incomplete,
                        header_missing || ranges.is_empty(),
                        ranges,
                    ),
                };
                OwnedBody::Ack {
                    status,
                    header_missing,
                    window,
                    largest_pn,
                    ack_delay_us,
                    ranges,
                }
            },
        )
}

fn owned_strategy() -> impl Strategy<Value = Owned> {
    let body = prop_oneof![
        header_strategy().prop_map(OwnedBody::Header),
        chunk_strategy(),
        ack_strategy(),
        Just(OwnedBody::Probe),
    ];
    (any::<u32>(), any::<u64>(), any::<u32>(), body).prop_map(
        |(stream_id, packet_number, frame_seq, body)| Owned {
            stream_id,
            packet_number,
            frame_seq,
            body,
        },
    )
}

/// A change to a datagram's bytes: what a fuzzer would do, aimed at the fields that matter.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite one byte (position taken modulo the length).
    SetByte(usize, u8),
    /// Overwrite four bytes with a big-endian value (position modulo the length).
    SetWord(usize, u32),
    Truncate(usize),
    Append(Vec<u8>),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::SetByte(p, v)),
        // Field-sized overwrites in the headers, where lengths, indices and ids live.
        3 => (0..HEADER_LEN + 24, any::<u32>()).prop_map(|(p, v)| Mutation::SetWord(p, v)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::SetByte(p, v) if !bytes.is_empty() => {
            let p = p % bytes.len();
            bytes[p] = *v;
        }
        Mutation::SetWord(p, v) if bytes.len() >= 4 => {
            let p = p % (bytes.len() - 3);
            bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Truncate(n) => bytes.truncate(n % (bytes.len() + 1)),
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        _ => {}
    }
}

/// Whatever parses re-emits to exactly the same bytes: one encoding per meaning, so nothing
/// the parser accepts carries information the parser ignored.
fn assert_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(datagram) = Datagram::parse(bytes) {
        let mut again = Vec::new();
        datagram.emit(&mut again);
        prop_assert_eq!(&again[..], bytes, "{:?}", datagram);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_canonical(&bytes)?;
    }

    /// Arbitrary bytes behind a valid common header, so the body parsers see them too.
    #[test]
    fn parse_never_panics_on_arbitrary_bodies(
        kind in 0..6u8,
        body in prop::collection::vec(any::<u8>(), 0..1_200),
    ) {
        let mut bytes = vec![b'C', b'S', 1, kind, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0; HEADER_LEN - 8]);
        bytes.extend_from_slice(&body);
        assert_canonical(&bytes)?;
    }

    #[test]
    fn valid_datagrams_round_trip(owned in owned_strategy()) {
        let bytes = owned.bytes();
        prop_assert_eq!(bytes.len(), owned.datagram().buffer_len());
        let parsed = Datagram::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&owned.datagram()));
        assert_canonical(&bytes)?;
    }

    #[test]
    fn mutated_datagrams_never_panic_and_stay_canonical(
        owned in owned_strategy(),
        mutations in prop::collection::vec(mutation_strategy(), 1..4),
    ) {
        let mut bytes = owned.bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        assert_canonical(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

const STREAM: u32 = 0x5eed_0001;
const GENUINE: &str = "10.0.0.2:5000";
const ATTACKER: &str = "10.6.6.6:666";
const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Frames cut by a real `Sender`, and every datagram it sent for each (header and chunks,
/// collected over an honest exchange with a receiver so that each frame is acknowledged).
struct Recorded {
    frames: Vec<Vec<u8>>,
    datagrams: Vec<Vec<Vec<u8>>>,
}

fn record(frames: Vec<Vec<u8>>, chunk_size: u16) -> Recorded {
    let mut now = Instant::now();
    let genuine: SocketAddr = GENUINE.parse().unwrap();
    let mut sender = Sender::new(
        STREAM,
        0,
        SenderConfig {
            chunk_size,
            ..SenderConfig::default()
        },
    );
    let mut scratch = Receiver::new(ReceiverConfig::default());
    let mut buf = Vec::new();
    let mut datagrams = Vec::new();
    for (seq, data) in frames.iter().enumerate() {
        assert!(sender.can_send());
        let got = sender
            .send_frame(
                now,
                OutgoingFrame {
                    data: data.clone(),
                    width: 64,
                    height: 48,
                    capture_ts_us: 1_700_000_000_000_000 + seq as u64,
                },
            )
            .unwrap();
        assert_eq!(got as usize, seq);
        let mut these = Vec::new();
        while sender.poll_transmit(now, &mut buf) {
            scratch.handle_datagram(now, genuine, &buf).unwrap();
            these.push(buf.clone());
        }
        while scratch.poll_transmit(now, &mut buf).is_some() {
            sender.handle_datagram(now, &buf).unwrap();
        }
        assert_eq!(sender.frames_in_flight(), 0, "frame {seq} not acknowledged");
        datagrams.push(these);
        now += Duration::from_millis(1);
    }
    Recorded { frames, datagrams }
}

#[derive(Debug, Clone)]
enum Op {
    /// Deliver genuine datagram `pick` (modulo the count), as sent.
    Genuine {
        pick: usize,
        from_attacker: bool,
    },
    /// A copy of a genuine datagram with some bytes changed.
    Mutated {
        pick: usize,
        mutations: Vec<Mutation>,
        from_attacker: bool,
    },
    /// A genuine datagram relabelled: another stream id and/or frame sequence.
    Relabelled {
        pick: usize,
        stream_id: Option<u32>,
        frame_seq: Option<u32>,
        from_attacker: bool,
    },
    /// A valid header for a frame of `total_len` bytes (some over the limit).
    BigHeader {
        total_len: u32,
        stream_id: Option<u32>,
        frame_seq: u32,
        from_attacker: bool,
    },
    Garbage {
        bytes: Vec<u8>,
        from_attacker: bool,
    },
    /// Let simulated time pass.
    Wait {
        ms: u16,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let who = prop_oneof![1 => Just(false), 1 => Just(true)];
    let id = prop_oneof![1 => Just(None), 1 => any::<u32>().prop_map(Some)];
    let seq = prop_oneof![2 => (0..8u32).prop_map(Some), 1 => any::<u32>().prop_map(Some), 1 => Just(None)];
    prop_oneof![
        8 => (any::<usize>(), prop_oneof![5 => Just(false), 1 => Just(true)])
            .prop_map(|(pick, from_attacker)| Op::Genuine { pick, from_attacker }),
        3 => (any::<usize>(), prop::collection::vec(mutation_strategy(), 1..3), who.clone())
            .prop_map(|(pick, mutations, from_attacker)| Op::Mutated { pick, mutations, from_attacker }),
        2 => (any::<usize>(), id.clone(), seq, who.clone())
            .prop_map(|(pick, stream_id, frame_seq, from_attacker)| Op::Relabelled {
                pick, stream_id, frame_seq, from_attacker,
            }),
        1 => (MAX_FRAME_BYTES / 2..MAX_FRAME_BYTES * 2, id, any::<u32>(), who.clone())
            .prop_map(|(total_len, stream_id, frame_seq, from_attacker)| Op::BigHeader {
                total_len, stream_id, frame_seq, from_attacker,
            }),
        1 => (prop::collection::vec(any::<u8>(), 0..64), who)
            .prop_map(|(bytes, from_attacker)| Op::Garbage { bytes, from_attacker }),
        1 => prop_oneof![3 => 0..50u16, 1 => 0..3_000u16].prop_map(|ms| Op::Wait { ms }),
    ]
}

fn relabel(bytes: &mut [u8], stream_id: Option<u32>, frame_seq: Option<u32>) {
    if let Some(id) = stream_id {
        bytes[8..12].copy_from_slice(&id.to_be_bytes());
    }
    if let Some(seq) = frame_seq {
        bytes[20..24].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Feeds a receiver and checks, after every datagram, what it releases and what it answers.
struct Harness<'a> {
    recorded: &'a Recorded,
    receiver: Receiver,
    now: Instant,
    buf: Vec<u8>,
    /// Released frames: (stream id, from, seq, bytes).
    released: Vec<(u32, SocketAddr, u32, Vec<u8>)>,
    /// For each released frame, how many streams had been adopted by then: the order
    /// guarantee holds within one adoption (a stream adopted again starts afresh).
    adoption: Vec<u32>,
    adoptions: u32,
    /// Set once a datagram that parses but is not genuine came from the genuine address:
    /// without authentication nothing can tell it from the real client (PROTOCOL.md).
    forged_from_genuine: bool,
}

impl Harness<'_> {
    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) -> Result<(), TestCaseError> {
        let genuine_addr: SocketAddr = GENUINE.parse().unwrap();
        if from == genuine_addr
            && Datagram::parse(bytes).is_ok()
            && !self.recorded.datagrams.iter().flatten().any(|d| d == bytes)
        {
            self.forged_from_genuine = true;
        }
        let _ = self.receiver.handle_datagram(self.now, from, bytes);
        self.settle()
    }

    fn wait(&mut self, by: Duration) -> Result<(), TestCaseError> {
        let end = self.now + by;
        while let Some(t) = self.receiver.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.receiver.handle_timeout(self.now);
            self.settle()?;
        }
        self.now = end;
        self.receiver.handle_timeout(self.now);
        self.settle()
    }

    fn settle(&mut self) -> Result<(), TestCaseError> {
        while let Some(event) = self.receiver.poll_event() {
            if let ReceiverEvent::StreamStarted { .. } = event {
                self.adoptions += 1;
            }
            if let ReceiverEvent::Frame(f) = event {
                prop_assert!(
                    self.recorded.frames.contains(&f.data),
                    "released {} bytes as frame {} of stream {:08x} from {}: not a frame that was sent",
                    f.data.len(),
                    f.seq,
                    f.stream_id,
                    f.remote
                );
                self.released.push((f.stream_id, f.remote, f.seq, f.data));
                self.adoption.push(self.adoptions);
            }
        }
        while let Some(to) = self.receiver.poll_transmit(self.now, &mut self.buf) {
            let current = self.receiver.current_stream();
            prop_assert_eq!(Some(to), current.map(|c| c.1));
            let ack = Datagram::parse(&self.buf);
            prop_assert!(ack.is_ok(), "receiver emitted an unparsable ack: {:?}", ack);
            let ack = ack.unwrap();
            prop_assert_eq!(ack.common.kind, Kind::Ack);
            prop_assert_eq!(Some(ack.common.stream_id), current.map(|c| c.0));
        }
        let bound = 8 * MAX_FRAME_BYTES as usize;
        prop_assert!(
            self.receiver.buffered_bytes() <= bound,
            "{} bytes buffered",
            self.receiver.buffered_bytes()
        );
        Ok(())
    }
}

fn frames_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    // Some frames share a length, so a relabelled chunk can fit another frame's shape.
    prop::collection::vec(
        prop_oneof![
            1 => prop::collection::vec(any::<u8>(), 1_000..=1_000),
            2 => prop::collection::vec(any::<u8>(), 1..3_000),
        ],
        3..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn receiver_never_releases_a_frame_that_was_not_sent(
        frames in frames_strategy(),
        chunk_size in prop_oneof![Just(1200u16), 64..600u16],
        ops in prop::collection::vec(op_strategy(), 1..200),
    ) {
        let recorded = record(frames, chunk_size);
        let genuine: SocketAddr = GENUINE.parse().unwrap();
        let attacker: SocketAddr = ATTACKER.parse().unwrap();
        // The last frame is held back to check, at the end, that the stream still works.
        let last = recorded.datagrams.len() - 1;
        let pool: Vec<&Vec<u8>> = recorded.datagrams[..last].iter().flatten().collect();
        let mut h = Harness {
            recorded: &recorded,
            receiver: Receiver::new(ReceiverConfig {
                max_frame_bytes: MAX_FRAME_BYTES,
                ..ReceiverConfig::default()
            }),
            now: Instant::now(),
            buf: Vec::new(),
            released: Vec::new(),
            adoption: Vec::new(),
            adoptions: 0,
            forged_from_genuine: false,
        };
        let addr = |a: bool| if a { attacker } else { genuine };
        for op in &ops {
            match op {
                Op::Genuine { pick, from_attacker } => {
                    h.deliver(addr(*from_attacker), pool[pick % pool.len()])?;
                }
                Op::Mutated { pick, mutations, from_attacker } => {
                    let mut bytes = pool[pick % pool.len()].clone();
                    for m in mutations {
                        mutate(&mut bytes, m);
                    }
                    h.deliver(addr(*from_attacker), &bytes)?;
                }
                Op::Relabelled { pick, stream_id, frame_seq, from_attacker } => {
                    let mut bytes = pool[pick % pool.len()].clone();
                    relabel(&mut bytes, *stream_id, *frame_seq);
                    h.deliver(addr(*from_attacker), &bytes)?;
                }
                Op::BigHeader { total_len, stream_id, frame_seq, from_attacker } => {
                    let bytes = Owned {
                        stream_id: stream_id.unwrap_or(STREAM),
                        packet_number: 1 << 40,
                        frame_seq: *frame_seq,
                        body: OwnedBody::Header(HeaderRepr {
                            total_len: *total_len,
                            chunk_size: 1200,
                            codec: Codec::Jpeg,
                            width: 4096,
                            height: 4096,
                            capture_ts_us: 0,
                            crc32: 0,
                        }),
                    }
                    .bytes();
                    h.deliver(addr(*from_attacker), &bytes)?;
                }
                Op::Garbage { bytes, from_attacker } => h.deliver(addr(*from_attacker), bytes)?,
                Op::Wait { ms } => h.wait(Duration::from_millis(u64::from(*ms)))?,
            }
        }

        // Within one adoption of a stream, frames come out in order, each once.
        for (pair, adoption) in h.released.windows(2).zip(h.adoption.windows(2)) {
            let (a, b) = (&pair[0], &pair[1]);
            if adoption[0] == adoption[1] {
                prop_assert!(
                    b.2.wrapping_sub(a.2).wrapping_sub(1) < 1 << 31,
                    "frame {} released after frame {}", b.2, a.2
                );
            }
        }
        if h.forged_from_genuine {
            return Ok(());
        }
        // Nothing forged came from the client's address: every frame released as the genuine
        // stream is exactly the frame sent under that number.
        for (id, from, seq, data) in &h.released {
            if *id == STREAM && *from == genuine {
                let sent = recorded.frames.get(*seq as usize);
                prop_assert!(sent == Some(data), "frame {} differs from the one sent", seq);
            }
        }
        // And the genuine stream still gets through once the attacker falls silent.
        h.wait(Duration::from_secs(3))?;
        let before = h.released.len();
        for d in &recorded.datagrams[last] {
            h.deliver(genuine, d)?;
        }
        prop_assert_eq!(h.released.len(), before + 1, "the last frame was not released");
        let (id, from, seq, data) = &h.released[before];
        prop_assert_eq!((*id, *from, *seq as usize), (STREAM, genuine, last));
        prop_assert!(data == &recorded.frames[last]);
    }
}

// ---------------------------------------------------------------------------------------------
// The sender
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile acks (valid ones with arbitrary ranges, credit and packet numbers, and
    /// mutated or random bytes) never make the sender panic or send bytes that are not the
    /// frame's own.
    #[test]
    fn sender_survives_hostile_acks(
        data in prop::collection::vec(any::<u8>(), 1..20_000),
        acks in prop::collection::vec(
            (ack_strategy(), 0..4u32, prop::collection::vec(mutation_strategy(), 0..2), 0..40u16),
            1..60,
        ),
    ) {
        let mut now = Instant::now();
        let mut sender = Sender::new(STREAM, 0, SenderConfig { chunk_size: 500, ..SenderConfig::default() });
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut buf = Vec::new();
        for (body, seq, mutations, wait_ms) in acks {
            if sender.can_send() {
                let mut frame = data.clone();
                frame.push(frames.len() as u8);
                sender
                    .send_frame(now, OutgoingFrame { data: frame.clone(), width: 8, height: 8, capture_ts_us: 0 })
                    .unwrap();
                frames.push(frame);
            }
            while sender.poll_transmit(now, &mut buf) {
                let d = Datagram::parse(&buf);
                prop_assert!(d.is_ok(), "sender emitted an unparsable datagram: {:?}", d);
                let d = d.unwrap();
                prop_assert_eq!(d.common.stream_id, STREAM);
                let sent = frames.get(d.common.frame_seq as usize);
                prop_assert!(sent.is_some(), "datagram for frame {} never given", d.common.frame_seq);
                let sent = sent.unwrap();
                match d.body {
                    Body::Chunk(c) => {
                        prop_assert_eq!(c.total_len as usize, sent.len());
                        prop_assert_eq!(c.payload, &sent[c.offset()..c.offset() + c.payload.len()]);
                    }
                    Body::Header(hd) => prop_assert_eq!(hd.crc32, crc32fast_hash(sent)),
                    Body::Probe => {}
                    // This sender has no name configured.
                    Body::Name(_) => prop_assert!(false, "the sender sent a name it was not given"),
                    Body::Ack(_) => prop_assert!(false, "the sender sent an ack"),
                }
            }
            let mut bytes = Owned { stream_id: STREAM, packet_number: 0, frame_seq: seq, body }.bytes();
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            let _ = sender.handle_datagram(now, &bytes);
            while sender.poll_event().is_some() {}
            now += Duration::from_millis(u64::from(wait_ms));
            if sender.poll_timeout().is_some_and(|t| t <= now) {
                sender.handle_timeout(now);
            }
            prop_assert!(sender.frames_in_flight() <= 8);
        }
    }
}

/// CRC-32 (IEEE), bitwise: the test's own reference, independent of the crate's dependency.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
