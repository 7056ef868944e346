//! Command-line flags, checked into a `Config`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use cam_net::keys::{key_from_options, AeadArg};
use cam_net::simulate::SimulateArgs;
use cam_proto::secure::AeadChoice;
use cam_proto::secure::Psk;
use clap::Parser;

pub use crate::frontend::Protocol;

const EXAMPLES: &str = "\
Keys (in the window):
  1-9       show that stream alone (a click on its tile does too); 0 or Esc: the grid
  i         on-screen display on/off (off at start): frame rate, kbit/s, frames abandoned,
            duplicate datagrams, capture-to-display latency (needs synchronised clocks),
            picture size, sender, the latest --msg-port message
  s         snapshot: the picture on screen, exactly as received, to
            snapshot-YYYYMMDD-HHMMSS.mmm.jpg (UTC time) in --snapshot-dir
  space     pause/resume the picture (reception, acks and --record go on)
  q         quit (Esc too, when the grid is shown)

Examples:
  A monitoring machine (cameras send to this machine's port 9999):
    cam-viewer --port 9999

  Localhost demo with the test card:
    cam-viewer --port 9999 &
    cam-client 127.0.0.1:9999 --source pattern

  No window: decode, count and keep every frame's exact bytes:
    cam-viewer --headless --frames 200 --save-frames ./received

  Watch and record (ffplay today.avi plays it back):
    cam-viewer --port 9999 --record today.avi

  Several cameras in a grid, and in a browser at http://127.0.0.1:8080/:
    cam-viewer --port 9999 --http 127.0.0.1:8080

  In place of the Python example's server (images on 9999, messages on 6666):
    cam-viewer --protocol classic --port 9999 --msg-port 6666";

/// Receives a camstream over UDP and shows it in a window.
#[derive(Debug, Parser)]
#[command(name = "cam-viewer", version, after_help = EXAMPLES)]
pub struct Args {
    /// UDP port to listen on.
    #[arg(long, default_value_t = 9999)]
    pub port: u16,

    /// Address to listen on (default: every IPv6 and IPv4 address, or every IPv4 address
    /// where IPv6 is unavailable).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// No window: frames are still received, decoded, counted and saved.
    #[arg(long)]
    pub headless: bool,

    /// Stop after this many complete frames.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Write each complete frame's exact bytes to DIR/frame-000001.jpg, ... in arrival order.
    #[arg(long, value_name = "DIR")]
    pub save_frames: Option<PathBuf>,

    /// Also write every complete frame, byte for byte, to FILE as an MJPEG AVI that ffplay,
    /// ffmpeg and VLC play. AVI has one frame rate per file: the stream's mean, from the capture
    /// times. PNG frames (--protocol classic) are re-encoded to JPEG. When the picture size
    /// changes or the file reaches 2 GiB, recording goes on in FILE-2.avi, FILE-3.avi, ...
    /// The file is finalised on every exit: q, Esc, Ctrl-C, SIGTERM, --frames, --duration.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Where the s key saves snapshots [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,

    /// Refuse frames that declare more bytes than this.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_frame_bytes: u32,

    /// What --port speaks: camstream, or the original Python example's protocol (a length
    /// header and 1024-byte chunks, or one datagram per image; JPEG or PNG; answered with
    /// "get message!!!"). Classic mode has no integrity check: see the README.
    #[arg(long, value_enum, default_value_t = Protocol::Camstream)]
    pub protocol: Protocol,

    /// Also take small JSON messages on this UDP port (6666 in the Python example): each is
    /// printed as a JSON line on stdout and answered {"ok":true} or {"ok":false,"error":...}
    /// ("get the msg" with --protocol classic). At most 8 KiB each.
    #[arg(long, value_name = "PORT")]
    pub msg_port: Option<u16>,

    /// Take only a stream encrypted and authenticated with the key in FILE (the client's
    /// --key-file: a key from cam-client --gen-key, or a passphrase of at least 12
    /// characters on its first line); refuse everything else. Without a key anyone who can
    /// send to --port can put a picture on screen.
    #[arg(long, value_name = "FILE", env = "CAMSTREAM_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Keyed mode's cipher. auto: AES-256-GCM when both machines have AES instructions,
    /// ChaCha20-Poly1305 otherwise (this viewer chooses from what the client offers). The
    /// others accept only that cipher, to measure it or to try the fallback.
    /// [default: auto]
    #[arg(long, value_enum, value_name = "CIPHER")]
    pub aead: Option<AeadArg>,

    /// Streams served at once; datagrams of further streams are refused (and counted).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_streams: usize,

    /// A stream that sends nothing for this long leaves the grid and frees its place.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub stream_timeout: f64,

    /// Also serve the streams over HTTP on ADDR (e.g. 127.0.0.1:8080): a page with every
    /// stream at /, MJPEG at /stream and /stream/ID, the newest frame at /snapshot and
    /// /snapshot/ID, JSON figures at /state. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// Every HTTP request must carry the token on this file's first line, as
    /// "Authorization: Bearer TOKEN" or "?token=TOKEN" (at least 16 letters, digits and
    /// - . _ ~; e.g. from `openssl rand -hex 16`).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub simulate: SimulateArgs,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: Option<IpAddr>,
    pub headless: bool,
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    pub save_frames: Option<PathBuf>,
    pub record: Option<PathBuf>,
    /// Empty for the current directory.
    pub snapshot_dir: PathBuf,
    pub max_frame_bytes: u32,
    pub protocol: Protocol,
    pub msg_port: Option<u16>,
    pub simulate: SimulateArgs,
    /// Keyed mode (`--key-file`).
    pub psk: Option<Psk>,
    /// Keyed mode: the AEADs accepted (`--aead`).
    pub aead: AeadChoice,
    pub max_streams: usize,
    pub stream_timeout: Duration,
    /// `--http`, with its token.
    pub http: Option<crate::http::HttpConfig>,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config> {
        let duration = match args.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                bail!("--duration {d} must be a positive number of seconds")
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        let psk = key_from_options(
            args.key_file.as_deref(),
            args.aead.is_some(),
            args.protocol == Protocol::Classic,
        )?;
        if args.frames == Some(0) {
            bail!("--frames 0 would stop before the first frame; give at least 1");
        }
        if args.max_frame_bytes < 1024 {
            bail!(
                "--max-frame-bytes {} is too small for any picture; use at least 1024",
                args.max_frame_bytes
            );
        }
        if args.msg_port.is_some_and(|m| m == args.port && m != 0) {
            bail!(
                "--msg-port {} is also the --port of the stream; give the messages another port (e.g. 6666)",
                args.port
            );
        }
        if let Some(dir) = &args.snapshot_dir {
            if !dir.is_dir() {
                bail!(
                    "--snapshot-dir {} is not a directory; create it first",
                    dir.display()
                );
            }
        }
        if let Some(dir) = &args.save_frames {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create --save-frames directory {}: {e}",
                    dir.display()
                )
            })?;
        }
        if !(1..=1024).contains(&args.max_streams) {
            bail!(
                "--max-streams {} must be between 1 and 1024",
                args.max_streams
            );
        }
        if !(args.stream_timeout.is_finite() && args.stream_timeout >= 1.0) {
            bail!(
                "--stream-timeout {} must be at least 1 second",
                args.stream_timeout
            );
        }
        let http = match args.http {
            Some(addr) => Some(crate::http::HttpConfig {
                addr,
                token: args
                    .http_token_file
                    .as_deref()
                    .map(crate::http::HttpConfig::read_token)
                    .transpose()?,
            }),
            None => None,
        };
        Ok(Config {
            port: args.port,
            bind: args.bind,
            headless: args.headless,
            frames: args.frames,
            duration,
            save_frames: args.save_frames,
            record: args.record,
            snapshot_dir: args.snapshot_dir.unwrap_or_default(),
            max_frame_bytes: args.max_frame_bytes,
            protocol: args.protocol,
            msg_port: args.msg_port,
            simulate: args.simulate,
            psk,
            aead: args.aead.map(AeadChoice::from).unwrap_or_default(),
            max_streams: args.max_streams,
            stream_timeout: Duration::from_secs_f64(args.stream_timeout),
            http,
        })
    }
}
