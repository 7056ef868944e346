//! Where frames come from: a camera, the built-in test card, or JPEG files, behind one trait so
//! the sender loop does not care which.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

use crate::encode::EncodeError;

pub mod camera;
pub mod camera_list;
pub mod dht;
pub mod files;
pub mod jpeg;
pub mod mjpeg;
pub mod pattern;
pub mod raw;
pub mod texture;
pub mod y4m;

/// One JPEG frame, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    pub jpeg: Vec<u8>,
    pub width: u16,
    pub height: u16,
}

/// A producer of JPEG frames.
///
/// Non-live sources return the next frame at once; pacing them to `--fps` is the caller's job.
pub trait FrameSource: Send {
    /// Next frame; Ok(None) = the source is exhausted (never happens for camera/pattern/dir: dirs cycle).
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError>;
    /// True when the source produces frames on its own clock (a camera): then the caller drops stale frames (newest wins).
    fn is_live(&self) -> bool;
    /// One line for the log, e.g. "test card 640x480 q80" or "camera 0 'Integrated Webcam' MJPEG 640x480@30".
    fn describe(&self) -> String;
    /// True when the source encodes its frames, so link adaptation may change the quality and
    /// picture size (`configure`); false for frames sent byte for byte.
    fn can_reencode(&self) -> bool {
        false
    }
    /// Applies the quality and picture size link adaptation chose, from the next frame on.
    fn configure(&mut self, _quality: u8, _width: u32, _height: u32) -> Result<(), SourceError> {
        Ok(())
    }
    /// The full picture size when the source decides it (a y4m file has its own), so that
    /// link adaptation scales from it; `None`: the size asked for on the command line.
    fn size(&self) -> Option<(u32, u32)> {
        None
    }
}

/// What a raw video file does when `--frames`/`--duration` asks for more than it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    /// The source is exhausted: the client sends what is left in flight and stops.
    Stop,
    /// The file starts over (standard input cannot, and stops).
    Loop,
}

impl AtEnd {
    /// Loop only when the run is bounded some other way.
    pub fn loop_if(bounded: bool) -> AtEnd {
        if bounded {
            AtEnd::Loop
        } else {
            AtEnd::Stop
        }
    }
}

/// What `--source` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Camera {
        index: u32,
    },
    Pattern,
    /// Deterministic textured frames (noise, gradient, motion): JPEG sizes like a real scene.
    Texture,
    /// A `.jpg` file or a directory of them, a YUV4MPEG2 file (`.y4m`, or found by its
    /// magic), or `-` for y4m on standard input; `./camera` reaches a file named `camera`.
    Path(PathBuf),
}

/// Why a `--source` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SourceSpecError {
    #[error(
        "--source is empty; use camera, camera:N, pattern, texture, a path to a .jpg file, a directory or a .y4m file, or -"
    )]
    Empty,
    #[error("'{0}' is not a camera index; use a number, e.g. camera:0")]
    BadCameraIndex(String),
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(SourceSpecError::Empty);
        }
        if text == "pattern" {
            return Ok(SourceSpec::Pattern);
        }
        if text == "texture" {
            return Ok(SourceSpec::Texture);
        }
        if text == "camera" {
            return Ok(SourceSpec::Camera { index: 0 });
        }
        if let Some(index) = text.strip_prefix("camera:") {
            return index
                .parse()
                .map(|index| SourceSpec::Camera { index })
                .map_err(|_| SourceSpecError::BadCameraIndex(text.to_owned()));
        }
        Ok(SourceSpec::Path(PathBuf::from(text)))
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Camera { index } => write!(f, "camera:{index}"),
            SourceSpec::Pattern => f.write_str("pattern"),
            SourceSpec::Texture => f.write_str("texture"),
            SourceSpec::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What the user asked for; a camera gets the closest mode it offers, files keep their own size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    pub width: u32,
    pub height: u32,
    /// 0 = as fast as possible.
    pub fps: u32,
    /// JPEG quality 1..=100 wherever camstream encodes (never for passed-through JPEGs).
    pub quality: u8,
    /// What an MJPEG camera's frames get (`--passthrough`).
    pub passthrough: mjpeg::Passthrough,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            width: 640,
            height: 480,
            fps: 30,
            quality: 80,
            passthrough: mjpeg::Passthrough::Auto,
        }
    }
}

/// Why a source could not open or deliver a frame. Each message is one line a user can act on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("no camera {index} found (is one connected and readable, e.g. /dev/video{index}?); try --source pattern")]
    NoCamera { index: u32 },
    #[error("camera {index} could not be opened: {reason}; try --source pattern")]
    CameraOpen { index: u32, reason: String },
    #[error("camera {index} offers no mode camstream can use (MJPEG, YUYV, NV12 or RGB); it offers: {offered}")]
    CameraFormat { index: u32, offered: String },
    #[error("camera {index} stopped delivering frames: {reason}")]
    CameraRead { index: u32, reason: String },
    #[error("test card size {width}x{height} is not usable: {reason}")]
    BadSize {
        width: u32,
        height: u32,
        reason: &'static str,
    },
    #[error("{path} does not exist (--source takes camera, camera:N, pattern, texture, a .jpg file or a directory of them, a .y4m file, or - for y4m on standard input)")]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("directory {dir} holds no .jpg files")]
    NoJpegFiles { dir: PathBuf },
    #[error("{path} is not a JPEG file (no SOI marker)")]
    NotJpeg { path: PathBuf },
    #[error("{path} is not a usable JPEG file: {reason}")]
    BadJpeg {
        path: PathBuf,
        reason: jpeg::JpegError,
    },
    #[error("{path} is {size} bytes; a single file may be at most {limit} bytes")]
    FileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("the .jpg files in {dir} add up to more than {limit} bytes; use a smaller set")]
    TooMuchData { dir: PathBuf, limit: u64 },
    #[error("{name}: {reason}")]
    Y4m { name: String, reason: y4m::Y4mError },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Opens what `spec` names; a camera is negotiated towards `opts`, the test card uses them exactly.
/// A y4m file loops at its end.
pub fn open_source(
    spec: &SourceSpec,
    opts: &SourceOptions,
) -> Result<Box<dyn FrameSource>, SourceError> {
    open_source_with(spec, opts, AtEnd::Loop)
}

/// Like [`open_source`], saying what a y4m file does at its end.
pub fn open_source_with(
    spec: &SourceSpec,
    opts: &SourceOptions,
    at_end: AtEnd,
) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match spec {
        SourceSpec::Camera { index } => Box::new(camera::CameraSource::open(*index, opts)?),
        SourceSpec::Pattern => Box::new(pattern::TestCard::new(opts)?),
        SourceSpec::Texture => Box::new(texture::Texture::new(opts)?),
        SourceSpec::Path(path) if y4m::is_y4m(path) => {
            Box::new(y4m::Y4mSource::open(path, opts.quality, at_end)?)
        }
        SourceSpec::Path(path) => Box::new(files::JpegFiles::open(path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_source_specs() {
        assert_eq!("camera".parse(), Ok(SourceSpec::Camera { index: 0 }));
        assert_eq!("camera:3".parse(), Ok(SourceSpec::Camera { index: 3 }));
        assert_eq!("pattern".parse(), Ok(SourceSpec::Pattern));
        assert_eq!(
            "frames/".parse(),
            Ok(SourceSpec::Path(PathBuf::from("frames/")))
        );
        assert_eq!(
            "./camera".parse(),
            Ok(SourceSpec::Path(PathBuf::from("./camera")))
        );
        assert_eq!("".parse::<SourceSpec>(), Err(SourceSpecError::Empty));
    }

    #[test]
    fn bad_camera_index_says_what_to_type() {
        for text in ["camera:x", "camera:", "camera:-1", "camera:1.5"] {
            let err = text.parse::<SourceSpec>().expect_err(text);
            assert_eq!(err, SourceSpecError::BadCameraIndex(text.to_owned()));
            let message = err.to_string();
            assert!(message.contains(text), "{message}");
            assert!(message.contains("camera:0"), "{message}");
        }
    }

    #[test]
    fn spec_display_parses_back() {
        for spec in [
            SourceSpec::Camera { index: 2 },
            SourceSpec::Pattern,
            SourceSpec::Path(PathBuf::from("a/b.jpg")),
        ] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }
    }

    #[test]
    fn open_source_dispatches() {
        let opts = SourceOptions::default();
        let mut card = open_source(&SourceSpec::Pattern, &opts).expect("test card opens");
        assert!(!card.is_live());
        assert_eq!(card.describe(), "test card 640x480 q80");
        let frame = card
            .next_frame()
            .expect("renders")
            .expect("never exhausted");
        assert_eq!((frame.width, frame.height), (640, 480));

        let missing = open_source(&SourceSpec::Path(PathBuf::from("no/such/dir")), &opts);
        assert!(matches!(missing, Err(SourceError::NotFound { .. })));
    }
}
