//! Classic mode and the message port, end to end: the real binaries against our own Python peers
//! (tests/classic_peers/*.py, written from the original example's protocol description), with
//! exact bytes compared through --save-frames, and a lossy case through a dropping relay.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{
    client_bin, free_udp_port, saved_frames, sha256, start_viewer, u, write_jpegs, Proc, TempDir,
    PATIENCE,
};
use serde_json::Value;

fn peer(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/classic_peers")
        .join(name)
}

fn start_python(script: &str, args: &[&str]) -> Proc {
    Proc::start_with(Command::new("python3").arg(peer(script)).args(args))
}

/// Waits for a stdout JSON line whose "type" is `kind`.
fn wait_for_line(proc: &Proc, kind: &str, timeout: Duration) -> Value {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = proc
            .stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == kind)
        {
            return v;
        }
        assert!(
            Instant::now() < end,
            "{}: no '{kind}' line within {timeout:?}; stdout {:?}; stderr:\n{}",
            proc.name,
            proc.stdout_lines(),
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python classic client's summary after it ends.
fn python_client(port: u16, files: &[PathBuf], extra: &[&str]) -> Value {
    let port = port.to_string();
    let mut args = vec!["127.0.0.1", port.as_str()];
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.extend_from_slice(&names);
    args.extend_from_slice(extra);
    let mut client = start_python("classic_client.py", &args);
    let (status, v) = client.summary(PATIENCE * 3);
    assert!(
        status.success(),
        "python client failed: {}",
        client.stderr()
    );
    v
}

fn hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A PNG of noise (so it hardly compresses); with `multiple_of`, padded with a text chunk to a
/// length that is a multiple of it.
fn noisy_png(width: u32, height: u32, seed: u32, multiple_of: Option<usize>) -> Vec<u8> {
    let mut state = seed | 1;
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let encode = |pad: usize| {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .add_text_chunk("pad".into(), "x".repeat(pad))
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&pixels).unwrap();
        writer.finish().unwrap();
        out
    };
    let png = encode(0);
    match multiple_of {
        Some(m) => {
            let padded = encode((m - png.len() % m) % m);
            assert_eq!(padded.len() % m, 0);
            padded
        }
        None => png,
    }
}

fn write_files(dir: &Path, images: &[Vec<u8>], ext: &str) -> Vec<PathBuf> {
    images
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("img-{i:03}.{ext}"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

fn jpeg_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

/// The saved files' names, each sender's folder (`stream-ID/`, for senders after the first)
/// included.
fn saved_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let e = e.unwrap();
            if e.path().is_dir() {
                saved_names(&e.path())
            } else {
                vec![e.file_name().to_string_lossy().into_owned()]
            }
        })
        .collect();
    names.sort();
    names
}

#[test]
fn python_one_datagram_jpegs_arrive_byte_for_byte() {
    let src = TempDir::new("classic-src");
    let out = TempDir::new("classic-out");
    let sources = write_jpegs(src.path(), 4, 160, 120);
    assert!(sources.iter().all(|j| j.len() < 65_507));
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "classic",
        "--frames",
        "4",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let c = python_client(port, &jpeg_files(src.path()), &["--one-datagram"]);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    eprintln!("python {c}\nviewer {v}");
    assert_eq!(c["texts"]["get message!!!"], 4, "{c}");
    assert_eq!(c["timeouts"], 0);
    assert_eq!(u(&v, "frames_completed"), 4);
    assert_eq!(u(&v, "frames_decoded"), 4);
    assert_eq!(u(&v, "decode_errors"), 0);
    assert_eq!(u(&v, "acks_sent"), 4);
    assert_eq!(saved_frames(out.path()), sources);
    assert!(saved_names(out.path()).iter().all(|n| n.ends_with(".jpg")));
}

#[test]
fn python_chunked_pngs_of_several_hundred_kb_arrive_byte_for_byte_and_decode() {
    let src = TempDir::new("classic-png");
    let out = TempDir::new("classic-png-out");
    let pngs = vec![
        noisy_png(480, 360, 1, None),
        noisy_png(400, 300, 2, Some(1024)),
        noisy_png(320, 240, 3, None),
    ];
    assert!(pngs[0].len() > 400_000, "{} bytes", pngs[0].len());
    let files = write_files(src.path(), &pngs, "png");
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "classic",
        "--frames",
        "3",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    // The example's form; then a length that divides by 1024, followed (as the original's loop
    // does) by an empty datagram; then a 4-byte header, as struct.pack('l') writes on Windows.
    let runs: [(&PathBuf, &[&str]); 3] = [
        (&files[0], &[]),
        (&files[1], &["--empty-after"]),
        (&files[2], &["--header-bytes", "4"]),
    ];
    for (file, extra) in runs {
        let c = python_client(port, std::slice::from_ref(file), extra);
        assert_eq!(c["texts"]["get message!!!"], 1, "{c}");
    }
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    eprintln!(
        "PNG sizes {:?}; viewer {v}",
        pngs.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(u(&v, "frames_completed"), 3);
    assert_eq!(u(&v, "frames_decoded"), 3, "PNG must decode too");
    assert_eq!(u(&v, "decode_errors"), 0);
    assert_eq!(u(&v, "frames_dropped"), 0);
    assert_eq!(saved_frames(out.path()), pngs);
    assert!(saved_names(out.path()).iter().all(|n| n.ends_with(".png")));
}

#[test]
fn python_looping_client_150_frames_all_answered_and_exact() {
    let src = TempDir::new("classic-loop");
    let out = TempDir::new("classic-loop-out");
    let sources = write_jpegs(src.path(), 10, 320, 240);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "classic",
        "--frames",
        "150",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let started = Instant::now();
    let c = python_client(port, &jpeg_files(src.path()), &["--count", "150"]);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    eprintln!(
        "150 frames in {:?}: python {c}\nviewer {v}",
        started.elapsed()
    );
    assert_eq!(c["texts"]["get message!!!"], 150, "{c}");
    assert_eq!(c["timeouts"], 0);
    assert_eq!(u(&v, "frames_completed"), 150);
    assert_eq!(u(&v, "frames_decoded"), 150);
    assert_eq!(u(&v, "datagrams_invalid"), 0);
    let saved = saved_frames(out.path());
    assert_eq!(saved.len(), 150);
    for (i, frame) in saved.iter().enumerate() {
        assert!(*frame == sources[i % 10], "saved frame {} differs", i + 1);
    }
}

#[test]
fn our_classic_client_and_send_msg_against_a_threaded_python_server() {
    let src = TempDir::new("classic-ours");
    let small = TempDir::new("classic-ours-small");
    let sources = write_jpegs(src.path(), 5, 320, 240);
    let small_sources = write_jpegs(small.path(), 5, 160, 120);
    let server = start_python("classic_server.py", &["--max-seconds", "60"]);
    let ready = wait_for_line(&server, "ready", PATIENCE);
    let image_port = ready["image_port"].as_u64().unwrap().to_string();
    let msg_port = ready["msg_port"].as_u64().unwrap().to_string();
    let image_addr = format!("127.0.0.1:{image_port}");
    let msg_addr = format!("127.0.0.1:{msg_port}");

    for (chunk, frames, dir) in [("1024", 20usize, &src), ("0", 5, &small)] {
        let frames_s = frames.to_string();
        let mut client = Proc::start(
            &client_bin(),
            &[
                &image_addr,
                "--protocol",
                "classic",
                "--chunk-size",
                chunk,
                "--source",
                dir.path().to_str().unwrap(),
                "--fps",
                "0",
                "--frames",
                &frames_s,
            ],
        );
        let (status, c) = client.summary(PATIENCE);
        assert!(status.success(), "{}", client.stderr());
        eprintln!("--chunk-size {chunk}: {c}");
        assert_eq!(u(&c, "frames_sent"), frames as u64);
        assert_eq!(u(&c, "frames_acked"), frames as u64);
        assert_eq!(u(&c, "frames_timed_out"), 0);
    }
    let images: Vec<Value> = server
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "image")
        .collect();
    assert_eq!(images.len(), 25, "{images:?}");
    for (i, image) in images.iter().enumerate() {
        let (sent, form) = if i < 20 {
            (&sources[i % 5], "chunked")
        } else {
            (&small_sources[(i - 20) % 5], "one-datagram")
        };
        assert_eq!(image["sha256"], hex(sent), "image {i}");
        assert_eq!(image["form"], form, "image {i}");
    }

    let out = Command::new(client_bin())
        .args(["--send-msg", "[0,0,0,1]", &msg_addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(reply["type"], "reply");
    assert_eq!(reply["text"], "get the msg");
    let msg = wait_for_line(&server, "msg", PATIENCE);
    assert_eq!(msg["msg"], serde_json::json!([0, 0, 0, 1]));
}

#[test]
fn chunk_size_0_refuses_an_image_over_65507_bytes_in_one_line() {
    let src = TempDir::new("classic-big");
    let big = write_jpegs(src.path(), 1, 800, 600);
    assert!(big[0].len() > 65_507, "{} bytes", big[0].len());
    let port = free_udp_port().to_string();
    let mut client = Proc::start(
        &client_bin(),
        &[
            &format!("127.0.0.1:{port}"),
            "--protocol",
            "classic",
            "--chunk-size",
            "0",
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "0",
        ],
    );
    let status = client
        .wait(PATIENCE)
        .expect("the client must stop by itself");
    assert!(!status.success());
    let stderr = client.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("does not fit one datagram"), "{stderr}");
    assert!(errors[0].contains("65507"), "{stderr}");
}

/// Saved frames must each be one of the images sent, byte for byte.
fn assert_all_known(saved: &[Vec<u8>], sources: &[Vec<u8>]) -> usize {
    let known: Vec<[u8; 32]> = sources.iter().map(|s| sha256(s)).collect();
    let damaged = saved.iter().filter(|f| !known.contains(&sha256(f))).count();
    assert_eq!(
        damaged, 0,
        "{damaged} saved frames are not images that were sent"
    );
    damaged
}

#[test]
fn lossy_relay_2_percent_blocking_python_client_gets_every_reply_none_damaged() {
    let src = TempDir::new("classic-lossy");
    let out = TempDir::new("classic-lossy-out");
    let sources = write_jpegs(src.path(), 10, 320, 240);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "classic",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let mut relay = start_python(
        "lossy_relay.py",
        &[
            "--to",
            &format!("127.0.0.1:{port}"),
            "--drop",
            "0.02",
            "--seed",
            "7",
        ],
    );
    let relay_port = wait_for_line(&relay, "ready", PATIENCE)["port"]
        .as_u64()
        .unwrap() as u16;
    let started = Instant::now();
    // A socket timeout well above the viewer's give-up time (0.3 s): it blocks on each reply.
    let c = python_client(
        relay_port,
        &jpeg_files(src.path()),
        &["--count", "150", "--timeout", "5"],
    );
    let took = started.elapsed();
    relay.signal(15);
    let (_, r) = relay.summary(PATIENCE);
    viewer.signal(15);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let saved = saved_frames(out.path());
    let good = c["texts"]["get message!!!"].as_u64().unwrap_or(0);
    let lost = c["texts"]["lost frame, send the next"]
        .as_u64()
        .unwrap_or(0);
    let damaged = assert_all_known(&saved, &sources);
    eprintln!(
        "LOSSY (relay): 150 frames in {took:?}; replies {} (good {good}, lost {lost}), timeouts {}, \
         slowest reply {} ms; relay dropped {} of {} datagrams; viewer completed {}, gave up {}, \
         saved {}, damaged saved {damaged}, decode errors {}",
        c["replies"],
        c["timeouts"],
        c["slowest_reply_ms"],
        r["dropped"],
        u(&r, "dropped") + u(&r, "forwarded"),
        u(&v, "frames_completed"),
        u(&v, "frames_dropped"),
        saved.len(),
        u(&v, "decode_errors"),
    );
    assert!(u(&r, "dropped") > 0, "the relay dropped nothing: {r}");
    assert_eq!(c["replies"], 150, "{c}");
    assert_eq!(c["timeouts"], 0, "{c}");
    assert_eq!(good + lost, 150, "{c}");
    assert!(lost > 0, "2% loss should cost some frames: {c}");
    assert_eq!(u(&v, "frames_completed"), good);
    assert_eq!(u(&v, "frames_dropped"), lost);
    assert_eq!(saved.len() as u64, good);
    assert_eq!(u(&v, "decode_errors"), 0);
    assert_eq!(u(&v, "frames_decoded"), good);
}

#[test]
fn lossy_simulated_2_percent_our_classic_client_every_frame_answered_none_damaged() {
    let src = TempDir::new("classic-sim");
    let out = TempDir::new("classic-sim-out");
    let sources = write_jpegs(src.path(), 10, 320, 240);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "classic",
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let mut client = Proc::start(
        &client_bin(),
        &[
            &format!("127.0.0.1:{port}"),
            "--protocol",
            "classic",
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "0",
            "--frames",
            "150",
            "--simulate-loss",
            "2",
            "--simulate-seed",
            "3",
        ],
    );
    let (status, c) = client.summary(PATIENCE * 3);
    assert!(status.success(), "{}", client.stderr());
    viewer.signal(15);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let saved = saved_frames(out.path());
    let damaged = assert_all_known(&saved, &sources);
    eprintln!(
        "LOSSY (--simulate-loss 2): client {c}\nviewer completed {}, gave up {}, saved {}, damaged \
         saved {damaged}, decode errors {}",
        u(&v, "frames_completed"),
        u(&v, "frames_dropped"),
        saved.len(),
        u(&v, "decode_errors"),
    );
    assert_eq!(u(&c, "frames_sent"), 150);
    assert_eq!(u(&c, "frames_acked"), 150, "every frame gets a reply");
    assert_eq!(u(&c, "frames_timed_out"), 0);
    assert_eq!(u(&v, "frames_completed") + u(&v, "frames_dropped"), 150);
    assert!(
        u(&v, "frames_dropped") > 0,
        "2% loss should cost some frames"
    );
    assert_eq!(saved.len() as u64, u(&v, "frames_completed"));
    assert_eq!(u(&v, "decode_errors"), 0);
}

/// Sends `payload` to `port` and returns the reply.
fn ask(socket: &UdpSocket, port: u16, payload: &[u8]) -> Vec<u8> {
    socket.send_to(payload, ("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("the message port must answer");
    buf.truncate(n);
    buf
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "reply is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

#[test]
fn msg_port_prints_valid_json_lines_before_the_summary_and_refuses_the_rest() {
    let msg_port = free_udp_port();
    let msg_port_s = msg_port.to_string();
    let (mut viewer, _) = start_viewer(&["--msg-port", &msg_port_s]);
    assert!(viewer.wait_for_stderr("taking JSON messages on", PATIENCE));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = socket.local_addr().unwrap().to_string();

    assert_eq!(
        json(&ask(&socket, msg_port, b"[0,0,0,1]")),
        serde_json::json!({"ok": true})
    );
    let spaced = b" {\"b\": 1, \"a\": [true, null, \"x y\"]}\n";
    assert_eq!(json(&ask(&socket, msg_port, spaced))["ok"], true);
    for bad in [&b"[0,0"[..], b"", b"hello"] {
        let reply = json(&ask(&socket, msg_port, bad));
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    // Valid JSON, but 9 KiB: over the limit.
    let big = format!("\"{}\"", "x".repeat(9 * 1024));
    let reply = json(&ask(&socket, msg_port, big.as_bytes()));
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("8192"), "{reply}");

    viewer.signal(15);
    let (status, summary) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let lines: Vec<Value> = viewer
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "two messages and the summary: {lines:?}");
    assert_eq!(lines[2], summary);
    assert_eq!(lines[0]["type"], "msg");
    assert_eq!(lines[0]["from"], me.as_str());
    assert!(lines[0]["time_us"].as_u64().unwrap() > 1_600_000_000_000_000);
    assert_eq!(lines[0]["msg"], serde_json::json!([0, 0, 0, 1]));
    assert_eq!(
        lines[1]["msg"],
        serde_json::json!({"b": 1, "a": [true, null, "x y"]})
    );
}

#[test]
fn classic_msg_port_answers_like_the_original_server() {
    let msg_port = free_udp_port();
    let msg_port_s = msg_port.to_string();
    let (mut viewer, _) = start_viewer(&["--protocol", "classic", "--msg-port", &msg_port_s]);
    assert!(viewer.wait_for_stderr("taking JSON messages on", PATIENCE));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ask(&socket, msg_port, b"[0,0,0,1]"), b"get the msg");
    let reply = ask(&socket, msg_port, b"[0,0");
    assert!(
        reply.starts_with(b"error: "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // The port still works after bad input (the original's thread died here).
    assert_eq!(ask(&socket, msg_port, b"{\"a\":1}"), b"get the msg");
    viewer.signal(15);
    let (status, _) = viewer.summary(PATIENCE);
    assert!(status.success());
    let msgs = viewer
        .stdout_lines()
        .iter()
        .filter(|l| l.contains("\"type\":\"msg\""))
        .count();
    assert_eq!(msgs, 2);
}

fn send_msg(args: &[&str]) -> (bool, Option<Value>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(client_bin())
        .arg("--send-msg")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), line, stderr, took)
}

#[test]
fn send_msg_exit_codes_against_our_viewer_an_original_style_server_and_nothing() {
    let msg_port = free_udp_port();
    let msg_port_s = msg_port.to_string();
    let (_viewer, _) = start_viewer(&["--msg-port", &msg_port_s]);
    let ours = format!("127.0.0.1:{msg_port}");

    let (ok, line, stderr, _) = send_msg(&["[0,0,0,1]", &ours]);
    assert!(ok, "{stderr}");
    let line = line.unwrap();
    assert_eq!(line["type"], "reply");
    assert_eq!(line["reply"], serde_json::json!({"ok": true}));

    let (ok, line, stderr, _) = send_msg(&["[0,0", &ours]);
    assert!(!ok, "an error reply must fail");
    assert_eq!(line.unwrap()["reply"]["ok"], false);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{stderr}"
    );

    let server = start_python("classic_server.py", &["--max-seconds", "30"]);
    let ready = wait_for_line(&server, "ready", PATIENCE);
    let original = format!("127.0.0.1:{}", ready["msg_port"]);
    let (ok, line, stderr, _) = send_msg(&["[1,2]", &original]);
    assert!(ok, "a plain-text reply is a reply: {stderr}");
    assert_eq!(line.unwrap()["text"], "get the msg");

    let nobody = format!("127.0.0.1:{}", free_udp_port());
    let (ok, line, stderr, took) = send_msg(&["[0,0,0,1]", &nobody]);
    eprintln!("no listener: failed after {took:?}: {stderr}");
    assert!(!ok);
    assert!(line.is_none());
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(stderr.contains("no reply"), "{stderr}");
}
