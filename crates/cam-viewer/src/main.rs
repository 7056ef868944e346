//! cam-viewer: parse, validate, run, report. The work lives in the library modules.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cam_proto::receiver::ReceiverConfig;
use cam_viewer::cli::{Args, Config};
use cam_viewer::decode::DecodeStats;
use cam_viewer::display::{self, DisplayOptions};
use cam_viewer::summary::Summary;
use cam_viewer::{headless, net, worker};
use clap::Parser;

/// Complete frames queued for decoding. Small: the sender's credit follows its free room.
const DECODE_QUEUE: usize = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cam-viewer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_args(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))?;

    let socket = net::bind(config.bind, config.port)?;
    let local = socket
        .local_addr()
        .context("cannot read the bound address")?;
    log::info!("waiting for a stream on {local}");
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(DECODE_QUEUE);
    let worker = worker::spawn(
        socket,
        tx,
        stop.clone(),
        worker::WorkerConfig {
            receiver: ReceiverConfig {
                max_frame_bytes: config.max_frame_bytes,
                ..ReceiverConfig::default()
            },
            save_frames: config.save_frames.clone(),
            frames: config.frames,
            end_at: config.duration.map(|d| started + d),
            impairment: config.simulate.impairment(),
        },
    )?;

    let stats = DecodeStats::default();
    let shown = if config.headless {
        headless::run_headless(rx, stop.clone(), &stats).map_err(anyhow::Error::from)
    } else {
        let opts = DisplayOptions {
            listen_desc: local.to_string(),
            ..DisplayOptions::default()
        };
        display::run_window(rx, stop.clone(), opts, &stats).map_err(anyhow::Error::from)
    };
    stop.store(true, Ordering::Relaxed);
    let report = match worker.join() {
        Ok(report) => report?,
        Err(_) => anyhow::bail!("the receive thread panicked"),
    };
    shown?;
    let summary = Summary::new(&report, &stats.snapshot(), started.elapsed());
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
