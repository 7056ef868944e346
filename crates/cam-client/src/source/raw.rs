//! Uncompressed camera frames (YUYV, NV12, RGB) to JPEG, at the camera's size or shrunk to
//! 3/4 or 1/2 of each side when link adaptation asks for a smaller picture.
//!
//! At full size the frame goes straight into turbojpeg's planar YUV path (see `encode.rs`).
//! Shrinking is a box filter on the samples themselves: 2x2 averages for 1/2, and for 3/4 each
//! run of four samples becomes three, weighted by how much of each source sample an output
//! sample covers (3:1, 2:2, 1:3). Planes are shrunk as they are, so YUV is never converted to
//! RGB and back.

use cam_proto::adapt::Scale;

use crate::encode::{EncodeError, JpegEncoder};

use super::SourceFrame;

/// The uncompressed layouts a camera may deliver that camstream encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// A Y plane, then interleaved U/V at half resolution both ways.
    Nv12,
    /// Packed 8-bit RGB.
    Rgb,
}

impl RawFormat {
    fn name(self) -> &'static str {
        match self {
            RawFormat::Yuyv => "YUYV",
            RawFormat::Nv12 => "NV12",
            RawFormat::Rgb => "RGB",
        }
    }

    /// Bytes of one `width`x`height` frame.
    pub fn frame_len(self, width: usize, height: usize) -> usize {
        match self {
            RawFormat::Yuyv => width * 2 * height,
            RawFormat::Nv12 => width * height + 2 * width.div_ceil(2) * height.div_ceil(2),
            RawFormat::Rgb => width * 3 * height,
        }
    }
}

/// Encodes the frames of one camera mode at the quality and scale link adaptation chose.
#[derive(Debug)]
pub struct RawEncoder {
    format: RawFormat,
    width: usize,
    height: usize,
    scale: Scale,
    encoder: JpegEncoder,
    /// Full-size NV12 made from YUYV before shrinking.
    nv12: Vec<u8>,
    /// The shrunk frame, in the layout the encoder takes next (NV12 or RGB).
    shrunk: Vec<u8>,
    /// One row of weighted vertical sums, reused for every output row.
    row_sums: Vec<u16>,
}

impl RawEncoder {
    pub fn new(
        format: RawFormat,
        width: u32,
        height: u32,
        quality: u8,
    ) -> Result<RawEncoder, EncodeError> {
        let bad_size = || EncodeError::BadSize {
            width: width as usize,
            height: height as usize,
        };
        // Frame sizes travel as u16 on the wire.
        if u16::try_from(width).is_err() || u16::try_from(height).is_err() {
            return Err(bad_size());
        }
        if width == 0 || height == 0 {
            return Err(bad_size());
        }
        Ok(RawEncoder {
            format,
            width: width as usize,
            height: height as usize,
            scale: Scale::Full,
            encoder: JpegEncoder::new(quality)?,
            nv12: Vec::new(),
            shrunk: Vec::new(),
            row_sums: Vec::new(),
        })
    }

    pub fn quality(&self) -> u8 {
        self.encoder.quality()
    }

    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Takes effect from the next frame.
    pub fn configure(&mut self, quality: u8, scale: Scale) -> Result<(), EncodeError> {
        self.encoder.set_quality(quality)?;
        self.scale = scale;
        Ok(())
    }

    /// The size frames go out at with the current scale.
    pub fn output_size(&self) -> (usize, usize) {
        shrunk_size(self.width, self.height, self.scale)
    }

    /// Encodes one camera frame. A short buffer is an error; extra bytes are ignored.
    pub fn encode(&mut self, raw: &[u8]) -> Result<SourceFrame, EncodeError> {
        let (width, height) = (self.width, self.height);
        let needed = self.format.frame_len(width, height);
        if raw.len() < needed {
            return Err(EncodeError::ShortInput {
                format: self.format.name(),
                what: "pixel data",
                width,
                height,
                needed,
                got: raw.len(),
            });
        }
        let raw = &raw[..needed];
        let (out_w, out_h) = self.output_size();
        let jpeg = if (out_w, out_h) == (width, height) {
            match self.format {
                RawFormat::Yuyv => self.encoder.encode_yuyv(raw, width, height)?,
                RawFormat::Nv12 => self.encoder.encode_nv12(raw, width, height)?,
                RawFormat::Rgb => self.encoder.encode_rgb(raw, width, height)?,
            }
        } else {
            match self.format {
                RawFormat::Yuyv => {
                    if width % 2 != 0 {
                        return Err(EncodeError::OddWidth {
                            format: "YUYV",
                            width,
                        });
                    }
                    yuyv_to_nv12(raw, width, height, &mut self.nv12);
                    shrink_nv12(
                        &self.nv12,
                        (width, height),
                        (out_w, out_h),
                        self.scale,
                        &mut self.shrunk,
                        &mut self.row_sums,
                    );
                    self.encoder.encode_nv12(&self.shrunk, out_w, out_h)?
                }
                RawFormat::Nv12 => {
                    shrink_nv12(
                        raw,
                        (width, height),
                        (out_w, out_h),
                        self.scale,
                        &mut self.shrunk,
                        &mut self.row_sums,
                    );
                    self.encoder.encode_nv12(&self.shrunk, out_w, out_h)?
                }
                RawFormat::Rgb => {
                    shrink(
                        Plane::new(raw, width, height, 3),
                        self.scale,
                        out_w,
                        out_h,
                        &mut self.shrunk,
                        &mut self.row_sums,
                    );
                    self.encoder.encode_rgb(&self.shrunk, out_w, out_h)?
                }
            }
        };
        Ok(SourceFrame {
            jpeg,
            // Both sides were checked to fit when the encoder was made, and shrinking only
            // makes them smaller.
            width: out_w as u16,
            height: out_h as u16,
        })
    }
}

/// The output size for `scale`, as link adaptation computes it (even sides, at least 16),
/// but never larger than the frame.
pub fn shrunk_size(width: usize, height: usize, scale: Scale) -> (usize, usize) {
    if scale == Scale::Full {
        return (width, height);
    }
    let (w, h) = scale.apply(
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    ((w as usize).min(width), (h as usize).min(height))
}

/// A packed image or plane: `channels` interleaved samples per pixel, rows without padding.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub samples: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl<'a> Plane<'a> {
    pub fn new(samples: &'a [u8], width: usize, height: usize, channels: usize) -> Plane<'a> {
        Plane {
            samples,
            width,
            height,
            channels,
        }
    }
}

/// Which two source samples output sample `j` averages, and their weights (adding up to 4).
/// Indices may run past the end of a short last group; the caller clamps them.
fn taps(scale: Scale, j: usize) -> (usize, u16, u16) {
    match scale {
        Scale::Full => (j, 4, 0),
        Scale::Half => (2 * j, 2, 2),
        Scale::ThreeQuarters => {
            let first = j / 3 * 4;
            match j % 3 {
                0 => (first, 3, 1),
                1 => (first + 1, 2, 2),
                _ => (first + 2, 1, 3),
            }
        }
    }
}

/// Box-filters `src` down to `out_w`x`out_h` by `scale` into `dst` (resized to fit).
///
/// Sizes that do not divide evenly repeat the last row or column. Never panics: a plane
/// shorter than its stated size reads as zeros.
pub fn shrink(
    src: Plane<'_>,
    scale: Scale,
    out_w: usize,
    out_h: usize,
    dst: &mut Vec<u8>,
    row_sums: &mut Vec<u16>,
) {
    let channels = src.channels.max(1);
    let src_stride = src.width * channels;
    let dst_stride = out_w * channels;
    dst.clear();
    dst.resize(dst_stride * out_h, 0);
    if src.width == 0 || src.height == 0 {
        return;
    }
    let row = |i: usize| -> &[u8] {
        let i = i.min(src.height - 1);
        src.samples
            .get(i * src_stride..(i + 1) * src_stride)
            .unwrap_or(&[])
    };
    row_sums.clear();
    row_sums.resize(src_stride, 0);
    for (j, out_row) in dst.chunks_exact_mut(dst_stride.max(1)).enumerate() {
        let (first, w0, w1) = taps(scale, j);
        let (top, bottom) = (row(first), row(first + 1));
        for (k, sum) in row_sums.iter_mut().enumerate() {
            let a = top.get(k).copied().unwrap_or(0);
            let b = bottom.get(k).copied().unwrap_or(0);
            *sum = w0 * u16::from(a) + w1 * u16::from(b);
        }
        for (x, pixel) in out_row.chunks_exact_mut(channels).enumerate() {
            let (first, v0, v1) = taps(scale, x);
            let left = first.min(src.width - 1) * channels;
            let right = (first + 1).min(src.width - 1) * channels;
            for (c, out) in pixel.iter_mut().enumerate() {
                let a = u32::from(row_sums.get(left + c).copied().unwrap_or(0));
                let b = u32::from(row_sums.get(right + c).copied().unwrap_or(0));
                // Each pass weighs by 4, so 16 in all; +8 rounds to nearest.
                *out = ((u32::from(v0) * a + u32::from(v1) * b + 8) >> 4) as u8;
            }
        }
    }
}

/// Shrinks an NV12 frame: the Y plane and the interleaved U/V plane, each by the same factor.
fn shrink_nv12(
    nv12: &[u8],
    (width, height): (usize, usize),
    (out_w, out_h): (usize, usize),
    scale: Scale,
    dst: &mut Vec<u8>,
    row_sums: &mut Vec<u16>,
) {
    let luma_len = width * height;
    let (luma, chroma) = nv12.split_at(luma_len.min(nv12.len()));
    let mut plane = std::mem::take(dst);
    shrink(
        Plane::new(luma, width, height, 1),
        scale,
        out_w,
        out_h,
        &mut plane,
        row_sums,
    );
    let mut uv = Vec::new();
    shrink(
        Plane::new(chroma, width.div_ceil(2), height.div_ceil(2), 2),
        scale,
        out_w.div_ceil(2),
        out_h.div_ceil(2),
        &mut uv,
        row_sums,
    );
    plane.extend_from_slice(&uv);
    *dst = plane;
}

/// YUYV 4:2:2 to NV12 4:2:0 at the same size: luma copied, chroma averaged over row pairs.
/// Samples keep their (studio) range; the NV12 encoder stretches them.
fn yuyv_to_nv12(yuyv: &[u8], width: usize, height: usize, nv12: &mut Vec<u8>) {
    let row_len = width * 2;
    nv12.clear();
    nv12.reserve(RawFormat::Nv12.frame_len(width, height));
    let rows = || yuyv.chunks_exact(row_len.max(1)).take(height);
    for row in rows() {
        nv12.extend(row.iter().step_by(2));
    }
    let mut rows = rows();
    while let Some(top) = rows.next() {
        // An odd last row pairs with itself.
        let bottom = rows.next().unwrap_or(top);
        for (t, b) in top.chunks_exact(4).zip(bottom.chunks_exact(4)) {
            nv12.push(average(t[1], b[1]));
            nv12.push(average(t[3], b[3]));
        }
    }
}

fn average(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b)).div_ceil(2)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dht::tests::decode_rgb;

    fn shrunk(src: &[u8], w: usize, h: usize, ch: usize, scale: Scale) -> (Vec<u8>, usize, usize) {
        let (ow, oh) = match scale {
            Scale::Full => (w, h),
            Scale::Half => (w / 2, h / 2),
            Scale::ThreeQuarters => (w * 3 / 4, h * 3 / 4),
        };
        let mut out = Vec::new();
        shrink(
            Plane::new(src, w, h, ch),
            scale,
            ow,
            oh,
            &mut out,
            &mut Vec::new(),
        );
        (out, ow, oh)
    }

    #[test]
    fn half_averages_two_by_two_blocks() {
        #[rustfmt::skip]
        let src = [
            10, 20, 100, 100,
            30, 40, 100, 200,
        ];
        let (out, w, h) = shrunk(&src, 4, 2, 1, Scale::Half);
        assert_eq!((w, h), (2, 1));
        assert_eq!(out, [25, 125]);
    }

    #[test]
    fn three_quarters_weighs_by_covered_area() {
        // Output samples cover source [0, 4/3), [4/3, 8/3), [8/3, 4).
        let src = [0, 40, 80, 120].repeat(4);
        let (out, w, h) = shrunk(&src, 4, 4, 1, Scale::ThreeQuarters);
        assert_eq!((w, h), (3, 3));
        assert_eq!(out, [10, 60, 110].repeat(3));

        // The same along the other axis, and per channel for interleaved samples.
        let column: Vec<u8> = [0u8, 40, 80, 120]
            .iter()
            .flat_map(|&v| [v, 255 - v])
            .collect();
        let mut out = Vec::new();
        shrink(
            Plane::new(&column, 1, 4, 2),
            Scale::ThreeQuarters,
            1,
            3,
            &mut out,
            &mut Vec::new(),
        );
        assert_eq!(out, [10, 245, 60, 195, 110, 145]);
    }

    #[test]
    fn flat_planes_stay_flat_at_awkward_sizes() {
        for (w, h) in [(5, 3), (7, 7), (1, 1), (2, 9), (6, 4)] {
            for scale in [Scale::Half, Scale::ThreeQuarters] {
                let src = vec![77u8; w * h * 3];
                let mut out = Vec::new();
                let (ow, oh) = ((w * 3 / 4).max(1), (h * 3 / 4).max(1));
                shrink(
                    Plane::new(&src, w, h, 3),
                    scale,
                    ow,
                    oh,
                    &mut out,
                    &mut Vec::new(),
                );
                assert_eq!(out.len(), ow * oh * 3);
                assert!(out.iter().all(|&v| v == 77), "{w}x{h} {scale:?}");
            }
        }
    }

    #[test]
    fn short_planes_do_not_panic() {
        let mut out = Vec::new();
        shrink(
            Plane::new(&[1, 2, 3], 8, 8, 1),
            Scale::Half,
            4,
            4,
            &mut out,
            &mut Vec::new(),
        );
        assert_eq!(out.len(), 16);
        shrink(
            Plane::new(&[], 0, 0, 1),
            Scale::Half,
            2,
            2,
            &mut out,
            &mut Vec::new(),
        );
    }

    #[test]
    fn yuyv_becomes_nv12() {
        // 4x2: two pixel pairs per row.
        #[rustfmt::skip]
        let yuyv = [
            1, 100, 2, 200,   3, 50, 4, 60,
            5, 102, 6, 202,   7, 52, 8, 61,
        ];
        let mut nv12 = Vec::new();
        yuyv_to_nv12(&yuyv, 4, 2, &mut nv12);
        assert_eq!(nv12, [1, 2, 3, 4, 5, 6, 7, 8, 101, 201, 51, 61]);
    }

    /// Studio-range BT.601 for a few colours, the way a webcam delivers them.
    const COLOURS: [([u8; 3], [u8; 3]); 4] = [
        ([235, 128, 128], [255, 255, 255]),
        ([16, 128, 128], [0, 0, 0]),
        ([81, 90, 240], [255, 0, 0]),
        ([41, 240, 110], [0, 0, 255]),
    ];
    const W: usize = 64;
    const H: usize = 48;

    fn quadrant(x: usize, y: usize) -> usize {
        usize::from(x >= W / 2) + 2 * usize::from(y >= H / 2)
    }

    fn yuyv_frame() -> Vec<u8> {
        let mut out = Vec::new();
        for y in 0..H {
            for x in (0..W).step_by(2) {
                let [y0, cb, cr] = COLOURS[quadrant(x, y)].0;
                out.extend_from_slice(&[y0, cb, y0, cr]);
            }
        }
        out
    }

    fn nv12_frame() -> Vec<u8> {
        let mut out: Vec<u8> = (0..W * H)
            .map(|i| COLOURS[quadrant(i % W, i / W)].0[0])
            .collect();
        for y in (0..H).step_by(2) {
            for x in (0..W).step_by(2) {
                let [_, cb, cr] = COLOURS[quadrant(x, y)].0;
                out.extend_from_slice(&[cb, cr]);
            }
        }
        out
    }

    fn rgb_frame() -> Vec<u8> {
        (0..W * H)
            .flat_map(|i| COLOURS[quadrant(i % W, i / W)].1)
            .collect()
    }

    /// Link adaptation's smaller sizes work for every raw format: right size, right colours.
    #[test]
    fn raw_frames_shrink_for_link_adaptation() {
        for (format, frame) in [
            (RawFormat::Yuyv, yuyv_frame()),
            (RawFormat::Nv12, nv12_frame()),
            (RawFormat::Rgb, rgb_frame()),
        ] {
            let mut encoder = RawEncoder::new(format, W as u32, H as u32, 90).expect("encoder");
            for (scale, expected) in [
                (Scale::Full, (64, 48)),
                (Scale::ThreeQuarters, (48, 36)),
                (Scale::Half, (32, 24)),
            ] {
                encoder.configure(70, scale).expect("valid settings");
                let sent = encoder.encode(&frame).expect("encodes");
                assert_eq!(
                    (usize::from(sent.width), usize::from(sent.height)),
                    expected
                );
                let (w, h, rgb) = decode_rgb(&sent.jpeg).expect("decodes");
                assert_eq!((w, h), expected, "{format:?} {scale:?}");
                // Quadrant centres keep their colour.
                for (q, (x, y)) in [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4)]
                    .into_iter()
                    .enumerate()
                {
                    let i = (y * w + x) * 3;
                    let got = &rgb[i..i + 3];
                    let want = COLOURS[q].1;
                    for c in 0..3 {
                        assert!(
                            got[c].abs_diff(want[c]) <= 16,
                            "{format:?} {scale:?} quadrant {q}: got {got:?}, want {want:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn short_frames_are_errors() {
        let mut encoder = RawEncoder::new(RawFormat::Yuyv, 64, 48, 80).expect("encoder");
        encoder.configure(80, Scale::Half).expect("valid");
        assert!(matches!(
            encoder.encode(&[0; 100]),
            Err(EncodeError::ShortInput {
                needed: 6144,
                got: 100,
                ..
            })
        ));
        assert!(RawEncoder::new(RawFormat::Rgb, 70_000, 16, 80).is_err());
        assert!(encoder.configure(0, Scale::Full).is_err());
    }
}
