//! `--source camera[:N]`: a real camera through nokhwa.
//!
//! nokhwa's `Camera` is not `Send` (its backends hold OS handles that some platforms tie to one
//! thread), so it lives on a capture thread of its own and hands over one frame per request.
//! Opening also happens there, and the caller waits for its outcome.

use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};
use nokhwa::{Camera, NokhwaError};

use crate::encode::JpegEncoder;

use super::jpeg;
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
const ANY_FORMAT: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

/// A camera that is present opens well within this; more means a wedged driver.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Damaged MJPEG frames (USB hiccups) are skipped, but not forever.
const MAX_DAMAGED_FRAMES: u32 = 30;

/// Picks the offered mode closest to the request: nearest resolution first, then nearest frame
/// rate (highest when `fps` is 0), then [`PREFERENCE`] order. Modes camstream cannot send are
/// never chosen.
///
/// Resolution wins over format because the user asked for a size; frame rate wins over format
/// because a webcam's YUYV at 1280x720 often runs at 10 fps while its MJPEG runs at 30.
pub fn choose_format(
    offered: &[CameraFormat],
    width: u32,
    height: u32,
    fps: u32,
) -> Option<CameraFormat> {
    offered
        .iter()
        .filter_map(|format| {
            let rank = PREFERENCE.iter().position(|f| *f == format.format())?;
            let dx = u64::from(format.width().abs_diff(width));
            let dy = u64::from(format.height().abs_diff(height));
            let fps_distance = if fps == 0 {
                u32::MAX - format.frame_rate()
            } else {
                format.frame_rate().abs_diff(fps)
            };
            Some(((dx * dx + dy * dy, fps_distance, rank), *format))
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, format)| format)
}

/// A live camera. MJPEG frames go out byte for byte as the camera made them (cut at their end
/// marker); many cameras omit the Huffman tables from them, and inserting the standard tables
/// for viewers that need them is a later step.
#[derive(Debug)]
pub struct CameraSource {
    index: u32,
    requests: Sender<()>,
    frames: Receiver<Result<SourceFrame, SourceError>>,
    description: String,
}

impl CameraSource {
    /// Fails fast with [`SourceError::NoCamera`] when there is no camera `index`.
    pub fn open(index: u32, opts: &SourceOptions) -> Result<CameraSource, SourceError> {
        if !device_node_exists(index) {
            return Err(SourceError::NoCamera { index });
        }
        let (requests, request_rx) = bounded::<()>(1);
        let (frame_tx, frames) = bounded(1);
        let (opened_tx, opened) = bounded(1);
        let opts = *opts;
        thread::Builder::new()
            .name(format!("camera {index}"))
            .spawn(move || {
                let mut capture = match Capture::open(index, &opts) {
                    Ok(capture) => {
                        let _ = opened_tx.send(Ok(capture.describe()));
                        capture
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                // Ends when the CameraSource is dropped; the camera closes on this thread.
                for () in request_rx {
                    if frame_tx.send(capture.next()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|err| SourceError::CameraOpen {
                index,
                reason: format!("cannot start a capture thread: {err}"),
            })?;
        let description = match opened.recv_timeout(OPEN_TIMEOUT) {
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
        Ok(CameraSource {
            index,
            requests,
            frames,
            description,
        })
    }

    fn thread_gone(&self) -> SourceError {
        SourceError::CameraRead {
            index: self.index,
            reason: "the capture thread ended".to_owned(),
        }
    }
}

impl FrameSource for CameraSource {
    /// Blocks until the camera delivers the next frame.
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        self.requests.send(()).map_err(|_| self.thread_gone())?;
        match self.frames.recv() {
            Ok(frame) => frame.map(Some),
            Err(_) => Err(self.thread_gone()),
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.description.clone()
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
    encoder: JpegEncoder,
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
            "camera {index} '{name}': negotiated {} (asked for {}x{}@{})",
            mode(&format),
            opts.width,
            opts.height,
            opts.fps
        );
        Ok(Capture {
            index,
            name,
            camera,
            format,
            encoder: JpegEncoder::new(opts.quality)?,
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

    fn next(&mut self) -> Result<SourceFrame, SourceError> {
        let index = self.index;
        let read_error = |reason: String| SourceError::CameraRead { index, reason };
        let width = self.format.width();
        let height = self.format.height();
        let (Ok(width16), Ok(height16)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(read_error(format!(
                "{width}x{height} is too large for JPEG"
            )));
        };
        let (w, h) = (width as usize, height as usize);
        let mut damaged = 0;
        loop {
            let raw = self
                .camera
                .frame_raw()
                .map_err(|err| read_error(err.to_string()))?;
            let jpeg = match self.format.format() {
                FrameFormat::MJPEG => match mjpeg_frame(&raw) {
                    Ok(frame) => return Ok(frame),
                    Err(reason) => {
                        damaged += 1;
                        log::debug!("camera {index}: skipping damaged MJPEG frame: {reason}");
                        if damaged >= MAX_DAMAGED_FRAMES {
                            return Err(read_error(format!(
                                "{damaged} damaged MJPEG frames in a row (last: {reason})"
                            )));
                        }
                        continue;
                    }
                },
                FrameFormat::YUYV => self.encoder.encode_yuyv(&raw, w, h)?,
                FrameFormat::NV12 => self.encoder.encode_nv12(&raw, w, h)?,
                FrameFormat::RAWRGB => self.encoder.encode_rgb(&raw, w, h)?,
                other => return Err(read_error(format!("unexpected {other} frame"))),
            };
            return Ok(SourceFrame {
                jpeg,
                width: width16,
                height: height16,
            });
        }
    }
}

/// nokhwa hands over the whole driver buffer, which holds stale bytes after the frame.
fn mjpeg_frame(raw: &[u8]) -> Result<SourceFrame, String> {
    let scan = jpeg::scan(raw).map_err(|err| err.to_string())?;
    let end = scan.end.ok_or("no end marker")?;
    Ok(SourceFrame {
        jpeg: raw[..end].to_vec(),
        width: scan.width,
        height: scan.height,
    })
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
fn mode(format: &CameraFormat) -> String {
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

    use super::*;

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
    /// keeps 30 fps. nokhwa drops the fractional 7.5 fps intervals.
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
    fn mjpeg_frames_are_cut_at_their_end_marker() {
        let rgb = vec![77u8; 32 * 16 * 3];
        let jpeg = JpegEncoder::new(80)
            .expect("encoder")
            .encode_rgb(&rgb, 32, 16)
            .expect("encodes");
        let mut buffer = jpeg.clone();
        buffer.resize(jpeg.len() + 4096, 0);
        let frame = mjpeg_frame(&buffer).expect("valid frame");
        assert_eq!(frame.jpeg, jpeg);
        assert_eq!((frame.width, frame.height), (32, 16));
        assert!(mjpeg_frame(&jpeg[..jpeg.len() - 2]).is_err(), "no EOI");
        assert!(mjpeg_frame(&[0u8; 64]).is_err(), "blank buffer");
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
