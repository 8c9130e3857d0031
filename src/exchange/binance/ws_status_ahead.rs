//! The verification query sent right behind its placement (`--transport ws`).
//!
//! Over one WebSocket API connection requests need not wait for each other's answers: the
//! `id` matches an answer to its request, in whatever order the answers come. So `order.place`
//! (and `order.cancelReplace`) leave in one write together with `order.status` for the new
//! order's client id, and the verification the caller asks for next costs no round trip of its
//! own. The rules hold:
//! - the order carries its client order id before it leaves, and the status request names it;
//! - verification is the exchange's own answer to `order.status`, used only when it is
//!   consistent with the placement's answer: the same order (client and exchange id) and at
//!   least the quantity the placement reported executed. Anything else — `-2013` (the status
//!   was handled before the placement), an error, a lost connection, a report behind the
//!   placement's — and the caller's query goes out the normal way, as a request of its own;
//! - a placement whose answer is lost is unknown and resolved by query as before: the status
//!   sent behind it is dropped with the connection, never read as that resolution.

use super::wire;
use super::{nanos, Answer, WsApiGateway};
use crate::domain::order::OrderReport;
use rust_decimal::Decimal;
use std::time::Instant;
use tungstenite::Message;

/// The `order.status` sent behind a placement, until its answer is used or dropped.
pub(super) struct StatusAhead {
    /// The request's id.
    pub id: u64,
    pub symbol: String,
    pub client_order_id: String,
    /// The connection it was sent on (`WsApiGateway::connections` then).
    pub connection: u64,
    /// Its answer, when it came while the placement's was awaited.
    pub answer: Option<String>,
    /// What the placement's answer said: exchange order id and executed quantity.
    pub placed: Option<(i64, Decimal)>,
    /// Time spent signing it (inside the placement's own signing time).
    pub sign_ns: u64,
}

impl WsApiGateway {
    /// The signed `order.status` request for `client_order_id`, to leave in the placement's
    /// write; remembered so its answer can be told apart.
    pub(super) fn status_ahead_request(&mut self, symbol: &str, client_order_id: &str) -> String {
        let started = Instant::now();
        let id = self.next_id;
        self.next_id += 1;
        let params = super::query(|q| {
            q.str("symbol", symbol).str("origClientOrderId", client_order_id);
        });
        let timestamp = self.rest.clock().now_ms();
        let request = self.signed_request(id, "order.status", &params, timestamp);
        self.status_ahead = Some(StatusAhead {
            id,
            symbol: symbol.to_string(),
            client_order_id: client_order_id.to_string(),
            connection: self.connections,
            answer: None,
            placed: None,
            sign_ns: nanos(started.elapsed()),
        });
        request
    }

    /// Keeps `frame` when it is the answer to the status sent ahead.
    pub(super) fn keep_if_status_ahead(&mut self, answer_id: &serde_json::Value, frame: &str) {
        if let Some(ahead) = self.status_ahead.as_mut().filter(|a| *answer_id == a.id) {
            ahead.answer = Some(frame.to_string());
        }
    }

    /// Records what the placement answered (the status ahead is checked against it).
    pub(super) fn placed(&mut self, client_order_id: &str, report: &OrderReport) {
        match &mut self.status_ahead {
            Some(ahead) if ahead.client_order_id == client_order_id => {
                ahead.placed = Some((report.exchange_order_id, report.executed_qty));
            }
            _ => self.status_ahead = None,
        }
    }

    /// The verification the status ahead gives for `client_order_id`, if it answered and its
    /// answer is consistent with the placement's; `None`: query the normal way.
    pub(super) fn status_ahead_for(&mut self, symbol: &str, client_order_id: &str) -> Option<OrderReport> {
        let ahead = self.status_ahead.take()?;
        if ahead.symbol != symbol || ahead.client_order_id != client_order_id {
            return None;
        }
        let (exchange_order_id, executed) = ahead.placed?;
        let started = Instant::now();
        let frame = match ahead.answer {
            Some(frame) => frame,
            None => self.read_status_ahead(ahead.id, ahead.connection)?,
        };
        self.last_over_rest = false;
        self.timing = super::RequestTiming { sign_ns: ahead.sign_ns, round_trip_ns: nanos(started.elapsed()) };
        let answer = serde_json::from_str::<Answer<'_>>(&frame).ok()?;
        let report = match self.answered("order.status", answer).map(|body| wire::parse_order(&body)) {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => {
                log::debug!("binance ws-api: status ahead of {client_order_id} unreadable ({e}); querying");
                return None;
            }
            Err(e) => {
                // -2013 when it was handled before the placement.
                log::debug!("binance ws-api: status ahead of {client_order_id}: {e}; querying");
                return None;
            }
        };
        let consistent = report.client_order_id == client_order_id
            && report.exchange_order_id == exchange_order_id
            && report.executed_qty >= executed;
        if !consistent {
            log::debug!("binance ws-api: status ahead of {client_order_id} does not match its placement; querying");
            return None;
        }
        Some(report)
    }

    /// Waits on the connection the status was sent on for its answer. A connection made since,
    /// or lost while waiting, gives `None` (the lost one is not put back).
    fn read_status_ahead(&mut self, id: u64, connection: u64) -> Option<String> {
        if connection != self.connections {
            return None;
        }
        let mut c = self.connection.take()?;
        loop {
            match c.socket.read() {
                Ok(Message::Text(frame)) => {
                    let ours = serde_json::from_str::<Answer<'_>>(frame.as_str()).is_ok_and(|a| a.id == id);
                    if ours {
                        self.connection = Some(c);
                        return Some(frame.as_str().to_string());
                    }
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("binance ws-api: order.status sent ahead: no answer ({e}); querying again");
                    break;
                }
            }
        }
        None
    }
}
