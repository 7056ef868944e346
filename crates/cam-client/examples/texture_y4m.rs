//! Writes the textured source's frames (noise, gradient, motion: what `--source texture`
//! sends) as raw I420 video, so that the benchmark can feed camstream and GStreamer the very
//! same pictures.
//!
//! texture_y4m WIDTHxHEIGHT FRAMES OUT.y4m [RAW_DIR]
//!
//! The samples are full-range BT.601 (JPEG's own YCbCr) and the stream says so
//! (`XCOLORRANGE=FULL`): `cam-client --source OUT.y4m` then encodes them untouched, exactly as
//! GStreamer's `jpegenc`, which never converts, does. With RAW_DIR each frame is also written as
//! RAW_DIR/NNNNN.i420 (the same bytes as in the y4m file), for `multifilesrc loop=true`: GStreamer
//! cannot loop a y4m file from the command line.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cam_client::source::texture::Texture;
use cam_client::source::SourceOptions;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("texture_y4m: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: texture_y4m WIDTHxHEIGHT FRAMES OUT.y4m [RAW_DIR]");
    }
    let (width, height) = args[1]
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .with_context(|| format!("'{}' is not WIDTHxHEIGHT", args[1]))?;
    let frames: u32 = args[2]
        .parse()
        .with_context(|| format!("'{}' is not a frame count", args[2]))?;
    let out = PathBuf::from(&args[3]);
    let raw_dir = args.get(4).map(PathBuf::from);
    if let Some(dir) = &raw_dir {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut texture = Texture::new(&SourceOptions {
        width,
        height,
        ..SourceOptions::default()
    })?;
    let file = File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut y4m = BufWriter::with_capacity(1 << 20, file);
    writeln!(
        y4m,
        "YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL"
    )?;
    let (w, h) = (width as usize, height as usize);
    let mut i420 = Vec::new();
    for n in 0..frames {
        rgb_to_i420(texture.next_rgb(), w, h, &mut i420);
        y4m.write_all(b"FRAME\n")?;
        y4m.write_all(&i420)?;
        if let Some(dir) = &raw_dir {
            let path = dir.join(format!("{n:05}.i420"));
            fs::write(&path, &i420).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    y4m.flush()?;
    eprintln!(
        "texture_y4m: {frames} frames of {width}x{height} in {}",
        out.display()
    );
    Ok(())
}

/// Packed RGB to planar 4:2:0, full-range BT.601 as JFIF defines it; chroma is the mean of
/// each 2x2 block (edge blocks of odd sizes use what exists).
fn rgb_to_i420(rgb: &[u8], w: usize, h: usize, out: &mut Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.resize(w * h + 2 * cw * ch, 0);
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    // 16.16 fixed point.
    let fix = |v: f64| (v * 65536.0).round() as i32;
    let clamp = |v: i32| ((v + 32768) >> 16).clamp(0, 255) as u8;
    for (y_row, rgb_row) in y_plane.chunks_exact_mut(w).zip(rgb.chunks_exact(w * 3)) {
        for (y, p) in y_row.iter_mut().zip(rgb_row.chunks_exact(3)) {
            let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
            *y = clamp(fix(0.299) * r + fix(0.587) * g + fix(0.114) * b);
        }
    }
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b, mut n) = (0i32, 0i32, 0i32, 0i32);
            for y in (cy * 2)..(cy * 2 + 2).min(h) {
                for x in (cx * 2)..(cx * 2 + 2).min(w) {
                    let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    r += i32::from(p[0]);
                    g += i32::from(p[1]);
                    b += i32::from(p[2]);
                    n += 1;
                }
            }
            let (r, g, b) = (r / n, g / n, b / n);
            u_plane[cy * cw + cx] =
                clamp((128 << 16) - fix(0.168736) * r - fix(0.331264) * g + fix(0.5) * b);
            v_plane[cy * cw + cx] =
                clamp((128 << 16) + fix(0.5) * r - fix(0.418688) * g - fix(0.081312) * b);
        }
    }
}
