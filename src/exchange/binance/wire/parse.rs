//! Parsing: Binance's response bodies (REST, and the WebSocket API's `result`) into domain
//! types. What Binance may leave out is optional here; what it must send and did not is a
//! [`WireError`].

use super::{malformed, ExchangeInfo, RateLimit, WireError};
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, NewOrder};
use serde::Deserialize;
use serde_json::Value;

fn unknown(field: &'static str, value: &str) -> WireError {
    WireError::UnknownValue { field, value: value.to_string() }
}

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
            (Some(text), _) => Side::parse(text).ok_or_else(|| unknown("side", text))?,
            (None, Some(order)) => order.side,
            (None, None) => return Err(WireError::OrderWithout("side")),
        };
        let order_type = match (self.order_type.as_deref(), sent) {
            (Some(text), _) => ExchangeOrderType::parse(text).ok_or_else(|| unknown("order type", text))?,
            (None, Some(order)) => order.order_type,
            (None, None) => return Err(WireError::OrderWithout("type")),
        };
        let status = match (self.status.as_deref(), sent) {
            (Some(text), _) => ExchangeStatus::parse(text).ok_or_else(|| unknown("order status", text))?,
            // An ACK: the engine accepted it, nothing more is known.
            (None, Some(_)) => ExchangeStatus::New,
            (None, None) => return Err(WireError::OrderWithout("status")),
        };
        let orig_qty = match (self.orig_qty, sent) {
            (Some(q), _) => q,
            (None, Some(order)) => order.quantity,
            (None, None) => return Err(WireError::OrderWithout("origQty")),
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
    serde_json::from_str::<WireOrder>(body).map_err(malformed("order"))?.into_report(None)
}

/// A placement response of any type (ACK, RESULT, FULL); what an ACK leaves out is taken from
/// the order as sent, and its status is NEW.
pub fn parse_placement(body: &str, sent: &NewOrder) -> Result<OrderReport, WireError> {
    serde_json::from_str::<WireOrder>(body).map_err(malformed("order"))?.into_report(Some(sent))
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
    let trades: Vec<WireTrade> = serde_json::from_str(body).map_err(malformed("trade array"))?;
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
    let items: Vec<Value> = serde_json::from_str(body).map_err(malformed("order array"))?;
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
    serde_json::from_value::<WireOrder>(value).map_err(malformed("order"))?.into_report(None)
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
    WireSymbol::deserialize(value).map(WireSymbol::into_rules).map_err(malformed("exchangeInfo symbol"))
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
    let info: WireExchangeInfo = serde_json::from_str(body).map_err(malformed("exchangeInfo"))?;
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
    let t: WireBookTicker = serde_json::from_str(body).map_err(malformed("bookTicker"))?;
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
    let a: WireAccount = serde_json::from_str(body).map_err(malformed("account"))?;
    Ok(a.balances.into_iter().map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked }).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTime {
    server_time: i64,
}

/// `GET /api/v3/time`: server time in ms.
pub fn parse_server_time(body: &str) -> Result<i64, WireError> {
    serde_json::from_str::<WireTime>(body).map(|t| t.server_time).map_err(malformed("server time"))
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

fn api_error_from_value(value: Value, what: &'static str) -> Result<(i64, String), WireError> {
    serde_json::from_value::<WireApiError>(value).map(|e| (e.code, e.msg)).map_err(malformed(what))
}

/// A 200 cancel-replace answer (both parts SUCCESS): the cancel response, read as a cancel's
/// (the order's own client id), and the new order's, read as a placement of `sent`.
pub fn parse_cancel_replace(body: &str, sent: &NewOrder) -> Result<(OrderReport, OrderReport), WireError> {
    let r = serde_json::from_str::<WireCancelReplace>(body).map_err(malformed("cancel-replace response"))?;
    if (r.cancel_result.as_str(), r.new_order_result.as_str()) != ("SUCCESS", "SUCCESS") {
        return Err(WireError::CancelReplaceNotDone {
            cancel_result: r.cancel_result,
            new_order_result: r.new_order_result,
        });
    }
    let cancelled = order_from_value(r.cancel_response)?;
    let placed = serde_json::from_value::<WireOrder>(r.new_order_response)
        .map_err(malformed("new order response"))?
        .into_report(Some(sent))?;
    Ok((cancelled, placed))
}

/// The body of a cancel-replace that failed in part: `{"code","msg","data":{…}}`. Anything
/// but the two STOP_ON_FAILURE shapes is a [`WireError`].
pub fn parse_cancel_replace_failure(body: &str) -> Result<CancelReplaceFailure, WireError> {
    let r = serde_json::from_str::<WireCancelReplaceError>(body).map_err(malformed("cancel-replace error"))?.data;
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
        (cancel, new) => Err(WireError::CancelReplaceNotStopOnFailure {
            cancel_result: cancel.to_string(),
            new_order_result: new.to_string(),
        }),
    }
}
