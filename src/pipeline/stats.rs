//! Latency statistics per stage, recorded off the critical path (after the order's work is
//! done) and reported by `stats`: where every microsecond goes.

use super::OrderLatency;
use crate::events::{Event, EventKind};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The stages measured, in the order of an order's path.
pub const STAGES: [&str; 8] =
    ["intake", "sign", "round_trip", "verify_query", "verify", "total", "stop_loss", "persist_commit"];

#[derive(Debug)]
struct Inner {
    histograms: Vec<Histogram<u64>>,
    orders: u64,
    records_persisted: u64,
    updates_by_poll: u64,
    updates_by_stream: u64,
    worst_detection_ms: u64,
    /// Detection delays (exchange transaction time → seen), ms: by poll, by stream.
    detection: [Histogram<u64>; 2],
    /// The user data stream: off, connecting, up, down.
    stream: &'static str,
}

pub struct Stats {
    inner: Mutex<Inner>,
    /// Where quotes come from, asked when `stats` is answered.
    quotes: Mutex<Option<std::sync::Arc<dyn crate::exchange::Quotes>>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Self {
        let histograms =
            STAGES.iter().map(|_| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")).collect();
        Stats {
            inner: Mutex::new(Inner {
                histograms,
                orders: 0,
                records_persisted: 0,
                updates_by_poll: 0,
                updates_by_stream: 0,
                worst_detection_ms: 0,
                detection: [Histogram::new(3).expect("valid"), Histogram::new(3).expect("valid")],
                stream: "off",
            }),
            quotes: Mutex::new(None),
        }
    }
}

fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, 60_000_000));
}

impl Stats {
    pub fn record_order(&self, l: &OrderLatency) {
        let mut s = self.inner.lock();
        s.orders += 1;
        for (i, us) in [l.intake_us, l.sign_us, l.round_trip_us, l.verify_query_us, l.verify_us, l.total_us]
            .into_iter()
            .enumerate()
        {
            record(&mut s.histograms[i], us);
        }
    }

    pub fn record_stop_loss(&self, us: u64) {
        record(&mut self.inner.lock().histograms[6], us);
    }

    /// A change to a resting order learnt by the poll or (`by_stream`) the user data stream,
    /// `delay_ms` after the exchange made it.
    pub fn record_detection(&self, delay_ms: u64, by_stream: bool) {
        let mut s = self.inner.lock();
        if by_stream {
            s.updates_by_stream += 1;
        } else {
            s.updates_by_poll += 1;
        }
        s.worst_detection_ms = s.worst_detection_ms.max(delay_ms);
        let _ = s.detection[usize::from(by_stream)].record(delay_ms.min(3_600_000));
    }

    /// The quote source whose status `stats` shows.
    pub fn set_quotes(&self, quotes: std::sync::Arc<dyn crate::exchange::Quotes>) {
        *self.quotes.lock() = Some(quotes);
    }

    /// The user data stream's state, for `stats`.
    pub fn set_stream_state(&self, state: &'static str) {
        self.inner.lock().stream = state;
    }

    pub fn record_commit(&self, us: u64, records: usize) {
        let mut s = self.inner.lock();
        s.records_persisted += records as u64;
        record(&mut s.histograms[7], us);
    }

    /// The `stats` reply: per stage count, min, p50, p90, p99, p99.9 and max in microseconds.
    pub fn event(&self, extra: Vec<(&'static str, Value)>) -> Event {
        let s = self.inner.lock();
        let mut stages = serde_json::Map::new();
        let mut text = Vec::new();
        for (name, h) in STAGES.iter().zip(&s.histograms) {
            if h.is_empty() {
                continue;
            }
            let q = |p: f64| h.value_at_quantile(p);
            stages.insert(
                name.to_string(),
                json!({"count": h.len(), "min": h.min(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": h.max()}),
            );
            text.push(format!("{name} p50 {} p99 {} max {} µs", q(0.5), q(0.99), h.max()));
        }
        let mut event = Event::new(EventKind::Stats, format!("{} orders verified; {}", s.orders, text.join("; ")))
            .field("orders", s.orders)
            .field("records_persisted", s.records_persisted)
            .field("updates_by_poll", s.updates_by_poll)
            .field("updates_by_stream", s.updates_by_stream)
            .field("worst_detection_ms", s.worst_detection_ms)
            .field("stream", s.stream)
            .field("detection_ms", {
                let mut by = serde_json::Map::new();
                for (name, h) in ["poll", "stream"].iter().zip(&s.detection) {
                    if !h.is_empty() {
                        by.insert(
                            name.to_string(),
                            json!({"count": h.len(), "p50": h.value_at_quantile(0.5), "max": h.max()}),
                        );
                    }
                }
                Value::Object(by)
            })
            .field("latency_us", Value::Object(stages));
        if let Some(quotes) = self.quotes.lock().as_ref() {
            let q = quotes.status();
            event = event.field(
                "quotes",
                json!({"source": q.source, "stream_symbols": q.stream_symbols,
                       "stream_updates": q.stream_updates, "rest_fetches": q.rest_fetches}),
            );
        }
        for (key, value) in extra {
            event = event.field(key, value);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_report_percentiles_per_stage() {
        let stats = Stats::default();
        for total in 1..=100 {
            stats.record_order(&OrderLatency {
                intake_us: 2,
                sign_us: 1,
                round_trip_us: 50,
                verify_query_us: 40,
                verify_us: 5,
                total_us: total,
            });
        }
        stats.record_commit(12, 3);
        stats.record_detection(120, false);
        stats.record_detection(4, true);
        stats.record_detection(6, true);
        let e = stats.event(vec![]);
        assert!(e.fields.get("quotes").is_none(), "no quote source set");
        assert_eq!((e.fields["updates_by_poll"].as_u64(), e.fields["updates_by_stream"].as_u64()), (Some(1), Some(2)));
        assert_eq!(e.fields["worst_detection_ms"], 120);
        assert_eq!(e.fields["detection_ms"]["stream"]["max"], 6);
        assert_eq!(e.fields["orders"], 100);
        assert_eq!(e.fields["records_persisted"], 3);
        assert_eq!(e.fields["latency_us"]["total"]["p50"], 50);
        assert_eq!(e.fields["latency_us"]["total"]["max"], 100);
        assert_eq!(e.fields["latency_us"]["persist_commit"]["count"], 1);
        assert!(e.fields["latency_us"].get("stop_loss").is_none());
    }

    #[test]
    fn stats_show_where_quotes_come_from() {
        struct Book;
        impl crate::exchange::Quotes for Book {
            fn top_of_book(&self, _symbol: &str) -> Option<crate::exchange::BookTicker> {
                None
            }
        }
        let stats = Stats::default();
        stats.set_quotes(std::sync::Arc::new(Book));
        assert_eq!(stats.event(vec![]).fields["quotes"]["source"], "book");
    }
}
