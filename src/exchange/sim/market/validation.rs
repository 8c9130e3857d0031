//! What the exchange refuses before an order reaches the book, in Binance's words: order types
//! a symbol does not allow, missing or extra parameters, the price and lot filters, client ids.

use super::*;

pub(super) fn type_not_supported(order_type: ExchangeOrderType) -> SimError {
    let name = match order_type {
        ExchangeOrderType::Limit => "Limit",
        ExchangeOrderType::Market => "Market",
        ExchangeOrderType::StopLoss => "Stop loss",
        ExchangeOrderType::StopLossLimit => "Stop loss limit",
        ExchangeOrderType::TakeProfit => "Take profit",
        ExchangeOrderType::TakeProfitLimit => "Take profit limit",
        ExchangeOrderType::LimitMaker => "Limit maker",
    };
    SimError::refused(codes::not_supported(name))
}

pub(super) fn needs_price(order_type: ExchangeOrderType) -> bool {
    matches!(
        order_type,
        ExchangeOrderType::Limit
            | ExchangeOrderType::LimitMaker
            | ExchangeOrderType::StopLossLimit
            | ExchangeOrderType::TakeProfitLimit
    )
}

/// Types that trade as a market order (at once, or when triggered).
pub(super) fn is_market_like(order_type: ExchangeOrderType) -> bool {
    matches!(order_type, ExchangeOrderType::Market | ExchangeOrderType::StopLoss | ExchangeOrderType::TakeProfit)
}

pub(super) fn check_param(name: &str, required: bool, value: Option<Decimal>) -> Result<(), SimError> {
    match (required, value) {
        (true, None) => Err(SimError::refused(codes::mandatory_parameter(name))),
        (false, Some(_)) => Err(SimError::refused(codes::not_required(name))),
        _ => Ok(()),
    }
}

pub(super) fn check_price(rules: &SymbolRules, price: Decimal) -> Result<(), SimError> {
    let ok = price > Decimal::ZERO
        && (rules.min_price.is_zero() || price >= rules.min_price)
        && (rules.max_price.is_zero() || price <= rules.max_price)
        && is_multiple_of_step(price, rules.tick_size);
    if ok {
        Ok(())
    } else {
        Err(SimError::refused(codes::filter_failure("PRICE_FILTER")))
    }
}

pub(super) fn check_lot(rules: &SymbolRules, qty: Decimal) -> Result<(), SimError> {
    let ok = qty > Decimal::ZERO
        && qty >= rules.min_qty
        && (rules.max_qty.is_zero() || qty <= rules.max_qty)
        && is_multiple_of_step(qty, rules.step_size);
    if ok {
        Ok(())
    } else {
        Err(SimError::refused(codes::filter_failure("LOT_SIZE")))
    }
}

/// `^[a-zA-Z0-9-_]{1,36}$`, as Binance checks `newClientOrderId`.
pub(super) fn check_client_id(id: &str) -> Result<(), SimError> {
    if id.is_empty() {
        return Err(SimError::refused(codes::EMPTY_NEW_CLIENT_ORDER_ID));
    }
    let legal = id.len() <= 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if legal {
        Ok(())
    } else {
        Err(SimError::refused(codes::illegal_characters("newClientOrderId", "^[a-zA-Z0-9-_]{1,36}$")))
    }
}

impl Simulator {
    /// `POST /api/v3/order/test`: the checks [`Simulator::place`] makes before it trades
    /// (symbol, client id, parameters, filters), with nothing placed.
    pub fn check_order(&self, order: &NewOrder) -> Result<(), SimError> {
        self.check_new(order).map(|_| ())
    }

    /// The checks Binance makes before the matching engine (symbol, parameters, filters); a
    /// cancel-replace makes them before it cancels anything. The market's index.
    pub(super) fn check_new(&self, req: &NewOrder) -> Result<usize, SimError> {
        let m = self.market_index(&req.symbol)?;
        check_client_id(&req.client_order_id)?;
        let rules = &self.markets[m].rules;
        let book = &self.markets[m].book;
        let order_type = req.order_type;
        let side = req.side;
        if !rules.allows(order_type) {
            return Err(type_not_supported(order_type));
        }
        check_param("price", needs_price(order_type), req.price)?;
        check_param("stopPrice", order_type.is_algo(), req.stop_price)?;
        if let Some(price) = req.price {
            check_price(rules, price)?;
        }
        if let Some(stop) = req.stop_price {
            check_price(rules, stop)?;
        }
        check_lot(rules, req.quantity)?;
        let reference = match order_type {
            ExchangeOrderType::Market => book.top_for(side),
            ExchangeOrderType::StopLoss | ExchangeOrderType::TakeProfit => req.stop_price.unwrap_or(Decimal::ZERO),
            _ => req.price.unwrap_or(Decimal::ZERO),
        };
        let notional = req.quantity.checked_mul(reference).unwrap_or(Decimal::MAX);
        if notional < rules.min_notional {
            return Err(SimError::refused(codes::filter_failure("NOTIONAL")));
        }
        if order_type.is_algo() {
            let max = rules.max_num_algo_orders.map_or(usize::MAX, |n| n as usize);
            let open_algo =
                self.open.values().filter(|o| o.report.symbol == req.symbol && o.report.order_type.is_algo()).count();
            if open_algo >= max {
                return Err(SimError::refused(codes::filter_failure("MAX_NUM_ALGO_ORDERS")));
            }
        }
        Ok(m)
    }
}
