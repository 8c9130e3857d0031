//! Start-up reconciliation, before the first command is taken: the database and the exchange
//! are made to agree, and every open position ends with exactly one live stop-loss.
//!
//! 1. Every order the database holds unsettled (PENDING, PARTIAL) is queried by client order
//!    id and brought up to date; one the exchange never saw is recorded CANCELLED.
//! 2. Every order of ours (client id prefix) that the exchange holds and the database lacks is
//!    recovered under the order id its client id carries, and acted on like a live report: a
//!    filled entry opens its position, a filled stop closes it, a resting stop is tracked.
//! 3. Positions are checked against the balance, then each gets exactly one live stop: extras
//!    are cancelled, a missing one is placed.

use super::watch::{OnCancel, Seen};
use super::*;
use crate::domain::ids::ParsedClientId;
use crate::store::{Store, StoreError};

/// What reconciliation did, for the `reconciled` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    pub updated: usize,
    pub recovered: usize,
    pub stop_losses_placed: usize,
    pub stop_losses_cancelled: usize,
    pub unresolved: usize,
}

fn role_of(letter: char) -> OrderRole {
    match letter {
        'E' => OrderRole::Entry,
        'X' => OrderRole::Exit,
        'S' => OrderRole::StopLoss,
        'M' => OrderRole::EmergencyExit,
        _ => OrderRole::Recovered,
    }
}

impl ExchangeIo {
    /// Runs the three steps; publishes `reconciled`.
    pub fn reconcile(&mut self, store: &Store) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        for position in store.open_positions()? {
            self.positions.insert(position.position_id, position);
        }
        for order in store.open_orders()? {
            summary.checked += 1;
            self.settle(order, &mut summary);
        }
        self.recover(store, &mut summary)?;
        self.trim_positions_to_balances();
        self.ensure_one_stop_each(&mut summary);
        let s = summary;
        self.out.announce(
            Event::new(
                "reconciled",
                format!(
                    "reconciled with the exchange: {} orders checked, {} updated, {} recovered, {} stop-losses placed, {} cancelled, {} unresolved",
                    s.checked, s.updated, s.recovered, s.stop_losses_placed, s.stop_losses_cancelled, s.unresolved
                ),
            )
            .field("checked", s.checked)
            .field("updated", s.updated)
            .field("recovered", s.recovered)
            .field("stop_losses_placed", s.stop_losses_placed)
            .field("stop_losses_cancelled", s.stop_losses_cancelled)
            .field("unresolved", s.unresolved),
        );
        Ok(summary)
    }

    /// Step 1 for one unsettled order of the database.
    fn settle(&mut self, order: Order, summary: &mut Summary) {
        let report = match self.gateway.query_order(&order.symbol, &order.client_order_id) {
            Ok(report) => report,
            Err(e) if e.is_no_such_order() => {
                let mut order = order;
                let reason = "not on the exchange at start-up (never sent)";
                if order.apply_event(LifecycleEvent::Cancelled, Some(reason.into()), now_us()).is_ok() {
                    summary.updated += 1;
                    self.persist_order(&order);
                }
                return;
            }
            Err(e) => {
                log::warn!("{} unresolved at start-up: {e}", order.client_order_id);
                summary.unresolved += 1;
                if order.role == OrderRole::StopLoss && order.exchange_order_id.is_some() {
                    // Still believed live: the poll will learn what happened to it.
                    self.track_resting(order);
                }
                return;
            }
        };
        let before = (order.status, order.filled_quantity);
        // Nothing recorded filled: never verified, so an exit's positions were never reduced.
        let reduces_positions = order.filled_quantity.is_zero();
        self.act_on_report(order, report, summary, reduces_positions, |o| (o.status, o.filled_quantity) != before);
    }

    /// Step 2: orders of ours on the exchange that the database lacks.
    fn recover(&mut self, store: &Store, summary: &mut Summary) -> Result<(), StoreError> {
        let mut symbols: BTreeSet<String> = store.traded_symbols()?.into_iter().collect();
        if self.rules.len() <= 20 {
            // A small exchange (the simulator): look everywhere (allOrders, weight 20 each).
            symbols.extend(self.rules.keys().cloned());
        } else {
            // Binance has thousands of symbols: where we traded, plus any with open orders
            // (weight 80 for all of them at once).
            match self.gateway.open_orders(None) {
                Ok(open) => symbols.extend(open.into_iter().map(|r| r.symbol)),
                Err(e) => log::warn!("reconcile: open orders: {e}"),
            }
        }
        let mut missing: Vec<(ParsedClientId, OrderReport)> = Vec::new();
        for symbol in symbols {
            let reports = match self.gateway.all_orders(&symbol) {
                Ok(reports) => reports,
                Err(e) => {
                    log::warn!("reconcile: all orders of {symbol}: {e}");
                    summary.unresolved += 1;
                    continue;
                }
            };
            for report in reports {
                let Some(parsed) = self.ids.parse_client_order_id(&report.client_order_id) else { continue };
                if self.resting.contains_key(&report.client_order_id)
                    || store.find_order(&report.client_order_id)?.is_some()
                {
                    continue;
                }
                missing.push((parsed, report));
            }
        }
        // New ids (a stop placed below) must not collide with the recovered ones.
        for (parsed, _) in &missing {
            self.ids.skip_past(parsed.order_id);
        }
        // Entries first (they open the positions), then exits, then the stops.
        missing.sort_by_key(|(p, _)| {
            (
                match p.role_letter {
                    'E' => 0,
                    'X' | 'M' => 1,
                    _ => 2,
                },
                p.order_id,
            )
        });
        for (parsed, report) in missing {
            summary.recovered += 1;
            let role = role_of(parsed.role_letter);
            let mut order = Order::new(
                parsed.order_id,
                report.client_order_id.clone(),
                report.symbol.clone(),
                report.side,
                role,
                report.order_type,
                report.orig_qty,
                now_us(),
            );
            order.position_id = parsed.position_id;
            order.stop_price = (report.stop_price > Decimal::ZERO).then_some(report.stop_price);
            order.limit_price = (report.price > Decimal::ZERO && role == OrderRole::StopLoss).then_some(report.price);
            order.reason = Some("recovered from the exchange at start-up".into());
            log::warn!(
                "{} recovered from the exchange ({} {})",
                order.client_order_id,
                role.as_str(),
                report.status.as_str()
            );
            self.act_on_report(order, report, summary, true, |_| true);
        }
        Ok(())
    }

    /// Applies a report found at start-up and does what the engine would have done live
    /// (`reduces_positions`: an exit's positions have not been reduced by it yet).
    fn act_on_report(
        &mut self,
        mut order: Order,
        report: OrderReport,
        summary: &mut Summary,
        reduces_positions: bool,
        changed: impl Fn(&Order) -> bool,
    ) {
        if order.role == OrderRole::StopLoss {
            // Through the live path: a fill closes the position, a cancel unprotects it. A
            // recovered stop that has already ended too: left tracked as resting, it would pass
            // for the position's live stop until the first poll.
            self.track_resting(order.clone());
            self.on_resting_report(
                report,
                Seen::Request,
                "cancelled while Genesis was not running",
                OnCancel::Expected,
            );
            if self.resting.get(&order.client_order_id).map(|o| o.status) != Some(order.status) {
                summary.updated += 1;
            }
            return;
        }
        self.apply(&mut order, &report);
        if changed(&order) {
            summary.updated += 1;
            self.persist_order(&order);
        }
        if order.filled_quantity <= Decimal::ZERO {
            return;
        }
        match order.role {
            OrderRole::Entry if !self.positions.contains_key(&order.order_id) && order.position_id.is_none() => {
                // A filled entry whose position was never recorded: open and protect it now.
                self.open_position(order, false);
            }
            OrderRole::Exit | OrderRole::EmergencyExit if reduces_positions => {
                // Recovered, or its outcome was still unknown when the engine stopped: take
                // its positions oldest first, as live.
                let open: Vec<&Position> = self.positions.values().filter(|p| p.symbol == order.symbol).collect();
                let allocations = position::allocate_sell(&open, order.filled_quantity);
                self.allocations.insert(order.client_order_id.clone(), allocations);
                let filled = order.filled_quantity;
                self.reprotect_after_sell(&order.client_order_id.clone(), filled, &order);
            }
            _ => {}
        }
    }

    /// Adds a resting order to the tracked set (and its stop slot).
    fn track_resting(&mut self, order: Order) {
        if order.exchange_type.is_algo() && !self.resting.contains_key(&order.client_order_id) {
            self.slots.stop_opened(&order.symbol);
        }
        self.resting.insert(order.client_order_id.clone(), order);
    }

    /// Positions cannot hold more than the account does: a sell that filled while its
    /// record was lost shows up here. The oldest are closed first, as sells take them.
    fn trim_positions_to_balances(&mut self) {
        let balances = match self.gateway.account() {
            Ok(b) => b,
            Err(e) => {
                log::warn!("reconcile: balances: {e}");
                return;
            }
        };
        let rules = Arc::clone(&self.rules);
        let mut held_by_asset: HashMap<String, Decimal> =
            balances.iter().map(|b| (b.asset.clone(), b.free + b.locked)).collect();
        let ids: Vec<i64> = self.positions.keys().copied().collect();
        // Newest positions claim the balance first, so the oldest are the ones trimmed.
        for id in ids.into_iter().rev() {
            let Some(mut position) = self.positions.remove(&id) else { continue };
            let Some(asset) = rules.get(&position.symbol).map(|r| r.base_asset.clone()) else {
                self.positions.insert(id, position);
                continue;
            };
            let held = held_by_asset.entry(asset).or_default();
            if position.quantity > *held {
                log::warn!("position {id}: {} recorded, {} held; trimmed", position.quantity, held);
                position.quantity = (*held).max(Decimal::ZERO);
                position.updated_at_us = now_us();
                if position.quantity.is_zero() {
                    position.status = PositionStatus::Closed;
                    position.closed_at_us = Some(position.updated_at_us);
                }
                self.persist_position(&position);
            }
            *held -= position.quantity;
            if position.status != PositionStatus::Closed {
                self.positions.insert(id, position);
            }
        }
    }

    /// Step 3: exactly one live stop-loss per open position.
    fn ensure_one_stop_each(&mut self, summary: &mut Summary) {
        let ids: Vec<i64> = self.positions.keys().copied().collect();
        for id in ids {
            let Some(mut position) = self.positions.remove(&id) else { continue };
            let mut stops: Vec<Order> = self
                .resting
                .values()
                .filter(|o| o.role == OrderRole::StopLoss && o.position_id == Some(id) && !o.status.is_terminal())
                .cloned()
                .collect();
            // Keep the one the position names, else the newest.
            stops.sort_by_key(|o| (Some(o.order_id) == position.stop_loss_order_id, o.order_id));
            let keep = stops.pop();
            for extra in stops {
                summary.stop_losses_cancelled += 1;
                self.cancel_stop(&extra.symbol, &extra.client_order_id, "duplicate stop-loss found at start-up");
            }
            match keep {
                Some(stop) => {
                    // A recovered entry's query carries no fills, so its commission (and what it
                    // left in the account) is unknown; the stop placed for it knew.
                    if stop.quantity < position.quantity
                        && stop.reason.as_deref() == Some("recovered from the exchange at start-up")
                    {
                        position.quantity = stop.quantity;
                    }
                    position.stop_loss = stop.stop_price;
                    position.stop_loss_order_id = Some(stop.order_id);
                    position.stop_loss_client_id = Some(stop.client_order_id.clone());
                    if position.status == PositionStatus::Unprotected {
                        position.status = PositionStatus::Open;
                    }
                }
                None if position.status != PositionStatus::Dust => {
                    position.stop_loss = None;
                    position.stop_loss_order_id = None;
                    position.stop_loss_client_id = None;
                    position.status = PositionStatus::Unprotected;
                    self.protect(&mut position);
                    if position.stop_loss_client_id.is_some() {
                        summary.stop_losses_placed += 1;
                    }
                }
                None => {}
            }
            self.persist_position(&position);
            if position.status != PositionStatus::Closed {
                self.positions.insert(id, position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_role_letters_name_the_roles_and_any_other_letter_is_recovered() {
        let roles: Vec<OrderRole> = ['E', 'X', 'S', 'M', 'Q'].into_iter().map(role_of).collect();
        assert_eq!(
            roles,
            [OrderRole::Entry, OrderRole::Exit, OrderRole::StopLoss, OrderRole::EmergencyExit, OrderRole::Recovered]
        );
    }
}
