//! Pictures that are not JPEG: classic mode also carries PNG (the Python example sends one).
//! Which kind a frame holds is told by its magic bytes; this module decodes PNG into the same
//! `0x00RRGGBB` layout the JPEG path produces, and re-encodes it to JPEG for `--record`.

use std::cell::RefCell;
use std::io::Cursor;

pub use cam_proto::classic::ImageKind;
use png::{ColorType, Decoder, Limits, Transformations};
use turbojpeg::{Compressor, Image, PixelFormat};

use crate::decode::{DecodeError, Decoded, ImageSize, MAX_DIMENSION};

/// Memory the PNG decoder may reserve: an 8192x8192 RGBA picture.
const PNG_MEMORY_LIMIT: usize = MAX_DIMENSION * MAX_DIMENSION * 4;

/// True when `bytes` start with the PNG signature.
pub fn is_png(bytes: &[u8]) -> bool {
    ImageKind::sniff(bytes) == Some(ImageKind::Png)
}

/// File name extension for a frame's bytes: `png` for PNG, `jpg` for everything else.
pub fn extension(bytes: &[u8]) -> &'static str {
    ImageKind::sniff(bytes).map_or("jpg", ImageKind::extension)
}

thread_local! {
    /// The decoder's 8-bit output before it is packed into `u32`s; kept per thread so that
    /// steady-state decoding does not allocate.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decodes a PNG into `pixels` (one `0x00RRGGBB` per pixel, rows top to bottom). Alpha is
/// dropped; grey, palette and 16-bit pictures are expanded to 8-bit colour.
pub fn decode_png_into(png: &[u8], pixels: &mut Vec<u32>) -> Result<Decoded, DecodeError> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (size, colour) = decode_png_8bit(png, &mut scratch)?;
        let channels = channels(colour);
        pixels.clear();
        pixels.extend(scratch.chunks_exact(channels).map(|p| match channels {
            1 | 2 => u32::from(p[0]) * 0x0001_0101,
            _ => u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]),
        }));
        Ok(Decoded {
            size,
            warning: None,
        })
    })
}

/// Re-encodes a PNG as a JPEG of `quality` (1–100), for recordings that hold only JPEG.
pub fn png_to_jpeg(png: &[u8], quality: i32) -> Result<Vec<u8>, DecodeError> {
    let mut pixels = Vec::new();
    let (size, colour) = decode_png_8bit(png, &mut pixels)?;
    let format = match colour {
        ColorType::Grayscale => PixelFormat::GRAY,
        ColorType::Rgba => PixelFormat::RGBA,
        ColorType::Rgb => PixelFormat::RGB,
        // Grey with alpha has no turbojpeg format: widen it to RGBA.
        _ => {
            pixels = pixels
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            PixelFormat::RGBA
        }
    };
    let mut compressor = Compressor::new().map_err(|e| DecodeError::Init(e.to_string()))?;
    compressor
        .set_quality(quality)
        .map_err(|e| DecodeError::Init(e.to_string()))?;
    compressor
        .compress_to_vec(Image {
            pixels: &pixels[..],
            width: size.width,
            pitch: size.width * format.size(),
            height: size.height,
            format,
        })
        .map_err(|e| DecodeError::Corrupt(format!("cannot re-encode a PNG frame as JPEG: {e}")))
}

fn channels(colour: ColorType) -> usize {
    match colour {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        _ => 4,
    }
}

/// Decodes into 8-bit grey, grey+alpha, RGB or RGBA samples, checking the size before
/// reserving any memory for the picture.
fn decode_png_8bit(png: &[u8], out: &mut Vec<u8>) -> Result<(ImageSize, ColorType), DecodeError> {
    let corrupt = |e: png::DecodingError| DecodeError::CorruptPng(e.to_string());
    let mut decoder = Decoder::new_with_limits(
        Cursor::new(png),
        Limits {
            bytes: PNG_MEMORY_LIMIT,
        },
    );
    decoder.set_transformations(Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let (width, height) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(DecodeError::BadSize { width, height });
    }
    let len = reader
        .output_buffer_size()
        .ok_or_else(|| DecodeError::CorruptPng("picture too large".into()))?;
    out.clear();
    out.resize(len, 0);
    let info = reader.next_frame(out).map_err(corrupt)?;
    out.truncate(info.buffer_size());
    // Rows are packed (8-bit samples), so the buffer is exactly width x height pixels.
    let colour = info.color_type;
    if out.len() != width * height * channels(colour) {
        return Err(DecodeError::CorruptPng(format!(
            "decoded {} bytes for a {width}x{height} {colour:?} picture",
            out.len()
        )));
    }
    Ok((ImageSize { width, height }, colour))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use crate::decode::JpegDecoder;

    fn encode_png(width: u32, height: u32, colour: ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(colour);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn rgb_grey_and_rgba_pngs_decode_to_exact_pixels() {
        let rgb = encode_png(2, 1, ColorType::Rgb, &[255, 0, 0, 1, 2, 3]);
        assert!(is_png(&rgb));
        assert_eq!(extension(&rgb), "png");
        let mut pixels = Vec::new();
        let decoded = decode_png_into(&rgb, &mut pixels).unwrap();
        assert_eq!((decoded.size.width, decoded.size.height), (2, 1));
        assert_eq!(pixels, vec![0x00FF_0000, 0x0001_0203]);

        let grey = encode_png(1, 2, ColorType::Grayscale, &[7, 200]);
        decode_png_into(&grey, &mut pixels).unwrap();
        assert_eq!(pixels, vec![0x0007_0707, 0x00C8_C8C8]);

        let rgba = encode_png(1, 1, ColorType::Rgba, &[9, 8, 7, 0]);
        decode_png_into(&rgba, &mut pixels).unwrap();
        assert_eq!(pixels, vec![0x0009_0807]);
    }

    #[test]
    fn the_shared_decoder_takes_png_and_refuses_damage() {
        let data: Vec<u8> = (0..16 * 16 * 3).map(|i| (i * 7) as u8).collect();
        let png = encode_png(16, 16, ColorType::Rgb, &data);
        let mut decoder = JpegDecoder::new().unwrap();
        let mut pixels = Vec::new();
        let decoded = decoder.decode_into(&png, &mut pixels).unwrap();
        assert_eq!(decoded.size.width, 16);
        assert_eq!(pixels[1], 0x0015_1C23, "pixel 1 is bytes 3..6: 21, 28, 35");
        let cut = &png[..png.len() / 2];
        assert!(decoder.decode_into(cut, &mut pixels).is_err());
        assert_eq!(extension(b"\xFF\xD8\xFF\xE0"), "jpg");
    }

    #[test]
    fn png_re_encoded_as_jpeg_decodes_to_the_same_size() {
        let data: Vec<u8> = (0..32 * 8 * 2).map(|i| (i * 3) as u8).collect();
        let png = encode_png(32, 8, ColorType::GrayscaleAlpha, &data);
        let jpeg = png_to_jpeg(&png, 85).unwrap();
        assert_eq!(ImageKind::sniff(&jpeg), Some(ImageKind::Jpeg));
        let mut pixels = Vec::new();
        let decoded = JpegDecoder::new()
            .unwrap()
            .decode_into(&jpeg, &mut pixels)
            .unwrap();
        assert_eq!((decoded.size.width, decoded.size.height), (32, 8));
    }
}
