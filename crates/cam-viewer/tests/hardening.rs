//! Hardening end to end: the real binaries through a relay that flips one bit in a share of
//! the datagrams each way, and through a long link with jitter and no loss. Each corrupt
//! datagram must cost one retransmission, never a frame or the rate; jitter must cost
//! nothing. Exact bounds live in cam-proto's sans-IO tests (`tests/hardening.rs`); here the
//! outcome is checked within limits that suit a shared machine, and the figures printed.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cam_proto::sim::Impairment;
use common::procs::{start_client, start_viewer, u, write_jpegs, TempDir, PATIENCE};
use common::relay::Relay;

/// The per-second frame rates of the client's status lines, in order.
fn status_fps(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("cam-client: "))
        .filter_map(|l| l.split(" fps").next()?.parse().ok())
        .collect()
}

struct Run {
    frames_sent: u64,
    frames_delivered: u64,
    retransmits: u64,
    datagrams_sent: u64,
    /// Frame rates of the client's status lines (one a second).
    fps: Vec<f64>,
    client: serde_json::Value,
    viewer: serde_json::Value,
}

/// 10 s of the 640x480 test card at 30 fps through a relay with `forward` and `back`.
fn run(forward: Impairment, back: Impairment) -> Run {
    run_source(forward, back, &["--source", "pattern", "--size", "640x480"])
}

/// 10 s at 30 fps of `source` (client arguments) through a relay with `forward` and `back`.
fn run_source(forward: Impairment, back: Impairment, source: &[&str]) -> Run {
    let (mut viewer, port) = start_viewer(&["--duration", "13"]);
    let viewer_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let relay = Relay::start(viewer_addr, forward, back);
    let mut args = source.to_vec();
    args.extend_from_slice(&["--fps", "30", "--duration", "10"]);
    let mut client = start_client(relay.addr.port(), &args);
    let (status, c) = client.summary(PATIENCE);
    let client_log = client.stderr();
    assert!(
        status.success(),
        "{client_log}\nviewer:\n{}",
        viewer.stderr()
    );
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    eprintln!(
        "client: {c}\nviewer: {v}\nrelay forward {:?} back {:?}",
        relay.forward_stats(),
        relay.back_stats()
    );
    assert_eq!(u(&v, "crc_failures"), 0, "a corrupt chunk reached a frame");
    assert_eq!(u(&v, "decode_errors"), 0);
    Run {
        frames_sent: u(&c, "frames_sent"),
        frames_delivered: u(&v, "frames_completed"),
        retransmits: u(&c, "retransmits"),
        datagrams_sent: u(&c, "datagrams_sent"),
        fps: status_fps(&client_log),
        client: c,
        viewer: v,
    }
}

fn corrupting(rate: f64, seed: u64) -> Impairment {
    Impairment {
        corrupt: rate,
        seed,
        ..Impairment::default()
    }
}

fn corruption_each_way(rate: f64) {
    let r = run(corrupting(rate, 1), corrupting(rate, 2));
    // The rate the sender settled on: the median of its last five seconds.
    let mut tail: Vec<f64> = r.fps.iter().rev().take(5).copied().collect();
    tail.sort_by(f64::total_cmp);
    let settled = tail.get(tail.len() / 2).copied().unwrap_or(0.0);
    eprintln!(
        "{:.1}% bit flips each way: {} of {} frames delivered, {} retransmits of {} datagrams, \
         settled at {settled:.1} fps (per second: {:?}), {} refused as corrupt by the viewer",
        rate * 100.0,
        r.frames_delivered,
        r.frames_sent,
        r.retransmits,
        r.datagrams_sent,
        r.fps,
        r.viewer["datagrams_corrupt"]
    );
    assert!(
        r.frames_delivered * 100 >= r.frames_sent * 95,
        "{} of {}",
        r.frames_delivered,
        r.frames_sent
    );
    assert!(
        r.frames_sent >= 240,
        "{} frames sent in 10 s",
        r.frames_sent
    );
    assert!(settled >= 25.0, "settled at {settled} fps: {:?}", r.fps);
    // Each corrupt datagram costs about one retransmission (lost acks add a few).
    let corrupt = (r.datagrams_sent as f64 * rate) as u64;
    assert!(
        r.retransmits <= corrupt * 3 + 20,
        "{} retransmits for about {corrupt} corrupt datagrams",
        r.retransmits
    );
    assert!(
        r.client["target_kbps"].is_null(),
        "corruption taken for congestion"
    );
}

#[test]
fn one_percent_bit_flips_each_way_cost_one_retransmission_each() {
    corruption_each_way(0.01);
}

#[test]
fn half_a_percent_bit_flips_each_way_cost_one_retransmission_each() {
    corruption_each_way(0.005);
}

fn jittery(seed: u64) -> Impairment {
    Impairment {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(2),
        seed,
        ..Impairment::default()
    }
}

#[test]
fn a_long_link_with_jitter_and_no_loss_wastes_nothing() {
    long_link_with_jitter(run(jittery(3), jittery(4)), "the test card");
}

/// As the review measured it: JPEG files (noise, about 80 KB each at 640x480), sent byte for
/// byte, so only the frame rate could adapt.
#[test]
fn a_long_link_with_jitter_and_no_loss_wastes_nothing_with_jpeg_files() {
    let dir = TempDir::new("hardening-jitter");
    write_jpegs(dir.path(), 30, 640, 480);
    let source = dir.path().to_str().unwrap();
    long_link_with_jitter(
        run_source(jittery(5), jittery(6), &["--source", source]),
        "JPEG files",
    );
}

fn long_link_with_jitter(r: Run, what: &str) {
    let share = r.retransmits as f64 / r.datagrams_sent.max(1) as f64;
    let full_after = r.fps.iter().position(|&f| f >= 27.0).map(|s| s + 1);
    eprintln!(
        "100 ms RTT + 2 ms jitter, no loss, {what}: {} of {} frames delivered, {} retransmits of {} \
         datagrams ({:.2}%), first second at full rate: {full_after:?} (per second: {:?})",
        r.frames_delivered,
        r.frames_sent,
        r.retransmits,
        r.datagrams_sent,
        share * 100.0,
        r.fps
    );
    assert!(share < 0.01, "{} of {}", r.retransmits, r.datagrams_sent);
    assert!(
        r.frames_delivered >= 270,
        "{} of {} frames",
        r.frames_delivered,
        r.frames_sent
    );
    assert!(full_after.is_some_and(|s| s <= 2), "{:?}", r.fps);
}
