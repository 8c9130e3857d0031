//! Start-up reconciliation, before the first command is taken: the database and the exchange
//! are made to agree, and every open position ends with exactly one live stop-loss.
//!
//! Every read goes through [`StartupReads`]: a failed read is retried until it answers, never
//! taken for "nothing there". The engine takes no command until all of it has succeeded.
//!
//! 1. The balances (one `account` read: it feeds the account, the positions' check and the
//!    symbols to search).
//! 2. A filled entry whose position row was lost with a crash gets it back. Every order the
//!    database holds unsettled (PENDING, PARTIAL) is queried by client order
//!    id and brought up to date; one the exchange never saw is recorded CANCELLED.
//! 3. When the last run did not stop cleanly, every order of ours (client id prefix) that the
//!    exchange created since that run started, and the database lacks, is recovered, and acted
//!    on like a live report: a filled entry opens its position, a filled stop closes it, a
//!    resting stop is tracked. Only that time is read (`allOrders` with `startTime`/`endTime`),
//!    only on the symbols an order can have been on. Order ids continue past every id seen, and
//!    a recovered order whose id is taken in the database gets a new one.
//! 4. Positions are checked against the balance, then each gets exactly one live stop: extras
//!    are cancelled, a missing one is placed.

use super::watch::{OnCancel, Seen};
use super::*;
use crate::domain::ids::ParsedClientId;
use crate::exchange::{Balance, ORDERS_PAGE};
use crate::pipeline::startup::{weight, StartupError, StartupReads};
use crate::store::{HistoryScan, Store, StoreError};

/// What reconciliation did, for the `reconciled` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    pub updated: usize,
    pub recovered: usize,
    pub stop_losses_placed: usize,
    pub stop_losses_cancelled: usize,
    /// Always 0 since every read is retried until it answers; kept for programs that read it.
    pub unresolved: usize,
    /// Request weight the start-up reads spent (Binance's documented weights).
    pub weight_used: u64,
}

/// Why reconciliation did not complete.
#[derive(Debug)]
pub enum ReconcileError {
    Store(StoreError),
    Startup(StartupError),
}

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReconcileError::Store(e) => write!(f, "reconciliation: {e}"),
            ReconcileError::Startup(e) => write!(f, "reconciliation: {e}"),
        }
    }
}

impl std::error::Error for ReconcileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReconcileError::Store(e) => Some(e),
            ReconcileError::Startup(e) => Some(e),
        }
    }
}

impl From<StoreError> for ReconcileError {
    fn from(e: StoreError) -> Self {
        ReconcileError::Store(e)
    }
}

impl From<StartupError> for ReconcileError {
    fn from(e: StartupError) -> Self {
        ReconcileError::Startup(e)
    }
}

/// Margin around the history window: our clock and the exchange's may disagree.
const CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;
/// Binance answers `allOrders` for at most 24 hours between `startTime` and `endTime`.
const HISTORY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000 - 1;

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
    /// Runs the steps; publishes `reconciled`. `scan` says which history may hold orders the
    /// database lacks; `reads` retries every read until it answers.
    pub fn reconcile(
        &mut self,
        store: &Store,
        scan: HistoryScan,
        reads: &mut StartupReads<'_>,
    ) -> Result<Summary, ReconcileError> {
        let mut summary = Summary::default();
        let balances = reads.read("account", weight::ACCOUNT, || self.gateway.account())?;
        let now = now_us();
        self.account.set_balances(balances.clone(), now);
        self.out.record(ToPersist::Balances { balances: balances.clone(), at_us: now });
        for position in store.open_positions()? {
            self.positions.insert(position.position_id, position);
        }
        for mut entry in store.entries_without_position()? {
            // Its position's row was lost with the crash: open it again, as live.
            log::warn!("{}: filled entry without its position; reopened", entry.client_order_id);
            entry.position_id = None;
            summary.updated += 1;
            self.open_position(entry, false);
        }
        for order in store.open_orders()? {
            summary.checked += 1;
            self.settle(order, &mut summary, reads)?;
        }
        self.recover(store, scan, &balances, &mut summary, reads)?;
        self.trim_positions_to_balances(&balances);
        self.ensure_one_stop_each(&mut summary);
        summary.weight_used = reads.weight_used();
        let s = summary;
        self.out.announce(
            Event::new(
                EventKind::Reconciled,
                format!(
                    "reconciled with the exchange: {} orders checked, {} updated, {} recovered, {} stop-losses placed, {} cancelled; start-up used {} request weight",
                    s.checked, s.updated, s.recovered, s.stop_losses_placed, s.stop_losses_cancelled, s.weight_used
                ),
            )
            .field("checked", s.checked)
            .field("updated", s.updated)
            .field("recovered", s.recovered)
            .field("stop_losses_placed", s.stop_losses_placed)
            .field("stop_losses_cancelled", s.stop_losses_cancelled)
            .field("unresolved", s.unresolved)
            .field("weight_used", s.weight_used),
        );
        Ok(summary)
    }

    /// Step 2 for one unsettled order of the database.
    fn settle(
        &mut self,
        order: Order,
        summary: &mut Summary,
        reads: &mut StartupReads<'_>,
    ) -> Result<(), StartupError> {
        let what = format!("query {}", order.client_order_id);
        let answer = reads.read(&what, weight::QUERY_ORDER, || {
            match self.gateway.query_order(&order.symbol, &order.client_order_id) {
                Err(e) if e.is_no_such_order() => Ok(None),
                other => other.map(Some),
            }
        })?;
        let Some(report) = answer else {
            let mut order = order;
            let reason = "not on the exchange at start-up (never sent)";
            if order.apply_event(LifecycleEvent::Cancelled, Some(reason.into()), now_us()).is_ok() {
                summary.updated += 1;
                self.persist_order(&order);
            }
            return Ok(());
        };
        if let Some(parsed) = self.ids.parse_client_order_id(&report.client_order_id) {
            self.ids.skip_past(parsed.order_id);
        }
        let before = (order.status, order.filled_quantity);
        // Nothing recorded filled: never verified, so an exit's positions were never reduced.
        let reduces_positions = order.filled_quantity.is_zero();
        self.act_on_report(order, report, summary, reduces_positions, |o| (o.status, o.filled_quantity) != before);
        Ok(())
    }

    /// The symbols an order of ours may be on: every one the database recorded an order on,
    /// and every one whose base asset the account holds (a lost entry's coins).
    fn symbols_to_search(&self, store: &Store, balances: &[Balance]) -> Result<BTreeSet<String>, StoreError> {
        let mut symbols: BTreeSet<String> = store.traded_symbols()?.into_iter().collect();
        let held: BTreeSet<&str> =
            balances.iter().filter(|b| b.free + b.locked > Decimal::ZERO).map(|b| b.asset.as_str()).collect();
        let quote = self.account.quote_asset.as_str();
        symbols.extend(
            self.rules
                .values()
                .filter(|r| r.quote_asset == quote && held.contains(r.base_asset.as_str()))
                .map(|r| r.symbol.clone()),
        );
        Ok(symbols)
    }

    /// The exchange's orders of `symbol` that `scan` says may be missing, oldest first.
    fn history(
        &mut self,
        symbol: &str,
        scan: HistoryScan,
        reads: &mut StartupReads<'_>,
    ) -> Result<Vec<OrderReport>, StartupError> {
        let since_us = match scan {
            HistoryScan::Nothing => return Ok(Vec::new()),
            HistoryScan::Everything => {
                let what = format!("allOrders {symbol}");
                return reads.read(&what, weight::ALL_ORDERS, || self.gateway.all_orders(symbol));
            }
            HistoryScan::Since(since_us) => since_us,
        };
        let now_ms = now_us() / 1000 + CLOCK_MARGIN_MS;
        let mut start_ms = since_us / 1000 - CLOCK_MARGIN_MS;
        let mut found: Vec<OrderReport> = Vec::new();
        while start_ms <= now_ms {
            let end_ms = (start_ms + HISTORY_WINDOW_MS).min(now_ms);
            let what = format!("allOrders {symbol} from {start_ms}");
            let page =
                reads.read(&what, weight::ALL_ORDERS, || self.gateway.orders_between(symbol, start_ms, end_ms))?;
            let full = page.len() >= ORDERS_PAGE;
            let last_ms = page.iter().map(|o| o.time_ms).max().unwrap_or(end_ms);
            for report in page {
                if !found.iter().any(|f| f.client_order_id == report.client_order_id) {
                    found.push(report);
                }
            }
            // A full page: the rest of the window starts at its last order (seen ones skipped).
            start_ms = if full && last_ms > start_ms { last_ms } else { end_ms + 1 };
        }
        Ok(found)
    }

    /// Step 3: orders of ours on the exchange that the database lacks.
    fn recover(
        &mut self,
        store: &Store,
        scan: HistoryScan,
        balances: &[Balance],
        summary: &mut Summary,
        reads: &mut StartupReads<'_>,
    ) -> Result<(), ReconcileError> {
        let mut missing: Vec<(ParsedClientId, OrderReport)> = Vec::new();
        for symbol in self.symbols_to_search(store, balances)? {
            for report in self.history(&symbol, scan, reads)? {
                let Some(parsed) = self.ids.parse_client_order_id(&report.client_order_id) else { continue };
                // Ids from now on pass every id that has left the process, recorded or not.
                self.ids.skip_past(parsed.order_id);
                if self.resting.contains_key(&report.client_order_id)
                    || store.find_order(&report.client_order_id)?.is_some()
                {
                    continue;
                }
                missing.push((parsed, report));
            }
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
        // An order id the database (or an earlier recovered order) already holds for another
        // order: an id reused after an earlier start lost track of it. The recovered order gets
        // a new id, and a recovered order of its position follows it.
        let mut taken: BTreeSet<i64> = BTreeSet::new();
        let mut renumbered: HashMap<i64, i64> = HashMap::new();
        for (parsed, report) in missing {
            summary.recovered += 1;
            let role = role_of(parsed.role_letter);
            let order_id = if store.client_order_id_of(parsed.order_id)?.is_some() || !taken.insert(parsed.order_id) {
                let fresh = self.ids.next_order_id();
                log::warn!(
                    "{}: order id {} is another order's; recovered as order {fresh}",
                    report.client_order_id,
                    parsed.order_id
                );
                renumbered.insert(parsed.order_id, fresh);
                taken.insert(fresh);
                fresh
            } else {
                parsed.order_id
            };
            let mut order = Order::new(
                order_id,
                report.client_order_id.clone(),
                report.symbol.clone(),
                report.side,
                role,
                report.order_type,
                report.orig_qty,
                now_us(),
            );
            order.position_id = parsed.position_id.map(|p| renumbered.get(&p).copied().unwrap_or(p));
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
        // A query's or a listing's report carries no trades: read them, for the fees.
        self.complete_fills(&mut order);
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
    fn trim_positions_to_balances(&mut self, balances: &[Balance]) {
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
    fn a_reconciliation_error_names_its_boundary_and_keeps_its_source() {
        let store: ReconcileError = StoreError::Corrupt("order 'x'".into()).into();
        assert_eq!(store.to_string(), "reconciliation: database holds a bad value: order 'x'");
        assert!(std::error::Error::source(&store).is_some());
        let stopped: ReconcileError = StartupError::Stopped.into();
        assert_eq!(stopped.to_string(), "reconciliation: stopped before reconciliation completed");
        assert!(std::error::Error::source(&stopped).is_some());
    }

    #[test]
    fn client_id_role_letters_name_the_roles_and_any_other_letter_is_recovered() {
        let roles: Vec<OrderRole> = ['E', 'X', 'S', 'M', 'Q'].into_iter().map(role_of).collect();
        assert_eq!(
            roles,
            [OrderRole::Entry, OrderRole::Exit, OrderRole::StopLoss, OrderRole::EmergencyExit, OrderRole::Recovered]
        );
    }
}
