//! The event bus: stages publish typed events; subscribers (stdout, the database's event log)
//! are fed through their own bounded channels, so publishers never wait on rendering or I/O.

mod sink;

pub use sink::Sink;

use crate::domain::{format_ts, now_us};
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One event: what happened, when, to which order, with fields for programs and a sentence
/// for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub ts_us: i64,
    pub client_order_id: Option<String>,
    pub order_id: Option<i64>,
    pub fields: Map<String, Value>,
    pub text: String,
}

impl Event {
    pub fn new(kind: &'static str, text: impl Into<String>) -> Event {
        Event { kind, ts_us: now_us(), client_order_id: None, order_id: None, fields: Map::new(), text: text.into() }
    }

    /// Attaches the order's ids (the correlation id of every order event).
    pub fn order(mut self, order_id: i64, client_order_id: &str) -> Event {
        self.order_id = Some(order_id);
        self.client_order_id = Some(client_order_id.to_string());
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// A decimal field, as a JSON string (exact; never a float).
    pub fn money(self, key: &str, value: crate::domain::money::Decimal) -> Event {
        self.field(key, value.normalize().to_string())
    }

    pub fn money_opt(self, key: &str, value: Option<crate::domain::money::Decimal>) -> Event {
        match value {
            Some(v) => self.money(key, v),
            None => self.field(key, Value::Null),
        }
    }

    /// One JSON object: `event`, `ts`, the order ids and the fields, keys in sorted order (as
    /// serde_json's map keeps them); a field of the same name as one of the four wins.
    pub fn to_json_line(&self) -> String {
        // Serialized from borrowed parts: building a map of cloned fields first took 3.1 µs a
        // line against 0.9-1.2 (criterion), on a writer that floats onto the order path's core.
        serde_json::to_string(&JsonLine(self)).unwrap_or_default()
    }

    /// One line for a person: time, event, sentence.
    pub fn to_text_line(&self) -> String {
        let ts = format_ts(self.ts_us);
        // HH:MM:SS.micros is enough for a person watching the stream.
        let time = ts.get(11..26).unwrap_or(&ts);
        format!("{time} {:<22} {}", self.kind, self.text)
    }

    /// The fields as one JSON object, for the event log's `details` column.
    pub fn details_json(&self) -> String {
        // Serialized in place: cloning the map first was 7 % of persist's time in a flood.
        serde_json::to_string(&self.fields).unwrap_or_default()
    }
}

/// An event as its JSON line's object, merging the four header keys into the sorted fields.
struct JsonLine<'a>(&'a Event);

impl serde::Serialize for JsonLine<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let event = self.0;
        // In key order, like the fields.
        let header = [
            ("client_order_id", event.client_order_id.as_deref().map(Value::from)),
            ("event", Some(Value::from(event.kind))),
            ("order_id", event.order_id.map(Value::from)),
            ("ts", Some(Value::from(format_ts(event.ts_us)))),
        ];
        let mut map = serializer.serialize_map(Some(event.fields.len() + header.len()))?;
        let mut fields = event.fields.iter().peekable();
        for (key, value) in header.iter().filter_map(|(key, value)| Some((*key, value.as_ref()?))) {
            while let Some((k, v)) = fields.next_if(|(k, _)| k.as_str() < key) {
                map.serialize_entry(k, v)?;
            }
            // A field of the same name replaces the header entry.
            if fields.peek().is_none_or(|(k, _)| k.as_str() != key) {
                map.serialize_entry(key, value)?;
            }
        }
        for (k, v) in fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Output format of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Replies to questions: the lane a slow reader loses first.
const LOW_PRIORITY: [&str; 8] =
    ["status", "orders", "positions", "account", "stats", "help", "confirm_set", "price_set"];

/// The stdout subscriber's two queues. Publishing never waits on them: when a reader is too
/// slow and a queue is full, the event is counted and the writer says how many it lost (the
/// database's event log still has every one). Order, protection and alert events ride the
/// high-priority lane, drained first.
#[derive(Clone)]
pub struct StdoutLanes {
    high: Sender<Arc<Event>>,
    low: Sender<Arc<Event>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    sink: Arc<Sink>,
}

/// The writer's side of [`StdoutLanes`].
pub struct StdoutQueues {
    high: Receiver<Arc<Event>>,
    low: Receiver<Arc<Event>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    sink: Arc<Sink>,
}

/// The two lanes, with their capacities, to the process's stdout (JSON lines; nothing is
/// written directly).
pub fn stdout_lanes(high: usize, low: usize) -> (StdoutLanes, StdoutQueues) {
    stdout_lanes_to(high, low, Sink::queued_only(Format::Json))
}

/// The two lanes, with their capacities, to `sink`.
pub fn stdout_lanes_to(high: usize, low: usize, sink: Sink) -> (StdoutLanes, StdoutQueues) {
    let (high_tx, high_rx) = crossbeam_channel::bounded(high);
    let (low_tx, low_rx) = crossbeam_channel::bounded(low);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = Arc::new(sink);
    (
        StdoutLanes { high: high_tx, low: low_tx, dropped: Arc::clone(&dropped), sink: Arc::clone(&sink) },
        StdoutQueues { high: high_rx, low: low_rx, dropped, sink },
    )
}

#[cfg(test)]
impl StdoutQueues {
    /// The kinds of the events queued for the writer, taken out, high lane first.
    pub(crate) fn take_kinds(&self) -> Vec<&'static str> {
        self.high.try_iter().chain(self.low.try_iter()).map(|e| e.kind).collect()
    }
}

impl StdoutLanes {
    fn send(&self, event: Arc<Event>) {
        let lane = if LOW_PRIORITY.contains(&event.kind) { &self.low } else { &self.high };
        // Counted before it can be seen, so a direct write never passes it (see `Sink`).
        self.sink.queue_one();
        if let Err(e) = lane.try_send(event) {
            self.sink.done(1);
            if e.is_full() {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Writes `events` from the calling thread if nothing waits for the writer and stdout takes
    /// them now; else queues them, in order.
    fn show_now(&self, events: &[Arc<Event>]) {
        let mut lines = Vec::with_capacity(1024 * events.len());
        for event in events {
            self.sink.render(event, &mut lines);
        }
        if !self.sink.try_write_now(&lines) {
            for event in events {
                self.send(Arc::clone(event));
            }
        }
    }
}

/// The publishing side; cheap to clone, one per stage.
#[derive(Clone)]
pub struct Bus {
    to_stdout: StdoutLanes,
    to_log: Option<Sender<crate::pipeline::msg::ToPersist>>,
}

impl Bus {
    pub fn new(to_stdout: StdoutLanes, to_log: Option<Sender<crate::pipeline::msg::ToPersist>>) -> Bus {
        Bus { to_stdout, to_log }
    }

    /// Publishes to every subscriber. A subscriber that has gone away is skipped.
    pub fn publish(&self, event: Event) {
        trace(&event);
        let event = Arc::new(event);
        self.log(Arc::clone(&event));
        self.to_stdout.send(event);
    }

    /// Puts `events` on stdout, from the calling thread when that waits for nothing (see
    /// [`Sink`]), else through the writer; not into the event log: the caller hands each to
    /// [`Bus::log`] once the lines are out.
    pub fn show_now(&self, events: &[Arc<Event>]) {
        events.iter().for_each(|e| trace(e));
        self.to_stdout.show_now(events);
    }

    /// Into the database's event log only.
    pub fn log(&self, event: Arc<Event>) {
        if let Some(log) = &self.to_log {
            let _ = log.send(crate::pipeline::msg::ToPersist::Event(event));
        }
    }

    /// Publishes to stdout only (for the persist stage, which logs its own events).
    pub fn publish_stdout(&self, event: Arc<Event>) {
        self.to_stdout.send(event);
    }

    /// A one-line `error` event; `message` repeats the sentence for programs.
    pub fn error(&self, text: impl Into<String>) {
        self.publish(Event::error(text))
    }
}

/// The engine's log line for an event (debug; warnings for failures).
fn trace(event: &Event) {
    match event.kind {
        "error" | "stop_loss_failed" | "order_failed" => {
            log::warn!(target: "genesis::events", "{} {}", event.client_order_id.as_deref().unwrap_or("-"), event.text)
        }
        _ => {
            log::debug!(target: "genesis::events", "{} {}", event.client_order_id.as_deref().unwrap_or("-"), event.text)
        }
    }
}

impl Event {
    /// A one-line `error` event; `message` repeats the sentence for programs.
    pub fn error(text: impl Into<String>) -> Event {
        Event::new("error", text.into()).with_message()
    }

    /// `order_cancelled` / `order_failed`: one order ended, and why.
    pub fn order_ended(kind: &'static str, order: &crate::domain::order::Order, reason: &str) -> Event {
        let verb = if kind == "order_failed" { "failed" } else { "cancelled" };
        Event::new(
            kind,
            format!("{} {} {} {} {verb}: {reason}", order.order_id, order.side.as_str(), order.quantity, order.symbol),
        )
        .order(order.order_id, &order.client_order_id)
        .field("symbol", order.symbol.as_str())
        .field("side", order.side.as_str())
        .field("reason", reason)
    }

    /// Copies the sentence into a `message` field (for `error` events).
    fn with_message(mut self) -> Event {
        self.fields.insert("message".into(), Value::from(self.text.clone()));
        self
    }
}

/// The stdout subscriber: renders each event on one line and writes when the queue is empty
/// (or 64 KiB are waiting), so a person sees every event at once and a pipe gets whole lines.
/// It shares stdout with the order path's direct writes (see [`Sink`]).
pub fn run_stdout_writer(queues: StdoutQueues) {
    const BATCH: usize = 64 * 1024;
    let sink = &queues.sink;
    let mut lines = Vec::with_capacity(BATCH);
    let mut events = 0u64;
    let mut reported = 0u64;
    loop {
        // High priority first; then one low-priority event at a time.
        let event = match queues.high.try_recv() {
            Ok(event) => event,
            Err(_) => crossbeam_channel::select! {
                recv(queues.high) -> e => match e { Ok(e) => e, Err(_) => match queues.low.recv() { Ok(e) => e, Err(_) => break } },
                recv(queues.low) -> e => match e { Ok(e) => e, Err(_) => match queues.high.recv() { Ok(e) => e, Err(_) => break } },
            },
        };
        sink.render(&event, &mut lines);
        events += 1;
        let idle = queues.high.is_empty() && queues.low.is_empty();
        if idle {
            let dropped = queues.dropped.load(std::sync::atomic::Ordering::Relaxed);
            if dropped > reported {
                let lost = Event::new(
                    "events_dropped",
                    format!(
                        "{} events not shown: stdout was read too slowly (the database's event_log has them)",
                        dropped - reported
                    ),
                )
                .field("count", dropped - reported);
                sink.render(&lost, &mut lines);
                reported = dropped;
            }
        }
        if idle || lines.len() >= BATCH {
            sink.write_queued(&lines, events);
            lines.clear();
            events = 0;
        }
    }
    sink.write_queued(&lines, events);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_event_ts_ids_and_fields() {
        let mut e =
            Event::new("order_filled", "filled").order(7, "gabc-E1").money("avg_price", "65000.10".parse().unwrap());
        e.ts_us = 1_764_062_469_123_456;
        let v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["event"], "order_filled");
        assert_eq!(v["ts"], "2025-11-25T09:21:09.123456Z");
        assert_eq!(v["order_id"], 7);
        assert_eq!(v["client_order_id"], "gabc-E1");
        assert_eq!(v["avg_price"], "65000.1");
    }

    #[test]
    fn json_line_keys_come_sorted_with_the_header_among_the_fields() {
        let mut e = Event::new("order_filled", "filled")
            .order(7, "gabc-E1")
            .field("avg_price", "1")
            .field("fills", 2)
            .field("reason", "x")
            .field("tz", true);
        e.ts_us = 0;
        assert_eq!(
            e.to_json_line(),
            r#"{"avg_price":"1","client_order_id":"gabc-E1","event":"order_filled","fills":2,"order_id":7,"reason":"x","ts":"1970-01-01T00:00:00.000000Z","tz":true}"#
        );
    }

    #[test]
    fn json_line_field_named_like_a_header_key_wins_and_appears_once() {
        let e = Event::new("price_set", "set").field("event", "mine");
        let line = e.to_json_line();
        assert_eq!(line.matches("\"event\"").count(), 1, "{line}");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["event"], "mine");
    }

    #[test]
    fn json_line_of_an_event_without_an_order_has_no_order_ids() {
        let v: Value = serde_json::from_str(&Event::new("ready", "ready").to_json_line()).unwrap();
        assert!(v.get("order_id").is_none() && v.get("client_order_id").is_none(), "{v}");
    }

    #[test]
    fn error_events_carry_the_message() {
        let (lanes, queues) = stdout_lanes(4, 4);
        Bus::new(lanes, None).error("unknown symbol 'XYZ'");
        let e = queues.high.recv().unwrap();
        assert_eq!(e.kind, "error");
        assert_eq!(e.fields["message"], "unknown symbol 'XYZ'");
    }

    #[test]
    fn a_full_stdout_queue_counts_the_event_instead_of_waiting() {
        let (lanes, queues) = stdout_lanes(1, 1);
        let bus = Bus::new(lanes, None);
        bus.publish(Event::new("order_filled", "a"));
        bus.publish(Event::new("order_filled", "b"));
        bus.publish(Event::new("status", "c"));
        assert_eq!(queues.high.len(), 1);
        assert_eq!(queues.low.len(), 1);
        assert_eq!(queues.dropped.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn text_line_is_one_line_with_kind_and_sentence() {
        let e = Event::new("cancel_all", "cancelled 2 orders on BTCUSDT");
        let line = e.to_text_line();
        assert!(line.contains("cancel_all"));
        assert!(line.ends_with("cancelled 2 orders on BTCUSDT"));
        assert!(!line.contains('\n'));
    }
}
