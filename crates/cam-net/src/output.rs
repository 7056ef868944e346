//! Printing a line where the reader may have gone: a closed pipe (`cam-viewer | head -1`, a
//! log collector that died) must never panic a program that has a stream to keep going.
//! `println!`/`eprintln!` panic on any write error; these return or drop it instead.
//!
//! `env_logger` needs nothing from here: it drops write errors on stderr itself (its
//! `Logger::log` ignores the result of printing; checked in env_logger 0.11).

use std::io::{self, ErrorKind, Write};

/// Prints `line` and a newline on stdout, flushed. A reader that went away (a broken pipe) is
/// not an error of ours: that is `Ok`, as ripgrep maps it to success. Other errors are returned.
pub fn print_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    ignore_broken_pipe(writeln!(out, "{line}").and_then(|()| out.flush()))
}

/// Prints `line` and a newline on stderr; any error is dropped (there is nowhere left to report
/// it).
pub fn eprint_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}").and_then(|()| err.flush());
}

/// `Ok` for a broken pipe, the result otherwise.
pub fn ignore_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Whether an error chain ends in a broken pipe: for `main` to map to success.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == ErrorKind::BrokenPipe)
}

/// A figure for a JSON summary: three decimals say enough and keep lines readable.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipes_are_success_and_other_errors_are_not() {
        let pipe = || Err(io::Error::from(ErrorKind::BrokenPipe));
        assert!(ignore_broken_pipe(pipe()).is_ok());
        assert!(ignore_broken_pipe(Err(io::Error::from(ErrorKind::StorageFull))).is_err());
        let wrapped =
            anyhow::Error::from(io::Error::from(ErrorKind::BrokenPipe)).context("printing");
        assert!(is_broken_pipe(&wrapped));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
