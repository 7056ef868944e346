//! The JSON line the client prints last on stdout.

use cam_net::output::round3;
use std::time::Duration;

use cam_proto::machine::{FrameSender, SendStats};
use cam_proto::secure::Aead;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub frames_sent: u64,
    pub frames_acked: u64,
    pub frames_timed_out: u64,
    pub frames_refused: u64,
    pub retransmits: u64,
    pub probes: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub acks_received: u64,
    pub datagrams_invalid: u64,
    pub capture_dropped: u64,
    pub elapsed_s: f64,
    /// Frames acknowledged per second; frames sent per second where nothing is
    /// acknowledged (RTP).
    pub fps: f64,
    pub rtt_ms: f64,
    /// Average sending rate over the run.
    pub rate_kbps: f64,
    /// What the path was found to carry; null when no congestion was ever seen.
    pub target_kbps: Option<f64>,
    /// Settings in force at the end (after link adaptation).
    pub quality: u8,
    pub width: u32,
    pub height: u32,
    pub stream_id: String,
    /// Keyed mode (`--key-file`): every datagram sealed, after a handshake.
    pub keyed: bool,
    /// Keyed mode: the AEAD the viewer chose ("aes-256-gcm" or "chacha20-poly1305").
    pub aead: Option<&'static str>,
}

impl Summary {
    pub fn new(
        stats: &SendStats,
        sender: &dyn FrameSender,
        elapsed: Duration,
        capture_dropped: u64,
        quality: u8,
        size: (u32, u32),
    ) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            kind: "summary",
            frames_sent: stats.frames_sent,
            frames_acked: stats.frames_acked,
            frames_timed_out: stats.frames_timed_out,
            frames_refused: stats.frames_refused,
            retransmits: stats.retransmits,
            probes: stats.probes,
            datagrams_sent: stats.datagrams_sent,
            bytes_sent: stats.bytes_sent,
            acks_received: stats.acks_received,
            datagrams_invalid: stats.datagrams_invalid,
            capture_dropped,
            elapsed_s: round3(elapsed.as_secs_f64()),
            fps: round3(if sender.expects_answers() {
                stats.frames_acked as f64 / secs
            } else {
                stats.frames_sent as f64 / secs
            }),
            rtt_ms: round3(sender.rtt().unwrap_or_default().as_secs_f64() * 1000.0),
            rate_kbps: round3(stats.bytes_sent as f64 * 8.0 / secs / 1000.0),
            target_kbps: sender.target_rate_bps().map(|t| round3(t / 1000.0)),
            quality,
            width: size.0,
            height: size.1,
            stream_id: sender.stream_name(),
            keyed: sender.is_keyed(),
            aead: sender.aead().map(Aead::name),
        }
    }
}
