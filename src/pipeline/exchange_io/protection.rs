//! Positions and their protection: a filled entry opens a position protected for what it left;
//! a stop that cannot be placed leaves it UNPROTECTED and is tried again on a schedule, off the
//! order path; a market already through the stop is sold at once.

use super::*;

/// Protection retries of an unprotected position: 1 s, doubling to 60 s, until protected.
pub(super) const REPROTECT_FIRST: Duration = Duration::from_secs(1);
pub(super) const REPROTECT_MAX: Duration = Duration::from_secs(60);

impl ExchangeIo {
    /// Opens the position of a filled entry and protects it (`protect_now`; reconciliation
    /// protects later, once it knows which stops survived on the exchange).
    pub(super) fn open_position(&mut self, mut order: Order, protect_now: bool) {
        let Some(rules) = self.rules.get(&order.symbol).cloned() else {
            log::error!("{} no rules for {}", order.client_order_id, order.symbol);
            return;
        };
        // What the entry left in the account, from its trades: the stop covers that. A part whose
        // trades could not be read paid at most the assumed rate, in the base asset.
        self.complete_fills(&mut order);
        let base_commission = order.commission_in(&rules.base_asset) + unaccounted(&order) * ASSUMED_FEE_RATE;
        let avg_price = order.avg_price.unwrap_or_default();
        // Entry fees in the quote asset, booked against the closes: fees count in realized P&L.
        let entry_fees = fees_in_quote(&order);
        let quantity = position::quantity_held(&rules, order.filled_quantity, base_commission);
        let now = now_us();
        let mut position = Position {
            // A position is named after its entry: a stop's client order id carries the position
            // id, so reconciliation can rebuild a lost position from its entry order.
            position_id: order.order_id,
            symbol: order.symbol.clone(),
            quantity,
            entry_price: avg_price,
            entry_fees: entry_fees.round_dp(8),
            entry_order_id: order.order_id,
            stop_loss: None,
            stop_loss_order_id: None,
            stop_loss_client_id: None,
            status: PositionStatus::Unprotected,
            realized_pnl: Decimal::ZERO,
            opened_at_us: now,
            updated_at_us: now,
            closed_at_us: None,
        };
        order.position_id = Some(position.position_id);
        self.persist_order(&order);
        // The position row goes first: its stop-loss order refers to it.
        self.persist_position(&position);
        if protect_now {
            self.protect(&mut position);
            self.persist_position(&position);
        }
        if position.status != PositionStatus::Closed {
            self.positions.insert(position.position_id, position);
        }
    }

    /// Places the position's stop-loss (or marks it DUST), with retries; on failure the
    /// position is UNPROTECTED and `stop_loss_failed` is raised.
    pub(super) fn protect(&mut self, position: &mut Position) {
        let Some(rules) = self.rules.get(&position.symbol).cloned() else {
            return;
        };
        let plan = position::plan_protection(&rules, position.quantity, position.entry_price, self.stop_settings);
        let (quantity, stop_price, order_type, limit_price) = match plan {
            Protection::Dust { quantity } => {
                position.status = PositionStatus::Dust;
                position.updated_at_us = now_us();
                self.out.announce(
                    Event::new(
                        EventKind::PositionDust,
                        format!(
                            "position {}: {quantity} {} is too small to sell or protect; left alone as DUST",
                            position.position_id, position.symbol
                        ),
                    )
                    .field("position_id", position.position_id)
                    .money("quantity", quantity),
                );
                return;
            }
            Protection::Stop { quantity, stop_price, order_type, limit_price } => {
                (quantity, stop_price, order_type, limit_price)
            }
        };
        let stop_id = self.ids.next_order_id();
        let mut stop = Order::new(
            stop_id,
            self.ids.client_order_id(OrderRole::StopLoss.id_letter(), stop_id, Some(position.position_id)),
            position.symbol.clone(),
            Side::Sell,
            OrderRole::StopLoss,
            order_type,
            quantity,
            now_us(),
        );
        stop.stop_price = Some(stop_price);
        stop.limit_price = limit_price;
        stop.position_id = Some(position.position_id);
        stop.expected_price = Some(stop_price);
        let request = NewOrder {
            symbol: stop.symbol.clone(),
            side: Side::Sell,
            order_type,
            quantity,
            price: limit_price,
            stop_price: Some(stop_price),
            client_order_id: stop.client_order_id.clone(),
        };
        let mut last_reason = String::new();
        let started = Instant::now();
        // Attempts in a row without a pause (a refusal for a cause that can pass, such as
        // -2010, is retried on the protection schedule, off the order path).
        for attempt in 1..=self.stop_loss_attempts {
            match self.place(&request, true) {
                Ok(report) => {
                    self.apply(&mut stop, &report);
                    position.stop_loss = Some(stop_price);
                    position.stop_loss_order_id = Some(stop.order_id);
                    position.stop_loss_client_id = Some(stop.client_order_id.clone());
                    position.status = PositionStatus::Open;
                    position.updated_at_us = now_us();
                    self.slots.stop_opened(&stop.symbol);
                    self.stats.record_stop_loss(started.elapsed().as_micros() as u64);
                    self.persist_order(&stop);
                    self.out.announce(
                        Event::new(
                            EventKind::StopLossPlaced,
                            format!(
                                "position {}: stop-loss {} {} {} at {}{} ({})",
                                position.position_id,
                                stop.order_id,
                                quantity,
                                stop.symbol,
                                stop_price,
                                limit_price.map(|l| format!(", limit {l}")).unwrap_or_default(),
                                order_type.as_str()
                            ),
                        )
                        .order(stop.order_id, &stop.client_order_id)
                        .field("position_id", position.position_id)
                        .field("symbol", stop.symbol.as_str())
                        .money("quantity", quantity)
                        .money("stop_price", stop_price)
                        .money_opt("limit_price", limit_price)
                        .field("exchange_type", order_type.as_str()),
                    );
                    self.resting.insert(stop.client_order_id.clone(), stop);
                    if self.reprotect.remove(&position.position_id).is_some() {
                        log::info!("position {} protected again", position.position_id);
                    }
                    return;
                }
                Err(PlaceFailure::Failed(error)) if error.would_trigger_immediately() => {
                    self.fail(&mut stop, &error.to_string());
                    self.emergency_exit(position, stop_price, "the market is already below the stop");
                    return;
                }
                Err(failure) => {
                    last_reason = failure.to_string();
                    log::warn!("{} stop-loss attempt {attempt} failed: {last_reason}", stop.client_order_id);
                    if matches!(failure, PlaceFailure::Failed(ExchangeError::Rejected { .. })) {
                        break; // the same request would be refused the same way right now
                    }
                }
            }
        }
        let retry_in = self.schedule_reprotect(position.position_id);
        self.fail(&mut stop, &last_reason);
        position.status = PositionStatus::Unprotected;
        position.updated_at_us = now_us();
        log::error!(
            "{} position {} is UNPROTECTED: stop-loss failed: {last_reason}",
            stop.client_order_id,
            position.position_id
        );
        self.out.announce(
            Event::new(
                EventKind::StopLossFailed,
                format!(
                    "position {} ({} {}) is UNPROTECTED: {last_reason}; trying again in {} s",
                    position.position_id,
                    position.quantity,
                    position.symbol,
                    retry_in.as_secs_f64()
                ),
            )
            .order(stop.order_id, &stop.client_order_id)
            .field("position_id", position.position_id)
            .field("reason", last_reason)
            .field("retry_in_ms", retry_in.as_millis() as u64),
        );
    }

    /// Open positions on `symbol` that need a stop-loss, protected or not.
    pub(super) fn positions_needing_stops(&self, symbol: &str) -> u32 {
        let needing = self
            .positions
            .values()
            .filter(|p| p.symbol == symbol && matches!(p.status, PositionStatus::Open | PositionStatus::Unprotected));
        needing.count() as u32
    }

    /// Schedules the next protection attempt of an unprotected position (1 s, doubling to
    /// 60 s); returns the wait.
    pub(super) fn schedule_reprotect(&mut self, position_id: i64) -> Duration {
        let entry = self.reprotect.entry(position_id).or_insert((Instant::now(), Duration::ZERO));
        let wait = if entry.1.is_zero() { REPROTECT_FIRST } else { (entry.1 * 2).min(REPROTECT_MAX) };
        *entry = (Instant::now() + wait, wait);
        wait
    }

    /// When the next protection attempt is due.
    pub(super) fn next_reprotect(&self) -> Option<Instant> {
        self.reprotect.values().map(|(due, _)| *due).min()
    }

    /// Makes every scheduled protection attempt due now (the balances changed; `resume`).
    pub(super) fn reprotect_now(&mut self) {
        let now = Instant::now();
        for (due, _) in self.reprotect.values_mut() {
            *due = now;
        }
    }

    /// Protects again every unprotected position whose attempt is due.
    pub(super) fn retry_protection(&mut self) {
        let now = Instant::now();
        let due: Vec<i64> = self.reprotect.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
        for id in due {
            let Some(mut position) = self.positions.remove(&id) else {
                self.reprotect.remove(&id);
                continue;
            };
            if position.status == PositionStatus::Unprotected && position.stop_loss_client_id.is_none() {
                self.protect(&mut position);
                self.persist_position(&position);
            } else {
                self.reprotect.remove(&id);
            }
            self.positions.insert(id, position);
        }
    }

    /// The market is through the stop and no stop can sell (`reason`): sell at market now.
    pub(super) fn emergency_exit(&mut self, position: &mut Position, stop_price: Decimal, reason: &str) {
        let exit_id = self.ids.next_order_id();
        let mut exit = Order::new(
            exit_id,
            self.ids.client_order_id(OrderRole::EmergencyExit.id_letter(), exit_id, Some(position.position_id)),
            position.symbol.clone(),
            Side::Sell,
            OrderRole::EmergencyExit,
            ExchangeOrderType::Market,
            position.quantity,
            now_us(),
        );
        exit.position_id = Some(position.position_id);
        exit.expected_price = Some(stop_price);
        self.out.announce(
            Event::new(
                EventKind::EmergencyExit,
                format!(
                    "position {}: {reason} (stop {stop_price}); selling {} {} at market now",
                    position.position_id, position.quantity, position.symbol
                ),
            )
            .order(exit.order_id, &exit.client_order_id)
            .field("position_id", position.position_id)
            .money("quantity", position.quantity)
            .money("stop_price", stop_price)
            .field("reason", reason),
        );
        self.persist_order(&exit);
        let request = NewOrder::market_for(&exit);
        match self.place(&request, true) {
            Ok(report) => {
                self.apply(&mut exit, &report);
                if let Ok(report) = self.gateway.query_order(&exit.symbol, &exit.client_order_id) {
                    self.apply(&mut exit, &report);
                }
                self.complete_fills(&mut exit);
                self.persist_order(&exit);
                let take = exit.filled_quantity.min(position.quantity);
                self.close_part(position, take, &exit, SoldPart::all_of(&exit));
            }
            Err(failure) => {
                self.fail(&mut exit, &failure.to_string());
                position.status = PositionStatus::Unprotected;
                // Tried again on the protection schedule: a stop, or this exit if still through it.
                self.schedule_reprotect(position.position_id);
                self.out.announce(
                    Event::new(
                        EventKind::StopLossFailed,
                        format!("position {} is UNPROTECTED: emergency exit failed: {failure}", position.position_id),
                    )
                    .order(exit.order_id, &exit.client_order_id)
                    .field("position_id", position.position_id)
                    .field("reason", failure.to_string()),
                );
            }
        }
    }
}
