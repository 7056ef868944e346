//! The one JSON line the viewer prints on exit: the last line on stdout.

use cam_net::output::round3;
use std::time::Duration;

use serde::Serialize;

use crate::decode::DecodeCounts;
use crate::hub::StreamState;
use crate::latency::LatencyRecorder;
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
    /// `--save-frames`: why saving stopped early (a failed write), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_error: Option<String>,
    pub datagrams_received: u64,
    /// Every refused datagram: malformed, foreign, too large, inconsistent.
    pub datagrams_invalid: u64,
    pub datagrams_foreign: u64,
    /// Refused as not authenticated under this viewer's key, or its lack of one (a client
    /// with another key, keyed datagrams to an unkeyed viewer, forgeries).
    pub datagrams_unauthenticated: u64,
    /// Refused as replays: authentic, but too old for the replay window.
    pub datagrams_replayed: u64,
    /// Refused for a failed check (CRC-32C; keyed: the tag) on the served stream's path.
    pub datagrams_corrupt: u64,
    /// Refused for a packet number or frame far ahead of the stream's, not confirmed.
    pub datagrams_implausible: u64,
    /// Keyed mode (`--key-file`).
    pub keyed: bool,
    /// Keyed mode: the AEAD of the last stream's session.
    pub aead: Option<&'static str>,
    pub datagrams_duplicate: u64,
    pub crc_failures: u64,
    pub bytes_received: u64,
    pub acks_sent: u64,
    /// Streams started over the run (a restarted client counts again).
    pub streams_started: u64,
    pub elapsed_s: f64,
    /// Complete frames per second between the first datagram and the last frame.
    pub fps: f64,
    /// Capture (sender's clock) to decoded (ours): exact on one machine.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// With `--record`: frames written to the recording, and frames that never reached it
    /// (the disk fell behind, or writing failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_recorded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_unrecorded: Option<u64>,
    /// With `--record`: why recording stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    /// Each stream still served at the end, with its own figures; the fields above are the
    /// totals over every stream.
    pub streams: Vec<StreamState>,
}

impl Summary {
    pub fn new(
        report: &WorkerReport,
        decoded: &DecodeCounts,
        latency: &LatencyRecorder,
        elapsed: Duration,
        streams: Vec<StreamState>,
    ) -> Summary {
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
        let p50_p99 = latency.percentiles_ms([0.5, 0.99]);
        Summary {
            kind: "summary",
            frames_completed: s.frames_completed,
            frames_decoded: decoded.frames_decoded,
            frames_dropped: s.frames_dropped + report.frames_overflowed,
            decode_errors: decoded.decode_errors,
            frames_saved: report.frames_saved,
            save_error: report.save_error.clone(),
            datagrams_received: s.datagrams_received,
            datagrams_invalid: s.datagrams_invalid,
            datagrams_foreign: s.datagrams_foreign,
            datagrams_unauthenticated: s.datagrams_unauthenticated,
            datagrams_replayed: s.datagrams_replayed,
            datagrams_corrupt: s.datagrams_corrupt,
            datagrams_implausible: s.datagrams_implausible,
            keyed: report.keyed,
            aead: report.aead,
            datagrams_duplicate: s.datagrams_duplicate,
            crc_failures: s.crc_failures,
            bytes_received: s.bytes_received,
            acks_sent: s.acks_sent,
            streams_started: s.streams_started,
            elapsed_s: round3(elapsed.as_secs_f64()),
            fps: round3(fps),
            latency_p50_ms: p50_p99.map(|[p50, _]| round3(p50)),
            latency_p99_ms: p50_p99.map(|[_, p99]| round3(p99)),
            frames_recorded: None,
            frames_unrecorded: None,
            record_error: None,
            streams,
        }
    }
}
