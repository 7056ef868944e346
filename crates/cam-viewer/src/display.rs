//! The window: decode every frame that arrives, show the newest, draw what the user asked for
//! over it (the on-screen display, the STALLED and PAUSED marks), obey the keys, stop cleanly.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cam_text::XrgbCanvas;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use minifb::{InputCallback, Key, KeyRepeat, ScaleMode, Window, WindowOptions};

use crate::decode::{DecodeError, DecodeStats, ImageSize, JpegDecoder};
use crate::frame::ReceivedFrame;
use crate::live::LiveStats;
use crate::osd::{self, OsdInfo, RateMeter};
use crate::scale::scale_letterboxed;
use crate::snapshot;

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
/// window uncovered by another one stays garbage until the next blit. When nothing changes, the
/// last picture is re-sent this often to repair such damage.
const REPAINT_INTERVAL: Duration = Duration::from_millis(250);

/// A picture with no newer frame for longer than this is marked STALLED.
pub const STALL_AFTER: Duration = Duration::from_secs(1);

/// Weight of the newest frame in the smoothed latency: steady digits, yet a change shows
/// within a second or so.
const LATENCY_SMOOTHING: f64 = 0.1;

/// Every title starts with this, so that scripts and tests can find the window.
pub const TITLE_PREFIX: &str = "cam-viewer";

/// The window's settings and the state it shares with other threads.
#[derive(Debug, Clone)]
pub struct DisplayOptions {
    /// Where the viewer listens, as shown while waiting (e.g. `[::]:9999`).
    pub listen_desc: String,
    /// Initial window size in pixels; the user can resize afterwards.
    pub initial_size: (usize, usize),
    /// The receive worker's counters, for the on-screen display.
    pub live: Arc<LiveStats>,
    /// The latest message-port message, already formatted for one line; the on-screen display
    /// shows it while it is `Some`. Whoever receives messages fills it.
    pub latest_message: Arc<Mutex<Option<String>>>,
    /// Where `s` saves snapshots; empty means the current directory.
    pub snapshot_dir: PathBuf,
    /// Every stream's figures and names, for the grid's labels.
    pub hub: Arc<crate::hub::Hub>,
}

impl Default for DisplayOptions {
    fn default() -> Self {
        Self {
            listen_desc: String::new(),
            initial_size: (640, 480),
            live: Arc::default(),
            latest_message: Arc::default(),
            snapshot_dir: PathBuf::new(),
            hub: Arc::default(),
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
/// Every received frame is decoded and counted; only the newest decoded one is drawn, and none
/// while paused. `stop` is set on every exit path, errors included, so that the receive worker
/// winds down too.
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
    let commands = Rc::new(RefCell::new(Vec::new()));
    window.set_input_callback(Box::new(KeyLatch {
        commands: Rc::clone(&commands),
        held: Vec::new(),
    }));

    // Window::new already showed this one.
    let mut title = waiting_title(&opts.listen_desc);
    let mut screen = Screen::default();
    let mut view = View::default();
    let mut last_blit: Option<Instant> = None;

    loop {
        let pressed: Vec<Command> = commands.borrow_mut().drain(..).collect();
        let mut quit = quit_key_pressed(&window);
        for command in pressed {
            match command {
                Command::Quit => quit = true,
                Command::Snapshot => screen.save_snapshot(&opts.snapshot_dir),
                Command::TogglePause => {
                    view.paused = !view.paused;
                    log::info!("display {}", if view.paused { "paused" } else { "resumed" });
                }
                Command::ToggleOsd => view.osd = !view.osd,
            }
        }
        if quit || !window.is_open() || stop.load(Ordering::SeqCst) {
            return Ok(());
        }

        let wait = !screen.has_undrawn() || view.paused;
        if receive_and_decode(frames, &mut decoder, &mut screen, stats, wait)
            == Channel::Disconnected
        {
            return Ok(());
        }
        view.rates.record(&opts.live.snapshot());

        let window_size = window.get_size();
        if window_size.0 == 0 || window_size.1 == 0 {
            window.update();
            continue;
        }
        let promoted = !view.paused && screen.promote();
        if promoted {
            view.note_latency(screen.shown.as_ref().and_then(|p| p.capture_ts_us));
        }
        let resized = window_size != screen.canvas_size;
        if promoted || resized {
            screen.rescale(window_size);
        }
        let overlay = view.overlay(&screen, opts, stats, Instant::now());
        let changed = promoted || resized || screen.overlay.as_ref() != Some(&overlay);
        if changed {
            screen.compose(overlay, &opts.listen_desc);
        }
        let repaint_due = last_blit.is_none_or(|at| at.elapsed() >= REPAINT_INTERVAL);
        if !(changed || repaint_due) {
            // Nothing to show: only pump events (keys, close button, resizes).
            window.update();
            continue;
        }
        window
            .update_with_buffer(&screen.canvas, window_size.0, window_size.1)
            .map_err(minifb_error_text)
            .map_err(DisplayError::Update)?;
        last_blit = Some(Instant::now());
        if promoted {
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

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Quit,
    Snapshot,
    TogglePause,
    ToggleOsd,
}

fn command_for(key: Key) -> Option<Command> {
    match key {
        Key::Escape | Key::Q => Some(Command::Quit),
        Key::S => Some(Command::Snapshot),
        Key::Space => Some(Command::TogglePause),
        Key::I => Some(Command::ToggleOsd),
        _ => None,
    }
}

/// Queues a command for every key that goes down. Polling alone can miss a key that is pressed
/// and released between two refreshes (as `xdotool key` does, a few ms apart): minifb then sees
/// both events in one batch and the key looks as if it was never down.
///
/// A held key repeats as further presses without releases (minifb turns on X's detectable
/// auto-repeat); those are ignored, so that holding space does not flip pause on and off.
struct KeyLatch {
    commands: Rc<RefCell<Vec<Command>>>,
    held: Vec<Key>,
}

impl InputCallback for KeyLatch {
    fn add_char(&mut self, _uni_char: u32) {}

    fn set_key_state(&mut self, key: Key, down: bool) {
        if !down {
            self.held.retain(|&k| k != key);
            return;
        }
        let Some(command) = command_for(key) else {
            return;
        };
        // Quit always counts: a release lost while the window had no focus must not eat it.
        if self.held.contains(&key) && command != Command::Quit {
            return;
        }
        self.held.push(key);
        self.commands.borrow_mut().push(command);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Channel {
    Open,
    Disconnected,
}

/// Decodes what has arrived: if `wait`, waits up to [`FRAME_WAIT`] for a first frame, then
/// takes whatever else is already queued, within [`DECODE_BUDGET`].
fn receive_and_decode(
    frames: &Receiver<ReceivedFrame>,
    decoder: &mut JpegDecoder,
    screen: &mut Screen,
    stats: &DecodeStats,
    mut wait: bool,
) -> Channel {
    let started = Instant::now();
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
        screen.accept(frame, decoder, stats);
        if started.elapsed() >= DECODE_BUDGET {
            return Channel::Open;
        }
    }
}

/// The user's choices and what is measured across frames.
#[derive(Debug, Default)]
struct View {
    paused: bool,
    osd: bool,
    rates: RateMeter,
    latency_ms: Option<f64>,
}

impl View {
    /// Folds the capture-to-display time of the frame just drawn into the smoothed latency.
    fn note_latency(&mut self, capture_ts_us: Option<u64>) {
        let Some(captured) = capture_ts_us else {
            return;
        };
        let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return;
        };
        // Signed: with unsynchronised clocks the sender may seem to live in the future.
        let ms = (now.as_micros() as f64 - captured as f64) / 1000.0;
        self.latency_ms = Some(match self.latency_ms {
            Some(smoothed) => smoothed + LATENCY_SMOOTHING * (ms - smoothed),
            None => ms,
        });
    }

    /// What should be drawn over the picture at `now`.
    fn overlay(
        &self,
        screen: &Screen,
        opts: &DisplayOptions,
        stats: &DecodeStats,
        now: Instant,
    ) -> Overlay {
        let mut marks = Vec::new();
        if let (Some(_), Some(last)) = (&screen.shown, screen.last_frame_at()) {
            let since = now.saturating_duration_since(last);
            if since > STALL_AFTER {
                marks.push((osd::stalled_text(since), osd::STALLED_COLOUR));
            }
        }
        if self.paused {
            marks.push(("PAUSED".to_owned(), osd::PAUSED_COLOUR));
        }
        let lines = if self.osd {
            let message = opts
                .latest_message
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let live = opts.live.snapshot();
            osd::osd_lines(&OsdInfo {
                rates: self.rates.rates(),
                picture: screen.shown.as_ref().map(|p| (p.size, p.sender)),
                latency_ms: self.latency_ms,
                live: &live,
                decoded: stats.snapshot(),
                message: message.as_deref(),
            })
        } else {
            Vec::new()
        };
        Overlay { lines, marks }
    }
}

/// Everything drawn over the picture; the canvas is recomposed when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Overlay {
    lines: Vec<String>,
    marks: Vec<(String, u32)>,
}

/// A decoded frame with what the window needs to know about it.
#[derive(Debug)]
struct Picture {
    pixels: Vec<u32>,
    size: ImageSize,
    sender: SocketAddr,
    seq: u32,
    /// Exactly as received, for snapshots.
    jpeg: Arc<[u8]>,
    capture_ts_us: Option<u64>,
    completed_at: Instant,
}

/// The pictures and the window-sized buffers they are drawn into.
#[derive(Debug, Default)]
struct Screen {
    /// Decode target; a failed decode never touches a picture, and on success the buffer moves
    /// into one, so no picture is copied.
    scratch: Vec<u32>,
    /// Decoded but not drawn yet: while paused, or until the next refresh. A newer frame
    /// replaces it (the older one is skipped).
    newest: Option<Picture>,
    /// The picture on screen; `None` until the first frame is drawn.
    shown: Option<Picture>,
    /// `shown` scaled to the window, without overlays.
    scaled: Vec<u32>,
    /// What is blitted: `scaled` (or the waiting screen) with `overlay` drawn over it.
    canvas: Vec<u32>,
    canvas_size: (usize, usize),
    overlay: Option<Overlay>,
}

impl Screen {
    fn accept(&mut self, frame: ReceivedFrame, decoder: &mut JpegDecoder, stats: &DecodeStats) {
        let outcome = decoder.decode_into(&frame.jpeg, &mut self.scratch);
        stats.record(&outcome);
        if outcome.is_ok() {
            stats.latency.record(frame.capture_ts_us);
        }
        match outcome {
            Ok(decoded) => {
                if let Some(warning) = &decoded.warning {
                    log::debug!("frame {} from {}: {warning}", frame.seq, frame.sender);
                }
                let picture = Picture {
                    pixels: std::mem::take(&mut self.scratch),
                    size: decoded.size,
                    sender: frame.sender,
                    seq: frame.seq,
                    jpeg: frame.jpeg,
                    capture_ts_us: frame.capture_ts_us,
                    completed_at: frame.completed_at,
                };
                if let Some(skipped) = self.newest.replace(picture) {
                    self.scratch = skipped.pixels;
                }
            }
            Err(e) => log::debug!("frame {} from {}: {e}", frame.seq, frame.sender),
        }
    }

    fn has_undrawn(&self) -> bool {
        self.newest.is_some()
    }

    /// Puts the newest decoded picture on screen; false if there is none.
    fn promote(&mut self) -> bool {
        let Some(newest) = self.newest.take() else {
            return false;
        };
        if let Some(old) = self.shown.replace(newest) {
            if self.scratch.capacity() < old.pixels.capacity() {
                self.scratch = old.pixels;
            }
        }
        true
    }

    /// When the newest good frame arrived, drawn or not.
    fn last_frame_at(&self) -> Option<Instant> {
        self.newest
            .as_ref()
            .or(self.shown.as_ref())
            .map(|p| p.completed_at)
    }

    fn rescale(&mut self, (width, height): (usize, usize)) {
        self.canvas_size = (width, height);
        let Some(shown) = &self.shown else {
            return;
        };
        self.scaled.resize(width * height, 0);
        scale_letterboxed(
            &shown.pixels,
            shown.size.width,
            shown.size.height,
            &mut self.scaled,
            width,
            height,
        );
    }

    fn compose(&mut self, overlay: Overlay, listen_desc: &str) {
        let (width, height) = self.canvas_size;
        self.canvas.resize(width * height, 0);
        let picture_ready = self.shown.is_some() && self.scaled.len() == self.canvas.len();
        if picture_ready {
            self.canvas.copy_from_slice(&self.scaled);
        }
        let mut canvas = XrgbCanvas::new(&mut self.canvas, width, height);
        if !picture_ready {
            osd::draw_waiting(&mut canvas, listen_desc);
        }
        osd::draw_overlays(&mut canvas, &overlay.lines, &overlay.marks);
        self.overlay = Some(overlay);
    }

    fn title(&self, listen_desc: &str) -> String {
        match &self.shown {
            Some(p) => streaming_title(p.sender, p.size),
            None => waiting_title(listen_desc),
        }
    }

    /// Saves the picture on screen as the JPEG it arrived as, and says where.
    fn save_snapshot(&self, dir: &Path) {
        let Some(shown) = &self.shown else {
            log::info!("no picture on screen yet: no snapshot saved");
            return;
        };
        match snapshot::save(dir, &shown.jpeg, SystemTime::now()) {
            Ok(path) => {
                let path = std::path::absolute(&path).unwrap_or(path);
                log::info!(
                    "snapshot of frame {} saved to {}",
                    shown.seq,
                    path.display()
                );
            }
            Err(e) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                log::warn!("cannot save a snapshot in {}: {e}", dir.display());
            }
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

    fn latch() -> (KeyLatch, Rc<RefCell<Vec<Command>>>) {
        let commands = Rc::new(RefCell::new(Vec::new()));
        let latch = KeyLatch {
            commands: Rc::clone(&commands),
            held: Vec::new(),
        };
        (latch, commands)
    }

    #[test]
    fn keys_become_commands_once_per_press() {
        let (mut latch, commands) = latch();
        for key in [Key::I, Key::Space, Key::S, Key::A, Key::Q] {
            latch.set_key_state(key, true);
            latch.set_key_state(key, false);
        }
        assert_eq!(
            *commands.borrow(),
            [
                Command::ToggleOsd,
                Command::TogglePause,
                Command::Snapshot,
                Command::Quit
            ]
        );
        commands.borrow_mut().clear();
        // Auto-repeat: presses without releases in between count once, quitting always.
        for _ in 0..3 {
            latch.set_key_state(Key::Space, true);
            latch.set_key_state(Key::Escape, true);
        }
        latch.set_key_state(Key::Space, false);
        latch.set_key_state(Key::Space, true);
        assert_eq!(
            *commands.borrow(),
            [
                Command::TogglePause,
                Command::Quit,
                Command::Quit,
                Command::Quit,
                Command::TogglePause
            ]
        );
    }

    fn picture(seq: u32, completed_at: Instant) -> Picture {
        Picture {
            pixels: vec![seq; 4],
            size: ImageSize {
                width: 2,
                height: 2,
            },
            sender: "127.0.0.1:1".parse().unwrap(),
            seq,
            jpeg: Arc::from(vec![seq as u8]),
            capture_ts_us: None,
            completed_at,
        }
    }

    #[test]
    fn stalled_and_paused_marks_follow_the_state() {
        let start = Instant::now();
        let opts = DisplayOptions::default();
        let stats = DecodeStats::default();
        let mut screen = Screen::default();
        let mut view = View::default();
        let marks = |view: &View, screen: &Screen, at: Duration| {
            view.overlay(screen, &opts, &stats, start + at).marks
        };
        assert!(
            marks(&view, &screen, Duration::from_secs(5)).is_empty(),
            "waiting: no mark"
        );
        screen.newest = Some(picture(1, start));
        assert!(screen.promote());
        assert!(marks(&view, &screen, Duration::from_millis(900)).is_empty());
        let late = marks(&view, &screen, Duration::from_millis(2500));
        assert_eq!(late, [("STALLED 2.5 s".to_owned(), osd::STALLED_COLOUR)]);
        // Paused, with a newer frame arriving: not stalled, but marked paused.
        view.paused = true;
        screen.newest = Some(picture(2, start + Duration::from_secs(2)));
        let paused = marks(&view, &screen, Duration::from_millis(2500));
        assert_eq!(paused, [("PAUSED".to_owned(), osd::PAUSED_COLOUR)]);
        assert_eq!(
            screen.shown.as_ref().unwrap().seq,
            1,
            "paused keeps the picture"
        );
        assert!(view.overlay(&screen, &opts, &stats, start).lines.is_empty());
        view.osd = true;
        *opts.latest_message.lock().unwrap() = Some("[0,0,0,1]".into());
        let lines = view.overlay(&screen, &opts, &stats, start).lines;
        assert!(
            lines.iter().any(|l| l.contains("2x2 from 127.0.0.1:1")),
            "{lines:?}"
        );
        assert_eq!(lines.last().unwrap(), "msg [0,0,0,1]");
    }

    #[test]
    fn the_waiting_screen_and_the_picture_are_composed_with_overlays() {
        let mut screen = Screen::default();
        screen.rescale((64, 48));
        let no_overlay = Overlay {
            lines: Vec::new(),
            marks: Vec::new(),
        };
        screen.compose(no_overlay.clone(), "[::]:1");
        assert!(screen.canvas.contains(&osd::WAITING_TEXT_COLOUR));
        screen.newest = Some(picture(0x00AB_CDEF, Instant::now()));
        assert!(screen.promote());
        screen.rescale((64, 48));
        screen.compose(no_overlay, "[::]:1");
        assert!(screen.canvas.contains(&0x00AB_CDEF));
        screen.compose(
            Overlay {
                lines: vec!["hello".into()],
                marks: vec![("PAUSED".into(), osd::PAUSED_COLOUR)],
            },
            "[::]:1",
        );
        assert!(screen.canvas.contains(&osd::PAUSED_COLOUR));
        assert!(screen.canvas.contains(&osd::OSD_TEXT_COLOUR));
    }
}
