//! A viewer you can leave running (issue 16, section 4): a recording survives `kill -9`, never
//! overwrites a file unless told to, can be cut into segments, and a headless viewer says what
//! it receives every second. Recordings are checked with ffprobe (from ffmpeg, installed by
//! `scripts/setup.sh --window-tests`), which decodes every frame it counts.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::procs::{pattern_client, start_viewer, u, wait_until, TempDir, PATIENCE};

/// ffprobe's view of the file's video stream.
fn ffprobe(path: &Path) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (scripts/setup.sh --window-tests installs ffmpeg)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "ffprobe complains about {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    v["streams"][0].clone()
}

fn rate(text: &str) -> f64 {
    let (num, den) = text.split_once('/').unwrap();
    num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap()
}

fn number(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {key}: {v}"))
}

/// The AVI files in `dir`, by name.
fn avi_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avi"))
        .collect();
    files.sort();
    files
}

/// The frames count of the headless viewer's latest status line.
fn status_frames(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.starts_with("cam-viewer: ") && l.contains(" fps, "))
        .filter_map(|l| l.split(" frames ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn a_recording_killed_with_sigkill_plays_at_the_right_rate_for_the_right_time() {
    let dir = TempDir::new("record-kill9");
    let avi = dir.path().join("rec.avi");
    let (mut viewer, port) = start_viewer(&["--record", avi.to_str().unwrap()]);
    let _client = pattern_client(port, "20", "100000");
    // Killed mid-stream, after at least 40 frames (2 s at 20 fps), as the status line says.
    assert!(
        wait_until(PATIENCE, || status_frames(&viewer.stderr())
            .last()
            .is_some_and(|n| *n >= 40)),
        "no frames; stderr:\n{}",
        viewer.stderr()
    );
    viewer.signal(9);
    let status = viewer.wait(PATIENCE).unwrap();
    assert!(!status.success(), "{status}");

    let stream = ffprobe(&avi);
    let frames = number(&stream, "nb_read_frames");
    let fps = rate(stream["avg_frame_rate"].as_str().unwrap());
    let duration = number(&stream, "duration");
    eprintln!("after kill -9: {frames} frames decoded, {fps:.2} fps, {duration:.3} s");
    assert!(frames >= 40.0, "{stream}");
    assert!((fps - 20.0).abs() < 1.0, "{fps} fps from a 20 fps stream");
    // The header counts every frame that was on disk (at most the one being written is lost).
    assert!(
        (duration - frames / fps).abs() <= 1.5 / fps,
        "{duration} s for {frames} frames at {fps} fps"
    );
    assert!(
        (duration - frames / 20.0).abs() < 0.1 * duration,
        "{duration} s for {frames} frames at 20 fps"
    );
}

#[test]
fn record_never_overwrites_a_file_unless_forced() {
    let dir = TempDir::new("record-noclobber");
    let avi = dir.path().join("rec.avi");
    std::fs::write(&avi, b"precious").unwrap();

    let (mut viewer, port) = start_viewer(&["--frames", "10", "--record", avi.to_str().unwrap()]);
    let _client = pattern_client(port, "30", "10");
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(u(&summary, "frames_recorded"), 10, "{summary}");
    assert_eq!(std::fs::read(&avi).unwrap(), b"precious", "overwritten");
    assert!(viewer.stderr().contains("--force overwrites"));
    let files = avi_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let new = files.iter().find(|p| **p != avi).unwrap();
    let name = new.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("rec-20") && name.len() == "rec-YYYYMMDD-HHMMSS.avi".len());
    assert_eq!(ffprobe(new)["nb_read_frames"], "10");

    let (mut forced, port) = start_viewer(&[
        "--frames",
        "10",
        "--record",
        avi.to_str().unwrap(),
        "--force",
    ]);
    let _client = pattern_client(port, "30", "10");
    let (status, _) = forced.summary(PATIENCE);
    assert!(status.success(), "{}", forced.stderr());
    assert_eq!(
        ffprobe(&avi)["nb_read_frames"],
        "10",
        "--force overwrote it"
    );
    assert_eq!(avi_files(dir.path()).len(), 2);
}

#[test]
fn record_segment_starts_a_new_file_every_duration() {
    let dir = TempDir::new("record-segments");
    let avi = dir.path().join("rec.avi");
    let (mut viewer, port) = start_viewer(&[
        "--frames",
        "70",
        "--record",
        avi.to_str().unwrap(),
        "--record-segment",
        "1s",
    ]);
    let _client = pattern_client(port, "20", "70");
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(u(&summary, "frames_recorded"), 70, "{summary}");
    let mut files = avi_files(dir.path());
    // rec.avi, rec-2.avi, rec-3.avi, …
    files.sort_by_key(|f| {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        stem.strip_prefix("rec-")
            .map_or(1, |n| n.parse::<u32>().unwrap())
    });
    let counts: Vec<u64> = files
        .iter()
        .map(|f| {
            ffprobe(f)["nb_read_frames"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    eprintln!("segments: {files:?} with {counts:?} frames");
    assert_eq!(counts.iter().sum::<u64>(), 70);
    // 3.5 s at 20 fps in 1 s pieces: 3 or more files, none much longer than a second (a busy
    // machine may deliver a late frame in a burst).
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(files[0], avi);
    assert_eq!(files[1], dir.path().join("rec-2.avi"));
    assert!(counts.iter().all(|&n| n <= 26), "{counts:?}");
}

#[test]
fn a_headless_viewer_prints_a_status_line_every_second() {
    let (mut viewer, port) = start_viewer(&["--frames", "80"]);
    let _client = pattern_client(port, "20", "80");
    let (status, _) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let stderr = viewer.stderr();
    let frames = status_frames(&stderr);
    eprintln!("status lines over a 4 s stream: frames {frames:?}");
    // 80 frames at 20 fps take 4 s: about four lines, each counting more frames.
    assert!(frames.len() >= 2, "{stderr}");
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "{frames:?}");
    assert!(frames.len() <= 8, "{stderr}");
}
