//! Talking to `cam-viewer --http` from tests: plain requests over a `TcpStream` (so a test
//! sees exactly the bytes sent), a `/stream` part reader, and free TCP ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::procs::{start_viewer, Proc, PATIENCE};

/// A TCP port nobody uses right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless viewer with `--http` on a free loopback port: (viewer, UDP port, HTTP address).
pub fn start_http_viewer(extra: &[&str]) -> (Proc, u16, SocketAddr) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let http_s = http.to_string();
    let mut args = vec!["--http", http_s.as_str()];
    args.extend_from_slice(extra);
    let (viewer, port) = start_viewer(&args);
    assert!(
        viewer.wait_for_stderr("http: serving on", PATIENCE),
        "no --http: {}",
        viewer.stderr()
    );
    (viewer, port, http)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// `GET path` with `extra` header lines, `Connection: close`, the whole reply.
pub fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut body = all[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Reply { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// A `/stream` response read part by part, as a browser would.
pub struct PartReader {
    reader: BufReader<Box<dyn Read + Send>>,
    chunked: bool,
    /// Body bytes decoded but not consumed yet.
    pending: Vec<u8>,
    /// The boundary before the next part has been read.
    at_part: bool,
    pub head: String,
}

impl PartReader {
    /// Opens `path` (a `/stream` URL) on `addr`; panics unless it answers 200 multipart.
    pub fn open(addr: SocketAddr, path: &str, extra: &[&str]) -> PartReader {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(Box::new(s) as Box<dyn Read + Send>);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: multipart/x-mixed-replace; boundary=camstreamframe"),
            "{head}"
        );
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        PartReader {
            reader,
            chunked,
            pending: Vec::new(),
            at_part: false,
            head,
        }
    }

    fn fill(&mut self, need: usize) {
        while self.pending.len() < need {
            if self.chunked {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
                assert!(n > 0, "the stream ended");
                let at = self.pending.len();
                self.pending.resize(at + n, 0);
                self.reader.read_exact(&mut self.pending[at..]).unwrap();
                let mut crlf = [0; 2];
                self.reader.read_exact(&mut crlf).unwrap();
            } else {
                let mut buf = [0u8; 65536];
                let n = self.reader.read(&mut buf).unwrap();
                assert!(n > 0, "the stream ended");
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.fill(n);
        self.pending.drain(..n).collect()
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(p) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(p + 2);
                return String::from_utf8_lossy(&line[..p]).into_owned();
            }
            let have = self.pending.len();
            self.fill(have + 1);
        }
    }

    /// The next part's bytes. Checks the framing on the way: the boundary, a Content-Length,
    /// and the next boundary right after the bytes (so a browser can show the part at once).
    pub fn next_part(&mut self) -> Vec<u8> {
        if !self.at_part {
            assert_eq!(self.line(), "--camstreamframe");
        }
        let mut length = None;
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
            {
                length = Some(v.parse::<usize>().unwrap());
            }
        }
        let length = length.expect("a part without Content-Length");
        let bytes = self.take(length);
        // The closing boundary comes with the part itself.
        assert_eq!(self.take(2), b"\r\n");
        assert_eq!(self.line(), "--camstreamframe");
        self.at_part = true;
        bytes
    }
}

/// Reads with a deadline, for sockets a test expects the server to close.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
