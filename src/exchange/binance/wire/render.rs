//! Rendering: domain types into Binance's JSON, as the server (`tools/exchange`) answers and as
//! the gateways' tests script a server. Amounts with 8 decimals, as Binance writes them.

use super::{fmt_decimal, RateLimit, WIRE_SCALE};
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeStatus, Fill, OrderReport};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker};
use serde_json::{json, Value};

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
