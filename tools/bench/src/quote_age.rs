//! The age of the quote each order's expected price came from (`order_filled`'s
//! `expected_price_age_us`), against the issue's target: p50 ≤ 5 ms on loopback while the
//! server's prices move every 100 ms (`--walk-ms 100`). Collected by `run` from the fills,
//! reported by `report`.

use crate::args::Args;
use crate::report::Dist;
use serde_json::{json, Value};
use std::fmt::Write;

/// The target's limit, microseconds.
pub const TARGET_P50_US: u64 = 5_000;

/// `expected_price_age_us` of an `order_filled` line, without a full parse (absent or null: None).
pub fn age_of(line: &str) -> Option<u64> {
    let start = line.find("\"expected_price_age_us\":")? + "\"expected_price_age_us\":".len();
    let digits: &str = &line[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The server's flags for the run: `--walk-ms` when asked for.
pub fn server_flags(args: &Args) -> Vec<String> {
    match args.walk_ms {
        0 => Vec::new(),
        ms => vec!["--walk-ms".into(), ms.to_string()],
    }
}

/// The engine's flags for the run (binance): `--quotes`.
pub fn engine_flags(args: &Args) -> Vec<String> {
    vec!["--quotes".into(), args.quotes.clone()]
}

/// The report's section: a line of text and the JSON (None without ages).
pub fn section(args: &Args, ages: &[u64], out: &mut String) -> Value {
    let Some(d) = Dist::of(ages) else {
        return Value::Null;
    };
    let moving = match args.walk_ms {
        0 => "prices standing still".to_string(),
        ms => format!("prices moving every {ms} ms"),
    };
    let _ = writeln!(out, "\nquote age at decision (expected_price_age_us), --quotes {}, {moving}, µs", args.quotes);
    let _ = writeln!(
        out,
        "  {} orders: p50 {} p90 {} p99 {} max {}  (target p50 ≤ {}: {})",
        d.count,
        d.p50,
        d.p90,
        d.p99,
        d.max,
        TARGET_P50_US,
        if d.p50 <= TARGET_P50_US { "PASS" } else { "MISS" }
    );
    json!({"quotes": args.quotes, "walk_ms": args.walk_ms, "latency_us": d.json(), "target_p50_us": TARGET_P50_US, "pass": d.p50 <= TARGET_P50_US})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_read_from_an_order_filled_line() {
        assert_eq!(age_of(r#"{"event":"order_filled","expected_price_age_us":1234,"x":1}"#), Some(1234));
        assert_eq!(age_of(r#"{"event":"order_filled","expected_price_age_us":77}"#), Some(77));
        assert_eq!(age_of(r#"{"event":"order_filled","expected_price_age_us":null}"#), None);
        assert_eq!(age_of(r#"{"event":"order_filled"}"#), None);
    }
}
