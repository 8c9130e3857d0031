//! One symbol's synthetic order book: a best bid and ask, and a fixed number of levels per
//! side, `gap` apart, with seeded-random quantities. The shape (level quantities) stays the
//! same when the price moves and is restored after every trade, so liquidity a market order
//! consumes is replenished.

use crate::domain::money::Decimal;
use crate::domain::order::Side;

/// Levels per side.
pub const LEVELS: usize = 20;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Book {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    /// Distance between two levels of one side.
    pub gap: Decimal,
    /// Quantity of level i below the bid (index 0 is the bid).
    pub bid_qty: Vec<Decimal>,
    /// Quantity of level i above the ask (index 0 is the ask).
    pub ask_qty: Vec<Decimal>,
}

/// The levels of one side, best first; levels at or below zero do not exist.
pub struct Levels<'a> {
    top: Decimal,
    /// Signed distance from one level to the next (negative for bids).
    step: Decimal,
    qty: std::slice::Iter<'a, Decimal>,
    offset: Decimal,
}

impl Iterator for Levels<'_> {
    type Item = (Decimal, Decimal);
    fn next(&mut self) -> Option<(Decimal, Decimal)> {
        let qty = *self.qty.next()?;
        let price = self.top + self.offset;
        self.offset += self.step;
        if price <= Decimal::ZERO {
            return None;
        }
        Some((price, qty))
    }
}

impl Book {
    pub fn bids(&self) -> Levels<'_> {
        Levels { top: self.bid, step: -self.gap, qty: self.bid_qty.iter(), offset: Decimal::ZERO }
    }

    pub fn asks(&self) -> Levels<'_> {
        Levels { top: self.ask, step: self.gap, qty: self.ask_qty.iter(), offset: Decimal::ZERO }
    }

    /// The side a taker of `side` trades against: asks for a buy, bids for a sell.
    pub fn opposite(&self, side: Side) -> Levels<'_> {
        match side {
            Side::Buy => self.asks(),
            Side::Sell => self.bids(),
        }
    }

    /// Best price a taker of `side` would get.
    pub fn top_for(&self, side: Side) -> Decimal {
        match side {
            Side::Buy => self.ask,
            Side::Sell => self.bid,
        }
    }

    /// Quantity a resting order of `side` at `limit` can trade against right now.
    pub fn crossing_qty(&self, side: Side, limit: Decimal) -> Decimal {
        self.opposite(side).take_while(|(price, _)| crosses(side, *price, limit)).map(|(_, qty)| qty).sum()
    }
}

/// True when a book level at `level` is within a `side` order's `limit`.
pub fn crosses(side: Side, level: Decimal, limit: Decimal) -> bool {
    match side {
        Side::Buy => level <= limit,
        Side::Sell => level >= limit,
    }
}
