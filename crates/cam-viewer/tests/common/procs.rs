//! Running the real binaries: start them, wait for what they log (never a blind sleep),
//! read their JSON summaries, kill them on drop.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Generous: a shared 2-core CI machine can be slow; tests still finish early when all is well.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn viewer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cam-viewer"))
}

/// The client lives in another package, so cargo does not hand us its path: build it
/// (a no-op when it is fresh) and take the path cargo reports.
pub fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_release = viewer_bin()
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-p",
            "cam-client",
            "--bin",
            "cam-client",
            "--message-format",
            "json",
        ]);
        if profile_release {
            cmd.arg("--release");
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo build cam-client");
        assert!(out.status.success(), "building cam-client failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
            .find(|p| p.file_name().is_some_and(|n| n == "cam-client"))
            .expect("cargo reported no cam-client executable")
    })
    .clone()
}

/// A UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    stderr: String,
    closed: usize,
}

/// A running program whose output is collected as it comes.
pub struct Proc {
    pub name: String,
    child: Child,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Proc {
    pub fn start(program: &Path, args: &[&str]) -> Proc {
        Self::start_with(Command::new(program).args(args))
    }

    pub fn start_with(cmd: &mut Command) -> Proc {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let (lock, cv) = &*output;
                    let mut o = lock.lock().unwrap();
                    if is_err {
                        o.stderr.push_str(&line);
                        o.stderr.push('\n');
                    } else {
                        o.stdout.push(line);
                    }
                    cv.notify_all();
                }
                let (lock, cv) = &*output;
                lock.lock().unwrap().closed += 1;
                cv.notify_all();
            });
        }
        Proc {
            name,
            child,
            output,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.output.0.lock().unwrap().stderr.clone()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.output.0.lock().unwrap().stdout.clone()
    }

    /// Waits until stderr contains `needle`; false on timeout or when the program ended first.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let (lock, cv) = &*self.output;
        let end = Instant::now() + timeout;
        let mut o = lock.lock().unwrap();
        loop {
            if o.stderr.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= end || o.closed == 2 {
                return false;
            }
            o = cv.wait_timeout(o, end - now).unwrap().0;
        }
    }

    /// Waits for the program to end; None on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                let (lock, cv) = &*self.output;
                let mut o = lock.lock().unwrap();
                while o.closed < 2 && Instant::now() < end {
                    o = cv.wait_timeout(o, Duration::from_millis(50)).unwrap().0;
                }
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the end and returns the summary: the last stdout line, parsed as JSON.
    pub fn summary(&mut self, timeout: Duration) -> (ExitStatus, serde_json::Value) {
        let status = self.wait(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not finish within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        });
        let lines = self.stdout_lines();
        let last = lines.last().unwrap_or_else(|| {
            panic!(
                "{} printed nothing on stdout ({status}); stderr:\n{}",
                self.name,
                self.stderr()
            )
        });
        let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("{}: last stdout line is not JSON ({e}): {last}", self.name)
        });
        assert_eq!(v["type"], "summary", "{}: {last}", self.name);
        (status, v)
    }

    /// Sends a signal by number (15 = SIGTERM, 2 = SIGINT, 9 = SIGKILL).
    pub fn signal(&self, sig: i32) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// CPU time used so far (user + system), from /proc; clock ticks are 1/100 s on Linux.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a headless viewer on a free port and waits until it listens.
pub fn start_viewer(extra: &[&str]) -> (Proc, u16) {
    let port = free_udp_port();
    (start_viewer_on(port, extra), port)
}

/// Starts a headless viewer on `port` (e.g. the port of one that was killed) and waits
/// until it listens.
pub fn start_viewer_on(port: u16, extra: &[&str]) -> Proc {
    // Build the client first (a no-op when fresh): a viewer's --duration or --give-up clock
    // must never include compiling its peer.
    client_bin();
    let port_s = port.to_string();
    let mut args = vec!["--headless", "--port", &port_s];
    args.extend_from_slice(extra);
    let viewer = Proc::start(&viewer_bin(), &args);
    assert!(
        viewer.wait_for_stderr("waiting for a stream on", PATIENCE),
        "viewer did not start listening; stderr:\n{}",
        viewer.stderr()
    );
    viewer
}

pub fn start_client(port: u16, extra: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![addr.as_str()];
    args.extend_from_slice(extra);
    Proc::start(&client_bin(), &args)
}

pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no integer '{key}': {v}"))
}

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("camstream-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A client streaming the 320x240 test card at `fps`, for `frames` frames.
pub fn pattern_client(port: u16, fps: &str, frames: &str) -> Proc {
    start_client(
        port,
        &[
            "--source", "pattern", "--size", "320x240", "--fps", fps, "--frames", frames,
        ],
    )
}

/// Writes a 320x240 JPEG of one colour to `path`: a picture a screenshot can find.
pub fn write_solid_jpeg(path: &Path, rgb: [u8; 3]) {
    let pixels: Vec<u8> = (0..320 * 240).flat_map(|_| rgb).collect();
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(90).unwrap();
    let jpeg = c
        .compress_to_vec(turbojpeg::Image {
            pixels: &pixels[..],
            width: 320,
            pitch: 960,
            height: 240,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    std::fs::write(path, jpeg).unwrap();
}

/// Writes `count` distinct JPEGs (noise, so they are of realistic size) into `dir`.
pub fn write_jpegs(dir: &Path, count: usize, width: usize, height: usize) -> Vec<Vec<u8>> {
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(80).unwrap();
    let mut state = 0x1234_5678u32;
    (0..count)
        .map(|i| {
            let rgb: Vec<u8> = (0..width * height * 3)
                .map(|p| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    ((p / 3 % width) as u32 * 255 / width as u32) as u8 / 2 + (state % 128) as u8
                })
                .collect();
            let jpeg = compressor
                .compress_to_vec(turbojpeg::Image {
                    pixels: &rgb[..],
                    width,
                    pitch: width * 3,
                    height,
                    format: turbojpeg::PixelFormat::RGB,
                })
                .unwrap();
            std::fs::write(dir.join(format!("img-{i:03}.jpg")), &jpeg).unwrap();
            jpeg
        })
        .collect()
}

/// The saved frames in `dir`, in file-name (= arrival) order: the first stream's (in `dir`
/// itself), then each further stream's (in `dir/stream-ID/`).
pub fn saved_frames(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort_by_key(|p| (p.is_dir(), p.clone()));
    names
        .iter()
        .flat_map(|p| {
            if p.is_dir() {
                saved_frames(p)
            } else {
                vec![std::fs::read(p).unwrap()]
            }
        })
        .collect()
}

/// Checks `done` every few milliseconds until it holds; false on timeout. For what no log
/// line announces (a file appearing, a count growing), never as a blind sleep.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many entries `dir` holds (0 when it cannot be read).
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
