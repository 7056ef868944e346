//! Headless decoding: YUV planes (nothing draws, so no upsampling or colour conversion), and
//! strip-parallel decoding of frames that carry restart intervals of whole MCU rows.
//!
//! One core here decodes 4K at about 31 fps into BGRX: too close to 30 for a live stream. A
//! frame from `cam-client` at 1440p or more has eight restart intervals
//! (`cam_proto::restart`); each interval is rebuilt as a JPEG of its own (without DRI, so that
//! libjpeg-turbo keeps its fast Huffman path) and the threads decode runs of them. Decoding to
//! planes has no cross-row filtering (fancy chroma upsampling would read the neighbouring
//! strip's rows), so strip output is bit-for-bit the whole-frame output;
//! `strips_decode_exactly_like_the_whole_frame` checks it.

use cam_proto::restart::{Layout, StripRange};
use turbojpeg::{Decompressor, YuvImage};

use crate::decode::{
    is_libjpeg_warning, turbojpeg_message, DecodeError, Decoded, ImageSize, JpegDecoder,
    MAX_DIMENSION,
};

/// `CAMSTREAM_DECODE_THREADS=1` decodes every frame whole on one thread.
pub const THREADS_ENV: &str = "CAMSTREAM_DECODE_THREADS";

/// Decodes frames to planes, in strips where the frame allows it.
pub struct PlanesDecoder {
    workers: Vec<Worker>,
    /// PNG (classic mode) and anything that is not a JPEG go the display's way.
    pictures: JpegDecoder,
    pixels: Vec<u32>,
    strips_decoded: u64,
}

struct Worker {
    decompressor: Decompressor,
    /// One per strip this worker decoded for the current frame (`used` of them).
    outs: Vec<StripOut>,
    used: usize,
}

#[derive(Default)]
struct StripOut {
    /// The strip rebuilt as a JPEG of its own.
    jpeg: Vec<u8>,
    /// Y, U and V of the strip's rows (of the whole frame when decoded whole).
    planes: Vec<u8>,
    /// First image row and rows in `planes`.
    rows: (u32, u32),
}

impl std::fmt::Debug for PlanesDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanesDecoder")
            .field("threads", &self.workers.len())
            .field("strips_decoded", &self.strips_decoded)
            .finish_non_exhaustive()
    }
}

/// Threads for strip decoding: the environment's choice, or the cores (at most 4).
pub fn threads_wanted() -> usize {
    cam_net::threads::wanted(THREADS_ENV)
}

impl PlanesDecoder {
    pub fn new(threads: usize) -> Result<Self, DecodeError> {
        let workers = (0..threads.max(1))
            .map(|_| {
                Ok(Worker {
                    decompressor: Decompressor::new()
                        .map_err(|e| DecodeError::Init(e.to_string()))?,
                    outs: Vec::new(),
                    used: 0,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(PlanesDecoder {
            workers,
            pictures: JpegDecoder::new()?,
            pixels: Vec::new(),
            strips_decoded: 0,
        })
    }

    /// Frames decoded in strips so far.
    pub fn strips_decoded(&self) -> u64 {
        self.strips_decoded
    }

    /// The planes of the last frame: (first row, rows, Y then U then V of those rows, with
    /// libjpeg-turbo's plane sizes at row alignment 1), top to bottom.
    pub fn planes(&self) -> impl Iterator<Item = (u32, u32, &[u8])> {
        self.workers
            .iter()
            .flat_map(|w| &w.outs[..w.used])
            .map(|o| (o.rows.0, o.rows.1, o.planes.as_slice()))
    }

    /// Decodes `jpeg` (or a PNG) and counts it as [`JpegDecoder::decode_into`] would.
    pub fn decode(&mut self, jpeg: &[u8]) -> Result<Decoded, DecodeError> {
        for w in &mut self.workers {
            w.used = 0;
        }
        if crate::picture::is_png(jpeg) {
            return self.pictures.decode_into(jpeg, &mut self.pixels);
        }
        let header = self.workers[0].decompressor.read_header(jpeg);
        let header = match header {
            Ok(h) => h,
            Err(e) => return Err(self.failed(DecodeError::Corrupt(turbojpeg_message(e)))),
        };
        let (width, height) = (header.width, header.height);
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(DecodeError::BadSize { width, height });
        }
        let size = ImageSize { width, height };
        if self.workers.len() > 1 {
            if let Some(layout) = Layout::scan(jpeg) {
                // One strip per interval; each thread takes a run of them.
                let strips = layout.strips(layout.segments.len());
                if strips.len() > 1 && usize::from(layout.height) == height {
                    match self.decode_strips(jpeg, &layout, &strips) {
                        Ok(warning) => {
                            self.strips_decoded += 1;
                            return Ok(Decoded { size, warning });
                        }
                        // A strip failed outright: the whole-frame decode below says how
                        // badly (it may still be a warning there).
                        Err(()) => self.reset(),
                    }
                }
            }
        }
        let worker = &mut self.workers[0];
        if worker.outs.is_empty() {
            worker.outs.push(StripOut::default());
        }
        worker.used = 1;
        let result = decode_whole(
            &mut worker.decompressor,
            &mut worker.outs[0],
            jpeg,
            height as u32,
        );
        match result {
            Ok(warning) => Ok(Decoded { size, warning }),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The first warning of any strip, or `Err` if a strip could not be decoded at all.
    fn decode_strips(
        &mut self,
        jpeg: &[u8],
        layout: &Layout,
        strips: &[StripRange],
    ) -> Result<Option<String>, ()> {
        let threads = self.workers.len().min(strips.len());
        let results: Vec<Result<Option<String>, DecodeError>> = std::thread::scope(|scope| {
            let mut jobs = self
                .workers
                .iter_mut()
                .enumerate()
                .take(threads)
                .map(|(t, w)| {
                    let mine =
                        &strips[t * strips.len() / threads..(t + 1) * strips.len() / threads];
                    (w, mine)
                });
            let (here, here_strips) = jobs.next().expect("at least one thread");
            let handles: Vec<_> = jobs
                .map(|(worker, mine)| scope.spawn(move || decode_run(worker, jpeg, layout, mine)))
                .collect();
            let mut results = vec![decode_run(here, jpeg, layout, here_strips)];
            results.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            results
        });
        let mut warning = None;
        for r in results {
            match r {
                Ok(w) => warning = warning.or(w),
                Err(_) => return Err(()),
            }
        }
        Ok(warning)
    }

    fn failed(&mut self, e: DecodeError) -> DecodeError {
        self.reset();
        e
    }

    /// As `JpegDecoder` does after an error: libjpeg-turbo 3.1 can be left mid-header.
    fn reset(&mut self) {
        for w in &mut self.workers {
            w.used = 0;
            if let Ok(fresh) = Decompressor::new() {
                w.decompressor = fresh;
            }
        }
    }
}

/// Decodes a run of strips, one after another, into the worker's outputs.
fn decode_run(
    worker: &mut Worker,
    jpeg: &[u8],
    layout: &Layout,
    strips: &[StripRange],
) -> Result<Option<String>, DecodeError> {
    if worker.outs.len() < strips.len() {
        worker.outs.resize_with(strips.len(), StripOut::default);
    }
    worker.used = strips.len();
    let mut warning = None;
    for (out, strip) in worker.outs.iter_mut().zip(strips) {
        let mut own = std::mem::take(&mut out.jpeg);
        layout.strip_jpeg(jpeg, strip, &mut own);
        let result = decode_whole(&mut worker.decompressor, out, &own, strip.rows);
        out.jpeg = own;
        out.rows = (strip.first_row, strip.rows);
        warning = warning.or(result?);
    }
    Ok(warning)
}

/// Decodes `jpeg` into `out.planes`: `Ok(Some(warning))` when libjpeg completed the image
/// from damaged data.
fn decode_whole(
    decompressor: &mut Decompressor,
    out: &mut StripOut,
    jpeg: &[u8],
    rows: u32,
) -> Result<Option<String>, DecodeError> {
    let header = decompressor
        .read_header(jpeg)
        .map_err(|e| DecodeError::Corrupt(turbojpeg_message(e)))?;
    let len = turbojpeg::yuv_pixels_len(header.width, 1, header.height, header.subsamp)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    out.planes.resize(len, 0);
    out.rows = (0, rows);
    let image = YuvImage {
        pixels: out.planes.as_mut_slice(),
        width: header.width,
        align: 1,
        height: header.height,
        subsamp: header.subsamp,
    };
    match decompressor.decompress_to_yuv(jpeg, image) {
        Ok(()) => Ok(None),
        Err(e) => {
            let message = turbojpeg_message(e);
            if is_libjpeg_warning(&message) {
                Ok(Some(message))
            } else {
                Err(DecodeError::Corrupt(message))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cam_proto::restart;
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

    fn textured(width: usize, height: usize) -> Vec<u8> {
        (0..width * height * 3)
            .map(|i| ((i % (width * 3)) * 2 + (i / (width * 3)) * 3 + (i * 7919) % 37) as u8)
            .collect()
    }

    /// Bands of `band` rows encoded separately and stitched, as the client does.
    fn restart_jpeg(rgb: &[u8], width: usize, height: usize, band: usize) -> Vec<u8> {
        let mut c = Compressor::new().unwrap();
        c.set_quality(85).unwrap();
        c.set_subsamp(Subsamp::Sub2x2).unwrap();
        let bands: Vec<Vec<u8>> = (0..height)
            .step_by(band)
            .map(|first| {
                let rows = band.min(height - first);
                c.compress_to_vec(Image {
                    pixels: &rgb[first * width * 3..(first + rows) * width * 3],
                    width,
                    pitch: width * 3,
                    height: rows,
                    format: PixelFormat::RGB,
                })
                .unwrap()
            })
            .collect();
        let parts: Vec<&[u8]> = bands.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        restart::stitch(&parts, &mut out).unwrap();
        out
    }

    fn whole_planes(jpeg: &[u8]) -> Vec<u8> {
        let mut one = PlanesDecoder::new(1).unwrap();
        one.decode(jpeg).unwrap();
        let planes = one.planes().next().unwrap().2.to_vec();
        planes
    }

    /// Y, U, V of the strips laid end to end per plane, as a whole-frame plane buffer is.
    fn joined(decoder: &PlanesDecoder, width: usize) -> Vec<u8> {
        let (mut y, mut u, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for (_, rows, planes) in decoder.planes() {
            let rows = rows as usize;
            let y_len = width.next_multiple_of(2) * rows.next_multiple_of(2);
            let c_len = width.div_ceil(2) * rows.div_ceil(2);
            y.extend_from_slice(&planes[..y_len]);
            u.extend_from_slice(&planes[y_len..y_len + c_len]);
            v.extend_from_slice(&planes[y_len + c_len..y_len + 2 * c_len]);
        }
        [y, u, v].concat()
    }

    #[test]
    fn strips_decode_exactly_like_the_whole_frame() {
        // Even and odd heights, bands of 1 and 3 MCU rows, 2..4 threads.
        for (width, height, band, threads) in [
            (320, 240, 16, 2),
            (200, 150, 48, 3),
            (96, 61, 16, 4),
            (640, 480, 32, 4),
        ] {
            let jpeg = restart_jpeg(&textured(width, height), width, height, band);
            let mut strips = PlanesDecoder::new(threads).unwrap();
            let decoded = strips.decode(&jpeg).unwrap();
            assert_eq!(decoded.warning, None);
            assert_eq!(decoded.size, ImageSize { width, height });
            assert_eq!(strips.strips_decoded(), 1, "{width}x{height} was not cut");
            let rows: u32 = strips.planes().map(|p| p.1).sum();
            assert_eq!(rows as usize, height);
            assert!(
                joined(&strips, width) == whole_planes(&jpeg),
                "{width}x{height}, bands of {band}, {threads} threads"
            );
        }
    }

    #[test]
    fn frames_without_restarts_and_pngs_decode_whole() {
        let rgb = textured(64, 48);
        let plain = turbojpeg::compress(
            Image {
                pixels: rgb.as_slice(),
                width: 64,
                pitch: 192,
                height: 48,
                format: PixelFormat::RGB,
            },
            80,
            Subsamp::Sub2x2,
        )
        .unwrap();
        let mut d = PlanesDecoder::new(2).unwrap();
        assert!(d.decode(&plain).unwrap().warning.is_none());
        assert_eq!(d.strips_decoded(), 0);
        assert_eq!(d.planes().count(), 1);
    }

    #[test]
    fn damaged_strip_frames_warn_or_fail_and_never_poison() {
        let (width, height) = (160, 128);
        let jpeg = restart_jpeg(&textured(width, height), width, height, 32);
        let mut d = PlanesDecoder::new(2).unwrap();
        let reference = {
            d.decode(&jpeg).unwrap();
            joined(&d, width)
        };
        for cut in (0..jpeg.len()).step_by(97) {
            let _ = d.decode(&jpeg[..cut]);
            let mut flipped = jpeg.clone();
            flipped[cut] ^= 0x55;
            let _ = d.decode(&flipped);
            let good = d.decode(&jpeg).unwrap();
            assert_eq!(good.warning, None, "after damage at {cut}");
            assert!(joined(&d, width) == reference, "after damage at {cut}");
        }
        assert!(matches!(d.decode(b"garbage"), Err(DecodeError::Corrupt(_))));
    }
}
