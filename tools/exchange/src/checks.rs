//! Checks Binance makes on a request before its endpoint runs (errors.md; the order filters
//! the simulator does not know are in `filters`):
//!
//! - a parameter sent twice in the query string or twice in the body: -1101;
//! - a parameter the endpoint does not read: -1104 (a client bug would otherwise hide);
//! - an unknown `selfTradePreventionMode`: -1130 (one the symbol does not allow: `stp`);
//! - `icebergQty`, `trailingDelta`, pegged orders: -2010 "… not supported for this symbol.";
//! - `quantity`, `price`, `stopPrice` with more than 8 decimals: -1111.

use crate::endpoints::Endpoint;
use crate::params::Params;
use crate::reply::ApiError;
use genesis::exchange::binance::sign::parse_query;
use serde_json::{json, Value};
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

/// `exchangeInfo` as this server serves it: the wire shape of the gateway's own parser plus
/// what Binance's carries and the simulator's rules leave out — `cancelReplaceAllowed` and the
/// STP modes (the filters: `filters`).
pub fn decorate_exchange_info(info: &mut Value, stp: &crate::stp::StpBook) {
    let Some(symbols) = info.get_mut("symbols").and_then(Value::as_array_mut) else {
        return;
    };
    for s in symbols {
        s["cancelReplaceAllowed"] = json!(true);
        stp.decorate(s);
    }
}
