//! The protocol's hot paths, per 720p frame (about 220 KB, 184 chunks of 1,200 bytes): what
//! the client and viewer spend outside the codec and the system calls. `cargo bench -p cam-proto`.
//!
//! Timings live here and in scripts/bench*, never in tests.

#![allow(clippy::unwrap_used)] // a benchmark may panic on what it set up itself

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use cam_proto::assembler::FrameAssembly;
use cam_proto::receiver::{Receiver, ReceiverConfig, ReceiverEvent};
use cam_proto::sender::{OutgoingFrame, Sender, SenderConfig};
use cam_proto::wire::{
    AckRepr, AckStatus, Body, ChunkRepr, Codec, CommonRepr, Datagram, Kind, MissingRanges,
    MAX_ACK_RANGES,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A 1280x720 JPEG at quality 80 from the benchmark's textured frames.
const FRAME_BYTES: usize = 220_000;
const CHUNK: u16 = 1200;

/// Incompressible bytes, as a JPEG's are.
fn frame_bytes() -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..FRAME_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn outgoing(data: Vec<u8>) -> OutgoingFrame {
    OutgoingFrame {
        data,
        width: 1280,
        height: 720,
        capture_ts_us: 1,
    }
}

fn sender() -> Sender {
    Sender::new(
        7,
        0,
        SenderConfig {
            chunk_size: CHUNK,
            ..SenderConfig::default()
        },
    )
}

/// Every datagram of one frame, as the client sends it: header, then chunks in order.
fn frame_datagrams(data: &[u8]) -> Vec<Vec<u8>> {
    let mut sender = sender();
    let now = Instant::now();
    sender.send_frame(now, outgoing(data.to_vec())).unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while sender.poll_transmit(now, &mut buf) {
        out.push(buf.clone());
    }
    out
}

fn parse(c: &mut Criterion) {
    let data = frame_bytes();
    let datagrams = frame_datagrams(&data);
    let chunk = &datagrams[1];
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    group.bench_function("chunk_1200", |b| {
        b.iter(|| Datagram::parse(black_box(chunk)).unwrap())
    });
    group.finish();
}

fn assemble(c: &mut Criterion) {
    let data = frame_bytes();
    let datagrams = frame_datagrams(&data);
    let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut group = c.benchmark_group("assemble");
    group.throughput(Throughput::Bytes(FRAME_BYTES as u64));
    // Parse, place, CRC check, release and the complete ack: the viewer's whole share.
    group.bench_function("receiver_720p_frame", |b| {
        b.iter_batched(
            || Receiver::new(ReceiverConfig::default()),
            |mut receiver| {
                let now = Instant::now();
                for d in &datagrams {
                    receiver.handle_datagram(now, remote, d).unwrap();
                }
                let mut ack = Vec::new();
                let to = receiver.poll_transmit(now, &mut ack);
                let frame = receiver.poll_event().into_iter().find_map(|e| match e {
                    ReceiverEvent::Frame(f) => Some(f),
                    _ => None,
                });
                (to, frame)
            },
            BatchSize::SmallInput,
        )
    });
    // The assembler alone: chunks placed into the frame's buffer, then the CRC.
    let chunks: Vec<ChunkRepr<'_>> = datagrams
        .iter()
        .filter_map(|d| match Datagram::parse(d).unwrap().body {
            Body::Chunk(c) => Some(c),
            _ => None,
        })
        .collect();
    group.bench_function("assembler_720p_frame", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut a = FrameAssembly::from_chunk(1, &chunks[0], now);
            for chunk in &chunks {
                a.accept_chunk(chunk, now);
            }
            assert!(a.is_complete() && a.crc_matches());
            a.into_data()
        })
    });
    group.finish();
}

fn ack(c: &mut Criterion) {
    let data = frame_bytes();
    let crc = crc32fast::hash(&data);
    let chunk_at = |index: u32| {
        let start = index as usize * usize::from(CHUNK);
        ChunkRepr {
            index,
            total_len: FRAME_BYTES as u32,
            crc32: crc,
            chunk_size: CHUNK,
            codec: Codec::Jpeg,
            payload: &data[start..(start + usize::from(CHUNK)).min(FRAME_BYTES)],
        }
    };
    let now = Instant::now();
    let mut holed = FrameAssembly::from_chunk(1, &chunk_at(0), now);
    // Every third chunk lost: more runs than one ack carries.
    for index in (0..holed.chunk_count()).filter(|i| i % 3 != 1) {
        holed.accept_chunk(&chunk_at(index), now);
    }
    let mut ranges = Vec::with_capacity(MAX_ACK_RANGES);
    let mut buf = Vec::new();
    c.bench_function("ack/missing_ranges_720p", |b| {
        b.iter(|| {
            holed.missing_ranges(&mut ranges, MAX_ACK_RANGES);
            Datagram {
                common: CommonRepr {
                    kind: Kind::Ack,
                    stream_id: 7,
                    packet_number: 1,
                    frame_seq: 1,
                },
                body: Body::Ack(AckRepr {
                    status: AckStatus::Incomplete,
                    header_missing: false,
                    window: 8,
                    largest_pn: 200,
                    ack_delay_us: 0,
                    corrupt: 0,
                    missing: MissingRanges::List(&ranges),
                }),
            }
            .emit(&mut buf);
            buf.len()
        })
    });
}

fn send(c: &mut Criterion) {
    let data = frame_bytes();
    let mut group = c.benchmark_group("sender");
    group.throughput(Throughput::Bytes(FRAME_BYTES as u64));
    // CRC, then every datagram of the frame built into the caller's buffer.
    group.bench_function("poll_transmit_720p_frame", |b| {
        b.iter_batched(
            || (sender(), outgoing(data.clone())),
            |(mut sender, frame)| {
                let now = Instant::now();
                sender.send_frame(now, frame).unwrap();
                let mut buf = Vec::with_capacity(2048);
                let mut sent = 0;
                while sender.poll_transmit(now, &mut buf) {
                    sent += buf.len();
                }
                sent
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A client and a viewer session after a real handshake, with the AEAD `offer` names.
fn sessions(
    offer: cam_proto::secure::AeadSet,
) -> (cam_proto::secure::Session, cam_proto::secure::Session) {
    use cam_proto::secure::{answer_hello, ClientHandshake, HelloKey, Psk};
    use cam_proto::wire::HandshakeDatagram;
    let psk = Psk::from_bytes([7; 32]);
    let rng = ring::rand::SystemRandom::new();
    let client = ClientHandshake::start(&rng, 0, offer).unwrap();
    let mut hello = Vec::new();
    client.emit_hello(&HelloKey::new(&psk), 7, 0, &mut hello);
    let hello = HandshakeDatagram::parse(&hello).unwrap();
    let viewer = answer_hello(&psk, &rng, &hello, 0, offer).unwrap();
    let reply = HandshakeDatagram::parse(viewer.reply()).unwrap();
    let client = client.finish(&psk, viewer.reply(), &reply).unwrap();
    (client, viewer)
}

/// Keyed mode's cost per chunk datagram, for each AEAD a handshake can choose.
fn seal_open(c: &mut Criterion) {
    use cam_proto::secure::{AeadSet, REKEY_AFTER_PACKETS};
    let datagram = frame_datagrams(&frame_bytes()).swap_remove(1);
    let mut group = c.benchmark_group("keyed");
    group.throughput(Throughput::Bytes(datagram.len() as u64));
    for offer in [AeadSet::AES_256_GCM, AeadSet::CHACHA20_POLY1305] {
        let (mut client, viewer) = sessions(offer);
        let name = client.aead().name();
        let mut buf = Vec::with_capacity(datagram.len() + 16);
        group.bench_function(format!("seal_chunk_1200/{name}"), |b| {
            // A session seals a limited number of datagrams (as the client would, it is
            // replaced in time); the handshakes are not timed.
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(REKEY_AFTER_PACKETS);
                    let (mut client, _) = sessions(offer);
                    let started = Instant::now();
                    for _ in 0..n {
                        buf.clone_from(&datagram);
                        client.seal(black_box(&mut buf)).unwrap();
                    }
                    total += started.elapsed();
                    left -= n;
                }
                total
            })
        });
        let mut sealed = datagram.clone();
        client.seal(&mut sealed).unwrap();
        let mut out = Vec::with_capacity(datagram.len());
        group.bench_function(format!("open_chunk_1200/{name}"), |b| {
            b.iter(|| viewer.open(black_box(&sealed), &mut out).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, parse, assemble, ack, send, seal_open);
criterion_main!(benches);
