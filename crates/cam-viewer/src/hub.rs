//! Every stream the viewer serves, and its newest frame: what the window's grid, the HTTP
//! server and the summary read.
//!
//! The receive worker is the only writer. Streams are keyed on `(stream id, sender)` as the
//! protocol's events give them, never on the protocol: camstream, classic (stream id 0, one
//! stream per sender) and RTP (stream id = SSRC) all land here alike.
//!
//! The newest frame of each stream is kept once, as `Arc<[u8]>` holding the exact bytes
//! received. Readers (an HTTP client, the
//! page) hold a `watch::Receiver`: waiting for a frame newer than the one they sent last is
//! `changed().await`, and a slow reader that misses frames simply sees the newest one next.
//! Nothing is queued per reader, so a reader costs the same memory however slow it is, and
//! the worker never waits for one.

use cam_net::output::round3;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::latency::LatencyRecorder;

/// The window over which the live frame rate and bit rate are measured.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// A stream as the protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub stream_id: u32,
    pub sender: SocketAddr,
}

/// The newest frame of a stream.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Exactly the bytes received.
    pub bytes: Arc<[u8]>,
}

/// One stream's entry; its place in `Hub::streams` is its tile.
#[derive(Debug)]
struct Entry {
    /// How URLs and `/state` name it: the stream id in hex, made unique if two senders share
    /// one (classic mode's senders all have stream id 0).
    id: String,
    key: StreamKey,
    /// `cam-client --name`, once its Name datagram came; labels fall back to id and sender.
    name: Option<String>,
    last_heard: Instant,
    first_frame_at: Option<Instant>,
    last_frame_at: Option<Instant>,
    width: u16,
    height: u16,
    frames: u64,
    bytes: u64,
    /// Frames the sender numbered but that never arrived complete (gaps in the sequence).
    frames_missed: u64,
    last_seq: Option<u32>,
    restarts: u64,
    recent: std::collections::VecDeque<(Instant, usize)>,
    latency: Arc<LatencyRecorder>,
    latest: watch::Sender<Option<Latest>>,
}

/// What `/state`, the page and the summary say about one stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamState {
    pub id: String,
    pub stream_id: String,
    pub name: Option<String>,
    pub sender: String,
    /// Where the stream is in the grid, from 1 (the window's number key).
    pub tile: usize,
    pub width: u16,
    pub height: u16,
    pub frames: u64,
    pub frames_missed: u64,
    pub bytes: u64,
    /// Over the last two seconds.
    pub fps: f64,
    pub kbps: f64,
    /// Over the whole stream: complete frames per second from its first to its last frame.
    pub fps_mean: f64,
    /// Capture (sender's clock) to complete here.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Seconds since the last complete frame; `None` before the first.
    pub idle_s: Option<f64>,
    pub restarts: u64,
}

/// Everything the worker shares with its readers.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Vec<Entry>,
    serial: u64,
    /// The last figures of streams that timed out, for the summary (the newest `ENDED_KEPT`).
    ended: Vec<StreamState>,
}

/// Streams that ended kept for the summary.
const ENDED_KEPT: usize = 256;

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A stream started. `replaced`: the stream id it takes over from (a restarted client),
    /// whose tile, id and readers it keeps.
    /// The sender named its stream (`cam-client --name`): labels, `/state` and the summary
    /// show the name from now on. A stream not (yet) known keeps no name.
    pub fn stream_named(&self, key: StreamKey, name: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.streams.iter_mut().find(|e| e.key == key) {
            entry.name = Some(name.to_owned());
        }
    }

    pub fn stream_started(&self, key: StreamKey, replaced: Option<u32>, now: Instant) {
        let mut inner = self.lock();
        let known = inner.streams.iter().position(|e| e.key == key);
        let taken = replaced.and_then(|old| {
            inner.streams.iter().position(|e| {
                e.key.stream_id == old && e.key.sender.ip() == key.sender.ip() && e.key != key
            })
        });
        if let (Some(new), Some(old)) = (known, taken) {
            // A restart seen late: the new stream had a tile of its own for a moment. It moves
            // into the old one's tile, keeping that tile's id and readers.
            let newcomer = inner.streams.remove(new);
            let old = if new < old { old - 1 } else { old };
            let entry = &mut inner.streams[old];
            entry.key = key;
            entry.last_heard = now;
            entry.last_seq = newcomer.last_seq;
            entry.restarts += 1;
            entry.frames += newcomer.frames;
            entry.bytes += newcomer.bytes;
            if newcomer.width > 0 {
                (entry.width, entry.height) = (newcomer.width, newcomer.height);
            }
            if let Some(latest) = newcomer.latest.borrow().clone() {
                entry.latest.send_replace(Some(latest));
            }
            return;
        }
        if known.is_some() {
            return;
        }
        if let Some(i) = taken {
            let entry = &mut inner.streams[i];
            entry.key = key;
            entry.last_heard = now;
            entry.last_seq = None;
            entry.restarts += 1;
            return;
        }
        inner.serial += 1;
        let hex = format!("{:08x}", key.stream_id);
        let id = if inner
            .streams
            .iter()
            .any(|e| e.key.stream_id == key.stream_id)
        {
            format!("{hex}-{}", inner.serial)
        } else {
            hex
        };
        inner.streams.push(Entry {
            id,
            key,
            name: None,
            last_heard: now,
            first_frame_at: None,
            last_frame_at: None,
            width: 0,
            height: 0,
            frames: 0,
            bytes: 0,
            frames_missed: 0,
            last_seq: None,
            restarts: 0,
            recent: Default::default(),
            latency: Arc::default(),
            latest: watch::Sender::new(None),
        });
    }

    /// A complete frame of `key`; returns its stream's id and tile (from 0) and the bytes
    /// as shared from now on.
    pub fn frame(
        &self,
        key: StreamKey,
        seq: u32,
        bytes: Arc<[u8]>,
        size: (u16, u16),
        capture_ts_us: Option<u64>,
        now: Instant,
    ) -> (String, usize) {
        let known = self.lock().streams.iter().any(|e| e.key == key);
        if !known {
            // A protocol that reports no start (or a frame after the start was expired).
            self.stream_started(key, None, now);
        }
        let mut inner = self.lock();
        let Some(tile) = inner.streams.iter().position(|e| e.key == key) else {
            return (String::new(), 0);
        };
        let e = &mut inner.streams[tile];
        if let Some(last) = e.last_seq {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            if gap < 1 << 16 {
                e.frames_missed += u64::from(gap);
            }
        }
        e.last_seq = Some(seq);
        e.first_frame_at.get_or_insert(now);
        e.last_frame_at = Some(now);
        e.last_heard = now;
        if size.0 > 0 {
            (e.width, e.height) = size;
        }
        e.frames += 1;
        e.bytes += bytes.len() as u64;
        e.recent.push_back((now, bytes.len()));
        while e
            .recent
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > RATE_WINDOW)
        {
            e.recent.pop_front();
        }
        e.latency.record(capture_ts_us);
        e.latest.send_replace(Some(Latest { bytes }));
        (e.id.clone(), tile)
    }

    /// Drops streams with no frame (and no start) for `timeout`; true if any went.
    /// Drops the streams silent for `timeout`; returns their ids (their files can close).
    pub fn expire(&self, now: Instant, timeout: Duration) -> Vec<String> {
        let mut inner = self.lock();
        let mut gone = Vec::new();
        for (tile, e) in std::mem::take(&mut inner.streams).into_iter().enumerate() {
            if now.saturating_duration_since(e.last_heard) < timeout {
                inner.streams.push(e);
                continue;
            }
            log::info!("stream {} from {} left the grid", e.id, e.key.sender);
            // Its figures as they stood in the tile it had; the newest ENDED_KEPT are kept.
            inner.ended.push(e.state(tile, now));
            if inner.ended.len() > ENDED_KEPT {
                inner.ended.remove(0);
            }
            gone.push(e.id);
        }
        gone
    }

    /// The newest frame of stream `id` (the first stream when `None`) to wait on.
    pub fn subscribe(&self, id: Option<&str>) -> Option<watch::Receiver<Option<Latest>>> {
        let inner = self.lock();
        let entry = match id {
            Some(id) => inner.streams.iter().find(|e| e.id == id),
            None => inner.streams.first(),
        };
        entry.map(|e| e.latest.subscribe())
    }

    /// The newest frame of stream `id` (the first stream when `None`).
    pub fn latest(&self, id: Option<&str>) -> Option<Latest> {
        self.subscribe(id).and_then(|rx| rx.borrow().clone())
    }

    /// Every stream's figures as of `now`, in tile order.
    pub fn states(&self, now: Instant) -> Vec<StreamState> {
        let inner = self.lock();
        inner
            .streams
            .iter()
            .enumerate()
            .map(|(i, e)| e.state(i, now))
            .collect()
    }
}

impl Hub {
    /// Every stream of the run: those that ended, then those still served.
    pub fn all_states(&self, now: Instant) -> Vec<StreamState> {
        let mut all = self.lock().ended.clone();
        all.extend(self.states(now));
        all
    }
}

impl Entry {
    fn state(&self, index: usize, now: Instant) -> StreamState {
        let window = self
            .recent
            .front()
            .map(|&(t, _)| now.saturating_duration_since(t))
            .unwrap_or_default()
            .max(Duration::from_millis(500))
            .min(RATE_WINDOW);
        let recent: Vec<_> = self
            .recent
            .iter()
            .filter(|&&(t, _)| now.saturating_duration_since(t) <= RATE_WINDOW)
            .collect();
        let secs = window.as_secs_f64();
        let fps = recent.len() as f64 / secs;
        let kbps = recent.iter().map(|&&(_, n)| n as f64).sum::<f64>() * 8.0 / 1000.0 / secs;
        let fps_mean = match (self.first_frame_at, self.last_frame_at) {
            (Some(a), Some(b)) if b > a => (self.frames - 1) as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let p50_p99 = self.latency.percentiles_ms([0.5, 0.99]);
        StreamState {
            id: self.id.clone(),
            stream_id: format!("{:08x}", self.key.stream_id),
            name: self.name.clone(),
            sender: crate::net::canonical(self.key.sender).to_string(),
            tile: index + 1,
            width: self.width,
            height: self.height,
            frames: self.frames,
            frames_missed: self.frames_missed,
            bytes: self.bytes,
            fps: round3(fps),
            kbps: round3(kbps),
            fps_mean: round3(fps_mean),
            latency_p50_ms: p50_p99.map(|[p50, _]| round3(p50)),
            latency_p99_ms: p50_p99.map(|[_, p99]| round3(p99)),
            idle_s: self
                .last_frame_at
                .map(|t| round3(now.saturating_duration_since(t).as_secs_f64())),
            restarts: self.restarts,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

    fn key(id: u32, sender: &str) -> StreamKey {
        StreamKey {
            stream_id: id,
            sender: sender.parse().unwrap(),
        }
    }

    #[test]
    fn streams_keep_their_tiles_and_a_restart_takes_its_own_back() {
        let hub = Hub::default();
        let t = Instant::now();
        let a = key(0xa, "10.0.0.1:5000");
        let b = key(0xb, "10.0.0.2:5000");
        hub.stream_started(a, None, t);
        hub.frame(b, 0, Arc::from(&b"bb"[..]), (4, 3), None, t);
        let (id, tile) = hub.frame(a, 0, Arc::from(&b"aa"[..]), (4, 3), None, t);
        assert_eq!((id.as_str(), tile), ("0000000a", 0));
        let mut rx = hub.subscribe(Some("0000000b")).unwrap();
        hub.stream_started(key(0xc, "10.0.0.2:6000"), Some(0xb), t);
        let (id, tile) = hub.frame(
            key(0xc, "10.0.0.2:6000"),
            7,
            Arc::from(&b"cc"[..]),
            (4, 3),
            None,
            t,
        );
        assert_eq!((id.as_str(), tile), ("0000000b", 1), "same tile, same id");
        assert!(rx.has_changed().unwrap(), "readers follow the restart");
        assert_eq!(&*rx.borrow_and_update().as_ref().unwrap().bytes, b"cc");
        let states = hub.states(t);
        assert_eq!(states[1].restarts, 1);
        assert_eq!(states[1].stream_id, "0000000c");
        // A restart seen late: the newcomer's own tile folds into the old one.
        let d = key(0xd, "10.0.0.1:7000");
        hub.frame(d, 0, Arc::from(&b"dd"[..]), (4, 3), None, t);
        assert_eq!(hub.states(t).len(), 3);
        let mut rx = hub.subscribe(Some("0000000a")).unwrap();
        hub.stream_started(d, Some(0xa), t);
        let states = hub.states(t);
        assert_eq!(states.len(), 2);
        assert_eq!((states[0].id.as_str(), states[0].frames), ("0000000a", 2));
        assert_eq!(&*rx.borrow_and_update().as_ref().unwrap().bytes, b"dd");
        assert_eq!(hub.frame(d, 1, Arc::from(&b"d"[..]), (4, 3), None, t).1, 0);
        // Both tiles time out; their ids go back so their files can close.
        let mut gone = hub.expire(t + Duration::from_secs(11), Duration::from_secs(10));
        gone.sort();
        assert_eq!(gone, ["0000000a", "0000000b"]);
        assert!(hub.states(t).is_empty());
        let ended = hub.all_states(t);
        assert_eq!(ended.len(), 2);
        assert_eq!((ended[0].tile, ended[1].tile), (1, 2), "the tiles they had");
    }

    #[test]
    fn classic_senders_share_stream_id_zero_and_get_unique_ids() {
        let hub = Hub::default();
        let t = Instant::now();
        hub.frame(
            key(0, "10.0.0.1:1"),
            0,
            Arc::from(&b"x"[..]),
            (0, 0),
            None,
            t,
        );
        hub.frame(
            key(0, "10.0.0.2:1"),
            0,
            Arc::from(&b"y"[..]),
            (0, 0),
            None,
            t,
        );
        let ids: Vec<String> = hub.states(t).into_iter().map(|s| s.id).collect();
        assert_eq!(ids[0], "00000000");
        assert_ne!(ids[0], ids[1]);
        assert_eq!(&*hub.latest(Some(&ids[1])).unwrap().bytes, b"y");
        assert_eq!(&*hub.latest(None).unwrap().bytes, b"x");
    }

    #[test]
    fn gaps_in_the_sequence_count_as_missed() {
        let hub = Hub::default();
        let t = Instant::now();
        let k = key(1, "10.0.0.1:1");
        for seq in [0, 1, 4, 5] {
            hub.frame(k, seq, Arc::from(&b"x"[..]), (2, 2), Some(1), t);
        }
        let s = &hub.states(t)[0];
        assert_eq!((s.frames, s.frames_missed), (4, 2));
    }
}
