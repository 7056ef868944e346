//! Cameras without a camera: format negotiation on mode lists in `v4l2-ctl --list-formats-ext`
//! form (see `fixtures/README.md`: representative of such cameras, not captured here), their
//! `--list-cameras` layout, and `--list-cameras` on this machine, which has no camera.

use std::path::Path;
use std::process::Command;

use cam_client::source::camera::{choose_format, mode};
use cam_client::source::camera_list::{render, CameraListing};
use nokhwa::utils::{CameraFormat, FrameFormat, Resolution};

/// Reads `v4l2-ctl --list-formats-ext` output into the modes nokhwa would report: one per
/// format, size and whole frame rate.
///
/// Like nokhwa, formats it has no name for (H.264) are skipped. Fractional rates (7.5 fps) are
/// skipped too: a `CameraFormat` holds whole frames per second (nokhwa itself would list a
/// 2/15 s interval as 15 fps, as it keeps only the fraction's denominator).
fn parse_v4l2_ctl(text: &str) -> Vec<CameraFormat> {
    let mut modes = Vec::new();
    let mut format = None;
    let mut size = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix('[') {
            // [0]: 'MJPG' (Motion-JPEG, compressed)
            let code = rest.split('\'').nth(1).expect("a quoted fourcc");
            format = match code {
                "MJPG" => Some(FrameFormat::MJPEG),
                "YUYV" => Some(FrameFormat::YUYV),
                "NV12" => Some(FrameFormat::NV12),
                "GREY" => Some(FrameFormat::GRAY),
                "RGB3" => Some(FrameFormat::RAWRGB),
                "BGR3" => Some(FrameFormat::RAWBGR),
                _ => None,
            };
            size = None;
        } else if let Some(rest) = line.strip_prefix("Size: Discrete ") {
            let (width, height) = rest.split_once('x').expect("WxH");
            size = Some((
                width.parse::<u32>().expect("width"),
                height.parse::<u32>().expect("height"),
            ));
        } else if let Some(rest) = line.strip_prefix("Interval: Discrete ") {
            // 0.033s (30.000 fps)
            let fps: f64 = rest
                .split_once('(')
                .and_then(|(_, fps)| fps.strip_suffix(" fps)"))
                .expect("(N fps)")
                .parse()
                .expect("a rate");
            let (Some(format), Some((width, height))) = (format, size) else {
                continue;
            };
            if fps.fract() == 0.0 {
                modes.push(CameraFormat::new(
                    Resolution::new(width, height),
                    format,
                    fps as u32,
                ));
            }
        }
    }
    modes
}

fn fixture(name: &str) -> Vec<CameraFormat> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    parse_v4l2_ctl(&text)
}

/// (--size WxH, --fps, the mode expected), checked one by one so a failure names the request.
fn check(camera: &str, cases: &[((u32, u32), u32, &str)]) {
    let offered = fixture(camera);
    for &((width, height), fps, expected) in cases {
        let chosen = choose_format(&offered, width, height, fps).map(|format| mode(&format));
        assert_eq!(
            chosen.as_deref(),
            Some(expected),
            "{camera}: --size {width}x{height} --fps {fps}"
        );
    }
}

#[test]
fn fixtures_parse_into_the_modes_nokhwa_would_list() {
    let c920 = fixture("c920-like.txt");
    let count = |format| c920.iter().filter(|m| m.format() == format).count();
    // YUYV: 19 sizes, 7.5 fps left out; MJPG: 17 sizes at 6 whole rates; H.264 skipped.
    assert_eq!(
        count(FrameFormat::YUYV),
        10 * 6 + 2 * 5 + 2 * 3 + 2 + 1 + 1 + 1 + 1
    );
    assert_eq!(count(FrameFormat::MJPEG), 17 * 6);
    assert_eq!(
        c920.len(),
        count(FrameFormat::YUYV) + count(FrameFormat::MJPEG)
    );
    assert_eq!(fixture("laptop-integrated-like.txt").len(), 9 + 6 * 2);
    assert_eq!(fixture("yuyv-only-like.txt").len(), 5 * 6 + 3 + 2 + 1);
}

#[test]
fn c920_like_webcam() {
    check(
        "c920-like.txt",
        &[
            ((1920, 1080), 30, "MJPEG 1920x1080@30"),
            ((1280, 720), 30, "MJPEG 1280x720@30"),
            // YUYV offers 640x480@30 too: MJPEG wins the tie.
            ((640, 480), 30, "MJPEG 640x480@30"),
            // No 25: 30 is enough and gets paced down; 24 would fall short.
            ((640, 480), 25, "MJPEG 640x480@30"),
            ((800, 600), 15, "MJPEG 800x600@15"),
            ((1000, 600), 30, "MJPEG 1024x576@30"),
            // YUYV's 2304x1536 runs at 2 fps: 1920x1080 at 30 is the closer match.
            ((2304, 1536), 30, "MJPEG 1920x1080@30"),
            ((3840, 2160), 30, "MJPEG 1920x1080@30"),
            ((1280, 720), 0, "MJPEG 1280x720@30"),
            ((1280, 720), 5, "MJPEG 1280x720@5"),
        ],
    );
}

#[test]
fn laptop_integrated_like_camera() {
    check(
        "laptop-integrated-like.txt",
        &[
            ((640, 480), 30, "MJPEG 640x480@30"),
            ((1280, 720), 30, "MJPEG 1280x720@30"),
            ((1920, 1080), 30, "MJPEG 1280x720@30"),
            // YUYV has 320x240 at exactly 15; MJPEG at 30 is enough and passes through.
            ((320, 240), 15, "MJPEG 320x240@30"),
            // Worst side 1.2x off (960x540) beats 1.25x (848x480, 640x480).
            ((800, 600), 30, "MJPEG 960x540@30"),
            ((640, 360), 0, "MJPEG 640x360@30"),
        ],
    );
}

#[test]
fn yuyv_only_camera() {
    check(
        "yuyv-only-like.txt",
        &[
            ((640, 480), 30, "YUYV 640x480@30"),
            ((640, 480), 12, "YUYV 640x480@15"),
            ((800, 600), 15, "YUYV 800x600@15"),
            // The asked size at a third of the rate beats a quarter of the pixels at full rate.
            ((1280, 720), 30, "YUYV 1280x720@10"),
            ((1920, 1080), 30, "YUYV 1280x720@10"),
            // As fast as possible: 1280x1024 runs at 5 fps, 640x480 at 30.
            ((1280, 1024), 0, "YUYV 640x480@30"),
        ],
    );
}

#[test]
fn list_layout_for_the_fixtures() {
    let listings: Vec<CameraListing> = [
        "c920-like.txt",
        "laptop-integrated-like.txt",
        "yuyv-only-like.txt",
    ]
    .iter()
    .enumerate()
    .map(|(index, name)| CameraListing {
        index: index as u32 * 2,
        name: name.trim_end_matches(".txt").to_owned(),
        device: format!("Video4Linux Device @ /dev/video{}", index * 2),
        formats: Ok(fixture(name)),
    })
    .collect();
    let text = render(&listings);
    print!("{text}");
    for expected in [
        "camera 0: c920-like (Video4Linux Device @ /dev/video0)\n  MJPG (Motion-JPEG): sent as the camera makes it, see --passthrough\n    1920x1080  30 24 20 15 10 5 fps\n",
        "  YUYV (YUYV 4:2:2): encoded to JPEG here\n    2304x1536  2 fps\n    2304x1296  2 fps\n    1920x1080  5 fps\n",
        "     1280x720  10 5 fps\n",
        "  use: --source camera:0 --size WxH --fps N\n",
        "camera 2: laptop-integrated-like (Video4Linux Device @ /dev/video2)\n  MJPG (Motion-JPEG): sent as the camera makes it, see --passthrough\n     1280x720  30 fps\n",
        "      640x480  30 15 fps\n",
        "camera 4: yuyv-only-like (Video4Linux Device @ /dev/video4)\n  YUYV (YUYV 4:2:2): encoded to JPEG here\n    1280x1024  5 fps\n",
    ] {
        assert!(text.contains(expected), "missing:\n{expected}");
    }
    assert!(!text.contains("H264"), "nokhwa has no H.264 mode");
    let blocks = text
        .lines()
        .filter(|line| line.starts_with("camera "))
        .count();
    assert_eq!(blocks, 3);
}

/// This machine has no camera. Where one is attached, the outcome depends on it: skip.
#[test]
fn list_cameras_without_a_camera() {
    let has_video_node = std::fs::read_dir("/dev").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("video"))
    });
    if has_video_node {
        eprintln!("skipped: this machine has a /dev/video* node");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_cam-client"))
        .arg("--list-cameras")
        .output()
        .expect("cam-client runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.contains("no cameras found"), "{stderr}");
    assert!(output.stdout.is_empty(), "stdout is for JSON lines only");
}
