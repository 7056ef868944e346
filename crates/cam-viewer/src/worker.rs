//! The receive worker: owns the socket, feeds `cam_proto::Receiver`, saves frames, hands
//! complete frames to the decode side and sends acks. It grants the sender credit only for
//! room in the decode queue, so the sender never runs ahead of decoding.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cam_proto::machine::{FrameReceiver, ReceiveEvent, ReceiverStats, Transmit};
use cam_proto::receiver::ReceiverConfig;
use cam_proto::secure::Aead;
use cam_proto::sim::{Impairment, Link};
use crossbeam_channel::{Sender as ChannelSender, TrySendError};

use crate::frame::ReceivedFrame;
use crate::frontend::{self, Protocol};
use crate::hub::{Hub, StreamKey};
use crate::live::{LiveSnapshot, LiveStats, PUBLISH_INTERVAL};
use crate::net::canonical;
use crate::record::{RecordOptions, RecordSink, RecordedFrame, Recorder};
use crate::refusals::{RateLimit, RefusalLog};

/// Complete frames held while the decode queue is full. Credit covers this buffer as well
/// as the decode queue: a long round trip needs several frames granted ahead (a
/// bandwidth-delay product), and a sender that respects credit never overflows it; beyond
/// it and the slack below (a misbehaving sender) the oldest frame is dropped.
const PENDING_MAX: usize = 8;
/// Room beyond the credit granted: a sender frees one frame of credit for each frame it
/// abandons at its deadline (PROTOCOL.md, "Deadline"), yet a viewer that was only slow (a
/// busy machine) still completes that frame. Without this slack such a frame pushed out a
/// complete one; with it, the credit granted shrinks until decoding has caught up.
const PENDING_SLACK: usize = 8;
/// Longest sleep in `recv`, so the stop flag is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub receiver: ReceiverConfig,
    /// What `--port` speaks; classic mode is another front end over the same pipeline.
    pub protocol: Protocol,
    pub save_frames: Option<PathBuf>,
    pub frames: Option<u64>,
    pub end_at: Option<Instant>,
    pub impairment: Impairment,
    /// Where the window's on-screen display reads the counters (about ten times a second).
    pub live: Option<Arc<LiveStats>>,
    /// `--record`: every complete frame of the first stream goes here too.
    pub record: Option<RecordSink>,
    /// `--record FILE`: streams after the first record to `FILE-stream-ID.avi`, whose
    /// recorders are handed back here to be finished after the worker ends.
    pub record_path: Option<PathBuf>,
    /// How further streams' recordings are named and split (`--force`, `--record-segment`).
    pub record_options: RecordOptions,
    pub more_recorders: Arc<std::sync::Mutex<Vec<Recorder>>>,
    /// Streams served at once (`--max-streams`) and the silence after which one is dropped.
    pub max_streams: usize,
    pub stream_timeout: Duration,
    /// Every stream and its newest frame, for the grid, `--http` and the summary.
    pub hub: Arc<Hub>,
}

/// Where one stream's frames are saved and recorded: `--save-frames DIR` and `--record FILE`
/// themselves for the first stream of the run (as with one camera), `DIR/stream-ID/` and
/// `FILE-stream-ID.avi` for each further one.
#[derive(Debug, Default)]
struct StreamFiles {
    save_dir: Option<PathBuf>,
    saved: u64,
    record: Option<RecordSink>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub stats: ReceiverStats,
    pub frames_saved: u64,
    /// `--save-frames`: why saving stopped, if a write failed (saving stops at the first
    /// failure; the stream goes on).
    pub save_error: Option<String>,
    /// Complete frames dropped because the decode side could not keep up.
    pub frames_overflowed: u64,
    pub first_datagram_at: Option<Instant>,
    pub last_frame_at: Option<Instant>,
    /// Keyed mode (`--key-file`).
    pub keyed: bool,
    /// Keyed mode: the AEAD of the last stream's session.
    pub aead: Option<&'static str>,
}

pub fn spawn(
    socket: UdpSocket,
    frames: ChannelSender<ReceivedFrame>,
    stop: Arc<AtomicBool>,
    config: WorkerConfig,
) -> Result<JoinHandle<Result<WorkerReport>>> {
    std::thread::Builder::new()
        .name("receive".into())
        .spawn(move || Worker::new(socket, frames, config).run(&stop))
        .context("cannot start the receive thread")
}

struct Worker {
    socket: UdpSocket,
    frames: ChannelSender<ReceivedFrame>,
    receiver: Box<dyn FrameReceiver>,
    link: Option<Link<SocketAddr>>,
    pending: VecDeque<ReceivedFrame>,
    config: WorkerConfig,
    report: WorkerReport,
    read_timeout: Option<Duration>,
    /// Says once what refused datagrams look like, when that is another protocol.
    wrong_protocol: frontend::WrongProtocol,
    /// Rate-limited warnings about refused datagrams (camstream only).
    refusals: Option<RefusalLog>,
    /// Lines about streams starting, switching and stalling: one per event otherwise, and a
    /// flood of new stream ids (or classic senders) is one event per datagram.
    stream_log: RateLimit,
    /// Per stream served (by hub id): where its frames are saved and recorded.
    files: std::collections::HashMap<String, StreamFiles>,
    /// Streams that have had files, over the run.
    files_opened: u64,
    /// Ceiling on frames waiting for the decoder: lower while a queue stands (backlog.rs).
    backlog: crate::backlog::Backlog,
    /// GRO where the kernel has it: one receive, many datagrams (cam-net batch.rs).
    batch: cam_net::batch::BatchReceiver,
}

impl Worker {
    fn new(
        socket: UdpSocket,
        frames: ChannelSender<ReceivedFrame>,
        config: WorkerConfig,
    ) -> Worker {
        let link = (!config.impairment.is_perfect()).then(|| Link::new(config.impairment.clone()));
        let keyed = config.receiver.psk.is_some();
        let refusals = (config.protocol == Protocol::Camstream).then(|| RefusalLog::new(keyed));
        let wrong_protocol = frontend::WrongProtocol::new(config.protocol);
        Worker {
            receiver: frontend::build(
                config.protocol,
                &config.receiver,
                config.max_streams,
                config.stream_timeout,
            ),
            link,
            pending: VecDeque::new(),
            config,
            report: WorkerReport {
                keyed,
                ..WorkerReport::default()
            },
            read_timeout: None,
            wrong_protocol,
            refusals,
            stream_log: RateLimit::per_event(),
            files: Default::default(),
            files_opened: 0,
            backlog: crate::backlog::Backlog::new(
                frames.capacity().unwrap_or(1),
                frames.capacity().unwrap_or(1) + PENDING_MAX,
            ),
            frames,
            batch: cam_net::batch::BatchReceiver::new(
                &socket,
                cam_net::batch::Batching::from_env(),
            ),
            socket,
        }
    }

    fn run(mut self, stop: &AtomicBool) -> Result<WorkerReport> {
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::with_capacity(2048);
        let mut next_publish = Instant::now();
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) || self.config.end_at.is_some_and(|t| now >= t) {
                break;
            }
            if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
                self.receiver.handle_timeout(now);
            }
            self.drain_events()?;
            self.hand_over();
            while let Some(Transmit { to, len }) = self.receiver.poll_transmit(now, &mut out) {
                match self.link.as_mut() {
                    Some(link) => link.send_to(now, to, &out[..len]),
                    None => self.transmit(&out[..len], to),
                }
            }
            self.flush_link(now);
            if let Some(line) = self
                .refusals
                .as_mut()
                .and_then(|r| r.poll(now, self.receiver.stats()))
            {
                log::warn!("{line}");
            }
            let left_out = self.stream_log.poll_left_out(now);
            self.log_left_out(left_out);
            if now >= next_publish {
                self.publish_live(now);
                // A stream gone from the grid closes its folder and recording: files and
                // recorder threads follow the streams served, not every stream ever seen.
                for id in self.config.hub.expire(now, self.config.stream_timeout) {
                    self.files.remove(&id);
                }
                next_publish = now + PUBLISH_INTERVAL;
            }
            let done = self
                .config
                .frames
                .is_some_and(|n| self.receiver.stats().frames_completed >= n);
            if done && self.pending.is_empty() {
                break;
            }
            self.wait_and_receive(&mut buf)?;
        }
        let left_out = self.stream_log.take_left_out();
        self.log_left_out(left_out);
        // Whatever is complete still goes to the decoder before the channel closes.
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(frame) = self.pending.pop_front() {
            let left = deadline.saturating_duration_since(Instant::now());
            if stop.load(Ordering::Relaxed) || self.frames.send_timeout(frame, left).is_err() {
                self.report.frames_overflowed += 1;
            }
        }
        self.report.stats = self.receiver.stats().clone();
        self.report.aead = self.receiver.aead().map(Aead::name);
        Ok(self.report)
    }

    fn wait_and_receive(&mut self, buf: &mut [u8]) -> Result<()> {
        let now = Instant::now();
        let mut wake = cam_net::wait::time_to_wait(
            now,
            [
                self.receiver.poll_timeout(),
                self.link.as_ref().and_then(Link::next_delivery),
                self.config.end_at,
            ],
            MAX_WAIT,
        );
        // Frames waiting anywhere: credit reopens as the decoder takes them; say so promptly.
        if !self.pending.is_empty() || !self.frames.is_empty() {
            wake = wake.min(Duration::from_millis(2));
        }
        // A zero timeout means "block forever" to the OS.
        let wake = wake.max(Duration::from_micros(100));
        if self
            .read_timeout
            .is_none_or(|t| t.abs_diff(wake) > Duration::from_millis(1))
        {
            self.socket
                .set_read_timeout(Some(wake))
                .context("cannot set the socket timeout")?;
            self.read_timeout = Some(wake);
        }
        match self.batch.recv_from(&self.socket, buf) {
            Ok(got) => {
                let now = Instant::now();
                self.report.first_datagram_at.get_or_insert(now);
                for datagram in got.datagrams(buf) {
                    let refused_before = self.receiver.stats().datagrams_invalid;
                    self.receiver.handle_datagram(now, got.from, datagram);
                    if self.receiver.stats().datagrams_invalid > refused_before {
                        if let Some(line) = self.wrong_protocol.refused(datagram) {
                            log::warn!("{line}");
                        }
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            // An ICMP error from an earlier ack to a client that went away.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e).context("receiving failed"),
        }
        Ok(())
    }

    fn drain_events(&mut self) -> Result<()> {
        while let Some(event) = self.receiver.poll_event() {
            match event {
                ReceiveEvent::Frame(frame) => {
                    self.report.last_frame_at = Some(frame.completed_at);
                    let header = frame.header;
                    let size = header.map_or((0, 0), |h| (h.width, h.height));
                    let captured = header.map(|h| h.capture_ts_us);
                    let key = StreamKey {
                        stream_id: frame.stream_id,
                        sender: frame.remote,
                    };
                    let jpeg: Arc<[u8]> = Arc::from(frame.data);
                    let (id, _tile) = self.config.hub.frame(
                        key,
                        frame.seq,
                        Arc::clone(&jpeg),
                        size,
                        captured,
                        frame.completed_at,
                    );
                    self.save_and_record(&id, &jpeg, size, captured);
                    if self.pending.len() >= PENDING_MAX + PENDING_SLACK {
                        self.pending.pop_front();
                        self.report.frames_overflowed += 1;
                    }
                    self.pending.push_back(ReceivedFrame {
                        seq: frame.seq,
                        jpeg,
                        width: size.0,
                        height: size.1,
                        capture_ts_us: captured,
                        sender: canonical(frame.remote),
                        completed_at: frame.completed_at,
                        stream_label: id,
                    });
                }
                ReceiveEvent::StreamStarted {
                    stream_id,
                    remote,
                    replaced,
                } => {
                    // Once per run, so never left out.
                    self.config.hub.stream_started(
                        StreamKey {
                            stream_id,
                            sender: remote,
                        },
                        replaced,
                        Instant::now(),
                    );
                    if let Some(line) = self
                        .refusals
                        .as_mut()
                        .and_then(|r| r.on_stream_started(canonical(remote)))
                    {
                        log::warn!("{line}");
                    }
                    if !self.stream_log.admit(Instant::now()) {
                        continue;
                    }
                    let sealed = self
                        .receiver
                        .aead()
                        .map(|a| format!(", encrypted ({a})"))
                        .unwrap_or_default();
                    match replaced {
                        None if self.config.protocol == Protocol::Classic => {
                            log::info!("receiving classic images from {}", canonical(remote))
                        }
                        Some(old) => log::info!(
                            "switched to stream {stream_id:08x} from {} (was {old:08x}){sealed}",
                            canonical(remote)
                        ),
                        None => log::info!(
                            "receiving stream {stream_id:08x} from {}{sealed}",
                            canonical(remote)
                        ),
                    }
                }
                ReceiveEvent::StreamNamed {
                    stream_id,
                    remote,
                    name,
                } => {
                    let key = StreamKey {
                        stream_id,
                        sender: remote,
                    };
                    self.config.hub.stream_named(key, &name);
                    if self.stream_log.admit(Instant::now()) {
                        log::info!(
                            "stream {stream_id:08x} from {} is called '{name}'",
                            canonical(remote)
                        );
                    }
                }
                ReceiveEvent::Stalled { .. } if !self.stream_log.admit(Instant::now()) => {}
                ReceiveEvent::Stalled { stream_id, remote } => log::info!(
                    "stream {stream_id:08x} from {} stalled: nothing for {:?}",
                    canonical(remote),
                    self.config.receiver.stall_after
                ),
            }
        }
        Ok(())
    }

    fn log_left_out(&self, left_out: Option<u64>) {
        if let Some(n) = left_out {
            log::warn!(
                "{n} more stream starts, switches or stalls were not logged ({}): many \
                 senders, or someone sending under ever new stream ids",
                self.stream_log.describe()
            );
        }
    }

    /// `--save-frames` and `--record`, each stream to its own folder and file.
    fn save_and_record(
        &mut self,
        id: &str,
        jpeg: &[u8],
        (width, height): (u16, u16),
        captured: Option<u64>,
    ) {
        if self.config.save_frames.is_none() && self.config.record.is_none() {
            return;
        }
        if !self.files.contains_key(id) {
            // The first stream ever keeps the paths as given; later ones get their own.
            let first = self.files_opened == 0;
            self.files_opened += 1;
            let files = self.open_files(id, first);
            self.files.insert(id.to_owned(), files);
        }
        let Some(files) = self.files.get_mut(id) else {
            return;
        };
        // The first failure (a full disk, a directory gone) is logged once and ends saving,
        // for every stream; the stream and its acks go on.
        if let Some(dir) = files
            .save_dir
            .as_ref()
            .filter(|_| self.report.save_error.is_none())
        {
            let path = dir.join(format!(
                "frame-{:06}.{}",
                files.saved + 1,
                crate::picture::extension(jpeg)
            ));
            match std::fs::write(&path, jpeg) {
                Ok(()) => {
                    files.saved += 1;
                    self.report.frames_saved += 1;
                }
                Err(e) => {
                    let why = format!("cannot save {}: {e}", path.display());
                    log::error!(
                        "{why}; saving stopped after {} frames (the stream goes on)",
                        self.report.frames_saved
                    );
                    // A partly written frame is not a saved frame.
                    let _ = std::fs::remove_file(&path);
                    self.report.save_error = Some(why);
                }
            }
        }
        if let Some(sink) = &files.record {
            sink.offer(RecordedFrame::new(jpeg.to_vec(), width, height, captured));
        }
    }

    /// Where a stream's frames go: the first stream to `--save-frames`/`--record` as given,
    /// each further one to a folder and file of its own. One that cannot be opened is
    /// logged and goes unsaved; the others go on.
    fn open_files(&mut self, id: &str, first: bool) -> StreamFiles {
        let save_dir = match &self.config.save_frames {
            Some(dir) if first => Some(dir.clone()),
            Some(dir) => {
                let dir = dir.join(format!("stream-{id}"));
                match std::fs::create_dir_all(&dir) {
                    Ok(()) => {
                        log::info!("saving stream {id} to {}", dir.display());
                        Some(dir)
                    }
                    Err(e) => {
                        log::warn!(
                            "stream {id} is not saved: cannot create {}: {e}",
                            dir.display()
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let record = match (&self.config.record, &self.config.record_path) {
            (Some(sink), _) if first => Some(sink.clone()),
            (Some(_), Some(path)) => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let path = path.with_file_name(format!("{stem}-stream-{id}.avi"));
                match crate::record::start(&path, self.config.record_options.clone()) {
                    Ok((sink, recorder, path)) => {
                        log::info!("recording stream {id} to {}", path.display());
                        self.config
                            .more_recorders
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(recorder);
                        Some(sink)
                    }
                    Err(e) => {
                        log::warn!("stream {id} is not recorded: {e:#}");
                        None
                    }
                }
            }
            _ => None,
        };
        StreamFiles {
            save_dir,
            saved: 0,
            record,
        }
    }

    /// Moves complete frames into the decode queue while it has room, and tells the
    /// protocol how much room is left.
    fn hand_over(&mut self) {
        while let Some(frame) = self.pending.pop_front() {
            match self.frames.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(frame)) => {
                    self.pending.push_front(frame);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.report.frames_overflowed += 1;
                }
            }
        }
        let waiting = self.frames.len() + self.pending.len();
        let room = self
            .backlog
            .update(Instant::now(), waiting)
            .saturating_sub(waiting);
        self.receiver
            .set_credit(u16::try_from(room).unwrap_or(u16::MAX));
    }

    fn publish_live(&self, now: Instant) {
        if let Some(live) = &self.config.live {
            live.publish(LiveSnapshot {
                at: Some(now),
                receiver: self.receiver.stats().clone(),
                frames_overflowed: self.report.frames_overflowed,
            });
        }
    }

    /// Delivers what the simulated link has due, each to the address it was sent to.
    fn flush_link(&mut self, now: Instant) {
        while let Some((to, d)) = self.link.as_mut().and_then(|l| l.poll_deliver_to(now)) {
            self.transmit(&d, to);
        }
    }

    fn transmit(&self, datagram: &[u8], to: SocketAddr) {
        if let Err(e) = self.socket.send_to(datagram, to) {
            log::debug!("ack to {to} not sent: {e}");
        }
    }
}
