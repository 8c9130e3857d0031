//! `session.logon` with an Ed25519 key (web-socket-api.md, "Session Authentication"): each new
//! WebSocket API connection — the first, one made again after a drop, one renewed before 24 h —
//! is logged on before any request goes out on it, and its requests then carry `timestamp` and
//! `recvWindow` but no `apiKey` and no signature. Without a key, nothing here runs and every
//! request is HMAC-signed.
//!
//! A logon that fails leaves no order in doubt (nothing else was sent): its error is what the
//! caller gets, a 5xx or a lost answer as "not sent", the connection dropped.

use super::{error, Answer, Socket, WsApiGateway};
use crate::exchange::ExchangeError;
use serde_json::json;
use tungstenite::Message;

impl WsApiGateway {
    /// Logs `socket` on when an Ed25519 key is configured.
    pub(super) fn log_on(&mut self, socket: &mut Socket) -> Result<(), ExchangeError> {
        let Some(login) = &self.ed25519 else { return Ok(()) };
        let not_sent = |reason: String| ExchangeError::NotSent { reason };
        let id = self.next_id;
        self.next_id += 1;
        let timestamp = self.rest.clock().now_ms();
        let api_key = login.api_key.expose();
        let payload = format!("apiKey={api_key}&recvWindow={}&timestamp={timestamp}", self.recv_window_ms);
        let signature = login.key.sign(payload.as_bytes());
        let params = json!({"apiKey": api_key, "recvWindow": self.recv_window_ms, "timestamp": timestamp, "signature": signature});
        let request = json!({"id": id, "method": "session.logon", "params": params}).to_string();
        socket.send(Message::text(request)).map_err(|e| not_sent(format!("session.logon: {e}")))?;
        loop {
            let frame = match socket.read() {
                Ok(Message::Text(frame)) => frame,
                Ok(Message::Close(_)) => return Err(not_sent("session.logon: the connection was closed".into())),
                Ok(_) => continue,
                Err(e) => return Err(not_sent(format!("session.logon: no answer: {e}"))),
            };
            let Ok(answer) = serde_json::from_str::<Answer<'_>>(frame.as_str()) else { continue };
            if answer.id != id {
                continue;
            }
            if answer.status == 200 {
                self.logons += 1;
                log::debug!("binance ws-api: session.logon (logon {})", self.logons);
                return Ok(());
            }
            let body = answer.error.map(|e| e.to_string()).unwrap_or_default();
            let refused = error::classify_response(answer.status, None, &body);
            return Err(match refused {
                Some(e @ (ExchangeError::Rejected { .. } | ExchangeError::RateLimited { .. })) => e,
                _ => not_sent(format!("session.logon answered {}: {body}", answer.status)),
            });
        }
    }
}

/// A request on a logged-on session: the parameters, `recvWindow` and `timestamp`.
pub(super) fn session_request(
    id: u64,
    method: &str,
    pairs: Vec<(String, String)>,
    recv_window_ms: u64,
    timestamp: i64,
) -> String {
    let mut params: serde_json::Map<String, serde_json::Value> =
        pairs.into_iter().map(|(name, value)| (name, serde_json::Value::from(value))).collect();
    params.insert("recvWindow".into(), recv_window_ms.into());
    params.insert("timestamp".into(), timestamp.into());
    json!({"id": id, "method": method, "params": params}).to_string()
}
