//! `--source camera[:N]`: a real camera through nokhwa.
//!
//! nokhwa's `Camera` is not `Send` (its backends hold OS handles that some platforms tie to one
//! thread), so it lives on a capture thread of its own and hands over one driver buffer per
//! request. Opening also happens there, and the caller waits for its outcome. Negotiation
//! ([`choose_format`]) is a pure function over the modes the camera offers.

use std::thread;
use std::time::Duration;

use cam_proto::adapt::Scale;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};
use nokhwa::{Camera, NokhwaError};

use crate::encode::EncodeError;

use super::jpeg;
use super::mjpeg::{MjpegPipeline, Plan};
use super::raw::{RawEncoder, RawFormat};
use super::{FrameSource, SourceError, SourceFrame, SourceOptions};

/// Modes camstream can send, best first: MJPEG passes through untouched, the others are encoded
/// here (YUYV and NV12 without a detour through RGB).
pub const PREFERENCE: [FrameFormat; 4] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::RAWRGB,
];

/// Every format nokhwa knows: opening must not fail merely because the camera's first mode is
/// one camstream cannot use; [`choose_format`] picks the mode afterwards.
pub(crate) const ANY_FORMAT: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

/// A camera that is present opens well within this; more means a wedged driver.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Damaged frames (USB hiccups) are skipped, but not forever.
const MAX_DAMAGED_FRAMES: u32 = 30;

/// Picks the offered mode closest to the request. Modes camstream cannot send are never
/// chosen. "Closest" is the smallest mismatch, counted as how many times off a mode is:
///
/// - size: the worse of the two side ratios (offered/asked or asked/offered), squared, so a
///   mode with half the pixels counts as much as one with half the frame rate;
/// - frame rate: `fps` / offered when the mode is slower, nothing when it is faster (the
///   sender paces a fast camera down to `--fps`, but cannot speed up a slow one). With `fps`
///   0 (as fast as possible), the fastest usable mode's rate is the one asked for.
///
/// The two multiply. Equal mismatches go to [`PREFERENCE`] order (MJPEG at 30 fps beats YUYV
/// at exactly the 25 asked for: its frames pass through untouched), then to the lowest frame
/// rate that is enough (less USB bandwidth). So a webcam whose YUYV does 1280x720 at 10 fps
/// and MJPEG at 30 gets MJPEG, and a 2 fps still-picture mode is not chosen for its size alone.
pub fn choose_format(
    offered: &[CameraFormat],
    width: u32,
    height: u32,
    fps: u32,
) -> Option<CameraFormat> {
    let usable = || {
        offered.iter().filter_map(|format| {
            let rank = PREFERENCE.iter().position(|f| *f == format.format())?;
            Some((rank, *format))
        })
    };
    let wanted_rate = if fps == 0 {
        usable().map(|(_, format)| format.frame_rate()).max()?
    } else {
        fps
    };
    let side_ratio = |offered: u32, asked: u32| {
        let (offered, asked) = (f64::from(offered.max(1)), f64::from(asked.max(1)));
        (offered / asked).max(asked / offered)
    };
    usable()
        .map(|(rank, format)| {
            let size = side_ratio(format.width(), width).max(side_ratio(format.height(), height));
            let rate = format.frame_rate().max(1);
            let slowness = (f64::from(wanted_rate) / f64::from(rate)).max(1.0);
            let excess = rate.saturating_sub(wanted_rate);
            (size * size * slowness, rank, excess, format)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
        .map(|(.., format)| format)
}

/// Which of link adaptation's scales `asked` is, for a picture whose full size is `full`.
/// Sizes that are none of them (they should not happen) get the scale nearest in area.
pub fn scale_for(asked: (u32, u32), full: (u32, u32)) -> Scale {
    if let Some(scale) = Scale::ALL_DOWN
        .into_iter()
        .find(|scale| scale.apply(full.0, full.1) == asked)
    {
        return scale;
    }
    let area = |(w, h): (u32, u32)| f64::from(w) * f64::from(h);
    let ratio = area(asked) / area(full).max(1.0);
    Scale::ALL_DOWN
        .into_iter()
        .min_by(|a, b| {
            (a.area() - ratio)
                .abs()
                .total_cmp(&(b.area() - ratio).abs())
        })
        .unwrap_or(Scale::Full)
}

/// A live camera.
///
/// The capture thread only talks to the device: it copies each driver buffer into a `Vec` the
/// caller lends it (and gets back), so that steady streaming allocates nothing. What becomes of
/// the frame (passthrough, re-encoding, raw encoding, shrinking for link adaptation) happens
/// here, on the caller's thread, in a [`Processor`].
#[derive(Debug)]
pub struct CameraSource {
    index: u32,
    requests: Sender<Vec<u8>>,
    frames: Receiver<Result<Vec<u8>, SourceError>>,
    /// Lent to the capture thread with the next request.
    spare: Vec<u8>,
    /// "camera 0 'name' MJPEG 1280x720@30".
    mode_text: String,
    format: CameraFormat,
    processor: Processor,
}

impl CameraSource {
    /// Fails fast with [`SourceError::NoCamera`] when there is no camera `index`.
    pub fn open(index: u32, opts: &SourceOptions) -> Result<CameraSource, SourceError> {
        if !device_node_exists(index) {
            return Err(SourceError::NoCamera { index });
        }
        let (requests, request_rx) = bounded::<Vec<u8>>(1);
        let (frame_tx, frames) = bounded(1);
        let (opened_tx, opened) = bounded(1);
        let opts = *opts;
        thread::Builder::new()
            .name(format!("camera {index}"))
            .spawn(move || {
                let mut capture = match Capture::open(index, &opts) {
                    Ok(capture) => {
                        let _ = opened_tx.send(Ok((capture.describe(), capture.format)));
                        capture
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                // Ends when the CameraSource is dropped; the camera closes on this thread.
                for mut buffer in request_rx {
                    let result = capture.read_into(&mut buffer).map(|()| buffer);
                    if frame_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .map_err(|err| SourceError::CameraOpen {
                index,
                reason: format!("cannot start a capture thread: {err}"),
            })?;
        let (mode_text, format) = match opened.recv_timeout(OPEN_TIMEOUT) {
            Ok(result) => result?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(SourceError::CameraOpen {
                    index,
                    reason: format!("no answer within {} s", OPEN_TIMEOUT.as_secs()),
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(SourceError::CameraOpen {
                    index,
                    reason: "the capture thread died while opening it".to_owned(),
                })
            }
        };
        let processor = Processor::new(&format, opts)?;
        Ok(CameraSource {
            index,
            requests,
            frames,
            spare: Vec::new(),
            mode_text,
            format,
            processor,
        })
    }

    fn thread_gone(&self) -> SourceError {
        SourceError::CameraRead {
            index: self.index,
            reason: "the capture thread ended".to_owned(),
        }
    }

    /// The next driver buffer, copied.
    fn read_buffer(&mut self) -> Result<Vec<u8>, SourceError> {
        let lent = std::mem::take(&mut self.spare);
        self.requests.send(lent).map_err(|_| self.thread_gone())?;
        match self.frames.recv() {
            Ok(result) => result,
            Err(_) => Err(self.thread_gone()),
        }
    }
}

impl FrameSource for CameraSource {
    /// Blocks until the camera delivers the next frame. Damaged frames (USB hiccups) are
    /// skipped, up to [`MAX_DAMAGED_FRAMES`] in a row.
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        let mut damaged = 0;
        loop {
            let buffer = self.read_buffer()?;
            let result = self.processor.process(&buffer);
            self.spare = buffer;
            match result {
                Ok(frame) => return Ok(Some(frame)),
                Err(reason) => {
                    damaged += 1;
                    log::debug!("camera {}: skipping a damaged frame: {reason}", self.index);
                    if damaged >= MAX_DAMAGED_FRAMES {
                        return Err(SourceError::CameraRead {
                            index: self.index,
                            reason: format!("{damaged} damaged frames in a row (last: {reason})"),
                        });
                    }
                }
            }
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{}, {}", self.mode_text, self.processor.what_happens())
    }

    fn can_reencode(&self) -> bool {
        self.processor.can_reencode()
    }

    /// Link adaptation scales from [`size`](FrameSource::size), the camera's mode, so the
    /// size asked for here is that scaled by 1, 3/4 or 1/2.
    fn configure(&mut self, quality: u8, width: u32, height: u32) -> Result<(), SourceError> {
        let full = (self.format.width(), self.format.height());
        let passing_before = self.processor.passes_through();
        self.processor
            .configure(quality, scale_for((width, height), full))?;
        // The sender logs every adaptation step; this says only when passthrough starts or ends.
        if self.processor.passes_through() != passing_before {
            log::info!("camera {}: {}", self.index, self.processor.what_happens());
        }
        Ok(())
    }

    fn size(&self) -> Option<(u32, u32)> {
        Some((self.format.width(), self.format.height()))
    }
}

/// What becomes of the camera's frames: the MJPEG pipeline or the raw encoder.
#[derive(Debug)]
pub enum Processor {
    Mjpeg(MjpegPipeline),
    Raw(RawEncoder),
}

impl Processor {
    /// For frames of `format`. MJPEG follows `opts.passthrough`; the raw formats are encoded
    /// at `opts.quality`.
    pub fn new(format: &CameraFormat, opts: SourceOptions) -> Result<Processor, EncodeError> {
        let raw = |kind| RawEncoder::new(kind, format.width(), format.height(), opts.quality);
        Ok(match format.format() {
            FrameFormat::MJPEG => {
                Processor::Mjpeg(MjpegPipeline::new(opts.passthrough, opts.quality)?)
            }
            FrameFormat::YUYV => Processor::Raw(raw(RawFormat::Yuyv)?),
            FrameFormat::NV12 => Processor::Raw(raw(RawFormat::Nv12)?),
            // open() refuses the others; RGB is the last resort.
            _ => Processor::Raw(raw(RawFormat::Rgb)?),
        })
    }

    pub fn can_reencode(&self) -> bool {
        match self {
            Processor::Mjpeg(mjpeg) => mjpeg.can_reencode(),
            Processor::Raw(_) => true,
        }
    }

    /// True while the camera's own JPEG goes out.
    pub fn passes_through(&self) -> bool {
        matches!(self, Processor::Mjpeg(mjpeg) if mjpeg.plan() == Plan::PassThrough)
    }

    pub fn configure(&mut self, quality: u8, scale: Scale) -> Result<(), EncodeError> {
        match self {
            Processor::Mjpeg(mjpeg) => mjpeg.set_wanted(quality, scale),
            Processor::Raw(raw) => raw.configure(quality, scale),
        }
    }

    /// One driver buffer to one frame; `Err` is why the buffer was unusable.
    pub fn process(&mut self, buffer: &[u8]) -> Result<SourceFrame, String> {
        match self {
            Processor::Mjpeg(mjpeg) => mjpeg.process(buffer).map_err(|err| err.to_string()),
            Processor::Raw(raw) => raw.encode(buffer).map_err(|err| err.to_string()),
        }
    }

    /// For the log: what is done to the frames now.
    pub fn what_happens(&self) -> String {
        match self {
            Processor::Mjpeg(mjpeg) => match mjpeg.plan() {
                Plan::PassThrough => format!(
                    "sending the camera's JPEG as it is (--passthrough {})",
                    mjpeg.mode()
                ),
                Plan::Reencode { quality, scale } => format!(
                    "re-encoding the camera's JPEG at quality {quality}{} (--passthrough {})",
                    scale_text(scale),
                    mjpeg.mode()
                ),
            },
            Processor::Raw(raw) => format!(
                "encoding at quality {}{}",
                raw.quality(),
                scale_text(raw.scale())
            ),
        }
    }
}

fn scale_text(scale: Scale) -> &'static str {
    match scale {
        Scale::Full => "",
        Scale::ThreeQuarters => ", 3/4 size",
        Scale::Half => ", 1/2 size",
    }
}

/// Saves a round trip through nokhwa (and its less helpful error) when the node is missing.
#[cfg(target_os = "linux")]
fn device_node_exists(index: u32) -> bool {
    std::path::Path::new(&format!("/dev/video{index}")).exists()
}

#[cfg(not(target_os = "linux"))]
fn device_node_exists(_index: u32) -> bool {
    true
}

/// The camera side, living on the capture thread.
struct Capture {
    index: u32,
    name: String,
    camera: Camera,
    format: CameraFormat,
}

impl Capture {
    fn open(index: u32, opts: &SourceOptions) -> Result<Capture, SourceError> {
        let any = RequestedFormat::with_formats(RequestedFormatType::None, &ANY_FORMAT);
        let mut camera =
            Camera::new(CameraIndex::Index(index), any).map_err(|err| open_error(index, err))?;
        let offered = camera
            .compatible_camera_formats()
            .map_err(|err| open_error(index, err))?;
        let chosen =
            choose_format(&offered, opts.width, opts.height, opts.fps).ok_or_else(|| {
                SourceError::CameraFormat {
                    index,
                    offered: list_formats(&offered),
                }
            })?;
        if camera.camera_format() != chosen {
            let exact =
                RequestedFormat::with_formats(RequestedFormatType::Exact(chosen), &ANY_FORMAT);
            if let Err(err) = camera.set_camera_requset(exact) {
                // Drivers sometimes list modes they then refuse; stay with what is set.
                log::warn!(
                    "camera {index}: could not switch to {}: {err}",
                    mode(&chosen)
                );
                camera
                    .refresh_camera_format()
                    .map_err(|err| open_error(index, err))?;
            }
        }
        let format = camera.camera_format();
        if !PREFERENCE.contains(&format.format()) {
            return Err(SourceError::CameraFormat {
                index,
                offered: list_formats(&offered),
            });
        }
        camera.open_stream().map_err(|err| open_error(index, err))?;
        let name = camera.info().human_name();
        log::info!(
            "camera {index} '{name}': negotiated {} (asked for {}x{}@{}; it offers {} modes)",
            mode(&format),
            opts.width,
            opts.height,
            opts.fps,
            offered.len()
        );
        if (format.width(), format.height()) != (opts.width, opts.height) {
            log::info!(
                "camera {index} has no {}x{} mode; frames are sent at {}x{}",
                opts.width,
                opts.height,
                format.width(),
                format.height()
            );
        }
        if opts.fps > 0 && format.frame_rate() < opts.fps {
            log::warn!(
                "camera {index} delivers {}x{} at {} fps at most, below --fps {}; a smaller --size may be faster",
                format.width(),
                format.height(),
                format.frame_rate(),
                opts.fps
            );
        }
        Ok(Capture {
            index,
            name,
            camera,
            format,
        })
    }

    fn describe(&self) -> String {
        format!(
            "camera {} '{}' {}",
            self.index,
            self.name,
            mode(&self.format)
        )
    }

    /// Copies the next driver buffer into `buffer`. An MJPEG buffer is cut after the frame's
    /// end marker when there is one: the driver buffer is sized for the worst case and holds
    /// stale bytes after the frame.
    fn read_into(&mut self, buffer: &mut Vec<u8>) -> Result<(), SourceError> {
        let raw = self
            .camera
            .frame_raw()
            .map_err(|err| SourceError::CameraRead {
                index: self.index,
                reason: err.to_string(),
            })?;
        let len = match self.format.format() {
            FrameFormat::MJPEG => jpeg::scan(&raw)
                .ok()
                .and_then(|scan| scan.end)
                .unwrap_or(raw.len()),
            _ => raw.len(),
        };
        buffer.clear();
        buffer.extend_from_slice(&raw[..len]);
        Ok(())
    }
}

fn open_error(index: u32, err: NokhwaError) -> SourceError {
    match &err {
        NokhwaError::OpenDeviceError(_, reason) if looks_missing(reason) => {
            SourceError::NoCamera { index }
        }
        // nokhwa's words for "none of the camera's modes is one it can read".
        NokhwaError::GetPropertyError { property, .. } if property == "CameraFormat" => {
            SourceError::CameraFormat {
                index,
                offered: "nothing nokhwa can read".to_owned(),
            }
        }
        _ => SourceError::CameraOpen {
            index,
            reason: err.to_string(),
        },
    }
}

fn looks_missing(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    ["no such file", "no such device", "not found", "no device"]
        .iter()
        .any(|words| reason.contains(words))
}

/// "MJPEG 640x480@30", the form the log and `describe` use.
pub fn mode(format: &CameraFormat) -> String {
    let name = match format.format() {
        FrameFormat::RAWRGB => "RGB".to_owned(),
        FrameFormat::RAWBGR => "BGR".to_owned(),
        other => other.to_string(),
    };
    format!(
        "{name} {}x{}@{}",
        format.width(),
        format.height(),
        format.frame_rate()
    )
}

fn list_formats(offered: &[CameraFormat]) -> String {
    if offered.is_empty() {
        return "nothing".to_owned();
    }
    let mut modes: Vec<String> = offered.iter().map(mode).collect();
    modes.sort();
    modes.dedup();
    modes.join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use nokhwa::utils::Resolution;
    use turbojpeg::Subsamp;

    use super::*;
    use crate::source::dht::tests::camera_like_jpeg;
    use crate::source::mjpeg::Passthrough;

    fn mode_list(spec: &[(FrameFormat, u32, u32, &[u32])]) -> Vec<CameraFormat> {
        spec.iter()
            .flat_map(|&(format, width, height, rates)| {
                rates
                    .iter()
                    .map(move |&fps| CameraFormat::new(Resolution::new(width, height), format, fps))
            })
            .collect()
    }

    /// A Logitech C270 (`v4l2-ctl --list-formats-ext`): YUYV slows down above 640x480, MJPG
    /// keeps 30 fps. The fractional 7.5 fps intervals are left out: nokhwa reads only the
    /// denominator of a frame interval, so it would list 2/15 s as 15 fps.
    fn c270() -> Vec<CameraFormat> {
        use FrameFormat::{MJPEG, YUYV};
        mode_list(&[
            (YUYV, 640, 480, &[30, 25, 20, 15, 10, 5]),
            (YUYV, 160, 120, &[30, 25, 20, 15, 10, 5]),
            (YUYV, 320, 240, &[30, 25, 20, 15, 10, 5]),
            (YUYV, 800, 600, &[20, 15, 10, 5]),
            (YUYV, 1280, 720, &[10, 5]),
            (MJPEG, 640, 480, &[30, 25, 20, 15, 10, 5]),
            (MJPEG, 160, 120, &[30, 25, 20, 15, 10, 5]),
            (MJPEG, 320, 240, &[30, 25, 20, 15, 10, 5]),
            (MJPEG, 800, 600, &[30, 25, 20, 15, 10, 5]),
            (MJPEG, 1280, 720, &[30, 25, 20, 15, 10, 5]),
        ])
    }

    fn chosen(offered: &[CameraFormat], width: u32, height: u32, fps: u32) -> String {
        mode(&choose_format(offered, width, height, fps).expect("a mode"))
    }

    #[test]
    fn prefers_mjpeg_at_the_requested_mode() {
        assert_eq!(chosen(&c270(), 640, 480, 30), "MJPEG 640x480@30");
        assert_eq!(chosen(&c270(), 1280, 720, 30), "MJPEG 1280x720@30");
        assert_eq!(chosen(&c270(), 320, 240, 15), "MJPEG 320x240@15");
    }

    #[test]
    fn nearest_resolution_then_frame_rate() {
        // 1000x700 is nearer 800x600 than 1280x720.
        assert_eq!(chosen(&c270(), 1000, 700, 30), "MJPEG 800x600@30");
        assert_eq!(chosen(&c270(), 1100, 700, 30), "MJPEG 1280x720@30");
        assert_eq!(chosen(&c270(), 640, 480, 24), "MJPEG 640x480@25");
        assert_eq!(chosen(&c270(), 640, 480, 0), "MJPEG 640x480@30");
    }

    #[test]
    fn falls_back_to_raw_modes_in_order() {
        let yuyv_only: Vec<CameraFormat> = c270()
            .into_iter()
            .filter(|f| f.format() == FrameFormat::YUYV)
            .collect();
        assert_eq!(chosen(&yuyv_only, 1280, 720, 30), "YUYV 1280x720@10");

        // A Raspberry Pi camera through bcm2835-v4l2 offers many raw formats at one size.
        use FrameFormat::{GRAY, NV12, RAWBGR, RAWRGB};
        let pi = mode_list(&[
            (GRAY, 640, 480, &[30]),
            (RAWBGR, 640, 480, &[30]),
            (RAWRGB, 640, 480, &[30]),
            (NV12, 640, 480, &[30]),
        ]);
        assert_eq!(chosen(&pi, 640, 480, 30), "NV12 640x480@30");
        assert_eq!(chosen(&pi[..3], 640, 480, 30), "RGB 640x480@30");
        assert_eq!(
            choose_format(&pi[..2], 640, 480, 30),
            None,
            "GRAY and BGR are not used"
        );
        assert_eq!(choose_format(&[], 640, 480, 30), None);
    }

    #[test]
    fn enough_frame_rate_then_format_then_the_least_excess() {
        // 12 fps: 15 is enough, 10 is not.
        assert_eq!(chosen(&c270(), 640, 480, 12), "MJPEG 640x480@15");
        // No mode reaches 40 fps: the fastest.
        assert_eq!(chosen(&c270(), 640, 480, 40), "MJPEG 640x480@30");
        // MJPEG at 30 beats YUYV at exactly 25: the sender paces it down and passes it through.
        use FrameFormat::{MJPEG, YUYV};
        let offered = mode_list(&[(YUYV, 640, 480, &[25]), (MJPEG, 640, 480, &[30, 15])]);
        assert_eq!(chosen(&offered, 640, 480, 25), "MJPEG 640x480@30");
        // But not when MJPEG falls short of the rate.
        let offered = mode_list(&[(YUYV, 640, 480, &[30]), (MJPEG, 640, 480, &[15])]);
        assert_eq!(chosen(&offered, 640, 480, 30), "YUYV 640x480@30");
        // Size and rate weigh alike: half the pixels counts as much as half the frame rate.
        let offered = mode_list(&[(YUYV, 1280, 720, &[5]), (MJPEG, 640, 360, &[30])]);
        assert_eq!(chosen(&offered, 1280, 720, 30), "MJPEG 640x360@30");
        let offered = mode_list(&[(YUYV, 1280, 720, &[15]), (MJPEG, 640, 360, &[30])]);
        assert_eq!(chosen(&offered, 1280, 720, 30), "YUYV 1280x720@15");
    }

    #[test]
    fn adaptation_sizes_map_to_scales() {
        let full = (1280, 720);
        for scale in Scale::ALL_DOWN {
            assert_eq!(scale_for(scale.apply(1280, 720), full), scale);
        }
        assert_eq!(scale_for((640, 360), full), Scale::Half);
        assert_eq!(scale_for((960, 540), full), Scale::ThreeQuarters);
        // Not one of adaptation's sizes: the nearest area.
        assert_eq!(scale_for((1000, 560), full), Scale::ThreeQuarters);
        assert_eq!(scale_for((2000, 2000), full), Scale::Full);
        assert_eq!(scale_for((1, 1), full), Scale::Half);
    }

    fn camera_format(format: FrameFormat, width: u32, height: u32) -> CameraFormat {
        CameraFormat::new(Resolution::new(width, height), format, 30)
    }

    fn options(passthrough: Passthrough) -> SourceOptions {
        SourceOptions {
            passthrough,
            ..SourceOptions::default()
        }
    }

    /// The camera path without a camera: a driver buffer (frame plus stale bytes) through the
    /// processor the camera source would use, while link adaptation changes its mind.
    #[test]
    fn mjpeg_camera_frames_follow_link_adaptation() {
        let frame = camera_like_jpeg(320, 240, Subsamp::Sub2x1);
        let mut buffer = frame.clone();
        buffer.resize(frame.len() + 4096, 0);
        let format = camera_format(FrameFormat::MJPEG, 320, 240);
        let mut processor = Processor::new(&format, options(Passthrough::Auto)).expect("ok");
        assert!(processor.can_reencode());
        let sent = processor.process(&buffer).expect("valid frame");
        assert!(sent.jpeg == frame, "passed through byte for byte");
        assert!(processor
            .what_happens()
            .starts_with("sending the camera's JPEG"));

        processor.configure(40, Scale::Half).expect("valid");
        let sent = processor.process(&buffer).expect("re-encodes");
        assert_eq!((sent.width, sent.height), (160, 120));
        assert_eq!(
            processor.what_happens(),
            "re-encoding the camera's JPEG at quality 40, 1/2 size (--passthrough auto)"
        );
        assert!(processor.process(&buffer[..frame.len() - 1]).is_err());
        assert!(processor.process(&[0; 100]).is_err());

        let mut always = Processor::new(&format, options(Passthrough::Always)).expect("ok");
        assert!(!always.can_reencode());
        always.configure(40, Scale::Half).expect("valid");
        assert!(always.process(&buffer).expect("valid").jpeg == frame);
    }

    #[test]
    fn raw_camera_frames_follow_link_adaptation() {
        let (width, height) = (64, 48);
        let yuyv = [120u8, 90, 120, 160].repeat(width * height / 2);
        let format = camera_format(FrameFormat::YUYV, width as u32, height as u32);
        let mut processor = Processor::new(&format, options(Passthrough::Auto)).expect("ok");
        assert!(processor.can_reencode());
        assert_eq!(processor.what_happens(), "encoding at quality 80");
        let sent = processor.process(&yuyv).expect("encodes");
        assert_eq!((sent.width, sent.height), (64, 48));
        processor
            .configure(50, Scale::ThreeQuarters)
            .expect("valid");
        assert_eq!(processor.what_happens(), "encoding at quality 50, 3/4 size");
        let sent = processor.process(&yuyv).expect("encodes");
        assert_eq!((sent.width, sent.height), (48, 36));
        assert!(processor.process(&yuyv[..100]).is_err(), "short buffer");
    }

    #[test]
    fn missing_device_errors_mean_no_camera() {
        let err = open_error(
            3,
            NokhwaError::OpenDeviceError(
                "3".to_owned(),
                "V4L2 Error: No such file or directory (os error 2)".to_owned(),
            ),
        );
        assert!(matches!(err, SourceError::NoCamera { index: 3 }), "{err:?}");
        let err = open_error(
            0,
            NokhwaError::OpenDeviceError(
                "0".to_owned(),
                "V4L2 Error: Permission denied (os error 13)".to_owned(),
            ),
        );
        assert!(
            matches!(err, SourceError::CameraOpen { index: 0, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("Permission denied"), "{err}");
    }

    /// Skips the device-node check, so nokhwa's own error for a missing camera is what maps.
    #[cfg(target_os = "linux")]
    #[test]
    fn nokhwa_missing_camera_maps_to_no_camera() {
        match Capture::open(63, &SourceOptions::default()) {
            Err(SourceError::NoCamera { index: 63 }) => {}
            Err(other) => panic!("expected NoCamera, got {other:?}"),
            Ok(capture) => panic!("camera 63 opened: {}", capture.describe()),
        }
    }

    /// This machine has no camera; on one that has, only the far-off index is tried.
    #[test]
    fn missing_camera_fails_fast_and_suggests_the_pattern() {
        let mut indices = vec![63];
        if !std::path::Path::new("/dev/video0").exists() {
            indices.push(0);
        }
        for index in indices {
            let started = Instant::now();
            let result = CameraSource::open(index, &SourceOptions::default());
            let elapsed = started.elapsed();
            match result {
                Err(err @ SourceError::NoCamera { .. }) => {
                    assert!(err.to_string().contains("--source pattern"), "{err}");
                }
                Err(other) => panic!("camera {index}: expected NoCamera, got {other}"),
                Ok(source) => panic!("camera {index} opened: {}", source.describe()),
            }
            assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        }
    }
}
