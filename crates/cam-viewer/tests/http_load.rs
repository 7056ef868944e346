//! The fan-out under load: 100 concurrent `/stream` readers of a 720p30 stream for 10 s, one
//! reader that never reads, and 50 idle sockets. Every active reader must get at least 95% of
//! the frames, and the UDP stream must not slow down. Prints readers served, frames per
//! reader, and the viewer's CPU and RSS.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::procs::{start_client, wait_until, PATIENCE};
use common::web::{get, start_http_viewer, PartReader};

const READERS: usize = 100;
const IDLE: usize = 50;
const WINDOW: Duration = Duration::from_secs(10);

fn frames_so_far(http: SocketAddr) -> u64 {
    get(http, "/state", &[]).json()["streams"][0]["frames"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_hundred_readers_a_stalled_one_and_idle_sockets_at_720p30() {
    let (mut viewer, port, http) = start_http_viewer(&[]);
    let mut client = start_client(
        port,
        &[
            "--source",
            "texture",
            "--size",
            "1280x720",
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
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let baseline_fps = (frames_so_far(http) - f0) as f64 / t0.elapsed().as_secs_f64();

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    let stalled = PartReader::open(http, "/stream", &[]);
    let start = Arc::new(Barrier::new(READERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (start, stop) = (Arc::clone(&start), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut r = PartReader::open(http, "/stream", &[]);
                let first = r.next_part();
                start.wait();
                let mut at = Vec::with_capacity(512);
                let mut bytes = first.len() as u64;
                while !stop.load(Ordering::Relaxed) {
                    let part = r.next_part();
                    assert!(part.starts_with(&[0xff, 0xd8]) && part.ends_with(&[0xff, 0xd9]));
                    bytes += part.len() as u64;
                    at.push(Instant::now());
                }
                (at, bytes)
            })
        })
        .collect();
    start.wait();
    let cpu0 = viewer.cpu_seconds().unwrap();
    let frames_at_start = frames_so_far(http);
    let began = Instant::now();
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
    let results: Vec<(Vec<Instant>, u64)> = readers
        .into_iter()
        .map(|r| r.join().expect("a reader failed"))
        .collect();
    let per_reader: Vec<u64> = results
        .iter()
        .map(|(at, _)| at.iter().filter(|&&t| t >= began && t <= ended).count() as u64)
        .collect();
    let min = *per_reader.iter().min().unwrap();
    let mean = per_reader.iter().sum::<u64>() as f64 / READERS as f64;
    let mbytes: f64 = results.iter().map(|(_, b)| *b as f64).sum::<f64>() / 1e6;
    let load_fps = frames_in_window as f64 / window_s;
    let state = get(http, "/state", &[]).json();
    eprintln!(
        "load: {READERS} readers served (+1 stalled, {IDLE} idle sockets) for {window_s:.1} s; \
         the stream delivered {frames_in_window} frames ({load_fps:.1} fps, {baseline_fps:.1} fps \
         alone); frames per reader min {min}, mean {mean:.1} ({:.1}% of the stream's at least); \
         {mbytes:.0} MB sent to readers; viewer CPU {:.0}% of one core ({cpu:.2} s), RSS max {} MiB; \
         state {}",
        100.0 * min as f64 / frames_in_window as f64,
        100.0 * cpu / window_s,
        rss_max / 1024,
        state["streams"][0]
    );
    assert!(
        min as f64 >= 0.95 * frames_in_window as f64,
        "a reader got {min} of {frames_in_window} frames: {per_reader:?}"
    );
    assert!(
        load_fps >= 0.95 * baseline_fps.min(30.0),
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
