//! Restart intervals in baseline JPEG, as bytes: cutting a frame into strips that decode on
//! their own, and stitching strips encoded on their own into one frame.
//!
//! A restart marker (`RST0`..`RST7`) resets the entropy coder's DC prediction and byte-aligns
//! the data, so the MCUs between two markers depend on nothing outside them. When every
//! interval covers whole MCU rows, each run of intervals is a JPEG of its own: the same
//! tables, a start-of-frame whose height is the run's rows, and the run's entropy-coded data.
//! libjpeg-turbo's TurboJPEG API cannot set a restart interval, so the client encodes strips
//! as separate JPEGs and [`stitch`]es them; the viewer [`Layout::scan`]s a frame and decodes
//! [`Layout::strip_jpeg`]s in parallel. A stitched frame is an ordinary JPEG with a `DRI`
//! segment (what RTP/JPEG types 64..127 carry in their restart header), so every decoder
//! reads it whole.
//!
//! Pure byte work, no codec: safe on untrusted input (every index is checked; anything
//! unexpected is `None` or an error, and the caller decodes the frame whole).

use std::ops::Range;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;
const SOF0: u8 = 0xC0;
const SOF1: u8 = 0xC1;
const RST0: u8 = 0xD0;
const RST7: u8 = 0xD7;
const TEM: u8 = 0x01;

/// Where a baseline frame's parts are, and how its restart intervals map to rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Everything before the entropy-coded data: SOI, tables, SOF, DRI, SOS.
    pub header_end: usize,
    /// The DRI segment, when there is one.
    dri: Option<Range<usize>>,
    /// Offset of the SOF height field (2 bytes, big-endian).
    sof_height_at: usize,
    pub width: u16,
    pub height: u16,
    /// Pixel rows in one MCU row (8 or 16).
    pub mcu_rows: u16,
    /// MCUs in one interval (`DRI`); 0 without restart markers.
    pub restart_interval: u16,
    /// Image rows each interval covers, when intervals are whole MCU rows.
    pub rows_per_interval: Option<u32>,
    /// The entropy-coded data of each interval, markers excluded.
    pub segments: Vec<Range<usize>>,
}

impl Layout {
    /// Reads a single-scan baseline (SOF0/SOF1) JPEG. `None` for anything else (progressive,
    /// several scans, damaged markers): those are decoded whole.
    pub fn scan(jpeg: &[u8]) -> Option<Layout> {
        if jpeg.get(..2)? != [0xFF, SOI] {
            return None;
        }
        let mut pos = 2;
        let mut sof: Option<(usize, u16, u16, u16, u32)> = None;
        let mut interval = 0u16;
        let mut dri = None;
        let header_end = loop {
            if *jpeg.get(pos)? != 0xFF {
                return None;
            }
            // Fill bytes may precede a marker.
            while *jpeg.get(pos + 1)? == 0xFF {
                pos += 1;
            }
            let marker = *jpeg.get(pos + 1)?;
            if marker == TEM || (RST0..=RST7).contains(&marker) || marker == SOI {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([
                *jpeg.get(pos + 2)?,
                *jpeg.get(pos + 3)?,
            ]));
            if len < 2 {
                return None;
            }
            let body = jpeg.get(pos + 4..pos + 2 + len)?;
            match marker {
                SOF0 | SOF1 => {
                    let height = u16::from_be_bytes([*body.get(1)?, *body.get(2)?]);
                    let width = u16::from_be_bytes([*body.get(3)?, *body.get(4)?]);
                    let components = usize::from(*body.get(5)?);
                    let mut max_h = 1u8;
                    let mut max_v = 1u8;
                    for c in 0..components {
                        let sampling = *body.get(6 + c * 3 + 1)?;
                        max_h = max_h.max(sampling >> 4);
                        max_v = max_v.max(sampling & 0x0F);
                    }
                    if height == 0 || width == 0 || components == 0 {
                        return None;
                    }
                    let mcu_cols = u32::from(width).div_ceil(8 * u32::from(max_h));
                    // Non-interleaved single-component scans use 8x8 "MCUs".
                    let (mcu_rows, mcu_cols) = if components == 1 {
                        (8, u32::from(width).div_ceil(8))
                    } else {
                        (8 * u16::from(max_v), mcu_cols)
                    };
                    sof = Some((pos + 5, width, height, mcu_rows, mcu_cols));
                }
                // Other frame types (progressive, lossless, arithmetic) are not cut.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                DRI => {
                    interval = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
                    dri = Some(pos..pos + 2 + len);
                }
                SOS => {
                    let components = usize::from(*body.first()?);
                    // One interleaved scan of every component, or it is not baseline as we cut it.
                    let frame_components = usize::from(*jpeg.get(sof?.0 + 4)?);
                    if components != frame_components {
                        return None;
                    }
                    break pos + 2 + len;
                }
                _ => {}
            }
            pos += 2 + len;
        };
        let (sof_height_at, width, height, mcu_rows, mcu_cols) = sof?;
        // Without restart markers there is nothing to cut, and reading every byte of the
        // entropy-coded data for its markers cost 3% of a 720p decode: take it to the EOI.
        let segments = match jpeg.len().checked_sub(2) {
            Some(end) if interval == 0 && end >= header_end && jpeg[end..] == [0xFF, EOI] => {
                std::iter::once(header_end..end).collect()
            }
            _ => entropy_segments(jpeg, header_end)?,
        };
        let total_mcus = mcu_cols * u32::from(height).div_ceil(u32::from(mcu_rows));
        let expected = if interval == 0 {
            1
        } else {
            total_mcus.div_ceil(u32::from(interval))
        };
        if segments.len() as u32 != expected {
            return None;
        }
        let rows_per_interval = (interval != 0 && u32::from(interval) % mcu_cols == 0)
            .then(|| u32::from(interval) / mcu_cols * u32::from(mcu_rows));
        Some(Layout {
            header_end,
            dri,
            sof_height_at,
            width,
            height,
            mcu_rows,
            restart_interval: interval,
            rows_per_interval,
            segments,
        })
    }

    /// Splits the intervals into at most `parts` runs of about equal rows. Each run is
    /// (first interval, end interval, first row, rows). Empty when the intervals are not whole
    /// MCU rows (then only a whole-frame decode is right).
    pub fn strips(&self, parts: usize) -> Vec<StripRange> {
        let Some(rows_per) = self.rows_per_interval else {
            return Vec::new();
        };
        let n = self.segments.len();
        let parts = parts.clamp(1, n.max(1));
        (0..parts)
            .map(|p| (p * n / parts, (p + 1) * n / parts))
            .filter(|(a, b)| b > a)
            .map(|(a, b)| {
                let first_row = a as u32 * rows_per;
                let end_row = (b as u32 * rows_per).min(u32::from(self.height));
                StripRange {
                    intervals: a..b,
                    first_row,
                    rows: end_row - first_row,
                }
            })
            .collect()
    }

    /// A JPEG of its own for the rows of `strip`: the same tables, the SOF height cut to the
    /// strip's rows, its intervals renumbered from RST0. Written into `out` (cleared first).
    ///
    /// A strip of one interval leaves the DRI segment out: libjpeg-turbo decodes Huffman data
    /// on a slower path whenever a restart interval is set (jdhuff.c, `decode_mcu`), which
    /// cost about 16% of a 4K decode here.
    pub fn strip_jpeg(&self, jpeg: &[u8], strip: &StripRange, out: &mut Vec<u8>) {
        out.clear();
        let mut sof_at = self.sof_height_at;
        match &self.dri {
            Some(dri) if strip.intervals.len() == 1 => {
                out.extend_from_slice(&jpeg[..dri.start]);
                out.extend_from_slice(&jpeg[dri.end..self.header_end]);
                if sof_at > dri.start {
                    sof_at -= dri.len();
                }
            }
            _ => out.extend_from_slice(&jpeg[..self.header_end]),
        }
        let rows = u16::try_from(strip.rows).unwrap_or(u16::MAX);
        out[sof_at..sof_at + 2].copy_from_slice(&rows.to_be_bytes());
        for (k, i) in strip.intervals.clone().enumerate() {
            if k > 0 {
                out.extend_from_slice(&[0xFF, RST0 + ((k - 1) % 8) as u8]);
            }
            out.extend_from_slice(&jpeg[self.segments[i].clone()]);
        }
        out.extend_from_slice(&[0xFF, EOI]);
    }
}

/// A run of whole intervals: which intervals, and which image rows they cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripRange {
    pub intervals: Range<usize>,
    pub first_row: u32,
    pub rows: u32,
}

/// The entropy-coded data from `start` to EOI, cut at restart markers. `None` on any other
/// marker or missing EOI.
fn entropy_segments(jpeg: &[u8], start: usize) -> Option<Vec<Range<usize>>> {
    let mut segments = Vec::new();
    let mut seg_start = start;
    let mut pos = start;
    loop {
        let ff = pos + memchr::memchr(0xFF, jpeg.get(pos..)?)?;
        let mut next = ff + 1;
        while *jpeg.get(next)? == 0xFF {
            next += 1;
        }
        match jpeg[next] {
            0x00 => pos = next + 1,
            m @ RST0..=RST7 => {
                // Out of sequence means damage: let the whole-frame decoder deal with it.
                if usize::from(m - RST0) != segments.len() % 8 {
                    return None;
                }
                segments.push(seg_start..ff);
                seg_start = next + 1;
                pos = seg_start;
            }
            EOI => {
                segments.push(seg_start..ff);
                return Some(segments);
            }
            _ => return None,
        }
    }
}

/// Why strips could not be stitched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StitchError {
    #[error("no strips")]
    Empty,
    #[error("strip {0} is not a single-interval baseline JPEG")]
    NotBaseline(usize),
    #[error("strip {0} has other tables, width or sampling than the first")]
    Mismatch(usize),
    #[error("strip {0} is not a whole number of MCU rows")]
    Ragged(usize),
    #[error("the stitched frame would be too large")]
    TooLarge,
}

/// Joins strips (complete baseline JPEGs of the same width, tables and sampling, top to
/// bottom, every one but the last the same whole number of MCU rows) into one JPEG with a
/// restart marker between strips. Written into `out` (cleared first).
pub fn stitch(strips: &[&[u8]], out: &mut Vec<u8>) -> Result<(), StitchError> {
    let first = strips.first().ok_or(StitchError::Empty)?;
    let layouts = strips
        .iter()
        .enumerate()
        .map(|(i, s)| match Layout::scan(s) {
            Some(l) if l.restart_interval == 0 && l.segments.len() == 1 => Ok(l),
            _ => Err(StitchError::NotBaseline(i)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let head = &layouts[0];
    let strip_rows = head.height;
    let mut total_rows = 0u32;
    for (i, (l, s)) in layouts.iter().zip(strips).enumerate() {
        let same_header = l.header_end == head.header_end
            && l.sof_height_at == head.sof_height_at
            && s[..l.sof_height_at] == first[..head.sof_height_at]
            && s[l.sof_height_at + 2..l.header_end]
                == first[head.sof_height_at + 2..head.header_end];
        if !same_header {
            return Err(StitchError::Mismatch(i));
        }
        let last = i + 1 == strips.len();
        if !last && (l.height != strip_rows || l.height % l.mcu_rows != 0) {
            return Err(StitchError::Ragged(i));
        }
        if last && l.height > strip_rows {
            return Err(StitchError::Ragged(i));
        }
        total_rows += u32::from(l.height);
    }
    let total = u16::try_from(total_rows).map_err(|_| StitchError::TooLarge)?;
    let mcu_cols = u32::from(head.width).div_ceil(mcu_width(first, head));
    let interval = u16::try_from(mcu_cols * u32::from(strip_rows / head.mcu_rows))
        .map_err(|_| StitchError::TooLarge)?;
    let sos_at = sos_offset(first, head.header_end).ok_or(StitchError::NotBaseline(0))?;

    out.clear();
    out.extend_from_slice(&first[..sos_at]);
    out[head.sof_height_at..head.sof_height_at + 2].copy_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0xFF, DRI, 0x00, 0x04]);
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&first[sos_at..head.header_end]);
    for (i, (l, s)) in layouts.iter().zip(strips).enumerate() {
        if i > 0 {
            out.extend_from_slice(&[0xFF, RST0 + ((i - 1) % 8) as u8]);
        }
        out.extend_from_slice(&s[l.segments[0].clone()]);
    }
    out.extend_from_slice(&[0xFF, EOI]);
    Ok(())
}

/// Pixel columns in one MCU, from the SOF's sampling factors.
fn mcu_width(jpeg: &[u8], layout: &Layout) -> u32 {
    let components = usize::from(jpeg[layout.sof_height_at + 4]);
    if components == 1 {
        return 8;
    }
    let max_h = (0..components)
        .filter_map(|c| jpeg.get(layout.sof_height_at + 5 + c * 3 + 1))
        .map(|s| s >> 4)
        .max()
        .unwrap_or(1);
    8 * u32::from(max_h.max(1))
}

/// Where the SOS segment starts (its length field says where it ends: `header_end`).
fn sos_offset(jpeg: &[u8], header_end: usize) -> Option<usize> {
    let mut pos = 2;
    while pos + 4 <= header_end {
        let marker = jpeg[pos + 1];
        if marker == SOS {
            return Some(pos);
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        pos += 2 + len;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A hand-made "JPEG": SOI, SOF0 (W x H, 3 components 2x2/1x1/1x1), optional DRI, SOS,
    /// then the given entropy bytes and EOI. Enough for layout work; no codec reads it.
    fn fake(width: u16, height: u16, dri: Option<u16>, entropy: &[u8]) -> Vec<u8> {
        let mut j = vec![0xFF, SOI];
        j.extend_from_slice(&[0xFF, SOF0, 0, 17, 8]);
        j.extend_from_slice(&height.to_be_bytes());
        j.extend_from_slice(&width.to_be_bytes());
        j.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        if let Some(i) = dri {
            j.extend_from_slice(&[0xFF, DRI, 0, 4]);
            j.extend_from_slice(&i.to_be_bytes());
        }
        j.extend_from_slice(&[0xFF, SOS, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]);
        j.extend_from_slice(entropy);
        j.extend_from_slice(&[0xFF, EOI]);
        j
    }

    #[test]
    fn finds_segments_and_rows() {
        // 64x48: 4 MCU columns, 3 MCU rows; one row per interval.
        let entropy = [1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3, 4, 0xFF, 0xD1, 5];
        let j = fake(64, 48, Some(4), &entropy);
        let l = Layout::scan(&j).unwrap();
        assert_eq!((l.width, l.height, l.mcu_rows), (64, 48, 16));
        assert_eq!(l.rows_per_interval, Some(16));
        let seg: Vec<&[u8]> = l.segments.iter().map(|r| &j[r.clone()]).collect();
        assert_eq!(seg, [&[1, 0xFF, 0, 2][..], &[3, 4][..], &[5][..]]);
        let strips = l.strips(2);
        assert_eq!(strips.len(), 2);
        assert_eq!((strips[0].first_row, strips[0].rows), (0, 16));
        assert_eq!((strips[1].first_row, strips[1].rows), (16, 32));
        let mut out = Vec::new();
        l.strip_jpeg(&j, &strips[1], &mut out);
        // Renumbered from RST0, height 32.
        assert_eq!(out, fake(64, 32, Some(4), &[3, 4, 0xFF, 0xD0, 5]));
        // One interval alone: no DRI, so libjpeg-turbo keeps its fast Huffman path.
        let single = l.strips(3);
        l.strip_jpeg(&j, &single[2], &mut out);
        assert_eq!(out, fake(64, 16, None, &[5]));
    }

    #[test]
    fn refuses_what_it_cannot_cut() {
        // Intervals not whole rows: scanned, but no strips.
        let j = fake(64, 48, Some(6), &[1, 0xFF, 0xD0, 2]);
        assert_eq!(Layout::scan(&j).unwrap().strips(2), Vec::new());
        // Wrong number of intervals, out-of-order markers, stray marker, no EOI.
        assert!(Layout::scan(&fake(64, 48, Some(4), &[1, 0xFF, 0xD0, 2])).is_none());
        assert!(Layout::scan(&fake(64, 48, Some(4), &[1, 0xFF, 0xD1, 2, 0xFF, 0xD2, 3])).is_none());
        let stray = [1, 0xFF, 0xC4, 2, 0xFF, 0xD0, 3, 0xFF, 0xD1, 4];
        assert!(Layout::scan(&fake(64, 48, Some(4), &stray)).is_none());
        // Without restart intervals the data is not read: one segment up to the EOI.
        let plain = fake(64, 48, None, &[1, 0xFF, 0xC4, 2]);
        assert_eq!(Layout::scan(&plain).unwrap().segments.len(), 1);
        let mut cut = fake(64, 48, None, &[1, 2]);
        cut.truncate(cut.len() - 2);
        assert!(Layout::scan(&cut).is_none());
        // Every prefix of a good frame: never a panic.
        let good = fake(64, 48, Some(4), &[1, 0xFF, 0xD0, 3, 0xFF, 0xD1, 5]);
        for n in 0..good.len() {
            let _ = Layout::scan(&good[..n]);
        }
    }

    #[test]
    fn stitches_strips_into_one_frame() {
        let a = fake(64, 32, None, &[1, 2]);
        let b = fake(64, 32, None, &[3]);
        let c = fake(64, 16, None, &[4, 0xFF, 0x00]);
        let mut out = Vec::new();
        stitch(&[&a, &b, &c], &mut out).unwrap();
        // 4 MCU columns x 2 MCU rows per strip = interval 8.
        let expected = fake(
            64,
            80,
            Some(8),
            &[1, 2, 0xFF, 0xD0, 3, 0xFF, 0xD1, 4, 0xFF, 0x00],
        );
        assert_eq!(out, expected);
        let l = Layout::scan(&out).unwrap();
        assert_eq!(l.rows_per_interval, Some(32));
        assert_eq!(
            stitch(&[&c, &a], &mut out),
            Err(StitchError::Ragged(1)),
            "no strip may be taller than the first"
        );
        let other = fake(48, 32, None, &[1]);
        assert_eq!(
            stitch(&[&a, &other], &mut out),
            Err(StitchError::Mismatch(1))
        );
    }
}
