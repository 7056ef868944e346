//! Several camstream streams at once: a demultiplexer in front of one [`Receiver`] per stream.
//!
//! `Receiver` serves one stream and refuses the rest as foreign. A monitoring machine watches
//! several cameras, so [`MultiReceiver`] reads the stream id from the common header (clear or
//! sealed: a sealed datagram keeps its stream id readable), keys each stream on
//! `(stream id, sender address)` and hands the datagram to that stream's own `Receiver`, which
//! checks, assembles, acknowledges and (keyed) authenticates it exactly as it does alone.
//!
//! Rules, in the order they are tried for a datagram of an unknown key:
//! - **Restart, same address:** a new id from the address of a served stream that has been
//!   quiet for a moment (150 ms) is that client restarted; it takes the old stream's place
//!   (`StreamStarted { replaced }`), as with a lone `Receiver`.
//! - **Restart, new port:** a new id from the IP of a served stream that has been silent for
//!   `switch_after` takes that stream's place too: a restarted client usually gets a new port.
//!   While a stream of that IP has been quiet for a moment but not yet that long, the
//!   newcomer is refused for now (its client sends again): it may be that stream restarted.
//!   A newcomer while every stream of its IP is live is another camera on that machine.
//! - **New stream:** otherwise it gets a place of its own while fewer than `max_streams` are
//!   served; beyond that its datagrams are refused (counted in `datagrams_refused_full`, and
//!   in `datagrams_foreign` and `datagrams_invalid` like every refusal).
//! - A place is only kept when its first datagram was accepted: a malformed datagram or a
//!   forged HELLO never takes a place.
//! - A stream silent for `stream_timeout` is dropped; its figures stay in the totals.
//!
//! Stream ids a stream was replaced by are remembered for a while, so a late datagram of the
//! old stream cannot flip the place back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{FrameReceiver, ReceiveEvent, Transmit};
use crate::receiver::{Receiver, ReceiverConfig, ReceiverEvent, ReceiverStats};
use crate::secure::Aead;
use crate::wire::{CommonRepr, Packet, SealedRepr, WireError, FLAG_SEALED};

/// Streams served at once unless configured otherwise (`--max-streams`).
pub const DEFAULT_MAX_STREAMS: usize = 16;
/// Silence after which a stream is dropped unless configured otherwise.
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Replaced streams remembered, so their late datagrams are refused.
const RETIRED_KEPT: usize = 64;
/// A stream that appeared at most this long before another of its IP fell silent, or after,
/// is taken for that one restarted once the silence lasts `switch_after`.
const ADOPT_SLACK: Duration = Duration::from_millis(300);
/// Silence after which a stream of a newcomer's IP may be a client that restarted: a live
/// camera sends at least every frame interval, and its client probes while acks are due.
const QUIET: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
pub struct MultiConfig {
    /// Every stream's own receiver is built with this.
    pub receiver: ReceiverConfig,
    pub max_streams: usize,
    /// A stream silent this long is dropped and its place freed.
    pub stream_timeout: Duration,
}

impl Default for MultiConfig {
    fn default() -> Self {
        MultiConfig {
            receiver: ReceiverConfig::default(),
            max_streams: DEFAULT_MAX_STREAMS,
            stream_timeout: DEFAULT_STREAM_TIMEOUT,
        }
    }
}

/// What a datagram of a stream not served yet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// The place of the stream from the very same address: a restarted client.
    Restart(usize),
    /// The place of a silent stream from the same IP: a client restarted on a new port.
    RestartOnNewPort(usize),
    /// Refused for now: a stream of the same IP is quiet, and may be this one restarted.
    Wait,
    New,
}

/// One stream's place.
#[derive(Debug)]
struct Place {
    id: u32,
    remote: SocketAddr,
    receiver: Receiver,
    last_heard: Instant,
    created: Instant,
    /// The stream whose place this one took, until its `StreamStarted` says so (keyed, the
    /// stream starts only with its first sealed datagram, after the handshake).
    replaced: Option<u32>,
}

/// A stream being served, as [`MultiReceiver::streams`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct StreamView<'a> {
    pub stream_id: u32,
    pub remote: SocketAddr,
    pub stats: &'a ReceiverStats,
    pub last_heard: Instant,
}

#[derive(Debug)]
pub struct MultiReceiver {
    config: MultiConfig,
    places: Vec<Place>,
    /// Figures of streams no longer served, plus refusals before any stream saw a datagram.
    retired: ReceiverStats,
    /// `retired` plus every place's figures: what `stats` returns.
    totals: ReceiverStats,
    retired_keys: VecDeque<(u32, SocketAddr)>,
    events: VecDeque<ReceiveEvent>,
    /// Where `poll_transmit` looks first, so that no stream's acks wait behind another's.
    next_transmit: usize,
    credit: u16,
    datagrams_refused_full: u64,
    streams_dropped: u64,
    /// "Full" answers owed to streams beyond the cap: (to, stream id, frame seq).
    full_answers: VecDeque<(SocketAddr, u32, u32)>,
    /// When each refused sender was last answered, so a stream gets a few answers a second.
    full_answered: VecDeque<(SocketAddr, Instant)>,
}

/// A refused sender is told "full" at most this often.
const FULL_ANSWER_INTERVAL: Duration = Duration::from_millis(250);
/// Refused senders remembered (and answers owed) at once: a flood of addresses costs no more.
const FULL_ANSWERS_KEPT: usize = 64;

impl MultiReceiver {
    pub fn new(config: MultiConfig) -> MultiReceiver {
        let credit = u16::try_from(config.receiver.max_in_flight).unwrap_or(u16::MAX);
        MultiReceiver {
            config,
            places: Vec::new(),
            retired: ReceiverStats::default(),
            totals: ReceiverStats::default(),
            retired_keys: VecDeque::new(),
            events: VecDeque::new(),
            next_transmit: 0,
            credit,
            datagrams_refused_full: 0,
            streams_dropped: 0,
            full_answers: VecDeque::new(),
            full_answered: VecDeque::new(),
        }
    }

    /// The streams served now, in the order they arrived.
    pub fn streams(&self) -> impl Iterator<Item = StreamView<'_>> {
        self.places.iter().map(|p| StreamView {
            stream_id: p.id,
            remote: p.remote,
            stats: p.receiver.stats(),
            last_heard: p.last_heard,
        })
    }

    /// Datagrams refused because `max_streams` streams were already served.
    pub fn datagrams_refused_full(&self) -> u64 {
        self.datagrams_refused_full
    }

    /// Streams dropped after `stream_timeout` of silence.
    pub fn streams_dropped(&self) -> u64 {
        self.streams_dropped
    }

    /// The routing field: the stream id, clear in both clear and sealed datagrams.
    fn stream_id_of(bytes: &[u8]) -> Result<u32, WireError> {
        let packet = Packet::new_checked(bytes)?;
        if packet.flags() == FLAG_SEALED {
            SealedRepr::parse(&packet).map(|s| s.stream_id)
        } else {
            CommonRepr::parse(&packet).map(|c| c.stream_id)
        }
    }

    fn refuse(&mut self, bytes: &[u8], foreign: bool) {
        self.retired.datagrams_received += 1;
        self.retired.bytes_received += bytes.len() as u64;
        self.retired.datagrams_invalid += 1;
        if foreign {
            self.retired.datagrams_foreign += 1;
        }
    }

    /// Keeps a stream's figures in the totals; `remember`: refuse its late datagrams.
    fn retire(&mut self, place: Place, remember: bool) {
        add(&mut self.retired, place.receiver.stats());
        if !remember {
            return;
        }
        if self.retired_keys.len() >= RETIRED_KEPT {
            self.retired_keys.pop_front();
        }
        self.retired_keys.push_back((place.id, place.remote));
    }

    /// What a newcomer from `remote` gets (see the module's rules).
    fn arrival(&self, now: Instant, remote: SocketAddr) -> Arrival {
        if let Some(i) = self.places.iter().position(|p| p.remote == remote) {
            // Not while that stream is live: a flood of new ids from one socket would churn.
            return if now.saturating_duration_since(self.places[i].last_heard) >= QUIET {
                Arrival::Restart(i)
            } else {
                Arrival::Wait
            };
        }
        let switch_after = self.config.receiver.switch_after;
        // How long a stream of the newcomer's IP has been silent (zero for other IPs).
        let quiet = |p: &Place| {
            if p.remote.ip() == remote.ip() {
                now.saturating_duration_since(p.last_heard)
            } else {
                Duration::ZERO
            }
        };
        if let Some(i) = self.places.iter().position(|p| quiet(p) >= switch_after) {
            return Arrival::RestartOnNewPort(i);
        }
        if self
            .places
            .iter()
            .any(|p| quiet(p) >= QUIET.min(switch_after))
        {
            return Arrival::Wait;
        }
        Arrival::New
    }

    /// Moves place `i`'s events out; a new stream that took a place says whose.
    fn collect_events(&mut self, i: usize) {
        let place = &mut self.places[i];
        while let Some(event) = place.receiver.poll_event() {
            self.events.push_back(match event {
                ReceiverEvent::StreamStarted {
                    stream_id,
                    remote,
                    replaced: None,
                } => ReceiverEvent::StreamStarted {
                    stream_id,
                    remote,
                    replaced: place.replaced.take(),
                },
                other => other,
            });
        }
    }

    fn recount(&mut self) {
        let mut totals = self.retired.clone();
        for place in &self.places {
            add(&mut totals, place.receiver.stats());
        }
        self.totals = totals;
    }

    /// A sender refused for want of a place is told so (an ack saying `Full`), so its user
    /// reads "full, --max-streams" rather than "no viewer". Only for an intact clear
    /// datagram (a keyed client takes only sealed answers, which a stream without a place
    /// has no session for), and a few times a second per sender at most.
    fn owe_full_answer(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        let Ok(datagram) = crate::wire::Datagram::parse(bytes) else {
            return;
        };
        self.full_answered
            .retain(|(_, at)| now.saturating_duration_since(*at) < FULL_ANSWER_INTERVAL);
        if self.full_answered.iter().any(|(to, _)| *to == remote)
            || self.full_answered.len() >= FULL_ANSWERS_KEPT
            || self.full_answers.len() >= FULL_ANSWERS_KEPT
        {
            return;
        }
        self.full_answered.push_back((remote, now));
        let common = datagram.common;
        self.full_answers
            .push_back((remote, common.stream_id, common.frame_seq));
    }

    fn handle(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        let id = match Self::stream_id_of(bytes) {
            Ok(id) => id,
            Err(e) => {
                log::debug!(
                    "refused {} bytes from {remote}: malformed: {e}",
                    bytes.len()
                );
                self.refuse(bytes, false);
                return;
            }
        };
        if let Some(i) = self
            .places
            .iter()
            .position(|p| p.id == id && p.remote == remote)
        {
            let place = &mut self.places[i];
            // Only accepted data keeps a stream alive: a flood of forgeries or replays with
            // its id must not, nor a HELLO (answered even when replayed).
            let handshakes = place.receiver.stats().handshakes;
            let accepted = place.receiver.handle_datagram(now, remote, bytes).is_ok();
            if accepted && place.receiver.stats().handshakes == handshakes {
                place.last_heard = now;
            }
            self.collect_events(i);
            return;
        }
        if self.retired_keys.contains(&(id, remote)) {
            log::debug!("refused a late datagram of replaced stream {id:08x} from {remote}");
            self.refuse(bytes, true);
            return;
        }
        let (taken, remember) = match self.arrival(now, remote) {
            Arrival::Restart(i) => (Some(i), true),
            Arrival::RestartOnNewPort(i) => (Some(i), false),
            Arrival::Wait => {
                log::debug!(
                    "stream {id:08x} from {remote} waits: a quiet stream of that IP may be it"
                );
                self.refuse(bytes, true);
                return;
            }
            Arrival::New => (None, false),
        };
        if taken.is_none() && self.places.len() >= self.config.max_streams {
            if self.datagrams_refused_full == 0 {
                log::warn!(
                    "refusing stream {id:08x} from {remote}: already serving --max-streams {}",
                    self.config.max_streams
                );
            }
            self.datagrams_refused_full += 1;
            self.refuse(bytes, true);
            self.owe_full_answer(now, remote, bytes);
            return;
        }
        let mut receiver = Receiver::new(self.config.receiver.clone());
        let _refused = receiver.handle_datagram(now, remote, bytes);
        // A place only for a datagram that was accepted (or a HELLO that was answered).
        if receiver.current_stream().is_none() && receiver.stats().handshakes == 0 {
            add(&mut self.retired, receiver.stats());
            return;
        }
        let place = Place {
            id,
            remote,
            receiver,
            last_heard: now,
            created: now,
            replaced: None,
        };
        match taken {
            Some(i) => {
                let old = std::mem::replace(&mut self.places[i], place);
                log::debug!(
                    "stream {id:08x} from {remote} takes the place of {:08x}",
                    old.id
                );
                self.places[i].replaced = Some(old.id);
                self.retire(old, remember);
                self.collect_events(i);
            }
            None => {
                self.places.push(place);
                self.collect_events(self.places.len() - 1);
            }
        }
        self.share_credit();
    }

    /// A client restarted faster than the silence that tells a restart from a second camera:
    /// its new stream got a place of its own. Once the old stream has been silent for
    /// `switch_after`, a stream of the same IP that appeared about when it fell silent moves
    /// into its place (`StreamStarted { replaced }` again, now naming the old stream).
    fn adopt_restarts(&mut self, now: Instant) {
        let switch_after = self.config.receiver.switch_after;
        let Some((old, new)) = self.places.iter().enumerate().find_map(|(i, p)| {
            if now.saturating_duration_since(p.last_heard) < switch_after {
                return None;
            }
            let j = self.places.iter().position(|n| {
                n.remote.ip() == p.remote.ip()
                    && n.created > p.created
                    && n.created + ADOPT_SLACK >= p.last_heard
                    && now.saturating_duration_since(n.last_heard) < switch_after
                    && n.receiver.current_stream().is_some()
            })?;
            Some((i, j))
        }) else {
            return;
        };
        let newcomer = self.places.remove(new);
        let old = if new < old { old - 1 } else { old };
        let (id, remote) = (newcomer.id, newcomer.remote);
        let gone = std::mem::replace(&mut self.places[old], newcomer);
        log::debug!(
            "stream {id:08x} from {remote} takes the place of {:08x}",
            gone.id
        );
        self.events.push_back(ReceiverEvent::StreamStarted {
            stream_id: id,
            remote,
            replaced: Some(gone.id),
        });
        self.retire(gone, false);
        self.share_credit();
    }

    /// The decode queue is shared: each stream is granted an equal part of its room (at
    /// least one frame while there is any), so one fast camera cannot starve the others.
    fn share_credit(&mut self) {
        let streams = self.places.len().max(1);
        let each = match self.credit {
            0 => 0,
            c => (usize::from(c) / streams).max(1),
        };
        let each = u16::try_from(each).unwrap_or(u16::MAX);
        for place in &mut self.places {
            place.receiver.set_credit(each);
        }
    }
}

impl FrameReceiver for MultiReceiver {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.handle(now, from, bytes);
        self.recount();
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.places.len() {
            if self.places[i]
                .receiver
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.places[i].receiver.handle_timeout(now);
                self.collect_events(i);
            }
        }
        self.adopt_restarts(now);
        let timeout = self.config.stream_timeout;
        let before = self.places.len();
        let (silent, kept): (Vec<Place>, Vec<Place>) = std::mem::take(&mut self.places)
            .into_iter()
            .partition(|p| now.saturating_duration_since(p.last_heard) >= timeout);
        self.places = kept;
        for place in silent {
            log::info!(
                "stream {:08x} from {} dropped: nothing for {:?}",
                place.id,
                place.remote,
                timeout
            );
            self.streams_dropped += 1;
            self.retire(place, false);
        }
        if self.places.len() != before {
            self.share_credit();
        }
        self.recount();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.places
            .iter()
            .flat_map(|p| {
                [
                    p.receiver.poll_timeout(),
                    Some(p.last_heard + self.config.stream_timeout),
                ]
            })
            .flatten()
            .min()
    }

    fn poll_event(&mut self) -> Option<ReceiveEvent> {
        self.events.pop_front()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some((to, stream_id, frame_seq)) = self.full_answers.pop_front() {
            crate::receiver::emit_full_ack(stream_id, frame_seq, buf);
            return Some(Transmit { to, len: buf.len() });
        }
        let n = self.places.len();
        for k in 0..n {
            let i = (self.next_transmit + k) % n;
            if let Some(to) = self.places[i].receiver.poll_transmit(now, buf) {
                self.next_transmit = (i + 1) % n;
                self.totals.acks_sent += 1;
                return Some(Transmit { to, len: buf.len() });
            }
        }
        None
    }

    fn set_credit(&mut self, credit: u16) {
        self.credit = credit;
        self.share_credit();
    }

    fn stats(&self) -> &ReceiverStats {
        &self.totals
    }

    /// The stream heard from last.
    fn current_stream(&self) -> Option<(u32, SocketAddr)> {
        self.places
            .iter()
            .filter(|p| p.receiver.current_stream().is_some())
            .max_by_key(|p| p.last_heard)
            .map(|p| (p.id, p.remote))
    }

    /// The AEAD of the stream heard from last.
    fn aead(&self) -> Option<Aead> {
        self.places
            .iter()
            .filter(|p| p.receiver.aead().is_some())
            .max_by_key(|p| p.last_heard)
            .and_then(|p| p.receiver.aead())
    }

    fn is_keyed(&self) -> bool {
        self.config.receiver.psk.is_some()
    }
}

/// Adds `b`'s counters into `a`.
fn add(a: &mut ReceiverStats, b: &ReceiverStats) {
    let ReceiverStats {
        datagrams_received,
        bytes_received,
        datagrams_invalid,
        datagrams_foreign,
        datagrams_duplicate,
        frames_completed,
        frames_dropped,
        crc_failures,
        acks_sent,
        streams_started,
        datagrams_unauthenticated,
        datagrams_replayed,
        handshakes,
        hellos_without_common_aead,
        datagrams_corrupt,
        datagrams_implausible,
    } = b;
    a.datagrams_received += datagrams_received;
    a.bytes_received += bytes_received;
    a.datagrams_invalid += datagrams_invalid;
    a.datagrams_foreign += datagrams_foreign;
    a.datagrams_duplicate += datagrams_duplicate;
    a.frames_completed += frames_completed;
    a.frames_dropped += frames_dropped;
    a.crc_failures += crc_failures;
    a.acks_sent += acks_sent;
    a.streams_started += streams_started;
    a.datagrams_unauthenticated += datagrams_unauthenticated;
    a.datagrams_replayed += datagrams_replayed;
    a.handshakes += handshakes;
    a.hellos_without_common_aead += hellos_without_common_aead;
    a.datagrams_corrupt += datagrams_corrupt;
    a.datagrams_implausible += datagrams_implausible;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use crate::machine::camstream::CamstreamSender;
    use crate::machine::{FrameSender, OutgoingFrame};
    use crate::sender::SenderConfig;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A client at `from`, its datagrams delivered straight to `rx` and its acks back.
    struct Client {
        tx: CamstreamSender,
        from: SocketAddr,
    }

    impl Client {
        fn new(id: u32, from: &str) -> Client {
            Client {
                tx: CamstreamSender::new(addr("127.0.0.1:9999"), id, SenderConfig::default()),
                from: addr(from),
            }
        }

        /// Sends one frame and pumps both ways until nothing moves.
        fn send(&mut self, rx: &mut MultiReceiver, now: Instant, byte: u8) {
            let frame = OutgoingFrame {
                data: vec![byte; 3000],
                width: 64,
                height: 48,
                capture_ts_us: 1,
            };
            self.tx.handle_timeout(now);
            if self.tx.can_send() {
                self.tx.send_frame(now, frame).unwrap();
            }
            let mut buf = Vec::new();
            loop {
                let mut moved = false;
                while let Some(t) = self.tx.poll_transmit(now, &mut buf) {
                    rx.handle_datagram(now, self.from, &buf[..t.len]);
                    moved = true;
                }
                while let Some(t) = rx.poll_transmit(now, &mut buf) {
                    if t.to == self.from {
                        self.tx.handle_datagram(now, t.to, &buf[..t.len]);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
    }

    fn frames(rx: &mut MultiReceiver) -> Vec<(u32, SocketAddr, u8)> {
        let mut out = Vec::new();
        while let Some(e) = rx.poll_event() {
            if let ReceiveEvent::Frame(f) = e {
                out.push((f.stream_id, f.remote, f.data[0]));
            }
        }
        out
    }

    #[test]
    fn serves_several_streams_each_to_its_own_place() {
        let now = Instant::now();
        let mut rx = MultiReceiver::new(MultiConfig::default());
        let mut a = Client::new(0xa, "127.0.0.1:5001");
        let mut b = Client::new(0xb, "127.0.0.1:5002");
        let mut c = Client::new(0xc, "[::1]:5001");
        for n in 0..5 {
            a.send(&mut rx, now, n);
            b.send(&mut rx, now, 100 + n);
            c.send(&mut rx, now, 200 + n);
        }
        let got = frames(&mut rx);
        for (id, from, first) in [(0xa, a.from, 0), (0xb, b.from, 100), (0xc, c.from, 200)] {
            let mine: Vec<u8> = got
                .iter()
                .filter(|f| f.0 == id && f.1 == from)
                .map(|f| f.2)
                .collect();
            assert_eq!(mine, (first..first + 5).collect::<Vec<_>>(), "{id:x}");
        }
        assert_eq!(rx.streams().count(), 3);
        assert_eq!(rx.stats().frames_completed, 15);
        assert_eq!(rx.stats().streams_started, 3);
        assert_eq!(rx.stats().datagrams_invalid, 0);
        assert_eq!(a.tx.stats().frames_acked, 5, "acks reach each client");
        assert_eq!(c.tx.stats().frames_acked, 5);
    }

    #[test]
    fn streams_beyond_the_cap_are_refused_and_counted() {
        let now = Instant::now();
        let mut rx = MultiReceiver::new(MultiConfig {
            max_streams: 2,
            ..MultiConfig::default()
        });
        let mut clients: Vec<Client> = (0..3)
            .map(|i| Client::new(i + 1, &format!("10.0.0.{}:5000", i + 1)))
            .collect();
        for c in &mut clients {
            c.send(&mut rx, now, 7);
        }
        assert_eq!(rx.streams().count(), 2);
        assert!(rx.datagrams_refused_full() > 0);
        assert_eq!(rx.stats().datagrams_foreign, rx.datagrams_refused_full());
        assert_eq!(clients[2].tx.stats().frames_acked, 0);
        // The third is told why, and that is no answer that serves it.
        assert!(clients[2].tx.stats().receiver_full > 0);
        assert!(!clients[2].tx.has_heard_peer());
        assert_eq!(clients[0].tx.stats().receiver_full, 0);
        assert_eq!(frames(&mut rx).len(), 2);
    }

    #[test]
    fn garbage_never_takes_a_place() {
        let now = Instant::now();
        let mut rx = MultiReceiver::new(MultiConfig {
            max_streams: 1,
            ..MultiConfig::default()
        });
        let from = addr("10.0.0.9:1");
        rx.handle_datagram(now, from, b"hello");
        // A valid common header (a probe) with a body where none belongs.
        let mut probe = Vec::new();
        crate::wire::Datagram {
            common: CommonRepr {
                kind: crate::wire::Kind::Probe,
                stream_id: 5,
                packet_number: 0,
                frame_seq: 0,
            },
            body: crate::wire::Body::Probe,
        }
        .emit(&mut probe);
        probe.push(0);
        rx.handle_datagram(now, from, &probe);
        assert_eq!(rx.streams().count(), 0);
        assert_eq!(rx.stats().datagrams_invalid, 2);
        assert_eq!(rx.stats().datagrams_received, 2);
        let mut a = Client::new(1, "10.0.0.1:5000");
        a.send(&mut rx, now, 1);
        assert_eq!(frames(&mut rx).len(), 1, "the place is still free");
    }

    #[test]
    fn a_restarted_client_takes_its_place_back() {
        let t0 = Instant::now();
        let mut rx = MultiReceiver::new(MultiConfig::default());
        let mut a = Client::new(1, "10.0.0.1:5000");
        let mut b = Client::new(2, "10.0.0.2:5000");
        a.send(&mut rx, t0, 1);
        b.send(&mut rx, t0, 2);
        // Same address, new id, once the old one is quiet.
        let mut a2 = Client::new(11, "10.0.0.1:5000");
        a2.send(&mut rx, t0, 3);
        assert_eq!(
            rx.streams().next().unwrap().stream_id,
            1,
            "not while it is live"
        );
        a2.send(&mut rx, t0 + Duration::from_millis(600), 3);
        b.send(&mut rx, t0 + Duration::from_millis(600), 2);
        // New port, while the old one was quiet only briefly: not yet.
        let mut b2 = Client::new(12, "10.0.0.2:6000");
        b2.send(&mut rx, t0 + Duration::from_millis(800), 4);
        assert_eq!(rx.streams().count(), 2);
        assert!(rx.stats().datagrams_foreign > 0);
        // New port, old one silent for switch_after: its place.
        let t1 = t0 + Duration::from_millis(2000);
        b2.send(&mut rx, t1, 4);
        let ids: Vec<u32> = rx.streams().map(|s| s.stream_id).collect();
        assert_eq!(ids, [11, 12], "each restart took its place, in order");
        let replaced: Vec<(u32, Option<u32>)> = std::iter::from_fn(|| rx.poll_event())
            .filter_map(|e| match e {
                ReceiveEvent::StreamStarted {
                    stream_id,
                    replaced,
                    ..
                } => Some((stream_id, replaced)),
                _ => None,
            })
            .collect();
        assert_eq!(
            replaced,
            [(1, None), (2, None), (11, Some(1)), (12, Some(2))]
        );
        // A late datagram of the old stream does not flip the place back.
        let mut late = Client::new(1, "10.0.0.1:5000");
        late.send(&mut rx, t1, 9);
        assert_eq!(
            rx.streams().map(|s| s.stream_id).collect::<Vec<_>>(),
            [11, 12]
        );
        // A restart faster than QUIET gets a place of its own at first, and the old one's
        // place once that has been silent for switch_after.
        a2.send(&mut rx, t1, 3);
        let mut a3 = Client::new(21, "10.0.0.1:7000");
        let t2 = t1 + Duration::from_millis(50);
        a3.send(&mut rx, t2, 6);
        assert_eq!(rx.streams().count(), 3);
        while rx.poll_event().is_some() {}
        b2.send(&mut rx, t2 + Duration::from_millis(600), 4);
        a3.send(&mut rx, t2 + Duration::from_millis(600), 6);
        rx.handle_timeout(t2 + Duration::from_millis(600));
        assert_eq!(
            rx.streams().map(|s| s.stream_id).collect::<Vec<_>>(),
            [21, 12]
        );
        assert!(std::iter::from_fn(|| rx.poll_event()).any(|e| matches!(
            e,
            ReceiveEvent::StreamStarted {
                stream_id: 21,
                replaced: Some(11),
                ..
            }
        )));
        // A second camera on the same machine, while the first is live, gets its own place.
        let t3 = t2 + Duration::from_millis(650);
        b2.send(&mut rx, t3, 4);
        let mut c = Client::new(13, "10.0.0.2:7000");
        c.send(&mut rx, t3, 5);
        assert_eq!(rx.streams().count(), 3);
    }

    #[test]
    fn silent_streams_are_dropped_and_their_figures_kept() {
        let t0 = Instant::now();
        let mut rx = MultiReceiver::new(MultiConfig {
            stream_timeout: Duration::from_secs(3),
            ..MultiConfig::default()
        });
        let mut a = Client::new(1, "10.0.0.1:5000");
        let mut b = Client::new(2, "10.0.0.2:5000");
        a.send(&mut rx, t0, 1);
        b.send(&mut rx, t0, 1);
        let t1 = t0 + Duration::from_secs(2);
        b.send(&mut rx, t1, 2);
        let wake = rx.poll_timeout().unwrap();
        assert!(wake <= t0 + Duration::from_secs(3));
        rx.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(rx.streams().map(|s| s.stream_id).collect::<Vec<_>>(), [2]);
        assert_eq!(rx.streams_dropped(), 1);
        assert_eq!(rx.stats().frames_completed, 3);
    }
}
