//! What the simulated exchange keeps per order and per trade: the records the matching
//! (`market.rs`) updates and the journal (`store.rs`) writes and replays. Plain data, so the two
//! depend on it and not on each other.

use crate::domain::money::Decimal;
use crate::domain::order::OrderReport;

/// One trade of the account (`GET /api/v3/myTrades`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trade {
    pub id: i64,
    pub order_id: i64,
    pub symbol: String,
    pub price: Decimal,
    pub qty: Decimal,
    pub quote_qty: Decimal,
    pub commission: Decimal,
    pub commission_asset: String,
    pub time_ms: i64,
    pub is_buyer: bool,
    pub is_maker: bool,
}

/// An order as the exchange keeps it: its report (without fills) plus what the matching needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimOrder {
    pub report: OrderReport,
    /// Balance still locked for the order: quote for a buy, base for a sell.
    pub locked: Decimal,
    /// A stop whose trigger has been crossed (it now works as a market or limit order).
    pub triggered: bool,
}
