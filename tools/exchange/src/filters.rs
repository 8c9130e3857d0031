//! The order filters of filters.md the simulator's rules do not hold, checked after its own
//! (PRICE_FILTER, LOT_SIZE, NOTIONAL's minimum, MAX_NUM_ALGO_ORDERS): PERCENT_PRICE,
//! PERCENT_PRICE_BY_SIDE, MARKET_LOT_SIZE, MAX_NUM_ORDERS, MAX_POSITION, NOTIONAL's maximum,
//! and the exchange filters EXCHANGE_MAX_NUM_ORDERS and EXCHANGE_MAX_NUM_ALGO_ORDERS.
//!
//! The built-in symbols have PERCENT_PRICE_BY_SIDE ×5 / ×0.2, MARKET_LOT_SIZE as their
//! LOT_SIZE and MAX_NUM_ORDERS 200. A `--markets` document's symbols have the filters the
//! document gives them, with its values, and `exchangeInfo` shows them as given. Prices are
//! checked against the 5-minute average price whatever `avgPriceMins` says.

use crate::markets::SymbolDoc;
use crate::reply::ApiError;
use genesis::domain::money::Decimal;
use genesis::domain::order::{ExchangeOrderType, Side};
use genesis::exchange::sim::Simulator;
use genesis::exchange::NewOrder;
use serde_json::{json, Value};
use std::collections::HashMap;

/// MAX_NUM_ORDERS of the built-in symbols: open orders per symbol (algo orders included).
pub const MAX_NUM_ORDERS: usize = 200;
/// PERCENT_PRICE_BY_SIDE of the built-in symbols: (up, down) multipliers of the average price.
const BY_SIDE_UP: Decimal = Decimal::from_parts(5, 0, 0, false, 0);
const BY_SIDE_DOWN: Decimal = Decimal::from_parts(2, 0, 0, false, 1);

/// The filter types a document's symbol may carry that this module enforces.
const ENFORCED: [&str; 5] =
    ["PERCENT_PRICE", "PERCENT_PRICE_BY_SIDE", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS", "MAX_POSITION"];

/// One symbol's filters of this module (absent: not checked).
#[derive(Debug, Clone, Default, PartialEq)]
struct SymbolFilters {
    /// PERCENT_PRICE: up, down.
    percent_price: Option<[Decimal; 2]>,
    /// PERCENT_PRICE_BY_SIDE: bid up, bid down, ask up, ask down.
    by_side: Option<[Decimal; 4]>,
    /// MARKET_LOT_SIZE: min, max, step (0: none).
    market_lot: Option<[Decimal; 3]>,
    max_num_orders: Option<usize>,
    max_position: Option<Decimal>,
    /// NOTIONAL: maxNotional, applyMaxToMarket.
    max_notional: Option<(Decimal, bool)>,
    /// The document's filter objects `exchangeInfo` shows for the symbol (beside the
    /// simulator's own).
    served: Vec<Value>,
    /// The document's NOTIONAL, shown instead of the simulator's.
    notional: Option<Value>,
}

fn decimal(v: &Value, name: &str) -> Option<Decimal> {
    v[name].as_str().and_then(|s| s.parse().ok())
}

fn count(v: &Value, name: &str) -> Option<usize> {
    v[name].as_u64().and_then(|n| usize::try_from(n).ok())
}

impl SymbolFilters {
    fn from_doc(filters: &[Value]) -> SymbolFilters {
        let mut out = SymbolFilters::default();
        for f in filters {
            let kind = f["filterType"].as_str().unwrap_or_default();
            match kind {
                "PERCENT_PRICE" => {
                    out.percent_price =
                        decimal(f, "multiplierUp").zip(decimal(f, "multiplierDown")).map(|(u, d)| [u, d])
                }
                "PERCENT_PRICE_BY_SIDE" => {
                    let names = ["bidMultiplierUp", "bidMultiplierDown", "askMultiplierUp", "askMultiplierDown"];
                    let values: Option<Vec<Decimal>> = names.iter().map(|n| decimal(f, n)).collect();
                    out.by_side = values.map(|v| [v[0], v[1], v[2], v[3]]);
                }
                "MARKET_LOT_SIZE" => {
                    let values: Option<Vec<Decimal>> =
                        ["minQty", "maxQty", "stepSize"].iter().map(|n| decimal(f, n)).collect();
                    out.market_lot = values.map(|v| [v[0], v[1], v[2]]);
                }
                "MAX_NUM_ORDERS" => out.max_num_orders = count(f, "maxNumOrders"),
                "MAX_POSITION" => out.max_position = decimal(f, "maxPosition"),
                "NOTIONAL" => {
                    out.max_notional = decimal(f, "maxNotional").map(|m| (m, f["applyMaxToMarket"] == true));
                    out.notional = Some(f.clone());
                }
                _ => {}
            }
            if ENFORCED.contains(&kind) {
                out.served.push(f.clone());
            }
        }
        out
    }
}

/// EXCHANGE_MAX_NUM_ORDERS and EXCHANGE_MAX_NUM_ALGO_ORDERS, and the exchange filters as shown.
#[derive(Debug, Clone, Default, PartialEq)]
struct ExchangeFilters {
    max_num_orders: Option<usize>,
    max_num_algo_orders: Option<usize>,
    served: Vec<Value>,
}

#[derive(Debug, Default)]
pub struct FilterBook {
    /// A `--markets` document's symbols; the others are built-in.
    symbols: HashMap<String, SymbolFilters>,
    exchange: ExchangeFilters,
}

fn failure(name: &str) -> ApiError {
    ApiError::bad(-1013, format!("Filter failure: {name}"))
}

impl FilterBook {
    /// The filters of a `--markets` document.
    pub fn from_doc(symbols: &[SymbolDoc], exchange_filters: &[Value]) -> FilterBook {
        let mut exchange = ExchangeFilters::default();
        for f in exchange_filters {
            match f["filterType"].as_str().unwrap_or_default() {
                "EXCHANGE_MAX_NUM_ORDERS" => exchange.max_num_orders = count(f, "maxNumOrders"),
                "EXCHANGE_MAX_NUM_ALGO_ORDERS" => exchange.max_num_algo_orders = count(f, "maxNumAlgoOrders"),
                _ => continue,
            }
            exchange.served.push(f.clone());
        }
        let symbols = symbols.iter().map(|s| (s.symbol.clone(), SymbolFilters::from_doc(&s.filters))).collect();
        FilterBook { symbols, exchange }
    }

    /// A built-in symbol's filters.
    fn built_in(sim: &Simulator, symbol: &str) -> SymbolFilters {
        let lot = sim.rules(symbol).map(|r| [r.min_qty, r.max_qty, r.step_size]);
        SymbolFilters {
            by_side: Some([BY_SIDE_UP, BY_SIDE_DOWN, BY_SIDE_UP, BY_SIDE_DOWN]),
            market_lot: lot,
            max_num_orders: Some(MAX_NUM_ORDERS),
            ..SymbolFilters::default()
        }
    }

    /// -1013 "Filter failure: NAME" for the first filter `order` fails.
    pub fn check(&self, order: &NewOrder, sim: &Simulator, now_ms: i64) -> Result<(), ApiError> {
        let built_in;
        let f = match self.symbols.get(&order.symbol) {
            Some(f) => f,
            None => {
                built_in = FilterBook::built_in(sim, &order.symbol);
                &built_in
            }
        };
        let market = order.order_type == ExchangeOrderType::Market;
        let needs_average = f.percent_price.is_some() || f.by_side.is_some() || f.max_notional.is_some();
        let average = match needs_average {
            true => crate::market_data::average_price(sim, &order.symbol, now_ms)?,
            false => Decimal::ZERO,
        };
        if let (Some(price), false) = (order.price, average.is_zero()) {
            let outside = |up: Decimal, down: Decimal| price > average * up || price < average * down;
            if f.percent_price.is_some_and(|[up, down]| outside(up, down)) {
                return Err(failure("PERCENT_PRICE"));
            }
            let by_side = f.by_side.map(|[bu, bd, au, ad]| if order.side == Side::Buy { (bu, bd) } else { (au, ad) });
            if by_side.is_some_and(|(up, down)| outside(up, down)) {
                return Err(failure("PERCENT_PRICE_BY_SIDE"));
            }
        }
        if let (true, Some([min, max, step])) = (market, f.market_lot) {
            let q = order.quantity;
            if q < min || (!max.is_zero() && q > max) || (!step.is_zero() && !(q % step).is_zero()) {
                return Err(failure("MARKET_LOT_SIZE"));
            }
        }
        if let Some((max, apply_to_market)) = f.max_notional {
            let price = order.price.or((market && apply_to_market).then_some(average));
            if price.is_some_and(|p| p * order.quantity > max) {
                return Err(failure("NOTIONAL"));
            }
        }
        let open_here = sim.open_orders(Some(&order.symbol)).unwrap_or_default();
        if f.max_num_orders.is_some_and(|max| open_here.len() >= max) {
            return Err(failure("MAX_NUM_ORDERS"));
        }
        if let (Some(max), Side::Buy) = (f.max_position, order.side) {
            let base = sim.rules(&order.symbol).map(|r| r.base_asset.clone()).unwrap_or_default();
            let held: Decimal = sim.balances().iter().filter(|b| b.asset == base).map(|b| b.free + b.locked).sum();
            let buying: Decimal =
                open_here.iter().filter(|o| o.side == Side::Buy).map(|o| o.orig_qty - o.executed_qty).sum();
            if held + buying + order.quantity > max {
                return Err(failure("MAX_POSITION"));
            }
        }
        if self.exchange.max_num_orders.is_none() && self.exchange.max_num_algo_orders.is_none() {
            return Ok(());
        }
        let all_open = sim.open_orders(None).unwrap_or_default();
        if self.exchange.max_num_orders.is_some_and(|max| all_open.len() >= max) {
            return Err(failure("EXCHANGE_MAX_NUM_ORDERS"));
        }
        let algo = order.order_type.is_algo();
        let open_algo = || all_open.iter().filter(|o| o.order_type.is_algo()).count();
        if algo && self.exchange.max_num_algo_orders.is_some_and(|max| open_algo() >= max) {
            return Err(failure("EXCHANGE_MAX_NUM_ALGO_ORDERS"));
        }
        Ok(())
    }

    /// The filters of this module in `exchangeInfo`: each symbol's (the built-in ones, or the
    /// document's as written) and the exchange filters.
    pub fn decorate(&self, info: &mut Value) {
        info["exchangeFilters"] = json!(self.exchange.served);
        let Some(symbols) = info.get_mut("symbols").and_then(Value::as_array_mut) else {
            return;
        };
        for s in symbols {
            let name = s["symbol"].as_str().unwrap_or_default().to_string();
            let Some(filters) = s["filters"].as_array_mut() else { continue };
            match self.symbols.get(&name) {
                Some(doc) => {
                    if let (Some(notional), Some(i)) =
                        (&doc.notional, filters.iter().position(|f| f["filterType"] == "NOTIONAL"))
                    {
                        filters[i] = notional.clone();
                    }
                    filters.extend(doc.served.iter().cloned());
                }
                None => {
                    let lot = filters.iter().find(|f| f["filterType"] == "LOT_SIZE").cloned().unwrap_or_default();
                    filters.insert(
                        1,
                        json!({
                            "filterType": "PERCENT_PRICE_BY_SIDE",
                            "bidMultiplierUp": BY_SIDE_UP.to_string(),
                            "bidMultiplierDown": BY_SIDE_DOWN.to_string(),
                            "askMultiplierUp": BY_SIDE_UP.to_string(),
                            "askMultiplierDown": BY_SIDE_DOWN.to_string(),
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
    }
}

#[cfg(test)]
#[path = "filters_tests.rs"]
mod tests;
