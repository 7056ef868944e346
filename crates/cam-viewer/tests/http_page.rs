//! The page at `/` in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/setup.sh`) takes a screenshot with two cameras streaming, and both pictures must
//! be in it.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{start_client, wait_until, write_solid_jpeg, TempDir, PATIENCE};
use common::web::{get, start_http_viewer};

/// Pixels of the RGBA screenshot within 40 of `rgb` in every channel.
fn count_near(png_path: &std::path::Path, rgb: [u8; 3]) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let near = pixels
        .chunks_exact(channels)
        .filter(|p| (0..3).all(|c| p[c].abs_diff(rgb[c]) <= 40))
        .count();
    (near, pixels.len() / channels)
}

#[test]
fn chromium_shows_both_cameras_on_the_page() {
    let dir = TempDir::new("page");
    let red = dir.path().join("red.jpg");
    let blue = dir.path().join("blue.jpg");
    write_solid_jpeg(&red, [220, 30, 30]);
    write_solid_jpeg(&blue, [30, 60, 220]);
    let (_viewer, port, http) = start_http_viewer(&[]);
    let _a = start_client(
        port,
        &[
            "--source",
            red.to_str().unwrap(),
            "--fps",
            "10",
            "--duration",
            "60",
        ],
    );
    let _b = start_client(
        port,
        &[
            "--source",
            blue.to_str().unwrap(),
            "--fps",
            "10",
            "--duration",
            "60",
        ],
    );
    assert!(
        wait_until(PATIENCE, || {
            get(http, "/state", &[]).json()["streams"]
                .as_array()
                .is_some_and(|s| s.len() == 2 && s.iter().all(|s| s["frames"].as_u64() > Some(2)))
        }),
        "two streams did not start"
    );
    let shot = dir.path().join("page.png");
    let profile = dir.path().join("chromium-profile");
    let started = Instant::now();
    let mut chromium = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--window-size=1280,720",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://{http}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium (scripts/setup.sh installs it)");
    // Stopped by its PID if it hangs.
    let status = loop {
        if let Some(status) = chromium.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = chromium.kill();
            panic!("chromium took more than 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    eprintln!("screenshot in {:?}", started.elapsed());
    let (reds, total) = count_near(&shot, [220, 30, 30]);
    let (blues, _) = count_near(&shot, [30, 60, 220]);
    eprintln!("{reds} red and {blues} blue pixels of {total}");
    // Each picture fills about a quarter of the page at 1280x720 (two tiles side by side).
    assert!(
        reds > total / 20,
        "the red camera is not on the page: {reds} of {total}"
    );
    assert!(
        blues > total / 20,
        "the blue camera is not on the page: {blues} of {total}"
    );
}
