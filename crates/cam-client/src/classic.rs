//! `--protocol classic`: the original Python example's client protocol, so that camstream can
//! replace its client while its server (or `cam-viewer --protocol classic`) stays. Each image
//! goes as an 8-byte little-endian length and 1024-byte chunks (or one datagram with
//! `--chunk-size 0`); then any reply, or `--ack-timeout`, and the next image goes. Unlike the
//! original, a lost reply never blocks the client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cam_proto::adapt::{Scale, Settings};
use cam_proto::classic::{
    ClassicSender, ClassicSenderConfig, ClassicSenderEvent, DEFAULT_CHUNK_SIZE, MAX_ONE_DATAGRAM,
};
use cam_proto::sim::Link;
use clap::ValueEnum;
use crossbeam_channel::{never, select};

use crate::capture::{self, CaptureSettings, Captured};
use crate::cli::Config;
use crate::run::{self, Summary};
use crate::source;

/// How long to wait for a reply when `--ack-timeout` is not given.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_millis(1000);

/// What the client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// camstream's own: checked, acknowledged, retransmitted.
    #[default]
    Camstream,
    /// The original Python example's: length header and 1024-byte chunks, one image at a time.
    Classic,
}

/// `--chunk-size` in classic mode: the example's 1024 unless told, 0 for one datagram.
pub fn checked_chunk_size(asked: Option<u32>) -> Result<usize> {
    let size = asked.map_or(DEFAULT_CHUNK_SIZE, |n| n as usize);
    if size > MAX_ONE_DATAGRAM {
        bail!(
            "--chunk-size {size} does not fit a UDP datagram: use 1 to {MAX_ONE_DATAGRAM} bytes \
             (the example's 1024 is the default), or 0 to send each image as one datagram"
        );
    }
    Ok(size)
}

/// Runs the classic send loop until the frame count, the duration, Ctrl-C or a fatal error.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<(Summary, bool)> {
    let at_end = source::AtEnd::loop_if(config.frames.is_some() || config.duration.is_some());
    let source = source::open_source_with(&config.source, &config.source_options, at_end)
        .with_context(|| format!("cannot open source '{}'", config.source))?;
    log::info!("source: {}", source.describe());
    let socket = run::open_socket(config.viewer)?;
    let reply_timeout = config.ack_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT);
    let mut sender = ClassicSender::new(ClassicSenderConfig {
        chunk_size: usize::from(config.chunk_size),
        reply_timeout,
    });
    let impairment = config.simulate.impairment();
    let mut link = (!impairment.is_perfect()).then(|| Link::new(impairment));
    if link.is_some() {
        log::info!(
            "simulating a bad link on what this client sends: {:?}",
            config.simulate
        );
    }
    log::info!(
        "sending classic images to {} ({}): {}, waiting up to {} ms for each reply",
        config.viewer_text,
        config.viewer,
        match config.chunk_size {
            0 => "one datagram each".to_string(),
            n => format!("8-byte length and {n}-byte chunks"),
        },
        reply_timeout.as_millis()
    );

    // Classic mode does not adapt: the capture settings stay as asked.
    let settings = Settings {
        quality: config.source_options.quality,
        scale: Scale::Full,
        fps: config.fps,
    };
    let (captured, capture_thread) =
        capture::spawn(source, settings, never::<CaptureSettings>(), stop.clone())
            .context("cannot start the capture thread")?;
    let inbox = run::spawn_receiver(&socket, stop.clone())?;

    let started = Instant::now();
    let end_at = config.duration.map(|d| started + d);
    let mut buf = Vec::with_capacity(65_536);
    let mut exhausted = false;
    let mut ok = true;
    let mut failure = None;
    let mut reply_time = ReplyTime::default();
    let mut status_at = started + Duration::from_secs(1);
    let no_frames = never::<Captured>();

    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let budget_done = config
            .frames
            .is_some_and(|n| sender.stats().frames_sent >= n);
        let time_done = end_at.is_some_and(|t| now >= t);
        if time_done || ((budget_done || exhausted) && sender.can_send()) {
            break;
        }
        if sender.stats().replies_received == 0 && now - started >= config.give_up {
            log::error!(
                "no reply from {} within {:.1} s: is a classic server (or cam-viewer --protocol classic) \
                 running there, on that port? A firewall may block UDP, or a server behind NAT needs a forwarded port.",
                config.viewer_text,
                config.give_up.as_secs_f64()
            );
            ok = false;
            break;
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        while sender.poll_transmit(&mut buf) {
            match link.as_mut() {
                Some(link) => link.send(now, &buf),
                None => run::transmit(&socket, &buf)?,
            }
        }
        if let Some(link) = link.as_mut() {
            while let Some(d) = link.poll_deliver(now) {
                run::transmit(&socket, &d)?;
            }
        }
        while let Some(event) = sender.poll_event() {
            match event {
                ClassicSenderEvent::Replied { after, lost } => {
                    reply_time.add(after);
                    if lost {
                        log::debug!("the viewer lost an image and asked for the next");
                    }
                }
                ClassicSenderEvent::TimedOut => log::debug!(
                    "no reply within {} ms; sending the next image",
                    reply_timeout.as_millis()
                ),
            }
        }
        if now >= status_at {
            let s = sender.stats();
            eprintln!(
                "cam-client: classic: sent {}, replies {}, lost by the viewer {}, timed out {}",
                s.frames_sent, s.frames_replied, s.frames_reported_lost, s.frames_timed_out
            );
            status_at = now + Duration::from_secs(1);
        }

        let wants_frame = sender.can_send() && !budget_done && !exhausted;
        let frames = if wants_frame { &captured } else { &no_frames };
        let timeout = run::time_to_wait([
            sender.poll_timeout(),
            link.as_ref().and_then(Link::next_delivery),
            end_at,
            Some(status_at),
            // Only while nothing has answered: once past, it would turn this loop into a spin.
            (sender.stats().replies_received == 0).then_some(started + config.give_up),
        ]);
        select! {
            recv(frames) -> item => match item {
                Ok(Captured::Frame(frame, _)) => {
                    let now = Instant::now();
                    // A reply that came after its image timed out must not count for this one.
                    while let Ok(stale) = inbox.try_recv() {
                        sender.handle_datagram(now, &stale);
                    }
                    if let Err(e) = sender.send_frame(now, frame.data) {
                        failure = Some(e);
                        break;
                    }
                }
                Ok(Captured::Failed(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e).context("capture failed");
                }
                Ok(Captured::Exhausted) | Err(_) => exhausted = true,
            },
            recv(inbox) -> datagram => {
                if let Ok(datagram) = datagram {
                    sender.handle_datagram(Instant::now(), &datagram);
                }
            },
            default(timeout) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let capture_dropped = capture_thread.join().unwrap_or(0);
    if let Some(e) = failure {
        return Err(e).context("cannot send the image");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sender.stats().clone();
    if stats.replies_received == 0 && ok {
        log::error!(
            "the server at {} never replied: is a classic server (or cam-viewer --protocol classic) running there?",
            config.viewer_text
        );
        ok = false;
    }
    if stats.frames_reported_lost > 0 {
        log::info!(
            "the viewer lost {} of {} images on the way and asked for the next",
            stats.frames_reported_lost,
            stats.frames_sent
        );
    }
    let summary = Summary {
        kind: "summary",
        frames_sent: stats.frames_sent,
        frames_acked: stats.frames_replied,
        frames_timed_out: stats.frames_timed_out,
        frames_refused: 0,
        retransmits: 0,
        probes: 0,
        datagrams_sent: stats.datagrams_sent,
        bytes_sent: stats.bytes_sent,
        acks_received: stats.replies_received,
        datagrams_invalid: 0,
        capture_dropped,
        elapsed_s: run::round3(elapsed),
        fps: run::round3(stats.frames_replied as f64 / elapsed.max(1e-9)),
        rtt_ms: run::round3(reply_time.mean_ms()),
        rate_kbps: run::round3(stats.bytes_sent as f64 * 8.0 / 1000.0 / elapsed.max(1e-9)),
        target_kbps: None,
        quality: settings.quality,
        width: config.source_options.width,
        height: config.source_options.height,
        stream_id: "classic".into(),
        keyed: false,
        aead: None,
    };
    Ok((summary, ok))
}

/// Mean time from sending an image to its reply: the classic protocol's round trip.
#[derive(Debug, Default)]
struct ReplyTime {
    total: Duration,
    count: u32,
}

impl ReplyTime {
    fn add(&mut self, after: Duration) {
        self.total += after;
        self.count += 1;
    }

    fn mean_ms(&self) -> f64 {
        match self.count {
            0 => 0.0,
            n => self.total.as_secs_f64() * 1000.0 / f64::from(n),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use crate::cli::Args;
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
