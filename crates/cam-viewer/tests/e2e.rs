//! End to end with the real binaries on loopback: the stream, its summaries, exact bytes,
//! and the one-line errors a user sees.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::time::{Duration, Instant};

use common::procs::{
    client_bin, saved_frames, sha256, start_client, start_viewer, u, viewer_bin, write_jpegs, Proc,
    TempDir, PATIENCE,
};

#[test]
fn test_card_200_frames_unpaced_all_completed_and_decoded() {
    let (mut viewer, port) = start_viewer(&["--frames", "200"]);
    let started = Instant::now();
    let mut client = start_client(
        port,
        &["--source", "pattern", "--fps", "0", "--frames", "200"],
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    eprintln!(
        "200 frames in {:?}; client {c}; viewer {v}",
        started.elapsed()
    );

    assert_eq!(u(&c, "frames_sent"), 200);
    assert_eq!(u(&c, "frames_acked"), 200);
    assert_eq!(u(&c, "frames_timed_out"), 0);
    assert_eq!(u(&v, "frames_completed"), 200);
    assert_eq!(u(&v, "frames_decoded"), 200);
    assert_eq!(u(&v, "decode_errors"), 0);
    assert_eq!(u(&v, "datagrams_invalid"), 0);
    // Both ends agree on what crossed the wire.
    assert_eq!(u(&c, "datagrams_sent"), u(&v, "datagrams_received"));
    assert_eq!(u(&c, "bytes_sent"), u(&v, "bytes_received"));
    assert!(v["fps"].as_f64().unwrap() > 0.0);
}

#[test]
fn jpeg_directory_arrives_byte_for_byte_in_order() {
    let src = TempDir::new("src");
    let out = TempDir::new("out");
    let sources = write_jpegs(src.path(), 5, 320, 240);
    let (mut viewer, port) = start_viewer(&[
        "--frames",
        "15",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let mut client = start_client(
        port,
        &[
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "0",
            "--frames",
            "15",
        ],
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "{}", client.stderr());
    // The size the files have, not --size's default.
    assert_eq!((u(&c, "width"), u(&c, "height")), (320, 240), "{c}");
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(u(&v, "frames_saved"), 15);
    let saved = saved_frames(out.path());
    assert_eq!(saved.len(), 15);
    for (i, frame) in saved.iter().enumerate() {
        assert_eq!(
            sha256(frame),
            sha256(&sources[i % sources.len()]),
            "saved frame {} differs from source file {}",
            i + 1,
            i % sources.len()
        );
    }
}

#[test]
fn missing_camera_fails_with_a_hint() {
    let mut client = Proc::start(&client_bin(), &["127.0.0.1:9", "--source", "camera:0"]);
    let status = client.wait(PATIENCE).expect("client hung without a camera");
    assert!(!status.success());
    let err = client.stderr();
    assert!(err.contains("no camera"), "{err}");
    assert!(err.contains("--source pattern"), "{err}");
    assert!(client.stdout_lines().is_empty());
}

#[test]
fn bad_arguments_get_one_clear_line() {
    let cases: [(&std::path::Path, &[&str], &str); 6] = [
        (
            &client_bin(),
            &["--chunk-size", "70000", "--source", "pattern"],
            "--chunk-size",
        ),
        (
            &client_bin(),
            &["--size", "640", "--source", "pattern"],
            "WIDTHxHEIGHT",
        ),
        (
            &client_bin(),
            &["--quality", "0", "--source", "pattern"],
            "quality",
        ),
        (
            &client_bin(),
            &["127.0.0.1", "--source", "pattern"],
            "no port",
        ),
        (
            &client_bin(),
            &["--source", "/nonexistent/frames"],
            "/nonexistent/frames",
        ),
        (&viewer_bin(), &["--port", "notaport"], "notaport"),
    ];
    for (bin, args, needle) in cases {
        let mut p = Proc::start(bin, args);
        let status = p.wait(PATIENCE).unwrap();
        assert!(!status.success(), "{args:?} succeeded");
        let err = p.stderr();
        assert!(
            err.contains(needle),
            "{args:?}: expected '{needle}' in:\n{err}"
        );
    }
}

#[test]
fn busy_port_is_named() {
    let (_viewer, port) = start_viewer(&[]);
    let mut second = Proc::start(&viewer_bin(), &["--headless", "--port", &port.to_string()]);
    let status = second.wait(PATIENCE).unwrap();
    assert!(!status.success());
    let err = second.stderr();
    assert!(
        err.contains(&port.to_string()) && err.contains("already in use"),
        "{err}"
    );
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn window_without_display_suggests_headless() {
    let mut viewer = Proc::start_with(
        std::process::Command::new(viewer_bin())
            .args(["--port", &common::procs::free_udp_port().to_string()])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY"),
    );
    let status = viewer.wait(PATIENCE).unwrap();
    assert!(!status.success());
    assert!(
        viewer.stderr().contains("--headless"),
        "{}",
        viewer.stderr()
    );
}

#[test]
fn client_facing_a_silent_port_gives_up_with_a_reason() {
    // Something holds the port and never answers: only the give-up time can end the wait.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    client_bin(); // build it first: the build is not the client's time
    let started = Instant::now();
    let mut client = start_client(port, &["--source", "pattern", "--give-up", "1"]);
    let status = client.wait(PATIENCE).unwrap();
    let took = started.elapsed();
    eprintln!("gave up after {took:?}");
    assert!(!status.success());
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(client.stderr().contains("no answer"), "{}", client.stderr());
}

#[test]
fn client_facing_a_closed_port_says_so_at_once() {
    let port = common::procs::free_udp_port();
    client_bin();
    let started = Instant::now();
    // A give-up time far beyond the limit below: only the refusal can end the run in time.
    let mut client = start_client(port, &["--source", "pattern", "--give-up", "60"]);
    let status = client.wait(PATIENCE).unwrap();
    let took = started.elapsed();
    eprintln!("closed port reported after {took:?}");
    assert!(!status.success());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let err = client.stderr();
    assert!(err.contains("nothing is listening"), "{err}");
    assert_eq!(err.matches("ERROR").count(), 1, "one error line: {err}");
}

#[test]
fn client_with_give_up_never_waits_for_a_late_viewer() {
    let port = common::procs::free_udp_port();
    let mut client = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--fps",
            "30",
            "--give-up",
            "never",
            "--duration",
            "60",
        ],
    );
    assert!(
        client.wait_for_stderr("still trying", PATIENCE),
        "{}",
        client.stderr()
    );
    let mut viewer = common::procs::start_viewer_on(port, &["--frames", "30"]);
    let (status, v) = viewer.summary(PATIENCE * 2);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(u(&v, "frames_completed"), 30, "{v}");
    assert!(client.stderr().contains("answers"), "{}", client.stderr());
    // Logged once per change, not once per refused datagram.
    assert_eq!(client.stderr().matches("still trying").count(), 1);
    client.signal(2);
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "{}", client.stderr());
    assert!(u(&c, "frames_acked") >= 30, "{c}");
}

#[test]
fn ctrl_c_stops_both_with_a_summary() {
    let (mut viewer, port) = start_viewer(&[]);
    let mut client = start_client(port, &["--source", "pattern", "--fps", "30"]);
    assert!(
        viewer.wait_for_stderr("receiving stream", PATIENCE),
        "{}",
        viewer.stderr()
    );
    assert!(
        client.wait_for_stderr("cam-client:", PATIENCE),
        "{}",
        client.stderr()
    );
    client.signal(2);
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "{}", client.stderr());
    assert!(u(&c, "frames_acked") > 0, "{c}");
    viewer.signal(15);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert!(u(&v, "frames_completed") > 0, "{v}");
}

/// Once past its give-up time, a client that has been answered must go on waiting on its
/// timers, not spin: a 5 fps stream needs a few percent of a core.
#[test]
fn clients_idle_between_frames_after_the_give_up_time() {
    for protocol in ["camstream", "classic"] {
        let (_viewer, port) = start_viewer(&["--protocol", protocol]);
        let mut client = start_client(
            port,
            &[
                "--protocol",
                protocol,
                "--source",
                "pattern",
                "--fps",
                "5",
                "--give-up",
                "1",
                "--duration",
                "6",
            ],
        );
        // The third status line comes about 3 s in: well past the give-up time.
        let lines = |c: &Proc| c.stderr().matches("cam-client:").count();
        assert!(
            common::procs::wait_until(PATIENCE, || lines(&client) >= 3),
            "{protocol}: no status lines:\n{}",
            client.stderr()
        );
        let cpu = client.cpu_seconds().unwrap();
        eprintln!("{protocol}: {cpu:.2} s of CPU in about 3 s");
        assert!(
            cpu < 1.5,
            "{protocol} client used {cpu:.2} s of CPU in about 3 s: spinning?"
        );
        client.signal(2);
        let (status, _) = client.summary(PATIENCE);
        assert!(status.success(), "{}", client.stderr());
    }
}
