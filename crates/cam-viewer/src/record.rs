//! `--record FILE`: every complete frame, byte for byte, into an MJPEG AVI that ffplay, ffmpeg
//! and VLC open directly.
//!
//! The container is plain RIFF AVI 1.0: `hdrl` (`avih`, one `strl` with `strh` and a
//! BITMAPINFOHEADER `strf` naming `MJPG`), a `movi` list of `00dc` chunks, and an `idx1` index.
//!
//! A viewer killed with `kill -9` (or a power cut after the page cache reached the disk) must
//! leave a file that plays at the right rate for the right time. After every frame the writer
//! therefore rewrites the fixed-size header in place: sizes, frame count, frame rate and picture
//! size always describe the frames on disk, so the file is at every moment a complete AVI whose
//! only missing part is the `idx1` index, which AVI readers do without (ffmpeg, ffplay and VLC
//! then read the `movi` list in order; VLC offers to build an index for seeking).
//! [`AviWriter::finish`] appends the index and sets `AVIF_HASINDEX`. That costs one seek and a
//! 224-byte write per frame, nothing beside a JPEG; the alternatives were an OpenDML index
//! written in pieces (far more format for the same result) or short segments alone (a killed
//! viewer would still leave its last segment without a frame rate).
//!
//! Writing happens on a thread of its own fed by a bounded channel ([`start`]): the receive
//! worker must never wait for a disk, because its acks are the sender's flow control. A frame
//! that finds the queue full is counted as unrecorded, with a warning; that takes a disk slower
//! than the stream for seconds on end.
//!
//! AVI has one picture size per file and 32-bit sizes. When the stream's size changes, or a
//! file would pass [`MAX_FILE_BYTES`], the file is finished and recording goes on in the next
//! one: `rec.avi`, `rec-2.avi`, `rec-3.avi`, … So it does after every `--record-segment`
//! (timed from each file's first frame, on this machine's clock). No file is ever overwritten
//! unless `--force`: an existing `rec.avi` makes the recording `rec-YYYYMMDD-HHMMSS.avi`, and a
//! part name that is taken is skipped. Classic mode's PNG frames are re-encoded to JPEG.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Frames waiting for the disk: about four seconds at 30 fps.
pub const QUEUE_FRAMES: usize = 128;

/// Where a file is finished and the next begins. AVI 1.0 sizes are 32-bit, and some readers
/// take them as signed: staying under 2 GiB keeps every reader happy.
pub const MAX_FILE_BYTES: u64 = (1 << 31) - 1;

/// JPEG quality for PNG frames (classic mode), which an MJPEG file cannot hold as they are.
pub const PNG_REENCODE_QUALITY: i32 = 90;

/// Used when the timestamps cannot tell the rate (fewer than two frames, or a clock that
/// jumped back).
const DEFAULT_FRAME_PERIOD_US: u32 = 33_333;
/// The estimated rate is kept within 1..=240 fps.
const MIN_FRAME_PERIOD_US: u64 = 1_000_000 / 240;
const MAX_FRAME_PERIOD_US: u64 = 1_000_000;

/// Byte layout of the header this writer emits: always the same size, so that it can be
/// rewritten in place at the end.
mod layout {
    #[cfg(test)]
    pub const RIFF_SIZE: usize = 4;
    pub const HDRL_LIST: usize = 12;
    pub const AVIH_DATA: usize = 32;
    pub const AVIH_LEN: u32 = 56;
    pub const STRL_LIST: usize = 88;
    pub const STRH_DATA: usize = 108;
    pub const STRH_LEN: u32 = 56;
    pub const STRF_DATA: usize = 172;
    pub const STRF_LEN: u32 = 40;
    pub const MOVI_LIST: usize = 212;
    /// Where `movi` (the list type) starts; idx1 offsets count from here.
    pub const MOVI_FOURCC: u64 = 220;
    /// The first `00dc` chunk.
    pub const HEADER_LEN: usize = 224;

    pub const CHUNK_HEADER: u64 = 8;
    pub const INDEX_ENTRY: u64 = 16;
}

/// `dwFlags` in `avih`: the file has an idx1 index.
const AVIF_HASINDEX: u32 = 0x10;
/// idx1 flag: every MJPEG frame stands alone.
const AVIIF_KEYFRAME: u32 = 0x10;

/// Writes one AVI file; after every frame the file on `out` is a playable AVI (see the module
/// notes).
#[derive(Debug)]
pub struct AviWriter<W: Write + Seek> {
    out: W,
    /// Picture size of the file, taken from its first frame.
    size: Option<(u16, u16)>,
    /// (offset from the `movi` fourcc, length) of each frame's chunk.
    index: Vec<(u32, u32)>,
    /// Bytes written after the header: chunks with their headers and padding.
    movi_bytes: u64,
    largest_frame: u32,
    first_timestamp_us: Option<u64>,
    last_timestamp_us: Option<u64>,
    max_file_bytes: u64,
}

impl<W: Write + Seek> AviWriter<W> {
    /// Starts a file on `out` (positioned at its start) with a placeholder header.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_limit(out, MAX_FILE_BYTES)
    }

    /// Like [`new`](Self::new), with a smaller size limit (for tests of the rollover).
    fn with_limit(out: W, max_file_bytes: u64) -> io::Result<Self> {
        let mut writer = AviWriter {
            out,
            size: None,
            index: Vec::new(),
            movi_bytes: 0,
            largest_frame: 0,
            first_timestamp_us: None,
            last_timestamp_us: None,
            max_file_bytes: max_file_bytes.min(MAX_FILE_BYTES),
        };
        writer.out.write_all(&header(&writer.fields(false)))?;
        writer.out.flush()?;
        Ok(writer)
    }

    /// Picture size of the file; `None` until a frame with a known size is written.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }

    pub fn frames(&self) -> usize {
        self.index.len()
    }

    /// Whether a frame of `len` bytes still fits below [`MAX_FILE_BYTES`], with its index entry.
    pub fn fits(&self, len: usize) -> bool {
        let chunk = layout::CHUNK_HEADER + padded(len as u64);
        let index = layout::CHUNK_HEADER + (self.index.len() as u64 + 1) * layout::INDEX_ENTRY;
        layout::HEADER_LEN as u64 + self.movi_bytes + chunk + index <= self.max_file_bytes
    }

    /// Appends one JPEG as a `00dc` chunk. `size` (from the JPEG or the frame header) becomes
    /// the file's picture size if it has none yet; `timestamp_us` only feeds the frame-rate
    /// estimate. The caller checks [`fits`](Self::fits) first.
    pub fn write_frame(
        &mut self,
        jpeg: &[u8],
        size: Option<(u16, u16)>,
        timestamp_us: u64,
    ) -> io::Result<()> {
        let len = u32::try_from(jpeg.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
        let offset = u32::try_from(layout::HEADER_LEN as u64 + self.movi_bytes)
            .ok()
            .and_then(|at| at.checked_sub(layout::MOVI_FOURCC as u32))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "AVI file is full"))?;
        self.out.write_all(b"00dc")?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(jpeg)?;
        if jpeg.len() % 2 == 1 {
            // RIFF chunks start on even offsets.
            self.out.write_all(&[0])?;
        }
        self.index.push((offset, len));
        self.movi_bytes += layout::CHUNK_HEADER + padded(u64::from(len));
        self.largest_frame = self.largest_frame.max(len);
        if self.size.is_none() {
            self.size = size;
        }
        self.first_timestamp_us.get_or_insert(timestamp_us);
        self.last_timestamp_us = Some(timestamp_us);
        self.rewrite_header(false)
    }

    /// The header for what is written so far, with or without the index that follows `movi`.
    fn fields(&self, indexed: bool) -> HeaderFields {
        let frame_period_us = self.frame_period_us();
        let index_len = if indexed {
            8 + self.index.len() as u64 * layout::INDEX_ENTRY
        } else {
            0
        };
        let file_len = layout::HEADER_LEN as u64 + self.movi_bytes + index_len;
        let (width, height) = self.size.unwrap_or((0, 0));
        HeaderFields {
            riff_size: u32_or_max(file_len - 8),
            movi_size: u32_or_max(4 + self.movi_bytes),
            frames: u32_or_max(self.index.len() as u64),
            frame_period_us,
            max_bytes_per_sec: u32_or_max(
                u64::from(self.largest_frame) * 1_000_000 / u64::from(frame_period_us.max(1)),
            ),
            buffer_size: self.largest_frame.saturating_add(8),
            width: width.into(),
            height: height.into(),
            indexed,
        }
    }

    /// Puts the frames written so far on the file (out of any buffer), then a header that
    /// describes them, and moves back to the end.
    fn rewrite_header(&mut self, indexed: bool) -> io::Result<()> {
        let fields = self.fields(indexed);
        self.out.flush()?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(&fields))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()
    }

    /// Writes the index, rewrites the header with the final numbers, flushes, and hands back
    /// the output.
    pub fn finish(mut self) -> io::Result<W> {
        let index_len = self.index.len() as u64 * layout::INDEX_ENTRY;
        self.out.write_all(b"idx1")?;
        self.out.write_all(&u32_or_max(index_len).to_le_bytes())?;
        let mut entries = Vec::with_capacity(self.index.len() * 16);
        for &(offset, len) in &self.index {
            entries.extend_from_slice(b"00dc");
            entries.extend_from_slice(&AVIIF_KEYFRAME.to_le_bytes());
            entries.extend_from_slice(&offset.to_le_bytes());
            entries.extend_from_slice(&len.to_le_bytes());
        }
        self.out.write_all(&entries)?;
        self.rewrite_header(true)?;
        Ok(self.out)
    }

    /// Mean time between frames from their timestamps, within 1..=240 fps.
    fn frame_period_us(&self) -> u32 {
        let frames = self.index.len() as u64;
        match (self.first_timestamp_us, self.last_timestamp_us) {
            (Some(first), Some(last)) if frames >= 2 && last > first => {
                let period = (last - first) / (frames - 1);
                let period = period.clamp(MIN_FRAME_PERIOD_US, MAX_FRAME_PERIOD_US);
                u32::try_from(period).unwrap_or(DEFAULT_FRAME_PERIOD_US)
            }
            _ => DEFAULT_FRAME_PERIOD_US,
        }
    }
}

fn padded(len: u64) -> u64 {
    len + len % 2
}

fn u32_or_max(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The header's variable parts.
#[derive(Debug, Default)]
struct HeaderFields {
    riff_size: u32,
    movi_size: u32,
    frames: u32,
    frame_period_us: u32,
    max_bytes_per_sec: u32,
    buffer_size: u32,
    width: u32,
    height: u32,
    /// An `idx1` follows `movi` (`AVIF_HASINDEX`).
    indexed: bool,
}

fn header(f: &HeaderFields) -> Vec<u8> {
    let mut h = Vec::with_capacity(layout::HEADER_LEN);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&f.riff_size.to_le_bytes());
    h.extend_from_slice(b"AVI ");
    debug_assert_eq!(h.len(), layout::HDRL_LIST);

    let strl_size = 4 + 8 + layout::STRH_LEN + 8 + layout::STRF_LEN;
    let hdrl_size = 4 + 8 + layout::AVIH_LEN + 8 + strl_size;
    h.extend_from_slice(b"LIST");
    h.extend_from_slice(&hdrl_size.to_le_bytes());
    h.extend_from_slice(b"hdrl");

    h.extend_from_slice(b"avih");
    h.extend_from_slice(&layout::AVIH_LEN.to_le_bytes());
    debug_assert_eq!(h.len(), layout::AVIH_DATA);
    h.extend_from_slice(&f.frame_period_us.to_le_bytes());
    h.extend_from_slice(&f.max_bytes_per_sec.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // padding granularity
    let flags = if f.indexed { AVIF_HASINDEX } else { 0 };
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&f.frames.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // initial frames
    h.extend_from_slice(&1u32.to_le_bytes()); // streams
    h.extend_from_slice(&f.buffer_size.to_le_bytes());
    h.extend_from_slice(&f.width.to_le_bytes());
    h.extend_from_slice(&f.height.to_le_bytes());
    h.extend_from_slice(&[0; 16]); // reserved

    debug_assert_eq!(h.len(), layout::STRL_LIST);
    h.extend_from_slice(b"LIST");
    h.extend_from_slice(&strl_size.to_le_bytes());
    h.extend_from_slice(b"strl");

    h.extend_from_slice(b"strh");
    h.extend_from_slice(&layout::STRH_LEN.to_le_bytes());
    debug_assert_eq!(h.len(), layout::STRH_DATA);
    h.extend_from_slice(b"vids");
    h.extend_from_slice(b"MJPG");
    h.extend_from_slice(&0u32.to_le_bytes()); // flags
    h.extend_from_slice(&0u16.to_le_bytes()); // priority
    h.extend_from_slice(&0u16.to_le_bytes()); // language
    h.extend_from_slice(&0u32.to_le_bytes()); // initial frames
    h.extend_from_slice(&f.frame_period_us.to_le_bytes()); // scale: rate / scale = frames per second
    h.extend_from_slice(&1_000_000u32.to_le_bytes()); // rate
    h.extend_from_slice(&0u32.to_le_bytes()); // start
    h.extend_from_slice(&f.frames.to_le_bytes()); // length, in frames
    h.extend_from_slice(&f.buffer_size.to_le_bytes());
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // quality: driver default
    h.extend_from_slice(&0u32.to_le_bytes()); // sample size: varies
    let right = i16::try_from(f.width).unwrap_or(i16::MAX);
    let bottom = i16::try_from(f.height).unwrap_or(i16::MAX);
    for v in [0, 0, right, bottom] {
        h.extend_from_slice(&v.to_le_bytes());
    }

    h.extend_from_slice(b"strf");
    h.extend_from_slice(&layout::STRF_LEN.to_le_bytes());
    debug_assert_eq!(h.len(), layout::STRF_DATA);
    h.extend_from_slice(&layout::STRF_LEN.to_le_bytes()); // biSize
    h.extend_from_slice(&f.width.to_le_bytes());
    h.extend_from_slice(&f.height.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // planes
    h.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel once decoded
    h.extend_from_slice(b"MJPG");
    h.extend_from_slice(
        &f.width
            .saturating_mul(f.height)
            .saturating_mul(3)
            .to_le_bytes(),
    );
    h.extend_from_slice(&[0; 16]); // resolution, palette

    debug_assert_eq!(h.len(), layout::MOVI_LIST);
    h.extend_from_slice(b"LIST");
    h.extend_from_slice(&f.movi_size.to_le_bytes());
    h.extend_from_slice(b"movi");
    debug_assert_eq!(h.len(), layout::HEADER_LEN);
    h
}

/// Width and height from a JPEG's SOF segment, without decoding; `None` for anything that is
/// not a well-formed JPEG up to its SOF.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *jpeg.get(at)? != 0xFF {
            return None;
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while *jpeg.get(at + 1)? == 0xFF {
            at += 1;
        }
        let marker = *jpeg.get(at + 1)?;
        at += 2;
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(at)?, *jpeg.get(at + 1)?]));
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let height = u16::from_be_bytes([*jpeg.get(at + 3)?, *jpeg.get(at + 4)?]);
            let width = u16::from_be_bytes([*jpeg.get(at + 5)?, *jpeg.get(at + 6)?]);
            return Some((width, height));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        at += len;
    }
}

/// One frame on its way to the disk.
#[derive(Debug, Clone)]
pub struct RecordedFrame {
    pub jpeg: Vec<u8>,
    /// From the frame header; 0 when unknown. The JPEG's own SOF wins when it has one.
    pub width: u16,
    pub height: u16,
    /// Capture time (or, without one, arrival time), wall-clock microseconds since the Unix
    /// epoch; used only to estimate the frame rate.
    pub timestamp_us: u64,
    /// When it was handed to the recorder, on this machine's clock: `--record-segment` cuts
    /// by it.
    pub arrived: Instant,
}

impl RecordedFrame {
    /// A frame as the receive worker has it; without a capture time, the time now stands in.
    pub fn new(jpeg: Vec<u8>, width: u16, height: u16, capture_ts_us: Option<u64>) -> Self {
        let timestamp_us = capture_ts_us.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        });
        RecordedFrame {
            jpeg,
            width,
            height,
            timestamp_us,
            arrived: Instant::now(),
        }
    }
}

/// The receive worker's end of the recording: never blocks.
#[derive(Debug, Clone)]
pub struct RecordSink {
    frames: Sender<RecordedFrame>,
    unrecorded: Arc<AtomicU64>,
}

impl RecordSink {
    /// Queues `frame` for writing; if the queue is full the frame is counted as unrecorded.
    pub fn offer(&self, frame: RecordedFrame) {
        match self.frames.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.unrecorded.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "the disk cannot keep up with the stream: frames are missing from the \
                         recording (counted in the summary's frames_unrecorded)"
                    );
                }
            }
            // The recorder stopped after an error it has already reported.
            Err(TrySendError::Disconnected(_)) => {
                self.unrecorded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What a recording produced.
#[derive(Debug, Clone, Default)]
pub struct RecordReport {
    pub frames_recorded: u64,
    /// Frames that never reached a file: the queue was full, or writing had failed.
    pub frames_unrecorded: u64,
    pub files: Vec<PathBuf>,
}

/// The recording thread, finished by [`Recorder::finish`].
#[derive(Debug)]
pub struct Recorder {
    thread: JoinHandle<(RecordReport, Result<()>)>,
    unrecorded: Arc<AtomicU64>,
}

impl Recorder {
    /// Waits until every queued frame is written and the last file finalised. Call it after the
    /// last [`RecordSink`] is dropped (the thread ends when the channel closes). An error says
    /// what failed; the report counts what was recorded anyway.
    pub fn finish(self) -> (RecordReport, Result<()>) {
        let (mut report, result) = match self.thread.join() {
            Ok(outcome) => outcome,
            Err(_) => (
                RecordReport::default(),
                Err(anyhow::anyhow!("the recording thread panicked")),
            ),
        };
        report.frames_unrecorded += self.unrecorded.load(Ordering::Relaxed);
        (report, result)
    }
}

/// How a recording names and splits its files.
#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// `--force`: overwrite existing files instead of choosing free names.
    pub force: bool,
    /// `--record-segment`: a new file after this long (the viewer's clock).
    pub segment: Option<Duration>,
}

/// Opens the first file now, so that an unwritable path fails at start-up (its header is
/// written and flushed here), and starts the thread that writes frames offered to the returned
/// sink. Returns the path actually used: `path` itself, or a free name beside it when `path`
/// exists and `options.force` is off.
pub fn start(path: &Path, options: RecordOptions) -> Result<(RecordSink, Recorder, PathBuf)> {
    start_with_limit(path, options, MAX_FILE_BYTES)
}

fn start_with_limit(
    path: &Path,
    options: RecordOptions,
    max_file_bytes: u64,
) -> Result<(RecordSink, Recorder, PathBuf)> {
    let (first_path, file) = open_first(path, options.force, SystemTime::now())?;
    let first = Part::open(first_path.clone(), file, max_file_bytes)?;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_FRAMES);
    let recording = Recording {
        first_path: first_path.clone(),
        options,
        max_file_bytes,
    };
    let thread = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || record_loop(&rx, &recording, first))
        .context("cannot start the recording thread")?;
    let unrecorded = Arc::new(AtomicU64::new(0));
    let sink = RecordSink {
        frames: tx,
        unrecorded: Arc::clone(&unrecorded),
    };
    Ok((sink, Recorder { thread, unrecorded }, first_path))
}

/// Creates a file that did not exist (or, with `force`, truncates it).
fn create(path: &Path, force: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path)
}

/// The first file: `path`, or when it exists (and not `force`) `stem-YYYYMMDD-HHMMSS.ext`
/// from the UTC start time, then `…_2.ext`, `…_3.ext`: the parts of a recording are
/// `-2`, `-3`, …, so a second run's names must not look like parts of the first.
fn open_first(path: &Path, force: bool, now: SystemTime) -> Result<(PathBuf, File)> {
    let stamp = crate::snapshot::utc_stamp(now);
    let stamp = stamp.split('.').next().unwrap_or_default();
    let candidates = std::iter::once(path.to_owned()).chain((1..=100).map(|n| {
        let suffix = if n == 1 {
            format!("-{stamp}")
        } else {
            format!("-{stamp}_{n}")
        };
        with_suffix(path, &suffix)
    }));
    for candidate in candidates {
        match create(&candidate, force) {
            Ok(file) => {
                if candidate != path {
                    log::warn!(
                        "{} exists: recording to {} instead (--force overwrites)",
                        path.display(),
                        candidate.display()
                    );
                }
                return Ok((candidate, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot create the --record file {}", candidate.display())
                })
            }
        }
    }
    anyhow::bail!(
        "cannot find a free name beside {}; remove old recordings or use --force",
        path.display()
    )
}

/// `rec.avi` + `-2` → `rec-2.avi`; `out` + `-2` → `out-2`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    path.with_file_name(name)
}

/// The file after `first`: `rec.avi` → `rec-2.avi` for `part` 2.
fn part_path(first: &Path, part: usize) -> PathBuf {
    with_suffix(first, &format!("-{part}"))
}

/// What stays the same for all files of one recording.
#[derive(Debug)]
struct Recording {
    first_path: PathBuf,
    options: RecordOptions,
    max_file_bytes: u64,
}

/// The open file and where it lives.
struct Part {
    path: PathBuf,
    writer: AviWriter<BufWriter<File>>,
    /// When its first frame arrived: where its segment (`--record-segment`) began.
    started: Option<Instant>,
}

impl Part {
    fn open(path: PathBuf, file: File, max_file_bytes: u64) -> Result<Part> {
        let writer = AviWriter::with_limit(BufWriter::new(file), max_file_bytes)
            .with_context(|| format!("cannot write to {}", path.display()))?;
        Ok(Part {
            path,
            writer,
            started: None,
        })
    }

    fn finish(self) -> Result<()> {
        let frames = self.writer.frames();
        self.writer
            .finish()
            .with_context(|| format!("cannot finish the recording {}", self.path.display()))?;
        if frames == 0 {
            log::warn!(
                "no frames arrived: {} holds an empty video",
                self.path.display()
            );
        } else {
            log::info!("recorded {frames} frames to {}", self.path.display());
        }
        Ok(())
    }
}

fn record_loop(
    frames: &Receiver<RecordedFrame>,
    recording: &Recording,
    first: Part,
) -> (RecordReport, Result<()>) {
    let mut report = RecordReport {
        files: vec![first.path.clone()],
        ..RecordReport::default()
    };
    let mut part = Some(first);
    let mut failure = None;
    for frame in frames.iter() {
        if part.is_none() {
            report.frames_unrecorded += 1;
            continue;
        }
        let Some(frame) = as_jpeg(frame) else {
            report.frames_unrecorded += 1;
            continue;
        };
        match write_one(&mut part, &frame, recording, &mut report) {
            Ok(()) => report.frames_recorded += 1,
            Err(e) => {
                log::error!(
                    "recording stopped after {} frames: {e:#} (the stream goes on)",
                    report.frames_recorded
                );
                report.frames_unrecorded += 1;
                // Keep what is on disk readable: finish the file as far as it goes.
                if let Some(broken) = part.take() {
                    if let Err(e) = broken.finish() {
                        log::debug!("{e:#}");
                    }
                }
                failure = Some(e);
            }
        }
    }
    let finished = part.map_or(Ok(()), Part::finish);
    let result = match failure {
        Some(e) => Err(e),
        None => finished,
    };
    (report, result)
}

/// Classic mode also carries PNG; an MJPEG file holds only JPEG, so a PNG is re-encoded (at
/// [`PNG_REENCODE_QUALITY`]). `None` for a PNG that does not decode.
fn as_jpeg(frame: RecordedFrame) -> Option<RecordedFrame> {
    if !crate::picture::is_png(&frame.jpeg) {
        return Some(frame);
    }
    match crate::picture::png_to_jpeg(&frame.jpeg, PNG_REENCODE_QUALITY) {
        Ok(jpeg) => Some(RecordedFrame { jpeg, ..frame }),
        Err(e) => {
            log::debug!("a PNG frame is not recorded: {e}");
            None
        }
    }
}

/// Writes `frame` to the open file, first moving on to the next file when the picture size
/// changed, the file is full or its segment time is up.
fn write_one(
    part: &mut Option<Part>,
    frame: &RecordedFrame,
    recording: &Recording,
    report: &mut RecordReport,
) -> Result<()> {
    let Some(current) = part.as_ref() else {
        return Ok(());
    };
    let header_size = (frame.width > 0 && frame.height > 0).then_some((frame.width, frame.height));
    let size = jpeg_size(&frame.jpeg).or(header_size);
    let resized = current.writer.size().zip(size).is_some_and(|(a, b)| a != b);
    let full = !current.writer.fits(frame.jpeg.len());
    let segment_done = recording
        .options
        .segment
        .zip(current.started)
        .is_some_and(|(d, started)| frame.arrived.saturating_duration_since(started) >= d);
    if current.writer.frames() > 0 && (resized || full || segment_done) {
        let (next, file) = open_next(recording, report.files.len() + 1)?;
        match (resized, size) {
            (true, Some((w, h))) => log::info!(
                "the picture size changed to {w}x{h}: recording goes on in {}",
                next.display()
            ),
            _ if full => log::info!(
                "{} reached the AVI size limit: recording goes on in {}",
                current.path.display(),
                next.display()
            ),
            _ => log::info!("recording goes on in {}", next.display()),
        }
        if let Some(done) = part.take() {
            done.finish()?;
        }
        report.files.push(next.clone());
        *part = Some(Part::open(next, file, recording.max_file_bytes)?);
    }
    let Some(current) = part.as_mut() else {
        return Ok(());
    };
    current
        .writer
        .write_frame(&frame.jpeg, size, frame.timestamp_us)
        .with_context(|| format!("cannot write to {}", current.path.display()))?;
    current.started.get_or_insert(frame.arrived);
    Ok(())
}

/// Creates part `number` of the recording (a name that is free, unless `--force`).
fn open_next(recording: &Recording, number: usize) -> Result<(PathBuf, File)> {
    let mut number = number;
    loop {
        let next = part_path(&recording.first_path, number);
        match create(&next, recording.options.force) {
            Ok(file) => return Ok((next, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && number < 10_000 => {
                log::debug!("{} exists; trying the next name", next.display());
                number += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", next.display())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use std::io::Cursor;

    fn le32(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn tiny_jpeg(width: usize, height: usize, shade: u8) -> Vec<u8> {
        let rgb = vec![shade; width * height * 3];
        turbojpeg::Compressor::new()
            .unwrap()
            .compress_to_vec(turbojpeg::Image {
                pixels: &rgb[..],
                width,
                pitch: width * 3,
                height,
                format: turbojpeg::PixelFormat::RGB,
            })
            .unwrap()
    }

    /// The `00dc` payloads the index points at, in index order.
    fn indexed_frames(avi: &[u8]) -> Vec<Vec<u8>> {
        let movi_size = le32(avi, layout::MOVI_LIST + 4) as usize;
        let idx1 = layout::MOVI_LIST + 8 + movi_size;
        assert_eq!(&avi[idx1..idx1 + 4], b"idx1");
        let entries = le32(avi, idx1 + 4) as usize / 16;
        (0..entries)
            .map(|i| {
                let entry = idx1 + 8 + i * 16;
                assert_eq!(&avi[entry..entry + 4], b"00dc");
                assert_eq!(le32(avi, entry + 4), AVIIF_KEYFRAME);
                let chunk = layout::MOVI_FOURCC as usize + le32(avi, entry + 8) as usize;
                let len = le32(avi, entry + 12) as usize;
                assert_eq!(&avi[chunk..chunk + 4], b"00dc");
                assert_eq!(le32(avi, chunk + 4) as usize, len);
                avi[chunk + 8..chunk + 8 + len].to_vec()
            })
            .collect()
    }

    #[test]
    fn frames_come_back_through_the_index_and_the_header_adds_up() {
        let frames = vec![
            tiny_jpeg(32, 16, 10),
            tiny_jpeg(32, 16, 200),
            b"\xFF\xD8odd".to_vec(),
        ];
        let mut writer = AviWriter::new(Cursor::new(Vec::new())).unwrap();
        for (i, jpeg) in frames.iter().enumerate() {
            let at = 1_000_000 + i as u64 * 40_000;
            writer.write_frame(jpeg, jpeg_size(jpeg), at).unwrap();
        }
        assert_eq!(writer.size(), Some((32, 16)));
        let avi = writer.finish().unwrap().into_inner();

        assert_eq!(&avi[..4], b"RIFF");
        assert_eq!(le32(&avi, layout::RIFF_SIZE) as usize, avi.len() - 8);
        assert_eq!(&avi[8..12], b"AVI ");
        assert_eq!(&avi[layout::HDRL_LIST..layout::HDRL_LIST + 4], b"LIST");
        assert_eq!(&avi[layout::STRL_LIST + 8..layout::STRL_LIST + 12], b"strl");
        let avih = layout::AVIH_DATA;
        assert_eq!(le32(&avi, avih), 40_000, "25 fps from the timestamps");
        assert_eq!(le32(&avi, avih + 16), 3, "total frames");
        assert_eq!((le32(&avi, avih + 32), le32(&avi, avih + 36)), (32, 16));
        let strh = layout::STRH_DATA;
        assert_eq!(&avi[strh..strh + 8], b"vidsMJPG");
        assert_eq!(le32(&avi, strh + 20), 40_000, "scale");
        assert_eq!(le32(&avi, strh + 24), 1_000_000, "rate");
        assert_eq!(le32(&avi, strh + 32), 3, "length");
        assert_eq!(
            &avi[layout::STRF_DATA + 16..layout::STRF_DATA + 20],
            b"MJPG"
        );
        assert_eq!(&avi[layout::MOVI_LIST + 8..layout::MOVI_LIST + 12], b"movi");
        assert_eq!(indexed_frames(&avi), frames);
    }

    #[test]
    fn after_every_frame_the_header_describes_the_frames_on_disk() {
        let frames = [
            tiny_jpeg(32, 16, 10),
            tiny_jpeg(32, 16, 90),
            b"\xFF\xD8odd".to_vec(),
        ];
        let mut writer = AviWriter::new(Cursor::new(Vec::new())).unwrap();
        for (i, jpeg) in frames.iter().enumerate() {
            writer
                .write_frame(jpeg, jpeg_size(jpeg), i as u64 * 50_000)
                .unwrap();
            // What a kill -9 now would leave: no index, everything else final.
            let avi = writer.out.get_ref().clone();
            assert_eq!(le32(&avi, layout::RIFF_SIZE) as usize, avi.len() - 8);
            assert_eq!(
                le32(&avi, layout::MOVI_LIST + 4) as usize,
                avi.len() - layout::MOVI_LIST - 8
            );
            assert_eq!(le32(&avi, layout::AVIH_DATA + 16) as usize, i + 1, "frames");
            assert_eq!(le32(&avi, layout::STRH_DATA + 32) as usize, i + 1, "length");
            assert_eq!(le32(&avi, layout::AVIH_DATA + 12) & AVIF_HASINDEX, 0);
            if i > 0 {
                assert_eq!(le32(&avi, layout::AVIH_DATA), 50_000, "20 fps");
            }
        }
        let avi = writer.finish().unwrap().into_inner();
        assert_ne!(le32(&avi, layout::AVIH_DATA + 12) & AVIF_HASINDEX, 0);
        assert_eq!(indexed_frames(&avi).len(), 3);
    }

    #[test]
    fn an_existing_file_is_never_overwritten_unless_forced() {
        let dir = std::env::temp_dir().join(format!("camstream-noclobber-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec.avi");
        std::fs::write(&path, b"precious").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_795_688_100);
        let (first, _) = open_first(&path, false, now).unwrap();
        assert_eq!(first, dir.join("rec-20261126-101500.avi"));
        let (second, _) = open_first(&path, false, now).unwrap();
        assert_eq!(second, dir.join("rec-20261126-101500_2.avi"));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        let (forced, _) = open_first(&path, true, now).unwrap();
        assert_eq!(forced, path);
        assert_eq!(std::fs::read(&path).unwrap(), b"", "--force truncates");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_recording_is_still_a_valid_file() {
        let avi = AviWriter::new(Cursor::new(Vec::new()))
            .unwrap()
            .finish()
            .unwrap()
            .into_inner();
        assert_eq!(avi.len(), layout::HEADER_LEN + 8);
        assert_eq!(le32(&avi, layout::RIFF_SIZE) as usize, avi.len() - 8);
        assert_eq!(le32(&avi, layout::AVIH_DATA), DEFAULT_FRAME_PERIOD_US);
        assert!(indexed_frames(&avi).is_empty());
    }

    #[test]
    fn frame_rate_falls_back_when_timestamps_cannot_tell() {
        for stamps in [vec![5], vec![9, 9, 9], vec![100, 50]] {
            let mut writer = AviWriter::new(Cursor::new(Vec::new())).unwrap();
            for t in &stamps {
                writer.write_frame(b"x", None, *t).unwrap();
            }
            assert_eq!(
                writer.frame_period_us(),
                DEFAULT_FRAME_PERIOD_US,
                "{stamps:?}"
            );
        }
        let mut fast = AviWriter::new(Cursor::new(Vec::new())).unwrap();
        fast.write_frame(b"x", None, 0).unwrap();
        fast.write_frame(b"x", None, 1).unwrap();
        assert_eq!(u64::from(fast.frame_period_us()), MIN_FRAME_PERIOD_US);
    }

    #[test]
    fn jpeg_size_reads_the_sof_and_refuses_junk() {
        let jpeg = tiny_jpeg(48, 24, 90);
        assert_eq!(jpeg_size(&jpeg), Some((48, 24)));
        for cut in 0..jpeg.len().min(400) {
            let _ = jpeg_size(&jpeg[..cut]);
        }
        assert_eq!(jpeg_size(b""), None);
        assert_eq!(jpeg_size(b"\xFF\xD8\xFF\xDA\x00\x02"), None);
        assert_eq!(jpeg_size(b"GIF89a"), None);
        // A zero segment length must not loop forever.
        assert_eq!(jpeg_size(b"\xFF\xD8\xFF\xE0\x00\x00\xFF\xE0\x00\x00"), None);
    }

    #[test]
    fn png_frames_are_recorded_as_jpeg() {
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, 8, 4);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[100u8; 8 * 4 * 3]).unwrap();
        }
        let frame = as_jpeg(RecordedFrame::new(png, 0, 0, None)).unwrap();
        assert_eq!(jpeg_size(&frame.jpeg), Some((8, 4)));
        let jpeg = tiny_jpeg(8, 4, 1);
        let kept = as_jpeg(RecordedFrame::new(jpeg.clone(), 8, 4, Some(1))).unwrap();
        assert_eq!(kept.jpeg, jpeg, "JPEG goes in as it came");
        let broken_png = b"\x89PNG\r\n\x1a\n broken".to_vec();
        assert!(as_jpeg(RecordedFrame::new(broken_png, 0, 0, None)).is_none());
    }

    #[test]
    fn part_names_keep_the_extension() {
        let first = Path::new("/tmp/rec.avi");
        assert_eq!(part_path(first, 2), Path::new("/tmp/rec-2.avi"));
        assert_eq!(part_path(Path::new("out"), 3), Path::new("out-3"));
    }

    #[test]
    fn recording_rolls_over_on_size_changes_and_the_size_limit() {
        let dir = std::env::temp_dir().join(format!("camstream-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec.avi");
        let small = tiny_jpeg(32, 16, 10);
        let large = tiny_jpeg(64, 32, 10);
        // Room for about three small frames per file.
        let limit = (layout::HEADER_LEN + 8 + 3 * (small.len() + 8 + 1 + 16)) as u64;
        let _ = std::fs::remove_file(&path);
        let (sink, recorder, _) = start_with_limit(&path, RecordOptions::default(), limit).unwrap();
        let sent = [&small, &small, &large, &large, &large, &large];
        for (i, jpeg) in sent.iter().enumerate() {
            sink.offer(RecordedFrame {
                jpeg: jpeg.to_vec(),
                width: 0,
                height: 0,
                timestamp_us: i as u64,
                arrived: Instant::now(),
            });
        }
        drop(sink);
        let (report, result) = recorder.finish();
        result.unwrap();
        assert_eq!(report.frames_recorded, 6);
        assert_eq!(report.frames_unrecorded, 0);
        let names: Vec<String> = report
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["rec.avi", "rec-2.avi", "rec-3.avi"]);
        let per_file: Vec<Vec<Vec<u8>>> = report
            .files
            .iter()
            .map(|p| indexed_frames(&std::fs::read(p).unwrap()))
            .collect();
        assert_eq!(per_file[0], [small.clone(), small.clone()]);
        assert_eq!(per_file[1].len() + per_file[2].len(), 4);
        assert!(per_file[1..].iter().flatten().all(|f| *f == large));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
