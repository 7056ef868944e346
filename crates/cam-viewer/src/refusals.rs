//! What the viewer says about datagrams it refuses: counted always, logged at warn at most
//! once every few seconds with the counts and the likeliest cause (a client with another key
//! or none, replays), and once that an unkeyed stream from another machine is unauthenticated.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::ReceiverStats;

/// At most one warn line about refused datagrams per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);

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
    next_at: Option<Instant>,
    warned_unauthenticated: bool,
}

impl RefusalLog {
    pub fn new(keyed: bool) -> RefusalLog {
        RefusalLog {
            keyed,
            logged: Counts::default(),
            next_at: None,
            warned_unauthenticated: false,
        }
    }

    /// The warn line for what was refused since the last one, if it is time for one.
    pub fn poll(&mut self, now: Instant, stats: &ReceiverStats) -> Option<String> {
        let counts = Counts::of(stats);
        if counts.invalid == self.logged.invalid || self.next_at.is_some_and(|t| now < t) {
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
        if self.next_at.is_some() {
            line.push_str(&format!(
                " (in the last {} s)",
                REFUSAL_LOG_INTERVAL.as_secs()
            ));
        }
        self.logged = counts;
        self.next_at = Some(now + REFUSAL_LOG_INTERVAL);
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
