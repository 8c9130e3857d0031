//! Live order tracking: our resting orders (stop-losses above all) are watched, so a fill,
//! cancel or expiry done by the exchange or another client is seen within the poll interval,
//! recorded, and acted on (a triggered stop closes its position; a vanished stop is replaced).

use super::*;
use crate::exchange::PushMsg as StreamMsg;
use crossbeam_channel::RecvError;

/// How a change reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// The periodic open-orders poll.
    Poll,
    /// The user data stream (pushed by the exchange).
    Stream,
    /// A request of ours (cancel, cancel-all, release for a sell).
    Request,
}

/// What to do when a resting order turns out cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnCancel {
    /// We asked for it (cancel-all, a sell releasing its stops): leave the position as it is.
    Expected,
    /// Someone else did it: re-protect the position at once.
    Reprotect,
}

/// The poll's interval while the stream is up: it is the check on the stream, not the fast path.
pub(super) const STREAM_UP_WATCH: Duration = Duration::from_secs(1);

impl ExchangeIo {
    /// When the next watch poll is due (`None` while nothing rests on the exchange).
    pub(super) fn next_watch(&self) -> Option<Instant> {
        let every = if self.stream_up { self.watch_interval.max(STREAM_UP_WATCH) } else { self.watch_interval };
        (!self.resting.is_empty()).then(|| self.last_watch + every)
    }

    /// One receive from the user data stream's channel.
    pub(super) fn on_stream_recv(&mut self, msg: Result<StreamMsg, RecvError>, from_stream: &mut Receiver<StreamMsg>) {
        match msg {
            Ok(msg) => self.on_stream(msg, from_stream),
            // The stream thread ended (it only does when told to): the poll goes on. No test
            // reaches this: the thread stops only once `self.stream` (its link) is dropped,
            // after `run`'s loop, so only a panic in that thread could end it here.
            #[cfg(not(tarpaulin_include))]
            Err(RecvError) => {
                self.stream_up = false;
                *from_stream = never();
            }
        }
    }

    /// A message of the user data stream. Reports queued behind it are taken in the same turn
    /// and merged per order (the latest state, every fill), so a stop filled in several trades
    /// is acted on once.
    pub(super) fn on_stream(&mut self, first: StreamMsg, from_stream: &Receiver<StreamMsg>) {
        let mut reports: Vec<(OrderReport, i64)> = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                StreamMsg::Subscribed => {
                    self.stream_up = true;
                    self.stats.set_stream_state("up");
                    // Whatever changed while the stream was down (or before it came up) is
                    // learnt now: the poll is the reconcile after a gap.
                    self.watch();
                }
                StreamMsg::Down(reason) => {
                    self.stream_up = false;
                    self.stats.set_stream_state("down");
                    log::warn!(
                        "user data stream down ({reason}); polling every {} ms",
                        self.watch_interval.as_millis()
                    );
                }
                StreamMsg::Report { report, event_ms } => {
                    match reports.iter_mut().find(|(r, _)| r.client_order_id == report.client_order_id) {
                        Some((merged, _)) => {
                            let mut fills = std::mem::take(&mut merged.fills);
                            fills.extend(report.fills.iter().cloned());
                            if report.executed_qty >= merged.executed_qty {
                                *merged = report;
                            }
                            merged.fills = fills;
                        }
                        None => reports.push((report, event_ms)),
                    }
                }
            }
            next = from_stream.try_recv().ok();
        }
        for (report, _event_ms) in reports {
            let Some(order) = self.resting.get(&report.client_order_id) else {
                continue; // not ours, or no longer resting (a request of ours already settled it)
            };
            let changed = report.executed_qty > order.filled_quantity || !report.status.is_open();
            if changed {
                self.on_resting_report(report, Seen::Stream, "cancelled outside Genesis", OnCancel::Reprotect);
            }
        }
    }

    /// One poll: `GET openOrders` per symbol with our resting orders (weight 6 each); an order
    /// of ours missing from the answer is queried to learn how it ended.
    pub(super) fn watch(&mut self) {
        self.last_watch = Instant::now();
        let symbols: BTreeSet<String> = self.resting.values().map(|o| o.symbol.clone()).collect();
        for symbol in symbols {
            let open = match self.gateway.open_orders(Some(&symbol)) {
                Ok(open) => open,
                Err(e) => {
                    log::warn!("watch {symbol}: {e}");
                    continue;
                }
            };
            let ours: Vec<(String, Decimal)> = self
                .resting
                .values()
                .filter(|o| o.symbol == symbol)
                .map(|o| (o.client_order_id.clone(), o.filled_quantity))
                .collect();
            for (client_order_id, filled) in ours {
                match open.iter().find(|r| r.client_order_id == client_order_id) {
                    Some(report) if report.executed_qty > filled => {
                        self.on_resting_report(report.clone(), Seen::Poll, "partly filled", OnCancel::Reprotect)
                    }
                    Some(_) => {}
                    None => match self.gateway.query_order(&symbol, &client_order_id) {
                        Ok(report) => {
                            self.on_resting_report(report, Seen::Poll, "cancelled outside Genesis", OnCancel::Reprotect)
                        }
                        Err(e) => log::warn!("{client_order_id} left the open orders; query failed: {e}"),
                    },
                }
            }
        }
        self.exit_stranded_stops();
    }

    /// A triggered STOP_LOSS_LIMIT whose limit the bid has fallen below rests unfilled while the
    /// loss grows (a price gap through the stop and its limit). Seen at a poll: it is cancelled
    /// and the position sold at market (`emergency_exit`), and it no longer counts as protected.
    pub(super) fn exit_stranded_stops(&mut self) {
        let stranded: Vec<Order> = self
            .resting
            .values()
            .filter(|o| o.role == OrderRole::StopLoss && o.exchange_type == ExchangeOrderType::StopLossLimit)
            .filter(|o| {
                let bid = self.quotes.top_of_book(&o.symbol).map(|t| t.bid);
                matches!((bid, o.limit_price, o.stop_price), (Some(bid), Some(limit), Some(stop)) if bid < limit && bid <= stop)
            })
            .cloned()
            .collect();
        for stop in stranded {
            let (limit, stop_price) = (stop.limit_price.unwrap_or_default(), stop.stop_price.unwrap_or_default());
            let reason = format!(
                "stop-limit {} triggered at {stop_price} but the bid fell below its limit {limit}: it cannot fill",
                stop.order_id
            );
            log::error!("{}: {reason}", stop.client_order_id);
            self.cancel_stop(&stop.symbol, &stop.client_order_id, "stranded below its limit");
            let Some(mut position) = stop.position_id.and_then(|id| self.positions.remove(&id)) else { continue };
            if position.status != PositionStatus::Closed && position.quantity > Decimal::ZERO {
                self.emergency_exit(&mut position, stop_price, &reason);
                self.persist_position(&position);
            }
            if position.status != PositionStatus::Closed {
                self.positions.insert(position.position_id, position);
            }
        }
    }

    /// Applies a report about one of our resting orders and acts on what changed.
    pub(super) fn on_resting_report(&mut self, report: OrderReport, seen: Seen, why: &str, on_cancel: OnCancel) {
        let Some(mut order) = self.resting.remove(&report.client_order_id) else {
            return;
        };
        // Not a cancel by someone else: the matching engine expired it (self-trade prevention,
        // or the reason the exchange gives).
        let expired_why;
        let why = match (report.status, report.expiry_reason.as_deref()) {
            (crate::domain::order::ExchangeStatus::ExpiredInMatch, _) => {
                "expired in match by the exchange's self-trade prevention"
            }
            (crate::domain::order::ExchangeStatus::Expired, Some(reason)) => {
                expired_why = format!("expired by the exchange: {reason}");
                &expired_why
            }
            _ => why,
        };
        if seen != Seen::Request {
            // From the exchange's transaction time to now.
            let delay_ms = (now_us() / 1000 - report.time_ms).max(0) as u64;
            self.stats.record_detection(delay_ms, seen == Seen::Stream);
        }
        let (before, quote_before, fees_before) = (order.filled_quantity, order.cum_quote, fees_in_quote(&order));
        self.apply(&mut order, &report);
        // A poll's or a query's report carries no trades: read them, for the fees.
        self.complete_fills(&mut order);
        let newly_filled = order.filled_quantity - before;
        self.persist_order(&order);
        if newly_filled > Decimal::ZERO {
            self.balances_dirty = true;
            if order.role == OrderRole::StopLoss {
                // This part's own price and fees: a stop filled in parts books each at its price.
                let part = SoldPart {
                    quantity: newly_filled,
                    price: (order.cum_quote - quote_before) / newly_filled,
                    fees: fees_in_quote(&order) - fees_before,
                };
                self.stop_triggered(&order, part);
            }
        }
        match order.status {
            OrderStatus::Pending | OrderStatus::Partial => {
                self.resting.insert(order.client_order_id.clone(), order);
            }
            OrderStatus::Filled => {
                if order.exchange_type.is_algo() {
                    self.slots.stop_closed(&order.symbol);
                }
            }
            OrderStatus::Cancelled | OrderStatus::Failed => {
                if order.reason.is_none() {
                    order.reason = Some(why.to_string());
                    self.persist_order(&order);
                }
                if order.exchange_type.is_algo() {
                    self.slots.stop_closed(&order.symbol);
                }
                let mut ended = Event::order_ended(EventKind::OrderCancelled, &order, why);
                if let Some(reason) = &order.expiry_reason {
                    ended = ended.field("expiry_reason", reason.as_str());
                }
                self.out.announce(ended);
                self.unlink_stop(&order, on_cancel);
            }
        }
    }

    /// A stop-loss filled (wholly or partly): the position it protected closes by that much.
    fn stop_triggered(&mut self, stop: &Order, part: SoldPart) {
        let filled = part.quantity;
        let Some(mut position) = stop.position_id.and_then(|id| self.positions.remove(&id)) else {
            log::warn!("{} stop-loss filled, but its position is not open", stop.client_order_id);
            return;
        };
        self.out.announce(
            Event::new(
                EventKind::StopLossTriggered,
                format!(
                    "position {}: stop-loss {} triggered, sold {filled} {} at {}",
                    position.position_id,
                    stop.order_id,
                    stop.symbol,
                    stop.avg_price.unwrap_or_default()
                ),
            )
            .order(stop.order_id, &stop.client_order_id)
            .field("position_id", position.position_id)
            .money("quantity", filled)
            .money_opt("fill_price", stop.avg_price)
            .money("commission", stop.commission)
            .money_opt("stop_price", stop.stop_price),
        );
        let take = filled.min(position.quantity);
        self.close_part(&mut position, take, stop, part);
        if position.status != PositionStatus::Closed {
            self.positions.insert(position.position_id, position);
        }
    }

    /// A stop that ended without filling no longer protects its position.
    fn unlink_stop(&mut self, stop: &Order, on_cancel: OnCancel) {
        let Some(mut position) = stop.position_id.and_then(|id| self.positions.remove(&id)) else {
            return;
        };
        if position.stop_loss_client_id.as_deref() == Some(stop.client_order_id.as_str()) {
            position.stop_loss_client_id = None;
            position.stop_loss_order_id = None;
            position.stop_loss = None;
            position.status = PositionStatus::Unprotected;
            position.updated_at_us = now_us();
            if on_cancel == OnCancel::Reprotect {
                self.protect(&mut position);
            }
            self.persist_position(&position);
        }
        self.positions.insert(position.position_id, position);
    }
}
