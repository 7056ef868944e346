//! `--msg-port`: small JSON messages beside the video, as the original example's port 6666
//! took them. Each datagram is checked (at most [`MAX_MESSAGE`] bytes, one JSON value), printed
//! as a JSON line on stdout with its sender and arrival time, kept as the latest message for
//! the on-screen display, and answered: `{"ok":true}` or `{"ok":false,"error":"…"}`, or in
//! classic mode the original's `get the msg` (and an error text where the original's thread
//! died). One thread, one datagram at a time, so memory stays bounded whatever arrives.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::de::IgnoredAny;
use serde::Serialize;

use crate::frontend::Protocol;
use crate::jsonout;
use crate::net::canonical;
use crate::refusals::RateLimit;

/// Largest message accepted, even when it is valid JSON.
pub const MAX_MESSAGE: usize = 8 * 1024;
/// The original server's answer to a message.
pub const CLASSIC_REPLY: &[u8] = b"get the msg";
/// Longest sleep in `recv`, so the stop flag is seen promptly.
const POLL: Duration = Duration::from_millis(100);

/// The latest valid message, compact JSON, for the on-screen display.
pub type LatestMessage = Arc<Mutex<Option<String>>>;

/// How answers are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStyle {
    /// `{"ok":true}` / `{"ok":false,"error":"…"}`.
    Json,
    /// The original example's `get the msg`, and `error: …` for what it could not take.
    Classic,
}

/// What a message port datagram turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: the message as compact JSON (insignificant whitespace removed, nothing else
    /// changed: key order and number spelling are the sender's).
    Accepted(String),
    Refused(String),
}

/// Checks one datagram.
pub fn judge(bytes: &[u8]) -> Verdict {
    if bytes.is_empty() {
        return Verdict::Refused("empty message; send one JSON value, e.g. [0,0,0,1]".into());
    }
    if bytes.len() > MAX_MESSAGE {
        return Verdict::Refused(format!(
            "message of {} bytes is over the limit of {MAX_MESSAGE} bytes",
            bytes.len()
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Verdict::Refused(format!("not UTF-8 text: {e}")),
    };
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => Verdict::Accepted(compact_json(text)),
        Err(e) => Verdict::Refused(format!("not JSON: {e}")),
    }
}

/// Removes whitespace outside strings from text that is already known to be valid JSON.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[derive(Serialize)]
struct JsonReply<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The answer to a datagram, in `style`.
pub fn reply(verdict: &Verdict, style: ReplyStyle) -> Vec<u8> {
    match (style, verdict) {
        (ReplyStyle::Classic, Verdict::Accepted(_)) => CLASSIC_REPLY.to_vec(),
        (ReplyStyle::Classic, Verdict::Refused(error)) => format!("error: {error}").into_bytes(),
        (ReplyStyle::Json, verdict) => {
            let error = match verdict {
                Verdict::Accepted(_) => None,
                Verdict::Refused(error) => Some(error.as_str()),
            };
            serde_json::to_vec(&JsonReply {
                ok: error.is_none(),
                error,
            })
            .unwrap_or_else(|_| br#"{"ok":false,"error":"internal error"}"#.to_vec())
        }
    }
}

/// The stdout line for an accepted message.
pub fn message_line(from: SocketAddr, time_us: u64, compact: &str) -> String {
    format!(
        r#"{{"type":"msg","from":"{}","time_us":{time_us},"msg":{compact}}}"#,
        canonical(from)
    )
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgReport {
    pub messages: u64,
    pub refused: u64,
}

/// Opens `--msg-port` (same address rules as `--port`) and starts its thread, if asked for.
pub fn start(
    port: Option<u16>,
    bind: Option<IpAddr>,
    protocol: Protocol,
    latest: LatestMessage,
    stop: Arc<AtomicBool>,
) -> Result<Option<JoinHandle<MsgReport>>> {
    let Some(port) = port else {
        return Ok(None);
    };
    let socket = crate::net::bind(bind, port).context("cannot open --msg-port")?;
    let local = socket
        .local_addr()
        .context("cannot read the message port's address")?;
    log::info!("taking JSON messages on {local}");
    let style = match protocol {
        Protocol::Camstream | Protocol::Rtp => ReplyStyle::Json,
        Protocol::Classic => ReplyStyle::Classic,
    };
    spawn(socket, style, latest, stop).map(Some)
}

/// Starts the message port's thread on `socket`. It ends when `stop` is set.
pub fn spawn(
    socket: UdpSocket,
    style: ReplyStyle,
    latest: LatestMessage,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<MsgReport>> {
    socket
        .set_read_timeout(Some(POLL))
        .context("cannot set the message port's timeout")?;
    std::thread::Builder::new()
        .name("msg-port".into())
        .spawn(move || serve(&socket, style, &latest, &stop))
        .context("cannot start the message port thread")
}

fn serve(
    socket: &UdpSocket,
    style: ReplyStyle,
    latest: &Mutex<Option<String>>,
    stop: &AtomicBool,
) -> MsgReport {
    let mut report = MsgReport::default();
    // Room for any UDP datagram, so that an oversized message is seen whole and refused.
    let mut buf = vec![0u8; 65_536];
    // One line per refused message otherwise: a byte at a time made 158 MB of stderr in 10 s.
    let mut limit = RateLimit::per_event();
    let mut video = VideoHint::default();
    while !stop.load(Ordering::Relaxed) {
        let left_out = limit.poll_left_out(Instant::now());
        log_left_out(&limit, left_out);
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock
                        | ErrorKind::TimedOut
                        | ErrorKind::Interrupted
                        | ErrorKind::ConnectionRefused
                ) =>
            {
                continue
            }
            Err(e) => {
                log::warn!("the message port stopped: {e}");
                break;
            }
        };
        let verdict = judge(&buf[..n]);
        match &verdict {
            Verdict::Accepted(compact) => {
                report.messages += 1;
                if let Err(e) = jsonout::raw_line(&message_line(from, wall_clock_us(), compact)) {
                    if limit.admit(Instant::now()) {
                        log::warn!("cannot print a message: {e}");
                    }
                }
                *latest
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(compact.clone());
            }
            Verdict::Refused(why) => {
                report.refused += 1;
                if let Some(line) = video.hint(&buf[..n]) {
                    if limit.admit(Instant::now()) {
                        log::warn!("{line}");
                        video.told = true;
                    }
                } else if limit.admit(Instant::now()) {
                    log::info!("refused a message from {}: {why}", canonical(from));
                }
            }
        }
        if let Err(e) = socket.send_to(&reply(&verdict, style), from) {
            log::debug!("answer to {from} not sent: {e}");
        }
    }
    let left_out = limit.take_left_out();
    log_left_out(&limit, left_out);
    report
}

/// Says once that refused messages look like video, which belongs on `--port`: a sender
/// pointed at the wrong port learns where to point it instead of reading "not JSON".
#[derive(Debug, Default)]
struct VideoHint {
    told: bool,
}

impl VideoHint {
    /// The line to log for a refused datagram, until one has been logged.
    fn hint(&self, bytes: &[u8]) -> Option<String> {
        if self.told {
            return None;
        }
        let looks = cam_proto::rtp::classify(bytes)?;
        let protocol = looks.protocol()?;
        Some(format!(
            "datagrams at the message port look like video ({looks}): send them to --port \
             (with --protocol {protocol}); this port takes JSON messages"
        ))
    }
}

fn log_left_out(limit: &RateLimit, left_out: Option<u64>) {
    if let Some(n) = left_out {
        log::info!(
            "message port: {n} more refused or unprintable messages were not logged ({}; all \
             are counted in the final count)",
            limit.describe()
        );
    }
}

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn video_at_the_message_port_is_named_until_told() {
        let rtp_jpeg = [
            0x80, 26, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 1, 80, 80, 60, 0xab,
        ];
        let mut hint = VideoHint::default();
        let line = hint.hint(&rtp_jpeg).unwrap();
        assert!(
            line.contains("look like video (RTP/JPEG") && line.contains("--port"),
            "{line}"
        );
        assert!(hint.hint(b"CS\x01\x02rest").is_some());
        assert_eq!(hint.hint(b"not json"), None);
        hint.told = true;
        assert_eq!(hint.hint(&rtp_jpeg), None);
    }

    #[test]
    fn valid_json_is_kept_as_sent_minus_whitespace() {
        assert_eq!(judge(b"[0,0,0,1]"), Verdict::Accepted("[0,0,0,1]".into()));
        assert_eq!(
            judge(b" {\"b\" : 1.50,\n \"a\": \"x y\\\" \\\\\" }\n"),
            Verdict::Accepted(r#"{"b":1.50,"a":"x y\" \\"}"#.into())
        );
        assert_eq!(judge(b"\"a\""), Verdict::Accepted("\"a\"".into()));
    }

    #[test]
    fn invalid_empty_and_oversized_are_refused() {
        for bad in [&b"[0,0"[..], b"", b"{} {}", b"\xff\xfe", b"nope"] {
            assert!(
                matches!(judge(bad), Verdict::Refused(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!("\"{}\"", "x".repeat(MAX_MESSAGE - 2));
        assert!(matches!(judge(big.as_bytes()), Verdict::Accepted(_)));
        let too_big = format!("\"{}\"", "x".repeat(MAX_MESSAGE - 1));
        let Verdict::Refused(why) = judge(too_big.as_bytes()) else {
            panic!("8 KiB + 1 accepted");
        };
        assert!(why.contains("8192"), "{why}");
    }

    #[test]
    fn replies_in_both_styles() {
        let ok = Verdict::Accepted("1".into());
        let bad = Verdict::Refused("not JSON: x".into());
        assert_eq!(reply(&ok, ReplyStyle::Json), br#"{"ok":true}"#);
        assert_eq!(
            reply(&bad, ReplyStyle::Json),
            br#"{"ok":false,"error":"not JSON: x"}"#
        );
        assert_eq!(reply(&ok, ReplyStyle::Classic), b"get the msg");
        assert_eq!(reply(&bad, ReplyStyle::Classic), b"error: not JSON: x");
    }

    #[test]
    fn message_lines_are_json() {
        let from: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let line = message_line(from, 42, r#"{"a":[1,2]}"#);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "msg");
        assert_eq!(v["from"], "127.0.0.1:5000");
        assert_eq!(v["time_us"], 42);
        assert_eq!(v["msg"]["a"][1], 2);
    }
}
