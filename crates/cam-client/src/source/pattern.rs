//! The animated test card (`--source pattern`): works without a camera, and shows at a glance
//! whether colours survive the trip, whether motion is smooth and which frames are lost.

use cam_text::font::{self, Rect};
use cam_text::RgbCanvas;

use crate::encode::JpegEncoder;

use super::{FrameSource, SourceError, SourceFrame, SourceOptions};

pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 4096;

/// Left to right: white, yellow, cyan, green, magenta, red, blue, black.
pub const BAR_COLOURS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];
const BACKGROUND: [u8; 3] = [32, 32, 32];
const WHITE: [u8; 3] = [255, 255, 255];
/// Room for the frame number up to 8 digits (over three days at 30 fps) before it is clipped.
const DIGITS_THAT_FIT: usize = 8;

/// Where things go on a card of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    width: usize,
    height: usize,
    /// Even, so 4:2:0 chroma never mixes bars with the grey below.
    bars_height: usize,
    margin: usize,
    square_side: usize,
    square_positions: u64,
    square_y: usize,
    text_y: usize,
    text_scale: usize,
}

impl Layout {
    fn new(width: usize, height: usize) -> Layout {
        let bars_height = (height * 2 / 3) & !1;
        let bottom = height - bars_height;
        let margin = (bottom / 16).max(1);
        let square_side = (bottom / 4).max(2);
        let square_positions = ((width - 2 * margin) / square_side).max(1) as u64;
        let square_y = bars_height + margin;
        let text_y = square_y + square_side + margin;
        let text_room = height.saturating_sub(text_y + margin);
        let scale_for_height = text_room / font::GLYPH_HEIGHT;
        let scale_for_width = (width - 2 * margin) / (DIGITS_THAT_FIT * font::ADVANCE);
        Layout {
            width,
            height,
            bars_height,
            margin,
            square_side,
            square_positions,
            square_y,
            text_y,
            text_scale: scale_for_height.min(scale_for_width).max(1),
        }
    }

    fn bar_width(&self) -> usize {
        self.width / BAR_COLOURS.len()
    }

    /// The square steps one side length per frame and starts over at the left edge.
    fn square_x(&self, frame_number: u64) -> usize {
        // The remainder is below `square_positions`, which came from a usize.
        let position = (frame_number % self.square_positions) as usize;
        self.margin + position * self.square_side
    }
}

/// Colour bars over a grey strip with a moving square and the frame number.
pub struct TestCard {
    layout: Layout,
    /// Packed RGB; the bars are drawn once, only the bottom third changes per frame.
    rgb: Vec<u8>,
    encoder: JpegEncoder,
    next_frame_number: u64,
}

impl std::fmt::Debug for TestCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCard")
            .field("layout", &self.layout)
            .field("encoder", &self.encoder)
            .field("next_frame_number", &self.next_frame_number)
            .finish_non_exhaustive()
    }
}

impl TestCard {
    /// Uses `opts.width`, `opts.height` and `opts.quality`; the caller paces to `opts.fps`.
    pub fn new(opts: &SourceOptions) -> Result<TestCard, SourceError> {
        check_size(opts.width, opts.height)?;
        let encoder = JpegEncoder::new(opts.quality)?;
        // Checked above: both sides are at most 4096.
        let (width, height) = (opts.width as usize, opts.height as usize);
        let layout = Layout::new(width, height);
        let mut card = TestCard {
            layout,
            rgb: vec![0; width * height * 3],
            encoder,
            next_frame_number: 0,
        };
        card.draw_bars();
        Ok(card)
    }

    /// The number the next frame will show.
    pub fn next_frame_number(&self) -> u64 {
        self.next_frame_number
    }

    fn draw_bars(&mut self) {
        let Layout {
            width, bars_height, ..
        } = self.layout;
        if bars_height == 0 {
            return;
        }
        let row_len = width * 3;
        let bar_width = self.layout.bar_width();
        for (x, pixel) in self.rgb[..row_len].chunks_exact_mut(3).enumerate() {
            let bar = (x / bar_width).min(BAR_COLOURS.len() - 1);
            pixel.copy_from_slice(&BAR_COLOURS[bar]);
        }
        for row in 1..bars_height {
            self.rgb.copy_within(..row_len, row * row_len);
        }
    }

    fn draw_bottom(&mut self, frame_number: u64) {
        let layout = self.layout;
        let mut canvas = RgbCanvas::new(&mut self.rgb, layout.width, layout.height);
        canvas.fill(
            Rect {
                x: 0,
                y: layout.bars_height,
                width: layout.width,
                height: layout.height - layout.bars_height,
            },
            BACKGROUND,
        );
        canvas.fill(
            Rect {
                x: layout.square_x(frame_number),
                y: layout.square_y,
                width: layout.square_side,
                height: layout.square_side,
            },
            WHITE,
        );
        canvas.text(
            &frame_number.to_string(),
            layout.margin,
            layout.text_y,
            layout.text_scale,
            WHITE,
        );
    }
}

impl FrameSource for TestCard {
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        let frame_number = self.next_frame_number;
        self.draw_bottom(frame_number);
        let Layout { width, height, .. } = self.layout;
        let jpeg = self.encoder.encode_rgb(&self.rgb, width, height)?;
        self.next_frame_number = frame_number.wrapping_add(1);
        Ok(Some(SourceFrame {
            jpeg,
            // Both sides are at most MAX_SIDE.
            width: width as u16,
            height: height as u16,
        }))
    }

    fn is_live(&self) -> bool {
        false
    }

    fn can_reencode(&self) -> bool {
        true
    }

    fn configure(&mut self, quality: u8, width: u32, height: u32) -> Result<(), SourceError> {
        self.encoder.set_quality(quality)?;
        if (width as usize, height as usize) != (self.layout.width, self.layout.height) {
            check_size(width, height)?;
            self.layout = Layout::new(width as usize, height as usize);
            self.rgb = vec![0; width as usize * height as usize * 3];
            self.draw_bars();
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "test card {}x{} q{}",
            self.layout.width,
            self.layout.height,
            self.encoder.quality()
        )
    }
}

pub(crate) fn check_size(width: u32, height: u32) -> Result<(), SourceError> {
    let reason = if width % 2 != 0 || height % 2 != 0 {
        "width and height must be even"
    } else if width < MIN_SIDE || height < MIN_SIDE {
        "the smallest is 16x16"
    } else if width > MAX_SIDE || height > MAX_SIDE {
        "the largest is 4096x4096"
    } else {
        return Ok(());
    };
    Err(SourceError::BadSize {
        width,
        height,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use turbojpeg::{Decompressor, Image, PixelFormat};

    fn card(width: u32, height: u32) -> TestCard {
        TestCard::new(&SourceOptions {
            width,
            height,
            fps: 30,
            quality: 80,
            ..SourceOptions::default()
        })
        .expect("valid size")
    }

    struct Decoded {
        width: usize,
        rgb: Vec<u8>,
    }

    impl Decoded {
        fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
            let i = (y * self.width + x) * 3;
            [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
        }

        /// Pixels of `rect` that differ from `other` by more than JPEG noise.
        fn changed_pixels(&self, other: &Decoded, rect: Rect) -> usize {
            let mut changed = 0;
            for y in rect.y..rect.y + rect.height {
                for x in rect.x..rect.x + rect.width {
                    let (a, b) = (self.pixel(x, y), other.pixel(x, y));
                    if a.iter().zip(b).any(|(a, b)| a.abs_diff(b) > 60) {
                        changed += 1;
                    }
                }
            }
            changed
        }
    }

    fn next_decoded(card: &mut TestCard) -> Decoded {
        let frame = card.next_frame().expect("renders").expect("endless");
        let mut decompressor = Decompressor::new().expect("decompressor");
        let header = decompressor.read_header(&frame.jpeg).expect("header");
        assert_eq!(
            (header.width, header.height),
            (usize::from(frame.width), usize::from(frame.height))
        );
        let mut image = Image {
            pixels: vec![0; header.width * header.height * 3],
            width: header.width,
            pitch: header.width * 3,
            height: header.height,
            format: PixelFormat::RGB,
        };
        decompressor
            .decompress(&frame.jpeg, image.as_deref_mut())
            .expect("decodes");
        Decoded {
            width: header.width,
            rgb: image.pixels,
        }
    }

    fn text_area(layout: &Layout, digits: usize) -> Rect {
        Rect {
            x: layout.margin,
            y: layout.text_y,
            width: font::text_width(&"0".repeat(digits), layout.text_scale),
            height: font::text_height(layout.text_scale),
        }
    }

    #[test]
    fn bars_have_pure_colours() {
        for (width, height) in [(640, 480), (1280, 720), (642, 200)] {
            let mut card = card(width, height);
            let bar_width = card.layout.bar_width();
            let frame = next_decoded(&mut card);
            let y = height as usize / 3;
            for (bar, colour) in BAR_COLOURS.iter().enumerate() {
                let left = bar * bar_width;
                let right = if bar == 7 {
                    width as usize
                } else {
                    left + bar_width
                };
                let got = frame.pixel((left + right) / 2, y);
                for channel in 0..3 {
                    assert!(
                        got[channel].abs_diff(colour[channel]) <= 40,
                        "{width}x{height} bar {bar}: got {got:?}, want {colour:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn last_bar_takes_the_remainder() {
        let card = card(650, 480);
        let row = &card.rgb[..650 * 3];
        assert_eq!(&row[649 * 3..], &BAR_COLOURS[7]);
        assert_eq!(&row[(81 * 7 - 1) * 3..81 * 7 * 3], &BAR_COLOURS[6]);
    }

    #[test]
    fn consecutive_frames_differ_in_the_bottom_third() {
        let mut card = card(640, 480);
        let layout = card.layout;
        let first = next_decoded(&mut card);
        let second = next_decoded(&mut card);
        let bottom = Rect {
            x: 0,
            y: layout.bars_height,
            width: 640,
            height: 480 - layout.bars_height,
        };
        assert!(first.changed_pixels(&second, bottom) > 100);
        let bars = Rect {
            x: 0,
            y: 0,
            width: 640,
            height: layout.bars_height - 16,
        };
        assert_eq!(first.changed_pixels(&second, bars), 0, "bars stay put");
    }

    #[test]
    fn frame_number_glyphs_change() {
        let mut card = card(640, 480);
        let layout = card.layout;
        let area = text_area(&layout, 1);
        let frame0 = next_decoded(&mut card);
        let frame1 = next_decoded(&mut card);
        assert!(
            frame0.changed_pixels(&frame1, area) > 500,
            "the digit changes from 0 to 1"
        );
        // Readable at 640x480: digits at least 40 pixels tall.
        assert!(font::text_height(layout.text_scale) >= 40);
    }

    #[test]
    fn frame_number_is_drawn_in_white_from_zero() {
        let mut card = card(320, 240);
        assert_eq!(card.next_frame_number(), 0);
        for _ in 0..12 {
            card.next_frame().expect("renders");
        }
        // The buffer now shows frame 11.
        let layout = card.layout;
        let mut expected = Vec::new();
        font::draw_text("11", layout.margin, layout.text_y, layout.text_scale, |r| {
            expected.push(r)
        });
        let lit = |x: usize, y: usize| {
            let i = (y * layout.width + x) * 3;
            card.rgb[i..i + 3] == WHITE
        };
        for rect in &expected {
            assert!(lit(rect.x, rect.y) && lit(rect.x + rect.width - 1, rect.y + rect.height - 1));
        }
        let area = text_area(&layout, 2);
        let lit_pixels = (area.y..area.y + area.height)
            .flat_map(|y| (area.x..area.x + area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| lit(x, y))
            .count();
        let expected_pixels: usize = expected.iter().map(|r| r.width * r.height).sum();
        assert_eq!(lit_pixels, expected_pixels, "nothing but the digits 1 1");
        assert_eq!(card.next_frame_number(), 12);
    }

    #[test]
    fn square_sweeps_and_wraps() {
        let layout = card(640, 480).layout;
        assert_eq!(layout.square_x(0), layout.margin);
        assert_eq!(layout.square_x(1), layout.margin + layout.square_side);
        assert_eq!(layout.square_x(layout.square_positions), layout.margin);
        let last = layout.square_x(layout.square_positions - 1);
        assert!(last + layout.square_side <= 640 - layout.margin);
    }

    #[test]
    fn smallest_card_renders() {
        let mut card = card(16, 16);
        let frame = next_decoded(&mut card);
        assert_eq!(frame.width, 16);
        card.next_frame().expect("second frame");
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for (width, height) in [
            (15, 16),
            (16, 15),
            (14, 16),
            (16, 0),
            (0, 0),
            (4098, 16),
            (16, 4098),
            (641, 480),
        ] {
            let result = TestCard::new(&SourceOptions {
                width,
                height,
                fps: 30,
                quality: 80,
                ..SourceOptions::default()
            });
            match result {
                Err(err @ SourceError::BadSize { .. }) => {
                    let message = err.to_string();
                    assert!(message.contains(&format!("{width}x{height}")), "{message}");
                }
                other => panic!("{width}x{height} accepted: {other:?}"),
            }
        }
        for (width, height) in [(16, 16), (4096, 4096), (4096, 16)] {
            check_size(width, height).expect("valid size");
        }
    }

    #[test]
    fn bad_quality_is_rejected() {
        let result = TestCard::new(&SourceOptions {
            quality: 0,
            ..SourceOptions::default()
        });
        assert!(matches!(result, Err(SourceError::Encode(_))));
    }
}
