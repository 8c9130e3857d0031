//! A symbol's trading rules (Binance `exchangeInfo` filters) and the checks made with them
//! before anything is sent.

use super::money::{is_multiple_of_step, round_down_to_step, Decimal};
use super::order::{ExchangeOrderType, Side};

/// The filters of one symbol that the engine enforces.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SymbolRules {
    pub symbol: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub trading: bool,
    pub tick_size: Decimal,
    pub min_price: Decimal,
    pub max_price: Decimal,
    pub step_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    /// Minimum notional (price × quantity) in the quote asset; zero means no rule.
    pub min_notional: Decimal,
    pub order_types: Vec<ExchangeOrderType>,
    /// `MAX_NUM_ALGO_ORDERS`: open stop orders allowed per symbol.
    pub max_num_algo_orders: Option<u32>,
}

/// Why a quantity, price or notional breaks a symbol's rules. Messages name the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    NotTrading { symbol: String },
    TooManyDecimals { symbol: String, quantity: Decimal, step: Decimal },
    BelowMinQty { symbol: String, quantity: Decimal, min: Decimal },
    AboveMaxQty { symbol: String, quantity: Decimal, max: Decimal },
    BelowMinNotional { symbol: String, notional: Decimal, min: Decimal },
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::NotTrading { symbol } => write!(f, "{symbol} is not trading now"),
            RuleError::TooManyDecimals { symbol, quantity, step } => {
                write!(f, "quantity {quantity} has more decimals than {symbol}'s step size {step} allows")
            }
            RuleError::BelowMinQty { symbol, quantity, min } => {
                write!(f, "quantity {quantity} is below {symbol}'s minimum quantity {min}")
            }
            RuleError::AboveMaxQty { symbol, quantity, max } => {
                write!(f, "quantity {quantity} is above {symbol}'s maximum quantity {max}")
            }
            RuleError::BelowMinNotional { symbol, notional, min } => {
                write!(f, "order value {notional} is below {symbol}'s minimum notional {min}")
            }
        }
    }
}

impl SymbolRules {
    /// Checks a quantity typed by the user: a whole number of steps, within min and max.
    pub fn check_quantity(&self, quantity: Decimal) -> Result<(), RuleError> {
        if !self.trading {
            return Err(RuleError::NotTrading { symbol: self.symbol.clone() });
        }
        if !is_multiple_of_step(quantity, self.step_size) {
            return Err(RuleError::TooManyDecimals {
                symbol: self.symbol.clone(),
                quantity,
                step: self.step_size.normalize(),
            });
        }
        if quantity < self.min_qty {
            return Err(RuleError::BelowMinQty {
                symbol: self.symbol.clone(),
                quantity,
                min: self.min_qty.normalize(),
            });
        }
        if !self.max_qty.is_zero() && quantity > self.max_qty {
            return Err(RuleError::AboveMaxQty {
                symbol: self.symbol.clone(),
                quantity,
                max: self.max_qty.normalize(),
            });
        }
        Ok(())
    }

    /// Checks price × quantity against the minimum notional.
    pub fn check_notional(&self, quantity: Decimal, price: Decimal) -> Result<(), RuleError> {
        let notional = (quantity * price).normalize();
        if notional < self.min_notional {
            return Err(RuleError::BelowMinNotional {
                symbol: self.symbol.clone(),
                notional: notional.round_dp(8),
                min: self.min_notional.normalize(),
            });
        }
        Ok(())
    }

    pub fn round_price_down(&self, price: Decimal) -> Decimal {
        round_down_to_step(price, self.tick_size)
    }

    pub fn round_qty_down(&self, quantity: Decimal) -> Decimal {
        round_down_to_step(quantity, self.step_size)
    }

    /// True when `quantity` at `price` can be sent at all (minimum quantity and notional).
    pub fn is_tradable_amount(&self, quantity: Decimal, price: Decimal) -> bool {
        quantity > Decimal::ZERO && quantity >= self.min_qty && quantity * price >= self.min_notional
    }

    pub fn allows(&self, order_type: ExchangeOrderType) -> bool {
        self.order_types.contains(&order_type)
    }

    /// The asset an order of this side receives (Binance takes commission in it).
    pub fn received_asset(&self, side: Side) -> &str {
        match side {
            Side::Buy => &self.base_asset,
            Side::Sell => &self.quote_asset,
        }
    }
}

/// Test fixtures shared by the domain's and the gateways' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// BTCUSDT as the live exchange lists it (no plain STOP_LOSS), with `order_types`.
    pub(crate) fn btcusdt_with(order_types: Vec<ExchangeOrderType>) -> SymbolRules {
        let d = |s: &str| s.parse::<Decimal>().expect("fixture decimal");
        SymbolRules {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            trading: true,
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: d("1000000"),
            step_size: d("0.00001"),
            min_qty: d("0.00001"),
            max_qty: d("9000"),
            min_notional: d("5"),
            order_types,
            max_num_algo_orders: Some(5),
        }
    }

    /// BTCUSDT with MARKET and STOP_LOSS_LIMIT.
    pub(crate) fn btcusdt() -> SymbolRules {
        btcusdt_with(vec![ExchangeOrderType::Market, ExchangeOrderType::StopLossLimit])
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::btcusdt as btc;
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn quantity_with_more_decimals_than_the_step_is_refused() {
        let err = btc().check_quantity(d("0.000001")).unwrap_err();
        assert_eq!(err.to_string(), "quantity 0.000001 has more decimals than BTCUSDT's step size 0.00001 allows");
    }

    #[test]
    fn quantity_within_limits_is_accepted() {
        assert_eq!(btc().check_quantity(d("0.001")), Ok(()));
        assert_eq!(btc().check_quantity(d("0.00001")), Ok(()));
    }

    #[test]
    fn quantity_of_exactly_the_maximum_is_accepted() {
        assert_eq!(btc().check_quantity(d("9000")), Ok(()));
    }

    #[test]
    fn quantity_above_max_is_refused_with_the_numbers() {
        let err = btc().check_quantity(d("9000.1")).unwrap_err();
        assert!(matches!(err, RuleError::AboveMaxQty { .. }));
        assert_eq!(err.to_string(), "quantity 9000.1 is above BTCUSDT's maximum quantity 9000");
    }

    #[test]
    fn quantity_below_the_minimum_is_refused_with_the_numbers() {
        let min_above_step = SymbolRules { min_qty: d("0.00100"), ..btc() };
        let err = min_above_step.check_quantity(d("0.00099")).unwrap_err();
        assert!(matches!(err, RuleError::BelowMinQty { .. }));
        assert_eq!(err.to_string(), "quantity 0.00099 is below BTCUSDT's minimum quantity 0.001");
    }

    #[test]
    fn a_symbol_that_is_not_trading_refuses_even_a_valid_quantity() {
        let halted = SymbolRules { trading: false, ..btc() };
        let err = halted.check_quantity(d("0.001")).unwrap_err();
        assert_eq!(err, RuleError::NotTrading { symbol: "BTCUSDT".into() });
        assert_eq!(err.to_string(), "BTCUSDT is not trading now");
    }

    #[test]
    fn notional_below_minimum_is_refused_with_the_numbers() {
        let err = btc().check_notional(d("0.00001"), d("65000")).unwrap_err();
        assert_eq!(err.to_string(), "order value 0.65 is below BTCUSDT's minimum notional 5");
        assert_eq!(btc().check_notional(d("0.0001"), d("50000")), Ok(()));
    }

    #[test]
    fn tradable_amount_needs_min_qty_and_min_notional() {
        assert!(btc().is_tradable_amount(d("0.001"), d("65000")));
        assert!(!btc().is_tradable_amount(d("0.00001"), d("65000")));
        assert!(!btc().is_tradable_amount(d("0"), d("65000")));
    }

    #[test]
    fn zero_quantity_is_not_tradable_even_without_minimums() {
        let no_minimums = SymbolRules { min_qty: d("0"), min_notional: d("0"), ..btc() };
        assert!(!no_minimums.is_tradable_amount(d("0"), d("65000")));
        assert!(no_minimums.is_tradable_amount(d("0.00001"), d("65000")));
    }

    #[test]
    fn buys_receive_the_base_asset_and_sells_the_quote() {
        assert_eq!(btc().received_asset(Side::Buy), "BTC");
        assert_eq!(btc().received_asset(Side::Sell), "USDT");
    }
}
