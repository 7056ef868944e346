//! `--protocol`: what both programs speak, one flag with one meaning on either side.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// camstream's own: checked, acknowledged, retransmitted, optionally encrypted.
    #[default]
    Camstream,
    /// The original Python example's: a length header and 1024-byte chunks (or one datagram
    /// per image), one image at a time, each answered; JPEG or PNG; no integrity check.
    Classic,
    /// RTP/JPEG (RFC 2435), as GStreamer, ffmpeg, VLC, media servers and IP cameras speak it.
    /// RTCP shares the port (RFC 5761); between two camstream ends it carries NACKs, and lost
    /// packets are sent again. Other peers need not send or answer RTCP.
    Rtp,
}

impl Protocol {
    /// The flag's value, as a user types it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Camstream => "camstream",
            Protocol::Classic => "classic",
            Protocol::Rtp => "rtp",
        }
    }

    /// Whether link adaptation may change quality, size and rate: only a protocol that
    /// measures the path says what to adapt to (RTP from its receiver reports, when a
    /// receiver sends them).
    pub fn adapts(self) -> bool {
        matches!(self, Protocol::Camstream | Protocol::Rtp)
    }

    /// A picture size this protocol can carry, at or below `(w, h)`: RTP/JPEG says sizes in
    /// units of 8 pixels.
    pub fn fit_size(self, (w, h): (u32, u32)) -> (u32, u32) {
        match self {
            Protocol::Rtp => ((w & !7).max(8), (h & !7).max(8)),
            _ => (w, h),
        }
    }
}
