//! The engine's stdout as the harness reads it: event names, fill stages and timestamps taken
//! from each JSON line without a full parse, counts, and the lines that mean a problem.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Stages carried by every `order_filled` event (`stages_us`), in this order.
pub const FILL_STAGES: [&str; 6] = ["intake", "sign", "round_trip", "verify_query", "verify", "total"];

/// Events that mean something went wrong (an order not verified in full, or a protection lost).
const PROBLEM_EVENTS: [&str; 10] = [
    "error",
    "order_rejected",
    "order_failed",
    "order_unknown",
    "order_partially_filled",
    "stop_loss_failed",
    "emergency_exit",
    "rate_limited",
    "circuit_breaker",
    "position_dust",
];

/// Lines of stderr kept for the report.
pub(crate) const TAIL: usize = 20;

#[derive(Default)]
pub(crate) struct Events {
    pub(crate) fills: Vec<[u64; 6]>,
    /// When each `order_filled` line was read.
    pub(crate) fill_reads: Vec<Instant>,
    /// Each `order_filled`'s `ts` and the wall clock when it was read, microseconds of the day.
    pub(crate) fill_ts: Vec<(u64, u64)>,
    pub(crate) quote_ages: Vec<u64>,
    pub(crate) last_fill: Option<Instant>,
    pub(crate) counts: BTreeMap<String, u64>,
    pub(crate) problem_count: u64,
    pub(crate) problems: Vec<String>,
    pub(crate) stats: Option<Value>,
}

/// The event name of a JSON line, without parsing the whole line.
pub fn event_name(line: &str) -> Option<&str> {
    let start = line.find("\"event\":\"")? + 9;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The wall clock now, microseconds since midnight UTC.
pub(crate) fn wall_micros_of_day() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_micros() % 86_400_000_000) as u64
}

/// An event's `ts` (`…THH:MM:SS.ffffffZ`), microseconds since midnight UTC.
pub fn ts_micros_of_day(line: &str) -> Option<u64> {
    let start = line.find("\"ts\":\"")? + 6;
    let ts = line.get(start..start + 27)?;
    let field = |a: usize, b: usize| ts.get(a..b)?.parse::<u64>().ok();
    let (h, m, s, us) = (field(11, 13)?, field(14, 16)?, field(17, 19)?, field(20, 26)?);
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

/// The `stages_us` object of an `order_filled` line, in [`FILL_STAGES`] order.
pub fn fill_stages(line: &str) -> Option<[u64; 6]> {
    let start = line.find("\"stages_us\":")? + 12;
    let len = line[start..].find('}')? + 1;
    let map: serde_json::Map<String, Value> = serde_json::from_str(&line[start..start + len]).ok()?;
    let mut out = [0u64; 6];
    for (slot, name) in out.iter_mut().zip(FILL_STAGES) {
        *slot = map.get(name)?.as_u64()?;
    }
    Some(out)
}

pub(crate) fn read_events(stdout: ChildStdout, ready: mpsc::Sender<Instant>, verified: Arc<AtomicU64>) -> Events {
    let mut ev = Events::default();
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = String::with_capacity(1024);
    let mut ready = Some(ready);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let now = Instant::now();
        let Some(name) = event_name(&line) else {
            ev.problem_count += 1;
            if ev.problems.len() < TAIL {
                ev.problems.push(format!("unparsed output: {}", line.trim_end()));
            }
            continue;
        };
        *ev.counts.entry(name.to_string()).or_default() += 1;
        match name {
            "order_filled" => match fill_stages(&line) {
                Some(stages) => {
                    ev.fills.push(stages);
                    ev.fill_reads.push(now);
                    if let Some(ts) = ts_micros_of_day(&line) {
                        ev.fill_ts.push((ts, wall_micros_of_day()));
                    }
                    ev.quote_ages.extend(crate::quote_age::age_of(&line));
                    ev.last_fill = Some(now);
                    verified.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    ev.problem_count += 1;
                    if ev.problems.len() < TAIL {
                        ev.problems.push(format!("order_filled without stages_us: {}", line.trim_end()));
                    }
                }
            },
            "ready" => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(now);
                }
            }
            "stats" => ev.stats = serde_json::from_str(&line).ok(),
            "order_cancelled" if line.contains("released for a sell") => {}
            other if PROBLEM_EVENTS.contains(&other) || other == "order_cancelled" => {
                ev.problem_count += 1;
                if ev.problems.len() < TAIL {
                    ev.problems.push(line.trim_end().to_string());
                }
            }
            _ => {}
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_recognised_without_a_full_parse() {
        let line = r#"{"avg_price":"150","event":"order_filled","latency_ms":0.5,"stages_us":{"intake":77,"round_trip":36,"sign":0,"total":508,"verify":13,"verify_query":14},"status":"FILLED"}"#;
        assert_eq!(event_name(line), Some("order_filled"));
        assert_eq!(fill_stages(line), Some([77, 0, 36, 14, 13, 508]));
        assert_eq!(event_name("not json"), None);
        assert_eq!(fill_stages(r#"{"event":"order_filled"}"#), None);
    }

    #[test]
    fn an_events_ts_is_read_as_microseconds_of_the_day() {
        let line = r#"{"event":"order_filled","ts":"2026-12-06T01:02:03.000456Z"}"#;
        assert_eq!(ts_micros_of_day(line), Some(3_723_000_456));
        assert_eq!(ts_micros_of_day(r#"{"event":"x"}"#), None);
    }
}
