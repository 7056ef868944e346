//! Fitting frames to RTP/JPEG (RFC 2435), whose receivers rebuild the JPEG headers
//! themselves: only baseline 4:2:0 or 4:2:2 with the standard Huffman tables survives that
//! trip. A frame that is anything else (a file with optimised tables, 4:4:4, grayscale,
//! progressive) is re-encoded here, once per frame, with a log line the first time; a size
//! RTP/JPEG cannot describe is an error that names `--size`.

use cam_proto::machine::{OutgoingFrame, SendError};
use cam_proto::rtp::{check_jpeg, JpegError};
use turbojpeg::{PixelFormat, Subsamp};

#[derive(Debug)]
pub struct RtpFit {
    quality: u8,
    told: bool,
    reencoded: u64,
}

impl RtpFit {
    pub fn new(quality: u8) -> RtpFit {
        RtpFit {
            quality,
            told: false,
            reencoded: 0,
        }
    }

    /// Frames re-encoded so far.
    pub fn reencoded(&self) -> u64 {
        self.reencoded
    }

    /// The frame as RTP/JPEG can carry it.
    pub fn fit(&mut self, mut frame: OutgoingFrame) -> Result<OutgoingFrame, SendError> {
        let why = match check_jpeg(&frame.data) {
            Ok(_) => return Ok(frame),
            Err(e) if e.needs_reencode() => e,
            // A size no re-encoding can fix, or a damaged frame: as the sender would judge it.
            Err(e) => return Err(e.send_error()),
        };
        frame.data = reencode(&frame.data, self.quality, &why)?;
        self.reencoded += 1;
        if !self.told {
            log::info!(
                "re-encoding frames for RTP/JPEG ({why}): baseline 4:2:0, standard tables, quality {}",
                self.quality
            );
            self.told = true;
        }
        Ok(frame)
    }
}

/// A frame that cannot be decoded is skipped like a damaged one: the next may be fine.
fn reencode(jpeg: &[u8], quality: u8, why: &JpegError) -> Result<Vec<u8>, SendError> {
    let unfit = |e: turbojpeg::Error| {
        log::debug!("cannot re-encode a frame for RTP/JPEG ({why}): {e}; skipped");
        SendError::Empty
    };
    let image = turbojpeg::decompress(jpeg, PixelFormat::RGB).map_err(unfit)?;
    let out = turbojpeg::compress(image.as_deref(), i32::from(quality), Subsamp::Sub2x2)
        .map_err(unfit)?;
    Ok(out.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    fn frame(data: Vec<u8>) -> OutgoingFrame {
        OutgoingFrame {
            data,
            width: 64,
            height: 48,
            capture_ts_us: 0,
        }
    }

    fn gradient(width: usize, height: usize) -> turbojpeg::Image<Vec<u8>> {
        let pixels = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]
            })
            .collect();
        turbojpeg::Image {
            pixels,
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        }
    }

    #[test]
    fn carriable_frames_pass_untouched_others_are_reencoded_once_told() {
        let image = gradient(64, 48);
        let plain = turbojpeg::compress(image.as_deref(), 80, Subsamp::Sub2x2).unwrap();
        let mut fit = RtpFit::new(80);
        assert_eq!(fit.fit(frame(plain.to_vec())).unwrap().data, plain.to_vec());
        assert_eq!(fit.reencoded(), 0);

        // 4:4:4 is not RTP/JPEG's: re-encoded to something check_jpeg takes.
        let full = turbojpeg::compress(image.as_deref(), 80, Subsamp::None).unwrap();
        assert!(check_jpeg(&full).unwrap_err().needs_reencode());
        let fitted = fit.fit(frame(full.to_vec())).unwrap();
        let info = check_jpeg(&fitted.data).unwrap();
        assert_eq!((info.width, info.height), (64, 48));
        assert_eq!(fit.reencoded(), 1);

        // Optimised Huffman tables are not the standard ones.
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(80).unwrap();
        c.set_subsamp(Subsamp::Sub2x2).unwrap();
        c.set_optimize(true).unwrap();
        let optimised = c.compress_to_vec(image.as_deref()).unwrap();
        assert_eq!(
            check_jpeg(&optimised).unwrap_err(),
            JpegError::NonStandardHuffman
        );
        assert!(check_jpeg(&fit.fit(frame(optimised)).unwrap().data).is_ok());
    }

    #[test]
    fn a_damaged_frame_is_skipped_not_the_end_of_the_run() {
        let mut fit = RtpFit::new(80);
        for damaged in [&b"\xff\xd8 not a jpeg"[..], b"plain garbage", b""] {
            let err = fit.fit(frame(damaged.to_vec())).unwrap_err();
            assert!(!err.is_fatal(), "{err}");
        }
    }

    #[test]
    fn sizes_rtp_cannot_say_name_the_flag() {
        let image = gradient(60, 44);
        let odd = turbojpeg::compress(image.as_deref(), 80, Subsamp::Sub2x2).unwrap();
        let err = RtpFit::new(80).fit(frame(odd.to_vec())).unwrap_err();
        assert!(err.is_fatal());
        assert!(err.to_string().contains("--size"), "{err}");
    }
}
