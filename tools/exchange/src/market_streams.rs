//! The market streams (Binance's `web-socket-streams.md`) on the server's own port: raw
//! `/ws/<symbol>@bookTicker` and combined `/stream?streams=<a>@bookTicker/<b>@bookTicker`
//! (events wrapped as `{"stream":..,"data":..}`), live `SUBSCRIBE`, `UNSUBSCRIBE` and
//! `LIST_SUBSCRIPTIONS`, a `bookTicker` event (`u`,`s`,`b`,`B`,`a`,`A`) on every change of a
//! symbol's best bid or ask (`/sim/price`, `--walk-ms`), a ping every 20 s; a client's ping is
//! answered with a pong. Only bookTicker streams carry events; other names are listed, silent.
//!
//! `GET /sim/market-stream` counts the connections. Faults for tests (`/sim/market-stream/...`,
//! loopback only): `drop` closes every connection
//! with no close frame (a dropped network); `silence` `{"silent":true}` keeps them open but sends
//! nothing, pongs included (a stale stream), until `{"silent":false}`.

use genesis::exchange::binance::wire::fmt_decimal;
use genesis::exchange::BookTicker;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a read of the client's messages waits: the most an event waits behind it.
const POLL: Duration = Duration::from_millis(1);
/// How long the thread waits for an event before it reads the client's messages again.
const EVENT_WAIT: Duration = Duration::from_millis(20);
/// Binance's server pings every 20 s.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Events queued for one connection before it counts as too slow and is closed.
const QUEUE: usize = 4096;

/// One top-of-book change: the update id and the new top.
type Update = Arc<(u64, BookTicker)>;

/// Every market stream connection, fed by [`MarketHub::publish`].
#[derive(Default)]
pub struct MarketHub {
    connections: Mutex<Vec<(u64, SyncSender<Update>)>>,
    next_connection: AtomicU64,
    update_id: AtomicU64,
    /// The top last published per symbol: only changes are pushed.
    last: Mutex<HashMap<String, BookTicker>>,
    silent: AtomicBool,
}

impl MarketHub {
    /// Pushes a bookTicker event for each ticker that differs from the one last published.
    pub fn publish(&self, tickers: impl IntoIterator<Item = BookTicker>) {
        let mut last = self.last.lock();
        let mut connections = self.connections.lock();
        for ticker in tickers {
            if last.get(&ticker.symbol) == Some(&ticker) {
                continue;
            }
            last.insert(ticker.symbol.clone(), ticker.clone());
            let update: Update = Arc::new((self.update_id.fetch_add(1, Ordering::Relaxed) + 1, ticker));
            connections.retain(|(id, tx)| match tx.try_send(Arc::clone(&update)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    log::warn!("market stream: connection {id} too slow; dropped");
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        }
    }

    /// `POST /sim/market-stream/drop`: every connection is closed; returns how many.
    pub fn drop_all(&self) -> usize {
        let dropped = std::mem::take(&mut *self.connections.lock());
        log::info!("market stream: dropping {} connections (fault)", dropped.len());
        dropped.len()
    }

    /// `POST /sim/market-stream/silence`: connections send nothing while `silent`.
    pub fn set_silent(&self, silent: bool) {
        log::info!("market stream: silent {silent} (fault)");
        self.silent.store(silent, Ordering::Relaxed);
    }

    /// The `/sim/market-stream/*` control endpoints: the reply's status and body.
    pub fn control(&self, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
        match (method, path) {
            ("GET", "/sim/market-stream") => Some((
                200,
                json!({"connections": self.connections.lock().len(), "silent": self.silent.load(Ordering::Relaxed)}),
            )),
            ("POST", "/sim/market-stream/drop") => Some((200, json!({"dropped": self.drop_all()}))),
            ("POST", "/sim/market-stream/silence") => {
                let silent = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("silent")?.as_bool());
                match silent {
                    Some(silent) => {
                        self.set_silent(silent);
                        Some((200, json!({"silent": silent})))
                    }
                    None => Some((400, json!({"code": -1100, "msg": "body must be {\"silent\":true|false}"}))),
                }
            }
            _ => None,
        }
    }

    fn connect(&self) -> (u64, Receiver<Update>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        self.connections.lock().push((id, tx));
        (id, rx)
    }

    fn disconnect(&self, id: u64) {
        self.connections.lock().retain(|(c, _)| *c != id);
    }
}

/// True for the paths the market streams answer: `/ws`, `/ws/<name>`, `/stream`.
pub fn is_market_stream(path: &str) -> bool {
    path == "/ws" || path.starts_with("/ws/") || path.trim_end_matches('/') == "/stream"
}

/// The streams a connection starts with, and whether events are wrapped (combined).
pub fn initial_streams(path: &str, query: &str) -> (BTreeSet<String>, bool) {
    if let Some(name) = path.strip_prefix("/ws/") {
        return (name.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect(), false);
    }
    if path == "/ws" {
        return (BTreeSet::new(), false);
    }
    let streams = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "streams")
        .flat_map(|(_, v)| v.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    (streams, true)
}

/// The event for `update` on stream `name`, raw or wrapped.
pub fn event_json(name: &str, update: &(u64, BookTicker), combined: bool) -> String {
    let (u, t) = update;
    let data = json!({
        "u": u, "s": t.symbol, "b": fmt_decimal(t.bid), "B": fmt_decimal(t.bid_qty),
        "a": fmt_decimal(t.ask), "A": fmt_decimal(t.ask_qty),
    });
    if combined {
        json!({"stream": name, "data": data}).to_string()
    } else {
        data.to_string()
    }
}

/// The answer to one request (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`).
pub fn answer(text: &str, streams: &mut BTreeSet<String>) -> String {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({"code": 3, "msg": "Invalid JSON: the message is not JSON"}).to_string();
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<String> = request
        .get("params")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    match request.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            streams.extend(params);
            json!({"result": null, "id": id})
        }
        Some("UNSUBSCRIBE") => {
            for name in &params {
                streams.remove(name);
            }
            json!({"result": null, "id": id})
        }
        Some("LIST_SUBSCRIPTIONS") => json!({"result": streams.iter().collect::<Vec<_>>(), "id": id}),
        _ => json!({"code": 2, "msg": "Invalid request: unknown method", "id": id}),
    }
    .to_string()
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Serves one upgraded connection until it closes or is dropped.
pub fn serve(stream: TcpStream, buffered: Vec<u8>, hub: &MarketHub, path: &str, query: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    let raw = stream.try_clone()?;
    let mut ws = WebSocket::from_partially_read(stream, buffered, Role::Server, None);
    let (mut streams, combined) = initial_streams(path, query);
    let (id, rx) = hub.connect();
    let mut last_ping = Instant::now();
    let result = 'connection: loop {
        if hub.silent.load(Ordering::Relaxed) {
            // Stale: nothing goes out (events are lost), nothing is read (no pong).
            if let Err(RecvTimeoutError::Disconnected) = rx.recv_timeout(EVENT_WAIT) {
                let _ = raw.shutdown(Shutdown::Both);
                break Ok(());
            }
            continue;
        }
        // Woken by the first event at once; the socket is read in between (POLL at most).
        let (mut next, mut gone) = match rx.recv_timeout(EVENT_WAIT) {
            Ok(update) => (Some(update), false),
            Err(RecvTimeoutError::Timeout) => (None, false),
            Err(RecvTimeoutError::Disconnected) => (None, true),
        };
        while let Some(update) = next {
            let name = format!("{}@bookTicker", update.1.symbol.to_ascii_lowercase());
            if streams.contains(&name) {
                if let Err(e) = ws.write(Message::text(event_json(&name, &update, combined))) {
                    break 'connection Err(io::Error::other(e));
                }
            }
            next = match rx.try_recv() {
                Ok(update) => Some(update),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    None
                }
            };
        }
        if gone {
            // Dropped (fault) or too slow: the connection goes, as a network failure would.
            let _ = raw.shutdown(Shutdown::Both);
            break Ok(());
        }
        if last_ping.elapsed() >= PING_EVERY {
            last_ping = Instant::now();
            let _ = ws.write(Message::Ping(Vec::new().into()));
        }
        if let Err(e) = ws.flush() {
            if !is_timeout(&e) {
                break Err(io::Error::other(e));
            }
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                let reply = answer(text.as_str(), &mut streams);
                if let Err(e) = ws.send(Message::text(reply)) {
                    break Err(io::Error::other(e));
                }
            }
            Ok(_) => {} // pings are answered by tungstenite
            Err(e) if is_timeout(&e) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break Ok(()),
            Err(e) => break Err(io::Error::other(e)),
        }
    };
    hub.disconnect(id);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticker(bid: &str) -> BookTicker {
        BookTicker {
            symbol: "BTCUSDT".into(),
            bid: bid.parse().unwrap(),
            bid_qty: "1".parse().unwrap(),
            ask: "70000.01".parse().unwrap(),
            ask_qty: "2".parse().unwrap(),
        }
    }

    #[test]
    fn raw_and_combined_paths_name_their_first_streams() {
        assert!(is_market_stream("/ws") && is_market_stream("/ws/btcusdt@bookTicker") && is_market_stream("/stream"));
        assert!(!is_market_stream("/ws-api/v3") && !is_market_stream("/api/v3/ticker/bookTicker"));
        let (raw, combined) = initial_streams("/ws/btcusdt@bookTicker", "");
        assert_eq!((raw.into_iter().collect::<Vec<_>>(), combined), (vec!["btcusdt@bookTicker".to_string()], false));
        let (streams, combined) = initial_streams("/stream", "streams=btcusdt@bookTicker/ethusdt@bookTicker");
        assert_eq!(streams.len(), 2);
        assert!(combined);
        assert!(initial_streams("/ws", "").0.is_empty());
    }

    #[test]
    fn a_combined_event_wraps_the_raw_payload_with_its_stream_name() {
        let update = (7, ticker("70000"));
        let raw: Value = serde_json::from_str(&event_json("btcusdt@bookTicker", &update, false)).unwrap();
        assert_eq!(
            raw,
            json!({"u": 7, "s": "BTCUSDT", "b": "70000.00000000", "B": "1.00000000", "a": "70000.01000000", "A": "2.00000000"})
        );
        let combined: Value = serde_json::from_str(&event_json("btcusdt@bookTicker", &update, true)).unwrap();
        assert_eq!(combined, json!({"stream": "btcusdt@bookTicker", "data": raw}));
    }

    #[test]
    fn subscribe_unsubscribe_and_list_change_and_show_the_streams() {
        let mut streams = BTreeSet::new();
        let r = |text: &str, s: &mut BTreeSet<String>| serde_json::from_str::<Value>(&answer(text, s)).unwrap();
        let sub =
            r(r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","ethusdt@bookTicker"],"id":1}"#, &mut streams);
        assert_eq!(sub, json!({"result": null, "id": 1}));
        r(r#"{"method":"UNSUBSCRIBE","params":["ethusdt@bookTicker"],"id":2}"#, &mut streams);
        let list = r(r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#, &mut streams);
        assert_eq!(list, json!({"result": ["btcusdt@bookTicker"], "id": 3}));
        assert_eq!(r(r#"{"method":"NOPE","id":4}"#, &mut streams)["code"], 2);
        assert_eq!(r("not json", &mut streams)["code"], 3);
    }

    #[test]
    fn only_a_change_of_the_top_is_published() {
        let hub = MarketHub::default();
        let (_, rx) = hub.connect();
        hub.publish([ticker("70000"), ticker("70000"), ticker("69999")]);
        let ids: Vec<u64> = rx.try_iter().map(|u| u.0).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn drop_closes_every_connection_and_silence_is_set_by_control() {
        let hub = MarketHub::default();
        let (_, rx) = hub.connect();
        assert_eq!(hub.control("GET", "/sim/market-stream", "").unwrap().1["connections"], 1);
        assert_eq!(hub.control("POST", "/sim/market-stream/drop", ""), Some((200, json!({"dropped": 1}))));
        assert!(rx.recv().is_err());
        assert_eq!(hub.control("POST", "/sim/market-stream/silence", r#"{"silent":true}"#).unwrap().0, 200);
        assert!(hub.silent.load(Ordering::Relaxed));
        assert_eq!(hub.control("POST", "/sim/market-stream/silence", "{}").unwrap().0, 400);
        assert_eq!(hub.control("GET", "/sim/other", ""), None);
    }
}
