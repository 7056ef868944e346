//! The frame header datagram: what a frame is, before (or without) its bytes.

use super::{read_u16, read_u32, read_u64, Field, Result, WireError};

mod field {
    use super::Field;
    pub const TOTAL_LEN: Field = 0..4;
    pub const CHUNK_SIZE: Field = 4..6;
    pub const CODEC: usize = 6;
    pub const RESERVED: usize = 7;
    pub const WIDTH: Field = 8..10;
    pub const HEIGHT: Field = 10..12;
    pub const CAPTURE_TS: Field = 12..20;
    pub const CRC32: Field = 20..24;
    pub const END: usize = CRC32.end;
}

/// Length of a header body.
pub const BODY_LEN: usize = field::END;

/// How the frame's bytes are encoded. Kept apart from the framing so that other payloads
/// (e.g. RTP/JPEG interop) can share the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// A complete baseline or progressive JFIF/JPEG image.
    Jpeg = 1,
}

impl Codec {
    pub(super) fn from_u8(value: u8) -> Result<Codec> {
        match value {
            1 => Ok(Codec::Jpeg),
            other => Err(WireError::BadCodec(other)),
        }
    }
}

/// Frame metadata. The chunk count follows from `total_len` and `chunk_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    pub total_len: u32,
    pub chunk_size: u16,
    pub codec: Codec,
    pub width: u16,
    pub height: u16,
    /// Wall-clock microseconds since the Unix epoch at capture; crosses machines.
    pub capture_ts_us: u64,
    /// CRC-32 (IEEE) of the whole frame.
    pub crc32: u32,
}

impl HeaderRepr {
    pub fn parse(body: &[u8]) -> Result<HeaderRepr> {
        if body.len() < BODY_LEN {
            return Err(WireError::Truncated);
        }
        if body.len() > BODY_LEN {
            return Err(WireError::BadLength);
        }
        if body[field::RESERVED] != 0 {
            return Err(WireError::BadReserved);
        }
        let repr = HeaderRepr {
            total_len: read_u32(&body[field::TOTAL_LEN]),
            chunk_size: read_u16(&body[field::CHUNK_SIZE]),
            codec: Codec::from_u8(body[field::CODEC])?,
            width: read_u16(&body[field::WIDTH]),
            height: read_u16(&body[field::HEIGHT]),
            capture_ts_us: read_u64(&body[field::CAPTURE_TS]),
            crc32: read_u32(&body[field::CRC32]),
        };
        if repr.total_len == 0 || repr.chunk_size == 0 {
            return Err(WireError::BadLength);
        }
        Ok(repr)
    }

    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Number of chunks the frame is cut into.
    pub fn chunk_count(&self) -> u32 {
        chunk_count(self.total_len, self.chunk_size)
    }

    pub(super) fn emit(&self, body: &mut [u8]) {
        body[field::TOTAL_LEN].copy_from_slice(&self.total_len.to_be_bytes());
        body[field::CHUNK_SIZE].copy_from_slice(&self.chunk_size.to_be_bytes());
        body[field::CODEC] = self.codec as u8;
        body[field::RESERVED] = 0;
        body[field::WIDTH].copy_from_slice(&self.width.to_be_bytes());
        body[field::HEIGHT].copy_from_slice(&self.height.to_be_bytes());
        body[field::CAPTURE_TS].copy_from_slice(&self.capture_ts_us.to_be_bytes());
        body[field::CRC32].copy_from_slice(&self.crc32.to_be_bytes());
    }
}

/// Chunks needed for `total_len` bytes cut into `chunk_size` pieces (the last may be shorter).
pub fn chunk_count(total_len: u32, chunk_size: u16) -> u32 {
    if chunk_size == 0 {
        return 0;
    }
    total_len.div_ceil(u32::from(chunk_size))
}

#[cfg(test)]
mod tests {
    use super::super::{Body, CommonRepr, Datagram, Kind};
    use super::*;

    const BYTES: [u8; 52] = [
        b'C', b'S', 2, 1, 0, 0, 0, 0, // common: kind = header
        0, 0, 0, 42, // stream id
        0, 0, 0, 0, 0, 0, 0, 5, // packet number
        0, 0, 0, 9, // frame seq
        0, 0, 0x30, 0x39, // total len 12345
        0x04, 0xb0, // chunk size 1200
        1, 0, // codec jpeg, reserved
        0x02, 0x80, 0x01, 0xe0, // 640 x 480
        0, 0, 0, 0, 0, 0, 0x03, 0xe8, // capture ts 1000
        0xca, 0xfe, 0xba, 0xbe, // frame crc
        0xf5, 0x95, 0x5e, 0x9c, // CRC-32C of the datagram
    ];

    /// `BYTES` changed at `at` and its check made true again: refused for its meaning.
    fn with(at: usize, value: &[u8]) -> Vec<u8> {
        let mut b = BYTES.to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        let check_at = b.len() - super::super::CHECK_LEN;
        let check = crc32c::crc32c(&b[..check_at]);
        b[check_at..].copy_from_slice(&check.to_be_bytes());
        b
    }

    fn repr() -> Datagram<'static> {
        Datagram {
            common: CommonRepr {
                kind: Kind::Header,
                stream_id: 42,
                packet_number: 5,
                frame_seq: 9,
            },
            body: Body::Header(HeaderRepr {
                total_len: 12345,
                chunk_size: 1200,
                codec: Codec::Jpeg,
                width: 640,
                height: 480,
                capture_ts_us: 1000,
                crc32: 0xcafe_babe,
            }),
        }
    }

    #[test]
    fn parse_golden() {
        let d = Datagram::parse(&BYTES).unwrap();
        assert_eq!(d, repr());
        if let Body::Header(h) = d.body {
            assert_eq!(h.chunk_count(), 11);
        }
    }

    #[test]
    fn emit_golden() {
        let mut buf = Vec::new();
        repr().emit(&mut buf);
        assert_eq!(buf, BYTES);
        assert_eq!(repr().buffer_len(), BYTES.len());
    }

    #[test]
    fn every_truncation_is_refused() {
        for len in 0..BYTES.len() {
            assert!(Datagram::parse(&BYTES[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn refuses_bad_meaning() {
        let parse = |b: Vec<u8>| Datagram::parse(&b).map(|_| ());
        assert_eq!(parse(with(24, &[0; 4])), Err(WireError::BadLength));
        assert_eq!(parse(with(28, &[0; 2])), Err(WireError::BadLength));
        assert_eq!(parse(with(30, &[7])), Err(WireError::BadCodec(7)));
        assert_eq!(parse(with(31, &[1])), Err(WireError::BadReserved));
        let mut b = BYTES;
        b[30] = 7;
        assert_eq!(Datagram::parse(&b), Err(WireError::BadChecksum));
    }

    #[test]
    fn chunk_count_rounds_up() {
        assert_eq!(chunk_count(1, 1200), 1);
        assert_eq!(chunk_count(1200, 1200), 1);
        assert_eq!(chunk_count(1201, 1200), 2);
        assert_eq!(chunk_count(u32::MAX, 1), u32::MAX);
        assert_eq!(chunk_count(5, 0), 0);
    }
}
