//! Bounded logging. [`RateLimit`] lets a few lines of one kind through per interval and counts
//! the rest, so that a line caused by a datagram or a message (a new stream, a classic sender, a
//! refused message) can never flood the log: at most `burst` lines, then one line with the count
//! of those left out, per interval, whatever arrives.
//!
//! [`RefusalLog`] is what the viewer says about datagrams it refuses: counted always, logged at
//! warn at most once every few seconds with the counts and the likeliest cause (a client with
//! another key or none, replays), and once that an unkeyed stream from another machine is
//! unauthenticated.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::ReceiverStats;

/// At most one warn line about refused datagrams per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The interval of the per-event limits ([`RateLimit::per_event`]).
pub const EVENT_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Lines of one kind let through per [`EVENT_LOG_INTERVAL`]: enough for a restart or two of a
/// real client to show in full.
pub const EVENT_LOG_BURST: u32 = 5;

/// At most `burst` lines per `interval`, counting those left out. An interval starts with the
/// first line let through after the previous one ended, so a quiet log stays quiet.
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval: Duration,
    burst: u32,
    /// When the current interval ends; `None` while none is running.
    until: Option<Instant>,
    used: u32,
    left_out: u64,
}

impl RateLimit {
    pub fn new(interval: Duration, burst: u32) -> RateLimit {
        RateLimit {
            interval,
            burst,
            until: None,
            used: 0,
            left_out: 0,
        }
    }

    /// For lines caused by a datagram or a message: [`EVENT_LOG_BURST`] per
    /// [`EVENT_LOG_INTERVAL`].
    pub fn per_event() -> RateLimit {
        RateLimit::new(EVENT_LOG_INTERVAL, EVENT_LOG_BURST)
    }

    /// Whether a line may be logged now. If not, it is counted, for [`poll_left_out`].
    ///
    /// [`poll_left_out`]: RateLimit::poll_left_out
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.until.is_some_and(|end| now >= end) && self.left_out == 0 {
            self.until = None;
        }
        match self.until {
            None => {
                self.until = Some(now + self.interval);
                self.used = 1;
                true
            }
            Some(_) if self.used < self.burst => {
                self.used += 1;
                true
            }
            Some(_) => {
                self.left_out += 1;
                false
            }
        }
    }

    /// Once an interval in which lines were left out has ended: how many were. The caller logs
    /// one line with the count; the next line is let through again.
    pub fn poll_left_out(&mut self, now: Instant) -> Option<u64> {
        if self.left_out == 0 || self.until.is_some_and(|end| now < end) {
            return None;
        }
        self.until = None;
        self.used = 0;
        Some(std::mem::take(&mut self.left_out))
    }

    /// The lines left out and not yet reported, whether or not their interval has ended: for
    /// a last line on exit.
    pub fn take_left_out(&mut self) -> Option<u64> {
        (self.left_out > 0).then(|| std::mem::take(&mut self.left_out))
    }

    /// The limit in words, for the count line: "at most 5 lines per 5 s".
    pub fn describe(&self) -> String {
        format!(
            "at most {} lines per {} s",
            self.burst,
            self.interval.as_secs_f64()
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    invalid: u64,
    unauthenticated: u64,
    replayed: u64,
    foreign: u64,
    no_common_aead: u64,
    corrupt: u64,
}

impl Counts {
    fn of(s: &ReceiverStats) -> Counts {
        Counts {
            invalid: s.datagrams_invalid,
            unauthenticated: s.datagrams_unauthenticated,
            replayed: s.datagrams_replayed,
            foreign: s.datagrams_foreign,
            no_common_aead: s.hellos_without_common_aead,
            corrupt: s.datagrams_corrupt,
        }
    }
}

#[derive(Debug)]
pub struct RefusalLog {
    keyed: bool,
    logged: Counts,
    limit: RateLimit,
    /// Whether a line has been logged: later ones say which interval their counts cover.
    said_before: bool,
    warned_unauthenticated: bool,
}

impl RefusalLog {
    pub fn new(keyed: bool) -> RefusalLog {
        RefusalLog {
            keyed,
            logged: Counts::default(),
            limit: RateLimit::new(REFUSAL_LOG_INTERVAL, 1),
            said_before: false,
            warned_unauthenticated: false,
        }
    }

    /// The warn line for what was refused since the last one, if it is time for one.
    pub fn poll(&mut self, now: Instant, stats: &ReceiverStats) -> Option<String> {
        let counts = Counts::of(stats);
        if counts.invalid == self.logged.invalid {
            return None;
        }
        // The counts below cover what the limit leaves out, so its own count is not needed.
        let _ = self.limit.poll_left_out(now);
        if !self.limit.admit(now) {
            return None;
        }
        // Corrupted on the served stream's path: its own count, not a wrong key (keyed mode
        // counts a failed tag as unauthenticated) nor garbage (unkeyed: a failed check).
        let corrupt = counts.corrupt - self.logged.corrupt;
        let unauthenticated = (counts.unauthenticated - self.logged.unauthenticated)
            .saturating_sub(if self.keyed { corrupt } else { 0 });
        let replayed = counts.replayed - self.logged.replayed;
        let foreign = counts.foreign - self.logged.foreign;
        let total = counts.invalid - self.logged.invalid;
        let no_common_aead = counts.no_common_aead - self.logged.no_common_aead;
        let other =
            total.saturating_sub(unauthenticated + replayed + foreign + no_common_aead + corrupt);
        let mut line = format!(
            "refused {total} datagrams ({unauthenticated} unauthenticated, {replayed} replayed, \
             {foreign} from another stream, {other} malformed, {corrupt} corrupted on the way)"
        );
        if no_common_aead > 0 {
            line.push_str(&format!(
                "; {no_common_aead} handshakes with this key offered no cipher this viewer \
                 accepts: --aead differs between the client and this viewer (leave it at auto)"
            ));
        }
        if unauthenticated > 0 {
            line.push_str(if self.keyed {
                "; unauthenticated: a client without this key or with a different key, or forged datagrams"
            } else {
                "; unauthenticated: a client with a key (--key-file)? Give this viewer the same key"
            });
        }
        if replayed > 0 {
            line.push_str("; replayed: someone may be resending captured datagrams");
        }
        if self.said_before {
            line.push_str(&format!(
                " (in the last {} s)",
                REFUSAL_LOG_INTERVAL.as_secs()
            ));
        }
        self.logged = counts;
        self.said_before = true;
        Some(line)
    }

    /// Once per run: an unkeyed stream from another machine is neither private nor
    /// authenticated.
    pub fn on_stream_started(&mut self, remote: SocketAddr) -> Option<String> {
        if self.keyed || self.warned_unauthenticated || remote.ip().is_loopback() {
            return None;
        }
        self.warned_unauthenticated = true;
        Some(format!(
            "the stream from {remote} is unauthenticated and unencrypted: anyone on the path can \
             watch it, and anyone who can send to this port can inject pictures. Use --key-file \
             on both sides (cam-client --gen-key FILE makes a key)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_a_burst_through_then_counts_once_per_interval() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut limit = RateLimit::new(Duration::from_secs(5), 3);
        let admitted = (0..1000).filter(|i| limit.admit(ms(*i))).count();
        assert_eq!(admitted, 3);
        assert_eq!(
            limit.poll_left_out(ms(4_999)),
            None,
            "not before the interval ends"
        );
        assert_eq!(limit.poll_left_out(ms(5_000)), Some(997));
        assert_eq!(limit.poll_left_out(ms(5_001)), None, "counted once");
        assert!(
            limit.admit(ms(5_002)),
            "a new interval lets lines through again"
        );
        // A quiet interval ends by itself: nothing to count, the next line goes through.
        let mut quiet = RateLimit::new(Duration::from_secs(5), 1);
        assert!(quiet.admit(ms(0)));
        assert_eq!(quiet.poll_left_out(ms(60_000)), None);
        assert!(quiet.admit(ms(60_000)));
        assert!(!quiet.admit(ms(60_001)));
        // Left-out lines are never lost, however late the poll.
        assert_eq!(quiet.poll_left_out(ms(600_000)), Some(1));
    }

    fn stats(invalid: u64, unauthenticated: u64, replayed: u64) -> ReceiverStats {
        ReceiverStats {
            datagrams_invalid: invalid,
            datagrams_unauthenticated: unauthenticated,
            datagrams_replayed: replayed,
            ..ReceiverStats::default()
        }
    }

    #[test]
    fn corruption_on_the_path_is_not_called_a_wrong_key() {
        let mut log = RefusalLog::new(true);
        let corrupt = ReceiverStats {
            datagrams_corrupt: 10,
            ..stats(10, 10, 0)
        };
        let line = log.poll(Instant::now(), &corrupt).unwrap();
        assert!(line.contains("(0 unauthenticated"), "{line}");
        assert!(line.contains("10 corrupted on the way"), "{line}");
        assert!(!line.contains("different key"), "{line}");
    }

    #[test]
    fn at_most_one_line_per_interval_with_the_counts_since_the_last() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(true);
        assert_eq!(log.poll(t0, &stats(0, 0, 0)), None);
        let first = log.poll(t0, &stats(3, 3, 0)).unwrap();
        assert!(
            first.contains("refused 3 datagrams (3 unauthenticated"),
            "{first}"
        );
        assert!(first.contains("different key"), "{first}");
        for ms in [1, 100, 4_999] {
            let at = t0 + Duration::from_millis(ms);
            assert_eq!(log.poll(at, &stats(1000, 990, 10)), None);
        }
        let second = log
            .poll(t0 + REFUSAL_LOG_INTERVAL, &stats(1000, 990, 10))
            .unwrap();
        assert!(
            second.contains("refused 997 datagrams (987 unauthenticated, 10 replayed"),
            "{second}"
        );
        assert!(second.contains("resending"), "{second}");
        // Nothing new: silence, however long.
        assert_eq!(
            log.poll(t0 + REFUSAL_LOG_INTERVAL * 9, &stats(1000, 990, 10)),
            None
        );
    }

    #[test]
    fn handshakes_without_a_common_cipher_name_aead() {
        let mut log = RefusalLog::new(true);
        let line = log
            .poll(
                Instant::now(),
                &ReceiverStats {
                    datagrams_invalid: 2,
                    hellos_without_common_aead: 2,
                    ..ReceiverStats::default()
                },
            )
            .unwrap();
        assert!(line.contains("0 malformed"), "{line}");
        assert!(
            line.contains("2 handshakes") && line.contains("--aead"),
            "{line}"
        );
    }

    #[test]
    fn unkeyed_hint_and_the_one_warning_about_remote_streams() {
        let mut log = RefusalLog::new(false);
        let line = log.poll(Instant::now(), &stats(2, 2, 0)).unwrap();
        assert!(line.contains("--key-file"), "{line}");
        assert_eq!(
            log.on_stream_started("127.0.0.1:5000".parse().unwrap()),
            None
        );
        assert_eq!(log.on_stream_started("[::1]:5000".parse().unwrap()), None);
        let remote = "192.0.2.7:5000".parse().unwrap();
        assert!(log
            .on_stream_started(remote)
            .unwrap()
            .contains("unauthenticated"));
        assert_eq!(log.on_stream_started(remote), None);
        let mut keyed = RefusalLog::new(true);
        assert_eq!(keyed.on_stream_started(remote), None);
    }
}
