//! MJPEG cameras: send the camera's JPEG as it is, or decode and re-encode it.
//!
//! [`plan`] is the passthrough policy as a pure function ([`plan_with_hold`] adds `auto`'s
//! hold against flipping back and forth); [`MjpegPipeline`] applies it
//! to camera buffers: cut the frame at its end marker, insert the standard Huffman tables when
//! the camera left them out, then pass the bytes through or re-encode them. Re-encoding decodes
//! to YUV planes (shrunk by libjpeg-turbo's DCT scaling for 3/4 and 1/2) and compresses those
//! planes again, so no colour conversion happens on the way.

use std::fmt;

use cam_proto::adapt::Scale;
use thiserror::Error;
use turbojpeg::{
    Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp, YuvImage,
};

use crate::encode::EncodeError;

use super::dht;
use super::jpeg::{self, JpegError};
use super::SourceFrame;

/// `--passthrough`: what to do with JPEG frames from an MJPEG camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Passthrough {
    /// Send the camera's JPEG until link adaptation needs a lower quality or a smaller
    /// picture, then re-encode (back to the camera's JPEG after 300 frames in a row at full
    /// quality and size).
    #[default]
    Auto,
    /// Always send the camera's JPEG; link adaptation can then only lower the frame rate.
    Always,
    /// Always decode and re-encode at --quality.
    Never,
}

impl fmt::Display for Passthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Passthrough::Auto => "auto",
            Passthrough::Always => "always",
            Passthrough::Never => "never",
        })
    }
}

/// What link adaptation currently asks of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub quality: u8,
    pub scale: Scale,
}

/// What happens to the next camera frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The camera's bytes go out (with the standard Huffman tables added if it left them out).
    PassThrough,
    /// Decode, shrink by `scale`, encode at `quality`.
    Reencode { quality: u8, scale: Scale },
}

/// The passthrough policy. `user_quality` is `--quality`, the most link adaptation ever asks
/// for: while it asks for that at full size, `auto` has no reason to touch the camera's JPEG.
pub fn plan(mode: Passthrough, user_quality: u8, wanted: Wanted) -> Plan {
    let reencode = Plan::Reencode {
        quality: wanted.quality,
        scale: wanted.scale,
    };
    match mode {
        Passthrough::Always => Plan::PassThrough,
        Passthrough::Never => reencode,
        Passthrough::Auto if wanted.quality >= user_quality && wanted.scale == Scale::Full => {
            Plan::PassThrough
        }
        Passthrough::Auto => reencode,
    }
}

/// Frames in a row that link adaptation must ask for full quality and size before `auto` goes
/// back from re-encoding to passing the camera's JPEG through: about 10 s at 30 fps.
///
/// A camera's JPEG is often much larger than camstream's own encoding at `--quality` (webcams
/// encode at high quality), so the link that carries the re-encoded frames may not carry the
/// camera's. Switching back at once would flip between the two each time adaptation steps up;
/// this way it is tried again at most every few seconds.
pub const RETURN_AFTER_FRAMES: u32 = 300;

/// [`plan`] with `auto`'s hold: once re-encoding, it keeps re-encoding (at full quality and
/// size) until adaptation has asked for those for [`RETURN_AFTER_FRAMES`] frames in a row.
/// `frames_at_full` counts them; `None` when `auto` is passing through.
pub fn plan_with_hold(
    mode: Passthrough,
    user_quality: u8,
    wanted: Wanted,
    frames_at_full: Option<u32>,
) -> Plan {
    match (plan(mode, user_quality, wanted), frames_at_full) {
        (Plan::PassThrough, Some(frames))
            if mode == Passthrough::Auto && frames < RETURN_AFTER_FRAMES =>
        {
            Plan::Reencode {
                quality: wanted.quality,
                scale: wanted.scale,
            }
        }
        (plan, _) => plan,
    }
}

/// libjpeg-turbo's DCT scaling factor for a link-adaptation scale (it supports n/8).
pub fn scaling_factor(scale: Scale) -> ScalingFactor {
    match scale {
        Scale::Full => ScalingFactor::ONE,
        Scale::ThreeQuarters => ScalingFactor::new(3, 4),
        Scale::Half => ScalingFactor::ONE_HALF,
    }
}

/// No webcam mode is larger; a frame header claiming more is damage, and re-encoding it would
/// allocate gigabytes.
const MAX_SIDE: u16 = 8192;

/// Why a camera buffer gave no frame. The camera source skips such frames (USB hiccups happen)
/// and gives up only when they keep coming.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("not a usable JPEG: {0}")]
    Damaged(#[from] JpegError),
    #[error("the frame is cut short (no end marker)")]
    NoEnd,
    #[error("the frame header says {width}x{height}, larger than any camera mode")]
    TooLarge { width: u16, height: u16 },
    #[error("cannot re-encode it: {0}")]
    Reencode(#[from] turbojpeg::Error),
}

/// Turns camera buffers into frames to send, following [`plan`].
pub struct MjpegPipeline {
    mode: Passthrough,
    user_quality: u8,
    wanted: Wanted,
    decompressor: Decompressor,
    compressor: Compressor,
    /// The quality last given to `compressor`, so it is set only on change.
    compressor_quality: Option<u8>,
    /// Decoded frame: packed YUV planes, or RGB for JPEGs without a planar form.
    pixels: Vec<u8>,
    /// Worst-case sized so libjpeg-turbo never reallocates.
    scratch: Vec<u8>,
    /// `auto` only: frames sent while re-encoding with nothing asked but full quality and
    /// size; `None` while passing through.
    frames_at_full: Option<u32>,
}

impl fmt::Debug for MjpegPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MjpegPipeline")
            .field("mode", &self.mode)
            .field("user_quality", &self.user_quality)
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl MjpegPipeline {
    /// `quality` is `--quality`: what `never` encodes at, and the ceiling of adaptation.
    pub fn new(mode: Passthrough, quality: u8) -> Result<MjpegPipeline, EncodeError> {
        check_quality(quality)?;
        Ok(MjpegPipeline {
            mode,
            user_quality: quality,
            wanted: Wanted {
                quality,
                scale: Scale::Full,
            },
            decompressor: Decompressor::new()?,
            compressor: Compressor::new()?,
            compressor_quality: None,
            pixels: Vec::new(),
            scratch: Vec::new(),
            frames_at_full: None,
        })
    }

    pub fn mode(&self) -> Passthrough {
        self.mode
    }

    /// True when link adaptation can change quality and size; with `always` only the rate.
    pub fn can_reencode(&self) -> bool {
        self.mode != Passthrough::Always
    }

    /// Link adaptation's choice, from the next frame on.
    pub fn set_wanted(&mut self, quality: u8, scale: Scale) -> Result<(), EncodeError> {
        check_quality(quality)?;
        self.wanted = Wanted { quality, scale };
        Ok(())
    }

    /// What the next frame gets.
    pub fn plan(&self) -> Plan {
        plan_with_hold(
            self.mode,
            self.user_quality,
            self.wanted,
            self.frames_at_full,
        )
    }

    /// Moves `auto`'s hold on by the frame about to be made with `planned`.
    fn note_frame(&mut self, planned: Plan) {
        if self.mode != Passthrough::Auto {
            return;
        }
        let policy = plan(self.mode, self.user_quality, self.wanted);
        self.frames_at_full = match (planned, policy) {
            (Plan::PassThrough, _) => None,
            (Plan::Reencode { .. }, Plan::PassThrough) => {
                let frames = self.frames_at_full.unwrap_or(0) + 1;
                if frames >= RETURN_AFTER_FRAMES {
                    log::info!(
                        "the link carried full quality for {frames} frames: sending the camera's JPEG as it is again"
                    );
                }
                Some(frames)
            }
            (Plan::Reencode { .. }, Plan::Reencode { .. }) => Some(0),
        };
    }

    /// One camera buffer (the frame, maybe followed by stale bytes) to one frame to send.
    pub fn process(&mut self, buffer: &[u8]) -> Result<SourceFrame, FrameError> {
        let scan = jpeg::scan(buffer)?;
        let end = scan.end.ok_or(FrameError::NoEnd)?;
        if scan.width > MAX_SIDE || scan.height > MAX_SIDE {
            return Err(FrameError::TooLarge {
                width: scan.width,
                height: scan.height,
            });
        }
        let frame = &buffer[..end];
        let complete = dht::with_standard_tables_scanned(frame, &scan);
        let planned = self.plan();
        self.note_frame(planned);
        match planned {
            Plan::PassThrough => Ok(SourceFrame {
                jpeg: complete.into_owned(),
                width: scan.width,
                height: scan.height,
            }),
            Plan::Reencode { quality, scale } => self.reencode(&complete, quality, scale),
        }
    }

    fn reencode(
        &mut self,
        jpeg: &[u8],
        quality: u8,
        scale: Scale,
    ) -> Result<SourceFrame, FrameError> {
        let header = self.decompressor.read_header(jpeg)?;
        let factor = scaling_factor(scale);
        if self.decompressor.scaling_factor() != factor {
            self.decompressor.set_scaling_factor(factor)?;
        }
        let (width, height) = (factor.scale(header.width), factor.scale(header.height));
        if self.compressor_quality != Some(quality) {
            self.compressor.set_quality(i32::from(quality))?;
            self.compressor_quality = Some(quality);
        }
        let planar = !matches!(header.subsamp, Subsamp::Unknown)
            && matches!(header.colorspace, Colorspace::YCbCr | Colorspace::Gray);
        let len = if planar {
            // One byte alignment: planes packed back to back, no row padding.
            let yuv_len = turbojpeg::yuv_pixels_len(width, 1, height, header.subsamp)?;
            self.pixels.resize(yuv_len, 0);
            let mut decoded = YuvImage {
                pixels: &mut self.pixels[..yuv_len],
                width,
                align: 1,
                height,
                subsamp: header.subsamp,
            };
            self.decompressor
                .decompress_to_yuv(jpeg, decoded.as_deref_mut())?;
            reserve(&mut self.scratch, width, height, header.subsamp)?;
            self.compressor
                .compress_yuv_to_slice(decoded.as_deref(), &mut self.scratch)?
        } else {
            let rgb_len = width * height * 3;
            self.pixels.resize(rgb_len, 0);
            let mut decoded = Image {
                pixels: &mut self.pixels[..rgb_len],
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            };
            self.decompressor.decompress(jpeg, decoded.as_deref_mut())?;
            self.compressor.set_subsamp(Subsamp::Sub2x2)?;
            reserve(&mut self.scratch, width, height, Subsamp::Sub2x2)?;
            self.compressor
                .compress_to_slice(decoded.as_deref(), &mut self.scratch)?
        };
        Ok(SourceFrame {
            jpeg: self.scratch[..len].to_vec(),
            // At most MAX_SIDE, scaled down.
            width: width as u16,
            height: height as u16,
        })
    }
}

fn check_quality(quality: u8) -> Result<(), EncodeError> {
    if (1..=100).contains(&quality) {
        Ok(())
    } else {
        Err(EncodeError::BadQuality(quality))
    }
}

fn reserve(
    scratch: &mut Vec<u8>,
    width: usize,
    height: usize,
    subsamp: Subsamp,
) -> Result<(), turbojpeg::Error> {
    let worst = turbojpeg::compressed_buf_len(width, height, subsamp)?;
    if scratch.len() < worst {
        scratch.resize(worst, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dht::tests::{camera_like_jpeg, decode_rgb, strip_dht, textured_rgb};

    const AUTO: Passthrough = Passthrough::Auto;
    const ALWAYS: Passthrough = Passthrough::Always;
    const NEVER: Passthrough = Passthrough::Never;

    fn wanted(quality: u8, scale: Scale) -> Wanted {
        Wanted { quality, scale }
    }

    #[test]
    fn the_policy() {
        use Scale::{Full, Half, ThreeQuarters};
        let reencode = |quality, scale| Plan::Reencode { quality, scale };
        // (mode, --quality, what adaptation wants, plan)
        let cases = [
            (AUTO, 80, wanted(80, Full), Plan::PassThrough),
            (AUTO, 80, wanted(75, Full), reencode(75, Full)),
            (
                AUTO,
                80,
                wanted(80, ThreeQuarters),
                reencode(80, ThreeQuarters),
            ),
            (AUTO, 80, wanted(30, Half), reencode(30, Half)),
            (ALWAYS, 80, wanted(80, Full), Plan::PassThrough),
            (ALWAYS, 80, wanted(30, Half), Plan::PassThrough),
            (NEVER, 80, wanted(80, Full), reencode(80, Full)),
            (
                NEVER,
                80,
                wanted(40, ThreeQuarters),
                reencode(40, ThreeQuarters),
            ),
        ];
        for (mode, user_quality, asked, expected) in cases {
            assert_eq!(
                plan(mode, user_quality, asked),
                expected,
                "{mode} q{user_quality} {asked:?}"
            );
        }
    }

    /// A camera buffer: the frame, then what an earlier, longer frame left in the buffer.
    fn camera_buffer(frame: &[u8]) -> Vec<u8> {
        let mut buffer = frame.to_vec();
        buffer.extend_from_slice(&[0x5A; 300]);
        buffer.extend_from_slice(&[0xFF, 0xD9, 0, 0, 0]);
        buffer
    }

    fn pipeline(mode: Passthrough) -> MjpegPipeline {
        MjpegPipeline::new(mode, 80).expect("pipeline")
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let total: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        total as f64 / a.len() as f64
    }

    #[test]
    fn passthrough_sends_the_camera_bytes() {
        let frame = camera_like_jpeg(320, 240, Subsamp::Sub2x1);
        for mode in [AUTO, ALWAYS] {
            let sent = pipeline(mode)
                .process(&camera_buffer(&frame))
                .expect("valid frame");
            assert!(sent.jpeg == frame, "{mode}: not byte for byte");
            assert_eq!((sent.width, sent.height), (320, 240));
        }
    }

    #[test]
    fn passthrough_adds_missing_huffman_tables() {
        let original = camera_like_jpeg(320, 240, Subsamp::Sub2x1);
        let stripped = strip_dht(&original);
        let sent = pipeline(AUTO)
            .process(&camera_buffer(&stripped))
            .expect("valid frame");
        assert!(jpeg::scan(&sent.jpeg).expect("parses").has_dht);
        assert_eq!(sent.jpeg.len(), stripped.len() + 420);
        let (_, _, original_pixels) = decode_rgb(&original).expect("decodes");
        let (_, _, sent_pixels) = decode_rgb(&sent.jpeg).expect("decodes");
        assert!(sent_pixels == original_pixels);
    }

    #[test]
    fn auto_reencodes_when_adaptation_lowers_the_quality() {
        let frame = camera_like_jpeg(320, 240, Subsamp::Sub2x1);
        let buffer = camera_buffer(&frame);
        let mut mjpeg = pipeline(AUTO);
        assert!(mjpeg.can_reencode());
        mjpeg.set_wanted(30, Scale::Full).expect("valid");
        let low = mjpeg.process(&buffer).expect("re-encodes");
        assert_eq!((low.width, low.height), (320, 240));
        assert!(
            low.jpeg.len() * 2 < frame.len(),
            "{} vs {}",
            low.jpeg.len(),
            frame.len()
        );
        let (w, h, low_pixels) = decode_rgb(&low.jpeg).expect("decodes");
        assert_eq!((w, h), (320, 240));
        let (_, _, camera_pixels) = decode_rgb(&frame).expect("decodes");
        // The test picture is noisy, so quality 30 loses a lot; still, it is the same picture:
        // far closer to the camera's than the camera's picture is to itself mirrored.
        let error = mean_abs_diff(&low_pixels, &camera_pixels);
        let mirrored: Vec<u8> = camera_pixels
            .chunks_exact(3)
            .rev()
            .flatten()
            .copied()
            .collect();
        let unrelated = mean_abs_diff(&mirrored, &camera_pixels);
        assert!(error < unrelated / 2.0, "mean error {error} vs {unrelated}");

        // Back to full quality: re-encoded at 80 for a while, then the camera's bytes again.
        mjpeg.set_wanted(80, Scale::Full).expect("valid");
        for _ in 0..RETURN_AFTER_FRAMES {
            let sent = mjpeg.process(&buffer).expect("re-encodes");
            assert!(sent.jpeg != frame);
            assert_eq!((sent.width, sent.height), (320, 240));
        }
        assert!(mjpeg.process(&buffer).expect("valid").jpeg == frame);
        assert_eq!(mjpeg.plan(), Plan::PassThrough);
    }

    #[test]
    fn auto_holds_reencoding_until_the_link_stays_good() {
        let full = wanted(80, Scale::Full);
        let hold = |frames| plan_with_hold(AUTO, 80, full, frames);
        assert_eq!(hold(None), Plan::PassThrough);
        let reencode_full = Plan::Reencode {
            quality: 80,
            scale: Scale::Full,
        };
        assert_eq!(hold(Some(0)), reencode_full);
        assert_eq!(hold(Some(RETURN_AFTER_FRAMES - 1)), reencode_full);
        assert_eq!(hold(Some(RETURN_AFTER_FRAMES)), Plan::PassThrough);
        // The hold is auto's: the other modes ignore it.
        assert_eq!(plan_with_hold(ALWAYS, 80, full, Some(0)), Plan::PassThrough);
        // A step down in the middle starts the count again.
        let frame = camera_like_jpeg(32, 32, Subsamp::Sub2x1);
        let mut mjpeg = pipeline(AUTO);
        mjpeg.set_wanted(50, Scale::Full).expect("valid");
        mjpeg.process(&frame).expect("re-encodes");
        mjpeg.set_wanted(80, Scale::Full).expect("valid");
        for _ in 0..RETURN_AFTER_FRAMES / 2 {
            mjpeg.process(&frame).expect("re-encodes");
        }
        mjpeg.set_wanted(75, Scale::Full).expect("valid");
        mjpeg.process(&frame).expect("re-encodes");
        mjpeg.set_wanted(80, Scale::Full).expect("valid");
        for _ in 0..RETURN_AFTER_FRAMES - 1 {
            assert_ne!(mjpeg.plan(), Plan::PassThrough);
            mjpeg.process(&frame).expect("re-encodes");
        }
        assert_ne!(mjpeg.plan(), Plan::PassThrough);
        mjpeg.process(&frame).expect("re-encodes");
        assert_eq!(mjpeg.plan(), Plan::PassThrough);
    }

    #[test]
    fn auto_shrinks_with_decoder_scaling() {
        let (width, height) = (320, 240);
        let frame = camera_like_jpeg(width, height, Subsamp::Sub2x1);
        let reference = textured_rgb(width, height);
        let mut mjpeg = pipeline(AUTO);
        for (scale, size) in [
            (Scale::ThreeQuarters, (240, 180)),
            (Scale::Half, (160, 120)),
        ] {
            mjpeg.set_wanted(80, scale).expect("valid");
            let sent = mjpeg.process(&camera_buffer(&frame)).expect("re-encodes");
            assert_eq!((usize::from(sent.width), usize::from(sent.height)), size);
            let (w, h, pixels) = decode_rgb(&sent.jpeg).expect("decodes");
            assert_eq!((w, h), size, "{scale:?}");
            // Compare with a nearest-neighbour sample of the picture the camera saw: same
            // picture, only blurred by the scaling and JPEG.
            let sampled: Vec<u8> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x * width / w, y * height / h)))
                .flat_map(|(x, y)| {
                    let i = (y * width + x) * 3;
                    reference[i..i + 3].to_vec()
                })
                .collect();
            let error = mean_abs_diff(&pixels, &sampled);
            assert!(error < 40.0, "{scale:?}: mean error {error}");
        }
    }

    #[test]
    fn stripped_frames_reencode_too() {
        let stripped = strip_dht(&camera_like_jpeg(160, 120, Subsamp::Sub2x1));
        let mut mjpeg = pipeline(AUTO);
        mjpeg.set_wanted(50, Scale::Half).expect("valid");
        let sent = mjpeg
            .process(&camera_buffer(&stripped))
            .expect("re-encodes");
        assert_eq!((sent.width, sent.height), (80, 60));
        assert!(decode_rgb(&sent.jpeg).is_ok());
    }

    #[test]
    fn never_reencodes_at_the_user_quality() {
        let frame = camera_like_jpeg(160, 120, Subsamp::Sub2x2);
        let mut mjpeg = MjpegPipeline::new(NEVER, 40).expect("pipeline");
        let sent = mjpeg.process(&camera_buffer(&frame)).expect("re-encodes");
        assert!(sent.jpeg != frame);
        assert!(sent.jpeg.len() < frame.len());
        assert_eq!((sent.width, sent.height), (160, 120));
        assert!(decode_rgb(&sent.jpeg).is_ok());
    }

    #[test]
    fn always_never_reencodes() {
        let frame = camera_like_jpeg(160, 120, Subsamp::Sub2x1);
        let mut mjpeg = pipeline(ALWAYS);
        assert!(!mjpeg.can_reencode());
        mjpeg.set_wanted(30, Scale::Half).expect("valid");
        assert!(mjpeg.process(&camera_buffer(&frame)).expect("valid").jpeg == frame);
    }

    /// 4:4:4, 4:2:0 and greyscale cameras take the same planar path.
    #[test]
    fn other_subsamplings_reencode() {
        for subsamp in [Subsamp::None, Subsamp::Sub2x2, Subsamp::Gray] {
            let frame = camera_like_jpeg(64, 48, subsamp);
            let mut mjpeg = pipeline(NEVER);
            mjpeg.set_wanted(60, Scale::ThreeQuarters).expect("valid");
            let sent = mjpeg.process(&frame).expect("re-encodes");
            assert_eq!((sent.width, sent.height), (48, 36), "{subsamp:?}");
            assert!(decode_rgb(&sent.jpeg).is_ok(), "{subsamp:?}");
        }
    }

    #[test]
    fn damaged_buffers_are_errors() {
        let frame = camera_like_jpeg(64, 48, Subsamp::Sub2x1);
        let mut mjpeg = pipeline(NEVER);
        assert!(matches!(
            mjpeg.process(&[0u8; 512]),
            Err(FrameError::Damaged(_))
        ));
        assert!(matches!(
            mjpeg.process(&frame[..frame.len() - 2]),
            Err(FrameError::NoEnd)
        ));
        // Every cut and a damaged byte anywhere: errors or frames, never a panic.
        for len in (0..frame.len()).step_by(7) {
            let _ = mjpeg.process(&frame[..len]);
        }
        for i in (0..frame.len()).step_by(5) {
            let mut damaged = frame.clone();
            damaged[i] ^= 0x5A;
            let _ = mjpeg.process(&damaged);
        }
        assert!(mjpeg.set_wanted(0, Scale::Full).is_err());
        assert!(MjpegPipeline::new(AUTO, 101).is_err());
    }
}
