//! What the window draws over the picture: the on-screen display (`i`), the STALLED and PAUSED
//! marks, and the waiting screen. Text lines are built by plain functions (tested without a
//! window) and drawn with `cam_text` into the window's `0x00RRGGBB` canvas.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_text::{font, Rect, XrgbCanvas};

use crate::decode::{DecodeCounts, ImageSize};
use crate::live::LiveSnapshot;

/// Background before the first frame; dark grey rather than black so that "nothing received
/// yet" is distinguishable from "receiving a black picture".
pub const WAITING_COLOUR: u32 = 0x0020_2020;
pub const WAITING_TEXT_COLOUR: u32 = 0x00D0_D0D0;
pub const OSD_TEXT_COLOUR: u32 = 0x00F0_F0F0;
/// Backgrounds of the marks: colours the test card does not use, so tests can find them.
pub const STALLED_COLOUR: u32 = 0x00B0_1830;
pub const PAUSED_COLOUR: u32 = 0x0018_58B0;
pub const MARK_TEXT_COLOUR: u32 = 0x00FF_FFFF;
/// Between the tiles of the grid.
pub const GRID_BACKGROUND: u32 = 0x0040_4040;

/// Rates are averaged over about this long.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Shorter spans give jumpy rates; show none until there is this much history.
const MIN_RATE_SPAN: Duration = Duration::from_millis(300);
/// Gap between the picture's edge and the panels, in font pixels.
const MARGIN: usize = 4;
/// Space inside a panel around its text, in font pixels.
const PADDING: usize = 2;
/// Blank rows between lines, in font pixels.
const LINE_GAP: usize = 3;

/// Frames and bytes per second, from the worker's cumulative counters.
#[derive(Debug, Default)]
pub struct RateMeter {
    /// (when, frames completed, bytes received), oldest first.
    samples: VecDeque<(Instant, u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub fps: f64,
    pub kbit_per_s: f64,
}

impl RateMeter {
    /// Takes a publication of the worker; repeats of the last one are ignored.
    pub fn record(&mut self, live: &LiveSnapshot) {
        let Some(at) = live.at else { return };
        if self.samples.back().is_some_and(|&(last, _, _)| last >= at) {
            return;
        }
        let stats = &live.receiver;
        self.samples
            .push_back((at, stats.frames_completed, stats.bytes_received));
        // Keep one sample at or beyond the window's start, so the span covers the whole window.
        while self
            .samples
            .get(1)
            .is_some_and(|&(second, _, _)| at.saturating_duration_since(second) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    pub fn rates(&self) -> Option<Rates> {
        let (&(from, frames0, bytes0), &(to, frames1, bytes1)) =
            (self.samples.front()?, self.samples.back()?);
        let span = to.saturating_duration_since(from);
        if span < MIN_RATE_SPAN {
            return None;
        }
        let secs = span.as_secs_f64();
        Some(Rates {
            fps: frames1.saturating_sub(frames0) as f64 / secs,
            kbit_per_s: bytes1.saturating_sub(bytes0) as f64 * 8.0 / 1000.0 / secs,
        })
    }
}

/// Everything the on-screen display reports.
#[derive(Debug)]
pub struct OsdInfo<'a> {
    pub rates: Option<Rates>,
    /// Size and sender of the picture on screen.
    pub picture: Option<(ImageSize, SocketAddr)>,
    /// Capture to display, smoothed; from the sender's wall clock and ours.
    pub latency_ms: Option<f64>,
    pub live: &'a LiveSnapshot,
    pub decoded: DecodeCounts,
    /// The latest message-port message, as the message port formatted it.
    pub message: Option<&'a str>,
}

/// The display's lines, top to bottom.
///
/// The viewer cannot see the client's retransmissions; what it can see is datagrams that
/// arrived twice (a retransmission whose original was not lost after all, or a duplicating
/// network), so that is what the line says.
pub fn osd_lines(info: &OsdInfo<'_>) -> Vec<String> {
    let stats = &info.live.receiver;
    let mut lines = Vec::with_capacity(7);
    lines.push(match info.rates {
        Some(r) => format!("{:.1} fps  {:.0} kbit/s", r.fps, r.kbit_per_s),
        None => "-- fps  -- kbit/s".to_owned(),
    });
    lines.push(match info.picture {
        Some((size, sender)) => format!("{}x{} from {sender}", size.width, size.height),
        None => "no picture yet".to_owned(),
    });
    lines.push(match info.latency_ms {
        Some(ms) => format!("latency {ms:.0} ms (synced clocks only)"),
        None => "latency -- (no capture time)".to_owned(),
    });
    lines.push(format!(
        "frames {} complete, {} abandoned, {} overflowed",
        stats.frames_completed, stats.frames_dropped, info.live.frames_overflowed
    ));
    lines.push(format!(
        "dup datagrams {}  invalid {}  crc fail {}",
        stats.datagrams_duplicate, stats.datagrams_invalid, stats.crc_failures
    ));
    lines.push(format!(
        "decoded {}  errors {}  drawn {}",
        info.decoded.frames_decoded, info.decoded.decode_errors, info.decoded.frames_drawn
    ));
    if let Some(message) = info.message {
        let one_line: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        lines.push(format!("msg {one_line}"));
    }
    lines
}

/// "STALLED 3.4 s": tenths while they matter, then whole seconds, then minutes.
pub fn stalled_text(since_last_frame: Duration) -> String {
    let secs = since_last_frame.as_secs_f64();
    if secs < 10.0 {
        format!("STALLED {secs:.1} s")
    } else if secs < 120.0 {
        format!("STALLED {secs:.0} s")
    } else {
        let whole = since_last_frame.as_secs();
        format!("STALLED {} min {:02} s", whole / 60, whole % 60)
    }
}

/// The text size (font pixels per glyph pixel) that suits a window `width` pixels wide.
pub fn text_scale(width: usize) -> usize {
    (width / 320).clamp(1, 3)
}

/// How many characters fit in `pixels` at `scale`.
fn chars_that_fit(pixels: usize, scale: usize) -> usize {
    (pixels / scale.max(1) + 1) / font::ADVANCE
}

/// Cuts `text` to `max` characters, marking the cut with "...".
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

/// The display panel and the marks, sized for the canvas. The marks go to the top-right
/// corner, or below the panel where the two would overlap.
pub fn draw_overlays(canvas: &mut XrgbCanvas<'_>, lines: &[String], marks: &[(String, u32)]) {
    let scale = text_scale(canvas.width());
    let mark_scale = (scale + 1).min(3);
    let panel = draw_panel(canvas, lines, scale);
    let mut top = MARGIN * mark_scale;
    if let Some(panel) = panel {
        let widest_mark = marks
            .iter()
            .map(|(text, _)| font::text_width(text, mark_scale) + 2 * PADDING * mark_scale)
            .max()
            .unwrap_or(0);
        let marks_left = canvas
            .width()
            .saturating_sub(MARGIN * mark_scale + widest_mark);
        if panel.x + panel.width + MARGIN * scale > marks_left {
            top = panel.y + panel.height + MARGIN * scale;
        }
    }
    draw_marks(canvas, marks, mark_scale, top);
}

/// The display panel: `lines` on a darkened box in the top-left corner. Returns the box.
pub fn draw_panel(canvas: &mut XrgbCanvas<'_>, lines: &[String], scale: usize) -> Option<Rect> {
    if lines.is_empty() {
        return None;
    }
    let margin = MARGIN * scale;
    let padding = PADDING * scale;
    let line_height = (font::GLYPH_HEIGHT + LINE_GAP) * scale;
    let room = canvas.width().saturating_sub(2 * (margin + padding));
    let max_chars = chars_that_fit(room, scale);
    let lines: Vec<String> = lines.iter().map(|l| truncate(l, max_chars)).collect();
    let widest = lines
        .iter()
        .map(|l| font::text_width(l, scale))
        .max()
        .unwrap_or(0);
    let panel = Rect {
        x: margin,
        y: margin,
        width: widest + 2 * padding,
        height: lines.len() * line_height - LINE_GAP * scale + 2 * padding,
    };
    canvas.shade(panel);
    for (i, line) in lines.iter().enumerate() {
        let y = margin + padding + i * line_height;
        canvas.text(line, margin + padding, y, scale, OSD_TEXT_COLOUR);
    }
    Some(panel)
}

/// Marks such as STALLED and PAUSED: white text on a coloured box, stacked down the right edge
/// from `top` in the order given.
pub fn draw_marks(canvas: &mut XrgbCanvas<'_>, marks: &[(String, u32)], scale: usize, top: usize) {
    let margin = MARGIN * scale;
    let padding = PADDING * scale;
    let mut y = top;
    for (text, colour) in marks {
        let width = font::text_width(text, scale) + 2 * padding;
        let height = font::text_height(scale) + 2 * padding;
        let x = canvas.width().saturating_sub(margin + width);
        canvas.fill(
            Rect {
                x,
                y,
                width,
                height,
            },
            *colour,
        );
        canvas.text(text, x + padding, y + padding, scale, MARK_TEXT_COLOUR);
        y += height + margin;
    }
}

/// The waiting screen: dark grey, with where we listen and the keys, centred. The window's
/// very centre stays background, between the two lines.
pub fn draw_waiting(canvas: &mut XrgbCanvas<'_>, listen_desc: &str) {
    let (width, height) = (canvas.width(), canvas.height());
    canvas.fill(
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        },
        WAITING_COLOUR,
    );
    let headline = format!("waiting for a stream on {listen_desc}");
    let keys = "keys: i info  s snapshot  space pause  q quit";
    let fit = |text: &str, largest: usize| {
        (1..=largest)
            .rev()
            .find(|&s| font::text_width(text, s) + 2 * MARGIN * s <= width)
            .unwrap_or(1)
    };
    let big = fit(&headline, 3);
    let small = fit(keys, big.saturating_sub(1).max(1));
    let centre = height / 2;
    let gap = font::GLYPH_HEIGHT * small;
    let headline_y = centre.saturating_sub(gap + font::text_height(big));
    let keys_y = centre + gap;
    let centred =
        |text: &str, scale: usize| width.saturating_sub(font::text_width(text, scale)) / 2;
    canvas.text(
        &headline,
        centred(&headline, big),
        headline_y,
        big,
        WAITING_TEXT_COLOUR,
    );
    canvas.text(
        keys,
        centred(keys, small),
        keys_y,
        small,
        WAITING_TEXT_COLOUR,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use cam_proto::receiver::ReceiverStats;

    #[test]
    fn marks_move_below_a_panel_they_would_cover() {
        let (width, height) = (640, 480);
        let marks = [("STALLED 3.1 s".to_owned(), STALLED_COLOUR)];
        let top_row_of = |lines: &[String]| {
            let mut pixels = vec![0u32; width * height];
            draw_overlays(
                &mut XrgbCanvas::new(&mut pixels, width, height),
                lines,
                &marks,
            );
            (0..height).find(|&y| pixels[y * width..(y + 1) * width].contains(&STALLED_COLOUR))
        };
        let alone = top_row_of(&[]).unwrap();
        let short = top_row_of(&["30 fps".to_owned()]).unwrap();
        let wide = top_row_of(&["frames 20 complete, 0 abandoned, 0 overflowed".to_owned()]);
        assert_eq!(alone, short, "a narrow panel leaves the corner free");
        assert!(
            wide.unwrap() > alone + 20,
            "below a wide panel: {wide:?} vs {alone}"
        );
    }

    fn live(at: Instant, frames: u64, bytes: u64) -> LiveSnapshot {
        LiveSnapshot {
            at: Some(at),
            receiver: ReceiverStats {
                frames_completed: frames,
                bytes_received: bytes,
                ..ReceiverStats::default()
            },
            frames_overflowed: 0,
        }
    }

    #[test]
    fn rates_follow_the_last_second() {
        let start = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(&live(start, 0, 0));
        assert_eq!(meter.rates(), None, "one sample is no rate");
        // 10 publications a second of 3 frames and 12.5 kB each: 30 fps, 1000 kbit/s.
        for i in 1..=30u64 {
            let at = start + Duration::from_millis(100 * i);
            meter.record(&live(at, 3 * i, 12_500 * i));
        }
        let rates = meter.rates().unwrap();
        assert!((rates.fps - 30.0).abs() < 1e-9, "{rates:?}");
        assert!((rates.kbit_per_s - 1000.0).abs() < 1e-6, "{rates:?}");
        assert!(meter.samples.len() <= 11, "old samples are dropped");
        // A stream that stops shows as zero once its window has passed.
        let quiet = start + Duration::from_millis(4500);
        meter.record(&live(quiet, 90, 375_000));
        meter.record(&live(quiet + Duration::from_millis(500), 90, 375_000));
        assert_eq!(meter.rates().unwrap().fps, 0.0);
        // Repeats and stale samples change nothing.
        let before = meter.samples.len();
        meter.record(&live(start, 0, 0));
        meter.record(&LiveSnapshot::default());
        assert_eq!(meter.samples.len(), before);
    }

    #[test]
    fn osd_lines_say_what_the_viewer_knows() {
        let mut snapshot = live(Instant::now(), 120, 0);
        snapshot.receiver.frames_dropped = 2;
        snapshot.receiver.datagrams_duplicate = 5;
        snapshot.frames_overflowed = 1;
        let info = OsdInfo {
            rates: Some(Rates {
                fps: 29.97,
                kbit_per_s: 2345.6,
            }),
            picture: Some((
                ImageSize {
                    width: 640,
                    height: 480,
                },
                "10.0.0.7:50123".parse().unwrap(),
            )),
            latency_ms: Some(12.4),
            live: &snapshot,
            decoded: DecodeCounts {
                frames_decoded: 118,
                decode_errors: 1,
                frames_drawn: 100,
                ..DecodeCounts::default()
            },
            message: Some("[0,0,0,1]"),
        };
        let lines = osd_lines(&info);
        assert_eq!(lines[0], "30.0 fps  2346 kbit/s");
        assert_eq!(lines[1], "640x480 from 10.0.0.7:50123");
        assert_eq!(lines[2], "latency 12 ms (synced clocks only)");
        assert_eq!(lines[3], "frames 120 complete, 2 abandoned, 1 overflowed");
        assert!(lines[4].starts_with("dup datagrams 5"), "{}", lines[4]);
        assert_eq!(lines[5], "decoded 118  errors 1  drawn 100");
        assert_eq!(lines[6], "msg [0,0,0,1]");

        let empty = LiveSnapshot::default();
        let lines = osd_lines(&OsdInfo {
            rates: None,
            picture: None,
            latency_ms: None,
            live: &empty,
            decoded: DecodeCounts::default(),
            message: None,
        });
        assert_eq!(lines.len(), 6, "no message line without a message");
        assert!(lines[0].starts_with("--"));
    }

    #[test]
    fn stalled_text_grows_with_the_gap() {
        assert_eq!(stalled_text(Duration::from_millis(1234)), "STALLED 1.2 s");
        assert_eq!(stalled_text(Duration::from_secs(42)), "STALLED 42 s");
        assert_eq!(
            stalled_text(Duration::from_secs(3 * 60 + 5)),
            "STALLED 3 min 05 s"
        );
    }

    #[test]
    fn long_lines_are_cut_to_the_window() {
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefg", 6), "abc...");
        assert_eq!(chars_that_fit(font::text_width("abcde", 2), 2), 5);
        let (width, height) = (100, 60);
        let mut pixels = vec![0u32; width * height];
        let long = "x".repeat(500);
        let panel = draw_panel(&mut XrgbCanvas::new(&mut pixels, width, height), &[long], 1);
        assert!(panel.is_some_and(|p| p.x + p.width < width));
        // The last column (beyond the panel's right margin) is untouched.
        assert!((0..height).all(|y| pixels[y * width + width - 1] == 0));
    }

    #[test]
    fn waiting_screen_has_text_but_a_clear_centre() {
        let (width, height) = (640, 480);
        let mut pixels = vec![0u32; width * height];
        draw_waiting(
            &mut XrgbCanvas::new(&mut pixels, width, height),
            "[::]:9999",
        );
        assert_eq!(pixels[height / 2 * width + width / 2], WAITING_COLOUR);
        let text = pixels.iter().filter(|&&p| p == WAITING_TEXT_COLOUR).count();
        assert!(text > 1000, "{text} text pixels");
        assert!(pixels
            .iter()
            .all(|&p| p == WAITING_COLOUR || p == WAITING_TEXT_COLOUR));
    }

    #[test]
    fn marks_stack_in_the_top_right_corner() {
        let (width, height) = (320, 200);
        let mut pixels = vec![0u32; width * height];
        let marks = [
            ("STALLED 1.5 s".to_owned(), STALLED_COLOUR),
            ("PAUSED".to_owned(), PAUSED_COLOUR),
        ];
        draw_marks(
            &mut XrgbCanvas::new(&mut pixels, width, height),
            &marks,
            1,
            4,
        );
        let rows_with = |colour: u32| {
            (0..height)
                .filter(|&y| pixels[y * width..(y + 1) * width].contains(&colour))
                .collect::<Vec<_>>()
        };
        let (stalled, paused) = (rows_with(STALLED_COLOUR), rows_with(PAUSED_COLOUR));
        assert!(!stalled.is_empty() && !paused.is_empty());
        assert!(stalled.last() < paused.first(), "stalled above paused");
        assert!(
            (0..width / 2).all(|x| pixels[stalled[0] * width + x] == 0),
            "left half clear"
        );
    }
}
