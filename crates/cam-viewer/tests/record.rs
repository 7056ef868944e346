//! `--record FILE` with the real binaries: the file is read back by two independent readers,
//! ffprobe (from ffmpeg, installed by `scripts/setup.sh --window-tests`) and a RIFF parser
//! written here from the AVI layout rather than from the viewer's writer.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{saved_frames, start_client, start_viewer, u, TempDir, PATIENCE};

/// One RIFF chunk: its id, list type (for RIFF and LIST), where its data starts in the file,
/// and its data.
#[derive(Debug)]
struct Chunk<'a> {
    id: [u8; 4],
    list_type: Option<[u8; 4]>,
    data_at: usize,
    data: &'a [u8],
}

fn fourcc(bytes: &[u8]) -> [u8; 4] {
    bytes[..4].try_into().unwrap()
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The chunks in `file[start..end]`, checking that each lies inside its parent.
fn chunks(file: &[u8], start: usize, end: usize) -> Vec<Chunk<'_>> {
    let mut found = Vec::new();
    let mut at = start;
    while at + 8 <= end {
        let id = fourcc(&file[at..]);
        let size = le32(file, at + 4) as usize;
        let data_at = at + 8;
        assert!(
            data_at + size <= end,
            "chunk {:?} at {at} ({size} bytes) overruns its parent (ends at {end})",
            String::from_utf8_lossy(&id)
        );
        let list_type = matches!(&id, b"RIFF" | b"LIST").then(|| fourcc(&file[data_at..]));
        found.push(Chunk {
            id,
            list_type,
            data_at,
            data: &file[data_at..data_at + size],
        });
        at = data_at + size + size % 2;
    }
    assert_eq!(at, end, "trailing bytes after the last chunk");
    found
}

fn children<'a>(file: &'a [u8], list: &Chunk<'_>) -> Vec<Chunk<'a>> {
    chunks(file, list.data_at + 4, list.data_at + list.data.len())
}

fn find<'a, 'b>(
    chunks: &'b [Chunk<'a>],
    id: &[u8; 4],
    list_type: Option<&[u8; 4]>,
) -> &'b Chunk<'a> {
    chunks
        .iter()
        .find(|c| &c.id == id && c.list_type.as_ref() == list_type)
        .unwrap_or_else(|| {
            panic!(
                "no {} {:?} chunk",
                String::from_utf8_lossy(id),
                list_type.map(|t| String::from_utf8_lossy(t).into_owned())
            )
        })
}

/// What a player needs from the file: the header's numbers and the frames the index points at.
#[derive(Debug)]
struct Avi {
    total_frames: u32,
    stream_length: u32,
    width: u32,
    height: u32,
    frames: Vec<Vec<u8>>,
}

fn parse_avi(file: &[u8]) -> Avi {
    let top = chunks(file, 0, file.len());
    assert_eq!(top.len(), 1, "one RIFF chunk");
    assert_eq!(top[0].id, *b"RIFF");
    assert_eq!(top[0].list_type, Some(*b"AVI "));
    let riff = children(file, &top[0]);

    let hdrl = children(file, find(&riff, b"LIST", Some(b"hdrl")));
    let avih = find(&hdrl, b"avih", None).data;
    let strl = children(file, find(&hdrl, b"LIST", Some(b"strl")));
    let strh = find(&strl, b"strh", None).data;
    let strf = find(&strl, b"strf", None).data;
    assert_eq!(&strh[..4], b"vids");
    assert_eq!(&strh[4..8], b"MJPG");
    assert_eq!(&strf[16..20], b"MJPG", "BITMAPINFOHEADER compression");
    assert_ne!(le32(avih, 12) & 0x10, 0, "AVIF_HASINDEX");

    let movi = find(&riff, b"LIST", Some(b"movi"));
    // Every chunk in movi is a frame of stream 0.
    let movi_chunks = children(file, movi);
    assert!(movi_chunks.iter().all(|c| c.id == *b"00dc"));
    let idx1 = find(&riff, b"idx1", None).data;
    assert_eq!(idx1.len() % 16, 0);
    // idx1 offsets count from the `movi` list type.
    let movi_base = movi.data_at;
    let frames: Vec<Vec<u8>> = idx1
        .chunks_exact(16)
        .map(|entry| {
            assert_eq!(&entry[..4], b"00dc");
            let at = movi_base + le32(entry, 8) as usize;
            let len = le32(entry, 12) as usize;
            let chunk = movi_chunks
                .iter()
                .find(|c| c.data_at == at + 8)
                .unwrap_or_else(|| panic!("idx1 entry points at {at}, where no 00dc chunk starts"));
            assert_eq!(chunk.data.len(), len, "idx1 length");
            chunk.data.to_vec()
        })
        .collect();
    assert_eq!(frames.len(), movi_chunks.len(), "every chunk is indexed");
    Avi {
        total_frames: le32(avih, 16),
        stream_length: le32(strh, 32),
        width: le32(avih, 32),
        height: le32(avih, 36),
        frames,
    }
}

/// ffprobe's view of the file's video stream, frames counted by decoding them.
fn ffprobe(path: &Path) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}): run scripts/setup.sh --window-tests (it installs ffmpeg)")
        });
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "ffprobe complains about {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let streams = json["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{json}");
    streams[0].clone()
}

/// "30000/1001" and the like as a number.
fn rate(text: &str) -> f64 {
    let (num, den) = text.split_once('/').unwrap();
    num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap()
}

#[test]
fn recording_holds_every_frame_byte_for_byte_and_ffprobe_reads_it() {
    let dir = TempDir::new("record");
    let saved = dir.path().join("frames");
    let avi = dir.path().join("rec.avi");
    let (mut viewer, port) = start_viewer(&[
        "--frames",
        "30",
        "--save-frames",
        saved.to_str().unwrap(),
        "--record",
        avi.to_str().unwrap(),
    ]);
    let mut client = start_client(
        port,
        &[
            "--source", "pattern", "--size", "320x240", "--fps", "30", "--frames", "30",
        ],
    );
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    client.wait(PATIENCE);
    assert_eq!(u(&summary, "frames_recorded"), 30, "{summary}");
    assert_eq!(u(&summary, "frames_unrecorded"), 0, "{summary}");

    let received = saved_frames(&saved);
    assert_eq!(received.len(), 30);
    let file = std::fs::read(&avi).unwrap();
    let parsed = parse_avi(&file);
    assert_eq!((parsed.width, parsed.height), (320, 240));
    assert_eq!(parsed.total_frames, 30);
    assert_eq!(parsed.stream_length, 30);
    assert!(
        parsed.frames == received,
        "recorded frames differ from the received ones"
    );

    let stream = ffprobe(&avi);
    assert_eq!(stream["codec_name"], "mjpeg", "{stream}");
    assert_eq!(stream["nb_read_frames"], "30", "{stream}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(320), Some(240))
    );
    let fps = rate(stream["avg_frame_rate"].as_str().unwrap());
    eprintln!("frame rate in the file: {fps:.2}");
    assert!(
        (20.0..=40.0).contains(&fps),
        "frame rate {fps} from a 30 fps capture"
    );
}

#[test]
fn sigterm_finalises_the_recording() {
    let dir = TempDir::new("record-term");
    let saved = dir.path().join("frames");
    let avi = dir.path().join("rec.avi");
    let (mut viewer, port) = start_viewer(&[
        "--save-frames",
        saved.to_str().unwrap(),
        "--record",
        avi.to_str().unwrap(),
    ]);
    let _client = start_client(
        port,
        &["--source", "pattern", "--size", "320x240", "--fps", "30"],
    );
    let started = Instant::now();
    while saved_frames(&saved).len() < 10 {
        assert!(
            started.elapsed() < PATIENCE,
            "no frames arrived; viewer stderr:\n{}",
            viewer.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    viewer.signal(15);
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let recorded = u(&summary, "frames_recorded");
    assert_eq!(recorded, u(&summary, "frames_completed"), "{summary}");
    assert_eq!(u(&summary, "frames_unrecorded"), 0, "{summary}");

    let file = std::fs::read(&avi).unwrap();
    let parsed = parse_avi(&file);
    assert_eq!(u64::from(parsed.total_frames), recorded);
    assert!(parsed.frames == saved_frames(&saved));
    let stream = ffprobe(&avi);
    assert_eq!(stream["nb_read_frames"], recorded.to_string(), "{stream}");
}
