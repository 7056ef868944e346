//! `--send-msg JSON [ADDR]`: one message to a viewer's `--msg-port` (or the original example's
//! server on 6666), as the example's client sent `[0,0,0,1]`. The reply is printed as a JSON
//! line; a reply that is not JSON (the original's `get the msg`) is a plain reply and counts
//! as success. Only `{"ok":false,…}` or no reply at all is a failure.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cam_proto::classic::MAX_ONE_DATAGRAM;
use serde::Serialize;
use serde_json::Value;

/// Where the message goes when no address is given: the example's message port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6666";
/// Tries before giving up; each waits [`WAIT`] for the reply.
pub const ATTEMPTS: u32 = 3;
pub const WAIT: Duration = Duration::from_secs(1);

/// How a reply reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON reply; `Some(error)` when it says `"ok": false`.
    Json { value: Value, error: Option<String> },
    /// Anything else, e.g. the original server's `get the msg`.
    Text(String),
}

pub fn interpret(bytes: &[u8]) -> Reply {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => {
            let error = (value.get("ok") == Some(&Value::Bool(false))).then(|| {
                value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_string()
            });
            Reply::Json { value, error }
        }
        Err(_) => Reply::Text(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// Sends `message`, waits for the reply, prints it; the exit code says how it went.
pub fn run(message: &str, addr: Option<&str>) -> Result<ExitCode> {
    let text = addr.unwrap_or(DEFAULT_ADDR);
    let to = crate::cli::resolve(text)?;
    if message.len() > MAX_ONE_DATAGRAM {
        bail!(
            "a message of {} bytes does not fit one datagram (at most {MAX_ONE_DATAGRAM}; a viewer takes at most 8192)",
            message.len()
        );
    }
    let local: SocketAddr = if to.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).context("cannot bind a local UDP port")?;
    // Connected: replies from anyone else are dropped by the kernel.
    socket
        .connect(to)
        .with_context(|| format!("cannot reach {to} (no route?)"))?;
    let mut refused = false;
    let mut buf = vec![0u8; 65_536];
    for attempt in 1..=ATTEMPTS {
        match socket.send(message.as_bytes()) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused = true,
            Err(e) => return Err(e).with_context(|| format!("cannot send to {to}")),
        }
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            socket
                .set_read_timeout(Some(left))
                .context("cannot set the socket timeout")?;
            match socket.recv(&mut buf) {
                Ok(n) => return report(&buf[..n], to, attempt),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                // The port said nobody listens (ICMP); keep waiting out this try.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    refused = true;
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("cannot receive from {to}")),
            }
        }
        log::debug!("no reply to try {attempt} of {ATTEMPTS}");
    }
    bail!(
        "no reply from {text} ({to}) after {ATTEMPTS} tries of {} s{}: is cam-viewer running there with --msg-port {}?",
        WAIT.as_secs(),
        if refused {
            " (its host says nothing listens on that port)"
        } else {
            ""
        },
        to.port()
    )
}

/// The stdout line for a reply: `{"type":"reply",…}` with `reply` (JSON) or `text`.
#[derive(Debug, Serialize)]
struct ReplyLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from: String,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

fn report(bytes: &[u8], from: SocketAddr, attempts: u32) -> Result<ExitCode> {
    let reply = interpret(bytes);
    let mut line = ReplyLine {
        kind: "reply",
        from: from.to_string(),
        attempts,
        reply: None,
        text: None,
    };
    let error = match &reply {
        Reply::Json { value, error } => {
            line.reply = Some(value);
            error.as_deref()
        }
        Reply::Text(text) => {
            line.text = Some(text);
            None
        }
    };
    println!("{}", serde_json::to_string(&line)?);
    Ok(match error {
        Some(error) => {
            eprintln!("cam-client: error: the viewer refused the message: {error}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies() {
        assert_eq!(
            interpret(br#"{"ok":true}"#),
            Reply::Json {
                value: json!({"ok": true}),
                error: None
            }
        );
        assert_eq!(
            interpret(br#"{"ok":false,"error":"not JSON"}"#),
            Reply::Json {
                value: json!({"ok": false, "error": "not JSON"}),
                error: Some("not JSON".into())
            }
        );
        assert_eq!(interpret(b"get the msg"), Reply::Text("get the msg".into()));
        assert!(matches!(interpret(b"[1]"), Reply::Json { error: None, .. }));
    }
}
