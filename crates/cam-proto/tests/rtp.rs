//! RTP/JPEG end to end, sans IO: `RtpSender` → `sim::Link` → `RtpReceiver` (and RTCP
//! back) on simulated time. Loss, reordering, wrap, Appendix A tables, hostile input.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::machine::{CompleteFrame, FrameReceiver, FrameSender, OutgoingFrame, ReceiveEvent};
use cam_proto::rtp::jpeg::widen;
use cam_proto::rtp::wire::{
    JpegHeaderRepr, JpegPayloadRepr, QTablesRepr, RtpPacket, RtpRepr, RTP_HEADER_LEN,
};
use cam_proto::rtp::{
    check_jpeg, q_tables, RtpReceiver, RtpReceiverConfig, RtpSender, RtpSenderConfig,
};
use cam_proto::sim::{Impairment, Link};
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);
const JPEG: &[u8] = include_bytes!("fixtures/testsrc-320x240-420.jpg");
const JPEG_422: &[u8] = include_bytes!("fixtures/smpte-64x48-422-gstreamer.jpg");
/// Capture time of frame 0, µs since the Unix epoch.
const T0_US: u64 = 1_764_000_000_000_000;

/// Frame `k`: the fixture with a few scan bytes changed (the scan is opaque to RTP), so
/// every frame differs and a mix-up shows. Never creates or removes an 0xFF.
fn frame_bytes(k: usize) -> Vec<u8> {
    let info = check_jpeg(JPEG).unwrap();
    let mut data = JPEG.to_vec();
    let scan = info.scan.clone();
    for n in 0..4 {
        let at = scan.start + (k * 131 + n * 977) % (scan.len() - 2);
        if data[at] != 0xff && data[at - 1] != 0xff {
            data[at] = (k as u8).wrapping_add(n as u8) & 0x7f;
        }
    }
    data
}

type DropRule = Box<dyn FnMut(&[u8]) -> bool>;

struct RtpPair {
    now: Instant,
    sender: RtpSender,
    receiver: RtpReceiver,
    to_viewer: Link<SocketAddr>,
    to_client: Link<SocketAddr>,
    client: SocketAddr,
    viewer: SocketAddr,
    buf: Vec<u8>,
    sent: Vec<(Vec<u8>, u64)>,
    delivered: Vec<CompleteFrame>,
    streams: Vec<u32>,
    /// Returns true for a forward datagram to lose on purpose.
    drop_rule: Option<DropRule>,
    next_frame_at: Instant,
    frame_interval: Duration,
    to_send: usize,
}

impl RtpPair {
    fn new(
        sender: RtpSenderConfig,
        receiver: RtpReceiverConfig,
        fwd: Impairment,
        back: Impairment,
    ) -> RtpPair {
        let now = Instant::now();
        let viewer: SocketAddr = "10.0.0.1:5004".parse().unwrap();
        RtpPair {
            now,
            sender: RtpSender::new(viewer, sender),
            receiver: RtpReceiver::new(receiver),
            to_viewer: Link::new(fwd),
            to_client: Link::new(back),
            client: "10.0.0.2:40000".parse().unwrap(),
            viewer,
            buf: Vec::new(),
            sent: Vec::new(),
            delivered: Vec::new(),
            streams: Vec::new(),
            drop_rule: None,
            next_frame_at: now,
            frame_interval: 33 * MS,
            to_send: 0,
        }
    }

    fn clean(sender: RtpSenderConfig) -> RtpPair {
        RtpPair::new(
            sender,
            RtpReceiverConfig::default(),
            Impairment::default(),
            Impairment::default(),
        )
    }

    fn step(&mut self) {
        if self.to_send > 0 && self.now >= self.next_frame_at {
            let k = self.sent.len();
            let data = frame_bytes(k);
            let capture = T0_US + k as u64 * 33_333;
            self.sender
                .send_frame(
                    self.now,
                    OutgoingFrame {
                        data: data.clone(),
                        width: 320,
                        height: 240,
                        capture_ts_us: capture,
                    },
                )
                .unwrap();
            self.sent.push((data, capture));
            self.to_send -= 1;
            self.next_frame_at += self.frame_interval;
        }
        if self.sender.poll_timeout().is_some_and(|t| t <= self.now) {
            self.sender.handle_timeout(self.now);
        }
        if self.receiver.poll_timeout().is_some_and(|t| t <= self.now) {
            self.receiver.handle_timeout(self.now);
        }
        while let Some(t) = self.sender.poll_transmit(self.now, &mut self.buf) {
            let d = &self.buf[..t.len];
            if self.drop_rule.as_mut().is_some_and(|r| r(d)) {
                continue;
            }
            self.to_viewer.send_to(self.now, t.to, d);
        }
        while let Some((to, d)) = self.to_viewer.poll_deliver_to(self.now) {
            assert_eq!(to, self.viewer);
            self.receiver.handle_datagram(self.now, self.client, &d);
        }
        while let Some(t) = self.receiver.poll_transmit(self.now, &mut self.buf) {
            self.to_client.send_to(self.now, t.to, &self.buf[..t.len]);
        }
        while let Some((to, d)) = self.to_client.poll_deliver_to(self.now) {
            assert_eq!(to, self.client);
            self.sender.handle_datagram(self.now, self.viewer, &d);
        }
        while let Some(e) = self.receiver.poll_event() {
            match e {
                ReceiveEvent::Frame(f) => self.delivered.push(f),
                ReceiveEvent::StreamStarted { stream_id, .. } => self.streams.push(stream_id),
                ReceiveEvent::Stalled { .. } | ReceiveEvent::StreamNamed { .. } => {}
            }
        }
        let wake = [
            self.sender.poll_timeout(),
            self.receiver.poll_timeout(),
            self.to_viewer.next_delivery(),
            self.to_client.next_delivery(),
            (self.to_send > 0).then_some(self.next_frame_at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.now + MS);
        self.now = wake.max(self.now + Duration::from_micros(100));
    }

    /// Sends `n` frames at 30 per second, then runs on for `tail`.
    fn run(&mut self, n: usize, tail: Duration) {
        self.to_send = n;
        let end = self.now + self.frame_interval * n as u32 + tail;
        while self.now < end {
            self.step();
        }
    }

    /// Every delivered frame is the one sent at its index: same tables, same scan.
    fn assert_delivered_exact(&self) {
        let mut last = None;
        for f in &self.delivered {
            let got = check_jpeg(&f.data).unwrap();
            let k = self
                .sent
                .iter()
                .position(|(d, _)| {
                    let want = check_jpeg(d).unwrap();
                    want.scan(d) == got.scan(&f.data)
                })
                .expect("a delivered frame is one that was sent");
            let want = check_jpeg(&self.sent[k].0).unwrap();
            assert_eq!(got.tables, want.tables);
            assert_eq!(
                (got.jpeg_type, got.width, got.height),
                (want.jpeg_type, want.width, want.height)
            );
            assert!(
                last.is_none_or(|l| k > l),
                "out of order: {k} after {last:?}"
            );
            last = Some(k);
        }
    }
}

/// Packets per frame of the fixture at the default datagram size.
fn packets_per_frame() -> u16 {
    let info = check_jpeg(JPEG).unwrap();
    let room = 1400 - RTP_HEADER_LEN - 8;
    (info.scan.len() + 132).div_ceil(room) as u16
}

fn seq_of(d: &[u8]) -> Option<u16> {
    let p = RtpPacket::new_checked(d).ok()?;
    (d[1] & 0x7f == 26).then(|| p.seq())
}

/// Loses the first transmission of each packet in `seqs`.
fn lose_once(seqs: Vec<u16>) -> DropRule {
    let mut lost = HashSet::new();
    Box::new(move |d| match seq_of(d) {
        Some(s) if seqs.contains(&s) => lost.insert(s),
        _ => false,
    })
}

fn sender_config(initial_seq: u16, reports: bool) -> RtpSenderConfig {
    RtpSenderConfig {
        ssrc: Some(0xc0ff_ee00),
        initial_seq: Some(initial_seq),
        initial_timestamp: Some(0xffff_0000),
        report_interval: if reports {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        },
        ..RtpSenderConfig::default()
    }
}

#[test]
fn clean_link_rebuilds_every_frame_exactly_with_capture_times() {
    let mut pair = RtpPair::clean(sender_config(100, true));
    pair.run(30, Duration::from_secs(2));
    assert_eq!(pair.delivered.len(), 30);
    pair.assert_delivered_exact();
    assert_eq!(pair.streams, [0xc0ff_ee00]);
    for (i, f) in pair.delivered.iter().enumerate() {
        assert_eq!(f.stream_id, 0xc0ff_ee00);
        assert_eq!(f.seq, i as u32);
        let h = f.header.expect("the SR gives capture times");
        assert_eq!((h.width, h.height), (320, 240));
        assert_eq!(h.total_len as usize, f.data.len());
        let want = pair.sent[i].1;
        assert!(
            h.capture_ts_us.abs_diff(want) <= 50,
            "{} vs {want}",
            h.capture_ts_us
        );
    }
    let s = pair.receiver.stats();
    assert_eq!((s.datagrams_invalid, s.frames_dropped), (0, 0));
    assert!(pair.sender.has_heard_peer());
    assert!(!pair.sender.expects_answers());
    assert_eq!(pair.sender.stats().retransmits, 0);
}

#[test]
fn a_lost_first_middle_or_last_fragment_drops_the_frame_without_rtcp() {
    let ppf = packets_per_frame();
    assert!(ppf >= 4, "{ppf}");
    for lost in [0, ppf / 2, ppf - 1] {
        let mut pair = RtpPair::clean(sender_config(100, false));
        pair.drop_rule = Some(lose_once(vec![100 + 3 * ppf + lost]));
        pair.run(10, Duration::from_secs(2));
        assert_eq!(pair.delivered.len(), 9, "fragment {lost}");
        assert_eq!(pair.receiver.stats().frames_dropped, 1);
        pair.assert_delivered_exact();
        assert!(
            pair.delivered.iter().all(|f| f.header.is_none()),
            "no SR, no capture time"
        );
        // a sender without RTCP hears nothing back
        assert!(!pair.sender.has_heard_peer());
        assert_eq!(pair.sender.stats().acks_received, 0);
        assert_eq!(pair.receiver.stats().acks_sent, 0);
        assert_eq!(
            pair.delivered.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [0, 1, 2, 4, 5, 6, 7, 8, 9]
        );
    }
}

#[test]
fn a_lost_first_middle_or_last_fragment_is_recovered_by_nack() {
    let ppf = packets_per_frame();
    for lost in [0, ppf / 2, ppf - 1] {
        let mut pair = RtpPair::clean(sender_config(100, true));
        pair.drop_rule = Some(lose_once(vec![100 + 3 * ppf + lost]));
        pair.run(10, Duration::from_secs(2));
        assert_eq!(pair.delivered.len(), 10, "fragment {lost}");
        pair.assert_delivered_exact();
        assert_eq!(pair.receiver.stats().frames_dropped, 0);
        assert_eq!(pair.sender.stats().retransmits, 1);
        assert!(pair.receiver.nacks_sent() >= 1);
    }
}

#[test]
fn reordering_and_duplicates_assemble_exactly() {
    let messy = Impairment {
        reorder: 0.3,
        duplicate: 0.2,
        delay: 5 * MS,
        seed: 7,
        ..Impairment::default()
    };
    let mut pair = RtpPair::new(
        sender_config(100, true),
        RtpReceiverConfig::default(),
        messy,
        Impairment::default(),
    );
    pair.run(60, Duration::from_secs(2));
    assert_eq!(pair.delivered.len(), 60);
    pair.assert_delivered_exact();
    let s = pair.receiver.stats();
    assert!(s.datagrams_duplicate > 0);
    assert_eq!(s.datagrams_invalid, 0);
}

#[test]
fn sequence_numbers_wrap_and_holes_across_the_wrap_are_repaired() {
    let ppf = packets_per_frame();
    let first = 65535 - 2 * ppf; // the wrap falls inside frame 2
    let mut pair = RtpPair::clean(sender_config(first, true));
    pair.drop_rule = Some(lose_once(vec![65535, 0, 1]));
    pair.run(20, Duration::from_secs(2));
    assert_eq!(pair.delivered.len(), 20);
    pair.assert_delivered_exact();
    assert_eq!(pair.sender.stats().retransmits, 3);
}

#[test]
fn three_percent_loss_each_way_is_repaired_by_nack() {
    let lossy = |seed| Impairment {
        loss: 0.03,
        delay: 10 * MS,
        seed,
        ..Impairment::default()
    };
    let mut pair = RtpPair::new(
        sender_config(100, true),
        RtpReceiverConfig::default(),
        lossy(3),
        lossy(4),
    );
    pair.run(300, Duration::from_secs(3));
    let (d, s, r) = (
        pair.delivered.len(),
        pair.sender.stats(),
        pair.receiver.stats(),
    );
    println!(
        "3% loss each way: {d}/300 frames delivered, {} dropped; {} datagrams sent, {} retransmitted, \
         {} NACK datagrams, link lost {} forward and {} back; rtt {:?}",
        r.frames_dropped,
        s.datagrams_sent,
        s.retransmits,
        pair.receiver.nacks_sent(),
        pair.to_viewer.stats().lost,
        pair.to_client.stats().lost,
        pair.sender.rtt(),
    );
    pair.assert_delivered_exact();
    assert!(d >= 297, "{d} of 300");
    assert!(s.retransmits > 0);
    let rtt = pair.sender.rtt().unwrap();
    assert!((15 * MS..40 * MS).contains(&rtt), "{rtt:?}");
}

#[test]
fn receiver_reports_give_rtt_and_loss() {
    let delayed = |seed| Impairment {
        delay: 10 * MS,
        seed,
        ..Impairment::default()
    };
    let mut pair = RtpPair::new(
        sender_config(100, true),
        RtpReceiverConfig::default(),
        delayed(1),
        delayed(2),
    );
    pair.run(100, Duration::from_secs(2));
    let rtt = pair.sender.rtt().expect("RR with LSR/DLSR");
    assert!((19 * MS..22 * MS).contains(&rtt), "{rtt:?}");
    let st = pair.sender.rtp_stats();
    assert!(st.receiver_reports >= 3);
    assert_eq!(st.cumulative_lost, 0);
    assert!(st.jitter < MS, "constant delay, no jitter: {:?}", st.jitter);
    assert!(pair.sender.has_heard_peer());
}

/// Hand-made packets with `q`, tables in band when `tables` is set.
fn packets(
    jpeg: &[u8],
    q: u8,
    tables: Option<&[u8]>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    max_data: usize,
) -> Vec<Vec<u8>> {
    let info = check_jpeg(jpeg).unwrap();
    let scan = info.scan(jpeg);
    let mut out = Vec::new();
    let mut off = 0;
    let mut n = 0u16;
    while off < scan.len() {
        let take = max_data.min(scan.len() - off);
        let p = JpegPayloadRepr {
            header: JpegHeaderRepr {
                type_specific: 0,
                fragment_offset: off as u32,
                jpeg_type: info.jpeg_type,
                q,
                width: info.width,
                height: info.height,
            },
            restart: None,
            qtables: (off == 0 && q >= 128).then(|| QTablesRepr {
                precision: 0,
                tables: tables.unwrap_or(&[]),
            }),
            data: &scan[off..off + take],
        };
        let rtp = RtpRepr {
            marker: off + take == scan.len(),
            payload_type: 26,
            seq: seq.wrapping_add(n),
            timestamp: ts,
            ssrc,
        };
        let mut b = vec![0; RTP_HEADER_LEN + p.buffer_len()];
        rtp.emit(&mut b);
        p.emit(&mut b[RTP_HEADER_LEN..]);
        out.push(b);
        off += take;
        n += 1;
    }
    out
}

fn receive_all(rx: &mut RtpReceiver, now: Instant, packets: &[Vec<u8>]) -> Vec<CompleteFrame> {
    let from: SocketAddr = "10.0.0.9:5004".parse().unwrap();
    for p in packets {
        rx.handle_datagram(now, from, p);
    }
    let mut frames = vec![];
    while let Some(e) = rx.poll_event() {
        if let ReceiveEvent::Frame(f) = e {
            frames.push(f);
        }
    }
    frames
}

#[test]
fn q_below_128_uses_appendix_a_tables() {
    let mut rx = RtpReceiver::new(RtpReceiverConfig::default());
    let now = Instant::now();
    for (i, q) in [50u8, 10, 90].into_iter().enumerate() {
        let ps = packets(JPEG, q, None, 10 * i as u16, 3000 * i as u32, 7, 1000);
        let frames = receive_all(&mut rx, now, &ps);
        assert_eq!(frames.len(), 1);
        let got = check_jpeg(&frames[0].data).unwrap();
        assert_eq!(got.tables, q_tables(q), "Q {q}");
        assert_eq!(
            got.scan(&frames[0].data),
            check_jpeg(JPEG).unwrap().scan(JPEG)
        );
    }
    assert_eq!(rx.stats().datagrams_invalid, 0);
    // Appendix A at Q 50 is Annex K in zig-zag order
    assert_eq!(q_tables(50)[0][..4], [16, 11, 12, 14]);
}

#[test]
fn q_128_to_254_tables_are_cached_q_255_are_not() {
    let mut rx = RtpReceiver::new(RtpReceiverConfig::default());
    let now = Instant::now();
    let info = check_jpeg(JPEG_422).unwrap();
    let tables = info.table_bytes();
    let f = receive_all(
        &mut rx,
        now,
        &packets(JPEG_422, 200, Some(&tables), 0, 0, 7, 500),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(check_jpeg(&f[0].data).unwrap().jpeg_type, 0);
    // the next frame sends Q 200 with no tables: the cached ones apply
    let f = receive_all(
        &mut rx,
        now,
        &packets(JPEG_422, 200, Some(&[]), 10, 3000, 7, 500),
    );
    assert_eq!(f.len(), 1);
    let got = check_jpeg(&f[0].data).unwrap();
    assert_eq!(got.tables, info.tables);
    assert_eq!(got.scan(&f[0].data), info.scan(JPEG_422));
    // Q 255 must carry tables: a packet without is refused
    let invalid = rx.stats().datagrams_invalid;
    let ps = packets(JPEG_422, 255, Some(&[]), 20, 6000, 7, 500);
    assert!(receive_all(&mut rx, now, &ps[..1]).is_empty());
    assert_eq!(rx.stats().datagrams_invalid, invalid + 1);
    // a table length that lies (100 bytes: neither one nor two 8-bit tables) is refused
    let ps = packets(JPEG_422, 254, Some(&tables[..100]), 30, 9000, 7, 500);
    assert!(receive_all(&mut rx, now, &ps[..1]).is_empty());
    assert_eq!(rx.stats().datagrams_invalid, invalid + 2);
    // one table for all components, as ffmpeg sends when its JPEG has one DQT table
    let f = receive_all(
        &mut rx,
        now,
        &packets(JPEG_422, 255, Some(&tables[..64]), 35, 10500, 7, 500),
    );
    let got = check_jpeg(&f[0].data).unwrap();
    assert_eq!(got.tables, [info.tables[0], info.tables[0]]);
    // the rebuilt frame is a byte-exact rebuild
    let mut want = Vec::new();
    cam_proto::rtp::rebuild_jpeg(
        0,
        64,
        48,
        &widen(&info.tables),
        0,
        info.scan(JPEG_422),
        &mut want,
    );
    let f = receive_all(
        &mut rx,
        now,
        &packets(JPEG_422, 255, Some(&tables), 40, 12000, 7, 300),
    );
    assert_eq!(f[0].data, want);
}

#[test]
fn hostile_input_is_counted_and_memory_stays_bounded() {
    let config = RtpReceiverConfig {
        max_frame_bytes: 64 * 1024,
        ..RtpReceiverConfig::default()
    };
    let (max_streams, max_frames) = (config.max_streams, config.max_frames_assembling);
    let mut rx = RtpReceiver::new(config);
    let now = Instant::now();
    let from: SocketAddr = "10.6.6.6:666".parse().unwrap();
    // short packets, wrong version, garbage RTCP
    for d in [
        &[][..],
        &[0x80],
        &[0x80, 26, 0, 1, 0, 0, 0, 2, 0, 0, 0],
        &[0x40; 40],
        &[0x80, 200, 0, 9],
    ] {
        rx.handle_datagram(now, from, d);
    }
    assert_eq!(rx.stats().datagrams_invalid, 5);
    // a fragment offset beyond the frame limit
    let mut ps = packets(JPEG, 80, None, 0, 0, 1, 1000);
    ps[1][RTP_HEADER_LEN + 1..RTP_HEADER_LEN + 4].copy_from_slice(&[0x7f, 0xff, 0xff]);
    receive_all(&mut rx, now, &ps[1..2]);
    assert_eq!(rx.stats().datagrams_invalid, 6);
    // a flood of SSRCs, each starting a frame it never finishes
    for ssrc in 0..1000u32 {
        let ps = packets(JPEG, 80, None, 0, 0, 0x1000 + ssrc, 1000);
        receive_all(
            &mut rx,
            now + Duration::from_micros(u64::from(ssrc)),
            &ps[..1],
        );
    }
    assert_eq!(rx.stats().streams_started, 1000);
    assert!(rx.buffered_bytes() <= max_streams * max_frames * 64 * 1024);
    assert!(rx.buffered_bytes() <= max_streams * 1000);
    // time passes: every incomplete frame is given up, nothing is released damaged
    let later = now + Duration::from_secs(5);
    rx.handle_timeout(later);
    assert_eq!(rx.buffered_bytes(), 0);
    while let Some(e) = rx.poll_event() {
        assert!(!matches!(e, ReceiveEvent::Frame(_)));
    }
    // the flood never made the receiver talk: no SR was heard
    let mut buf = Vec::new();
    assert!(rx.poll_transmit(later, &mut buf).is_none());
}

#[test]
fn restart_markers_survive_the_trip() {
    // A 4:2:2 frame declared with a restart interval (the scan is opaque to RTP).
    let info = check_jpeg(JPEG_422).unwrap();
    let mut jpeg = Vec::new();
    cam_proto::rtp::rebuild_jpeg(
        64,
        64,
        48,
        &widen(&info.tables),
        2,
        info.scan(JPEG_422),
        &mut jpeg,
    );
    let mut tx = RtpSender::new("10.0.0.1:5004".parse().unwrap(), sender_config(5, true));
    let mut rx = RtpReceiver::new(RtpReceiverConfig::default());
    let now = Instant::now();
    tx.send_frame(
        now,
        OutgoingFrame {
            data: jpeg.clone(),
            width: 64,
            height: 48,
            capture_ts_us: T0_US,
        },
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut ps = vec![];
    while tx.poll_transmit(now, &mut buf).is_some() {
        ps.push(buf.clone());
    }
    let f = receive_all(&mut rx, now, &ps);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].data, jpeg);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary datagrams, some RTP-shaped, never panic the receiver, never make it hold
    /// more than its limits, and never make it release a frame that is not a JPEG.
    #[test]
    fn arbitrary_bytes_never_panic_the_receiver(
        datagrams in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 0u8..4),
            1..60,
        )
    ) {
        let config = RtpReceiverConfig { max_frame_bytes: 4096, max_streams: 2, ..RtpReceiverConfig::default() };
        let bound = config.max_streams * config.max_frames_assembling * 4096;
        let mut rx = RtpReceiver::new(config);
        let mut now = Instant::now();
        let from: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let mut buf = Vec::new();
        for (rtp_shaped, mut d, ssrc) in datagrams {
            if rtp_shaped && d.len() >= 20 {
                d[0] = 0x80;
                d[1] = if d[1] & 1 == 0 { 26 } else { 0x80 | 26 };
                d[8..12].copy_from_slice(&u32::from(ssrc).to_be_bytes());
                d[16] &= 0x41;
                d[12..15].fill(0);
            }
            now += Duration::from_millis(u64::from(ssrc) * 7);
            rx.handle_timeout(now);
            rx.handle_datagram(now, from, &d);
            while let Some(e) = rx.poll_event() {
                if let ReceiveEvent::Frame(f) = e {
                    prop_assert!(f.data.starts_with(&[0xff, 0xd8]));
                }
            }
            while rx.poll_transmit(now, &mut buf).is_some() {}
            prop_assert!(rx.buffered_bytes() <= bound);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `check_jpeg` and the RTCP parser on a real JPEG with bytes changed, cut or not: no
    /// panic, and what `check_jpeg` accepts has its scan inside the bytes.
    #[test]
    fn damaged_jpegs_and_rtcp_never_panic(
        edits in proptest::collection::vec((0usize..9000, any::<u8>()), 0..8),
        cut in 0usize..9000,
    ) {
        let mut j = JPEG.to_vec();
        for (at, b) in edits {
            let at = at % j.len();
            j[at] = b;
        }
        j.truncate(cut.max(2));
        if let Ok(info) = check_jpeg(&j) {
            prop_assert!(info.scan.end <= j.len() && info.scan.start <= info.scan.end);
        }
        let _ = cam_proto::rtp::rtcp::RtcpRepr::parse_compound(&j);
        let _ = cam_proto::rtp::classify(&j);
    }
}

/// The packets of `frames` frames as a sender without RTCP makes them, every one with the
/// same RTP timestamp: what `multifilesrc ! rtpjpegpay` sends, its buffers having no time.
fn packets_with_one_timestamp(frames: usize) -> Vec<Vec<Vec<u8>>> {
    let mut sender = RtpSender::new(
        "127.0.0.1:5004".parse().unwrap(),
        sender_config(65_530, false),
    );
    let now = Instant::now();
    let mut buf = Vec::new();
    (0..frames)
        .map(|k| {
            let frame = OutgoingFrame {
                data: frame_bytes(k),
                width: 320,
                height: 240,
                capture_ts_us: T0_US + k as u64 * 33_333,
            };
            sender.send_frame(now, frame).unwrap();
            let mut packets = vec![];
            while sender.poll_transmit(now, &mut buf).is_some() {
                buf[4..8].copy_from_slice(&7u32.to_be_bytes());
                packets.push(buf.clone());
            }
            packets
        })
        .collect()
}

/// Feeds `packets` (frame by frame, minus those `lose` names as (frame, packet)) and returns
/// which frames came out, by their scan, and the receiver's counters.
fn receive_one_timestamp(
    packets: &[Vec<Vec<u8>>],
    lose: &[(usize, usize)],
) -> (Vec<usize>, cam_proto::machine::ReceiverStats) {
    let mut receiver = RtpReceiver::new(RtpReceiverConfig::default());
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut now = Instant::now();
    let mut got = vec![];
    for (k, frame) in packets.iter().enumerate() {
        for (i, p) in frame.iter().enumerate() {
            if !lose.contains(&(k, i)) {
                receiver.handle_datagram(now, from, p);
            }
        }
        now += 33 * MS;
        receiver.handle_timeout(now);
        while let Some(e) = receiver.poll_event() {
            if let ReceiveEvent::Frame(f) = e {
                let scan = check_jpeg(&f.data).unwrap().scan(&f.data).to_vec();
                let k = (0..packets.len())
                    .find(|&k| {
                        let d = frame_bytes(k);
                        check_jpeg(&d).unwrap().scan(&d) == scan
                    })
                    .expect("a delivered frame is one that was sent, never a mix");
                got.push(k);
            }
        }
    }
    now += Duration::from_secs(1);
    receiver.handle_timeout(now);
    (got, receiver.stats().clone())
}

#[test]
fn frames_that_repeat_one_timestamp_are_told_apart_by_the_marker() {
    let packets = packets_with_one_timestamp(6);
    let per_frame = packets[0].len();
    assert!(per_frame >= 4, "{per_frame}");
    // No loss: every frame, none taken for a duplicate (the sequence numbers wrap on the way).
    let (got, stats) = receive_one_timestamp(&packets, &[]);
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert_eq!((stats.datagrams_duplicate, stats.frames_dropped), (0, 0));
    // A lost first, middle or last (marked) packet costs that frame only, and the next
    // frame's packets never fill its holes.
    for lost in [0, per_frame / 2, per_frame - 1] {
        let (got, stats) = receive_one_timestamp(&packets, &[(2, lost)]);
        assert_eq!(got, [0, 1, 3, 4, 5], "packet {lost} of frame 2 lost");
        if lost == 0 {
            // Without its first packet nothing tells that frame from the one before it.
            assert_eq!(stats.datagrams_duplicate as usize, per_frame - 1);
        } else {
            assert_eq!(stats.frames_dropped, 1, "packet {lost}");
        }
    }
    // A late copy of a released frame's packets is a duplicate, not a new frame.
    let mut late = packets.clone();
    let copy = late[1][1].clone();
    late[2].insert(0, copy);
    let (got, stats) = receive_one_timestamp(&late, &[]);
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert_eq!(stats.datagrams_duplicate, 1);
}

/// Receiver reports feed link adaptation: through a bottleneck that drops a large share of
/// what is offered, the sender's rate estimate appears and falls below what it sends.
#[test]
fn receiver_reports_of_heavy_loss_set_a_rate_below_what_is_sent() {
    let bottleneck = Impairment {
        delay: 10 * MS,
        rate_bps: Some(300_000),
        queue: 30 * MS,
        seed: 5,
        ..Impairment::default()
    };
    let back = Impairment {
        delay: 10 * MS,
        seed: 6,
        ..Impairment::default()
    };
    let mut pair = RtpPair::new(
        sender_config(7, true),
        RtpReceiverConfig::default(),
        bottleneck,
        back,
    );
    assert_eq!(pair.sender.target_rate_bps(), None);
    pair.run(150, Duration::from_secs(1));
    let s = pair.sender.stats();
    let offered_bps = s.bytes_sent as f64 * 8.0 / 6.0;
    let target = pair.sender.target_rate_bps();
    println!(
        "offered {offered_bps:.0} bit/s into 300 kbit/s; loss {:.2}; target {target:?}",
        pair.sender.rtp_stats().fraction_lost
    );
    let target = target.expect("heavy loss sets a limit");
    assert!(target < offered_bps, "{target} vs {offered_bps}");
}

/// Without loss the estimate never appears: "no limit seen".
#[test]
fn receiver_reports_without_loss_set_no_rate() {
    let delayed = |seed| Impairment {
        delay: 10 * MS,
        seed,
        ..Impairment::default()
    };
    let mut pair = RtpPair::new(
        sender_config(9, true),
        RtpReceiverConfig::default(),
        delayed(1),
        delayed(2),
    );
    pair.run(100, Duration::from_secs(2));
    assert!(pair.sender.rtp_stats().receiver_reports >= 3);
    assert_eq!(pair.sender.target_rate_bps(), None);
}
