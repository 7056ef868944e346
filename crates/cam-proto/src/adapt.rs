//! Fitting the picture to the link: given the rate the path carries, choose JPEG quality,
//! picture size and frame rate, in that order of sacrifice (quality down to a floor first,
//! then halving the area, then frames), and step back up when there is headroom.
//!
//! Frame sizes are predicted from what the encoder actually produced, scaled by a model of
//! how JPEG size follows quality and area, so one step can jump straight to settings that
//! fit instead of creeping down frame by frame.

use std::time::{Duration, Instant};

/// Picture scale, as a fraction of each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scale {
    /// Half of each side: a quarter of the area (the smallest we go).
    Half,
    /// 3/4 of each side: about half the area.
    ThreeQuarters,
    Full,
}

impl Scale {
    pub const ALL_DOWN: [Scale; 3] = [Scale::Full, Scale::ThreeQuarters, Scale::Half];

    pub fn area(self) -> f64 {
        match self {
            Scale::Full => 1.0,
            Scale::ThreeQuarters => 0.5625,
            Scale::Half => 0.25,
        }
    }

    /// The scaled size of `w`×`h`, kept even (JPEG 4:2:0 likes even sides).
    pub fn apply(self, w: u32, h: u32) -> (u32, u32) {
        let (num, den) = match self {
            Scale::Full => (1, 1),
            Scale::ThreeQuarters => (3, 4),
            Scale::Half => (1, 2),
        };
        let even = |v: u32| ((v * num / den) & !1).max(16);
        (even(w), even(h))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub quality: u8,
    pub scale: Scale,
    pub fps: u32,
}

#[derive(Debug, Clone)]
pub struct AdaptConfig {
    /// The user's quality: never exceeded.
    pub max_quality: u8,
    /// Below this, shrink the picture instead.
    pub min_quality: u8,
    /// The user's frame rate (0: unpaced; adaptation then only tracks sizes).
    pub fps: u32,
    /// False for frames sent byte for byte (JPEG files): only the frame rate can change.
    pub can_reencode: bool,
}

/// Relative JPEG size by quality for natural images (1.0 at quality 80), from libjpeg-turbo
/// at 4:2:0 on textured 720p frames; interpolated linearly between points.
const QUALITY_SIZE: [(u8, f64); 10] = [
    (10, 0.22),
    (20, 0.32),
    (30, 0.40),
    (40, 0.47),
    (50, 0.54),
    (60, 0.62),
    (70, 0.76),
    (80, 1.0),
    (90, 1.5),
    (100, 4.0),
];

/// Predicted JPEG bytes at `s` for a picture that weighs `bytes_q80_full` at quality 80 and
/// full size (the model the adapter plans with).
pub fn model_bytes(bytes_q80_full: f64, s: &Settings) -> f64 {
    bytes_q80_full * quality_factor(s.quality) * s.scale.area()
}

fn quality_factor(q: u8) -> f64 {
    let q = q.clamp(10, 100);
    for pair in QUALITY_SIZE.windows(2) {
        let ((q0, f0), (q1, f1)) = (pair[0], pair[1]);
        if q <= q1 {
            let t = f64::from(q - q0) / f64::from(q1 - q0);
            return f0 + t * (f1 - f0);
        }
    }
    QUALITY_SIZE[QUALITY_SIZE.len() - 1].1
}

/// Headroom left for headers, retransmissions and estimate noise.
const BUDGET_USE: f64 = 0.85;
/// Stepping up needs this much spare room, and this long since the last change.
const UP_MARGIN: f64 = 0.8;
const UP_HOLD: Duration = Duration::from_millis(500);
/// Most rungs climbed in one step (a rung is 5 quality points, or one picture size).
const UP_RUNGS: usize = 4;
const QUALITY_STEP: u8 = 5;

#[derive(Debug, Clone)]
pub struct Adapter {
    config: AdaptConfig,
    current: Settings,
    /// Bytes a frame would take at quality 80 and full scale (EWMA).
    base_bytes: Option<f64>,
    last_change: Option<Instant>,
}

impl Adapter {
    pub fn new(config: AdaptConfig) -> Adapter {
        let current = Settings {
            quality: config.max_quality,
            scale: Scale::Full,
            fps: config.fps,
        };
        Adapter {
            config,
            current,
            base_bytes: None,
            last_change: None,
        }
    }

    pub fn settings(&self) -> Settings {
        self.current
    }

    fn factor(&self, s: &Settings) -> f64 {
        if self.config.can_reencode {
            quality_factor(s.quality) * s.scale.area()
        } else {
            1.0
        }
    }

    /// Learns from a frame the encoder produced with `used` settings.
    pub fn on_frame(&mut self, bytes: usize, used: Settings) {
        let base = bytes as f64 / self.factor(&used);
        self.base_bytes = Some(match self.base_bytes {
            Some(b) => b * 0.8 + base * 0.2,
            None => base,
        });
    }

    pub fn predicted_bytes(&self, s: &Settings) -> Option<f64> {
        Some(self.base_bytes? * self.factor(s))
    }

    /// Every setting from best to worst, at the user's frame rate.
    fn ladder(&self) -> Vec<Settings> {
        let fps = self.config.fps;
        if !self.config.can_reencode {
            return vec![Settings {
                quality: self.config.max_quality,
                scale: Scale::Full,
                fps,
            }];
        }
        let mut out = Vec::new();
        for scale in Scale::ALL_DOWN {
            let mut q = self.config.max_quality;
            loop {
                out.push(Settings {
                    quality: q,
                    scale,
                    fps,
                });
                if q <= self.config.min_quality {
                    break;
                }
                q = q.saturating_sub(QUALITY_STEP).max(self.config.min_quality);
            }
        }
        out
    }

    /// Picks settings for the rate the path carries (`None`: unlimited). Returns the new
    /// settings when they changed.
    pub fn update(&mut self, now: Instant, target_bps: Option<f64>) -> Option<Settings> {
        if self.config.fps == 0 {
            return None; // unpaced: acks clock the stream, there is no rate to fit
        }
        let best = self.ladder()[0];
        let wanted = match (target_bps, self.base_bytes) {
            (None, _) | (_, None) => best,
            (Some(target), Some(_)) => {
                let budget = target * BUDGET_USE / 8.0 / f64::from(self.config.fps);
                let ladder = self.ladder();
                let fits = |s: &Settings, margin: f64| {
                    self.predicted_bytes(s)
                        .is_some_and(|b| b <= budget * margin)
                };
                let cur_rank = ladder
                    .iter()
                    .position(|s| {
                        s.quality == self.current.quality && s.scale == self.current.scale
                    })
                    .unwrap_or(0);
                let down = ladder.iter().position(|s| fits(s, 1.0));
                let may_rise = self
                    .last_change
                    .is_none_or(|t| now.saturating_duration_since(t) >= UP_HOLD);
                match down {
                    // Keep what fits; move up only with clear room, a few rungs at a time,
                    // after a pause (and the frame rate, sacrificed last, comes back first).
                    Some(rank)
                        if rank < cur_rank
                            || (rank == cur_rank && self.current.fps < self.config.fps) =>
                    {
                        if !may_rise {
                            self.current
                        } else if self.current.fps < self.config.fps {
                            with_fps(ladder[cur_rank], self.config.fps)
                        } else {
                            let up = ladder[..cur_rank]
                                .iter()
                                .position(|s| fits(s, UP_MARGIN))
                                .map(|r| r.max(cur_rank.saturating_sub(UP_RUNGS)));
                            match up {
                                Some(r) => with_fps(ladder[r], self.config.fps),
                                None => self.current,
                            }
                        }
                    }
                    Some(rank) => with_fps(ladder[rank], self.config.fps),
                    // Even the smallest picture is too big: fewer frames.
                    None => {
                        let smallest = ladder[ladder.len() - 1];
                        let bytes = self.predicted_bytes(&smallest).unwrap_or(1.0).max(1.0);
                        let fps = (target * BUDGET_USE / 8.0 / bytes).floor() as u32;
                        with_fps(smallest, fps.clamp(1, self.config.fps))
                    }
                }
            }
        };
        if wanted == self.current {
            return None;
        }
        self.current = wanted;
        self.last_change = Some(now);
        Some(wanted)
    }
}

fn with_fps(s: Settings, fps: u32) -> Settings {
    Settings { fps, ..s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(reencode: bool) -> Adapter {
        Adapter::new(AdaptConfig {
            max_quality: 80,
            min_quality: 30,
            fps: 30,
            can_reencode: reencode,
        })
    }

    #[test]
    fn quality_model_is_monotonic() {
        let mut last = 0.0;
        for q in 10..=100 {
            let f = quality_factor(q);
            assert!(f >= last, "{q}");
            last = f;
        }
        assert!((quality_factor(80) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn unlimited_keeps_the_users_settings() {
        let mut a = adapter(true);
        a.on_frame(200_000, a.settings());
        assert_eq!(a.update(Instant::now(), None), None);
        assert_eq!(a.settings().quality, 80);
    }

    #[test]
    fn lowers_quality_before_size_and_size_before_frames() {
        let now = Instant::now();
        let mut a = adapter(true);
        a.on_frame(220_000, a.settings()); // 720p at q80: about 53 Mbit/s at 30 fps
        let s = a.update(now, Some(30e6)).unwrap();
        assert_eq!(s.scale, Scale::Full);
        assert!(s.quality < 80 && s.quality >= 30, "{s:?}");
        let s = a.update(now, Some(10e6)).unwrap();
        assert_ne!(s.scale, Scale::Full, "{s:?}");
        assert_eq!(s.fps, 30);
        let s = a.update(now, Some(1e6)).unwrap();
        assert_eq!((s.scale, s.quality), (Scale::Half, 30));
        assert!(s.fps < 30 && s.fps >= 1, "{s:?}");
        // Predicted size fits the budget.
        let bytes = a.predicted_bytes(&s).unwrap();
        assert!(bytes * f64::from(s.fps) * 8.0 <= 1e6, "{bytes}");
    }

    #[test]
    fn steps_back_up_with_headroom_after_a_pause() {
        let t0 = Instant::now();
        let mut a = adapter(true);
        a.on_frame(220_000, a.settings());
        a.update(t0, Some(5e6));
        let low = a.settings();
        // Plenty of room right away: no jump within the hold time.
        assert_eq!(a.update(t0 + Duration::from_millis(100), Some(100e6)), None);
        let mut t = t0;
        let mut rank_ups = 0;
        while a.settings()
            != (Settings {
                quality: 80,
                scale: Scale::Full,
                fps: 30,
            })
        {
            t += Duration::from_millis(600);
            assert!(a.update(t, Some(100e6)).is_some());
            rank_ups += 1;
            assert!(rank_ups < 40, "never got back up");
        }
        assert!(low.scale < Scale::Full);
    }

    #[test]
    fn byte_for_byte_frames_only_change_the_rate() {
        let mut a = adapter(false);
        a.on_frame(100_000, a.settings());
        let s = a.update(Instant::now(), Some(8e6)).unwrap();
        assert_eq!((s.quality, s.scale), (80, Scale::Full));
        assert_eq!(s.fps, 8);
    }
}
