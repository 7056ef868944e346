//! RTP/JPEG (RFC 2435) over RTP (RFC 3550), with RTCP multiplexed on the media port
//! (RFC 5761) and generic NACK (RFC 4585) for repair between two camstream ends.
//!
//! - `wire`, `rtcp`: checked views and `Repr`s for every packet kind.
//! - `jpeg`: what of a JFIF/JPEG RTP/JPEG can carry (`check_jpeg`), the reverse (`rebuild_jpeg`)
//!   and the Appendix A tables (`q_tables`).
//! - `RtpSender`/`RtpReceiver`: the `machine::FrameSender`/`FrameReceiver` for `--protocol rtp`.
//! - `sniff`: tells the programs which protocol stray datagrams look like.
//! - `sdp`: the session description ffplay, VLC or GStreamer need to play the stream.

pub mod jpeg;
pub mod rtcp;
pub mod sniff;
pub mod wire;

mod receiver;
mod sender;

pub use jpeg::{check_jpeg, q_tables, rebuild_jpeg, JpegError, JpegInfo};
pub use receiver::{RtpReceiver, RtpReceiverConfig};
pub use sender::{RtpSendError, RtpSender, RtpSenderConfig, RtpSenderStats};
pub use sniff::{classify, Looks};

use std::net::IpAddr;

/// Why an RTP or RTCP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpWireError {
    #[error("packet truncated")]
    Truncated,
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    #[error("padding count outside the packet")]
    BadPadding,
    #[error("inconsistent length field")]
    BadLength,
    #[error("non-zero MBZ field")]
    BadReserved,
    #[error("quantization table length disagrees with the packet")]
    BadTableLength,
    #[error("Q = 0 is reserved")]
    BadQ,
    #[error("zero width or height")]
    BadSize,
    #[error("not an RTCP packet type: {0}")]
    BadPacketType(u8),
}

/// The text of an SDP file describing an RTP/JPEG stream sent to `addr:port`, for
/// `ffplay -protocol_whitelist file,udp,rtp -i cam.sdp`, VLC or GStreamer's `sdpdemux`.
/// `rtcp_mux` adds `a=rtcp-mux` (RFC 5761), which camstream's sender uses.
pub fn sdp(addr: IpAddr, port: u16, session_name: &str, rtcp_mux: bool) -> String {
    let (family, origin) = match addr {
        IpAddr::V4(_) => ("IP4", addr.to_string()),
        IpAddr::V6(_) => ("IP6", addr.to_string()),
    };
    let name: String = session_name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let name = if name.trim().is_empty() {
        "camstream".to_string()
    } else {
        name
    };
    let mut s = format!(
        "v=0\r\n\
         o=- 0 0 IN {family} {origin}\r\n\
         s={name}\r\n\
         c=IN {family} {origin}\r\n\
         t=0 0\r\n\
         m=video {port} RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} JPEG/{clock}\r\n",
        pt = wire::PT_JPEG,
        clock = wire::JPEG_CLOCK_HZ,
    );
    if rtcp_mux {
        s.push_str("a=rtcp-mux\r\n");
    }
    s.push_str("a=recvonly\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_for_ffplay() {
        let s = sdp("127.0.0.1".parse().unwrap(), 5004, "cam\nx", false);
        assert_eq!(
            s,
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camx\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=video 5004 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=recvonly\r\n"
        );
        let s6 = sdp("::1".parse().unwrap(), 6000, "", true);
        assert!(s6.contains("c=IN IP6 ::1\r\n"));
        assert!(s6.contains("s=camstream\r\n"));
        assert!(s6.contains("a=rtcp-mux\r\n"));
    }
}
