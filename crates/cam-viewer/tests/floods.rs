//! Log floods (issue 16, "Bounded logs"): whatever arrives, stderr grows by a bounded number of
//! lines. Each test floods a real viewer from a small UDP sender in the test, then stops it and
//! measures its stderr in bytes. Before the limit, the same floods made 387,000 "switched to
//! stream" lines a minute, 73 MB in 15 s from 200 classic ports, 158 MB in 10 s at the message
//! port.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use cam_proto::wire::{Body, Codec, CommonRepr, Datagram, HeaderRepr, Kind};
use common::procs::{free_udp_port, start_viewer, u, Proc, PATIENCE};

/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(2);
/// What a bounded log may reach in the few seconds of a test: a few dozen lines.
const STDERR_BOUND: usize = 16 * 1024;

/// Sends `next(i)` for i = 0, 1, … from the sockets in turn for [`FLOOD`]; returns how many.
fn flood(sockets: &[UdpSocket], to: &str, mut next: impl FnMut(u64) -> Vec<u8>) -> u64 {
    let end = Instant::now() + FLOOD;
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..256 {
            let socket = &sockets[(sent % sockets.len() as u64) as usize];
            // A full socket buffer is fine: the point is to keep the viewer busy.
            let _ = socket.send_to(&next(sent), to);
            sent += 1;
        }
    }
    sent
}

fn sockets(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// Stops the viewer and returns its summary and its stderr, after checking both.
fn stop(mut viewer: Proc, what: &str, sent: u64) -> (serde_json::Value, String) {
    viewer.signal(15);
    let (status, summary) = viewer.summary(PATIENCE);
    let stderr = viewer.stderr();
    eprintln!(
        "{what}: {sent} datagrams in {FLOOD:?}, stderr {} bytes in {} lines",
        stderr.len(),
        stderr.lines().count()
    );
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.len() < STDERR_BOUND,
        "{what}: {} bytes of stderr:\n{}",
        stderr.len(),
        &stderr[..stderr.len().min(4000)]
    );
    (summary, stderr)
}

#[test]
fn a_new_stream_id_on_every_datagram_logs_a_bounded_number_of_lines() {
    let (viewer, port) = start_viewer(&[]);
    let to = format!("127.0.0.1:{port}");
    let socks = sockets(1);
    let sent = flood(&socks, &to, |i| {
        let mut buf = Vec::new();
        Datagram {
            common: CommonRepr {
                kind: Kind::Header,
                stream_id: 0x1000_0000 ^ i as u32,
                packet_number: 0,
                frame_seq: 0,
            },
            body: Body::Header(HeaderRepr {
                total_len: 4000,
                chunk_size: 1200,
                codec: Codec::Jpeg,
                width: 320,
                height: 240,
                capture_ts_us: 0,
                crc32: 0,
            }),
        }
        .emit(&mut buf);
        buf
    });
    let (summary, stderr) = stop(viewer, "new stream ids", sent);
    let streams = u(&summary, "streams_started");
    eprintln!("streams started: {streams}");
    if streams > 20 {
        // The flood did switch streams (a later change may refuse most switches outright):
        // the lines left out are counted.
        assert!(stderr.contains("were not logged"), "{stderr}");
    }
}

#[test]
fn classic_senders_from_200_rotating_ports_log_a_bounded_number_of_lines() {
    let (viewer, port) = start_viewer(&["--protocol", "classic"]);
    let to = format!("127.0.0.1:{port}");
    let socks = sockets(200);
    // A classic length header (8 bytes, little-endian) for a 5,000-byte image, never sent.
    let sent = flood(&socks, &to, |_| 5000u64.to_le_bytes().to_vec());
    let (_, stderr) = stop(viewer, "classic ports", sent);
    let shown = stderr.matches("receiving classic images from").count();
    assert!(shown <= 10, "{shown} sender lines");
    assert!(stderr.contains("were not logged"), "{stderr}");
}

#[test]
fn one_byte_messages_at_the_message_port_log_a_bounded_number_of_lines() {
    let msg_port = free_udp_port();
    let msg_port_s = msg_port.to_string();
    let (viewer, _) = start_viewer(&["--msg-port", &msg_port_s]);
    assert!(
        viewer.wait_for_stderr("taking JSON messages on", PATIENCE),
        "{}",
        viewer.stderr()
    );
    let to = format!("127.0.0.1:{msg_port}");
    let socks = sockets(1);
    let sent = flood(&socks, &to, |i| vec![b"{[x"[(i % 3) as usize]]);
    let (_, stderr) = stop(viewer, "one-byte messages", sent);
    let shown = stderr.matches("refused a message").count();
    assert!(shown <= 10, "{shown} refusal lines");
    assert!(stderr.contains("were not logged"), "{stderr}");
    // Every message was still counted.
    // The viewer's last word on the port: "message port: 0 messages, 123456 refused".
    let counted: u64 = stderr
        .lines()
        .filter_map(|l| l.split(" messages, ").nth(1))
        .filter_map(|rest| rest.strip_suffix(" refused"))
        .filter_map(|n| n.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no final count: {stderr}"));
    eprintln!("messages refused and counted: {counted}");
    assert!(counted > 100, "{counted}");
}
