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
/// builds a calendar date first, which `timestamp_micros` then takes apart again (about 300
/// instructions a call, and intake alone calls this three or four times an order).
pub fn now_us() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        // A clock set before 1970.
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// `2026-11-25T09:21:09.123456Z`: UTC with microseconds. The calendar date is computed with
/// integer arithmetic (days to civil date, H. Hinnant's algorithm) and written digit by digit:
/// every event and record carries a timestamp, and chrono's date building and `write!` made this
/// the largest single cost in persist's profile (docs/perf/journal.md, 2026-12-06).
pub fn format_ts(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return format_ts_wide(us);
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut out[0..4], year as u64);
    put_digits(&mut out[5..7], u64::from(month));
    put_digits(&mut out[8..10], u64::from(day));
    put_digits(&mut out[11..13], (second_of_day / 3600) as u64);
    put_digits(&mut out[14..16], (second_of_day / 60 % 60) as u64);
    put_digits(&mut out[17..19], (second_of_day % 60) as u64);
    put_digits(&mut out[20..26], micros as u64);
    // Only ASCII digits were written into an ASCII template.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Writes `value`'s last `slot.len()` decimal digits, zero-padded.
fn put_digits(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Years outside 0-9999 (a clock gone wrong): chrono's signed years, or the number itself
/// beyond chrono's calendar.
fn format_ts_wide(us: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp_micros(us) else {
        return us.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        us.rem_euclid(1_000_000)
    )
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
    fn years_beyond_four_digits_are_written_as_before() {
        assert_eq!(format_ts(253_402_300_800_000_000), "10000-01-01T00:00:00.000000Z");
        assert_eq!(format_ts(-62_167_219_200_000_001), "-001-12-31T23:59:59.999999Z");
    }

    proptest::proptest! {
        #[test]
        fn every_timestamp_reads_as_chrono_writes_it(us in -62_167_219_200_000_000i64..253_402_300_800_000_000) {
            let t = chrono::DateTime::from_timestamp_micros(us).unwrap();
            proptest::prop_assert_eq!(format_ts(us), t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
    }

    #[test]
    fn now_us_reads_the_same_clock_as_chrono() {
        let (ours, chrono) = (super::now_us(), chrono::Utc::now().timestamp_micros());
        assert!((chrono - ours).abs() < 1_000_000, "{ours} against {chrono}");
    }
}
