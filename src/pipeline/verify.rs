//! Verify stage: checks each execution's real fill against what was asked and expected.
//!
//! Receives executions (placement and verification query applied) from exchange I/O;
//! computes the average fill price (quote filled / quantity filled), slippage and latency,
//! raises `slippage_alert`, records the order, and hands the verified order back to exchange
//! I/O, which opens or closes positions and protects them.

use super::msg::{Execution, FromVerify, ToPersist, ToVerify};
use crate::domain::lifecycle::OrderStatus;
use crate::domain::money::{slippage_percent, Decimal};
use crate::domain::order::{Order, Side};
use crate::events::{Bus, Event};
use crossbeam_channel::{Receiver, Sender};
use std::time::Instant;

pub struct Verify {
    pub slippage_alert_pct: Decimal,
    pub bus: Bus,
    pub to_exchange_io: Sender<FromVerify>,
    pub to_persist: Sender<ToPersist>,
    pub stats: std::sync::Arc<super::stats::Stats>,
}

/// The verified fill's numbers, computed where the verification query returned (exchange
/// I/O), so that "verified" costs no thread hop: latency from the command, and slippage
/// against the expected price. Everything else about the fill (events, alerts, records)
/// happens in this stage, off the order's critical path.
pub fn assess(order: &mut Order, timing: &mut super::msg::Timing) {
    let verified_at = Instant::now();
    timing.verified_at = Some(verified_at);
    order.latency_us = Some(verified_at.duration_since(timing.read_at).as_micros() as u64);
    if let (Some(expected), Some(actual)) = (order.expected_price, order.avg_price) {
        order.slippage_percent = slippage_percent(expected, actual);
    }
}

/// True when slippage hurts the trader by more than `threshold` percent: a buy filled above,
/// a sell below the expected price.
pub fn is_adverse(side: Side, slippage: Decimal, threshold: Decimal) -> bool {
    match side {
        Side::Buy => slippage > threshold,
        Side::Sell => -slippage > threshold,
    }
}

impl Verify {
    pub fn run(self, from_exchange_io: Receiver<ToVerify>) {
        for msg in from_exchange_io {
            match msg {
                ToVerify::Executed(execution) => self.verify(execution),
            }
        }
    }

    fn verify(&self, mut execution: Box<Execution>) {
        if execution.timing.verified_at.is_none() {
            assess(&mut execution.order, &mut execution.timing);
        }
        let order = &mut execution.order;
        let latency = super::OrderLatency::of(&execution.timing);
        self.publish_fill(order, execution.verification_error.as_deref(), &latency);
        if let Some(slippage) = order.slippage_percent {
            if is_adverse(order.side, slippage, self.slippage_alert_pct) {
                log::warn!(
                    "{} adverse slippage {slippage}% on {} {} (expected {}, filled at {})",
                    order.client_order_id,
                    order.side.as_str(),
                    order.symbol,
                    order.expected_price.unwrap_or_default().normalize(),
                    order.avg_price.unwrap_or_default().normalize()
                );
                self.bus.publish(
                    Event::new(
                        "slippage_alert",
                        format!(
                            "{} {} {}: slippage {slippage}% beyond {}% (expected {}, filled at {})",
                            order.order_id,
                            order.side.as_str(),
                            order.symbol,
                            self.slippage_alert_pct,
                            order.expected_price.unwrap_or_default().normalize(),
                            order.avg_price.unwrap_or_default().normalize()
                        ),
                    )
                    .order(order.order_id, &order.client_order_id)
                    .money("slippage_percent", slippage)
                    .money("threshold_percent", self.slippage_alert_pct)
                    .money_opt("expected_price", order.expected_price)
                    .money_opt("avg_price", order.avg_price),
                );
            }
        }
        let _ = self.to_persist.send(ToPersist::Order(Box::new(order.clone())));
        self.stats.record_order(&latency);
        let _ = self.to_exchange_io.send(FromVerify::Verified(execution));
    }

    fn publish_fill(&self, order: &Order, verification_error: Option<&str>, latency: &super::OrderLatency) {
        let latency_ms = order.latency_us.unwrap_or(0) as f64 / 1000.0;
        let (kind, text) = match order.status {
            OrderStatus::Filled => (
                "order_filled",
                format!(
                    "{} {} {} {} filled at {} (expected {}, slippage {}%, {:.3} ms)",
                    order.order_id,
                    order.side.as_str(),
                    order.filled_quantity,
                    order.symbol,
                    order.avg_price.unwrap_or_default().normalize(),
                    order.expected_price.unwrap_or_default().normalize(),
                    order.slippage_percent.unwrap_or_default(),
                    latency_ms
                ),
            ),
            _ if order.filled_quantity > Decimal::ZERO => (
                "order_partially_filled",
                format!(
                    "{} {} {}: filled {} of {} at {} ({})",
                    order.order_id,
                    order.side.as_str(),
                    order.symbol,
                    order.filled_quantity,
                    order.quantity,
                    order.avg_price.unwrap_or_default().normalize(),
                    order.status.as_str()
                ),
            ),
            OrderStatus::Cancelled => (
                "order_cancelled",
                format!(
                    "{} {} {} {}: nothing filled (expired)",
                    order.order_id,
                    order.side.as_str(),
                    order.quantity,
                    order.symbol
                ),
            ),
            _ => (
                "order_unverified",
                format!(
                    "{} {} {}: no fill confirmed yet ({})",
                    order.order_id,
                    order.side.as_str(),
                    order.symbol,
                    order.status.as_str()
                ),
            ),
        };
        let mut event = Event::new(kind, text)
            .order(order.order_id, &order.client_order_id)
            .field("symbol", order.symbol.as_str())
            .field("side", order.side.as_str())
            .field("status", order.status.as_str())
            .money("quantity", order.quantity)
            .money("filled_quantity", order.filled_quantity)
            .money_opt("avg_price", order.avg_price)
            .money_opt("expected_price", order.expected_price)
            .money_opt("slippage_percent", order.slippage_percent)
            .money("commission", order.commission)
            .field("commission_asset", order.commission_asset.clone())
            .field("latency_ms", latency_ms)
            .field("exchange_order_id", order.exchange_order_id)
            .field(
                "stages_us",
                serde_json::json!({
                    "intake": latency.intake_us,
                    "sign": latency.sign_us,
                    "round_trip": latency.round_trip_us,
                    "verify_query": latency.verify_query_us,
                    "verify": latency.verify_us,
                    "total": latency.total_us,
                }),
            );
        if let Some(error) = verification_error {
            event = event.field("verification_error", error);
        }
        self.bus.publish(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn buys_filled_above_expected_beyond_threshold_are_adverse() {
        assert!(is_adverse(Side::Buy, d("1"), d("0.5")));
        assert!(!is_adverse(Side::Buy, d("0.5"), d("0.5")));
        assert!(!is_adverse(Side::Buy, d("0.3"), d("0.5")));
        assert!(!is_adverse(Side::Buy, d("-1"), d("0.5")));
    }

    #[test]
    fn sells_filled_below_expected_beyond_threshold_are_adverse() {
        assert!(is_adverse(Side::Sell, d("-1"), d("0.5")));
        assert!(!is_adverse(Side::Sell, d("-0.5"), d("0.5")));
        assert!(!is_adverse(Side::Sell, d("1"), d("0.5")));
        assert!(!is_adverse(Side::Sell, d("0"), d("0.5")));
    }
}
