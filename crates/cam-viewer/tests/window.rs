//! The real viewer in a real (virtual) X window, fed by the real client over loopback:
//! what a person would see, checked pixel by pixel in an `xwd` dump.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::time::{Duration, Instant};

use common::procs::{client_bin, free_udp_port, viewer_bin, Proc, PATIENCE};
use common::xwin::{color_near, find_window, screenshot, wait_for_title, Xvfb};

/// The test card's bars, left to right.
const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];
const JPEG_TOLERANCE: u8 = 40;

#[test]
fn viewer_window_shows_the_test_card_bars() {
    let xvfb = Xvfb::start();
    let port = free_udp_port();
    let mut viewer = Proc::start_with(
        xvfb.command(viewer_bin())
            .args(["--port", &port.to_string()]),
    );
    let window = find_window(xvfb.display(), "^cam-viewer", PATIENCE)
        .unwrap_or_else(|| panic!("no viewer window; stderr:\n{}", viewer.stderr()));
    let _client = Proc::start(
        &client_bin(),
        &[
            &format!("127.0.0.1:{port}"),
            "--source",
            "pattern",
            "--size",
            "640x480",
            "--fps",
            "30",
        ],
    );
    let title = wait_for_title(xvfb.display(), &window, |t| t.contains("640x480"), PATIENCE)
        .unwrap_or_else(|e| {
            panic!(
                "title never showed the resolution ({e}); stderr:\n{}",
                viewer.stderr()
            )
        });
    assert!(title.starts_with("cam-viewer"), "{title}");
    assert!(
        title.contains("127.0.0.1"),
        "title does not name the sender: {title}"
    );

    // The window opens at 640x480, the card's size: one card pixel per window pixel. A frame
    // is drawn within a refresh; retry the check briefly rather than sleep a fixed time.
    let started = Instant::now();
    let mut problems = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let shot = screenshot(xvfb.display(), &window).unwrap();
        assert_eq!((shot.width, shot.height), (640, 480));
        problems.clear();
        let y = 480 / 3;
        for (i, expected) in BARS.iter().enumerate() {
            let x = i * 80 + 40;
            let got = shot.pixel(x, y);
            if !color_near(got, *expected, JPEG_TOLERANCE) {
                problems.push(format!(
                    "bar {i} at ({x},{y}): {got:?}, expected {expected:?}"
                ));
            }
        }
        if problems.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // q closes the window; the viewer exits cleanly with its summary.
    let _ = xvfb
        .command("xdotool")
        .args(["key", "--window", &window, "q"])
        .output();
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert!(summary["frames_decoded"].as_u64().unwrap() > 0, "{summary}");
}
