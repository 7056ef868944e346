//! Faults that must not stop a stream (issue 16, section 3): a save or record write that fails
//! and a closed stdout or stderr. Each runs the real binaries; the client's summary shows that
//! every frame was still acknowledged.
//!
//! Making a write fail for a test that may run as root (which ignores permission bits):
//! - `--save-frames DIR`: once frames are being saved, DIR is renamed away and a regular file
//!   takes its name, so the next `DIR/frame-N.jpg` fails with ENOTDIR, as a vanished or
//!   unmounted directory would;
//! - `--record FILE`: the viewer runs under `ulimit -f` (RLIMIT_FSIZE, which binds root too)
//!   with SIGXFSZ ignored, so writes past the limit fail with EFBIG, as on a full disk.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{
    client_bin, count_files, free_udp_port, pattern_client, start_viewer, u, viewer_bin,
    wait_until, Proc, TempDir, PATIENCE,
};

const CLIENT: [&str; 6] = ["--source", "pattern", "--size", "320x240", "--fps", "20"];

#[test]
fn a_failed_save_stops_saving_and_the_stream_acks_and_summary_go_on() {
    let dir = TempDir::new("save-fails");
    let frames_dir = dir.path().join("frames");
    let (mut viewer, port) = start_viewer(&[
        "--frames",
        "60",
        "--save-frames",
        frames_dir.to_str().unwrap(),
    ]);
    let mut client = pattern_client(port, "20", "60");
    assert!(
        wait_until(PATIENCE, || count_files(&frames_dir) >= 5),
        "no frames saved; viewer stderr:\n{}",
        viewer.stderr()
    );
    std::fs::rename(&frames_dir, dir.path().join("frames.old")).unwrap();
    std::fs::write(&frames_dir, b"not a directory any more").unwrap();

    let (status, summary) = viewer.summary(PATIENCE);
    let stderr = viewer.stderr();
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert_eq!(u(&summary, "frames_completed"), 60, "{summary}");
    let saved = u(&summary, "frames_saved");
    assert!((5..60).contains(&saved), "{summary}");
    assert_eq!(
        count_files(&dir.path().join("frames.old")) as u64,
        saved,
        "frames_saved counts the files written"
    );
    assert!(summary["save_error"].is_string(), "{summary}");
    assert_eq!(
        stderr.matches("saving stopped").count(),
        2,
        "once when it happened, once at the end:\n{stderr}"
    );
    let (_, sent) = client.summary(PATIENCE);
    assert_eq!(u(&sent, "frames_acked"), 60, "{sent}");
    eprintln!("saved {saved} of 60 frames before the directory went; all 60 acked");
}

#[test]
fn a_failed_record_write_stops_recording_and_the_stream_acks_and_summary_go_on() {
    let dir = TempDir::new("record-fails");
    let avi = dir.path().join("rec.avi");
    let port = free_udp_port();
    client_bin();
    // 200 KiB: a dozen or so 320x240 frames fit, then every write fails with EFBIG.
    let mut viewer = Proc::start_with(
        Command::new("bash")
            .args(["-c", r#"trap "" XFSZ; ulimit -f 200; exec "$0" "$@""#])
            .arg(viewer_bin())
            .args(["--headless", "--port", &port.to_string(), "--frames", "60"])
            .arg("--record")
            .arg(&avi),
    );
    assert!(
        viewer.wait_for_stderr("waiting for a stream on", PATIENCE),
        "{}",
        viewer.stderr()
    );
    let mut client = pattern_client(port, "20", "60");
    let (status, summary) = viewer.summary(PATIENCE);
    let stderr = viewer.stderr();
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert_eq!(u(&summary, "frames_completed"), 60, "{summary}");
    let recorded = u(&summary, "frames_recorded");
    assert!((1..60).contains(&recorded), "{summary}");
    assert_eq!(recorded + u(&summary, "frames_unrecorded"), 60, "{summary}");
    assert!(
        summary["record_error"]
            .as_str()
            .is_some_and(|e| e.contains("large")),
        "{summary}"
    );
    assert_eq!(
        stderr.matches("recording stopped").count(),
        1,
        "logged once:\n{stderr}"
    );
    let (_, sent) = client.summary(PATIENCE);
    assert_eq!(u(&sent, "frames_acked"), 60, "{sent}");

    // What was recorded before the failure still plays.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(&avi)
        .output()
        .expect("ffprobe (scripts/setup.sh --window-tests installs ffmpeg)");
    let stream: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &stream["streams"][0];
    assert_eq!(
        stream["nb_read_frames"].as_str(),
        Some(recorded.to_string().as_str()),
        "{stream}; ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    eprintln!(
        "recorded {recorded} of 60 frames ({} bytes) before EFBIG; all 60 acked",
        std::fs::metadata(&avi).unwrap().len()
    );
}

/// Waits for a child without a `Proc` (whose readers would keep the pipes open).
fn wait_child(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < end, "did not finish within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_viewer_whose_stdout_and_stderr_close_goes_on_streaming() {
    let port = free_udp_port();
    client_bin();
    let mut viewer = Command::new(viewer_bin())
        .args(["--headless", "--port", &port.to_string(), "--frames", "60"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until it listens, then close both pipes: every later log line, status line and
    // the summary meet a reader that has gone.
    let mut stderr = BufReader::new(viewer.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for a stream on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "viewer ended");
    }
    drop(stderr);
    drop(viewer.stdout.take());

    let mut client = pattern_client(port, "20", "60");
    let (_, sent) = client.summary(PATIENCE);
    assert_eq!(u(&sent, "frames_acked"), 60, "{sent}");
    let status = wait_child(&mut viewer, PATIENCE);
    assert_ne!(status.code(), Some(101), "the viewer panicked");
    assert!(status.success(), "{status}");
}

#[test]
fn a_client_whose_stdout_closes_exits_cleanly() {
    let (mut viewer, port) = start_viewer(&["--frames", "30"]);
    let mut args = vec![format!("127.0.0.1:{port}")];
    args.extend(CLIENT.iter().map(|s| s.to_string()));
    args.extend(["--frames".into(), "30".into()]);
    let mut client = Command::new(client_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(client.stdout.take());
    let status = wait_child(&mut client, PATIENCE);
    assert_ne!(status.code(), Some(101), "the client panicked");
    assert!(status.success(), "{status}");
    let (_, summary) = viewer.summary(PATIENCE);
    assert_eq!(u(&summary, "frames_completed"), 30, "{summary}");
}

/// The issue's case: a client whose stderr reader went away died after a second (its
/// status line panicked). Now its status lines stop and the stream goes on to the end.
#[test]
fn a_client_whose_stderr_closes_streams_on() {
    let (mut viewer, port) = start_viewer(&["--frames", "50"]);
    let mut args = vec![format!("127.0.0.1:{port}")];
    args.extend(CLIENT.iter().map(|s| s.to_string()));
    // 2.5 s at 20 fps: past the first status lines, which used to be fatal.
    args.extend(["--frames".into(), "50".into()]);
    let mut client = Command::new(client_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(client.stderr.take());
    let status = wait_child(&mut client, PATIENCE);
    assert_ne!(status.code(), Some(101), "the client panicked");
    assert!(status.success(), "{status}");
    let (_, summary) = viewer.summary(PATIENCE);
    assert_eq!(u(&summary, "frames_completed"), 50, "{summary}");
}
