//! The domain model: orders, money, commands, the lifecycle table, positions, symbol rules,
//! risk rules and the tilt guard.
//! Pure: no threads, sockets or SQL, so most tests live here.

pub mod command;
pub mod ids;
pub mod lifecycle;
pub mod money;
pub mod order;
pub mod position;
pub mod risk;
pub mod symbol;
pub mod tilt;

/// Microseconds since the Unix epoch, UTC.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `2026-11-25T09:21:09.123456Z`: UTC with microseconds.
pub fn format_ts(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => us.to_string(),
    }
}
