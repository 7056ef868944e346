//! A remote link end to end: the real binaries through a relay that adds 20 ms each way and
//! a 10 Mbit/s bottleneck with a 100 ms drop-tail queue. Textured 720p at 30 fps needs about
//! 50 Mbit/s; the client must fit the link (quality, then size) and keep latency near the
//! propagation delay. Exact bounds live in cam-proto's sans-IO tests; here the outcome is
//! checked within limits that suit a shared machine, and the figures are printed.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cam_proto::sim::Impairment;
use common::procs::{start_client, start_viewer, u, PATIENCE};
use common::relay::Relay;

fn link(one_way_ms: u64, rate_bps: Option<u64>, seed: u64) -> Impairment {
    Impairment {
        delay: Duration::from_millis(one_way_ms),
        rate_bps,
        queue: Duration::from_millis(100),
        seed,
        ..Impairment::default()
    }
}

#[test]
fn textured_720p_fits_a_10_mbit_link_with_low_latency() {
    let (mut viewer, port) = start_viewer(&["--duration", "14"]);
    let viewer_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let relay = Relay::start(
        viewer_addr,
        link(20, Some(10_000_000), 1),
        link(20, None, 2),
    );
    let mut client = start_client(
        relay.addr.port(),
        &[
            "--source",
            "texture",
            "--size",
            "1280x720",
            "--fps",
            "30",
            "--duration",
            "12",
        ],
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(
        status.success(),
        "{}\nviewer:\n{}\nrelay forward {:?} back {:?}",
        client.stderr(),
        viewer.stderr(),
        relay.forward_stats(),
        relay.back_stats()
    );
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let fwd = relay.forward_stats();
    eprintln!(
        "client: {c}\nviewer: {v}\nrelay forward: {fwd:?}\nclient log:\n{}",
        client.stderr()
    );

    // The client found the link and fitted the picture to it.
    // (The target itself oscillates around the link rate while it probes; what was sent
    // on average must fit the link.)
    assert!(
        c["target_kbps"].as_f64().is_some(),
        "no congestion seen on a 10 Mbit/s link"
    );
    let rate = c["rate_kbps"].as_f64().unwrap();
    assert!(
        rate < 11_000.0,
        "sent {rate} kbit/s on average through 10 Mbit/s"
    );
    let adapted = c["quality"].as_u64().unwrap() < 80 || u(&c, "width") < 1280;
    assert!(adapted, "nothing adapted: {c}");
    // A live picture: most frames arrive, and latency stays near the propagation delay
    // (20 ms) plus a couple of frame intervals, rather than the queue's 100 ms on top.
    let fps = v["fps"].as_f64().unwrap();
    assert!(fps >= 15.0, "{fps} fps");
    let p50 = v["latency_p50_ms"].as_f64().unwrap();
    assert!(p50 < 150.0, "p50 latency {p50} ms");
    assert_eq!(u(&v, "decode_errors"), 0);
    assert_eq!(u(&v, "crc_failures"), 0);
}
