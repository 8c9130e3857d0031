//! Positions and their protection: each filled buy opens a position, protected by a stop-loss
//! sell; sells close positions oldest first.

use super::money::{below_by_percent, Decimal};
use super::order::ExchangeOrderType;
use super::symbol::SymbolRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PositionStatus {
    /// Open with a live stop-loss.
    Open,
    /// Open without a stop-loss (placing it failed, or it was cancelled).
    Unprotected,
    /// Too small to sell or protect; left alone.
    Dust,
    Closed,
}

impl PositionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PositionStatus::Open => "OPEN",
            PositionStatus::Unprotected => "UNPROTECTED",
            PositionStatus::Dust => "DUST",
            PositionStatus::Closed => "CLOSED",
        }
    }
    pub fn parse(text: &str) -> Option<PositionStatus> {
        [PositionStatus::Open, PositionStatus::Unprotected, PositionStatus::Dust, PositionStatus::Closed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub position_id: i64,
    pub symbol: String,
    /// Base quantity held (what the buy left in the account, rounded to the step).
    pub quantity: Decimal,
    pub entry_price: Decimal,
    /// Entry commission not yet booked against a close, in the quote asset.
    pub entry_fees: Decimal,
    pub entry_order_id: i64,
    pub stop_loss: Option<Decimal>,
    pub stop_loss_order_id: Option<i64>,
    pub stop_loss_client_id: Option<String>,
    pub status: PositionStatus,
    pub realized_pnl: Decimal,
    pub opened_at_us: i64,
    pub updated_at_us: i64,
    pub closed_at_us: Option<i64>,
}

/// How to protect a quantity: the stop order to place, or why none can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Protection {
    Stop {
        quantity: Decimal,
        stop_price: Decimal,
        order_type: ExchangeOrderType,
        /// Limit price for STOP_LOSS_LIMIT.
        limit_price: Option<Decimal>,
    },
    /// Under the minimum quantity or notional: cannot be sold or protected.
    Dust { quantity: Decimal },
}

/// Settings of the stop-loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopSettings {
    /// Distance of the stop below the entry, percent (2).
    pub stop_loss_pct: Decimal,
    /// Distance of a STOP_LOSS_LIMIT's limit below its stop, percent (0.5).
    pub stop_limit_gap_pct: Decimal,
}

/// The base quantity a buy left in the account: filled quantity less the commission taken in
/// the base asset, rounded down to the step.
pub fn quantity_held(rules: &SymbolRules, filled: Decimal, base_commission: Decimal) -> Decimal {
    rules.round_qty_down((filled - base_commission).max(Decimal::ZERO))
}

/// The stop-loss for `quantity` bought at `entry_price`: stop 2 % below, rounded down to the
/// tick; STOP_LOSS where the symbol allows it, else STOP_LOSS_LIMIT with the limit below.
pub fn plan_protection(
    rules: &SymbolRules,
    quantity: Decimal,
    entry_price: Decimal,
    settings: StopSettings,
) -> Protection {
    let quantity = rules.round_qty_down(quantity);
    let stop_price = rules.round_price_down(below_by_percent(entry_price, settings.stop_loss_pct));
    let (order_type, limit_price) = if rules.allows(ExchangeOrderType::StopLoss) {
        (ExchangeOrderType::StopLoss, None)
    } else {
        let limit = rules.round_price_down(below_by_percent(stop_price, settings.stop_limit_gap_pct));
        (ExchangeOrderType::StopLossLimit, Some(limit))
    };
    // The notional that matters is what the stop would sell at.
    let worst_price = limit_price.unwrap_or(stop_price);
    if stop_price <= Decimal::ZERO || !rules.is_tradable_amount(quantity, worst_price) {
        return Protection::Dust { quantity };
    }
    Protection::Stop { quantity, stop_price, order_type, limit_price }
}

/// One position's part in a sell: how much of it the sell takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub position_id: i64,
    pub take: Decimal,
}

/// Splits a sell of `quantity` over open positions, oldest first (they must come sorted by
/// age). What is left over sells coins held outside any position.
pub fn allocate_sell(positions: &[&Position], quantity: Decimal) -> Vec<Allocation> {
    let mut left = quantity;
    let mut out = Vec::new();
    for position in positions {
        if left <= Decimal::ZERO {
            break;
        }
        if position.status == PositionStatus::Closed || position.status == PositionStatus::Dust {
            continue;
        }
        let take = left.min(position.quantity);
        if take > Decimal::ZERO {
            out.push(Allocation { position_id: position.position_id, take });
            left -= take;
        }
    }
    out
}

/// The share of a position's remaining entry fees that closing `take` of `quantity` books.
pub fn entry_fee_share(entry_fees: Decimal, take: Decimal, quantity: Decimal) -> Decimal {
    if quantity <= Decimal::ZERO || take >= quantity {
        return entry_fees;
    }
    (entry_fees * take / quantity).round_dp(8)
}

/// Realized P&L of selling `quantity` of a position at `exit_price`, less `fees` in the quote.
pub fn realized_pnl(entry_price: Decimal, exit_price: Decimal, quantity: Decimal, fees: Decimal) -> Decimal {
    (exit_price - entry_price) * quantity - fees
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn rules(order_types: Vec<ExchangeOrderType>) -> SymbolRules {
        crate::domain::symbol::fixtures::btcusdt_with(order_types)
    }

    const SETTINGS: StopSettings = StopSettings {
        stop_loss_pct: Decimal::from_parts(2, 0, 0, false, 0),
        stop_limit_gap_pct: Decimal::from_parts(5, 0, 0, false, 1),
    };

    fn position(id: i64, quantity: &str) -> Position {
        Position {
            position_id: id,
            symbol: "BTCUSDT".into(),
            quantity: d(quantity),
            entry_price: d("100"),
            entry_fees: Decimal::ZERO,
            entry_order_id: id,
            stop_loss: None,
            stop_loss_order_id: None,
            stop_loss_client_id: None,
            status: PositionStatus::Open,
            realized_pnl: Decimal::ZERO,
            opened_at_us: 0,
            updated_at_us: 0,
            closed_at_us: None,
        }
    }

    #[test]
    fn every_position_status_parses_back_from_its_name() {
        let all = [PositionStatus::Open, PositionStatus::Unprotected, PositionStatus::Dust, PositionStatus::Closed];
        let names: Vec<_> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["OPEN", "UNPROTECTED", "DUST", "CLOSED"]);
        for status in all {
            assert_eq!(PositionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PositionStatus::parse("open"), None);
    }

    #[test]
    fn quantity_held_subtracts_base_commission_and_rounds_down() {
        let r = rules(vec![]);
        assert_eq!(quantity_held(&r, d("0.001"), d("0.000001")), d("0.00099"));
        assert_eq!(quantity_held(&r, d("0.001"), d("0")), d("0.001"));
    }

    #[test]
    fn stop_is_two_percent_below_entry_rounded_down_to_tick() {
        let r = rules(vec![ExchangeOrderType::StopLoss]);
        assert_eq!(
            plan_protection(&r, d("0.001"), d("65000.37"), SETTINGS),
            Protection::Stop {
                quantity: d("0.001"),
                stop_price: d("63700.36"),
                order_type: ExchangeOrderType::StopLoss,
                limit_price: None
            }
        );
    }

    #[test]
    fn symbol_without_stop_loss_gets_stop_loss_limit_half_a_percent_below() {
        let r = rules(vec![ExchangeOrderType::StopLossLimit]);
        assert_eq!(
            plan_protection(&r, d("0.001"), d("65000"), SETTINGS),
            Protection::Stop {
                quantity: d("0.001"),
                stop_price: d("63700"),
                order_type: ExchangeOrderType::StopLossLimit,
                limit_price: Some(d("63381.5"))
            }
        );
    }

    #[test]
    fn remainder_below_minimum_notional_is_dust() {
        let r = rules(vec![ExchangeOrderType::StopLoss]);
        assert_eq!(
            plan_protection(&r, d("0.00005"), d("65000"), SETTINGS),
            Protection::Dust { quantity: d("0.00005") }
        );
    }

    #[test]
    fn sells_take_positions_oldest_first() {
        let a = position(1, "0.001");
        let b = position(2, "0.002");
        assert_eq!(
            allocate_sell(&[&a, &b], d("0.0015")),
            vec![Allocation { position_id: 1, take: d("0.001") }, Allocation { position_id: 2, take: d("0.0005") }]
        );
    }

    #[test]
    fn a_sell_the_oldest_position_covers_leaves_the_younger_ones_untouched() {
        let a = position(1, "0.001");
        let b = position(2, "0.002");
        assert_eq!(allocate_sell(&[&a, &b], d("0.001")), vec![Allocation { position_id: 1, take: d("0.001") }]);
    }

    #[test]
    fn sells_skip_dust_and_closed_positions() {
        let mut a = position(1, "0.001");
        a.status = PositionStatus::Dust;
        let b = position(2, "0.002");
        assert_eq!(allocate_sell(&[&a, &b], d("0.001")), vec![Allocation { position_id: 2, take: d("0.001") }]);
    }

    #[test]
    fn sells_take_nothing_from_an_open_position_of_zero_quantity() {
        let empty = position(1, "0");
        let b = position(2, "0.002");
        assert_eq!(allocate_sell(&[&empty, &b], d("0.001")), vec![Allocation { position_id: 2, take: d("0.001") }]);
    }

    #[test]
    fn entry_fees_are_booked_pro_rata_and_wholly_on_the_last_close() {
        assert_eq!(entry_fee_share(d("0.3"), d("1"), d("3")), d("0.1"));
        assert_eq!(entry_fee_share(d("0.3"), d("3"), d("3")), d("0.3"));
        assert_eq!(entry_fee_share(d("0.3"), d("1"), d("0")), d("0.3"));
    }

    #[test]
    fn a_partial_close_books_fees_in_proportion_to_the_share_taken() {
        assert_eq!(entry_fee_share(d("0.3"), d("2"), d("4")), d("0.15"));
    }

    #[test]
    fn closing_more_than_the_quantity_books_the_remaining_fees_and_no_more() {
        assert_eq!(entry_fee_share(d("0.3"), d("4"), d("3")), d("0.3"));
    }

    #[test]
    fn realized_pnl_counts_fees() {
        assert_eq!(realized_pnl(d("100"), d("98"), d("2"), d("0.2")), d("-4.2"));
        assert_eq!(realized_pnl(d("100"), d("101"), d("1"), d("0")), d("1"));
    }
}
