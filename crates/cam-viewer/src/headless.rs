//! Running without a window: frames are still decoded, so that `--headless` measures (and
//! counts failures of) the same work the window would do, on machines with no display. A
//! status line goes to stderr every second while datagrams arrive, as the client's does, so
//! that a viewer running as a service shows in its journal what it receives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::decode::{DecodeCounts, DecodeError, DecodeStats};
use crate::frame::ReceivedFrame;
use crate::live::{LiveSnapshot, LiveStats};

/// A status line this often while datagrams arrive.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// While nothing arrives: one line saying so, then one this often.
pub const IDLE_STATUS_INTERVAL: Duration = Duration::from_secs(60);

/// The status line's state: the counts at the last line, for rates.
#[derive(Debug, Default)]
pub struct StatusLine {
    last: Option<(Instant, LiveSnapshot)>,
    /// When the last line was printed while idle.
    idle_said_at: Option<Instant>,
}

impl StatusLine {
    /// The line due at `now`, if any.
    pub fn poll(
        &mut self,
        now: Instant,
        live: &LiveSnapshot,
        decoded: &DecodeCounts,
    ) -> Option<String> {
        let Some((at, before)) = &self.last else {
            self.last = Some((now, live.clone()));
            return None;
        };
        let dt = now.saturating_duration_since(*at);
        if dt < STATUS_INTERVAL {
            return None;
        }
        let r = &live.receiver;
        let b = &before.receiver;
        let idle = r.datagrams_received == b.datagrams_received;
        if idle {
            if self
                .idle_said_at
                .is_some_and(|t| now.saturating_duration_since(t) < IDLE_STATUS_INTERVAL)
            {
                return None;
            }
            self.idle_said_at = Some(now);
        } else {
            self.idle_said_at = None;
        }
        let secs = dt.as_secs_f64();
        let line = format!(
            "cam-viewer: {:.1} fps, {:.0} kbit/s, frames {} (decoded {}, dropped {}), \
             datagrams {} (invalid {}, duplicate {}), acks {}{}",
            (r.frames_completed - b.frames_completed) as f64 / secs,
            (r.bytes_received - b.bytes_received) as f64 * 8.0 / secs / 1000.0,
            r.frames_completed,
            decoded.frames_decoded,
            r.frames_dropped + live.frames_overflowed,
            r.datagrams_received,
            r.datagrams_invalid,
            r.datagrams_duplicate,
            r.acks_sent,
            if idle { ", idle" } else { "" }
        );
        self.last = Some((now, live.clone()));
        Some(line)
    }
}

/// How often `stop` is looked at while no frames come.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Decodes every frame until the channel disconnects or `stop` is set, counting outcomes in
/// `stats`. Fails only if the decoder cannot be created; `stop` is set on every exit so that
/// the receive worker ends too.
///
/// With `live` (what the receive worker publishes), a status line goes to stderr every second
/// while datagrams arrive; a closed stderr only ends the lines.
pub fn run_headless(
    frames: Receiver<ReceivedFrame>,
    stop: Arc<AtomicBool>,
    stats: &DecodeStats,
    live: Option<&LiveStats>,
) -> Result<(), DecodeError> {
    let result = decode_loop(&frames, &stop, stats, live);
    stop.store(true, Ordering::SeqCst);
    result
}

fn decode_loop(
    frames: &Receiver<ReceivedFrame>,
    stop: &AtomicBool,
    stats: &DecodeStats,
    live: Option<&LiveStats>,
) -> Result<(), DecodeError> {
    // Nothing draws: planes, in strips where the frame has restart intervals (strips.rs).
    let mut decoder = crate::strips::PlanesDecoder::new(crate::strips::threads_wanted())?;
    let mut status = StatusLine::default();
    while !stop.load(Ordering::SeqCst) {
        if let Some(live) = live {
            if let Some(line) = status.poll(Instant::now(), &live.snapshot(), &stats.snapshot()) {
                cam_net::output::eprint_line(&line);
            }
        }
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
    use turbojpeg::{Compressor, Image, PixelFormat};

    fn frame(seq: u32, jpeg: Vec<u8>) -> ReceivedFrame {
        ReceivedFrame {
            seq,
            jpeg: jpeg.into(),
            width: 0,
            height: 0,
            capture_ts_us: None,
            sender: "127.0.0.1:5000".parse().unwrap(),
            completed_at: Instant::now(),
            stream_label: "00000001".into(),
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
        run_headless(rx, Arc::clone(&stop), &stats, None).unwrap();
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
        run_headless(rx, stop, &DecodeStats::default(), None).unwrap();
        let took = started.elapsed();
        stopper.join().unwrap();
        drop(tx);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn status_every_second_while_datagrams_arrive_and_rarely_when_idle() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut live = LiveSnapshot::default();
        let decoded = DecodeCounts::default();
        let mut status = StatusLine::default();
        assert_eq!(
            status.poll(t0, &live, &decoded),
            None,
            "the first poll sets the base"
        );
        live.receiver.datagrams_received = 300;
        live.receiver.frames_completed = 30;
        live.receiver.bytes_received = 125_000;
        assert_eq!(status.poll(at(999), &live, &decoded), None);
        let line = status.poll(at(1_000), &live, &decoded).unwrap();
        assert!(
            line.starts_with("cam-viewer: 30.0 fps, 1000 kbit/s, frames 30"),
            "{line}"
        );
        // Nothing new: one idle line, then silence for a minute.
        let idle = status.poll(at(2_000), &live, &decoded).unwrap();
        assert!(idle.ends_with(", idle"), "{idle}");
        for s in 3..60 {
            assert_eq!(status.poll(at(s * 1_000), &live, &decoded), None);
        }
        assert!(status.poll(at(62_000), &live, &decoded).is_some());
        live.receiver.datagrams_received += 1;
        assert!(status.poll(at(63_000), &live, &decoded).is_some());
    }
}
