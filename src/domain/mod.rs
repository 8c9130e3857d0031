//! The domain model: orders, money, commands, the lifecycle table, positions, symbol rules,
//! risk rules and the tilt guard.
//! Pure: no threads, sockets or SQL, so most tests live here.

pub mod command;
pub mod ids;
pub mod lifecycle;
pub mod money;
pub mod order;
pub mod position;
pub mod prng;
pub mod risk;
pub mod symbol;
pub mod tilt;

/// Microseconds since the Unix epoch, UTC. Straight from the system clock: chrono's `Utc::now`
/// builds a calendar date first, which `timestamp_micros` then takes apart again, and intake
/// alone calls this several times an order (docs/perf/journal.md).
pub fn now_us() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        // A clock set before 1970.
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// `2026-11-25T09:21:09.123456Z`: UTC with microseconds. Written field by field: chrono's
/// `format` parses its pattern on every call, a large share of the stdout writer's instructions
/// (every event and record carries a timestamp; docs/perf/journal.md).
pub fn format_ts(us: i64) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let Some(t) = chrono::DateTime::from_timestamp_micros(us) else {
        return us.to_string();
    };
    let mut out = String::with_capacity(27);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        us.rem_euclid(1_000_000)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::format_ts;

    #[test]
    fn timestamps_are_utc_with_six_fraction_digits() {
        assert_eq!(format_ts(1_764_062_469_123_456), "2025-11-25T09:21:09.123456Z");
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_ts(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    }

    #[test]
    fn timestamps_before_1970_keep_a_positive_fraction() {
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn a_timestamp_beyond_the_calendar_is_its_number() {
        assert_eq!(format_ts(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn now_us_reads_the_same_clock_as_chrono() {
        let (ours, chrono) = (super::now_us(), chrono::Utc::now().timestamp_micros());
        assert!((chrono - ours).abs() < 1_000_000, "{ours} against {chrono}");
    }
}
