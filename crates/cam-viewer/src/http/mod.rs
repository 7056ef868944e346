//! `cam-viewer --http ADDR`: the streams for browsers and scripts.
//!
//! - `GET /`: a page with every stream live in a grid and its figures;
//! - `GET /stream[/ID]`: `multipart/x-mixed-replace` MJPEG of the exact received bytes;
//! - `GET /snapshot[/ID]`: the newest frame's exact bytes;
//! - `GET /state`: JSON, `{"streams": [...]}`.
//!
//! hyper's HTTP/1 server on a one-thread tokio runtime of its own: every connection is a task,
//! not a thread, so hundreds of readers and idle sockets cost a few KiB each; the parser is
//! hyper's (a 1 MB header is refused with 431 by `max_buf_size`, a slow header times out by
//! `header_read_timeout`), and one thread bounds what HTTP can take from the receive worker
//! and the decoder, which keep the other core.
//!
//! Fan-out: a `/stream` reader waits on its stream's `watch` in the [`Hub`] and, whenever
//! hyper asks for more body (that is, when the reader's socket took the previous part), is
//! given the newest frame. A slow reader skips frames; nothing is queued for it beyond the one
//! part hyper is writing, so it never holds memory or the others back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_stream::Stream;

use crate::hub::{Hub, Latest, StreamState};

/// Connections served at once; beyond this a new one is closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// The whole request head must arrive within this (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request in progress is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// A `/stream` reader that takes nothing for this long is closed: it holds a socket.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer limit: request heads beyond this are refused (431).
const MAX_BUF: usize = 16 * 1024;
/// Shortest token accepted from `--http-token-file`.
const MIN_TOKEN_LEN: usize = 16;

const PAGE: &str = include_str!("page.html");

/// `--http`, checked.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// `--http-token-file`: every request must carry it.
    pub token: Option<String>,
}

impl HttpConfig {
    /// Reads the token (the file's first line, trimmed).
    pub fn read_token(path: &Path) -> Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --http-token-file {}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.len() < MIN_TOKEN_LEN {
            bail!(
                "--http-token-file {}: the token must be at least {MIN_TOKEN_LEN} characters on \
                 the first line (e.g. from `openssl rand -hex 16`)",
                path.display()
            );
        }
        // Characters a URL carries as they are, so `?token=` needs no decoding.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            bail!(
                "--http-token-file {}: the token may hold only letters, digits and - . _ ~",
                path.display()
            );
        }
        Ok(token)
    }
}

/// What the server did, for the log at exit.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub connections: AtomicU64,
    pub refused_busy: AtomicU64,
    pub requests: AtomicU64,
    pub unauthorized: AtomicU64,
    pub parts_sent: AtomicU64,
    pub open: AtomicUsize,
}

/// The running server; [`HttpServer::stop`] ends it.
#[derive(Debug)]
pub struct HttpServer {
    pub local: SocketAddr,
    pub counters: Arc<HttpCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn stop(mut self) -> Arc<HttpCounters> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Arc::clone(&self.counters)
    }
}

/// Binds `config.addr` now (so a busy port fails at start-up) and serves on a thread.
pub fn start(config: HttpConfig, hub: Arc<Hub>) -> Result<HttpServer> {
    let listener = std::net::TcpListener::bind(config.addr)
        .with_context(|| format!("cannot listen for --http on {}", config.addr))?;
    listener
        .set_nonblocking(true)
        .context("cannot set up the --http socket")?;
    let local = listener
        .local_addr()
        .context("cannot read the --http address")?;
    if config.token.is_none() && !local.ip().is_loopback() {
        log::warn!(
            "--http on {local} without --http-token-file: anyone who can reach this address \
             can watch every stream"
        );
    }
    let counters = Arc::new(HttpCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the --http runtime")?;
    let shared = Arc::new(Shared {
        hub,
        token: config.token,
        counters: Arc::clone(&counters),
        started: Instant::now(),
    });
    let stop_flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                if let Err(e) = serve(listener, shared, stop_flag).await {
                    log::error!("--http stopped: {e:#}");
                }
            })
        })
        .context("cannot start the --http thread")?;
    log::info!("http: serving on http://{local}/");
    Ok(HttpServer {
        local,
        counters,
        stop,
        thread: Some(thread),
    })
}

#[derive(Debug)]
struct Shared {
    hub: Arc<Hub>,
    token: Option<String>,
    counters: Arc<HttpCounters>,
    started: Instant,
}

/// What the watchdog of a connection knows.
#[derive(Debug)]
struct ConnState {
    /// Requests whose response is not finished.
    busy: AtomicUsize,
    /// A `/stream` body is waiting for its camera's next frame, not for its reader.
    waiting_for_frame: AtomicBool,
    /// The last sign of life: a request arriving, a response or part handed to the socket.
    last: Mutex<Instant>,
}

impl ConnState {
    fn touch(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }
    fn quiet_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let listener = TcpListener::from_std(listener).context("cannot use the --http socket")?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on serving.
                    log::debug!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            shared.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        shared.counters.open.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            connection(tcp, Arc::clone(&shared), stop).await;
            shared.counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

async fn connection(tcp: tokio::net::TcpStream, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let state = Arc::new(ConnState {
        busy: AtomicUsize::new(0),
        waiting_for_frame: AtomicBool::new(false),
        last: Mutex::new(Instant::now()),
    });
    let service = {
        let state = Arc::clone(&state);
        hyper::service::service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(respond(req, &shared, state)) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    log::debug!("http: connection ended: {e}");
                }
                return;
            }
            _ = watchdog.tick() => {
                let quiet = state.quiet_for();
                let busy = state.busy.load(Ordering::Relaxed) > 0;
                let stalled = busy
                    && !state.waiting_for_frame.load(Ordering::Relaxed)
                    && quiet >= STALL_TIMEOUT;
                if stop.load(Ordering::SeqCst) || (!busy && quiet >= IDLE_TIMEOUT) || stalled
                {
                    return;
                }
            }
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", message)
}

/// The token from `Authorization: Bearer TOKEN` or `?token=TOKEN`.
fn presented_token(req: &Request<Incoming>) -> Option<&[u8]> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        return v.as_bytes().strip_prefix(b"Bearer ");
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::as_bytes)
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    // Constant time in the token's bytes; only its length can show through.
    presented_token(req).is_some_and(|t| bool::from(t.ct_eq(token.as_bytes())))
}

/// One request, answered without waiting: a `/stream` body produces its parts later.
fn respond(req: Request<Incoming>, shared: &Shared, state: Arc<ConnState>) -> Response<Body> {
    state.touch();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(token) = &shared.token {
        if !authorized(&req, token) {
            shared.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            let mut r = text(StatusCode::UNAUTHORIZED, "401: a token is needed\n");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405: GET only\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let (route, id) = match path.split_once('/').map(|(_, rest)| rest) {
        Some(rest) => match rest.split_once('/') {
            Some((route, id)) => (route, Some(id)),
            None => (rest, None),
        },
        None => ("", None),
    };
    // IDs are only ever compared with the hub's; nothing here names a file.
    match (route, id) {
        ("", None) => full(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        ("state", None) => state_json(shared),
        ("snapshot", id) => snapshot(shared, id),
        ("stream", id) => stream(shared, id, state),
        _ => text(StatusCode::NOT_FOUND, "404: no such page\n"),
    }
}

#[derive(Serialize)]
struct State {
    streams: Vec<StreamState>,
    uptime_s: f64,
    http_connections: usize,
}

fn state_json(shared: &Shared) -> Response<Body> {
    let state = State {
        streams: shared.hub.states(Instant::now()),
        uptime_s: (shared.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        http_connections: shared.counters.open.load(Ordering::Relaxed),
    };
    match serde_json::to_vec(&state) {
        Ok(body) => full(StatusCode::OK, "application/json", body),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "500\n"),
    }
}

fn content_type_of(bytes: &[u8]) -> &'static str {
    if crate::picture::is_png(bytes) {
        "image/png"
    } else {
        "image/jpeg"
    }
}

fn snapshot(shared: &Shared, id: Option<&str>) -> Response<Body> {
    let Some(rx) = shared.hub.subscribe(id) else {
        return text(StatusCode::NOT_FOUND, "404: no such stream\n");
    };
    let latest = rx.borrow().clone();
    let Some(Latest { bytes, .. }) = latest else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "503: no frame yet\n");
    };
    let content_type = content_type_of(&bytes);
    full(StatusCode::OK, content_type, Bytes::from_owner(bytes))
}

/// Marks a `/stream` response busy while it lives, so the watchdog tells a stalled reader
/// from an idle connection.
#[derive(Debug)]
struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

fn stream(shared: &Shared, id: Option<&str>, state: Arc<ConnState>) -> Response<Body> {
    let Some(rx) = shared.hub.subscribe(id) else {
        return text(StatusCode::NOT_FOUND, "404: no such stream\n");
    };
    state.busy.fetch_add(1, Ordering::Relaxed);
    let body = Parts {
        frames: tokio_stream::wrappers::WatchStream::new(rx),
        queued: std::collections::VecDeque::from([Bytes::from_static(OPENING.as_bytes())]),
        busy: Busy(state),
        counters: Arc::clone(&shared.counters),
    };
    let mut r = Response::new(BodyExt::boxed(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/x-mixed-replace; boundary=camstreamframe"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // nginx: pass parts on as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// The first boundary; every part ends with the next one.
const OPENING: &str = "--camstreamframe\r\n";
const CLOSING: &str = "\r\n--camstreamframe\r\n";

/// A `/stream` body. hyper polls it only when the reader's socket has taken what came before,
/// and each poll yields the newest frame then: a slow reader skips frames and holds at most
/// one part. A part goes out whole: its headers with its length, the exact bytes (shared, not
/// copied), and at once the next boundary, so a browser shows each frame when it arrives
/// instead of one behind.
struct Parts {
    frames: tokio_stream::wrappers::WatchStream<Option<Latest>>,
    queued: std::collections::VecDeque<Bytes>,
    busy: Busy,
    counters: Arc<HttpCounters>,
}

impl hyper::body::Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        self.busy.0.touch();
        if let Some(bytes) = self.queued.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        loop {
            match std::pin::Pin::new(&mut self.frames).poll_next(cx) {
                Poll::Ready(Some(Some(Latest { bytes, .. }))) => {
                    self.busy
                        .0
                        .waiting_for_frame
                        .store(false, Ordering::Relaxed);
                    self.counters.parts_sent.fetch_add(1, Ordering::Relaxed);
                    let head = format!(
                        "Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
                        content_type_of(&bytes),
                        bytes.len()
                    );
                    self.queued.push_back(Bytes::from_owner(bytes));
                    self.queued
                        .push_back(Bytes::from_static(CLOSING.as_bytes()));
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(head)))));
                }
                // No frame yet: wait for the first.
                Poll::Ready(Some(None)) => continue,
                // The stream is gone (the viewer stops).
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    self.busy.0.waiting_for_frame.store(true, Ordering::Relaxed);
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_first_lines() {
        let dir = std::env::temp_dir().join(format!("cam-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t");
        let read = |text: &str| {
            std::fs::write(&file, text).unwrap();
            HttpConfig::read_token(&file).map_err(|e| e.to_string())
        };
        assert_eq!(
            read("  0123456789abcdef \nignored\n").unwrap(),
            "0123456789abcdef"
        );
        assert!(read("short\n").unwrap_err().contains("at least 16"));
        assert!(read("0123456789abcdef&x=1\n")
            .unwrap_err()
            .contains("only letters"));
        assert!(read("").unwrap_err().contains("at least 16"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(HttpConfig::read_token(&file)
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }

    #[test]
    fn parts_end_with_the_next_boundary() {
        assert_eq!(OPENING, "--camstreamframe\r\n");
        assert_eq!(CLOSING, format!("\r\n{OPENING}"));
        assert_eq!(content_type_of(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(content_type_of(&[0xff, 0xd8, 0xff]), "image/jpeg");
    }
}
