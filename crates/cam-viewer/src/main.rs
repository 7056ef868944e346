//! cam-viewer: parse, validate, run, report. The work lives in the library modules.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cam_net::output;
use cam_proto::receiver::ReceiverConfig;
use cam_viewer::cli::{Args, Config};
use cam_viewer::decode::DecodeStats;
use cam_viewer::display::{self, DisplayOptions};
use cam_viewer::hub::Hub;
use cam_viewer::live::LiveStats;
use cam_viewer::summary::Summary;
use cam_viewer::{headless, http, jsonout, msgport, net, record, worker};
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
        // Whoever read our output went away: not a failure of ours (as ripgrep does it).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::eprint_line(&format!("cam-viewer: error: {e:#}"));
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
    if config.psk.is_some() {
        log::info!("keyed: only a client with the same key is shown; everything else is refused");
    }
    let (record_sink, recorder) = match &config.record {
        Some(path) => {
            let options = record::RecordOptions {
                force: config.force,
                segment: config.record_segment,
            };
            let (sink, recorder, path) = record::start(path, options)?;
            log::info!("recording to {}", path.display());
            (Some(sink), Some(recorder))
        }
        None => (None, None),
    };
    let live = Arc::new(LiveStats::default());
    let hub = Arc::new(Hub::default());
    let more_recorders = Arc::default();
    let http = match config.http.clone() {
        Some(c) => Some(http::start(c, Arc::clone(&hub))?),
        None => None,
    };
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(DECODE_QUEUE);
    let worker = worker::spawn(
        socket,
        tx,
        stop.clone(),
        worker::WorkerConfig {
            receiver: ReceiverConfig {
                max_frame_bytes: config.max_frame_bytes,
                psk: config.psk.clone(),
                aeads: config.aead.set(),
                ..ReceiverConfig::default()
            },
            save_frames: config.save_frames.clone(),
            frames: config.frames,
            end_at: config.duration.map(|d| started + d),
            impairment: config.simulate.impairment(),
            protocol: config.protocol,
            live: Some(live.clone()),
            record: record_sink,
            record_path: config.record.clone(),
            record_options: record::RecordOptions {
                force: config.force,
                segment: config.record_segment,
            },
            more_recorders: Arc::clone(&more_recorders),
            max_streams: config.max_streams,
            stream_timeout: config.stream_timeout,
            hub: Arc::clone(&hub),
        },
    )?;
    // The latest --msg-port message, for the on-screen display.
    let latest_message = msgport::LatestMessage::default();
    let messages = msgport::start(
        config.msg_port,
        config.bind,
        config.protocol,
        latest_message.clone(),
        stop.clone(),
    )?;

    let stats = DecodeStats::default();
    let shown = if config.headless {
        headless::run_headless(rx, stop.clone(), &stats, Some(&live)).map_err(anyhow::Error::from)
    } else {
        let opts = DisplayOptions {
            listen_desc: local.to_string(),
            live,
            latest_message: latest_message.clone(),
            snapshot_dir: config.snapshot_dir.clone(),
            hub: Arc::clone(&hub),
            ..DisplayOptions::default()
        };
        display::run_window(rx, stop.clone(), opts, &stats).map_err(anyhow::Error::from)
    };
    stop.store(true, Ordering::Relaxed);
    let joined = worker.join();
    // The worker held the recording's only sink: now the recorder writes what is still queued,
    // finalises the file and ends, whichever way the worker ended.
    let mut recorded = recorder.map(record::Recorder::finish);
    let more: Vec<record::Recorder> = std::mem::take(
        &mut *more_recorders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for (report, result) in more.into_iter().map(record::Recorder::finish) {
        if let Some((total, first_result)) = recorded.as_mut() {
            total.frames_recorded += report.frames_recorded;
            total.frames_unrecorded += report.frames_unrecorded;
            if first_result.is_ok() {
                *first_result = result;
            }
        }
    }
    if let Some(server) = http {
        let c = server.stop();
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        log::info!(
            "http: {} connections ({} refused as too many), {} requests ({} unauthorised), {} stream parts sent",
            n(&c.connections),
            n(&c.refused_busy),
            n(&c.requests),
            n(&c.unauthorized),
            n(&c.parts_sent)
        );
    }
    let report = match joined {
        Ok(report) => report?,
        Err(_) => anyhow::bail!("the receive thread panicked"),
    };
    // Joined before the summary, so that the summary stays the last line on stdout.
    if let Some(report) = messages.and_then(|m| m.join().ok()) {
        log::info!(
            "message port: {} messages, {} refused",
            report.messages,
            report.refused
        );
    }
    shown?;
    let mut summary = Summary::new(
        &report,
        &stats.snapshot(),
        &stats.latency,
        started.elapsed(),
        hub.all_states(Instant::now()),
    );
    if let Some((recording, result)) = recorded {
        summary.frames_recorded = Some(recording.frames_recorded);
        summary.frames_unrecorded = Some(recording.frames_unrecorded);
        summary.record_error = result.err().map(|e| format!("{e:#}"));
    }
    jsonout::last_line(&summary).context("cannot print the summary")?;
    // The stream went on; the exit status still says that what was asked for is incomplete.
    let mut code = ExitCode::SUCCESS;
    if let Some(e) = &summary.save_error {
        output::eprint_line(&format!(
            "cam-viewer: error: saving stopped after {} frames: {e}",
            summary.frames_saved
        ));
        code = ExitCode::FAILURE;
    }
    if let Some(e) = &summary.record_error {
        output::eprint_line(&format!(
            "cam-viewer: error: the recording is incomplete: {e}"
        ));
        code = ExitCode::FAILURE;
    }
    Ok(code)
}
