//! The standard Huffman tables of ITU-T T.81 Annex K.3, for MJPEG frames that leave them out.
//!
//! Many UVC webcams send every MJPEG frame without a DHT segment: Motion-JPEG (as in AVI
//! files) defines that a frame without tables uses these. libjpeg-turbo and ffmpeg know the
//! convention; a strict JPEG decoder does not, and refuses a frame that names Huffman tables
//! it never defined. Inserting the tables makes the frame a complete JPEG file.

use cam_proto::rtp::jpeg::push_standard_dht;

use std::borrow::Cow;

use super::jpeg::{self, JpegError, JpegScan};

/// One DHT segment (marker included) defining all four standard tables: 420 bytes. The
/// tables are kept once, in `cam_proto::rtp::jpeg` (RTP/JPEG receivers rebuild the same).
pub fn standard_dht_segment() -> Vec<u8> {
    let mut segment = Vec::with_capacity(420);
    push_standard_dht(&mut segment);
    segment
}

/// True when a frame of this kind decodes with the standard tables: sequential Huffman-coded
/// JPEG (SOF0 baseline, SOF1 extended), which is what MJPEG cameras send. Progressive,
/// lossless and arithmetic-coded frames are left alone.
fn takes_standard_tables(sof_marker: u8) -> bool {
    matches!(sof_marker, 0xC0 | 0xC1)
}

/// `jpeg` with the standard tables inserted before its first SOS when it has no DHT segment
/// of its own; unchanged (borrowed) otherwise. Everything else stays byte for byte.
pub fn with_standard_tables(jpeg: &[u8]) -> Result<Cow<'_, [u8]>, JpegError> {
    let scan = jpeg::scan(jpeg)?;
    Ok(with_standard_tables_scanned(jpeg, &scan))
}

/// [`with_standard_tables`] for a JPEG already scanned (`scan` must come from `jpeg`).
pub fn with_standard_tables_scanned<'a>(jpeg: &'a [u8], scan: &JpegScan) -> Cow<'a, [u8]> {
    match scan.first_sos {
        Some(at) if !scan.has_dht && takes_standard_tables(scan.sof_marker) => {
            Cow::Owned(insert_at(jpeg, at))
        }
        _ => Cow::Borrowed(jpeg),
    }
}

/// Copies `jpeg` with the segment at `at`, which the caller found to be a marker boundary.
fn insert_at(jpeg: &[u8], at: usize) -> Vec<u8> {
    let (head, tail) = jpeg.split_at(at.min(jpeg.len()));
    let segment = standard_dht_segment();
    let mut out = Vec::with_capacity(jpeg.len() + segment.len());
    out.extend_from_slice(head);
    out.extend_from_slice(&segment);
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cam_proto::rtp::jpeg::{
        HuffmanSpec, STD_AC_CHROMA, STD_AC_LUMA, STD_DC_CHROMA, STD_DC_LUMA,
    };

    /// Annex K's tables with the class (0 DC, 1 AC) and destination a DHT gives them.
    const STANDARD_TABLES: [(u8, u8, HuffmanSpec); 4] = [
        (0, 0, STD_DC_LUMA),
        (1, 0, STD_AC_LUMA),
        (0, 1, STD_DC_CHROMA),
        (1, 1, STD_AC_CHROMA),
    ];
    use turbojpeg::{Compressor, Decompressor, Image, PixelFormat, Subsamp};

    /// A picture with edges, gradients and noise, so that many Huffman codes get used.
    pub(crate) fn textured_rgb(width: usize, height: usize) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(width * height * 3);
        let mut noise = 0x2545_F491u32;
        for y in 0..height {
            for x in 0..width {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                let jitter = (noise % 48) as usize;
                let edge = if (x / 9 + y / 7) % 2 == 0 { 0 } else { 90 };
                rgb.extend_from_slice(&[
                    ((x * 255 / width + jitter) % 256) as u8,
                    ((y * 255 / height + edge) % 256) as u8,
                    ((x * y / 3 + jitter * 2) % 256) as u8,
                ]);
            }
        }
        rgb
    }

    /// What a webcam's MJPEG encoder makes: baseline JPEG, here with turbojpeg's default
    /// (standard, not optimised) Huffman tables.
    pub(crate) fn camera_like_jpeg(width: usize, height: usize, subsamp: Subsamp) -> Vec<u8> {
        let rgb = textured_rgb(width, height);
        let mut compressor = Compressor::new().expect("compressor");
        compressor.set_quality(85).expect("quality");
        compressor.set_subsamp(subsamp).expect("subsampling");
        compressor
            .compress_to_vec(Image {
                pixels: rgb.as_slice(),
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            })
            .expect("encodes")
    }

    /// Marker segments before the image data: (marker, segment body without its length).
    fn header_segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
        let mut segments = Vec::new();
        let mut pos = 2;
        loop {
            assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
            let marker = jpeg[pos + 1];
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            segments.push((marker, &jpeg[pos + 4..pos + 2 + length]));
            if marker == 0xDA {
                return segments;
            }
            pos += 2 + length;
        }
    }

    /// Every table the JPEG's DHT segments define, however they are split into segments.
    fn defined_tables(jpeg: &[u8]) -> Vec<(u8, u8, [u8; 16], Vec<u8>)> {
        let mut tables = Vec::new();
        for (_, mut body) in header_segments(jpeg)
            .into_iter()
            .filter(|(marker, _)| *marker == 0xC4)
        {
            while !body.is_empty() {
                let class_and_id = body[0];
                let bits: [u8; 16] = body[1..17].try_into().expect("16 counts");
                let count: usize = bits.iter().map(|&n| usize::from(n)).sum();
                let values = body[17..17 + count].to_vec();
                tables.push((class_and_id >> 4, class_and_id & 0x0F, bits, values));
                body = &body[17 + count..];
            }
        }
        tables.sort();
        tables
    }

    fn standard_as_defined() -> Vec<(u8, u8, [u8; 16], Vec<u8>)> {
        let mut tables: Vec<_> = STANDARD_TABLES
            .iter()
            .map(|&(class, id, t)| (class, id, t.counts, t.symbols.to_vec()))
            .collect();
        tables.sort();
        tables
    }

    /// Removes every DHT segment, as many MJPEG cameras deliver their frames.
    pub(crate) fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            let marker = jpeg[pos + 1];
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[pos..pos + 2 + length]);
            }
            pos += 2 + length;
            if marker == 0xDA {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
        }
    }

    pub(crate) fn decode_rgb(jpeg: &[u8]) -> Result<(usize, usize, Vec<u8>), turbojpeg::Error> {
        let mut decompressor = Decompressor::new()?;
        let header = decompressor.read_header(jpeg)?;
        let mut image = Image {
            pixels: vec![0; header.width * header.height * 3],
            width: header.width,
            pitch: header.width * 3,
            height: header.height,
            format: PixelFormat::RGB,
        };
        decompressor.decompress(jpeg, image.as_deref_mut())?;
        Ok((header.width, header.height, image.pixels))
    }

    #[test]
    fn tables_have_the_sizes_annex_k_gives() {
        let counts: Vec<usize> = STANDARD_TABLES
            .iter()
            .map(|(_, _, t)| t.counts.iter().map(|&n| usize::from(n)).sum())
            .collect();
        assert_eq!(counts, [12, 162, 12, 162]);
        for (_, _, table) in STANDARD_TABLES {
            let count: usize = table.counts.iter().map(|&n| usize::from(n)).sum();
            assert_eq!(count, table.symbols.len(), "{table:?}");
            // Kraft: a complete prefix code never uses more than the code space, and the
            // all-ones code is left unused (C.2).
            let used: u32 = table
                .counts
                .iter()
                .enumerate()
                .map(|(i, &n)| u32::from(n) << (15 - i))
                .sum();
            assert!(used < 1 << 16, "{table:?}");
        }
        let segment = standard_dht_segment();
        assert_eq!(segment.len(), 420);
        assert_eq!(&segment[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
    }

    /// The tables written here from the standard and the ones libjpeg-turbo writes when
    /// Huffman optimisation is off (its default, and the camstream encoder's setting) are the
    /// same two independent transcriptions of Annex K. With optimisation on they differ,
    /// which shows the comparison can fail.
    #[test]
    fn turbojpeg_default_tables_are_annex_k() {
        for subsamp in [Subsamp::Sub2x2, Subsamp::Sub2x1] {
            let jpeg = camera_like_jpeg(48, 32, subsamp);
            assert_eq!(defined_tables(&jpeg), standard_as_defined(), "{subsamp:?}");
        }
        let ours = crate::encode::JpegEncoder::new(60)
            .expect("encoder")
            .encode_rgb(&textured_rgb(40, 24), 40, 24)
            .expect("encodes");
        assert_eq!(defined_tables(&ours), standard_as_defined());

        let rgb = textured_rgb(64, 48);
        let mut optimising = Compressor::new().expect("compressor");
        optimising.set_optimize(true).expect("optimize");
        let optimised = optimising
            .compress_to_vec(Image {
                pixels: rgb.as_slice(),
                width: 64,
                pitch: 64 * 3,
                height: 48,
                format: PixelFormat::RGB,
            })
            .expect("encodes");
        assert_ne!(defined_tables(&optimised), standard_as_defined());
    }

    /// The test: strip the tables, insert the standard ones, get exactly the original
    /// pixels back.
    #[test]
    fn inserted_tables_decode_to_exactly_the_original_pixels() {
        for (width, height, subsamp) in [
            (320, 240, Subsamp::Sub2x1), // 4:2:2, as most MJPEG webcams encode
            (96, 64, Subsamp::Sub2x2),
            (37, 23, Subsamp::Sub2x1), // partial MCUs at the edges
        ] {
            let original = camera_like_jpeg(width, height, subsamp);
            let (_, _, original_pixels) = decode_rgb(&original).expect("original decodes");

            let stripped = strip_dht(&original);
            assert!(!jpeg::scan(&stripped).expect("still parses").has_dht);
            assert!(stripped.len() + 400 < original.len());

            // libjpeg-turbo (jdhuff.c, jinit_huff_decoder) loads the Annex K tables when a
            // frame defines none, because Motion-JPEG frames leave them out. So turbojpeg,
            // like the viewer, decodes the stripped frame, and to the same pixels. Decoders
            // without that rule (a strict baseline decoder, many platform image libraries)
            // stop at the first scan that names an undefined table; the insertion is for them.
            let (_, _, stripped_pixels) =
                decode_rgb(&stripped).expect("libjpeg-turbo supplies the standard tables");
            assert!(stripped_pixels == original_pixels);

            let repaired = with_standard_tables(&stripped).expect("valid JPEG");
            assert!(matches!(repaired, Cow::Owned(_)));
            let scan = jpeg::scan(&repaired).expect("parses");
            assert!(scan.has_dht);
            assert_eq!(scan.end, Some(repaired.len()));
            assert_eq!(defined_tables(&repaired), standard_as_defined());

            let (w, h, repaired_pixels) = decode_rgb(&repaired).expect("repaired decodes");
            assert_eq!((w, h), (width, height));
            assert!(
                repaired_pixels == original_pixels,
                "{width}x{height} {subsamp:?}: pixels differ after insertion"
            );

            // Only the segment was added: everything before and after is untouched.
            let at = jpeg::scan(&stripped)
                .expect("parses")
                .first_sos
                .expect("has SOS");
            assert_eq!(&repaired[..at], &stripped[..at]);
            assert_eq!(&repaired[at..at + 420], standard_dht_segment().as_slice());
            assert_eq!(&repaired[at + 420..], &stripped[at..]);
        }
    }

    #[test]
    fn frames_with_tables_are_left_alone() {
        let original = camera_like_jpeg(32, 32, Subsamp::Sub2x2);
        assert!(matches!(
            with_standard_tables(&original),
            Ok(Cow::Borrowed(bytes)) if bytes == original.as_slice()
        ));
    }

    #[test]
    fn progressive_frames_are_left_alone() {
        let rgb = textured_rgb(32, 32);
        let mut compressor = Compressor::new().expect("compressor");
        compressor.set_progressive(true).expect("progressive");
        let progressive = compressor
            .compress_to_vec(Image {
                pixels: rgb.as_slice(),
                width: 32,
                pitch: 32 * 3,
                height: 32,
                format: PixelFormat::RGB,
            })
            .expect("encodes");
        let stripped = strip_dht(&progressive);
        assert!(matches!(
            with_standard_tables(&stripped),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(with_standard_tables(b"").is_err());
        assert!(with_standard_tables(b"not a jpeg").is_err());
        let stripped = strip_dht(&camera_like_jpeg(24, 16, Subsamp::Sub2x1));
        for len in 0..stripped.len() {
            let _ = with_standard_tables(&stripped[..len]);
        }
    }
}
