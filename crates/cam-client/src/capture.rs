//! The capture thread: pulls frames from the source (camera, test card, files) and encodes
//! them while the sending loop waits for acks, so capture overlaps with the network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cam_proto::adapt::Settings;
use cam_proto::sender::OutgoingFrame;
use crossbeam_channel::{bounded, Receiver, TrySendError};

use crate::source::{FrameSource, SourceError};

/// What the capture thread hands over: a frame (with the settings it was made with), or the
/// reason it stopped.
#[derive(Debug)]
pub enum Captured {
    Frame(OutgoingFrame, Settings),
    Failed(SourceError),
    Exhausted,
}

/// Wall-clock microseconds since the Unix epoch: capture times cross machines.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What link adaptation asks of the capture thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSettings {
    pub adapt: Settings,
    pub width: u32,
    pub height: u32,
}

/// Starts the capture thread. A live or paced source keeps only the newest frame when the
/// sender falls behind (old frames are worth nothing to a live picture); an unpaced file or
/// test-card source waits instead, so that every frame goes out in order. New settings from
/// link adaptation apply from the next frame on.
pub fn spawn(
    mut source: Box<dyn FrameSource>,
    initial: Settings,
    settings: Receiver<CaptureSettings>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Receiver<Captured>, JoinHandle<u64>)> {
    let fps = initial.fps;
    let (tx, rx) = bounded::<Captured>(1);
    let drain = rx.clone();
    let live = source.is_live();
    let newest_wins = live || fps > 0;
    let mut interval = (fps > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(fps)));
    let mut applied = initial;
    let handle = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut next_at = Instant::now();
            let mut dropped = 0u64;
            while !stop.load(Ordering::Relaxed) {
                while let Ok(wanted) = settings.try_recv() {
                    match source.configure(wanted.adapt.quality, wanted.width, wanted.height) {
                        Ok(()) => {
                            applied = wanted.adapt;
                            if fps > 0 {
                                let rate = f64::from(wanted.adapt.fps.max(1));
                                interval = Some(Duration::from_secs_f64(1.0 / rate));
                            }
                        }
                        Err(e) => log::warn!("cannot apply {wanted:?}: {e}"),
                    }
                }
                if let Some(interval) = interval {
                    let now = Instant::now();
                    if next_at > now {
                        std::thread::sleep(next_at - now);
                    }
                    // Behind schedule (a slow camera): restart the clock rather than burst.
                    next_at = (next_at + interval).max(Instant::now());
                }
                // A file or generated frame is captured when it is asked for, so its latency
                // includes encoding; a camera's frame exists only once next_frame returns.
                let asked_at_us = wall_clock_us();
                let item = match source.next_frame() {
                    Ok(Some(frame)) => Captured::Frame(
                        OutgoingFrame {
                            data: frame.jpeg,
                            width: frame.width,
                            height: frame.height,
                            capture_ts_us: if live { wall_clock_us() } else { asked_at_us },
                        },
                        applied,
                    ),
                    Ok(None) => Captured::Exhausted,
                    Err(e) => Captured::Failed(e),
                };
                let last = !matches!(item, Captured::Frame(..));
                if newest_wins && !last {
                    let mut item = item;
                    loop {
                        match tx.try_send(item) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                if drain.try_recv().is_ok() {
                                    dropped += 1;
                                }
                                item = back;
                            }
                            Err(TrySendError::Disconnected(_)) => return dropped,
                        }
                    }
                } else {
                    // Blocking, but wake up now and then to see the stop flag.
                    let mut item = item;
                    loop {
                        match tx.send_timeout(item, Duration::from_millis(100)) {
                            Ok(()) => break,
                            Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                                if stop.load(Ordering::Relaxed) {
                                    return dropped;
                                }
                                item = back;
                            }
                            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                                return dropped
                            }
                        }
                    }
                }
                if last {
                    break;
                }
            }
            dropped
        })?;
    Ok((rx, handle))
}
