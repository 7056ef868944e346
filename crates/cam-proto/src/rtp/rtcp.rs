//! RTCP (RFC 3550 §6.4): sender and receiver reports, SDES CNAME, BYE; the generic NACK
//! of RFC 4585 §6.2.1; compound packets (§6.1). Anything else is skipped by its length.

use super::wire::{read_u16, read_u32, RTP_VERSION};
use super::RtpWireError;

type Result<T> = core::result::Result<T, RtpWireError>;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
/// Transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Generic NACK's FMT within RTPFB.
pub const FMT_NACK: u8 = 1;

/// Every RTCP packet's first four bytes.
pub const RTCP_HEADER_LEN: usize = 4;
/// One report block.
pub const REPORT_BLOCK_LEN: usize = 24;
/// Sender info in an SR (after the sender's SSRC).
pub const SENDER_INFO_LEN: usize = 20;
/// Most report blocks (or NACK items we emit) in one packet: the count field has 5 bits.
pub const MAX_COUNT: usize = 31;

/// One reception report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR from this source (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> ReportBlock {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // sign-extend 24 bits
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        ReportBlock {
            ssrc: read_u32(&b[0..4]),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: read_u32(&b[8..12]),
            jitter: read_u32(&b[12..16]),
            lsr: read_u32(&b[16..20]),
            dlsr: read_u32(&b[20..24]),
        }
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.extend(self.ssrc.to_be_bytes());
        out.push(self.fraction_lost);
        let lost = self.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1) as u32;
        out.extend(&lost.to_be_bytes()[1..]);
        out.extend(self.highest_seq.to_be_bytes());
        out.extend(self.jitter.to_be_bytes());
        out.extend(self.lsr.to_be_bytes());
        out.extend(self.dlsr.to_be_bytes());
    }
}

/// The sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high half).
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// Generic NACK (RFC 4585 §6.2.1): each item names packet `pid` and, in `blp`, which of
/// the 16 following packets are lost too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackRepr {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    pub items: Vec<(u16, u16)>,
}

impl NackRepr {
    /// Packs sequence numbers (any order, duplicates allowed) into PID+BLP items.
    pub fn from_seqs(sender_ssrc: u32, media_ssrc: u32, seqs: &[u16]) -> NackRepr {
        let mut sorted = seqs.to_vec();
        // Sort in wrap-aware order relative to the first one.
        if let Some(&base) = seqs.first() {
            sorted.sort_by_key(|s| s.wrapping_sub(base).wrapping_add(0x8000));
        }
        sorted.dedup();
        let mut items: Vec<(u16, u16)> = Vec::new();
        for s in sorted {
            if let Some((pid, blp)) = items.last_mut() {
                let d = s.wrapping_sub(*pid);
                if (1..=16).contains(&d) {
                    *blp |= 1 << (d - 1);
                    continue;
                }
            }
            items.push((s, 0));
        }
        NackRepr {
            sender_ssrc,
            media_ssrc,
            items,
        }
    }

    /// Every sequence number the items name.
    pub fn seqs(&self) -> impl Iterator<Item = u16> + '_ {
        self.items.iter().flat_map(|&(pid, blp)| {
            std::iter::once(pid).chain(
                (0..16u16)
                    .filter(move |i| blp & (1 << i) != 0)
                    .map(move |i| pid.wrapping_add(i + 1)),
            )
        })
    }
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpRepr {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// The first chunk's CNAME (other items and chunks are skipped on parse).
    Sdes {
        ssrc: u32,
        cname: String,
    },
    Bye {
        ssrcs: Vec<u32>,
    },
    Nack(NackRepr),
    /// A packet type this crate does not act on, skipped by its length.
    Other {
        packet_type: u8,
    },
}

impl RtcpRepr {
    /// Parses a compound packet (one or more RTCP packets back to back). Refuses the whole
    /// datagram if any length disagrees: a compound cannot be resynchronised.
    pub fn parse_compound(bytes: &[u8]) -> Result<Vec<RtcpRepr>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        if rest.is_empty() {
            return Err(RtpWireError::Truncated);
        }
        while !rest.is_empty() {
            if rest.len() < RTCP_HEADER_LEN {
                return Err(RtpWireError::Truncated);
            }
            let len = 4 * (usize::from(read_u16(&rest[2..4])) + 1);
            let packet = rest.get(..len).ok_or(RtpWireError::Truncated)?;
            out.push(Self::parse(packet)?);
            rest = &rest[len..];
            if out.len() > 64 {
                return Err(RtpWireError::BadLength);
            }
        }
        Ok(out)
    }

    /// Parses one RTCP packet whose length field matches `packet.len()`.
    pub fn parse(packet: &[u8]) -> Result<RtcpRepr> {
        if packet.len() < RTCP_HEADER_LEN {
            return Err(RtpWireError::Truncated);
        }
        if packet[0] >> 6 != RTP_VERSION {
            return Err(RtpWireError::BadVersion(packet[0] >> 6));
        }
        if 4 * (usize::from(read_u16(&packet[2..4])) + 1) != packet.len() {
            return Err(RtpWireError::BadLength);
        }
        let count = usize::from(packet[0] & 0x1f);
        let pt = packet[1];
        let mut body = &packet[RTCP_HEADER_LEN..];
        if packet[0] & 0x20 != 0 {
            let pad = usize::from(packet[packet.len() - 1]);
            if pad == 0 || pad > body.len() {
                return Err(RtpWireError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        let reports = |b: &[u8]| -> Result<Vec<ReportBlock>> {
            let need = count * REPORT_BLOCK_LEN;
            let blocks = b.get(..need).ok_or(RtpWireError::Truncated)?;
            Ok(blocks
                .chunks_exact(REPORT_BLOCK_LEN)
                .map(ReportBlock::parse)
                .collect())
        };
        match pt {
            PT_SR => {
                if body.len() < 4 + SENDER_INFO_LEN {
                    return Err(RtpWireError::Truncated);
                }
                let info = SenderInfo {
                    ntp: (u64::from(read_u32(&body[4..8])) << 32)
                        | u64::from(read_u32(&body[8..12])),
                    rtp_timestamp: read_u32(&body[12..16]),
                    packet_count: read_u32(&body[16..20]),
                    octet_count: read_u32(&body[20..24]),
                };
                Ok(RtcpRepr::SenderReport {
                    ssrc: read_u32(&body[0..4]),
                    info,
                    reports: reports(&body[24..])?,
                })
            }
            PT_RR => {
                if body.len() < 4 {
                    return Err(RtpWireError::Truncated);
                }
                Ok(RtcpRepr::ReceiverReport {
                    ssrc: read_u32(&body[0..4]),
                    reports: reports(&body[4..])?,
                })
            }
            PT_SDES if count >= 1 => {
                if body.len() < 4 {
                    return Err(RtpWireError::Truncated);
                }
                let ssrc = read_u32(&body[0..4]);
                let mut items = &body[4..];
                let mut cname = String::new();
                loop {
                    match items {
                        [] | [0, ..] => break,
                        [kind, len, rest @ ..] => {
                            let text = rest
                                .get(..usize::from(*len))
                                .ok_or(RtpWireError::Truncated)?;
                            if *kind == 1 {
                                cname = String::from_utf8_lossy(text).into_owned();
                            }
                            items = &rest[usize::from(*len)..];
                        }
                        [_] => return Err(RtpWireError::Truncated),
                    }
                }
                Ok(RtcpRepr::Sdes { ssrc, cname })
            }
            PT_BYE => {
                let ids = body.get(..4 * count).ok_or(RtpWireError::Truncated)?;
                Ok(RtcpRepr::Bye {
                    ssrcs: ids.chunks_exact(4).map(read_u32).collect(),
                })
            }
            PT_RTPFB if count == usize::from(FMT_NACK) => {
                if body.len() < 8 {
                    return Err(RtpWireError::Truncated);
                }
                let fci = &body[8..];
                if fci.is_empty() || fci.len() % 4 != 0 {
                    return Err(RtpWireError::BadLength);
                }
                Ok(RtcpRepr::Nack(NackRepr {
                    sender_ssrc: read_u32(&body[0..4]),
                    media_ssrc: read_u32(&body[4..8]),
                    items: fci
                        .chunks_exact(4)
                        .map(|c| (read_u16(&c[0..2]), read_u16(&c[2..4])))
                        .collect(),
                }))
            }
            192..=223 => Ok(RtcpRepr::Other { packet_type: pt }),
            other => Err(RtpWireError::BadPacketType(other)),
        }
    }

    /// Appends this packet to `out`. Report blocks, BYE SSRCs and NACK items beyond 31
    /// are cut (callers send at most that many).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let header = |out: &mut Vec<u8>, count: usize, pt: u8| {
            out.push((RTP_VERSION << 6) | (count.min(MAX_COUNT) as u8));
            out.push(pt);
            out.extend([0, 0]);
        };
        match self {
            RtcpRepr::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                header(out, reports.len(), PT_SR);
                out.extend(ssrc.to_be_bytes());
                out.extend(info.ntp.to_be_bytes());
                out.extend(info.rtp_timestamp.to_be_bytes());
                out.extend(info.packet_count.to_be_bytes());
                out.extend(info.octet_count.to_be_bytes());
                reports.iter().take(MAX_COUNT).for_each(|r| r.emit(out));
            }
            RtcpRepr::ReceiverReport { ssrc, reports } => {
                header(out, reports.len(), PT_RR);
                out.extend(ssrc.to_be_bytes());
                reports.iter().take(MAX_COUNT).for_each(|r| r.emit(out));
            }
            RtcpRepr::Sdes { ssrc, cname } => {
                header(out, 1, PT_SDES);
                out.extend(ssrc.to_be_bytes());
                let text = &cname.as_bytes()[..cname.len().min(255)];
                out.push(1);
                out.push(text.len() as u8);
                out.extend(text);
                // the item list ends with a zero byte, then pads to 32 bits
                out.push(0);
                while (out.len() - start) % 4 != 0 {
                    out.push(0);
                }
            }
            RtcpRepr::Bye { ssrcs } => {
                header(out, ssrcs.len(), PT_BYE);
                ssrcs
                    .iter()
                    .take(MAX_COUNT)
                    .for_each(|s| out.extend(s.to_be_bytes()));
            }
            RtcpRepr::Nack(n) => {
                header(out, usize::from(FMT_NACK), PT_RTPFB);
                out.extend(n.sender_ssrc.to_be_bytes());
                out.extend(n.media_ssrc.to_be_bytes());
                for (pid, blp) in n.items.iter().take(255) {
                    out.extend(pid.to_be_bytes());
                    out.extend(blp.to_be_bytes());
                }
            }
            RtcpRepr::Other { packet_type } => {
                header(out, 0, *packet_type);
            }
        }
        let words = ((out.len() - start) / 4 - 1) as u16;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }

    /// Appends a compound of `packets`.
    pub fn emit_compound(packets: &[RtcpRepr], out: &mut Vec<u8>) {
        packets.iter().for_each(|p| p.emit(out));
    }
}

/// NTP time (RFC 3550 §4) from microseconds since the Unix epoch.
pub fn ntp_from_unix_us(us: u64) -> u64 {
    const UNIX_TO_NTP_SECS: u64 = 2_208_988_800;
    let secs = us / 1_000_000 + UNIX_TO_NTP_SECS;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// Microseconds since the Unix epoch from an NTP time (0 before 1970).
pub fn unix_us_from_ntp(ntp: u64) -> u64 {
    const UNIX_TO_NTP_SECS: u64 = 2_208_988_800;
    let secs = (ntp >> 32).saturating_sub(UNIX_TO_NTP_SECS);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    secs * 1_000_000 + frac
}

/// The middle 32 bits of an NTP time, as LSR carries it.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: [u8; 52] = [
        0x81, 200, 0, 12, // V2 RC1 SR, 13 words
        0, 0, 0, 1, // SSRC
        0xe0, 0, 0, 0, 0x80, 0, 0, 0, // NTP
        0, 0, 0x10, 0, // RTP ts
        0, 0, 0, 10, 0, 0, 0x03, 0xe8, // 10 packets, 1000 octets
        0, 0, 0, 2, // block: SSRC 2
        64, 0xff, 0xff, 0xfe, // 25% lost, cumulative -2
        0, 1, 0, 5, // highest seq 65541
        0, 0, 0, 7, // jitter
        0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, // LSR, DLSR 1 s
    ];

    fn sr() -> RtcpRepr {
        RtcpRepr::SenderReport {
            ssrc: 1,
            info: SenderInfo {
                ntp: 0xe000_0000_8000_0000,
                rtp_timestamp: 0x1000,
                packet_count: 10,
                octet_count: 1000,
            },
            reports: vec![ReportBlock {
                ssrc: 2,
                fraction_lost: 64,
                cumulative_lost: -2,
                highest_seq: 65541,
                jitter: 7,
                lsr: 0x1122_3344,
                dlsr: 65536,
            }],
        }
    }

    const RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 9];
    const BYE: [u8; 12] = [0x82, 203, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
    const NACK: [u8; 20] = [
        0x81,
        205,
        0,
        4,
        0,
        0,
        0,
        9,
        0,
        0,
        0,
        1,
        0x00,
        0x10,
        0b1000_0000,
        0b0000_0101,
        0xff,
        0xff,
        0,
        0,
    ];
    const SDES: [u8; 16] = [
        0x81, 202, 0, 3, 0, 0, 0, 9, 1, 4, b'c', b'a', b'm', b's', 0, 0,
    ];

    #[test]
    fn sr_golden() {
        assert_eq!(RtcpRepr::parse(&SR).unwrap(), sr());
        let mut out = Vec::new();
        sr().emit(&mut out);
        assert_eq!(out, SR);
    }

    #[test]
    fn rr_bye_sdes_nack_golden() {
        let rr = RtcpRepr::ReceiverReport {
            ssrc: 9,
            reports: vec![],
        };
        let bye = RtcpRepr::Bye { ssrcs: vec![1, 2] };
        let sdes = RtcpRepr::Sdes {
            ssrc: 9,
            cname: "cams".into(),
        };
        let nack = RtcpRepr::Nack(NackRepr {
            sender_ssrc: 9,
            media_ssrc: 1,
            items: vec![(0x10, 0x8005), (0xffff, 0)],
        });
        for (bytes, repr) in [
            (&RR[..], rr),
            (&BYE[..], bye),
            (&SDES[..], sdes),
            (&NACK[..], nack),
        ] {
            assert_eq!(RtcpRepr::parse(bytes).unwrap(), repr);
            let mut out = Vec::new();
            repr.emit(&mut out);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn nack_items_name_the_right_packets() {
        let RtcpRepr::Nack(n) = RtcpRepr::parse(&NACK).unwrap() else {
            panic!()
        };
        let seqs: Vec<u16> = n.seqs().collect();
        assert_eq!(seqs, [0x10, 0x11, 0x13, 0x20, 0xffff]);
        let rebuilt = NackRepr::from_seqs(9, 1, &[0x13, 0x10, 0x20, 0x11, 0x11]);
        assert_eq!(rebuilt.items, [(0x10, 0x8005)]);
        // across the wrap
        let w = NackRepr::from_seqs(9, 1, &[65535, 0, 2]);
        assert_eq!(w.items, [(65535, 0b101)]);
        assert_eq!(w.seqs().collect::<Vec<_>>(), [65535, 0, 2]);
    }

    #[test]
    fn compound_and_truncation() {
        let mut compound = Vec::new();
        compound.extend(SR);
        compound.extend(SDES);
        compound.extend(NACK);
        let all = RtcpRepr::parse_compound(&compound).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], sr());
        for len in 0..compound.len() {
            if [0, SR.len(), SR.len() + SDES.len()].contains(&len) && len > 0 {
                assert!(RtcpRepr::parse_compound(&compound[..len]).is_ok());
                continue;
            }
            assert!(
                RtcpRepr::parse_compound(&compound[..len]).is_err(),
                "len {len}"
            );
        }
        // a report count larger than the length allows
        let mut b = RR;
        b[0] = 0x81;
        assert_eq!(RtcpRepr::parse(&b), Err(RtpWireError::Truncated));
        // a length field that disagrees
        let mut b = RR;
        b[3] = 5;
        assert!(RtcpRepr::parse_compound(&b).is_err());
        // not RTCP
        let b = [0x80, 26, 0, 0];
        assert_eq!(RtcpRepr::parse(&b), Err(RtpWireError::BadPacketType(26)));
    }

    #[test]
    fn padding_is_honoured() {
        let b = [0xa0, 201, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
        assert_eq!(
            RtcpRepr::parse(&b).unwrap(),
            RtcpRepr::ReceiverReport {
                ssrc: 9,
                reports: vec![]
            }
        );
        let b = [0xa0, 201, 0, 1, 0, 0, 0, 0];
        assert_eq!(RtcpRepr::parse(&b), Err(RtpWireError::BadPadding));
    }

    #[test]
    fn ntp_round_trip() {
        let us = 1_700_000_000_123_456;
        let ntp = ntp_from_unix_us(us);
        assert_eq!(ntp >> 32, 1_700_000_000 + 2_208_988_800);
        let back = unix_us_from_ntp(ntp);
        assert!(us - back <= 1, "{us} {back}");
        assert_eq!(ntp_middle(0x0123_4567_89ab_cdef), 0x4567_89ab);
    }
}
