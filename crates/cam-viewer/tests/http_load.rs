//! The fan-out under load: 100 concurrent `/stream` readers of a 720p30 stream for 10 s, one
//! reader that never reads, and 50 idle sockets. Every active reader must get at least 95% of
//! the frames, and the UDP stream must not slow down. Prints readers served, frames per
//! reader, and the viewer's CPU and RSS.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::procs::{start_client, wait_until, TempDir, PATIENCE};
use common::web::{get, start_http_viewer, PartReader};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const READERS: usize = 100;
const IDLE: usize = 50;
const WINDOW: Duration = Duration::from_secs(10);

/// Ten 1280x720 JPEGs of about the size a real scene gives at quality 80 (a gradient, blocks
/// and noise), sent byte for byte so that the client's CPU goes to sending, not encoding.
/// Returns their mean size.
fn write_720p_jpegs(dir: &std::path::Path) -> u64 {
    let (w, h) = (1280usize, 720usize);
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(80).unwrap();
    let mut state = 0x9e37_79b9u32;
    let mut total = 0;
    for i in 0..10 {
        let rgb: Vec<u8> = (0..w * h * 3)
            .map(|p| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let (x, y, c) = (p / 3 % w, p / 3 / w, p % 3);
                let base = (x * 200 / w + y * 55 / h + i * 20 + c * 40) % 256;
                let block = if (x / 80 + y / 60 + i) % 3 == 0 {
                    60
                } else {
                    0
                };
                (base as u32 + block + state % 8) as u8
            })
            .collect();
        let jpeg = compressor
            .compress_to_vec(turbojpeg::Image {
                pixels: &rgb[..],
                width: w,
                pitch: w * 3,
                height: h,
                format: turbojpeg::PixelFormat::RGB,
            })
            .unwrap();
        total += jpeg.len() as u64;
        std::fs::write(dir.join(format!("f-{i:02}.jpg")), &jpeg).unwrap();
    }
    total / 10
}

/// Reads a `/stream` part by part and counts the parts: it follows the chunked encoding and
/// each part's Content-Length, and skips the JPEG bytes without looking at them
/// (`tests/http.rs` checks the framing and the bytes of each part). All readers are tasks on
/// one thread, so that the test takes one thread's share of the CPU, not a hundred threads'
/// share, from the viewer and the client it measures. `began` is set once every reader has
/// its first part; parts are counted from then until `stop`.
async fn count_parts(
    addr: SocketAddr,
    ready: Arc<tokio::sync::Barrier>,
    began: Arc<OnceLock<Instant>>,
    stop: Arc<AtomicBool>,
) -> Vec<Instant> {
    enum At {
        /// Boundary and part headers, read as text.
        Head,
        /// This many bytes of the part's JPEG still to come.
        Body(usize),
        /// The CRLF and boundary that close the part.
        Closing,
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut r = tokio::io::BufReader::with_capacity(1 << 16, s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty(), "no response head");
        if line == "\r\n" {
            break;
        }
        assert!(
            !line.to_ascii_lowercase().starts_with("content-length"),
            "expected a chunked /stream"
        );
    }
    let mut scratch = vec![0u8; 1 << 16];
    let mut text = Vec::new();
    let mut at_ = At::Head;
    let mut times = Vec::with_capacity(512);
    let mut waited = false;
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        tokio::time::timeout(PATIENCE, r.read_line(&mut line))
            .await
            .expect("no data for a long time")
            .unwrap();
        let mut n = usize::from_str_radix(line.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        assert!(n > 0, "the stream ended");
        match at_ {
            At::Body(left) => {
                assert!(n <= left, "a chunk across the end of a part");
                at_ = if n == left {
                    At::Closing
                } else {
                    At::Body(left - n)
                };
                while n > 0 {
                    let k = r.read(&mut scratch[..n.min(1 << 16)]).await.unwrap();
                    assert!(k > 0, "the stream ended");
                    n -= k;
                }
            }
            At::Head | At::Closing => {
                let from = text.len();
                text.resize(from + n, 0);
                r.read_exact(&mut text[from..]).await.unwrap();
            }
        }
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await.unwrap();
        match at_ {
            At::Head => {
                if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .expect("a part without Content-Length")
                        .trim()
                        .parse()
                        .unwrap();
                    assert_eq!(end + 4, text.len(), "JPEG bytes in the head chunk");
                    text.clear();
                    at_ = At::Body(len);
                }
            }
            At::Closing if text.ends_with(b"--camstreamframe\r\n") => {
                assert_eq!(text, b"\r\n--camstreamframe\r\n");
                text.clear();
                at_ = At::Head;
                if !waited {
                    waited = true;
                    ready.wait().await;
                } else if began.get().is_some() {
                    times.push(Instant::now());
                }
            }
            _ => {}
        }
    }
    times
}

fn frames_so_far(http: SocketAddr) -> u64 {
    get(http, "/state", &[]).json()["streams"][0]["frames"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_hundred_readers_a_stalled_one_and_idle_sockets_at_720p30() {
    let src = TempDir::new("load-src");
    let mean_jpeg = write_720p_jpegs(src.path());
    let (mut viewer, port, http) = start_http_viewer(&[]);
    let mut client = start_client(
        port,
        &[
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "30",
            "--duration",
            "40",
        ],
    );
    assert!(
        wait_until(PATIENCE, || frames_so_far(http) > 30),
        "the stream did not start: {}",
        viewer.stderr()
    );
    // The stream alone, as the baseline.
    let f0 = frames_so_far(http);
    let cpu_alone0 = viewer.cpu_seconds().unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let baseline_fps = (frames_so_far(http) - f0) as f64 / t0.elapsed().as_secs_f64();
    let cpu_alone = (viewer.cpu_seconds().unwrap() - cpu_alone0) / t0.elapsed().as_secs_f64();

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    let stalled = PartReader::open(http, "/stream", &[]);
    let ready = Arc::new(tokio::sync::Barrier::new(READERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let began_at = Arc::new(OnceLock::new());
    let readers = {
        let (ready, stop, began_at) = (ready.clone(), stop.clone(), began_at.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..READERS)
                    .map(|_| {
                        tokio::spawn(count_parts(
                            http,
                            ready.clone(),
                            began_at.clone(),
                            stop.clone(),
                        ))
                    })
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.push(t.await.expect("a reader failed"));
                }
                all
            })
        })
    };
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(ready.wait());
    }
    let cpu0 = viewer.cpu_seconds().unwrap();
    let frames_at_start = frames_so_far(http);
    let began = Instant::now();
    began_at.set(began).unwrap();
    let mut rss_max = 0;
    while began.elapsed() < WINDOW {
        rss_max = rss_max.max(viewer.rss_kib().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(250));
    }
    let frames_in_window = frames_so_far(http) - frames_at_start;
    let ended = Instant::now();
    let cpu = viewer.cpu_seconds().unwrap() - cpu0;
    let window_s = ended.duration_since(began).as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let per_reader: Vec<u64> = readers
        .join()
        .expect("a reader failed")
        .iter()
        .map(|at| at.iter().filter(|&&t| t >= began && t <= ended).count() as u64)
        .collect();
    let min = *per_reader.iter().min().unwrap();
    let mean = per_reader.iter().sum::<u64>() as f64 / READERS as f64;
    let mbytes = per_reader.iter().sum::<u64>() as f64 * mean_jpeg as f64 / 1e6;
    let load_fps = frames_in_window as f64 / window_s;
    let state = get(http, "/state", &[]).json();
    eprintln!(
        "load: {READERS} readers served (+1 stalled, {IDLE} idle sockets) for {window_s:.1} s; \
         the stream delivered {frames_in_window} frames of {} KB ({load_fps:.1} fps; \
         {baseline_fps:.1} fps alone); frames per reader min {min}, mean {mean:.1} ({:.1}% of \
         the stream's at least); about {mbytes:.0} MB to readers; viewer CPU {:.0}% of one core \
         ({:.0}% alone), RSS max {} MiB; state {}",
        mean_jpeg / 1000,
        100.0 * min as f64 / frames_in_window as f64,
        100.0 * cpu / window_s,
        100.0 * cpu_alone,
        rss_max / 1024,
        state["streams"][0]
    );
    assert!(
        min as f64 >= 0.95 * frames_in_window as f64,
        "a reader got {min} of {frames_in_window} frames: {per_reader:?}"
    );
    assert!(
        load_fps >= 0.9 * baseline_fps.min(30.0),
        "the UDP stream slowed from {baseline_fps:.1} to {load_fps:.1} fps"
    );
    assert!(rss_max < 400 * 1024, "viewer RSS reached {rss_max} KiB");
    // The stalled reader and the idle sockets cost nothing: the viewer is still answering.
    assert_eq!(get(http, "/snapshot", &[]).status, 200);
    drop((stalled, idle));
    client.signal(2);
    let (_, c) = client.summary(PATIENCE);
    eprintln!("client {c}");
    viewer.signal(2);
    let (status, _) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
}
