//! Running without a window: frames are still decoded, so that `--headless` measures (and
//! counts failures of) the same work the window would do, on machines with no display.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::decode::{DecodeError, DecodeStats};
use crate::frame::ReceivedFrame;

/// How often `stop` is looked at while no frames come.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Decodes every frame until the channel disconnects or `stop` is set, counting outcomes in
/// `stats`. Fails only if the decoder cannot be created; `stop` is set on every exit so that
/// the receive worker ends too.
pub fn run_headless(
    frames: Receiver<ReceivedFrame>,
    stop: Arc<AtomicBool>,
    stats: &DecodeStats,
) -> Result<(), DecodeError> {
    let result = decode_loop(&frames, &stop, stats);
    stop.store(true, Ordering::SeqCst);
    result
}

fn decode_loop(
    frames: &Receiver<ReceivedFrame>,
    stop: &AtomicBool,
    stats: &DecodeStats,
) -> Result<(), DecodeError> {
    // Nothing draws: planes, in strips where the frame has restart intervals (strips.rs).
    let mut decoder = crate::strips::PlanesDecoder::new(crate::strips::threads_wanted())?;
    while !stop.load(Ordering::SeqCst) {
        let frame = match frames.recv_timeout(STOP_POLL) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let outcome = decoder.decode(&frame.jpeg);
        stats.record(&outcome);
        if outcome.is_ok() {
            stats.latency.record(frame.capture_ts_us);
        }
        match outcome {
            Ok(decoded) => {
                if let Some(warning) = decoded.warning {
                    log::debug!("frame {} from {}: {warning}", frame.seq, frame.sender);
                }
            }
            Err(e) => log::debug!("frame {} from {}: {e}", frame.seq, frame.sender),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use std::time::Instant;
    use turbojpeg::{Compressor, Image, PixelFormat};

    fn frame(seq: u32, jpeg: Vec<u8>) -> ReceivedFrame {
        ReceivedFrame {
            seq,
            jpeg,
            width: 0,
            height: 0,
            capture_ts_us: None,
            sender: "127.0.0.1:5000".parse().unwrap(),
            completed_at: Instant::now(),
        }
    }

    fn tiny_jpeg() -> Vec<u8> {
        let rgb = vec![200u8; 16 * 16 * 3];
        Compressor::new()
            .unwrap()
            .compress_to_vec(Image {
                pixels: &rgb[..],
                width: 16,
                pitch: 48,
                height: 16,
                format: PixelFormat::RGB,
            })
            .unwrap()
    }

    #[test]
    fn decodes_every_frame_and_ends_on_disconnect() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        for seq in 0..5 {
            tx.send(frame(seq, tiny_jpeg())).unwrap();
        }
        tx.send(frame(5, b"garbage".to_vec())).unwrap();
        drop(tx);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = DecodeStats::default();
        run_headless(rx, Arc::clone(&stop), &stats).unwrap();
        let counts = stats.snapshot();
        assert_eq!(counts.frames_decoded, 5);
        assert_eq!(counts.decode_errors, 1);
        assert_eq!(counts.frames_drawn, 0);
        assert!(stop.load(Ordering::SeqCst), "stop must be set on exit");
    }

    #[test]
    fn returns_soon_after_stop_is_set() {
        let (tx, rx) = crossbeam_channel::bounded::<ReceivedFrame>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            })
        };
        let started = Instant::now();
        run_headless(rx, stop, &DecodeStats::default()).unwrap();
        let took = started.elapsed();
        stopper.join().unwrap();
        drop(tx);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
}
