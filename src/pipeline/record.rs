//! Recording an execution: what follows a verified order once its line is out.
//!
//! Exchange I/O calls [`Recorder::record`] on the thread that verified the order, right after
//! the fill's line reached stdout and before it opens or closes positions and protects them:
//! publishes the fill's event if it is not out already, raises `slippage_alert`, sends the
//! order's record to persist and counts its latency. (It was a stage of its own, on its own
//! thread; the round trip through it was what a sell following its buy waited for.)

use super::msg::{Execution, ToPersist};
use crate::domain::lifecycle::OrderStatus;
use crate::domain::money::{slippage_percent, Decimal};
use crate::domain::order::{Order, Side};
use crate::events::{Bus, Event, EventKind};
use crossbeam_channel::Sender;
use std::time::Instant;

/// What recording needs: the alert's threshold, and where events, records and latencies go.
pub struct Recorder {
    pub slippage_alert_pct: Decimal,
    pub bus: Bus,
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

impl Recorder {
    /// Records one execution (its fill's event, a slippage alert, the order's record, its
    /// latency); the caller then acts on it (positions, stop-losses).
    pub fn record(&self, execution: &mut Execution) {
        if execution.timing.verified_at.is_none() {
            assess(&mut execution.order, &mut execution.timing);
        }
        let order = &mut execution.order;
        let latency = super::OrderLatency::of(&execution.timing);
        if !execution.announced {
            self.bus.publish(fill_event(order, execution.verification_error.as_deref(), &latency));
        }
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
                        EventKind::SlippageAlert,
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
    }
}

/// `, quote 1.234 ms old` for an expected price whose quote's age is known.
fn quote_age_text(age_us: Option<u64>) -> String {
    age_us.map_or_else(String::new, |us| format!(", quote {:.3} ms old", us as f64 / 1000.0))
}

/// The event of a verified order: `order_filled`, `order_partially_filled`, `order_cancelled`
/// (nothing filled) or `order_unverified`, with the fill's numbers and the latency per stage.
pub fn fill_event(order: &Order, verification_error: Option<&str>, latency: &super::OrderLatency) -> Event {
    let latency_ms = order.latency_us.unwrap_or(0) as f64 / 1000.0;
    // The exchange's word for why it expired the order (e.g. INSUFFICIENT_LIQUIDITY).
    let expired = order.expiry_reason.as_deref().map_or(String::new(), |r| format!(", expired: {r}"));
    let (kind, text) = match order.status {
        OrderStatus::Filled => (
            EventKind::OrderFilled,
            format!(
                "{} {} {} {} filled at {} (expected {}{}, slippage {}%, {:.3} ms)",
                order.order_id,
                order.side.as_str(),
                order.filled_quantity.normalize(),
                order.symbol,
                order.avg_price.unwrap_or_default().normalize(),
                order.expected_price.unwrap_or_default().normalize(),
                quote_age_text(order.expected_price_age_us),
                order.slippage_percent.unwrap_or_default(),
                latency_ms
            ),
        ),
        _ if order.filled_quantity > Decimal::ZERO => (
            EventKind::OrderPartiallyFilled,
            format!(
                "{} {} {}: filled {} of {} at {} ({}{expired})",
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
            EventKind::OrderCancelled,
            format!(
                "{} {} {} {}: nothing filled (expired{})",
                order.order_id,
                order.side.as_str(),
                order.quantity,
                order.symbol,
                order.expiry_reason.as_deref().map_or(String::new(), |r| format!(": {r}"))
            ),
        ),
        _ => (
            EventKind::OrderUnverified,
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
        .field("expected_price_age_us", order.expected_price_age_us)
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
    if let Some(reason) = &order.expiry_reason {
        event = event.field("expiry_reason", reason.as_str());
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::{ExchangeOrderType, OrderRole};
    use crate::events::stdout_lanes;
    use crate::pipeline::msg::Timing;
    use std::sync::Arc;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A market order of 0.01 BTCUSDT expected at 100, in `status` with `filled` at `avg`.
    fn order(side: Side, status: OrderStatus, filled: &str, avg: Option<&str>) -> Order {
        let mut order = Order::new(
            7,
            "gtest-E7".into(),
            "BTCUSDT".into(),
            side,
            if side == Side::Buy { OrderRole::Entry } else { OrderRole::Exit },
            ExchangeOrderType::Market,
            d("0.01"),
            0,
        );
        order.expected_price = Some(d("100"));
        order.status = status;
        order.filled_quantity = d(filled);
        order.avg_price = avg.map(d);
        order
    }

    /// Records one execution; returns the events it published and the orders it recorded.
    fn record_one(order: Order) -> (Vec<Arc<Event>>, Vec<Order>) {
        record_one_announced(order, false)
    }

    /// The same, for an execution whose fill event exchange I/O has `announced` or not.
    fn record_one_announced(order: Order, announced: bool) -> (Vec<Arc<Event>>, Vec<Order>) {
        let (lanes, _queues) = stdout_lanes(16, 16);
        let (to_persist, persisted) = crossbeam_channel::unbounded();
        let recorder = Recorder {
            slippage_alert_pct: d("0.5"),
            bus: Bus::new(lanes, Some(to_persist.clone())),
            to_persist,
            stats: Arc::default(),
        };
        let timing = Timing::new(Instant::now());
        let mut execution = Execution { order, timing, verification_error: None, announced };
        recorder.record(&mut execution);
        let (mut events, mut orders) = (Vec::new(), Vec::new());
        for msg in persisted.try_iter() {
            match msg {
                ToPersist::Event(e) => events.push(e),
                ToPersist::Order(o) => orders.push(*o),
                _ => {}
            }
        }
        (events, orders)
    }

    fn kinds(events: &[Arc<Event>]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn a_buy_filled_beyond_the_slippage_threshold_raises_an_alert_with_the_numbers() {
        let (events, recorded) = record_one(order(Side::Buy, OrderStatus::Filled, "0.01", Some("101")));
        assert_eq!(kinds(&events), ["order_filled", "slippage_alert"]);
        let alert = &events[1];
        assert_eq!(alert.client_order_id.as_deref(), Some("gtest-E7"));
        assert_eq!(alert.fields["slippage_percent"], "1");
        assert_eq!(alert.fields["threshold_percent"], "0.5");
        assert_eq!(alert.fields["expected_price"], "100");
        assert_eq!(alert.fields["avg_price"], "101");
        assert_eq!(alert.text, "7 BUY BTCUSDT: slippage 1.00% beyond 0.5% (expected 100, filled at 101)");
        // The order's record goes to persist with its alert.
        assert_eq!(recorded.len(), 1);
    }

    #[test]
    fn a_fill_exchange_io_already_showed_is_not_announced_again_but_still_alerts_and_is_recorded() {
        let (events, recorded) = record_one_announced(order(Side::Buy, OrderStatus::Filled, "0.01", Some("101")), true);
        assert_eq!(kinds(&events), ["slippage_alert"]);
        assert_eq!(recorded.len(), 1);
    }

    #[test]
    fn a_fill_shows_the_age_of_the_quote_its_expected_price_came_from() {
        let mut o = order(Side::Buy, OrderStatus::Filled, "0.01", Some("100"));
        o.expected_price_age_us = Some(1_500);
        let (events, _) = record_one(o);
        assert_eq!(events[0].fields["expected_price_age_us"], 1_500);
        assert!(events[0].text.contains("(expected 100, quote 1.500 ms old, slippage"), "{}", events[0].text);
        let (events, _) = record_one(order(Side::Buy, OrderStatus::Filled, "0.01", Some("100")));
        assert!(events[0].fields["expected_price_age_us"].is_null());
        assert!(events[0].text.contains("(expected 100, slippage"), "{}", events[0].text);
    }

    #[test]
    fn a_fill_within_the_slippage_threshold_raises_no_alert() {
        let (events, _) = record_one(order(Side::Sell, OrderStatus::Filled, "0.01", Some("99.6")));
        assert_eq!(kinds(&events), ["order_filled"]);
    }

    #[test]
    fn a_part_fill_is_reported_as_partially_filled_with_what_filled() {
        let (events, recorded) = record_one(order(Side::Buy, OrderStatus::Partial, "0.004", Some("100")));
        assert_eq!(kinds(&events), ["order_partially_filled"]);
        let event = &events[0];
        assert_eq!(event.fields["filled_quantity"], "0.004");
        assert_eq!(event.fields["status"], "PARTIAL");
        assert_eq!(event.text, "7 BUY BTCUSDT: filled 0.004 of 0.01 at 100 (PARTIAL)");
        assert_eq!(recorded.len(), 1);
    }

    #[test]
    fn an_order_cancelled_after_a_part_fill_is_reported_as_partially_filled() {
        let (events, _) = record_one(order(Side::Buy, OrderStatus::Cancelled, "0.004", Some("100")));
        assert_eq!(kinds(&events), ["order_partially_filled"]);
        assert_eq!(events[0].fields["status"], "CANCELLED");
    }

    #[test]
    fn a_market_order_that_expired_with_nothing_filled_is_reported_cancelled() {
        let (events, recorded) = record_one(order(Side::Sell, OrderStatus::Cancelled, "0", None));
        assert_eq!(kinds(&events), ["order_cancelled"]);
        assert_eq!(events[0].text, "7 SELL 0.01 BTCUSDT: nothing filled (expired)");
        assert_eq!(events[0].fields["avg_price"], serde_json::Value::Null);
        assert_eq!(recorded.len(), 1);
    }

    #[test]
    fn an_expired_orders_event_names_the_exchanges_expiry_reason() {
        let mut partly = order(Side::Buy, OrderStatus::Cancelled, "0.004", Some("100"));
        partly.expiry_reason = Some("INSUFFICIENT_LIQUIDITY".into());
        let (events, _) = record_one(partly);
        assert_eq!(events[0].fields["expiry_reason"], "INSUFFICIENT_LIQUIDITY");
        assert_eq!(
            events[0].text,
            "7 BUY BTCUSDT: filled 0.004 of 0.01 at 100 (CANCELLED, expired: INSUFFICIENT_LIQUIDITY)"
        );
        let mut nothing = order(Side::Sell, OrderStatus::Cancelled, "0", None);
        nothing.expiry_reason = Some("INSUFFICIENT_LIQUIDITY".into());
        let (events, _) = record_one(nothing);
        assert_eq!(events[0].text, "7 SELL 0.01 BTCUSDT: nothing filled (expired: INSUFFICIENT_LIQUIDITY)");
        assert_eq!(events[0].fields["expiry_reason"], "INSUFFICIENT_LIQUIDITY");
    }

    #[test]
    fn an_order_with_no_fill_confirmed_yet_is_reported_unverified() {
        let (events, recorded) = record_one(order(Side::Buy, OrderStatus::Pending, "0", None));
        assert_eq!(kinds(&events), ["order_unverified"]);
        assert_eq!(events[0].text, "7 BUY BTCUSDT: no fill confirmed yet (PENDING)");
        assert_eq!(recorded.len(), 1);
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
