//! Shows one JPEG through the viewer's real display path, without a network.
//!
//! Usage: `show_jpeg <JPEG | --none> [SECONDS]`
//!
//! The window tests use it to check the display (decode, scaling, title, keys) on Xvfb while the
//! viewer binary is still being written. `--none` sends nothing, which shows the waiting screen.
//! SECONDS (default 30) bounds the run so that a lost window cannot hang a test forever.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cam_viewer::decode::DecodeStats;
use cam_viewer::display::{run_window, DisplayOptions};
use cam_viewer::frame::ReceivedFrame;

const DEFAULT_SECONDS: u64 = 30;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("show_jpeg: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let source = args
        .next()
        .ok_or("usage: show_jpeg <JPEG | --none> [SECONDS]")?;
    let seconds = match args.next() {
        Some(text) => text
            .parse::<u64>()
            .map_err(|e| format!("SECONDS {text:?}: {e}"))?,
        None => DEFAULT_SECONDS,
    };

    let (tx, rx) = crossbeam_channel::bounded(1);
    let listen_desc = if source == "--none" {
        "nothing (show_jpeg --none)".to_owned()
    } else {
        let jpeg = std::fs::read(&source).map_err(|e| format!("{source}: {e}"))?;
        let (width, height) = header_size(&jpeg);
        let frame = ReceivedFrame {
            seq: 0,
            jpeg: jpeg.into(),
            width,
            height,
            capture_ts_us: None,
            sender: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            completed_at: Instant::now(),
            stream_label: "file".into(),
        };
        tx.send(frame).map_err(|e| e.to_string())?;
        format!("file {source}")
    };

    let stop = Arc::new(AtomicBool::new(false));
    let _deadline = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(seconds));
            stop.store(true, Ordering::SeqCst);
        })
    };

    let stats = DecodeStats::default();
    let opts = DisplayOptions {
        listen_desc,
        ..DisplayOptions::default()
    };
    // `tx` stays alive until the window returns: a disconnected channel would end it at once.
    let result = run_window(rx, stop, opts, &stats);
    drop(tx);
    result.map_err(|e| e.to_string())?;
    let counts = stats.snapshot();
    eprintln!(
        "show_jpeg: decoded {}, errors {}, drawn {}",
        counts.frames_decoded, counts.decode_errors, counts.frames_drawn
    );
    Ok(())
}

/// What a sender would put in the frame header; 0 ("unknown") when it does not fit or parse.
fn header_size(jpeg: &[u8]) -> (u16, u16) {
    match turbojpeg::read_header(jpeg) {
        Ok(header) => (
            u16::try_from(header.width).unwrap_or(0),
            u16::try_from(header.height).unwrap_or(0),
        ),
        Err(_) => (0, 0),
    }
}
