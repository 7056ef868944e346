//! `--protocol rtp` end to end with the real binaries and real peers: GStreamer's
//! `rtpjpegpay`/`rtpjpegdepay` and ffmpeg's RTP muxer and demuxer, both ways; camstream to
//! camstream through loss; and the one line a viewer says when it hears another protocol.
//!
//! Frames are compared by decoded pixels (libjpeg-turbo through the `turbojpeg` crate) against
//! source JPEGs that neither camstream nor the peer under test wrote: ffmpeg's encoder makes
//! them for the GStreamer tests, GStreamer's `jpegenc` for the ffmpeg tests. RTP/JPEG carries
//! the entropy-coded scan and the quantisation tables unchanged and both ends use the standard
//! Huffman tables, so the same decoder must give the same pixels: equality is exact.

#![allow(clippy::unwrap_used)] // a test may panic on what it set up itself

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{
    client_bin, count_files, free_udp_port, saved_frames, start_client, start_viewer, u,
    wait_until, Proc, TempDir, PATIENCE,
};

/// Decoded RGB pixels and the size.
type Pixels = (usize, usize, Vec<u8>);

fn decode(jpeg: &[u8]) -> Pixels {
    let image = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGB)
        .unwrap_or_else(|e| panic!("cannot decode a {} byte JPEG: {e}", jpeg.len()));
    (image.width, image.height, image.pixels)
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `count` JPEGs from ffmpeg's encoder (a moving test card, 4:2:0, the standard Huffman
/// tables: ffmpeg optimises them unless told not to, and RTP/JPEG cannot carry those).
fn ffmpeg_jpegs(dir: &Path, count: usize) -> Vec<Vec<u8>> {
    run_ok(Command::new("ffmpeg").args([
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-frames:v",
        &count.to_string(),
        "-pix_fmt",
        "yuvj420p",
        "-q:v",
        "3",
        "-huffman",
        "default",
        dir.join("src-%03d.jpg").to_str().unwrap(),
    ]));
    read_sorted(dir)
}

/// `count` JPEGs from GStreamer's `jpegenc` (a moving SMPTE card, 4:2:0).
fn gstreamer_jpegs(dir: &Path, count: usize) -> Vec<Vec<u8>> {
    run_ok(Command::new("gst-launch-1.0").args([
        "-q",
        "videotestsrc",
        &format!("num-buffers={count}"),
        "pattern=smpte",
        "horizontal-speed=8",
        "!",
        "video/x-raw,format=I420,width=320,height=240,framerate=30/1",
        "!",
        "jpegenc",
        "!",
        "multifilesink",
        &format!("location={}", dir.join("src-%03d.jpg").display()),
    ]));
    read_sorted(dir)
}

fn read_sorted(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Checks that every received frame decodes to exactly the pixels of a source, in the order
/// the sources were sent (cycled in name order), and returns how many there were. A frame
/// out of order or repeated would need more stream positions than `sent`.
fn assert_pixels_match(
    what: &str,
    received: &[Vec<u8>],
    sources: &[Vec<u8>],
    sent: usize,
) -> usize {
    let sources: Vec<Pixels> = sources.iter().map(|s| decode(s)).collect();
    // The sources must differ from each other, or order and identity prove nothing.
    for (i, a) in sources.iter().enumerate() {
        assert!(
            sources[i + 1..].iter().all(|b| b != a),
            "{what}: source {i} decodes like another"
        );
    }
    let n = sources.len();
    let mut next = 0usize;
    for (i, frame) in received.iter().enumerate() {
        let pixels = decode(frame);
        let source = sources
            .iter()
            .position(|s| *s == pixels)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: received frame {} ({} bytes, {}x{}) decodes to pixels of no source",
                    i + 1,
                    frame.len(),
                    pixels.0,
                    pixels.1
                )
            });
        let pos = next + (source + n - next % n) % n;
        assert!(
            pos < sent,
            "{what}: {} frames need stream positions up to {pos}, but {sent} were sent: \
             reordered or repeated",
            received.len()
        );
        next = pos + 1;
    }
    received.len()
}

/// Whether anything has a UDP socket bound to `port` (IPv4 or IPv6), from /proc: a peer that
/// prints nothing when it listens is awaited this way.
fn udp_port_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|local| local.ends_with(&suffix))
        })
    })
}

fn start_peer(program: &str, args: &[&str]) -> Proc {
    Proc::start_with(Command::new(program).args(args))
}

/// Stops a peer by its PID with SIGINT (GStreamer with -e and ffmpeg finish their files on
/// it), then SIGKILL if it lingers.
fn stop_peer(peer: &mut Proc) {
    peer.signal(2);
    if peer.wait(Duration::from_secs(10)).is_none() {
        peer.signal(9);
        peer.wait(Duration::from_secs(5));
    }
}

/// GStreamer's `rtpjpegpay` fed the source files by `source` (the elements before it, with
/// `{SRC}` for the file pattern) → `cam-viewer --protocol rtp`.
fn gstreamer_to_viewer(what: &str, source: &[&str]) {
    const FRAMES: usize = 30;
    let src = TempDir::new("rtp-gst-src");
    let out = TempDir::new("rtp-gst-out");
    let sources = ffmpeg_jpegs(src.path(), FRAMES);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "rtp",
        "--frames",
        &FRAMES.to_string(),
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let pattern = src.path().join("src-%03d.jpg").display().to_string();
    let mut args: Vec<String> = vec!["-q".into()];
    args.extend(source.iter().map(|a| a.replace("{SRC}", &pattern)));
    args.extend(
        [
            "!",
            "rtpjpegpay",
            "!",
            "udpsink",
            "host=127.0.0.1",
            &format!("port={port}"),
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let mut gst = Proc::start_with(Command::new("gst-launch-1.0").args(&args));
    let (status, v) = viewer.summary(PATIENCE);
    let took = started.elapsed();
    stop_peer(&mut gst);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    let saved = saved_frames(out.path());
    let delivered = assert_pixels_match(what, &saved, &sources, FRAMES);
    eprintln!(
        "{what}: {delivered}/{FRAMES} frames saved pixel-exact in {took:?}; viewer decoded {}, \
         dropped {} (RTP has no flow control: a burst overflows the decode queue), invalid {}, \
         duplicates {}",
        u(&v, "frames_decoded"),
        u(&v, "frames_dropped"),
        u(&v, "datagrams_invalid"),
        u(&v, "datagrams_duplicate")
    );
    assert_eq!(delivered, FRAMES, "viewer {v}\n{}", gst.stderr());
    assert_eq!(u(&v, "datagrams_invalid"), 0, "{v}");
}

#[test]
fn gstreamer_rtpjpegpay_to_viewer_pixel_exact() {
    // Timestamps 1/30 s apart, and udpsink paces by them.
    gstreamer_to_viewer(
        "GStreamer imagesequencesrc ! rtpjpegpay → cam-viewer",
        &[
            "imagesequencesrc",
            "location={SRC}",
            "start-index=1",
            "stop-index=30",
            "framerate=30/1",
        ],
    );
}

#[test]
fn gstreamer_frames_without_time_all_one_rtp_timestamp_to_viewer_pixel_exact() {
    // multifilesrc gives its buffers no time: rtpjpegpay sends every frame with one RTP
    // timestamp, as fast as it can. Only the marker bit tells the frames apart. (jpegparse,
    // which would add times, is in plugins-bad; rtpjpegpay needs the size in the caps.)
    gstreamer_to_viewer(
        "GStreamer multifilesrc ! rtpjpegpay (one timestamp) → cam-viewer",
        &[
            "multifilesrc",
            "location={SRC}",
            "index=1",
            "stop-index=30",
            "caps=image/jpeg,width=320,height=240,framerate=30/1",
        ],
    );
}

#[test]
fn ffmpeg_rtp_muxer_to_viewer_pixel_exact() {
    const FRAMES: usize = 30;
    let src = TempDir::new("rtp-ff-src");
    let out = TempDir::new("rtp-ff-out");
    let sources = gstreamer_jpegs(src.path(), FRAMES);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "rtp",
        "--frames",
        &FRAMES.to_string(),
        "--save-frames",
        out.path().to_str().unwrap(),
    ]);
    let started = Instant::now();
    let mut ffmpeg = start_peer(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-framerate",
            "30",
            "-start_number",
            "0",
            "-i",
            src.path().join("src-%03d.jpg").to_str().unwrap(),
            "-c:v",
            "copy",
            "-f",
            "rtp",
            &format!("rtp://127.0.0.1:{port}"),
        ],
    );
    let (status, v) = viewer.summary(PATIENCE);
    let took = started.elapsed();
    stop_peer(&mut ffmpeg);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    let saved = saved_frames(out.path());
    let delivered = assert_pixels_match("ffmpeg → viewer", &saved, &sources, FRAMES);
    eprintln!(
        "ffmpeg -f rtp → cam-viewer: {delivered}/{FRAMES} frames, pixel-exact, in {took:?}; \
         viewer dropped {}, invalid {}",
        u(&v, "frames_dropped"),
        u(&v, "datagrams_invalid")
    );
    assert_eq!(delivered, FRAMES, "viewer {v}\n{}", ffmpeg.stderr());
}

#[test]
fn client_to_gstreamer_rtpjpegdepay_pixel_exact() {
    const FRAMES: usize = 30;
    let src = TempDir::new("rtp-togst-src");
    let out = TempDir::new("rtp-togst-out");
    let sources = ffmpeg_jpegs(src.path(), FRAMES);
    let port = free_udp_port();
    client_bin();
    let mut gst = start_peer(
        "gst-launch-1.0",
        &[
            "-q",
            "-e",
            "udpsrc",
            "address=127.0.0.1",
            &format!("port={port}"),
            "caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26",
            "!",
            "rtpjpegdepay",
            "!",
            "multifilesink",
            &format!("location={}", out.path().join("%05d.jpg").display()),
        ],
    );
    assert!(
        wait_until(PATIENCE, || udp_port_bound(port)),
        "GStreamer did not bind port {port}: {}",
        gst.stderr()
    );
    let started = Instant::now();
    let mut client = start_client(
        port,
        &[
            "--protocol",
            "rtp",
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "30",
            "--frames",
            &FRAMES.to_string(),
        ],
    );
    let (status, c) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    // rtpjpegdepay hands on a frame at its marker packet; give it the time to write them.
    wait_until(Duration::from_secs(5), || count_files(out.path()) >= FRAMES);
    let took = started.elapsed();
    stop_peer(&mut gst);
    assert!(
        !client.stderr().contains("re-encoding"),
        "the client re-encoded the sources: {}",
        client.stderr()
    );
    let received = read_sorted(out.path());
    let delivered = assert_pixels_match("client → gst", &received, &sources, FRAMES);
    eprintln!(
        "cam-client → GStreamer rtpjpegdepay: {delivered}/{FRAMES} frames, pixel-exact, in \
         {took:?}; client sent {} datagrams",
        u(&c, "datagrams_sent")
    );
    assert_eq!(delivered, FRAMES, "{}", gst.stderr());
    // Nothing is acknowledged in RTP: the rate is that of frames sent.
    assert!(c["fps"].as_f64().unwrap() > 10.0, "{c}");
}

#[test]
fn client_sdp_to_ffmpeg_pixel_exact() {
    const FRAMES: usize = 30;
    let src = TempDir::new("rtp-toff-src");
    let out = TempDir::new("rtp-toff-out");
    let sdp_dir = TempDir::new("rtp-toff-sdp");
    let sdp = sdp_dir.path().join("cam.sdp");
    let sources = gstreamer_jpegs(src.path(), FRAMES);
    let port = free_udp_port();
    // The SDP file comes from the client; write it first (one frame to a port nobody reads
    // yet) so that ffmpeg can open it and listen before the stream starts.
    let mut first = start_client(
        port,
        &[
            "--protocol",
            "rtp",
            "--sdp",
            sdp.to_str().unwrap(),
            "--source",
            src.path().to_str().unwrap(),
            "--frames",
            "1",
        ],
    );
    let (status, _) = first.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", first.stderr());
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(
        text.contains(&format!("m=video {port} RTP/AVP 26")),
        "{text}"
    );
    let mut ffmpeg = start_peer(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
            sdp.to_str().unwrap(),
            "-c:v",
            "copy",
            "-frames:v",
            &FRAMES.to_string(),
            out.path().join("%05d.jpg").to_str().unwrap(),
        ],
    );
    assert!(
        wait_until(PATIENCE, || udp_port_bound(port)),
        "ffmpeg did not bind port {port}: {}",
        ffmpeg.stderr()
    );
    let started = Instant::now();
    let mut client = start_client(
        port,
        &[
            "--protocol",
            "rtp",
            "--sdp",
            sdp.to_str().unwrap(),
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "30",
            // A few more than ffmpeg takes: its demuxer holds the newest frame back until the
            // next one shows the previous complete.
            "--frames",
            &(FRAMES + 5).to_string(),
        ],
    );
    let (status, _) = client.summary(PATIENCE);
    assert!(status.success(), "client failed: {}", client.stderr());
    let ended = ffmpeg.wait(Duration::from_secs(10));
    let took = started.elapsed();
    if ended.is_none() {
        stop_peer(&mut ffmpeg);
    }
    let received = read_sorted(out.path());
    let delivered = assert_pixels_match("client → ffmpeg", &received, &sources, FRAMES + 5);
    eprintln!(
        "cam-client --sdp → ffmpeg -i FILE: {delivered}/{FRAMES} frames, pixel-exact, in {took:?}"
    );
    assert_eq!(delivered, FRAMES, "{}", ffmpeg.stderr());
}

#[test]
fn camstream_to_camstream_rtp_through_3_percent_loss_each_way() {
    const FRAMES: usize = 150;
    let src = TempDir::new("rtp-loss-src");
    let out = TempDir::new("rtp-loss-out");
    let sources = ffmpeg_jpegs(src.path(), 10);
    let (mut viewer, port) = start_viewer(&[
        "--protocol",
        "rtp",
        "--save-frames",
        out.path().to_str().unwrap(),
        "--simulate-loss",
        "3",
        "--simulate-seed",
        "7",
    ]);
    let started = Instant::now();
    let mut client = start_client(
        port,
        &[
            "--protocol",
            "rtp",
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "60",
            "--frames",
            &FRAMES.to_string(),
            "--simulate-loss",
            "3",
            "--simulate-seed",
            "8",
        ],
    );
    let (status, c) = client.summary(PATIENCE * 2);
    assert!(status.success(), "client failed: {}", client.stderr());
    // The client lingers after its last packet for NACKs; whatever the viewer completes
    // arrives before the client ends.
    let all_saved = wait_until(Duration::from_secs(5), || count_files(out.path()) >= FRAMES);
    let took = started.elapsed();
    viewer.signal(15);
    let (status, v) = viewer.summary(PATIENCE);
    assert!(status.success(), "viewer failed: {}", viewer.stderr());
    let saved = saved_frames(out.path());
    let delivered = assert_pixels_match("rtp 3% loss", &saved, &sources, FRAMES);
    eprintln!(
        "camstream ↔ camstream RTP, 3% loss each way: {delivered}/{FRAMES} frames delivered \
         pixel-exact in {took:?}, {} retransmitted packets of {} sent, viewer dropped {}, {} \
         duplicates, {} RTCP sent",
        u(&c, "retransmits"),
        u(&c, "datagrams_sent"),
        u(&v, "frames_dropped"),
        u(&v, "datagrams_duplicate"),
        u(&v, "acks_sent"),
    );
    assert!(
        all_saved,
        "only {delivered} of {FRAMES} frames\nclient {c}\nviewer {v}"
    );
    assert_eq!(delivered, FRAMES);
    assert_eq!(u(&v, "frames_completed"), FRAMES as u64, "{v}");
    assert!(
        u(&c, "retransmits") > 0,
        "3% loss but no retransmission: {c}"
    );
}

/// The lines in `stderr` that tell which protocol refused datagrams look like.
fn hints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("these look like"))
        .collect()
}

/// A viewer on `protocol` fed by a client speaking another: one warn line naming the flag,
/// however many datagrams came.
fn wrong_protocol_case(viewer_protocol: &str, client_args: &[&str], want: &str) {
    let (mut viewer, port) = start_viewer(&["--protocol", viewer_protocol]);
    let mut client = start_client(port, client_args);
    // The client may give up for want of answers: that is the point.
    client.wait(PATIENCE).expect("client did not end");
    assert!(
        wait_until(PATIENCE, || !hints(&viewer.stderr()).is_empty()),
        "no hint from a {viewer_protocol} viewer: {}",
        viewer.stderr()
    );
    viewer.signal(15);
    let (_, v) = viewer.summary(PATIENCE);
    let stderr = viewer.stderr();
    let lines = hints(&stderr);
    eprintln!(
        "{viewer_protocol} viewer, {} refused datagrams: {lines:?}",
        u(&v, "datagrams_invalid")
    );
    assert!(
        u(&v, "datagrams_invalid") >= 100,
        "too few datagrams to prove 'once': {v}"
    );
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains(want),
        "{stderr}"
    );
}

#[test]
fn rtp_at_a_camstream_viewer_says_once_run_with_protocol_rtp() {
    let src = TempDir::new("rtp-wrong-src");
    ffmpeg_jpegs(src.path(), 5);
    let dir = src.path().to_str().unwrap().to_owned();
    wrong_protocol_case(
        "camstream",
        &[
            "--protocol",
            "rtp",
            "--source",
            &dir,
            "--fps",
            "0",
            "--frames",
            "40",
        ],
        "run with --protocol rtp",
    );
}

#[test]
fn camstream_at_an_rtp_viewer_says_once_run_with_protocol_camstream() {
    wrong_protocol_case(
        "rtp",
        &[
            "--source",
            "pattern",
            "--fps",
            "30",
            "--chunk-size",
            "200",
            "--give-up",
            "3",
        ],
        "run with --protocol camstream",
    );
}

#[test]
fn camstream_at_a_classic_viewer_says_once_run_with_protocol_camstream() {
    wrong_protocol_case(
        "classic",
        &[
            "--source",
            "pattern",
            "--fps",
            "30",
            "--chunk-size",
            "200",
            "--give-up",
            "3",
        ],
        "run with --protocol camstream",
    );
}

#[test]
fn video_at_the_message_port_says_once_it_belongs_on_port() {
    let msg_port = free_udp_port();
    let src = TempDir::new("rtp-msg-src");
    ffmpeg_jpegs(src.path(), 5);
    let (mut viewer, _port) = start_viewer(&["--msg-port", &msg_port.to_string()]);
    // RTP video to the message port, then camstream video: hundreds of datagrams.
    let mut rtp = start_client(
        msg_port,
        &[
            "--protocol",
            "rtp",
            "--source",
            src.path().to_str().unwrap(),
            "--fps",
            "0",
            "--frames",
            "40",
        ],
    );
    rtp.wait(PATIENCE).expect("client did not end");
    // A valid message still gets through and is answered.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket
        .send_to(b"[0,0,0,1]", ("127.0.0.1", msg_port))
        .unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"{\"ok\":true}");
    viewer.signal(15);
    let (_, _v) = viewer.summary(PATIENCE);
    let stderr = viewer.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("look like video"))
        .collect();
    eprintln!("message port: {lines:?}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("--port"),
        "{stderr}"
    );
    let refused_lines = stderr
        .lines()
        .filter(|l| l.contains("refused a message"))
        .count();
    assert!(
        refused_lines <= 10,
        "not rate-limited: {refused_lines} lines\n{stderr}"
    );
}
