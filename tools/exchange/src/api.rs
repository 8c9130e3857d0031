//! Routing and the endpoint handlers. A request arrives as an [`HttpRequest`] (no sockets
//! here) and leaves as a [`Reply`]: status, headers, JSON, and what the server does after
//! (answer, drop the connection, answer late). Handlers are functions of the parameters, the
//! simulator and the server clock, so they are tested without a network.
//!
//! Order of checks for `/api/v3/*`: route → request weight (429 -1003) → API key and signature
//! (SIGNED only) → fault plan → timestamp (SIGNED only) → order count (placements and
//! cancel-replaces, 429 -1015) → the simulator → faults that act after execution.

use crate::auth::{self, Credentials};
use crate::faults::{Fault, FaultKind, FaultPlan, Step};
use crate::limits::{Exceeded, Limits};
use crate::time_in_force::{Tif, TifBook};
use genesis::domain::money::{round_down_to_step, Decimal};
use genesis::domain::order::{ExchangeOrderType, OrderReport, Side};
use genesis::domain::prng;
use genesis::exchange::binance::sign::parse_query;
use genesis::exchange::binance::user_data::{event_message, execution_reports_json, Change};
use genesis::exchange::binance::wire::{
    account_json, book_ticker_json, cancel_json, error_json, exchange_info_json, fmt_decimal, order_ack_json,
    order_json, order_query_json, server_time_json, RateLimit,
};
use genesis::exchange::sim::{OrderRef, SimError, Simulator, Trade};
use genesis::exchange::NewOrder;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

pub const MSG_TIMEOUT: &str =
    "Timeout waiting for response from backend server. Send status unknown; execution status unknown.";
pub const MSG_INSUFFICIENT: &str = "Account has insufficient balance for requested action.";

// ---------------------------------------------------------------------------------------------
// Errors and parameters
// ---------------------------------------------------------------------------------------------

/// A Binance error answer: HTTP status, code, message, `Retry-After` for 429/418, and the
/// `data` object a failed cancel-replace carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: i64,
    pub msg: String,
    pub retry_after_secs: Option<u64>,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: i64, msg: impl Into<String>) -> ApiError {
        ApiError { status, code, msg: msg.into(), retry_after_secs: None, data: None }
    }
    /// HTTP 400.
    pub fn bad(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError::new(400, code, msg)
    }
    pub fn mandatory(name: &str) -> ApiError {
        ApiError::bad(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
    }
    pub fn illegal(name: &str, range: &str) -> ApiError {
        ApiError::bad(-1100, format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."))
    }
    pub fn not_required(name: &str) -> ApiError {
        ApiError::bad(-1106, format!("Parameter '{name}' sent when not required."))
    }
    fn invalid_symbol() -> ApiError {
        ApiError::bad(-1121, "Invalid symbol.")
    }
    fn too_much_weight(retry_after_secs: u64, limit: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                429,
                -1003,
                format!(
                    "Too much request weight used; current limit is {limit} request \
                     weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid \
                     polling the API."
                ),
            )
        }
    }
    fn banned(until_ms: i64, retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                418,
                -1003,
                format!(
                    "Way too much request weight used; IP banned until {until_ms}. Please use \
                     WebSocket Streams for live updates to avoid bans."
                ),
            )
        }
    }
    fn too_many_orders(limit: u64, retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(429, -1015, format!("Too many new orders; current limit is {limit} orders per 10 SECOND."))
        }
    }

    pub fn reply(&self) -> Reply {
        let mut body = error_json(self.code, &self.msg);
        if let Some(data) = &self.data {
            body["data"] = data.clone();
        }
        let mut reply = Reply::json(self.status, body);
        if let Some(secs) = self.retry_after_secs {
            reply.headers.push(("Retry-After", secs.to_string()));
        }
        reply
    }
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> ApiError {
        ApiError::new(e.http_status, e.code, e.msg)
    }
}

/// `^[0-9]{1,20}(\.[0-9]{1,20})?$` as a Decimal; anything else is `None`.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return None;
    }
    text.parse().ok()
}

/// Request parameters from the query string and the form body; where both carry one, the
/// query string wins (and within one source, the first occurrence).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn from_sources(query: &str, body: Option<&str>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let sources = std::iter::once(query).chain(body);
        for source in sources {
            for (k, v) in parse_query(source) {
                if !pairs.iter().any(|(pk, _)| *pk == k) {
                    pairs.push((k, v));
                }
            }
        }
        Params { pairs }
    }

    /// The value as sent, empty included.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The names sent, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::mandatory(name))
    }

    pub fn decimal(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => {
                parse_decimal(text).map(Some).ok_or_else(|| ApiError::illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$"))
            }
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .map(Some)
                .ok_or_else(|| ApiError::illegal(name, "^[0-9]{1,20}$")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// What the server does once the reply is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Respond,
    /// Close the connection without writing anything.
    Drop,
    /// Wait, then respond.
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub after: After,
}

impl Reply {
    pub fn json(status: u16, value: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: value.to_string(), after: After::Respond }
    }
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP request as the server read it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    /// The raw query string, as received (no `?`).
    pub query: &'a str,
    pub body: &'a str,
    pub content_type: Option<&'a str>,
    /// `X-MBX-APIKEY`.
    pub api_key: Option<&'a str>,
    /// The peer is on the loopback interface (required for `/sim/*`).
    pub loopback: bool,
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

/// Generated client order ids (22 characters of `[A-Za-z0-9]`, like Binance's).
#[derive(Debug)]
pub struct IdGen {
    base: u64,
    counter: AtomicU64,
}

/// SplitMix64's output for `x`'s counter step (the project's one PRNG, `domain::prng`).
fn splitmix(x: u64) -> u64 {
    prng::mix64(x.wrapping_add(prng::GOLDEN_GAMMA))
}

impl IdGen {
    pub fn new(base: u64) -> IdGen {
        IdGen { base, counter: AtomicU64::new(0) }
    }

    pub fn next_id(&self) -> String {
        const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = splitmix(self.base ^ n);
        let lo = splitmix(hi ^ n.rotate_left(32));
        let mut v = (u128::from(hi) << 64) | u128::from(lo);
        let mut out = String::with_capacity(22);
        for _ in 0..22 {
            out.push(char::from(ALPHABET[(v % 62) as usize]));
            v /= 62;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Time,
    ExchangeInfo,
    BookTicker,
    TickerPrice,
    Ticker24hr,
    AvgPrice,
    Klines,
    Trades,
    AggTrades,
    Depth,
    NewOrder,
    TestOrder,
    CancelReplace,
    QueryOrder,
    CancelOrder,
    OpenOrders,
    CancelOpenOrders,
    AllOrders,
    MyTrades,
    Account,
}

/// The route's answer when nothing matched.
enum NoRoute {
    NotFound,
    MethodNotAllowed,
}

impl Endpoint {
    fn route(method: &str, path: &str) -> Result<Endpoint, NoRoute> {
        use Endpoint::*;
        let path = path.strip_suffix('/').unwrap_or(path);
        let candidates: &[(&str, Endpoint)] = match path {
            "/api/v3/ping" => &[("GET", Ping)],
            "/api/v3/time" => &[("GET", Time)],
            "/api/v3/exchangeInfo" => &[("GET", ExchangeInfo)],
            "/api/v3/ticker/bookTicker" => &[("GET", BookTicker)],
            "/api/v3/ticker/price" => &[("GET", TickerPrice)],
            "/api/v3/ticker/24hr" => &[("GET", Ticker24hr)],
            "/api/v3/avgPrice" => &[("GET", AvgPrice)],
            "/api/v3/klines" | "/api/v3/uiKlines" => &[("GET", Klines)],
            "/api/v3/trades" | "/api/v3/historicalTrades" => &[("GET", Trades)],
            "/api/v3/aggTrades" => &[("GET", AggTrades)],
            "/api/v3/depth" => &[("GET", Depth)],
            "/api/v3/order" => &[("POST", NewOrder), ("GET", QueryOrder), ("DELETE", CancelOrder)],
            "/api/v3/order/test" => &[("POST", TestOrder)],
            "/api/v3/order/cancelReplace" => &[("POST", CancelReplace)],
            "/api/v3/openOrders" => &[("GET", OpenOrders), ("DELETE", CancelOpenOrders)],
            "/api/v3/allOrders" => &[("GET", AllOrders)],
            "/api/v3/myTrades" => &[("GET", MyTrades)],
            "/api/v3/account" => &[("GET", Account)],
            _ => return Err(NoRoute::NotFound),
        };
        candidates.iter().find(|(m, _)| *m == method).map(|(_, e)| *e).ok_or(NoRoute::MethodNotAllowed)
    }

    pub fn signed(self) -> bool {
        use Endpoint::*;
        matches!(
            self,
            NewOrder
                | TestOrder
                | CancelReplace
                | QueryOrder
                | CancelOrder
                | OpenOrders
                | CancelOpenOrders
                | AllOrders
                | MyTrades
                | Account
        )
    }

    /// Request weight, as in the reference.
    pub fn weight(self, p: &Params) -> u64 {
        use Endpoint::*;
        let with_symbol = p.get("symbol").is_some();
        match self {
            Ping | Time => 1,
            ExchangeInfo | AllOrders | Account => 20,
            BookTicker | TickerPrice => {
                if with_symbol {
                    2
                } else {
                    4
                }
            }
            Ticker24hr => crate::market_data::ticker_24hr_weight(p),
            AvgPrice | Klines => 2,
            Trades => 25,
            AggTrades => 4,
            Depth => match depth_limit(p) {
                0..=100 => 5,
                101..=500 => 25,
                501..=1000 => 50,
                _ => 250,
            },
            NewOrder | CancelReplace | CancelOrder | CancelOpenOrders => 1,
            TestOrder => {
                if p.get("computeCommissionRates") == Some("true") {
                    20
                } else {
                    1
                }
            }
            QueryOrder => 4,
            OpenOrders => {
                if with_symbol {
                    6
                } else {
                    80
                }
            }
            MyTrades => {
                if p.get("orderId").is_some() {
                    5
                } else {
                    20
                }
            }
        }
    }

    /// Counted against the ORDERS limits (`--order-limit`, the daily count), as Binance counts
    /// them: a placement, and a cancel-replace (even when its new order is not attempted).
    fn places_orders(self) -> bool {
        matches!(self, Endpoint::NewOrder | Endpoint::CancelReplace)
    }

    /// The fault step this request is.
    pub fn step(self, p: &Params) -> Option<Step> {
        match self {
            Endpoint::NewOrder => match p.get("type") {
                Some("MARKET") => Some(Step::Place),
                Some("STOP_LOSS") | Some("STOP_LOSS_LIMIT") => Some(Step::Stop),
                _ => None,
            },
            Endpoint::CancelReplace => Some(Step::CancelReplace),
            Endpoint::QueryOrder => Some(Step::Query),
            Endpoint::CancelOrder => Some(Step::Cancel),
            Endpoint::OpenOrders => Some(Step::OpenOrders),
            Endpoint::CancelOpenOrders => Some(Step::CancelAll),
            Endpoint::AllOrders => Some(Step::AllOrders),
            Endpoint::Account => Some(Step::Account),
            Endpoint::ExchangeInfo => Some(Step::ExchangeInfo),
            Endpoint::Time => Some(Step::Time),
            Endpoint::MyTrades => Some(Step::MyTrades),
            _ => None,
        }
    }

    fn execute(self, p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        use Endpoint::*;
        match self {
            Ping => Ok(json!({})),
            Time => Ok(server_time_json(ctx.server_now_ms)),
            ExchangeInfo => exchange_info(p, sim, ctx),
            BookTicker => tickers(p, sim, book_ticker_json),
            TickerPrice => crate::market_data::ticker_price(p, sim),
            Ticker24hr => crate::market_data::ticker_24hr(p, sim, ctx.server_now_ms),
            AvgPrice => crate::market_data::avg_price(p, sim, ctx.server_now_ms),
            Klines => crate::market_data::klines(p, sim, ctx.server_now_ms),
            Trades => crate::market_data::trades(p, sim),
            AggTrades => crate::market_data::agg_trades(p, sim),
            Depth => depth(p, sim, ctx),
            NewOrder => new_order(p, sim, ctx, false),
            TestOrder => new_order(p, sim, ctx, true),
            CancelReplace => crate::cancel_replace::cancel_replace(p, sim, ctx),
            QueryOrder => query_order(p, sim, ctx.tifs),
            CancelOrder => cancel_order(p, sim, ctx),
            OpenOrders => open_orders(p, sim),
            CancelOpenOrders => cancel_open_orders(p, sim, ctx),
            AllOrders => all_orders(p, sim, ctx.tifs),
            MyTrades => my_trades(p, sim),
            Account => account(p, sim),
        }
    }
}

/// What the handlers need besides the parameters and the simulator.
pub struct Ctx<'a> {
    pub server_now_ms: i64,
    pub order_limit_10s: u64,
    pub weight_limit_1m: u64,
    pub ids: &'a IdGen,
    /// IOC and FOK orders, shown as such.
    pub tifs: &'a TifBook,
    /// The orders the request changed, for the user data stream: report, kind of change, and
    /// the cancel request's client id for a cancel.
    pub changes: RefCell<Vec<(OrderReport, Change, Option<String>)>>,
}

fn depth_limit(p: &Params) -> u64 {
    p.get("limit").and_then(|l| l.parse::<u64>().ok()).unwrap_or(100).clamp(1, 5000)
}

pub fn rate_limits(order_limit_10s: u64, weight_limit_1m: u64) -> Vec<RateLimit> {
    vec![
        RateLimit::new("REQUEST_WEIGHT", "MINUTE", 1, weight_limit_1m),
        RateLimit::new("ORDERS", "SECOND", 10, order_limit_10s),
        RateLimit::new("ORDERS", "DAY", 1, crate::limits::ORDER_LIMIT_1D),
        RateLimit::new("RAW_REQUESTS", "MINUTE", 5, crate::limits::RAW_REQUEST_LIMIT_5M),
    ]
}

fn exchange_info(p: &Params, sim: &Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let all = sim.exchange_info();
    let wanted: Option<Vec<String>> = if let Some(symbol) = p.get("symbol") {
        Some(vec![symbol.to_string()])
    } else if let Some(list) = p.get("symbols") {
        Some(serde_json::from_str::<Vec<String>>(list).map_err(|_| {
            ApiError::illegal("symbols", "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$")
        })?)
    } else {
        None
    };
    let symbols = match wanted {
        None => all,
        Some(names) => names
            .iter()
            .map(|n| all.iter().find(|r| r.symbol == *n).cloned().ok_or_else(ApiError::invalid_symbol))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut info =
        exchange_info_json(&symbols, &rate_limits(ctx.order_limit_10s, ctx.weight_limit_1m), ctx.server_now_ms);
    crate::checks::decorate_exchange_info(&mut info);
    Ok(info)
}

fn tickers(
    p: &Params,
    sim: &Simulator,
    shape: impl Fn(&genesis::exchange::BookTicker) -> Value,
) -> Result<Value, ApiError> {
    if let Some(symbol) = p.get("symbol") {
        return Ok(shape(&sim.book_ticker(symbol)?));
    }
    let names: Vec<String> = match p.get("symbols") {
        Some(list) => serde_json::from_str(list).map_err(|_| {
            ApiError::illegal("symbols", "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$")
        })?,
        None => sim.exchange_info().into_iter().map(|r| r.symbol).collect(),
    };
    let items = names.iter().map(|n| sim.book_ticker(n).map(|t| shape(&t))).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(items))
}

fn depth(p: &Params, sim: &Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    p.int("limit")?;
    let limit = usize::try_from(depth_limit(p)).unwrap_or(100);
    let (bids, asks) = sim.depth(symbol, limit)?;
    let levels = |side: Vec<(Decimal, Decimal)>| {
        side.into_iter().map(|(price, qty)| json!([fmt_decimal(price), fmt_decimal(qty)])).collect::<Vec<_>>()
    };
    Ok(json!({
        "lastUpdateId": ctx.server_now_ms,
        "bids": levels(bids),
        "asks": levels(asks),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespType {
    Ack,
    Result,
    Full,
}

/// The order a POST /api/v3/order describes, and the response shape asked for.
pub(crate) fn parse_new_order(p: &Params, sim: &Simulator, ids: &IdGen) -> Result<(NewOrder, RespType, Tif), ApiError> {
    use ExchangeOrderType as T;
    crate::checks::check_order_params(p)?;
    let symbol = p.require("symbol")?;
    let side_text = p.require("side")?;
    let type_text = p.require("type")?;
    let rules = sim.rules(symbol).ok_or_else(ApiError::invalid_symbol)?;
    let side = Side::parse(side_text).ok_or_else(|| ApiError::bad(-1117, "Invalid side."))?;
    let order_type = T::parse(type_text).ok_or_else(|| ApiError::bad(-1116, "Invalid orderType."))?;
    let needs_tif = matches!(order_type, T::Limit | T::StopLossLimit | T::TakeProfitLimit);
    let tif = match (needs_tif, p.get("timeInForce").map(|t| (t, Tif::parse(t)))) {
        (true, None) => return Err(ApiError::mandatory("timeInForce")),
        (false, None) => Tif::Gtc,
        (true, Some((_, Some(Tif::Gtc)))) => Tif::Gtc,
        // IOC and FOK on LIMIT only: the simulator's triggered stops rest as GTC.
        (true, Some((_, Some(tif)))) if order_type == T::Limit => tif,
        (true, Some(_)) => return Err(ApiError::bad(-1115, "Invalid timeInForce.")),
        (false, Some(_)) => return Err(ApiError::not_required("timeInForce")),
    };
    let mut quantity = p.decimal("quantity")?;
    let quote_qty = p.decimal("quoteOrderQty")?;
    if quote_qty.is_some() && (order_type != T::Market || quantity.is_some()) {
        return Err(ApiError::not_required("quoteOrderQty"));
    }
    match (quantity, quote_qty) {
        (None, None) if order_type == T::Market => {
            return Err(ApiError::bad(
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            ))
        }
        (None, None) => return Err(ApiError::mandatory("quantity")),
        (None, Some(quote)) => {
            // As close to the quote amount as the step allows, at the top of the book.
            let top = sim.book_ticker(symbol)?;
            let price = if side == Side::Buy { top.ask } else { top.bid };
            let qty = quote.checked_div(price).map(|q| round_down_to_step(q, rules.step_size)).unwrap_or(Decimal::ZERO);
            quantity = Some(qty);
        }
        _ => {}
    }
    let quantity = quantity.unwrap_or(Decimal::ZERO);
    let client_order_id = match p.raw("newClientOrderId") {
        Some("") => return Err(ApiError::bad(-1118, "New client order ID was empty.")),
        Some(id) => id.to_string(),
        None => ids.next_id(),
    };
    let resp = match p.get("newOrderRespType") {
        None if matches!(order_type, T::Market | T::Limit) => RespType::Full,
        None => RespType::Ack,
        Some("ACK") => RespType::Ack,
        Some("RESULT") => RespType::Result,
        Some("FULL") => RespType::Full,
        Some(_) => return Err(ApiError::illegal("newOrderRespType", "ACK, RESULT, FULL")),
    };
    let order = NewOrder {
        symbol: symbol.to_string(),
        side,
        order_type,
        quantity,
        price: p.decimal("price")?,
        stop_price: p.decimal("stopPrice")?,
        client_order_id,
    };
    Ok((order, resp, tif))
}

fn new_order(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>, test: bool) -> Result<Value, ApiError> {
    let (order, resp, tif) = parse_new_order(p, sim, ctx.ids)?;
    sim.check_order(&order)?;
    crate::checks::check_extra_filters(&order, sim, ctx.server_now_ms)?;
    if test {
        return Ok(match p.get("computeCommissionRates") {
            Some("true") => test_commission_json(),
            None | Some("false") => json!({}),
            Some(_) => return Err(ApiError::illegal("computeCommissionRates", "true, false")),
        });
    }
    let (report, _rest) = ctx.tifs.place(sim, &order, tif)?;
    ctx.changes.borrow_mut().push((report.clone(), Change::Placed, None));
    let mut value = placement_json(&report, resp);
    ctx.tifs.patch_json(&mut value);
    Ok(value)
}

/// `order/test` with `computeCommissionRates=true`: the account's 0.1 % maker and taker
/// rates (as `account` reports them), no special or tax commission, no BNB discount.
fn test_commission_json() -> Value {
    let rate = fmt_decimal(Decimal::new(1, 3));
    let zero = fmt_decimal(Decimal::ZERO);
    json!({
        "standardCommissionForOrder": {"maker": rate, "taker": rate},
        "specialCommissionForOrder": {"maker": zero, "taker": zero},
        "taxCommissionForOrder": {"maker": zero, "taker": zero},
        "discount": {"enabledForAccount": false, "enabledForSymbol": false, "discountAsset": "BNB", "discount": zero},
    })
}

/// A placement response in the shape `newOrderRespType` asked for.
pub(crate) fn placement_json(report: &OrderReport, resp: RespType) -> Value {
    match resp {
        RespType::Ack => order_ack_json(report),
        RespType::Result => order_json(report, false),
        RespType::Full => order_json(report, true),
    }
}

/// The order named by `orderId` and/or `origClientOrderId` (by id when both, and the client
/// id must then match).
fn find_order(p: &Params, sim: &Simulator, symbol: &str) -> Result<OrderReport, ApiError> {
    let order_id = p.int("orderId")?;
    let client = p.get("origClientOrderId");
    match (order_id, client) {
        (None, None) => {
            Err(ApiError::bad(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"))
        }
        (Some(id), client) => {
            let report = sim.query(symbol, OrderRef::OrderId(id))?;
            if client.is_some_and(|c| c != report.client_order_id) {
                return Err(ApiError::bad(-2013, "Order does not exist."));
            }
            Ok(report)
        }
        (None, Some(client)) => Ok(sim.query(symbol, OrderRef::ClientOrderId(client))?),
    }
}

fn query_order(p: &Params, sim: &Simulator, tifs: &TifBook) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    Ok(shown(tifs, find_order(p, sim, symbol)?))
}

/// An order's query shape with its IOC / FOK outcome.
fn shown(tifs: &TifBook, mut report: OrderReport) -> Value {
    tifs.present(&mut report);
    let mut value = order_query_json(&report);
    tifs.patch_json(&mut value);
    value
}

fn cancel_order(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let report = match find_order(p, sim, symbol) {
        Ok(report) => report,
        // Nothing to cancel: the cancel's own code.
        Err(e) if e.code == -2013 => return Err(ApiError::bad(-2011, "Unknown order sent.")),
        Err(e) => return Err(e),
    };
    let canceled = sim.cancel(symbol, OrderRef::OrderId(report.exchange_order_id))?;
    let cancel_id = match p.get("newClientOrderId") {
        Some(id) => id.to_string(),
        None => ctx.ids.next_id(),
    };
    ctx.changes.borrow_mut().push((canceled.clone(), Change::Updated, Some(cancel_id.clone())));
    Ok(cancel_json(&canceled, &cancel_id))
}

fn open_orders(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let orders = sim.open_orders(p.get("symbol"))?;
    Ok(Value::Array(orders.iter().map(order_query_json).collect()))
}

fn cancel_open_orders(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let canceled = sim.cancel_open_orders(symbol)?;
    let mut out = Vec::with_capacity(canceled.len());
    for r in canceled {
        let cancel_id = ctx.ids.next_id();
        out.push(cancel_json(&r, &cancel_id));
        ctx.changes.borrow_mut().push((r, Change::Updated, Some(cancel_id)));
    }
    Ok(Value::Array(out))
}

/// `limit` (default 500, at most 1000).
fn list_limit(p: &Params) -> Result<usize, ApiError> {
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000);
    Ok(usize::try_from(limit).unwrap_or(500))
}

/// The first `limit` items when a lower bound was given, else the latest `limit`.
fn window<T>(mut items: Vec<T>, from_start: bool, limit: usize) -> Vec<T> {
    if from_start {
        items.truncate(limit);
        items
    } else {
        let skip = items.len().saturating_sub(limit);
        items.split_off(skip)
    }
}

fn all_orders(p: &Params, sim: &Simulator, tifs: &TifBook) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let from_id = p.int("orderId")?;
    let start = p.int("startTime")?;
    let end = p.int("endTime")?;
    let limit = list_limit(p)?;
    let orders: Vec<OrderReport> = sim
        .all_orders(symbol)?
        .into_iter()
        .filter(|o| from_id.is_none_or(|id| o.exchange_order_id >= id))
        .filter(|o| start.is_none_or(|s| o.time_ms >= s))
        .filter(|o| end.is_none_or(|e| o.time_ms <= e))
        .collect();
    let orders = window(orders, from_id.is_some() || start.is_some(), limit);
    Ok(Value::Array(orders.into_iter().map(|o| shown(tifs, o)).collect()))
}

fn trade_json(t: &Trade) -> Value {
    json!({
        "symbol": t.symbol,
        "id": t.id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": fmt_decimal(t.price),
        "qty": fmt_decimal(t.qty),
        "quoteQty": fmt_decimal(t.quote_qty),
        "commission": fmt_decimal(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.is_buyer,
        "isMaker": t.is_maker,
        "isBestMatch": true,
    })
}

fn my_trades(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let order_id = p.int("orderId")?;
    let from_id = p.int("fromId")?;
    let start = p.int("startTime")?;
    let end = p.int("endTime")?;
    let limit = list_limit(p)?;
    let trades: Vec<Trade> = sim
        .my_trades(symbol)?
        .into_iter()
        .filter(|t| order_id.is_none_or(|id| t.order_id == id))
        .filter(|t| from_id.is_none_or(|id| t.id >= id))
        .filter(|t| start.is_none_or(|s| t.time_ms >= s))
        .filter(|t| end.is_none_or(|e| t.time_ms <= e))
        .collect();
    let trades = window(trades, from_id.is_some() || start.is_some(), limit);
    Ok(Value::Array(trades.iter().map(trade_json).collect()))
}

fn account(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let mut balances = sim.balances();
    if p.get("omitZeroBalances") == Some("true") {
        balances.retain(|b| !b.free.is_zero() || !b.locked.is_zero());
    }
    Ok(account_json(&balances))
}

// ---------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------

/// Everything a request can touch.
pub struct App {
    sim: Arc<Mutex<Simulator>>,
    creds: Credentials,
    limits: Mutex<Limits>,
    faults: Mutex<FaultPlan>,
    /// Server clock minus the local clock, ms (`skew` faults).
    skew_ms: AtomicI64,
    ids: IdGen,
    tifs: TifBook,
    /// User data stream subscribers (WebSocket connections), each fed by its own channel.
    subscribers: Mutex<Vec<Subscriber>>,
    next_subscription: AtomicU64,
    /// Changes made by requests whose events are not pushed yet (see [`App::respond`]).
    unpushed: Mutex<Vec<(Changes, i64)>>,
    /// The market streams' connections (`market_streams`).
    market: crate::market_streams::MarketHub,
}

/// Orders a request changed, for the user data stream: the report, what happened, and the
/// cancel's own client id where there is one.
type Changes = Vec<(OrderReport, Change, Option<String>)>;

/// Pushes (one request's changes each) queued for one subscriber before it counts as too slow
/// and is dropped.
const SUBSCRIBER_QUEUE: usize = 4096;

/// One `userDataStream.subscribe*` on one connection.
struct Subscriber {
    subscription_id: u64,
    tx: SyncSender<Arc<Pushed>>,
}

/// One request's changes, as queued for every subscriber; each subscriber's connection thread
/// renders them into `executionReport` frames (off the request's thread).
pub struct Pushed {
    changes: Changes,
    server_now_ms: i64,
}

/// A subscription's end of the stream: what was pushed, rendered as the text frames sent.
pub struct StreamRx {
    subscription_id: u64,
    rx: Receiver<Arc<Pushed>>,
}

impl StreamRx {
    fn render(&self, pushed: &Pushed) -> Vec<String> {
        let mut frames = Vec::new();
        for (report, change, cancel_id) in &pushed.changes {
            for event in execution_reports_json(report, *change, pushed.server_now_ms, cancel_id.as_deref()) {
                frames.push(event_message(self.subscription_id, &event));
            }
        }
        frames
    }

    /// The frames of the next queued push, if any.
    pub fn try_recv(&self) -> Result<Vec<String>, std::sync::mpsc::TryRecvError> {
        self.rx.try_recv().map(|pushed| self.render(&pushed))
    }

    /// Every frame queued now.
    #[cfg(test)]
    pub fn try_iter(&self) -> impl Iterator<Item = String> + '_ {
        self.rx.try_iter().flat_map(|pushed| self.render(&pushed))
    }
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

impl App {
    pub fn new(sim: Simulator, creds: Credentials, order_limit_10s: u64, faults: Vec<Fault>, id_base: u64) -> App {
        let mut plan = FaultPlan::default();
        for fault in faults {
            plan.add(fault);
        }
        App {
            sim: Arc::new(Mutex::new(sim)),
            creds,
            limits: Mutex::new(Limits::new(order_limit_10s)),
            faults: Mutex::new(plan),
            skew_ms: AtomicI64::new(0),
            ids: IdGen::new(id_base),
            tifs: TifBook::default(),
            subscribers: Mutex::new(Vec::new()),
            unpushed: Mutex::new(Vec::new()),
            next_subscription: AtomicU64::new(0),
            market: Default::default(),
        }
    }

    /// The market streams' connections.
    pub fn market(&self) -> &crate::market_streams::MarketHub {
        &self.market
    }

    /// Publishes every symbol's top of book on the market streams (only changes go out).
    fn publish_tops(&self, sim: &Simulator) {
        self.market.publish(sim.exchange_info().iter().filter_map(|r| sim.book_ticker(&r.symbol).ok()));
    }

    /// `userDataStream.subscribe.signature`: the key must be the account's, the signature
    /// HMAC-SHA256 over the other parameters sorted by name (`name=value&...`), the timestamp
    /// within recvWindow. Returns the subscription id and the channel of its events.
    pub fn subscribe_signature(
        &self,
        params: &serde_json::Map<String, Value>,
        local_now_ms: i64,
    ) -> Result<(u64, StreamRx), ApiError> {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
        let api_key = params.get("apiKey").map(text).ok_or_else(|| ApiError::mandatory("apiKey"))?;
        if api_key != self.creds.api_key {
            return Err(ApiError::new(401, -2015, "Invalid API-key, IP, or permissions for action."));
        }
        let signature = params.get("signature").map(text).ok_or_else(|| ApiError::mandatory("signature"))?;
        let payload = genesis::exchange::binance::user_data::signature_payload(&pairs);
        if !genesis::exchange::binance::sign::verify(&self.creds.api_secret, payload.as_bytes(), b"", &signature) {
            return Err(ApiError::bad(-1022, "Signature for this request is not valid."));
        }
        auth::check_timestamp(&Params::from_sources(&payload, None), self.server_now_ms(local_now_ms))?;
        let subscription_id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(SUBSCRIBER_QUEUE);
        self.subscribers.lock().push(Subscriber { subscription_id, tx });
        log::info!("user data stream: subscription {subscription_id} started");
        Ok((subscription_id, StreamRx { subscription_id, rx }))
    }

    /// Ends a subscription (its connection closed or it unsubscribed).
    pub fn unsubscribe(&self, subscription_id: u64) {
        self.subscribers.lock().retain(|s| s.subscription_id != subscription_id);
    }

    /// `POST /sim/stream/drop`: every subscriber's connection is closed; changes made until a
    /// client subscribes again are pushed to no one.
    pub fn drop_streams(&self) -> usize {
        let dropped = std::mem::take(&mut *self.subscribers.lock());
        log::info!("user data stream: dropping {} connections (fault)", dropped.len());
        dropped.len()
    }

    /// Pushes what [`App::respond`] queued, in order. The queue's lock is held while pushing,
    /// so two connections flushing at once cannot reorder the events.
    pub fn flush_pushes(&self) {
        let mut unpushed = self.unpushed.lock();
        for (changes, server_now_ms) in unpushed.drain(..) {
            self.push(changes, server_now_ms);
        }
    }

    /// Pushes `executionReport` events for orders that changed. Called with the simulator
    /// locked (or from the ordered queue), so the events go out in the order the changes were made.
    fn push(&self, changes: Changes, server_now_ms: i64) {
        let mut subscribers = self.subscribers.lock();
        if subscribers.is_empty() || changes.is_empty() {
            return;
        }
        // Rendered by each subscriber's own thread: queuing is all the request's thread does.
        let pushed = Arc::new(Pushed { changes, server_now_ms });
        subscribers.retain(|s| match s.tx.try_send(Arc::clone(&pushed)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("user data stream: subscription {} too slow; dropped", s.subscription_id);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// `--weight-limit`.
    pub fn set_weight_limit(&self, limit: u64) {
        self.limits.lock().set_weight_limit_1m(limit);
    }

    pub fn server_now_ms(&self, local_now_ms: i64) -> i64 {
        local_now_ms.saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Answers one request and pushes its stream events at once (tests).
    #[cfg(test)]
    pub fn handle(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let reply = self.respond(req, local_now_ms);
        self.flush_pushes();
        reply
    }

    /// Answers one request. `local_now_ms` is this machine's clock (the server clock adds the
    /// skew). Every reply carries `X-MBX-USED-WEIGHT-1M`. The user data stream's events for
    /// the changes it made wait for [`App::flush_pushes`]: the server sends the HTTP response
    /// first, as Binance's stream is separate from its REST answers (formatting them before
    /// the response added to every order's round trip).
    pub fn respond(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let mut reply = if req.path == "/sim" || req.path.starts_with("/sim/") {
            self.control(req, local_now_ms)
        } else {
            self.api(req, local_now_ms, false)
        };
        let used = self.limits.lock().used_weight(local_now_ms);
        reply.headers.push(("X-MBX-USED-WEIGHT-1M", used.to_string()));
        reply
    }

    /// A WebSocket API request (see `ws_orders`), as the REST request it stands for: its key
    /// and signature were checked over the WebSocket API's payload, so they are not again here.
    /// Everything else (weight, faults, timestamp, order count, the matching) is the REST path.
    pub fn respond_verified(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let mut reply = self.api(req, local_now_ms, true);
        let used = self.limits.lock().used_weight(local_now_ms);
        reply.headers.push(("X-MBX-USED-WEIGHT-1M", used.to_string()));
        reply
    }

    /// The limits the WebSocket API's `rateLimits` report: (orders per 10 s, weight per minute).
    pub fn limits_now(&self) -> (u64, u64) {
        let limits = self.limits.lock();
        (limits.order_limit_10s(), limits.weight_limit_1m())
    }

    /// The account's key and secret (the WebSocket API checks its own signatures).
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    fn api(&self, req: &HttpRequest<'_>, now: i64, verified: bool) -> Reply {
        let endpoint = match Endpoint::route(req.method, req.path) {
            Ok(e) => e,
            Err(NoRoute::NotFound) => return ApiError::new(404, -1, format!("Unknown endpoint {}.", req.path)).reply(),
            Err(NoRoute::MethodNotAllowed) => {
                return ApiError::new(405, -1, format!("Method {} is not allowed on {}.", req.method, req.path)).reply()
            }
        };
        let body = is_form(req.content_type).then_some(req.body);
        let params = Params::from_sources(req.query, body);
        let weight = endpoint.weight(&params);
        {
            let mut limits = self.limits.lock();
            let ban = |until: i64| {
                let secs = u64::try_from((until - now + 999) / 1000).unwrap_or(1).max(1);
                ApiError::banned(self.server_now_ms(until), secs).reply()
            };
            if let Some(until) = limits.banned_until(now) {
                return ban(until);
            }
            if let Err(Exceeded::Weight { retry_after_secs }) = limits.charge_weight(weight, now) {
                if let Some(until) = limits.note_refusal(now) {
                    return ban(until);
                }
                return ApiError::too_much_weight(retry_after_secs, limits.weight_limit_1m()).reply();
            }
        }
        let signed = endpoint.signed();
        if signed && !verified {
            if let Err(e) = auth::check_key_and_signature(&self.creds, req.api_key, req.query, req.body) {
                return e.reply();
            }
        }
        let what = format!("{} {}", req.method, req.path);
        let fault = self.faults.lock().next(endpoint.step(&params), signed, &what, now);
        let mut after_execute = None;
        match fault {
            None => {}
            Some(FaultKind::Skew(ms)) => self.skew_ms.store(ms, Ordering::Relaxed),
            Some(FaultKind::TooManyRequests(secs)) => {
                let mut e = ApiError::too_much_weight(secs, self.limits.lock().weight_limit_1m());
                e.retry_after_secs = Some(secs);
                return e.reply();
            }
            Some(FaultKind::Banned(secs)) => {
                let until = self
                    .server_now_ms(now)
                    .saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX));
                return ApiError::banned(until, secs).reply();
            }
            Some(FaultKind::Timestamp) => return auth::timestamp_error(false).reply(),
            Some(FaultKind::Reject) => return ApiError::bad(-2010, MSG_INSUFFICIENT).reply(),
            Some(FaultKind::TriggerImmediately) => {
                return ApiError::bad(-2010, "Order would trigger immediately.").reply()
            }
            Some(kind) => after_execute = Some(kind),
        }
        let server_now = self.server_now_ms(now);
        if signed {
            if let Err(e) = auth::check_timestamp(&params, server_now) {
                return e.reply();
            }
        }
        if let Err(e) = crate::checks::check_params(endpoint, req.query, body, &params) {
            return e.reply();
        }
        let (order_limit, weight_limit) = {
            let limits = self.limits.lock();
            (limits.order_limit_10s(), limits.weight_limit_1m())
        };
        // Over the order limit, a cancel-replace with orderRateLimitExceededMode=CANCEL_ONLY
        // still cancels; anything else is refused here.
        let mut over_limit = None;
        if endpoint.places_orders() {
            if let Err(Exceeded::Orders { retry_after_secs }) = self.limits.lock().check_order(now) {
                let refused = ApiError::too_many_orders(order_limit, retry_after_secs);
                let cancel_only = endpoint == Endpoint::CancelReplace
                    && params.get("orderRateLimitExceededMode") == Some("CANCEL_ONLY");
                if !cancel_only {
                    return refused.reply();
                }
                over_limit = Some(refused);
            }
        }
        let ctx = Ctx {
            server_now_ms: server_now,
            order_limit_10s: order_limit,
            weight_limit_1m: weight_limit,
            ids: &self.ids,
            tifs: &self.tifs,
            changes: RefCell::new(Vec::new()),
        };
        let mut sim = self.sim.lock();
        let result = match over_limit.clone() {
            None => endpoint.execute(&params, &mut sim, &ctx),
            Some(refused) => crate::cancel_replace::cancel_only(&params, &mut sim, &ctx, refused),
        };
        let traded_at_once = ctx
            .changes
            .borrow()
            .iter()
            .any(|(r, change, _)| *change == Change::Placed && r.executed_qty > Decimal::ZERO);
        // Queued under the simulator's lock, so they go out in the order the changes were made.
        self.unpushed.lock().push((ctx.changes.take(), server_now));
        drop(sim);
        // A cancel-replace that reached the matching engine counts even when a part failed
        // (its answer then carries `data`); a filter failure or a bad parameter does not.
        let counted = endpoint.places_orders()
            && over_limit.is_none()
            && result.as_ref().map_or_else(|e| e.data.is_some(), |_| true);
        let mut reply = match result {
            Ok(value) => Reply::json(200, value),
            Err(e) => e.reply(),
        };
        if counted {
            let mut limits = self.limits.lock();
            let mut counts = limits.count_order(now);
            if traded_at_once {
                counts = limits.uncount_filled_order(now);
            }
            drop(limits);
            let (count_10s, count_1d) = counts;
            reply.headers.push(("X-MBX-ORDER-COUNT-10S", count_10s.to_string()));
            reply.headers.push(("X-MBX-ORDER-COUNT-1D", count_1d.to_string()));
        }
        match after_execute {
            Some(FaultKind::ServerErrorAfterExecute) => {
                let mut failed = ApiError::new(503, -1007, MSG_TIMEOUT).reply();
                failed.headers.extend(reply.headers);
                failed
            }
            Some(FaultKind::DropAfterExecute) => Reply { after: After::Drop, ..reply },
            Some(FaultKind::DelayAfterExecute(ms)) => Reply { after: After::Delay(Duration::from_millis(ms)), ..reply },
            _ => reply,
        }
    }

    /// `/sim/*`: the fault plan, prices, state. No auth; loopback peers only.
    fn control(&self, req: &HttpRequest<'_>, now: i64) -> Reply {
        if !req.loopback {
            return ApiError::new(403, -1, "The /sim endpoints answer loopback peers only.").reply();
        }
        let bad = |msg: String| ApiError::bad(-1100, msg).reply();
        if let Some((status, body)) = self.market.control(req.method, req.path, req.body) {
            return Reply::json(status, body);
        }
        match (req.method, req.path.strip_suffix('/').unwrap_or(req.path)) {
            ("GET", "/sim/fault") => Reply::json(200, self.fault_json()),
            ("DELETE", "/sim/fault") => {
                self.faults.lock().clear();
                self.skew_ms.store(0, Ordering::Relaxed);
                Reply::json(200, self.fault_json())
            }
            ("POST", "/sim/fault") => {
                let value: Value = match serde_json::from_str(req.body) {
                    Ok(v) => v,
                    Err(e) => return bad(format!("body is not JSON: {e}")),
                };
                let items = match value {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                let mut parsed = Vec::with_capacity(items.len());
                for item in &items {
                    let fault = match item.get("spec").and_then(Value::as_str) {
                        Some(spec) => Fault::parse(spec),
                        None => Fault::from_json(item),
                    };
                    match fault {
                        Ok(f) => parsed.push(f),
                        Err(e) => return bad(e),
                    }
                }
                let mut plan = self.faults.lock();
                for fault in parsed {
                    log::info!("fault added: {}", fault.spec());
                    plan.add(fault);
                }
                drop(plan);
                Reply::json(200, self.fault_json())
            }
            ("POST", "/sim/price") => self.set_price(req.body, now),
            ("POST", "/sim/stream/drop") => Reply::json(200, json!({"dropped": self.drop_streams()})),
            ("GET", "/sim/state") => Reply::json(200, self.state_json(now)),
            (_, "/sim/fault" | "/sim/price" | "/sim/state" | "/sim/stream/drop") => {
                ApiError::new(405, -1, format!("Method {} is not allowed.", req.method)).reply()
            }
            _ => ApiError::new(404, -1, format!("Unknown endpoint {}.", req.path)).reply(),
        }
    }

    fn fault_json(&self) -> Value {
        let mut v = self.faults.lock().to_json();
        v["skewMs"] = json!(self.skew_ms.load(Ordering::Relaxed));
        v
    }

    fn set_price(&self, body: &str, now: i64) -> Reply {
        let bad = |msg: &str| ApiError::bad(-1100, msg).reply();
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return bad("body must be JSON {\"symbol\":…,\"bid\":\"…\",\"ask\":\"…\"}");
        };
        let decimal = |name: &str| -> Option<Decimal> {
            match value.get(name)? {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.to_string().parse().ok(),
                _ => None,
            }
        };
        let Some(symbol) = value.get("symbol").and_then(Value::as_str) else {
            return bad("missing \"symbol\"");
        };
        let (Some(bid), Some(ask)) = (decimal("bid"), decimal("ask")) else {
            return bad("\"bid\" and \"ask\" must be decimal strings");
        };
        let mut sim = self.sim.lock();
        match sim.set_price(symbol, bid, ask) {
            Ok(changed) => {
                self.uncount_first_fills(&changed, now);
                self.market.publish(sim.book_ticker(symbol).ok());
                let reply = Reply::json(200, Value::Array(changed.iter().map(order_query_json).collect()));
                self.push(changed.into_iter().map(|r| (r, Change::Updated, None)).collect(), self.server_now_ms(now));
                reply
            }
            Err(e) => ApiError::from(e).reply(),
        }
    }

    /// Orders that traded for the first time in a price move (all their fills are in this
    /// change) leave the unfilled-order count, as a placement that traded at once does.
    fn uncount_first_fills(&self, changed: &[OrderReport], now: i64) {
        let first_fills = changed
            .iter()
            .filter(|r| {
                r.executed_qty > Decimal::ZERO && r.fills.iter().map(|f| f.qty).sum::<Decimal>() == r.executed_qty
            })
            .count();
        let mut limits = self.limits.lock();
        for _ in 0..first_fills {
            limits.uncount_filled_order(now);
        }
    }

    fn state_json(&self, now: i64) -> Value {
        let (used, (count_10s, count_1d), limit) = {
            let mut limits = self.limits.lock();
            (limits.used_weight(now), limits.order_counts(now), limits.order_limit_10s())
        };
        let sim = self.sim.lock();
        let books: Vec<Value> = sim
            .exchange_info()
            .iter()
            .filter_map(|r| sim.book_ticker(&r.symbol).ok())
            .map(|t| book_ticker_json(&t))
            .collect();
        let open: Vec<Value> = sim.open_orders(None).unwrap_or_default().iter().map(order_query_json).collect();
        json!({
            "serverTime": self.server_now_ms(now),
            "skewMs": self.skew_ms.load(Ordering::Relaxed),
            "usedWeight1m": used,
            "orderCount10s": count_10s,
            "orderCount1d": count_1d,
            "orderLimit10s": limit,
            "balances": account_json(&sim.balances())["balances"],
            "openOrders": open,
            "books": books,
        })
    }

    /// One random-walk step; returns how many orders it moved.
    pub fn walk(&self) -> usize {
        let mut sim = self.sim.lock();
        match sim.random_walk_step() {
            Ok(changed) => {
                self.publish_tops(&sim);
                self.uncount_first_fills(&changed, crate::server::local_ms());
                let now = self.server_now_ms(crate::server::local_ms());
                self.push(changed.iter().map(|r| (r.clone(), Change::Updated, None)).collect(), now);
                for r in &changed {
                    log::info!(
                        "walk: {} {} {} -> {}",
                        r.symbol,
                        r.order_type.as_str(),
                        r.client_order_id,
                        r.status.as_str()
                    );
                }
                changed.len()
            }
            Err(e) => {
                log::warn!("walk: {e}");
                0
            }
        }
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
