//! stdout is for JSON lines only, and the summary is the last of them. Every line goes through
//! here: one lock serialises the writers (the message port's thread, the main thread), and once
//! the last line is out nothing else is printed.

use std::io::{self, Write};
use std::sync::Mutex;

use serde::Serialize;

/// True once the last line is out.
static CLOSED: Mutex<bool> = Mutex::new(false);

/// Prints one JSON value as a line. After [`last_line`] it prints nothing and returns `Ok`.
pub fn line<T: Serialize>(value: &T) -> io::Result<()> {
    write_line(&to_line(value)?, false)
}

/// Prints a line that is already one compact JSON value (no newline inside).
pub fn raw_line(json: &str) -> io::Result<()> {
    write_line(json, false)
}

/// Prints the final line (the summary); later lines are dropped.
pub fn last_line<T: Serialize>(value: &T) -> io::Result<()> {
    write_line(&to_line(value)?, true)
}

fn to_line<T: Serialize>(value: &T) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

fn write_line(json: &str, last: bool) -> io::Result<()> {
    let mut closed = CLOSED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *closed {
        return Ok(());
    }
    *closed = last;
    let mut out = io::stdout().lock();
    // Whoever read our output has gone: not an error of ours.
    cam_net::output::ignore_broken_pipe(writeln!(out, "{json}").and_then(|()| out.flush()))
}
