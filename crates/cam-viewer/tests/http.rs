//! `cam-viewer --http` end to end with the real binaries: several cameras in `/state` and the
//! summary, `/snapshot` byte for byte through curl, `/stream` framing, tokens, hostile
//! connections, and the real nginx relaying `/stream`.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{start_client, u, wait_until, write_jpegs, Proc, TempDir, PATIENCE};
use common::web::{closed_within, free_tcp_port, get, start_http_viewer, PartReader};

/// Waits until `/state` lists `n` streams with frames; returns it.
fn wait_streams(http: std::net::SocketAddr, n: usize, extra: &[&str]) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = wait_until(PATIENCE, || {
        last = get(http, "/state", extra).json();
        last["streams"]
            .as_array()
            .is_some_and(|s| s.len() == n && s.iter().all(|s| s["frames"].as_u64() > Some(2)))
    });
    assert!(ok, "not {n} streams with frames: {last}");
    last
}

#[test]
fn two_cameras_each_in_state_in_the_summary_and_in_its_own_folder() {
    let out = TempDir::new("http-two");
    let rec_dir = TempDir::new("http-two-rec");
    let rec = rec_dir.path().join("both.avi");
    let (mut viewer, port, http) = start_http_viewer(&[
        "--save-frames",
        out.path().to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    let mut a = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--size",
            "320x240",
            "--fps",
            "20",
            "--duration",
            "30",
        ],
    );
    let mut b = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--duration",
            "30",
        ],
    );
    let state = wait_streams(http, 2, &[]);
    eprintln!("{state}");
    let mut sizes: Vec<(u64, u64)> = state["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [(160, 120), (320, 240)]);
    for s in state["streams"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let snap = get(http, &format!("/snapshot/{id}"), &[]);
        assert_eq!(snap.status, 200);
        assert_eq!(snap.header("content-type").as_deref(), Some("image/jpeg"));
        assert!(snap.body.starts_with(&[0xff, 0xd8]));
        assert!(s["fps"].as_f64().unwrap() > 1.0, "{s}");
        assert!(
            s["sender"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{s}"
        );
        assert!(s["name"].is_null());
    }
    a.signal(2);
    b.signal(2);
    a.summary(PATIENCE);
    b.summary(PATIENCE);
    viewer.signal(2);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{v}");
    let frames: u64 = streams.iter().map(|s| s["frames"].as_u64().unwrap()).sum();
    assert_eq!(frames, u(&v, "frames_completed"), "totals are the sum: {v}");
    assert_eq!(u(&v, "streams_started"), 2);
    assert_eq!(u(&v, "datagrams_invalid"), 0, "{v}");
    // The first stream saves into the folder itself, the second into a folder of its own.
    let second = streams
        .iter()
        .map(|s| {
            out.path()
                .join(format!("stream-{}", s["id"].as_str().unwrap()))
        })
        .find(|p| p.is_dir())
        .expect("a folder for the second stream");
    let in_second = std::fs::read_dir(&second).unwrap().count() as u64;
    let in_first = std::fs::read_dir(out.path()).unwrap().count() as u64 - 1;
    assert_eq!(in_first + in_second, u(&v, "frames_saved"), "{v}");
    assert!(in_first > 0 && in_second > 0);
    // And each records to a file of its own.
    let mut recordings: Vec<String> = std::fs::read_dir(rec_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    recordings.sort();
    assert_eq!(recordings.len(), 2, "{recordings:?}");
    assert_eq!(
        recordings[0],
        "both-stream-".to_owned() + &recordings[0][12..]
    );
    assert_eq!(recordings[1], "both.avi");
    assert_eq!(
        u(&v, "frames_recorded") + u(&v, "frames_unrecorded"),
        u(&v, "frames_completed"),
        "{v}"
    );
}

#[test]
fn curl_gets_the_snapshot_byte_for_byte() {
    let src = TempDir::new("http-snap-src");
    let sent = write_jpegs(src.path(), 1, 320, 240).remove(0);
    let file = src.path().join("img-000.jpg");
    let (_viewer, port, http) = start_http_viewer(&[]);
    let _client = start_client(
        port,
        &[
            "--source",
            file.to_str().unwrap(),
            "--fps",
            "10",
            "--duration",
            "30",
        ],
    );
    wait_streams(http, 1, &[]);
    let got = TempDir::new("http-snap-got");
    for path in ["/snapshot".to_owned(), {
        let id = get(http, "/state", &[]).json()["streams"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        format!("/snapshot/{id}")
    }] {
        let dest = got.path().join("snap.jpg");
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-o",
                dest.to_str().unwrap(),
                "-w",
                "%{content_type}",
            ])
            .arg(format!("http://{http}{path}"))
            .output()
            .expect("curl (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "image/jpeg");
        let bytes = std::fs::read(&dest).unwrap();
        assert!(
            bytes == sent,
            "{path}: {} bytes, sent {}",
            bytes.len(),
            sent.len()
        );
    }
    assert_eq!(get(http, "/snapshot/ffffffff", &[]).status, 404);
}

#[test]
fn stream_parts_are_the_exact_bytes_each_closed_by_the_next_boundary() {
    let src = TempDir::new("http-stream-src");
    let sent = write_jpegs(src.path(), 3, 160, 120);
    let (_viewer, port, http) = start_http_viewer(&[]);
    let _client = start_client(
        port,
        &[
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "30",
            "--duration",
            "30",
        ],
    );
    wait_streams(http, 1, &[]);
    let mut reader = PartReader::open(http, "/stream", &[]);
    let head = reader.head.to_ascii_lowercase();
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    let started = Instant::now();
    for _ in 0..20 {
        let part = reader.next_part();
        assert!(
            sent.contains(&part),
            "a part of {} bytes that was never sent",
            part.len()
        );
    }
    eprintln!("20 parts in {:?}", started.elapsed());
    // The parts follow the stream, not a backlog: 20 parts at 30 fps take about 0.7 s.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_token_is_needed_when_one_is_configured() {
    let dir = TempDir::new("http-token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "0123456789abcdef0123\n").unwrap();
    let (_viewer, port, http) =
        start_http_viewer(&["--http-token-file", token_file.to_str().unwrap()]);
    let _client = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--duration",
            "30",
        ],
    );
    let bearer = "Authorization: Bearer 0123456789abcdef0123";
    wait_streams(http, 1, &[bearer]);
    for path in ["/", "/state", "/snapshot", "/stream"] {
        let r = get(http, path, &[]);
        assert_eq!(r.status, 401, "{path} without a token");
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
        assert_eq!(
            get(http, path, &["Authorization: Bearer 0123456789abcdef0124"]).status,
            401
        );
        assert_eq!(
            get(http, &format!("{path}?token=0123456789abcdef012"), &[]).status,
            401
        );
    }
    assert_eq!(get(http, "/", &[bearer]).status, 200);
    assert_eq!(
        get(http, "/snapshot?token=0123456789abcdef0123", &[]).status,
        200
    );
    PartReader::open(http, "/stream?token=0123456789abcdef0123", &[]).next_part();
}

#[test]
fn a_short_token_or_a_token_without_http_is_refused_at_start() {
    let dir = TempDir::new("http-token-bad");
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let mut p = Proc::start(
        &common::procs::viewer_bin(),
        &[
            "--headless",
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            short.to_str().unwrap(),
        ],
    );
    let status = p.wait(PATIENCE).unwrap();
    assert!(!status.success());
    assert!(
        p.stderr().contains("at least 16 characters"),
        "{}",
        p.stderr()
    );
    let mut p = Proc::start(
        &common::procs::viewer_bin(),
        &["--headless", "--http-token-file", short.to_str().unwrap()],
    );
    assert!(!p.wait(PATIENCE).unwrap().success());
}

#[test]
fn hostile_connections_time_out_or_are_refused_and_serving_goes_on() {
    let (viewer, port, http) = start_http_viewer(&[]);
    let _client = start_client(
        port,
        &[
            "--source",
            "pattern",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--duration",
            "60",
        ],
    );
    wait_streams(http, 1, &[]);
    let started = Instant::now();
    // Idle sockets: connected, never a byte.
    let mut idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(http).unwrap()).collect();
    // Slowloris: a header a byte at a time.
    let mut slow = TcpStream::connect(http).unwrap();
    let loris = std::thread::spawn(move || {
        let req = b"GET /state HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in req.iter() {
            if slow.write_all(&[*b]).is_err() {
                return Instant::now();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Instant::now()
    });
    // Garbage, a 1 MB header, traversal, other methods.
    let garbage = {
        let mut s = TcpStream::connect(http).unwrap();
        s.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = std::io::Read::read_to_end(&mut s, &mut all);
        String::from_utf8_lossy(&all).into_owned()
    };
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    let big = {
        let mut s = TcpStream::connect(http).unwrap();
        let mut req = b"GET /state HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 1 << 20));
        req.extend_from_slice(b"\r\n\r\n");
        let _ = s.write_all(&req);
        let mut all = Vec::new();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = std::io::Read::read_to_end(&mut s, &mut all);
        String::from_utf8_lossy(&all).into_owned()
    };
    assert!(big.is_empty() || big.starts_with("HTTP/1.1 431"), "{big}");
    for path in [
        "/../../etc/passwd",
        "/snapshot/../../../etc/passwd",
        "/stream/..%2f..%2fetc%2fpasswd",
        "/%00",
        "/state/x",
    ] {
        let r = get(http, path, &[]);
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"));
    }
    {
        let mut s = TcpStream::connect(http).unwrap();
        s.write_all(
            b"POST /state HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut all).unwrap();
        assert!(
            all.starts_with(b"HTTP/1.1 405"),
            "{}",
            String::from_utf8_lossy(&all)
        );
    }
    // Still serving, with every hostile socket open.
    assert_eq!(get(http, "/snapshot", &[]).status, 200);
    PartReader::open(http, "/stream", &[]).next_part();
    // The slow header and the idle sockets (no request head within the header timeout
    // either) are cut off after 5 s.
    let cut = loris.join().unwrap().duration_since(started);
    eprintln!("slowloris cut after {cut:?}");
    assert!(cut < Duration::from_secs(10), "slowloris lasted {cut:?}");
    let mut closed = 0;
    for s in &mut idle {
        if closed_within(s, Duration::from_secs(25).saturating_sub(started.elapsed())) {
            closed += 1;
        }
    }
    eprintln!(
        "{closed} of 50 idle sockets closed after {:?}",
        started.elapsed()
    );
    assert_eq!(closed, 50);
    assert_eq!(get(http, "/snapshot", &[]).status, 200);
    drop(viewer);
}

/// nginx (Debian's package) in front of the viewer, run as the README's recipe says.
struct Nginx {
    proc: Proc,
    _dir: TempDir,
    port: u16,
}

fn start_nginx(upstream: std::net::SocketAddr) -> Nginx {
    let dir = TempDir::new("nginx");
    let port = free_tcp_port();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream camviewer {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location /cam/ {{
            proxy_pass http://camviewer/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|p| Command::new(p).arg("-v").output().is_ok())
        .expect("nginx (scripts/setup.sh installs nginx-light)");
    let proc = Proc::start(
        std::path::Path::new(nginx),
        &[
            "-c",
            conf_path.to_str().unwrap(),
            "-p",
            dir.path().to_str().unwrap(),
            "-e",
            &format!("{d}/error.log"),
        ],
    );
    assert!(
        wait_until(PATIENCE, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "nginx did not listen: {}",
        proc.stderr()
    );
    Nginx {
        proc,
        _dir: dir,
        port,
    }
}

#[test]
fn nginx_relays_the_stream_part_by_part() {
    let src = TempDir::new("nginx-src");
    let sent = write_jpegs(src.path(), 3, 320, 240);
    let (_viewer, port, http) = start_http_viewer(&[]);
    let _client = start_client(
        port,
        &[
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "30",
            "--duration",
            "60",
        ],
    );
    wait_streams(http, 1, &[]);
    let nginx = start_nginx(http);
    let front: std::net::SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let page = get(front, "/cam/", &[]);
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("cam-viewer"));
    let state = get(front, "/cam/state", &[]).json();
    let id = state["streams"][0]["id"].as_str().unwrap().to_owned();
    let snap = get(front, &format!("/cam/snapshot/{id}"), &[]);
    assert!(sent.contains(&snap.body), "snapshot through nginx differs");
    let mut readers: Vec<PartReader> = (0..5)
        .map(|_| PartReader::open(front, &format!("/cam/stream/{id}"), &[]))
        .collect();
    let started = Instant::now();
    for _ in 0..30 {
        for r in &mut readers {
            let part = r.next_part();
            assert!(
                sent.contains(&part),
                "a part of {} bytes never sent",
                part.len()
            );
        }
    }
    let took = started.elapsed();
    eprintln!(
        "5 readers through nginx, 30 parts each in {took:?} (pid {})",
        nginx.proc.pid()
    );
    // 30 frames at 30 fps: about a second when nginx passes parts on without buffering.
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn a_wide_address_without_a_token_is_warned_about_and_a_busy_port_named() {
    let port = free_tcp_port();
    let addr = format!("0.0.0.0:{port}");
    let (viewer, _) = common::procs::start_viewer(&["--http", &addr]);
    assert!(
        viewer.wait_for_stderr("without --http-token-file", PATIENCE),
        "{}",
        viewer.stderr()
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let mut p = Proc::start(
        &common::procs::viewer_bin(),
        &["--headless", "--port", "0", "--http", &busy_addr],
    );
    assert!(!p.wait(PATIENCE).unwrap().success());
    assert!(
        p.stderr()
            .contains(&format!("cannot listen for --http on {busy_addr}")),
        "{}",
        p.stderr()
    );
}
