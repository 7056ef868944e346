//! The sending loop: a dozen lines around `cam_proto::Sender` plus the socket, the capture
//! channel, the optional simulated link, the status line and the summary.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cam_proto::adapt::{AdaptConfig, Adapter, Settings};
use cam_proto::secure::{Aead, AeadChoice};
use cam_proto::sender::{Sender, SenderConfig, SenderEvent};
use cam_proto::sim::Link;
use crossbeam_channel::{bounded, never, select, Receiver};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::capture::{self, CaptureSettings, Captured};
use crate::cli::Config;
use crate::source;

/// Socket buffers we ask for; the kernel caps them (`net.core.rmem_max`/`wmem_max`).
const SOCKET_BUFFER: usize = 4 << 20;
/// Datagrams from the viewer waiting for the loop; acks are small and few.
const INBOX: usize = 1024;

#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub frames_sent: u64,
    pub frames_acked: u64,
    pub frames_timed_out: u64,
    pub frames_refused: u64,
    pub retransmits: u64,
    pub probes: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub acks_received: u64,
    pub datagrams_invalid: u64,
    pub capture_dropped: u64,
    pub elapsed_s: f64,
    pub fps: f64,
    pub rtt_ms: f64,
    /// Average sending rate over the run.
    pub rate_kbps: f64,
    /// What the path was found to carry; null when no congestion was ever seen.
    pub target_kbps: Option<f64>,
    /// Settings in force at the end (after link adaptation).
    pub quality: u8,
    pub width: u32,
    pub height: u32,
    pub stream_id: String,
    /// Keyed mode (`--key-file`): every datagram sealed, after a handshake.
    pub keyed: bool,
    /// Keyed mode: the AEAD the viewer chose ("aes-256-gcm" or "chacha20-poly1305").
    pub aead: Option<&'static str>,
}

/// Runs until the frame count, the duration, Ctrl-C or a fatal error. Returns the summary
/// and whether the run counts as a success.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<(Summary, bool)> {
    if config.protocol == crate::classic::Protocol::Classic {
        return crate::classic::run(config, stop);
    }
    let at_end = source::AtEnd::loop_if(config.frames.is_some() || config.duration.is_some());
    let source = source::open_source_with(&config.source, &config.source_options, at_end)
        .with_context(|| format!("cannot open source '{}'", config.source))?;
    log::info!("source: {}", source.describe());
    let socket = open_socket(config.viewer)?;
    let stream_id: u32 = rand::random();
    let mut sender = Sender::new(
        stream_id,
        0,
        SenderConfig {
            chunk_size: config.chunk_size,
            max_in_flight: config.max_in_flight,
            ack_timeout: config.ack_timeout,
            frame_deadline: config.frame_deadline,
            frame_interval: (config.fps > 0)
                .then(|| Duration::from_secs_f64(1.0 / f64::from(config.fps))),
            psk: config.psk.clone(),
            aeads: config.aead.set(),
            ..SenderConfig::default()
        },
    );
    if sender.is_keyed() {
        log::info!("keyed: handshaking with the viewer, then encrypting every datagram");
    }
    let impairment = config.simulate.impairment();
    let mut link = (!impairment.is_perfect()).then(|| Link::new(impairment));
    if link.is_some() {
        log::info!(
            "simulating a bad link on what this client sends: {:?}",
            config.simulate
        );
    }
    log::info!(
        "streaming to {} ({}) as stream {stream_id:08x}",
        config.viewer_text,
        config.viewer
    );

    let mut adapter = Adapter::new(AdaptConfig {
        max_quality: config.source_options.quality,
        min_quality: MIN_ADAPT_QUALITY.min(config.source_options.quality),
        fps: config.fps,
        can_reencode: source.can_reencode(),
    });
    let full_size = source
        .size()
        .unwrap_or((config.source_options.width, config.source_options.height));
    let (settings_tx, settings_rx) = bounded::<CaptureSettings>(4);
    let (captured, capture_thread) =
        capture::spawn(source, adapter.settings(), settings_rx, stop.clone())
            .context("cannot start the capture thread")?;
    let (full_w, full_h) = full_size;
    let mut size_now = (full_w, full_h);
    let inbox = spawn_receiver(&socket, stop.clone())?;

    let started = Instant::now();
    let end_at = config.duration.map(|d| started + d);
    let mut buf = Vec::with_capacity(65_536);
    let mut status = StatusLine::new(started);
    let mut exhausted = false;
    let mut ok = true;
    let mut never_answered_warned = false;
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
        if time_done || ((budget_done || exhausted) && sender.frames_in_flight() == 0) {
            break;
        }
        if !sender.has_heard_viewer() && now - started >= config.give_up {
            log::error!(
                "{}",
                no_answer_message(config, sender.is_keyed(), now - started)
            );
            never_answered_warned = true;
            ok = false;
            break;
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        while sender.poll_transmit(now, &mut buf) {
            match link.as_mut() {
                Some(link) => link.send(now, &buf),
                None => transmit(&socket, &buf)?,
            }
        }
        if let Some(link) = link.as_mut() {
            while let Some(d) = link.poll_deliver(now) {
                transmit(&socket, &d)?;
            }
        }
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::Acked {
                    seq,
                    delivery_time,
                    retransmits,
                } => log::trace!(
                    "frame {seq} acked after {delivery_time:?} with {retransmits} retransmissions"
                ),
                SenderEvent::Abandoned { seq, reason } => {
                    log::debug!("frame {seq} abandoned: {reason:?}")
                }
            }
        }
        if let Some(s) = adapter.update(now, sender.target_rate_bps()) {
            let (w, h) = s.scale.apply(full_w, full_h);
            log::info!(
                "adapting to the link ({}): quality {}, {w}x{h}, {} fps",
                rate_text(sender.target_rate_bps()),
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
        status.maybe_print(now, &sender, &adapter.settings(), size_now);

        let wants_frame = sender.can_send() && !budget_done && !exhausted;
        let frames = if wants_frame { &captured } else { &no_frames };
        let timeout = time_to_wait([
            sender.poll_timeout(),
            link.as_ref().and_then(Link::next_delivery),
            end_at,
            Some(status.next_at),
            // Only while nobody has answered: once past, it would turn this loop into a spin.
            (!sender.has_heard_viewer()).then_some(started + config.give_up),
        ]);
        select! {
            recv(frames) -> item => match item {
                Ok(Captured::Frame(frame, used)) => {
                    adapter.on_frame(frame.data.len(), used);
                    if let Err(e) = sender.send_frame(Instant::now(), frame) {
                        log::debug!("frame not sent: {e}");
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
                    let now = Instant::now();
                    if let Err(e) = sender.handle_datagram(now, &datagram) {
                        log::debug!("refused a datagram from the viewer: {e}");
                    }
                    // Take everything that is waiting before the next round of transmissions.
                    while let Ok(more) = inbox.try_recv() {
                        let _ = sender.handle_datagram(now, &more);
                    }
                }
            },
            default(timeout) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let capture_dropped = capture_thread.join().unwrap_or(0);
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sender.stats().clone();
    if !sender.has_heard_viewer() && !never_answered_warned {
        log::error!(
            "{}",
            no_answer_message(config, sender.is_keyed(), started.elapsed())
        );
        ok = false;
    }
    let summary = Summary {
        kind: "summary",
        frames_sent: stats.frames_sent,
        frames_acked: stats.frames_acked,
        frames_timed_out: stats.frames_timed_out,
        frames_refused: stats.frames_refused,
        retransmits: stats.retransmits,
        probes: stats.probes,
        datagrams_sent: stats.datagrams_sent,
        bytes_sent: stats.bytes_sent,
        acks_received: stats.acks_received,
        datagrams_invalid: stats.datagrams_invalid,
        capture_dropped,
        elapsed_s: round3(elapsed),
        fps: round3(stats.frames_acked as f64 / elapsed.max(1e-9)),
        rtt_ms: round3(sender.rtt().smoothed().as_secs_f64() * 1000.0),
        rate_kbps: round3(stats.bytes_sent as f64 * 8.0 / elapsed.max(1e-9) / 1000.0),
        target_kbps: sender.target_rate_bps().map(|t| round3(t / 1000.0)),
        quality: adapter.settings().quality,
        width: size_now.0,
        height: size_now.1,
        stream_id: format!("{stream_id:08x}"),
        keyed: sender.is_keyed(),
        aead: sender.aead().map(Aead::name),
    };
    Ok((summary, ok))
}

/// Why a viewer may never have answered, likeliest first.
fn no_answer_message(config: &Config, keyed: bool, waited: Duration) -> String {
    let network = "Is cam-viewer running there (and on that port)? A firewall may block UDP, \
                   or a viewer behind NAT needs a forwarded port.";
    if keyed {
        let aead = if config.aead == AeadChoice::Auto {
            ""
        } else {
            " With --aead set, a viewer allowing only another cipher refuses the handshake \
             too: leave --aead at auto on both sides."
        };
        format!(
            "no valid answer from a viewer at {} within {:.1} s. This client has a key \
             (--key-file): a viewer without a key, or with a different key, refuses everything \
             it sends, so the likely cause is a key on one side only or different keys: start \
             cam-viewer with --key-file and the same key file.{aead} {network}",
            config.viewer_text,
            waited.as_secs_f64()
        )
    } else {
        format!(
            "no answer from a viewer at {} within {:.1} s. {network} If the viewer was started \
             with --key-file, this client needs the same key (--key-file): a key on one side \
             only or different keys get no answer.",
            config.viewer_text,
            waited.as_secs_f64()
        )
    }
}

/// Link adaptation never takes JPEG quality below this; it shrinks the picture instead.
const MIN_ADAPT_QUALITY: u8 = 30;

fn rate_text(target: Option<f64>) -> String {
    target.map_or_else(
        || "no limit seen".to_owned(),
        |t| format!("{:.0} kbit/s", t / 1000.0),
    )
}

/// Longest the send loop blocks, so Ctrl-C and the end of a run are seen promptly.
const MAX_IDLE: Duration = Duration::from_millis(100);

/// How long the send loop may block: until the earliest of its wake-ups (a past one means
/// "now"), and never longer than `MAX_IDLE`. A wake-up that no longer applies must be left
/// out by the caller (`None`), or it would keep the loop spinning.
pub(crate) fn time_to_wait(wakes: impl IntoIterator<Item = Option<Instant>>) -> Duration {
    let now = Instant::now();
    wakes
        .into_iter()
        .flatten()
        .min()
        .map_or(MAX_IDLE, |t| t.saturating_duration_since(now))
        .min(MAX_IDLE)
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A socket connected to the viewer: the kernel then drops datagrams from anyone else.
pub(crate) fn open_socket(viewer: SocketAddr) -> Result<UdpSocket> {
    let domain = if viewer.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .context("cannot create a UDP socket")?;
    for (what, result) in [
        ("send", socket.set_send_buffer_size(SOCKET_BUFFER)),
        ("receive", socket.set_recv_buffer_size(SOCKET_BUFFER)),
    ] {
        if let Err(e) = result {
            log::warn!("cannot enlarge the {what} buffer: {e}");
        }
    }
    log::info!(
        "socket buffers: send {} KiB, receive {} KiB (asked for {} KiB; the kernel caps them at net.core.wmem_max/rmem_max)",
        socket.send_buffer_size().unwrap_or(0) / 1024,
        socket.recv_buffer_size().unwrap_or(0) / 1024,
        SOCKET_BUFFER / 1024
    );
    let local: SocketAddr = if viewer.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    socket
        .bind(&local.into())
        .context("cannot bind a local UDP port")?;
    socket
        .connect(&viewer.into())
        .with_context(|| format!("cannot reach {viewer} (no route?)"))?;
    Ok(socket.into())
}

/// Sends one datagram. "Message too long" is fatal and names the flag that fixes it; a
/// refused port (no viewer yet) and a full buffer are not.
pub(crate) fn transmit(socket: &UdpSocket, datagram: &[u8]) -> Result<()> {
    match socket.send(datagram) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => bail!(
            "the system refused a {}-byte datagram as too long (EMSGSIZE; macOS allows 9216 bytes by default): \
             lower --chunk-size (1200 is safe everywhere)",
            datagram.len()
        ),
        Err(e) if transient(&e) => {
            log::trace!("send: {e}");
            Ok(())
        }
        Err(e) => Err(e).context("cannot send to the viewer"),
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::WouldBlock | ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// A thread that reads the socket and hands datagrams to the loop, so that the loop can
/// wait on the network and the capture thread at once.
pub(crate) fn spawn_receiver(
    socket: &UdpSocket,
    stop: Arc<AtomicBool>,
) -> Result<Receiver<Vec<u8>>> {
    let socket = socket.try_clone().context("cannot share the UDP socket")?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .context("cannot set a socket timeout")?;
    let (tx, rx) = bounded(INBOX);
    std::thread::Builder::new()
        .name("net-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        if tx.try_send(buf[..n].to_vec()).is_err() && tx.is_empty() {
                            break;
                        }
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    }
                    Err(e) if transient(&e) => log::trace!("recv: {e}"),
                    Err(e) => {
                        log::warn!("receiving from the viewer failed: {e}");
                        break;
                    }
                }
            }
        })
        .context("cannot start the network thread")?;
    Ok(rx)
}

struct StatusLine {
    next_at: Instant,
    last_at: Instant,
    last_acked: u64,
    last_bytes: u64,
}

impl StatusLine {
    fn new(now: Instant) -> StatusLine {
        StatusLine {
            next_at: now + Duration::from_secs(1),
            last_at: now,
            last_acked: 0,
            last_bytes: 0,
        }
    }

    fn maybe_print(
        &mut self,
        now: Instant,
        sender: &Sender,
        settings: &Settings,
        size: (u32, u32),
    ) {
        if now < self.next_at {
            return;
        }
        let s = sender.stats();
        let dt = (now - self.last_at).as_secs_f64().max(1e-6);
        eprintln!(
            "cam-client: {:.1} fps, {:.0} kbit/s, acked {}, timed out {}, retransmits {}, rtt {:.1} ms, link {}, q{} {}x{}",
            (s.frames_acked - self.last_acked) as f64 / dt,
            (s.bytes_sent - self.last_bytes) as f64 * 8.0 / dt / 1000.0,
            s.frames_acked,
            s.frames_timed_out,
            s.retransmits,
            sender.rtt().smoothed().as_secs_f64() * 1000.0,
            rate_text(sender.target_rate_bps()),
            settings.quality,
            size.0,
            size.1
        );
        self.last_at = now;
        self.last_acked = s.frames_acked;
        self.last_bytes = s.bytes_sent;
        self.next_at = now + Duration::from_secs(1);
    }
}
