#!/usr/bin/env python3
"""camstream against GStreamer and the codec limit, in one run, on loopback.

Run through scripts/bench.sh, which installs what is needed and builds the release binaries
first; this script only measures and reports. Standard library only.

For 640x480, 1280x720 and 1920x1080 it writes the same deterministic textured frames (the
texture source's noise + gradient + motion, full-range I420) as a y4m file for camstream and as
one raw file per frame for GStreamer (multifilesrc can loop them; a y4m file cannot be looped
from gst-launch), then measures:

  1. the codec limit: libjpeg-turbo encode (from I420) and decode (to BGRX) per frame, in one
     process (examples/codec_limit), and min(encode fps, decode fps);
  2. camstream unpaced (--fps 0) into cam-viewer --headless (which decodes every frame):
     delivered fps, delivered fraction, CPU per delivered frame of both processes together
     (getrusage of each child, through os.wait4), datagrams/s, capture-to-decoded latency;
     with the default 1,200-byte chunks and with the chunk size best on loopback;
  3. the same for GStreamer (jpegenc quality=80 ! rtpjpegpay ! udpsink -> udpsrc !
     rtpjpegdepay ! jpegdec ! fakesink), as written and with a 4 MiB receive buffer;
  4. camstream paced at 30 fps: latency p50/p99;
  5. delivered fps and fraction at 0, 1, 5 and 10% loss for both, through the same lossy relay
     (crates/cam-viewer/examples/relay.rs) so that both see the same loss model;
  plus a chunk-size sweep on loopback and, when both programs have --key-file, keyed mode
  against plain at 1280x720 (--keyed-rounds pairs, alternating which goes first).
The unpaced and paced runs go in interleaved rounds (--rounds, default 2) and each pipeline keeps
its least disturbed run; the codec limit is the faster of a measurement before and one after.

Outputs (default bench/): latest.json (everything measured), latest.md (tables, ratios,
targets), latest.svg (delivered fps and fraction against injected loss).

Timings depend on the machine and on what else runs on it: the report records the load
average before and after and, for every run, how many cores other processes used meanwhile.
Ratios taken within one run are what to compare.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(640, 480), (1280, 720), (1920, 1080), (3840, 2160)]
UHD = (3840, 2160)
# A 4K y4m clip of 20 frames is 249 MB: under the 256 MiB the client reads into memory.
UHD_CLIP_FRAMES = 20
# The 4K run: paced at 30 fps for 10 s.
UHD_SECONDS = 10.0
QUICK_SIZES = [(1280, 720), UHD]
QUALITY = 80
# Distinct frames per clip; both pipelines loop them.
CLIP_FRAMES = 30
DEFAULT_CHUNK = 1200
# Chunk size used for the "loopback" rows: the largest that fits a datagram with room for a
# future AEAD tag (see the sweep in the report). Real networks keep the 1,200-byte default.
LOCAL_CHUNK = 65451
SWEEP_CHUNKS = [1200, 8192, 16384, 32768, 65451]
LOSSES = [0, 1, 5, 10]
GST_BUFFER = 4 << 20
# rtpjpegpay's default MTU less the RTP (12) and RTP/JPEG (8) headers.
GST_PAYLOAD = 1400 - 12 - 8
RTP_CAPS = "application/x-rtp,media=video,encoding-name=JPEG,payload=26,clock-rate=90000"


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_seconds():
    """CPU time all processes on the machine have used, in seconds (from /proc/stat)."""
    try:
        fields = open("/proc/stat").readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A child whose stdout and stderr go to files, and whose CPU time comes from wait4."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self.argv = [str(a) for a in argv]
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
            )
        self.status = None
        self.cpu_s = None

    def send_signal(self, sig):
        if self.status is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        """Waits up to `timeout` seconds, then kills. Returns the exit code."""
        if self.status is not None:
            return self.status
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                log(f"{self.name} did not finish in {timeout:.0f} s; killing it")
                self.send_signal(signal.SIGKILL)
                pid, status, usage = os.wait4(self.p.pid, 0)
                break
            time.sleep(0.02)
        self.status = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.status
        self.cpu_s = usage.ru_utime + usage.ru_stime
        return self.status

    def stop(self, sig=signal.SIGINT, timeout=10):
        self.send_signal(sig)
        return self.wait(timeout)

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def summary(self):
        """The last JSON line on stdout (the programs' summary), or {}."""
        for line in reversed(self.stdout().strip().splitlines()):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
        return {}

    def wait_for(self, text, in_stdout=False, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.stdout() if in_stdout else self.stderr()):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(
            f"{self.name} never said '{text}'; stderr:\n{self.stderr()[-2000:]}"
        )


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.bins = workdir / "bin"
        self.runs = 0

    def run_dir(self, label):
        self.runs += 1
        d = self.workdir / f"{self.runs:02d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())}"
        d.mkdir()
        return d

    def relay(self, d, viewer_port, loss):
        port = free_port()
        relay = Proc(
            "relay", [self.bins / "relay", port, viewer_port, 0, 0, 100, loss], d
        )
        relay.wait_for("relay:")
        return relay, port

    # -- 1. codec limit ----------------------------------------------------------------

    def codec_limit(self, clip):
        out = subprocess.run(
            [self.bins / "codec_limit", clip, str(QUALITY), str(self.args.codec_seconds)],
            capture_output=True,
            text=True,
            check=True,
            # One thread: the limit is what one core does (large frames are cut into strips
            # on several threads otherwise).
            env=dict(os.environ, CAMSTREAM_ENCODE_THREADS="1"),
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    def tjbench(self, raw_dir, size):
        """libjpeg-turbo's own benchmark on the clip's first frame, one thread: packed BGRX
        (compress from it, decompress to it: the issue's codec limit) and `-yuv` (compress from
        planar YUV and decompress to it, as cam-client and the headless viewer do)."""
        w, h = size
        ppm = self.workdir / f"tj-{w}x{h}.ppm"
        if not ppm.exists():
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                 "-s", f"{w}x{h}", "-i", f"{raw_dir}/00000.i420", "-frames:v", "1", ppm],
                check=True,
            )
        # tjbench times wall clock: on a shared machine other processes' share of the core
        # would count as codec time (camstream's CPU is getrusage time, which it is not).
        # Raised priority (root only) keeps the limit what the codec does on a core.
        nice = ["nice", "-n", "-19"] if os.geteuid() == 0 else []
        common = nice + ["tjbench", ppm, str(QUALITY), "-subsamp", "420", "-benchtime",
                  str(self.args.codec_seconds), "-warmup", "0.5", "-nowrite", "-quiet"]

        def row(extra):
            out = subprocess.run(common + extra, capture_output=True, text=True, check=True).stdout
            line = [l for l in out.splitlines() if "4:2:0" in l][-1]
            return [float(x) for x in line.split("4:2:0", 1)[1].split()[3:]]

        mpix = w * h / 1e6
        packed = row(["-bgrx"])  # comp Mpix/s, ratio, decomp Mpix/s
        planar = row(["-yuv"])  # encode-yuv, comp, ratio, decomp, decode-yuv (Mpix/s)
        enc_ms, dec_ms = 1000 * mpix / packed[0], 1000 * mpix / packed[2]
        yenc_ms, ydec_ms = 1000 * mpix / planar[1], 1000 * mpix / planar[3]
        return {
            "source": "tjbench",
            "tjbench": version_of_tjbench(),
            "encode_ms": round(enc_ms, 3),
            "decode_bgrx_ms": round(dec_ms, 3),
            "encode_fps": round(1000 / enc_ms, 1),
            "decode_fps": round(1000 / dec_ms, 1),
            "limit_fps": round(min(1000 / enc_ms, 1000 / dec_ms), 1),
            "floor_ms": round(enc_ms + dec_ms, 3),
            "yuv_encode_ms": round(yenc_ms, 3),
            "yuv_decode_ms": round(ydec_ms, 3),
            "yuv_limit_fps": round(min(1000 / yenc_ms, 1000 / ydec_ms), 1),
            "yuv_floor_ms": round(yenc_ms + ydec_ms, 3),
        }

    # -- keyed mode against plain -----------------------------------------------------------

    def keyed(self, clip, seconds, key, rounds, chacha):
        """Plain and keyed runs back to back, in `rounds` rounds that rotate which goes first,
        at both chunk sizes: keyed as a user gets it (--aead auto) and, when `chacha`, keyed
        with the ChaCha20-Poly1305 fallback (a CPU without AES instructions gets that one). A
        slow spell of the machine then hits one round, not one mode, and the median of the
        per-round keyed/plain ratios is what the report gives."""
        chunks = [DEFAULT_CHUNK, LOCAL_CHUNK]
        modes = [("plain", None, []), ("keyed", key, [])]
        if chacha:
            modes.append(("chacha", key, ["--aead", "chacha20-poly1305"]))
        rounds_by_chunk = {c: [] for c in chunks}
        for r in range(1, rounds + 1):
            for chunk in chunks:
                shift = (r - 1) % len(modes)
                got = {}
                for mode, k, extra in modes[shift:] + modes[:shift]:
                    x = self.camstream(
                        f"camstream 1280x720 chunk {chunk} {mode} #{r}", clip, seconds,
                        chunk=chunk, key=k, client_extra=extra,
                    )
                    got[mode] = dict(slim(x), aead=x["client"].get("aead"))
                rounds_by_chunk[chunk].append(got)
        out = {"available": True, "size": "1280x720", "rounds": rounds, "by_chunk": []}
        for chunk in chunks:
            rs = rounds_by_chunk[chunk]
            entry = {"chunk_size": chunk, "modes": {}, "rounds": rs}
            for mode, _, _ in modes:
                med = lambda k: median([x[mode][k] for x in rs])
                m = {
                    "aead": next((x[mode]["aead"] for x in rs if x[mode]["aead"]), None),
                    "fps": med("delivered_fps"),
                    "cpu_ms_per_frame": med("cpu_ms_per_frame"),
                    "delivered_fraction": min(x[mode]["delivered_fraction"] for x in rs),
                }
                if mode != "plain":
                    m["fps_ratio"] = median([
                        x[mode]["delivered_fps"] / x["plain"]["delivered_fps"]
                        for x in rs if x["plain"]["delivered_fps"]
                    ])
                    m["cpu_ratio"] = median([
                        x[mode]["cpu_ms_per_frame"] / x["plain"]["cpu_ms_per_frame"]
                        for x in rs if x[mode]["cpu_ms_per_frame"] and x["plain"]["cpu_ms_per_frame"]
                    ])
                    log(f"{mode}, chunk {chunk}: fps ratio {m['fps_ratio']}, CPU ratio {m['cpu_ratio']}")
                entry["modes"][mode] = m
            out["by_chunk"].append(entry)
        return out

    # -- 2/4/5. camstream ----------------------------------------------------------------

    def camstream(self, label, clip, seconds, fps=0, chunk=None, loss=None, key=None, client_extra=()):
        d = self.run_dir(label)
        env = dict(os.environ, RUST_LOG="warn")
        vport = free_port()
        key_args = ["--key-file", key] if key else []
        viewer = Proc(
            "viewer",
            [self.bins / "cam-viewer", "--headless", "--bind", "127.0.0.1", "--port", vport]
            + key_args,
            d,
            dict(env, RUST_LOG="info"),
        )
        viewer.wait_for("waiting for a stream")
        relay, target = (None, vport)
        if loss is not None:
            relay, target = self.relay(d, vport, loss)
        busy0, t0 = cpu_busy_seconds(), time.monotonic()
        argv = [
            self.bins / "cam-client",
            f"127.0.0.1:{target}",
            "--source",
            clip,
            "--quality",
            QUALITY,
            "--fps",
            fps,
            "--duration",
            seconds,
        ]
        if chunk:
            argv += ["--chunk-size", chunk]
        client = Proc("client", argv + key_args + list(client_extra), d, env)
        client.wait(seconds + 30)
        time.sleep(0.3)
        viewer.stop()
        if relay:
            relay.stop(signal.SIGKILL)
        wall, busy1 = time.monotonic() - t0, cpu_busy_seconds()
        c, v = client.summary(), viewer.summary()
        if not c or not v:
            raise RuntimeError(
                f"{label}: no summary; client stderr:\n{client.stderr()[-2000:]}\n"
                f"viewer stderr:\n{viewer.stderr()[-2000:]}"
            )
        acked = c.get("frames_acked", 0)
        decided = acked + c.get("frames_timed_out", 0) + c.get("frames_refused", 0)
        # A frame the viewer completed after the client stopped counting still counts.
        offered = decided + max(0, v.get("frames_completed", 0) - acked)
        delivered = v.get("frames_decoded", 0)
        cpu = client.cpu_s + viewer.cpu_s
        elapsed = c.get("elapsed_s") or seconds
        result = {
            "pipeline": "camstream",
            "label": label,
            "fps_paced": fps,
            "chunk_size": chunk or DEFAULT_CHUNK,
            "loss_percent": loss,
            "keyed": bool(key),
            "frames_sent": c.get("frames_sent"),
            "frames_offered": offered,
            "frames_delivered": delivered,
            "delivered_fps": round(v.get("fps", 0.0) * delivered / max(1, v.get("frames_completed", 0)), 1),
            "delivered_fraction": round(delivered / offered, 4) if offered else 0.0,
            "cpu_ms_per_frame": round(cpu * 1000 / delivered, 3) if delivered else None,
            "cpu_client_s": round(client.cpu_s, 3),
            "cpu_viewer_s": round(viewer.cpu_s, 3),
            "datagrams_per_s": round(c.get("datagrams_sent", 0) / elapsed),
            "retransmits": c.get("retransmits"),
            "latency_p50_ms": v.get("latency_p50_ms"),
            "latency_p99_ms": v.get("latency_p99_ms"),
            "other_cores": other_cores(busy0, busy1, wall, cpu),
            "client": c,
            "viewer": v,
        }
        log(
            f"{label}: {result['delivered_fps']} fps, {100 * result['delivered_fraction']:.2f}% delivered, "
            f"{result['cpu_ms_per_frame']} ms CPU/frame, p50 {result['latency_p50_ms']} ms "
            f"(other processes: {result['other_cores']} cores)"
        )
        return result

    # -- Fan-out: many /stream readers of one viewer -----------------------------------

    def fanout(self, clip, seconds, readers):
        """Viewer CPU for one 720p30 stream with no HTTP readers, then with `readers` readers of
        /stream (one thread of non-blocking sockets here, so the readers cost little), plus one
        stalled reader. The issue's target: 100 readers cost the viewer at most 0.5 core."""
        runs = {}
        for n in (0, readers):
            d = self.run_dir(f"fanout {n}")
            env = dict(os.environ, RUST_LOG="warn")
            vport, hport = free_port(), free_port()
            viewer = Proc(
                "viewer",
                [self.bins / "cam-viewer", "--headless", "--bind", "127.0.0.1", "--port", vport,
                 "--http", f"127.0.0.1:{hport}"],
                d,
                dict(env, RUST_LOG="info"),
            )
            viewer.wait_for("waiting for a stream")
            client = Proc(
                "client",
                [self.bins / "cam-client", f"127.0.0.1:{vport}", "--source", clip, "--quality",
                 QUALITY, "--fps", 30, "--duration", seconds + 1],
                d,
                env,
            )
            viewer.wait_for("receiving stream")
            parts, stalled = read_streams(hport, n, seconds) if n else ([], None)
            client.wait(seconds + 30)
            viewer.stop()
            v = viewer.summary()
            wall = time.monotonic() - viewer.started
            runs[n] = {
                "readers": n,
                "viewer_cores": round(viewer.cpu_s / wall, 3),
                "viewer_cpu_s": round(viewer.cpu_s, 3),
                "wall_s": round(wall, 2),
                "udp_fps": v.get("fps"),
                "frames_completed": v.get("frames_completed"),
                "parts_min": min(parts) if parts else None,
                "parts_median": median(parts) if parts else None,
                "expected_parts": round(30 * seconds),
            }
            log(f"fan-out {n} readers: viewer {runs[n]['viewer_cores']} cores, "
                f"parts per reader min {runs[n]['parts_min']} (about {runs[n]['expected_parts']} sent)")
            del stalled
        base, loaded = runs[0], runs[readers]
        return {
            "readers": readers,
            "seconds": seconds,
            "viewer_cores": loaded["viewer_cores"],
            "viewer_cores_without_readers": base["viewer_cores"],
            "cost_cores": round(loaded["viewer_cores"] - base["viewer_cores"], 3),
            "parts_min": loaded["parts_min"],
            "parts_median": loaded["parts_median"],
            "expected_parts": loaded["expected_parts"],
            "udp_fps": loaded["udp_fps"],
            "udp_fps_without_readers": base["udp_fps"],
            "runs": runs,
        }

    # -- 3/5. GStreamer ------------------------------------------------------------------

    def gstreamer(self, label, raw_dir, size, seconds, loss=None, buffer_size=None, paced=False):
        d = self.run_dir(label)
        w, h = size
        port = free_port()
        buffer = [f"buffer-size={buffer_size}"] if buffer_size else []
        # RTP/JPEG's header holds width and height in units of 8 in one byte each (2040 at
        # most); beyond that rtpjpegpay sends 0 and the receiver needs the SDP's x-dimensions.
        caps = RTP_CAPS + (f',x-dimensions=(string)"{w},{h}"' if max(w, h) > 2040 else "")
        recv = Proc(
            "gst-recv",
            ["gst-launch-1.0", "-v", "udpsrc", "address=127.0.0.1", f"port={port}"]
            + buffer
            + [f"caps={caps}", "!", "rtpjpegdepay", "!", "jpegdec", "!"]
            + ["fakesink", "name=got", "sync=false", "silent=false"],
            d,
        )
        recv.wait_for("Setting pipeline to PLAYING", in_stdout=True)
        relay, target = (None, port)
        if loss is not None:
            relay, target = self.relay(d, port, loss)
        busy0, t0 = cpu_busy_seconds(), time.monotonic()
        send = Proc(
            "gst-send",
            ["gst-launch-1.0", "-v", "multifilesrc", f"location={raw_dir}/%05d.i420", "loop=true"]
            + [f"caps=video/x-raw,format=I420,width={w},height={h},framerate=30/1", "!"]
            + ["jpegenc", f"quality={QUALITY}", "!", "identity", "name=sent", "silent=false", "!"]
            + ["rtpjpegpay", "!", "udpsink", "host=127.0.0.1", f"port={target}",
               # sync=true paces to the caps' 30 fps (the 4K live row).
               f"sync={'true' if paced else 'false'}"],
            d,
        )
        time.sleep(seconds)
        send.stop()
        time.sleep(0.5)
        recv.stop()
        if relay:
            relay.stop(signal.SIGKILL)
        wall, busy1 = time.monotonic() - t0, cpu_busy_seconds()
        sent = re.findall(r"sent: last-message = chain .*?\((\d+) bytes", send.stdout())
        got = re.findall(
            r"got: last-message = chain .*?pts: (\d+):(\d+):([\d.]+)", recv.stdout()
        )
        if not sent:
            raise RuntimeError(f"{label}: GStreamer sent nothing:\n{send.stderr()[-2000:]}")
        pts = [int(hh) * 3600 + int(mm) * 60 + float(ss) for hh, mm, ss in got]
        active = (pts[-1] - pts[0]) if len(pts) > 1 else 0.0
        delivered = len(got)
        cpu = send.cpu_s + recv.cpu_s
        packets = sum(math.ceil(int(b) / GST_PAYLOAD) for b in sent)
        result = {
            "pipeline": "gstreamer",
            "label": label,
            "loss_percent": loss,
            "udpsrc_buffer_size": buffer_size,
            "fps_paced": 30 if paced else 0,
            "frames_sent": len(sent),
            "frames_offered": len(sent),
            "frames_delivered": delivered,
            "delivered_fps": round((delivered - 1) / active, 1) if active > 0 else 0.0,
            "delivered_fraction": round(delivered / len(sent), 4),
            "cpu_ms_per_frame": round(cpu * 1000 / delivered, 3) if delivered else None,
            "cpu_sender_s": round(send.cpu_s, 3),
            "cpu_receiver_s": round(recv.cpu_s, 3),
            "sent_fps": round(len(sent) / seconds, 1),
            "datagrams_per_s_estimate": round(packets / seconds),
            "jpeg_bytes_mean": round(sum(int(b) for b in sent) / len(sent)),
            "other_cores": other_cores(busy0, busy1, wall, cpu),
        }
        log(
            f"{label}: {result['delivered_fps']} fps delivered of {result['sent_fps']} sent, "
            f"{100 * result['delivered_fraction']:.2f}% delivered, {result['cpu_ms_per_frame']} ms CPU/frame "
            f"(other processes: {result['other_cores']} cores)"
        )
        return result


def read_streams(http_port, readers, seconds):
    """`readers` clients of /stream on one thread (non-blocking sockets, one selector), for
    `seconds`; returns the parts each received, and keeps one more socket that never reads
    (a stalled reader) open meanwhile. Parts are counted by their Content-Length headers,
    which the viewer writes for every part."""
    import selectors
    import socket

    def connect():
        s = socket.create_connection(("127.0.0.1", http_port))
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n")
        return s

    stalled = connect()
    sel = selectors.DefaultSelector()
    counts, tails = [0] * readers, [b""] * readers
    socks = []
    for i in range(readers):
        s = connect()
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    buf = bytearray(1 << 18)
    needle = b"Content-Length:"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.2):
            i = key.data
            try:
                n = key.fileobj.recv_into(buf)
            except BlockingIOError:
                continue
            if n == 0:
                sel.unregister(key.fileobj)
                continue
            # A header cut between two reads is found in the tail kept from the last one.
            chunk = tails[i] + bytes(buf[:n])
            counts[i] += chunk.count(needle)
            tails[i] = chunk[-(len(needle) - 1):]
    for s in socks:
        s.close()
    return counts, stalled


def best_tjbench(a, b):
    """The faster of two tjbench measurements, step by step."""
    best = dict(a)
    for key in ("encode_ms", "decode_bgrx_ms", "yuv_encode_ms", "yuv_decode_ms"):
        best[key] = min(a[key], b[key])
    best["encode_fps"] = round(1000 / best["encode_ms"], 1)
    best["decode_fps"] = round(1000 / best["decode_bgrx_ms"], 1)
    best["limit_fps"] = min(best["encode_fps"], best["decode_fps"])
    best["floor_ms"] = round(best["encode_ms"] + best["decode_bgrx_ms"], 3)
    best["yuv_limit_fps"] = round(min(1000 / best["yuv_encode_ms"], 1000 / best["yuv_decode_ms"]), 1)
    best["yuv_floor_ms"] = round(best["yuv_encode_ms"] + best["yuv_decode_ms"], 3)
    best["measurements"] = [a, b]
    return best


def version_of_tjbench():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libjpeg-turbo-progs"],
                             capture_output=True, text=True).stdout.strip()
        return f"libjpeg-turbo-progs {out}" if out else None
    except OSError:
        return None


def best_codec(a, b):
    """The faster of two codec measurements, step by step, with what follows from them."""
    best = dict(a)
    for key in ("encode_ms", "decode_bgrx_ms", "decode_rgb_ms"):
        best[key] = min(a[key], b[key])
    best["encode_fps"] = round(1000 / best["encode_ms"], 1)
    best["decode_fps"] = round(1000 / best["decode_bgrx_ms"], 1)
    best["limit_fps"] = min(best["encode_fps"], best["decode_fps"])
    best["floor_ms"] = round(best["encode_ms"] + best["decode_bgrx_ms"], 3)
    best["measurements"] = [a, b]
    return best


def other_cores(busy0, busy1, wall, ours):
    """Cores other processes kept busy during a run: the noise it was measured in."""
    if busy0 is None or busy1 is None or wall <= 0:
        return None
    return round(max(0.0, (busy1 - busy0 - ours) / wall), 2)


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout
            return out.strip().splitlines()[0] if out.strip() else None
        except OSError:
            return None

    def sysctl(name):
        try:
            return int(Path("/proc/sys/" + name.replace(".", "/")).read_text())
        except (OSError, ValueError):
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gstreamer": version(["gst-launch-1.0", "--version"]),
        "gstreamer_libjpeg": version(["dpkg-query", "-W", "-f=${Package} ${Version}", "libjpeg62-turbo"]),
        "rustc": version(["rustc", "--version"]),
        "net.core.rmem_max": sysctl("net.core.rmem_max"),
        "net.core.rmem_default": sysctl("net.core.rmem_default"),
    }


def has_flag(binary, flag):
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout


# -- report ---------------------------------------------------------------------------------


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def slim(run):
    """What the report keeps of a run that is one of several."""
    return {k: run[k] for k in ("delivered_fps", "delivered_fraction", "cpu_ms_per_frame",
                                "latency_p50_ms", "other_cores") if k in run}


def fmt(v, digits=1, suffix=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}{suffix}"
    return f"{v}{suffix}"


def pct(fraction):
    return "–" if fraction is None else f"{100 * fraction:.1f}%"


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def size_name(size):
    return f"{size[0]}x{size[1]}"


def markdown(r):
    m = r["machine"]
    lines = [
        "# camstream benchmark",
        "",
        f"Measured {r['date']} by `scripts/bench.sh` in one run ({r['seconds']} s per run). Machine: "
        f"{m['nproc']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"{m['gstreamer']} with {m['gstreamer_libjpeg']}. Load average before "
        f"{r['load_before'][0]:.2f}, after {r['load_after'][0]:.2f} (1 min); the *other* column says how "
        "many cores other processes kept busy during each run.",
        "",
        "Loopback, the same textured frames for every pipeline (noise + gradient + motion, full-range "
        f"I420), JPEG quality {QUALITY}. CPU is both processes together (getrusage), per delivered frame. "
        "Unpaced: as fast as each pipeline goes (camstream `--fps 0`, GStreamer `sync=false`). "
        f"Unpaced and paced rows are the best of {r.get('rounds', 1)} interleaved rounds (most fps; lowest "
        "latency when paced); every round is in latest.json.",
        "",
        "## Throughput and CPU",
        "",
        "| size | pipeline | delivered fps | delivered | CPU ms/frame | datagrams/s | latency p50 / p99 ms | fps vs codec limit | other |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["sizes"]:
        name = s["size"]
        codec = s["codec"]
        lines.append(
            f"| {name} | **codec limit**, tjbench BGRX (encode {codec['encode_ms']:.2f} + decode {codec['decode_bgrx_ms']:.2f} ms) "
            f"| {codec['limit_fps']:.0f} | | {codec['floor_ms']:.2f} | | | 1.00 | |"
        )
        if codec.get("yuv_floor_ms"):
            lines.append(
                f"| {name} | tjbench `-yuv` (encode from + decode to planes {codec['yuv_encode_ms']:.2f} + {codec['yuv_decode_ms']:.2f} ms) "
                f"| {codec['yuv_limit_fps']:.0f} | | {codec['yuv_floor_ms']:.2f} | | | {fmt(ratio(codec['yuv_limit_fps'], codec['limit_fps']), 2)} | |"
            )
        ex = s.get("codec_limit_example")
        if ex:
            lines.append(
                f"| {name} | examples/codec_limit (I420 encode {ex['encode_ms']:.2f} + BGRX decode {ex['decode_bgrx_ms']:.2f} ms) "
                f"| {ex['limit_fps']:.0f} | | {ex['floor_ms']:.2f} | | | {fmt(ratio(ex['limit_fps'], codec['limit_fps']), 2)} | |"
            )
        for key, title in [
            ("camstream", f"camstream, {DEFAULT_CHUNK} B chunks"),
            ("camstream_local", f"camstream, {LOCAL_CHUNK} B chunks"),
            ("gstreamer", "GStreamer as written"),
            ("gstreamer_buffer", "GStreamer, 4 MiB udpsrc buffer"),
            ("paced", f"camstream 30 fps, {DEFAULT_CHUNK} B chunks"),
            ("gstreamer_paced", "GStreamer 30 fps (sync=true), 4 MiB buffer"),
        ]:
            if key in ("paced", "gstreamer_paced") and name != size_name(UHD):
                continue
            x = s.get(key)
            if not x:
                continue
            dgrams = x.get("datagrams_per_s", x.get("datagrams_per_s_estimate"))
            approx = "" if "datagrams_per_s" in x else "≈"
            lat = (
                f"{fmt(x.get('latency_p50_ms'))} / {fmt(x.get('latency_p99_ms'))}"
                if x.get("latency_p50_ms") is not None
                else "–"
            )
            lines.append(
                f"| {name} | {title} | {fmt(x['delivered_fps'])} | {pct(x['delivered_fraction'])} "
                f"| {fmt(x['cpu_ms_per_frame'], 2)} | {approx}{dgrams} | {lat} "
                f"| {fmt(ratio(x['delivered_fps'], codec['limit_fps']), 2)} | {fmt(x['other_cores'], 2)} |"
            )
    lines += [
        "",
        "## Ratios",
        "",
        "| size | camstream | fps / GStreamer (as written; 4 MiB buffer) | CPU per frame / GStreamer (as written; 4 MiB buffer) | fps / codec limit | CPU per frame / codec floor |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in r["sizes"]:
        if "gstreamer" not in s:
            continue
        g, gb, codec = s["gstreamer"], s.get("gstreamer_buffer") or {}, s["codec"]
        for key, title in [("camstream_local", f"{LOCAL_CHUNK} B chunks"), ("camstream", f"{DEFAULT_CHUNK} B chunks")]:
            c = s.get(key)
            if not c:
                continue
            lines.append(
                f"| {s['size']} | {title} "
                f"| {fmt(ratio(c['delivered_fps'], g['delivered_fps']), 2)}; {fmt(ratio(c['delivered_fps'], gb.get('delivered_fps')), 2)} "
                f"| {fmt(ratio(c['cpu_ms_per_frame'], g['cpu_ms_per_frame']), 2)}; {fmt(ratio(c['cpu_ms_per_frame'], gb.get('cpu_ms_per_frame')), 2)} "
                f"| {fmt(ratio(c['delivered_fps'], codec['limit_fps']), 2)} "
                f"| {fmt(ratio(c['cpu_ms_per_frame'], codec['floor_ms']), 2)} |"
            )
    lines += [
        "",
        "The codec limit is libjpeg-turbo's own `tjbench` on the clip's first frame, one thread, packed BGRX "
        "in and out (the faster of a measurement before and one after the streams): min(encode fps, decode "
        "fps), and the floor is encode + decode time. `tjbench -yuv` times what the pipeline does (the "
        "client compresses from I420 planes, the headless viewer decompresses to planes, skipping colour "
        "conversion); examples/codec_limit is the same codec through the `turbojpeg` crate (libjpeg-turbo 3, "
        "built by turbojpeg-sys; tjbench is Debian's 2.1), timed per call as medians, decoding to BGRX as a "
        "window does. camstream needs both cores (encoding in the client, decoding in the viewer), so cores "
        "taken by other processes (*other*) lower its fps against the limit.",
        "",
        "## Paced at 30 fps (camstream)",
        "",
        "Latency is from the moment the frame is read (before encoding) to the moment it is decoded.",
        "",
        "| size | chunk bytes | delivered fps | latency p50 ms | latency p99 ms | encode + decode + 2 ms | CPU ms/frame | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["sizes"]:
        codec = s["codec"]
        bound = codec["encode_ms"] + codec["decode_bgrx_ms"] + 2
        for p in [s.get("paced"), s.get("paced_local")]:
            if not p:
                continue
            lines.append(
                f"| {s['size']} | {p['chunk_size']} | {fmt(p['delivered_fps'])} | {fmt(p['latency_p50_ms'])} "
                f"| {fmt(p['latency_p99_ms'])} | {bound:.1f} | {fmt(p['cpu_ms_per_frame'], 2)} | {fmt(p['other_cores'], 2)} |"
            )
    loss = r["loss"]
    lines += [
        "",
        f"## Injected loss ({loss['size']}, through the same relay, loss both ways)",
        "",
        f"camstream at `--fps 0` with the default {DEFAULT_CHUNK}-byte chunks; GStreamer with a 4 MiB udpsrc "
        "buffer (so that what it loses is the injected loss, not its socket buffer).",
        "",
        "| loss | camstream fps | camstream delivered | retransmits | GStreamer fps | GStreamer delivered |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c, g in zip(loss["camstream"], loss["gstreamer"]):
        lines.append(
            f"| {c['loss_percent']}% | {fmt(c['delivered_fps'])} | {pct(c['delivered_fraction'])} "
            f"| {c['retransmits']} | {fmt(g['delivered_fps'])} | {pct(g['delivered_fraction'])} |"
        )
    lines += ["", "![delivered fps and fraction against injected loss](latest.svg)", ""]
    if r.get("sweep"):
        lines += [
            f"## Chunk size on loopback ({r['sweep_size']}, unpaced)",
            "",
            "| chunk bytes | delivered fps | CPU ms/frame | datagrams/s | other |",
            "|---:|---:|---:|---:|---:|",
        ]
        for x in r["sweep"]:
            lines.append(
                f"| {x['chunk_size']} | {fmt(x['delivered_fps'])} | {fmt(x['cpu_ms_per_frame'], 2)} "
                f"| {x['datagrams_per_s']} | {fmt(x['other_cores'], 2)} |"
            )
        lines.append("")
    k = r.get("keyed")
    lines += ["## Keyed mode (1280x720, unpaced)", ""]
    if k and k.get("available") and k.get("by_chunk"):
        titles = {"plain": "plain", "keyed": "keyed (`--key-file`)",
                  "chacha": "keyed, `--aead chacha20-poly1305`"}
        lines += [
            f"{k['rounds']} rounds; in each, the modes run back to back at each chunk size (which goes "
            "first rotates). Medians of the runs, and the median of the rounds' keyed/plain ratios, "
            "so that a slow spell of the machine falls on one round, not on one mode. The cipher is "
            "what the two ends agreed on (the summaries' `aead`).",
            "",
            "| chunk bytes | mode | cipher | fps | keyed/plain fps | CPU ms/frame | keyed/plain CPU | fps in each round |",
            "|---:|---|---|---:|---:|---:|---:|---|",
        ]
        for e in k["by_chunk"]:
            for mode, m in e["modes"].items():
                per_round = ", ".join(fmt(x[mode]["delivered_fps"]) for x in e["rounds"])
                lines.append(
                    f"| {e['chunk_size']} | {titles.get(mode, mode)} | {m['aead'] or '–'} | {fmt(m['fps'])} "
                    f"| {fmt(m.get('fps_ratio'), 2)} | {fmt(m['cpu_ms_per_frame'], 2)} "
                    f"| {fmt(m.get('cpu_ratio'), 2)} | {per_round} |"
                )
        lines.append("")
    else:
        lines += ["Keyed mode: not measured (the programs have no `--key-file`, or `--gen-key` failed).", ""]
    lines += uhd_section(r)
    lines += fanout_section(r)
    lines += targets_section(r)
    return "\n".join(lines) + "\n"


def uhd_section(r):
    s = next((s for s in r["sizes"] if s["size"] == size_name(UHD)), None)
    if not s:
        return []
    lines = [
        f"## Targets ({s['size']} live)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for key, title in [("paced", f"{DEFAULT_CHUNK} B chunks"), ("paced_local", f"{LOCAL_CHUNK} B chunks")]:
        p = s.get(key)
        if not p:
            continue
        checks = [
            ("≥ 29 fps decoded at 30 fps", p["delivered_fps"], p["delivered_fps"] >= 29, "{:.1f} fps"),
            ("p99 capture-to-decode ≤ 150 ms", p["latency_p99_ms"] or math.inf,
             (p["latency_p99_ms"] or math.inf) <= 150, "{:.1f} ms"),
            ("every frame delivered", p["delivered_fraction"], p["delivered_fraction"] >= 1.0, "{:.2%}"),
        ]
        for name, value, met, form in checks:
            lines.append(f"| {name} ({title}) | {form.format(value)} | {'yes' if met else 'no'} |")
        sent = p["client"].get("frames_sent") or 0
        dropped = p["client"].get("capture_dropped") or 0
        lines.append(
            f"| frames the client skipped while the viewer was busy ({title}) | {dropped} of "
            f"{sent + dropped} captured | – |"
        )
    g = s.get("gstreamer_paced")
    if g:
        lines.append(
            f"| GStreamer at 30 fps, beside it | {g['delivered_fps']:.1f} fps, {g['delivered_fraction']:.1%} "
            f"delivered, {fmt(g['cpu_ms_per_frame'], 1)} ms CPU/frame | – |"
        )
    return lines + [""]


def fanout_section(r):
    f = r.get("fanout")
    if not f:
        return []
    met = f["cost_cores"] <= 0.5 and (f["parts_min"] or 0) >= 0.95 * f["expected_parts"]
    return [
        f"## Fan-out: {f['readers']} `/stream` readers of one 720p30 stream ({f['seconds']:.0f} s)",
        "",
        "| | viewer CPU | UDP stream | parts per reader (min / median) |",
        "|---|---:|---:|---:|",
        f"| no readers | {f['viewer_cores_without_readers']:.2f} cores | {fmt(f['udp_fps_without_readers'])} fps | – |",
        f"| {f['readers']} readers + 1 stalled | {f['viewer_cores']:.2f} cores | {fmt(f['udp_fps'])} fps | "
        f"{f['parts_min']} / {f['parts_median']} of about {f['expected_parts']} |",
        "",
        f"The readers cost the viewer {f['cost_cores']:.2f} core (target ≤ 0.5, every reader ≥ 95% of "
        f"the frames: {'met' if met else 'not met'}). One shared copy of each frame, no re-encode.",
        "",
    ]


def targets_section(r):
    s = next((s for s in r["sizes"] if s["size"] == "1280x720"), None)
    if not s:
        return []
    codec, g, gb = s["codec"], s["gstreamer"], s.get("gstreamer_buffer")
    lines = [
        "## Targets (1280x720)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for key, title in [("camstream_local", f"{LOCAL_CHUNK} B chunks"), ("camstream", f"{DEFAULT_CHUNK} B chunks")]:
        c = s.get(key)
        if not c:
            continue
        checks = [
            ("fps ≥ 90% of the codec limit", c["delivered_fps"] / codec["limit_fps"], 0.9, "{:.2f}× limit"),
            ("fps ≥ 1.2× GStreamer's (as written)", c["delivered_fps"] / g["delivered_fps"] if g["delivered_fps"] else math.inf, 1.2, "{:.2f}×"),
            ("fps ≥ 1.2× GStreamer's (4 MiB buffer)", c["delivered_fps"] / gb["delivered_fps"] if gb and gb["delivered_fps"] else math.inf, 1.2, "{:.2f}×"),
            ("CPU/frame ≤ 1.2× codec floor", c["cpu_ms_per_frame"] / codec["floor_ms"], -1.2, "{:.2f}× floor"),
            ("CPU/frame ≤ 0.75× GStreamer's (as written)", c["cpu_ms_per_frame"] / g["cpu_ms_per_frame"] if g["cpu_ms_per_frame"] else 0.0, -0.75, "{:.2f}×"),
            ("CPU/frame ≤ 0.75× GStreamer's (4 MiB buffer)", c["cpu_ms_per_frame"] / gb["cpu_ms_per_frame"] if gb and gb["cpu_ms_per_frame"] else 0.0, -0.75, "{:.2f}×"),
            ("100% delivered without loss", c["delivered_fraction"], 1.0, "{:.2%}"),
        ]
        for name, value, bound, form in checks:
            met = value <= -bound if bound < 0 else value >= bound
            lines.append(f"| {name} ({title}) | {form.format(value)} | {'yes' if met else 'no'} |")
    five = next((x for x in r["loss"]["camstream"] if x["loss_percent"] == 5), None)
    if five and r["loss"]["size"] == "1280x720":
        lines.append(f"| ≥ 99% delivered at 5% loss | {five['delivered_fraction']:.2%} | {'yes' if five['delivered_fraction'] >= 0.99 else 'no'} |")
    k = r.get("keyed") or {}
    for e in k.get("by_chunk", []):
        m = e["modes"].get("keyed", {})
        if m.get("fps_ratio") is not None:
            lines.append(
                f"| keyed fps ≥ 90% of plain ({m['aead']}, median of {k['rounds']} rounds, {e['chunk_size']} B chunks) "
                f"| {m['fps_ratio']:.2f}× | {'yes' if m['fps_ratio'] >= 0.9 else 'no'} |"
            )
    bound = codec["encode_ms"] + codec["decode_bgrx_ms"] + 2
    for p in [s.get("paced_local"), s.get("paced")]:
        if p and p.get("latency_p50_ms") is not None:
            met = p["latency_p50_ms"] <= bound
            lines.append(
                f"| 30 fps latency p50 ≤ encode + decode + 2 ms ({bound:.1f} ms; {p['chunk_size']} B chunks) "
                f"| {p['latency_p50_ms']:.1f} ms | {'yes' if met else 'no'} |"
            )
    return lines + [""]


def svg_chart(r):
    """Two panels: delivered fps and delivered fraction against injected loss."""
    loss = r["loss"]
    series = [
        (f"camstream ({DEFAULT_CHUNK} B chunks)", "#1f77b4", loss["camstream"]),
        ("GStreamer (4 MiB udpsrc buffer)", "#ff7f0e", loss["gstreamer"]),
    ]
    width, height = 880, 410
    panel_w, panel_h = 340, 250
    panels = [(70, "delivered fps", "delivered_fps"), (510, "delivered fraction", "delivered_fraction")]
    top = 70
    max_loss = max(LOSSES)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16">'
        f"camstream and GStreamer against injected loss ({loss['size']}, loopback, {r['machine']['nproc']} cores)</text>",
    ]
    for x0, title, key in panels:
        values = [x[key] for _, _, runs in series for x in runs]
        if key == "delivered_fraction":
            y_max, ticks, label = 1.0, [0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v:.0%}"
        else:
            y_max = max(values + [1]) * 1.1
            step = nice_step(y_max / 5)
            ticks = [i * step for i in range(int(y_max / step) + 1)]
            y_max = max(y_max, ticks[-1])
            label = lambda v: f"{v:.0f}"
        px = lambda l: x0 + l / max_loss * panel_w
        py = lambda v: top + panel_h - v / y_max * panel_h
        out.append(f'<text x="{x0 + panel_w / 2}" y="{top - 12}" text-anchor="middle" font-size="14">{title}</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#888"/>')
        for t in ticks:
            out.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label(t)}</text>')
        for l in LOSSES:
            out.append(f'<text x="{px(l):.1f}" y="{top + panel_h + 18}" text-anchor="middle">{l}%</text>')
        out.append(f'<text x="{x0 + panel_w / 2}" y="{top + panel_h + 38}" text-anchor="middle">injected loss</text>')
        for name, colour, runs in series:
            points = " ".join(f"{px(x['loss_percent']):.1f},{py(x[key]):.1f}" for x in runs)
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
            for x in runs:
                out.append(f'<circle cx="{px(x["loss_percent"]):.1f}" cy="{py(x[key]):.1f}" r="4" fill="{colour}"/>')
    for i, (name, colour, _) in enumerate(series):
        x = width / 2 - 250 + i * 260
        out.append(f'<line x1="{x}" x2="{x + 24}" y1="{height - 16}" y2="{height - 16}" stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{x + 30}" y="{height - 12}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(raw):
    exponent = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * exponent:
            return m * exponent
    return 10 * exponent


# -- main -----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each streaming run")
    ap.add_argument("--codec-seconds", type=float, default=2.0, help="per codec step")
    ap.add_argument(
        "--rounds", type=int, default=2,
        help="interleaved rounds of the unpaced and paced runs; the best of each is reported",
    )
    ap.add_argument(
        "--keyed-rounds", type=int, default=5,
        help="rounds of plain/keyed pairs at 1280x720; the median of their ratios is reported",
    )
    ap.add_argument("--sizes", default=",".join(size_name(s) for s in SIZES))
    ap.add_argument("--loss-size", default="1280x720")
    ap.add_argument("--no-sweep", action="store_true", help="skip the chunk-size sweep")
    ap.add_argument("--out", default=str(ROOT / "bench"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, clips)")
    ap.add_argument(
        "--quick", action="store_true",
        help="1280x720 and 3840x2160 only, one round, loss at 0 and 5%%, no sweep, no keyed rows "
        "(about 5 minutes)",
    )
    ap.add_argument(
        "--fanout-readers", type=int, default=100,
        help="HTTP /stream readers in the fan-out row (0 skips it)",
    )
    ap.add_argument(
        "--fanout-only", action="store_true",
        help="only the fan-out row (1280x720), written to fanout.md and fanout.json",
    )
    args = ap.parse_args()
    if args.fanout_only:
        args.sizes = "1280x720"
    losses = LOSSES
    if args.quick:
        if args.sizes == ",".join(size_name(s) for s in SIZES):
            args.sizes = ",".join(size_name(s) for s in QUICK_SIZES)
        args.rounds = 1
        args.no_sweep = True
        args.keyed_rounds = 0
        losses = [0, 5]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    loss_size = tuple(int(v) for v in args.loss_size.split("x"))
    if loss_size not in sizes:
        sizes.append(loss_size)

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    workdir = Path(tempfile.mkdtemp(prefix="camstream-bench-", dir=base))
    log(f"work directory {workdir}")
    bench = Bench(args, workdir)
    bench.bins.mkdir()
    # Copies, so that a rebuild during the run cannot change what is measured.
    release = ROOT / "target" / "release"
    for name, path in [
        ("cam-client", release / "cam-client"),
        ("cam-viewer", release / "cam-viewer"),
        ("relay", release / "examples" / "relay"),
        ("texture_y4m", release / "examples" / "texture_y4m"),
        ("codec_limit", release / "examples" / "codec_limit"),
    ]:
        shutil.copy2(path, bench.bins / name)

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "quality": QUALITY,
        "clip_frames": CLIP_FRAMES,
        "load_before": os.getloadavg(),
        "sizes": [],
    }
    try:
        clips = {}
        for size in sizes:
            name = size_name(size)
            clip, raw = workdir / f"{name}.y4m", workdir / f"raw-{name}"
            frames = UHD_CLIP_FRAMES if size == UHD else CLIP_FRAMES
            subprocess.run(
                [bench.bins / "texture_y4m", name, str(frames), clip, raw], check=True
            )
            clips[size] = (clip, raw)

        secs = args.seconds
        if args.fanout_only:
            result["fanout"] = bench.fanout(clips[(1280, 720)][0], secs, args.fanout_readers)
            result["load_after"] = os.getloadavg()
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "fanout.json").write_text(json.dumps(result, indent=1) + "\n")
            (out / "fanout.md").write_text("\n".join(fanout_section(result)) + "\n")
            log(f"wrote {out}/fanout.md and fanout.json")
            return
        for size in [s for s in sizes if size_name(s) in args.sizes.split(",")]:
            name = size_name(size)
            clip, raw = clips[size]
            log(f"{name}: codec limit")
            entry = {
                "size": name,
                "codec": bench.tjbench(raw, size),
                "codec_limit_example": bench.codec_limit(clip),
            }
            log(f"{name}: tjbench {entry['codec']}")
            log(f"{name}: examples/codec_limit {entry['codec_limit_example']}")
            runs = {
                "camstream": lambda r: bench.camstream(f"camstream {name} #{r}", clip, secs),
                "camstream_local": lambda r: bench.camstream(
                    f"camstream {name} chunk {LOCAL_CHUNK} #{r}", clip, secs, chunk=LOCAL_CHUNK
                ),
                "gstreamer": lambda r: bench.gstreamer(f"gstreamer {name} #{r}", raw, size, secs),
                "gstreamer_buffer": lambda r: bench.gstreamer(
                    f"gstreamer {name} buffer #{r}", raw, size, secs, buffer_size=GST_BUFFER
                ),
                "paced": lambda r: bench.camstream(f"camstream {name} 30 fps #{r}", clip, secs, fps=30),
                "paced_local": lambda r: bench.camstream(
                    f"camstream {name} 30 fps chunk {LOCAL_CHUNK} #{r}", clip, secs, fps=30,
                    chunk=LOCAL_CHUNK,
                ),
            }
            if size == UHD:
                # Live 4K: paced at 30 fps for 10 s (latency, every frame delivered), beside
                # GStreamer paced at 30 fps too (udpsink sync=true) with a 4 MiB buffer, and
                # each unpaced.
                usecs = max(secs, UHD_SECONDS)
                runs = {
                    "paced": lambda r: bench.camstream(f"camstream {name} 30 fps #{r}", clip, usecs, fps=30),
                    "paced_local": lambda r: bench.camstream(
                        f"camstream {name} 30 fps chunk {LOCAL_CHUNK} #{r}", clip, usecs, fps=30,
                        chunk=LOCAL_CHUNK,
                    ),
                    "gstreamer_paced": lambda r: bench.gstreamer(
                        f"gstreamer {name} 30 fps buffer #{r}", raw, size, usecs,
                        buffer_size=GST_BUFFER, paced=True,
                    ),
                    "camstream": lambda r: bench.camstream(f"camstream {name} #{r}", clip, secs),
                    "gstreamer_buffer": lambda r: bench.gstreamer(
                        f"gstreamer {name} buffer #{r}", raw, size, secs, buffer_size=GST_BUFFER
                    ),
                }
            # Rounds interleave the pipelines, so that a busy spell on the machine falls on all
            # of them; each keeps its least disturbed run (the most fps, or the lowest latency
            # when paced), and the others stay in the JSON.
            tried = {key: [] for key in runs}
            for r in range(1, args.rounds + 1):
                for key, run in runs.items():
                    tried[key].append(run(r))
            for key, results in tried.items():
                if key.startswith("paced"):
                    best = min(results, key=lambda x: x["latency_p50_ms"] or math.inf)
                elif key == "gstreamer_paced":
                    best = max(results, key=lambda x: x["delivered_fraction"])
                else:
                    best = max(results, key=lambda x: x["delivered_fps"])
                entry[key] = dict(best, rounds=[
                    {k: x[k] for k in ("delivered_fps", "delivered_fraction", "cpu_ms_per_frame",
                                       "latency_p50_ms", "other_cores") if k in x}
                    for x in results
                ])
            # Measured again after the streams: the limit is what the codec can do here, so
            # the faster of the two counts (a busy moment slows the codec, not the limit).
            entry["codec"] = best_tjbench(entry["codec"], bench.tjbench(raw, size))
            entry["codec_limit_example"] = best_codec(
                entry["codec_limit_example"], bench.codec_limit(clip)
            )
            log(f"{name}: codec limit {entry['codec']}")
            result["sizes"].append(entry)

        clip, raw = clips[loss_size]
        name = size_name(loss_size)
        result["loss"] = {"size": name, "camstream": [], "gstreamer": []}
        for loss in losses:
            result["loss"]["camstream"].append(
                bench.camstream(f"camstream {name} loss {loss}", clip, secs, loss=loss)
            )
            result["loss"]["gstreamer"].append(
                bench.gstreamer(
                    f"gstreamer {name} loss {loss}", raw, loss_size, secs, loss=loss,
                    buffer_size=GST_BUFFER,
                )
            )

        sweep_size = (1280, 720)
        if not args.no_sweep and sweep_size in clips:
            result["sweep_size"] = size_name(sweep_size)
            result["sweep"] = [
                bench.camstream(f"camstream sweep chunk {chunk}", clips[sweep_size][0], secs, chunk=chunk)
                for chunk in SWEEP_CHUNKS
            ]

        keyed = {"available": False}
        if args.keyed_rounds > 0 and (1280, 720) in clips and all(
            has_flag(bench.bins / b, "--key-file") for b in ("cam-client", "cam-viewer")
        ):
            key = workdir / "bench.key"
            gen = subprocess.run(
                [bench.bins / "cam-client", "--gen-key", key], capture_output=True, text=True
            )
            if gen.returncode == 0 and key.exists():
                chacha = has_flag(bench.bins / "cam-client", "--aead")
                keyed = bench.keyed(clips[(1280, 720)][0], secs, key, args.keyed_rounds, chacha)
            else:
                log(f"--gen-key failed: {gen.stderr.strip()}")
        result["keyed"] = keyed
        if args.fanout_readers > 0 and (1280, 720) in clips and has_flag(
            bench.bins / "cam-viewer", "--http"
        ):
            result["fanout"] = bench.fanout(clips[(1280, 720)][0], secs, args.fanout_readers)
        result["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "latest.md").write_text(markdown(result))
    (out / "latest.svg").write_text(svg_chart(result))
    log(f"wrote {out}/latest.md, latest.json and latest.svg")
    print((out / "latest.md").read_text())


if __name__ == "__main__":
    main()
