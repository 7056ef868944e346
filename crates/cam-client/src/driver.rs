//! The one send loop, for every protocol: a `FrameSender` from `protocol::build` plus the
//! socket, the capture thread, the optional simulated link, give-up, link adaptation, the
//! status line and the summary.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cam_net::batch::{BatchSender, Batching};
use cam_net::wait::time_to_wait;
use cam_proto::adapt::{AdaptConfig, Adapter, Scale, Settings};
use cam_proto::machine::{FrameSender, SendEvent, Transmit};
use cam_proto::sim::Link;
use crossbeam_channel::{bounded, never, select, Receiver, Sender};

use crate::capture::{self, CaptureSettings, Captured};
use crate::cli::{Config, GiveUp};
use crate::protocol::{self, Protocol};
use crate::rtpfit::RtpFit;
use crate::source;
use crate::status::{Connection, StatusLine};
use crate::summary::Summary;

/// Datagrams from the receiver waiting for the loop; answers are small and few.
const INBOX: usize = 1024;
/// Longest the loop blocks, so Ctrl-C and the end of a run are seen promptly.
const MAX_IDLE: Duration = Duration::from_millis(100);
/// Link adaptation never takes JPEG quality below this; it shrinks the picture instead.
const MIN_ADAPT_QUALITY: u8 = 30;

/// What the network thread hands the loop.
#[derive(Debug)]
enum Incoming {
    Datagram(Vec<u8>),
    /// ICMP port unreachable: nothing listens at the receiver's address (yet).
    Refused,
}

/// Runs until the frame count, the duration, Ctrl-C or a fatal error. Returns the summary
/// and whether the run counts as a success.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<(Summary, bool)> {
    let at_end = source::AtEnd::loop_if(config.frames.is_some() || config.duration.is_some());
    let source = source::open_source_with(&config.source, &config.source_options, at_end)
        .with_context(|| format!("cannot open source '{}'", config.source))?;
    log::info!("source: {}", source.describe());
    let socket = cam_net::socket::connect(config.viewer)?;
    // GSO batches where the kernel has it (cam-net batch.rs); flushed before every wait.
    let mut batch = BatchSender::new(&socket, Batching::from_env());
    let mut sender = protocol::build(config, config.viewer);
    let impairment = config.simulate.impairment();
    let mut link = (!impairment.is_perfect()).then(|| Link::<SocketAddr>::new(impairment));
    if link.is_some() {
        log::info!(
            "simulating a bad link on what this client sends: {:?}",
            config.simulate
        );
    }
    log::info!("{}", protocol::describe(config, sender.as_ref()));
    if config.protocol == Protocol::Rtp && config.fps == 0 {
        log::warn!(
            "--fps 0 with --protocol rtp: nothing acknowledges RTP frames, so they leave as fast \
             as the source makes them and a receiver may drop them; give a rate with --fps N"
        );
    }
    if let Some(path) = &config.sdp {
        write_sdp(path, config)?;
    }
    let mut rtp_fit =
        (config.protocol == Protocol::Rtp).then(|| RtpFit::new(config.source_options.quality));

    let mut adapter = Adapter::new(AdaptConfig {
        max_quality: config.source_options.quality,
        min_quality: MIN_ADAPT_QUALITY.min(config.source_options.quality),
        fps: config.fps,
        can_reencode: source.can_reencode(),
    });
    let adapts = config.protocol.adapts();
    let full_size = source
        .size()
        .unwrap_or((config.source_options.width, config.source_options.height));
    let (settings_tx, settings_rx) = bounded::<CaptureSettings>(4);
    let initial = if adapts {
        adapter.settings()
    } else {
        Settings {
            quality: config.source_options.quality,
            scale: Scale::Full,
            fps: config.fps,
        }
    };
    let (captured, capture_thread) = capture::spawn(source, initial, settings_rx, stop.clone())
        .context("cannot start the capture thread")?;
    let (full_w, full_h) = full_size;
    let mut size_now = full_size;
    let inbox = spawn_receiver(&socket, stop.clone())?;

    let started = Instant::now();
    let end_at = config.duration.map(|d| started + d);
    let give_up_at = match config.give_up {
        GiveUp::After(d) => Some(started + d),
        GiveUp::Never => None,
    };
    let mut buf = Vec::with_capacity(65_536);
    let mut status = StatusLine::new(started, config.protocol);
    let mut connection = Connection::new(config.viewer_text.clone());
    let mut exhausted = false;
    let mut failure: Option<String> = None;
    let mut fatal = None;
    let no_frames = never::<Captured>();

    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let heard = sender.has_heard_peer();
        let budget_done = config
            .frames
            .is_some_and(|n| sender.stats().frames_sent >= n);
        let time_done = end_at.is_some_and(|t| now >= t);
        if time_done || ((budget_done || exhausted) && sender.frames_in_flight() == 0) {
            break;
        }
        if !heard && sender.stats().receiver_full > 0 {
            if config.give_up != GiveUp::Never {
                failure = Some(protocol::full_message(config));
                break;
            }
            connection.full(|| protocol::full_message(config));
        }
        if sender.expects_answers() && !heard && give_up_at.is_some_and(|t| now >= t) {
            failure = Some(protocol::no_answer_message(
                config,
                sender.as_ref(),
                now - started,
            ));
            break;
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        while let Some(Transmit { to, len }) = sender.poll_transmit(now, &mut buf) {
            match link.as_mut() {
                Some(link) => link.send_to(now, to, &buf[..len]),
                None => transmit(&mut batch, &socket, &buf[..len])?,
            }
        }
        if let Some(link) = link.as_mut() {
            while let Some((_, d)) = link.poll_deliver_to(now) {
                transmit(&mut batch, &socket, &d)?;
            }
        }
        sent(batch.flush(&socket), 0)?;
        while let Some(event) = sender.poll_event() {
            match event {
                SendEvent::Acked {
                    seq,
                    delivery_time,
                    retransmits,
                } => log::trace!(
                    "frame {seq} acked after {delivery_time:?} with {retransmits} retransmissions"
                ),
                SendEvent::Abandoned { seq, reason } => {
                    log::debug!("frame {seq} abandoned: {reason:?}")
                }
            }
        }
        if sender.expects_answers() {
            connection.observe(now, sender.stats().acks_received, sender.rtt());
        }
        if adapts {
            if let Some(s) = adapter.update(now, sender.target_rate_bps()) {
                let (w, h) = config.protocol.fit_size(s.scale.apply(full_w, full_h));
                log::info!(
                    "adapting to the link ({}): quality {}, {w}x{h}, {} fps",
                    crate::status::rate_text(sender.target_rate_bps()),
                    s.quality,
                    s.fps
                );
                size_now = (w, h);
                let _ = settings_tx.try_send(CaptureSettings {
                    adapt: s,
                    width: w,
                    height: h,
                });
            }
        }
        status.maybe_print(now, sender.as_ref(), &adapter.settings(), size_now);

        let wants_frame = sender.can_send() && !budget_done && !exhausted;
        let frames = if wants_frame { &captured } else { &no_frames };
        let timeout = time_to_wait(
            Instant::now(),
            [
                sender.poll_timeout(),
                link.as_ref().and_then(Link::next_delivery),
                end_at,
                Some(status.next_at()),
                // Only while nobody has answered: once past, it would turn this loop into a spin.
                give_up_at.filter(|_| !heard && sender.expects_answers()),
            ],
            MAX_IDLE,
        );
        select! {
            recv(frames) -> item => match item {
                Ok(Captured::Frame(frame, used)) => {
                    adapter.on_frame(frame.data.len(), used);
                    // The size sent, as the frame says it (files keep their own size).
                    if frame.width > 0 && frame.height > 0 {
                        size_now = (u32::from(frame.width), u32::from(frame.height));
                    }
                    let now = Instant::now();
                    // An answer that came before this frame must not count for it.
                    take_waiting(&inbox, sender.as_mut(), now, config.viewer);
                    let fitted = match rtp_fit.as_mut() {
                        Some(fit) => fit.fit(frame),
                        None => Ok(frame),
                    };
                    if let Err(e) = fitted.and_then(|frame| sender.send_frame(now, frame)) {
                        if e.is_fatal() {
                            fatal = Some(e);
                            break;
                        }
                        log::debug!("frame not sent: {e}");
                    }
                }
                Ok(Captured::Failed(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e).context("capture failed");
                }
                Ok(Captured::Exhausted) | Err(_) => exhausted = true,
            },
            recv(inbox) -> incoming => match incoming {
                Ok(Incoming::Datagram(d)) => {
                    let now = Instant::now();
                    sender.handle_datagram(now, config.viewer, &d);
                    // Take everything that is waiting before the next round of transmissions.
                    take_waiting(&inbox, sender.as_mut(), now, config.viewer);
                }
                Ok(Incoming::Refused) => {
                    if let Some(why) = connection.refused(
                        sender.expects_answers(),
                        sender.has_heard_peer(),
                        config.give_up,
                    ) {
                        failure = Some(why);
                        break;
                    }
                }
                Err(_) => {}
            },
            default(timeout) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let capture_dropped = capture_thread.join().unwrap_or(0);
    if let Some(e) = fatal {
        return Err(e).context("cannot send the frame");
    }
    let elapsed = started.elapsed();
    let stats = sender.stats();
    if failure.is_none() && sender.expects_answers() && !sender.has_heard_peer() {
        failure = Some(protocol::no_answer_message(
            config,
            sender.as_ref(),
            elapsed,
        ));
    }
    if let Some(why) = &failure {
        log::error!("{why}");
    }
    if config.protocol == Protocol::Classic && stats.frames_refused > 0 {
        log::info!(
            "the viewer lost {} of {} images on the way and asked for the next",
            stats.frames_refused,
            stats.frames_sent
        );
    }
    let settings = if adapts { adapter.settings() } else { initial };
    let summary = Summary::new(
        &stats,
        sender.as_ref(),
        elapsed,
        capture_dropped,
        settings.quality,
        size_now,
    );
    Ok((summary, failure.is_none()))
}

/// Feeds the sender every datagram already waiting. A refused port among them says nothing
/// new: the loop hears of it from the next one.
fn take_waiting(
    inbox: &Receiver<Incoming>,
    sender: &mut dyn FrameSender,
    now: Instant,
    from: SocketAddr,
) {
    while let Ok(incoming) = inbox.try_recv() {
        if let Incoming::Datagram(d) = incoming {
            sender.handle_datagram(now, from, &d);
        }
    }
}

/// `--sdp FILE`: the session description a player on the receiving side opens. Logged too,
/// so a user who did not ask for a file still sees what to give ffplay or VLC.
fn write_sdp(path: &std::path::Path, config: &Config) -> Result<()> {
    let text = cam_proto::rtp::sdp(config.viewer.ip(), config.viewer.port(), "camstream", true);
    std::fs::write(path, &text)
        .with_context(|| format!("cannot write the SDP file {}", path.display()))?;
    log::info!(
        "wrote {} (open it with ffplay -protocol_whitelist file,udp,rtp -i {0} or VLC):\n{}",
        path.display(),
        text.trim_end()
    );
    Ok(())
}

/// Sends one datagram. "Message too long" is fatal and names the flag that fixes it; a
/// refused port (no receiver yet) and a full buffer are not: the network thread reports a
/// refused port, and a lost datagram is what the protocols are built for.
fn transmit(batch: &mut BatchSender, socket: &UdpSocket, datagram: &[u8]) -> Result<()> {
    sent(batch.send(socket, datagram), datagram.len())
}

/// What `transmit` says about a send's outcome (`len` 0: a batch).
fn sent(result: std::io::Result<()>, len: usize) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => bail!(
            "the system refused a {len}-byte datagram as too long (EMSGSIZE; macOS allows 9216 bytes by default): \
             lower --chunk-size (1200 is safe everywhere)"
        ),
        Err(e) if transient(&e) => {
            log::trace!("send: {e}");
            Ok(())
        }
        Err(e) => Err(e).context("cannot send to the viewer"),
    }
}

fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::WouldBlock | ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// A thread that reads the socket and hands datagrams to the loop, so that the loop can
/// wait on the network and the capture thread at once.
fn spawn_receiver(socket: &UdpSocket, stop: Arc<AtomicBool>) -> Result<Receiver<Incoming>> {
    let socket = socket.try_clone().context("cannot share the UDP socket")?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .context("cannot set a socket timeout")?;
    let (tx, rx) = bounded(INBOX);
    std::thread::Builder::new()
        .name("net-rx".into())
        .spawn(move || receive(&socket, &tx, &stop))
        .context("cannot start the network thread")?;
    Ok(rx)
}

fn receive(socket: &UdpSocket, tx: &Sender<Incoming>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let incoming = match socket.recv(&mut buf) {
            Ok(n) => Incoming::Datagram(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Incoming::Refused,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                continue
            }
            Err(e) if transient(&e) => {
                log::trace!("recv: {e}");
                continue;
            }
            Err(e) => {
                log::warn!("receiving from the viewer failed: {e}");
                break;
            }
        };
        // A full inbox drops the datagram, as a full socket buffer would.
        if tx.try_send(incoming).is_err() && tx.is_empty() {
            break;
        }
    }
}
