//! Checks Binance makes on a request before its endpoint runs, and the order filters the
//! simulator does not know (errors.md, filters.md):
//!
//! - a parameter sent twice in the query string or twice in the body: -1101;
//! - a parameter the endpoint does not read: -1104 (a client bug would otherwise hide);
//! - an unknown `selfTradePreventionMode`: -1130 (one the symbol does not allow: `stp`);
//! - `icebergQty`, `trailingDelta`, pegged orders: -2010 "… not supported for this symbol.";
//! - `quantity`, `price`, `stopPrice` with more than 8 decimals: -1111;
//! - PERCENT_PRICE_BY_SIDE, MARKET_LOT_SIZE and MAX_NUM_ORDERS (advertised in `exchangeInfo`).

use crate::endpoints::Endpoint;
use crate::params::Params;
use crate::reply::ApiError;
use genesis::domain::money::Decimal;
use genesis::domain::order::{ExchangeOrderType, Side};
use genesis::exchange::binance::sign::parse_query;
use genesis::exchange::sim::Simulator;
use genesis::exchange::NewOrder;
use serde_json::{json, Value};

/// MAX_NUM_ORDERS: open orders per symbol (algo orders included).
pub const MAX_NUM_ORDERS: usize = 200;
/// PERCENT_PRICE_BY_SIDE multipliers of the 5-minute average price.
const BID_UP: Decimal = Decimal::from_parts(5, 0, 0, false, 0);
const BID_DOWN: Decimal = Decimal::from_parts(2, 0, 0, false, 1);
const ASK_UP: Decimal = Decimal::from_parts(5, 0, 0, false, 0);
const ASK_DOWN: Decimal = Decimal::from_parts(2, 0, 0, false, 1);
/// The scale of a base or quote asset (`baseAssetPrecision`, `quotePrecision`).
const ASSET_PRECISION: u32 = 8;

const SIGNED: &[&str] = &["timestamp", "recvWindow", "signature"];
const SYMBOLS: &[&str] = &["symbol", "symbols", "symbolStatus"];
const ORDER: &[&str] = &[
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "strategyId",
    "strategyType",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "newOrderRespType",
    "selfTradePreventionMode",
    "pegPriceType",
    "pegOffsetValue",
    "pegOffsetType",
];

/// The parameters an endpoint reads (rest-api.md, each endpoint's table).
fn read_by(endpoint: Endpoint) -> Vec<&'static str> {
    use Endpoint::*;
    let own: &[&str] = match endpoint {
        Ping | Time => &[],
        ExchangeInfo => &["symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"],
        BookTicker | TickerPrice => SYMBOLS,
        Ticker24hr => &["symbol", "symbols", "type", "symbolStatus"],
        AvgPrice => &["symbol"],
        Klines => &["symbol", "interval", "startTime", "endTime", "timeZone", "limit"],
        Trades => &["symbol", "limit", "fromId"],
        AggTrades => &["symbol", "fromId", "startTime", "endTime", "limit"],
        Depth => &["symbol", "limit", "symbolStatus"],
        NewOrder => ORDER,
        TestOrder => &["computeCommissionRates"],
        CancelReplace => &[
            "cancelReplaceMode",
            "cancelNewClientOrderId",
            "cancelOrigClientOrderId",
            "cancelOrderId",
            "cancelRestrictions",
            "orderRateLimitExceededMode",
        ],
        QueryOrder => &["symbol", "orderId", "origClientOrderId"],
        CancelOrder => &["symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"],
        OpenOrders | CancelOpenOrders => &["symbol"],
        AllOrders => &["symbol", "orderId", "startTime", "endTime", "limit"],
        MyTrades => &["symbol", "orderId", "startTime", "endTime", "fromId", "limit"],
        Account => &["omitZeroBalances"],
    };
    let mut names = own.to_vec();
    if matches!(endpoint, TestOrder | CancelReplace) {
        names.extend_from_slice(ORDER);
    }
    if endpoint.signed() {
        names.extend_from_slice(SIGNED);
    }
    names
}

/// -1101 for a name repeated within the query string or within the body; -1104 for a name
/// the endpoint does not read.
pub fn check_params(endpoint: Endpoint, query: &str, body: Option<&str>, p: &Params) -> Result<(), ApiError> {
    for source in std::iter::once(query).chain(body) {
        let mut seen: Vec<String> = Vec::new();
        for (name, _) in parse_query(source) {
            if seen.contains(&name) {
                return Err(ApiError::bad(-1101, "Duplicate values for a parameter detected."));
            }
            seen.push(name);
        }
    }
    let read = read_by(endpoint);
    let sent = p.names().count();
    let known = p.names().filter(|n| read.contains(n)).count();
    if known < sent {
        return Err(ApiError::bad(
            -1104,
            format!("Not all sent parameters were read; read '{known}' parameter(s) but was sent '{sent}'."),
        ));
    }
    Ok(())
}

/// The order parameters the simulator does not check: STP mode, iceberg / trailing / pegged
/// orders (not enabled on any symbol here), and the precision of the decimals.
pub fn check_order_params(p: &Params) -> Result<(), ApiError> {
    if let Some(mode) = p.get("selfTradePreventionMode") {
        if !crate::stp::STP_MODES.contains(&mode) {
            return Err(ApiError::bad(-1130, "Data sent for parameter 'selfTradePreventionMode' is not valid."));
        }
    }
    if p.get("icebergQty").is_some() {
        return Err(ApiError::bad(-2010, "Iceberg orders are not supported for this symbol."));
    }
    if p.get("trailingDelta").is_some() {
        return Err(ApiError::bad(-2010, "Trailing stop orders are not supported for this symbol."));
    }
    if p.get("pegPriceType").is_some() || p.get("pegOffsetValue").is_some() || p.get("pegOffsetType").is_some() {
        return Err(ApiError::bad(-2010, "Pegged orders are not supported for this symbol."));
    }
    for name in ["quantity", "quoteOrderQty", "price", "stopPrice"] {
        if let Some(value) = p.decimal(name)? {
            if value.normalize().scale() > ASSET_PRECISION {
                return Err(ApiError::bad(-1111, format!("Parameter '{name}' has too much precision.")));
            }
        }
    }
    Ok(())
}

/// PERCENT_PRICE_BY_SIDE (the order's `price` against the 5-minute average price),
/// MARKET_LOT_SIZE (as LOT_SIZE, for MARKET orders) and MAX_NUM_ORDERS (open orders on the
/// symbol), after the simulator's own (PRICE_FILTER, LOT_SIZE, NOTIONAL, MAX_NUM_ALGO_ORDERS).
pub fn check_extra_filters(order: &NewOrder, sim: &Simulator, now_ms: i64) -> Result<(), ApiError> {
    let filter = |name: &str| ApiError::bad(-1013, format!("Filter failure: {name}"));
    if let Some(price) = order.price {
        let avg_price = crate::market_data::average_price(sim, &order.symbol, now_ms)?;
        let (up, down) = match order.side {
            Side::Buy => (BID_UP, BID_DOWN),
            Side::Sell => (ASK_UP, ASK_DOWN),
        };
        if !avg_price.is_zero() && (price > avg_price * up || price < avg_price * down) {
            return Err(filter("PERCENT_PRICE_BY_SIDE"));
        }
    }
    if order.order_type == ExchangeOrderType::Market {
        if let Some(rules) = sim.rules(&order.symbol) {
            let q = order.quantity;
            let stepped = rules.step_size.is_zero() || (q % rules.step_size).is_zero();
            if q < rules.min_qty || (!rules.max_qty.is_zero() && q > rules.max_qty) || !stepped {
                return Err(filter("MARKET_LOT_SIZE"));
            }
        }
    }
    let open = sim.open_orders(Some(&order.symbol)).map_or(0, |o| o.len());
    if open >= MAX_NUM_ORDERS {
        return Err(filter("MAX_NUM_ORDERS"));
    }
    Ok(())
}

/// `exchangeInfo` as this server serves it: the wire shape of the gateway's own parser plus
/// what Binance's carries and the simulator's rules leave out — `cancelReplaceAllowed`, the
/// STP modes, and the filters PERCENT_PRICE_BY_SIDE, MARKET_LOT_SIZE and MAX_NUM_ORDERS.
pub fn decorate_exchange_info(info: &mut Value, stp: &crate::stp::StpBook) {
    let Some(symbols) = info.get_mut("symbols").and_then(Value::as_array_mut) else {
        return;
    };
    for s in symbols {
        s["cancelReplaceAllowed"] = json!(true);
        stp.decorate(s);
        let lot = s["filters"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["filterType"] == "LOT_SIZE"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(filters) = s["filters"].as_array_mut() {
            filters.insert(
                1,
                json!({
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": BID_UP.to_string(),
                    "bidMultiplierDown": BID_DOWN.to_string(),
                    "askMultiplierUp": ASK_UP.to_string(),
                    "askMultiplierDown": ASK_DOWN.to_string(),
                    "avgPriceMins": 5,
                }),
            );
            filters.push(json!({
                "filterType": "MARKET_LOT_SIZE",
                "minQty": lot["minQty"],
                "maxQty": lot["maxQty"],
                "stepSize": lot["stepSize"],
            }));
            filters.push(json!({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS}));
        }
    }
}
