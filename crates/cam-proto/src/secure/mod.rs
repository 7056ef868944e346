//! Keyed mode: a pre-shared key, a two-message handshake that derives per-session,
//! per-direction keys, and an AEAD (AES-256-GCM where both ends have AES instructions,
//! ChaCha20-Poly1305 otherwise) on every other datagram, with a replay window on the packet
//! number. See `PROTOCOL.md`, section "Keyed mode", for the reasons.
//!
//! Sans-IO like the rest of the crate, except for randomness: the ephemeral keys come from
//! the operating system's generator (through `ring`), which cannot be replaced by a seeded
//! one. Nothing in the state machines depends on the values drawn.

mod aead;
mod client;
mod handshake;
pub mod keyfile;
mod replay;
mod viewer;

pub use aead::{Aead, AeadChoice, AeadSet};
pub use client::{ClientKeys, ClientOpened, REHANDSHAKE_AFTER};
pub use handshake::{answer_hello, ClientHandshake, HelloKey};
pub use replay::{ReplayVerdict, ReplayWindow, REPLAY_WINDOW};
pub use viewer::{ViewerKeys, ViewerOpened, MAX_PENDING_SESSIONS};

use std::time::Duration;

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, NONCE_LEN};

use crate::wire::{
    Packet, SealedRepr, WireError, CHECK_LEN, FLAG_SEALED, HEADER_LEN, KIND_SEALED, PUBLIC_KEY_LEN,
    SEALED_AAD_LEN, SEALED_KIND, TAG_LEN,
};

/// Length of the pre-shared key.
pub const PSK_LEN: usize = 32;

/// Packet numbers at and above this are never sealed or opened: a session's counter must
/// never come near wrapping (WireGuard's `REKEY_AFTER_MESSAGES`). At a million datagrams a
/// second it is 36,000 years away; reaching it means a bug, and the datagram is refused.
pub const MAX_PACKET_NUMBER: u64 = 1 << 60;

/// When a client starts a new handshake although its session works: after this long (as
/// WireGuard's `REKEY_AFTER_TIME`), so that a session key taken from memory exposes minutes
/// of a stream, not hours.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// ... or after sealing this many datagrams in one session: half of AES-256-GCM's
/// confidentiality limit (`Aead::seal_limit`), leaving the other half for the new handshake
/// to complete. At a million datagrams a second that is every 4 s.
pub const REKEY_AFTER_PACKETS: u64 = 1 << 22;

/// When a client starts a new handshake with a working session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyLimits {
    pub after_time: Duration,
    pub after_packets: u64,
}

impl Default for RekeyLimits {
    fn default() -> Self {
        RekeyLimits {
            after_time: REKEY_AFTER_TIME,
            after_packets: REKEY_AFTER_PACKETS,
        }
    }
}

/// The pre-shared key both ends hold. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; PSK_LEN]);

impl Psk {
    pub const fn from_bytes(bytes: [u8; PSK_LEN]) -> Psk {
        Psk(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; PSK_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(<secret>)")
    }
}

/// Why keyed mode refused a datagram, or could not make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    #[error("malformed: {0}")]
    Wire(#[from] WireError),
    #[error("failed authentication (no key, or another key)")]
    Unauthenticated,
    #[error("not sealed, but this end has a key")]
    NotSealed,
    #[error("packet number below the replay window")]
    Replayed,
    /// A packet number accepted before, inside the window: the network duplicated the
    /// datagram (or someone resent one, which changes nothing either). Not a replay alarm.
    #[error("duplicate of a datagram already accepted")]
    Duplicate,
    #[error("packet number at the limit of the session")]
    CounterExhausted,
    #[error("the system's random number generator failed")]
    Random,
    #[error("this session's key has sealed as many datagrams as its AEAD allows")]
    SessionExhausted,
    #[error("the client offers no AEAD this viewer accepts")]
    NoCommonAead,
}

/// Which end of a session this is: the client seals with the client-to-viewer key and
/// opens with the other, the viewer the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Viewer,
}

/// The keys of one handshake, one end's view of them, and its replay window.
pub struct Session {
    aead: Aead,
    /// Datagrams sealed with `seal_key`, against the AEAD's limit.
    sealed: u64,
    seal_key: LessSafeKey,
    open_key: LessSafeKey,
    replay: ReplayWindow,
    /// The client's ephemeral public key: names the handshake this session came from.
    client_public: [u8; PUBLIC_KEY_LEN],
    viewer_public: [u8; PUBLIC_KEY_LEN],
    /// The HELLO_REPLY that set it up (viewer side: sent again, byte for byte, when the
    /// same HELLO comes again).
    reply: Vec<u8>,
    /// The handshake's number, chosen by the client, echoed by the reply.
    number: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("number", &self.number)
            .field("aead", &self.aead)
            .field("highest_opened", &self.replay.highest())
            .finish_non_exhaustive()
    }
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&pn.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Session {
    fn new(
        role: Role,
        aead: Aead,
        c2v: LessSafeKey,
        v2c: LessSafeKey,
        client_public: [u8; PUBLIC_KEY_LEN],
        viewer_public: [u8; PUBLIC_KEY_LEN],
        number: u32,
    ) -> Session {
        let (seal_key, open_key) = match role {
            Role::Client => (c2v, v2c),
            Role::Viewer => (v2c, c2v),
        };
        Session {
            aead,
            sealed: 0,
            seal_key,
            open_key,
            replay: ReplayWindow::new(),
            client_public,
            viewer_public,
            reply: Vec::new(),
            number,
        }
    }

    /// The AEAD the handshake chose.
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// Datagrams this session has sealed.
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// True while this session's key may seal more (see `Aead::seal_limit`).
    pub fn has_seals_left(&self) -> bool {
        self.sealed < self.aead.seal_limit()
    }

    pub fn client_public(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.client_public
    }
    pub fn viewer_public(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.viewer_public
    }
    pub fn reply(&self) -> &[u8] {
        &self.reply
    }
    pub fn number(&self) -> u32 {
        self.number
    }

    /// True when a datagram with packet number `pn` can be sealed.
    pub fn can_seal(pn: u64) -> bool {
        pn < MAX_PACKET_NUMBER
    }

    /// Seals a clear datagram (as `Datagram::emit` wrote it) in place. Its CRC-32C goes: the
    /// tag checks the datagram instead. The plaintext is everything after the packet number
    /// (frame seq, body) and the kind byte after it; the clear prefix, marked `KIND_SEALED`
    /// and `FLAG_SEALED`, is the associated data. The encrypted kind then moves to
    /// `SEALED_KIND` and the 16-byte tag is appended, so a sealed datagram is its clear one
    /// plus the tag, with the routing fields where they were. The nonce is the packet
    /// number, so the caller must never seal two datagrams with one number.
    pub fn seal(&mut self, datagram: &mut Vec<u8>) -> Result<(), SecureError> {
        let packet = Packet::new_checked(&datagram[..])?;
        let (pn, kind) = (packet.packet_number(), packet.kind_raw());
        if !Self::can_seal(pn) {
            return Err(SecureError::CounterExhausted);
        }
        if !self.has_seals_left() {
            return Err(SecureError::SessionExhausted);
        }
        if datagram.len() < HEADER_LEN + CHECK_LEN {
            return Err(SecureError::Wire(WireError::Truncated));
        }
        self.sealed += 1;
        datagram.truncate(datagram.len() - CHECK_LEN);
        datagram.push(kind);
        let mut packet = Packet::new_unchecked(&mut datagram[..]);
        packet.set_kind_raw(KIND_SEALED);
        packet.set_flags(FLAG_SEALED);
        let (aad, plaintext) = datagram.split_at_mut(SEALED_AAD_LEN);
        let tag = self
            .seal_key
            .seal_in_place_separate_tag(nonce(pn), Aad::from(&aad[..]), plaintext)
            .map_err(|_| SecureError::CounterExhausted)?;
        if let Some(encrypted_kind) = datagram.pop() {
            datagram[SEALED_KIND] = encrypted_kind;
        }
        datagram.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a sealed datagram into `out` (replacing its contents) as the clear datagram it
    /// was, less its check (`Datagram::parse_opened` reads it): its kind back in the
    /// header, flags 0, no tag. Nothing in this session changes;
    /// the caller checks the packet number against the replay window (`accept`) only after
    /// this succeeded.
    pub fn open(&self, datagram: &[u8], out: &mut Vec<u8>) -> Result<SealedRepr, SecureError> {
        let sealed = SealedRepr::parse(&Packet::new_checked(datagram)?)?;
        if sealed.packet_number >= MAX_PACKET_NUMBER {
            return Err(SecureError::CounterExhausted);
        }
        // `SealedRepr::parse` checked the length: a frame seq and a tag at least.
        let tag_at = datagram.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&datagram[tag_at..]);
        out.clear();
        out.extend_from_slice(&datagram[..tag_at]);
        out.push(datagram[SEALED_KIND]);
        out[SEALED_KIND] = 0;
        let (aad, ciphertext) = out.split_at_mut(SEALED_AAD_LEN);
        self.open_key
            .open_in_place_separate_tag(
                nonce(sealed.packet_number),
                Aad::from(&aad[..]),
                Tag::from(tag),
                ciphertext,
                0..,
            )
            .map_err(|_| SecureError::Unauthenticated)?;
        let kind = out.pop().unwrap_or_default();
        let mut packet = Packet::new_unchecked(&mut out[..]);
        packet.set_kind_raw(kind);
        packet.set_flags(0);
        Ok(sealed)
    }

    /// Records an authenticated packet number; `Duplicate` if it was accepted before,
    /// `Replayed` if it is too old to tell.
    pub fn accept(&mut self, pn: u64) -> Result<(), SecureError> {
        match self.replay.accept(pn) {
            ReplayVerdict::Fresh => Ok(()),
            ReplayVerdict::Duplicate => Err(SecureError::Duplicate),
            ReplayVerdict::TooOld => Err(SecureError::Replayed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, CommonRepr, Datagram, HeaderRepr, Kind};
    use ring::aead::UnboundKey;

    fn key(aead: Aead, byte: u8) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(aead.algorithm(), &[byte; 32]).unwrap())
    }

    fn pair_with(aead: Aead) -> (Session, Session) {
        let session =
            |role| Session::new(role, aead, key(aead, 1), key(aead, 2), [3; 32], [4; 32], 0);
        (session(Role::Client), session(Role::Viewer))
    }

    fn pair() -> (Session, Session) {
        pair_with(Aead::ChaCha20Poly1305)
    }

    fn header_datagram(pn: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        Datagram {
            common: CommonRepr {
                kind: Kind::Header,
                stream_id: 7,
                packet_number: pn,
                frame_seq: 1,
            },
            body: Body::Header(HeaderRepr {
                total_len: 100,
                chunk_size: 50,
                codec: crate::wire::Codec::Jpeg,
                width: 16,
                height: 16,
                capture_ts_us: 5,
                crc32: 9,
            }),
        }
        .emit(&mut buf);
        buf
    }

    #[test]
    fn seal_then_open_gives_the_clear_datagram_back() {
        for aead in [Aead::ChaCha20Poly1305, Aead::Aes256Gcm] {
            let (mut client, mut viewer) = pair_with(aead);
            let clear = header_datagram(42);
            let mut sealed = clear.clone();
            client.seal(&mut sealed).unwrap();
            assert_eq!(
                sealed.len(),
                clear.len() - CHECK_LEN + TAG_LEN,
                "tag for check"
            );
            assert_eq!(sealed[..3], clear[..3], "magic and version stay clear");
            assert_eq!((sealed[3], sealed[4]), (KIND_SEALED, FLAG_SEALED));
            assert_eq!(sealed[6..20], clear[6..20], "routing and nonce stay clear");
            assert_ne!(sealed[5], clear[3], "the kind travels encrypted");
            assert_ne!(sealed[20..24], clear[20..24], "so does the frame seq");
            let unchecked = &clear[..clear.len() - CHECK_LEN];
            assert_ne!(sealed[HEADER_LEN..unchecked.len()], unchecked[HEADER_LEN..]);
            let mut out = Vec::new();
            let common = viewer.open(&sealed, &mut out).unwrap();
            assert_eq!(common.packet_number, 42);
            assert_eq!(out, unchecked);
            viewer.accept(42).unwrap();
            assert_eq!(viewer.accept(42), Err(SecureError::Duplicate));
            viewer.accept(42 + REPLAY_WINDOW).unwrap();
            assert_eq!(viewer.accept(41), Err(SecureError::Replayed));
            // A client cannot open what it sealed itself: the directions have their own keys.
            assert_eq!(
                client.open(&sealed, &mut out),
                Err(SecureError::Unauthenticated)
            );
        }
        // The same key bytes under the other AEAD open nothing.
        let (mut client, _) = pair_with(Aead::Aes256Gcm);
        let (_, viewer) = pair_with(Aead::ChaCha20Poly1305);
        let mut sealed = header_datagram(1);
        client.seal(&mut sealed).unwrap();
        assert_eq!(
            viewer.open(&sealed, &mut Vec::new()),
            Err(SecureError::Unauthenticated)
        );
    }

    #[test]
    fn counter_limit_is_refused_both_ways() {
        let (mut client, viewer) = pair();
        let mut ok = header_datagram(MAX_PACKET_NUMBER - 1);
        client.seal(&mut ok).unwrap();
        let mut out = Vec::new();
        assert!(viewer.open(&ok, &mut out).is_ok());
        for pn in [MAX_PACKET_NUMBER, MAX_PACKET_NUMBER + 1, u64::MAX] {
            let mut at_limit = header_datagram(pn);
            assert_eq!(
                client.seal(&mut at_limit),
                Err(SecureError::CounterExhausted)
            );
            assert_eq!(at_limit, header_datagram(pn), "nothing sealed");
            // A forged datagram at the limit is refused before any decryption.
            let mut forged = ok.clone();
            forged[12..20].copy_from_slice(&pn.to_be_bytes());
            assert_eq!(
                viewer.open(&forged, &mut out),
                Err(SecureError::CounterExhausted)
            );
        }
    }

    #[test]
    fn an_aes_key_seals_no_more_than_its_confidentiality_limit() {
        let (mut client, mut viewer) = pair_with(Aead::Aes256Gcm);
        client.sealed = Aead::Aes256Gcm.seal_limit() - 1;
        let mut last = header_datagram(5);
        client.seal(&mut last).unwrap();
        assert!(!client.has_seals_left());
        let mut over = header_datagram(6);
        assert_eq!(client.seal(&mut over), Err(SecureError::SessionExhausted));
        assert_eq!(over, header_datagram(6), "nothing sealed");
        // Opening is not limited: what was sealed in time still arrives.
        assert!(viewer.open(&last, &mut Vec::new()).is_ok());
        viewer.sealed = u64::MAX - 1;
        assert!(viewer.seal(&mut header_datagram(7)).is_err());
        let (mut chacha, _) = pair_with(Aead::ChaCha20Poly1305);
        chacha.sealed = Aead::Aes256Gcm.seal_limit() * 1000;
        assert!(
            chacha.seal(&mut header_datagram(8)).is_ok(),
            "no such limit"
        );
    }

    #[test]
    fn truncated_and_clear_datagrams_are_refused() {
        let (mut client, viewer) = pair();
        let mut sealed = header_datagram(1);
        client.seal(&mut sealed).unwrap();
        let mut out = Vec::new();
        for len in 0..sealed.len() {
            assert!(viewer.open(&sealed[..len], &mut out).is_err(), "len {len}");
        }
        assert!(viewer.open(&header_datagram(1), &mut out).is_err());
    }

    #[test]
    fn psk_debug_hides_the_key() {
        let text = format!("{:?}", Psk::from_bytes([0xab; 32]));
        assert!(!text.contains("ab") && !text.contains("171"), "{text}");
    }
}
