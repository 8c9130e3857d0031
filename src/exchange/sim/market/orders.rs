//! The order requests: placement, cancel, cancel-replace and cancel-all, each committed to the
//! journal as one change.

use super::*;

impl Simulator {
    /// `POST /api/v3/order` with a FULL response: validates as Binance does, then trades
    /// against the book (MARKET, marketable LIMIT) or rests (LIMIT remainder, stops).
    pub fn place(&mut self, order: &NewOrder) -> Result<OrderReport, SimError> {
        let result = self.place_inner(order);
        self.commit()?;
        result
    }

    pub(super) fn place_inner(&mut self, req: &NewOrder) -> Result<OrderReport, SimError> {
        let m = self.check_new(req)?;
        let (order_type, side) = (req.order_type, req.side);
        if self.open_by_client.contains_key(&req.client_order_id) {
            return Err(SimError::new_order_rejected("Duplicate order sent."));
        }
        if self.config.reject_probability > 0.0 {
            self.dirty.any = true;
            if self.rng.random::<f64>() < self.config.reject_probability {
                let i = self.rng.random_range(0..RANDOM_REFUSALS.len());
                return Err(SimError::new_order_rejected(RANDOM_REFUSALS[i]));
            }
        }
        let book = &self.markets[m].book;
        if let Some(stop) = req.stop_price {
            if stop_triggered(order_type, side, stop, book) {
                return Err(SimError::new_order_rejected("Order would trigger immediately."));
            }
        }
        if order_type == ExchangeOrderType::LimitMaker {
            if let Some(price) = req.price {
                if crosses(side, book.top_for(side), price) {
                    return Err(SimError::new_order_rejected("Order would immediately match and take."));
                }
            }
        }
        let now = now_ms();
        let mut order = SimOrder {
            report: OrderReport {
                symbol: req.symbol.clone(),
                exchange_order_id: self.next_order_id,
                client_order_id: req.client_order_id.clone(),
                side,
                order_type,
                status: ExchangeStatus::New,
                orig_qty: req.quantity,
                executed_qty: Decimal::ZERO,
                cum_quote_qty: Decimal::ZERO,
                price: req.price.unwrap_or(Decimal::ZERO),
                stop_price: req.stop_price.unwrap_or(Decimal::ZERO),
                fills: Vec::new(),
                time_ms: now,
                expiry_reason: None,
            },
            locked: Decimal::ZERO,
            triggered: false,
        };
        let fills = if order_type == ExchangeOrderType::Market {
            let mut target = req.quantity;
            if self.config.partial_fill_probability > 0.0 {
                self.dirty.any = true;
                if self.rng.random::<f64>() < self.config.partial_fill_probability {
                    let percent = Decimal::from(self.rng.random_range(10..=90));
                    target =
                        round_down_to_step(target * percent / Decimal::ONE_HUNDRED, self.markets[m].rules.step_size);
                }
            }
            let plan = self.plan_taker(m, side, target, None);
            let rules = &self.markets[m].rules;
            let affordable = match side {
                Side::Buy => {
                    let cost: Decimal = plan.iter().map(|(p, q)| p * q).sum();
                    self.balance(&rules.quote_asset).is_some_and(|b| b.free >= cost)
                }
                Side::Sell => self.balance(&rules.base_asset).is_some_and(|b| b.free >= req.quantity),
            };
            if !affordable {
                return Err(SimError::insufficient_balance());
            }
            let fills = self.fill_plan(m, &mut order, &plan, now);
            settle_market(&mut order.report);
            fills
        } else {
            let lock = match side {
                Side::Sell => req.quantity,
                Side::Buy => {
                    let price = req.price.or(req.stop_price).unwrap_or(Decimal::ZERO);
                    req.quantity * price
                }
            };
            if !self.lock(m, side, lock) {
                return Err(SimError::insufficient_balance());
            }
            order.locked = lock;
            if order_type == ExchangeOrderType::Limit {
                let plan = self.plan_taker(m, side, req.quantity, req.price);
                let fills = self.fill_plan(m, &mut order, &plan, now);
                order.report.status = resting_status(&order.report);
                fills
            } else {
                Vec::new()
            }
        };
        self.next_order_id += 1;
        let mut report = order.report.clone();
        report.fills = fills;
        self.put(order);
        Ok(report)
    }

    /// `DELETE /api/v3/order`.
    pub fn cancel(&mut self, symbol: &str, which: OrderRef<'_>) -> Result<OrderReport, SimError> {
        let result = self.cancel_inner(symbol, which);
        self.commit()?;
        result
    }

    /// `POST /api/v3/order/cancelReplace` with `cancelReplaceMode=STOP_ON_FAILURE`: the new
    /// order's filters first (a failure there changes nothing), then the cancel (refused: the
    /// new order is not attempted), then the new order. One journal record for all of it.
    pub fn cancel_replace(&mut self, cancel_client_order_id: &str, req: &NewOrder) -> Result<SimReplaced, SimError> {
        let result = self.cancel_replace_inner(cancel_client_order_id, req);
        self.commit()?;
        result
    }

    pub(super) fn cancel_replace_inner(
        &mut self,
        cancel_client_order_id: &str,
        req: &NewOrder,
    ) -> Result<SimReplaced, SimError> {
        self.check_new(req)?;
        let cancelled = match self.cancel_inner(&req.symbol, OrderRef::ClientOrderId(cancel_client_order_id)) {
            Ok(cancelled) => cancelled,
            Err(error) => return Ok(SimReplaced::CancelRefused(error)),
        };
        Ok(match self.place_inner(req) {
            Ok(placed) => SimReplaced::Both { cancelled, placed },
            Err(error) => SimReplaced::PlaceRefused { cancelled, error },
        })
    }

    pub(super) fn cancel_inner(&mut self, symbol: &str, which: OrderRef<'_>) -> Result<OrderReport, SimError> {
        self.market_index(symbol)?;
        let id = self.find_open(symbol, which).ok_or_else(SimError::unknown_order)?;
        let mut order = self.open.remove(&id).ok_or_else(SimError::unknown_order)?;
        order.report.status = ExchangeStatus::Canceled;
        order.report.time_ms = now_ms();
        let report = order.report.clone();
        self.put(order);
        Ok(report)
    }

    /// `DELETE /api/v3/openOrders`: cancels every open order of the symbol; -2011 when there
    /// is none.
    pub fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, SimError> {
        let result = self.cancel_open_orders_inner(symbol);
        self.commit()?;
        result
    }

    pub(super) fn cancel_open_orders_inner(&mut self, symbol: &str) -> Result<Vec<OrderReport>, SimError> {
        self.market_index(symbol)?;
        let ids: Vec<i64> =
            self.open.values().filter(|o| o.report.symbol == symbol).map(|o| o.report.exchange_order_id).collect();
        if ids.is_empty() {
            return Err(SimError::unknown_order());
        }
        ids.into_iter().map(|id| self.cancel_inner(symbol, OrderRef::OrderId(id))).collect()
    }
}
