//! The protocol the receive worker speaks (`--protocol`), chosen once in `build`.

use cam_proto::classic::ClassicConfig;
use std::time::Duration;

use cam_proto::machine::classic::ClassicFrameReceiver;
use cam_proto::machine::multi::{MultiConfig, MultiReceiver};
use cam_proto::machine::FrameReceiver;
use cam_proto::receiver::ReceiverConfig;
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
    }
}
