//! Reassembly of one frame from chunks that may arrive in any order, more than once, or
//! without their header. Memory is one buffer sized from the frame's declared length
//! (already checked against the receiver's limit) plus one bit per chunk.

use std::time::Instant;

use crate::wire::{chunk_count, ChunkRepr, Codec, HeaderRepr, MissingRange};

/// The per-frame facts every chunk repeats. A datagram that disagrees with the frame's
/// current shape is refused, so it cannot corrupt the frame; but it is a vote for its own
/// shape, and when such votes outnumber the current shape's, the frame takes that shape
/// instead. So the majority of the frame's datagrams decides, not whichever came first (a
/// forged first datagram costs a couple of chunks, not the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    total_len: u32,
    chunk_size: u16,
    crc32: u32,
    codec: Codec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// New bytes were placed.
    New,
    /// Already had it.
    Duplicate,
    /// Disagrees with what the frame already is.
    Mismatch,
    /// Disagreed, but its shape now has more votes: the frame was started again in that
    /// shape (with this datagram's bytes), and what it held before was dropped.
    Reshaped,
}

#[derive(Debug)]
pub struct FrameAssembly {
    seq: u32,
    shape: Shape,
    header: Option<HeaderRepr>,
    data: Vec<u8>,
    received: Vec<u64>,
    received_count: u32,
    chunk_count: u32,
    /// Datagrams that agreed with `shape`.
    votes: u32,
    /// The most recent other shape, and datagrams that named it.
    rival: Option<(Shape, u32)>,
    pub(crate) started: Instant,
    pub(crate) last_progress: Instant,
    /// Set once every chunk is in and the CRC matched: waiting only to be released in order.
    pub(crate) verified_at: Option<Instant>,
    /// When the viewer last reported this frame's holes (for its repair-time estimate).
    pub(crate) nack_sent_at: Option<Instant>,
    /// The last chunk the latest report of holes asked for. When it arrives and holes
    /// remain, they are reported at once: a repair round then costs a round trip, as the
    /// first one does (the tail's arrival triggers that), not a probe timeout.
    pub(crate) repair_tail: Option<u32>,
}

impl FrameAssembly {
    pub fn from_header(seq: u32, header: &HeaderRepr, now: Instant) -> FrameAssembly {
        let shape = Shape {
            total_len: header.total_len,
            chunk_size: header.chunk_size,
            crc32: header.crc32,
            codec: header.codec,
        };
        let mut assembly = Self::new(seq, shape, now);
        assembly.header = Some(*header);
        assembly
    }

    pub fn from_chunk(seq: u32, chunk: &ChunkRepr<'_>, now: Instant) -> FrameAssembly {
        let shape = Shape {
            total_len: chunk.total_len,
            chunk_size: chunk.chunk_size,
            crc32: chunk.crc32,
            codec: chunk.codec,
        };
        Self::new(seq, shape, now)
    }

    fn new(seq: u32, shape: Shape, now: Instant) -> FrameAssembly {
        let chunk_count = chunk_count(shape.total_len, shape.chunk_size);
        FrameAssembly {
            seq,
            shape,
            header: None,
            // Zeroed allocation: pages a flood never writes stay unbacked.
            data: vec![0; shape.total_len as usize],
            received: vec![0; (chunk_count as usize).div_ceil(64)],
            received_count: 0,
            chunk_count,
            votes: 1,
            rival: None,
            started: now,
            last_progress: now,
            verified_at: None,
            nack_sent_at: None,
            repair_tail: None,
        }
    }

    pub fn seq(&self) -> u32 {
        self.seq
    }
    pub fn header(&self) -> Option<&HeaderRepr> {
        self.header.as_ref()
    }
    pub fn total_len(&self) -> u32 {
        self.shape.total_len
    }
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }
    pub fn received_count(&self) -> u32 {
        self.received_count
    }
    pub fn is_complete(&self) -> bool {
        self.received_count == self.chunk_count
    }

    /// Counts a vote for `shape`, which the frame does not have: true when it now has more
    /// votes than the current shape, and the frame was started again in it.
    fn vote_against(&mut self, shape: Shape, now: Instant) -> bool {
        let votes = match &mut self.rival {
            Some((rival, votes)) if *rival == shape => {
                *votes += 1;
                *votes
            }
            rival => {
                *rival = Some((shape, 1));
                1
            }
        };
        if votes <= self.votes || self.verified_at.is_some() {
            return false;
        }
        log::debug!(
            "frame {}: {votes} datagrams against {} say it is {shape:?}",
            self.seq,
            self.votes
        );
        let seq = self.seq;
        *self = Self::new(seq, shape, now);
        self.votes = votes;
        true
    }

    pub fn accept_header(&mut self, header: &HeaderRepr, now: Instant) -> Accepted {
        let shape = Shape {
            total_len: header.total_len,
            chunk_size: header.chunk_size,
            crc32: header.crc32,
            codec: header.codec,
        };
        if shape != self.shape {
            if !self.vote_against(shape, now) {
                return Accepted::Mismatch;
            }
            self.header = Some(*header);
            return Accepted::Reshaped;
        }
        match self.header {
            Some(h) if h == *header => Accepted::Duplicate,
            // Same shape, other picture facts: the first header stands.
            Some(_) => Accepted::Mismatch,
            None => {
                self.votes += 1;
                self.header = Some(*header);
                Accepted::New
            }
        }
    }

    /// Places a chunk. The chunk was parsed, so its payload fits its place exactly.
    pub fn accept_chunk(&mut self, chunk: &ChunkRepr<'_>, now: Instant) -> Accepted {
        let shape = Shape {
            total_len: chunk.total_len,
            chunk_size: chunk.chunk_size,
            crc32: chunk.crc32,
            codec: chunk.codec,
        };
        let mut accepted = Accepted::New;
        if shape != self.shape {
            if !self.vote_against(shape, now) {
                return Accepted::Mismatch;
            }
            accepted = Accepted::Reshaped;
        }
        if chunk.index >= self.chunk_count {
            return Accepted::Mismatch;
        }
        let (word, bit) = (chunk.index as usize / 64, chunk.index % 64);
        if self.received[word] & (1 << bit) != 0 {
            return Accepted::Duplicate;
        }
        let start = chunk.offset();
        let Some(place) = self.data.get_mut(start..start + chunk.payload.len()) else {
            return Accepted::Mismatch;
        };
        place.copy_from_slice(chunk.payload);
        self.received[word] |= 1 << bit;
        self.received_count += 1;
        if accepted == Accepted::New {
            self.votes += 1;
        }
        self.last_progress = now;
        accepted
    }

    pub fn has_chunk(&self, index: u32) -> bool {
        index < self.chunk_count && self.received[index as usize / 64] & (1 << (index % 64)) != 0
    }

    /// Writes up to `max` runs of missing chunks into `out` (cleared first).
    pub fn missing_ranges(&self, out: &mut Vec<MissingRange>, max: usize) {
        out.clear();
        let mut index = 0u32;
        while index < self.chunk_count && out.len() < max {
            if self.has_chunk(index) {
                // Skip whole received words quickly.
                if index % 64 == 0 && self.received[index as usize / 64] == u64::MAX {
                    index += 64;
                } else {
                    index += 1;
                }
                continue;
            }
            let start = index;
            while index < self.chunk_count && !self.has_chunk(index) {
                index += 1;
            }
            out.push(MissingRange {
                start,
                len: index - start,
            });
        }
    }

    pub fn crc_matches(&self) -> bool {
        crc32fast::hash(&self.data) == self.shape.crc32
    }

    /// Forgets every chunk (after a CRC failure): the whole frame is asked for again.
    pub fn reset(&mut self) {
        self.received.fill(0);
        self.received_count = 0;
    }

    pub fn into_data(self) -> (Vec<u8>, Option<HeaderRepr>) {
        (self.data, self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], index: u32, size: u16, crc: u32) -> ChunkRepr<'_> {
        let start = index as usize * size as usize;
        let end = (start + size as usize).min(data.len());
        ChunkRepr {
            index,
            total_len: data.len() as u32,
            crc32: crc,
            chunk_size: size,
            codec: Codec::Jpeg,
            payload: &data[start..end],
        }
    }

    #[test]
    fn assembles_out_of_order_with_duplicates() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let crc = crc32fast::hash(&data);
        let now = Instant::now();
        let mut a = FrameAssembly::from_chunk(1, &chunk(&data, 3, 100, crc), now);
        for i in [3, 9, 0, 0, 5, 1, 2, 4, 9, 6, 7, 8] {
            let _ = a.accept_chunk(&chunk(&data, i, 100, crc), now);
        }
        assert!(a.is_complete());
        assert!(a.crc_matches());
        assert_eq!(a.into_data().0, data);
    }

    #[test]
    fn reports_missing_runs() {
        let data = vec![1u8; 200 * 10];
        let crc = crc32fast::hash(&data);
        let now = Instant::now();
        let mut a = FrameAssembly::from_chunk(1, &chunk(&data, 0, 10, crc), now);
        for i in (0..200).filter(|i| !(5..8).contains(i) && *i != 70 && *i < 190) {
            a.accept_chunk(&chunk(&data, i, 10, crc), now);
        }
        let mut out = Vec::new();
        a.missing_ranges(&mut out, 16);
        assert_eq!(
            out,
            vec![
                MissingRange { start: 5, len: 3 },
                MissingRange { start: 70, len: 1 },
                MissingRange {
                    start: 190,
                    len: 10
                },
            ]
        );
        a.missing_ranges(&mut out, 2);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn refuses_chunks_of_another_shape() {
        let data = vec![9u8; 300];
        let crc = crc32fast::hash(&data);
        let now = Instant::now();
        let mut a = FrameAssembly::from_chunk(1, &chunk(&data, 0, 100, crc), now);
        assert_eq!(
            a.accept_chunk(&chunk(&data, 1, 100, crc ^ 1), now),
            Accepted::Mismatch
        );
        assert_eq!(
            a.accept_chunk(&chunk(&data[..250], 1, 100, crc), now),
            Accepted::Mismatch
        );
        assert_eq!(a.received_count(), 0);
    }

    #[test]
    fn the_majority_of_datagrams_decides_the_shape() {
        let data = vec![9u8; 500];
        let crc = crc32fast::hash(&data);
        let now = Instant::now();
        // A forged first datagram names another CRC; the genuine chunks outvote it.
        let mut a = FrameAssembly::from_chunk(1, &chunk(&data, 4, 100, crc ^ 1), now);
        assert_eq!(
            a.accept_chunk(&chunk(&data, 0, 100, crc), now),
            Accepted::Mismatch
        );
        assert_eq!(
            a.accept_chunk(&chunk(&data, 1, 100, crc), now),
            Accepted::Reshaped
        );
        for i in [2, 3, 4, 0] {
            assert_eq!(
                a.accept_chunk(&chunk(&data, i, 100, crc), now),
                Accepted::New
            );
        }
        assert!(a.is_complete() && a.crc_matches());
        // Once a shape leads, a lone dissenter changes nothing.
        assert_eq!(
            a.accept_chunk(&chunk(&data, 1, 100, crc ^ 2), now),
            Accepted::Mismatch
        );
        assert!(a.is_complete());
    }

    #[test]
    fn detects_corruption_by_crc() {
        let data = vec![5u8; 300];
        let crc = crc32fast::hash(&data);
        let mut bad = data.clone();
        bad[150] ^= 0x40;
        let now = Instant::now();
        let mut a = FrameAssembly::from_chunk(1, &chunk(&bad, 0, 100, crc), now);
        for i in 0..3 {
            a.accept_chunk(&chunk(&bad, i, 100, crc), now);
        }
        assert!(a.is_complete());
        assert!(!a.crc_matches());
        a.reset();
        assert!(!a.is_complete());
        let mut out = Vec::new();
        a.missing_ranges(&mut out, 8);
        assert_eq!(out, vec![MissingRange { start: 0, len: 3 }]);
    }
}
