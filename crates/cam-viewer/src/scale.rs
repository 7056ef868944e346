//! Aspect-preserving nearest-neighbour scaling into the window's buffer.
//!
//! minifb's own scaling under X11 either stretches (wrong aspect) or redraws through a slow
//! generic path, so the viewer asks minifb for an unscaled upper-left blit and fits the picture
//! itself. Nearest neighbour because this runs on the CPU for every displayed frame: a column
//! table computed once per call and whole-row copies for repeated rows keep it to roughly one
//! read and one write per destination pixel.

/// Colour of the letterbox/pillarbox bars.
pub const BAR_COLOUR: u32 = 0x0000_0000;

/// Where the picture ended up inside the destination; outside it are bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placement {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// The largest rectangle with the source's aspect ratio that fits in `dw` x `dh`, centred.
/// Empty when either image is empty.
pub fn fit(sw: usize, sh: usize, dw: usize, dh: usize) -> Placement {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return Placement::default();
    }
    // u128 so that no product of two usizes can overflow.
    let (sw_, sh_, dw_, dh_) = (sw as u128, sh as u128, dw as u128, dh as u128);
    let (width, height) = if sw_ * dh_ <= dw_ * sh_ {
        // Relatively taller than the destination: full height, bars left and right.
        let width = (sw_ * dh_ + sh_ / 2) / sh_;
        (width.clamp(1, dw_) as usize, dh)
    } else {
        // Relatively wider: full width, bars above and below.
        let height = (sh_ * dw_ + sw_ / 2) / sw_;
        (dw, height.clamp(1, dh_) as usize)
    };
    Placement {
        x: (dw - width) / 2,
        y: (dh - height) / 2,
        width,
        height,
    }
}

/// Scales `src` (`sw` x `sh`, row-major, no padding) into `dst` (`dw` x `dh`), keeping the
/// aspect ratio and filling the rest with [`BAR_COLOUR`]. Returns where the picture went.
///
/// Buffers shorter than their stated size are treated as empty rather than panicking: a
/// mismatch is a bug elsewhere, and a black window shows it without killing the viewer.
pub fn scale_letterboxed(
    src: &[u32],
    sw: usize,
    sh: usize,
    dst: &mut [u32],
    dw: usize,
    dh: usize,
) -> Placement {
    let Some(dst_len) = dw.checked_mul(dh) else {
        return Placement::default();
    };
    if dst.len() < dst_len {
        dst.fill(BAR_COLOUR);
        return Placement::default();
    }
    let dst = &mut dst[..dst_len];
    let src_ok = sw.checked_mul(sh).is_some_and(|len| src.len() >= len);
    if !src_ok || sw == 0 || sh == 0 || dst_len == 0 {
        dst.fill(BAR_COLOUR);
        return Placement::default();
    }

    if (sw, sh) == (dw, dh) {
        dst.copy_from_slice(&src[..dst_len]);
        return Placement {
            x: 0,
            y: 0,
            width: dw,
            height: dh,
        };
    }

    let place = fit(sw, sh, dw, dh);
    // Sample at pixel centres so that a 2x upscale maps 0,0,1,1,… and a 1:1 span maps 0,1,2,…
    let src_x: Vec<usize> = (0..place.width)
        .map(|x| nearest(x, place.width, sw))
        .collect();

    dst[..place.y * dw].fill(BAR_COLOUR);
    dst[(place.y + place.height) * dw..].fill(BAR_COLOUR);
    let mut previous_src_row = None;
    for y in place.y..place.y + place.height {
        let row_start = y * dw;
        let src_row_index = nearest(y - place.y, place.height, sh);
        let row = &mut dst[row_start..row_start + dw];
        row[..place.x].fill(BAR_COLOUR);
        row[place.x + place.width..].fill(BAR_COLOUR);
        if previous_src_row == Some(src_row_index) {
            // Upscaling repeats source rows: copy the row just written instead of resampling.
            let previous_start = row_start - dw + place.x;
            dst.copy_within(
                previous_start..previous_start + place.width,
                row_start + place.x,
            );
        } else {
            let src_row = &src[src_row_index * sw..(src_row_index + 1) * sw];
            let out = &mut row[place.x..place.x + place.width];
            for (pixel, &sx) in out.iter_mut().zip(&src_x) {
                *pixel = src_row[sx];
            }
        }
        previous_src_row = Some(src_row_index);
    }
    place
}

/// Source index sampled for destination index `d` of `d_len`, over a source of `s_len`.
fn nearest(d: usize, d_len: usize, s_len: usize) -> usize {
    let index = ((2 * d as u128 + 1) * s_len as u128) / (2 * d_len as u128);
    (index as usize).min(s_len - 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    fn numbered(w: usize, h: usize) -> Vec<u32> {
        (0..w * h).map(|i| 0x0001_0000 + i as u32).collect()
    }

    #[test]
    fn equal_size_is_an_exact_copy() {
        let src = numbered(7, 5);
        let mut dst = vec![0xDEAD_BEEF; 7 * 5];
        let place = scale_letterboxed(&src, 7, 5, &mut dst, 7, 5);
        assert_eq!(dst, src);
        assert_eq!(
            place,
            Placement {
                x: 0,
                y: 0,
                width: 7,
                height: 5
            }
        );
    }

    #[test]
    fn double_size_repeats_each_pixel_twice_each_way() {
        let (sw, sh) = (3, 2);
        let src = numbered(sw, sh);
        let mut dst = vec![0xDEAD_BEEF; 6 * 4];
        scale_letterboxed(&src, sw, sh, &mut dst, 6, 4);
        for y in 0..4 {
            for x in 0..6 {
                assert_eq!(dst[y * 6 + x], src[(y / 2) * sw + x / 2], "at {x},{y}");
            }
        }
    }

    #[test]
    fn four_by_three_in_sixteen_by_nine_has_side_bars() {
        // 640x480 (4:3) into 1280x720: 960x720 picture, 160-pixel bars left and right.
        let (sw, sh, dw, dh) = (640, 480, 1280, 720);
        let src = vec![0x00FF_FFFF; sw * sh];
        let mut dst = vec![0xDEAD_BEEF; dw * dh];
        let place = scale_letterboxed(&src, sw, sh, &mut dst, dw, dh);
        assert_eq!(
            place,
            Placement {
                x: 160,
                y: 0,
                width: 960,
                height: 720
            }
        );
        for y in [0, 359, 719] {
            let row = &dst[y * dw..(y + 1) * dw];
            assert!(
                row[..160].iter().all(|&p| p == BAR_COLOUR),
                "left bar, row {y}"
            );
            assert!(
                row[160..1120].iter().all(|&p| p == 0x00FF_FFFF),
                "picture, row {y}"
            );
            assert!(
                row[1120..].iter().all(|&p| p == BAR_COLOUR),
                "right bar, row {y}"
            );
        }
    }

    #[test]
    fn wide_picture_in_tall_window_has_bars_above_and_below() {
        // 400x200 into 640x480: 640x320 at y = 80.
        let (sw, sh, dw, dh) = (400, 200, 640, 480);
        let src = numbered(sw, sh);
        let mut dst = vec![0xDEAD_BEEF; dw * dh];
        let place = scale_letterboxed(&src, sw, sh, &mut dst, dw, dh);
        assert_eq!(
            place,
            Placement {
                x: 0,
                y: 80,
                width: 640,
                height: 320
            }
        );
        assert!(dst[..80 * dw].iter().all(|&p| p == BAR_COLOUR));
        assert!(dst[400 * dw..].iter().all(|&p| p == BAR_COLOUR));
        // Corners of the picture come from the corners of the source.
        assert_eq!(dst[80 * dw], src[0]);
        assert_eq!(dst[399 * dw + 639], src[sw * sh - 1]);
    }

    #[test]
    fn downscale_picks_evenly_spread_pixels() {
        // 8x1 -> 4x1 (wider than tall, so 4x0.5 rounds to one row in a 4x1 window).
        let src: Vec<u32> = (0..8).collect();
        let mut dst = vec![99; 4];
        scale_letterboxed(&src, 8, 1, &mut dst, 4, 1);
        assert_eq!(dst, vec![1, 3, 5, 7]);
    }

    #[test]
    fn degenerate_sizes_do_not_panic() {
        let src = numbered(4, 4);
        let mut dst = vec![7; 16];
        for (sw, sh, dw, dh) in [
            (0, 0, 4, 4),
            (4, 0, 4, 4),
            (0, 4, 4, 4),
            (4, 4, 0, 0),
            (4, 4, 4, 0),
            (4, 4, 0, 4),
            (1, 4, 4, 4),
            (4, 1, 4, 4),
            (4, 4, 1, 1),
            (usize::MAX, 2, 4, 4),
            (4, 4, usize::MAX, 2),
        ] {
            scale_letterboxed(&src, sw, sh, &mut dst, dw, dh);
        }
        // Empty source: the whole destination becomes bars.
        let mut dst = vec![7; 16];
        scale_letterboxed(&[], 0, 0, &mut dst, 4, 4);
        assert!(dst.iter().all(|&p| p == BAR_COLOUR));
        // Source shorter than claimed: bars, not a panic.
        let mut dst = vec![7; 16];
        scale_letterboxed(&src[..3], 4, 4, &mut dst, 4, 4);
        assert!(dst.iter().all(|&p| p == BAR_COLOUR));
        // Destination shorter than claimed: no panic.
        let mut short = vec![7; 3];
        scale_letterboxed(&src, 4, 4, &mut short, 4, 4);
    }

    #[test]
    fn extreme_aspect_keeps_at_least_one_pixel() {
        let src = vec![1u32; 1000];
        let mut dst = vec![7; 10 * 10];
        let place = scale_letterboxed(&src, 1000, 1, &mut dst, 10, 10);
        assert_eq!(place.height, 1);
        assert_eq!(place.width, 10);
        assert_eq!(dst.iter().filter(|&&p| p == 1).count(), 10);
    }
}
