//! A sender and a receiver over simulated links on simulated time: loss, reordering,
//! duplication, restarts and hostile datagrams, deterministic and in milliseconds.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::{Receiver, ReceiverConfig};
use cam_proto::sender::{Sender, SenderConfig};
use cam_proto::sim::{Impairment, Link};
use common::{lossy, survives_loss, Pair, MS};

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

#[test]
fn survives_one_percent_loss() {
    survives_loss(0.01, None);
}

#[test]
fn survives_five_percent_loss() {
    survives_loss(0.05, None);
}

#[test]
fn survives_twenty_percent_loss() {
    survives_loss(0.20, None);
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

/// When a retransmitted chunk is lost again, the arrival of the last chunk asked for tells
/// the viewer the repair round is over: it reports the remaining hole at once, so the next
/// round costs a round trip, not a probe timeout.
#[test]
fn a_lost_retransmission_is_asked_for_again_without_a_probe() {
    let addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let now = Instant::now();
    let mut sender = Sender::new(7, 0, SenderConfig::default());
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let data: Vec<u8> = (0..12_000u32).map(|i| (i * 31 % 251) as u8).collect();
    sender
        .send_frame(
            now,
            cam_proto::sender::OutgoingFrame {
                data: data.clone(),
                width: 64,
                height: 48,
                capture_ts_us: 1,
            },
        )
        .unwrap();
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    while sender.poll_transmit(now, &mut buf) {
        sent.push(buf.clone());
    }
    assert_eq!(sent.len(), 11, "header and 10 chunks");
    // Chunks 3 and 7 (datagrams 4 and 8) are lost; the tail's arrival reports them.
    for (i, d) in sent.iter().enumerate() {
        if i != 4 && i != 8 {
            receiver.handle_datagram(now, addr, d).unwrap();
        }
    }
    let mut acks = Vec::new();
    while receiver.poll_transmit(now, &mut buf).is_some() {
        acks.push(buf.clone());
    }
    assert_eq!(acks.len(), 1);
    sender.handle_datagram(now, &acks[0]).unwrap();
    // Everything left at one instant here, so a hole could be mere reordering until the
    // reordering window has passed.
    assert!(
        !sender.poll_transmit(now, &mut buf),
        "not before the window"
    );
    let now = now + sender.reorder_window();
    sender.handle_timeout(now);
    let mut again = Vec::new();
    while sender.poll_transmit(now, &mut buf) {
        again.push(buf.clone());
    }
    assert_eq!(again.len(), 2, "chunks 3 and 7 once more");
    // Chunk 3 is lost again; chunk 7, the last one asked for, arrives.
    receiver.handle_datagram(now, addr, &again[1]).unwrap();
    let nack = receiver.poll_transmit(now, &mut buf);
    assert!(nack.is_some(), "the remaining hole was not reported");
    sender.handle_datagram(now, &buf).unwrap();
    let now = now + sender.reorder_window();
    sender.handle_timeout(now);
    assert!(sender.poll_transmit(now, &mut buf));
    receiver.handle_datagram(now, addr, &buf).unwrap();
    let frame = std::iter::from_fn(|| receiver.poll_event()).find_map(|ev| match ev {
        cam_proto::receiver::ReceiverEvent::Frame(f) => Some(f),
        _ => None,
    });
    assert!(frame.expect("no frame").data == data);
    assert_eq!(sender.stats().probes, 0);
    assert_eq!(sender.stats().retransmits, 3);
}

/// Unpaced (`--fps 0`), a frame whose repair makes progress is not abandoned at the
/// default deadline (a few probe timeouts): on a 10 ms round trip with 5% loss both ways,
/// that deadline alone used to cost 2-3% of the frames.
#[test]
fn unpaced_frames_are_not_abandoned_while_repair_progresses() {
    for seed in [1, 2, 3] {
        let link = |s| Impairment {
            loss: 0.05,
            delay: 5 * MS,
            seed: s,
            ..Impairment::default()
        };
        let mut pair = Pair::new(
            SenderConfig::default(),
            link(seed * 10 + 1),
            link(seed * 10 + 2),
        );
        pair.frame_size = 20_000..40_000;
        pair.run_frames(300, Duration::from_secs(600));
        pair.assert_delivered_exact();
        let stats = pair.sender.stats();
        assert!(
            pair.abandoned.len() <= 3 && pair.delivered.len() >= 297,
            "seed {seed}: {} abandoned, {} delivered of 300: {stats:?}",
            pair.abandoned.len(),
            pair.delivered.len()
        );
    }
}

/// ... but one whose repair stops making progress is still given up: a path that carries
/// the probes and acks but never the missing chunk cannot hold the sender forever.
#[test]
fn unpaced_frame_without_progress_is_abandoned() {
    let addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let start = Instant::now();
    let mut now = start;
    let config = SenderConfig {
        initial_rtt: 10 * MS,
        ..SenderConfig::default()
    };
    // Its first deadline: four probe timeouts of the initial round trip.
    let first_deadline = config.initial_rtt * 3 * 4;
    let mut sender = Sender::new(7, 0, config);
    let mut receiver = Receiver::new(ReceiverConfig::default());
    sender
        .send_frame(
            now,
            cam_proto::sender::OutgoingFrame {
                data: vec![5; 12_000],
                width: 64,
                height: 48,
                capture_ts_us: 1,
            },
        )
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk3_sent = 0;
    let abandoned_at = loop {
        assert!(now - start < Duration::from_secs(10), "never abandoned");
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        // Exchange until nothing moves at this instant.
        loop {
            let mut moved = false;
            while sender.poll_transmit(now, &mut buf) {
                moved = true;
                // Chunk 3 never gets through (the index field of a chunk datagram).
                let is_chunk3 = buf[3] == 2 && buf[24..28] == 3u32.to_be_bytes();
                chunk3_sent += u32::from(is_chunk3);
                if !is_chunk3 {
                    let _ = receiver.handle_datagram(now, addr, &buf);
                }
            }
            while receiver.poll_transmit(now, &mut buf).is_some() {
                moved = true;
                let _ = sender.handle_datagram(now, &buf);
            }
            if !moved {
                break;
            }
        }
        if let Some(ev) = sender.poll_event() {
            assert!(matches!(
                ev,
                cam_proto::sender::SenderEvent::Abandoned { seq: 0, .. }
            ));
            break now;
        }
        now = [sender.poll_timeout(), receiver.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap()
            .max(now);
    };
    let took = abandoned_at - start;
    eprintln!("abandoned after {took:?}, chunk 3 sent {chunk3_sent} times");
    assert!(took <= first_deadline, "{took:?}");
    assert!(chunk3_sent >= 2, "chunk 3 was never asked for again");
}

/// The viewer closes its window (its decode queue is full) and the ack that reopens it is
/// lost: the client's window probe asks again within a few probe timeouts, so neither side
/// waits for the other forever. (Found end to end at 5% loss both ways: the stream froze.)
#[test]
fn a_lost_window_update_is_recovered_by_a_window_probe() {
    let addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let start = Instant::now();
    let mut now = start;
    let mut sender = Sender::new(7, 0, SenderConfig::default());
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut buf = Vec::new();
    receiver.set_credit(0);
    sender
        .send_frame(
            now,
            cam_proto::sender::OutgoingFrame {
                data: vec![1; 5_000],
                width: 64,
                height: 48,
                capture_ts_us: 1,
            },
        )
        .unwrap();
    while sender.poll_transmit(now, &mut buf) {
        receiver.handle_datagram(now, addr, &buf).unwrap();
    }
    while receiver.poll_transmit(now, &mut buf).is_some() {
        sender.handle_datagram(now, &buf).unwrap();
    }
    assert_eq!(sender.frames_in_flight(), 0);
    assert!(!sender.can_send(), "the window should be closed");
    // Room frees up; the window update goes out and is lost.
    receiver.set_credit(2);
    let mut lost = 0;
    while receiver.poll_transmit(now, &mut buf).is_some() {
        lost += 1;
    }
    assert_eq!(lost, 1);
    while !sender.can_send() {
        let next = [sender.poll_timeout(), receiver.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        now = next.expect("both sides wait for each other").max(now);
        assert!(
            now - start < Duration::from_secs(1),
            "no window probe in time"
        );
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        while sender.poll_transmit(now, &mut buf) {
            let _ = receiver.handle_datagram(now, addr, &buf);
        }
        while receiver.poll_transmit(now, &mut buf).is_some() {
            let _ = sender.handle_datagram(now, &buf);
        }
    }
    eprintln!("window reopened after {:?}", now - start);
    assert!(sender.stats().probes >= 1);
}

/// Runs the pair until `done` holds; the simulated time that took, or `None` at `limit`.
fn run_until(pair: &mut Pair, limit: Duration, done: impl Fn(&Pair) -> bool) -> Option<Duration> {
    let start = pair.now;
    while pair.now < start + limit {
        if done(pair) {
            return Some(pair.now - start);
        }
        if !pair.step() {
            break;
        }
    }
    done(pair).then(|| pair.now - start)
}

/// Streams until a frame is on its way to the viewer, not yet acknowledged: mid-frame.
fn run_to_mid_frame(pair: &mut Pair, delivered: usize) {
    pair.to_send = usize::MAX / 2;
    run_until(pair, Duration::from_secs(10), |p| {
        p.delivered.len() >= delivered && p.sender.frames_in_flight() > 0 && !p.to_viewer.is_idle()
    })
    .expect("never mid-frame");
}

/// The viewer process dies mid-frame and a new one binds the same port after `downtime`:
/// the running sender reaches it within a second of its start, and the stream goes on.
fn viewer_restart_mid_stream(frame_interval: Option<Duration>, downtime: Duration) {
    let config = SenderConfig {
        frame_interval,
        ..SenderConfig::default()
    };
    let mut pair = Pair::new(config, lossy(0.0, 1), lossy(0.0, 2));
    run_to_mid_frame(&mut pair, 30);
    // What was on its way to the dead viewer is lost, and nothing reaches its port until
    // the new process binds it; acks it already sent still arrive.
    pair.receiver = Receiver::new(ReceiverConfig::default());
    pair.to_viewer = Link::new(lossy(1.0, 3));
    let died = pair.now;
    run_until(&mut pair, downtime + Duration::from_secs(1), |p| {
        p.now >= died + downtime
    })
    .unwrap();
    pair.receiver = Receiver::new(ReceiverConfig::default());
    pair.to_viewer = Link::new(lossy(0.0, 4));
    let before = pair.delivered.len();
    let gap = run_until(&mut pair, Duration::from_secs(10), |p| {
        p.delivered.len() > before
    })
    .expect("no frame reached the restarted viewer");
    let more = run_until(&mut pair, Duration::from_secs(10), |p| {
        p.delivered.len() >= before + 30
    })
    .expect("the stream did not go on after the restart");
    eprintln!(
        "viewer down {downtime:?} at {frame_interval:?}: first frame {gap:?} after the restart, \
         30 frames in {:?}",
        gap + more
    );
    assert!(gap < Duration::from_secs(1), "{gap:?}");
    // At the frame rate again: 30 frames in little more than 30 intervals.
    if let Some(interval) = frame_interval {
        assert!(gap + more < interval * 40, "{:?}", gap + more);
    }
    pair.assert_delivered_exact();
}

#[test]
fn viewer_restart_is_followed_within_a_second() {
    let paced = Some(Duration::from_millis(33));
    viewer_restart_mid_stream(paced, Duration::ZERO);
    viewer_restart_mid_stream(paced, Duration::from_secs(2));
    viewer_restart_mid_stream(paced, Duration::from_secs(10));
    viewer_restart_mid_stream(None, Duration::ZERO);
    viewer_restart_mid_stream(None, Duration::from_secs(2));
}

/// The client process dies mid-frame and a new one starts at once: new stream id, new
/// port, frame numbers from 0 again. The viewer takes the new stream within a second.
fn client_restart_mid_stream(frame_interval: Option<Duration>) {
    let config = SenderConfig {
        frame_interval,
        ..SenderConfig::default()
    };
    let mut pair = Pair::new(config.clone(), lossy(0.0, 1), lossy(0.0, 2));
    run_to_mid_frame(&mut pair, 10);
    // The dead client's last datagrams still arrive, from its old port; acks to it go nowhere.
    let old_addr = pair.client_addr;
    let mut old_link = std::mem::replace(&mut pair.to_viewer, Link::new(lossy(0.0, 3)));
    pair.to_client = Link::new(lossy(0.0, 4));
    while let Some(at) = old_link.next_delivery() {
        let d = old_link.poll_deliver(at).unwrap();
        let _ = pair.receiver.handle_datagram(pair.now, old_addr, &d);
    }
    while pair.receiver.poll_event().is_some() {}
    pair.sender = Sender::new(0xbeef, 0, config);
    pair.client_addr = "10.0.0.2:5001".parse().unwrap();
    pair.sent.clear();
    pair.delivered.clear();
    pair.next_frame_at = pair.now;
    let gap = run_until(&mut pair, Duration::from_secs(10), |p| {
        !p.delivered.is_empty()
    })
    .expect("the new stream was never shown");
    run_until(&mut pair, Duration::from_secs(10), |p| {
        p.delivered.len() >= 30
    })
    .expect("the new stream did not go on");
    eprintln!("client restarted at {frame_interval:?}: first new frame after {gap:?}");
    assert!(gap < Duration::from_secs(1), "{gap:?}");
    assert_eq!(pair.receiver.current_stream().map(|s| s.0), Some(0xbeef));
    assert_eq!(pair.receiver.stats().streams_started, 2);
    pair.assert_delivered_exact();
}

#[test]
fn client_restart_is_adopted_within_a_second() {
    client_restart_mid_stream(Some(Duration::from_millis(33)));
    client_restart_mid_stream(None);
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
    let last = forged.len() - 1 - cam_proto::wire::CHECK_LEN;
    forged[last] ^= 0xff;
    cam_proto::wire::rewrite_check(&mut forged);
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
