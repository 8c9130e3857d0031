//! Matching and balances: prices moving (and the stops they trigger), orders worked against the
//! book, fills with their commission, funds locked and released.

use super::*;

/// True when a stop's trigger is crossed by the current book: a stop-loss sell when the bid
/// falls to it, a stop-loss buy when the ask rises to it; take-profits the other way round.
pub(super) fn stop_triggered(order_type: ExchangeOrderType, side: Side, stop: Decimal, book: &Book) -> bool {
    let stop_loss = matches!(order_type, ExchangeOrderType::StopLoss | ExchangeOrderType::StopLossLimit);
    match (side, stop_loss) {
        (Side::Sell, true) => book.bid <= stop,
        (Side::Buy, true) => book.ask >= stop,
        (Side::Sell, false) => book.bid >= stop,
        (Side::Buy, false) => book.ask <= stop,
    }
}

/// The status of an order that may rest on the book.
pub(super) fn resting_status(report: &OrderReport) -> ExchangeStatus {
    if report.executed_qty >= report.orig_qty {
        ExchangeStatus::Filled
    } else if report.executed_qty > Decimal::ZERO {
        ExchangeStatus::PartiallyFilled
    } else {
        ExchangeStatus::New
    }
}

/// A market order once it has traded what it could: FILLED, or EXPIRED for want of liquidity
/// (Binance's `expiryReason` for it).
pub(super) fn settle_market(report: &mut OrderReport) {
    if report.executed_qty >= report.orig_qty {
        report.status = ExchangeStatus::Filled;
    } else {
        report.status = ExchangeStatus::Expired;
        report.expiry_reason = Some("INSUFFICIENT_LIQUIDITY".to_string());
    }
}

/// Cuts a buy plan so that it costs at most `budget`.
pub(super) fn trim_to_budget(plan: &mut Vec<(Decimal, Decimal)>, budget: Decimal, step: Decimal) {
    let mut spent = Decimal::ZERO;
    for i in 0..plan.len() {
        let (price, qty) = plan[i];
        let cost = price * qty;
        if spent + cost <= budget {
            spent += cost;
            continue;
        }
        let affordable =
            (budget - spent).checked_div(price).map(|q| round_down_to_step(q, step)).unwrap_or(Decimal::ZERO);
        if affordable > Decimal::ZERO {
            plan[i].1 = affordable;
            plan.truncate(i + 1);
        } else {
            plan.truncate(i);
        }
        return;
    }
}

pub(super) fn asset_index(balances: &mut Vec<Balance>, asset: &str) -> usize {
    match balances.iter().position(|b| b.asset == asset) {
        Some(i) => i,
        None => {
            balances.push(Balance { asset: asset.to_string(), free: Decimal::ZERO, locked: Decimal::ZERO });
            balances.len() - 1
        }
    }
}

impl Simulator {
    /// Moves a symbol's top of book (the level shape follows), then fires crossed stops and
    /// fills marketable resting orders. Returns the orders that changed, with their fills.
    pub fn set_price(&mut self, symbol: &str, bid: Decimal, ask: Decimal) -> Result<Vec<OrderReport>, SimError> {
        let m = self.market_index(symbol)?;
        let rules = &self.markets[m].rules;
        if bid <= Decimal::ZERO || ask <= bid {
            return Err(SimError::rejected(-1102, format!("bid {bid} must be positive and below ask {ask}.")));
        }
        check_price(rules, bid)?;
        check_price(rules, ask)?;
        let mut changed = Vec::new();
        self.move_book(m, bid, ask, &mut changed);
        self.commit()?;
        Ok(changed)
    }

    /// Moves every symbol's mid by a seeded random step of up to a few basis points (whole
    /// ticks, spread kept), with the same consequences as [`Simulator::set_price`].
    pub fn random_walk_step(&mut self) -> Result<Vec<OrderReport>, SimError> {
        let mut changed = Vec::new();
        for m in 0..self.markets.len() {
            let (tick, bid, ask) = {
                let market = &self.markets[m];
                (market.rules.tick_size, market.book.bid, market.book.ask)
            };
            let reach = (bid * Decimal::from(WALK_BPS) / Decimal::from(10_000))
                .checked_div(tick)
                .and_then(|t| t.trunc().to_i64())
                .unwrap_or(1)
                .clamp(1, 1_000_000);
            let ticks = self.rng.random_range(-reach..=reach);
            self.dirty.any = true;
            let delta = tick * Decimal::from(ticks);
            let (new_bid, new_ask) = (bid + delta, ask + delta);
            if new_bid < tick || new_ask > self.markets[m].rules.max_price {
                continue;
            }
            self.move_book(m, new_bid, new_ask, &mut changed);
        }
        self.commit()?;
        Ok(changed)
    }

    pub(super) fn move_book(&mut self, m: usize, bid: Decimal, ask: Decimal, changed: &mut Vec<OrderReport>) {
        let book = &mut self.markets[m].book;
        book.bid = bid;
        book.ask = ask;
        self.dirty.any = true;
        push_unique(&mut self.dirty.prices, m);
        let now = now_ms();
        let ids: Vec<i64> = self
            .open
            .values()
            .filter(|o| o.report.symbol == self.markets[m].rules.symbol)
            .map(|o| o.report.exchange_order_id)
            .collect();
        for id in ids {
            if let Some(mut order) = self.open.remove(&id) {
                match self.work_order(m, &mut order, now) {
                    None => {
                        self.open.insert(id, order);
                    }
                    Some(fills) => {
                        let mut report = order.report.clone();
                        report.fills = fills;
                        changed.push(report);
                        self.put(order);
                    }
                }
            }
        }
    }

    /// Lets a resting order react to the current book: a stop fires when its trigger is
    /// crossed; a limit order fills (as maker, at its price) when the book crosses it.
    /// `None` when nothing happened.
    pub(super) fn work_order(&mut self, m: usize, order: &mut SimOrder, now: i64) -> Option<Vec<Fill>> {
        let order_type = order.report.order_type;
        let side = order.report.side;
        let remaining = order.report.orig_qty - order.report.executed_qty;
        if remaining <= Decimal::ZERO {
            return None;
        }
        let book = &self.markets[m].book;
        if order_type.is_algo() && !order.triggered {
            if !stop_triggered(order_type, side, order.report.stop_price, book) {
                return None;
            }
            order.triggered = true;
            order.report.time_ms = now;
            if is_market_like(order_type) {
                let mut plan = self.plan_taker(m, side, remaining, None);
                if side == Side::Buy {
                    let lock = order.locked;
                    order.locked = Decimal::ZERO;
                    self.release(m, side, lock);
                    let quote = &self.markets[m].rules.quote_asset;
                    let budget = self.balance(quote).map_or(Decimal::ZERO, |b| b.free);
                    trim_to_budget(&mut plan, budget, self.markets[m].rules.step_size);
                }
                let fills = self.fill_plan(m, order, &plan, now);
                settle_market(&mut order.report);
                return Some(fills);
            }
            let plan = self.plan_taker(m, side, remaining, Some(order.report.price));
            let fills = self.fill_plan(m, order, &plan, now);
            order.report.status = resting_status(&order.report);
            return Some(fills);
        }
        let limit = order.report.price;
        if limit <= Decimal::ZERO {
            return None;
        }
        let available = book.crossing_qty(side, limit);
        if available <= Decimal::ZERO {
            return None;
        }
        let qty = remaining.min(available);
        let fill = self.apply_fill(m, order, limit, qty, true, now);
        order.report.status = resting_status(&order.report);
        Some(vec![fill])
    }

    /// The trades a taker order of `side` for `qty` (within `limit`) would make now, level by
    /// level, priced with the extra-slippage knob.
    pub(super) fn plan_taker(
        &self,
        m: usize,
        side: Side,
        qty: Decimal,
        limit: Option<Decimal>,
    ) -> Vec<(Decimal, Decimal)> {
        let market = &self.markets[m];
        let tick = market.rules.tick_size;
        let bps = self.config.extra_slippage_bps;
        let mut left = qty;
        let mut plan = Vec::with_capacity(2);
        for (level, available) in market.book.opposite(side) {
            if left <= Decimal::ZERO {
                break;
            }
            if limit.is_some_and(|l| !crosses(side, level, l)) {
                break;
            }
            let mut price = level;
            if !bps.is_zero() {
                let shift = level * bps / Decimal::from(10_000);
                price = match side {
                    Side::Buy => round_up_to_step(level + shift, tick),
                    Side::Sell => round_down_to_step(level - shift, tick).max(tick),
                };
                if let Some(l) = limit {
                    price = match side {
                        Side::Buy => price.min(l),
                        Side::Sell => price.max(l),
                    };
                }
            }
            let take = left.min(available);
            plan.push((price, take));
            left -= take;
        }
        plan
    }

    pub(super) fn fill_plan(
        &mut self,
        m: usize,
        order: &mut SimOrder,
        plan: &[(Decimal, Decimal)],
        now: i64,
    ) -> Vec<Fill> {
        plan.iter()
            .filter(|(_, qty)| *qty > Decimal::ZERO)
            .map(|&(price, qty)| self.apply_fill(m, order, price, qty, false, now))
            .collect()
    }

    /// One trade: moves balances (commission taken from the received asset), releases the
    /// matching part of the order's lock, records the trade.
    pub(super) fn apply_fill(
        &mut self,
        m: usize,
        order: &mut SimOrder,
        price: Decimal,
        qty: Decimal,
        is_maker: bool,
        now: i64,
    ) -> Fill {
        let rules = &self.markets[m].rules;
        let quote_qty = price * qty;
        let base_i = asset_index(&mut self.balances, &rules.base_asset);
        let quote_i = asset_index(&mut self.balances, &rules.quote_asset);
        let side = order.report.side;
        let (commission, commission_i) = match side {
            Side::Buy => {
                let lock_price =
                    if order.report.price > Decimal::ZERO { order.report.price } else { order.report.stop_price };
                let release = order.locked.min(qty * lock_price);
                order.locked -= release;
                let quote = &mut self.balances[quote_i];
                quote.locked -= release;
                quote.free += release - quote_qty;
                let commission = (qty * COMMISSION_RATE).round_dp(COMMISSION_DP);
                self.balances[base_i].free += qty - commission;
                (commission, base_i)
            }
            Side::Sell => {
                let release = order.locked.min(qty);
                order.locked -= release;
                let base = &mut self.balances[base_i];
                base.locked -= release;
                base.free += release - qty;
                let commission = (quote_qty * COMMISSION_RATE).round_dp(COMMISSION_DP);
                self.balances[quote_i].free += quote_qty - commission;
                (commission, quote_i)
            }
        };
        push_unique(&mut self.dirty.assets, base_i);
        push_unique(&mut self.dirty.assets, quote_i);
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let commission_asset = self.balances[commission_i].asset.clone();
        self.trades.push_back(Trade {
            id: trade_id,
            order_id: order.report.exchange_order_id,
            symbol: rules.symbol.clone(),
            price,
            qty,
            quote_qty,
            commission,
            commission_asset: commission_asset.clone(),
            time_ms: now,
            is_buyer: side == Side::Buy,
            is_maker,
        });
        self.dirty.trades += 1;
        self.dirty.any = true;
        order.report.executed_qty += qty;
        order.report.cum_quote_qty += quote_qty;
        order.report.time_ms = now;
        Fill { is_maker, time_ms: now, ..Fill::new(price, qty, commission, &commission_asset, trade_id) }
    }

    /// Locks `amount` of the asset a `side` order pays with; false when the free balance is
    /// short.
    pub(super) fn lock(&mut self, m: usize, side: Side, amount: Decimal) -> bool {
        let rules = &self.markets[m].rules;
        let asset = match side {
            Side::Buy => &rules.quote_asset,
            Side::Sell => &rules.base_asset,
        };
        let i = asset_index(&mut self.balances, asset);
        let balance = &mut self.balances[i];
        if balance.free < amount {
            return false;
        }
        balance.free -= amount;
        balance.locked += amount;
        push_unique(&mut self.dirty.assets, i);
        self.dirty.any = true;
        true
    }

    /// Gives back `amount` that a `side` order had locked.
    pub(super) fn release(&mut self, m: usize, side: Side, amount: Decimal) {
        let rules = &self.markets[m].rules;
        let asset = match side {
            Side::Buy => &rules.quote_asset,
            Side::Sell => &rules.base_asset,
        };
        let i = asset_index(&mut self.balances, asset);
        let balance = &mut self.balances[i];
        balance.free += amount;
        balance.locked -= amount;
        push_unique(&mut self.dirty.assets, i);
        self.dirty.any = true;
    }

    /// Stores an order after a change: open orders stay in the book, closed ones move to the
    /// history and give back what they still had locked.
    pub(super) fn put(&mut self, mut order: SimOrder) {
        let id = order.report.exchange_order_id;
        self.dirty.any = true;
        push_unique(&mut self.dirty.orders, id);
        if order.report.status.is_open() {
            if !self.open_by_client.contains_key(&order.report.client_order_id) {
                self.open_by_client.insert(order.report.client_order_id.clone(), id);
            }
            self.open.insert(id, order);
            return;
        }
        if order.locked > Decimal::ZERO {
            if let Ok(m) = self.market_index(&order.report.symbol) {
                self.release(m, order.report.side, order.locked);
            }
            order.locked = Decimal::ZERO;
        }
        if self.open_by_client.get(&order.report.client_order_id) == Some(&id) {
            self.open_by_client.remove(&order.report.client_order_id);
        }
        match self.closed_by_client.get_mut(&order.report.client_order_id) {
            Some(latest) => *latest = id,
            None => {
                self.closed_by_client.insert(order.report.client_order_id.clone(), id);
            }
        }
        if self.closed.insert(id, order).is_none() {
            self.closed_fifo.push_back(id);
        }
    }
}
