//! What the receive worker hands to the decode/display side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A complete, CRC-verified frame: the JPEG bytes exactly as the sender sent them.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Sender's frame sequence number.
    pub seq: u32,
    /// The JPEG bytes, byte for byte as sent.
    pub jpeg: Arc<[u8]>,
    /// Width and height from the frame header (0 when the header was never received).
    pub width: u16,
    pub height: u16,
    /// Capture time, wall-clock microseconds since the Unix epoch, when the header arrived.
    pub capture_ts_us: Option<u64>,
    /// Where the stream comes from.
    pub sender: SocketAddr,
    /// When the last byte of the frame arrived.
    pub completed_at: Instant,
    /// The stream's id in URLs, `/state` and labels (see `hub`).
    pub stream_label: String,
}
