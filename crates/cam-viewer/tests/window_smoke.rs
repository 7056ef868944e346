//! The display path on a real (virtual) X server: decode, aspect-correct scaling, titles, keys,
//! resizing. Runs `examples/show_jpeg.rs` rather than the viewer binary, so that no network is
//! involved; the viewer's own window tests build on the same harness.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::xwin::{
    self, assert_color_near, color_near, find_window, screenshot, wait_for_title, ChildGuard,
    Image, Xvfb,
};
use turbojpeg::{Compressor, PixelFormat, Subsamp};

/// JPEG moves colours near edges; bar centres are far from edges but chroma is subsampled.
const JPEG_TOLERANCE: u8 = 40;
/// Waits for things that normally take milliseconds; long enough for a loaded CI machine.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the example may take to exit after Escape (DECISIONS: about 5 s end to end).
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// SMPTE-style bars, left to right.
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
const BARS_WIDTH: usize = 400;
const BARS_HEIGHT: usize = 200;
const BAR_WIDTH: usize = BARS_WIDTH / BARS.len();
const BLACK: [u8; 3] = [0, 0, 0];

fn bars_jpeg() -> Vec<u8> {
    let mut rgb = Vec::with_capacity(BARS_WIDTH * BARS_HEIGHT * 3);
    for _ in 0..BARS_HEIGHT {
        for x in 0..BARS_WIDTH {
            rgb.extend_from_slice(&BARS[x / BAR_WIDTH]);
        }
    }
    let mut compressor = Compressor::new().unwrap();
    compressor.set_quality(90).unwrap();
    compressor.set_subsamp(Subsamp::Sub2x2).unwrap();
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: &rgb[..],
            width: BARS_WIDTH,
            pitch: BARS_WIDTH * 3,
            height: BARS_HEIGHT,
            format: PixelFormat::RGB,
        })
        .unwrap()
}

/// Builds `examples/show_jpeg.rs` once per test binary and returns the executable, which cargo
/// names in its JSON messages (so no guessing of target dirs or profiles).
fn show_jpeg_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "show_jpeg"])
            .args(["--message-format", "json-render-diagnostics"])
            .args([
                "--manifest-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run cargo");
        assert!(output.status.success(), "building show_jpeg failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact")
            .filter(|msg| msg["target"]["name"] == "show_jpeg")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo did not report the show_jpeg executable")
    })
    .clone()
}

fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()))
}

/// Starts show_jpeg on `xvfb`; its stderr goes to a file that failure messages quote.
fn start_show_jpeg(xvfb: &Xvfb, source: &str, log_name: &str) -> (ChildGuard, PathBuf) {
    let log_path = temp_path(log_name);
    let log = std::fs::File::create(&log_path).unwrap();
    let child = xvfb
        .command(show_jpeg_exe())
        .args([source, "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot start show_jpeg");
    (ChildGuard(child), log_path)
}

fn read_log(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Sends `key` to the window and checks the process then exits successfully, in time.
fn close_with_key(xvfb: &Xvfb, window: &str, key: &str, viewer: &mut ChildGuard, log: &PathBuf) {
    let sent = Instant::now();
    // xdotool's own status is no verdict: the window may close on the key press and be gone
    // by the time the release is sent (BadWindow, exit status 1). The process exit is.
    let xdotool = xvfb
        .command("xdotool")
        .args(["key", "--window", window, key])
        .output()
        .expect("cannot run xdotool");
    if !xdotool.status.success() {
        eprintln!(
            "xdotool key {key}: {} {}",
            xdotool.status,
            String::from_utf8_lossy(&xdotool.stderr).trim()
        );
    }
    let status = viewer.wait_timeout(EXIT_TIMEOUT);
    let took = sent.elapsed();
    eprintln!("exit after {key}: {status:?} in {took:?}");
    let status = status.unwrap_or_else(|| {
        panic!(
            "show_jpeg still runs {EXIT_TIMEOUT:?} after {key}; its stderr:\n{}",
            read_log(log)
        )
    });
    assert!(
        status.success(),
        "show_jpeg exited with {status}; its stderr:\n{}",
        read_log(log)
    );
}

/// Checks the bars drawn into `picture_*` (window coordinates) and black outside it.
/// Returns a list of mismatches rather than panicking, so that callers can retry.
fn check_bars(
    shot: &Image,
    picture_x: usize,
    picture_y: usize,
    picture_w: usize,
    picture_h: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let scale = picture_w as f64 / BARS_WIDTH as f64;
    let centre_y = picture_y + picture_h / 2;
    for (i, expected) in BARS.iter().enumerate() {
        let x = picture_x + (((i * BAR_WIDTH + BAR_WIDTH / 2) as f64) * scale) as usize;
        for y in [
            centre_y,
            picture_y + picture_h / 4,
            picture_y + picture_h * 3 / 4,
        ] {
            let got = shot.pixel(x, y);
            if !color_near(got, *expected, JPEG_TOLERANCE) {
                problems.push(format!(
                    "bar {i} at ({x},{y}): {got:?}, expected {expected:?}"
                ));
            }
        }
    }
    let mut bar_points = Vec::new();
    if picture_y > 0 {
        bar_points.push((shot.width / 2, picture_y / 2));
        let below = picture_y + picture_h;
        bar_points.push((shot.width / 2, below + (shot.height - below) / 2));
    }
    if picture_x > 0 {
        bar_points.push((picture_x / 2, shot.height / 2));
        let right = picture_x + picture_w;
        bar_points.push((right + (shot.width - right) / 2, shot.height / 2));
    }
    for (x, y) in bar_points {
        let got = shot.pixel(x, y);
        if !color_near(got, BLACK, 2) {
            problems.push(format!("letterbox at ({x},{y}): {got:?}, expected black"));
        }
    }
    problems
}

#[test]
fn colour_bars_are_shown_letterboxed_and_follow_resizes() {
    let xvfb = Xvfb::start();
    let jpeg_path = temp_path("bars.jpg");
    std::fs::write(&jpeg_path, bars_jpeg()).unwrap();
    let (mut viewer, log) = start_show_jpeg(&xvfb, jpeg_path.to_str().unwrap(), "bars.log");

    let started = Instant::now();
    let window = find_window(xvfb.display(), "^cam-viewer", APPEAR_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "no cam-viewer window within {APPEAR_TIMEOUT:?}; show_jpeg stderr:\n{}",
            read_log(&log)
        )
    });
    let resolution = format!("{BARS_WIDTH}x{BARS_HEIGHT}");
    let title = wait_for_title(
        xvfb.display(),
        &window,
        |t| t.starts_with("cam-viewer") && t.ends_with(&resolution),
        APPEAR_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("title never showed {resolution}: {e}"));
    eprintln!("title {title:?} after {:?}", started.elapsed());
    assert!(title.contains("127.0.0.1:0"), "no sender in {title:?}");

    // Default 640x480 window, 2:1 picture: 640x320 with 80-pixel bars above and below.
    let shot = screenshot(xvfb.display(), &window).unwrap();
    assert_eq!((shot.width, shot.height), (640, 480));
    let problems = check_bars(&shot, 0, 80, 640, 320);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // A wide window: 600x300 picture, 200-pixel bars left and right. Moved to the corner
    // first, because xwd only dumps what lies on the screen.
    xwin::xdotool(xvfb.display(), &["windowmove", &window, "0", "0"])
        .expect("xdotool windowmove failed");
    xwin::xdotool(xvfb.display(), &["windowsize", &window, "1000", "300"])
        .expect("xdotool windowsize failed");
    let deadline = Instant::now() + APPEAR_TIMEOUT;
    let problems = loop {
        let problems = match screenshot(xvfb.display(), &window) {
            Ok(shot) if (shot.width, shot.height) == (1000, 300) => {
                check_bars(&shot, 200, 0, 600, 300)
            }
            Ok(shot) => vec![format!("window is {}x{}", shot.width, shot.height)],
            Err(e) => vec![e],
        };
        if problems.is_empty() || Instant::now() >= deadline {
            break problems;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        problems.is_empty(),
        "after resize:\n{}",
        problems.join("\n")
    );

    close_with_key(&xvfb, &window, "Escape", &mut viewer, &log);
    let _ = std::fs::remove_file(&jpeg_path);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn waiting_screen_is_dark_grey_and_q_closes_it() {
    let xvfb = Xvfb::start();
    let (mut viewer, log) = start_show_jpeg(&xvfb, "--none", "waiting.log");
    let window = find_window(xvfb.display(), "^cam-viewer", APPEAR_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "no cam-viewer window; show_jpeg stderr:\n{}",
            read_log(&log)
        )
    });
    let title = wait_for_title(
        xvfb.display(),
        &window,
        |t| t.contains("waiting on nothing"),
        APPEAR_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("no waiting title: {e}"));
    assert!(title.starts_with("cam-viewer"), "{title:?}");

    // The first blit may come a refresh after the window is mapped.
    let deadline = Instant::now() + APPEAR_TIMEOUT;
    let centre = loop {
        let shot = screenshot(xvfb.display(), &window).unwrap();
        let centre = shot.pixel(shot.width / 2, shot.height / 2);
        if color_near(centre, [0x20, 0x20, 0x20], 2) || Instant::now() >= deadline {
            break centre;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_color_near(centre, [0x20, 0x20, 0x20], 2);

    close_with_key(&xvfb, &window, "q", &mut viewer, &log);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn without_a_display_the_error_suggests_headless() {
    let started = Instant::now();
    let output = Command::new(show_jpeg_exe())
        .args(["--none", "5"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!("no-display run took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded without a display");
    assert!(stderr.contains("--headless"), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(output.stdout.is_empty(), "stdout is for JSON only");
}

/// The XWD parser against a real server's dump: xlogo's background and foreground are set to
/// colours whose channels all differ, so swapped channels or a wrong byte order show.
#[test]
fn xwd_dump_of_a_real_window_has_the_right_colours() {
    let xvfb = Xvfb::start();
    let (bg, fg) = ([0x20, 0x60, 0xA0], [0xE0, 0xC0, 0x10]);
    let child = xvfb
        .command("xlogo")
        .args(["-geometry", "200x160+0+0", "-title", "xwd-probe"])
        .args(["-bg", "#2060a0", "-fg", "#e0c010"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start xlogo (package x11-apps); run scripts/setup.sh --window-tests");
    let _xlogo = ChildGuard(child);
    let window = find_window(xvfb.display(), "^xwd-probe$", APPEAR_TIMEOUT).expect("no xlogo");

    let deadline = Instant::now() + APPEAR_TIMEOUT;
    let shot = loop {
        let shot = screenshot(xvfb.display(), &window).unwrap();
        let drawn = shot.pixels.iter().any(|&p| color_near(p, fg, 8));
        if drawn || Instant::now() >= deadline {
            break shot;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((shot.width, shot.height), (200, 160));
    assert_color_near(shot.pixel(0, 0), bg, 0);
    assert_color_near(shot.pixel(199, 159), bg, 0);
    let foreground = shot.pixels.iter().filter(|&&p| p == fg).count();
    let background = shot.pixels.iter().filter(|&&p| p == bg).count();
    assert!(foreground > 500, "only {foreground} foreground pixels");
    assert!(background > 10_000, "only {background} background pixels");
}
