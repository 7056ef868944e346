//! `--source FILE.y4m` and `--source -` (standard input): raw YUV4MPEG2 video, 4:2:0, encoded
//! straight from its planes with libjpeg-turbo's YUV path (no RGB round trip). This is how the
//! benchmark feeds camstream and GStreamer the same frames, and how a user streams a prepared
//! clip or a screen capture:
//! `ffmpeg ... -pix_fmt yuv420p -f yuv4mpegpipe - | cam-client --source -`.
//!
//! **Range.** JPEG stores full-range YCbCr. A stream that declares `XCOLORRANGE=FULL` goes to
//! the encoder untouched, byte for byte (the benchmark's frames do, so camstream and GStreamer's
//! `jpegenc`, which never converts, encode the very same samples). Any other stream
//! (`XCOLORRANGE=LIMITED`, or no tag, which is what video tools write by default) is taken as
//! studio range (Y 16..=235) and stretched first, as camera YUYV is, or black would turn grey.
//!
//! **Bounds.** Header lines have a length limit, both sides are checked against [`MAX_SIDE`]
//! before any buffer is sized, and a short read is an error or the end, never a panic.
//!
//! **End.** A file starts over when `--frames` or `--duration` asks for more than it holds
//! ([`AtEnd::Loop`]); standard input cannot, so its end is the end of the stream. A last frame
//! cut short (a producer killed mid-write) ends the pass with a warning.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{AtEnd, FrameSource, SourceError, SourceFrame};
use crate::encode::{JpegEncoder, CHROMA_TO_FULL, IDENTITY, LUMA_TO_FULL};

/// Every stream starts with this word.
pub const MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest stream header accepted, newline excluded (ffmpeg writes about 60 bytes).
pub const MAX_HEADER_LEN: usize = 1024;
/// Longest frame header accepted ("FRAME" and optional parameters), newline excluded.
pub const MAX_FRAME_HEADER_LEN: usize = 256;
/// Largest width or height: the viewer decodes nothing larger.
pub const MAX_SIDE: u32 = 8192;
/// Bytes of a bad token quoted back in an error.
const QUOTE_MAX: usize = 32;

/// Why a YUV4MPEG2 stream was refused. Each says what to do on one line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Y4mError {
    #[error("not a YUV4MPEG2 stream (it must start with 'YUV4MPEG2 '); write one with ffmpeg ... -pix_fmt yuv420p -f yuv4mpegpipe")]
    NotY4m,
    #[error("the stream header is cut short (no end of line)")]
    TruncatedHeader,
    #[error("the {what} header is longer than {limit} bytes")]
    HeaderTooLong { what: &'static str, limit: usize },
    #[error("the stream header has no {0} parameter (width W and height H are required)")]
    MissingSize(char),
    #[error("bad header parameter '{0}'")]
    BadParameter(String),
    #[error("{width}x{height} is not a usable size: each side must be 1 to {MAX_SIDE} pixels")]
    BadSize { width: u32, height: u32 },
    #[error("chroma 'C{0}' is not supported: camstream takes 8-bit 4:2:0 (C420, C420jpeg, C420paldv, C420mpeg2); convert with ffmpeg -pix_fmt yuv420p")]
    UnsupportedChroma(String),
    #[error("expected a FRAME header, found '{0}'")]
    BadFrameHeader(String),
    #[error("the stream holds no frames")]
    NoFrames,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How the samples relate to JPEG's full range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// 0..=255 (`XCOLORRANGE=FULL`): encoded as they are.
    Full,
    /// Y 16..=235, chroma 16..=240: stretched before encoding.
    Studio,
}

/// What the stream header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    pub width: u32,
    pub height: u32,
    pub range: Range,
    /// As written (`F30000:1001`), for the log only: `--fps` paces the stream.
    pub frame_rate: Option<(u32, u32)>,
}

impl StreamHeader {
    /// Parses a stream header line (without its newline). Interlacing (`I`), aspect (`A`) and
    /// unknown tags do not change how the planes are laid out, so they are ignored, as the
    /// format asks.
    pub fn parse(line: &[u8]) -> Result<StreamHeader, Y4mError> {
        let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        if tokens.next() != Some(MAGIC) {
            return Err(Y4mError::NotY4m);
        }
        let (mut width, mut height, mut frame_rate) = (None, None, None);
        let mut range = Range::Studio;
        for token in tokens {
            let (tag, value) = (token[0], &token[1..]);
            match tag {
                b'W' => width = Some(number(value).ok_or_else(|| bad(token))?),
                b'H' => height = Some(number(value).ok_or_else(|| bad(token))?),
                b'C' => match value {
                    b"420" | b"420jpeg" | b"420paldv" | b"420mpeg2" => {}
                    other => return Err(Y4mError::UnsupportedChroma(quote(other))),
                },
                b'F' => frame_rate = Some(ratio(value).ok_or_else(|| bad(token))?),
                b'X' => match value {
                    b"COLORRANGE=FULL" => range = Range::Full,
                    b"COLORRANGE=LIMITED" => range = Range::Studio,
                    _ => {}
                },
                _ => {}
            }
        }
        let width = width.ok_or(Y4mError::MissingSize('W'))?;
        let height = height.ok_or(Y4mError::MissingSize('H'))?;
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(Y4mError::BadSize { width, height });
        }
        Ok(StreamHeader {
            width,
            height,
            range,
            frame_rate,
        })
    }

    /// Bytes of the luma plane and of each chroma plane (`ceil(w/2) x ceil(h/2)`).
    pub fn plane_lens(&self) -> (usize, usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        (w * h, w.div_ceil(2) * h.div_ceil(2))
    }

    /// Bytes of one frame's planes (the frame header not counted). At most about 96 MiB,
    /// as both sides are at most [`MAX_SIDE`].
    pub fn frame_len(&self) -> usize {
        let (luma, chroma) = self.plane_lens();
        luma + 2 * chroma
    }
}

/// Decimal digits only, no sign, no overflow.
fn number(value: &[u8]) -> Option<u32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn ratio(value: &[u8]) -> Option<(u32, u32)> {
    let colon = value.iter().position(|&b| b == b':')?;
    Some((number(&value[..colon])?, number(&value[colon + 1..])?))
}

fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE_MAX)];
    String::from_utf8_lossy(shown).escape_debug().to_string()
}

fn bad(token: &[u8]) -> Y4mError {
    Y4mError::BadParameter(quote(token))
}

/// How a bounded line read ended.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line (newline removed) is in the buffer.
    Complete,
    /// The input ended before any byte.
    End,
    /// The input ended mid-line.
    Partial,
    /// No newline within the limit.
    TooLong,
}

fn read_line<R: BufRead>(input: &mut R, limit: usize, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let read = input.take(limit as u64 + 1).read_until(b'\n', line)?;
    Ok(if read == 0 {
        Line::End
    } else if line.last() == Some(&b'\n') {
        line.pop();
        Line::Complete
    } else if read > limit {
        Line::TooLong
    } else {
        Line::Partial
    })
}

/// How an attempt to read a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRead {
    /// A whole frame is in the buffer.
    Frame,
    /// The stream ended at a frame boundary.
    End,
    /// The stream ended inside a frame (or its header).
    Truncated,
}

/// Reads a YUV4MPEG2 stream frame by frame from any buffered input.
#[derive(Debug)]
pub struct Y4mReader<R> {
    input: R,
    header: StreamHeader,
    /// Bytes of the stream header with its newline: where the first frame starts.
    header_len: u64,
    line: Vec<u8>,
}

impl<R: BufRead> Y4mReader<R> {
    /// Reads and checks the stream header.
    pub fn new(mut input: R) -> Result<Self, Y4mError> {
        let mut line = Vec::new();
        let ended = read_line(&mut input, MAX_HEADER_LEN, &mut line)?;
        if !line.starts_with(MAGIC) {
            return Err(Y4mError::NotY4m);
        }
        match ended {
            Line::Complete => {}
            Line::TooLong => {
                return Err(Y4mError::HeaderTooLong {
                    what: "stream",
                    limit: MAX_HEADER_LEN,
                })
            }
            Line::End | Line::Partial => return Err(Y4mError::TruncatedHeader),
        }
        let header = StreamHeader::parse(&line)?;
        Ok(Y4mReader {
            input,
            header,
            header_len: line.len() as u64 + 1,
            line,
        })
    }

    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Reads the next frame's planes (Y, then U, then V) into `frame`, which is resized to
    /// [`StreamHeader::frame_len`].
    pub fn read_frame(&mut self, frame: &mut Vec<u8>) -> Result<FrameRead, Y4mError> {
        let read = self.read_frame_header()?;
        if read != FrameRead::Frame {
            return Ok(read);
        }
        frame.resize(self.header.frame_len(), 0);
        match self.input.read_exact(frame) {
            Ok(()) => Ok(FrameRead::Frame),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(FrameRead::Truncated),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a frame header; `Frame` means the planes come next.
    fn read_frame_header(&mut self) -> Result<FrameRead, Y4mError> {
        match read_line(&mut self.input, MAX_FRAME_HEADER_LEN, &mut self.line)? {
            Line::Complete => {}
            Line::End => return Ok(FrameRead::End),
            Line::Partial => return Ok(FrameRead::Truncated),
            Line::TooLong => {
                return Err(Y4mError::HeaderTooLong {
                    what: "frame",
                    limit: MAX_FRAME_HEADER_LEN,
                })
            }
        }
        let is_frame = self
            .line
            .strip_prefix(b"FRAME")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b" "));
        if !is_frame {
            return Err(Y4mError::BadFrameHeader(quote(&self.line)));
        }
        Ok(FrameRead::Frame)
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.input
    }
}

/// A whole stream held in memory, with where each frame's planes start: frames are then
/// encoded straight from it, with no copy per frame.
#[derive(Debug)]
pub struct LoadedStream {
    pub header: StreamHeader,
    pub data: Vec<u8>,
    pub starts: Vec<usize>,
    /// The stream ends inside a frame, which is left out.
    pub truncated: bool,
}

impl LoadedStream {
    /// Checks every header and finds every frame.
    pub fn index(data: Vec<u8>) -> Result<LoadedStream, Y4mError> {
        let mut reader = Y4mReader::new(io::Cursor::new(&data[..]))?;
        let header = reader.header;
        let frame_len = header.frame_len();
        let mut starts = Vec::new();
        let truncated = loop {
            match reader.read_frame_header()? {
                FrameRead::Frame => {}
                FrameRead::End => break false,
                FrameRead::Truncated => break true,
            }
            // A Cursor's position is within the slice it reads.
            let start = reader.input.position() as usize;
            if data.len() - start < frame_len {
                break true;
            }
            starts.push(start);
            reader.input.set_position((start + frame_len) as u64);
        };
        Ok(LoadedStream {
            header,
            data,
            starts,
            truncated,
        })
    }

    /// The planes of frame `index`.
    pub fn frame(&self, index: usize) -> Option<&[u8]> {
        let start = *self.starts.get(index)?;
        self.data.get(start..start + self.header.frame_len())
    }
}

impl<R: BufRead + Seek> Y4mReader<R> {
    /// Goes back to the first frame.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.input
            .seek(SeekFrom::Start(self.header_len))
            .map(|_| ())
    }
}

/// A file or standard input, behind one buffered reader.
#[derive(Debug)]
enum Input {
    File(BufReader<File>),
    Stdin(BufReader<io::Stdin>),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::File(r) => r.read(buf),
            Input::Stdin(r) => r.read(buf),
        }
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Input::File(r) => r.fill_buf(),
            Input::Stdin(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Input::File(r) => r.consume(amount),
            Input::Stdin(r) => r.consume(amount),
        }
    }
}

impl Seek for Input {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Input::File(r) => r.seek(to),
            Input::Stdin(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "standard input cannot start over",
            )),
        }
    }
}

/// Read-ahead for headers; whole frames bypass it and land straight in the frame buffer.
const READ_BUFFER: usize = 64 << 10;
/// A file up to this size is read once and its frames encoded from memory (as the JPEG file
/// source does); a larger one, and standard input, are read frame by frame.
pub const MAX_PRELOAD_BYTES: u64 = 256 << 20;

/// Where the frames come from.
#[derive(Debug)]
enum Frames {
    Loaded {
        stream: LoadedStream,
        next: usize,
    },
    Streamed {
        reader: Y4mReader<Input>,
        /// The planes as read: Y, U, V.
        frame: Vec<u8>,
        /// Frames read since the start (or the last start over).
        this_pass: u64,
    },
}

/// `--source FILE.y4m` or `--source -`.
pub struct Y4mSource {
    frames: Frames,
    header: StreamHeader,
    /// The path, or "standard input".
    name: String,
    path: Option<PathBuf>,
    at_end: AtEnd,
    /// Stretched and/or scaled planes, when the frame cannot go to the encoder as it is.
    planes: [Vec<u8>; 3],
    /// Source column of each output column (scaling), reused between planes and frames.
    columns: Vec<usize>,
    /// Picture size sent: the stream's, or smaller when link adaptation asks.
    out_width: u32,
    out_height: u32,
    encoder: JpegEncoder,
    frames_read: u64,
}

impl std::fmt::Debug for Y4mSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mSource")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("in_memory", &matches!(self.frames, Frames::Loaded { .. }))
            .field("out", &(self.out_width, self.out_height))
            .field("frames_read", &self.frames_read)
            .finish_non_exhaustive()
    }
}

/// True when `path` names a y4m stream: `-`, a `.y4m`/`.yuv4mpeg` name, or a file that starts
/// with the y4m magic.
pub fn is_y4m(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return true;
    }
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("y4m") || e.eq_ignore_ascii_case("yuv4mpeg"));
    by_name || starts_with_magic(path)
}

fn starts_with_magic(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut start = Vec::with_capacity(MAGIC.len());
    file.take(MAGIC.len() as u64)
        .read_to_end(&mut start)
        .is_ok_and(|_| start == MAGIC)
}

impl Y4mSource {
    /// Opens `path` (`-` is standard input) and reads its stream header; a file up to
    /// [`MAX_PRELOAD_BYTES`] is read whole and checked frame by frame now.
    pub fn open(path: &Path, quality: u8, at_end: AtEnd) -> Result<Y4mSource, SourceError> {
        Self::open_with_limit(path, quality, at_end, MAX_PRELOAD_BYTES)
    }

    fn open_with_limit(
        path: &Path,
        quality: u8,
        at_end: AtEnd,
        preload_limit: u64,
    ) -> Result<Y4mSource, SourceError> {
        let y4m_error = |name: &str, reason| SourceError::Y4m {
            name: name.to_owned(),
            reason,
        };
        let (frames, name, file_path) = if path.as_os_str() == "-" {
            let input = Input::Stdin(BufReader::with_capacity(READ_BUFFER, io::stdin()));
            let name = "standard input";
            let reader = Y4mReader::new(input).map_err(|e| y4m_error(name, e))?;
            (streamed(reader), name.to_owned(), None)
        } else {
            let io_error = |source: io::Error| match source.kind() {
                io::ErrorKind::NotFound => SourceError::NotFound {
                    path: path.to_owned(),
                },
                _ => SourceError::Io {
                    path: path.to_owned(),
                    source,
                },
            };
            let name = path.display().to_string();
            let file = File::open(path).map_err(io_error)?;
            let size = file.metadata().map_err(io_error)?.len();
            let mut data = Vec::new();
            if size <= preload_limit {
                file.take(preload_limit + 1)
                    .read_to_end(&mut data)
                    .map_err(io_error)?;
            }
            // A file that grew past the limit while being read is streamed instead.
            let frames = if size <= preload_limit && data.len() as u64 <= preload_limit {
                let stream = LoadedStream::index(data).map_err(|e| y4m_error(&name, e))?;
                if stream.truncated {
                    log::warn!("{name}: the last frame is cut short; it is left out");
                }
                Frames::Loaded { stream, next: 0 }
            } else {
                let file = File::open(path).map_err(io_error)?;
                let input = Input::File(BufReader::with_capacity(READ_BUFFER, file));
                streamed(Y4mReader::new(input).map_err(|e| y4m_error(&name, e))?)
            };
            (frames, name, Some(path.to_owned()))
        };
        let header = match &frames {
            Frames::Loaded { stream, .. } => stream.header,
            Frames::Streamed { reader, .. } => *reader.header(),
        };
        Ok(Y4mSource {
            frames,
            header,
            name,
            path: file_path,
            at_end,
            planes: Default::default(),
            columns: Vec::new(),
            out_width: header.width,
            out_height: header.height,
            encoder: JpegEncoder::new(quality)?,
            frames_read: 0,
        })
    }

    fn error(&self, reason: Y4mError) -> SourceError {
        SourceError::Y4m {
            name: self.name.clone(),
            reason,
        }
    }

    fn loops(&self) -> bool {
        self.at_end == AtEnd::Loop && self.path.is_some()
    }

    /// Moves to the next frame, starting a file over at its end when asked. Ok(false): the
    /// stream is over.
    fn advance(&mut self) -> Result<bool, SourceError> {
        let loops = self.loops();
        let ended = match &mut self.frames {
            Frames::Loaded { stream, next } => {
                if stream.starts.is_empty() {
                    return Err(self.error(Y4mError::NoFrames));
                }
                if *next == stream.starts.len() {
                    if !loops {
                        return Ok(false);
                    }
                    *next = 0;
                }
                *next += 1;
                false
            }
            Frames::Streamed {
                reader,
                frame,
                this_pass,
            } => loop {
                match reader.read_frame(frame) {
                    Ok(FrameRead::Frame) => {
                        *this_pass += 1;
                        break false;
                    }
                    Ok(FrameRead::Truncated) => {
                        log::warn!("{}: the last frame is cut short; it is left out", self.name)
                    }
                    Ok(FrameRead::End) => {}
                    Err(e) => {
                        return Err(SourceError::Y4m {
                            name: self.name.clone(),
                            reason: e,
                        })
                    }
                }
                if self.frames_read == 0 {
                    return Err(SourceError::Y4m {
                        name: self.name.clone(),
                        reason: Y4mError::NoFrames,
                    });
                }
                // A pass without a frame means the file shrank under us: stop, not spin.
                if !loops || *this_pass == 0 {
                    break true;
                }
                *this_pass = 0;
                if let Err(source) = reader.rewind() {
                    return Err(SourceError::Io {
                        path: self.path.clone().unwrap_or_default(),
                        source,
                    });
                }
            },
        };
        if ended {
            return Ok(false);
        }
        self.frames_read += 1;
        Ok(true)
    }

    fn encode(&mut self) -> Result<Vec<u8>, SourceError> {
        let planes = match &self.frames {
            Frames::Loaded { stream, next } => next.checked_sub(1).and_then(|i| stream.frame(i)),
            Frames::Streamed { frame, .. } => Some(&frame[..]),
        };
        let Some(planes) = planes else {
            return Err(self.error(Y4mError::NoFrames));
        };
        let header = self.header;
        let (w, h) = (header.width as usize, header.height as usize);
        let (luma_len, chroma_len) = header.plane_lens();
        let (y, rest) = planes.split_at(luma_len);
        let (u, v) = rest.split_at(chroma_len);
        let (ow, oh) = (self.out_width as usize, self.out_height as usize);
        let mut jpeg = Vec::new();
        if header.range == Range::Full && (ow, oh) == (w, h) {
            self.encoder
                .encode_i420_planes_into(y, u, v, w, h, &mut jpeg)?;
            return Ok(jpeg);
        }
        let (luma_table, chroma_table) = match header.range {
            Range::Full => (&IDENTITY, &IDENTITY),
            Range::Studio => (&LUMA_TO_FULL, &CHROMA_TO_FULL),
        };
        let [py, pu, pv] = &mut self.planes;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ocw, och) = (ow.div_ceil(2), oh.div_ceil(2));
        resample(y, (w, h), py, (ow, oh), luma_table, &mut self.columns);
        resample(u, (cw, ch), pu, (ocw, och), chroma_table, &mut self.columns);
        resample(v, (cw, ch), pv, (ocw, och), chroma_table, &mut self.columns);
        self.encoder
            .encode_i420_planes_into(py, pu, pv, ow, oh, &mut jpeg)?;
        Ok(jpeg)
    }
}

fn streamed(reader: Y4mReader<Input>) -> Frames {
    Frames::Streamed {
        reader,
        frame: Vec::new(),
        this_pass: 0,
    }
}

/// Nearest-neighbour resampling of one plane through a value table (stretching studio range,
/// or the identity). Cheap, and only used when the range or link adaptation asks for it;
/// shrinking to ¾ or ½ for a congested link does not need a better filter than JPEG at low
/// quality has already given up.
fn resample(
    src: &[u8],
    (sw, sh): (usize, usize),
    dst: &mut Vec<u8>,
    (dw, dh): (usize, usize),
    table: &[u8; 256],
    columns: &mut Vec<usize>,
) {
    dst.resize(dw * dh, 0);
    columns.clear();
    columns.extend((0..dw).map(|x| x * sw / dw));
    for (y, out) in dst.chunks_exact_mut(dw).enumerate() {
        let from = y * sh / dh * sw;
        let row = &src[from..from + sw];
        if dw == sw {
            for (o, s) in out.iter_mut().zip(row) {
                *o = table[usize::from(*s)];
            }
        } else {
            for (o, &x) in out.iter_mut().zip(columns.iter()) {
                *o = table[usize::from(row[x])];
            }
        }
    }
}

impl FrameSource for Y4mSource {
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        if !self.advance()? {
            return Ok(None);
        }
        let jpeg = self.encode()?;
        Ok(Some(SourceFrame {
            jpeg,
            // Both are at most MAX_SIDE.
            width: self.out_width as u16,
            height: self.out_height as u16,
        }))
    }

    fn is_live(&self) -> bool {
        false
    }

    fn can_reencode(&self) -> bool {
        true
    }

    fn size(&self) -> Option<(u32, u32)> {
        Some((self.header.width, self.header.height))
    }

    /// Quality, and a smaller picture by nearest-neighbour scaling; never larger than the
    /// stream's own size.
    fn configure(&mut self, quality: u8, width: u32, height: u32) -> Result<(), SourceError> {
        self.encoder.set_quality(quality)?;
        self.out_width = width.clamp(1, self.header.width);
        self.out_height = height.clamp(1, self.header.height);
        Ok(())
    }

    fn describe(&self) -> String {
        let h = &self.header;
        let range = match h.range {
            Range::Full => "full range",
            Range::Studio => "studio range, stretched",
        };
        let rate = h
            .frame_rate
            .map(|(n, d)| format!(", file says {:.2} fps", f64::from(n) / f64::from(d.max(1))))
            .unwrap_or_default();
        let held = match &self.frames {
            Frames::Loaded { stream, .. } => format!(", {} frames in memory", stream.starts.len()),
            Frames::Streamed { .. } => String::new(),
        };
        let end = if self.loops() { ", looped" } else { "" };
        format!(
            "y4m {} {}x{} 4:2:0 ({range}{rate}) q{}{held}{end}",
            self.name,
            h.width,
            h.height,
            self.encoder.quality()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use turbojpeg::{Decompressor, Image, PixelFormat};

    fn header_of(text: &str) -> Result<StreamHeader, Y4mError> {
        StreamHeader::parse(text.as_bytes())
    }

    /// A stream of `frames` frames whose planes hold `frame index + plane index`.
    fn stream(w: usize, h: usize, frames: usize, tags: &str) -> Vec<u8> {
        let mut out = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg{tags}\n").into_bytes();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for f in 0..frames {
            out.extend_from_slice(b"FRAME\n");
            for (p, len) in [w * h, cw * ch, cw * ch].into_iter().enumerate() {
                out.extend(std::iter::repeat_n((f * 10 + p) as u8, len));
            }
        }
        out
    }

    fn decode_rgb(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut d = Decompressor::new().unwrap();
        let header = d.read_header(jpeg).unwrap();
        let (w, h) = (header.width, header.height);
        let mut rgb = vec![0; w * h * 3];
        d.decompress(
            jpeg,
            Image {
                pixels: &mut rgb[..],
                width: w,
                pitch: w * 3,
                height: h,
                format: PixelFormat::RGB,
            },
        )
        .unwrap();
        (w, h, rgb)
    }

    #[test]
    fn parses_what_ffmpeg_and_gstreamer_write() {
        let h = header_of("YUV4MPEG2 W1280 H720 F30000:1001 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2")
            .unwrap();
        assert_eq!((h.width, h.height), (1280, 720));
        assert_eq!(h.frame_rate, Some((30000, 1001)));
        assert_eq!(h.range, Range::Studio);
        assert_eq!(h.frame_len(), 1280 * 720 * 3 / 2);
        let full = header_of("YUV4MPEG2 W640 H480 F30:1 C420jpeg XCOLORRANGE=FULL").unwrap();
        assert_eq!(full.range, Range::Full);
        for chroma in ["", " C420", " C420jpeg", " C420paldv", " C420mpeg2"] {
            assert!(
                header_of(&format!("YUV4MPEG2 W2 H2{chroma}")).is_ok(),
                "{chroma}"
            );
        }
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        let h = header_of("YUV4MPEG2 W17 H9").unwrap();
        assert_eq!(h.plane_lens(), (17 * 9, 9 * 5));
        assert_eq!(h.frame_len(), 17 * 9 + 2 * 45);
    }

    #[test]
    fn refuses_other_chroma_with_a_clear_error() {
        for chroma in ["C422", "C444", "Cmono", "C420p10", "C444alpha"] {
            let err = header_of(&format!("YUV4MPEG2 W64 H64 {chroma}")).unwrap_err();
            assert!(matches!(err, Y4mError::UnsupportedChroma(_)), "{chroma}");
            let message = err.to_string();
            assert!(message.contains(chroma), "{message}");
            assert!(message.contains("yuv420p"), "{message}");
        }
    }

    #[test]
    fn refuses_bad_and_huge_sizes() {
        for text in [
            "YUV4MPEG2 W0 H480",
            "YUV4MPEG2 W640 H0",
            "YUV4MPEG2 W8193 H2",
            "YUV4MPEG2 W4294967295 H4294967295",
            "YUV4MPEG2 W65536 H65536",
        ] {
            assert!(
                matches!(header_of(text), Err(Y4mError::BadSize { .. })),
                "{text}"
            );
        }
        for text in [
            "YUV4MPEG2 W-1 H2",
            "YUV4MPEG2 W H2",
            "YUV4MPEG2 W99999999999 H2",
            "YUV4MPEG2 W2x H2",
            "YUV4MPEG2 W2 H2 F30",
            "YUV4MPEG2 W2 H2 F:1",
        ] {
            assert!(
                matches!(header_of(text), Err(Y4mError::BadParameter(_))),
                "{text}"
            );
        }
        assert!(matches!(
            header_of("YUV4MPEG2 H2"),
            Err(Y4mError::MissingSize('W'))
        ));
        assert!(matches!(
            header_of("YUV4MPEG2 W2"),
            Err(Y4mError::MissingSize('H'))
        ));
        assert!(matches!(header_of("YUV4MPEG W2 H2"), Err(Y4mError::NotY4m)));
    }

    #[test]
    fn refuses_truncated_long_and_foreign_headers() {
        type Expect = fn(&Y4mError) -> bool;
        let cases: [(&[u8], Expect); 5] = [
            (b"", |e| matches!(e, Y4mError::NotY4m)),
            (b"YUV4MP", |e| matches!(e, Y4mError::NotY4m)),
            (b"YUV4MPEG2 W64 H6", |e| {
                matches!(e, Y4mError::TruncatedHeader)
            }),
            (b"\xff\xd8\xff\xe0 a JPEG\n", |e| {
                matches!(e, Y4mError::NotY4m)
            }),
            (b"RIFF....AVI LIST", |e| matches!(e, Y4mError::NotY4m)),
        ];
        for (bytes, expected) in cases {
            let err = Y4mReader::new(Cursor::new(bytes)).unwrap_err();
            assert!(expected(&err), "{bytes:?}: {err}");
        }
        let mut long = b"YUV4MPEG2 W2 H2 ".to_vec();
        long.resize(MAX_HEADER_LEN + 10, b'X');
        long.push(b'\n');
        let err = Y4mReader::new(Cursor::new(long)).unwrap_err();
        assert!(matches!(err, Y4mError::HeaderTooLong { .. }), "{err}");
        // Exactly at the limit is fine.
        let mut at_limit = b"YUV4MPEG2 W2 H2 X".to_vec();
        at_limit.resize(MAX_HEADER_LEN, b'Y');
        at_limit.push(b'\n');
        assert!(Y4mReader::new(Cursor::new(at_limit)).is_ok());
    }

    #[test]
    fn reads_frames_then_reports_the_end_or_a_cut() {
        let bytes = stream(6, 4, 2, "");
        let mut reader = Y4mReader::new(Cursor::new(bytes.clone())).unwrap();
        let mut frame = Vec::new();
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
        assert_eq!(frame.len(), 6 * 4 + 2 * 3 * 2);
        assert_eq!((frame[0], frame[24], frame[30]), (0, 1, 2));
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
        assert_eq!(frame[0], 10);
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::End);
        reader.rewind().unwrap();
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
        assert_eq!(frame[0], 0);

        for cut in [bytes.len() - 1, bytes.len() - 20, bytes.len() - 38] {
            let mut reader = Y4mReader::new(Cursor::new(bytes[..cut].to_vec())).unwrap();
            assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
            assert_eq!(
                reader.read_frame(&mut frame).unwrap(),
                FrameRead::Truncated,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refuses_bad_frame_headers() {
        let mut bytes = stream(2, 2, 1, "");
        bytes.extend_from_slice(b"FRAMES\n");
        let mut reader = Y4mReader::new(Cursor::new(bytes)).unwrap();
        let mut frame = Vec::new();
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
        let err = reader.read_frame(&mut frame).unwrap_err();
        assert!(matches!(err, Y4mError::BadFrameHeader(_)), "{err}");

        let mut bytes = stream(2, 2, 0, "");
        bytes.extend_from_slice(b"FRAME ");
        bytes.resize(bytes.len() + MAX_FRAME_HEADER_LEN, b'I');
        let mut reader = Y4mReader::new(Cursor::new(bytes)).unwrap();
        let err = reader.read_frame(&mut frame).unwrap_err();
        assert!(matches!(err, Y4mError::HeaderTooLong { .. }), "{err}");

        // Frame parameters are allowed and ignored.
        let mut bytes = stream(2, 2, 0, "");
        bytes.extend_from_slice(b"FRAME Ip XFOO=1\n");
        bytes.extend_from_slice(&[7; 6]);
        let mut reader = Y4mReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.read_frame(&mut frame).unwrap(), FrameRead::Frame);
        assert_eq!(frame, vec![7; 6]);
    }

    fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        file
    }

    /// Held in memory, and read frame by frame (a preload limit of 0).
    const LIMITS: [u64; 2] = [MAX_PRELOAD_BYTES, 0];

    #[test]
    fn a_file_plays_once_or_loops() {
        let file = write_temp(&stream(32, 16, 3, " XCOLORRANGE=FULL"));
        for limit in LIMITS {
            let mut once = Y4mSource::open_with_limit(file.path(), 80, AtEnd::Stop, limit).unwrap();
            assert!(!once.is_live());
            assert!(once.can_reencode());
            assert_eq!(once.size(), Some((32, 16)));
            let described = once.describe();
            assert_eq!(described.contains("in memory"), limit > 0, "{described}");
            for _ in 0..3 {
                let frame = once.next_frame().unwrap().unwrap();
                assert_eq!((frame.width, frame.height), (32, 16));
            }
            assert!(once.next_frame().unwrap().is_none());
            assert!(once.next_frame().unwrap().is_none(), "stays over");

            let mut looped =
                Y4mSource::open_with_limit(file.path(), 80, AtEnd::Loop, limit).unwrap();
            assert!(
                looped.describe().contains("looped"),
                "{}",
                looped.describe()
            );
            let frames: Vec<_> = (0..7)
                .map(|_| looped.next_frame().unwrap().unwrap().jpeg)
                .collect();
            assert_eq!(frames[0], frames[3]);
            assert_eq!(frames[1], frames[4]);
            assert_eq!(frames[0], frames[6]);
            assert_ne!(frames[0], frames[1]);
        }
    }

    #[test]
    fn a_file_with_no_frames_or_a_cut_last_frame() {
        let empty = write_temp(b"YUV4MPEG2 W16 H16\n");
        let mut bytes = stream(16, 16, 2, "");
        bytes.truncate(bytes.len() - 5);
        let cut = write_temp(&bytes);
        for limit in LIMITS {
            let mut source =
                Y4mSource::open_with_limit(empty.path(), 80, AtEnd::Loop, limit).unwrap();
            let err = source.next_frame().unwrap_err().to_string();
            assert!(err.contains("no frames"), "{err}");

            let mut source =
                Y4mSource::open_with_limit(cut.path(), 80, AtEnd::Loop, limit).unwrap();
            let first = source.next_frame().unwrap().unwrap();
            // The cut frame is skipped and the file starts over.
            assert_eq!(source.next_frame().unwrap().unwrap(), first);
            let mut source =
                Y4mSource::open_with_limit(cut.path(), 80, AtEnd::Stop, limit).unwrap();
            assert_eq!(source.next_frame().unwrap().unwrap(), first);
            assert!(source.next_frame().unwrap().is_none());
        }
    }

    #[test]
    fn index_finds_every_frame_and_checks_every_header() {
        let bytes = stream(6, 4, 3, "");
        let loaded = LoadedStream::index(bytes.clone()).unwrap();
        assert_eq!(loaded.starts.len(), 3);
        assert!(!loaded.truncated);
        assert_eq!(loaded.frame(1).map(|f| f[0]), Some(10));
        assert_eq!(loaded.frame(3), None);
        let cut = LoadedStream::index(bytes[..bytes.len() - 1].to_vec()).unwrap();
        assert_eq!((cut.starts.len(), cut.truncated), (2, true));
        let mut bad = bytes;
        bad.extend_from_slice(b"FRAMEX\n");
        assert!(matches!(
            LoadedStream::index(bad),
            Err(Y4mError::BadFrameHeader(_))
        ));
    }

    #[test]
    fn opening_reports_what_is_wrong() {
        let missing = Y4mSource::open(Path::new("no/such.y4m"), 80, AtEnd::Stop).unwrap_err();
        assert!(matches!(missing, SourceError::NotFound { .. }), "{missing}");
        let file = write_temp(b"YUV4MPEG2 W64 H64 C422\n");
        let err = Y4mSource::open(file.path(), 80, AtEnd::Stop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("C422") && err.contains(".y4m"), "{err}");
    }

    #[test]
    fn full_range_passes_through_studio_range_is_stretched() {
        // Mid-grey chroma; luma at studio black and white.
        let (w, h) = (16, 16);
        let mut planes = vec![16u8; w * h / 2];
        planes.extend(vec![235u8; w * h / 2]);
        planes.extend(vec![128u8; w * h / 2]);
        let make = |tags: &str| {
            let mut bytes = format!("YUV4MPEG2 W{w} H{h}{tags}\nFRAME\n").into_bytes();
            bytes.extend_from_slice(&planes);
            write_temp(&bytes)
        };
        let studio = make("");
        let full = make(" XCOLORRANGE=FULL");
        let pixel = |file: &tempfile::NamedTempFile, y: usize| {
            let mut s = Y4mSource::open(file.path(), 95, AtEnd::Stop).unwrap();
            let (_, _, rgb) = decode_rgb(&s.next_frame().unwrap().unwrap().jpeg);
            rgb[y * w * 3]
        };
        assert!(pixel(&studio, 2) < 4, "studio black becomes black");
        assert!(pixel(&studio, 13) > 250, "studio white becomes white");
        assert!((14..=18).contains(&pixel(&full, 2)), "full range kept");
        assert!((232..=238).contains(&pixel(&full, 13)), "full range kept");
    }

    #[test]
    fn odd_sized_streams_encode() {
        let file = write_temp(&stream(17, 9, 1, " XCOLORRANGE=FULL"));
        let mut s = Y4mSource::open(file.path(), 80, AtEnd::Stop).unwrap();
        let frame = s.next_frame().unwrap().unwrap();
        assert_eq!((frame.width, frame.height), (17, 9));
        let (w, h, _) = decode_rgb(&frame.jpeg);
        assert_eq!((w, h), (17, 9));
    }

    #[test]
    fn configure_adapts_quality_and_scales_down_only() {
        let file = write_temp(&stream(64, 48, 1, " XCOLORRANGE=FULL"));
        let mut s = Y4mSource::open(file.path(), 90, AtEnd::Loop).unwrap();
        let big = s.next_frame().unwrap().unwrap();
        s.configure(30, 32, 24).unwrap();
        let small = s.next_frame().unwrap().unwrap();
        assert_eq!((small.width, small.height), (32, 24));
        assert_eq!(decode_rgb(&small.jpeg).0, 32);
        assert!(small.jpeg.len() < big.jpeg.len());
        s.configure(80, 1000, 1000).unwrap();
        let clamped = s.next_frame().unwrap().unwrap();
        assert_eq!((clamped.width, clamped.height), (64, 48));
        assert!(s.configure(0, 32, 24).is_err(), "quality 0 is refused");
    }

    #[test]
    fn resample_picks_nearest_samples() {
        let src: Vec<u8> = (0..16).collect(); // 4x4
        let mut dst = Vec::new();
        let mut columns = Vec::new();
        resample(&src, (4, 4), &mut dst, (2, 2), &IDENTITY, &mut columns);
        assert_eq!(dst, vec![0, 2, 8, 10]);
        resample(&src, (4, 4), &mut dst, (4, 4), &IDENTITY, &mut columns);
        assert_eq!(dst, src);
    }

    #[test]
    fn recognises_y4m_paths() {
        assert!(is_y4m(Path::new("-")));
        assert!(is_y4m(Path::new("clip.Y4M")));
        assert!(!is_y4m(Path::new("frames/")));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"YUV4MPEG2 W2 H2\n").unwrap();
        assert!(is_y4m(file.path()), "found by its magic");
    }
}
