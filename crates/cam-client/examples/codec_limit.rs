//! The codec limit: how fast libjpeg-turbo alone encodes the frames of a y4m file from their
//! I420 planes (as `cam-client --source FILE.y4m` does) and decodes the results into BGRX (as
//! the viewer does; RGB, and I420 as GStreamer's `jpegdec` outputs, for reference), in this
//! process, one thread, no network.
//!
//! codec_limit FILE.y4m [QUALITY] [SECONDS_PER_STEP]
//!
//! Prints one JSON line. Times are medians of single calls, so a busy machine's preemptions
//! do not count; `limit_fps` is min(encode fps, decode fps), `floor_ms` encode + decode.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cam_client::encode::JpegEncoder;
use cam_client::source::y4m::{FrameRead, Y4mReader};
use turbojpeg::{Decompressor, Image, PixelFormat, Subsamp, YuvImage};

/// Distinct frames kept in memory.
const MAX_FRAMES: usize = 16;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codec_limit: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        bail!("usage: codec_limit FILE.y4m [QUALITY] [SECONDS_PER_STEP]");
    };
    let quality: u8 = args.get(2).map_or(Ok(80), |q| q.parse())?;
    let step = Duration::from_secs_f64(args.get(3).map_or(Ok(2.0), |s| s.parse())?);
    let file = File::open(path).with_context(|| format!("cannot open {path}"))?;
    let mut reader = Y4mReader::new(BufReader::new(file))?;
    let header = *reader.header();
    let (w, h) = (header.width as usize, header.height as usize);
    let (luma, chroma) = header.plane_lens();
    let mut frames = Vec::new();
    loop {
        let mut frame = Vec::new();
        if frames.len() == MAX_FRAMES || reader.read_frame(&mut frame)? != FrameRead::Frame {
            break;
        }
        frames.push(frame);
    }
    if frames.is_empty() {
        bail!("{path} holds no frames");
    }

    let mut encoder = JpegEncoder::new(quality)?;
    let mut jpegs = vec![Vec::new(); frames.len()];
    let mut i = 0;
    let encode = median_call(step, || {
        let n = i % frames.len();
        i += 1;
        let (y, rest) = frames[n].split_at(luma);
        let (u, v) = rest.split_at(chroma);
        encoder.encode_i420_planes_into(y, u, v, w, h, &mut jpegs[n])
    })?;
    let jpeg_bytes = jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len();

    let mut decompressor = Decompressor::new()?;
    let mut pixels = vec![0u8; w * h * 4];
    let mut decode_as = |format: PixelFormat, bytes_per_pixel: usize| {
        let mut i = 0;
        median_call(step, || {
            let jpeg = &jpegs[i % jpegs.len()];
            i += 1;
            let image = Image {
                pixels: &mut pixels[..w * h * bytes_per_pixel],
                width: w,
                pitch: w * bytes_per_pixel,
                height: h,
                format,
            };
            decompressor.decompress(jpeg, image)
        })
    };
    let decode_bgrx = decode_as(PixelFormat::BGRX, 4)?;
    let decode_rgb = decode_as(PixelFormat::RGB, 3)?;
    // What GStreamer's jpegdec outputs: planes, no chroma upsampling, no colour conversion.
    let i420_len = turbojpeg::yuv_pixels_len(w, 1, h, Subsamp::Sub2x2)?;
    let mut planes = vec![0u8; i420_len];
    let mut i = 0;
    let decode_i420 = median_call(step, || {
        let jpeg = &jpegs[i % jpegs.len()];
        i += 1;
        let image = YuvImage {
            pixels: &mut planes[..],
            width: w,
            align: 1,
            height: h,
            subsamp: Subsamp::Sub2x2,
        };
        decompressor.decompress_to_yuv(jpeg, image)
    })?;

    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let fps = |d: Duration| (10.0 / d.as_secs_f64()).round() / 10.0;
    let limit = encode.max(decode_bgrx);
    println!(
        "{}",
        serde_json::json!({
            "width": w,
            "height": h,
            "quality": quality,
            "frames": frames.len(),
            "jpeg_bytes": jpeg_bytes,
            "encode_ms": ms(encode),
            "decode_bgrx_ms": ms(decode_bgrx),
            "decode_rgb_ms": ms(decode_rgb),
            "decode_i420_ms": ms(decode_i420),
            "encode_fps": fps(encode),
            "decode_fps": fps(decode_bgrx),
            "limit_fps": fps(limit),
            "floor_ms": ms(encode + decode_bgrx),
        })
    );
    Ok(())
}

/// Calls `f` for about `step` after a short warm-up and returns the median duration of a call.
fn median_call<E: std::error::Error + Send + Sync + 'static>(
    step: Duration,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Duration> {
    for _ in 0..5 {
        f()?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < step || times.len() < 20 {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}
