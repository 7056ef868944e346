//! Keyed streaming end to end with the real binaries: what crosses the wire is private,
//! frames arrive exact, replays and forgeries are refused and counted, clients with the
//! wrong key or none fail on their own while the keyed stream goes on, the ChaCha20 fallback
//! works, and an unkeyed stream from another address is warned about once.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cam_proto::sim::Impairment;
use common::procs::{
    client_bin, count_files, saved_frames, sha256, start_client, start_viewer, u, write_jpegs,
    Proc, TempDir, PATIENCE,
};
use common::relay::Relay;

/// A new key file made the way a user makes one.
fn gen_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut p = Proc::start(&client_bin(), &["--gen-key", path.to_str().unwrap()]);
    let status = p.wait(PATIENCE).unwrap();
    assert!(status.success(), "--gen-key failed: {}", p.stderr());
    path
}

fn viewer_addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Byte sequences every JFIF file from `write_jpegs` carries in clear: start of image with
/// APP0, the JFIF tag, quantisation and Huffman table and start-of-scan segment headers.
/// Four bytes or more each, so random ciphertext matches one by chance with odds of about
/// 10⁻⁶ per datagram.
const JPEG_SIGNATURES: [&[u8]; 7] = [
    &[0xff, 0xd8, 0xff, 0xe0],
    b"JFIF\0",
    &[0xff, 0xdb, 0x00, 0x43],
    &[0xff, 0xc4, 0x00, 0x1f],
    &[0xff, 0xc4, 0x00, 0xb5],
    &[0xff, 0xc0, 0x00, 0x11],
    &[0xff, 0xda, 0x00, 0x0c],
];

fn jpeg_signatures_in(bytes: &[u8]) -> Vec<&'static [u8]> {
    JPEG_SIGNATURES
        .iter()
        .copied()
        .filter(|sig| bytes.windows(sig.len()).any(|w| w == *sig))
        .collect()
}

/// Streams `frames` JPEG files keyed through a recording relay to a keyed viewer that saves
/// them, and checks they arrived byte for byte.
struct KeyedRun {
    _dir: TempDir,
    src: TempDir,
    out: TempDir,
    key: PathBuf,
    sources: Vec<Vec<u8>>,
    viewer: Proc,
    port: u16,
    relay: Relay,
    /// The AEAD the client's summary names.
    aead: String,
}

impl KeyedRun {
    /// A keyed viewer that stops after `viewer_frames`, and a first keyed client that sends
    /// `frames` files through the relay.
    fn start(frames: u32, viewer_frames: u32) -> KeyedRun {
        let dir = TempDir::new("keyed");
        let key = gen_key(dir.path(), "camstream.key");
        let src = TempDir::new("keyed-src");
        let out = TempDir::new("keyed-out");
        let sources = write_jpegs(src.path(), 5, 320, 240);
        let (viewer, port) = start_viewer(&[
            "--frames",
            &viewer_frames.to_string(),
            "--save-frames",
            out.path().to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ]);
        let relay = Relay::start_recording(
            viewer_addr(port),
            Impairment::default(),
            Impairment::default(),
        );
        let run = KeyedRun {
            _dir: dir,
            src,
            out,
            key,
            sources,
            viewer,
            port,
            relay,
            aead: String::new(),
        };
        let mut client = run.client(run.relay.addr.port(), frames);
        let (status, c) = client.summary(PATIENCE);
        assert!(status.success(), "keyed client failed: {}", client.stderr());
        assert_eq!(c["keyed"], true, "{c}");
        assert_eq!(u(&c, "frames_acked"), u64::from(frames), "{c}");
        let aead = c["aead"].as_str().unwrap_or_default().to_string();
        assert!(
            ["aes-256-gcm", "chacha20-poly1305"].contains(&aead.as_str()),
            "{c}"
        );
        KeyedRun { aead, ..run }
    }

    fn client(&self, port: u16, frames: u32) -> Proc {
        start_client(
            port,
            &[
                "--source",
                self.src.path().to_str().unwrap(),
                "--fps",
                "0",
                "--frames",
                &frames.to_string(),
                "--key-file",
                self.key.to_str().unwrap(),
            ],
        )
    }

    /// A second genuine client straight to the viewer: its frames also arrive, which shows
    /// the viewer took in everything sent before them.
    fn finish_with_genuine_frames(mut self, frames: u32) -> (serde_json::Value, Vec<Vec<u8>>) {
        let mut client = self.client(self.port, frames);
        let (status, _) = client.summary(PATIENCE);
        assert!(status.success(), "{}", client.stderr());
        let (status, v) = self.viewer.summary(PATIENCE);
        assert!(status.success(), "{}", self.viewer.stderr());
        let saved = saved_frames(self.out.path());
        for (i, frame) in saved.iter().enumerate() {
            assert!(
                self.sources.iter().any(|s| sha256(s) == sha256(frame)),
                "saved frame {} is none of the source files",
                i + 1
            );
        }
        (v, saved)
    }
}

#[test]
fn gen_key_writes_a_private_key_once() {
    let dir = TempDir::new("genkey");
    let path = gen_key(dir.path(), "k");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut again = Proc::start(&client_bin(), &["--gen-key", path.to_str().unwrap()]);
    assert!(!again.wait(PATIENCE).unwrap().success());
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Short passphrases and empty files are one clear line each.
    for (content, needle) in [("", "is empty"), ("too short\n", "at least 12")] {
        let bad = dir.path().join("bad");
        std::fs::write(&bad, content).unwrap();
        let mut p = Proc::start(
            &client_bin(),
            &[
                "127.0.0.1:9",
                "--source",
                "pattern",
                "--key-file",
                bad.to_str().unwrap(),
            ],
        );
        assert!(!p.wait(PATIENCE).unwrap().success());
        let err = p.stderr();
        assert!(err.contains(needle) && err.contains("key file"), "{err}");
    }
}

#[test]
fn keyed_stream_is_private_on_the_wire_and_exact_on_arrival() {
    let started = Instant::now();
    let run = KeyedRun::start(15, 15);
    let captured = run.relay.captured();
    let (mut viewer, out, sources) = (run.viewer, run.out, run.sources);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(v["keyed"], true, "{v}");
    assert_eq!(v["aead"], run.aead.as_str(), "both ends name the same AEAD");
    assert_eq!(u(&v, "frames_saved"), 15);
    assert_eq!(u(&v, "datagrams_invalid"), 0, "{v}");
    let saved = saved_frames(out.path());
    assert_eq!(saved.len(), 15);
    for (i, frame) in saved.iter().enumerate() {
        assert_eq!(
            sha256(frame),
            sha256(&sources[i % sources.len()]),
            "saved frame {} differs from source file {}",
            i + 1,
            i % sources.len()
        );
    }

    // The detector finds what it looks for in clear JPEG bytes...
    for s in &sources {
        assert!(jpeg_signatures_in(s).len() >= 4, "test images lack markers");
    }
    // ...and nothing of it, nor any 16 bytes of the files, in what crossed the wire.
    let runs: HashSet<&[u8]> = sources.iter().flat_map(|s| s.windows(16)).collect();
    let to_viewer = captured.iter().filter(|c| c.to_viewer).count();
    assert!(to_viewer > 15 * 10, "only {to_viewer} datagrams captured");
    for (i, c) in captured.iter().enumerate() {
        let found = jpeg_signatures_in(&c.bytes);
        assert!(
            found.is_empty(),
            "datagram {i} shows JPEG bytes {found:02x?}"
        );
        assert!(
            !c.bytes.windows(16).any(|w| runs.contains(w)),
            "datagram {i} carries 16 bytes of a source file"
        );
    }
    eprintln!(
        "{} datagrams captured, none with a JPEG marker or source bytes; {:?}",
        captured.len(),
        started.elapsed()
    );
}

/// Captured datagrams sent again from the client's address (an attacker on the path), inside
/// the replay window, cannot be told from the network's duplicates: dropped and counted as
/// duplicates, with no replay warning, and nothing extra is shown. (Replays below the window
/// are refused as such: cam-proto's `tests/keyed.rs`.)
#[test]
fn replayed_datagrams_are_dropped_and_counted() {
    let run = KeyedRun::start(10, 15);
    let replays: Vec<Vec<u8>> = run
        .relay
        .captured()
        .into_iter()
        .filter(|c| c.to_viewer)
        .map(|c| c.bytes)
        .collect();
    // Twice over, from the client's own address.
    for d in replays.iter().chain(&replays) {
        run.relay.inject_to_viewer(d);
    }
    // Copies do not keep the stream alive: it is reported stalled (after 1 s, beyond the
    // 500 ms after which another stream may be served), and the second client is then
    // served from its first datagram.
    assert!(
        run.viewer.wait_for_stderr("stalled", PATIENCE),
        "{}",
        run.viewer.stderr()
    );
    let stderr = run.viewer.stderr();
    let (v, saved) = run.finish_with_genuine_frames(5);
    eprintln!("replayed {} datagrams twice; viewer {v}", replays.len());
    // All but the HELLO (answered again, identically) are sealed duplicates.
    assert!(u(&v, "datagrams_duplicate") >= replays.len() as u64, "{v}");
    assert_eq!(u(&v, "datagrams_replayed"), 0, "{v}");
    assert!(!stderr.contains("; replayed:"), "{stderr}");
    // Nothing extra was shown or saved: 10 frames, then the second client's 5.
    assert_eq!(u(&v, "frames_saved"), 15, "{v}");
    assert_eq!(saved.len(), 15);
}

#[test]
fn a_flood_of_mutated_sealed_datagrams_puts_nothing_on_screen() {
    let run = KeyedRun::start(10, 20);
    let genuine: Vec<Vec<u8>> = run
        .relay
        .captured()
        .into_iter()
        .filter(|c| c.to_viewer)
        .map(|c| c.bytes)
        .collect();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut flood = 0u64;
    for round in 0..5 {
        for d in &genuine {
            let mut m = d.clone();
            let r = next();
            match r % 4 {
                0 => {
                    let at = (r >> 8) as usize % m.len();
                    m[at] ^= 1 << ((r >> 40) % 8);
                }
                // A fresh packet number, as a forger would pick to dodge the replay window.
                1 => m[12..20].copy_from_slice(&(1_000_000 + r % 1_000_000).to_be_bytes()),
                2 => m.truncate((r >> 8) as usize % m.len()),
                _ => {
                    let tail = genuine[(r >> 8) as usize % genuine.len()].clone();
                    m.truncate(m.len() / 2);
                    m.extend_from_slice(&tail[tail.len() / 2..]);
                }
            }
            if round % 2 == 0 {
                run.relay.inject_to_viewer(&m);
            } else {
                let _ = attacker.send_to(&m, viewer_addr(run.port));
            }
            flood += 1;
            if flood % 200 == 0 {
                // Loopback has no queue to speak of: leave the viewer time to read.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    assert!(
        run.viewer
            .wait_for_stderr("unauthenticated: a client without this key", PATIENCE),
        "{}",
        run.viewer.stderr()
    );
    let (v, saved) = run.finish_with_genuine_frames(10);
    eprintln!("flooded {flood} mutated datagrams; viewer {v}");
    assert_eq!(u(&v, "frames_saved"), 20, "{v}");
    assert_eq!(saved.len(), 20);
    assert!(u(&v, "datagrams_invalid") > flood / 2, "{v}");
    assert_eq!(u(&v, "decode_errors"), 0, "{v}");
}

#[test]
fn wrong_key_and_no_key_clients_fail_on_their_own_while_the_keyed_stream_goes_on() {
    let dir = TempDir::new("keys");
    let key = gen_key(dir.path(), "right");
    let wrong = gen_key(dir.path(), "wrong");
    let out = TempDir::new("keyed-undisturbed");
    let (mut viewer, port) = start_viewer(&[
        "--frames",
        "45",
        "--save-frames",
        out.path().to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let pattern = ["--source", "pattern", "--size", "320x240"];
    let mut genuine = start_client(
        port,
        &[
            &pattern[..],
            &[
                "--fps",
                "15",
                "--frames",
                "45",
                "--key-file",
                key.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let started = Instant::now();
    let mut wrong_key = start_client(
        port,
        &[
            &pattern[..],
            &[
                "--fps",
                "15",
                "--give-up",
                "2",
                "--key-file",
                wrong.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let mut no_key = start_client(
        port,
        &[&pattern[..], &["--fps", "15", "--give-up", "2"]].concat(),
    );
    for (name, p) in [("wrong key", &mut wrong_key), ("no key", &mut no_key)] {
        let status = p.wait(PATIENCE).expect("the client never gave up");
        let took = started.elapsed();
        let err = p.stderr();
        eprintln!("{name}: exit {status} after {took:?}");
        assert!(!status.success(), "{name} succeeded: {err}");
        assert!(
            err.contains("a key on one side only or different keys"),
            "{name}: {err}"
        );
        assert!(took < Duration::from_secs(15), "{name} took {took:?}");
    }
    let (status, c) = genuine.summary(PATIENCE);
    assert!(status.success(), "{}", genuine.stderr());
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    eprintln!("genuine client {c}\nviewer {v}");
    assert_eq!(u(&c, "frames_acked"), 45, "{c}");
    assert_eq!(u(&v, "frames_saved"), 45, "{v}");
    assert_eq!(
        u(&v, "streams_started"),
        1,
        "another client took the viewer: {v}"
    );
    assert!(u(&v, "datagrams_unauthenticated") > 0, "{v}");
    assert_eq!(count_files(out.path()), 45);
}

#[test]
fn the_chacha_fallback_streams_and_ciphers_in_common_are_required() {
    let dir = TempDir::new("aead");
    let key = gen_key(dir.path(), "camstream.key");
    let key = key.to_str().unwrap();
    let pattern = ["--source", "pattern", "--size", "320x240", "--fps", "0"];
    // A client that offers only ChaCha20-Poly1305, as one without AES instructions does.
    let (mut viewer, port) = start_viewer(&["--frames", "10", "--key-file", key]);
    let mut client = start_client(
        port,
        &[
            &pattern[..],
            &["--frames", "10", "--key-file", key],
            &["--aead", "chacha20-poly1305"],
        ]
        .concat(),
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "{}", client.stderr());
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "{}", viewer.stderr());
    assert_eq!(c["aead"], "chacha20-poly1305", "{c}");
    assert_eq!(v["aead"], "chacha20-poly1305", "{v}");
    assert_eq!(u(&v, "frames_completed"), 10, "{v}");
    assert_eq!(u(&v, "datagrams_invalid"), 0, "{v}");
    assert!(
        viewer.stderr().contains("encrypted (chacha20-poly1305)"),
        "{}",
        viewer.stderr()
    );

    // Nothing in common: both sides say so, and the client gives up on its own.
    let (mut viewer, port) = start_viewer(&["--key-file", key, "--aead", "chacha20-poly1305"]);
    let mut client = start_client(
        port,
        &[
            &pattern[..],
            &["--give-up", "2", "--key-file", key, "--aead", "aes-256-gcm"],
        ]
        .concat(),
    );
    let status = client.wait(PATIENCE).expect("the client never gave up");
    assert!(!status.success());
    assert!(
        client.stderr().contains("leave --aead at auto"),
        "{}",
        client.stderr()
    );
    assert!(
        viewer.wait_for_stderr("--aead differs", PATIENCE),
        "{}",
        viewer.stderr()
    );
    viewer.signal(libc::SIGINT);
    let (_, v) = viewer.summary(PATIENCE);
    assert_eq!(u(&v, "frames_completed"), 0, "{v}");
    assert_eq!(v["aead"], serde_json::Value::Null, "{v}");

    // --aead alone would look like encryption without being any: refused.
    let mut alone = Proc::start(&client_bin(), &["127.0.0.1:9", "--aead", "auto"]);
    let status = alone.wait(PATIENCE).expect("exits at once");
    assert!(!status.success());
    assert!(
        alone.stderr().contains("needs --key-file"),
        "{}",
        alone.stderr()
    );
}

/// This machine's own address on a non-loopback interface: datagrams sent to it still stay
/// on this machine, but arrive from an address that is not loopback, as from another host.
fn own_non_loopback_ipv4() -> std::net::Ipv4Addr {
    use std::net::{IpAddr, Ipv4Addr};
    // Connecting a UDP socket sends nothing; it only picks the source address of a route.
    let by_route = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("203.0.113.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .ok()
        .and_then(|a| match a.ip() {
            IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
            _ => None,
        });
    by_route
        .or_else(|| {
            let out = std::process::Command::new("hostname")
                .arg("-I")
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|w| w.parse::<Ipv4Addr>().ok())
                .find(|ip| !ip.is_loopback())
        })
        .expect("this test needs a non-loopback IPv4 address on this machine (none found)")
}

#[test]
fn an_unkeyed_stream_from_another_address_is_warned_about_once_and_a_keyed_one_not() {
    let ip = own_non_loopback_ipv4();
    let warning = "is unauthenticated and unencrypted";
    let dir = TempDir::new("remote-warn");
    let key = gen_key(dir.path(), "camstream.key");
    let key = key.to_str().unwrap();
    for keyed in [false, true] {
        let key_args: &[&str] = if keyed { &["--key-file", key] } else { &[] };
        let (mut viewer, port) =
            start_viewer(&[&["--bind", "0.0.0.0", "--frames", "20"], key_args].concat());
        let target = format!("{ip}:{port}");
        let mut client = Proc::start(
            &client_bin(),
            &[
                &[target.as_str(), "--source", "pattern", "--size", "320x240"][..],
                &["--fps", "0", "--frames", "20"],
                key_args,
            ]
            .concat(),
        );
        let (status, _) = client.summary(PATIENCE);
        assert!(status.success(), "{}", client.stderr());
        let (status, v) = viewer.summary(PATIENCE);
        assert!(status.success(), "{}", viewer.stderr());
        assert_eq!(u(&v, "frames_completed"), 20, "{v}");
        let err = viewer.stderr();
        assert!(err.contains(&format!("from {ip}:")), "{err}");
        let warned = err.matches(warning).count();
        if keyed {
            assert_eq!(warned, 0, "a keyed stream is authenticated: {err}");
        } else {
            assert_eq!(warned, 1, "once per run: {err}");
            assert!(err.contains("WARN"), "{err}");
        }
    }
    // From loopback, no warning either (the localhost demo stays quiet).
    let (mut viewer, port) = start_viewer(&["--frames", "5"]);
    let mut client = start_client(
        port,
        &[
            "--source", "pattern", "--size", "320x240", "--fps", "0", "--frames", "5",
        ],
    );
    assert!(client.summary(PATIENCE).0.success(), "{}", client.stderr());
    assert!(viewer.summary(PATIENCE).0.success(), "{}", viewer.stderr());
    assert!(!viewer.stderr().contains(warning), "{}", viewer.stderr());
}
