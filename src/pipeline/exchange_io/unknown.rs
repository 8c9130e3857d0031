//! Orders whose placement outcome is unknown (a timeout, a 5xx): resolved by querying the
//! client order id on a short bounded schedule, then, still unknown, re-checked every few
//! seconds while the engine runs. Never resent blindly: an order three times absent after
//! minutes never reached the book and fails.

use super::*;

/// An order whose placement outcome is still unknown, re-checked on a schedule.
pub(super) struct Unresolved {
    pub(super) order: Order,
    pub(super) timing: crate::pipeline::msg::Timing,
    pub(super) next_check: Instant,
    pub(super) checks: u32,
    pub(super) absent: u32,
}

/// Re-check schedule of unknown outcomes during operation: every 5 s, 24 times (2 minutes).
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(5);
pub(super) const RECHECKS: u32 = 24;

/// Waits between queries that resolve an unknown outcome (bounded: then the order stays
/// PENDING, visibly).
pub(super) const RESOLVE_SCHEDULE: [Duration; 5] = [
    Duration::from_millis(0),
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

impl ExchangeIo {
    /// When the next re-check of an unknown outcome is due.
    pub(super) fn next_recheck(&self) -> Option<Instant> {
        self.unresolved.iter().map(|u| u.next_check).min()
    }

    /// Re-checks the orders whose outcome is still unknown; a resolved one continues as if
    /// its placement had answered (verification, position, stop-loss).
    pub(super) fn recheck_unresolved(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<Unresolved>, Vec<Unresolved>) =
            std::mem::take(&mut self.unresolved).into_iter().partition(|u| u.next_check <= now);
        self.unresolved = later;
        for mut u in due {
            u.checks += 1;
            match self.gateway.query_order(&u.order.symbol, &u.order.client_order_id) {
                Ok(report) => {
                    self.apply(&mut u.order, &report);
                    self.complete_fills(&mut u.order);
                    u.order.reason = None;
                    self.out.announce(
                        Event::new(
                            EventKind::OrderResolved,
                            format!("{} outcome known: {}", u.order.order_id, report.status.as_str()),
                        )
                        .order(u.order.order_id, &u.order.client_order_id)
                        .field("exchange_status", report.status.as_str()),
                    );
                    u.timing.queried_at = Some(Instant::now());
                    self.executed(Execution {
                        order: u.order,
                        timing: u.timing,
                        verification_error: None,
                        announced: false,
                    });
                    continue;
                }
                Err(e) if e.is_no_such_order() => u.absent += 1,
                Err(e) => log::warn!("{} still unknown: {e}", u.order.client_order_id),
            }
            if u.absent >= 3 {
                // Minutes after the request, three times absent: it never reached the book.
                let mut order = u.order;
                self.fail(&mut order, "not placed: the exchange has no such order after an unknown outcome");
                if order.role == OrderRole::Entry {
                    self.slots.entry_settled(&order.symbol);
                }
                self.reprotect_after_sell(&order.client_order_id.clone(), Decimal::ZERO, &order);
            } else if u.checks < RECHECKS {
                u.next_check = Instant::now() + RECHECK_EVERY;
                self.unresolved.push(u);
            } else {
                log::error!(
                    "{} outcome still unknown after {RECHECKS} re-checks; the next start reconciles it",
                    u.order.client_order_id
                );
            }
        }
    }

    /// Queries the client order id on a bounded schedule until the outcome is known.
    pub(super) fn resolve_unknown(&mut self, request: &NewOrder, reason: String) -> Result<OrderReport, PlaceFailure> {
        log::warn!("{} outcome unknown ({reason}); querying before anything else", request.client_order_id);
        let mut absent = 0;
        let mut last_error = reason;
        self.out.release();
        for wait in self.resolve_schedule {
            std::thread::sleep(wait);
            match self.gateway.query_order(&request.symbol, &request.client_order_id) {
                Ok(report) => return Ok(report),
                Err(e) if e.is_no_such_order() => absent += 1,
                // The bare reason: `Unresolved` says "outcome unknown" once, in front of it.
                Err(ExchangeError::Unknown { reason }) => last_error = reason,
                Err(e) => last_error = e.to_string(),
            }
        }
        if absent == self.resolve_schedule.len() {
            return Err(PlaceFailure::Failed(ExchangeError::Rejected {
                http_status: 400,
                code: -2013,
                msg: format!("not placed: the exchange has no such order after an unknown outcome ({last_error})"),
            }));
        }
        Err(PlaceFailure::Unresolved(last_error))
    }
}
