//! The order and account endpoints: new order (and `order/test`), query, cancel, open orders,
//! cancel-all, all orders, account trades, account (`rest-api.md`, "Trading endpoints" and
//! "Account endpoints").

use crate::endpoints::Ctx;
use crate::params::Params;
use crate::reply::ApiError;
use crate::time_in_force::{Tif, TifBook};
use genesis::domain::money::{round_down_to_step, Decimal};
use genesis::domain::order::{ExchangeOrderType, OrderReport, Side};
use genesis::exchange::binance::user_data::Change;
use genesis::exchange::binance::wire::{
    account_json, cancel_json, fmt_decimal, order_ack_json, order_json, order_query_json,
};
use genesis::exchange::sim::{OrderRef, Simulator, Trade};
use genesis::exchange::NewOrder;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespType {
    Ack,
    Result,
    Full,
}

/// The order a POST /api/v3/order describes, and the response shape asked for.
pub(crate) fn parse_new_order(
    p: &Params,
    sim: &Simulator,
    ctx: &Ctx<'_>,
) -> Result<(NewOrder, RespType, Tif), ApiError> {
    use ExchangeOrderType as T;
    crate::checks::check_order_params(p)?;
    let symbol = p.require("symbol")?;
    let side_text = p.require("side")?;
    let type_text = p.require("type")?;
    let rules = sim.rules(symbol).ok_or_else(ApiError::invalid_symbol)?;
    ctx.stp.mode_for(symbol, p.get("selfTradePreventionMode"))?;
    let side = Side::parse(side_text).ok_or_else(|| ApiError::bad(-1117, "Invalid side."))?;
    let order_type = T::parse(type_text).ok_or_else(|| ApiError::bad(-1116, "Invalid orderType."))?;
    let needs_tif = matches!(order_type, T::Limit | T::StopLossLimit | T::TakeProfitLimit);
    let tif = match (needs_tif, p.get("timeInForce").map(|t| (t, Tif::parse(t)))) {
        (true, None) => return Err(ApiError::mandatory("timeInForce")),
        (false, None) => Tif::Gtc,
        (true, Some((_, Some(Tif::Gtc)))) => Tif::Gtc,
        (true, Some((_, Some(tif)))) => tif,
        (true, Some((_, None))) => return Err(ApiError::bad(-1115, "Invalid timeInForce.")),
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
        None => ctx.ids.next_id(),
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

pub(crate) fn new_order(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>, test: bool) -> Result<Value, ApiError> {
    let (order, resp, tif) = parse_new_order(p, sim, ctx)?;
    sim.check_order(&order)?;
    ctx.filters.check(&order, sim, ctx.server_now_ms)?;
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
pub(crate) fn test_commission_json() -> Value {
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
pub(crate) fn find_order(p: &Params, sim: &Simulator, symbol: &str) -> Result<OrderReport, ApiError> {
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

pub(crate) fn query_order(p: &Params, sim: &Simulator, tifs: &TifBook) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    Ok(shown(tifs, find_order(p, sim, symbol)?))
}

/// An order's query shape with its IOC / FOK outcome.
pub(crate) fn shown(tifs: &TifBook, mut report: OrderReport) -> Value {
    tifs.present(&mut report);
    let mut value = order_query_json(&report);
    tifs.patch_json(&mut value);
    value
}

pub(crate) fn cancel_order(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
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

pub(crate) fn open_orders(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let orders = sim.open_orders(p.get("symbol"))?;
    Ok(Value::Array(orders.iter().map(order_query_json).collect()))
}

pub(crate) fn cancel_open_orders(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
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
pub(crate) fn list_limit(p: &Params) -> Result<usize, ApiError> {
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000);
    Ok(usize::try_from(limit).unwrap_or(500))
}

/// The first `limit` items when a lower bound was given, else the latest `limit`.
pub(crate) fn window<T>(mut items: Vec<T>, from_start: bool, limit: usize) -> Vec<T> {
    if from_start {
        items.truncate(limit);
        items
    } else {
        let skip = items.len().saturating_sub(limit);
        items.split_off(skip)
    }
}

pub(crate) fn all_orders(p: &Params, sim: &Simulator, tifs: &TifBook) -> Result<Value, ApiError> {
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

pub(crate) fn trade_json(t: &Trade) -> Value {
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

pub(crate) fn my_trades(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
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

pub(crate) fn account(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let mut balances = sim.balances();
    if p.get("omitZeroBalances") == Some("true") {
        balances.retain(|b| !b.free.is_zero() || !b.locked.is_zero());
    }
    Ok(account_json(&balances))
}
