//! `cam-client --list-cameras`: each camera with the formats, sizes and frame rates it offers.
//!
//! The list is for people, so it goes to stderr (stdout carries JSON lines only). Gathering
//! ([`query_cameras`]) and writing ([`render`]) are separate so the layout is tested on
//! format lists taken from real cameras.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use nokhwa::utils::{ApiBackend, CameraFormat, FrameFormat, RequestedFormat, RequestedFormatType};
use nokhwa::{Camera, NokhwaError};

use super::camera::{ANY_FORMAT, PREFERENCE};

/// One camera as the system reports it.
#[derive(Debug, Clone)]
pub struct CameraListing {
    /// What `--source camera:N` takes.
    pub index: u32,
    pub name: String,
    /// Where it is, e.g. "Video4Linux Device @ /dev/video0".
    pub device: String,
    /// Every mode it offers, or why they could not be read (busy, not a capture node, …).
    pub formats: Result<Vec<CameraFormat>, String>,
}

/// Every camera the native backend finds, in index order. Each is opened briefly to read
/// its modes.
pub fn query_cameras() -> Result<Vec<CameraListing>, String> {
    let found = nokhwa::query(ApiBackend::Auto).map_err(|err| err.to_string())?;
    let mut listings: Vec<CameraListing> = found
        .into_iter()
        .filter_map(|info| {
            let index = info.index().as_index().ok()?;
            let any = RequestedFormat::with_formats(RequestedFormatType::None, &ANY_FORMAT);
            let formats = Camera::new(info.index().clone(), any)
                .and_then(|mut camera| camera.compatible_camera_formats())
                .map_err(|err| why_no_formats(&err));
            Some(CameraListing {
                index,
                name: info.human_name(),
                device: info.description().to_owned(),
                formats,
            })
        })
        .collect();
    listings.sort_by_key(|listing| listing.index);
    Ok(listings)
}

fn why_no_formats(err: &NokhwaError) -> String {
    match err {
        // nokhwa's words for "none of its modes is one I can read".
        NokhwaError::GetPropertyError { property, .. } if property == "CameraFormat" => {
            "no video format camstream knows (on Linux often the metadata node that comes \
             with a camera)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// V4L2's four-character code and description for a format, as `v4l2-ctl` shows them.
pub fn fourcc(format: FrameFormat) -> (&'static str, &'static str) {
    match format {
        FrameFormat::MJPEG => ("MJPG", "Motion-JPEG"),
        FrameFormat::YUYV => ("YUYV", "YUYV 4:2:2"),
        FrameFormat::NV12 => ("NV12", "Y/UV 4:2:0"),
        FrameFormat::GRAY => ("GREY", "8-bit greyscale"),
        FrameFormat::RAWRGB => ("RGB3", "24-bit RGB"),
        FrameFormat::RAWBGR => ("BGR3", "24-bit BGR"),
    }
}

fn what_camstream_does(format: FrameFormat) -> &'static str {
    match format {
        FrameFormat::MJPEG => "sent as the camera makes it, see --passthrough",
        format if PREFERENCE.contains(&format) => "encoded to JPEG here",
        _ => "not used by camstream",
    }
}

/// The list as people read it: one block per camera, one line per size with its frame rates.
pub fn render(listings: &[CameraListing]) -> String {
    if listings.is_empty() {
        return "no cameras found\n".to_owned();
    }
    let mut out = String::new();
    for listing in listings {
        let _ = writeln!(
            out,
            "camera {}: {} ({})",
            listing.index, listing.name, listing.device
        );
        match &listing.formats {
            Err(reason) => {
                let _ = writeln!(out, "  cannot read its formats: {reason}");
            }
            Ok(formats) if formats.is_empty() => {
                let _ = writeln!(out, "  offers no video format camstream knows");
            }
            Ok(formats) => render_formats(&mut out, formats),
        }
        let _ = writeln!(
            out,
            "  use: --source camera:{} --size WxH --fps N",
            listing.index
        );
    }
    out
}

/// Frame rates per size, largest size first: (negated area, width, height) -> rates.
type RatesBySize = BTreeMap<(u64, u32, u32), Vec<u32>>;

fn render_formats(out: &mut String, formats: &[CameraFormat]) {
    // Usable formats in preference order, then the others.
    let order = |format: FrameFormat| {
        PREFERENCE
            .iter()
            .position(|f| *f == format)
            .unwrap_or(PREFERENCE.len())
    };
    let mut by_format: BTreeMap<(usize, FrameFormat), RatesBySize> = BTreeMap::new();
    for mode in formats {
        let sizes = by_format
            .entry((order(mode.format()), mode.format()))
            .or_default();
        // Largest first: the key sorts by negated area.
        let area = u64::from(mode.width()) * u64::from(mode.height());
        sizes
            .entry((u64::MAX - area, mode.width(), mode.height()))
            .or_default()
            .push(mode.frame_rate());
    }
    for ((_, format), sizes) in by_format {
        let (code, description) = fourcc(format);
        let _ = writeln!(
            out,
            "  {code} ({description}): {}",
            what_camstream_does(format)
        );
        for ((_, width, height), mut rates) in sizes {
            rates.sort_unstable_by(|a, b| b.cmp(a));
            rates.dedup();
            let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
            let size = format!("{width}x{height}");
            let _ = writeln!(out, "    {size:>9}  {} fps", rates.join(" "));
        }
    }
}

/// `--list-cameras`: the list on stderr; exit 0 also when there is no camera.
pub fn run() -> anyhow::Result<ExitCode> {
    let listings =
        query_cameras().map_err(|reason| anyhow::anyhow!("cannot list cameras: {reason}"))?;
    eprint!("{}", render(&listings));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nokhwa::utils::Resolution;

    fn mode(format: FrameFormat, width: u32, height: u32, fps: u32) -> CameraFormat {
        CameraFormat::new(Resolution::new(width, height), format, fps)
    }

    #[test]
    fn unreadable_nodes_say_why() {
        let metadata_node = NokhwaError::GetPropertyError {
            property: "CameraFormat".to_owned(),
            error: "Failed to Fufill".to_owned(),
        };
        assert!(why_no_formats(&metadata_node).starts_with("no video format camstream knows"));
        let busy = NokhwaError::OpenDeviceError(
            "0".to_owned(),
            "V4L2 Error: Device or resource busy".to_owned(),
        );
        assert!(why_no_formats(&busy).contains("busy"));
    }

    #[test]
    fn no_cameras_says_so() {
        assert_eq!(render(&[]), "no cameras found\n");
    }

    #[test]
    fn one_block_per_camera() {
        let listings = [
            CameraListing {
                index: 0,
                name: "Integrated Camera".to_owned(),
                device: "Video4Linux Device @ /dev/video0".to_owned(),
                formats: Ok(vec![
                    mode(FrameFormat::YUYV, 640, 480, 30),
                    mode(FrameFormat::MJPEG, 640, 480, 30),
                    mode(FrameFormat::MJPEG, 1280, 720, 15),
                    mode(FrameFormat::MJPEG, 1280, 720, 30),
                    mode(FrameFormat::MJPEG, 1280, 720, 30),
                    mode(FrameFormat::GRAY, 320, 240, 30),
                ]),
            },
            CameraListing {
                index: 2,
                name: "Integrated Camera".to_owned(),
                device: "Video4Linux Device @ /dev/video2".to_owned(),
                formats: Err("Could not get device property CameraFormat".to_owned()),
            },
        ];
        let expected = "\
camera 0: Integrated Camera (Video4Linux Device @ /dev/video0)
  MJPG (Motion-JPEG): sent as the camera makes it, see --passthrough
     1280x720  30 15 fps
      640x480  30 fps
  YUYV (YUYV 4:2:2): encoded to JPEG here
      640x480  30 fps
  GREY (8-bit greyscale): not used by camstream
      320x240  30 fps
  use: --source camera:0 --size WxH --fps N
camera 2: Integrated Camera (Video4Linux Device @ /dev/video2)
  cannot read its formats: Could not get device property CameraFormat
  use: --source camera:2 --size WxH --fps N
";
        assert_eq!(render(&listings), expected);
    }
}
