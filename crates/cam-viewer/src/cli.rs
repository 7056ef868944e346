//! Command-line flags, checked into a `Config`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
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
    /// The file is finalised on every exit: q, Esc, Ctrl-C, SIGTERM, --frames, --duration;
    /// after a crash or kill -9 it still plays, at the right rate, up to the last frame
    /// written (only the seek index is missing). An existing FILE is never overwritten: the
    /// recording goes to FILE-YYYYMMDD-HHMMSS.avi (UTC) instead, unless --force.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// With --record: start a new file (FILE-2.avi, FILE-3.avi, ...) every DURATION: seconds,
    /// or a number with s, m or h (90, 15m, 1h).
    #[arg(long, value_name = "DURATION", requires = "record", value_parser = parse_duration)]
    pub record_segment: Option<Duration>,

    /// With --record: overwrite existing files.
    #[arg(long, requires = "record")]
    pub force: bool,

    /// Where the s key saves snapshots, created if missing [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,

    /// Refuse frames that declare more bytes than this.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_frame_bytes: u32,

    /// What --port speaks: camstream; the original Python example's protocol (a length
    /// header and 1024-byte chunks, or one datagram per image; JPEG or PNG; answered with
    /// "get message!!!"; no integrity check: see the README); or rtp: RTP/JPEG from
    /// GStreamer (rtpjpegpay), ffmpeg (-f rtp), IP cameras or cam-client --protocol rtp.
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

    /// A stream that sends nothing for this long leaves the grid and frees its place:
    /// seconds, or a number with s, m or h (at least 1 s).
    #[arg(long, default_value = "10", value_name = "DURATION", value_parser = parse_duration)]
    pub stream_timeout: Duration,

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
    pub record_segment: Option<Duration>,
    /// `--force`: the recording may overwrite files.
    pub force: bool,
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
            args.protocol != Protocol::Camstream,
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
        if args
            .record_segment
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            bail!("--record-segment must be at least 1 s");
        }
        if let Some(dir) = &args.snapshot_dir {
            writable_dir("--snapshot-dir", dir)?;
        }
        if let Some(dir) = &args.save_frames {
            writable_dir("--save-frames", dir)?;
        }
        if let Some(path) = &args.record {
            // The file itself is created when recording starts; its directory must exist.
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                bail!(
                    "--record {}: the directory {} does not exist",
                    path.display(),
                    dir.display()
                );
            }
            check_writable("--record", dir)?;
        }
        if !(1..=1024).contains(&args.max_streams) {
            bail!(
                "--max-streams {} must be between 1 and 1024",
                args.max_streams
            );
        }
        if args.stream_timeout < Duration::from_secs(1) {
            bail!(
                "--stream-timeout {:?} must be at least 1 second",
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
            record_segment: args.record_segment,
            force: args.force,
            snapshot_dir: args.snapshot_dir.unwrap_or_default(),
            max_frame_bytes: args.max_frame_bytes,
            protocol: args.protocol,
            msg_port: args.msg_port,
            simulate: args.simulate,
            psk,
            aead: args.aead.map(AeadChoice::from).unwrap_or_default(),
            max_streams: args.max_streams,
            stream_timeout: args.stream_timeout,
            http,
        })
    }
}

/// Creates `dir` (and its parents) if missing, and checks that a file can be made in it: a
/// directory that cannot be written is found at start-up, not at the first frame.
fn writable_dir(flag: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the {flag} directory {}", dir.display()))?;
    check_writable(flag, dir)
}

/// Creates and removes an empty file in `dir`. (Permission bits alone would not tell: root
/// ignores them, and a read-only mount or a full inode table does not show in them.)
fn check_writable(flag: &str, dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".cam-viewer-write-test-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("cannot write in the {flag} directory {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// `90`, `90s`, `1.5m`, `15m`, `1h`: a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1.0),
        Some((at, 'm')) => (&text[..at], 60.0),
        Some((at, 'h')) => (&text[..at], 3600.0),
        _ => (text, 1.0),
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not a duration: give seconds, or a number with s, m or h (90, 15m, 1h)"
        )
    })?;
    let secs = value * unit;
    if !(0.001..1e9).contains(&secs) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn stream_timeout_takes_durations_and_refuses_absurd_ones() {
        use clap::Parser;
        let parse = |v: &str| Args::try_parse_from(["cam-viewer", "--stream-timeout", v]);
        assert_eq!(
            parse("90s").unwrap().stream_timeout,
            Duration::from_secs(90)
        );
        // Once parsed as a float and given to Duration::from_secs_f64, which panicked.
        assert!(parse("1e300").is_err());
        assert!(parse("nan").is_err());
    }

    #[test]
    fn durations_in_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0", "-1", "m", "1d", "nan", "inf", "1e300"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
