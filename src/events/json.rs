//! An event's JSON line written straight into the output buffer: the header keys (`event`,
//! `ts`, the order ids) merged in key order with the fields, as `serde_json` would write the
//! same object. Strings that need no escaping (nearly all) are copied as they are; the rare one
//! that does, and nested arrays and objects, go through `serde_json`, so the bytes are the same.
//! Why not `serde_json` for all of it: the per-entry dispatch made rendering the largest part of
//! the order path's instructions before `order_filled` is out (docs/perf/journal.md, 2026-12-06).

use super::event::Event;
use crate::domain::format_ts;
use serde_json::Value;

/// A header entry's value.
enum Header<'a> {
    Text(&'a str),
    Number(i64),
}

/// `event` as one JSON object (no newline) appended to `out`.
pub fn write_line(event: &Event, out: &mut Vec<u8>) {
    let ts = format_ts(event.ts_us);
    // In key order, like the fields.
    let header = [
        ("client_order_id", event.client_order_id.as_deref().map(Header::Text)),
        ("event", Some(Header::Text(event.kind.as_str()))),
        ("order_id", event.order_id.map(Header::Number)),
        ("ts", Some(Header::Text(&ts))),
    ];
    out.push(b'{');
    let mut first = true;
    let mut fields = event.fields.iter().peekable();
    for (key, value) in header.iter().filter_map(|(key, value)| Some((*key, value.as_ref()?))) {
        while let Some((k, v)) = fields.next_if(|(k, _)| k.as_str() < key) {
            entry(out, &mut first, k, v);
        }
        // A field of the same name replaces the header entry.
        if fields.peek().is_none_or(|(k, _)| k.as_str() != key) {
            key_of(out, &mut first, key);
            match value {
                Header::Text(text) => string(out, text),
                Header::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            }
        }
    }
    for (k, v) in fields {
        entry(out, &mut first, k, v);
    }
    out.push(b'}');
}

/// The fields alone as one JSON object (the event log's `details`).
pub fn write_fields(event: &Event, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in &event.fields {
        entry(out, &mut first, k, v);
    }
    out.push(b'}');
}

fn entry(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &Value) {
    key_of(out, first, key);
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(text) => string(out, text),
        // Numbers, arrays and objects as serde_json writes them (numbers by its own itoa/ryu).
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

fn key_of(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    string(out, key);
    out.push(b':');
}

/// A JSON string: copied between quotes when no byte needs escaping, else serde_json's escaping.
fn string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}
