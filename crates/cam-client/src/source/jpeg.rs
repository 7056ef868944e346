//! Just enough JPEG marker parsing to pass camera and file frames through without decoding them.
//!
//! Every read is bounds-checked: the bytes come from files and devices, and a lying segment
//! length must give an error, never a panic.

use thiserror::Error;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

/// What [`scan`] learnt about a JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegScan {
    pub width: u16,
    pub height: u16,
    /// Many MJPEG cameras omit the Huffman tables and rely on the standard ones.
    pub has_dht: bool,
    /// The SOFn marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive, …).
    pub sof_marker: u8,
    /// Offset of the first SOS marker (its 0xFF), where missing tables can still go.
    pub first_sos: Option<usize>,
    /// Offset just past the EOI marker; `None` if the data stops before one. Camera buffers
    /// carry stale bytes after the frame, so this is where a frame really ends.
    pub end: Option<usize>,
}

/// Why bytes are not a usable JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JpegError {
    #[error("no SOI marker")]
    NoSoi,
    #[error("ends inside its headers")]
    Truncated,
    #[error("corrupt marker structure at byte {0}")]
    Corrupt(usize),
    #[error("no frame header (SOF) before the image data")]
    NoFrameHeader,
    #[error("frame header gives a zero width or height (DNL is not supported)")]
    ZeroSize,
}

/// Walks the marker segments of `bytes` up to the first EOI.
pub fn scan(bytes: &[u8]) -> Result<JpegScan, JpegError> {
    if bytes.get(..2) != Some(&[0xFF, SOI][..]) {
        return Err(JpegError::NoSoi);
    }
    let mut pos = 2;
    let mut size = None;
    let mut has_dht = false;
    let mut first_sos = None;
    let mut end = None;
    while let Some(&byte) = bytes.get(pos) {
        if byte != 0xFF {
            return Err(JpegError::Corrupt(pos));
        }
        let marker_start = pos;
        // Any number of 0xFF fill bytes may precede a marker.
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            break;
        };
        pos += 1;
        match marker {
            EOI => {
                end = Some(pos);
                break;
            }
            // Standalone markers: no length field.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | SOI => return Err(JpegError::Corrupt(pos - 1)),
            _ => {}
        }
        let length = read_u16(bytes, pos).ok_or(JpegError::Truncated)?;
        let length = usize::from(length);
        if length < 2 {
            return Err(JpegError::Corrupt(pos));
        }
        let segment = bytes
            .get(pos + 2..pos + length)
            .ok_or(JpegError::Truncated)?;
        if is_sof(marker) {
            // precision, height, width
            let height = read_u16(segment, 1).ok_or(JpegError::Corrupt(pos))?;
            let width = read_u16(segment, 3).ok_or(JpegError::Corrupt(pos))?;
            size = Some((width, height, marker));
        }
        has_dht |= marker == DHT;
        pos += length;
        if marker == SOS {
            if size.is_none() {
                return Err(JpegError::NoFrameHeader);
            }
            first_sos.get_or_insert(marker_start);
            match skip_entropy_coded(bytes, pos) {
                Some(next_marker) => pos = next_marker,
                None => break,
            }
        }
    }
    let (width, height, sof_marker) = size.ok_or(if end.is_some() {
        JpegError::NoFrameHeader
    } else {
        JpegError::Truncated
    })?;
    if width == 0 || height == 0 {
        return Err(JpegError::ZeroSize);
    }
    Ok(JpegScan {
        width,
        height,
        has_dht,
        sof_marker,
        first_sos,
        end,
    })
}

/// Offset of the first real marker after entropy-coded data starting at `pos`, where stuffed
/// zeros and restart markers do not count.
fn skip_entropy_coded(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let ff = pos + bytes.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        match bytes.get(ff + 1)? {
            0x00 | 0xD0..=0xD7 => pos = ff + 2,
            0xFF => pos = ff + 1,
            _ => return Some(ff),
        }
    }
}

/// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, DHT | 0xC8 | 0xCC)
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::JpegEncoder;

    fn sample(width: usize, height: usize) -> Vec<u8> {
        let rgb: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        JpegEncoder::new(75)
            .expect("encoder")
            .encode_rgb(&rgb, width, height)
            .expect("encodes")
    }

    /// Removes every DHT segment, as MJPEG cameras deliver their frames.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            let marker = jpeg[pos + 1];
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if marker != DHT {
                out.extend_from_slice(&jpeg[pos..pos + 2 + length]);
            }
            pos += 2 + length;
            if marker == SOS {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
        }
    }

    #[test]
    fn reads_size_tables_and_end() {
        let jpeg = sample(40, 24);
        let scan = scan(&jpeg).expect("valid");
        assert_eq!((scan.width, scan.height), (40, 24));
        assert!(scan.has_dht);
        assert_eq!(scan.end, Some(jpeg.len()));
        assert_eq!(scan.sof_marker, 0xC0, "turbojpeg writes baseline JPEG");
        let sos = scan.first_sos.expect("has image data");
        assert_eq!(&jpeg[sos..sos + 2], &[0xFF, SOS]);
    }

    #[test]
    fn end_ignores_stale_bytes_after_the_frame() {
        let jpeg = sample(32, 32);
        let mut buffer = jpeg.clone();
        // A camera buffer that once held a longer frame: its old EOI is still there.
        buffer.extend_from_slice(&[0x12, 0xFF, 0xD9, 0, 0, 0, 0xFF, 0xD9, 0, 0]);
        assert_eq!(scan(&buffer).expect("valid").end, Some(jpeg.len()));
    }

    #[test]
    fn notices_missing_huffman_tables() {
        let jpeg = strip_dht(&sample(16, 16));
        let scan = scan(&jpeg).expect("valid");
        assert!(!scan.has_dht);
        assert_eq!(scan.end, Some(jpeg.len()));
    }

    #[test]
    fn truncated_image_data_has_no_end() {
        let jpeg = sample(64, 64);
        let cut = &jpeg[..jpeg.len() - 40];
        let scan = scan(cut).expect("headers are complete");
        assert_eq!(scan.end, None);
        assert_eq!(scan.width, 64);
    }

    #[test]
    fn refuses_what_is_not_a_jpeg() {
        assert_eq!(scan(b"\x89PNG\r\n\x1a\n"), Err(JpegError::NoSoi));
        assert_eq!(scan(b""), Err(JpegError::NoSoi));
        assert_eq!(scan(&[0xFF, 0xD8]), Err(JpegError::Truncated));
        assert_eq!(
            scan(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Err(JpegError::NoFrameHeader)
        );
        // A segment claiming more bytes than exist.
        assert_eq!(
            scan(&[0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0x00, 1, 2]),
            Err(JpegError::Truncated)
        );
        assert_eq!(
            scan(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]),
            Err(JpegError::Corrupt(4))
        );
        assert_eq!(scan(&[0xFF, 0xD8, 0x00]), Err(JpegError::Corrupt(2)));
    }

    #[test]
    fn no_prefix_or_corruption_panics() {
        let jpeg = sample(24, 16);
        for len in 0..jpeg.len() {
            let _ = scan(&jpeg[..len]);
        }
        for i in 0..jpeg.len().min(700) {
            let mut damaged = jpeg.clone();
            damaged[i] ^= 0xA5;
            let _ = scan(&damaged);
        }
    }
}
