//! `--protocol`: which state machine the one send loop (`driver`) runs. Everything else —
//! source, capture thread, socket, simulated link, give-up, status line, summary — is the
//! same for every protocol.

use std::net::SocketAddr;
use std::time::Duration;

use cam_proto::classic::ClassicSenderConfig;
use cam_proto::machine::camstream::CamstreamSender;
use cam_proto::machine::classic::ClassicFrameSender;
use cam_proto::machine::FrameSender;
use cam_proto::rtp::{RtpSender, RtpSenderConfig};
use cam_proto::secure::AeadChoice;
use cam_proto::sender::SenderConfig;

use crate::cli::Config;

/// How long a classic client waits for a reply when `--ack-timeout` is not given.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_millis(1000);

pub use cam_net::protocol::Protocol;

/// The state machine `config` asks for, talking to `peer`.
pub fn build(config: &Config, peer: SocketAddr) -> Box<dyn FrameSender> {
    match config.protocol {
        Protocol::Camstream => {
            let stream_id: u32 = rand::random();
            Box::new(CamstreamSender::new(
                peer,
                stream_id,
                SenderConfig {
                    chunk_size: config.chunk_size,
                    max_in_flight: config.max_in_flight,
                    ack_timeout: config.ack_timeout,
                    frame_deadline: config.frame_deadline,
                    frame_interval: (config.fps > 0)
                        .then(|| Duration::from_secs_f64(1.0 / f64::from(config.fps))),
                    psk: config.psk.clone(),
                    aeads: config.aead.set(),
                    name: config.name.clone(),
                    ..SenderConfig::default()
                },
            ))
        }
        Protocol::Classic => Box::new(ClassicFrameSender::new(
            peer,
            ClassicSenderConfig {
                chunk_size: usize::from(config.chunk_size),
                reply_timeout: config.ack_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT),
            },
        )),
        Protocol::Rtp => Box::new(RtpSender::new(
            peer,
            RtpSenderConfig {
                max_datagram: usize::from(config.chunk_size),
                cname: config.name.clone().unwrap_or_else(|| "camstream".into()),
                ..RtpSenderConfig::default()
            },
        )),
    }
}

/// The log line that says what is about to happen.
pub fn describe(config: &Config, sender: &dyn FrameSender) -> String {
    match config.protocol {
        Protocol::Camstream => format!(
            "streaming to {} ({}) as stream {}{}",
            config.viewer_text,
            config.viewer,
            sender.stream_name(),
            if sender.is_keyed() {
                "; keyed: handshaking with the viewer, then encrypting every datagram"
            } else {
                ""
            }
        ),
        Protocol::Classic => format!(
            "sending classic images to {} ({}): {}, waiting up to {} ms for each reply",
            config.viewer_text,
            config.viewer,
            match config.chunk_size {
                0 => "one datagram each".to_string(),
                n => format!("8-byte length and {n}-byte chunks"),
            },
            config
                .ack_timeout
                .unwrap_or(DEFAULT_REPLY_TIMEOUT)
                .as_millis()
        ),
        Protocol::Rtp => format!(
            "sending RTP/JPEG to {} ({}) as SSRC {}, packets of at most {} bytes, RTCP on the same port",
            config.viewer_text,
            config.viewer,
            sender.stream_name(),
            config.chunk_size
        ),
    }
}

/// A viewer that answered only "full": it serves its `--max-streams` already.
pub fn full_message(config: &Config) -> String {
    format!(
        "the viewer at {} is full: it serves as many streams as its --max-streams allows. \
         Stop another client, or restart cam-viewer with a larger --max-streams",
        config.viewer_text
    )
}

/// Why a receiver may never have answered, likeliest first.
pub fn no_answer_message(config: &Config, sender: &dyn FrameSender, waited: Duration) -> String {
    let network = "A firewall may block UDP, or a viewer behind NAT needs a forwarded port.";
    let waited = waited.as_secs_f64();
    let at = &config.viewer_text;
    match config.protocol {
        // RTP expects no answer: its driver never gives up for want of one.
        Protocol::Rtp => format!("no RTCP from {at} within {waited:.1} s"),
        Protocol::Classic => format!(
            "no reply from {at} within {waited:.1} s: is a classic server (or cam-viewer \
             --protocol classic) running there, on that port? A firewall may block UDP, or a \
             server behind NAT needs a forwarded port."
        ),
        Protocol::Camstream if sender.is_keyed() => {
            let aead = if config.aead == AeadChoice::Auto {
                ""
            } else {
                " With --aead set, a viewer allowing only another cipher refuses the handshake \
                 too: leave --aead at auto on both sides."
            };
            format!(
                "no valid answer from a viewer at {at} within {waited:.1} s. This client has a \
                 key (--key-file): a viewer without a key, or with a different key, refuses \
                 everything it sends, so the likely cause is a key on one side only or \
                 different keys: start cam-viewer with --key-file and the same key file.{aead} \
                 Is cam-viewer running there (and on that port)? {network}"
            )
        }
        Protocol::Camstream => format!(
            "no answer from a viewer at {at} within {waited:.1} s. Is cam-viewer running there \
             (and on that port)? {network} If the viewer was started with --key-file, this \
             client needs the same key (--key-file): a key on one side only or different keys \
             get no answer."
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {

    use crate::cli::{Args, Config};
    use clap::Parser;

    #[test]
    fn classic_chunk_sizes() {
        let config = |extra: &[&str]| {
            let mut argv = vec!["cam-client", "--protocol", "classic"];
            argv.extend_from_slice(extra);
            Config::from_args(Args::parse_from(argv))
        };
        assert_eq!(config(&[]).unwrap().chunk_size, 1024);
        assert_eq!(config(&["--chunk-size", "0"]).unwrap().chunk_size, 0);
        assert_eq!(
            config(&["--chunk-size", "65507"]).unwrap().chunk_size,
            65507
        );
        let err = config(&["--chunk-size", "65508"]).unwrap_err().to_string();
        assert!(
            err.contains("--chunk-size 65508") && !err.contains('\n'),
            "{err}"
        );
        // camstream mode keeps its own default and limits.
        let args = Args::parse_from(["cam-client"]);
        assert_eq!(Config::from_args(args).unwrap().chunk_size, 1200);
        let args = Args::parse_from(["cam-client", "--chunk-size", "0"]);
        assert!(Config::from_args(args).is_err());
    }
}
