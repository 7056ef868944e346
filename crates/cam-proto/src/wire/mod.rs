//! The camstream wire format, version 2.
//!
//! Every datagram is a 24-byte common header followed by a body whose layout depends on
//! the datagram's kind. A clear datagram ends with a CRC-32C of everything before it
//! (`CHECK_LEN` bytes), so one flipped bit anywhere costs that datagram alone; a sealed
//! datagram ends with its AEAD tag instead, which checks it as well. Parsing follows smoltcp's `wire` module: a checked view over the
//! bytes (`Packet`), a plain struct for the meaning (`*Repr`), `parse`/`emit` between them.
//! Every length is checked once in `new_checked`; after that no accessor can panic.
//! See `PROTOCOL.md` for the byte layouts and the reasons behind them.

mod ack;
mod chunk;
mod header;
mod hello;
mod name;

pub use ack::{AckRepr, AckStatus, MissingRange, MissingRanges, MAX_ACK_RANGES};
pub use chunk::{ChunkRepr, CHUNK_OVERHEAD};
pub use header::{chunk_count, Codec, HeaderRepr};
pub use hello::{HandshakeDatagram, HelloRepr, HELLO_LEN, MAC_LEN, PUBLIC_KEY_LEN};
pub use name::{is_valid_name, NameRepr, MAX_NAME_LEN};

use core::ops::Range;

type Field = Range<usize>;

/// The two bytes every camstream datagram starts with ("CS").
pub const MAGIC: [u8; 2] = *b"CS";
/// The only wire version this crate speaks (2: clear datagrams carry `CHECK_LEN`).
pub const VERSION: u8 = 2;
/// Bytes of the CRC-32C (Castagnoli) that ends every clear data datagram (header, chunk,
/// ack, probe), over every byte before it. Handshake datagrams carry a MAC instead, sealed
/// ones a tag.
pub const CHECK_LEN: usize = 4;
/// Flag bit reserved for authenticated encryption: body encrypted, 16-byte tag at the end.
/// An end without a key never sets it, and refuses datagrams that do.
pub const FLAG_SEALED: u8 = 0x01;
/// Bytes an AEAD tag will add at the end of a sealed datagram.
pub const TAG_LEN: usize = 16;
/// The kind byte of every sealed datagram: the real kind is encrypted (see `SEALED_KIND`).
pub const KIND_SEALED: u8 = 0;
/// In a sealed datagram, the first reserved byte carries the encrypted kind: the kind is
/// the last byte of the plaintext, and its ciphertext byte travels here instead of at the
/// end, so sealing adds only the tag and the routing fields keep their offsets.
pub const SEALED_KIND: usize = field::RESERVED.start;
/// A sealed datagram's associated data: the clear prefix (magic, version, `KIND_SEALED`,
/// flags, reserved, stream id, packet number), with the byte at `SEALED_KIND` counted as
/// zero. Everything else (frame seq, body, kind) is ciphertext.
pub const SEALED_AAD_LEN: usize = field::PACKET_NUMBER.end;
/// The shortest sealed datagram: a sealed probe.
pub const SEALED_MIN_LEN: usize = HEADER_LEN + TAG_LEN;
/// The largest UDP payload over IPv4 (65,535 − 20 − 8).
pub const MAX_DATAGRAM: usize = 65_507;

mod field {
    use super::Field;
    pub const MAGIC: Field = 0..2;
    pub const VERSION: usize = 2;
    pub const KIND: usize = 3;
    pub const FLAGS: usize = 4;
    pub const RESERVED: Field = 5..8;
    pub const STREAM_ID: Field = 8..12;
    pub const PACKET_NUMBER: Field = 12..20;
    pub const FRAME_SEQ: Field = 20..24;
    pub const BODY: usize = FRAME_SEQ.end;
}

/// Length of the common header that starts every datagram.
pub const HEADER_LEN: usize = field::BODY;

/// Why a datagram was refused. The viewer counts these by kind and logs them at debug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram truncated")]
    Truncated,
    #[error("bad magic (not a camstream datagram)")]
    BadMagic,
    #[error("unsupported wire version {0}")]
    BadVersion(u8),
    #[error("unknown datagram kind {0}")]
    BadKind(u8),
    #[error("unsupported flags {0:#04x}")]
    BadFlags(u8),
    #[error("non-zero reserved field")]
    BadReserved,
    #[error("inconsistent length field")]
    BadLength,
    #[error("chunk index out of range")]
    BadIndex,
    #[error("unknown codec {0}")]
    BadCodec(u8),
    #[error("bad acknowledgement")]
    BadAck,
    #[error("handshake datagram (keyed mode), not data")]
    Handshake,
    #[error("checksum mismatch (corrupted on the way)")]
    BadChecksum,
    #[error("names a frame or packet number the peer cannot have sent")]
    Implausible,
    #[error("a stream name that is not printable UTF-8")]
    BadName,
}

pub type Result<T> = core::result::Result<T, WireError>;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Frame metadata: size, chunking, picture size, capture time, CRC.
    Header = 1,
    /// One slice of a frame's bytes, placeable without the header.
    Chunk = 2,
    /// Viewer to client: a frame's state (complete / missing ranges / gone) and flow-control credit.
    Ack = 3,
    /// Client to viewer: "tell me where frame N stands"; answered by an ack.
    Probe = 4,
    /// Keyed mode, client to viewer: an ephemeral public key, authenticated with the key.
    Hello = 5,
    /// Keyed mode, viewer to client: the viewer's ephemeral public key and key confirmation.
    HelloReply = 6,
    /// Client to viewer: the stream's name (`cam-client --name`), repeated now and then.
    Name = 7,
}

impl Kind {
    fn from_u8(value: u8) -> Result<Kind> {
        match value {
            1 => Ok(Kind::Header),
            2 => Ok(Kind::Chunk),
            3 => Ok(Kind::Ack),
            4 => Ok(Kind::Probe),
            5 => Ok(Kind::Hello),
            6 => Ok(Kind::HelloReply),
            7 => Ok(Kind::Name),
            other => Err(WireError::BadKind(other)),
        }
    }
}

pub(crate) fn read_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
pub(crate) fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// A checked view over one datagram's bytes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic until `check_len` passed.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and makes sure every accessor can read what it needs.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// What clear and sealed datagrams both start with: a whole common header, the magic,
    /// this version, and `flags`.
    fn check_prefix(&self, flags: u8) -> Result<()> {
        self.check_len()?;
        if self.magic() != MAGIC {
            return Err(WireError::BadMagic);
        }
        if self.version() != VERSION {
            return Err(WireError::BadVersion(self.version()));
        }
        if self.flags() != flags {
            return Err(WireError::BadFlags(self.flags()));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn magic(&self) -> [u8; 2] {
        let b = &self.buffer.as_ref()[field::MAGIC];
        [b[0], b[1]]
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    pub fn kind_raw(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn reserved(&self) -> [u8; 3] {
        let b = &self.buffer.as_ref()[field::RESERVED];
        [b[0], b[1], b[2]]
    }
    pub fn stream_id(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::STREAM_ID])
    }
    pub fn packet_number(&self) -> u64 {
        read_u64(&self.buffer.as_ref()[field::PACKET_NUMBER])
    }
    pub fn frame_seq(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::FRAME_SEQ])
    }
    /// The kind-specific bytes after the common header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_common(&mut self, repr: &CommonRepr) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::KIND] = repr.kind as u8;
        b[field::FLAGS] = 0;
        b[field::RESERVED].fill(0);
        b[field::STREAM_ID].copy_from_slice(&repr.stream_id.to_be_bytes());
        b[field::PACKET_NUMBER].copy_from_slice(&repr.packet_number.to_be_bytes());
        b[field::FRAME_SEQ].copy_from_slice(&repr.frame_seq.to_be_bytes());
    }
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY..]
    }
    /// Sets the flags byte (`FLAG_SEALED` once the body is encrypted).
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }
    /// Sets the kind byte (`KIND_SEALED` while the real one is encrypted).
    pub fn set_kind_raw(&mut self, kind: u8) {
        self.buffer.as_mut()[field::KIND] = kind;
    }
}

/// What a sealed datagram shows in clear: the routing fields and the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedRepr {
    pub stream_id: u32,
    pub packet_number: u64,
}

impl SealedRepr {
    /// The clear prefix of a sealed datagram: `KIND_SEALED`, `FLAG_SEALED`, the reserved
    /// bytes after `SEALED_KIND` zero, and room for at least a frame seq and a tag. Only this
    /// is checked; the rest is ciphertext until it is opened.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<SealedRepr> {
        if packet.buffer.as_ref().len() < SEALED_MIN_LEN {
            return Err(WireError::Truncated);
        }
        packet.check_prefix(FLAG_SEALED)?;
        if packet.kind_raw() != KIND_SEALED {
            return Err(WireError::BadKind(packet.kind_raw()));
        }
        if packet.reserved()[1..] != [0; 2] {
            return Err(WireError::BadReserved);
        }
        Ok(SealedRepr {
            stream_id: packet.stream_id(),
            packet_number: packet.packet_number(),
        })
    }
}

/// The meaning of the common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonRepr {
    pub kind: Kind,
    /// Random per client run: tells streams (and restarts) apart.
    pub stream_id: u32,
    /// Per direction, strictly increasing, never reused within a stream: identifies each
    /// transmission (so a retransmission is distinguishable from its original for RTT
    /// samples) and is the future AEAD nonce and replay-window counter.
    pub packet_number: u64,
    /// The frame this datagram concerns.
    pub frame_seq: u32,
}

impl CommonRepr {
    /// The common header of a clear datagram (flags 0).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<CommonRepr> {
        packet.check_prefix(0)?;
        if packet.reserved() != [0; 3] {
            return Err(WireError::BadReserved);
        }
        Ok(CommonRepr {
            kind: Kind::from_u8(packet.kind_raw())?,
            stream_id: packet.stream_id(),
            packet_number: packet.packet_number(),
            frame_seq: packet.frame_seq(),
        })
    }
}

/// A whole datagram's meaning, borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub common: CommonRepr,
    pub body: Body<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    Header(HeaderRepr),
    Chunk(ChunkRepr<'a>),
    Ack(AckRepr<'a>),
    Probe,
    Name(NameRepr<'a>),
}

impl<'a> Datagram<'a> {
    /// Checks and interprets untrusted bytes of a clear datagram: its common header, then
    /// its CRC-32C, then its body. Never panics, whatever the input.
    pub fn parse(bytes: &'a [u8]) -> Result<Datagram<'a>> {
        let packet = Packet::new_checked(bytes)?;
        let common = CommonRepr::parse(&packet)?;
        if matches!(common.kind, Kind::Hello | Kind::HelloReply) {
            return Err(WireError::Handshake);
        }
        let Some(check_at) = bytes
            .len()
            .checked_sub(CHECK_LEN)
            .filter(|&at| at >= HEADER_LEN)
        else {
            return Err(WireError::Truncated);
        };
        if crc32c::crc32c(&bytes[..check_at]) != read_u32(&bytes[check_at..]) {
            return Err(WireError::BadChecksum);
        }
        Self::parse_body(common, &bytes[HEADER_LEN..check_at])
    }

    /// Interprets an opened sealed datagram (see `secure::Session::open`): its tag checked
    /// it, so it carries no CRC-32C.
    pub fn parse_opened(bytes: &'a [u8]) -> Result<Datagram<'a>> {
        let packet = Packet::new_checked(bytes)?;
        let common = CommonRepr::parse(&packet)?;
        Self::parse_body(common, &bytes[HEADER_LEN..])
    }

    fn parse_body(common: CommonRepr, body_bytes: &'a [u8]) -> Result<Datagram<'a>> {
        let body = match common.kind {
            Kind::Header => Body::Header(HeaderRepr::parse(body_bytes)?),
            Kind::Chunk => Body::Chunk(ChunkRepr::parse(body_bytes)?),
            Kind::Ack => Body::Ack(AckRepr::parse(body_bytes)?),
            Kind::Probe => {
                if !body_bytes.is_empty() {
                    return Err(WireError::BadLength);
                }
                Body::Probe
            }
            Kind::Name => Body::Name(NameRepr::parse(body_bytes)?),
            Kind::Hello | Kind::HelloReply => return Err(WireError::Handshake),
        };
        Ok(Datagram { common, body })
    }

    /// Bytes needed to emit this datagram, its CRC-32C included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Header(h) => h.buffer_len(),
                Body::Chunk(c) => c.buffer_len(),
                Body::Ack(a) => a.buffer_len(),
                Body::Probe => 0,
                Body::Name(n) => n.buffer_len(),
            }
            + CHECK_LEN
    }

    /// Writes the clear datagram, CRC-32C last, into `buf`, replacing its contents; the
    /// caller reuses `buf`. Sealing replaces the CRC-32C with the tag.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.resize(self.buffer_len(), 0);
        let check_at = buf.len() - CHECK_LEN;
        let mut packet = Packet::new_unchecked(&mut buf[..check_at]);
        let mut common = self.common;
        common.kind = match self.body {
            Body::Header(_) => Kind::Header,
            Body::Chunk(_) => Kind::Chunk,
            Body::Ack(_) => Kind::Ack,
            Body::Probe => Kind::Probe,
            Body::Name(_) => Kind::Name,
        };
        packet.set_common(&common);
        let body = packet.body_mut();
        match &self.body {
            Body::Header(h) => h.emit(body),
            Body::Chunk(c) => c.emit(body),
            Body::Ack(a) => a.emit(body),
            Body::Probe => {}
            Body::Name(n) => n.emit(body),
        }
        let check = crc32c::crc32c(&buf[..check_at]);
        buf[check_at..].copy_from_slice(&check.to_be_bytes());
    }
}

/// Makes the CRC-32C at the end of a clear datagram true again after its bytes were
/// changed: for tests and tools that forge datagrams as an attacker could (the check keeps
/// out corruption, not forgery).
pub fn rewrite_check(datagram: &mut [u8]) {
    if let Some(check_at) = datagram.len().checked_sub(CHECK_LEN) {
        let check = crc32c::crc32c(&datagram[..check_at]);
        datagram[check_at..].copy_from_slice(&check.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE_BYTES: [u8; 28] = [
        b'C', b'S', 2, 4, 0, 0, 0, 0, // magic, version, kind=probe, flags, reserved
        0xde, 0xad, 0xbe, 0xef, // stream id
        0, 0, 0, 0, 0, 0, 0x01, 0x02, // packet number
        0, 0, 0, 7, // frame seq
        0x1d, 0x5e, 0xe3, 0x6f, // CRC-32C of the above
    ];

    fn probe() -> Datagram<'static> {
        Datagram {
            common: CommonRepr {
                kind: Kind::Probe,
                stream_id: 0xdead_beef,
                packet_number: 0x0102,
                frame_seq: 7,
            },
            body: Body::Probe,
        }
    }

    #[test]
    fn deconstruct_probe() {
        let packet = Packet::new_checked(&PROBE_BYTES[..]).unwrap();
        assert_eq!(packet.magic(), MAGIC);
        assert_eq!(packet.version(), 2);
        assert_eq!(packet.kind_raw(), 4);
        assert_eq!(packet.stream_id(), 0xdead_beef);
        assert_eq!(packet.packet_number(), 0x0102);
        assert_eq!(packet.frame_seq(), 7);
        assert_eq!(
            packet.body(),
            &PROBE_BYTES[24..],
            "the check, after an empty body"
        );
    }

    #[test]
    fn parse_and_emit_probe() {
        assert_eq!(Datagram::parse(&PROBE_BYTES).unwrap(), probe());
        let mut buf = Vec::new();
        probe().emit(&mut buf);
        assert_eq!(buf, PROBE_BYTES);
    }

    #[test]
    fn every_truncation_is_refused() {
        for len in 0..PROBE_BYTES.len() {
            assert_eq!(
                Datagram::parse(&PROBE_BYTES[..len]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn sealed_prefix_shows_only_routing_and_the_nonce() {
        // A sealed probe: clear prefix, ciphertext of the frame seq, tag; byte 5 carries the
        // encrypted kind.
        let mut sealed = PROBE_BYTES.to_vec();
        sealed[3] = KIND_SEALED;
        sealed[4] = FLAG_SEALED;
        sealed[5] = 0x9c;
        sealed.extend_from_slice(&[0xee; TAG_LEN]);
        let parsed = SealedRepr::parse(&Packet::new_checked(&sealed[..]).unwrap());
        assert_eq!(
            parsed,
            Ok(SealedRepr {
                stream_id: u32::from_be_bytes([sealed[8], sealed[9], sealed[10], sealed[11]]),
                packet_number: Packet::new_checked(&PROBE_BYTES[..])
                    .unwrap()
                    .packet_number(),
            })
        );
        for len in 0..SEALED_MIN_LEN {
            assert_eq!(
                SealedRepr::parse(&Packet::new_unchecked(&sealed[..len])),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
        let refused = |at: usize, value: u8| {
            let mut b = sealed.clone();
            b[at] = value;
            SealedRepr::parse(&Packet::new_unchecked(&b[..]))
        };
        assert_eq!(refused(0, b'X'), Err(WireError::BadMagic));
        assert_eq!(refused(2, 1), Err(WireError::BadVersion(1)));
        assert_eq!(refused(3, 2), Err(WireError::BadKind(2)), "kind in clear");
        assert_eq!(refused(4, 0), Err(WireError::BadFlags(0)));
        assert_eq!(refused(6, 1), Err(WireError::BadReserved));
        assert_eq!(refused(7, 1), Err(WireError::BadReserved));
        assert!(refused(5, 0).is_ok(), "byte 5 is ciphertext: any value");
        // A clear parser refuses it whole.
        assert_eq!(Datagram::parse(&sealed), Err(WireError::BadFlags(1)));
    }

    #[test]
    fn refuses_bad_common_fields() {
        let mut b = PROBE_BYTES;
        b[0] = b'X';
        assert_eq!(Datagram::parse(&b), Err(WireError::BadMagic));
        let mut b = PROBE_BYTES;
        b[2] = 1;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadVersion(1)));
        let mut b = PROBE_BYTES;
        b[3] = 9;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadKind(9)));
        let mut b = PROBE_BYTES;
        b[4] = FLAG_SEALED;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadFlags(1)));
        let mut b = PROBE_BYTES;
        b[6] = 1;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadReserved));
        let mut b = PROBE_BYTES[..HEADER_LEN].to_vec();
        b.push(0);
        let check = crc32c::crc32c(&b);
        b.extend_from_slice(&check.to_be_bytes());
        assert_eq!(Datagram::parse(&b), Err(WireError::BadLength));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        for bit in 0..PROBE_BYTES.len() * 8 {
            let mut b = PROBE_BYTES;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Datagram::parse(&b).is_err(), "bit {bit}");
        }
        let mut b = PROBE_BYTES;
        b[19] ^= 0x80;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadChecksum));
    }

    #[test]
    fn opened_datagrams_carry_no_check() {
        assert_eq!(
            Datagram::parse_opened(&PROBE_BYTES[..HEADER_LEN]).unwrap(),
            probe()
        );
        assert_eq!(
            Datagram::parse_opened(&PROBE_BYTES),
            Err(WireError::BadLength)
        );
    }
}
