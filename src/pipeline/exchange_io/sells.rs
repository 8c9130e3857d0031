//! Sells against positions: the stops a sell needs are released (the last in the sell's own
//! cancel-replace), the positions it took are closed by what filled, with realized P&L, and what
//! remains is protected again.

use super::*;

/// Why a stop was cancelled before a sell.
pub(super) const RELEASED_FOR_SELL: &str = "released for a sell";

impl ExchangeIo {
    /// Before a sell: pick the positions it closes (oldest first) and cancel their stops,
    /// since on spot the stop holds the coins. The last stop is left for the sell's own
    /// request to cancel (cancel-replace): its client order id.
    pub(super) fn release_stops_for_sell(&mut self, sell: &Order) -> Option<String> {
        let open: Vec<&Position> = self.positions.values().filter(|p| p.symbol == sell.symbol).collect();
        let allocations = position::allocate_sell(&open, sell.quantity);
        let mut stops: Vec<String> = allocations
            .iter()
            .filter_map(|a| self.positions.get(&a.position_id).and_then(|p| p.stop_loss_client_id.clone()))
            .collect();
        let last = stops.pop();
        for stop_id in stops {
            self.cancel_stop(&sell.symbol, &stop_id, RELEASED_FOR_SELL);
        }
        self.allocations.insert(sell.client_order_id.clone(), allocations);
        last
    }

    /// Places a sell and cancels the stop that locks its coins in one request (cancel-replace,
    /// one round trip instead of two). What the combined request leaves unsettled falls back
    /// to the separate steps, each with its usual policy.
    pub(super) fn place_releasing(&mut self, sell: &NewOrder, stop_id: &str) -> Result<OrderReport, PlaceFailure> {
        let result = self.gateway.cancel_replace(stop_id, sell);
        self.record_outcome(&result);
        match result {
            Ok(Replaced::Both { cancelled, placed }) => {
                self.released_stop = Some(cancelled);
                Ok(placed)
            }
            Ok(Replaced::PlaceRefused { cancelled, error }) => {
                self.on_resting_report(cancelled, Seen::Request, RELEASED_FOR_SELL, OnCancel::Expected);
                Err(PlaceFailure::Failed(error))
            }
            // The stop had already filled or gone: learn how it ended, then sell on our own.
            Ok(Replaced::CancelRefused { .. }) => {
                self.cancel_stop(&sell.symbol, stop_id, RELEASED_FOR_SELL);
                self.place(sell, true)
            }
            // A filter refused the sell before anything happened: the stop stays.
            Err(error @ ExchangeError::Rejected { .. }) => Err(PlaceFailure::Failed(error)),
            // Either part may have happened: learn the stop's state, then find the sell by its id.
            Err(ExchangeError::Unknown { reason }) => {
                if let Ok(report) = self.gateway.query_order(&sell.symbol, stop_id) {
                    self.on_resting_report(report, Seen::Request, RELEASED_FOR_SELL, OnCancel::Expected);
                }
                self.resolve_unknown(sell, reason)
            }
            // Nothing happened (not sent, rate limited): the separate steps.
            Err(ExchangeError::NotSent { .. } | ExchangeError::RateLimited { .. }) => {
                self.cancel_stop(&sell.symbol, stop_id, RELEASED_FOR_SELL);
                self.place(sell, true)
            }
        }
    }

    /// Cancels one of our stops and unlinks it from its position.
    pub(super) fn cancel_stop(&mut self, symbol: &str, client_order_id: &str, why: &str) {
        let result = self.gateway.cancel_order(symbol, client_order_id);
        let report = match result {
            Ok(report) => Some(report),
            // Already gone (filled or cancelled elsewhere): learn its final state.
            Err(_) => self.gateway.query_order(symbol, client_order_id).ok(),
        };
        if let Some(report) = report {
            self.on_resting_report(report, Seen::Request, why, OnCancel::Expected);
        }
    }

    /// After a sell: reduce the positions it took by what actually filled (oldest first);
    /// re-protect whatever remains.
    pub(super) fn reprotect_after_sell(&mut self, sell_client_id: &str, filled: Decimal, sell: &Order) {
        let Some(allocations) = self.allocations.remove(sell_client_id) else {
            return;
        };
        let mut left = filled;
        for allocation in allocations {
            let Some(mut position) = self.positions.remove(&allocation.position_id) else {
                continue;
            };
            let take = left.min(allocation.take).min(position.quantity);
            left -= take;
            if take > Decimal::ZERO {
                self.close_part(&mut position, take, sell, SoldPart::all_of(sell));
            }
            if position.status != PositionStatus::Closed && position.stop_loss_client_id.is_none() {
                self.protect(&mut position);
            }
            self.persist_position(&position);
            if position.status != PositionStatus::Closed {
                self.positions.insert(position.position_id, position);
            }
        }
    }

    /// Takes `take` off a position sold by `part` of `sell`, booking realized P&L at the part's
    /// price (the part's fees pro rata).
    pub(super) fn close_part(&mut self, position: &mut Position, take: Decimal, sell: &Order, part: SoldPart) {
        let exit_price = part.price;
        let exit_fees = if part.quantity > Decimal::ZERO { part.fees * take / part.quantity } else { Decimal::ZERO };
        let entry_fees = position::entry_fee_share(position.entry_fees, take, position.quantity);
        position.entry_fees -= entry_fees;
        let quote_fees = exit_fees + entry_fees;
        let pnl = position::realized_pnl(position.entry_price, exit_price, take, quote_fees);
        position.realized_pnl += pnl;
        let now = now_us();
        self.out.record(ToPersist::RealizedPnl {
            at_us: now,
            position_id: position.position_id,
            order_id: sell.order_id,
            pnl,
        });
        if let Some(change) = self.account.record_exit(pnl, now) {
            self.out.announce(tilt_event(&change));
        }
        position.quantity -= take;
        position.updated_at_us = now_us();
        if position.quantity <= Decimal::ZERO {
            position.quantity = Decimal::ZERO;
            position.status = PositionStatus::Closed;
            position.closed_at_us = Some(position.updated_at_us);
            self.out.announce(
                Event::new(
                    EventKind::PositionClosed,
                    format!(
                        "position {} {} closed at {exit_price}, realized P&L {}",
                        position.position_id,
                        position.symbol,
                        position.realized_pnl.round_dp(8)
                    ),
                )
                .order(sell.order_id, &sell.client_order_id)
                .field("position_id", position.position_id)
                .money("exit_price", exit_price)
                .money("quantity", take)
                .money("fees", quote_fees.round_dp(8))
                .money("realized_pnl", position.realized_pnl.round_dp(8)),
            );
        }
        self.persist_position(position);
    }
}
