//! The simulator's knobs. Every field has a default, so a config file or a flag set only
//! needs to name what it changes.

use crate::domain::money::Decimal;
use std::collections::BTreeMap;

/// How the simulated exchange behaves. Randomness (book shape, random walk, partial fills,
/// refusals) all comes from one RNG seeded with `seed`, so a run is reproducible.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    /// Simulated network round trip, applied by [`super::SimGateway`]; 0 means no delay.
    pub latency_us: u64,
    /// Taker fills are priced this many basis points worse than the book level (rounded to the
    /// tick, away from the taker).
    pub extra_slippage_bps: Decimal,
    /// Chance that a MARKET order fills only part of its quantity and ends EXPIRED.
    pub partial_fill_probability: f64,
    /// Chance that a valid order is refused with a -2010 message.
    pub reject_probability: f64,
    /// Free balance per asset when the exchange starts fresh (ignored when state is loaded).
    pub starting_balances: BTreeMap<String, Decimal>,
    /// Journal records written before the journal is folded into the snapshot.
    pub compact_every: u64,
    /// The first order id and the first trade id of a fresh exchange (a loaded one continues
    /// its own). `genesis-exchange` starts them high, as Binance's are, so that a client's
    /// "unknown order id 1" does not find a real order.
    pub first_order_id: i64,
    pub first_trade_id: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        let starting_balances = [("USDT", 100_000_i64), ("BTC", 1), ("ETH", 10), ("SOL", 100)]
            .into_iter()
            .map(|(asset, amount)| (asset.to_string(), Decimal::from(amount)))
            .collect();
        SimConfig {
            seed: 42,
            latency_us: 0,
            extra_slippage_bps: Decimal::ZERO,
            partial_fill_probability: 0.0,
            reject_probability: 0.0,
            starting_balances,
            compact_every: 20_000,
            first_order_id: 1,
            first_trade_id: 1,
        }
    }
}
