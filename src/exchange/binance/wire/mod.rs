//! Binance Spot JSON, exactly as Binance shapes it, in both directions. This file holds what
//! both directions share (the error, the 8-decimal amounts, `exchangeInfo`'s rate limits).
//!
//! - [`parse`] (`parse_*`): response bodies into domain types, for the gateways. Amounts are
//!   decimal strings, ids and times JSON numbers; a body that does not have that shape is a
//!   [`WireError`], never a panic.
//! - [`render`] (`*_json`): domain types into Binance's JSON, for a Binance-compatible server
//!   (`tools/exchange`) and the gateways' tests. Amounts are written as Binance writes them:
//!   8 decimals (`"0.00100000"`).
//!
//! Field names are Binance's, including its spellings (`cummulativeQuoteQty`, `transactTime`,
//! `origClientOrderId`).

use crate::domain::money::Decimal;
use crate::domain::symbol::SymbolRules;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Decimals Binance writes on the wire.
pub const WIRE_SCALE: u32 = 8;

/// A response body (or a WebSocket message) that is not what Binance sends for it.
#[derive(Debug)]
pub enum WireError {
    /// Not JSON of the expected shape; `what` names the part (`order`, `exchangeInfo`, ...).
    Malformed { what: &'static str, source: serde_json::Error },
    /// A field holds a value Binance does not document; `field`: side, order type, order status.
    UnknownValue { field: &'static str, value: String },
    /// An order object without a field only an ACK (whose order we sent) may leave out.
    OrderWithout(&'static str),
    /// A 2xx cancel-replace whose parts did not both succeed.
    CancelReplaceNotDone { cancel_result: String, new_order_result: String },
    /// A failed cancel-replace in neither STOP_ON_FAILURE shape.
    CancelReplaceNotStopOnFailure { cancel_result: String, new_order_result: String },
    /// A WebSocket event object without its `e`.
    EventWithoutType,
    /// A WebSocket message with neither `event` nor a numeric `status`.
    NeitherEventNorResponse,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed { what, source } => write!(f, "malformed {what}: {source}"),
            WireError::UnknownValue { field, value } => write!(f, "unknown {field} '{value}'"),
            WireError::OrderWithout(field) => write!(f, "order without {field}"),
            WireError::CancelReplaceNotDone { cancel_result, new_order_result } => write!(
                f,
                "cancel-replace answered 2xx with cancelResult {cancel_result} and newOrderResult {new_order_result}"
            ),
            WireError::CancelReplaceNotStopOnFailure { cancel_result, new_order_result } => write!(
                f,
                "cancel-replace error with cancelResult {cancel_result} and newOrderResult {new_order_result} (not STOP_ON_FAILURE)"
            ),
            WireError::EventWithoutType => f.write_str("event without a type"),
            WireError::NeitherEventNorResponse => f.write_str("message is neither an event nor a response"),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Malformed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A `map_err` for serde: the JSON of `what` did not have Binance's shape.
pub(crate) fn malformed(what: &'static str) -> impl FnOnce(serde_json::Error) -> WireError {
    move |source| WireError::Malformed { what, source }
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

pub mod parse;
pub mod render;
pub use parse::*;
pub use render::*;

#[cfg(test)]
mod tests;
