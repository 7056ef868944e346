//! The viewer's everyday-use window features on a real (virtual) X server, fed by the real
//! client: the waiting screen, the STALLED mark, the on-screen display, pause, snapshots and
//! quitting, driven with `xdotool` and checked in `xwd` dumps. Every wait polls for the state it
//! needs, with a generous limit.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cam_text::XrgbCanvas;
use cam_viewer::osd;
use common::procs::{client_bin, free_udp_port, saved_frames, viewer_bin, Proc, TempDir, PATIENCE};
use common::xwin::{find_window, screenshot, wait_for_title, Image, Xvfb};

/// The window opens at 640x480 and the test card is sent at that size: one card pixel per
/// window pixel.
const WIDTH: usize = 640;
const HEIGHT: usize = 480;
/// The card's bars fill its top two thirds and never change; the bottom third changes with
/// every frame (a moving square and the frame number).
const BOTTOM: Region = Region {
    x: 0,
    y: 330,
    width: WIDTH,
    height: HEIGHT - 330,
};
/// Where the on-screen display goes (over the bars).
const OSD_CORNER: Region = Region {
    x: 0,
    y: 0,
    width: 320,
    height: 120,
};
/// Where the STALLED and PAUSED marks go.
const MARK_CORNER: Region = Region {
    x: WIDTH / 2,
    y: 0,
    width: WIDTH / 2,
    height: 160,
};

#[derive(Debug, Clone, Copy)]
struct Region {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

fn rgb(colour: u32) -> [u8; 3] {
    [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8]
}

fn pixels_in(shot: &Image, r: Region) -> Vec<[u8; 3]> {
    (r.y..r.y + r.height)
        .flat_map(|y| (r.x..r.x + r.width).map(move |x| (x, y)))
        .map(|(x, y)| shot.pixel(x, y))
        .collect()
}

fn count_colour(shot: &Image, r: Region, colour: u32) -> usize {
    let wanted = rgb(colour);
    pixels_in(shot, r).iter().filter(|&&p| p == wanted).count()
}

/// Pixels of `r` that differ between two shots by more than JPEG noise.
fn changed_pixels(a: &Image, b: &Image, r: Region) -> usize {
    pixels_in(a, r)
        .iter()
        .zip(pixels_in(b, r))
        .filter(|(p, q)| p.iter().zip(q).any(|(u, v)| u.abs_diff(*v) > 40))
        .count()
}

/// Screenshots `window` until `check` accepts one; the accepted shot, or a panic with `what`.
fn await_shot(xvfb: &Xvfb, window: &str, what: &str, check: impl Fn(&Image) -> bool) -> Image {
    let started = Instant::now();
    loop {
        let shot = screenshot(xvfb.display(), window).unwrap();
        assert_eq!((shot.width, shot.height), (WIDTH, HEIGHT));
        if check(&shot) {
            eprintln!("{what}: after {:?}", started.elapsed());
            return shot;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn press(xvfb: &Xvfb, window: &str, key: &str) {
    // The status is no verdict (q may close the window before the release is sent); what the
    // window does afterwards is.
    let _ = xvfb
        .command("xdotool")
        .args(["key", "--window", window, key])
        .output()
        .unwrap();
}

/// A viewer on `xvfb` listening on 127.0.0.1, its window, and its port.
fn start_viewer(xvfb: &Xvfb, extra: &[&str]) -> (Proc, String, u16) {
    let port = free_udp_port();
    let viewer = Proc::start_with(
        xvfb.command(viewer_bin())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(extra),
    );
    let window = find_window(xvfb.display(), "^cam-viewer", PATIENCE)
        .unwrap_or_else(|| panic!("no viewer window; stderr:\n{}", viewer.stderr()));
    (viewer, window, port)
}

fn start_test_card(port: u16) -> Proc {
    Proc::start(
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
    )
}

fn await_picture(xvfb: &Xvfb, window: &str, viewer: &Proc) {
    wait_for_title(xvfb.display(), window, |t| t.contains("640x480"), PATIENCE)
        .unwrap_or_else(|e| panic!("the picture never came ({e}); stderr:\n{}", viewer.stderr()));
}

#[test]
fn waiting_screen_names_the_address_and_a_dead_client_leaves_a_stalled_mark() {
    let xvfb = Xvfb::start();
    let (viewer, window, port) = start_viewer(&xvfb, &[]);
    let listen = format!("127.0.0.1:{port}");
    let title =
        wait_for_title(xvfb.display(), &window, |t| t.contains("waiting"), PATIENCE).unwrap();
    assert!(title.contains(&listen), "title {title:?} lacks {listen}");

    // Exactly what the viewer's own drawing code makes of that address: text pixels in the
    // right places, on dark grey, not black.
    let mut expected = vec![0u32; WIDTH * HEIGHT];
    osd::draw_waiting(&mut XrgbCanvas::new(&mut expected, WIDTH, HEIGHT), &listen);
    let expected: Vec<[u8; 3]> = expected.into_iter().map(rgb).collect();
    let whole = Region {
        x: 0,
        y: 0,
        width: WIDTH,
        height: HEIGHT,
    };
    let shot = await_shot(&xvfb, &window, "waiting screen", |shot| {
        shot.pixels == expected
    });
    let text = count_colour(&shot, whole, osd::WAITING_TEXT_COLOUR);
    assert!(text > 1000, "only {text} text pixels");
    assert!(
        !shot.pixels.contains(&[0, 0, 0]),
        "black on the waiting screen"
    );

    let mut client = start_test_card(port);
    await_picture(&xvfb, &window, &viewer);
    let streaming = screenshot(xvfb.display(), &window).unwrap();
    assert_eq!(
        count_colour(&streaming, MARK_CORNER, osd::STALLED_COLOUR),
        0,
        "STALLED while frames come"
    );

    client.signal(9);
    client.wait(PATIENCE);
    let killed = Instant::now();
    let first = await_shot(&xvfb, &window, "stalled mark", |shot| {
        count_colour(shot, MARK_CORNER, osd::STALLED_COLOUR) > 500
    });
    eprintln!("stalled mark {:?} after the kill", killed.elapsed());
    // White text on the mark: the seconds since the last frame, which keep counting.
    assert!(count_colour(&first, MARK_CORNER, osd::MARK_TEXT_COLOUR) > 100);
    await_shot(&xvfb, &window, "stalled time counting", |shot| {
        changed_pixels(&first, shot, MARK_CORNER) > 20
    });
    // The last picture stays: the bars are still there under the mark.
    let later = screenshot(xvfb.display(), &window).unwrap();
    assert!(changed_pixels(&streaming, &later, OSD_CORNER) == 0);
    drop(viewer);
}

#[test]
fn i_toggles_the_osd_and_space_pauses_the_picture_while_reception_goes_on() {
    let xvfb = Xvfb::start();
    let (mut viewer, window, port) = start_viewer(&xvfb, &[]);
    let _client = start_test_card(port);
    await_picture(&xvfb, &window, &viewer);
    let plain = screenshot(xvfb.display(), &window).unwrap();

    press(&xvfb, &window, "i");
    let with_osd = await_shot(&xvfb, &window, "OSD on", |shot| {
        changed_pixels(&plain, shot, OSD_CORNER) > 5000
    });
    assert!(count_colour(&with_osd, OSD_CORNER, osd::OSD_TEXT_COLOUR) > 300);
    press(&xvfb, &window, "i");
    await_shot(&xvfb, &window, "OSD off", |shot| {
        changed_pixels(&plain, shot, OSD_CORNER) == 0
    });

    press(&xvfb, &window, "space");
    let paused = await_shot(&xvfb, &window, "PAUSED mark", |shot| {
        count_colour(shot, MARK_CORNER, osd::PAUSED_COLOUR) > 500
    });
    // With the display on, its counters prove frames still arrive while the picture stands.
    press(&xvfb, &window, "i");
    let osd_first = await_shot(&xvfb, &window, "OSD on while paused", |shot| {
        changed_pixels(&paused, shot, OSD_CORNER) > 5000
    });
    let osd_later = await_shot(&xvfb, &window, "OSD counters moving while paused", |shot| {
        changed_pixels(&osd_first, shot, OSD_CORNER) > 0
    });
    assert_eq!(
        changed_pixels(&paused, &osd_later, BOTTOM),
        0,
        "the picture changed while paused"
    );
    assert_eq!(
        count_colour(&osd_later, MARK_CORNER, osd::STALLED_COLOUR),
        0,
        "paused is not stalled"
    );

    press(&xvfb, &window, "space");
    await_shot(&xvfb, &window, "moving again after resume", |shot| {
        changed_pixels(&osd_later, shot, BOTTOM) > 100
            && count_colour(shot, MARK_CORNER, osd::PAUSED_COLOUR) == 0
    });

    press(&xvfb, &window, "q");
    let (status, _summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert!(viewer.stderr().contains("display paused"));
    assert!(viewer.stderr().contains("display resumed"));
}

fn snapshots_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

#[test]
fn s_saves_the_received_jpeg_and_q_quits_with_a_summary() {
    let xvfb = Xvfb::start();
    let frames = TempDir::new("ui-frames");
    let snapshots = TempDir::new("ui-snapshots");
    let (mut viewer, window, port) = start_viewer(
        &xvfb,
        &[
            "--save-frames",
            frames.path().to_str().unwrap(),
            "--snapshot-dir",
            snapshots.path().to_str().unwrap(),
        ],
    );
    let mut client = start_test_card(port);
    await_picture(&xvfb, &window, &viewer);

    press(&xvfb, &window, "s");
    assert!(
        viewer.wait_for_stderr("snapshot of frame", PATIENCE),
        "no snapshot logged; stderr:\n{}",
        viewer.stderr()
    );
    let saved = snapshots_in(snapshots.path());
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_string_lossy().into_owned();
    // snapshot-YYYYMMDD-HHMMSS.mmm.jpg
    let shape: String = name
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "snapshot-99999999-999999.999.jpg", "{name}");
    assert!(
        viewer.stderr().contains(&*saved[0].to_string_lossy()),
        "the log names the file; stderr:\n{}",
        viewer.stderr()
    );

    client.signal(9);
    client.wait(PATIENCE);
    press(&xvfb, &window, "q");
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert!(summary["frames_decoded"].as_u64().unwrap() > 0, "{summary}");

    let snapshot = std::fs::read(&saved[0]).unwrap();
    let received = saved_frames(frames.path());
    assert!(
        received.contains(&snapshot),
        "the snapshot is none of the {} received frames",
        received.len()
    );
}
