//! JFIF/JPEG ⇄ what RTP/JPEG carries (RFC 2435 §3.1, §4, Appendices A and B).
//!
//! RTP/JPEG carries only the entropy-coded scan plus a few numbers: type (sampling and
//! restart), width/8, height/8 and the quantization tables. The receiver rebuilds the
//! headers with the standard Huffman tables of ITU T.81 Annex K.3. So a JPEG can go as
//! RTP/JPEG only if it is baseline, 8-bit, 3-component YCbCr 4:2:0 or 4:2:2, uses those
//! standard tables, and has a size the 8-bit width/8 and height/8 fields can say.

use crate::wire::read_u16;
use std::ops::Range;

/// ITU T.81 Annex K: natural-order (row-major) luminance quantization table (K.1).
pub const STD_LUMA_QUANT: [u8; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// ITU T.81 Annex K: natural-order chrominance quantization table (K.2).
pub const STD_CHROMA_QUANT: [u8; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// `ZIGZAG[k]` is the natural (row-major) index of the k-th coefficient in zig-zag order.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A Huffman table as DHT carries it: code counts per length 1–16, then the symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HuffmanSpec {
    pub counts: [u8; 16],
    pub symbols: &'static [u8],
}

const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// T.81 K.3.1, Table K.3.
pub const STD_DC_LUMA: HuffmanSpec = HuffmanSpec {
    counts: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    symbols: &DC_SYMBOLS,
};
/// T.81 K.3.1, Table K.4.
pub const STD_DC_CHROMA: HuffmanSpec = HuffmanSpec {
    counts: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    symbols: &DC_SYMBOLS,
};
/// T.81 K.3.2, Table K.5.
pub const STD_AC_LUMA: HuffmanSpec = HuffmanSpec {
    counts: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
    symbols: &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
};
/// T.81 K.3.2, Table K.6.
pub const STD_AC_CHROMA: HuffmanSpec = HuffmanSpec {
    counts: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    symbols: &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
};

/// The RTP/JPEG type bit for "restart markers present" (§3.1.7).
pub const TYPE_RESTART: u8 = 64;
/// Largest width or height RTP/JPEG can describe.
pub const MAX_DIMENSION: u16 = super::wire::MAX_DIMENSION;

/// What RTP/JPEG cannot carry, or why the bytes are not a JPEG at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("not a JPEG (no SOI marker)")]
    NotJpeg,
    #[error("JPEG truncated")]
    Truncated,
    #[error("malformed JPEG segment (marker {0:#04x})")]
    Malformed(u8),
    #[error("no frame header (SOF) before the scan")]
    NoFrameHeader,
    #[error("no scan (SOS) in the JPEG")]
    NoScan,
    #[error(
        "{width}x{height} cannot go as RTP/JPEG: width and height must be multiples of 8 \
         and at most 2040; choose a --size that is"
    )]
    Size { width: u16, height: u16 },
    #[error("not a baseline JPEG (SOF marker {0:#04x}: progressive, lossless, hierarchical or arithmetic); re-encode as baseline")]
    NotBaseline(u8),
    #[error("{0}-bit samples; RTP/JPEG carries 8-bit baseline only")]
    Precision(u8),
    #[error("{0} components; RTP/JPEG carries 3-component YCbCr only (no grayscale, no CMYK)")]
    Components(u8),
    #[error(
        "chroma subsampling {0} cannot go as RTP/JPEG (only 4:2:0 and 4:2:2); re-encode as 4:2:0"
    )]
    Sampling(String),
    #[error(
        "non-standard Huffman tables; RTP/JPEG assumes those of ITU T.81 Annex K.3: re-encode"
    )]
    NonStandardHuffman,
    #[error(
        "Cb and Cr use different quantization tables; RTP/JPEG carries one chroma table: re-encode"
    )]
    SplitChromaTables,
    #[error("16-bit quantization table entries above 255; re-encode as 8-bit baseline")]
    WideQuantTable,
    #[error("the scan refers to a table the JPEG does not define")]
    MissingTable,
    #[error("more than one scan, or a scan that is not one interleaved Y, Cb, Cr pass; re-encode as baseline")]
    NotOneScan,
}

impl JpegError {
    /// An encoding RTP/JPEG cannot describe: the caller should re-encode to baseline 4:2:0
    /// with the standard Huffman tables, and send that.
    pub fn needs_reencode(&self) -> bool {
        matches!(
            self,
            JpegError::NotBaseline(_)
                | JpegError::Precision(_)
                | JpegError::Components(_)
                | JpegError::Sampling(_)
                | JpegError::NonStandardHuffman
                | JpegError::SplitChromaTables
                | JpegError::WideQuantTable
                | JpegError::NotOneScan
        )
    }

    /// The picture size cannot be said: re-encoding at the same size will not help.
    pub fn is_size(&self) -> bool {
        matches!(self, JpegError::Size { .. })
    }

    /// What a sender makes of a frame it cannot send as it is: a size RTP/JPEG cannot say
    /// ends the run (every frame will have it); an encoding that needs re-encoding too, when
    /// nobody re-encoded it; a damaged frame is skipped, the next one may be fine.
    pub fn send_error(&self) -> crate::machine::SendError {
        use crate::machine::SendError;
        if self.is_size() {
            SendError::Unfit(self.to_string())
        } else if self.needs_reencode() {
            SendError::Unfit(format!(
                "{self} (check frames with rtp::check_jpeg and re-encode those whose error needs_reencode())"
            ))
        } else {
            log::debug!("not sending a frame RTP/JPEG cannot read: {self}");
            SendError::Empty
        }
    }
}

/// What RTP/JPEG carries of a JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegInfo {
    /// 0 (4:2:2) or 1 (4:2:0), plus 64 when restart markers are in use.
    pub jpeg_type: u8,
    pub width: u16,
    pub height: u16,
    /// MCUs per restart interval (0: none).
    pub restart_interval: u16,
    /// Luminance then chrominance table, 8-bit, zig-zag order as in DQT.
    pub tables: [[u8; 64]; 2],
    /// Where the entropy-coded data lies in the JPEG (after the SOS header, before EOI).
    pub scan: Range<usize>,
}

impl JpegInfo {
    pub fn scan<'a>(&self, jpeg: &'a [u8]) -> &'a [u8] {
        &jpeg[self.scan.clone()]
    }

    /// Both tables back to back, as the quantization table header carries them.
    pub fn table_bytes(&self) -> [u8; 128] {
        let mut out = [0u8; 128];
        out[..64].copy_from_slice(&self.tables[0]);
        out[64..].copy_from_slice(&self.tables[1]);
        out
    }
}

/// A DHT table: (class 0 = DC / 1 = AC, slot), code counts, symbols.
type DefinedTable = ((u8, u8), [u8; 16], Vec<u8>);

#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
    tq: u8,
}

/// Reads a JPEG and says what RTP/JPEG would carry of it, or why it cannot.
pub fn check_jpeg(jpeg: &[u8]) -> Result<JpegInfo, JpegError> {
    if jpeg.len() < 2 || jpeg[..2] != [0xff, 0xd8] {
        return Err(JpegError::NotJpeg);
    }
    let mut qtables: [Option<[u16; 64]>; 4] = [None; 4];
    // (class 0 = DC / 1 = AC, id 0..3) -> (counts, symbols)
    let mut huffman: Vec<DefinedTable> = Vec::new();
    let mut components: Option<(u16, u16, Vec<Component>)> = None;
    let mut restart_interval = 0u16;
    let mut pos = 2usize;
    loop {
        if pos >= jpeg.len() {
            return Err(JpegError::Truncated);
        }
        if jpeg[pos] != 0xff {
            return Err(JpegError::Malformed(jpeg[pos]));
        }
        while pos < jpeg.len() && jpeg[pos] == 0xff {
            pos += 1;
        }
        let Some(&marker) = jpeg.get(pos) else {
            return Err(JpegError::Truncated);
        };
        pos += 1;
        match marker {
            0xd9 => return Err(JpegError::NoScan),
            0x01 | 0xd0..=0xd7 => continue,
            0xd8 | 0x00 => return Err(JpegError::Malformed(marker)),
            _ => {}
        }
        let len_bytes = jpeg.get(pos..pos + 2).ok_or(JpegError::Truncated)?;
        let len = usize::from(read_u16(len_bytes));
        if len < 2 {
            return Err(JpegError::Malformed(marker));
        }
        let seg = jpeg.get(pos + 2..pos + len).ok_or(JpegError::Truncated)?;
        pos += len;
        match marker {
            0xc0 | 0xc1 => {
                if seg.len() < 6 {
                    return Err(JpegError::Malformed(marker));
                }
                if seg[0] != 8 {
                    return Err(JpegError::Precision(seg[0]));
                }
                let height = read_u16(&seg[1..3]);
                let width = read_u16(&seg[3..5]);
                let n = seg[5];
                if seg.len() != 6 + 3 * usize::from(n) {
                    return Err(JpegError::Malformed(marker));
                }
                let comps = seg[6..]
                    .chunks_exact(3)
                    .map(|c| Component {
                        id: c[0],
                        h: c[1] >> 4,
                        v: c[1] & 0x0f,
                        tq: c[2],
                    })
                    .collect();
                components = Some((width, height, comps));
            }
            0xc2..=0xcb | 0xcd..=0xcf if marker != 0xc4 && marker != 0xc8 => {
                return Err(JpegError::NotBaseline(marker));
            }
            0xcc => return Err(JpegError::NotBaseline(marker)),
            0xc4 => {
                let mut rest = seg;
                while !rest.is_empty() {
                    if rest.len() < 17 {
                        return Err(JpegError::Malformed(marker));
                    }
                    let (class, id) = (rest[0] >> 4, rest[0] & 0x0f);
                    if class > 1 || id > 3 {
                        return Err(JpegError::Malformed(marker));
                    }
                    let mut counts = [0u8; 16];
                    counts.copy_from_slice(&rest[1..17]);
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let symbols = rest.get(17..17 + n).ok_or(JpegError::Malformed(marker))?;
                    huffman.retain(|(k, _, _)| *k != (class, id));
                    huffman.push(((class, id), counts, symbols.to_vec()));
                    rest = &rest[17 + n..];
                }
            }
            0xdb => {
                let mut rest = seg;
                while !rest.is_empty() {
                    let (pq, tq) = (rest[0] >> 4, usize::from(rest[0] & 0x0f));
                    if pq > 1 || tq > 3 {
                        return Err(JpegError::Malformed(marker));
                    }
                    let size = if pq == 1 { 128 } else { 64 };
                    let body = rest.get(1..1 + size).ok_or(JpegError::Malformed(marker))?;
                    let mut t = [0u16; 64];
                    for (k, v) in t.iter_mut().enumerate() {
                        *v = if pq == 1 {
                            read_u16(&body[2 * k..])
                        } else {
                            u16::from(body[k])
                        };
                    }
                    qtables[tq] = Some(t);
                    rest = &rest[1 + size..];
                }
            }
            0xdd => {
                if seg.len() != 2 {
                    return Err(JpegError::Malformed(marker));
                }
                restart_interval = read_u16(seg);
            }
            0xda => {
                let (width, height, comps) = components.ok_or(JpegError::NoFrameHeader)?;
                let scan_start = pos;
                let scan_end = find_scan_end(jpeg, scan_start)?;
                return describe(
                    width,
                    height,
                    &comps,
                    &qtables,
                    &huffman,
                    seg,
                    restart_interval,
                    scan_start..scan_end,
                );
            }
            _ => {} // APPn, COM, and anything else a decoder skips too
        }
    }
}

/// Where the entropy-coded data ends: at EOI. Another marker first (a second scan, DNL)
/// means more than one baseline pass.
fn find_scan_end(jpeg: &[u8], start: usize) -> Result<usize, JpegError> {
    let mut i = start;
    loop {
        let at = jpeg[i..]
            .iter()
            .position(|&b| b == 0xff)
            .ok_or(JpegError::Truncated)?;
        i += at;
        let mut j = i + 1;
        while jpeg.get(j) == Some(&0xff) {
            j += 1;
        }
        match jpeg.get(j) {
            None => return Err(JpegError::Truncated),
            Some(0x00 | 0xd0..=0xd7) => i = j + 1,
            Some(0xd9) => return Ok(i),
            Some(_) => return Err(JpegError::NotOneScan),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn describe(
    width: u16,
    height: u16,
    comps: &[Component],
    qtables: &[Option<[u16; 64]>; 4],
    huffman: &[DefinedTable],
    sos: &[u8],
    restart_interval: u16,
    scan: Range<usize>,
) -> Result<JpegInfo, JpegError> {
    if comps.len() != 3 {
        return Err(JpegError::Components(comps.len() as u8));
    }
    let sampling: Vec<(u8, u8)> = comps.iter().map(|c| (c.h, c.v)).collect();
    let base_type = match sampling[..] {
        [(2, 1), (1, 1), (1, 1)] => 0,
        [(2, 2), (1, 1), (1, 1)] => 1,
        _ => {
            // Name it by the ratio of luma to chroma sampling, as people do.
            let (y, c) = (sampling[0], sampling[1]);
            let ratio = (c.0 > 0 && c.1 > 0 && y.0 % c.0 == 0 && y.1 % c.1 == 0)
                .then(|| (y.0 / c.0, y.1 / c.1));
            let usual = match ratio {
                Some((1, 1)) => "4:4:4",
                Some((2, 1)) => "4:2:2",
                Some((2, 2)) => "4:2:0",
                Some((4, 1)) => "4:1:1",
                Some((1, 2)) => "4:4:0",
                _ => "",
            };
            let name = if usual.is_empty() {
                format!("{sampling:?}")
            } else if ratio == Some((1, 1)) {
                usual.to_string()
            } else {
                format!("{usual} (sampling factors {sampling:?})")
            };
            return Err(JpegError::Sampling(name));
        }
    };
    if width == 0
        || height == 0
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
        || width % 8 != 0
        || height % 8 != 0
    {
        return Err(JpegError::Size { width, height });
    }
    // The scan: one interleaved pass over Y, Cb, Cr in frame order.
    if sos.is_empty() || sos[0] != 3 || sos.len() != 1 + 2 * 3 + 3 {
        return Err(JpegError::NotOneScan);
    }
    let selectors: Vec<(u8, u8, u8)> = sos[1..7]
        .chunks_exact(2)
        .map(|c| (c[0], c[1] >> 4, c[1] & 0x0f))
        .collect();
    if selectors.iter().zip(comps).any(|(s, c)| s.0 != c.id) {
        return Err(JpegError::NotOneScan);
    }
    if sos[7..] != [0, 63, 0] {
        return Err(JpegError::NotOneScan);
    }
    let effective = |class: u8, id: u8| -> Result<(Vec<u8>, Vec<u8>), JpegError> {
        if let Some((_, counts, symbols)) = huffman.iter().find(|(k, _, _)| *k == (class, id)) {
            return Ok((counts.to_vec(), symbols.clone()));
        }
        // No DHT for this slot: a motion-JPEG decoder installs the standard tables, luma
        // in slot 0 and chroma in slot 1 (the usual MJPEG-from-a-webcam case).
        let std = match (class, id) {
            (0, 0) => STD_DC_LUMA,
            (0, 1) => STD_DC_CHROMA,
            (1, 0) => STD_AC_LUMA,
            (1, 1) => STD_AC_CHROMA,
            _ => return Err(JpegError::MissingTable),
        };
        Ok((std.counts.to_vec(), std.symbols.to_vec()))
    };
    let is =
        |got: (Vec<u8>, Vec<u8>), want: HuffmanSpec| got.0 == want.counts && got.1 == want.symbols;
    for (i, &(_, td, ta)) in selectors.iter().enumerate() {
        let (dc, ac) = if i == 0 {
            (STD_DC_LUMA, STD_AC_LUMA)
        } else {
            (STD_DC_CHROMA, STD_AC_CHROMA)
        };
        if !is(effective(0, td)?, dc) || !is(effective(1, ta)?, ac) {
            return Err(JpegError::NonStandardHuffman);
        }
    }
    let table = |tq: u8| -> Result<[u8; 64], JpegError> {
        let t = qtables
            .get(usize::from(tq))
            .copied()
            .flatten()
            .ok_or(JpegError::MissingTable)?;
        let mut out = [0u8; 64];
        for (o, &v) in out.iter_mut().zip(&t) {
            *o = u8::try_from(v).map_err(|_| JpegError::WideQuantTable)?;
        }
        Ok(out)
    };
    let luma = table(comps[0].tq)?;
    let cb = table(comps[1].tq)?;
    let cr = table(comps[2].tq)?;
    if cb != cr {
        return Err(JpegError::SplitChromaTables);
    }
    let jpeg_type = base_type
        + if restart_interval > 0 {
            TYPE_RESTART
        } else {
            0
        };
    Ok(JpegInfo {
        jpeg_type,
        width,
        height,
        restart_interval,
        tables: [luma, cb],
        scan,
    })
}

/// RFC 2435 Appendix A: the luminance and chrominance tables for Q 1–99, in zig-zag
/// order (as DQT and the quantization table header carry them). Q = 50 gives the tables
/// of T.81 Annex K; lower Q scales them up (coarser), higher down (finer), each entry
/// clamped to 1–255. Q outside 1–99 is clamped.
///
/// The RFC's listing indexes its natural-order Annex K tables straight, which yields
/// natural order; DQT wants zig-zag, so the table is read through `ZIGZAG` here (as
/// GStreamer and libjpeg-derived depayloaders do).
pub fn q_tables(q: u8) -> [[u8; 64]; 2] {
    let q = u32::from(q.clamp(1, 99));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let make = |base: &[u8; 64]| {
        let mut out = [0u8; 64];
        for (k, o) in out.iter_mut().enumerate() {
            let v = (u32::from(base[ZIGZAG[k]]) * scale + 50) / 100;
            *o = v.clamp(1, 255) as u8;
        }
        out
    };
    [make(&STD_LUMA_QUANT), make(&STD_CHROMA_QUANT)]
}

fn push_segment(out: &mut Vec<u8>, marker: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend([0xff, marker, 0, 0]);
    let start = out.len() - 2;
    body(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
}

/// One DHT segment (marker included, 420 bytes) with the four Annex K tables, luma DC and
/// AC then chroma DC and AC: what RTP/JPEG receivers and motion-JPEG decoders assume.
pub fn push_standard_dht(out: &mut Vec<u8>) {
    push_segment(out, 0xc4, |o| {
        for (tc_th, spec) in [
            (0x00, STD_DC_LUMA),
            (0x10, STD_AC_LUMA),
            (0x01, STD_DC_CHROMA),
            (0x11, STD_AC_CHROMA),
        ] {
            o.push(tc_th);
            o.extend(spec.counts);
            o.extend(spec.symbols);
        }
    });
}

/// RFC 2435 Appendix B: a complete baseline JPEG from what RTP/JPEG carries. `jpeg_type`
/// is 0/1 (64/65 with restart markers), `tables` luma then chroma in zig-zag order (16-bit
/// entries above 255 make a 16-bit DQT), `scan` the entropy-coded data (an EOI at its end
/// is kept, not doubled). Appends to `out`.
pub fn rebuild_jpeg(
    jpeg_type: u8,
    width: u16,
    height: u16,
    tables: &[[u16; 64]; 2],
    restart_interval: u16,
    scan: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend([0xff, 0xd8]);
    push_segment(out, 0xdb, |o| {
        for (id, t) in tables.iter().enumerate() {
            let wide = t.iter().any(|&v| v > 255);
            o.push((u8::from(wide) << 4) | id as u8);
            for &v in t {
                if wide {
                    o.extend(v.to_be_bytes());
                } else {
                    o.push(v as u8);
                }
            }
        }
    });
    let y_sampling = if jpeg_type & 0x3f == 0 { 0x21 } else { 0x22 };
    push_segment(out, 0xc0, |o| {
        o.push(8);
        o.extend(height.to_be_bytes());
        o.extend(width.to_be_bytes());
        o.extend([3, 1, y_sampling, 0, 2, 0x11, 1, 3, 0x11, 1]);
    });
    push_standard_dht(out);
    if jpeg_type >= TYPE_RESTART && restart_interval > 0 {
        push_segment(out, 0xdd, |o| o.extend(restart_interval.to_be_bytes()));
    }
    push_segment(out, 0xda, |o| {
        o.extend([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    });
    out.extend(scan);
    if !scan.ends_with(&[0xff, 0xd9]) {
        out.extend([0xff, 0xd9]);
    }
}

/// Widens 8-bit tables for `rebuild_jpeg`.
pub fn widen(tables: &[[u8; 64]; 2]) -> [[u16; 64]; 2] {
    let mut out = [[0u16; 64]; 2];
    for (o, t) in out.iter_mut().zip(tables) {
        for (a, &b) in o.iter_mut().zip(t) {
            *a = u16::from(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const J420: &[u8] = include_bytes!("../../tests/fixtures/testsrc-64x48-420.jpg");
    const J422: &[u8] = include_bytes!("../../tests/fixtures/smpte-64x48-422-gstreamer.jpg");
    /// ffmpeg writes 4:2:2 as Y 2×2, chroma 1×2: the same picture, another MCU layout.
    const J422_2X2: &[u8] = include_bytes!("../../tests/fixtures/testsrc-64x48-422-ffmpeg-2x2.jpg");
    const J444: &[u8] = include_bytes!("../../tests/fixtures/testsrc-64x48-444.jpg");
    const JOPT: &[u8] =
        include_bytes!("../../tests/fixtures/testsrc-64x48-420-optimal-huffman.jpg");

    #[test]
    fn ffmpeg_baseline_420_and_422_are_carried() {
        let i = check_jpeg(J420).unwrap();
        assert_eq!(
            (i.jpeg_type, i.width, i.height, i.restart_interval),
            (1, 64, 48, 0)
        );
        assert_eq!(&J420[i.scan.end..i.scan.end + 2], &[0xff, 0xd9]);
        let i = check_jpeg(J422).unwrap();
        assert_eq!(i.jpeg_type, 0);
    }

    #[test]
    fn what_rtp_jpeg_cannot_carry_is_named() {
        let e = check_jpeg(J444).unwrap_err();
        assert_eq!(e, JpegError::Sampling("4:4:4".into()));
        assert!(e.needs_reencode());
        let e = check_jpeg(J422_2X2).unwrap_err();
        assert!(e.needs_reencode(), "{e}");
        assert!(e.to_string().contains("4:2:2"), "{e}");
        let e = check_jpeg(JOPT).unwrap_err();
        assert_eq!(e, JpegError::NonStandardHuffman);
        assert!(e.needs_reencode() && !e.is_size());
        assert_eq!(check_jpeg(b"\x89PNG"), Err(JpegError::NotJpeg));
        for len in 2..J420.len() - 2 {
            assert!(check_jpeg(&J420[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn sizes_rtp_jpeg_cannot_say_mention_the_flag() {
        let info = check_jpeg(J420).unwrap();
        let mut out = Vec::new();
        rebuild_jpeg(
            1,
            2048,
            48,
            &widen(&info.tables),
            0,
            info.scan(J420),
            &mut out,
        );
        let e = check_jpeg(&out).unwrap_err();
        assert!(e.is_size() && !e.needs_reencode());
        assert!(e.to_string().contains("--size"), "{e}");
        out.clear();
        rebuild_jpeg(
            1,
            60,
            48,
            &widen(&info.tables),
            0,
            info.scan(J420),
            &mut out,
        );
        assert_eq!(
            check_jpeg(&out),
            Err(JpegError::Size {
                width: 60,
                height: 48
            })
        );
    }

    #[test]
    fn rebuilt_jpeg_carries_the_same_scan_and_tables() {
        for (src, t) in [(J420, 1), (J422, 0)] {
            let info = check_jpeg(src).unwrap();
            let mut out = Vec::new();
            rebuild_jpeg(t, 64, 48, &widen(&info.tables), 0, info.scan(src), &mut out);
            let again = check_jpeg(&out).unwrap();
            assert_eq!(again.tables, info.tables);
            assert_eq!(again.scan(&out), info.scan(src));
            assert_eq!((again.jpeg_type, again.width, again.height), (t, 64, 48));
            assert!(out.ends_with(&[0xff, 0xd9]));
        }
    }

    #[test]
    fn rebuilt_headers_golden() {
        let tables = q_tables(50);
        let mut out = Vec::new();
        rebuild_jpeg(65, 16, 8, &widen(&tables), 3, &[0x12, 0x34], &mut out);
        let mut want = vec![0xff, 0xd8, 0xff, 0xdb, 0x00, 0x84, 0x00];
        want.extend(tables[0]);
        want.push(0x01);
        want.extend(tables[1]);
        want.extend([
            0xff, 0xc0, 0x00, 0x11, 8, 0x00, 0x08, 0x00, 0x10,
            3, // SOF0: 8 bit, 8 high, 16 wide
            1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, // Y 2×2 table 0, Cb and Cr 1×1 table 1
            0xff, 0xc4, 0x01, 0xa2, // DHT with the four Annex K tables
        ]);
        for (class_id, spec) in [
            (0x00, STD_DC_LUMA),
            (0x10, STD_AC_LUMA),
            (0x01, STD_DC_CHROMA),
            (0x11, STD_AC_CHROMA),
        ] {
            want.push(class_id);
            want.extend(spec.counts);
            want.extend(spec.symbols);
        }
        want.extend([0xff, 0xdd, 0x00, 0x04, 0x00, 0x03]); // DRI 3
        want.extend([
            0xff, 0xda, 0x00, 0x0c, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0, // SOS
            0x12, 0x34, 0xff, 0xd9,
        ]);
        assert_eq!(out, want);
        // a scan that brings its own EOI does not get a second one
        out.clear();
        rebuild_jpeg(0, 16, 8, &widen(&tables), 0, &[0x12, 0xff, 0xd9], &mut out);
        assert!(out.ends_with(&[0x11, 0, 63, 0, 0x12, 0xff, 0xd9]));
    }

    #[test]
    fn restart_interval_makes_dri_and_type_plus_64() {
        let info = check_jpeg(J420).unwrap();
        let mut out = Vec::new();
        rebuild_jpeg(
            65,
            64,
            48,
            &widen(&info.tables),
            4,
            info.scan(J420),
            &mut out,
        );
        let again = check_jpeg(&out).unwrap();
        assert_eq!((again.jpeg_type, again.restart_interval), (65, 4));
        assert!(out.windows(6).any(|w| w == [0xff, 0xdd, 0, 4, 0, 4]));
    }

    #[test]
    fn appendix_a_tables() {
        // Q = 50 is Annex K itself, in zig-zag order.
        let [l, c] = q_tables(50);
        assert_eq!(l[..8], [16, 11, 12, 14, 12, 10, 16, 14]);
        assert_eq!(l[63], 99);
        assert_eq!(c[..6], [17, 18, 18, 24, 21, 24]);
        for k in 0..64 {
            assert_eq!(l[k], STD_LUMA_QUANT[ZIGZAG[k]]);
            assert_eq!(c[k], STD_CHROMA_QUANT[ZIGZAG[k]]);
        }
        // Q < 50: scale 5000/Q; Q = 25 doubles.
        let [l25, _] = q_tables(25);
        assert_eq!(l25[0], 32);
        // Q = 1: everything saturates at 255 except nothing (16 × 50 = 800).
        assert!(q_tables(1).iter().flatten().all(|&v| v == 255));
        // Q = 99: scale 2, (16×2+50)/100 = 0 → clamped to 1; (121×2+50)/100 = 2.
        let [l99, _] = q_tables(99);
        assert_eq!(l99[0], 1);
        assert!(l99.iter().all(|&v| (1..=2).contains(&v)));
        // Q = 75: scale 50, (16×50+50)/100 = 8.
        assert_eq!(q_tables(75)[0][0], 8);
        // rounding: (11 × 50 + 50)/100 = 6
        assert_eq!(q_tables(75)[0][1], 6);
        // monotonic in Q
        for q in 1..99 {
            let (a, b) = (q_tables(q), q_tables(q + 1));
            assert!(a
                .iter()
                .flatten()
                .zip(b.iter().flatten())
                .all(|(x, y)| x >= y));
        }
    }

    #[test]
    fn standard_huffman_tables_are_complete_codes() {
        for spec in [STD_DC_LUMA, STD_DC_CHROMA, STD_AC_LUMA, STD_AC_CHROMA] {
            let n: usize = spec.counts.iter().map(|&c| usize::from(c)).sum();
            assert_eq!(n, spec.symbols.len());
            // Kraft sum below 1 (JPEG reserves the all-ones code)
            let kraft: f64 = spec
                .counts
                .iter()
                .enumerate()
                .map(|(i, &c)| f64::from(c) / f64::from(1u32 << (i + 1)))
                .sum();
            assert!(kraft < 1.0);
        }
        // ffmpeg's "-huffman default" writes exactly these: the fixture parsed as standard.
        assert!(check_jpeg(J420).is_ok());
    }
}
