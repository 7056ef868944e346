//! The chunk datagram: one slice of a frame, self-describing enough to be placed and the
//! frame verified even when the header datagram was lost (or the viewer restarted mid-frame).

use super::header::{chunk_count, Codec};
use super::{read_u16, read_u32, Field, Result, WireError};

mod field {
    use super::Field;
    pub const INDEX: Field = 0..4;
    pub const TOTAL_LEN: Field = 4..8;
    pub const CRC32: Field = 8..12;
    pub const CHUNK_SIZE: Field = 12..14;
    pub const CODEC: usize = 14;
    pub const RESERVED: usize = 15;
    pub const PAYLOAD: usize = RESERVED + 1;
}

/// Bytes a clear chunk datagram adds to its payload: the common header and the chunk
/// fields before it, the CRC-32C after it.
pub const CHUNK_OVERHEAD: usize = super::HEADER_LEN + field::PAYLOAD + super::CHECK_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRepr<'a> {
    pub index: u32,
    pub total_len: u32,
    pub crc32: u32,
    pub chunk_size: u16,
    pub codec: Codec,
    pub payload: &'a [u8],
}

impl<'a> ChunkRepr<'a> {
    /// Checks that the payload is exactly the slice `index` names: so a chunk can never
    /// write outside its place in the frame.
    pub fn parse(body: &'a [u8]) -> Result<ChunkRepr<'a>> {
        if body.len() < field::PAYLOAD {
            return Err(WireError::Truncated);
        }
        if body[field::RESERVED] != 0 {
            return Err(WireError::BadReserved);
        }
        let repr = ChunkRepr {
            index: read_u32(&body[field::INDEX]),
            total_len: read_u32(&body[field::TOTAL_LEN]),
            crc32: read_u32(&body[field::CRC32]),
            chunk_size: read_u16(&body[field::CHUNK_SIZE]),
            codec: Codec::from_u8(body[field::CODEC])?,
            payload: &body[field::PAYLOAD..],
        };
        if repr.total_len == 0 || repr.chunk_size == 0 {
            return Err(WireError::BadLength);
        }
        if repr.index >= chunk_count(repr.total_len, repr.chunk_size) {
            return Err(WireError::BadIndex);
        }
        if repr.payload.len() != repr.expected_len() {
            return Err(WireError::BadLength);
        }
        Ok(repr)
    }

    /// Byte offset of this chunk within the frame.
    pub fn offset(&self) -> usize {
        (u64::from(self.index) * u64::from(self.chunk_size)) as usize
    }

    /// Payload length the index implies: `chunk_size`, or the remainder for the last chunk.
    pub fn expected_len(&self) -> usize {
        let start = self.offset() as u64;
        let end = (start + u64::from(self.chunk_size)).min(u64::from(self.total_len));
        end.saturating_sub(start) as usize
    }

    pub fn buffer_len(&self) -> usize {
        field::PAYLOAD + self.payload.len()
    }

    pub(super) fn emit(&self, body: &mut [u8]) {
        body[field::INDEX].copy_from_slice(&self.index.to_be_bytes());
        body[field::TOTAL_LEN].copy_from_slice(&self.total_len.to_be_bytes());
        body[field::CRC32].copy_from_slice(&self.crc32.to_be_bytes());
        body[field::CHUNK_SIZE].copy_from_slice(&self.chunk_size.to_be_bytes());
        body[field::CODEC] = self.codec as u8;
        body[field::RESERVED] = 0;
        body[field::PAYLOAD..].copy_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Body, CommonRepr, Datagram, Kind};
    use super::*;

    // Frame of 10 bytes cut into 4-byte chunks; this is chunk 2 (the short tail).
    const BYTES: [u8; 46] = [
        b'C', b'S', 2, 2, 0, 0, 0, 0, // common: kind = chunk
        0, 0, 0, 42, // stream id
        0, 0, 0, 0, 0, 0, 0, 6, // packet number
        0, 0, 0, 9, // frame seq
        0, 0, 0, 2, // index
        0, 0, 0, 10, // total len
        0x11, 0x22, 0x33, 0x44, // crc
        0, 4, 1, 0, // chunk size, codec, reserved
        0xaa, 0xbb, // payload
        0xc7, 0x55, 0x2d, 0x24, // CRC-32C of the datagram
    ];

    /// `BYTES` changed at `at` (or one byte longer) with its check made true again.
    fn with(at: usize, value: &[u8], extra: bool) -> Vec<u8> {
        let check_at = BYTES.len() - super::super::CHECK_LEN;
        let mut b = BYTES[..check_at].to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        if extra {
            b.push(0xcc);
        }
        let check = crc32c::crc32c(&b);
        b.extend_from_slice(&check.to_be_bytes());
        b
    }

    fn repr() -> Datagram<'static> {
        Datagram {
            common: CommonRepr {
                kind: Kind::Chunk,
                stream_id: 42,
                packet_number: 6,
                frame_seq: 9,
            },
            body: Body::Chunk(ChunkRepr {
                index: 2,
                total_len: 10,
                crc32: 0x1122_3344,
                chunk_size: 4,
                codec: Codec::Jpeg,
                payload: &[0xaa, 0xbb],
            }),
        }
    }

    #[test]
    fn parse_golden() {
        let d = Datagram::parse(&BYTES).unwrap();
        assert_eq!(d, repr());
        if let Body::Chunk(c) = d.body {
            assert_eq!(c.offset(), 8);
        }
    }

    #[test]
    fn emit_golden() {
        let mut buf = Vec::new();
        repr().emit(&mut buf);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn every_truncation_is_refused() {
        for len in 0..BYTES.len() {
            assert!(Datagram::parse(&BYTES[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn refuses_payload_that_does_not_fit_its_place() {
        let parse = |b: Vec<u8>| Datagram::parse(&b).map(|_| ());
        assert_eq!(parse(with(27, &[2], true)), Err(WireError::BadLength));
        // Index 3 of a 3-chunk frame.
        assert_eq!(parse(with(27, &[3], false)), Err(WireError::BadIndex));
        // Chunk 1 must carry 4 bytes.
        assert_eq!(parse(with(27, &[1], false)), Err(WireError::BadLength));
        assert_eq!(parse(with(36, &[0, 0], false)), Err(WireError::BadLength));
        assert_eq!(
            parse(with(24, &u32::MAX.to_be_bytes(), false)),
            Err(WireError::BadIndex)
        );
    }

    #[test]
    fn huge_index_times_size_does_not_overflow() {
        let c = ChunkRepr {
            index: u32::MAX,
            total_len: u32::MAX,
            crc32: 0,
            chunk_size: u16::MAX,
            codec: Codec::Jpeg,
            payload: &[],
        };
        assert_eq!(c.expected_len(), 0);
    }
}
