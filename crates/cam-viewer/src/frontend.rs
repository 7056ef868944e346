//! The protocol the receive worker speaks (`--protocol`), chosen once in `build`.

use cam_proto::classic::ClassicConfig;
use std::time::Duration;

use cam_proto::machine::classic::ClassicFrameReceiver;
use cam_proto::machine::multi::{MultiConfig, MultiReceiver};
use cam_proto::machine::FrameReceiver;
use cam_proto::receiver::ReceiverConfig;
use cam_proto::rtp::{classify, Looks, RtpReceiver, RtpReceiverConfig};

pub use cam_net::protocol::Protocol;

/// The state machine for `protocol`: every protocol has the same face
/// (`cam_proto::machine::FrameReceiver`), so the worker, the decoder, the display,
/// `--save-frames` and the summary are one pipeline whichever protocol feeds it.
///
/// camstream serves up to `max_streams` streams, each through its own `Receiver`; classic
/// mode's receiver already keeps one image per sender.
pub fn build(
    protocol: Protocol,
    config: &ReceiverConfig,
    max_streams: usize,
    stream_timeout: Duration,
) -> Box<dyn FrameReceiver> {
    match protocol {
        Protocol::Camstream => Box::new(MultiReceiver::new(MultiConfig {
            receiver: config.clone(),
            max_streams,
            stream_timeout,
        })),
        Protocol::Classic => Box::new(ClassicFrameReceiver::new(ClassicConfig {
            max_frame_bytes: config.max_frame_bytes as usize,
            ..ClassicConfig::default()
        })),
        Protocol::Rtp => Box::new(RtpReceiver::new(RtpReceiverConfig {
            max_frame_bytes: config.max_frame_bytes as usize,
            stall_after: config.stall_after,
            ..RtpReceiverConfig::default()
        })),
    }
}

/// Says, once per protocol that would fit (once per kind where none would), that refused
/// datagrams look like another protocol than `--port` speaks, and which flag fits: a user
/// pointing GStreamer at a camstream viewer learns what to change instead of reading
/// "malformed". One sender's RTP and RTCP make one line, not two.
#[derive(Debug)]
pub struct WrongProtocol {
    ours: Protocol,
    told: Vec<Result<&'static str, Looks>>,
}

impl WrongProtocol {
    pub fn new(ours: Protocol) -> WrongProtocol {
        WrongProtocol {
            ours,
            told: Vec::new(),
        }
    }

    /// A refused datagram: the warning to log, the first time its kind is seen.
    pub fn refused(&mut self, bytes: &[u8]) -> Option<String> {
        let looks = classify(bytes)?;
        let ours = self.ours.name();
        let key = looks.protocol().ok_or(looks);
        if key == Ok(ours) || self.told.contains(&key) || self.told.len() > 8 {
            return None;
        }
        self.told.push(key);
        Some(match looks.protocol() {
            Some(flag) => format!(
                "these look like {looks}, but this port speaks --protocol {ours}: run with --protocol {flag}"
            ),
            None => format!("these look like {looks}; this port speaks --protocol {ours}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_fitting_protocol_however_many_datagrams() {
        let rtp_jpeg = [
            0x80, 26, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 1, 80, 80, 60, 0xab,
        ];
        let rtcp_rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        let mut hints = WrongProtocol::new(Protocol::Camstream);
        let first = hints.refused(&rtcp_rr).expect("a hint");
        assert!(first.contains("run with --protocol rtp"), "{first}");
        for _ in 0..500 {
            assert_eq!(hints.refused(&rtp_jpeg), None);
            assert_eq!(hints.refused(&rtcp_rr), None);
        }
        // Another protocol still gets its own line.
        let classic = hints.refused(&800_000u64.to_le_bytes()).expect("a hint");
        assert!(classic.contains("--protocol classic"), "{classic}");
        // What the port speaks itself is never hinted at.
        assert_eq!(hints.refused(b"CS\x01\x02rest"), None);
        let mut rtp = WrongProtocol::new(Protocol::Rtp);
        assert_eq!(rtp.refused(&rtp_jpeg), None);
    }
}
