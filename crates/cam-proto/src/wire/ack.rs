//! The acknowledgement datagram (viewer to client): where one frame stands, which chunks
//! are missing, and how much more the viewer will take (flow-control credit).

use super::{read_u16, read_u32, read_u64, Field, Result, WireError};

mod field {
    use super::Field;
    pub const STATUS: usize = 0;
    pub const FLAGS: usize = 1;
    pub const WINDOW: Field = 2..4;
    pub const LARGEST_PN: Field = 4..12;
    pub const ACK_DELAY: Field = 12..16;
    pub const RANGE_COUNT: Field = 16..18;
    pub const CORRUPT: Field = 18..20;
    pub const RANGES: usize = CORRUPT.end;
}

const RANGE_LEN: usize = 8;
const FLAG_HEADER_MISSING: u8 = 0x01;

/// Most missing ranges one ack carries; keeps an ack under 1,200 bytes. When more chunks
/// are missing, the first ranges are reported and the rest on the next round.
pub const MAX_ACK_RANGES: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AckStatus {
    /// Every byte arrived and the CRC matched.
    Complete = 0,
    /// Still assembling: `missing` lists what has not arrived.
    Incomplete = 1,
    /// The viewer dropped the frame (superseded or too old): stop sending it.
    Gone = 2,
    /// The viewer serves as many streams as it may (`--max-streams`) and refuses this one:
    /// the client says so instead of "no viewer".
    Full = 3,
}

/// A run of missing chunks: `start .. start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MissingRange {
    pub start: u32,
    pub len: u32,
}

impl MissingRange {
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.len)
    }
}

/// Missing ranges, either still in the datagram's bytes (after parsing) or in a list (to emit).
#[derive(Debug, Clone, Copy)]
pub enum MissingRanges<'a> {
    Wire(&'a [u8]),
    List(&'a [MissingRange]),
}

impl<'a> MissingRanges<'a> {
    pub fn len(&self) -> usize {
        match self {
            MissingRanges::Wire(b) => b.len() / RANGE_LEN,
            MissingRanges::List(l) => l.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = MissingRange> + 'a {
        let (wire, list): (&'a [u8], &'a [MissingRange]) = match *self {
            MissingRanges::Wire(b) => (b, &[]),
            MissingRanges::List(l) => (&[], l),
        };
        wire.chunks_exact(RANGE_LEN)
            .map(|r| MissingRange {
                start: read_u32(&r[0..4]),
                len: read_u32(&r[4..8]),
            })
            .chain(list.iter().copied())
    }
}

impl PartialEq for MissingRanges<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for MissingRanges<'_> {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr<'a> {
    pub status: AckStatus,
    /// The viewer has chunks of this frame but never got its header.
    pub header_missing: bool,
    /// How many frames after this one the viewer will accept now (flow-control credit).
    pub window: u16,
    /// Packet number of the datagram the viewer received last on this stream (the highest,
    /// unless reordered): the client's RTT sample, and the line below which a missing chunk
    /// counts as lost, not in flight.
    pub largest_pn: u64,
    /// Microseconds between receiving `largest_pn` and sending this ack.
    pub ack_delay_us: u32,
    /// Datagrams of this stream the viewer has refused for a failed check (CRC-32C, or in
    /// keyed mode the tag), counted from the stream's start and wrapping at 2^16. What the
    /// sender sees missing up to this many is corruption on the path: repaired, but not
    /// taken for congestion. Cumulative, so a lost ack loses no count.
    pub corrupt: u16,
    pub missing: MissingRanges<'a>,
}

impl<'a> AckRepr<'a> {
    pub fn parse(body: &'a [u8]) -> Result<AckRepr<'a>> {
        if body.len() < field::RANGES {
            return Err(WireError::Truncated);
        }
        if body[field::FLAGS] & !FLAG_HEADER_MISSING != 0 {
            return Err(WireError::BadReserved);
        }
        let status = match body[field::STATUS] {
            0 => AckStatus::Complete,
            1 => AckStatus::Incomplete,
            2 => AckStatus::Gone,
            3 => AckStatus::Full,
            _ => return Err(WireError::BadAck),
        };
        let count = usize::from(read_u16(&body[field::RANGE_COUNT]));
        if count > MAX_ACK_RANGES {
            return Err(WireError::BadAck);
        }
        let ranges = &body[field::RANGES..];
        if ranges.len() < count * RANGE_LEN {
            return Err(WireError::Truncated);
        }
        if ranges.len() > count * RANGE_LEN {
            return Err(WireError::BadLength);
        }
        let repr = AckRepr {
            status,
            header_missing: body[field::FLAGS] & FLAG_HEADER_MISSING != 0,
            window: read_u16(&body[field::WINDOW]),
            largest_pn: read_u64(&body[field::LARGEST_PN]),
            ack_delay_us: read_u32(&body[field::ACK_DELAY]),
            corrupt: read_u16(&body[field::CORRUPT]),
            missing: MissingRanges::Wire(ranges),
        };
        repr.check_ranges()?;
        Ok(repr)
    }

    /// Ranges must be non-empty, ascending and disjoint, and only an incomplete frame has any.
    fn check_ranges(&self) -> Result<()> {
        let mut prev_end = 0u64;
        for (i, r) in self.missing.iter().enumerate() {
            if r.len == 0 || (i > 0 && u64::from(r.start) < prev_end) || r.end() > 1 << 32 {
                return Err(WireError::BadAck);
            }
            prev_end = r.end();
        }
        let has_missing = !self.missing.is_empty() || self.header_missing;
        match self.status {
            AckStatus::Incomplete if !has_missing => Err(WireError::BadAck),
            AckStatus::Complete | AckStatus::Gone | AckStatus::Full if has_missing => {
                Err(WireError::BadAck)
            }
            _ => Ok(()),
        }
    }

    pub fn buffer_len(&self) -> usize {
        field::RANGES + self.missing.len().min(MAX_ACK_RANGES) * RANGE_LEN
    }

    pub(super) fn emit(&self, body: &mut [u8]) {
        let count = self.missing.len().min(MAX_ACK_RANGES);
        body[field::STATUS] = self.status as u8;
        body[field::FLAGS] = if self.header_missing {
            FLAG_HEADER_MISSING
        } else {
            0
        };
        body[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        body[field::LARGEST_PN].copy_from_slice(&self.largest_pn.to_be_bytes());
        body[field::ACK_DELAY].copy_from_slice(&self.ack_delay_us.to_be_bytes());
        body[field::RANGE_COUNT].copy_from_slice(&(count as u16).to_be_bytes());
        body[field::CORRUPT].copy_from_slice(&self.corrupt.to_be_bytes());
        for (slot, r) in body[field::RANGES..]
            .chunks_exact_mut(RANGE_LEN)
            .zip(self.missing.iter().take(count))
        {
            slot[0..4].copy_from_slice(&r.start.to_be_bytes());
            slot[4..8].copy_from_slice(&r.len.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Body, CommonRepr, Datagram, Kind};
    use super::*;

    const BYTES: [u8; 64] = [
        b'C', b'S', 2, 3, 0, 0, 0, 0, // common: kind = ack
        0, 0, 0, 42, // stream id
        0, 0, 0, 0, 0, 0, 0, 3, // packet number
        0, 0, 0, 9, // frame seq
        1, 1, 0, 2, // incomplete, header missing, window 2
        0, 0, 0, 0, 0, 0, 0, 77, // largest pn
        0, 0, 0x01, 0xf4, // ack delay 500 us
        0, 2, 0, 5, // two ranges, 5 corrupt datagrams
        0, 0, 0, 1, 0, 0, 0, 2, // chunks 1..3
        0, 0, 0, 7, 0, 0, 0, 1, // chunk 7
        0x1b, 0xe0, 0x5f, 0x9c, // CRC-32C of the datagram
    ];

    /// `BYTES` changed at `at` with its check made true again.
    fn with(at: usize, value: &[u8]) -> Vec<u8> {
        let mut b = BYTES.to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        let check_at = b.len() - super::super::CHECK_LEN;
        let check = crc32c::crc32c(&b[..check_at]);
        b[check_at..].copy_from_slice(&check.to_be_bytes());
        b
    }

    const RANGES: [MissingRange; 2] = [
        MissingRange { start: 1, len: 2 },
        MissingRange { start: 7, len: 1 },
    ];

    fn repr() -> Datagram<'static> {
        Datagram {
            common: CommonRepr {
                kind: Kind::Ack,
                stream_id: 42,
                packet_number: 3,
                frame_seq: 9,
            },
            body: Body::Ack(AckRepr {
                status: AckStatus::Incomplete,
                header_missing: true,
                window: 2,
                largest_pn: 77,
                ack_delay_us: 500,
                corrupt: 5,
                missing: MissingRanges::List(&RANGES),
            }),
        }
    }

    #[test]
    fn parse_golden() {
        let d = Datagram::parse(&BYTES).unwrap();
        assert_eq!(d, repr());
        if let Body::Ack(a) = d.body {
            assert_eq!(a.missing.iter().collect::<Vec<_>>(), RANGES);
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
    fn refuses_inconsistent_acks() {
        let parse = |b: Vec<u8>| Datagram::parse(&b).map(|_| ());
        // Complete, but with ranges.
        assert_eq!(parse(with(24, &[0])), Err(WireError::BadAck));
        assert_eq!(parse(with(24, &[5])), Err(WireError::BadAck));
        // The second range starts inside the first.
        assert_eq!(parse(with(55, &[1])), Err(WireError::BadAck));
        // An empty range.
        assert_eq!(parse(with(51, &[0])), Err(WireError::BadAck));
        assert_eq!(parse(with(25, &[0x80])), Err(WireError::BadReserved));
        assert_eq!(
            parse(with(40, &500u16.to_be_bytes())),
            Err(WireError::BadAck)
        );
    }

    #[test]
    fn emit_caps_ranges() {
        let many: Vec<MissingRange> = (0..400)
            .map(|i| MissingRange {
                start: i * 2,
                len: 1,
            })
            .collect();
        let d = Datagram {
            common: CommonRepr {
                kind: Kind::Ack,
                stream_id: 1,
                packet_number: 1,
                frame_seq: 1,
            },
            body: Body::Ack(AckRepr {
                status: AckStatus::Incomplete,
                header_missing: false,
                window: 0,
                largest_pn: 0,
                ack_delay_us: 0,
                corrupt: 0,
                missing: MissingRanges::List(&many),
            }),
        };
        let mut buf = Vec::new();
        d.emit(&mut buf);
        assert!(buf.len() <= 1200, "{}", buf.len());
        let back = Datagram::parse(&buf).unwrap();
        match back.body {
            Body::Ack(a) => assert_eq!(a.missing.len(), MAX_ACK_RANGES),
            _ => panic!("not an ack"),
        }
    }
}
