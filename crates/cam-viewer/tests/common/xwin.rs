//! Looking at real windows from tests: a private Xvfb server, finding windows with `xdotool`,
//! and screenshots through `xwd`, whose output is parsed here so that no image crate is needed.
//!
//! Missing tools make tests fail, not skip: a window test that quietly does nothing would
//! report success for a display nobody checked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to tell someone whose machine lacks the X tools.
pub const SETUP_HINT: &str = "run scripts/setup.sh --window-tests";

/// How often the `wait`/`find` helpers look again.
const POLL: Duration = Duration::from_millis(50);

/// Longest wait for Xvfb to come up; generous for a loaded 2-core CI machine.
const XVFB_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Tools every window test needs, and the Debian package that brings each.
const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("Xvfb", "xvfb"),
    ("xdotool", "xdotool"),
    ("xwd", "x11-apps"),
];

/// Panics, naming the setup script, unless every X tool the window tests use is installed.
pub fn require_x_tools() {
    let missing: Vec<String> = REQUIRED_TOOLS
        .iter()
        .filter(|(tool, _)| find_on_path(tool).is_none())
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "window tests need {} on PATH: {SETUP_HINT}",
        missing.join(", ")
    );
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A private X server for one test, stopped when dropped.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    display: String,
    log_path: PathBuf,
    /// Kept open: Xvfb wrote its display number here and must not get SIGPIPE later.
    _displayfd: ChildStdout,
}

impl Xvfb {
    /// Starts `Xvfb -screen 0 1280x1024x24` on a free display and waits until clients can
    /// connect. The server picks the display itself (`-displayfd`): choosing a number here and
    /// checking `/tmp/.X11-unix` races with tests running in parallel, in this process or others.
    pub fn start() -> Xvfb {
        require_x_tools();
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "xvfb-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x1024x24"])
            .args(["-nolisten", "tcp"])
            // Without -noreset the server resets whenever its last client disconnects, which
            // every short-lived xdotool/xwd call does; a reset in the middle of a test is a flake.
            .arg("-noreset")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvfb: {e}; {SETUP_HINT}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("Xvfb has no stdout pipe")
        };

        // Xvfb writes the display number once it accepts connections; read it off-thread so
        // that a server that hangs cannot hang the test.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader.into_inner()));
        });
        let started = Instant::now();
        let (number, displayfd) = match rx.recv_timeout(XVFB_START_TIMEOUT) {
            Ok((Ok(line), stdout)) if !line.trim().is_empty() => (line.trim().to_owned(), stdout),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Xvfb did not report a display within {XVFB_START_TIMEOUT:?} ({outcome:?}); \
                     its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let xvfb = Xvfb {
            child,
            display: format!(":{number}"),
            log_path,
            _displayfd: displayfd,
        };
        xvfb.wait_until_usable(XVFB_START_TIMEOUT.saturating_sub(started.elapsed()));
        xvfb
    }

    /// The `DISPLAY` value for clients of this server, e.g. `:3`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// A command that will run against this server (and only it: `DISPLAY` is set on the
    /// child, never on the test process, which other tests share).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("DISPLAY", &self.display);
        command
    }

    /// What the server printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_until_usable(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let socket = self
            .display
            .strip_prefix(':')
            .map(|n| PathBuf::from(format!("/tmp/.X11-unix/X{n}")));
        loop {
            let socket_ok = socket.as_deref().is_some_and(Path::exists);
            let geometry_ok = socket_ok
                && xdotool(&self.display, &["getdisplaygeometry"])
                    .is_some_and(|out| !out.trim().is_empty());
            if geometry_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Xvfb on {} does not accept connections; its log:\n{}",
                self.display,
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock file and socket; Child::kill would SIGKILL and leave
        // both behind. std has no portable way to send SIGTERM, hence kill(1), by our child's pid.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !terminated || wait_timeout(&mut self.child, Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        } else {
            eprintln!("Xvfb log kept in {}", self.log_path.display());
        }
    }
}

/// Waits for `child` to exit, up to `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL / 5),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A process under test that is killed if the test ends (or panics) while it still runs.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.0, timeout)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `xdotool ARGS` on `display`; its stdout if it succeeded.
pub fn xdotool(display: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The id of a mapped window whose title matches `name_regex` (xdotool's regex), waiting up
/// to `timeout` for it to appear.
pub fn find_window(display: &str, name_regex: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        // --onlyvisible: a window that exists but is not mapped yet cannot be screenshot.
        let found =
            xdotool(display, &["search", "--onlyvisible", "--name", name_regex]).and_then(|out| {
                out.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_owned)
            });
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(POLL);
    }
}

/// The window's title (WM_NAME as xdotool reads it), or `None` if the window is gone.
pub fn window_title(display: &str, id: &str) -> Option<String> {
    xdotool(display, &["getwindowname", id]).map(|out| out.trim_end_matches('\n').to_owned())
}

/// Waits until the title satisfies `wanted`; on timeout, says what the title was.
pub fn wait_for_title(
    display: &str,
    id: &str,
    wanted: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let title = window_title(display, id);
        if let Some(title) = &title {
            if wanted(title) {
                return Ok(title.clone());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("after {timeout:?} the title is {title:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// An RGB picture of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// Row-major, top to bottom.
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    #[track_caller]
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x},{y}) outside {}x{}",
            self.width,
            self.height
        );
        self.pixels[y * self.width + x]
    }
}

/// Whether every channel of `actual` is within `tolerance` of `expected`.
pub fn color_near(actual: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(&a, e)| a.abs_diff(e) <= tolerance)
}

#[track_caller]
pub fn assert_color_near(actual: [u8; 3], expected: [u8; 3], tolerance: u8) {
    assert!(
        color_near(actual, expected, tolerance),
        "colour {actual:?} is not within {tolerance} of {expected:?}"
    );
}

/// Dumps the inside of window `id` with `xwd` and decodes it.
///
/// Only the part of the window that lies on the screen is dumped: keep windows inside the
/// 1280x1024 screen (move them first when making them bigger).
pub fn screenshot(display: &str, id: &str) -> Result<Image, String> {
    let output = Command::new("xwd")
        // -nobdrs: without it the dump includes the X border (1 pixel around Xt windows).
        .args(["-silent", "-nobdrs", "-id", id])
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run xwd: {e}; {SETUP_HINT}"))?;
    if !output.status.success() {
        return Err(format!(
            "xwd -id {id} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_xwd(&output.stdout)
}

/// Byte offsets and values of the XWD format (X11/XWDFile.h): a header of 25 big-endian
/// CARD32s, the window name up to `header_size`, `ncolors` 12-byte colour entries, then the
/// pixels in the server's byte order.
mod xwd {
    pub const HEADER_WORDS: usize = 25;
    pub const HEADER_LEN: usize = HEADER_WORDS * 4;
    pub const COLOR_LEN: usize = 12;
    pub const FILE_VERSION: u32 = 7;
    pub const Z_PIXMAP: u32 = 2;
    pub const LSB_FIRST: u32 = 0;
    pub const MSB_FIRST: u32 = 1;
    pub const TRUE_COLOR: u32 = 4;
    pub const DIRECT_COLOR: u32 = 5;

    pub const HEADER_SIZE: usize = 0;
    pub const FILE_VERSION_AT: usize = 1;
    pub const PIXMAP_FORMAT: usize = 2;
    pub const PIXMAP_WIDTH: usize = 4;
    pub const PIXMAP_HEIGHT: usize = 5;
    pub const BYTE_ORDER: usize = 7;
    pub const BITS_PER_PIXEL: usize = 11;
    pub const BYTES_PER_LINE: usize = 12;
    pub const VISUAL_CLASS: usize = 13;
    pub const RED_MASK: usize = 14;
    pub const GREEN_MASK: usize = 15;
    pub const BLUE_MASK: usize = 16;
    pub const NCOLORS: usize = 19;
}

/// Decodes an XWD dump of a TrueColor (or DirectColor) window, any byte order, 8 to 32 bpp.
pub fn parse_xwd(bytes: &[u8]) -> Result<Image, String> {
    if bytes.len() < xwd::HEADER_LEN {
        return Err(format!(
            "XWD data is {} bytes, shorter than its header",
            bytes.len()
        ));
    }
    let word = |index: usize| {
        let at = index * 4;
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    let as_usize = |index: usize| usize::try_from(word(index)).unwrap_or(usize::MAX);

    if word(xwd::FILE_VERSION_AT) != xwd::FILE_VERSION {
        return Err(format!(
            "XWD version {} (expected 7)",
            word(xwd::FILE_VERSION_AT)
        ));
    }
    if word(xwd::PIXMAP_FORMAT) != xwd::Z_PIXMAP {
        return Err(format!(
            "XWD pixmap format {} (only ZPixmap)",
            word(xwd::PIXMAP_FORMAT)
        ));
    }
    let visual = word(xwd::VISUAL_CLASS);
    if visual != xwd::TRUE_COLOR && visual != xwd::DIRECT_COLOR {
        return Err(format!(
            "XWD visual class {visual} (only TrueColor/DirectColor)"
        ));
    }
    let bits_per_pixel = as_usize(xwd::BITS_PER_PIXEL);
    if !matches!(bits_per_pixel, 8 | 16 | 24 | 32) {
        return Err(format!("XWD with {bits_per_pixel} bits per pixel"));
    }
    let bytes_per_pixel = bits_per_pixel / 8;
    let byte_order = word(xwd::BYTE_ORDER);
    if byte_order != xwd::LSB_FIRST && byte_order != xwd::MSB_FIRST {
        return Err(format!("XWD byte order {byte_order}"));
    }
    let (width, height) = (as_usize(xwd::PIXMAP_WIDTH), as_usize(xwd::PIXMAP_HEIGHT));
    let bytes_per_line = as_usize(xwd::BYTES_PER_LINE);
    let header_size = as_usize(xwd::HEADER_SIZE);
    if header_size < xwd::HEADER_LEN {
        return Err(format!(
            "XWD header_size {header_size} < {}",
            xwd::HEADER_LEN
        ));
    }
    if width.saturating_mul(bytes_per_pixel) > bytes_per_line {
        return Err(format!(
            "XWD line of {bytes_per_line} bytes cannot hold {width} pixels of {bytes_per_pixel} bytes"
        ));
    }
    let data_start = as_usize(xwd::NCOLORS)
        .checked_mul(xwd::COLOR_LEN)
        .and_then(|colormap| colormap.checked_add(header_size));
    let data_len = bytes_per_line.checked_mul(height);
    let data = match (data_start, data_len) {
        (Some(start), Some(len)) => start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end)),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "XWD data is {} bytes, too short for {width}x{height} at {bytes_per_line} bytes per line",
            bytes.len()
        )
    })?;

    let masks = [
        word(xwd::RED_MASK),
        word(xwd::GREEN_MASK),
        word(xwd::BLUE_MASK),
    ];
    let mut pixels = Vec::with_capacity(width * height);
    for row in data.chunks_exact(bytes_per_line) {
        for raw in row[..width * bytes_per_pixel].chunks_exact(bytes_per_pixel) {
            let value = if byte_order == xwd::LSB_FIRST {
                raw.iter()
                    .rev()
                    .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
            } else {
                raw.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
            };
            pixels.push(masks.map(|mask| channel(value, mask)));
        }
    }
    Ok(Image {
        width,
        height,
        pixels,
    })
}

/// The channel selected by `mask`, scaled to 0..=255 whatever its width.
fn channel(value: u32, mask: u32) -> u8 {
    if mask == 0 {
        return 0;
    }
    let bits = mask.count_ones();
    let raw = (value & mask) >> mask.trailing_zeros();
    if bits >= 8 {
        (raw >> (bits - 8)) as u8
    } else {
        let max = (1u32 << bits) - 1;
        ((raw * 255 + max / 2) / max) as u8
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    /// Builds an XWD file the way `xwd` lays one out, for pixels given as 0xRRGGBB.
    fn synthetic_xwd(
        width: usize,
        height: usize,
        rgb: &[u32],
        byte_order: u32,
        bits_per_pixel: usize,
        masks: [u32; 3],
    ) -> Vec<u8> {
        let name = b"test window\0";
        let ncolors = 3;
        let bytes_per_pixel = bits_per_pixel / 8;
        // Padded rows, as servers do, so that the parser must use bytes_per_line.
        let bytes_per_line = width * bytes_per_pixel + 6;
        let mut header = [0u32; xwd::HEADER_WORDS];
        header[xwd::HEADER_SIZE] = (xwd::HEADER_LEN + name.len()) as u32;
        header[xwd::FILE_VERSION_AT] = xwd::FILE_VERSION;
        header[xwd::PIXMAP_FORMAT] = xwd::Z_PIXMAP;
        header[3] = 24;
        header[xwd::PIXMAP_WIDTH] = width as u32;
        header[xwd::PIXMAP_HEIGHT] = height as u32;
        header[xwd::BYTE_ORDER] = byte_order;
        header[xwd::BITS_PER_PIXEL] = bits_per_pixel as u32;
        header[xwd::BYTES_PER_LINE] = bytes_per_line as u32;
        header[xwd::VISUAL_CLASS] = xwd::TRUE_COLOR;
        header[xwd::RED_MASK] = masks[0];
        header[xwd::GREEN_MASK] = masks[1];
        header[xwd::BLUE_MASK] = masks[2];
        header[xwd::NCOLORS] = ncolors;
        let mut out: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        out.extend_from_slice(name);
        out.extend(std::iter::repeat_n(0xEE, ncolors as usize * xwd::COLOR_LEN));
        for row in rgb.chunks_exact(width) {
            for &colour in row {
                let [r, g, b] = [(colour >> 16) & 0xFF, (colour >> 8) & 0xFF, colour & 0xFF];
                let value = [(r, masks[0]), (g, masks[1]), (b, masks[2])]
                    .iter()
                    .map(|&(c, mask)| {
                        let bits = mask.count_ones();
                        ((c >> (8 - bits.min(8))) << mask.trailing_zeros()) & mask
                    })
                    .fold(0, |acc, v| acc | v);
                let be = value.to_be_bytes();
                let bytes = &be[4 - bytes_per_pixel..];
                if byte_order == xwd::LSB_FIRST {
                    out.extend(bytes.iter().rev());
                } else {
                    out.extend_from_slice(bytes);
                }
            }
            out.extend_from_slice(&[0xAB; 6]);
        }
        out
    }

    const RGB_MASKS: [u32; 3] = [0x00FF_0000, 0x0000_FF00, 0x0000_00FF];
    const PIXELS: [u32; 6] = [0xFF0000, 0x00FF00, 0x0000FF, 0x123456, 0xFFFFFF, 0x000000];
    const EXPECTED: [[u8; 3]; 6] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [0x12, 0x34, 0x56],
        [255, 255, 255],
        [0, 0, 0],
    ];

    #[test]
    fn parses_32bpp_in_both_byte_orders() {
        for order in [xwd::LSB_FIRST, xwd::MSB_FIRST] {
            let file = synthetic_xwd(3, 2, &PIXELS, order, 32, RGB_MASKS);
            let image = parse_xwd(&file).unwrap();
            assert_eq!((image.width, image.height), (3, 2));
            assert_eq!(image.pixels, EXPECTED, "byte order {order}");
            assert_eq!(image.pixel(0, 1), [0x12, 0x34, 0x56]);
        }
    }

    #[test]
    fn follows_the_masks_not_a_fixed_layout() {
        let bgr = [0x0000_00FF, 0x0000_FF00, 0x00FF_0000];
        let file = synthetic_xwd(3, 2, &PIXELS, xwd::LSB_FIRST, 32, bgr);
        assert_eq!(parse_xwd(&file).unwrap().pixels, EXPECTED);
    }

    #[test]
    fn parses_16bpp_565() {
        let file = synthetic_xwd(3, 2, &PIXELS, xwd::LSB_FIRST, 16, [0xF800, 0x07E0, 0x001F]);
        let image = parse_xwd(&file).unwrap();
        for (got, want) in image.pixels.iter().zip(EXPECTED) {
            assert_color_near(*got, want, 8);
        }
    }

    #[test]
    fn refuses_damaged_files_without_panicking() {
        let file = synthetic_xwd(3, 2, &PIXELS, xwd::LSB_FIRST, 32, RGB_MASKS);
        for cut in 0..file.len() {
            assert!(parse_xwd(&file[..cut]).is_err(), "cut at {cut} parsed");
        }
        let mut wrong_version = file.clone();
        wrong_version[7] = 6;
        assert!(parse_xwd(&wrong_version).is_err());
        let mut huge = file;
        huge[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_xwd(&huge).is_err());
    }
}
