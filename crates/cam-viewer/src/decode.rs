//! JPEG decoding into the pixel layout minifb draws, plus the counters the summary reports.

use std::sync::atomic::{AtomicU64, Ordering};

use turbojpeg::{Decompressor, Image, PixelFormat};

/// Largest width or height accepted. Frames come from the network, so a header claiming
/// 60000x60000 must not make us allocate 14 GB; 8192 covers every webcam with room to spare.
pub const MAX_DIMENSION: usize = 8192;

/// minifb wants `0x00RRGGBB` in a native `u32`. On little-endian machines those bytes lie in
/// memory as B, G, R, X; on big-endian ones as X, R, G, B. Picking the format per target lets
/// libjpeg-turbo write the final layout directly, with no conversion pass.
const NATIVE_XRGB: PixelFormat = if cfg!(target_endian = "little") {
    PixelFormat::BGRX
} else {
    PixelFormat::XRGB
};

/// Bytes per pixel of [`NATIVE_XRGB`].
const BYTES_PER_PIXEL: usize = 4;

/// Messages libjpeg emits as *warnings*: decoding went on to the end (missing data is filled
/// in), so the image is complete if slightly damaged. Webcams commonly produce such frames
/// (for example "extraneous bytes before marker"), and showing them beats dropping them.
/// TurboJPEG reports warnings as errors and the `turbojpeg` crate does not expose the error
/// code that tells them apart, so the message text is all there is to go on.
const LIBJPEG_WARNING_PREFIXES: &[&str] = &[
    "Corrupt JPEG data:",
    "Premature end of JPEG file",
    "Warning: unknown JFIF revision",
    "Unknown Adobe color transform code",
    "Inconsistent progression sequence",
    "Invalid SOS parameters for sequential JPEG",
];

/// Why a frame could not be turned into pixels.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// libjpeg-turbo could not even be initialised (it failed to allocate its state).
    #[error("cannot initialise the JPEG decoder: {0}")]
    Init(String),
    /// The bytes are not a JPEG, or one damaged beyond decoding.
    #[error("corrupt JPEG: {0}")]
    Corrupt(String),
    /// The bytes start like a PNG but do not decode as one.
    #[error("corrupt PNG: {0}")]
    CorruptPng(String),
    /// The header claims a size outside what the viewer accepts.
    #[error("JPEG size {width}x{height} is outside 1x1..={max}x{max}", max = MAX_DIMENSION)]
    BadSize { width: usize, height: usize },
}

/// Size of a decoded image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    pub width: usize,
    pub height: usize,
}

/// What a successful decode produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub size: ImageSize,
    /// libjpeg's warning when the data was damaged but decoding still completed.
    pub warning: Option<String>,
}

/// Decodes JPEG frames one after another, keeping libjpeg-turbo's state between them.
#[derive(Debug)]
pub struct JpegDecoder {
    decompressor: Decompressor,
}

impl JpegDecoder {
    pub fn new() -> Result<Self, DecodeError> {
        let decompressor = Decompressor::new().map_err(|e| DecodeError::Init(e.to_string()))?;
        Ok(Self { decompressor })
    }

    /// Decodes `jpeg` into `pixels` (one `0x00RRGGBB` per pixel, rows top to bottom, no
    /// padding). The caller owns `pixels` so that it can keep several (the frame being decoded
    /// and the one on screen) and so that steady-state decoding allocates nothing: the vector
    /// is only resized when the image size changes.
    ///
    /// On error the contents of `pixels` are unspecified (possibly half-written); keep the
    /// previous good frame in a different buffer.
    pub fn decode_into(
        &mut self,
        jpeg: &[u8],
        pixels: &mut Vec<u32>,
    ) -> Result<Decoded, DecodeError> {
        // Classic mode also carries PNG; the magic bytes tell.
        if crate::picture::is_png(jpeg) {
            return crate::picture::decode_png_into(jpeg, pixels);
        }
        let result = self.decode_with_current(jpeg, pixels);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn decode_with_current(
        &mut self,
        jpeg: &[u8],
        pixels: &mut Vec<u32>,
    ) -> Result<Decoded, DecodeError> {
        let header = self
            .decompressor
            .read_header(jpeg)
            .map_err(|e| DecodeError::Corrupt(turbojpeg_message(e)))?;
        let (width, height) = (header.width, header.height);
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(DecodeError::BadSize { width, height });
        }

        pixels.resize(width * height, 0);
        let output = Image {
            pixels: bytemuck::cast_slice_mut::<u32, u8>(pixels.as_mut_slice()),
            width,
            pitch: width * BYTES_PER_PIXEL,
            height,
            format: NATIVE_XRGB,
        };
        let size = ImageSize { width, height };
        match self.decompressor.decompress(jpeg, output) {
            Ok(()) => Ok(Decoded {
                size,
                warning: None,
            }),
            Err(e) => {
                let message = turbojpeg_message(e);
                if is_libjpeg_warning(&message) {
                    Ok(Decoded {
                        size,
                        warning: Some(message),
                    })
                } else {
                    Err(DecodeError::Corrupt(message))
                }
            }
        }
    }

    /// Starts over with a fresh libjpeg-turbo instance. libjpeg-turbo 3.1's
    /// `tj3DecompressHeader` returns on an error without aborting the decompressor, which stays
    /// mid-header: every later frame then fails too (seen here as "Bogus DQT index" on good
    /// JPEGs after one truncated one). A tables-only datastream, which garbage can resemble,
    /// would also leave its tables behind for later frames. Errors are rare, and a new
    /// instance costs a few kilobytes, so any error gets one. If even that fails, the old
    /// instance is kept and the next frame tries again.
    fn reset(&mut self) {
        match Decompressor::new() {
            Ok(fresh) => self.decompressor = fresh,
            Err(e) => log::warn!("cannot reset the JPEG decoder: {e}"),
        }
    }
}

/// The library's own words, without the crate's "TurboJPEG error: " wrapper.
pub(crate) fn turbojpeg_message(error: turbojpeg::Error) -> String {
    match error {
        turbojpeg::Error::TurboJpegError(message) => message,
        other => other.to_string(),
    }
}

pub(crate) fn is_libjpeg_warning(message: &str) -> bool {
    LIBJPEG_WARNING_PREFIXES
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

/// Counters shared between the decoding loop and whoever prints the summary; atomics so that
/// the summary can be read from another thread while the loop runs.
#[derive(Debug, Default)]
pub struct DecodeStats {
    /// Capture-to-decoded latency of the frames decoded.
    pub latency: crate::latency::LatencyRecorder,
    /// Frames that produced a complete image (including those with a libjpeg warning).
    pub frames_decoded: AtomicU64,
    /// Frames that could not be decoded at all.
    pub decode_errors: AtomicU64,
    /// Decoded frames that were damaged but still complete (a subset of `frames_decoded`).
    pub decode_warnings: AtomicU64,
    /// Decoded frames that reached the screen; the difference to `frames_decoded` is frames
    /// superseded by a newer one before the display got to them.
    pub frames_drawn: AtomicU64,
}

/// A consistent-enough copy of [`DecodeStats`] for reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCounts {
    pub frames_decoded: u64,
    pub decode_errors: u64,
    pub decode_warnings: u64,
    pub frames_drawn: u64,
}

impl DecodeStats {
    pub fn snapshot(&self) -> DecodeCounts {
        DecodeCounts {
            frames_decoded: self.frames_decoded.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            decode_warnings: self.decode_warnings.load(Ordering::Relaxed),
            frames_drawn: self.frames_drawn.load(Ordering::Relaxed),
        }
    }

    /// Counts the outcome of one decode, so that the window and headless loops count alike.
    pub fn record(&self, outcome: &Result<Decoded, DecodeError>) {
        match outcome {
            Ok(decoded) => {
                self.frames_decoded.fetch_add(1, Ordering::Relaxed);
                if decoded.warning.is_some() {
                    self.decode_warnings.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn record_drawn(&self) {
        self.frames_drawn.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use turbojpeg::{Compressor, Subsamp};

    /// JPEG's lossy round trip moves flat colours by a few units; edges by more.
    const TOLERANCE: i32 = 12;

    fn encode_rgb(width: usize, height: usize, rgb: &[u8], subsamp: Subsamp) -> Vec<u8> {
        let mut compressor = Compressor::new().unwrap();
        compressor.set_quality(95).unwrap();
        compressor.set_subsamp(subsamp).unwrap();
        compressor
            .compress_to_vec(Image {
                pixels: rgb,
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            })
            .unwrap()
    }

    fn solid(width: usize, height: usize, colour: [u8; 3]) -> Vec<u8> {
        colour
            .iter()
            .copied()
            .cycle()
            .take(width * height * 3)
            .collect()
    }

    fn channels(pixel: u32) -> [i32; 4] {
        [
            (pixel >> 24) as i32 & 0xFF,
            (pixel >> 16) as i32 & 0xFF,
            (pixel >> 8) as i32 & 0xFF,
            pixel as i32 & 0xFF,
        ]
    }

    #[track_caller]
    fn assert_rgb_near(pixel: u32, expected: [u8; 3]) {
        let [_, r, g, b] = channels(pixel);
        let ok = [r, g, b]
            .iter()
            .zip(expected)
            .all(|(&got, want)| (got - i32::from(want)).abs() <= TOLERANCE);
        assert!(
            ok,
            "pixel {pixel:#010x} is not within {TOLERANCE} of {expected:?}"
        );
    }

    #[test]
    fn pure_red_lands_in_bits_16_to_23() {
        let jpeg = encode_rgb(32, 16, &solid(32, 16, [255, 0, 0]), Subsamp::Sub2x2);
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        let decoded = decoder.decode_into(&jpeg, &mut pixels).unwrap();
        assert_eq!(
            decoded.size,
            ImageSize {
                width: 32,
                height: 16
            }
        );
        assert_eq!(decoded.warning, None);
        assert_eq!(pixels.len(), 32 * 16);
        for &pixel in &pixels {
            assert_rgb_near(pixel, [255, 0, 0]);
            // What minifb reads as 0x00FF0000: red in 16..24, nothing in green or blue.
            let [_, r, g, b] = channels(pixel);
            assert!(r >= 255 - TOLERANCE && g <= TOLERANCE && b <= TOLERANCE);
        }
    }

    #[test]
    fn quadrants_keep_their_colours_and_positions() {
        // 64x64, four 32x32 quadrants: red, green / blue, grey. Chroma subsampling off so
        // that colour edges stay put; positions are checked well inside each quadrant.
        let (w, h) = (64, 64);
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]];
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let quadrant = (y / 32) * 2 + x / 32;
                rgb.extend_from_slice(&colours[quadrant]);
            }
        }
        let jpeg = encode_rgb(w, h, &rgb, Subsamp::None);
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        decoder.decode_into(&jpeg, &mut pixels).unwrap();
        for (quadrant, colour) in colours.iter().enumerate() {
            let (qx, qy) = ((quadrant % 2) * 32, (quadrant / 2) * 32);
            for (dx, dy) in [(8, 8), (16, 16), (23, 8), (8, 23)] {
                assert_rgb_near(pixels[(qy + dy) * w + qx + dx], *colour);
            }
        }
    }

    #[test]
    fn buffer_is_reused_and_follows_size_changes() {
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        let big = encode_rgb(64, 48, &solid(64, 48, [0, 0, 255]), Subsamp::Sub2x2);
        let small = encode_rgb(16, 8, &solid(16, 8, [0, 255, 0]), Subsamp::Sub2x2);

        decoder.decode_into(&big, &mut pixels).unwrap();
        let capacity = pixels.capacity();
        let address = pixels.as_ptr();
        decoder.decode_into(&big, &mut pixels).unwrap();
        assert_eq!(pixels.as_ptr(), address, "same size must not reallocate");

        let decoded = decoder.decode_into(&small, &mut pixels).unwrap();
        assert_eq!((decoded.size.width, decoded.size.height), (16, 8));
        assert_eq!(pixels.len(), 16 * 8);
        assert_eq!(
            pixels.capacity(),
            capacity,
            "shrinking keeps the allocation"
        );
        assert_rgb_near(pixels[0], [0, 255, 0]);

        decoder.decode_into(&big, &mut pixels).unwrap();
        assert_eq!(pixels.len(), 64 * 48);
        assert_rgb_near(pixels[64 * 48 - 1], [0, 0, 255]);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        for garbage in [
            &b""[..],
            &b"\xFF"[..],
            &b"\xFF\xD8"[..],
            &b"not a jpeg at all, just some text"[..],
            &[0u8; 4096][..],
        ] {
            let result = decoder.decode_into(garbage, &mut pixels);
            assert!(
                matches!(result, Err(DecodeError::Corrupt(_))),
                "{garbage:?} gave {result:?}"
            );
        }
        // The decoder stays usable after errors.
        let jpeg = encode_rgb(8, 8, &solid(8, 8, [255, 255, 255]), Subsamp::Sub2x2);
        decoder.decode_into(&jpeg, &mut pixels).unwrap();
        assert_rgb_near(pixels[0], [255, 255, 255]);
    }

    #[test]
    fn truncated_jpeg_never_panics_and_never_poisons_the_decoder() {
        let (w, h) = (64, 64);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let jpeg = encode_rgb(w, h, &rgb, Subsamp::Sub2x2);
        let mut decoder = JpegDecoder::new().unwrap();
        let mut reference = Vec::new();
        decoder.decode_into(&jpeg, &mut reference).unwrap();

        let mut pixels = Vec::new();
        let (mut warnings, mut errors) = (0, 0);
        for cut in (0..jpeg.len()).step_by(3) {
            match decoder.decode_into(&jpeg[..cut], &mut pixels) {
                Ok(decoded) => {
                    assert_eq!(pixels.len(), w * h);
                    // Only a complete file decodes without complaint.
                    assert!(decoded.warning.is_some(), "cut at {cut} decoded cleanly");
                    warnings += 1;
                }
                Err(DecodeError::Corrupt(_)) => errors += 1,
                Err(other) => panic!("cut at {cut}: unexpected {other:?}"),
            }
            // The next good frame must decode exactly as before, whatever the bad one did.
            let decoded = decoder.decode_into(&jpeg, &mut pixels);
            assert!(
                matches!(&decoded, Ok(d) if d.warning.is_none()),
                "good frame after cut at {cut}: {decoded:?}"
            );
            assert!(pixels == reference, "good frame after cut at {cut} differs");
        }
        // Cut inside the header: an error. Cut in the scan: libjpeg fills in the rest and warns.
        assert!(
            errors > 0 && warnings > 0,
            "errors {errors}, warnings {warnings}"
        );
    }

    #[test]
    fn oversized_header_is_refused_before_allocating() {
        // A real 16x16 JPEG whose SOF0 claims 60000x60000.
        let mut jpeg = encode_rgb(16, 16, &solid(16, 16, [9, 9, 9]), Subsamp::Sub2x2);
        let sof = jpeg
            .windows(2)
            .position(|marker| marker == [0xFF, 0xC0])
            .unwrap();
        // FF C0, length (2), precision (1), height (2), width (2).
        jpeg[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        let result = decoder.decode_into(&jpeg, &mut pixels);
        assert!(
            matches!(
                result,
                Err(DecodeError::BadSize {
                    width: 60000,
                    height: 60000
                })
            ),
            "{result:?}"
        );
        assert!(pixels.capacity() < 1024, "allocated for the bogus size");
    }

    #[test]
    fn stats_count_outcomes() {
        let stats = DecodeStats::default();
        let size = ImageSize {
            width: 1,
            height: 1,
        };
        stats.record(&Ok(Decoded {
            size,
            warning: None,
        }));
        stats.record(&Ok(Decoded {
            size,
            warning: Some("Premature end of JPEG file".into()),
        }));
        stats.record(&Err(DecodeError::Corrupt("x".into())));
        stats.record_drawn();
        assert_eq!(
            stats.snapshot(),
            DecodeCounts {
                frames_decoded: 2,
                decode_errors: 1,
                decode_warnings: 1,
                frames_drawn: 1,
            }
        );
    }
}
