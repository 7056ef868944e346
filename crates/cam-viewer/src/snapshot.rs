//! The `s` key: the picture on screen, saved as the exact JPEG bytes that arrived.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Tries `snapshot-….jpg`, then `snapshot-…-2.jpg` and so on, should two presses fall in the
/// same millisecond; an existing file is never overwritten.
const MAX_TRIES: u32 = 100;

/// Writes `jpeg` to `dir` under a name made from `now` in UTC, e.g.
/// `snapshot-20261126-101500.123.jpg`, and returns the path written.
pub fn save(dir: &Path, jpeg: &[u8], now: SystemTime) -> io::Result<PathBuf> {
    let stem = format!("snapshot-{}", utc_stamp(now));
    for attempt in 1..=MAX_TRIES {
        let name = if attempt == 1 {
            format!("{stem}.jpg")
        } else {
            format!("{stem}-{attempt}.jpg")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(jpeg)?;
                file.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_TRIES} snapshot files named {stem}… exist already"),
    ))
}

/// `YYYYMMDD-HHMMSS.mmm` in UTC. (Local time would need the C library's time-zone code,
/// which takes `unsafe`; the workspace forbids it.)
pub fn utc_stamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}.{:03}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn stamps_known_dates() {
        assert_eq!(utc_stamp(at(0, 0)), "19700101-000000.000");
        // 2026-11-26 10:15:00.123 UTC
        assert_eq!(utc_stamp(at(1_795_688_100, 123)), "20261126-101500.123");
        // Leap day and the end of a leap year.
        assert_eq!(utc_stamp(at(951_782_400, 0)), "20000229-000000.000");
        assert_eq!(utc_stamp(at(1_735_689_599, 999)), "20241231-235959.999");
    }

    #[test]
    fn never_overwrites_and_keeps_the_bytes() {
        let dir = std::env::temp_dir().join(format!("camstream-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = at(1_795_688_100, 123);
        let first = save(&dir, b"one", now).unwrap();
        let second = save(&dir, b"two", now).unwrap();
        assert_eq!(
            first.file_name().unwrap(),
            "snapshot-20261126-101500.123.jpg"
        );
        assert_eq!(
            second.file_name().unwrap(),
            "snapshot-20261126-101500.123-2.jpg"
        );
        assert_eq!(std::fs::read(&first).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
