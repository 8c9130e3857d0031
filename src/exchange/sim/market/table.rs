//! The market table: the three built-in symbols (rules, starting books) and markets built
//! from an `exchangeInfo` document's specs.

use super::*;

pub(super) fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::ZERO)
}

pub(super) struct Spec {
    pub(super) symbol: &'static str,
    pub(super) base: &'static str,
    pub(super) bid: &'static str,
    pub(super) ask: &'static str,
    pub(super) tick: &'static str,
    pub(super) step: &'static str,
    pub(super) max_qty: &'static str,
    pub(super) gap: &'static str,
    /// Level quantity range, in steps.
    pub(super) level_steps: (i64, i64),
    pub(super) order_types: &'static [ExchangeOrderType],
}

pub(super) const SPECS: [Spec; 3] = {
    use ExchangeOrderType::*;
    [
        Spec {
            symbol: "BTCUSDT",
            base: "BTC",
            bid: "64999.99",
            ask: "65000.00",
            tick: "0.01",
            step: "0.00001",
            max_qty: "9000",
            gap: "1.00",
            level_steps: (5_000, 50_000),
            order_types: &[Limit, LimitMaker, Market, StopLossLimit, TakeProfitLimit],
        },
        Spec {
            symbol: "ETHUSDT",
            base: "ETH",
            bid: "2999.99",
            ask: "3000.00",
            tick: "0.01",
            step: "0.0001",
            max_qty: "9000",
            gap: "0.05",
            level_steps: (5_000, 50_000),
            order_types: &[Limit, LimitMaker, Market, StopLoss, StopLossLimit, TakeProfit, TakeProfitLimit],
        },
        Spec {
            symbol: "SOLUSDT",
            base: "SOL",
            bid: "149.99",
            ask: "150.00",
            tick: "0.01",
            step: "0.001",
            max_qty: "90000",
            gap: "0.01",
            level_steps: (5_000, 60_000),
            order_types: &[Limit, LimitMaker, Market, StopLoss, StopLossLimit, TakeProfit, TakeProfitLimit],
        },
    ]
};

pub(super) fn build_market(spec: &Spec, rng: &mut ChaCha8Rng) -> Market {
    let step = dec(spec.step);
    let rules = SymbolRules {
        symbol: spec.symbol.to_string(),
        base_asset: spec.base.to_string(),
        quote_asset: "USDT".to_string(),
        trading: true,
        tick_size: dec(spec.tick),
        min_price: dec(spec.tick),
        max_price: dec("1000000"),
        step_size: step,
        min_qty: step,
        max_qty: dec(spec.max_qty),
        min_notional: Decimal::from(5),
        order_types: spec.order_types.to_vec(),
        max_num_algo_orders: Some(5),
    };
    let (lo, hi) = spec.level_steps;
    let mut level = || step * Decimal::from(rng.random_range(lo..=hi));
    let bid_qty = (0..LEVELS).map(|_| level()).collect();
    let ask_qty = (0..LEVELS).map(|_| level()).collect();
    Market {
        book: Book {
            symbol: rules.symbol.clone(),
            bid: dec(spec.bid),
            ask: dec(spec.ask),
            gap: dec(spec.gap),
            bid_qty,
            ask_qty,
        },
        rules,
    }
}

/// A symbol for [`Simulator::with_markets`]: its rules and where its book starts.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSpec {
    pub rules: SymbolRules,
    pub bid: Decimal,
    pub ask: Decimal,
}

pub(super) fn build_spec_market(spec: &MarketSpec, rng: &mut ChaCha8Rng) -> Market {
    let smallest = Decimal::new(1, 8);
    let step = if spec.rules.step_size.is_zero() { smallest } else { spec.rules.step_size };
    let gap = if spec.rules.tick_size.is_zero() { smallest } else { spec.rules.tick_size };
    let mut level = || step * Decimal::from(rng.random_range(5_000..=50_000_i64));
    let bid_qty = (0..LEVELS).map(|_| level()).collect();
    let ask_qty = (0..LEVELS).map(|_| level()).collect();
    Market {
        book: Book { symbol: spec.rules.symbol.clone(), bid: spec.bid, ask: spec.ask, gap, bid_qty, ask_qty },
        rules: spec.rules.clone(),
    }
}
