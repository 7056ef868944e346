//! camstream's built-in text: a 5x7 bitmap font and drawing into the two pixel layouts the
//! project uses, packed RGB bytes (the client's test card) and `0x00RRGGBB` words (the viewer's
//! window). Built in so that neither program needs font files or a font crate.

pub mod canvas;
pub mod font;

pub use canvas::{RgbCanvas, XrgbCanvas};
pub use font::{
    draw_text, glyph, text_height, text_width, Rect, ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH,
};
