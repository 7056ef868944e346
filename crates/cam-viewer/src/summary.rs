//! The one JSON line the viewer prints on exit: the last line on stdout.

use std::time::Duration;

use serde::Serialize;

use crate::decode::DecodeCounts;
use crate::worker::WorkerReport;

#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub frames_completed: u64,
    pub frames_decoded: u64,
    /// Incomplete frames given up, plus complete ones the decoder never got.
    pub frames_dropped: u64,
    pub decode_errors: u64,
    pub frames_saved: u64,
    pub datagrams_received: u64,
    /// Every refused datagram: malformed, foreign, too large, inconsistent.
    pub datagrams_invalid: u64,
    pub datagrams_foreign: u64,
    pub datagrams_duplicate: u64,
    pub crc_failures: u64,
    pub bytes_received: u64,
    pub acks_sent: u64,
    pub streams: u64,
    pub elapsed_s: f64,
    /// Complete frames per second between the first datagram and the last frame.
    pub fps: f64,
}

impl Summary {
    pub fn new(report: &WorkerReport, decoded: &DecodeCounts, elapsed: Duration) -> Summary {
        let s = &report.stats;
        let active = match (report.first_datagram_at, report.last_frame_at) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let fps = if active > 0.0 {
            s.frames_completed as f64 / active
        } else {
            0.0
        };
        Summary {
            kind: "summary",
            frames_completed: s.frames_completed,
            frames_decoded: decoded.frames_decoded,
            frames_dropped: s.frames_dropped + report.frames_overflowed,
            decode_errors: decoded.decode_errors,
            frames_saved: report.frames_saved,
            datagrams_received: s.datagrams_received,
            datagrams_invalid: s.datagrams_invalid,
            datagrams_foreign: s.datagrams_foreign,
            datagrams_duplicate: s.datagrams_duplicate,
            crc_failures: s.crc_failures,
            bytes_received: s.bytes_received,
            acks_sent: s.acks_sent,
            streams: s.streams_started,
            elapsed_s: round3(elapsed.as_secs_f64()),
            fps: round3(fps),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
