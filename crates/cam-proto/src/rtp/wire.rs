//! RTP fixed header (RFC 3550 §5.1) and the RTP/JPEG payload headers (RFC 2435 §3.1).
//!
//! As in `crate::wire`: a checked view (`RtpPacket`) whose accessors cannot panic once
//! `new_checked` passed, and plain `*Repr` structs with `parse`/`emit`/`buffer_len`.

use core::ops::Range;

use super::RtpWireError;

type Field = Range<usize>;
type Result<T> = core::result::Result<T, RtpWireError>;

/// The RTP version this crate speaks (and the only one in use since 1996).
pub const RTP_VERSION: u8 = 2;
/// The static payload type of JPEG (RFC 3551 table 5).
pub const PT_JPEG: u8 = 26;
/// Clock rate of RTP/JPEG timestamps.
pub const JPEG_CLOCK_HZ: u32 = 90_000;

mod field {
    use super::Field;
    pub const FLAGS: usize = 0;
    pub const MARKER_PT: usize = 1;
    pub const SEQ: Field = 2..4;
    pub const TIMESTAMP: Field = 4..8;
    pub const SSRC: Field = 8..12;
    pub const CSRC: usize = SSRC.end;
}

/// Length of the fixed RTP header (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = field::CSRC;

pub(super) use crate::wire::{read_u16, read_u32};

/// A checked view over an RTP packet.
#[derive(Debug, Clone)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> RtpPacket<T> {
        RtpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<RtpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The fixed header, the CSRC list, the extension and the padding all fit, and the
    /// padding does not eat into the header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < RTP_HEADER_LEN {
            return Err(RtpWireError::Truncated);
        }
        let mut end = RTP_HEADER_LEN + 4 * usize::from(b[field::FLAGS] & 0x0f);
        if self.extension() {
            if b.len() < end + 4 {
                return Err(RtpWireError::Truncated);
            }
            end += 4 + 4 * usize::from(read_u16(&b[end + 2..end + 4]));
        }
        if b.len() < end {
            return Err(RtpWireError::Truncated);
        }
        if self.padding() {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || b.len() - end < pad {
                return Err(RtpWireError::BadPadding);
            }
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] >> 6
    }
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x20 != 0
    }
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x10 != 0
    }
    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] & 0x0f
    }
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[field::MARKER_PT] & 0x80 != 0
    }
    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[field::MARKER_PT] & 0x7f
    }
    pub fn seq(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SEQ])
    }
    pub fn timestamp(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::TIMESTAMP])
    }
    pub fn ssrc(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SSRC])
    }
    /// Fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        let b = self.buffer.as_ref();
        let mut end = RTP_HEADER_LEN + 4 * usize::from(self.csrc_count());
        if self.extension() {
            end += 4 + 4 * usize::from(read_u16(&b[end + 2..end + 4]));
        }
        end
    }
    /// The payload, padding removed.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let pad = if self.padding() {
            usize::from(b[b.len() - 1])
        } else {
            0
        };
        &b[self.header_len()..b.len() - pad]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    /// Writes a fixed header without padding, extension or CSRCs.
    fn set_fixed(&mut self, repr: &RtpRepr) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = RTP_VERSION << 6;
        b[field::MARKER_PT] = (u8::from(repr.marker) << 7) | (repr.payload_type & 0x7f);
        b[field::SEQ].copy_from_slice(&repr.seq.to_be_bytes());
        b[field::TIMESTAMP].copy_from_slice(&repr.timestamp.to_be_bytes());
        b[field::SSRC].copy_from_slice(&repr.ssrc.to_be_bytes());
    }
}

/// The meaning of an RTP header. CSRCs and header extensions are skipped on parse and
/// never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpRepr {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &RtpPacket<T>) -> Result<RtpRepr> {
        packet.check_len()?;
        if packet.version() != RTP_VERSION {
            return Err(RtpWireError::BadVersion(packet.version()));
        }
        Ok(RtpRepr {
            marker: packet.marker(),
            payload_type: packet.payload_type(),
            seq: packet.seq(),
            timestamp: packet.timestamp(),
            ssrc: packet.ssrc(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        RTP_HEADER_LEN
    }

    /// Writes the header into `buf[..RTP_HEADER_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) {
        RtpPacket::new_unchecked(buf).set_fixed(self);
    }
}

mod jpeg_field {
    use super::Field;
    pub const TYPE_SPECIFIC: usize = 0;
    pub const OFFSET: Field = 1..4;
    pub const TYPE: usize = 4;
    pub const Q: usize = 5;
    pub const WIDTH: usize = 6;
    pub const HEIGHT: usize = 7;
    pub const END: usize = 8;

    pub const RESTART_INTERVAL: Field = 0..2;
    pub const RESTART_FLAGS_COUNT: Field = 2..4;
    pub const RESTART_END: usize = 4;

    pub const QT_MBZ: usize = 0;
    pub const QT_PRECISION: usize = 1;
    pub const QT_LENGTH: Field = 2..4;
    pub const QT_END: usize = 4;
}

/// Length of the RTP/JPEG main header.
pub const JPEG_HEADER_LEN: usize = jpeg_field::END;
/// Length of the restart marker header.
pub const RESTART_HEADER_LEN: usize = jpeg_field::RESTART_END;
/// Length of the quantization table header (without its tables).
pub const QTABLE_HEADER_LEN: usize = jpeg_field::QT_END;
/// Largest fragment offset the 24-bit field can say.
pub const MAX_FRAGMENT_OFFSET: u32 = (1 << 24) - 1;
/// Largest width or height the 8-bit fields can say (255 × 8).
pub const MAX_DIMENSION: u16 = 2040;
/// The restart count meaning "no particular restart interval starts here" (§3.1.7).
pub const RESTART_COUNT_ANY: u16 = 0x3fff;

/// RTP/JPEG main header (RFC 2435 §3.1). Width and height are in pixels (multiples of 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegHeaderRepr {
    pub type_specific: u8,
    pub fragment_offset: u32,
    pub jpeg_type: u8,
    pub q: u8,
    pub width: u16,
    pub height: u16,
}

impl JpegHeaderRepr {
    /// Types 64–127 carry a restart marker header.
    pub fn has_restart(&self) -> bool {
        (64..128).contains(&self.jpeg_type)
    }
    /// Q 128–255 with offset 0 carries a quantization table header.
    pub fn has_qtables(&self) -> bool {
        self.q >= 128 && self.fragment_offset == 0
    }
}

/// Restart marker header (RFC 2435 §3.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRepr {
    pub interval: u16,
    pub first: bool,
    pub last: bool,
    /// 14 bits.
    pub count: u16,
}

/// Quantization table header and its table bytes (RFC 2435 §3.1.8). Tables are in
/// zig-zag order, as in a DQT segment; precision bit `i` set means table `i` has 16-bit
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QTablesRepr<'a> {
    pub precision: u8,
    pub tables: &'a [u8],
}

impl QTablesRepr<'_> {
    /// Splits the table bytes into `count` tables of 64 entries each, honouring precision.
    /// `None` when the length disagrees with the precision bits (a lying length).
    pub fn decode(&self, count: usize) -> Option<Vec<[u16; 64]>> {
        let mut out = Vec::with_capacity(count);
        let mut at = 0usize;
        for i in 0..count {
            let wide = i < 8 && self.precision & (1 << i) != 0;
            let len = if wide { 128 } else { 64 };
            let bytes = self.tables.get(at..at + len)?;
            let mut t = [0u16; 64];
            for (k, v) in t.iter_mut().enumerate() {
                *v = if wide {
                    read_u16(&bytes[2 * k..2 * k + 2])
                } else {
                    u16::from(bytes[k])
                };
            }
            out.push(t);
            at += len;
        }
        (at == self.tables.len()).then_some(out)
    }
}

/// One RTP/JPEG payload: main header, optional restart and table headers, then data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegPayloadRepr<'a> {
    pub header: JpegHeaderRepr,
    pub restart: Option<RestartRepr>,
    pub qtables: Option<QTablesRepr<'a>>,
    pub data: &'a [u8],
}

impl<'a> JpegPayloadRepr<'a> {
    /// Parses an RTP payload. Every length is checked before it is read.
    pub fn parse(payload: &'a [u8]) -> Result<JpegPayloadRepr<'a>> {
        use jpeg_field as f;
        if payload.len() < JPEG_HEADER_LEN {
            return Err(RtpWireError::Truncated);
        }
        let b = payload;
        let header = JpegHeaderRepr {
            type_specific: b[f::TYPE_SPECIFIC],
            fragment_offset: {
                let o = &b[f::OFFSET];
                u32::from_be_bytes([0, o[0], o[1], o[2]])
            },
            jpeg_type: b[f::TYPE],
            q: b[f::Q],
            width: u16::from(b[f::WIDTH]) * 8,
            height: u16::from(b[f::HEIGHT]) * 8,
        };
        if header.q == 0 {
            return Err(RtpWireError::BadQ);
        }
        if header.width == 0 || header.height == 0 {
            return Err(RtpWireError::BadSize);
        }
        let mut rest = &b[JPEG_HEADER_LEN..];
        let restart = if header.has_restart() {
            if rest.len() < RESTART_HEADER_LEN {
                return Err(RtpWireError::Truncated);
            }
            let fc = read_u16(&rest[f::RESTART_FLAGS_COUNT]);
            let r = RestartRepr {
                interval: read_u16(&rest[f::RESTART_INTERVAL]),
                first: fc & 0x8000 != 0,
                last: fc & 0x4000 != 0,
                count: fc & 0x3fff,
            };
            rest = &rest[RESTART_HEADER_LEN..];
            Some(r)
        } else {
            None
        };
        let qtables = if header.has_qtables() {
            if rest.len() < QTABLE_HEADER_LEN {
                return Err(RtpWireError::Truncated);
            }
            if rest[f::QT_MBZ] != 0 {
                return Err(RtpWireError::BadReserved);
            }
            let precision = rest[f::QT_PRECISION];
            let len = usize::from(read_u16(&rest[f::QT_LENGTH]));
            let tables = rest
                .get(QTABLE_HEADER_LEN..QTABLE_HEADER_LEN + len)
                .ok_or(RtpWireError::BadTableLength)?;
            if len == 0 && header.q == 255 {
                // §3.1.8: Q = 255 with no tables is forbidden.
                return Err(RtpWireError::BadTableLength);
            }
            rest = &rest[QTABLE_HEADER_LEN + len..];
            Some(QTablesRepr { precision, tables })
        } else {
            None
        };
        Ok(JpegPayloadRepr {
            header,
            restart,
            qtables,
            data: rest,
        })
    }

    /// Bytes of headers before `data`.
    pub fn header_len(&self) -> usize {
        JPEG_HEADER_LEN
            + self.restart.map_or(0, |_| RESTART_HEADER_LEN)
            + self
                .qtables
                .map_or(0, |q| QTABLE_HEADER_LEN + q.tables.len())
    }

    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.data.len()
    }

    /// Writes headers and data into `buf[..self.buffer_len()]`. The caller keeps the
    /// fields in range (offset < 2^24, sizes ≤ 2040 and multiples of 8, tables < 64 KiB).
    pub fn emit(&self, buf: &mut [u8]) {
        use jpeg_field as f;
        let h = &self.header;
        buf[f::TYPE_SPECIFIC] = h.type_specific;
        buf[f::OFFSET].copy_from_slice(&h.fragment_offset.to_be_bytes()[1..]);
        buf[f::TYPE] = h.jpeg_type;
        buf[f::Q] = h.q;
        buf[f::WIDTH] = (h.width / 8) as u8;
        buf[f::HEIGHT] = (h.height / 8) as u8;
        let mut at = JPEG_HEADER_LEN;
        if let Some(r) = self.restart {
            let b = &mut buf[at..at + RESTART_HEADER_LEN];
            b[f::RESTART_INTERVAL].copy_from_slice(&r.interval.to_be_bytes());
            let fc = (u16::from(r.first) << 15) | (u16::from(r.last) << 14) | (r.count & 0x3fff);
            b[f::RESTART_FLAGS_COUNT].copy_from_slice(&fc.to_be_bytes());
            at += RESTART_HEADER_LEN;
        }
        if let Some(q) = self.qtables {
            let b = &mut buf[at..at + QTABLE_HEADER_LEN];
            b[f::QT_MBZ] = 0;
            b[f::QT_PRECISION] = q.precision;
            b[f::QT_LENGTH].copy_from_slice(&(q.tables.len() as u16).to_be_bytes());
            at += QTABLE_HEADER_LEN;
            buf[at..at + q.tables.len()].copy_from_slice(q.tables);
            at += q.tables.len();
        }
        buf[at..at + self.data.len()].copy_from_slice(self.data);
    }
}

/// RFC 5761 §4: on a shared port, a second byte of 192–223 (marker bit included) is RTCP.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && datagram[0] >> 6 == RTP_VERSION && (192..=223).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// V=2, M=1, PT=26, seq 0x1234, ts 0xdeadbeef, SSRC 0x01020304; JPEG header type 1,
    /// Q 255, offset 0, 640×480; table header (two 8-bit tables of 64 bytes); two data bytes.
    fn golden_first() -> Vec<u8> {
        let mut v = vec![
            0x80,
            0x80 | 26,
            0x12,
            0x34,
            0xde,
            0xad,
            0xbe,
            0xef,
            1,
            2,
            3,
            4, // RTP
            0,
            0,
            0,
            0,
            1,
            255,
            80,
            60, // JPEG: ts, offset 0, type 1, Q 255, 640/8, 480/8
            0,
            0,
            0,
            128, // table header: MBZ, precision 0, length 128
        ];
        v.extend((0..128).map(|i| i as u8 + 1));
        v.extend([0xab, 0xcd]);
        v
    }

    #[test]
    fn rtp_header_golden() {
        let bytes = golden_first();
        let p = RtpPacket::new_checked(&bytes[..]).unwrap();
        let repr = RtpRepr::parse(&p).unwrap();
        assert_eq!(
            repr,
            RtpRepr {
                marker: true,
                payload_type: 26,
                seq: 0x1234,
                timestamp: 0xdead_beef,
                ssrc: 0x0102_0304,
            }
        );
        let mut out = [0u8; RTP_HEADER_LEN];
        repr.emit(&mut out);
        assert_eq!(out[..], bytes[..RTP_HEADER_LEN]);
        assert_eq!(p.payload().len(), bytes.len() - RTP_HEADER_LEN);
    }

    #[test]
    fn jpeg_payload_golden_parse_and_emit() {
        let bytes = golden_first();
        let payload = &bytes[RTP_HEADER_LEN..];
        let p = JpegPayloadRepr::parse(payload).unwrap();
        assert_eq!(
            p.header,
            JpegHeaderRepr {
                type_specific: 0,
                fragment_offset: 0,
                jpeg_type: 1,
                q: 255,
                width: 640,
                height: 480,
            }
        );
        assert_eq!(p.restart, None);
        let q = p.qtables.unwrap();
        assert_eq!(q.tables.len(), 128);
        let t = q.decode(2).unwrap();
        assert_eq!(t[0][0], 1);
        assert_eq!(t[1][63], 128);
        assert_eq!(p.data, &[0xab, 0xcd]);
        let mut out = vec![0u8; p.buffer_len()];
        p.emit(&mut out);
        assert_eq!(out, payload);
    }

    #[test]
    fn restart_header_golden() {
        // type 65, Q 80 (no tables), offset 0x010203, 16×8, restart interval 4, F=1 L=1 count 0x3fff.
        let bytes = [0, 1, 2, 3, 65, 80, 2, 1, 0, 4, 0xff, 0xff, 9];
        let p = JpegPayloadRepr::parse(&bytes).unwrap();
        assert_eq!(p.header.fragment_offset, 0x010203);
        assert_eq!(
            p.restart,
            Some(RestartRepr {
                interval: 4,
                first: true,
                last: true,
                count: RESTART_COUNT_ANY,
            })
        );
        assert_eq!(p.qtables, None);
        assert_eq!(p.data, &[9]);
        let mut out = vec![0u8; p.buffer_len()];
        p.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn sixteen_bit_tables() {
        let mut bytes = vec![0, 0, 0, 0, 0, 200, 1, 1, 0, 0b01, 0, 192];
        bytes.extend((0..64u16).flat_map(|i| (i + 256).to_be_bytes()));
        bytes.extend(0..64u8);
        let p = JpegPayloadRepr::parse(&bytes).unwrap();
        let t = p.qtables.unwrap().decode(2).unwrap();
        assert_eq!(t[0][5], 261);
        assert_eq!(t[1][5], 5);
        // the same bytes claimed as two 8-bit tables: the length lies
        let lying = QTablesRepr {
            precision: 0,
            tables: p.qtables.unwrap().tables,
        };
        assert_eq!(lying.decode(2), None);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0xb1, 26, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V2 P X CC=1
        b.extend([9, 9, 9, 9]); // CSRC
        b.extend([0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, one word
        b.extend([0xaa, 0xbb]); // payload
        b.extend([0, 0, 3]); // padding of 3
        let p = RtpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        let mut bad = b.clone();
        *bad.last_mut().unwrap() = 6; // padding into the header
        assert_eq!(
            RtpPacket::new_checked(&bad[..]).err(),
            Some(RtpWireError::BadPadding)
        );
        *bad.last_mut().unwrap() = 0;
        assert!(RtpPacket::new_checked(&bad[..]).is_err());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = golden_first();
        // Everything up to the end of the table bytes is needed; data may be empty.
        for len in 0..RTP_HEADER_LEN {
            assert!(RtpPacket::new_checked(&bytes[..len]).is_err(), "len {len}");
        }
        let payload = &bytes[RTP_HEADER_LEN..];
        for len in 0..JPEG_HEADER_LEN + QTABLE_HEADER_LEN + 128 {
            assert!(
                JpegPayloadRepr::parse(&payload[..len]).is_err(),
                "len {len}"
            );
        }
        // the extension length pointing past the end
        let b = [0x90, 26, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 9];
        assert_eq!(
            RtpPacket::new_checked(&b[..]).err(),
            Some(RtpWireError::Truncated)
        );
    }

    #[test]
    fn refuses_bad_meaning() {
        let mut b = golden_first();
        b[0] = 0x40; // version 1
        let p = RtpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(RtpRepr::parse(&p), Err(RtpWireError::BadVersion(1)));
        let mut pl = golden_first()[RTP_HEADER_LEN..].to_vec();
        pl[8] = 1; // MBZ
        assert_eq!(
            JpegPayloadRepr::parse(&pl).err(),
            Some(RtpWireError::BadReserved)
        );
        let mut pl = golden_first()[RTP_HEADER_LEN..].to_vec();
        pl[11] = 200; // table length beyond the packet
        assert_eq!(
            JpegPayloadRepr::parse(&pl).err(),
            Some(RtpWireError::BadTableLength)
        );
        let mut pl = golden_first()[RTP_HEADER_LEN..].to_vec();
        pl[10..12].fill(0); // Q 255 without tables
        assert_eq!(
            JpegPayloadRepr::parse(&pl).err(),
            Some(RtpWireError::BadTableLength)
        );
        let mut pl = golden_first()[RTP_HEADER_LEN..].to_vec();
        pl[6] = 0;
        assert_eq!(
            JpegPayloadRepr::parse(&pl).err(),
            Some(RtpWireError::BadSize)
        );
    }

    #[test]
    fn rfc5761_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 205]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 26]));
        assert!(!is_rtcp(&[0x80, 0x80 | 26]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80]));
    }
}
