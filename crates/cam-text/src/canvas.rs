//! Pictures the font draws into. Both clip: text and boxes may hang over any edge.

use crate::font::{self, Rect};

/// The part of `rect` inside a `width` x `height` picture, as row and column ranges; `None`
/// when nothing of it is.
fn clip(rect: Rect, width: usize, height: usize) -> Option<(usize, usize, usize, usize)> {
    let right = rect.x.saturating_add(rect.width).min(width);
    let bottom = rect.y.saturating_add(rect.height).min(height);
    (rect.x < right && rect.y < bottom).then_some((rect.x, right, rect.y, bottom))
}

/// Rows that a buffer of `len` elements really holds, so that a short buffer cannot make an
/// index go out of range.
fn rows_in(len: usize, width: usize, height: usize) -> usize {
    len.checked_div(width).map_or(0, |rows| rows.min(height))
}

/// Packed RGB, three bytes per pixel, rows top to bottom without padding.
#[derive(Debug)]
pub struct RgbCanvas<'a> {
    rgb: &'a mut [u8],
    width: usize,
    height: usize,
}

impl<'a> RgbCanvas<'a> {
    /// A canvas over `rgb`; rows beyond the buffer's end are treated as outside the picture.
    pub fn new(rgb: &'a mut [u8], width: usize, height: usize) -> Self {
        let height = rows_in(rgb.len() / 3, width, height);
        RgbCanvas { rgb, width, height }
    }

    pub fn fill(&mut self, rect: Rect, colour: [u8; 3]) {
        let Some((left, right, top, bottom)) = clip(rect, self.width, self.height) else {
            return;
        };
        for y in top..bottom {
            let row = y * self.width * 3;
            for pixel in self.rgb[row + left * 3..row + right * 3].chunks_exact_mut(3) {
                pixel.copy_from_slice(&colour);
            }
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels wide.
    pub fn text(&mut self, text: &str, x: usize, y: usize, scale: usize, colour: [u8; 3]) {
        font::draw_text(text, x, y, scale, |rect| self.fill(rect, colour));
    }
}

/// One `u32` per pixel holding `0x00RRGGBB`, rows top to bottom without padding (what minifb
/// shows).
#[derive(Debug)]
pub struct XrgbCanvas<'a> {
    pixels: &'a mut [u32],
    width: usize,
    height: usize,
}

impl<'a> XrgbCanvas<'a> {
    /// A canvas over `pixels`; rows beyond the buffer's end are treated as outside the picture.
    pub fn new(pixels: &'a mut [u32], width: usize, height: usize) -> Self {
        let height = rows_in(pixels.len(), width, height);
        XrgbCanvas {
            pixels,
            width,
            height,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn fill(&mut self, rect: Rect, colour: u32) {
        let Some((left, right, top, bottom)) = clip(rect, self.width, self.height) else {
            return;
        };
        for y in top..bottom {
            let row = y * self.width;
            self.pixels[row + left..row + right].fill(colour);
        }
    }

    /// Darkens `rect` to a quarter of its brightness: a backdrop that keeps light text legible
    /// over any picture while the picture still shows through.
    pub fn shade(&mut self, rect: Rect) {
        let Some((left, right, top, bottom)) = clip(rect, self.width, self.height) else {
            return;
        };
        for y in top..bottom {
            let row = y * self.width;
            for pixel in &mut self.pixels[row + left..row + right] {
                *pixel = (*pixel >> 2) & 0x003F_3F3F;
            }
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels wide.
    pub fn text(&mut self, text: &str, x: usize, y: usize, scale: usize, colour: u32) {
        font::draw_text(text, x, y, scale, |rect| self.fill(rect, colour));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_fill_clips_at_every_edge() {
        let mut rgb = vec![0u8; 4 * 3 * 3];
        let mut canvas = RgbCanvas::new(&mut rgb, 4, 3);
        canvas.fill(
            Rect {
                x: 2,
                y: 1,
                width: 100,
                height: 100,
            },
            [1, 2, 3],
        );
        canvas.fill(
            Rect {
                x: usize::MAX - 1,
                y: 0,
                width: 5,
                height: 1,
            },
            [9, 9, 9],
        );
        let lit: Vec<(usize, usize)> = (0..3)
            .flat_map(|y| (0..4).map(move |x| (x, y)))
            .filter(|&(x, y)| rgb[(y * 4 + x) * 3..][..3] == [1, 2, 3])
            .collect();
        assert_eq!(lit, [(2, 1), (3, 1), (2, 2), (3, 2)]);
        assert_eq!(rgb.iter().filter(|&&b| b == 9).count(), 0);
    }

    #[test]
    fn rgb_text_matches_the_font_rectangles() {
        let (width, height) = (20, 10);
        let mut rgb = vec![0u8; width * height * 3];
        RgbCanvas::new(&mut rgb, width, height).text("1", 1, 1, 1, [255, 255, 255]);
        let lit: usize = rgb
            .chunks_exact(3)
            .filter(|p| p == &[255, 255, 255])
            .count();
        let expected: u32 = font::glyph('1').iter().map(|row| row.count_ones()).sum();
        assert_eq!(lit, expected as usize);
        assert_eq!(
            rgb[(2 * width + 2) * 3..][..3],
            [255, 255, 255],
            "top of the 1"
        );
    }

    #[test]
    fn short_buffers_are_not_overrun() {
        let mut rgb = vec![0u8; 10];
        RgbCanvas::new(&mut rgb, 4, 100).text("888", 0, 0, 3, [7, 7, 7]);
        let mut words = vec![0u32; 10];
        let mut canvas = XrgbCanvas::new(&mut words, 4, 100);
        assert_eq!(canvas.height(), 2);
        canvas.text("888", 0, 0, 3, 7);
        XrgbCanvas::new(&mut words, 0, 5).fill(
            Rect {
                x: 0,
                y: 0,
                width: 5,
                height: 5,
            },
            1,
        );
    }

    #[test]
    fn xrgb_text_and_shade() {
        let (width, height) = (40, 12);
        let mut pixels = vec![0x0080_4020u32; width * height];
        let mut canvas = XrgbCanvas::new(&mut pixels, width, height);
        canvas.shade(Rect {
            x: 0,
            y: 0,
            width: 20,
            height: 12,
        });
        canvas.text("OK", 1, 1, 1, 0x00FF_FFFF);
        assert_eq!(pixels[0], 0x0020_1008, "a quarter of each channel");
        assert_eq!(pixels[39], 0x0080_4020, "right half untouched");
        let white = pixels.iter().filter(|&&p| p == 0x00FF_FFFF).count();
        let expected: u32 = "OK".chars().flat_map(font::glyph).map(u8::count_ones).sum();
        assert_eq!(white, expected as usize);
    }
}
