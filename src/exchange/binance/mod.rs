//! The Binance Spot REST gateway: one keep-alive HTTP connection, HMAC-signed requests, errors
//! classified by what the caller must do next (see [`error`]).
//!
//! - [`wire`]: Binance JSON in both directions (also used by the Binance-compatible server).
//! - [`sign`]: HMAC-SHA256 over exactly the bytes sent, the query builder, [`Secret`].
//! - [`error`]: transport errors and HTTP responses → [`ExchangeError`].
//! - [`clock`]: the server-time offset.
//! - [`user_data`], [`stream`]: the WebSocket API user data stream (push of order changes).
//! - [`market_stream`], [`quotes`]: top of book from the bookTicker stream, REST as its fallback.
//!
//! Behaviour worth knowing:
//! - Signed requests carry `timestamp` (local time + measured offset), `recvWindow` and the
//!   `X-MBX-APIKEY` header. Parameters go in the query string for every method, POST included
//!   (Binance reads a POST's parameters from the query string or the body): a POST with an
//!   empty body leaves in one write, where ureq writes a head and its body in two, each waking
//!   the server.
//! - A -1021 (timestamp outside recvWindow) was refused before the matching engine: the clock
//!   is resynced and the request is sent once more with the same parameters (same client id).
//! - A 429 whose `Retry-After` is present and at most `max_retry_after_wait` is waited out and
//!   the request sent once more (it was refused, so this is safe); otherwise `RateLimited`.
//! - `X-MBX-USED-WEIGHT-1M` and `X-MBX-ORDER-COUNT-10S` are recorded from every response.
//! - cancelReplace is the one endpoint whose error answers carry more than a code: its 400
//!   -2022 and 409 -2021 say in `data` what each part did. `request` classifies them like any
//!   other error; `cancel_replace` then reads the body `attempt` kept (`error_body`).

pub mod clock;
pub mod ed25519;
pub mod error;
pub mod market_stream;
pub mod quotes;
pub mod sign;
pub mod stream;
pub mod user_data;
pub mod wire;
pub mod ws_api;

#[cfg(test)]
mod tests_e2e;

pub use sign::{Secret, Signer};
pub use wire::{ExchangeInfo, RateLimit};

use crate::domain::order::{ExchangeOrderType, Fill, OrderReport};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, Exchange, ExchangeError, NewOrder, Replaced, RequestTiming};
use clock::ExchangeClock;
use error::UNKNOWN_OUTCOME_CODES;
use sign::QueryBuilder;
use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};
use wire::WireError;

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";
/// Request weight the IP used in the current minute.
pub const USED_WEIGHT_1M_HEADER: &str = "x-mbx-used-weight-1m";
/// Orders the account placed in the current 10 s.
pub const ORDER_COUNT_10S_HEADER: &str = "x-mbx-order-count-10s";
/// Largest response body read (exchangeInfo for every symbol is several MB).
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// How to reach Binance. `Debug` prints the key, the secret and the proxy as `***`.
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    /// Scheme and host, e.g. `https://api.binance.com` or `https://testnet.binance.vision`
    /// (a trailing `/` or `/api` is ignored); paths `/api/v3/...` are appended.
    pub base_url: String,
    pub api_key: Secret,
    pub api_secret: Secret,
    /// TCP connect + TLS handshake (default 2 s).
    pub connect_timeout: Duration,
    /// Each of send request, send body, receive response head, receive body (default 5 s).
    pub read_timeout: Duration,
    /// `recvWindow` sent with signed requests (default 5000 ms).
    pub recv_window_ms: u64,
    /// Longest `Retry-After` on a 429 that is waited out in place (default 2 s; zero: never).
    pub max_retry_after_wait: Duration,
    /// HTTP proxy URL; `None` (the default) means a direct connection whatever the environment.
    pub proxy: Option<Secret>,
    /// An Ed25519 key that logs the WebSocket API session on (`--transport ws`): its requests
    /// then carry no key or signature. `None`: every WebSocket request is HMAC-signed.
    pub ed25519: Option<ed25519::Ed25519Login>,
}

impl BinanceConfig {
    /// A configuration with the defaults above.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<Secret>, api_secret: impl Into<Secret>) -> Self {
        BinanceConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            recv_window_ms: 5000,
            max_retry_after_wait: Duration::from_secs(2),
            proxy: None,
            ed25519: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// The gateway. Calls block; one thread (the exchange I/O stage) owns it.
pub struct BinanceGateway {
    agent: ureq::Agent,
    base_url: String,
    api_key: Secret,
    signer: Signer,
    recv_window_ms: u64,
    max_retry_after_wait: Duration,
    clock: ExchangeClock,
    rules: Vec<SymbolRules>,
    /// Symbols whose `allowedSelfTradePreventionModes` lack [`SELF_TRADE_PREVENTION_MODE`]:
    /// their orders are sent without a mode (the symbol's default), not refused with -1130.
    stp_refused: HashSet<String>,
    rate_limits: Vec<RateLimit>,
    used_weight_1m: Option<u32>,
    order_count_10s: Option<u32>,
    timing: RequestTiming,
    /// When the last request went out, for `round_trip_ns`.
    sent_at: Instant,
    /// The last 429 carried a `Retry-After` in seconds.
    retry_after_explicit: bool,
    /// Reused buffers: the signed payload and the URL.
    payload: String,
    url: String,
    /// The body of the last attempt's non-2xx answer (empty otherwise). `request` turns such an
    /// answer into an [`ExchangeError`] before any endpoint parser sees it, which is right for
    /// every endpoint but cancelReplace: its 400/409 bodies carry `data` saying what each part
    /// did. Keeping the body here lets `cancel_replace` read it without a second path through
    /// `request` (with its -1021 resync and 429 wait) for one endpoint.
    error_body: String,
}

impl fmt::Debug for BinanceGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceGateway")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("clock_offset_ms", &self.clock.offset_ms())
            .field("symbols", &self.rules.len())
            .field("used_weight_1m", &self.used_weight_1m)
            .field("order_count_10s", &self.order_count_10s)
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn normalize_base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix("/api").unwrap_or(url).to_string()
}

impl BinanceGateway {
    /// Builds the gateway without touching the network (clock offset zero, no rules): for
    /// tools and tests. The engine uses [`BinanceGateway::connect`].
    pub fn new(config: BinanceConfig) -> Result<Self, ExchangeError> {
        let proxy = match &config.proxy {
            Some(url) => Some(
                ureq::Proxy::new(url.expose())
                    .map_err(|_| ExchangeError::NotSent { reason: "invalid proxy URL in the configuration".into() })?,
            ),
            None => None,
        };
        // Per-phase timeouts only: a global/per-call/resolve timeout makes ureq's resolver
        // spawn a thread per request. Keep pooled connections for 5 min instead of 15 s.
        let agent_config = ureq::Agent::config_builder()
            .timeout_connect(Some(config.connect_timeout))
            .timeout_send_request(Some(config.read_timeout))
            .timeout_send_body(Some(config.read_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_recv_body(Some(config.read_timeout))
            .max_idle_age(Duration::from_secs(300))
            .max_idle_connections_per_host(4)
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .no_delay(true)
            .user_agent(concat!("genesis/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(BinanceGateway {
            agent: ureq::Agent::new_with_config(agent_config),
            base_url: normalize_base_url(&config.base_url),
            signer: Signer::new(&config.api_secret),
            api_key: config.api_key,
            recv_window_ms: config.recv_window_ms,
            max_retry_after_wait: config.max_retry_after_wait,
            clock: ExchangeClock::default(),
            rules: Vec::new(),
            stp_refused: HashSet::new(),
            rate_limits: Vec::new(),
            used_weight_1m: None,
            order_count_10s: None,
            timing: RequestTiming::default(),
            sent_at: Instant::now(),
            retry_after_explicit: false,
            payload: String::with_capacity(512),
            url: String::with_capacity(512),
            error_body: String::new(),
        })
    }

    /// Connects: measures the server-time offset (`GET /api/v3/time`) and loads exchangeInfo
    /// (rules and rate limits, cached).
    pub fn connect(config: BinanceConfig) -> Result<Self, ExchangeError> {
        let mut gateway = BinanceGateway::new(config)?;
        gateway.sync_time()?;
        gateway.exchange_info()?;
        Ok(gateway)
    }

    /// Measures the offset between the server's clock and ours (server − local midpoint) and
    /// uses it from now on. Returns the offset in ms.
    pub fn sync_time(&mut self) -> Result<i64, ExchangeError> {
        let before = clock::local_ms();
        let server = self.request(Method::Get, "/api/v3/time", false, |_| {}, wire::parse_server_time)?;
        let after = clock::local_ms();
        let offset = clock::offset_ms(before, server, after);
        self.clock.set_offset(offset);
        log::debug!("binance: clock offset {offset} ms");
        Ok(offset)
    }

    /// Server time minus local time, ms, as last measured.
    /// The clock signed requests use (shared: a resync moves every clone).
    pub fn clock(&self) -> ExchangeClock {
        self.clock.clone()
    }

    pub fn clock_offset_ms(&self) -> i64 {
        self.clock.offset_ms()
    }

    /// The cached rules of every symbol (from the last exchangeInfo).
    pub fn rules(&self) -> &[SymbolRules] {
        &self.rules
    }

    /// The STP mode to send with an order on `symbol`: ours, unless the symbol does not allow
    /// it (then none: the symbol's default applies).
    pub(super) fn stp_mode(&self, symbol: &str) -> Option<&'static str> {
        (!self.stp_refused.contains(symbol)).then_some(SELF_TRADE_PREVENTION_MODE)
    }

    /// The cached rules of one symbol.
    pub fn symbol_rules(&self, symbol: &str) -> Option<&SymbolRules> {
        self.rules.iter().find(|r| r.symbol == symbol)
    }

    /// The exchange's rate limits (from the last exchangeInfo).
    pub fn rate_limits(&self) -> &[RateLimit] {
        &self.rate_limits
    }

    /// The ORDERS limit per 10 s, if exchangeInfo gave one.
    pub fn order_limit_10s(&self) -> Option<u64> {
        wire::find_rate_limit(&self.rate_limits, "ORDERS", "SECOND", 10)
    }

    /// The REQUEST_WEIGHT limit per minute, if exchangeInfo gave one.
    pub fn weight_limit_1m(&self) -> Option<u64> {
        wire::find_rate_limit(&self.rate_limits, "REQUEST_WEIGHT", "MINUTE", 1)
    }

    /// `X-MBX-USED-WEIGHT-1M` of the last response that carried it.
    pub fn used_weight_1m(&self) -> Option<u32> {
        self.used_weight_1m
    }

    /// `X-MBX-ORDER-COUNT-10S` of the last response that carried it.
    pub fn order_count_10s(&self) -> Option<u32> {
        self.order_count_10s
    }

    /// One request, with the -1021 resync and the short-429 wait; the body parsed by `parse`
    /// (a 2xx body that does not parse is `Unknown`).
    fn request<T>(
        &mut self,
        method: Method,
        path: &str,
        signed: bool,
        params: impl Fn(&mut QueryBuilder<'_>),
        parse: impl Fn(&str) -> Result<T, WireError>,
    ) -> Result<T, ExchangeError> {
        let mut resynced = false;
        let mut waited = false;
        loop {
            let error = match self.attempt(method, path, signed, &params) {
                Ok(body) => {
                    let parsed = parse(&body);
                    self.timing.round_trip_ns = nanos(self.sent_at.elapsed());
                    return parsed.map_err(|e| ExchangeError::Unknown {
                        reason: format!("unreadable response to {} {path}: {e}", method.as_str()),
                    });
                }
                Err(error) => error,
            };
            if signed && !resynced && error.is_timestamp_error() {
                // Refused before the matching engine: resync, then the same request once more.
                resynced = true;
                let method = method.as_str();
                log::warn!("binance: {method} {path} refused for its timestamp (-1021); resyncing the clock");
                if let Err(sync_error) = self.sync_time() {
                    log::warn!("binance: clock resync failed: {sync_error}");
                    return Err(error);
                }
                continue;
            }
            if let ExchangeError::RateLimited { retry_after, banned: false, .. } = &error {
                if !waited && self.retry_after_explicit && *retry_after <= self.max_retry_after_wait {
                    waited = true;
                    log::warn!("binance: {} {path} rate limited; retrying in {retry_after:?}", method.as_str());
                    std::thread::sleep(*retry_after);
                    continue;
                }
            }
            return Err(error);
        }
    }

    /// Builds, signs, sends and reads one request; returns the body of a 2xx.
    fn attempt(
        &mut self,
        method: Method,
        path: &str,
        signed: bool,
        params: &impl Fn(&mut QueryBuilder<'_>),
    ) -> Result<String, ExchangeError> {
        let start = Instant::now();
        self.error_body.clear();
        let timestamp = if signed { self.clock.now_ms() } else { 0 };
        self.payload.clear();
        {
            let mut query = QueryBuilder::new(&mut self.payload);
            params(&mut query);
            if signed {
                query.display("recvWindow", self.recv_window_ms).display("timestamp", timestamp);
            }
        }
        if signed {
            self.signer.append_signature(&mut self.payload);
        }
        self.url.clear();
        self.url.push_str(&self.base_url);
        self.url.push_str(path);
        if !self.payload.is_empty() {
            self.url.push('?');
            self.url.push_str(&self.payload);
        }
        self.timing = RequestTiming { sign_ns: nanos(start.elapsed()), round_trip_ns: 0 };
        self.sent_at = Instant::now();

        let url = self.url.as_str();
        let key = self.api_key.expose();
        let result = match method {
            Method::Get => {
                let mut r = self.agent.get(url);
                if signed {
                    r = r.header(API_KEY_HEADER, key);
                }
                r.call()
            }
            Method::Delete => {
                let mut r = self.agent.delete(url);
                if signed {
                    r = r.header(API_KEY_HEADER, key);
                }
                r.call()
            }
            Method::Post => {
                let mut r = self.agent.post(url);
                if signed {
                    r = r.header(API_KEY_HEADER, key);
                }
                r.send_empty()
            }
        };
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                let error = error::classify_transport(&e);
                log::debug!("binance: {} {path}: {error}", method.as_str());
                return Err(error);
            }
        };
        let status = response.status().as_u16();
        self.track_rate_limits(response.headers());
        let retry_after = if status == 429 || status == 418 {
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned)
        } else {
            None
        };
        self.retry_after_explicit = retry_after.as_deref().is_some_and(|v| v.trim().parse::<u64>().is_ok());
        let ok = (200..300).contains(&status);
        let body = match response.body_mut().with_config().limit(MAX_BODY_BYTES).read_to_string() {
            Ok(body) => body,
            Err(e) if ok => {
                return Err(ExchangeError::Unknown { reason: format!("HTTP {status} but the body was lost: {e}") })
            }
            // The status already says what happened; the body only adds the Binance code.
            Err(_) => String::new(),
        };
        log::debug!("binance: {} {path} -> {status}", method.as_str());
        match error::classify_response(status, retry_after.as_deref(), &body) {
            None => Ok(body),
            Some(error) => {
                self.error_body = body;
                Err(error)
            }
        }
    }

    /// A cancel-replace whose request failed: a 400 -2022 or a 409 whose kept body has the
    /// documented `data` says which part failed; anything else stays the error `request` made.
    /// A 409 without that shape is `Unknown` (the cancel happened, the rest is unclear); a 400
    /// without it, the plain rejection. A part refused with an unknown-outcome code (-1007,
    /// say) makes the whole request `Unknown`.
    fn cancel_replace_refusal(&self, error: ExchangeError) -> Result<Replaced, ExchangeError> {
        cancel_replace_refusal(error, &self.error_body)
    }

    fn track_rate_limits(&mut self, headers: &ureq::http::HeaderMap) {
        let read =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u32>().ok());
        if let Some(weight) = read(USED_WEIGHT_1M_HEADER) {
            self.used_weight_1m = Some(weight);
        }
        if let Some(count) = read(ORDER_COUNT_10S_HEADER) {
            self.order_count_10s = Some(count);
        }
    }
}

/// A cancel-replace whose request failed, read from the error answer's body (REST and the
/// WebSocket API carry the same `{code, msg, data}`): see [`BinanceGateway::cancel_replace`].
pub(super) fn cancel_replace_refusal(error: ExchangeError, error_body: &str) -> Result<Replaced, ExchangeError> {
    use wire::CancelReplaceFailure as F;

    let http_status = match &error {
        ExchangeError::Rejected { http_status: 400, code: -2022, .. } => 400,
        ExchangeError::Rejected { http_status: 409, .. } => 409,
        _ => return Err(error),
    };
    let part = |code: i64, msg: String, what: &str| {
        if UNKNOWN_OUTCOME_CODES.contains(&code) {
            Err(ExchangeError::Unknown { reason: format!("cancelReplace: the {what} answered ({code}): {msg}") })
        } else {
            Ok(ExchangeError::Rejected { http_status, code, msg })
        }
    };
    match (http_status, wire::parse_cancel_replace_failure(error_body)) {
        (400, Ok(F::CancelRefused { code, msg })) => Ok(Replaced::CancelRefused { error: part(code, msg, "cancel")? }),
        (409, Ok(F::PlaceRefused { cancelled, code, msg })) => {
            Ok(Replaced::PlaceRefused { cancelled, error: part(code, msg, "new order")? })
        }
        (409, parsed) => {
            let what = match parsed {
                Ok(other) => format!("a body that does not match it: {other:?}"),
                Err(e) => e.to_string(),
            };
            Err(ExchangeError::Unknown {
                reason: format!("cancelReplace answered 409 (cancelled, new order refused) with {what}: {error}"),
            })
        }
        _ => Err(error),
    }
}

/// The parameters of `POST /api/v3/order` for `order`, before recvWindow/timestamp.
pub(super) fn order_params(order: &NewOrder, stp_mode: Option<&str>, q: &mut QueryBuilder<'_>) {
    q.str("symbol", &order.symbol).str("side", order.side.as_str()).str("type", order.order_type.as_str());
    let limit_type = matches!(
        order.order_type,
        ExchangeOrderType::Limit | ExchangeOrderType::StopLossLimit | ExchangeOrderType::TakeProfitLimit
    );
    if limit_type {
        q.str("timeInForce", "GTC");
    }
    q.display("quantity", order.quantity.normalize());
    if let Some(price) = order.price {
        q.display("price", price.normalize());
    }
    if let Some(stop) = order.stop_price {
        q.display("stopPrice", stop.normalize());
    }
    q.str("newClientOrderId", &order.client_order_id).str("newOrderRespType", "FULL");
    if let Some(mode) = stp_mode {
        q.str("selfTradePreventionMode", mode);
    }
}

/// The symbols whose listed modes lack ours (a symbol that lists none is taken to allow it).
fn stp_refused(allowed: &[(String, Vec<String>)]) -> HashSet<String> {
    allowed
        .iter()
        .filter(|(_, modes)| !modes.is_empty() && !modes.iter().any(|m| m == SELF_TRADE_PREVENTION_MODE))
        .map(|(symbol, _)| symbol.clone())
        .collect()
}

/// Sent with every order rather than left to the symbol's default (`EXPIRE_MAKER` on most):
/// STP acts by the taker's mode, and Genesis's takers are its entries and exits, so a taker
/// that would trade with one of Genesis's own resting orders (a triggered stop-limit) expires
/// itself (`EXPIRED_IN_MATCH`) and the protection stays on the book. A symbol whose
/// `allowedSelfTradePreventionModes` lacks it gets no mode (its default), not a -1130.
pub const SELF_TRADE_PREVENTION_MODE: &str = "EXPIRE_TAKER";

/// Refuses locally what Binance would refuse with -1102 (a mandatory parameter missing).
pub(super) fn check_order(order: &NewOrder) -> Result<(), ExchangeError> {
    use ExchangeOrderType as T;
    let needs_price = matches!(order.order_type, T::Limit | T::StopLossLimit | T::TakeProfitLimit | T::LimitMaker);
    let needs_stop = matches!(order.order_type, T::StopLoss | T::StopLossLimit | T::TakeProfit | T::TakeProfitLimit);
    let missing = if needs_price && order.price.is_none() {
        Some("price")
    } else if needs_stop && order.stop_price.is_none() {
        Some("stopPrice")
    } else {
        None
    };
    match missing {
        Some(param) => Err(ExchangeError::Rejected {
            http_status: 0,
            code: -1102,
            msg: format!(
                "Mandatory parameter '{param}' was not sent (a {} order needs it).",
                order.order_type.as_str()
            ),
        }),
        None => Ok(()),
    }
}

impl Exchange for BinanceGateway {
    fn order_limit_10s(&self) -> Option<u64> {
        BinanceGateway::order_limit_10s(self)
    }

    fn weight_status(&self) -> Option<(u64, u64)> {
        Some((u64::from(self.used_weight_1m()?), self.weight_limit_1m()?))
    }

    fn exchange_info(&mut self) -> Result<Vec<SymbolRules>, ExchangeError> {
        let info = self.request(Method::Get, "/api/v3/exchangeInfo", false, |_| {}, wire::parse_exchange_info)?;
        self.stp_refused = stp_refused(&info.allowed_stp_modes);
        log::debug!("binance: {} symbols refuse {SELF_TRADE_PREVENTION_MODE}", self.stp_refused.len());
        self.rules = info.symbols;
        self.rate_limits = info.rate_limits;
        Ok(self.rules.clone())
    }

    fn book_ticker(&mut self, symbol: &str) -> Result<BookTicker, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/ticker/bookTicker",
            false,
            |q| {
                q.str("symbol", symbol);
            },
            wire::parse_book_ticker,
        )
    }

    fn place_order(&mut self, order: &NewOrder) -> Result<OrderReport, ExchangeError> {
        check_order(order)?;
        let stp = self.stp_mode(&order.symbol);
        self.request(
            Method::Post,
            "/api/v3/order",
            true,
            |q| order_params(order, stp, q),
            |body| wire::parse_placement(body, order),
        )
    }

    fn query_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/order",
            true,
            |q| {
                q.str("symbol", symbol).str("origClientOrderId", client_order_id);
            },
            wire::parse_order,
        )
    }

    fn cancel_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        self.request(
            Method::Delete,
            "/api/v3/order",
            true,
            |q| {
                q.str("symbol", symbol).str("origClientOrderId", client_order_id);
            },
            wire::parse_order,
        )
    }

    fn cancel_replace(&mut self, cancel_client_order_id: &str, order: &NewOrder) -> Result<Replaced, ExchangeError> {
        check_order(order)?;
        let stp = self.stp_mode(&order.symbol);
        let result = self.request(
            Method::Post,
            "/api/v3/order/cancelReplace",
            true,
            |q| {
                order_params(order, stp, q);
                q.str("cancelReplaceMode", "STOP_ON_FAILURE").str("cancelOrigClientOrderId", cancel_client_order_id);
            },
            |body| wire::parse_cancel_replace(body, order),
        );
        match result {
            Ok((cancelled, placed)) => Ok(Replaced::Both { cancelled, placed }),
            Err(error) => self.cancel_replace_refusal(error),
        }
    }

    fn open_orders(&mut self, symbol: Option<&str>) -> Result<Vec<OrderReport>, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/openOrders",
            true,
            |q| {
                if let Some(symbol) = symbol {
                    q.str("symbol", symbol);
                }
            },
            wire::parse_orders,
        )
    }

    fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        let result = self.request(
            Method::Delete,
            "/api/v3/openOrders",
            true,
            |q| {
                q.str("symbol", symbol);
            },
            wire::parse_orders,
        );
        match result {
            // Nothing open: Binance answers 400 / -2011 "Unknown order sent.".
            Err(ExchangeError::Rejected { http_status: 400, code: -2011, .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    fn all_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/allOrders",
            true,
            |q| {
                q.str("symbol", symbol);
            },
            wire::parse_orders,
        )
    }

    fn orders_between(&mut self, symbol: &str, start_ms: i64, end_ms: i64) -> Result<Vec<OrderReport>, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/allOrders",
            true,
            |q| {
                q.str("symbol", symbol)
                    .display("startTime", start_ms)
                    .display("endTime", end_ms)
                    .display("limit", crate::exchange::ORDERS_PAGE);
            },
            wire::parse_orders,
        )
    }

    fn account(&mut self) -> Result<Vec<Balance>, ExchangeError> {
        self.request(Method::Get, "/api/v3/account", true, |_| {}, wire::parse_account)
    }

    fn order_trades(&mut self, symbol: &str, exchange_order_id: i64) -> Result<Vec<Fill>, ExchangeError> {
        self.request(
            Method::Get,
            "/api/v3/myTrades",
            true,
            |q| {
                q.str("symbol", symbol).display("orderId", exchange_order_id);
            },
            wire::parse_trades,
        )
    }

    fn last_timing(&self) -> RequestTiming {
        self.timing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Decimal;
    use crate::domain::order::Side;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn order(order_type: ExchangeOrderType) -> NewOrder {
        NewOrder {
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            order_type,
            quantity: d("0.00100000"),
            price: None,
            stop_price: None,
            client_order_id: "g1-S0123".into(),
        }
    }

    fn params(order: &NewOrder) -> String {
        let mut out = String::new();
        order_params(order, Some(SELF_TRADE_PREVENTION_MODE), &mut QueryBuilder::new(&mut out));
        out
    }

    #[test]
    fn a_symbol_that_does_not_allow_our_stp_mode_gets_none_sent() {
        let allowed = vec![
            ("AAAUSDT".to_string(), vec!["EXPIRE_MAKER".to_string(), "EXPIRE_BOTH".to_string()]),
            ("BBBUSDT".to_string(), vec!["EXPIRE_TAKER".to_string()]),
            ("CCCUSDT".to_string(), vec![]),
        ];
        let refused = stp_refused(&allowed);
        assert_eq!(refused, HashSet::from(["AAAUSDT".to_string()]));
        let mut gateway = BinanceGateway::new(BinanceConfig::new("http://127.0.0.1:9", "k", "s")).unwrap();
        gateway.stp_refused = refused;
        assert_eq!(gateway.stp_mode("AAAUSDT"), None);
        assert_eq!(gateway.stp_mode("BBBUSDT"), Some("EXPIRE_TAKER"));
        let mut out = String::new();
        order_params(&order(ExchangeOrderType::Market), None, &mut QueryBuilder::new(&mut out));
        assert!(!out.contains("selfTradePreventionMode"), "{out}");
    }

    #[test]
    fn market_order_sends_quantity_client_id_and_full_response_type() {
        assert_eq!(
            params(&order(ExchangeOrderType::Market)),
            "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.001&newClientOrderId=g1-S0123&newOrderRespType=FULL&selfTradePreventionMode=EXPIRE_TAKER"
        );
    }

    #[test]
    fn stop_orders_send_stop_price_and_stop_limits_gtc_and_price() {
        let mut stop = order(ExchangeOrderType::StopLoss);
        stop.stop_price = Some(d("63700.36"));
        assert_eq!(
            params(&stop),
            "symbol=BTCUSDT&side=SELL&type=STOP_LOSS&quantity=0.001&stopPrice=63700.36&newClientOrderId=g1-S0123&newOrderRespType=FULL&selfTradePreventionMode=EXPIRE_TAKER"
        );
        let mut stop_limit = order(ExchangeOrderType::StopLossLimit);
        stop_limit.stop_price = Some(d("63700"));
        stop_limit.price = Some(d("63381.50"));
        assert_eq!(
            params(&stop_limit),
            "symbol=BTCUSDT&side=SELL&type=STOP_LOSS_LIMIT&timeInForce=GTC&quantity=0.001&price=63381.5&stopPrice=63700&newClientOrderId=g1-S0123&newOrderRespType=FULL&selfTradePreventionMode=EXPIRE_TAKER"
        );
    }

    #[test]
    fn orders_missing_a_mandatory_price_are_refused_before_sending() {
        let e = check_order(&order(ExchangeOrderType::StopLossLimit)).unwrap_err();
        assert!(matches!(e, ExchangeError::Rejected { code: -1102, .. }));
        assert_eq!(check_order(&order(ExchangeOrderType::Market)), Ok(()));
    }

    #[test]
    fn stop_orders_missing_their_stop_price_are_refused_before_sending() {
        for order_type in [ExchangeOrderType::StopLoss, ExchangeOrderType::TakeProfit] {
            let e = check_order(&order(order_type)).unwrap_err();
            assert!(
                matches!(&e, ExchangeError::Rejected { code: -1102, msg, .. } if msg.contains("'stopPrice'")),
                "{e:?}"
            );
        }
        let mut stop = order(ExchangeOrderType::StopLoss);
        stop.stop_price = Some(d("63700"));
        assert_eq!(check_order(&stop), Ok(()));
    }

    #[test]
    fn methods_are_named_as_http_spells_them() {
        assert_eq!([Method::Get, Method::Post, Method::Delete].map(Method::as_str), ["GET", "POST", "DELETE"]);
    }

    #[test]
    fn config_debug_hides_key_secret_and_proxy() {
        let mut config = BinanceConfig::new(
            "https://api.binance.com",
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        );
        config.proxy = Some(Secret::from("http://user:hunter2@proxy:3128"));
        let text = format!("{config:?}");
        assert!(!text.contains("vmPUZE6mv9SD5VNH"), "{text}");
        assert!(!text.contains("NhqPtmdSJYdKjVHj"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("***"));
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.read_timeout, Duration::from_secs(5));
        assert_eq!(config.recv_window_ms, 5000);
        assert_eq!(config.max_retry_after_wait, Duration::from_secs(2));
        let gateway = BinanceGateway::new(config).unwrap();
        let text = format!("{gateway:?}");
        assert!(!text.contains("vmPUZE6mv9SD5VNH"), "{text}");
        assert!(!text.contains("NhqPtmdSJYdKjVHj"), "{text}");
    }

    #[test]
    fn base_url_ignores_trailing_slash_and_api_suffix() {
        assert_eq!(normalize_base_url("https://testnet.binance.vision/api"), "https://testnet.binance.vision");
        assert_eq!(normalize_base_url("https://api.binance.com/"), "https://api.binance.com");
    }
}
