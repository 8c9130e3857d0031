//! The seeded order stream: buy/sell pairs on random symbols, each sell closing the position
//! its buy opened. Quantities are integers of the symbol's step, written as exact decimal
//! strings (no floating point on the money path).

/// A symbol the stream trades: its name and the decimals of its quantity step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    /// The step is `10^-step_decimals` (BTCUSDT 0.00001 → 5).
    pub step_decimals: u32,
}

pub const SYMBOLS: [Symbol; 3] = [
    Symbol { name: "BTCUSDT", step_decimals: 5 },
    Symbol { name: "ETHUSDT", step_decimals: 4 },
    Symbol { name: "SOLUSDT", step_decimals: 3 },
];

/// Buy sizes in steps: 100..=300 (BTC 0.001–0.003, ETH 0.01–0.03, SOL 0.1–0.3), all above the
/// 10 USDT minimum even after the commission and far below 5 % of equity.
const MIN_UNITS: u64 = 100;
const MAX_UNITS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

/// One order of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub side: Side,
    pub symbol: &'static str,
    /// Exact decimal string, e.g. `0.099`.
    pub quantity: String,
}

impl Order {
    /// The engine's command line, with its newline.
    pub fn line(&self) -> String {
        let verb = match self.side {
            Side::Buy => "buy",
            Side::Sell => "sell",
        };
        format!("{verb} {} {}\n", self.symbol, self.quantity)
    }
}

/// `units` steps of `10^-decimals` as a decimal string: (99, 3) → "0.099".
pub fn units_to_decimal(units: u64, decimals: u32) -> String {
    if decimals == 0 {
        return units.to_string();
    }
    let scale = 10u64.pow(decimals);
    let frac = format!("{:0width$}", units % scale, width = decimals as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", units / scale)
    } else {
        format!("{}.{frac}", units / scale)
    }
}

/// What a buy of `units` leaves after the 0.1 % commission, rounded down to the step.
pub fn units_after_commission(units: u64) -> u64 {
    units * 999 / 1000
}

/// The workload's generator: the project's one PRNG.
pub use genesis::domain::prng::SplitMix64 as Rng;

/// The endless stream: buy, its closing sell, buy, ...
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    pending_sell: Option<Order>,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload { rng: Rng::new(seed), pending_sell: None }
    }

    /// The first `n` orders as the engine's input, one command per line.
    pub fn script(seed: u64, n: u64) -> String {
        Workload::new(seed).take(n as usize).map(|o| o.line()).collect()
    }
}

impl Iterator for Workload {
    type Item = Order;

    fn next(&mut self) -> Option<Order> {
        if let Some(sell) = self.pending_sell.take() {
            return Some(sell);
        }
        let symbol = SYMBOLS[self.rng.range(0, SYMBOLS.len() as u64 - 1) as usize];
        let units = self.rng.range(MIN_UNITS, MAX_UNITS);
        self.pending_sell = Some(Order {
            side: Side::Sell,
            symbol: symbol.name,
            quantity: units_to_decimal(units_after_commission(units), symbol.step_decimals),
        });
        Some(Order { side: Side::Buy, symbol: symbol.name, quantity: units_to_decimal(units, symbol.step_decimals) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_deterministic_per_seed() {
        let a: Vec<Order> = Workload::new(7).take(1000).collect();
        let b: Vec<Order> = Workload::new(7).take(1000).collect();
        let c: Vec<Order> = Workload::new(8).take(1000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(Workload::script(7, 1000), a.iter().map(Order::line).collect::<String>());
    }

    #[test]
    fn every_buy_is_followed_by_the_sell_that_closes_it() {
        let orders: Vec<Order> = Workload::new(1).take(2000).collect();
        for pair in orders.chunks(2) {
            assert_eq!(pair[0].side, Side::Buy);
            assert_eq!(pair[1].side, Side::Sell);
            assert_eq!(pair[0].symbol, pair[1].symbol);
        }
        // All three symbols show up.
        for s in SYMBOLS {
            assert!(orders.iter().any(|o| o.symbol == s.name));
        }
    }

    #[test]
    fn the_documented_pairs_come_out_exactly() {
        assert_eq!(units_to_decimal(units_after_commission(100), 3), "0.099");
        assert_eq!(units_to_decimal(units_after_commission(100), 4), "0.0099");
        assert_eq!(units_to_decimal(units_after_commission(100), 5), "0.00099");
        assert_eq!(units_to_decimal(100, 3), "0.1");
        assert_eq!(units_to_decimal(300, 5), "0.003");
        assert_eq!(units_to_decimal(units_after_commission(150), 3), "0.149");
        assert_eq!(units_to_decimal(1500, 3), "1.5");
        assert_eq!(units_to_decimal(2000, 3), "2");
        assert_eq!(units_to_decimal(7, 0), "7");
    }

    #[test]
    fn lines_are_engine_commands() {
        let line = Order { side: Side::Buy, symbol: "SOLUSDT", quantity: "0.1".into() }.line();
        assert_eq!(line, "buy SOLUSDT 0.1\n");
    }
}
