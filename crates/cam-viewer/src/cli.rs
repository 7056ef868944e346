//! Command-line flags, checked into a `Config`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use cam_proto::sim::SimulateArgs;
use clap::Parser;

const EXAMPLES: &str = "\
Keys (in the window):
  q, Esc    quit

Examples:
  A monitoring machine (cameras send to this machine's port 9999):
    cam-viewer --port 9999

  Localhost demo with the test card:
    cam-viewer --port 9999 &
    cam-client 127.0.0.1:9999 --source pattern

  No window: decode, count and keep every frame's exact bytes:
    cam-viewer --headless --frames 200 --save-frames ./received";

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

    /// Refuse frames that declare more bytes than this.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_frame_bytes: u32,

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
    pub max_frame_bytes: u32,
    pub simulate: SimulateArgs,
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
        if args.frames == Some(0) {
            bail!("--frames 0 would stop before the first frame; give at least 1");
        }
        if args.max_frame_bytes < 1024 {
            bail!(
                "--max-frame-bytes {} is too small for any picture; use at least 1024",
                args.max_frame_bytes
            );
        }
        if let Some(dir) = &args.save_frames {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create --save-frames directory {}: {e}",
                    dir.display()
                )
            })?;
        }
        Ok(Config {
            port: args.port,
            bind: args.bind,
            headless: args.headless,
            frames: args.frames,
            duration,
            save_frames: args.save_frames,
            max_frame_bytes: args.max_frame_bytes,
            simulate: args.simulate,
        })
    }
}
