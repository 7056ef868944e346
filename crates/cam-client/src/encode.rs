//! JPEG encoding of raw frames (test card, YUYV/NV12/RGB cameras, y4m files).
//!
//! YUV input goes through libjpeg-turbo's planar path, so a webcam frame is never converted to RGB
//! and back: JPEG stores YCbCr anyway.

use std::fmt;

use thiserror::Error;

use crate::strip_encode::{threads_wanted, StripEncoder};
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp, YuvPlanesImage};

/// libjpeg refuses larger images (`JPEG_MAX_DIMENSION`); checking first gives a clearer error.
pub const MAX_DIMENSION: usize = 65_500;

/// Why a frame could not be encoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("JPEG quality {0} is out of range; use 1 to 100")]
    BadQuality(u8),
    #[error("image size {width}x{height} cannot be encoded: each side must be 1 to 65500 pixels, and the image must fit in memory")]
    BadSize { width: usize, height: usize },
    #[error("{format} image width {width} is odd, but {format} stores pixels in pairs")]
    OddWidth { format: &'static str, width: usize },
    #[error("{format} {width}x{height} image needs {needed} bytes of {what}, got {got}")]
    ShortInput {
        format: &'static str,
        what: &'static str,
        width: usize,
        height: usize,
        needed: usize,
        got: usize,
    },
    #[error("libjpeg-turbo: {0}")]
    Turbo(#[from] turbojpeg::Error),
    #[error("cannot join the encoded strips: {0}")]
    Stitch(cam_proto::restart::StitchError),
}

/// A reusable JPEG encoder.
///
/// It keeps its scratch buffers between frames, so a steady stream of same-sized frames allocates
/// nothing but the returned JPEG (and nothing at all with the `*_into` methods).
pub struct JpegEncoder {
    compressor: Compressor,
    quality: u8,
    /// Worst-case sized (`tj3JPEGBufSize`) so libjpeg-turbo never needs to grow it; the
    /// turbojpeg-owned growable buffer is not `Send`, and a `Send` encoder is what sources need.
    scratch: Vec<u8>,
    y_plane: Vec<u8>,
    u_plane: Vec<u8>,
    v_plane: Vec<u8>,
    /// Large frames are encoded in strips on several threads (`strip_encode`); made on the
    /// first large frame.
    strips: Option<Option<StripEncoder>>,
}

impl fmt::Debug for JpegEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JpegEncoder")
            .field("quality", &self.quality)
            .field("scratch_capacity", &self.scratch.len())
            .finish_non_exhaustive()
    }
}

impl JpegEncoder {
    /// `quality` is libjpeg's 1..=100 scale.
    pub fn new(quality: u8) -> Result<Self, EncodeError> {
        let mut encoder = JpegEncoder {
            compressor: Compressor::new()?,
            quality: 0,
            scratch: Vec::new(),
            y_plane: Vec::new(),
            u_plane: Vec::new(),
            v_plane: Vec::new(),
            strips: None,
        };
        encoder.set_quality(quality)?;
        Ok(encoder)
    }

    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Takes effect from the next frame; rate adaptation changes it while streaming.
    pub fn set_quality(&mut self, quality: u8) -> Result<(), EncodeError> {
        if !(1..=100).contains(&quality) {
            return Err(EncodeError::BadQuality(quality));
        }
        self.compressor.set_quality(i32::from(quality))?;
        self.quality = quality;
        Ok(())
    }

    /// Packed 8-bit RGB, rows without padding; encoded with 4:2:0 chroma subsampling.
    pub fn encode_rgb(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_rgb_into(rgb, width, height, &mut out)?;
        Ok(out)
    }

    /// Like [`encode_rgb`](Self::encode_rgb), replacing the contents of `out` and reusing its
    /// capacity.
    pub fn encode_rgb_into(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_size(width, height)?;
        let needed = width * height * 3;
        check_len("RGB", "pixel data", width, height, needed, rgb.len())?;
        self.compressor.set_subsamp(Subsamp::Sub2x2)?;
        reserve_worst_case(&mut self.scratch, width, height)?;
        let image = Image {
            pixels: &rgb[..needed],
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        };
        let len = self
            .compressor
            .compress_to_slice(image, &mut self.scratch)?;
        copy_out(&self.scratch[..len], out);
        Ok(())
    }

    /// Packed YUYV 4:2:2 (`Y0 U Y1 V`), as most webcams deliver it uncompressed.
    ///
    /// The samples are taken as studio range (Y 16..=235), which is what V4L2 and UVC cameras
    /// produce; JPEG is full range, so they are stretched, or black would turn grey. Chroma is
    /// averaged over row pairs down to 4:2:0 to keep frames small on the wire.
    pub fn encode_yuyv(
        &mut self,
        yuyv: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_yuyv_into(yuyv, width, height, &mut out)?;
        Ok(out)
    }

    /// Like [`encode_yuyv`](Self::encode_yuyv), replacing the contents of `out`.
    pub fn encode_yuyv_into(
        &mut self,
        yuyv: &[u8],
        width: usize,
        height: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_size(width, height)?;
        if width % 2 != 0 {
            return Err(EncodeError::OddWidth {
                format: "YUYV",
                width,
            });
        }
        let row_len = width * 2;
        check_len(
            "YUYV",
            "pixel data",
            width,
            height,
            row_len * height,
            yuyv.len(),
        )?;
        let (chroma_width, chroma_height) = chroma_size(width, height);
        // Even width, so only the height may need a padding row.
        resize_plane(&mut self.y_plane, width * padded(height));
        resize_plane(&mut self.u_plane, chroma_width * chroma_height);
        resize_plane(&mut self.v_plane, chroma_width * chroma_height);

        let rows = yuyv[..row_len * height].chunks_exact(row_len);
        for (row, luma) in rows.clone().zip(self.y_plane.chunks_exact_mut(width)) {
            for (full, studio) in luma.iter_mut().zip(row.iter().step_by(2)) {
                *full = LUMA_TO_FULL[usize::from(*studio)];
            }
        }
        pad_last_row(&mut self.y_plane, width, height);

        let mut rows = rows;
        let chroma_rows = self
            .u_plane
            .chunks_exact_mut(chroma_width)
            .zip(self.v_plane.chunks_exact_mut(chroma_width));
        for (u_row, v_row) in chroma_rows {
            let Some(top) = rows.next() else {
                break;
            };
            // An odd last row pairs with itself.
            let bottom = rows.next().unwrap_or(top);
            let pairs = top.chunks_exact(4).zip(bottom.chunks_exact(4));
            for ((t, b), (u, v)) in pairs.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                *u = CHROMA_TO_FULL[average(t[1], b[1])];
                *v = CHROMA_TO_FULL[average(t[3], b[3])];
            }
        }

        let jpeg = compress_i420_maybe_strips(
            &mut self.strips,
            &mut self.compressor,
            &mut self.scratch,
            self.quality,
            [&self.y_plane, &self.u_plane, &self.v_plane],
            width,
            width,
            height,
        )?;
        copy_out(jpeg, out);
        Ok(())
    }

    /// NV12: a Y plane followed by one plane of interleaved U/V pairs at half resolution both
    /// ways. Studio range, like [`encode_yuyv`](Self::encode_yuyv).
    pub fn encode_nv12(
        &mut self,
        nv12: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_nv12_into(nv12, width, height, &mut out)?;
        Ok(out)
    }

    /// Like [`encode_nv12`](Self::encode_nv12), replacing the contents of `out`.
    pub fn encode_nv12_into(
        &mut self,
        nv12: &[u8],
        width: usize,
        height: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_size(width, height)?;
        let (chroma_width, chroma_height) = chroma_size(width, height);
        let luma_len = width * height;
        let chroma_len = chroma_width * chroma_height;
        let needed = luma_len + 2 * chroma_len;
        check_len("NV12", "pixel data", width, height, needed, nv12.len())?;
        let (luma, interleaved) = nv12[..needed].split_at(luma_len);

        let y_stride = copy_luma_padded(&mut self.y_plane, luma, width, height, &LUMA_TO_FULL);
        resize_plane(&mut self.u_plane, chroma_len);
        resize_plane(&mut self.v_plane, chroma_len);
        let planes = self.u_plane.iter_mut().zip(self.v_plane.iter_mut());
        for ((u, v), pair) in planes.zip(interleaved.chunks_exact(2)) {
            *u = CHROMA_TO_FULL[usize::from(pair[0])];
            *v = CHROMA_TO_FULL[usize::from(pair[1])];
        }

        let jpeg = compress_i420_maybe_strips(
            &mut self.strips,
            &mut self.compressor,
            &mut self.scratch,
            self.quality,
            [&self.y_plane, &self.u_plane, &self.v_plane],
            y_stride,
            width,
            height,
        )?;
        copy_out(jpeg, out);
        Ok(())
    }

    /// Planar 4:2:0 (I420): chroma planes are `ceil(width/2) x ceil(height/2)`, rows unpadded.
    ///
    /// The samples go to libjpeg-turbo untouched, so they must already be full range (JPEG's
    /// YCbCr); a source holding studio-range video has to stretch them first.
    pub fn encode_i420_planes(
        &mut self,
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_i420_planes_into(y, u, v, width, height, &mut out)?;
        Ok(out)
    }

    /// Like [`encode_i420_planes`](Self::encode_i420_planes), replacing the contents of `out`.
    pub fn encode_i420_planes_into(
        &mut self,
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: usize,
        height: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_size(width, height)?;
        let (chroma_width, chroma_height) = chroma_size(width, height);
        let chroma_len = chroma_width * chroma_height;
        check_len("I420", "Y plane", width, height, width * height, y.len())?;
        check_len("I420", "U plane", width, height, chroma_len, u.len())?;
        check_len("I420", "V plane", width, height, chroma_len, v.len())?;
        let jpeg = if width % 2 == 0 && height % 2 == 0 {
            compress_i420_maybe_strips(
                &mut self.strips,
                &mut self.compressor,
                &mut self.scratch,
                self.quality,
                [y, u, v],
                width,
                width,
                height,
            )?
        } else {
            let y_stride = copy_luma_padded(&mut self.y_plane, y, width, height, &IDENTITY);
            compress_i420_maybe_strips(
                &mut self.strips,
                &mut self.compressor,
                &mut self.scratch,
                self.quality,
                [&self.y_plane, u, v],
                y_stride,
                width,
                height,
            )?
        };
        copy_out(jpeg, out);
        Ok(())
    }
}

/// Large frames go to the strip encoder (its threads are started on the first one); the
/// rest, and every frame where strips are off, to `compress_i420`. Returns the JPEG.
#[allow(clippy::too_many_arguments)]
fn compress_i420_maybe_strips<'a>(
    strips: &'a mut Option<Option<StripEncoder>>,
    compressor: &mut Compressor,
    scratch: &'a mut Vec<u8>,
    quality: u8,
    planes: [&[u8]; 3],
    y_stride: usize,
    width: usize,
    height: usize,
) -> Result<&'a [u8], EncodeError> {
    if StripEncoder::wants(width, height) {
        if strips.is_none() {
            *strips = Some(StripEncoder::new(threads_wanted())?);
        }
        if let Some(Some(strips)) = strips.as_mut() {
            // Same length checks as the whole-frame path, before any thread indexes a plane.
            let (chroma_width, chroma_height) = chroma_size(width, height);
            let y_needed = y_stride * (padded(height) - 1) + padded(width);
            check_len("I420", "Y plane", width, height, y_needed, planes[0].len())?;
            for (what, plane) in [("U plane", planes[1]), ("V plane", planes[2])] {
                let needed = chroma_width * chroma_height;
                check_len("I420", what, width, height, needed, plane.len())?;
            }
            return strips.encode(quality, planes, y_stride, width, height);
        }
    }
    let len = compress_i420(compressor, scratch, planes, y_stride, width, height)?;
    Ok(&scratch[..len])
}

/// `y_stride` is the luma row length, at least `width` rounded up to even.
fn compress_i420(
    compressor: &mut Compressor,
    scratch: &mut Vec<u8>,
    [y, u, v]: [&[u8]; 3],
    y_stride: usize,
    width: usize,
    height: usize,
) -> Result<usize, EncodeError> {
    // turbojpeg panics on short planes (tj3YUVPlaneSize); the callers size them, this keeps a
    // slip an error.
    let (chroma_width, chroma_height) = chroma_size(width, height);
    let y_needed = y_stride * (padded(height) - 1) + padded(width);
    check_len("I420", "Y plane", width, height, y_needed, y.len())?;
    for (what, plane) in [("U plane", u), ("V plane", v)] {
        check_len(
            "I420",
            what,
            width,
            height,
            chroma_width * chroma_height,
            plane.len(),
        )?;
    }
    reserve_worst_case(scratch, width, height)?;
    let image = YuvPlanesImage {
        y_plane: y,
        u_plane: u,
        v_plane: v,
        width,
        height,
        y_stride,
        u_stride: chroma_width,
        v_stride: chroma_width,
        subsamp: Subsamp::Sub2x2,
    };
    Ok(compressor.compress_yuv_planes_to_slice(&image, scratch)?)
}

fn check_size(width: usize, height: usize) -> Result<(), EncodeError> {
    let sides_ok = (1..=MAX_DIMENSION).contains(&width) && (1..=MAX_DIMENSION).contains(&height);
    // Every buffer size computed later is below this product, so none of them can overflow,
    // not even with a 32-bit usize.
    let products_fit = (width + 1)
        .checked_mul(height + 1)
        .and_then(|area| area.checked_mul(4))
        .is_some();
    if sides_ok && products_fit {
        Ok(())
    } else {
        Err(EncodeError::BadSize { width, height })
    }
}

fn check_len(
    format: &'static str,
    what: &'static str,
    width: usize,
    height: usize,
    needed: usize,
    got: usize,
) -> Result<(), EncodeError> {
    if got >= needed {
        Ok(())
    } else {
        Err(EncodeError::ShortInput {
            format,
            what,
            width,
            height,
            needed,
            got,
        })
    }
}

fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Sized for 4:2:0, the only subsampling this encoder produces.
fn reserve_worst_case(
    scratch: &mut Vec<u8>,
    width: usize,
    height: usize,
) -> Result<(), EncodeError> {
    let worst = turbojpeg::compressed_buf_len(width, height, Subsamp::Sub2x2)?;
    if scratch.len() < worst {
        scratch.resize(worst, 0);
    }
    Ok(())
}

/// Planes are overwritten completely, so only their length matters.
fn resize_plane(plane: &mut Vec<u8>, len: usize) {
    plane.resize(len, 0);
}

fn copy_out(jpeg: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(jpeg);
}

fn padded(n: usize) -> usize {
    n.next_multiple_of(2)
}

/// libjpeg-turbo reads 4:2:0 luma in whole 2x2 blocks, so an odd-sized plane gets its last
/// column and row repeated. Returns the stride used.
fn copy_luma_padded(
    dst: &mut Vec<u8>,
    src: &[u8],
    width: usize,
    height: usize,
    table: &[u8; 256],
) -> usize {
    let stride = padded(width);
    resize_plane(dst, stride * padded(height));
    for (dst_row, src_row) in dst.chunks_exact_mut(stride).zip(src.chunks_exact(width)) {
        for (out, sample) in dst_row.iter_mut().zip(src_row) {
            *out = table[usize::from(*sample)];
        }
        if stride > width {
            dst_row[width] = dst_row[width - 1];
        }
    }
    pad_last_row(dst, stride, height);
    stride
}

fn pad_last_row(plane: &mut [u8], stride: usize, height: usize) {
    if height % 2 != 0 {
        plane.copy_within((height - 1) * stride..height * stride, height * stride);
    }
}

fn average(a: u8, b: u8) -> usize {
    (usize::from(a) + usize::from(b)).div_ceil(2)
}

pub(crate) const IDENTITY: [u8; 256] = range_table(0, 255, 0);
/// Studio-range luma (16..=235) to JPEG's full range.
pub(crate) const LUMA_TO_FULL: [u8; 256] = range_table(16, 219, 0);
/// Studio-range chroma (16..=240 around 128) to JPEG's full range.
pub(crate) const CHROMA_TO_FULL: [u8; 256] = range_table(128, 224, 128);

const fn range_table(offset: i32, span: i32, centre: i32) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let scaled = (i as i32 - offset) * 255;
        // Round half away from zero; integer division truncates towards zero.
        let rounded = if scaled >= 0 {
            (scaled + span / 2) / span
        } else {
            (scaled - span / 2) / span
        };
        let value = rounded + centre;
        table[i] = if value < 0 {
            0
        } else if value > 255 {
            255
        } else {
            value as u8
        };
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use turbojpeg::Decompressor;

    fn decode_rgb(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut decompressor = Decompressor::new().expect("decompressor");
        let header = decompressor.read_header(jpeg).expect("JPEG header");
        let mut image = Image {
            pixels: vec![0; header.width * header.height * 3],
            width: header.width,
            pitch: header.width * 3,
            height: header.height,
            format: PixelFormat::RGB,
        };
        decompressor
            .decompress(jpeg, image.as_deref_mut())
            .expect("decodes");
        (header.width, header.height, image.pixels)
    }

    fn pixel(rgb: &[u8], width: usize, x: usize, y: usize) -> [u8; 3] {
        let i = (y * width + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    fn assert_close(actual: [u8; 3], expected: [u8; 3], tolerance: u8, what: &str) {
        for channel in 0..3 {
            let diff = actual[channel].abs_diff(expected[channel]);
            assert!(
                diff <= tolerance,
                "{what}: got {actual:?}, expected {expected:?} (±{tolerance})"
            );
        }
    }

    /// BT.601 studio range, the way a webcam would deliver the colour.
    fn studio_ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
        let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        [y.round() as u8, cb.round() as u8, cr.round() as u8]
    }

    /// Quadrants of four colours: top-left, top-right, bottom-left, bottom-right.
    const QUADRANTS: [[u8; 3]; 4] = [[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 60, 200]];
    const QUAD_W: usize = 64;
    const QUAD_H: usize = 48;

    fn quadrant_colour(x: usize, y: usize) -> [u8; 3] {
        let index = usize::from(x >= QUAD_W / 2) + 2 * usize::from(y >= QUAD_H / 2);
        studio_ycbcr(QUADRANTS[index])
    }

    fn check_quadrants(jpeg: &[u8]) {
        let (width, height, rgb) = decode_rgb(jpeg);
        assert_eq!((width, height), (QUAD_W, QUAD_H));
        let centres = [(16, 12), (48, 12), (16, 36), (48, 36)];
        for ((x, y), expected) in centres.into_iter().zip(QUADRANTS) {
            assert_close(pixel(&rgb, width, x, y), expected, 12, "quadrant centre");
        }
    }

    #[test]
    fn rgb_round_trip_keeps_size_and_pixels() {
        let (width, height) = (96, 64);
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                rgb.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
            }
        }
        let mut encoder = JpegEncoder::new(90).expect("encoder");
        let jpeg = encoder.encode_rgb(&rgb, width, height).expect("encodes");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let (w, h, decoded) = decode_rgb(&jpeg);
        assert_eq!((w, h), (width, height));
        let max_diff = rgb
            .iter()
            .zip(&decoded)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .expect("pixels");
        assert!(max_diff <= 12, "max channel difference {max_diff}");
    }

    #[test]
    fn into_reuses_the_callers_buffer() {
        let rgb = vec![90u8; 32 * 32 * 3];
        let mut encoder = JpegEncoder::new(80).expect("encoder");
        let mut out = Vec::with_capacity(64 * 1024);
        let before = out.as_ptr();
        encoder
            .encode_rgb_into(&rgb, 32, 32, &mut out)
            .expect("encodes");
        let first = out.clone();
        encoder
            .encode_rgb_into(&rgb, 32, 32, &mut out)
            .expect("encodes");
        assert_eq!(out, first, "same input, same JPEG, nothing left over");
        assert_eq!(out.as_ptr(), before, "no reallocation");
    }

    #[test]
    fn quality_changes_the_output() {
        let mut rgb = vec![0u8; 64 * 64 * 3];
        for (i, byte) in rgb.iter_mut().enumerate() {
            *byte = (i * 37 % 251) as u8;
        }
        let mut encoder = JpegEncoder::new(95).expect("encoder");
        let high = encoder.encode_rgb(&rgb, 64, 64).expect("encodes");
        encoder.set_quality(20).expect("valid quality");
        assert_eq!(encoder.quality(), 20);
        let low = encoder.encode_rgb(&rgb, 64, 64).expect("encodes");
        assert!(low.len() < high.len(), "{} vs {}", low.len(), high.len());
    }

    #[test]
    fn yuyv_colours_survive() {
        let mut yuyv = Vec::with_capacity(QUAD_W * QUAD_H * 2);
        for y in 0..QUAD_H {
            for x in (0..QUAD_W).step_by(2) {
                let [y0, cb, cr] = quadrant_colour(x, y);
                let [y1, ..] = quadrant_colour(x + 1, y);
                yuyv.extend_from_slice(&[y0, cb, y1, cr]);
            }
        }
        let mut encoder = JpegEncoder::new(90).expect("encoder");
        check_quadrants(&encoder.encode_yuyv(&yuyv, QUAD_W, QUAD_H).expect("encodes"));
    }

    #[test]
    fn odd_sizes_encode_without_edge_artifacts() {
        // Studio-range orange (Y 150, Cb 60, Cr 190) in every layout, at sizes libjpeg-turbo
        // has to pad.
        let expected = [255, 132, 19];
        for (width, height) in [(8, 5), (7, 5), (1, 1), (9, 2)] {
            let (cw, ch) = chroma_size(width, height);
            let mut encoder = JpegEncoder::new(95).expect("encoder");
            let mut jpegs = Vec::new();
            if width % 2 == 0 {
                let yuyv: Vec<u8> = [150, 60, 150, 190].repeat(width / 2 * height);
                jpegs.push((
                    "YUYV",
                    encoder.encode_yuyv(&yuyv, width, height).expect("YUYV"),
                ));
            }
            let mut nv12 = vec![150u8; width * height];
            nv12.extend([60, 190].repeat(cw * ch));
            jpegs.push((
                "NV12",
                encoder.encode_nv12(&nv12, width, height).expect("NV12"),
            ));
            let (y, u, v) = (
                vec![LUMA_TO_FULL[150]; width * height],
                vec![CHROMA_TO_FULL[60]; cw * ch],
                vec![CHROMA_TO_FULL[190]; cw * ch],
            );
            let i420 = encoder
                .encode_i420_planes(&y, &u, &v, width, height)
                .expect("I420");
            jpegs.push(("I420", i420));
            for (format, jpeg) in jpegs {
                let (w, h, rgb) = decode_rgb(&jpeg);
                assert_eq!((w, h), (width, height), "{format}");
                for (x, y) in [(0, 0), (width - 1, height - 1)] {
                    let what = format!("{format} {width}x{height} at {x},{y}");
                    assert_close(pixel(&rgb, w, x, y), expected, 12, &what);
                }
            }
        }
    }

    #[test]
    fn nv12_colours_survive() {
        let mut nv12 = Vec::with_capacity(QUAD_W * QUAD_H * 3 / 2);
        for y in 0..QUAD_H {
            for x in 0..QUAD_W {
                nv12.push(quadrant_colour(x, y)[0]);
            }
        }
        for y in (0..QUAD_H).step_by(2) {
            for x in (0..QUAD_W).step_by(2) {
                let [_, cb, cr] = quadrant_colour(x, y);
                nv12.extend_from_slice(&[cb, cr]);
            }
        }
        let mut encoder = JpegEncoder::new(90).expect("encoder");
        check_quadrants(&encoder.encode_nv12(&nv12, QUAD_W, QUAD_H).expect("encodes"));
    }

    #[test]
    fn i420_planes_pass_through_full_range() {
        // Full-range mid grey with a red-ish chroma: Y 100, Cb 100, Cr 180.
        let (width, height) = (16, 16);
        let y = vec![100u8; width * height];
        let u = vec![100u8; 64];
        let v = vec![180u8; 64];
        let mut encoder = JpegEncoder::new(95).expect("encoder");
        let jpeg = encoder
            .encode_i420_planes(&y, &u, &v, width, height)
            .expect("encodes");
        let (w, h, rgb) = decode_rgb(&jpeg);
        assert_eq!((w, h), (width, height));
        // JFIF: R = Y + 1.402 (Cr-128), G = Y - 0.344 (Cb-128) - 0.714 (Cr-128), B = Y + 1.772 (Cb-128)
        assert_close(pixel(&rgb, w, 8, 8), [173, 72, 50], 3, "I420 pixel");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut encoder = JpegEncoder::new(80).expect("encoder");
        assert!(matches!(
            encoder.encode_rgb(&[0; 10], 4, 4),
            Err(EncodeError::ShortInput {
                needed: 48,
                got: 10,
                ..
            })
        ));
        assert!(matches!(
            encoder.encode_yuyv(&[0; 64], 7, 4),
            Err(EncodeError::OddWidth { width: 7, .. })
        ));
        assert!(matches!(
            encoder.encode_nv12(&[0; 16], 4, 4),
            Err(EncodeError::ShortInput { needed: 24, .. })
        ));
        assert!(matches!(
            encoder.encode_i420_planes(&[0; 16], &[0; 4], &[0; 3], 4, 4),
            Err(EncodeError::ShortInput {
                what: "V plane",
                ..
            })
        ));
        assert!(matches!(
            encoder.encode_rgb(&[], 0, 4),
            Err(EncodeError::BadSize { .. })
        ));
        assert!(matches!(
            JpegEncoder::new(0),
            Err(EncodeError::BadQuality(0))
        ));
        assert!(matches!(
            encoder.set_quality(101),
            Err(EncodeError::BadQuality(101))
        ));
        assert_eq!(encoder.quality(), 80, "a refused quality changes nothing");
    }

    #[test]
    fn range_tables_stretch_studio_range() {
        assert_eq!(LUMA_TO_FULL[16], 0);
        assert_eq!(LUMA_TO_FULL[235], 255);
        assert_eq!(LUMA_TO_FULL[0], 0);
        assert_eq!(LUMA_TO_FULL[255], 255);
        assert_eq!(CHROMA_TO_FULL[128], 128);
        assert_eq!(CHROMA_TO_FULL[16], 0);
        assert_eq!(CHROMA_TO_FULL[240], 255);
    }
}
