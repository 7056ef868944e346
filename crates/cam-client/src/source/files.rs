//! `--source PATH`: one JPEG file sent over and over, or a directory of them cycled in name order.
//!
//! The bytes go out exactly as they are on disk: what the viewer shows is what the file holds,
//! which makes these sources the reference for checking the transport.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::jpeg::{self, JpegError};
use super::{FrameSource, SourceError, SourceFrame};

/// Refuse a single file larger than this.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Refuse a directory whose JPEGs add up to more than this: they are all kept in memory.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, Copy)]
struct Limits {
    file: u64,
    total: u64,
}

const LIMITS: Limits = Limits {
    file: MAX_FILE_BYTES,
    total: MAX_TOTAL_BYTES,
};

#[derive(Debug)]
struct LoadedJpeg {
    jpeg: Vec<u8>,
    width: u16,
    height: u16,
}

/// JPEG files read once at open and replayed from memory, so disk speed never limits the rate.
#[derive(Debug)]
pub struct JpegFiles {
    frames: Vec<LoadedJpeg>,
    next: usize,
    description: String,
}

impl JpegFiles {
    /// A file is taken whatever its name, as long as it is a JPEG; a directory contributes its
    /// `*.jpg` and `*.jpeg` files (any case), sorted by file name.
    pub fn open(path: &Path) -> Result<JpegFiles, SourceError> {
        open_with_limits(path, LIMITS)
    }
}

fn open_with_limits(path: &Path, limits: Limits) -> Result<JpegFiles, SourceError> {
    let metadata = fs::metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound {
            path: path.to_owned(),
        },
        _ => SourceError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    if !metadata.is_dir() {
        let frame = load(path, limits.file)?;
        let description = format!(
            "file {} {}x{} ({} bytes)",
            path.display(),
            frame.width,
            frame.height,
            frame.jpeg.len()
        );
        return Ok(JpegFiles {
            frames: vec![frame],
            next: 0,
            description,
        });
    }

    let dir = path;
    let paths = jpeg_paths(dir)?;
    let mut frames = Vec::with_capacity(paths.len());
    let mut total: u64 = 0;
    for file in &paths {
        let budget = limits.file.min(limits.total - total);
        let frame = match load(file, budget) {
            Err(SourceError::FileTooLarge { path, size, .. }) => {
                return Err(if size > limits.file {
                    SourceError::FileTooLarge {
                        path,
                        size,
                        limit: limits.file,
                    }
                } else {
                    SourceError::TooMuchData {
                        dir: dir.to_owned(),
                        limit: limits.total,
                    }
                });
            }
            other => other?,
        };
        total += frame.jpeg.len() as u64;
        frames.push(frame);
    }
    if frames.is_empty() {
        return Err(SourceError::NoJpegFiles {
            dir: path.to_owned(),
        });
    }
    let description = format!(
        "directory {} ({} JPEG files, {} bytes, cycled)",
        path.display(),
        frames.len(),
        total
    );
    Ok(JpegFiles {
        frames,
        next: 0,
        description,
    })
}

/// Regular files (or links to them) named `*.jpg`/`*.jpeg` in any case, sorted by file name.
fn jpeg_paths(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io_error = |source| SourceError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let is_jpeg_name = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg"));
        if is_jpeg_name && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

/// Reads at most `limit` bytes, so a file that grows while being read cannot exceed it.
fn load(path: &Path, limit: u64) -> Result<LoadedJpeg, SourceError> {
    let io_error = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let too_large = |size| SourceError::FileTooLarge {
        path: path.to_owned(),
        size,
        limit,
    };
    if size > limit {
        return Err(too_large(size));
    }
    let mut jpeg = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut jpeg)
        .map_err(io_error)?;
    if jpeg.len() as u64 > limit {
        return Err(too_large(jpeg.len() as u64));
    }
    let scan = jpeg::scan(&jpeg).map_err(|reason| match reason {
        JpegError::NoSoi => SourceError::NotJpeg {
            path: path.to_owned(),
        },
        reason => SourceError::BadJpeg {
            path: path.to_owned(),
            reason,
        },
    })?;
    Ok(LoadedJpeg {
        jpeg,
        width: scan.width,
        height: scan.height,
    })
}

impl FrameSource for JpegFiles {
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        let Some(frame) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next = (self.next + 1) % self.frames.len();
        Ok(Some(SourceFrame {
            jpeg: frame.jpeg.clone(),
            width: frame.width,
            height: frame.height,
        }))
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::JpegEncoder;

    fn jpeg(width: usize, height: usize, shade: u8) -> Vec<u8> {
        let rgb = vec![shade; width * height * 3];
        JpegEncoder::new(80)
            .expect("encoder")
            .encode_rgb(&rgb, width, height)
            .expect("encodes")
    }

    fn frames(source: &mut JpegFiles, count: usize) -> Vec<SourceFrame> {
        (0..count)
            .map(|_| source.next_frame().expect("reads").expect("cycles"))
            .collect()
    }

    #[test]
    fn directory_plays_in_name_order_byte_for_byte_and_cycles() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Created out of name order, with mixed-case extensions and files to skip.
        let c = jpeg(48, 32, 200);
        let a = jpeg(16, 16, 10);
        let b = jpeg(32, 16, 100);
        fs::write(dir.path().join("c.jpeg"), &c).expect("write");
        fs::write(dir.path().join("a.JPG"), &a).expect("write");
        fs::write(dir.path().join("b.jpg"), &b).expect("write");
        fs::write(dir.path().join("notes.txt"), b"not a frame").expect("write");
        fs::create_dir(dir.path().join("d.jpg")).expect("a directory named like a JPEG");

        let mut source = JpegFiles::open(dir.path()).expect("opens");
        assert!(!source.is_live());
        assert!(
            source.describe().contains("3 JPEG files"),
            "{}",
            source.describe()
        );
        let got = frames(&mut source, 7);
        let expected = [(&a, 16, 16), (&b, 32, 16), (&c, 48, 32)];
        for (i, frame) in got.iter().enumerate() {
            let (bytes, width, height) = expected[i % 3];
            assert_eq!(&frame.jpeg, bytes, "frame {i} is byte-identical");
            assert_eq!((frame.width, frame.height), (width, height));
        }
    }

    #[test]
    fn single_file_repeats() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("still.jpg");
        let bytes = jpeg(24, 16, 60);
        fs::write(&path, &bytes).expect("write");
        let mut source = JpegFiles::open(&path).expect("opens");
        for frame in frames(&mut source, 3) {
            assert_eq!(frame.jpeg, bytes);
            assert_eq!((frame.width, frame.height), (24, 16));
        }
        assert!(source.describe().contains("24x16"));
    }

    #[test]
    fn non_jpeg_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fake.jpg");
        fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").expect("write");
        let err = JpegFiles::open(&path).expect_err("not a JPEG");
        assert!(matches!(err, SourceError::NotJpeg { .. }), "{err:?}");
        assert!(err
            .to_string()
            .contains("fake.jpg is not a JPEG file (no SOI marker)"));

        // The same file inside a directory fails the whole directory, naming the file.
        let err = JpegFiles::open(dir.path()).expect_err("bad member");
        assert!(err.to_string().contains("fake.jpg"), "{err}");
    }

    #[test]
    fn jpeg_without_frame_header_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("headless.jpg");
        fs::write(&path, [0xFF, 0xD8, 0xFF, 0xD9]).expect("write");
        let err = JpegFiles::open(&path).expect_err("no SOF");
        assert!(matches!(err, SourceError::BadJpeg { .. }), "{err:?}");
    }

    #[test]
    fn empty_directory_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("readme.txt"), b"no frames here").expect("write");
        let err = JpegFiles::open(dir.path()).expect_err("no JPEGs");
        assert!(matches!(err, SourceError::NoJpegFiles { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("holds no .jpg files"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn missing_path_says_what_source_takes() {
        let err = JpegFiles::open(Path::new("/no/such/camstream/frames")).expect_err("missing");
        assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
        assert!(
            err.to_string().contains("camera:N, pattern, texture"),
            "{err}"
        );
    }

    #[test]
    fn size_limits_are_enforced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = jpeg(64, 64, 128);
        let len = bytes.len() as u64;
        for name in ["1.jpg", "2.jpg", "3.jpg"] {
            fs::write(dir.path().join(name), &bytes).expect("write");
        }
        let tight_file = Limits {
            file: len - 1,
            total: len * 10,
        };
        let err = open_with_limits(dir.path(), tight_file).expect_err("file too large");
        assert!(
            matches!(err, SourceError::FileTooLarge { size, limit, .. } if size == len && limit == len - 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("1.jpg"), "{err}");

        let tight_total = Limits {
            file: len,
            total: len * 2 + 10,
        };
        let err = open_with_limits(dir.path(), tight_total).expect_err("too much in total");
        assert!(matches!(err, SourceError::TooMuchData { .. }), "{err:?}");

        let enough = Limits {
            file: len,
            total: len * 3,
        };
        open_with_limits(dir.path(), enough).expect("exactly at the limits");
    }
}
