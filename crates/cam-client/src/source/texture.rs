//! Textured frames: a fixed noise field drifting over a gradient, with a moving bar. JPEG
//! sizes then behave like a real scene's (the test card compresses far too well to load a
//! link), and every run produces the same frames, so benchmarks and adaptation tests repeat.

use crate::encode::JpegEncoder;
use crate::source::pattern::check_size;
use crate::source::{FrameSource, SourceError, SourceFrame, SourceOptions};

/// Noise amplitude: with it, 1280x720 at quality 80 comes to about 200 KB, like a webcam.
const NOISE: u8 = 48;

pub struct Texture {
    width: usize,
    height: usize,
    noise: Vec<u8>,
    rgb: Vec<u8>,
    encoder: JpegEncoder,
    frame: u64,
}

impl std::fmt::Debug for Texture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

impl Texture {
    pub fn new(opts: &SourceOptions) -> Result<Texture, SourceError> {
        check_size(opts.width, opts.height)?;
        let mut texture = Texture {
            width: 0,
            height: 0,
            noise: Vec::new(),
            rgb: Vec::new(),
            encoder: JpegEncoder::new(opts.quality)?,
            frame: 0,
        };
        texture.resize(opts.width as usize, opts.height as usize);
        Ok(texture)
    }

    fn resize(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        // xorshift32: deterministic, and fast enough to fill 4K once.
        let mut state = 0x2545_f491_u32;
        self.noise = (0..width * height * 3)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % u32::from(NOISE)) as u8
            })
            .collect();
        self.rgb = vec![0; width * height * 3];
    }

    fn render(&mut self) {
        let (w, h) = (self.width, self.height);
        let shift = (self.frame as usize * 3) % w;
        let bar_x = (self.frame as usize * 8) % w;
        let bar_w = (w / 16).max(2);
        for y in 0..h {
            let row = &mut self.rgb[y * w * 3..(y + 1) * w * 3];
            let noise_row = &self.noise[y * w * 3..(y + 1) * w * 3];
            let gy = (y * 160 / h) as u8;
            for x in 0..w {
                let nx = (x + shift) % w;
                let gx = (x * 160 / w) as u8;
                let n = &noise_row[nx * 3..nx * 3 + 3];
                let in_bar = x >= bar_x && x < bar_x + bar_w;
                let px = &mut row[x * 3..x * 3 + 3];
                if in_bar {
                    px.copy_from_slice(&[230, 230, 230]);
                } else {
                    px[0] = gx.saturating_add(n[0]);
                    px[1] = gy.saturating_add(n[1]);
                    px[2] = (160 - gx / 2).saturating_add(n[2]);
                }
            }
        }
    }
}

impl Texture {
    /// Renders the next frame without encoding it: packed RGB, rows unpadded. The benchmark
    /// writes these as raw video, so that every pipeline encodes the same pictures.
    pub fn next_rgb(&mut self) -> &[u8] {
        self.render();
        self.frame = self.frame.wrapping_add(1);
        &self.rgb
    }
}

impl FrameSource for Texture {
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        self.render();
        let jpeg = self
            .encoder
            .encode_rgb(&self.rgb, self.width, self.height)?;
        self.frame = self.frame.wrapping_add(1);
        Ok(Some(SourceFrame {
            jpeg,
            // check_size keeps both sides at most 4096.
            width: self.width as u16,
            height: self.height as u16,
        }))
    }

    fn is_live(&self) -> bool {
        false
    }

    fn can_reencode(&self) -> bool {
        true
    }

    fn configure(&mut self, quality: u8, width: u32, height: u32) -> Result<(), SourceError> {
        self.encoder.set_quality(quality)?;
        if (width as usize, height as usize) != (self.width, self.height) {
            check_size(width, height)?;
            self.resize(width as usize, height as usize);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "textured frames {}x{} q{}",
            self.width,
            self.height,
            self.encoder.quality()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(w: u32, h: u32, q: u8) -> SourceOptions {
        SourceOptions {
            width: w,
            height: h,
            fps: 30,
            quality: q,
            ..SourceOptions::default()
        }
    }

    #[test]
    fn frames_are_realistically_large_repeatable_and_moving() {
        let mut a = Texture::new(&opts(1280, 720, 80)).unwrap();
        let mut b = Texture::new(&opts(1280, 720, 80)).unwrap();
        let f0 = a.next_frame().unwrap().unwrap();
        let f1 = a.next_frame().unwrap().unwrap();
        assert_eq!(b.next_frame().unwrap().unwrap(), f0);
        assert_ne!(f0.jpeg, f1.jpeg);
        assert_eq!((f0.width, f0.height), (1280, 720));
        assert!(
            (120_000..400_000).contains(&f0.jpeg.len()),
            "{}",
            f0.jpeg.len()
        );
    }

    #[test]
    fn configure_changes_quality_and_size() {
        let mut t = Texture::new(&opts(640, 480, 80)).unwrap();
        let big = t.next_frame().unwrap().unwrap().jpeg.len();
        t.configure(30, 320, 240).unwrap();
        let f = t.next_frame().unwrap().unwrap();
        assert_eq!((f.width, f.height), (320, 240));
        assert!(f.jpeg.len() * 4 < big, "{} vs {big}", f.jpeg.len());
        assert!(t.configure(30, 7, 7).is_err());
    }
}
