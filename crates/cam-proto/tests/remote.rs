//! Remote links on simulated time: a long round trip must not cap the frame rate, and a
//! bottleneck slower than the stream must be fitted (quality, size, then rate), with no
//! standing queue, adapting down within 2 s of a drop and back up within about 10 s.

mod common;

use std::time::Duration;

use cam_proto::adapt::Scale;
use cam_proto::sender::SenderConfig;
use cam_proto::sim::Impairment;
use common::{Pair, Source, MS};

/// About a textured 720p frame at quality 80 (issue 6: ~220 KB), about 53 Mbit/s at 30 fps.
const FRAME_720P: usize = 220_000;
const FPS: u32 = 30;
const INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 30);

fn paced() -> SenderConfig {
    SenderConfig {
        frame_interval: Some(INTERVAL),
        ..SenderConfig::default()
    }
}

fn path(one_way: Duration, rate_bps: Option<u64>, seed: u64) -> Impairment {
    Impairment {
        delay: one_way,
        rate_bps,
        queue: 100 * MS,
        seed,
        ..Impairment::default()
    }
}

fn long_round_trip_keeps_the_frame_rate(rtt: Duration) {
    let mut pair = Pair::new(paced(), path(rtt / 2, None, 1), path(rtt / 2, None, 2));
    pair.source = Source::Live;
    pair.frame_size = 20_000..40_000;
    pair.run_for(Duration::from_secs(6));
    let (fps, p50, _) = pair.window_stats(Duration::from_secs(2), Duration::from_secs(6));
    eprintln!(
        "rtt {rtt:?}: {fps:.1} fps, p50 {p50:?}, window {}, dropped at source {}",
        pair.sender.window(),
        pair.source_dropped
    );
    assert!(fps >= 29.0, "{fps:.1} fps at {rtt:?}");
    assert!(pair.sender.window() > 1);
    // One way plus a frame's worth of sending: no queue, no waiting for acks.
    assert!(p50 <= rtt / 2 + INTERVAL, "{p50:?}");
    pair.assert_delivered_exact();
}

#[test]
fn hundred_ms_round_trip_sustains_30_fps() {
    long_round_trip_keeps_the_frame_rate(100 * MS);
}

#[test]
fn two_hundred_ms_round_trip_sustains_30_fps() {
    long_round_trip_keeps_the_frame_rate(200 * MS);
}

fn bottleneck_pair(one_way: Duration, rate_bps: u64) -> Pair {
    Pair::new(
        paced(),
        path(one_way, Some(rate_bps), 3),
        path(one_way, None, 4),
    )
    .with_adaptive_camera(FPS, FRAME_720P)
}

#[test]
fn a_720p_stream_settles_into_10_mbit_within_2_s() {
    let one_way = 20 * MS;
    let mut pair = bottleneck_pair(one_way, 10_000_000);
    pair.run_for(Duration::from_secs(10));
    let (fps, p50, p99) = pair.window_stats(Duration::from_secs(2), Duration::from_secs(10));
    let s = pair.settings().unwrap();
    eprintln!(
        "10 Mbit/s: {fps:.1} fps, p50 {p50:?}, p99 {p99:?}, settled on {s:?}, target {:?} kbit/s, retransmits {}, queue drops {}",
        pair.sender.target_rate_bps().map(|t| (t / 1000.0) as u64),
        pair.sender.stats().retransmits,
        pair.to_viewer.stats().queue_drops
    );
    assert!(fps >= 25.0, "{fps:.1} fps");
    assert!(p50 <= one_way + 2 * INTERVAL, "p50 {p50:?}");
    assert!(s.quality < 80 || s.scale < Scale::Full, "{s:?}");
    pair.assert_delivered_exact();
    // No storm: retransmissions follow what the bottleneck dropped, not more.
    let st = pair.sender.stats();
    let dropped = pair.to_viewer.stats().queue_drops + pair.to_viewer.stats().lost;
    assert!(
        st.retransmits <= dropped * 13 / 10 + 20,
        "{st:?}, {dropped} dropped"
    );
}

#[test]
fn rate_drop_to_a_third_and_back_is_followed() {
    let one_way = 20 * MS;
    let mut pair = bottleneck_pair(one_way, 10_000_000);
    pair.run_for(Duration::from_secs(6));
    let before = pair.sender.target_rate_bps().unwrap();

    // The link drops to a third: within 2 s the stream fits again (no standing queue).
    pair.to_viewer.set_rate(Some(3_333_000));
    let drop_at = pair.now - pair.start;
    pair.run_for(Duration::from_secs(6));
    let (fps, p50, p99) = pair.window_stats(
        drop_at + Duration::from_secs(2),
        drop_at + Duration::from_secs(6),
    );
    let low = pair.sender.target_rate_bps().unwrap();
    eprintln!(
        "after drop: {fps:.1} fps, p50 {p50:?}, p99 {p99:?}, target {low:.0}, settings {:?}",
        pair.settings()
    );
    // At (or probing just above) the new rate, far below the old one.
    assert!(low < 3_333_000.0 * 1.2, "{low}");
    // Even the smallest picture needs about 5 Mbit/s at 30 fps, so frames go last: the
    // stream keeps moving at the rate that fits, with no standing queue.
    assert!(p50 <= one_way + 2 * INTERVAL, "p50 {p50:?} after the drop");
    assert!(fps >= 10.0, "{fps:.1} fps after the drop");

    // Back to 10 Mbit/s: within about 10 s the target is back to at least 80%.
    pair.to_viewer.set_rate(Some(10_000_000));
    let up_at = pair.now;
    let mut recovered = None;
    while pair.now - up_at < Duration::from_secs(12) {
        pair.run_for(100 * MS);
        if recovered.is_none()
            && pair
                .sender
                .target_rate_bps()
                .is_some_and(|t| t >= 8_000_000.0)
        {
            recovered = Some(pair.now - up_at);
        }
    }
    eprintln!(
        "before {before:.0}, low {low:.0}, recovered to 80% after {recovered:?}, settings {:?}",
        pair.settings()
    );
    let took = recovered.expect("never back to 80% of the link");
    assert!(took <= Duration::from_secs(10), "{took:?}");
    pair.assert_delivered_exact();
}

/// A link too slow for even one full-size frame to get through its queue: nothing is ever
/// acknowledged to measure, yet the sender must find the rate (from what it sent and what
/// was reported lost) and shrink the picture until frames flow.
#[test]
fn a_720p_stream_finds_a_link_too_slow_for_its_first_frames() {
    for rtt_ms in [50u64, 200] {
        let one_way = Duration::from_millis(rtt_ms / 2);
        let mut pair = bottleneck_pair(one_way, 5_000_000);
        pair.run_for(Duration::from_secs(12));
        let (fps, p50, _) = pair.window_stats(Duration::from_secs(6), Duration::from_secs(12));
        eprintln!(
            "5 Mbit/s, rtt {rtt_ms} ms: {fps:.1} fps, p50 {p50:?}, settings {:?}, target {:?}",
            pair.settings(),
            pair.sender.target_rate_bps()
        );
        assert!(pair.sender.target_rate_bps().is_some(), "no rate found");
        assert!(fps >= 15.0, "{fps:.1} fps at {rtt_ms} ms");
        pair.assert_delivered_exact();
    }
}
