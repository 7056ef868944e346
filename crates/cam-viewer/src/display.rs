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
use minifb::{
    InputCallback, Key, KeyRepeat, MouseButton, MouseMode, ScaleMode, Window, WindowOptions,
};

use crate::decode::{DecodeError, DecodeStats, ImageSize, JpegDecoder};
use crate::frame::ReceivedFrame;
use crate::grid;
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

/// How often the window re-reads the streams' list and figures from the hub.
const STATES_INTERVAL: Duration = Duration::from_millis(200);

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
    let mut tiles = Tiles::default();
    let mut view = View::default();
    let mut last_blit: Option<Instant> = None;
    let mut canvas: Vec<u32> = Vec::new();
    let mut mouse_was_down = false;
    let mut states: Vec<crate::hub::StreamState> = Vec::new();
    let mut states_at: Option<Instant> = None;

    loop {
        let pressed: Vec<Command> = commands.borrow_mut().drain(..).collect();
        let mut quit = quit_key_pressed(&window);
        let mut refocused = false;
        for command in pressed {
            match command {
                Command::Quit => quit = true,
                Command::Back if tiles.focus.is_some() => {
                    tiles.focus = None;
                    refocused = true;
                }
                Command::Back => quit = true,
                Command::Grid => {
                    refocused |= tiles.focus.take().is_some();
                }
                Command::Focus(n) => refocused |= tiles.focus_on(usize::from(n) - 1),
                Command::Snapshot => tiles.snapshot_screen().save_snapshot(&opts.snapshot_dir),
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
        // A click on a tile of the grid shows that stream alone.
        let mouse_down = window.get_mouse_down(MouseButton::Left);
        if mouse_down && !mouse_was_down && tiles.focus.is_none() {
            if let Some((x, y)) = window.get_mouse_pos(MouseMode::Discard) {
                let at = (x.max(0.0) as usize, y.max(0.0) as usize);
                let rects = grid::layout(tiles.list.len(), window.get_size());
                if let Some(i) = rects.iter().position(|r| r.contains(at)) {
                    refocused |= tiles.focus_on(i);
                }
            }
        }
        mouse_was_down = mouse_down;

        let wait = !tiles.has_undrawn() || view.paused;
        if receive_and_decode(frames, &mut decoder, &mut tiles, stats, wait)
            == Channel::Disconnected
        {
            return Ok(());
        }
        view.rates.record(&opts.live.snapshot());
        let now = Instant::now();
        // The streams' figures cost a sort of latency samples each, under the lock the
        // receive worker takes for every frame: read them a few times a second, not per
        // refresh (labels and figures follow within STATES_INTERVAL).
        // A tile the figures do not know yet (a new stream) reads them at once: `follow`
        // keeps only the tiles they list.
        let unknown_tile = tiles
            .list
            .iter()
            .any(|t| !states.iter().any(|s| s.id == t.id));
        if unknown_tile
            || states_at.is_none_or(|t| now.saturating_duration_since(t) >= STATES_INTERVAL)
        {
            states = opts.hub.states(now);
            states_at = Some(now);
        }
        let regrouped = tiles.follow(&states);

        let window_size = window.get_size();
        if window_size.0 == 0 || window_size.1 == 0 {
            window.update();
            continue;
        }
        let visible = tiles.visible();
        let rects = grid::layout(visible.len().max(1), window_size);
        let labelled = visible.len() > 1;
        let mut changed = refocused || regrouped || canvas.len() != window_size.0 * window_size.1;
        let mut promoted_any = false;
        for (&i, rect) in visible.iter().zip(&rects) {
            let tile = &mut tiles.list[i];
            let screen = &mut tile.screen;
            let promoted = !view.paused && screen.promote();
            if promoted {
                promoted_any = true;
                tile.view
                    .note_latency(screen.shown.as_ref().and_then(|p| p.capture_ts_us));
            }
            let size = (rect.width, rect.height);
            let resized = size != screen.canvas_size;
            if promoted || resized {
                screen.rescale(size);
            }
            let mut overlay = if labelled {
                let state = states.iter().find(|s| s.id == tile.id);
                view.tile_overlay(screen, state, now)
            } else {
                // One stream: the window as it always was, with the viewer-wide display.
                view.latency_ms = tile.view.latency_ms;
                view.overlay(screen, opts, stats, now)
            };
            if labelled {
                overlay.lines.insert(0, tile_label(i, &tile.id, &states));
            }
            if promoted || resized || screen.overlay.as_ref() != Some(&overlay) {
                screen.compose(overlay, &opts.listen_desc);
                changed = true;
            }
        }
        if visible.is_empty() {
            // The waiting screen, drawn by an empty tile.
            let screen = &mut tiles.waiting;
            if screen.canvas_size != window_size || screen.overlay.is_none() {
                screen.rescale(window_size);
                let overlay = view.overlay(screen, opts, stats, now);
                screen.compose(overlay, &opts.listen_desc);
                changed = true;
            }
        }
        let repaint_due = last_blit.is_none_or(|at| at.elapsed() >= REPAINT_INTERVAL);
        if !(changed || repaint_due) {
            // Nothing to show: only pump events (keys, close button, resizes).
            window.update();
            continue;
        }
        let frame: &[u32] = match visible.as_slice() {
            [] => &tiles.waiting.canvas,
            [only] => &tiles.list[*only].screen.canvas,
            several => {
                canvas.clear();
                canvas.resize(window_size.0 * window_size.1, osd::GRID_BACKGROUND);
                for (&i, rect) in several.iter().zip(&rects) {
                    grid::blit(
                        &mut canvas,
                        window_size.0,
                        &tiles.list[i].screen.canvas,
                        *rect,
                    );
                }
                &canvas
            }
        };
        window
            .update_with_buffer(frame, window_size.0, window_size.1)
            .map_err(minifb_error_text)
            .map_err(DisplayError::Update)?;
        last_blit = Some(Instant::now());
        if promoted_any {
            stats.record_drawn();
        }
        // After the blit, so that a title showing the resolution means the picture is there.
        let wanted = match visible.as_slice() {
            [] => waiting_title(&opts.listen_desc),
            [only] => tiles.list[*only].screen.title(&opts.listen_desc),
            several => grid_title(several.len()),
        };
        if wanted != title {
            title = wanted;
            window.set_title(&title);
        }
    }
}

/// The window title while several streams share it.
pub fn grid_title(streams: usize) -> String {
    format!("{TITLE_PREFIX} — {streams} streams — grid")
}

/// A tile's label: its number (the key that shows it alone), its name or id, its sender.
fn tile_label(index: usize, id: &str, states: &[crate::hub::StreamState]) -> String {
    match states.iter().find(|s| s.id == id) {
        Some(s) => format!(
            "{} {} {}",
            index + 1,
            s.name.as_deref().unwrap_or(&s.id),
            s.sender
        ),
        None => format!("{} {id}", index + 1),
    }
}

/// One stream's place in the window.
#[derive(Debug, Default)]
struct Tile {
    /// The hub's id of the stream.
    id: String,
    screen: Screen,
    view: View,
}

/// Every stream's tile, in the hub's order, and which one is shown alone.
#[derive(Debug, Default)]
struct Tiles {
    list: Vec<Tile>,
    /// The id of the stream shown alone, if any.
    focus: Option<String>,
    /// Draws the waiting screen while there is no stream.
    waiting: Screen,
}

impl Tiles {
    fn accept(&mut self, frame: ReceivedFrame, decoder: &mut JpegDecoder, stats: &DecodeStats) {
        let i = match self.list.iter().position(|t| t.id == frame.stream_label) {
            Some(i) => i,
            None => {
                self.list.push(Tile {
                    id: frame.stream_label.clone(),
                    ..Tile::default()
                });
                self.list.len() - 1
            }
        };
        self.list[i].screen.accept(frame, decoder, stats);
    }

    fn has_undrawn(&self) -> bool {
        self.list.iter().any(|t| t.screen.has_undrawn())
    }

    /// Orders the tiles as the hub does and drops those of streams it dropped (a stream the
    /// hub does not know, as from a file, stays). True if anything moved.
    fn follow(&mut self, states: &[crate::hub::StreamState]) -> bool {
        let before: Vec<String> = self.list.iter().map(|t| t.id.clone()).collect();
        if !states.is_empty() {
            self.list.retain(|t| states.iter().any(|s| s.id == t.id));
            self.list.sort_by_key(|t| {
                states
                    .iter()
                    .position(|s| s.id == t.id)
                    .unwrap_or(usize::MAX)
            });
        }
        if self
            .focus
            .as_ref()
            .is_some_and(|f| !self.list.iter().any(|t| &t.id == f))
        {
            self.focus = None;
        }
        before.len() != self.list.len() || before.iter().zip(&self.list).any(|(a, t)| *a != t.id)
    }

    /// Shows tile `i` alone; false if there is none.
    fn focus_on(&mut self, i: usize) -> bool {
        match self.list.get(i) {
            Some(t) if self.focus.as_ref() != Some(&t.id) => {
                self.focus = Some(t.id.clone());
                true
            }
            _ => false,
        }
    }

    /// The tiles on screen: the focused one, or all.
    fn visible(&self) -> Vec<usize> {
        match &self.focus {
            Some(f) => self
                .list
                .iter()
                .position(|t| &t.id == f)
                .into_iter()
                .collect(),
            None => (0..self.list.len()).collect(),
        }
    }

    /// What `s` saves: the stream shown alone, or the first.
    fn snapshot_screen(&self) -> &Screen {
        let i = self.visible().first().copied();
        i.and_then(|i| self.list.get(i))
            .map_or(&self.waiting, |t| &t.screen)
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

/// Q by polling too (the latch is the main path); Esc only through the latch, where it means
/// "back to the grid" first.
fn quit_key_pressed(window: &Window) -> bool {
    window.is_key_pressed(Key::Q, KeyRepeat::No)
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Quit,
    /// Esc: back to the grid from one stream shown alone; from the grid, quit.
    Back,
    /// 0: the grid.
    Grid,
    /// 1-9: that stream alone.
    Focus(u8),
    Snapshot,
    TogglePause,
    ToggleOsd,
}

fn command_for(key: Key) -> Option<Command> {
    let digits = [
        Key::Key1,
        Key::Key2,
        Key::Key3,
        Key::Key4,
        Key::Key5,
        Key::Key6,
        Key::Key7,
        Key::Key8,
        Key::Key9,
    ];
    if let Some(n) = digits.iter().position(|&k| k == key) {
        return Some(Command::Focus(n as u8 + 1));
    }
    match key {
        Key::Escape => Some(Command::Back),
        Key::Key0 => Some(Command::Grid),
        Key::Q => Some(Command::Quit),
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
        let quits = matches!(command, Command::Quit | Command::Back);
        if self.held.contains(&key) && !quits {
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
    tiles: &mut Tiles,
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
        tiles.accept(frame, decoder, stats);
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
    /// What is drawn over one tile of the grid: its STALLED and PAUSED marks, and with the
    /// on-screen display on, its own stream's figures (the label goes first, added by the
    /// caller).
    fn tile_overlay(
        &self,
        screen: &Screen,
        state: Option<&crate::hub::StreamState>,
        now: Instant,
    ) -> Overlay {
        let mut marks = Vec::new();
        match (&screen.shown, screen.last_frame_at()) {
            (Some(_), Some(last)) => {
                let since = now.saturating_duration_since(last);
                if since > STALL_AFTER {
                    marks.push((osd::stalled_text(since), osd::STALLED_COLOUR));
                }
            }
            _ => marks.push(("WAITING".to_owned(), osd::PAUSED_COLOUR)),
        }
        if self.paused {
            marks.push(("PAUSED".to_owned(), osd::PAUSED_COLOUR));
        }
        let lines = match (self.osd, state) {
            (true, Some(s)) => vec![
                format!("{:.1} fps  {:.0} kbit/s", s.fps, s.kbps),
                format!(
                    "latency {}  missed {}",
                    s.latency_p50_ms
                        .map_or("-".to_owned(), |l| format!("{l:.1} ms")),
                    s.frames_missed
                ),
                format!("{}x{}  {} frames", s.width, s.height, s.frames),
            ],
            _ => Vec::new(),
        };
        Overlay { lines, marks }
    }

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

    fn frame(label: &str, jpeg: Vec<u8>) -> ReceivedFrame {
        let sender: SocketAddr = "127.0.0.1:1".parse().unwrap();
        ReceivedFrame {
            seq: 0,
            jpeg: jpeg.into(),
            width: 0,
            height: 0,
            capture_ts_us: None,
            sender,
            completed_at: Instant::now(),
            stream_label: label.into(),
        }
    }

    fn state(id: &str) -> crate::hub::StreamState {
        crate::hub::StreamState {
            id: id.into(),
            stream_id: id.into(),
            name: None,
            sender: "127.0.0.1:1".into(),
            tile: 0,
            width: 0,
            height: 0,
            frames: 0,
            frames_missed: 0,
            bytes: 0,
            fps: 0.0,
            kbps: 0.0,
            fps_mean: 0.0,
            latency_p50_ms: None,
            latency_p99_ms: None,
            idle_s: None,
            restarts: 0,
        }
    }

    #[test]
    fn tiles_follow_the_streams_and_one_can_be_shown_alone() {
        let mut decoder = JpegDecoder::new().unwrap();
        let stats = DecodeStats::default();
        let mut tiles = Tiles::default();
        let jpeg = {
            let rgb = [90u8; 8 * 8 * 3];
            turbojpeg::Compressor::new()
                .unwrap()
                .compress_to_vec(turbojpeg::Image {
                    pixels: &rgb[..],
                    width: 8,
                    pitch: 24,
                    height: 8,
                    format: turbojpeg::PixelFormat::RGB,
                })
                .unwrap()
        };
        tiles.accept(frame("b", jpeg.clone()), &mut decoder, &stats);
        tiles.accept(frame("a", jpeg.clone()), &mut decoder, &stats);
        assert!(
            tiles.follow(&[state("a"), state("b")]),
            "reordered as the hub says"
        );
        assert_eq!(tiles.visible(), [0, 1]);
        assert!(tiles.focus_on(1));
        assert_eq!(tiles.visible(), [1]);
        assert!(!tiles.focus_on(7), "no such tile");
        // The focused stream goes away: back to the grid.
        assert!(tiles.follow(&[state("a")]));
        assert_eq!((tiles.focus.as_deref(), tiles.visible()), (None, vec![0]));
        assert_eq!(tile_label(0, "a", &[state("a")]), "1 a 127.0.0.1:1");
        let overlay = View::default().tile_overlay(&tiles.list[0].screen, None, Instant::now());
        assert_eq!(overlay.marks[0].0, "WAITING", "decoded, not drawn yet");
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
                Command::Back,
                Command::Back,
                Command::Back,
                Command::TogglePause
            ]
        );
        commands.borrow_mut().clear();
        for key in [Key::Key1, Key::Key9, Key::Key0] {
            latch.set_key_state(key, true);
            latch.set_key_state(key, false);
        }
        assert_eq!(
            *commands.borrow(),
            [Command::Focus(1), Command::Focus(9), Command::Grid]
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
