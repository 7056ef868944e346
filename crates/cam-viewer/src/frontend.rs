//! The protocol the receive worker speaks (`--protocol`), chosen once in `build`.

use cam_proto::classic::ClassicConfig;
use cam_proto::machine::classic::ClassicFrameReceiver;
use cam_proto::machine::FrameReceiver;
use cam_proto::receiver::{Receiver, ReceiverConfig};
use clap::ValueEnum;

/// Which protocol `--port` speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// camstream's own: checked, acknowledged, retransmitted.
    #[default]
    Camstream,
    /// The original Python example's: a length header and 1024-byte chunks, or one datagram
    /// per image; JPEG or PNG; answered with "get message!!!".
    Classic,
}

/// The state machine for `protocol`: every protocol has the same face
/// (`cam_proto::machine::FrameReceiver`), so the worker, the decoder, the display,
/// `--save-frames` and the summary are one pipeline whichever protocol feeds it.
pub fn build(protocol: Protocol, config: &ReceiverConfig) -> Box<dyn FrameReceiver> {
    match protocol {
        Protocol::Camstream => Box::new(Receiver::new(config.clone())),
        Protocol::Classic => Box::new(ClassicFrameReceiver::new(ClassicConfig {
            max_frame_bytes: config.max_frame_bytes as usize,
            ..ClassicConfig::default()
        })),
    }
}
