//! Latency distributions: nearest-rank percentiles of the harness's samples, or the summary the
//! engine's `stats` reply gives.

use serde_json::{json, Value};

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// Known when every sample is (not for distributions taken from the engine's histograms).
    pub mean: Option<f64>,
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` of the
/// samples at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Dist {
    pub fn of(values: &[u64]) -> Option<Dist> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Some(Dist::of_sorted(&sorted))
    }

    pub fn of_sorted(sorted: &[u64]) -> Dist {
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        Dist {
            count: sorted.len() as u64,
            min: sorted[0],
            p50: percentile(sorted, 0.5),
            p90: percentile(sorted, 0.9),
            p99: percentile(sorted, 0.99),
            p999: percentile(sorted, 0.999),
            max: sorted[sorted.len() - 1],
            mean: Some(sum as f64 / sorted.len() as f64),
        }
    }

    /// A stage of the engine's `stats` reply (`{count,min,p50,p90,p99,p999,max}`).
    pub fn of_stats(v: &Value) -> Option<Dist> {
        let f = |k: &str| v.get(k).and_then(Value::as_u64);
        Some(Dist {
            count: f("count")?,
            min: f("min")?,
            p50: f("p50")?,
            p90: f("p90")?,
            p99: f("p99")?,
            p999: f("p999")?,
            max: f("max")?,
            mean: None,
        })
    }

    pub fn json(&self) -> Value {
        json!({"count": self.count, "min": self.min, "p50": self.p50, "p90": self.p90, "p99": self.p99,
               "p999": self.p999, "max": self.max, "mean": self.mean.map(|m| (m * 10.0).round() / 10.0)})
    }

    /// The percentile curve through the summary points (for the plot).
    pub fn points(&self) -> Vec<(f64, f64)> {
        [(self.min, 0.0), (self.p50, 0.5), (self.p90, 0.9), (self.p99, 0.99), (self.p999, 0.999)]
            .into_iter()
            .map(|(v, p)| (v as f64, p))
            .collect()
    }
}

/// Milliseconds of CPU over `secs` of wall time, as a percentage of one core.
pub fn core_percent(ms: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        ms / (secs * 1000.0) * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.9), 900);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&v, 1.0), 1000);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        let d = Dist::of(&[5, 1, 3, 2, 4]).unwrap();
        assert_eq!((d.count, d.min, d.p50, d.max), (5, 1, 3, 5));
        assert_eq!(d.mean, Some(3.0));
        assert!(Dist::of(&[]).is_none());
    }

    #[test]
    fn stats_stages_are_read() {
        let v = json!({"count": 3, "min": 1, "p50": 2, "p90": 3, "p99": 3, "p999": 3, "max": 3});
        let d = Dist::of_stats(&v).unwrap();
        assert_eq!(d.p50, 2);
        assert_eq!(d.mean, None);
        assert!(Dist::of_stats(&json!({"count": 3})).is_none());
    }
}
