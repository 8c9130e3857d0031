//! Binance Spot JSON, exactly as Binance shapes it, in both directions.
//!
//! - Parsing (`parse_*`): response bodies into domain types. Amounts are decimal strings, ids and
//!   times JSON numbers; a body that does not have that shape is a [`WireError`], never a panic.
//! - Serialising (`*_json`): domain types into Binance's JSON, for a Binance-compatible server
//!   (`tools/exchange`). Amounts are written as Binance writes them: 8 decimals (`"0.00100000"`).
//!
//! Field names are Binance's, including its spellings (`cummulativeQuoteQty`, `transactTime`,
//! `origClientOrderId`).

use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, NewOrder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// Decimals Binance writes on the wire.
pub const WIRE_SCALE: u32 = 8;

/// A response body that is not what Binance sends for this endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn wire_err(what: &str, e: impl fmt::Display) -> WireError {
    WireError(format!("malformed {what}: {e}"))
}

/// A decimal as Binance writes it: rounded to 8 decimals, always 8 shown (`"0.00100000"`).
pub fn fmt_decimal(value: Decimal) -> String {
    let mut v = value.round_dp(WIRE_SCALE);
    v.rescale(WIRE_SCALE);
    v.to_string()
}

/// One entry of `exchangeInfo.rateLimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// `REQUEST_WEIGHT`, `ORDERS` or `RAW_REQUESTS`.
    pub rate_limit_type: String,
    /// `SECOND`, `MINUTE`, `HOUR` or `DAY`.
    pub interval: String,
    pub interval_num: u32,
    pub limit: u64,
}

impl RateLimit {
    pub fn new(rate_limit_type: &str, interval: &str, interval_num: u32, limit: u64) -> Self {
        RateLimit { rate_limit_type: rate_limit_type.to_string(), interval: interval.to_string(), interval_num, limit }
    }
}

/// The limit of the given type over the given window, e.g. `("ORDERS", "SECOND", 10)`.
pub fn find_rate_limit(limits: &[RateLimit], rate_limit_type: &str, interval: &str, interval_num: u32) -> Option<u64> {
    limits
        .iter()
        .find(|l| l.rate_limit_type == rate_limit_type && l.interval == interval && l.interval_num == interval_num)
        .map(|l| l.limit)
}

/// `exchangeInfo`, the parts Genesis uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeInfo {
    pub server_time_ms: i64,
    pub rate_limits: Vec<RateLimit>,
    pub symbols: Vec<SymbolRules>,
    /// Each symbol's `allowedSelfTradePreventionModes`, where the entry lists them.
    pub allowed_stp_modes: Vec<(String, Vec<String>)>,
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFill {
    price: Decimal,
    qty: Decimal,
    commission: Decimal,
    commission_asset: String,
    trade_id: i64,
}

/// Every order shape Binance sends (ACK/RESULT/FULL placement, GET order, cancel, openOrders
/// items); fields absent from some shapes are optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrder {
    symbol: String,
    order_id: i64,
    client_order_id: String,
    #[serde(default)]
    orig_client_order_id: Option<String>,
    #[serde(default)]
    transact_time: Option<i64>,
    #[serde(default)]
    update_time: Option<i64>,
    #[serde(default)]
    time: Option<i64>,
    #[serde(default)]
    price: Option<Decimal>,
    #[serde(default)]
    orig_qty: Option<Decimal>,
    #[serde(default)]
    executed_qty: Option<Decimal>,
    #[serde(default)]
    cummulative_quote_qty: Option<Decimal>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "type")]
    order_type: Option<String>,
    #[serde(default)]
    side: Option<String>,
    #[serde(default)]
    stop_price: Option<Decimal>,
    #[serde(default)]
    fills: Vec<WireFill>,
    #[serde(default)]
    expiry_reason: Option<String>,
}

impl WireOrder {
    /// `sent` fills what an ACK response leaves out (side, type, quantity, prices).
    fn into_report(self, sent: Option<&NewOrder>) -> Result<OrderReport, WireError> {
        let side = match (self.side.as_deref(), sent) {
            (Some(text), _) => Side::parse(text).ok_or_else(|| WireError(format!("unknown side '{text}'")))?,
            (None, Some(order)) => order.side,
            (None, None) => return Err(WireError("order without side".into())),
        };
        let order_type = match (self.order_type.as_deref(), sent) {
            (Some(text), _) => {
                ExchangeOrderType::parse(text).ok_or_else(|| WireError(format!("unknown order type '{text}'")))?
            }
            (None, Some(order)) => order.order_type,
            (None, None) => return Err(WireError("order without type".into())),
        };
        let status = match (self.status.as_deref(), sent) {
            (Some(text), _) => {
                ExchangeStatus::parse(text).ok_or_else(|| WireError(format!("unknown order status '{text}'")))?
            }
            // An ACK: the engine accepted it, nothing more is known.
            (None, Some(_)) => ExchangeStatus::New,
            (None, None) => return Err(WireError("order without status".into())),
        };
        let orig_qty = match (self.orig_qty, sent) {
            (Some(q), _) => q,
            (None, Some(order)) => order.quantity,
            (None, None) => return Err(WireError("order without origQty".into())),
        };
        let fallback_price = sent.and_then(|o| o.price).unwrap_or(Decimal::ZERO);
        let fallback_stop = sent.and_then(|o| o.stop_price).unwrap_or(Decimal::ZERO);
        Ok(OrderReport {
            symbol: self.symbol,
            exchange_order_id: self.order_id,
            // In a cancel response `clientOrderId` is the cancel's id; the order's is `orig…`.
            client_order_id: self.orig_client_order_id.unwrap_or(self.client_order_id),
            side,
            order_type,
            status,
            orig_qty,
            executed_qty: self.executed_qty.unwrap_or(Decimal::ZERO),
            cum_quote_qty: self.cummulative_quote_qty.unwrap_or(Decimal::ZERO),
            price: self.price.unwrap_or(fallback_price),
            stop_price: self.stop_price.unwrap_or(fallback_stop),
            fills: self
                .fills
                .into_iter()
                .map(|f| Fill::new(f.price, f.qty, f.commission, &f.commission_asset, f.trade_id))
                .collect(),
            time_ms: self.transact_time.or(self.update_time).or(self.time).unwrap_or(0),
            expiry_reason: self.expiry_reason,
        })
    }
}

/// One order object: a GET order response, a cancel response (the report carries the order's
/// own client id, `origClientOrderId`), or a RESULT/FULL placement response.
pub fn parse_order(body: &str) -> Result<OrderReport, WireError> {
    serde_json::from_str::<WireOrder>(body).map_err(|e| wire_err("order", e))?.into_report(None)
}

/// A placement response of any type (ACK, RESULT, FULL); what an ACK leaves out is taken from
/// the order as sent, and its status is NEW.
pub fn parse_placement(body: &str, sent: &NewOrder) -> Result<OrderReport, WireError> {
    serde_json::from_str::<WireOrder>(body).map_err(|e| wire_err("order", e))?.into_report(Some(sent))
}

/// One trade of `GET /api/v3/myTrades`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTrade {
    id: i64,
    price: Decimal,
    qty: Decimal,
    commission: Decimal,
    commission_asset: String,
    time: i64,
    is_maker: bool,
}

/// The trades of `GET /api/v3/myTrades`.
pub fn parse_trades(body: &str) -> Result<Vec<Fill>, WireError> {
    let trades: Vec<WireTrade> = serde_json::from_str(body).map_err(|e| wire_err("trade array", e))?;
    Ok(trades
        .into_iter()
        .map(|t| Fill {
            is_maker: t.is_maker,
            time_ms: t.time,
            ..Fill::new(t.price, t.qty, t.commission, &t.commission_asset, t.id)
        })
        .collect())
}

/// An array of orders (GET openOrders, allOrders, DELETE openOrders). Order-list objects in a
/// DELETE openOrders result are flattened into their `orderReports`.
pub fn parse_orders(body: &str) -> Result<Vec<OrderReport>, WireError> {
    let items: Vec<Value> = serde_json::from_str(body).map_err(|e| wire_err("order array", e))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        push_order_value(item, &mut out)?;
    }
    Ok(out)
}

fn push_order_value(item: Value, out: &mut Vec<OrderReport>) -> Result<(), WireError> {
    let is_list =
        item.get("orderId").is_none() && (item.get("orderReports").is_some() || item.get("contingencyType").is_some());
    if is_list {
        if let Some(Value::Array(reports)) = item.get("orderReports") {
            for report in reports {
                // A report with no order shape (elided, future fields only) is skipped.
                if report.get("orderId").is_some() {
                    out.push(order_from_value(report.clone())?);
                }
            }
        }
        return Ok(());
    }
    out.push(order_from_value(item)?);
    Ok(())
}

fn order_from_value(value: Value) -> Result<OrderReport, WireError> {
    serde_json::from_value::<WireOrder>(value).map_err(|e| wire_err("order", e))?.into_report(None)
}

#[derive(Deserialize)]
#[serde(tag = "filterType")]
enum WireFilter {
    #[serde(rename = "PRICE_FILTER", rename_all = "camelCase")]
    Price { min_price: Decimal, max_price: Decimal, tick_size: Decimal },
    #[serde(rename = "LOT_SIZE", rename_all = "camelCase")]
    LotSize { min_qty: Decimal, max_qty: Decimal, step_size: Decimal },
    #[serde(rename = "NOTIONAL", rename_all = "camelCase")]
    Notional { min_notional: Decimal },
    #[serde(rename = "MIN_NOTIONAL", rename_all = "camelCase")]
    MinNotional { min_notional: Decimal },
    #[serde(rename = "MAX_NUM_ALGO_ORDERS", rename_all = "camelCase")]
    MaxNumAlgoOrders { max_num_algo_orders: u32 },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSymbol {
    symbol: String,
    status: String,
    base_asset: String,
    quote_asset: String,
    #[serde(default)]
    order_types: Vec<String>,
    #[serde(default)]
    filters: Vec<WireFilter>,
}

impl WireSymbol {
    fn into_rules(self) -> SymbolRules {
        let mut rules = SymbolRules {
            symbol: self.symbol,
            base_asset: self.base_asset,
            quote_asset: self.quote_asset,
            trading: self.status == "TRADING",
            tick_size: Decimal::ZERO,
            min_price: Decimal::ZERO,
            max_price: Decimal::ZERO,
            step_size: Decimal::ZERO,
            min_qty: Decimal::ZERO,
            max_qty: Decimal::ZERO,
            min_notional: Decimal::ZERO,
            // Types Genesis does not know (new ones Binance may add) are left out.
            order_types: self.order_types.iter().filter_map(|t| ExchangeOrderType::parse(t)).collect(),
            max_num_algo_orders: None,
        };
        let mut have_notional = false;
        for filter in self.filters {
            match filter {
                WireFilter::Price { min_price, max_price, tick_size } => {
                    rules.min_price = min_price;
                    rules.max_price = max_price;
                    rules.tick_size = tick_size;
                }
                WireFilter::LotSize { min_qty, max_qty, step_size } => {
                    rules.min_qty = min_qty;
                    rules.max_qty = max_qty;
                    rules.step_size = step_size;
                }
                // NOTIONAL (current) wins over the legacy MIN_NOTIONAL when both are present.
                WireFilter::Notional { min_notional } => {
                    rules.min_notional = min_notional;
                    have_notional = true;
                }
                WireFilter::MinNotional { min_notional } if !have_notional => {
                    rules.min_notional = min_notional;
                }
                WireFilter::MaxNumAlgoOrders { max_num_algo_orders } => {
                    rules.max_num_algo_orders = Some(max_num_algo_orders)
                }
                _ => {}
            }
        }
        rules
    }
}

/// One `exchangeInfo.symbols[]` entry. Filters it does not use are ignored; a missing
/// PRICE_FILTER / LOT_SIZE / notional filter leaves that rule at zero (off).
pub fn parse_symbol(value: &Value) -> Result<SymbolRules, WireError> {
    WireSymbol::deserialize(value).map(WireSymbol::into_rules).map_err(|e| wire_err("exchangeInfo symbol", e))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireExchangeInfo {
    #[serde(default)]
    server_time: i64,
    #[serde(default)]
    rate_limits: Vec<RateLimit>,
    symbols: Vec<Value>,
}

/// The whole `exchangeInfo` response. A symbol whose entry does not parse is skipped (and
/// logged) so that one odd listing cannot stop the engine; the top level must be well formed.
pub fn parse_exchange_info(body: &str) -> Result<ExchangeInfo, WireError> {
    let info: WireExchangeInfo = serde_json::from_str(body).map_err(|e| wire_err("exchangeInfo", e))?;
    let mut symbols = Vec::with_capacity(info.symbols.len());
    let mut allowed_stp_modes = Vec::new();
    for value in &info.symbols {
        match parse_symbol(value) {
            Ok(rules) => {
                if let Some(modes) = value.get("allowedSelfTradePreventionModes").and_then(Value::as_array) {
                    let modes = modes.iter().filter_map(Value::as_str).map(str::to_string).collect();
                    allowed_stp_modes.push((rules.symbol.clone(), modes));
                }
                symbols.push(rules)
            }
            Err(e) => {
                let symbol = value.get("symbol").and_then(Value::as_str).unwrap_or("?");
                log::warn!("exchangeInfo: skipping symbol {symbol}: {e}");
            }
        }
    }
    Ok(ExchangeInfo { server_time_ms: info.server_time, rate_limits: info.rate_limits, symbols, allowed_stp_modes })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBookTicker {
    symbol: String,
    bid_price: Decimal,
    bid_qty: Decimal,
    ask_price: Decimal,
    ask_qty: Decimal,
}

/// `GET /api/v3/ticker/bookTicker?symbol=`.
pub fn parse_book_ticker(body: &str) -> Result<BookTicker, WireError> {
    let t: WireBookTicker = serde_json::from_str(body).map_err(|e| wire_err("bookTicker", e))?;
    Ok(BookTicker { symbol: t.symbol, bid: t.bid_price, bid_qty: t.bid_qty, ask: t.ask_price, ask_qty: t.ask_qty })
}

#[derive(Deserialize)]
struct WireBalance {
    asset: String,
    free: Decimal,
    locked: Decimal,
}

#[derive(Deserialize)]
struct WireAccount {
    balances: Vec<WireBalance>,
}

/// `GET /api/v3/account`: the balances.
pub fn parse_account(body: &str) -> Result<Vec<Balance>, WireError> {
    let a: WireAccount = serde_json::from_str(body).map_err(|e| wire_err("account", e))?;
    Ok(a.balances.into_iter().map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked }).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTime {
    server_time: i64,
}

/// `GET /api/v3/time`: server time in ms.
pub fn parse_server_time(body: &str) -> Result<i64, WireError> {
    serde_json::from_str::<WireTime>(body).map(|t| t.server_time).map_err(|e| wire_err("server time", e))
}

#[derive(Deserialize)]
struct WireApiError {
    code: i64,
    #[serde(default)]
    msg: String,
}

/// A Binance error body `{"code":-1121,"msg":"Invalid symbol."}`; `None` for anything else.
pub fn parse_error(body: &str) -> Option<(i64, String)> {
    serde_json::from_str::<WireApiError>(body).ok().map(|e| (e.code, e.msg))
}

/// `POST /api/v3/order/cancelReplace`: the 200 body, and the `data` of a failure (400 -2022,
/// 409 -2021), which say what each part did.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCancelReplace {
    cancel_result: String,
    new_order_result: String,
    cancel_response: Value,
    /// `null` when the new order was not attempted.
    #[serde(default)]
    new_order_response: Value,
}

#[derive(Deserialize)]
struct WireCancelReplaceError {
    data: WireCancelReplace,
}

/// What a cancel-replace's failure `data` says, in STOP_ON_FAILURE mode.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelReplaceFailure {
    /// `cancelResult` FAILURE, `newOrderResult` NOT_ATTEMPTED: the cancel's code and message.
    CancelRefused { code: i64, msg: String },
    /// `cancelResult` SUCCESS, `newOrderResult` FAILURE: the cancel response, and the new
    /// order's code and message.
    PlaceRefused { cancelled: OrderReport, code: i64, msg: String },
}

fn api_error_from_value(value: Value, what: &str) -> Result<(i64, String), WireError> {
    serde_json::from_value::<WireApiError>(value).map(|e| (e.code, e.msg)).map_err(|e| wire_err(what, e))
}

/// A 200 cancel-replace answer (both parts SUCCESS): the cancel response, read as a cancel's
/// (the order's own client id), and the new order's, read as a placement of `sent`.
pub fn parse_cancel_replace(body: &str, sent: &NewOrder) -> Result<(OrderReport, OrderReport), WireError> {
    let r = serde_json::from_str::<WireCancelReplace>(body).map_err(|e| wire_err("cancel-replace response", e))?;
    if (r.cancel_result.as_str(), r.new_order_result.as_str()) != ("SUCCESS", "SUCCESS") {
        return Err(WireError(format!(
            "cancel-replace answered 2xx with cancelResult {} and newOrderResult {}",
            r.cancel_result, r.new_order_result
        )));
    }
    let cancelled = order_from_value(r.cancel_response)?;
    let placed = serde_json::from_value::<WireOrder>(r.new_order_response)
        .map_err(|e| wire_err("new order response", e))?
        .into_report(Some(sent))?;
    Ok((cancelled, placed))
}

/// The body of a cancel-replace that failed in part: `{"code","msg","data":{…}}`. Anything
/// but the two STOP_ON_FAILURE shapes is a [`WireError`].
pub fn parse_cancel_replace_failure(body: &str) -> Result<CancelReplaceFailure, WireError> {
    let r = serde_json::from_str::<WireCancelReplaceError>(body).map_err(|e| wire_err("cancel-replace error", e))?.data;
    match (r.cancel_result.as_str(), r.new_order_result.as_str()) {
        ("FAILURE", "NOT_ATTEMPTED") => {
            let (code, msg) = api_error_from_value(r.cancel_response, "cancelResponse")?;
            Ok(CancelReplaceFailure::CancelRefused { code, msg })
        }
        ("SUCCESS", "FAILURE") => {
            let cancelled = order_from_value(r.cancel_response)?;
            let (code, msg) = api_error_from_value(r.new_order_response, "newOrderResponse")?;
            Ok(CancelReplaceFailure::PlaceRefused { cancelled, code, msg })
        }
        (cancel, new) => Err(WireError(format!(
            "cancel-replace error with cancelResult {cancel} and newOrderResult {new} (not STOP_ON_FAILURE)"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Serialising (for a Binance-compatible server)
// ---------------------------------------------------------------------------------------------

fn fills_json(fills: &[Fill]) -> Value {
    Value::Array(
        fills
            .iter()
            .map(|f| {
                json!({
                    "price": fmt_decimal(f.price),
                    "qty": fmt_decimal(f.qty),
                    "commission": fmt_decimal(f.commission),
                    "commissionAsset": f.commission_asset,
                    "tradeId": f.trade_id,
                })
            })
            .collect(),
    )
}

fn working_time(r: &OrderReport) -> i64 {
    if r.status == ExchangeStatus::PendingNew {
        -1
    } else {
        r.time_ms
    }
}

/// The placement ACK: `{symbol, orderId, orderListId, clientOrderId, transactTime}`.
pub fn order_ack_json(r: &OrderReport) -> Value {
    json!({
        "symbol": r.symbol,
        "orderId": r.exchange_order_id,
        "orderListId": -1,
        "clientOrderId": r.client_order_id,
        "transactTime": r.time_ms,
    })
}

/// The placement response, RESULT shape, or FULL (`full`: with `fills`). `transactTime` is
/// `time_ms`; `stopPrice` appears for the stop and take-profit types only, as on Binance.
pub fn order_json(r: &OrderReport, full: bool) -> Value {
    let mut v = json!({
        "symbol": r.symbol,
        "orderId": r.exchange_order_id,
        "orderListId": -1,
        "clientOrderId": r.client_order_id,
        "transactTime": r.time_ms,
        "price": fmt_decimal(r.price),
        "origQty": fmt_decimal(r.orig_qty),
        "executedQty": fmt_decimal(r.executed_qty),
        "origQuoteOrderQty": fmt_decimal(Decimal::ZERO),
        "cummulativeQuoteQty": fmt_decimal(r.cum_quote_qty),
        "status": r.status.as_str(),
        "timeInForce": "GTC",
        "type": r.order_type.as_str(),
        "side": r.side.as_str(),
        "workingTime": working_time(r),
        "selfTradePreventionMode": "NONE",
    });
    if r.order_type.is_algo() {
        v["stopPrice"] = Value::String(fmt_decimal(r.stop_price));
    }
    if full {
        v["fills"] = fills_json(&r.fills);
    }
    with_expiry_reason(v, r)
}

/// rest-api.md "Conditional fields in Order Responses": `expiryReason` "when an order has
/// expired".
fn with_expiry_reason(mut v: Value, r: &OrderReport) -> Value {
    let expired = matches!(r.status, ExchangeStatus::Expired | ExchangeStatus::ExpiredInMatch);
    if let (Some(reason), true) = (&r.expiry_reason, expired) {
        v["expiryReason"] = Value::String(reason.clone());
    }
    v
}

/// The GET order shape, also each item of GET openOrders and allOrders: `time`, `updateTime`
/// (both `time_ms`), `isWorking`, always a `stopPrice`; no fills. `isWorking` is false for a
/// stop order that has not traded (Genesis does not track the trigger itself).
pub fn order_query_json(r: &OrderReport) -> Value {
    let is_working = !r.order_type.is_algo() || r.executed_qty > Decimal::ZERO;
    let v = json!({
        "symbol": r.symbol,
        "orderId": r.exchange_order_id,
        "orderListId": -1,
        "clientOrderId": r.client_order_id,
        "price": fmt_decimal(r.price),
        "origQty": fmt_decimal(r.orig_qty),
        "executedQty": fmt_decimal(r.executed_qty),
        "cummulativeQuoteQty": fmt_decimal(r.cum_quote_qty),
        "status": r.status.as_str(),
        "timeInForce": "GTC",
        "type": r.order_type.as_str(),
        "side": r.side.as_str(),
        "stopPrice": fmt_decimal(r.stop_price),
        "icebergQty": fmt_decimal(Decimal::ZERO),
        "time": r.time_ms,
        "updateTime": r.time_ms,
        "isWorking": is_working,
        "workingTime": working_time(r),
        "origQuoteOrderQty": fmt_decimal(Decimal::ZERO),
        "selfTradePreventionMode": "NONE",
    });
    with_expiry_reason(v, r)
}

/// The DELETE order shape, also each item of DELETE openOrders: `origClientOrderId` is the
/// order's client id, `clientOrderId` the cancel's (`cancel_client_order_id`).
pub fn cancel_json(r: &OrderReport, cancel_client_order_id: &str) -> Value {
    let mut v = json!({
        "symbol": r.symbol,
        "origClientOrderId": r.client_order_id,
        "orderId": r.exchange_order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_order_id,
        "transactTime": r.time_ms,
        "price": fmt_decimal(r.price),
        "origQty": fmt_decimal(r.orig_qty),
        "executedQty": fmt_decimal(r.executed_qty),
        "origQuoteOrderQty": fmt_decimal(Decimal::ZERO),
        "cummulativeQuoteQty": fmt_decimal(r.cum_quote_qty),
        "status": r.status.as_str(),
        "timeInForce": "GTC",
        "type": r.order_type.as_str(),
        "side": r.side.as_str(),
        "selfTradePreventionMode": "NONE",
    });
    if r.order_type.is_algo() {
        v["stopPrice"] = Value::String(fmt_decimal(r.stop_price));
    }
    with_expiry_reason(v, r)
}

/// One `exchangeInfo.symbols[]` entry: status TRADING (or BREAK when not trading), orderTypes,
/// and the filters PRICE_FILTER, LOT_SIZE, NOTIONAL (min applies to MARKET) and, when set,
/// MAX_NUM_ALGO_ORDERS.
pub fn symbol_json(s: &SymbolRules) -> Value {
    let mut filters = vec![
        json!({
            "filterType": "PRICE_FILTER",
            "minPrice": fmt_decimal(s.min_price),
            "maxPrice": fmt_decimal(s.max_price),
            "tickSize": fmt_decimal(s.tick_size),
        }),
        json!({
            "filterType": "LOT_SIZE",
            "minQty": fmt_decimal(s.min_qty),
            "maxQty": fmt_decimal(s.max_qty),
            "stepSize": fmt_decimal(s.step_size),
        }),
        json!({
            "filterType": "NOTIONAL",
            "minNotional": fmt_decimal(s.min_notional),
            "applyMinToMarket": true,
            "maxNotional": fmt_decimal(Decimal::from(9_000_000)),
            "applyMaxToMarket": false,
            "avgPriceMins": 5,
        }),
    ];
    if let Some(n) = s.max_num_algo_orders {
        filters.push(json!({"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": n}));
    }
    json!({
        "symbol": s.symbol,
        "status": if s.trading { "TRADING" } else { "BREAK" },
        "baseAsset": s.base_asset,
        "baseAssetPrecision": WIRE_SCALE,
        "quoteAsset": s.quote_asset,
        "quotePrecision": WIRE_SCALE,
        "quoteAssetPrecision": WIRE_SCALE,
        "baseCommissionPrecision": WIRE_SCALE,
        "quoteCommissionPrecision": WIRE_SCALE,
        "orderTypes": s.order_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "icebergAllowed": false,
        "ocoAllowed": false,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": false,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": filters,
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    })
}

/// The whole `exchangeInfo` response.
pub fn exchange_info_json(symbols: &[SymbolRules], rate_limits: &[RateLimit], server_time_ms: i64) -> Value {
    json!({
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": symbols.iter().map(symbol_json).collect::<Vec<_>>(),
    })
}

/// The rate limits of the live exchange (REQUEST_WEIGHT 6000/1m, ORDERS 100/10s and
/// 200000/1d, RAW_REQUESTS 61000/5m), for servers that do not configure their own.
pub fn default_rate_limits() -> Vec<RateLimit> {
    vec![
        RateLimit::new("REQUEST_WEIGHT", "MINUTE", 1, 6000),
        RateLimit::new("ORDERS", "SECOND", 10, 100),
        RateLimit::new("ORDERS", "DAY", 1, 200_000),
        RateLimit::new("RAW_REQUESTS", "MINUTE", 5, 61_000),
    ]
}

/// `GET /api/v3/ticker/bookTicker?symbol=`.
pub fn book_ticker_json(t: &BookTicker) -> Value {
    json!({
        "symbol": t.symbol,
        "bidPrice": fmt_decimal(t.bid),
        "bidQty": fmt_decimal(t.bid_qty),
        "askPrice": fmt_decimal(t.ask),
        "askQty": fmt_decimal(t.ask_qty),
    })
}

/// `GET /api/v3/account` with the given balances (commission fields as a 0.1 % account).
pub fn account_json(balances: &[Balance]) -> Value {
    let rate = fmt_decimal(Decimal::new(1, 3));
    let zero = fmt_decimal(Decimal::ZERO);
    json!({
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": rate, "taker": rate, "buyer": zero, "seller": zero},
        "canTrade": true,
        "canWithdraw": false,
        "canDeposit": false,
        "brokered": false,
        "requireSelfTradePrevention": false,
        "preventSor": false,
        "updateTime": 0,
        "accountType": "SPOT",
        "balances": balances.iter().map(|b| json!({
            "asset": b.asset,
            "free": fmt_decimal(b.free),
            "locked": fmt_decimal(b.locked),
        })).collect::<Vec<_>>(),
        "permissions": ["SPOT"],
        "uid": 0,
    })
}

/// `GET /api/v3/time`.
pub fn server_time_json(server_time_ms: i64) -> Value {
    json!({ "serverTime": server_time_ms })
}

/// A Binance error body: `{"code":-1121,"msg":"Invalid symbol."}`.
pub fn error_json(code: i64, msg: &str) -> Value {
    json!({ "code": code, "msg": msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const FULL: &str = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1507725176595,
 "price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000","origQuoteOrderQty":"0.000000",
 "cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC","type":"MARKET","side":"SELL",
 "workingTime":1507725176595,"selfTradePreventionMode":"NONE",
 "fills":[
    {"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56},
    {"price":"3999.00000000","qty":"5.00000000","commission":"19.99500000","commissionAsset":"USDT","tradeId":57}]}"#;

    const GET_ORDER: &str = r#"{"symbol":"LTCBTC","orderId":1,"orderListId":-1,"clientOrderId":"myOrder1","price":"0.1","origQty":"1.0",
 "executedQty":"0.0","cummulativeQuoteQty":"0.0","status":"NEW","timeInForce":"GTC","type":"LIMIT","side":"BUY",
 "stopPrice":"0.0","icebergQty":"0.0","time":1499827319559,"updateTime":1499827319559,"isWorking":true,
 "workingTime":1499827319559,"origQuoteOrderQty":"0.000000","selfTradePreventionMode":"NONE"}"#;

    const CANCEL: &str = r#"{"symbol":"LTCBTC","origClientOrderId":"myOrder1","orderId":4,"orderListId":-1,"clientOrderId":"cancelMyOrder1",
 "transactTime":1684804350068,"price":"2.00000000","origQty":"1.00000000","executedQty":"0.00000000",
 "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED","timeInForce":"GTC",
 "type":"LIMIT","side":"BUY","selfTradePreventionMode":"NONE"}"#;

    const DELETE_OPEN: &str = r#"[{"symbol":"BTCUSDT","origClientOrderId":"E6APeyTJvkMvLMYMqu1KQ4","orderId":11,"orderListId":-1,
  "clientOrderId":"pXLV6Hz6mprAcVYpVMTGgx","transactTime":1684804350068,"price":"0.089853","origQty":"0.178622",
  "executedQty":"0.000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.000000","status":"CANCELED",
  "timeInForce":"GTC","type":"LIMIT","side":"BUY","selfTradePreventionMode":"NONE"},
 {"orderListId":1929,"contingencyType":"OCO","listStatusType":"ALL_DONE","listOrderStatus":"ALL_DONE",
  "listClientOrderId":"2inzWQdDvZLHbbAmAozX2N","transactionTime":1585230948299,"symbol":"BTCUSDT",
  "orders":[{"symbol":"BTCUSDT","orderId":20,"clientOrderId":"CwOOIPHSmYywx6jZX77TdL"}],
  "orderReports":[{"symbol":"BTCUSDT","origClientOrderId":"GEOUqKl4bD0SJtgZWuI4Qr","orderId":20,"orderListId":1929,
    "clientOrderId":"pXLV6Hz6mprAcVYpVMTGgx","transactTime":1585230948299,"price":"10.00000000","origQty":"1.00000000",
    "executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED","timeInForce":"GTC",
    "type":"STOP_LOSS_LIMIT","side":"SELL","stopPrice":"10.50000000","icebergQty":"0.00000000"},
    {"...":"elided"}]}]"#;

    const BTCUSDT: &str = r#"{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT",
 "quotePrecision":8,"quoteAssetPrecision":8,"baseCommissionPrecision":8,"quoteCommissionPrecision":8,
 "orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"],
 "icebergAllowed":true,"ocoAllowed":true,"quoteOrderQtyMarketAllowed":true,"allowTrailingStop":true,
 "cancelReplaceAllowed":true,"isSpotTradingAllowed":true,"isMarginTradingAllowed":true,
 "filters":[
  {"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},
  {"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},
  {"filterType":"ICEBERG_PARTS","limit":10},
  {"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"128.52621715","stepSize":"0.00000000"},
  {"filterType":"TRAILING_DELTA","minTrailingAboveDelta":10,"maxTrailingAboveDelta":2000,"minTrailingBelowDelta":10,"maxTrailingBelowDelta":2000},
  {"filterType":"PERCENT_PRICE_BY_SIDE","bidMultiplierUp":"5","bidMultiplierDown":"0.2","askMultiplierUp":"5","askMultiplierDown":"0.2","avgPriceMins":5},
  {"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5},
  {"filterType":"MAX_NUM_ORDERS","maxNumOrders":200},
  {"filterType":"MAX_NUM_ALGO_ORDERS","maxNumAlgoOrders":5}],
 "permissions":["SPOT","MARGIN","TRD_GRP_004"],
 "defaultSelfTradePreventionMode":"EXPIRE_MAKER","allowedSelfTradePreventionModes":["EXPIRE_TAKER","EXPIRE_MAKER","EXPIRE_BOTH"]}"#;

    const ACCOUNT: &str = r#"{"makerCommission":15,"takerCommission":15,"buyerCommission":0,"sellerCommission":0,
 "commissionRates":{"maker":"0.00150000","taker":"0.00150000","buyer":"0.00000000","seller":"0.00000000"},
 "canTrade":true,"canWithdraw":true,"canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,
 "preventSor":false,"updateTime":123456789,"accountType":"SPOT",
 "balances":[{"asset":"BTC","free":"4723846.89208129","locked":"0.00000000"}],"permissions":["SPOT"],"uid":354937868}"#;

    fn market_sell() -> NewOrder {
        NewOrder {
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            order_type: ExchangeOrderType::Market,
            quantity: d("10"),
            price: None,
            stop_price: None,
            client_order_id: "6gCrw2kRUAF9CvJDGP16IP".into(),
        }
    }

    #[test]
    fn full_placement_response_parses_with_fills_and_decimal_amounts() {
        let r = parse_order(FULL).unwrap();
        assert_eq!(r.symbol, "BTCUSDT");
        assert_eq!(r.exchange_order_id, 28);
        assert_eq!(r.client_order_id, "6gCrw2kRUAF9CvJDGP16IP");
        assert_eq!(r.side, Side::Sell);
        assert_eq!(r.order_type, ExchangeOrderType::Market);
        assert_eq!(r.status, ExchangeStatus::Filled);
        assert_eq!(r.orig_qty, d("10"));
        assert_eq!(r.executed_qty, d("10"));
        assert_eq!(r.cum_quote_qty, d("10"));
        assert_eq!(r.price, Decimal::ZERO);
        assert_eq!(r.stop_price, Decimal::ZERO);
        assert_eq!(r.time_ms, 1507725176595);
        assert_eq!(r.fills.len(), 2);
        assert_eq!(r.fills[1], Fill::new(d("3999"), d("5"), d("19.995"), "USDT", 57));
        assert_eq!(r.commission_in("USDT"), d("23.995"));
    }

    #[test]
    fn ack_placement_response_takes_the_rest_from_the_order_sent() {
        let ack = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1507725176595}"#;
        let r = parse_placement(ack, &market_sell()).unwrap();
        assert_eq!(r.status, ExchangeStatus::New);
        assert_eq!(r.side, Side::Sell);
        assert_eq!(r.orig_qty, d("10"));
        assert_eq!(r.executed_qty, Decimal::ZERO);
        assert!(r.fills.is_empty());
        // Without the order sent, an ACK is not a full report.
        assert!(parse_order(ack).is_err());
    }

    #[test]
    fn get_order_response_parses_with_stop_price_and_update_time() {
        let r = parse_order(GET_ORDER).unwrap();
        assert_eq!(r.client_order_id, "myOrder1");
        assert_eq!(r.status, ExchangeStatus::New);
        assert_eq!(r.order_type, ExchangeOrderType::Limit);
        assert_eq!(r.price, d("0.1"));
        assert_eq!(r.orig_qty, d("1"));
        assert_eq!(r.stop_price, Decimal::ZERO);
        assert_eq!(r.time_ms, 1499827319559);
        assert!(r.fills.is_empty());
    }

    #[test]
    fn cancel_response_reports_the_orders_client_id_not_the_cancels() {
        let r = parse_order(CANCEL).unwrap();
        assert_eq!(r.client_order_id, "myOrder1");
        assert_eq!(r.exchange_order_id, 4);
        assert_eq!(r.status, ExchangeStatus::Canceled);
        assert_eq!(r.time_ms, 1684804350068);
    }

    #[test]
    fn delete_open_orders_flattens_order_lists_into_their_reports() {
        let orders = parse_orders(DELETE_OPEN).unwrap();
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0].client_order_id, "E6APeyTJvkMvLMYMqu1KQ4");
        assert_eq!(orders[0].orig_qty, d("0.178622"));
        assert_eq!(orders[1].client_order_id, "GEOUqKl4bD0SJtgZWuI4Qr");
        assert_eq!(orders[1].order_type, ExchangeOrderType::StopLossLimit);
        assert_eq!(orders[1].stop_price, d("10.5"));
        assert_eq!(parse_orders("[]").unwrap(), vec![]);
    }

    #[test]
    fn btcusdt_exchange_info_entry_gives_filters_and_no_plain_stop_loss() {
        let value: Value = serde_json::from_str(BTCUSDT).unwrap();
        let r = parse_symbol(&value).unwrap();
        assert_eq!(r.symbol, "BTCUSDT");
        assert_eq!(r.base_asset, "BTC");
        assert_eq!(r.quote_asset, "USDT");
        assert!(r.trading);
        assert_eq!(r.tick_size, d("0.01"));
        assert_eq!(r.min_price, d("0.01"));
        assert_eq!(r.max_price, d("1000000"));
        assert_eq!(r.step_size, d("0.00001"));
        assert_eq!(r.min_qty, d("0.00001"));
        assert_eq!(r.max_qty, d("9000"));
        assert_eq!(r.min_notional, d("5"));
        assert_eq!(r.max_num_algo_orders, Some(5));
        assert!(!r.allows(ExchangeOrderType::StopLoss));
        assert!(r.allows(ExchangeOrderType::StopLossLimit));
        assert!(r.allows(ExchangeOrderType::Market));
        assert_eq!(r.order_types.len(), 5);
    }

    #[test]
    fn legacy_min_notional_is_read_and_halted_symbols_are_not_trading() {
        let value = json!({
            "symbol": "OLDBTC", "status": "HALT", "baseAsset": "OLD", "quoteAsset": "BTC",
            "orderTypes": ["MARKET", "SOMETHING_NEW"],
            "filters": [{"filterType": "MIN_NOTIONAL", "minNotional": "0.00010000",
                         "applyToMarket": true, "avgPriceMins": 5}]
        });
        let r = parse_symbol(&value).unwrap();
        assert!(!r.trading);
        assert_eq!(r.min_notional, d("0.0001"));
        assert_eq!(r.order_types, vec![ExchangeOrderType::Market]);
        assert_eq!(r.max_num_algo_orders, None);
    }

    #[test]
    fn exchange_info_reads_rate_limits_and_skips_malformed_symbols() {
        let body = format!(
            r#"{{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[
              {{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}},
              {{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100}},
              {{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000}}],
              "exchangeFilters":[],"symbols":[{BTCUSDT},{{"symbol":"BAD","status":"TRADING"}}]}}"#
        );
        let info = parse_exchange_info(&body).unwrap();
        assert_eq!(info.server_time_ms, 1565246363776);
        assert_eq!(info.symbols.len(), 1);
        assert_eq!(info.symbols[0].symbol, "BTCUSDT");
        let modes = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"].map(String::from).to_vec();
        assert_eq!(info.allowed_stp_modes, vec![("BTCUSDT".to_string(), modes)]);
        assert_eq!(find_rate_limit(&info.rate_limits, "ORDERS", "SECOND", 10), Some(100));
        assert_eq!(find_rate_limit(&info.rate_limits, "REQUEST_WEIGHT", "MINUTE", 1), Some(6000));
        assert!(parse_exchange_info(r#"{"rateLimits":[]}"#).is_err());
    }

    #[test]
    fn account_and_book_ticker_and_time_parse() {
        assert_eq!(
            parse_account(ACCOUNT).unwrap(),
            vec![Balance { asset: "BTC".into(), free: d("4723846.89208129"), locked: Decimal::ZERO }]
        );
        let t = parse_book_ticker(
            r#"{"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000","askPrice":"4.00000200","askQty":"9.00000000"}"#,
        )
        .unwrap();
        assert_eq!(t.bid, d("4"));
        assert_eq!(t.ask, d("4.000002"));
        assert_eq!(t.ask_qty, d("9"));
        assert_eq!(parse_server_time(r#"{"serverTime": 1499827319559}"#), Ok(1499827319559));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            "",
            "null",
            "{}",
            "[1,2]",
            "<html>502</html>",
            r#"{"symbol":"X","orderId":"not a number","clientOrderId":"a"}"#,
            r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"WEIRD","side":"BUY","type":"LIMIT","origQty":"1"}"#,
            r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"NEW","side":"BUY","type":"LIMIT","origQty":1.5}"#,
            r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"NEW","side":"BUY","type":"LIMIT","origQty":"abc"}"#,
        ] {
            assert!(parse_order(body).is_err(), "{body}");
            assert!(parse_placement(body, &market_sell()).is_err() || body == "{}");
        }
        assert!(parse_orders("{}").is_err());
        assert!(parse_orders(r#"[{"orderId":1}]"#).is_err());
        assert!(parse_account(r#"{"balances":[{"asset":"BTC","free":1}]}"#).is_err());
        assert!(parse_book_ticker("[]").is_err());
        assert!(parse_server_time(r#"{"serverTime":"now"}"#).is_err());
        assert_eq!(parse_error("<html/>"), None);
    }

    #[test]
    fn an_order_missing_a_field_only_an_ack_may_omit_is_an_error_naming_it() {
        let head = r#""symbol":"X","orderId":1,"clientOrderId":"a""#;
        for (fields, missing) in [
            (r#""side":"BUY""#, "order without type"),
            (r#""side":"BUY","type":"LIMIT""#, "order without status"),
            (r#""side":"BUY","type":"LIMIT","status":"NEW""#, "order without origQty"),
        ] {
            let body = format!("{{{head},{fields}}}");
            assert_eq!(parse_order(&body), Err(WireError(missing.into())), "{body}");
        }
    }

    #[test]
    fn error_bodies_parse_to_code_and_message() {
        assert_eq!(
            parse_error(r#"{"code":-2011,"msg":"Unknown order sent."}"#),
            Some((-2011, "Unknown order sent.".to_string()))
        );
        let v = error_json(-1121, "Invalid symbol.");
        assert_eq!(parse_error(&v.to_string()), Some((-1121, "Invalid symbol.".to_string())));
    }

    #[test]
    fn decimals_are_written_with_eight_decimals_like_binance() {
        assert_eq!(fmt_decimal(d("0.001")), "0.00100000");
        assert_eq!(fmt_decimal(d("65000")), "65000.00000000");
        assert_eq!(fmt_decimal(d("0.123456789")), "0.12345679");
        assert_eq!(fmt_decimal(Decimal::ZERO), "0.00000000");
        assert_eq!(fmt_decimal(d("-1")), "-1.00000000");
        // Too large for 8 more digits: no panic, as many decimals as fit.
        assert!(fmt_decimal(Decimal::MAX).starts_with("79228162514264337593543950335"));
    }

    fn report(order_type: ExchangeOrderType, status: ExchangeStatus) -> OrderReport {
        OrderReport {
            symbol: "BTCUSDT".into(),
            exchange_order_id: 9_780_331_417,
            client_order_id: "g1a2b3c-Eabcdef0123456789abcdef0123".into(),
            side: Side::Buy,
            order_type,
            status,
            orig_qty: d("0.001"),
            executed_qty: d("0.001"),
            cum_quote_qty: d("65.00037"),
            price: d("0"),
            stop_price: d("63700.36"),
            fills: vec![Fill::new(d("65000.37"), d("0.001"), d("0.000001"), "BTC", 12345)],
            time_ms: 1737635557417,
            expiry_reason: None,
        }
    }

    #[test]
    fn an_expired_orders_shapes_carry_its_expiry_reason_and_parse_back() {
        let r = OrderReport {
            expiry_reason: Some("INSUFFICIENT_LIQUIDITY".into()),
            ..report(ExchangeOrderType::Market, ExchangeStatus::Expired)
        };
        for shape in [order_json(&r, true), order_query_json(&r), cancel_json(&r, "c")] {
            assert_eq!(shape["expiryReason"], "INSUFFICIENT_LIQUIDITY");
            assert_eq!(parse_order(&shape.to_string()).unwrap().expiry_reason, r.expiry_reason);
        }
        // Only "when an order has expired".
        let filled = OrderReport { status: ExchangeStatus::Filled, ..r };
        assert!(order_json(&filled, true).get("expiryReason").is_none());
    }

    #[test]
    fn order_json_round_trips_every_shape() {
        let r = report(ExchangeOrderType::StopLossLimit, ExchangeStatus::Filled);
        assert_eq!(parse_order(&order_json(&r, true).to_string()).unwrap(), r);

        let no_fills = OrderReport { fills: vec![], ..r.clone() };
        assert_eq!(parse_order(&order_json(&r, false).to_string()).unwrap(), no_fills);
        assert_eq!(parse_order(&order_query_json(&r).to_string()).unwrap(), no_fills);
        let cancel = cancel_json(&r, "cancel-1");
        assert_eq!(cancel["clientOrderId"], "cancel-1");
        assert_eq!(cancel["origClientOrderId"], r.client_order_id.as_str());
        assert_eq!(parse_order(&cancel.to_string()).unwrap(), no_fills);

        let list = Value::Array(vec![order_query_json(&r), order_query_json(&no_fills)]);
        assert_eq!(parse_orders(&list.to_string()).unwrap(), vec![no_fills.clone(), no_fills]);
        let ack = order_ack_json(&r);
        assert_eq!(ack["transactTime"], 1737635557417i64);
        assert!(ack.get("status").is_none());
    }

    #[test]
    fn order_json_writes_binance_field_names_and_decimal_strings() {
        let r = report(ExchangeOrderType::Market, ExchangeStatus::Filled);
        let v = order_json(&r, true);
        assert_eq!(v["cummulativeQuoteQty"], "65.00037000");
        assert_eq!(v["origQty"], "0.00100000");
        assert_eq!(v["orderId"], 9_780_331_417i64);
        assert_eq!(v["type"], "MARKET");
        assert_eq!(v["fills"][0]["tradeId"], 12345);
        assert_eq!(v["fills"][0]["commissionAsset"], "BTC");
        // No stopPrice on a market order's placement response.
        assert!(v.get("stopPrice").is_none());
        let pending = report(ExchangeOrderType::Market, ExchangeStatus::PendingNew);
        assert_eq!(order_json(&pending, false)["workingTime"], -1);
    }

    #[test]
    fn exchange_info_json_round_trips_symbol_rules_and_rate_limits() {
        let rules = vec![
            parse_symbol(&serde_json::from_str(BTCUSDT).unwrap()).unwrap(),
            SymbolRules {
                symbol: "ETHUSDT".into(),
                base_asset: "ETH".into(),
                quote_asset: "USDT".into(),
                trading: false,
                tick_size: d("0.01"),
                min_price: d("0.01"),
                max_price: d("100000"),
                step_size: d("0.0001"),
                min_qty: d("0.0001"),
                max_qty: d("9000"),
                min_notional: d("5"),
                order_types: vec![ExchangeOrderType::Market, ExchangeOrderType::StopLoss],
                max_num_algo_orders: None,
            },
        ];
        let limits = default_rate_limits();
        let body = exchange_info_json(&rules, &limits, 42).to_string();
        let info = parse_exchange_info(&body).unwrap();
        assert_eq!(info.symbols, rules);
        assert_eq!(info.rate_limits, limits);
        assert_eq!(info.server_time_ms, 42);
    }

    #[test]
    fn book_ticker_account_and_time_json_round_trip() {
        let t = BookTicker {
            symbol: "BTCUSDT".into(),
            bid: d("65000.01"),
            bid_qty: d("1.5"),
            ask: d("65000.02"),
            ask_qty: d("0.25"),
        };
        assert_eq!(parse_book_ticker(&book_ticker_json(&t).to_string()).unwrap(), t);
        let balances = vec![
            Balance { asset: "BTC".into(), free: d("0.5"), locked: d("0.001") },
            Balance { asset: "USDT".into(), free: d("10000"), locked: Decimal::ZERO },
        ];
        assert_eq!(parse_account(&account_json(&balances).to_string()).unwrap(), balances);
        assert_eq!(parse_server_time(&server_time_json(7).to_string()), Ok(7));
    }

    /// Binance's documented cancelReplace answers (STOP_ON_FAILURE), with a FULL new order.
    const REPLACED: &str = r#"{"cancelResult":"SUCCESS","newOrderResult":"SUCCESS",
 "cancelResponse":{"symbol":"BTCUSDT","origClientOrderId":"DnLo3vTAQcjha43lAZhZ0y","orderId":9,"orderListId":-1,
  "clientOrderId":"osxN3JXAtJvKvCqGeMWMVR","transactTime":1684804350068,"price":"0.01000000","origQty":"0.00010000",
  "executedQty":"0.00000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED",
  "timeInForce":"GTC","type":"STOP_LOSS_LIMIT","side":"SELL","stopPrice":"0.01100000","selfTradePreventionMode":"NONE"},
 "newOrderResponse":{"symbol":"BTCUSDT","orderId":10,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",
  "transactTime":1684804350070,"price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000",
  "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"40000.00000000","status":"FILLED","timeInForce":"GTC",
  "type":"MARKET","side":"SELL","workingTime":1684804350070,"selfTradePreventionMode":"NONE",
  "fills":[{"price":"4000.00000000","qty":"10.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56}]}}"#;

    const CANCEL_REFUSED: &str = r#"{"code":-2022,"msg":"Order cancel-replace failed.","data":{"cancelResult":"FAILURE",
 "newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"Unknown order sent."},"newOrderResponse":null}}"#;

    fn place_refused() -> String {
        let cancel: Value = serde_json::from_str(REPLACED).map(|v: Value| v["cancelResponse"].clone()).unwrap();
        json!({"code": -2021, "msg": "Order cancel-replace partially failed.", "data": {
            "cancelResult": "SUCCESS",
            "newOrderResult": "FAILURE",
            "cancelResponse": cancel,
            "newOrderResponse": {"code": -2010, "msg": "Account has insufficient balance for requested action."},
        }})
        .to_string()
    }

    #[test]
    fn cancel_replace_success_reads_the_cancel_as_a_cancel_and_the_new_order_as_a_placement() {
        let (cancelled, placed) = parse_cancel_replace(REPLACED, &market_sell()).unwrap();
        assert_eq!(cancelled.client_order_id, "DnLo3vTAQcjha43lAZhZ0y", "the order's id, not the cancel's");
        assert_eq!(
            (cancelled.status, cancelled.order_type),
            (ExchangeStatus::Canceled, ExchangeOrderType::StopLossLimit)
        );
        assert_eq!(cancelled.stop_price, d("0.011"));
        assert_eq!(placed.client_order_id, "6gCrw2kRUAF9CvJDGP16IP");
        assert_eq!((placed.status, placed.executed_qty), (ExchangeStatus::Filled, d("10")));
        assert_eq!(placed.fills.len(), 1);
        // An ACK new order takes the rest from the order sent, as a placement does.
        let mut v: Value = serde_json::from_str(REPLACED).unwrap();
        v["newOrderResponse"] = json!({"symbol":"BTCUSDT","orderId":10,"orderListId":-1,
            "clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1_684_804_350_070_i64});
        let (_, placed) = parse_cancel_replace(&v.to_string(), &market_sell()).unwrap();
        assert_eq!((placed.status, placed.orig_qty, placed.side), (ExchangeStatus::New, d("10"), Side::Sell));
    }

    #[test]
    fn cancel_replace_failures_say_which_part_failed() {
        assert_eq!(
            parse_cancel_replace_failure(CANCEL_REFUSED),
            Ok(CancelReplaceFailure::CancelRefused { code: -2011, msg: "Unknown order sent.".into() })
        );
        let Ok(CancelReplaceFailure::PlaceRefused { cancelled, code, msg }) =
            parse_cancel_replace_failure(&place_refused())
        else {
            panic!("a refused new order expected");
        };
        assert_eq!(
            (cancelled.client_order_id.as_str(), cancelled.status),
            ("DnLo3vTAQcjha43lAZhZ0y", ExchangeStatus::Canceled)
        );
        assert_eq!((code, msg.as_str()), (-2010, "Account has insufficient balance for requested action."));
        // A missing newOrderResponse reads as null.
        let without: String = CANCEL_REFUSED.replace(r#","newOrderResponse":null"#, "");
        assert!(matches!(parse_cancel_replace_failure(&without), Ok(CancelReplaceFailure::CancelRefused { .. })));
    }

    #[test]
    fn garbled_cancel_replace_answers_are_errors_not_panics() {
        let mut results_failed: Value = serde_json::from_str(REPLACED).unwrap();
        results_failed["newOrderResult"] = json!("FAILURE");
        let mut cancel_not_an_order: Value = serde_json::from_str(REPLACED).unwrap();
        cancel_not_an_order["cancelResponse"] = json!({"code": -2011, "msg": "Unknown order sent."});
        let mut new_order_null: Value = serde_json::from_str(REPLACED).unwrap();
        new_order_null["newOrderResponse"] = Value::Null;
        for body in [
            String::new(),
            "{}".into(),
            "<html>oops</html>".into(),
            CANCEL_REFUSED.into(),
            results_failed.to_string(),
            cancel_not_an_order.to_string(),
            new_order_null.to_string(),
        ] {
            assert!(parse_cancel_replace(&body, &market_sell()).is_err(), "{body}");
        }

        let failure = |data: Value| json!({"code": -2021, "msg": "x", "data": data}).to_string();
        let refused_cancel = json!({"code": -2011, "msg": "Unknown order sent."});
        let v: Value = serde_json::from_str(REPLACED).unwrap();
        for body in [
            String::new(),
            r#"{"code":-2022,"msg":"Order cancel-replace failed."}"#.into(),
            r#"{"code":-2022,"msg":"x","data":null}"#.into(),
            REPLACED.into(),
            // ALLOW_FAILURE shapes, or both parts failed: not what STOP_ON_FAILURE answers.
            failure(json!({"cancelResult":"FAILURE","newOrderResult":"SUCCESS",
                "cancelResponse":refused_cancel,"newOrderResponse":v["newOrderResponse"]})),
            failure(json!({"cancelResult":"FAILURE","newOrderResult":"FAILURE",
                "cancelResponse":refused_cancel,"newOrderResponse":refused_cancel})),
            // A refused cancel whose response is no error; a done cancel whose response is none.
            failure(json!({"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED",
                "cancelResponse":{"msg":"no code"},"newOrderResponse":null})),
            failure(json!({"cancelResult":"SUCCESS","newOrderResult":"FAILURE",
                "cancelResponse":refused_cancel,"newOrderResponse":refused_cancel})),
            failure(json!({"cancelResult":"SUCCESS","newOrderResult":"FAILURE",
                "cancelResponse":v["cancelResponse"],"newOrderResponse":null})),
        ] {
            assert!(parse_cancel_replace_failure(&body).is_err(), "{body}");
        }
    }
}
