//! What the client tells a person while it runs: a status line on stderr every second, and
//! one log line whenever the connection to the receiver changes state.

use std::io::Write;
use std::time::{Duration, Instant};

use cam_proto::adapt::Settings;
use cam_proto::machine::FrameSender;

use crate::cli::GiveUp;
use crate::protocol::Protocol;

/// No answer for this long, after answers came, counts as a receiver gone.
const SILENT_AFTER: Duration = Duration::from_secs(2);

pub fn rate_text(target: Option<f64>) -> String {
    target.map_or_else(
        || "no limit seen".to_owned(),
        |t| format!("{:.0} kbit/s", t / 1000.0),
    )
}

#[derive(Debug)]
pub struct StatusLine {
    protocol: Protocol,
    next_at: Instant,
    last_at: Instant,
    last_acked: u64,
    last_sent: u64,
    last_bytes: u64,
    /// Standard error is gone (a closed pipe): the stream goes on without status lines.
    closed: bool,
}

impl StatusLine {
    pub fn new(now: Instant, protocol: Protocol) -> StatusLine {
        StatusLine {
            protocol,
            next_at: now + Duration::from_secs(1),
            last_at: now,
            last_acked: 0,
            last_sent: 0,
            last_bytes: 0,
            closed: false,
        }
    }

    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    pub fn maybe_print(
        &mut self,
        now: Instant,
        sender: &dyn FrameSender,
        settings: &Settings,
        size: (u32, u32),
    ) {
        if now < self.next_at {
            return;
        }
        let s = sender.stats();
        let dt = (now - self.last_at).as_secs_f64().max(1e-6);
        let line = match self.protocol {
            Protocol::Classic => format!(
                "cam-client: classic: sent {}, replies {}, lost by the viewer {}, timed out {}",
                s.frames_sent, s.frames_acked, s.frames_refused, s.frames_timed_out
            ),
            // Nothing is acknowledged: say what left, and what the receiver's reports said.
            Protocol::Rtp => format!(
                "cam-client: rtp: {:.1} fps sent, {:.0} kbit/s, frames {}, retransmits {}, rtt {}",
                (s.frames_sent - self.last_sent) as f64 / dt,
                (s.bytes_sent - self.last_bytes) as f64 * 8.0 / dt / 1000.0,
                s.frames_sent,
                s.retransmits,
                sender.rtt().map_or_else(
                    || "unknown (no receiver reports)".to_owned(),
                    |r| format!("{:.1} ms", r.as_secs_f64() * 1000.0)
                ),
            ),
            Protocol::Camstream => format!(
                "cam-client: {:.1} fps, {:.0} kbit/s, acked {}, timed out {}, retransmits {}, rtt {:.1} ms, link {}, q{} {}x{}",
                (s.frames_acked - self.last_acked) as f64 / dt,
                (s.bytes_sent - self.last_bytes) as f64 * 8.0 / dt / 1000.0,
                s.frames_acked,
                s.frames_timed_out,
                s.retransmits,
                sender.rtt().unwrap_or_default().as_secs_f64() * 1000.0,
                rate_text(sender.target_rate_bps()),
                settings.quality,
                size.0,
                size.1
            ),
        };
        if !self.closed && writeln!(std::io::stderr(), "{line}").is_err() {
            self.closed = true;
        }
        self.last_at = now;
        self.last_acked = s.frames_acked;
        self.last_sent = s.frames_sent;
        self.last_bytes = s.bytes_sent;
        self.next_at = now + Duration::from_secs(1);
    }
}

/// The receiver's state as the client sees it, logged once per change.
#[derive(Debug)]
pub struct Connection {
    at: String,
    state: State,
    answers: u64,
    last_answer: Option<Instant>,
    refused_logged: bool,
    full_logged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Answering,
    Silent,
}

impl Connection {
    pub fn new(at: String) -> Connection {
        Connection {
            at,
            state: State::Waiting,
            answers: 0,
            last_answer: None,
            refused_logged: false,
            full_logged: false,
        }
    }

    /// The receiver refuses this stream as one too many: logged once; the client keeps
    /// trying (`--give-up never`), since a place may come free.
    pub fn full(&mut self, why: impl FnOnce() -> String) {
        if !self.full_logged {
            log::warn!("{}; still trying", why());
            self.full_logged = true;
        }
    }

    /// Follows the answer count; logs when answers start, stop and come back.
    pub fn observe(&mut self, now: Instant, answers: u64, rtt: Option<Duration>) {
        if answers > self.answers {
            self.answers = answers;
            self.last_answer = Some(now);
            match self.state {
                State::Waiting => log::info!("{} answers", self.at),
                State::Silent => log::info!("{} answers again", self.at),
                State::Answering => {}
            }
            self.state = State::Answering;
            self.refused_logged = false;
            return;
        }
        let silent_for = SILENT_AFTER.max(rtt.unwrap_or_default() * 4);
        if self.state == State::Answering && self.last_answer.is_some_and(|t| now - t > silent_for)
        {
            log::warn!(
                "{} has not answered for {:.1} s; still sending, and following it when it comes back",
                self.at,
                silent_for.as_secs_f64()
            );
            self.state = State::Silent;
        }
    }

    /// The receiver's port is closed (ECONNREFUSED). Before any answer, with a give-up time,
    /// that is the end of the run at once: the reason, for the error line. Otherwise it is
    /// logged once, and the client keeps trying.
    pub fn refused(
        &mut self,
        expects_answers: bool,
        heard: bool,
        give_up: GiveUp,
    ) -> Option<String> {
        let why = format!(
            "nothing is listening at {} (the port is closed: connection refused). Start \
             cam-viewer there first, or check the address and port",
            self.at
        );
        if expects_answers && !heard && give_up != GiveUp::Never {
            return Some(why);
        }
        if !self.refused_logged {
            log::warn!("{why}; still trying");
            self.refused_logged = true;
        }
        None
    }
}
