//! The handshake, in the spirit of Noise's NNpsk0 built from `ring`'s parts:
//!
//! - HELLO (client → viewer): the client's ephemeral X25519 public key and the AEADs it
//!   offers, with an HMAC keyed by `HKDF(PSK, "camstream v1 hello")`: only a holder of the
//!   key can start a session.
//! - HELLO_REPLY (viewer → client): the viewer's ephemeral public key and the AEAD it chose,
//!   with an HMAC keyed by the new session's confirmation key: only a holder of the key that
//!   also did the Diffie-Hellman with this HELLO's key can make it.
//! - Session keys: `PRK = HKDF-Extract(salt = PSK, dh ‖ client_pub ‖ viewer_pub)`, expanded
//!   (with the stream id and the chosen AEAD in the info) to a client-to-viewer key, a
//!   viewer-to-client key and the confirmation key. Fresh ephemerals on both sides give
//!   forward secrecy.

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::hmac;
use ring::rand::SecureRandom;

use super::{Aead, AeadSet, Psk, Role, SecureError, Session};
use crate::wire::{CommonRepr, HandshakeDatagram, Kind, MAC_LEN, PUBLIC_KEY_LEN};
use ring::aead::{LessSafeKey, UnboundKey};

const HELLO_SALT: &[u8] = b"camstream v1 psk";
const HELLO_INFO: &[u8] = b"camstream v1 hello";
const C2V_INFO: &[u8] = b"camstream v1 client to viewer";
const V2C_INFO: &[u8] = b"camstream v1 viewer to client";
const CONFIRM_INFO: &[u8] = b"camstream v1 confirm";

fn truncated_mac(key: &hmac::Key, input: &[u8]) -> [u8; MAC_LEN] {
    let tag = hmac::sign(key, input);
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
    mac
}

/// Compares MACs in time independent of where they differ.
fn mac_matches(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key that authenticates HELLOs, derived once from the pre-shared key.
pub struct HelloKey(hmac::Key);

impl std::fmt::Debug for HelloKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HelloKey(<secret>)")
    }
}

impl HelloKey {
    pub fn new(psk: &Psk) -> HelloKey {
        let prk = Salt::new(HKDF_SHA256, HELLO_SALT).extract(psk.as_bytes());
        // Expanding 32 bytes from SHA-256's HKDF cannot fail (the limit is 255 × 32).
        match prk.expand(&[HELLO_INFO], hmac::HMAC_SHA256) {
            Ok(okm) => HelloKey(hmac::Key::from(okm)),
            Err(_) => HelloKey(hmac::Key::new(hmac::HMAC_SHA256, psk.as_bytes())),
        }
    }

    /// True when `bytes`, a parsed HELLO, carries a MAC made with this key.
    pub fn verify(&self, bytes: &[u8], hello: &HandshakeDatagram) -> bool {
        hello.common.kind == Kind::Hello
            && HandshakeDatagram::mac_input(bytes)
                .is_some_and(|input| mac_matches(&truncated_mac(&self.0, input), &hello.hello.mac))
    }
}

/// The session keys a handshake yields.
struct Derived {
    c2v: LessSafeKey,
    v2c: LessSafeKey,
    confirm: hmac::Key,
}

fn derive(
    psk: &Psk,
    stream_id: u32,
    aead: Aead,
    dh: &[u8],
    client_public: &[u8; PUBLIC_KEY_LEN],
    viewer_public: &[u8; PUBLIC_KEY_LEN],
) -> Result<Derived, SecureError> {
    let mut ikm = [0u8; 32 + 2 * PUBLIC_KEY_LEN];
    if dh.len() != 32 {
        return Err(SecureError::Unauthenticated);
    }
    ikm[..32].copy_from_slice(dh);
    ikm[32..64].copy_from_slice(client_public);
    ikm[64..].copy_from_slice(viewer_public);
    let prk = Salt::new(HKDF_SHA256, psk.as_bytes()).extract(&ikm);
    let id = stream_id.to_be_bytes();
    let chosen = [aead.bit()];
    let aead_key = |info: &[u8]| -> Result<LessSafeKey, SecureError> {
        let info = [info, &id[..], &chosen[..]];
        let okm = prk
            .expand(&info, aead.algorithm())
            .map_err(|_| SecureError::Unauthenticated)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    };
    let confirm_info = [CONFIRM_INFO, &id[..], &chosen[..]];
    let confirm = prk
        .expand(&confirm_info, hmac::HMAC_SHA256)
        .map(hmac::Key::from)
        .map_err(|_| SecureError::Unauthenticated)?;
    Ok(Derived {
        c2v: aead_key(C2V_INFO)?,
        v2c: aead_key(V2C_INFO)?,
        confirm,
    })
}

fn public_bytes(private: &EphemeralPrivateKey) -> Result<[u8; PUBLIC_KEY_LEN], SecureError> {
    let public = private
        .compute_public_key()
        .map_err(|_| SecureError::Random)?;
    let mut out = [0u8; PUBLIC_KEY_LEN];
    if public.as_ref().len() != PUBLIC_KEY_LEN {
        return Err(SecureError::Random);
    }
    out.copy_from_slice(public.as_ref());
    Ok(out)
}

/// The client's half of a handshake in progress: its ephemeral key, used once.
pub struct ClientHandshake {
    private: EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
    number: u32,
    offer: AeadSet,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A fresh ephemeral key for handshake number `number` of this stream, offering the
    /// AEADs in `offer` (`AeadSet::fast_here()` unless a test says otherwise).
    pub fn start(
        rng: &dyn SecureRandom,
        number: u32,
        offer: AeadSet,
    ) -> Result<ClientHandshake, SecureError> {
        let private =
            EphemeralPrivateKey::generate(&X25519, rng).map_err(|_| SecureError::Random)?;
        let public = public_bytes(&private)?;
        Ok(ClientHandshake {
            private,
            public,
            number,
            offer,
        })
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    pub fn public(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Writes this handshake's HELLO (sent again, with a new packet number, until answered).
    pub fn emit_hello(&self, key: &HelloKey, stream_id: u32, pn: u64, buf: &mut Vec<u8>) {
        let common = CommonRepr {
            kind: Kind::Hello,
            stream_id,
            packet_number: pn,
            frame_seq: self.number,
        };
        HandshakeDatagram::emit_with_mac(
            common,
            self.public,
            self.offer.bits(),
            |input| truncated_mac(&key.0, input),
            buf,
        );
    }

    /// True when `reply` answers this handshake (stream and number): worth spending the
    /// ephemeral key on. Says nothing about authenticity.
    pub fn is_answered_by(&self, stream_id: u32, reply: &HandshakeDatagram) -> bool {
        reply.common.kind == Kind::HelloReply
            && reply.common.stream_id == stream_id
            && reply.common.frame_seq == self.number
    }

    /// Completes the handshake with the viewer's reply. Consumes the ephemeral key whether
    /// or not the reply authenticates (ring allows one agreement per key): on failure the
    /// client starts a new handshake.
    pub fn finish(
        self,
        psk: &Psk,
        bytes: &[u8],
        reply: &HandshakeDatagram,
    ) -> Result<Session, SecureError> {
        let viewer_public = reply.hello.public;
        let stream_id = reply.common.stream_id;
        // A reply can only name one AEAD, and one this client offered; the MAC below then
        // proves that the viewer chose it (nobody on the path can change the choice).
        let aead = Aead::from_bit(reply.hello.aead)
            .filter(|&a| self.offer.contains(a))
            .ok_or(SecureError::Unauthenticated)?;
        let peer = UnparsedPublicKey::new(&X25519, viewer_public);
        let derived = agreement::agree_ephemeral(self.private, &peer, |dh| {
            derive(psk, stream_id, aead, dh, &self.public, &viewer_public)
        })
        .map_err(|_| SecureError::Unauthenticated)??;
        let input = HandshakeDatagram::mac_input(bytes).ok_or(SecureError::Unauthenticated)?;
        if reply.common.kind != Kind::HelloReply
            || !mac_matches(&truncated_mac(&derived.confirm, input), &reply.hello.mac)
        {
            return Err(SecureError::Unauthenticated);
        }
        let mut session = Session::new(
            Role::Client,
            aead,
            derived.c2v,
            derived.v2c,
            self.public,
            viewer_public,
            self.number,
        );
        session.reply = bytes.to_vec();
        Ok(session)
    }
}

/// The viewer's answer to a HELLO whose MAC `HelloKey::verify` accepted: the AEAD chosen
/// from the offer (of those in `accept`), a fresh ephemeral key, the session, and the
/// HELLO_REPLY (with packet number `pn`) kept in it.
pub fn answer_hello(
    psk: &Psk,
    rng: &dyn SecureRandom,
    hello: &HandshakeDatagram,
    pn: u64,
    accept: AeadSet,
) -> Result<Session, SecureError> {
    let aead = accept
        .choose(AeadSet::from_bits(hello.hello.aead))
        .ok_or(SecureError::NoCommonAead)?;
    let private = EphemeralPrivateKey::generate(&X25519, rng).map_err(|_| SecureError::Random)?;
    let viewer_public = public_bytes(&private)?;
    let client_public = hello.hello.public;
    let stream_id = hello.common.stream_id;
    let peer = UnparsedPublicKey::new(&X25519, client_public);
    let derived = agreement::agree_ephemeral(private, &peer, |dh| {
        derive(psk, stream_id, aead, dh, &client_public, &viewer_public)
    })
    .map_err(|_| SecureError::Unauthenticated)??;
    let common = CommonRepr {
        kind: Kind::HelloReply,
        stream_id,
        packet_number: pn,
        frame_seq: hello.common.frame_seq,
    };
    let mut reply = Vec::new();
    HandshakeDatagram::emit_with_mac(
        common,
        viewer_public,
        aead.bit(),
        |input| truncated_mac(&derived.confirm, input),
        &mut reply,
    );
    let mut session = Session::new(
        Role::Viewer,
        aead,
        derived.c2v,
        derived.v2c,
        client_public,
        viewer_public,
        hello.common.frame_seq,
    );
    session.reply = reply;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Datagram, HELLO_LEN};
    use ring::rand::SystemRandom;

    fn handshake(client_psk: &Psk, viewer_psk: &Psk) -> Result<(Session, Session), SecureError> {
        handshake_with(client_psk, viewer_psk, AeadSet::ALL, AeadSet::ALL)
    }

    fn handshake_with(
        client_psk: &Psk,
        viewer_psk: &Psk,
        offer: AeadSet,
        accept: AeadSet,
    ) -> Result<(Session, Session), SecureError> {
        let rng = SystemRandom::new();
        let client = ClientHandshake::start(&rng, 3, offer)?;
        let mut hello_bytes = Vec::new();
        client.emit_hello(&HelloKey::new(client_psk), 0xabcd, 7, &mut hello_bytes);
        assert_eq!(hello_bytes.len(), HELLO_LEN);
        let hello = HandshakeDatagram::parse(&hello_bytes)?;
        if !HelloKey::new(viewer_psk).verify(&hello_bytes, &hello) {
            return Err(SecureError::Unauthenticated);
        }
        let viewer = answer_hello(viewer_psk, &rng, &hello, 0, accept)?;
        let reply_bytes = viewer.reply().to_vec();
        let reply = HandshakeDatagram::parse(&reply_bytes)?;
        assert!(client.is_answered_by(0xabcd, &reply));
        let client = client.finish(client_psk, &reply_bytes, &reply)?;
        Ok((client, viewer))
    }

    #[test]
    fn matching_keys_agree_on_both_directions() {
        let psk = Psk::from_bytes([9; 32]);
        for (offer, accept, chosen) in [
            (AeadSet::ALL, AeadSet::ALL, Aead::Aes256Gcm),
            (
                AeadSet::CHACHA20_POLY1305,
                AeadSet::ALL,
                Aead::ChaCha20Poly1305,
            ),
            (
                AeadSet::ALL,
                AeadSet::CHACHA20_POLY1305,
                Aead::ChaCha20Poly1305,
            ),
            (AeadSet::AES_256_GCM, AeadSet::ALL, Aead::Aes256Gcm),
        ] {
            let (mut client, mut viewer) = handshake_with(&psk, &psk, offer, accept).unwrap();
            assert_eq!((client.aead(), viewer.aead()), (chosen, chosen));
            data_flows_both_ways(&mut client, &mut viewer);
        }
        assert_eq!(
            handshake_with(&psk, &psk, AeadSet::CHACHA20_POLY1305, AeadSet::AES_256_GCM).err(),
            Some(SecureError::NoCommonAead)
        );
    }

    fn data_flows_both_ways(client: &mut Session, viewer: &mut Session) {
        assert_eq!(client.viewer_public(), viewer.viewer_public());
        let mut probe = Vec::new();
        Datagram {
            common: CommonRepr {
                kind: Kind::Probe,
                stream_id: 0xabcd,
                packet_number: 1,
                frame_seq: 0,
            },
            body: Body::Probe,
        }
        .emit(&mut probe);
        let clear = probe.clone();
        let opened = &clear[..clear.len() - crate::wire::CHECK_LEN];
        client.seal(&mut probe).unwrap();
        let mut out = Vec::new();
        viewer.open(&probe, &mut out).unwrap();
        assert_eq!(out, opened);
        let mut back = clear.clone();
        viewer.seal(&mut back).unwrap();
        client.open(&back, &mut out).unwrap();
        assert_eq!(out, opened);
    }

    #[test]
    fn a_reply_naming_an_aead_not_offered_is_refused() {
        let psk = Psk::from_bytes([6; 32]);
        let rng = SystemRandom::new();
        let client = ClientHandshake::start(&rng, 0, AeadSet::CHACHA20_POLY1305).unwrap();
        let mut hello_bytes = Vec::new();
        client.emit_hello(&HelloKey::new(&psk), 1, 0, &mut hello_bytes);
        // A viewer (with the key) that ignores the offer: its reply's MAC is valid.
        let mut hello = HandshakeDatagram::parse(&hello_bytes).unwrap();
        hello.hello.aead = Aead::Aes256Gcm.bit();
        let viewer = answer_hello(&psk, &rng, &hello, 0, AeadSet::AES_256_GCM).unwrap();
        assert_eq!(viewer.aead(), Aead::Aes256Gcm);
        let reply = HandshakeDatagram::parse(viewer.reply()).unwrap();
        assert_eq!(
            client.finish(&psk, viewer.reply(), &reply).err(),
            Some(SecureError::Unauthenticated)
        );
    }

    #[test]
    fn different_keys_never_agree() {
        let a = Psk::from_bytes([1; 32]);
        let mut other = [1; 32];
        other[31] ^= 1;
        let b = Psk::from_bytes(other);
        assert_eq!(
            handshake(&a, &b).err(),
            Some(SecureError::Unauthenticated),
            "the viewer must refuse the HELLO"
        );
        // Even a viewer that skipped the HELLO check cannot make a reply the client takes.
        let rng = SystemRandom::new();
        let client = ClientHandshake::start(&rng, 0, AeadSet::ALL).unwrap();
        let mut hello_bytes = Vec::new();
        client.emit_hello(&HelloKey::new(&a), 1, 0, &mut hello_bytes);
        let hello = HandshakeDatagram::parse(&hello_bytes).unwrap();
        let viewer = answer_hello(&b, &rng, &hello, 0, AeadSet::ALL).unwrap();
        let reply = HandshakeDatagram::parse(viewer.reply()).unwrap();
        assert_eq!(
            client.finish(&a, viewer.reply(), &reply).err(),
            Some(SecureError::Unauthenticated)
        );
    }

    #[test]
    fn every_flipped_bit_of_a_handshake_is_refused() {
        let psk = Psk::from_bytes([5; 32]);
        let rng = SystemRandom::new();
        let key = HelloKey::new(&psk);
        let client = ClientHandshake::start(&rng, 0, AeadSet::ALL).unwrap();
        let mut hello_bytes = Vec::new();
        client.emit_hello(&key, 1, 0, &mut hello_bytes);
        for i in 0..hello_bytes.len() {
            for bit in 0..8 {
                let mut t = hello_bytes.clone();
                t[i] ^= 1 << bit;
                let ok = HandshakeDatagram::parse(&t).is_ok_and(|h| key.verify(&t, &h));
                assert!(!ok, "HELLO with byte {i} bit {bit} flipped accepted");
            }
        }
        for i in 0..HELLO_LEN {
            // A fresh handshake for each position, so each tampered reply answers a HELLO
            // its client really sent: only the flipped byte can make it fail.
            let client = ClientHandshake::start(&rng, 0, AeadSet::ALL).unwrap();
            client.emit_hello(&key, 1, 0, &mut hello_bytes);
            let hello = HandshakeDatagram::parse(&hello_bytes).unwrap();
            let viewer = answer_hello(&psk, &rng, &hello, 0, AeadSet::ALL).unwrap();
            let mut t = viewer.reply().to_vec();
            t[i] ^= 0x01;
            let result = HandshakeDatagram::parse(&t)
                .map_err(SecureError::from)
                .and_then(|r| client.finish(&psk, &t, &r));
            assert!(result.is_err(), "reply with byte {i} flipped accepted");
        }
    }

    #[test]
    fn the_real_reply_finishes_only_its_own_handshake() {
        let psk = Psk::from_bytes([5; 32]);
        let rng = SystemRandom::new();
        let key = HelloKey::new(&psk);
        let first = ClientHandshake::start(&rng, 0, AeadSet::ALL).unwrap();
        let second = ClientHandshake::start(&rng, 0, AeadSet::ALL).unwrap();
        let mut hello_bytes = Vec::new();
        first.emit_hello(&key, 1, 0, &mut hello_bytes);
        let hello = HandshakeDatagram::parse(&hello_bytes).unwrap();
        let viewer = answer_hello(&psk, &rng, &hello, 0, AeadSet::ALL).unwrap();
        let reply = HandshakeDatagram::parse(viewer.reply()).unwrap();
        assert!(second.finish(&psk, viewer.reply(), &reply).is_err());
        assert!(first.finish(&psk, viewer.reply(), &reply).is_ok());
    }
}
