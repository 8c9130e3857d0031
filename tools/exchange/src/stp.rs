//! Self-trade prevention modes (rest-api.md "New order" `selfTradePreventionMode`, enums.md
//! "STP Modes"): each symbol's default and allowed modes, checked on every order, and the mode
//! in effect for each order, shown in every order response (`selfTradePreventionMode`). One
//! account cannot trade with itself here, so no mode ever acts.

use crate::reply::ApiError;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Every STP mode Binance defines; each symbol of this server allows them all, unless a
/// `--markets` document says otherwise.
pub const STP_MODES: [&str; 5] = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"];
/// The default of the built-in symbols: live Binance's on its spot symbols.
pub const DEFAULT_MODE: &str = "EXPIRE_MAKER";

/// One symbol's modes, from a `--markets` document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SymbolModes {
    default: &'static str,
    allowed: Vec<&'static str>,
}

#[derive(Debug, Default)]
pub struct StpBook {
    /// Symbols whose modes are not the built-in ones.
    symbols: HashMap<String, SymbolModes>,
    /// Orders placed with a mode other than their symbol's default, by order id.
    orders: Mutex<HashMap<i64, &'static str>>,
}

fn known(mode: &str) -> Option<&'static str> {
    STP_MODES.iter().copied().find(|m| *m == mode)
}

/// -1130, as Binance answers a mode it does not know or the symbol does not allow.
fn invalid() -> ApiError {
    ApiError::bad(-1130, "Data sent for parameter 'selfTradePreventionMode' is not valid.")
}

impl StpBook {
    /// A symbol's modes as an `exchangeInfo` document gives them (`defaultSelfTradePreventionMode`,
    /// `allowedSelfTradePreventionModes`); modes this server does not know are left out, and a
    /// symbol the document gives no usable default keeps the built-in modes.
    pub fn set_symbol(&mut self, symbol: &str, default: &str, allowed: &[&str]) {
        let Some(default) = known(default) else { return };
        let mut allowed: Vec<&'static str> = allowed.iter().filter_map(|m| known(m)).collect();
        if !allowed.contains(&default) {
            allowed.push(default);
        }
        self.symbols.insert(symbol.to_string(), SymbolModes { default, allowed });
    }

    fn default_of(&self, symbol: &str) -> &'static str {
        self.symbols.get(symbol).map_or(DEFAULT_MODE, |s| s.default)
    }

    fn allowed_of(&self, symbol: &str) -> &[&'static str] {
        self.symbols.get(symbol).map_or(&STP_MODES[..], |s| &s.allowed)
    }

    /// The mode an order on `symbol` gets: the one sent, if the symbol allows it (else
    /// -1130), or the symbol's default.
    pub fn mode_for(&self, symbol: &str, sent: Option<&str>) -> Result<&'static str, ApiError> {
        match sent {
            None => Ok(self.default_of(symbol)),
            Some(mode) => known(mode).filter(|m| self.allowed_of(symbol).contains(m)).ok_or_else(invalid),
        }
    }

    /// Keeps the mode of a placed order (only when it is not the symbol's default).
    pub fn remember(&self, order_id: i64, symbol: &str, mode: &'static str) {
        if mode != self.default_of(symbol) {
            self.orders.lock().insert(order_id, mode);
        }
    }

    /// The mode in effect for an order on `symbol`.
    pub fn mode_of(&self, order_id: i64, symbol: &str) -> &'static str {
        let kept = self.orders.lock().get(&order_id).copied();
        kept.unwrap_or_else(|| self.default_of(symbol))
    }

    /// Sets `selfTradePreventionMode` in every order object of a response (arrays and
    /// cancel-replace answers included) to the mode in effect for that order.
    pub fn patch_json(&self, value: &mut Value) {
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| self.patch_json(v)),
            Value::Object(map) => {
                if map.contains_key("selfTradePreventionMode") {
                    let id = map.get("orderId").and_then(Value::as_i64).unwrap_or(-1);
                    let symbol = map.get("symbol").and_then(Value::as_str).unwrap_or_default();
                    let mode = self.mode_of(id, symbol);
                    map.insert("selfTradePreventionMode".into(), Value::String(mode.into()));
                }
                for nested in ["cancelResponse", "newOrderResponse", "data"] {
                    if let Some(v) = map.get_mut(nested) {
                        self.patch_json(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// `defaultSelfTradePreventionMode` and `allowedSelfTradePreventionModes` of one
    /// `exchangeInfo.symbols[]` entry.
    pub fn decorate(&self, symbol_json: &mut Value) {
        let symbol = symbol_json["symbol"].as_str().unwrap_or_default().to_string();
        symbol_json["defaultSelfTradePreventionMode"] = json!(self.default_of(&symbol));
        symbol_json["allowedSelfTradePreventionModes"] = json!(self.allowed_of(&symbol));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_gets_the_sent_mode_if_allowed_else_the_symbols_default() {
        let mut book = StpBook::default();
        book.set_symbol("ABCUSDT", "EXPIRE_TAKER", &["EXPIRE_TAKER", "EXPIRE_BOTH", "NEW_MODE"]);
        assert_eq!(book.mode_for("BTCUSDT", None), Ok("EXPIRE_MAKER"));
        assert_eq!(book.mode_for("BTCUSDT", Some("NONE")), Ok("NONE"));
        assert_eq!(book.mode_for("ABCUSDT", None), Ok("EXPIRE_TAKER"));
        assert_eq!(book.mode_for("ABCUSDT", Some("EXPIRE_BOTH")), Ok("EXPIRE_BOTH"));
        assert_eq!(book.mode_for("ABCUSDT", Some("NONE")).unwrap_err().code, -1130);
        assert_eq!(book.mode_for("BTCUSDT", Some("SOMETIMES")).unwrap_err().code, -1130);
        // A document default this server does not know keeps the built-in modes.
        book.set_symbol("XYZUSDT", "FUTURE_MODE", &[]);
        assert_eq!(book.mode_for("XYZUSDT", None), Ok("EXPIRE_MAKER"));
    }

    #[test]
    fn responses_show_each_orders_mode_nested_ones_included() {
        let book = StpBook::default();
        book.remember(7, "BTCUSDT", "EXPIRE_TAKER");
        book.remember(8, "BTCUSDT", "EXPIRE_MAKER");
        let order = |id: i64| json!({"symbol": "BTCUSDT", "orderId": id, "selfTradePreventionMode": "NONE"});
        let mut v = json!({"cancelResponse": order(8), "newOrderResponse": order(7)});
        book.patch_json(&mut v);
        assert_eq!(v["cancelResponse"]["selfTradePreventionMode"], "EXPIRE_MAKER");
        assert_eq!(v["newOrderResponse"]["selfTradePreventionMode"], "EXPIRE_TAKER");
        let mut ack = json!([{"symbol": "BTCUSDT", "orderId": 7}]);
        book.patch_json(&mut ack);
        assert!(ack[0].get("selfTradePreventionMode").is_none(), "an ACK has no mode to show");
        assert_eq!(book.orders.lock().len(), 1, "a default mode is not kept per order");
    }
}
