//! The window: decode every frame that arrives, show the newest, and stop cleanly.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use minifb::{InputCallback, Key, KeyRepeat, ScaleMode, Window, WindowOptions};

use crate::decode::{DecodeError, DecodeStats, ImageSize, JpegDecoder};
use crate::frame::ReceivedFrame;
use crate::scale::scale_letterboxed;

/// Window refresh limit. Cameras rarely exceed 60 fps, and blitting faster only burns CPU.
const TARGET_FPS: usize = 60;

/// How long to block on the channel when nothing is waiting to be drawn: about one refresh, so
/// that keys and window events are still serviced at the refresh rate.
const FRAME_WAIT: Duration = Duration::from_millis(16);

/// Upper bound on decoding per refresh. If frames arrive faster than they decode, draining
/// "until empty" would never end and the window would freeze; the rest waits in the channel,
/// whose bound then holds back the sender.
const DECODE_BUDGET: Duration = Duration::from_millis(16);

/// minifb's X11 backend neither keeps a backing store nor tells us about Expose events, so a
/// window uncovered by another one stays garbage until the next blit. When no frames come, the
/// last picture is re-sent this often to repair such damage.
const REPAINT_INTERVAL: Duration = Duration::from_millis(250);

/// Shown until the first frame; dark grey rather than black so that "nothing received yet" is
/// distinguishable from "receiving a black picture".
const WAITING_COLOUR: u32 = 0x0020_2020;

/// Every title starts with this, so that scripts and tests can find the window.
pub const TITLE_PREFIX: &str = "cam-viewer";

/// How the window looks before any frame arrives.
#[derive(Debug, Clone)]
pub struct DisplayOptions {
    /// Where the viewer listens, as shown while waiting (e.g. `0.0.0.0:9999`).
    pub listen_desc: String,
    /// Initial window size in pixels; the user can resize afterwards.
    pub initial_size: (usize, usize),
}

impl Default for DisplayOptions {
    fn default() -> Self {
        Self {
            listen_desc: String::new(),
            initial_size: (640, 480),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error(
        "cannot open a window (no display: DISPLAY is not set or the X server is unreachable); \
         use --headless to run without one"
    )]
    NoDisplay,
    #[error("cannot open a window ({0}); use --headless to run without one")]
    WindowCreate(String),
    #[error("cannot draw into the window: {0}")]
    Update(String),
    #[error(transparent)]
    Decoder(#[from] DecodeError),
}

/// The window title before the first frame.
pub fn waiting_title(listen_desc: &str) -> String {
    format!("{TITLE_PREFIX} — waiting on {listen_desc}")
}

/// The window title while frames come from `sender`.
pub fn streaming_title(sender: SocketAddr, size: ImageSize) -> String {
    format!("{TITLE_PREFIX} — {sender} — {}x{}", size.width, size.height)
}

/// Runs the window on the calling thread (X11 wants it on the main thread) until the user
/// closes it (close button, Esc or Q), `stop` is set, or the frame channel disconnects.
///
/// Every received frame is decoded and counted; only the newest decoded one is drawn. `stop`
/// is set on every exit path, errors included, so that the receive worker winds down too.
pub fn run_window(
    frames: Receiver<ReceivedFrame>,
    stop: Arc<AtomicBool>,
    opts: DisplayOptions,
    stats: &DecodeStats,
) -> Result<(), DisplayError> {
    let result = window_loop(&frames, &stop, &opts, stats);
    stop.store(true, Ordering::SeqCst);
    result
}

fn window_loop(
    frames: &Receiver<ReceivedFrame>,
    stop: &AtomicBool,
    opts: &DisplayOptions,
    stats: &DecodeStats,
) -> Result<(), DisplayError> {
    let mut decoder = JpegDecoder::new()?;
    let mut window = open_window(opts)?;
    window.set_target_fps(TARGET_FPS);
    let quit_requested = Rc::new(Cell::new(false));
    window.set_input_callback(Box::new(QuitKeyLatch(Rc::clone(&quit_requested))));

    // Window::new already showed this one.
    let mut title = waiting_title(&opts.listen_desc);

    let mut screen = Screen::default();
    let mut last_blit: Option<Instant> = None;

    loop {
        let quit = quit_requested.get() || quit_key_pressed(&window);
        if quit || !window.is_open() || stop.load(Ordering::SeqCst) {
            return Ok(());
        }

        if receive_and_decode(frames, &mut decoder, &mut screen, stats) == Channel::Disconnected {
            return Ok(());
        }

        let window_size = window.get_size();
        let resized = window_size != screen.canvas_size;
        let repaint_due = last_blit.is_none_or(|at| at.elapsed() >= REPAINT_INTERVAL);
        if window_size.0 == 0 || window_size.1 == 0 {
            window.update();
            continue;
        }
        if !(screen.undrawn || resized || repaint_due) {
            // Nothing to show: only pump events (keys, close button, resizes).
            window.update();
            continue;
        }

        if screen.undrawn || resized {
            screen.render(window_size);
        }
        window
            .update_with_buffer(&screen.canvas, window_size.0, window_size.1)
            .map_err(minifb_error_text)
            .map_err(DisplayError::Update)?;
        last_blit = Some(Instant::now());
        if screen.undrawn {
            screen.undrawn = false;
            stats.record_drawn();
        }
        // After the blit, so that a title showing the resolution means the picture is there.
        let wanted = screen.title(&opts.listen_desc);
        if wanted != title {
            title = wanted;
            window.set_title(&title);
        }
    }
}

fn open_window(opts: &DisplayOptions) -> Result<Window, DisplayError> {
    let (width, height) = opts.initial_size;
    let options = WindowOptions {
        resize: true,
        scale_mode: ScaleMode::UpperLeft,
        ..WindowOptions::default()
    };
    Window::new(
        &waiting_title(&opts.listen_desc),
        width.max(1),
        height.max(1),
        options,
    )
    .map_err(|e| {
        let detail = minifb_error_text(e);
        if detail.contains("XOpenDisplay") {
            DisplayError::NoDisplay
        } else {
            DisplayError::WindowCreate(detail)
        }
    })
}

/// minifb's `Display` drops the detail ("Failed to create window"); its variants carry it.
fn minifb_error_text(error: minifb::Error) -> String {
    match error {
        minifb::Error::WindowCreate(detail) | minifb::Error::UpdateFailed(detail) => detail,
        other => other.to_string(),
    }
}

fn quit_key_pressed(window: &Window) -> bool {
    window.is_key_pressed(Key::Escape, KeyRepeat::No)
        || window.is_key_pressed(Key::Q, KeyRepeat::No)
}

/// Remembers that Esc or Q went down. Polling alone can miss a key that is pressed and
/// released between two refreshes (as `xdotool key` does, a few ms apart): minifb then sees
/// both events in one batch and the key looks as if it was never down.
struct QuitKeyLatch(Rc<Cell<bool>>);

impl InputCallback for QuitKeyLatch {
    fn add_char(&mut self, _uni_char: u32) {}

    fn set_key_state(&mut self, key: Key, down: bool) {
        if down && matches!(key, Key::Escape | Key::Q) {
            self.0.set(true);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Channel {
    Open,
    Disconnected,
}

/// Decodes what has arrived: waits up to [`FRAME_WAIT`] for a first frame when there is
/// nothing new to draw, then takes whatever else is already queued, within [`DECODE_BUDGET`].
fn receive_and_decode(
    frames: &Receiver<ReceivedFrame>,
    decoder: &mut JpegDecoder,
    screen: &mut Screen,
    stats: &DecodeStats,
) -> Channel {
    let started = Instant::now();
    let mut wait = !screen.undrawn;
    loop {
        let frame = if wait {
            wait = false;
            match frames.recv_timeout(FRAME_WAIT) {
                Ok(frame) => frame,
                Err(RecvTimeoutError::Timeout) => return Channel::Open,
                Err(RecvTimeoutError::Disconnected) => return Channel::Disconnected,
            }
        } else {
            match frames.try_recv() {
                Ok(frame) => frame,
                Err(TryRecvError::Empty) => return Channel::Open,
                Err(TryRecvError::Disconnected) => return Channel::Disconnected,
            }
        };
        screen.accept(&frame, decoder, stats);
        if started.elapsed() >= DECODE_BUDGET {
            return Channel::Open;
        }
    }
}

/// The newest good picture and the window-sized canvas it is scaled into.
#[derive(Debug, Default)]
struct Screen {
    /// Decode target; swapped with `picture` on success, so a failed decode never damages
    /// the picture on screen and neither buffer is copied.
    scratch: Vec<u32>,
    picture: Vec<u32>,
    /// Size of `picture` and who sent it; `None` until the first frame decodes.
    source: Option<(ImageSize, SocketAddr)>,
    /// A decoded picture that has not been blitted yet.
    undrawn: bool,
    canvas: Vec<u32>,
    canvas_size: (usize, usize),
}

impl Screen {
    fn accept(&mut self, frame: &ReceivedFrame, decoder: &mut JpegDecoder, stats: &DecodeStats) {
        let outcome = decoder.decode_into(&frame.jpeg, &mut self.scratch);
        stats.record(&outcome);
        match outcome {
            Ok(decoded) => {
                if let Some(warning) = &decoded.warning {
                    log::debug!("frame {} from {}: {warning}", frame.seq, frame.sender);
                }
                std::mem::swap(&mut self.scratch, &mut self.picture);
                self.source = Some((decoded.size, frame.sender));
                // Overwrites a picture not yet drawn: that one is simply skipped.
                self.undrawn = true;
            }
            Err(e) => log::debug!("frame {} from {}: {e}", frame.seq, frame.sender),
        }
    }

    fn render(&mut self, (width, height): (usize, usize)) {
        self.canvas.resize(width * height, 0);
        self.canvas_size = (width, height);
        match self.source {
            Some((size, _)) => {
                scale_letterboxed(
                    &self.picture,
                    size.width,
                    size.height,
                    &mut self.canvas,
                    width,
                    height,
                );
            }
            None => self.canvas.fill(WAITING_COLOUR),
        }
    }

    fn title(&self, listen_desc: &str) -> String {
        match self.source {
            Some((size, sender)) => streaming_title(sender, size),
            None => waiting_title(listen_desc),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn titles_start_with_the_searchable_prefix() {
        let sender: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        let size = ImageSize {
            width: 640,
            height: 480,
        };
        assert_eq!(
            streaming_title(sender, size),
            "cam-viewer — 127.0.0.1:50123 — 640x480"
        );
        assert_eq!(
            waiting_title("0.0.0.0:9999"),
            "cam-viewer — waiting on 0.0.0.0:9999"
        );
    }

    #[test]
    fn no_display_message_is_one_line_and_suggests_headless() {
        let message = DisplayError::NoDisplay.to_string();
        assert!(!message.contains('\n'));
        assert!(message.contains("--headless"));
    }
}
