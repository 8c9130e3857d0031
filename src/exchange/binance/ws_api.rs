//! The WebSocket API gateway (`--transport ws`): placement, query, cancel, cancel-all and
//! cancel-replace as WebSocket API requests (`order.place`, `order.status`, `order.cancel`,
//! `openOrders.cancelAll`, `order.cancelReplace`) over one connection, each HMAC-signed (the
//! parameters but `signature`, sorted by name, `name=value` joined by `&`), or, with an
//! Ed25519 key, on a session logged on once per connection ([`ws_session`]). Everything else
//! (exchangeInfo, account, allOrders, myTrades, openOrders, the book ticker, the server time)
//! goes over REST, through the [`BinanceGateway`] this gateway holds.
//!
//! The rules of the REST gateway stay:
//! - A request whose answer is lost (the connection drops or times out after sending) is an
//!   unknown outcome (`ExchangeError::Unknown`): the connection is dropped and the caller
//!   queries; the next request connects again. Nothing is ever resent here but a request the
//!   exchange refused before the matching engine (-1021 after a clock resync, a short 429).
//! - A failure to connect is `NotSent`: the request never left.
//! - 429 / 418 are `RateLimited` (the wait from `error.data.retryAfter − serverTime`); the
//!   `rateLimits` of every answer update the weight and order counts.
//! - Before each request, what the server sent meanwhile is read without waiting: pings get
//!   their pong, a closed connection is noticed and made again *before* the request goes out
//!   (the request is then never in doubt). A connection older than [`MAX_CONNECTION_AGE`]
//!   (Binance ends them at 24 h) is closed and made again between two requests, so no order
//!   is ever in flight on a connection that is about to be cut.
//! - A market order's verification query leaves in the same write as its placement
//!   ([`ws_status_ahead`]), and is used only when consistent with the placement's answer.

use super::sign::{parse_query, QueryBuilder, Secret, Signer};
use super::user_data::ws_api_url;
use super::wire::WireError;
use super::{cancel_replace_refusal, check_order, clock, error, order_params, wire, BinanceConfig, BinanceGateway};
use crate::domain::order::{ExchangeOrderType, Fill, OrderReport};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, Exchange, ExchangeError, NewOrder, Replaced, RequestTiming};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A connection this old is replaced before the next request (Binance cuts them at 24 h).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(23 * 3600);

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

struct Connection {
    socket: Socket,
    since: Instant,
}

/// One answer of the WebSocket API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    status: u16,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    rate_limits: Vec<AnswerLimit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerLimit {
    rate_limit_type: String,
    interval: String,
    interval_num: u32,
    limit: u64,
    count: u64,
}

/// The gateway. Calls block; one thread (the exchange I/O stage) owns it.
pub struct WsApiGateway {
    rest: BinanceGateway,
    url: String,
    api_key: Secret,
    signer: Signer,
    recv_window_ms: u64,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_retry_after_wait: Duration,
    max_age: Duration,
    connection: Option<Connection>,
    /// Connections made so far.
    connections: u64,
    next_id: u64,
    timing: RequestTiming,
    /// The last call went over REST (its timing is the REST gateway's).
    last_over_rest: bool,
    /// Weight used this minute and the limit, from the last answer's `rateLimits`.
    weight_1m: Option<(u64, u64)>,
    order_count_10s: Option<u64>,
    /// The last rate-limited answer said when to retry.
    retry_after_explicit: bool,
    /// The `error` object of the last failed answer (cancelReplace reads its `data`).
    error_body: String,
    /// The order (symbol, client id) whose `order.status` goes with the placement being sent.
    status_for: Option<(String, String)>,
    /// The `order.status` sent with the last placement.
    status_ahead: Option<ws_status_ahead::StatusAhead>,
    /// Logs each connection on (`session.logon`); `None`: HMAC-signed requests.
    ed25519: Option<super::ed25519::Ed25519Login>,
    /// Logons so far (one per connection with an Ed25519 key).
    logons: u64,
}

impl fmt::Debug for WsApiGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsApiGateway")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("connections", &self.connections)
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lost(reason: String) -> ExchangeError {
    ExchangeError::Unknown { reason }
}

/// The TCP stream under a socket.
fn tcp(socket: &Socket) -> Option<&TcpStream> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(s) => Some(s),
        // No test can run it: a TLS stream exists only once the handshake has verified the
        // server against the webpki roots, i.e. on Binance's hosts; tests stay on 127.0.0.1.
        #[cfg(not(tarpaulin_include))]
        MaybeTlsStream::Rustls(s) => Some(s.get_ref()),
        // No test can run it: with our features (rustls only) there is no other variant.
        #[cfg(not(tarpaulin_include))]
        _ => None,
    }
}

/// Reads what the server sent since the last request without waiting: answers pings (the
/// pong leaves with the next write), skips events. False when the connection is gone.
fn still_open(socket: &mut Socket) -> bool {
    let Some(_) = tcp(socket).filter(|s| s.set_nonblocking(true).is_ok()) else { return false };
    let open = loop {
        match socket.read() {
            Ok(Message::Close(_)) => break false,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    let restored = tcp(socket).is_some_and(|s| s.set_nonblocking(false).is_ok());
    open && restored
}

impl WsApiGateway {
    /// Builds the gateway without touching the network; the WebSocket API URL is the one for
    /// the REST base URL (`user_data::ws_api_url`).
    pub fn new(config: BinanceConfig) -> Result<Self, ExchangeError> {
        let url = ws_api_url(&config.base_url);
        let ed25519 = config.ed25519.clone();
        Ok(WsApiGateway {
            url,
            api_key: config.api_key.clone(),
            signer: Signer::new(&config.api_secret),
            recv_window_ms: config.recv_window_ms,
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            max_retry_after_wait: config.max_retry_after_wait,
            max_age: MAX_CONNECTION_AGE,
            rest: BinanceGateway::new(config)?,
            connection: None,
            connections: 0,
            next_id: 1,
            timing: RequestTiming::default(),
            last_over_rest: false,
            weight_1m: None,
            order_count_10s: None,
            retry_after_explicit: false,
            error_body: String::new(),
            status_for: None,
            status_ahead: None,
            ed25519,
            logons: 0,
        })
    }

    /// The REST gateway's server-time sync (the WebSocket requests use the same offset).
    pub fn sync_time(&mut self) -> Result<i64, ExchangeError> {
        self.rest.sync_time()
    }

    /// The clock requests are signed with: the REST gateway's (a resync of either moves both,
    /// and the user data stream's too).
    pub fn clock(&self) -> clock::ExchangeClock {
        self.rest.clock()
    }

    /// Connects now (start-up), so the first order does not pay for the handshake.
    pub fn open(&mut self) -> Result<(), ExchangeError> {
        let connection = self.take_connection()?;
        self.connection = Some(connection);
        Ok(())
    }

    /// Replaces connections older than `age` between requests (default [`MAX_CONNECTION_AGE`]).
    pub fn set_max_connection_age(&mut self, age: Duration) {
        self.max_age = age;
    }

    /// The account's orders in the current 10 s, from the last answer's `rateLimits`.
    pub fn order_count_10s(&self) -> Option<u64> {
        self.order_count_10s
    }

    /// Connections made so far (the first included).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// `session.logon`s so far (Ed25519 key only).
    pub fn logons(&self) -> u64 {
        self.logons
    }

    fn connect(&mut self) -> Result<Connection, ExchangeError> {
        let not_sent = |reason: String| ExchangeError::NotSent { reason };
        let (authority, host_port) = super::stream::authority_and_address(&self.url);
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| not_sent(format!("resolve {authority}: {e}")))?
            .next()
            .ok_or_else(|| not_sent(format!("resolve {authority}: no address")))?;
        let tcp = TcpStream::connect_timeout(&addr, self.connect_timeout)
            .map_err(|e| not_sent(format!("WebSocket API connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(self.read_timeout));
        let _ = tcp.set_write_timeout(Some(self.read_timeout));
        let (mut socket, _) = tungstenite::client_tls_with_config(self.url.as_str(), tcp, None, None)
            .map_err(|e| not_sent(format!("WebSocket API handshake: {e}")))?;
        self.connections += 1;
        self.log_on(&mut socket)?;
        log::debug!("binance ws-api: connected to {} (connection {})", self.url, self.connections);
        Ok(Connection { socket, since: Instant::now() })
    }

    /// The connection, open and young enough, made now if need be. The caller puts it back
    /// once its request is answered; a connection whose answer was lost is not put back.
    fn take_connection(&mut self) -> Result<Connection, ExchangeError> {
        if let Some(mut c) = self.connection.take() {
            if c.since.elapsed() >= self.max_age {
                log::info!("binance ws-api: connection {} renewed (age limit)", self.connections);
                let _ = c.socket.close(None);
                let _ = c.socket.flush();
            } else if still_open(&mut c.socket) {
                return Ok(c);
            } else {
                log::warn!("binance ws-api: the connection was closed; connecting again");
            }
        }
        self.connect()
    }

    /// One request with the -1021 resync and the short-429 wait; `result` parsed by `parse`
    /// (a 200 whose result does not parse is `Unknown`). `params`: percent-encoded, without
    /// apiKey, recvWindow, timestamp and signature.
    fn call<T>(
        &mut self,
        method: &str,
        params: &str,
        parse: impl Fn(&str) -> Result<T, WireError>,
    ) -> Result<T, ExchangeError> {
        self.last_over_rest = false;
        let mut resynced = false;
        let mut waited = false;
        loop {
            let sent_at = Instant::now();
            let error = match self.attempt(method, params) {
                Ok(result) => {
                    let parsed = parse(&result);
                    self.timing.round_trip_ns = nanos(sent_at.elapsed());
                    return parsed.map_err(|e| lost(format!("unreadable answer to {method}: {e}")));
                }
                Err(error) => error,
            };
            if !resynced && error.is_timestamp_error() {
                // Refused before the matching engine: resync, then the same request once more.
                resynced = true;
                log::warn!("binance ws-api: {method} refused for its timestamp (-1021); resyncing the clock");
                if let Err(sync_error) = self.rest.sync_time() {
                    log::warn!("binance ws-api: clock resync failed: {sync_error}");
                    return Err(error);
                }
                continue;
            }
            if let ExchangeError::RateLimited { retry_after, banned: false, .. } = &error {
                if !waited && self.retry_after_explicit && *retry_after <= self.max_retry_after_wait {
                    waited = true;
                    log::warn!("binance ws-api: {method} rate limited; retrying in {retry_after:?}");
                    std::thread::sleep(*retry_after);
                    continue;
                }
            }
            if let ExchangeError::Unknown { reason } = &error {
                log::warn!("binance ws-api: outcome unknown: {reason}");
            }
            return Err(error);
        }
    }

    /// Signs, sends and reads one request; returns the text of a 200's `result`.
    fn attempt(&mut self, method: &str, params: &str) -> Result<String, ExchangeError> {
        let mut connection = self.take_connection()?;
        let start = Instant::now();
        self.error_body.clear();
        let timestamp = self.rest.clock().now_ms();
        let id = self.next_id;
        self.next_id += 1;
        let text = self.signed_request(id, method, params, timestamp);
        let ahead = self.status_for.clone().map(|(symbol, cid)| self.status_ahead_request(&symbol, &cid));
        self.timing = RequestTiming { sign_ns: nanos(start.elapsed()), round_trip_ns: 0 };
        let sending = |e| lost(format!("{method}: the connection failed while sending: {e}"));
        if let Some(ahead) = ahead {
            // Queued: both frames leave in the one write of the flush below.
            connection.socket.write(Message::text(text)).map_err(sending)?;
            connection.socket.send(Message::text(ahead)).map_err(sending)?;
        } else {
            connection.socket.send(Message::text(text)).map_err(sending)?;
        }
        loop {
            let frame = match connection.socket.read() {
                Ok(Message::Text(frame)) => frame,
                Ok(Message::Close(_)) => {
                    return Err(lost(format!("{method}: the connection was closed before the answer")))
                }
                Ok(_) => continue,
                Err(e) => return Err(lost(format!("{method}: no answer: {e}"))),
            };
            let answer = match serde_json::from_str::<Answer<'_>>(frame.as_str()) {
                Ok(answer) if answer.id == id => answer,
                // The status sent ahead (kept), an event, or the answer to an earlier request.
                Ok(answer) => {
                    self.keep_if_status_ahead(&answer.id, frame.as_str());
                    continue;
                }
                _ => continue,
            };
            let answered = self.answered(method, answer);
            self.connection = Some(connection);
            return answered;
        }
    }

    /// `{"id","method","params"}` with `apiKey`, `recvWindow`, `timestamp` and the signature
    /// over all of them and `params` (percent-encoded `name=value&...`); on a logged-on session
    /// `recvWindow` and `timestamp` only.
    fn signed_request(&self, id: u64, method: &str, params: &str, timestamp: i64) -> String {
        use std::fmt::Write;
        let mut pairs = parse_query(params);
        if self.ed25519.is_some() {
            return ws_session::session_request(id, method, pairs, self.recv_window_ms, timestamp);
        }
        pairs.push(("apiKey".into(), self.api_key.expose().to_string()));
        pairs.push(("recvWindow".into(), self.recv_window_ms.to_string()));
        pairs.push(("timestamp".into(), timestamp.to_string()));
        // The signed payload, as `user_data::signature_payload` writes it: sorted by name.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut payload = String::with_capacity(params.len() + 160);
        for (name, value) in &pairs {
            let separator = if payload.is_empty() { "" } else { "&" };
            let _ = write!(payload, "{separator}{name}={value}");
        }
        let signature = self.signer.sign(payload.as_bytes(), b"");
        // The request, written directly (numbers for recvWindow and timestamp, strings else).
        let mut out = String::with_capacity(payload.len() + 256);
        let _ = write!(out, "{{\"id\":{id},\"method\":{},\"params\":{{", Value::from(method));
        for (name, value) in &pairs {
            match name.as_str() {
                "recvWindow" | "timestamp" => {
                    let _ = write!(out, "\"{name}\":{value},");
                }
                _ => {
                    let _ = write!(out, "{}:{},", Value::from(name.as_str()), Value::from(value.as_str()));
                }
            }
        }
        let _ = write!(out, "\"signature\":\"{}\"}}}}", signature.as_str());
        out
    }

    /// What an answer means: its rate limits recorded, its result or its error.
    fn answered(&mut self, method: &str, answer: Answer<'_>) -> Result<String, ExchangeError> {
        for limit in &answer.rate_limits {
            match (limit.rate_limit_type.as_str(), limit.interval.as_str(), limit.interval_num) {
                ("REQUEST_WEIGHT", "MINUTE", 1) => self.weight_1m = Some((limit.count, limit.limit)),
                ("ORDERS", "SECOND", 10) => self.order_count_10s = Some(limit.count),
                _ => {}
            }
        }
        log::debug!("binance ws-api: {method} -> {}", answer.status);
        if answer.status == 200 {
            return answer
                .result
                .map(|r| r.get().to_string())
                .ok_or_else(|| lost(format!("{method} answered 200 without a result")));
        }
        let error = answer.error.unwrap_or(Value::Null);
        let data = error.get("data");
        let retry_after_ms = data
            .and_then(|d| Some(d.get("retryAfter")?.as_i64()? - d.get("serverTime")?.as_i64()?))
            .map(|ms| ms.max(0));
        self.retry_after_explicit = retry_after_ms.is_some();
        let retry_after = retry_after_ms.map(|ms| ((ms + 999) / 1000).to_string());
        self.error_body = error.to_string();
        Err(error::classify_response(answer.status, retry_after.as_deref(), &self.error_body)
            .unwrap_or_else(|| lost(format!("{method} answered {} without a result", answer.status))))
    }

    /// A market order is verified by query next: its `order.status` goes with the placement.
    fn verify_ahead(&mut self, order: &NewOrder) {
        if order.order_type == ExchangeOrderType::Market {
            self.status_for = Some((order.symbol.clone(), order.client_order_id.clone()));
        }
    }

    /// After the placement: the status ahead is kept only for the order it placed.
    fn sent_ahead(&mut self, order: &NewOrder, placed: Option<&OrderReport>) {
        self.status_for = None;
        match placed {
            Some(report) => self.placed(&order.client_order_id, report),
            None => self.status_ahead = None,
        }
    }

    fn over_rest(&mut self) -> &mut BinanceGateway {
        self.last_over_rest = true;
        &mut self.rest
    }
}

fn query(build: impl FnOnce(&mut QueryBuilder<'_>)) -> String {
    let mut out = String::with_capacity(256);
    build(&mut QueryBuilder::new(&mut out));
    out
}

impl Exchange for WsApiGateway {
    fn order_limit_10s(&self) -> Option<u64> {
        self.rest.order_limit_10s()
    }

    fn weight_status(&self) -> Option<(u64, u64)> {
        self.weight_1m.or_else(|| self.rest.weight_status())
    }

    fn exchange_info(&mut self) -> Result<Vec<SymbolRules>, ExchangeError> {
        self.over_rest().exchange_info()
    }

    fn book_ticker(&mut self, symbol: &str) -> Result<BookTicker, ExchangeError> {
        self.over_rest().book_ticker(symbol)
    }

    fn place_order(&mut self, order: &NewOrder) -> Result<OrderReport, ExchangeError> {
        check_order(order)?;
        let stp = self.rest.stp_mode(&order.symbol);
        let params = query(|q| order_params(order, stp, q));
        self.verify_ahead(order);
        let placed = self.call("order.place", &params, |body| wire::parse_placement(body, order));
        self.sent_ahead(order, placed.as_ref().ok());
        placed
    }

    fn query_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        if let Some(report) = self.status_ahead_for(symbol, client_order_id) {
            return Ok(report);
        }
        let params = query(|q| {
            q.str("symbol", symbol).str("origClientOrderId", client_order_id);
        });
        self.call("order.status", &params, wire::parse_order)
    }

    fn cancel_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        let params = query(|q| {
            q.str("symbol", symbol).str("origClientOrderId", client_order_id);
        });
        self.call("order.cancel", &params, wire::parse_order)
    }

    fn cancel_replace(&mut self, cancel_client_order_id: &str, order: &NewOrder) -> Result<Replaced, ExchangeError> {
        check_order(order)?;
        let stp = self.rest.stp_mode(&order.symbol);
        let params = query(|q| {
            order_params(order, stp, q);
            q.str("cancelReplaceMode", "STOP_ON_FAILURE").str("cancelOrigClientOrderId", cancel_client_order_id);
        });
        self.verify_ahead(order);
        let replaced = self.call("order.cancelReplace", &params, |body| wire::parse_cancel_replace(body, order));
        self.sent_ahead(order, replaced.as_ref().ok().map(|(_, placed)| placed));
        match replaced {
            Ok((cancelled, placed)) => Ok(Replaced::Both { cancelled, placed }),
            Err(error) => cancel_replace_refusal(error, &self.error_body),
        }
    }

    fn open_orders(&mut self, symbol: Option<&str>) -> Result<Vec<OrderReport>, ExchangeError> {
        self.over_rest().open_orders(symbol)
    }

    fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        let params = query(|q| {
            q.str("symbol", symbol);
        });
        match self.call("openOrders.cancelAll", &params, wire::parse_orders) {
            // Nothing open: -2011 "Unknown order sent.", as over REST.
            Err(ExchangeError::Rejected { code: -2011, .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    fn all_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        self.over_rest().all_orders(symbol)
    }

    fn orders_between(&mut self, symbol: &str, start_ms: i64, end_ms: i64) -> Result<Vec<OrderReport>, ExchangeError> {
        self.over_rest().orders_between(symbol, start_ms, end_ms)
    }

    fn account(&mut self) -> Result<Vec<Balance>, ExchangeError> {
        self.over_rest().account()
    }

    fn order_trades(&mut self, symbol: &str, exchange_order_id: i64) -> Result<Vec<Fill>, ExchangeError> {
        self.over_rest().order_trades(symbol, exchange_order_id)
    }

    fn last_timing(&self) -> RequestTiming {
        if self.last_over_rest {
            self.rest.last_timing()
        } else {
            self.timing
        }
    }
}

#[path = "ws_session.rs"]
mod ws_session;
#[path = "ws_status_ahead.rs"]
mod ws_status_ahead;

#[cfg(test)]
#[path = "ws_api_tests.rs"]
mod tests;
