//! `--source FILE.y4m` and `--source -` with the real binaries on loopback: looping to the frame
//! count asked for, playing once without one, standard input, and the error for a chroma
//! format camstream does not take.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::procs::{client_bin, start_client, start_viewer, u, Proc, TempDir, PATIENCE};

/// A full-range 4:2:0 stream of `frames` frames, each a different shade with a gradient.
fn write_y4m(dir: &Path, name: &str, width: usize, height: usize, frames: usize) -> PathBuf {
    let mut bytes =
        format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n")
            .into_bytes();
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    for f in 0..frames {
        bytes.extend_from_slice(b"FRAME\n");
        for y in 0..height {
            bytes.extend((0..width).map(|x| ((x + y + f * 40) % 256) as u8));
        }
        bytes.extend(std::iter::repeat_n(100u8, cw * ch));
        bytes.extend(std::iter::repeat_n(150u8, cw * ch));
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn y4m_file_loops_to_the_frame_count_and_every_frame_decodes() {
    let dir = TempDir::new("y4m");
    let clip = write_y4m(dir.path(), "clip.y4m", 160, 120, 5);
    let (mut viewer, port) = start_viewer(&["--frames", "12"]);
    let mut client = start_client(
        port,
        &[
            "--source",
            clip.to_str().unwrap(),
            "--fps",
            "0",
            "--frames",
            "12",
        ],
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    assert!(
        client.stderr().contains("looped"),
        "source line: {}",
        client.stderr()
    );
    assert_eq!(u(&c, "frames_sent"), 12);
    assert_eq!(u(&c, "frames_acked"), 12);
    assert_eq!((u(&c, "width"), u(&c, "height")), (160, 120));
    assert_eq!(u(&v, "frames_decoded"), 12);
    assert_eq!(u(&v, "decode_errors"), 0);
}

#[test]
fn y4m_file_plays_once_without_a_frame_count_or_duration() {
    let dir = TempDir::new("y4m");
    let clip = write_y4m(dir.path(), "clip.y4m", 64, 48, 5);
    let (mut viewer, port) = start_viewer(&["--frames", "5"]);
    let mut client = start_client(port, &["--source", clip.to_str().unwrap(), "--fps", "0"]);
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    assert_eq!(u(&c, "frames_sent"), 5);
    assert_eq!(u(&c, "frames_acked"), 5);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    assert_eq!(u(&v, "frames_decoded"), 5);
}

#[test]
fn y4m_on_standard_input_ends_with_the_stream() {
    let dir = TempDir::new("y4m");
    let clip = write_y4m(dir.path(), "clip.y4m", 64, 48, 4);
    let (mut viewer, port) = start_viewer(&["--frames", "4"]);
    // Standard input cannot start over: asking for more frames than it holds sends what it has.
    let mut client = Proc::start_with(Command::new("sh").args([
        "-c",
        r#"exec "$0" "127.0.0.1:$1" --source - --fps 0 --frames 50 < "$2""#,
        client_bin().to_str().unwrap(),
        &port.to_string(),
        clip.to_str().unwrap(),
    ]));
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    assert!(
        client.stderr().contains("standard input"),
        "{}",
        client.stderr()
    );
    assert_eq!(u(&c, "frames_sent"), 4);
    assert_eq!(u(&c, "frames_acked"), 4);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    assert_eq!(u(&v, "frames_decoded"), 4);
}

#[test]
fn y4m_with_another_chroma_is_refused_with_a_clear_error() {
    let dir = TempDir::new("y4m");
    let clip = dir.path().join("c422.y4m");
    let mut bytes = b"YUV4MPEG2 W64 H48 F30:1 C422\nFRAME\n".to_vec();
    bytes.resize(bytes.len() + 64 * 48 * 2, 128);
    std::fs::write(&clip, bytes).unwrap();
    let mut client = start_client(
        common::procs::free_udp_port(),
        &["--source", clip.to_str().unwrap(), "--give-up", "1"],
    );
    let status = client.wait(PATIENCE).expect("client exits");
    assert!(!status.success());
    let err = client.stderr();
    assert!(err.contains("C422") && err.contains("yuv420p"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}
