//! The two handshake datagrams of keyed mode: HELLO (kind 5, client → viewer) and
//! HELLO_REPLY (kind 6, viewer → client). Both carry an ephemeral X25519 public key, an AEAD
//! byte (the AEADs offered in a HELLO, the one chosen in a reply) and a 16-byte MAC over
//! everything before it; they are never sealed (they set up the keys that seal everything
//! else). What the MAC is keyed with, and what the AEAD bits mean, is `crate::secure`'s
//! business.

use super::{CommonRepr, Field, Kind, Packet, Result, WireError, HEADER_LEN};

mod field {
    use super::Field;
    pub const PUBLIC: Field = 0..32;
    pub const AEAD: usize = 32;
    pub const RESERVED: Field = 33..36;
    pub const MAC: Field = 36..52;
    pub const END: usize = MAC.end;
}

/// Length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = field::PUBLIC.end - field::PUBLIC.start;
/// Length of the truncated HMAC-SHA256 a handshake datagram ends with.
pub const MAC_LEN: usize = field::MAC.end - field::MAC.start;
/// Length of a handshake body.
pub const BODY_LEN: usize = field::END;
/// Length of a whole handshake datagram.
pub const HELLO_LEN: usize = HEADER_LEN + BODY_LEN;
/// The MAC covers the common header, the public key and the AEAD byte: everything before it.
const MAC_INPUT_LEN: usize = HEADER_LEN + field::MAC.start;

/// A handshake body: an ephemeral public key, the AEAD bits and the MAC that vouches for
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloRepr {
    pub public: [u8; PUBLIC_KEY_LEN],
    /// HELLO: the AEADs the client offers (a bit each); HELLO_REPLY: the one the viewer chose.
    pub aead: u8,
    pub mac: [u8; MAC_LEN],
}

impl HelloRepr {
    pub fn parse(body: &[u8]) -> Result<HelloRepr> {
        if body.len() < BODY_LEN {
            return Err(WireError::Truncated);
        }
        if body.len() > BODY_LEN {
            return Err(WireError::BadLength);
        }
        if body[field::RESERVED].iter().any(|&b| b != 0) {
            return Err(WireError::BadReserved);
        }
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(&body[field::PUBLIC]);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&body[field::MAC]);
        Ok(HelloRepr {
            public,
            aead: body[field::AEAD],
            mac,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    fn emit(&self, body: &mut [u8]) {
        body[field::PUBLIC].copy_from_slice(&self.public);
        body[field::AEAD] = self.aead;
        body[field::RESERVED].fill(0);
        body[field::MAC].copy_from_slice(&self.mac);
    }
}

/// A whole handshake datagram: common header (kind 5 or 6, flags 0) and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeDatagram {
    pub common: CommonRepr,
    pub hello: HelloRepr,
}

impl HandshakeDatagram {
    /// Checks and interprets untrusted bytes. Never panics, whatever the input. The MAC is
    /// not checked here: see `mac_input`.
    pub fn parse(bytes: &[u8]) -> Result<HandshakeDatagram> {
        let packet = Packet::new_checked(bytes)?;
        let common = CommonRepr::parse(&packet)?;
        if !matches!(common.kind, Kind::Hello | Kind::HelloReply) {
            return Err(WireError::BadKind(common.kind as u8));
        }
        let hello = HelloRepr::parse(packet.body())?;
        Ok(HandshakeDatagram { common, hello })
    }

    /// The bytes a handshake MAC covers (common header, public key, AEAD byte and the
    /// reserved bytes after it), from a datagram
    /// that `parse` accepted; `None` for anything shorter.
    pub fn mac_input(bytes: &[u8]) -> Option<&[u8]> {
        bytes.get(..MAC_INPUT_LEN)
    }

    /// Writes the datagram into `buf` (replacing its contents), with the MAC `mac` computes
    /// over the bytes before it.
    pub fn emit_with_mac(
        common: CommonRepr,
        public: [u8; PUBLIC_KEY_LEN],
        aead: u8,
        mac: impl FnOnce(&[u8]) -> [u8; MAC_LEN],
        buf: &mut Vec<u8>,
    ) {
        let mut datagram = HandshakeDatagram {
            common,
            hello: HelloRepr {
                public,
                aead,
                mac: [0; MAC_LEN],
            },
        };
        datagram.emit(buf);
        datagram.hello.mac = mac(&buf[..MAC_INPUT_LEN]);
        datagram.emit(buf);
    }

    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.resize(HELLO_LEN, 0);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_common(&self.common);
        self.hello.emit(packet.body_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::super::Datagram;
    use super::*;

    const BYTES: [u8; 76] = [
        b'C', b'S', 2, 5, 0, 0, 0, 0, // common: kind = hello
        0xca, 0xfe, 0x00, 0x01, // stream id
        0, 0, 0, 0, 0, 0, 0, 3, // packet number
        0, 0, 0, 2, // frame seq: the handshake's number
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // public key
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, //
        0x03, 0, 0, 0, // AEADs offered, reserved
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, // mac
        0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    ];

    fn repr() -> HandshakeDatagram {
        let mut public = [0u8; 32];
        for (i, b) in public.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let mut mac = [0u8; 16];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        HandshakeDatagram {
            common: CommonRepr {
                kind: Kind::Hello,
                stream_id: 0xcafe_0001,
                packet_number: 3,
                frame_seq: 2,
            },
            hello: HelloRepr {
                public,
                aead: 3,
                mac,
            },
        }
    }

    #[test]
    fn parse_golden() {
        assert_eq!(HandshakeDatagram::parse(&BYTES), Ok(repr()));
        let mut reply = BYTES;
        reply[3] = 6;
        let parsed = HandshakeDatagram::parse(&reply).unwrap();
        assert_eq!(parsed.common.kind, Kind::HelloReply);
        assert_eq!(parsed.hello, repr().hello);
    }

    #[test]
    fn emit_golden() {
        let mut buf = Vec::new();
        repr().emit(&mut buf);
        assert_eq!(buf, BYTES);
        assert_eq!(repr().hello.buffer_len() + HEADER_LEN, HELLO_LEN);
    }

    #[test]
    fn emit_with_mac_covers_header_and_key() {
        let r = repr();
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        HandshakeDatagram::emit_with_mac(
            r.common,
            r.hello.public,
            r.hello.aead,
            |input| {
                seen = input.to_vec();
                r.hello.mac
            },
            &mut buf,
        );
        assert_eq!(buf, BYTES);
        assert_eq!(seen, BYTES[..60]);
        assert_eq!(HandshakeDatagram::mac_input(&BYTES), Some(&BYTES[..60]));
    }

    #[test]
    fn every_truncation_is_refused() {
        for len in 0..BYTES.len() {
            assert_eq!(
                HandshakeDatagram::parse(&BYTES[..len]),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
        let mut long = BYTES.to_vec();
        long.push(0);
        assert_eq!(HandshakeDatagram::parse(&long), Err(WireError::BadLength));
    }

    #[test]
    fn refuses_other_kinds_and_flags() {
        let mut b = BYTES;
        b[3] = 4;
        assert_eq!(HandshakeDatagram::parse(&b), Err(WireError::BadKind(4)));
        let mut b = BYTES;
        b[4] = super::super::FLAG_SEALED;
        assert_eq!(HandshakeDatagram::parse(&b), Err(WireError::BadFlags(1)));
        for at in [7, 57, 58, 59] {
            let mut b = BYTES;
            b[at] = 1;
            assert_eq!(
                HandshakeDatagram::parse(&b),
                Err(WireError::BadReserved),
                "{at}"
            );
        }
    }

    #[test]
    fn data_parser_refuses_handshakes() {
        assert_eq!(Datagram::parse(&BYTES), Err(WireError::Handshake));
        let mut sealed = BYTES;
        sealed[4] = super::super::FLAG_SEALED;
        assert_eq!(
            super::super::SealedRepr::parse(&Packet::new_checked(&sealed[..]).unwrap()),
            Err(WireError::BadKind(5)),
            "a handshake is never sealed"
        );
    }
}
