//! What a stray datagram looks like, so a program listening with one `--protocol` can say
//! once "these look like RTP/JPEG packets: run with --protocol rtp". Pure functions; a
//! guess, never a parse the caller relies on.

use super::rtcp::RtcpRepr;
use super::wire::{is_rtcp, JpegPayloadRepr, RtpPacket, RtpRepr, PT_JPEG};

/// The largest image a classic length header plausibly announces. Any 4 or 8 bytes are a
/// length of some size, so without a bound every short text ("not json") looks classic.
const MAX_CLASSIC_IMAGE: usize = 64 << 20;

/// The protocol a datagram most likely belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looks {
    /// RTP carrying RTP/JPEG (PT 26, or a dynamic PT whose payload parses as RTP/JPEG).
    RtpJpeg {
        payload_type: u8,
    },
    /// RTP with another payload (an H.264 or audio stream sent to the wrong port).
    RtpOther {
        payload_type: u8,
    },
    Rtcp,
    /// camstream's own datagrams ("CS" magic).
    Camstream,
    /// The classic protocol: a 4- or 8-byte little-endian length, or raw image bytes.
    Classic,
    /// JSON text, as the message port carries.
    Json,
}

impl Looks {
    /// The `--protocol` value that would accept it, if any.
    pub fn protocol(&self) -> Option<&'static str> {
        match self {
            Looks::RtpJpeg { .. } | Looks::Rtcp => Some("rtp"),
            Looks::Camstream => Some("camstream"),
            Looks::Classic => Some("classic"),
            Looks::RtpOther { .. } | Looks::Json => None,
        }
    }
}

impl std::fmt::Display for Looks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Looks::RtpJpeg { payload_type } => {
                write!(f, "RTP/JPEG packets (payload type {payload_type})")
            }
            Looks::RtpOther { payload_type } => write!(
                f,
                "RTP packets of payload type {payload_type}, not JPEG (only RTP/JPEG is understood)"
            ),
            Looks::Rtcp => f.write_str("RTCP packets"),
            Looks::Camstream => f.write_str("camstream datagrams"),
            Looks::Classic => {
                f.write_str("classic-protocol datagrams (length headers or raw images)")
            }
            Looks::Json => f.write_str("JSON text (message-port traffic?)"),
        }
    }
}

/// Classifies one datagram; `None` when it looks like nothing known.
pub fn classify(bytes: &[u8]) -> Option<Looks> {
    if bytes.starts_with(&crate::wire::MAGIC) {
        return Some(Looks::Camstream);
    }
    if bytes.starts_with(&[0xff, 0xd8]) || bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Looks::Classic);
    }
    if is_rtcp(bytes) && RtcpRepr::parse_compound(bytes).is_ok() {
        return Some(Looks::Rtcp);
    }
    if crate::classic::parse_length_header(bytes, MAX_CLASSIC_IMAGE).is_some() {
        return Some(Looks::Classic);
    }
    if looks_like_json(bytes) {
        return Some(Looks::Json);
    }
    let packet = RtpPacket::new_checked(bytes).ok()?;
    let rtp = RtpRepr::parse(&packet).ok()?;
    let pt = rtp.payload_type;
    let jpeg = JpegPayloadRepr::parse(packet.payload()).ok();
    let plausible_jpeg = jpeg.is_some_and(|j| j.header.jpeg_type < 128);
    if pt == PT_JPEG && jpeg.is_some() || (96..=127).contains(&pt) && plausible_jpeg {
        Some(Looks::RtpJpeg { payload_type: pt })
    } else if pt <= 34 || (96..=127).contains(&pt) {
        Some(Looks::RtpOther { payload_type: pt })
    } else {
        None
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(_) => return false,
    };
    (text.starts_with('{') && text.ends_with('}')) || (text.starts_with('[') && text.ends_with(']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_protocols_apart() {
        let rtp_jpeg = [
            0x80,
            0x80 | 26,
            0,
            1,
            0,
            0,
            0,
            2,
            0,
            0,
            0,
            3,
            0,
            0,
            0,
            0,
            1,
            80,
            80,
            60,
            0xab,
        ];
        assert_eq!(
            classify(&rtp_jpeg),
            Some(Looks::RtpJpeg { payload_type: 26 })
        );
        let mut dynamic = rtp_jpeg;
        dynamic[1] = 96;
        assert_eq!(
            classify(&dynamic),
            Some(Looks::RtpJpeg { payload_type: 96 })
        );
        let mut h264 = rtp_jpeg;
        h264[1] = 96;
        h264[17] = 0; // Q = 0 is reserved: not RTP/JPEG
        assert_eq!(classify(&h264), Some(Looks::RtpOther { payload_type: 96 }));
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        assert_eq!(classify(&rr), Some(Looks::Rtcp));
        assert_eq!(classify(b"CS\x01\x02rest"), Some(Looks::Camstream));
        assert_eq!(classify(&800_000u64.to_le_bytes()), Some(Looks::Classic));
        assert_eq!(classify(&800_000u32.to_le_bytes()), Some(Looks::Classic));
        assert_eq!(classify(&[0xff, 0xd8, 0xff, 0xe0]), Some(Looks::Classic));
        assert_eq!(classify(b"\x89PNG\r\n\x1a\n...."), Some(Looks::Classic));
        assert_eq!(classify(b" {\"osd\": \"hi\"}\n"), Some(Looks::Json));
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"hello"), None);
        // Short text is a length only by accident: far beyond any image.
        assert_eq!(classify(b"not json"), None);
        assert_eq!(classify(b"abcd"), None);
        assert_eq!(Looks::RtpJpeg { payload_type: 26 }.protocol(), Some("rtp"));
        assert_eq!(Looks::Camstream.protocol(), Some("camstream"));
    }
}
