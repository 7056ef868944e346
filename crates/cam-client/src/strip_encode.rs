//! Strip-parallel JPEG encoding of large 4:2:0 frames.
//!
//! One core encodes 4K at about 39 fps, so a 4K stream at 30 fps has no room left for the
//! rest of the pipeline on that core. The frame is cut into [`SEGMENTS`] bands of whole MCU
//! rows; the bands are encoded as separate JPEGs on several threads, then joined with restart
//! markers between them ([`cam_proto::restart::stitch`]). The result is one ordinary JPEG
//! whose restart intervals the viewer decodes in parallel too.

use cam_proto::restart;
use turbojpeg::{Compressor, Subsamp, YuvPlanesImage};

use crate::encode::EncodeError;

/// Restart intervals per frame: more than any thread count used here, so that a decoder with
/// 2, 4 or 8 threads gets bands of about equal height; each costs one more tj3 call and a
/// restart marker (a few bytes).
pub const SEGMENTS: usize = 8;
/// Frames at least this large (pixels) are cut: 1440p and 4K. Below it one thread keeps up
/// with the codec's rate, and the threads' hand-overs would only cost CPU.
pub const MIN_AREA: usize = 2_500_000;
/// `CAMSTREAM_ENCODE_THREADS=1` turns strips off; another number sets the threads.
pub const THREADS_ENV: &str = "CAMSTREAM_ENCODE_THREADS";
/// 4:2:0: one MCU row is 16 pixel rows.
const MCU_ROWS: usize = 16;

/// One compressor and its buffers per thread.
pub struct StripEncoder {
    workers: Vec<Worker>,
    joined: Vec<u8>,
}

struct Worker {
    compressor: Compressor,
    scratch: Vec<u8>,
    /// The encoded bands this worker made for the current frame, in order.
    bands: Vec<Vec<u8>>,
}

impl std::fmt::Debug for StripEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripEncoder")
            .field("threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// Threads for strip encoding: the environment's choice, or the cores (at most 4).
pub fn threads_wanted() -> usize {
    cam_net::threads::wanted(THREADS_ENV)
}

impl StripEncoder {
    /// `None` with one thread: strips would only add work.
    pub fn new(threads: usize) -> Result<Option<Self>, EncodeError> {
        if threads < 2 {
            return Ok(None);
        }
        let workers = (0..threads)
            .map(|_| {
                let mut compressor = Compressor::new()?;
                compressor.set_subsamp(Subsamp::Sub2x2)?;
                Ok(Worker {
                    compressor,
                    scratch: Vec::new(),
                    bands: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, EncodeError>>()?;
        Ok(Some(StripEncoder {
            workers,
            joined: Vec::new(),
        }))
    }

    /// Whether a frame this size is worth cutting.
    pub fn wants(width: usize, height: usize) -> bool {
        width * height >= MIN_AREA && height >= 2 * MCU_ROWS
    }

    /// Encodes I420 planes (`y_stride` at least the even-rounded width; chroma rows
    /// `ceil(width/2)` long) and returns the stitched JPEG.
    pub fn encode(
        &mut self,
        quality: u8,
        [y, u, v]: [&[u8]; 3],
        y_stride: usize,
        width: usize,
        height: usize,
    ) -> Result<&[u8], EncodeError> {
        let bands = band_rows(height, SEGMENTS);
        let chroma_width = width.div_ceil(2);
        let threads = self.workers.len();
        let per_worker = bands.len().div_ceil(threads);
        let results: Vec<Result<(), EncodeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .zip(bands.chunks(per_worker))
                .map(|(worker, mine)| {
                    scope.spawn(move || -> Result<(), EncodeError> {
                        worker.compressor.set_quality(i32::from(quality))?;
                        worker.bands.resize_with(mine.len(), Vec::new);
                        for (out, &(first, rows)) in worker.bands.iter_mut().zip(mine) {
                            let worst =
                                turbojpeg::compressed_buf_len(width, rows, Subsamp::Sub2x2)?;
                            if worker.scratch.len() < worst {
                                worker.scratch.resize(worst, 0);
                            }
                            let c0 = first / 2;
                            let image = YuvPlanesImage {
                                y_plane: &y[first * y_stride..],
                                u_plane: &u[c0 * chroma_width..],
                                v_plane: &v[c0 * chroma_width..],
                                width,
                                height: rows,
                                y_stride,
                                u_stride: chroma_width,
                                v_stride: chroma_width,
                                subsamp: Subsamp::Sub2x2,
                            };
                            let len = worker
                                .compressor
                                .compress_yuv_planes_to_slice(&image, &mut worker.scratch)?;
                            out.clear();
                            out.extend_from_slice(&worker.scratch[..len]);
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.into_iter().collect::<Result<(), _>>()?;
        let used = bands.len().div_ceil(per_worker);
        let parts: Vec<&[u8]> = self.workers[..used]
            .iter()
            .flat_map(|w| w.bands.iter().map(Vec::as_slice))
            .collect();
        restart::stitch(&parts, &mut self.joined).map_err(EncodeError::Stitch)?;
        Ok(&self.joined)
    }
}

/// Cuts `height` rows into at most `parts` bands of whole MCU rows, all the same height but
/// the last: (first row, rows) each.
pub fn band_rows(height: usize, parts: usize) -> Vec<(usize, usize)> {
    let mcu_rows = height.div_ceil(MCU_ROWS);
    let per_band = mcu_rows.div_ceil(parts.max(1)) * MCU_ROWS;
    (0..height)
        .step_by(per_band)
        .map(|first| (first, per_band.min(height - first)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encode::JpegEncoder;
    use turbojpeg::{Decompressor, YuvImage};

    fn planes(width: usize, height: usize) -> [Vec<u8>; 3] {
        let cw = width.div_ceil(2);
        let ch = height.div_ceil(2);
        let y = (0..width * height)
            .map(|i| ((i % width) * 3 + (i / width) * 5 + (i * 7919) % 23) as u8)
            .collect();
        let u = (0..cw * ch).map(|i| (i * 13 % 251) as u8).collect();
        let v = (0..cw * ch).map(|i| (255 - i * 7 % 200) as u8).collect();
        [y, u, v]
    }

    fn yuv(jpeg: &[u8]) -> Vec<u8> {
        let mut d = Decompressor::new().unwrap();
        let h = d.read_header(jpeg).unwrap();
        let len = turbojpeg::yuv_pixels_len(h.width, 1, h.height, h.subsamp).unwrap();
        let mut image = YuvImage {
            pixels: vec![0; len],
            width: h.width,
            align: 1,
            height: h.height,
            subsamp: h.subsamp,
        };
        d.decompress_to_yuv(jpeg, image.as_deref_mut()).unwrap();
        image.pixels
    }

    #[test]
    fn bands_are_whole_mcu_rows() {
        assert_eq!(
            band_rows(2160, 8),
            (0..8)
                .map(|i| (i * 272, if i < 7 { 272 } else { 256 }))
                .collect::<Vec<_>>()
        );
        assert_eq!(band_rows(40, 8), vec![(0, 16), (16, 16), (32, 8)]);
    }

    /// A band JPEG encodes its MCUs exactly as a whole-frame encode does (same tables, DCT,
    /// quantisation; only DC prediction restarts), so the stitched frame decodes to the very
    /// samples of a whole-frame encode.
    #[test]
    fn stitched_frame_decodes_like_a_whole_frame_encode() {
        for (width, height) in [(320, 240), (200, 136), (64, 40)] {
            let [y, u, v] = planes(width, height);
            let mut strips = StripEncoder::new(3).unwrap().unwrap();
            let stitched = strips
                .encode(80, [&y, &u, &v], width, width, height)
                .unwrap()
                .to_vec();
            let layout = restart::Layout::scan(&stitched).unwrap();
            assert_eq!(layout.segments.len(), band_rows(height, SEGMENTS).len());
            assert!(layout.rows_per_interval.is_some());

            let mut whole = JpegEncoder::new(80).unwrap();
            let plain = whole.encode_i420_planes(&y, &u, &v, width, height).unwrap();
            assert_eq!(restart::Layout::scan(&plain).unwrap().restart_interval, 0);
            assert!(yuv(&stitched) == yuv(&plain), "{width}x{height} differs");
        }
    }
}
