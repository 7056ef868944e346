//! The client's keyed state: handshakes (started at once, sent again on the probe backoff,
//! started anew when the viewer has been silent for a while, and every `RekeyLimits`), the
//! current and previous sessions, sealing and opening. `Sender` holds one of these when it
//! has a key.

use std::time::{Duration, Instant};

use ring::rand::SystemRandom;

use super::{Aead, AeadSet, ClientHandshake, HelloKey, Psk, RekeyLimits, SecureError, Session};
use crate::sender::probe_interval;
use crate::wire::{CommonRepr, HandshakeDatagram, Kind, Packet, SealedRepr, FLAG_SEALED};

/// No authenticated datagram from the viewer for this long while something is outstanding:
/// it may have restarted (and lost the session), so a new handshake starts, the old session
/// staying in use until the new one is up.
pub const REHANDSHAKE_AFTER: Duration = Duration::from_secs(1);

/// What an accepted datagram from the viewer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOpened {
    /// A sealed datagram, opened into the caller's buffer as the clear datagram it was.
    Data,
    /// A HELLO_REPLY that completed a handshake. `viewer_silent`: it was started because the
    /// viewer had gone silent (it may have restarted and lost frames in flight).
    Established { viewer_silent: bool },
    /// A copy of the reply that set up the current session: nothing to do.
    DuplicateReply,
}

#[derive(Debug)]
pub struct ClientKeys {
    psk: Psk,
    hello_key: HelloKey,
    offer: AeadSet,
    rekey: RekeyLimits,
    rng: SystemRandom,
    handshake: Option<ClientHandshake>,
    next_number: u32,
    hello_due: bool,
    hello_at: Option<Instant>,
    hellos_unanswered: u32,
    /// The handshake in progress has sent its HELLO: only then can a reply answer it.
    hello_sent: bool,
    current: Option<Session>,
    /// When the current session was set up.
    current_since: Option<Instant>,
    previous: Option<Session>,
    last_heard: Option<Instant>,
    /// The handshake in progress was started because the viewer went silent.
    after_silence: bool,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that could not start: the system's random generator failed.
    pub random_failures: u64,
}

impl ClientKeys {
    /// Keyed state whose first HELLO is due at once, offering what this machine runs fast.
    pub fn new(psk: Psk) -> ClientKeys {
        ClientKeys::with_aeads(psk, AeadSet::fast_here())
    }

    /// Keyed state whose HELLOs offer the AEADs in `offer`.
    pub fn with_aeads(psk: Psk, offer: AeadSet) -> ClientKeys {
        let hello_key = HelloKey::new(&psk);
        let mut keys = ClientKeys {
            psk,
            hello_key,
            offer,
            rekey: RekeyLimits::default(),
            rng: SystemRandom::new(),
            handshake: None,
            next_number: 0,
            hello_due: false,
            hello_at: None,
            hellos_unanswered: 0,
            hello_sent: false,
            current: None,
            current_since: None,
            previous: None,
            last_heard: None,
            after_silence: false,
            handshakes: 0,
            random_failures: 0,
        };
        keys.start_handshake();
        keys
    }

    /// A session is up: data may be sealed.
    pub fn is_established(&self) -> bool {
        self.current.is_some()
    }

    /// Replaces the limits after which a working session is replaced by a new handshake.
    pub fn with_rekey(mut self, rekey: RekeyLimits) -> ClientKeys {
        self.rekey = rekey;
        self
    }

    /// Starts a new handshake when none is in progress and the current session is old
    /// enough, or has sealed enough, to be replaced.
    fn rekey_if_due(&mut self, now: Instant) {
        let due = self.handshake.is_none()
            && (self
                .current
                .as_ref()
                .is_some_and(|s| s.sealed() >= self.rekey.after_packets)
                || self
                    .current_since
                    .is_some_and(|t| now >= t + self.rekey.after_time));
        if due {
            log::debug!("session due for new keys: new handshake");
            self.start_handshake();
        }
    }

    /// The AEAD of the current session.
    pub fn aead(&self) -> Option<Aead> {
        self.current.as_ref().map(Session::aead)
    }

    pub fn handshake_in_progress(&self) -> bool {
        self.handshake.is_some()
    }

    fn start_handshake(&mut self) {
        match ClientHandshake::start(&self.rng, self.next_number, self.offer) {
            Ok(h) => {
                log::debug!("starting handshake {}", self.next_number);
                self.next_number = self.next_number.wrapping_add(1);
                self.handshake = Some(h);
                self.hello_due = true;
                self.hello_at = None;
                self.hellos_unanswered = 0;
                self.hello_sent = false;
            }
            Err(_) => {
                // Tried again at the next timeout.
                self.random_failures += 1;
                self.handshake = None;
            }
        }
    }

    /// Runs the handshake timers. `busy`: frames (or a window probe) await an answer.
    pub fn handle_timeout(&mut self, now: Instant, pto: Duration, busy: bool) {
        if self.handshake.is_none() {
            let silent = match (self.current.is_some(), self.last_heard) {
                (false, _) => true,
                (true, Some(heard)) => busy && now >= heard + rehandshake_after(pto),
                (true, None) => busy,
            };
            if silent {
                if self.current.is_some() {
                    log::debug!("no authenticated answer from the viewer lately: new handshake");
                }
                self.start_handshake();
                self.after_silence = true;
            } else {
                self.rekey_if_due(now);
            }
            return;
        }
        if self.hello_at.is_some_and(|t| now >= t) {
            self.hello_due = true;
        }
    }

    /// When `handle_timeout` next has work (`busy` as there).
    pub fn poll_timeout(&self, pto: Duration, busy: bool) -> Option<Instant> {
        match &self.handshake {
            Some(_) => self.hello_at,
            // Only after the random generator failed: tried again at the next timer.
            None if self.current.is_none() => None,
            None => {
                let silent = self
                    .last_heard
                    .filter(|_| busy)
                    .map(|t| t + rehandshake_after(pto));
                let rekey = self.current_since.map(|t| t + self.rekey.after_time);
                silent.into_iter().chain(rekey).min()
            }
        }
    }

    /// Writes the HELLO into `buf` when one is due. The caller sends it with packet number
    /// `pn` (it consumes the number, as any datagram does).
    pub fn poll_hello(
        &mut self,
        now: Instant,
        pto: Duration,
        stream_id: u32,
        pn: u64,
        buf: &mut Vec<u8>,
    ) -> bool {
        // A session that sealed its share: the new HELLO goes out before the next datagram.
        self.rekey_if_due(now);
        let Some(handshake) = self.handshake.as_ref().filter(|_| self.hello_due) else {
            return false;
        };
        handshake.emit_hello(&self.hello_key, stream_id, pn, buf);
        self.hello_due = false;
        self.hello_at = Some(now + probe_interval(pto, self.hellos_unanswered));
        self.hellos_unanswered += 1;
        self.hello_sent = true;
        true
    }

    /// True when a datagram with packet number `pn` can be sealed now.
    pub fn can_seal(&self, pn: u64) -> bool {
        self.current.as_ref().is_some_and(Session::has_seals_left) && Session::can_seal(pn)
    }

    /// Seals a clear datagram with the current session.
    pub fn seal(&mut self, datagram: &mut Vec<u8>) -> Result<(), SecureError> {
        self.current
            .as_mut()
            .ok_or(SecureError::Unauthenticated)?
            .seal(datagram)
    }

    /// Authenticates a datagram from the viewer. A sealed one is opened into `out` and its
    /// packet number checked against the replay window; a HELLO_REPLY may complete the
    /// handshake. Anything else is refused, and nothing changes.
    pub fn open(
        &mut self,
        now: Instant,
        stream_id: u32,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<ClientOpened, SecureError> {
        let packet = Packet::new_checked(bytes)?;
        if packet.flags() != FLAG_SEALED {
            if packet.kind_raw() != Kind::HelloReply as u8 {
                // Checked for form first, so a malformed datagram is counted as such.
                CommonRepr::parse(&packet)?;
                return Err(SecureError::NotSealed);
            }
            return self.handle_reply(now, stream_id, bytes);
        }
        let common = SealedRepr::parse(&packet)?;
        if common.stream_id != stream_id {
            return Err(SecureError::Unauthenticated);
        }
        for session in [self.current.as_mut(), self.previous.as_mut()]
            .into_iter()
            .flatten()
        {
            match session.open(bytes, out) {
                Ok(common) => {
                    session.accept(common.packet_number)?;
                    self.last_heard = Some(now);
                    return Ok(ClientOpened::Data);
                }
                Err(SecureError::Unauthenticated) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SecureError::Unauthenticated)
    }

    fn handle_reply(
        &mut self,
        now: Instant,
        stream_id: u32,
        bytes: &[u8],
    ) -> Result<ClientOpened, SecureError> {
        let reply = HandshakeDatagram::parse(bytes)?;
        if self.current.as_ref().is_some_and(|s| s.reply() == bytes) {
            return Ok(ClientOpened::DuplicateReply);
        }
        let hello_sent = self.hello_sent;
        let Some(handshake) = self
            .handshake
            .take_if(|h| hello_sent && h.is_answered_by(stream_id, &reply))
        else {
            return Err(SecureError::Unauthenticated);
        };
        match handshake.finish(&self.psk, bytes, &reply) {
            Ok(session) => {
                let viewer_silent = std::mem::take(&mut self.after_silence);
                let aead = session.aead();
                if self.current.is_some() {
                    log::debug!("new handshake complete ({aead})");
                } else {
                    log::info!("keyed session with the viewer up ({aead})");
                }
                self.previous = self.current.replace(session);
                self.current_since = Some(now);
                self.last_heard = Some(now);
                self.hello_due = false;
                self.hello_at = None;
                self.handshakes += 1;
                Ok(ClientOpened::Established { viewer_silent })
            }
            Err(e) => {
                // The ephemeral key is spent: a new handshake, whose HELLO waits for the
                // retry the old one would have made. So forged replies, however many,
                // never make HELLOs (or key agreements) faster than the backoff.
                let (retry_at, unanswered) = (self.hello_at, self.hellos_unanswered);
                self.start_handshake();
                if self.handshake.is_some() {
                    self.hello_due = false;
                    self.hello_at = Some(retry_at.unwrap_or(now));
                    self.hellos_unanswered = unanswered;
                }
                Err(e)
            }
        }
    }
}

fn rehandshake_after(pto: Duration) -> Duration {
    REHANDSHAKE_AFTER.max(pto * 3)
}
