//! The WebSocket API at `/ws-api/v3` (an HTTP Upgrade on the same port), synchronous
//! `tungstenite` on the connection's own thread. Requests: `ping`, `time`, the trading methods
//! (`order.place`, `order.status`, `order.cancel`, `openOrders.cancelAll`, `order.cancelReplace`,
//! answered by the REST handlers: see `ws_orders`),
//! `userDataStream.subscribe.signature`, `userDataStream.unsubscribe`. Once subscribed, the
//! account's `executionReport` events are pushed as `{"subscriptionId":N,"event":{...}}`.
//!
//! The thread reads with a short timeout and forwards queued events in between, so a push
//! waits at most `POLL` for the socket. When the subscription's channel is cut (`POST
//! /sim/stream/drop`, or a subscriber too slow), the TCP connection is shut down with no close
//! frame: a dropped network, as the client sees it.

use crate::api::{After, ApiError, App, StreamRx};
use crate::server::local_ms;
use serde_json::{json, Value};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a read waits before queued events are forwarded.
const POLL: Duration = Duration::from_millis(2);

/// The 101 answer to an upgrade request with `Sec-WebSocket-Key: key`.
pub fn upgrade_response(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    )
}

fn error(id: &Value, e: &ApiError) -> String {
    json!({"id": id, "status": e.status, "error": {"code": e.code, "msg": e.msg}}).to_string()
}

fn ok(id: &Value, result: Value) -> String {
    json!({"id": id, "status": 200, "result": result}).to_string()
}

/// One request; the answer to send back, and what to do with it (trading requests follow the
/// REST side's fault plan: drop, delay).
fn request(
    app: &App,
    text: &str,
    subscription: &mut Option<(u64, StreamRx)>,
    session: &mut crate::session::Session,
) -> (String, After) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return (error(&Value::Null, &ApiError::bad(-1100, "Malformed request: not JSON.")), After::Respond);
    };
    let method = value.get("method").and_then(Value::as_str);
    if let Some(http) = method.and_then(crate::ws_orders::route) {
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        let empty = serde_json::Map::new();
        let params = value.get("params").and_then(Value::as_object).unwrap_or(&empty);
        return crate::ws_orders::request(app, &id, http, params, local_ms(), session.logged_on());
    }
    if let Some(method) = method.filter(|m| matches!(*m, "session.logon" | "session.status" | "session.logout")) {
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        let empty = serde_json::Map::new();
        let params = value.get("params").and_then(Value::as_object).unwrap_or(&empty);
        let now = app.server_now_ms(local_ms());
        let answer = match crate::session::handle(session, method, params, now, subscription.is_some()) {
            Ok(result) => ok(&id, result),
            Err(e) => error(&id, &e),
        };
        return (answer, After::Respond);
    }
    (other_request(app, &value, subscription), After::Respond)
}

/// A request that is not a trading one.
fn other_request(app: &App, value: &Value, subscription: &mut Option<(u64, StreamRx)>) -> String {
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let empty = serde_json::Map::new();
    let params = value.get("params").and_then(Value::as_object).unwrap_or(&empty);
    let now = local_ms();
    match value.get("method").and_then(Value::as_str) {
        Some("ping") => ok(&id, json!({})),
        Some("time") => ok(&id, json!({"serverTime": app.server_now_ms(now)})),
        Some("userDataStream.subscribe.signature") => {
            if subscription.is_some() {
                return error(&id, &ApiError::bad(-2035, "User Data Stream subscription already active."));
            }
            match app.subscribe_signature(params, now) {
                Ok((subscription_id, rx)) => {
                    *subscription = Some((subscription_id, rx));
                    ok(&id, json!({"subscriptionId": subscription_id}))
                }
                Err(e) => error(&id, &e),
            }
        }
        Some("userDataStream.unsubscribe") => match subscription.take() {
            Some((subscription_id, _)) => {
                app.unsubscribe(subscription_id);
                ok(&id, json!({}))
            }
            None => error(&id, &ApiError::bad(-2036, "User Data Stream subscription not active.")),
        },
        Some(other) => error(&id, &ApiError::bad(-1100, format!("Unknown method '{other}'."))),
        None => error(&id, &ApiError::mandatory("method")),
    }
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Serves one upgraded connection until it closes. `buffered`: bytes read past the upgrade
/// request. `latency` is added to every answer, as to every HTTP response.
pub fn serve(stream: TcpStream, buffered: Vec<u8>, app: &App, latency: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    let raw = stream.try_clone()?;
    let mut ws = WebSocket::from_partially_read(stream, buffered, Role::Server, None);
    let mut subscription: Option<(u64, StreamRx)> = None;
    let mut session = crate::session::Session::new(app.server_now_ms(local_ms()));
    let result = loop {
        if let Some((_, rx)) = &subscription {
            let mut cut = false;
            loop {
                match rx.try_recv() {
                    Ok(frames) => {
                        for text in frames {
                            if let Err(e) = ws.write(Message::text(text)) {
                                return Err(io::Error::other(e));
                            }
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        cut = true;
                        break;
                    }
                }
            }
            if cut {
                // Dropped (fault) or too slow: the connection goes, as a network failure would.
                let _ = raw.shutdown(Shutdown::Both);
                break Ok(());
            }
        }
        if let Err(e) = ws.flush() {
            if !is_timeout(&e) {
                break Err(io::Error::other(e));
            }
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                let started = std::time::Instant::now();
                let (answer, after) = request(app, text.as_str(), &mut subscription, &mut session);
                // A drop fault: executed, and the connection goes before the answer.
                if !crate::server::hold_reply(app, after, &raw, started, latency, "ws-api") {
                    break Ok(());
                }
                let sent = ws.send(Message::text(answer));
                app.flush_pushes();
                if let Err(e) = sent {
                    break Err(io::Error::other(e));
                }
            }
            Ok(_) => {} // pings are answered by tungstenite; binary frames are ignored
            Err(e) if is_timeout(&e) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break Ok(()),
            Err(e) => break Err(io::Error::other(e)),
        }
    };
    if let Some((subscription_id, _)) = subscription {
        app.unsubscribe(subscription_id);
    }
    result
}
