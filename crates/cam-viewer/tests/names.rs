//! Several cameras by name, and a full viewer that says so: `cam-client --name` reaches the
//! viewer's summary, and a client beyond `--max-streams` is told the viewer is full.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::time::{Duration, Instant};

use common::procs::{client_bin, start_client, start_viewer, u, PATIENCE};

#[test]
fn names_given_by_clients_label_their_streams() {
    let (mut viewer, port) = start_viewer(&["--frames", "120"]);
    let door = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--fps",
            "30",
            "--name",
            "front door",
            "--duration",
            "30",
        ],
    );
    let yard = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--fps",
            "30",
            "--name",
            "yard",
            "--duration",
            "30",
        ],
    );
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let mut names: Vec<String> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["front door", "yard"], "{v}");
    assert!(
        viewer.stderr().contains("is called 'yard'"),
        "{}",
        viewer.stderr()
    );
    door.signal(2);
    yard.signal(2);
}

#[test]
fn a_bad_name_is_one_clear_line() {
    let mut client = start_client(9, &["--source", "pattern", "--name", "a\u{7}b"]);
    let status = client.wait(PATIENCE).unwrap();
    assert!(!status.success());
    let err = client.stderr();
    assert!(err.contains("--name"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_client_beyond_max_streams_is_told_the_viewer_is_full() {
    let (mut viewer, port) = start_viewer(&["--max-streams", "1", "--duration", "30"]);
    let mut first = start_client(port, &["--source", "pattern", "--fps", "30"]);
    assert!(
        viewer.wait_for_stderr("receiving stream", PATIENCE),
        "{}",
        viewer.stderr()
    );
    client_bin();
    let started = Instant::now();
    // A give-up time far beyond the limit below: only the "full" answer can end it in time.
    let mut second = start_client(
        port,
        &["--source", "pattern", "--fps", "30", "--give-up", "60"],
    );
    let status = second.wait(PATIENCE).unwrap();
    let took = started.elapsed();
    eprintln!("told 'full' after {took:?}");
    assert!(!status.success());
    assert!(took < Duration::from_secs(10), "{took:?}");
    let err = second.stderr();
    assert!(
        err.contains("is full") && err.contains("--max-streams"),
        "{err}"
    );
    // The first stream never noticed.
    first.signal(2);
    let (status, c) = first.summary(PATIENCE);
    assert!(status.success(), "{}", first.stderr());
    assert_eq!(u(&c, "frames_timed_out"), 0, "{c}");
    viewer.signal(2);
    let (_, v) = viewer.summary(PATIENCE);
    assert_eq!(v["streams"].as_array().unwrap().len(), 1, "{v}");
}
