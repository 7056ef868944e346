//! A sender and a receiver over simulated links on simulated time: loss, reordering,
//! duplication, restarts and hostile datagrams, deterministic and in milliseconds.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::{Receiver, ReceiverConfig};
use cam_proto::sender::{Sender, SenderConfig};
use cam_proto::sim::Impairment;
use common::{Pair, MS};

fn lossy(loss: f64, seed: u64) -> Impairment {
    Impairment {
        loss,
        delay: MS,
        seed,
        ..Impairment::default()
    }
}

#[test]
fn clean_link_delivers_every_frame_without_retransmission() {
    let mut pair = Pair::new(SenderConfig::default(), lossy(0.0, 1), lossy(0.0, 2));
    pair.run_frames(100, Duration::from_secs(30));
    assert_eq!(pair.delivered.len(), 100);
    assert_eq!(pair.acked.len(), 100);
    assert_eq!(pair.sender.stats().retransmits, 0);
    assert_eq!(pair.receiver.stats().datagrams_invalid, 0);
    pair.assert_delivered_exact();
}

/// Frames the sender did not abandon arrive byte-exact, and the retransmission count is
/// close to what the loss rate predicts: no storms.
fn survives_loss(loss: f64) {
    let mut pair = Pair::new(
        SenderConfig {
            frame_deadline: Some(Duration::from_secs(2)),
            ..SenderConfig::default()
        },
        lossy(loss, 11),
        lossy(loss, 12),
    );
    pair.run_frames(300, Duration::from_secs(600));
    pair.assert_delivered_exact();
    let stats = pair.sender.stats().clone();
    assert_eq!(pair.acked.len() + pair.abandoned.len(), 300, "{stats:?}");
    for seq in &pair.acked {
        assert!(
            pair.delivered.iter().any(|d| d.seq == *seq),
            "acked {seq} never delivered"
        );
    }
    assert!(
        pair.delivered.len() >= 297,
        "only {} of 300 delivered at {loss}: {stats:?} {:?} abandoned {:?}",
        pair.delivered.len(),
        pair.receiver.stats(),
        pair.abandoned
    );
    let first_sends = stats.datagrams_sent - stats.retransmits - stats.probes;
    // Each lost datagram needs about 1/(1-p) sends; allow generous slack for lost acks.
    let expected = first_sends as f64 * loss / (1.0 - loss);
    let ratio = stats.retransmits as f64 / expected;
    assert!(
        (0.5..2.0).contains(&ratio),
        "retransmits {} vs expected {expected:.0} at loss {loss} ({stats:?})",
        stats.retransmits
    );
}

#[test]
fn survives_one_percent_loss() {
    survives_loss(0.01);
}

#[test]
fn survives_five_percent_loss() {
    survives_loss(0.05);
}

#[test]
fn survives_twenty_percent_loss() {
    survives_loss(0.20);
}

#[test]
fn reordering_and_duplication_assemble_exactly() {
    let messy = |seed| Impairment {
        reorder: 0.2,
        duplicate: 0.1,
        loss: 0.02,
        delay: 2 * MS,
        seed,
        ..Impairment::default()
    };
    let mut pair = Pair::new(SenderConfig::default(), messy(5), messy(6));
    pair.run_frames(200, Duration::from_secs(600));
    pair.assert_delivered_exact();
    assert!(
        pair.delivered.len() >= 198,
        "{} {:?} {:?} target {:?}",
        pair.delivered.len(),
        pair.sender.stats(),
        pair.receiver.stats(),
        pair.sender.target_rate_bps()
    );
    assert!(pair.receiver.stats().datagrams_duplicate > 0);
}

#[test]
fn lost_header_is_recovered_from_chunks() {
    let mut pair = Pair::new(SenderConfig::default(), lossy(0.0, 1), lossy(0.0, 2));
    pair.to_send = 1;
    pair.offer_frame();
    // Drop the first datagram (the header) on the floor.
    assert!(pair.sender.poll_transmit(pair.now, &mut pair.buf));
    pair.run_frames(0, Duration::from_secs(5));
    assert_eq!(pair.delivered.len(), 1);
    pair.assert_delivered_exact();
}

#[test]
fn lost_ack_does_not_block_the_sender() {
    // Every ack is lost: frames are abandoned at their deadline, and the sender goes on.
    let mut pair = Pair::new(
        SenderConfig {
            frame_deadline: Some(50 * MS),
            ..SenderConfig::default()
        },
        lossy(0.0, 1),
        lossy(1.0, 2),
    );
    pair.run_frames(10, Duration::from_secs(10));
    assert_eq!(pair.abandoned.len(), 10);
    assert_eq!(pair.delivered.len(), 10);
    assert!(pair.now - Instant::now() < Duration::from_secs(2));
}

#[test]
fn tail_loss_is_repaired_by_one_retransmission() {
    let mut pair = Pair::new(SenderConfig::default(), lossy(0.0, 1), lossy(0.0, 2));
    pair.frame_size = 12_000..12_001; // 10 chunks + header
    pair.to_send = 1;
    pair.offer_frame();
    let mut datagrams = Vec::new();
    while pair.sender.poll_transmit(pair.now, &mut pair.buf) {
        datagrams.push(pair.buf.clone());
    }
    assert_eq!(datagrams.len(), 11);
    // Chunk 3 (datagram 4) is lost; the rest arrive, the tail triggers a NACK.
    for (i, d) in datagrams.iter().enumerate() {
        if i != 4 {
            pair.to_viewer.send(pair.now, d);
        }
    }
    pair.run_frames(0, Duration::from_secs(5));
    assert_eq!(pair.delivered.len(), 1);
    assert_eq!(pair.sender.stats().retransmits, 1);
    assert_eq!(pair.sender.stats().probes, 0);
    pair.assert_delivered_exact();
}

#[test]
fn viewer_restart_is_followed_within_a_second() {
    let mut pair = Pair::new(
        SenderConfig {
            frame_interval: Some(Duration::from_millis(33)),
            ..SenderConfig::default()
        },
        lossy(0.0, 1),
        lossy(0.0, 2),
    );
    pair.run_frames(30, Duration::from_secs(5));
    assert_eq!(pair.delivered.len(), 30);
    let restart_at = pair.now;
    pair.receiver = Receiver::new(ReceiverConfig::default());
    pair.delivered.clear();
    pair.to_send = 60;
    let mut first_after = None;
    for _ in 0..1_000_000 {
        if !pair.step() {
            break;
        }
        if first_after.is_none() && !pair.delivered.is_empty() {
            first_after = Some(pair.now - restart_at);
        }
        if pair.to_send == 0 && pair.sender.frames_in_flight() == 0 {
            break;
        }
    }
    let gap = first_after.expect("no frame after the restart");
    assert!(gap < Duration::from_secs(1), "{gap:?}");
    assert!(pair.delivered.len() >= 55, "{}", pair.delivered.len());
    pair.assert_delivered_exact();
}

#[test]
fn client_restart_is_adopted_within_a_second() {
    let mut pair = Pair::new(
        SenderConfig {
            frame_interval: Some(Duration::from_millis(33)),
            ..SenderConfig::default()
        },
        lossy(0.0, 1),
        lossy(0.0, 2),
    );
    pair.run_frames(10, Duration::from_secs(5));
    assert_eq!(pair.delivered.len(), 10);
    // A new client process: new stream id, new port, sequence numbers from 0 again.
    let restart_at = pair.now;
    pair.sender = Sender::new(
        0xbeef,
        0,
        SenderConfig {
            frame_interval: Some(Duration::from_millis(33)),
            ..SenderConfig::default()
        },
    );
    pair.client_addr = "10.0.0.2:5001".parse().unwrap();
    pair.sent.clear();
    pair.delivered.clear();
    pair.next_frame_at = pair.now;
    pair.run_frames(40, Duration::from_secs(10));
    assert_eq!(pair.receiver.current_stream().map(|s| s.0), Some(0xbeef));
    assert!(pair.delivered.len() >= 25, "{}", pair.delivered.len());
    pair.assert_delivered_exact();
    let _ = restart_at;
}

#[test]
fn foreign_stream_cannot_touch_the_frame_being_assembled() {
    let mut pair = Pair::new(SenderConfig::default(), lossy(0.0, 1), lossy(0.0, 2));
    pair.run_frames(5, Duration::from_secs(5));
    // An attacker replays a real chunk under another stream id and from another address.
    pair.to_send = 1;
    pair.offer_frame();
    let mut datagrams = Vec::new();
    while pair.sender.poll_transmit(pair.now, &mut pair.buf) {
        datagrams.push(pair.buf.clone());
    }
    // The genuine header arrives first, so the stream is live while the attack runs.
    pair.receiver
        .handle_datagram(pair.now, pair.client_addr, &datagrams[0])
        .unwrap();
    let attacker: SocketAddr = "10.6.6.6:666".parse().unwrap();
    let mut forged = datagrams[1].clone();
    forged[8..12].copy_from_slice(&0x6666_6666u32.to_be_bytes());
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    for _ in 0..100 {
        assert!(pair
            .receiver
            .handle_datagram(pair.now, attacker, &forged)
            .is_err());
    }
    for d in &datagrams[1..] {
        pair.to_viewer.send(pair.now, d);
    }
    pair.run_frames(0, Duration::from_secs(5));
    assert_eq!(pair.delivered.len(), 6);
    assert_eq!(pair.receiver.stats().datagrams_foreign, 100);
    assert_eq!(pair.receiver.stats().datagrams_invalid, 100);
    pair.assert_delivered_exact();
}
