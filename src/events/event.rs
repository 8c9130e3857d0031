//! One event: what happened, when, to which order, with fields for programs and a sentence
//! for people; and its two renderings (a JSON line, a text line). Depends on nothing in the
//! pipeline, so every stage's messages can carry events.

use super::kind::EventKind;
use crate::domain::{format_ts, now_us};
use serde_json::{Map, Value};

/// One event: what happened, when, to which order, with fields for programs and a sentence
/// for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub ts_us: i64,
    pub client_order_id: Option<String>,
    pub order_id: Option<i64>,
    pub fields: Map<String, Value>,
    pub text: String,
}

impl Event {
    pub fn new(kind: EventKind, text: impl Into<String>) -> Event {
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
        let mut out = Vec::with_capacity(256);
        super::json::write_line(self, &mut out);
        // The writer copies only `str`s and serde_json's own output: always UTF-8.
        String::from_utf8(out).unwrap_or_default()
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
        let mut out = Vec::with_capacity(128);
        super::json::write_fields(self, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// A one-line `error` event; `message` repeats the sentence for programs.
    pub fn error(text: impl Into<String>) -> Event {
        Event::new(EventKind::Error, text.into()).with_message()
    }

    /// `order_cancelled` / `order_failed`: one order ended, and why.
    pub fn order_ended(kind: EventKind, order: &crate::domain::order::Order, reason: &str) -> Event {
        let verb = if kind == EventKind::OrderFailed { "failed" } else { "cancelled" };
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

/// An event as its JSON line's object through serde: what `json::write_line` must write, byte
/// for byte (the tests' reference).
#[cfg(test)]
struct JsonLine<'a>(&'a Event);

#[cfg(test)]
impl serde::Serialize for JsonLine<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let event = self.0;
        // In key order, like the fields.
        let header = [
            ("client_order_id", event.client_order_id.as_deref().map(Value::from)),
            ("event", Some(Value::from(event.kind.as_str()))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_event_ts_ids_and_fields() {
        let mut e = Event::new(EventKind::OrderFilled, "filled")
            .order(7, "gabc-E1")
            .money("avg_price", "65000.10".parse().unwrap());
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
        let mut e = Event::new(EventKind::OrderFilled, "filled")
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
        let e = Event::new(EventKind::PriceSet, "set").field("event", "mine");
        let line = e.to_json_line();
        assert_eq!(line.matches("\"event\"").count(), 1, "{line}");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["event"], "mine");
    }

    #[test]
    fn json_line_of_an_event_without_an_order_has_no_order_ids() {
        let v: Value = serde_json::from_str(&Event::new(EventKind::Ready, "ready").to_json_line()).unwrap();
        assert!(v.get("order_id").is_none() && v.get("client_order_id").is_none(), "{v}");
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[a-z\"\\\n\u{1}\u{7f}é]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-z\"]{1,4}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn json_line_is_byte_for_byte_what_serde_json_writes(
            fields in proptest::collection::btree_map("[a-z_\"]{1,12}", any_value(), 0..12),
            order in proptest::option::of((proptest::prelude::any::<i64>(), "[a-z0-9\"-]{0,12}")),
            ts_us in proptest::prelude::any::<i64>(),
        ) {
            let mut e = Event::new(EventKind::OrderFilled, "filled");
            if let Some((id, client_id)) = order {
                e = e.order(id, &client_id);
            }
            for (k, v) in fields {
                e = e.field(&k, v);
            }
            e.ts_us = ts_us;
            proptest::prop_assert_eq!(e.to_json_line(), serde_json::to_string(&JsonLine(&e)).unwrap());
            proptest::prop_assert_eq!(e.details_json(), serde_json::to_string(&e.fields).unwrap());
        }
    }

    #[test]
    fn text_line_is_one_line_with_kind_and_sentence() {
        let e = Event::new(EventKind::CancelAll, "cancelled 2 orders on BTCUSDT");
        let line = e.to_text_line();
        assert!(line.contains("cancel_all"));
        assert!(line.ends_with("cancelled 2 orders on BTCUSDT"));
        assert!(!line.contains('\n'));
    }
}
