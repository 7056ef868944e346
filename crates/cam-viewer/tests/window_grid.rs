//! The window's grid on a real (virtual) X server: two cameras' pictures side by side, one
//! shown alone with its number key or a click, Esc back to the grid, Esc again to quit.
//! Found with `xdotool`, looked at in `xwd` dumps.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::time::{Duration, Instant};

use common::procs::{
    client_bin, free_udp_port, viewer_bin, write_solid_jpeg, Proc, TempDir, PATIENCE,
};
use common::xwin::{color_near, find_window, screenshot, wait_for_title, Image, Xvfb};

const RED: [u8; 3] = [220, 30, 30];
const BLUE: [u8; 3] = [30, 60, 220];

/// Share of the shot's pixels near `rgb`.
fn share(shot: &Image, rgb: [u8; 3]) -> f64 {
    let near = shot
        .pixels
        .iter()
        .filter(|&&p| color_near(p, rgb, 40))
        .count();
    near as f64 / shot.pixels.len() as f64
}

/// Screenshots until `check` accepts one.
fn await_shot(xvfb: &Xvfb, window: &str, what: &str, check: impl Fn(&Image) -> bool) -> Image {
    let started = Instant::now();
    loop {
        let shot = screenshot(xvfb.display(), window).unwrap();
        if check(&shot) {
            eprintln!(
                "{what}: after {:?} (red {:.2}, blue {:.2})",
                started.elapsed(),
                share(&shot, RED),
                share(&shot, BLUE)
            );
            return shot;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?} (red {:.2}, blue {:.2})",
            share(&shot, RED),
            share(&shot, BLUE)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn xdotool(xvfb: &Xvfb, args: &[&str]) {
    let _ = xvfb.command("xdotool").args(args).output().unwrap();
}

#[test]
fn two_cameras_share_the_window_and_each_can_be_shown_alone() {
    let xvfb = Xvfb::start();
    let dir = TempDir::new("grid");
    let (red, blue) = (dir.path().join("red.jpg"), dir.path().join("blue.jpg"));
    write_solid_jpeg(&red, RED);
    write_solid_jpeg(&blue, BLUE);
    let port = free_udp_port();
    let mut viewer = Proc::start_with(xvfb.command(viewer_bin()).args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]));
    let window = find_window(xvfb.display(), "^cam-viewer", PATIENCE)
        .unwrap_or_else(|| panic!("no viewer window; stderr:\n{}", viewer.stderr()));
    let to = format!("127.0.0.1:{port}");
    let client = |file: &std::path::Path| {
        Proc::start(
            &client_bin(),
            &[
                &to,
                "--source",
                file.to_str().unwrap(),
                "--fps",
                "15",
                "--duration",
                "60",
            ],
        )
    };
    let (_red_client, _blue_client) = (client(&red), client(&blue));
    let title = wait_for_title(
        xvfb.display(),
        &window,
        |t| t.contains("2 streams"),
        PATIENCE,
    )
    .unwrap_or_else(|e| panic!("no grid ({e}): {}", viewer.stderr()));
    eprintln!("title: {title}");
    // Both pictures at once, each letterboxed in its half of the 640x480 window.
    let grid = await_shot(&xvfb, &window, "both pictures", |s| {
        share(s, RED) > 0.15 && share(s, BLUE) > 0.15
    });
    let left_is_red = color_near(grid.pixel(160, 240), RED, 40);
    assert!(left_is_red || color_near(grid.pixel(160, 240), BLUE, 40));

    // The key of the right tile: that stream alone, full size.
    xdotool(&xvfb, &["key", "--window", &window, "2"]);
    let (alone, other) = if left_is_red {
        (BLUE, RED)
    } else {
        (RED, BLUE)
    };
    await_shot(&xvfb, &window, "tile 2 alone", |s| {
        share(s, alone) > 0.6 && share(s, other) < 0.01
    });
    wait_for_title(xvfb.display(), &window, |t| t.contains("320x240"), PATIENCE).unwrap();
    // Esc: the grid again.
    xdotool(&xvfb, &["key", "--window", &window, "Escape"]);
    await_shot(&xvfb, &window, "the grid again", |s| {
        share(s, RED) > 0.15 && share(s, BLUE) > 0.15
    });
    // A click on the left tile shows it alone.
    // Held a moment, as a hand does: the window polls the button once per refresh.
    xdotool(
        &xvfb,
        &[
            "mousemove",
            "--window",
            &window,
            "100",
            "240",
            "mousedown",
            "1",
            "sleep",
            "0.2",
            "mouseup",
            "1",
        ],
    );
    await_shot(&xvfb, &window, "tile 1 alone after a click", |s| {
        share(s, other) > 0.6 && share(s, alone) < 0.01
    });
    xdotool(&xvfb, &["key", "--window", &window, "Escape"]);
    await_shot(&xvfb, &window, "the grid after Esc", |s| {
        share(s, RED) > 0.15 && share(s, BLUE) > 0.15
    });
    // Esc on the grid quits, with the summary listing both streams.
    xdotool(&xvfb, &["key", "--window", &window, "Escape"]);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(v["streams"].as_array().unwrap().len(), 2, "{v}");
}
