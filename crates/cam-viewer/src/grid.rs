//! Where each stream's tile goes in the window: 1, 2×1, 2×2, 3×2, 3×3, … A pure function of the
//! number of tiles and the window size, so the layout is tested without a window.

/// A tile's rectangle in window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl TileRect {
    pub fn contains(&self, (x, y): (usize, usize)) -> bool {
        x >= self.x && x < self.x + self.width && y >= self.y && y < self.y + self.height
    }
}

/// Pixels between tiles.
pub const GAP: usize = 2;

/// Columns and rows for `n` tiles: as square as possible, wider than tall.
pub fn shape(n: usize) -> (usize, usize) {
    if n == 0 {
        return (1, 1);
    }
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
    let rows = n.div_ceil(cols);
    (cols, rows)
}

/// The rectangles of `n` tiles in a `width`×`height` window, row by row. One tile fills the
/// window exactly; several are separated by [`GAP`] pixels.
pub fn layout(n: usize, (width, height): (usize, usize)) -> Vec<TileRect> {
    if n == 1 {
        return vec![TileRect {
            x: 0,
            y: 0,
            width,
            height,
        }];
    }
    let (cols, rows) = shape(n);
    (0..n)
        .map(|i| {
            let (col, row) = (i % cols, i / cols);
            let x0 = col * width / cols;
            let x1 = (col + 1) * width / cols;
            let y0 = row * height / rows;
            let y1 = (row + 1) * height / rows;
            let gap_after = |last: bool| if last { 0 } else { GAP };
            TileRect {
                x: x0,
                y: y0,
                width: (x1 - x0).saturating_sub(gap_after(col + 1 == cols)).max(1),
                height: (y1 - y0).saturating_sub(gap_after(row + 1 == rows)).max(1),
            }
        })
        .collect()
}

/// Copies a tile's pixels (`src`, `rect.width` wide) into the window's canvas.
pub fn blit(canvas: &mut [u32], canvas_width: usize, src: &[u32], rect: TileRect) {
    for row in 0..rect.height {
        let from = row * rect.width;
        let to = (rect.y + row) * canvas_width + rect.x;
        if let (Some(src), Some(dst)) = (
            src.get(from..from + rect.width),
            canvas.get_mut(to..to + rect.width),
        ) {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_grow_square() {
        let shapes: Vec<_> = (1..=10).map(shape).collect();
        assert_eq!(
            shapes,
            [
                (1, 1),
                (2, 1),
                (2, 2),
                (2, 2),
                (3, 2),
                (3, 2),
                (3, 3),
                (3, 3),
                (3, 3),
                (4, 3)
            ]
        );
    }

    #[test]
    fn one_tile_is_the_window_and_several_tile_it_without_overlap() {
        assert_eq!(
            layout(1, (640, 480)),
            [TileRect {
                x: 0,
                y: 0,
                width: 640,
                height: 480
            }]
        );
        let rects = layout(3, (641, 480));
        assert_eq!(rects.len(), 3);
        assert_eq!(
            rects[0],
            TileRect {
                x: 0,
                y: 0,
                width: 318,
                height: 238
            }
        );
        assert_eq!(
            rects[1],
            TileRect {
                x: 320,
                y: 0,
                width: 321,
                height: 238
            }
        );
        assert_eq!(
            rects[2],
            TileRect {
                x: 0,
                y: 240,
                width: 318,
                height: 240
            }
        );
        for (i, a) in rects.iter().enumerate() {
            assert!(a.x + a.width <= 641 && a.y + a.height <= 480);
            for b in &rects[i + 1..] {
                let apart = a.x + a.width <= b.x
                    || b.x + b.width <= a.x
                    || a.y + a.height <= b.y
                    || b.y + b.height <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
        assert!(rects[1].contains((400, 10)) && !rects[1].contains((10, 10)));
    }

    #[test]
    fn blit_places_the_tile() {
        let mut canvas = vec![0u32; 4 * 3];
        let rect = TileRect {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        blit(&mut canvas, 4, &[1, 2, 3, 4], rect);
        assert_eq!(canvas, [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0]);
    }
}
