//! Command-line flags, checked into a `Config` the rest of the program can trust.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cam_net::keys::{key_from_options, AeadArg};
use cam_net::simulate::SimulateArgs;
use cam_proto::secure::AeadChoice;
use cam_proto::secure::Psk;
use cam_proto::wire::{CHUNK_OVERHEAD, MAX_DATAGRAM, TAG_LEN};
use clap::Parser;

use crate::source::mjpeg::Passthrough;
use crate::source::{SourceOptions, SourceSpec};
pub use cam_net::protocol::Protocol;
use cam_proto::classic::{DEFAULT_CHUNK_SIZE, MAX_ONE_DATAGRAM};

const EXAMPLES: &str = "\
Examples:
  Localhost demo (test card, no camera needed):
    cam-viewer --port 9999 &
    cam-client 127.0.0.1:9999 --source pattern

  Webcam to a remote viewer (run cam-viewer --port 9999 on the monitoring machine):
    cam-client --list-cameras
    cam-client monitor.example.net:9999 --source camera:0 --size 1280x720 --fps 30

  Stream a folder of JPEG files byte for byte, as fast as the viewer takes them:
    cam-client 127.0.0.1:9999 --source ./frames --fps 0 --frames 500

  Stream a video file as raw frames through ffmpeg (y4m on standard input):
    ffmpeg -i clip.mp4 -pix_fmt yuv420p -f yuv4mpegpipe - | cam-client 127.0.0.1:9999 --source -

  In place of the Python example's client, to its server (or cam-viewer --protocol classic):
    cam-client raspberrypi.local:9999 --protocol classic --source camera:0
    cam-client raspberrypi.local:6666 --send-msg '[0,0,0,1]'";

/// Streams a webcam (or a test card, or JPEG files) to a cam-viewer over UDP.
#[derive(Debug, Parser)]
#[command(name = "cam-client", version, after_help = EXAMPLES)]
pub struct Args {
    /// Where cam-viewer listens: HOST:PORT (host names and [IPv6]:PORT work). Default
    /// 127.0.0.1:9999; with --send-msg, the viewer's message port, default 127.0.0.1:6666.
    #[arg(value_name = "VIEWER_ADDR")]
    pub viewer: Option<String>,

    /// What to send: camera[:INDEX], pattern (an animated test card), texture (textured
    /// frames that load a link like a real scene), a .jpg file, a directory of .jpg files
    /// (sent byte for byte, cycled in name order), a .y4m file (raw 4:2:0 video, encoded
    /// from its planes; played once, or looped to fill --frames/--duration), or - for y4m on
    /// standard input (e.g. ffmpeg ... -pix_fmt yuv420p -f yuv4mpegpipe -).
    #[arg(long, default_value = "camera:0", value_name = "SOURCE")]
    pub source: SourceSpec,

    /// Picture size for the camera and the test card. A camera gets its closest mode in size
    /// and frame rate, preferring MJPEG (see --list-cameras for what it offers).
    #[arg(long, default_value = "640x480", value_name = "WxH", value_parser = parse_size)]
    pub size: (u32, u32),

    /// Frames per second; 0 sends as fast as the viewer acknowledges.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub fps: u32,

    /// JPEG quality for frames we encode (1-100).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,

    /// What an MJPEG camera's JPEG frames get. In every mode a frame without Huffman tables
    /// gets the standard ones (ITU T.81 Annex K); JPEG files (--source DIR) are never touched.
    #[arg(long, value_enum, default_value_t = Passthrough::Auto, value_name = "MODE")]
    pub passthrough: Passthrough,

    /// List the cameras, with the formats, sizes and frame rates each offers, and exit.
    #[arg(long)]
    pub list_cameras: bool,

    /// Frame bytes per datagram (default 1200, which fits any path with a 1,280-byte MTU or
    /// more). To a viewer on the same machine (loopback), 16384 to 65447 cost less CPU per
    /// frame. With --protocol classic the default is the example's 1024, and 0 sends each
    /// image as one datagram (at most 65,507 bytes).
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u32>,

    /// Stop after sending this many frames.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Wait this long for an overdue acknowledgement before asking again
    /// (default: from the measured round trip). With --protocol classic: how long to wait
    /// for the viewer's reply to an image before sending the next (default 1000).
    #[arg(long, value_name = "MS")]
    pub ack_timeout: Option<u64>,

    /// Abandon a frame not acknowledged within this time and move to the newest one
    /// (default: a few round trips, at least two frame intervals).
    #[arg(long, value_name = "MS")]
    pub frame_deadline: Option<u64>,

    /// Most frames in flight at once on a long round trip.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_in_flight: u16,

    /// Exit with an error when the viewer has not answered at all within this many seconds;
    /// `never` waits for a viewer for as long as the run lasts (a service). A closed port on
    /// the viewer's machine ends the wait at once, unless `never`.
    #[arg(long, default_value = "5", value_name = "SECONDS|never", value_parser = parse_give_up)]
    pub give_up: GiveUp,

    /// What to speak: camstream; the original Python example's protocol (an 8-byte
    /// little-endian length, then 1024-byte chunks; one image at a time, each waiting for the
    /// reply; no integrity check: see the README); or RTP/JPEG for GStreamer, ffmpeg, VLC.
    /// With rtp, RTCP sender reports go to the same port once a second; a camstream viewer
    /// answers with NACKs and gets lost packets again, other receivers need not answer.
    /// --chunk-size is then the largest packet (default 1400).
    #[arg(long, value_enum, default_value_t = Protocol::Camstream)]
    pub protocol: Protocol,

    /// What the viewer calls this stream: shown in its window's tile label, its web page and
    /// its summary (at most 64 bytes, no control characters). With --protocol rtp it is the
    /// RTCP CNAME. Default: none (the viewer shows the stream id and address).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// With --protocol rtp: write an SDP file describing the stream, for
    /// `ffplay -protocol_whitelist file,udp,rtp -i FILE` or VLC, on the receiving machine.
    #[arg(long, value_name = "FILE")]
    pub sdp: Option<PathBuf>,

    /// Send this one JSON message (e.g. '[0,0,0,1]') to a viewer's --msg-port, print the
    /// reply as a JSON line and exit: 0 on a reply, 1 on an error reply or none (3 tries, 1 s
    /// each). VIEWER_ADDR is then the message port, default 127.0.0.1:6666.
    #[arg(long, value_name = "JSON")]
    pub send_msg: Option<String>,

    /// Write a new random key to FILE (64 hex digits, readable by you only; an existing file
    /// is never replaced) and exit. Copy it to the viewer's machine and give both programs
    /// --key-file FILE.
    #[arg(long, value_name = "FILE")]
    pub gen_key: Option<PathBuf>,

    /// Encrypt and authenticate the stream with the key in FILE: one from --gen-key, or a
    /// passphrase of at least 12 characters on its first line. The viewer needs the same
    /// key. Without a key the stream is neither encrypted nor authenticated.
    #[arg(long, value_name = "FILE", env = "CAMSTREAM_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Keyed mode's cipher. auto: AES-256-GCM when both machines have AES instructions,
    /// ChaCha20-Poly1305 otherwise (the viewer chooses from what the client offers). The
    /// others restrict this end to one cipher, to measure it or to try the fallback.
    /// [default: auto]
    #[arg(long, value_enum, value_name = "CIPHER")]
    pub aead: Option<AeadArg>,

    #[command(flatten)]
    pub simulate: SimulateArgs,
}

/// `--give-up`: how long to wait for a first answer from the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    After(Duration),
    Never,
}

fn parse_give_up(s: &str) -> Result<GiveUp, String> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(GiveUp::Never);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(GiveUp::After(Duration::from_secs_f64(v))),
        _ => Err(format!(
            "'{s}' is not a positive number of seconds, nor 'never'"
        )),
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not a size; write it as WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err(format!(
            "{w}x{h} is out of range: width and height must be 16 to 4096"
        ));
    }
    if w % 2 != 0 || h % 2 != 0 {
        return Err(format!(
            "{w}x{h}: width and height must be even (JPEG 4:2:0)"
        ));
    }
    Ok((w, h))
}

/// Largest RTP datagram unless `--chunk-size` says otherwise: under any path's MTU.
pub const RTP_DEFAULT_DATAGRAM: usize = 1400;
/// Smallest RTP datagram: the headers and the first packet's tables need room.
pub const RTP_MIN_DATAGRAM: usize = 200;

/// `--chunk-size` in classic mode: the example's 1024 unless told, 0 for one datagram.
pub fn checked_classic_chunk_size(asked: Option<u32>) -> Result<usize> {
    let size = asked.map_or(DEFAULT_CHUNK_SIZE, |n| n as usize);
    if size > MAX_ONE_DATAGRAM {
        bail!(
            "--chunk-size {size} does not fit a UDP datagram: use 1 to {MAX_ONE_DATAGRAM} bytes \
             (the example's 1024 is the default), or 0 to send each image as one datagram"
        );
    }
    Ok(size)
}

/// Settings after every check.
#[derive(Debug, Clone)]
pub struct Config {
    pub viewer: SocketAddr,
    pub viewer_text: String,
    pub source: SourceSpec,
    pub source_options: SourceOptions,
    pub fps: u32,
    pub chunk_size: u16,
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    pub ack_timeout: Option<Duration>,
    pub frame_deadline: Option<Duration>,
    pub max_in_flight: usize,
    pub give_up: GiveUp,
    pub protocol: Protocol,
    /// `--sdp`: where to write the RTP session description.
    pub sdp: Option<PathBuf>,
    /// `--name`: what the viewer calls the stream.
    pub name: Option<String>,
    pub simulate: SimulateArgs,
    /// Keyed mode (`--key-file`).
    pub psk: Option<Psk>,
    /// Keyed mode: the AEADs offered (`--aead`).
    pub aead: AeadChoice,
}

/// Largest chunk that fits one UDP datagram, leaving room for a future AEAD tag.
pub const MAX_CHUNK_SIZE: usize = MAX_DATAGRAM - CHUNK_OVERHEAD - TAG_LEN;
pub const MIN_CHUNK_SIZE: usize = 16;

impl Config {
    pub fn from_args(args: Args) -> Result<Config> {
        let psk = key_from_options(
            args.key_file.as_deref(),
            args.aead.is_some(),
            args.protocol != Protocol::Camstream,
        )?;
        let chunk_size = match args.protocol {
            Protocol::Classic => checked_classic_chunk_size(args.chunk_size)?,
            Protocol::Camstream => args.chunk_size.unwrap_or(1200) as usize,
            Protocol::Rtp => {
                let size = args.chunk_size.map_or(RTP_DEFAULT_DATAGRAM, |n| n as usize);
                let (min, max) = (RTP_MIN_DATAGRAM, MAX_DATAGRAM);
                if !(min..=max).contains(&size) {
                    bail!("--chunk-size {size} with --protocol rtp is the largest RTP packet: use {min} to {max} bytes (the default 1400 fits any path)");
                }
                size
            }
        };
        if let Some(name) = &args.name {
            if !cam_proto::wire::is_valid_name(name) {
                bail!(
                    "--name '{}' cannot be sent: use 1 to {} bytes of text without control characters",
                    name.escape_debug(),
                    cam_proto::wire::MAX_NAME_LEN
                );
            }
            if args.protocol == Protocol::Classic {
                bail!("--name needs --protocol camstream or rtp: the classic protocol cannot carry a name");
            }
        }
        if args.sdp.is_some() && args.protocol != Protocol::Rtp {
            bail!("--sdp describes an RTP stream: add --protocol rtp");
        }
        if args.protocol == Protocol::Camstream
            && !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        {
            bail!(
                "--chunk-size {chunk_size} does not fit a UDP datagram: use {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes (1200 is safe on any network)"
            );
        }
        let viewer_text = args.viewer.unwrap_or_else(|| "127.0.0.1:9999".into());
        let viewer = resolve(&viewer_text)?;
        let duration = match args.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                bail!("--duration {d} must be a positive number of seconds")
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        if args.frames == Some(0) {
            bail!("--frames 0 would send nothing; give at least 1");
        }
        Ok(Config {
            viewer,
            viewer_text,
            source: args.source,
            source_options: SourceOptions {
                width: args.size.0,
                height: args.size.1,
                fps: args.fps,
                quality: args.quality,
                passthrough: args.passthrough,
            },
            fps: args.fps,
            chunk_size: chunk_size as u16,
            frames: args.frames,
            duration,
            ack_timeout: args.ack_timeout.map(Duration::from_millis),
            frame_deadline: args.frame_deadline.map(Duration::from_millis),
            max_in_flight: usize::from(args.max_in_flight),
            give_up: args.give_up,
            protocol: args.protocol,
            sdp: args.sdp,
            name: args.name,
            simulate: args.simulate,
            psk,
            aead: args.aead.map(AeadChoice::from).unwrap_or_default(),
        })
    }
}

/// Resolves HOST:PORT, preferring IPv4 for names that have both (as the viewer's default
/// dual-stack socket takes either).
pub(crate) fn resolve(text: &str) -> Result<SocketAddr> {
    if text.parse::<SocketAddr>().is_err() && !text.contains(':') {
        bail!("viewer address '{text}' has no port; write HOST:PORT, e.g. {text}:9999");
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve viewer address '{text}' (write HOST:PORT)"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .with_context(|| format!("viewer address '{text}' resolved to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("640x480"), Ok((640, 480)));
        assert_eq!(parse_size("1280X720"), Ok((1280, 720)));
        assert!(parse_size("640").is_err());
        assert!(parse_size("641x480").is_err());
        assert!(parse_size("8x8").is_err());
    }

    #[test]
    fn chunk_size_must_fit_a_datagram() {
        let args = Args::parse_from(["cam-client", "--chunk-size", "70000"]);
        let err = Config::from_args(args).unwrap_err().to_string();
        assert!(err.contains("--chunk-size"), "{err}");
        let args = Args::parse_from(["cam-client", "--chunk-size", "1200"]);
        assert!(Config::from_args(args).is_ok());
    }

    #[test]
    fn give_up_takes_seconds_or_never() {
        assert_eq!(parse_give_up("never"), Ok(GiveUp::Never));
        assert_eq!(
            parse_give_up("2.5"),
            Ok(GiveUp::After(Duration::from_millis(2500)))
        );
        assert!(parse_give_up("0").is_err());
        assert!(parse_give_up("soon").is_err());
    }

    #[test]
    fn addresses() {
        assert!(resolve("127.0.0.1:9999").unwrap().is_ipv4());
        assert!(resolve("[::1]:9999").unwrap().is_ipv6());
        assert_eq!(resolve("localhost:9999").unwrap().port(), 9999);
        assert!(resolve("127.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("no port"));
    }
}
