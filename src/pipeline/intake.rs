//! Intake stage: turns stdin lines into orders.
//!
//! Owns the parser, the symbol and risk checks, the pending confirmations and the timer that
//! expires them (and spaces TWAP slices). Reads lines from stdin itself (see [`super::input`]:
//! one `poll(2)` on stdin, the signal pipe and those timers, no reader thread); sends
//! submissions, cancel-all and queries to exchange I/O (in order: a query or cancel-all runs
//! after every command typed before it), and records to persist. Every order gets its
//! `client_order_id` here, before it leaves the process.

use super::account::{tilt_event, Account};
use super::guard::ExchangeGuard;
use super::input::{Input, Wake};
use super::msg::{Line, Query, Submission, Timing, ToExchange, ToPersist};
use super::Rules;
use crate::domain::command::{self, Command};
use crate::domain::ids::IdGen;
use crate::domain::lifecycle::LifecycleEvent;
use crate::domain::money::{below_by_percent, Decimal};
use crate::domain::now_us;
use crate::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use crate::domain::risk::{self, Intent, OrderPath, RiskRefusal};
use crate::domain::symbol::SymbolRules;
use crate::events::{Bus, Event, EventKind};
use crate::exchange::Quotes;
use crossbeam_channel::Sender;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Orders waiting for `y` / `n`: one market order, or the slices of an iceberg or TWAP.
/// An order's expected price and the age of the quote it came from.
#[derive(Debug, Clone, Copy)]
struct Expected {
    price: Decimal,
    age_us: u64,
}

struct PendingConfirmation {
    orders: Vec<Order>,
    /// Spacing of TWAP slices; `None` sends them back to back.
    spacing: Option<Duration>,
    deadline: Instant,
}

impl PendingConfirmation {
    fn first(&self) -> &Order {
        &self.orders[0]
    }
}

/// A command refused at intake.
enum Refusal {
    /// Bad input: an `error` event.
    Input(String),
    /// A risk rule: an `order_rejected` event with the rule and the numbers.
    Risk(RiskRefusal),
}

impl<E: std::fmt::Display> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Input(e.to_string())
    }
}

fn input<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Input(message.into()))
}

pub struct Intake {
    rules: Arc<Rules>,
    quotes: Arc<dyn Quotes>,
    ids: Arc<IdGen>,
    guard: Arc<ExchangeGuard>,
    account: Arc<Account>,
    confirm: bool,
    confirm_timeout: Duration,
    stop_loss_pct: Decimal,
    bus: Bus,
    to_exchange: Sender<ToExchange>,
    /// Exchange I/O run on this thread (the engine); `None`: commands go through `to_exchange`.
    exchange_io: Option<Arc<super::exchange_io::inline::Shared>>,
    to_persist: Sender<ToPersist>,
    pending: VecDeque<PendingConfirmation>,
    /// TWAP slices waiting for their time, earliest first.
    scheduled: VecDeque<(Instant, Order)>,
}

#[allow(clippy::too_many_arguments)]
impl Intake {
    pub fn new(
        rules: Arc<Rules>,
        quotes: Arc<dyn Quotes>,
        ids: Arc<IdGen>,
        guard: Arc<ExchangeGuard>,
        account: Arc<Account>,
        confirm: bool,
        config: &crate::config::Config,
        bus: Bus,
        to_exchange: Sender<ToExchange>,
        to_persist: Sender<ToPersist>,
    ) -> Intake {
        Intake {
            rules,
            quotes,
            ids,
            guard,
            account,
            confirm,
            confirm_timeout: config.confirm_timeout,
            stop_loss_pct: config.stop_loss_pct,
            bus,
            to_exchange,
            exchange_io: None,
            to_persist,
            pending: VecDeque::new(),
            scheduled: VecDeque::new(),
        }
    }

    /// Commands run through exchange I/O on this thread: the order path runs to completion
    /// here, from the line to the fill's line on stdout. `to_exchange` then only says, by
    /// closing, that intake has ended.
    pub fn running_exchange_io(mut self, exchange_io: Arc<super::exchange_io::inline::Shared>) -> Intake {
        self.exchange_io = Some(exchange_io);
        self
    }

    /// Runs until `quit` or end of input; then cancels what still waits for a confirmation and
    /// sends the TWAP slices still scheduled, on their schedule.
    pub fn run(mut self, mut input: Input) {
        loop {
            let wait =
                self.next_deadline().map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
            match input.next(wait) {
                Wake::Line(line) => {
                    if !self.handle(line) {
                        break;
                    }
                }
                Wake::Signal => {
                    self.bus.publish(Event::new(
                        EventKind::ShuttingDown,
                        "signal received: no more commands; finishing the orders in flight (a second signal exits at once)",
                    ));
                    break;
                }
                Wake::TooLong(number) => self.bus.error(format!(
                    "line {number}: longer than {} bytes; ignored up to its end",
                    super::input::MAX_LINE
                )),
                Wake::Timeout => {}
                Wake::Closed => break,
            }
            self.on_timer();
        }
        while let Some(p) = self.pending.pop_front() {
            self.cancel_pending(p.orders, "input ended before a confirmation");
        }
        while let Some((at, _)) = self.scheduled.front() {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            self.on_timer();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let confirmation = self.pending.iter().map(|p| p.deadline).min();
        let slice = self.scheduled.front().map(|(at, _)| *at);
        match (confirmation, slice) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                if let Some(p) = self.pending.remove(i) {
                    let reason = format!("no confirmation within {} s", self.confirm_timeout.as_secs());
                    self.cancel_pending(p.orders, &reason);
                }
            } else {
                i += 1;
            }
        }
        while self.scheduled.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, order)) = self.scheduled.pop_front() {
                if let Err(reason) = self.submit(order.clone(), now) {
                    self.cancel_pending(vec![order], &reason);
                }
            }
        }
        if let Some(change) = self.account.poll_tilt(now_us()) {
            self.bus.publish(tilt_event(&change));
        }
    }

    /// Handles one line; false means stop reading.
    fn handle(&mut self, line: Line) -> bool {
        // A cooldown that ended shows before whatever the line does.
        if let Some(change) = self.account.poll_tilt(now_us()) {
            self.bus.publish(tilt_event(&change));
        }
        let command = match command::parse(&line.text) {
            Ok(Some(command)) => command,
            Ok(None) => return true,
            Err(e) => {
                self.bus.error(format!("line {}: {e}", line.number));
                return true;
            }
        };
        let read_at = line.read_at;
        let result = match command {
            Command::Buy { symbol, quantity } => self.market_order(Side::Buy, &symbol, quantity, read_at),
            Command::Sell { symbol, quantity } => self.market_order(Side::Sell, &symbol, Some(quantity), read_at),
            Command::Iceberg { symbol, quantity, slices } => {
                self.sliced_order(OrderPath::Iceberg, &symbol, quantity, slices, None, read_at)
            }
            Command::Twap { symbol, quantity, seconds } => {
                let slices = seconds.clamp(2, 10);
                let spacing = Duration::from_secs(u64::from(seconds)) / slices;
                self.sliced_order(OrderPath::Twap, &symbol, quantity, slices, Some(spacing), read_at)
            }
            Command::AnswerOldest { accept } => match self.pending.pop_front() {
                Some(p) => self.answer(p, accept),
                None => input(format!("no order is waiting for a confirmation ('{}' ignored)", line.text.trim())),
            },
            Command::Answer { id, accept } => {
                let found = self
                    .pending
                    .iter()
                    .position(|p| p.first().order_id.to_string() == id || p.first().client_order_id == id);
                match found.and_then(|i| self.pending.remove(i)) {
                    Some(p) => self.answer(p, accept),
                    None => input(format!("no order '{id}' is waiting for a confirmation")),
                }
            }
            Command::Status { id } => self.query(Query::Status { id }),
            Command::Orders => self.query(Query::Orders),
            Command::Positions => self.query(Query::Positions),
            Command::Account => self.query(Query::Account { confirm: self.confirm }),
            Command::Stats => self.query(Query::Stats),
            Command::Halt => {
                self.account.set_halted(true);
                let _ = self.to_persist.send(ToPersist::Setting { key: "halted", value: "on".into() });
                self.bus.publish(
                    Event::new(
                        EventKind::Halted,
                        "HALTED: cancelling every open order; new entries refused until resume",
                    )
                    .field("halted", true),
                );
                self.cancel_everything("halt")
            }
            Command::Resume => {
                self.account.set_halted(false);
                let _ = self.to_persist.send(ToPersist::Setting { key: "halted", value: "off".into() });
                self.bus.publish(
                    Event::new(EventKind::Resumed, "resumed: new entries allowed again").field("halted", false),
                );
                // What the halt left unprotected gets its stop-loss again.
                self.send(ToExchange::Reprotect).map_err(Refusal::Input)
            }
            Command::Price { symbol, bid, ask } => self.set_price(&symbol, bid, ask),
            Command::CancelAll => self.cancel_everything("cancel-all"),
            Command::SetConfirm { on } => {
                self.confirm = on;
                let value = if on { "on" } else { "off" };
                let _ = self.to_persist.send(ToPersist::Setting { key: "confirm", value: value.to_string() });
                self.bus.publish(
                    Event::new(EventKind::ConfirmSet, format!("confirmation {value} (saved)")).field("confirm", on),
                );
                Ok(())
            }
            Command::Help => {
                self.bus.publish(Event::new(EventKind::Help, command::HELP).field("commands", command::HELP));
                Ok(())
            }
            Command::Quit => return false,
        };
        // While the kill switch is on, every refusal says so.
        let halted = if self.account.is_halted() { " [HALTED: resume to trade]" } else { "" };
        match result {
            Ok(()) => {}
            Err(Refusal::Input(message)) => self.bus.error(format!("line {}: {message}{halted}", line.number)),
            Err(Refusal::Risk(refusal)) => self.bus.publish(
                Event::new(
                    EventKind::OrderRejected,
                    format!("line {}: {} refused: {}{halted}", line.number, refusal.rule.as_str(), refusal.message),
                )
                .field("rule", refusal.rule.as_str())
                .field("message", refusal.message.as_str())
                .field("halted", self.account.is_halted())
                .field("line", line.number),
            ),
        }
        true
    }

    /// Cancels what waits here (confirmations, TWAP slices) and asks exchange I/O to cancel
    /// every open order once the orders typed before have finished.
    fn cancel_everything(&mut self, reason: &str) -> Result<(), Refusal> {
        while let Some(p) = self.pending.pop_front() {
            self.cancel_pending(p.orders, reason);
        }
        let slices: Vec<Order> = self.scheduled.drain(..).map(|(_, o)| o).collect();
        if !slices.is_empty() {
            self.cancel_pending(slices, reason);
        }
        self.send(ToExchange::CancelAll).map_err(Refusal::Input)
    }

    fn set_price(&self, symbol: &str, bid: Decimal, ask: Decimal) -> Result<(), Refusal> {
        self.rules_of(symbol)?;
        self.quotes.set_price(symbol, bid, ask).map_err(Refusal::Input)?;
        self.bus.publish(
            Event::new(EventKind::PriceSet, format!("{symbol} bid {bid} ask {ask}"))
                .field("symbol", symbol)
                .money("bid", bid)
                .money("ask", ask),
        );
        Ok(())
    }

    fn send(&self, msg: ToExchange) -> Result<(), String> {
        if let Some(exchange_io) = &self.exchange_io {
            exchange_io.run(msg);
            return Ok(());
        }
        // Blocking on a full queue is the back-pressure: the reader stops reading stdin,
        // nothing is dropped and nothing grows without bound.
        self.to_exchange.send(msg).map_err(|_| "the engine is shutting down".to_string())
    }

    fn query(&self, query: Query) -> Result<(), Refusal> {
        self.send(ToExchange::Query(query)).map_err(Refusal::Input)
    }

    fn rules_of(&self, symbol: &str) -> Result<Arc<Rules>, Refusal> {
        if self.rules.contains_key(symbol) {
            return Ok(Arc::clone(&self.rules));
        }
        let mut known: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        known.sort_unstable();
        input(format!("unknown symbol '{symbol}' (known: {})", known.join(", ")))
    }

    /// The price an order of `side` would fill at now (the ask for a buy, the bid for a sell),
    /// and the age of the quote it comes from, microseconds.
    fn expected_price(&self, symbol: &str, side: Side) -> Result<Expected, Refusal> {
        let (quote, age) =
            self.quotes.quote(symbol).ok_or_else(|| Refusal::Input(format!("no price for {symbol} right now")))?;
        let price = match side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        };
        Ok(Expected { price, age_us: u64::try_from(age.as_micros()).unwrap_or(u64::MAX) })
    }

    /// The risk rules for an entry of `notional` (all of it, for a sliced order).
    fn check_entry(&self, path: OrderPath, rules: &SymbolRules, notional: Decimal) -> Result<(), Refusal> {
        self.account.check_not_halted().map_err(Refusal::Risk)?;
        risk::check_tier(self.account.tier, path).map_err(Refusal::Risk)?;
        let equity = self.account.equity(self.quotes.as_ref());
        risk::check_position_size(&self.account.limits, Intent::Entry, notional, equity, &rules.quote_asset)
            .map_err(Refusal::Risk)?;
        self.account.check_daily_loss(now_us()).map_err(Refusal::Risk)
    }

    fn new_order(&self, side: Side, rules: &SymbolRules, quantity: Decimal, expected: Expected) -> Order {
        let role = if side == Side::Buy { OrderRole::Entry } else { OrderRole::Exit };
        let order_id = self.ids.next_order_id();
        let mut order = Order::new(
            order_id,
            self.ids.client_order_id(role.id_letter(), order_id, None),
            rules.symbol.clone(),
            side,
            role,
            ExchangeOrderType::Market,
            quantity,
            now_us(),
        );
        order.expected_price = Some(expected.price);
        order.expected_price_age_us = Some(expected.age_us);
        order
    }

    fn market_order(
        &mut self,
        side: Side,
        symbol: &str,
        quantity: Option<Decimal>,
        read_at: Instant,
    ) -> Result<(), Refusal> {
        if let Some(error) = self.account.db_error() {
            return input(format!("the database refuses writes ({error}): new orders refused until it recovers"));
        }
        let all = self.rules_of(symbol)?;
        let rules = &all[symbol];
        let quote = self.expected_price(symbol, side)?;
        let expected = quote.price;
        let quantity = match quantity {
            Some(q) => q,
            // `buy SYMBOL`: the largest entry the position rule allows, rounded down to the step.
            None => risk::size_entry(&self.account.limits, self.account.equity(self.quotes.as_ref()), expected, rules)
                .map_err(Refusal::Risk)?,
        };
        rules.check_quantity(quantity)?;
        rules.check_notional(quantity, expected)?;
        let intent = Intent::of_side(side);
        let notional = quantity * expected;
        risk::check_minimum_order(&self.account.limits, intent, notional, rules).map_err(Refusal::Risk)?;
        if side == Side::Buy {
            self.check_entry(OrderPath::Market, rules, notional)?;
        }
        let order = self.new_order(side, rules, quantity, quote);
        self.decide(vec![order], None, read_at, rules)
    }

    fn sliced_order(
        &mut self,
        path: OrderPath,
        symbol: &str,
        quantity: Decimal,
        slices: u32,
        spacing: Option<Duration>,
        read_at: Instant,
    ) -> Result<(), Refusal> {
        risk::check_tier(self.account.tier, path).map_err(Refusal::Risk)?;
        let all = self.rules_of(symbol)?;
        let rules = &all[symbol];
        rules.check_quantity(quantity)?;
        let quote = self.expected_price(symbol, Side::Buy)?;
        let expected = quote.price;
        let per_slice = rules.round_qty_down(quantity / Decimal::from(slices));
        let last = quantity - per_slice * Decimal::from(slices - 1);
        for (i, slice) in [per_slice, last].into_iter().enumerate() {
            let name = if i == 0 { "each slice" } else { "the last slice" };
            rules.check_quantity(slice).map_err(|e| Refusal::Input(format!("{} slices: {name}: {e}", slices)))?;
            rules
                .check_notional(slice, expected)
                .map_err(|e| Refusal::Input(format!("{slices} slices: {name}: {e}")))?;
            risk::check_minimum_order(&self.account.limits, Intent::Entry, slice * expected, rules)
                .map_err(Refusal::Risk)?;
        }
        self.check_entry(path, rules, quantity * expected)?;
        let orders: Vec<Order> = (1..=slices)
            .map(|n| {
                let q = if n == slices { last } else { per_slice };
                let mut order = self.new_order(Side::Buy, rules, q, quote);
                order.slice_number = Some(n);
                order.total_slices = Some(slices);
                order
            })
            .collect();
        self.decide(orders, spacing, read_at, rules)
    }

    /// Sends at once, or asks first (confirmations on, or the tilt guard's cooldown).
    fn decide(
        &mut self,
        orders: Vec<Order>,
        spacing: Option<Duration>,
        read_at: Instant,
        rules: &SymbolRules,
    ) -> Result<(), Refusal> {
        let now = now_us();
        let entry = orders[0].side == Side::Buy;
        if entry {
            if let Some(change) = self.account.record_entry(now) {
                self.bus.publish(tilt_event(&change));
            }
        }
        let tilted = entry && self.account.entry_needs_confirmation(now);
        if self.confirm || tilted {
            self.ask_confirmation(orders, spacing, rules, tilted);
            return Ok(());
        }
        self.dispatch(orders, spacing, read_at)
    }

    /// Submits the first order now and the rest back to back, or on the TWAP schedule.
    fn dispatch(&mut self, orders: Vec<Order>, spacing: Option<Duration>, read_at: Instant) -> Result<(), Refusal> {
        let start = Instant::now();
        for (i, order) in orders.into_iter().enumerate() {
            match spacing {
                Some(gap) if i > 0 => self.scheduled.push_back((start + gap * i as u32, order)),
                _ => self.submit(order, read_at)?,
            }
        }
        Ok(())
    }

    /// Sends one order, or says why it cannot go (the rate limiter, the breaker, shutdown).
    fn submit(&mut self, order: Order, read_at: Instant) -> Result<(), String> {
        // An order costs two exchange orders: itself and the stop-loss it places or re-places.
        self.guard.admit(Instant::now(), 2, order.role == OrderRole::Entry)?;
        let timing = Timing::new(read_at);
        self.send(ToExchange::Submit(Box::new(Submission { order, timing })))
    }

    fn ask_confirmation(&mut self, orders: Vec<Order>, spacing: Option<Duration>, rules: &SymbolRules, tilted: bool) {
        let first = &orders[0];
        let total: Decimal = orders.iter().map(|o| o.quantity).sum();
        let expected = first.expected_price.unwrap_or_default();
        let notional = (total * expected).round_dp(8).normalize();
        let stop_price = rules.round_price_down(below_by_percent(expected, self.stop_loss_pct));
        let slices = if orders.len() > 1 { format!(" in {} slices", orders.len()) } else { String::new() };
        let stop_text = if first.side == Side::Buy { format!(", stop-loss at {stop_price}") } else { String::new() };
        let tilt_text = if tilted { " [tilt cooldown: explicit confirmation required]" } else { "" };
        let mut event = Event::new(
            EventKind::ConfirmRequest,
            format!(
                "confirm {id}: {} {total} {}{slices} at ~{expected} = {notional} {}{stop_text}{tilt_text} — answer y/n (or confirm {id} / reject {id}) within {} s",
                first.side.as_str(),
                first.symbol,
                rules.quote_asset,
                self.confirm_timeout.as_secs(),
                id = first.order_id,
            ),
        )
        .order(first.order_id, &first.client_order_id)
        .field("symbol", first.symbol.as_str())
        .field("side", first.side.as_str())
        .money("quantity", total)
        .money("expected_price", expected)
        .money("notional", notional)
        .field("slices", orders.len())
        .field("tilt_cooldown", tilted)
        .field("timeout_s", self.confirm_timeout.as_secs());
        if first.side == Side::Buy {
            event = event.money("stop_loss_price", stop_price);
        }
        self.bus.publish(event);
        for order in &orders {
            let _ = self.to_persist.send(ToPersist::Order(Box::new(order.clone())));
        }
        self.pending.push_back(PendingConfirmation {
            orders,
            spacing,
            deadline: Instant::now() + self.confirm_timeout,
        });
    }

    fn answer(&mut self, pending: PendingConfirmation, accept: bool) -> Result<(), Refusal> {
        if accept {
            // Latency counts from the confirmation, not from the time spent deciding.
            self.dispatch(pending.orders, pending.spacing, Instant::now())
        } else {
            self.cancel_pending(pending.orders, "rejected by the user");
            Ok(())
        }
    }

    fn cancel_pending(&self, orders: Vec<Order>, reason: &str) {
        for mut order in orders {
            let _ = order.apply_event(LifecycleEvent::Cancelled, Some(reason.to_string()), now_us());
            let _ = self.to_persist.send(ToPersist::Order(Box::new(order.clone())));
            self.bus.publish(Event::order_ended(EventKind::OrderCancelled, &order, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::OrderStatus;
    use crate::domain::risk::{DailyPnl, RiskLimits, Tier};
    use crate::domain::symbol::fixtures::btcusdt;
    use crate::domain::tilt::TiltSettings;
    use crate::events::stdout_lanes;
    use crate::exchange::{Balance, BookTicker};
    use crossbeam_channel::{unbounded, Receiver};
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// BTCUSDT at 65000 / 65000.01, whatever the symbol asked.
    struct Book;

    impl Quotes for Book {
        fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
            Some(BookTicker {
                symbol: symbol.into(),
                bid: d("65000"),
                bid_qty: d("1"),
                ask: d("65000.01"),
                ask_qty: d("1"),
            })
        }
    }

    struct Setup {
        tier: Tier,
        confirm: bool,
        order_limit_10s: u32,
        tilt: TiltSettings,
        confirm_timeout: Duration,
    }

    impl Default for Setup {
        fn default() -> Setup {
            Setup {
                tier: Tier::Sniper,
                confirm: false,
                order_limit_10s: u32::MAX,
                tilt: TiltSettings::default(),
                confirm_timeout: Duration::from_secs(10),
            }
        }
    }

    /// Intake on its own thread, reading a pipe, with the ends of its channels.
    struct Running {
        stdin: Option<UnixStream>,
        signals: UnixStream,
        account: Arc<Account>,
        to_exchange: Receiver<ToExchange>,
        to_persist: Receiver<ToPersist>,
        ended: Receiver<()>,
        /// Records read from `to_persist` while waiting for one.
        seen: Vec<ToPersist>,
    }

    /// What intake sent, in order.
    struct Outputs {
        events: Vec<Arc<Event>>,
        settings: Vec<(&'static str, String)>,
        orders: Vec<Order>,
        to_exchange: Vec<ToExchange>,
    }

    impl Outputs {
        fn kinds(&self) -> Vec<&'static str> {
            self.events.iter().map(|e| e.kind.as_str()).collect()
        }

        fn first(&self, kind: &str) -> &Event {
            self.events.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("no {kind} in {:?}", self.kinds()))
        }

        fn submitted(&self) -> Vec<&Order> {
            self.to_exchange
                .iter()
                .filter_map(|m| match m {
                    ToExchange::Submit(s) => Some(&s.order),
                    _ => None,
                })
                .collect()
        }
    }

    impl Setup {
        fn start(self) -> Running {
            let limits = RiskLimits { tilt: self.tilt, ..RiskLimits::default() };
            let account = Arc::new(Account::new(self.tier, limits, "USDT", DailyPnl::new("USDT")));
            let usdt = Balance { asset: "USDT".into(), free: d("100000"), locked: Decimal::ZERO };
            account.set_balances(vec![usdt], now_us());
            let rules: Arc<Rules> = Arc::new([("BTCUSDT".to_string(), btcusdt())].into_iter().collect());
            let config =
                crate::config::Config { confirm_timeout: self.confirm_timeout, ..crate::config::Config::defaults() };
            let (lanes, _stdout) = stdout_lanes(64, 64);
            let (to_exchange, from_intake) = unbounded();
            let (to_persist, persist_rx) = unbounded();
            let intake = Intake::new(
                rules,
                Arc::new(Book),
                Arc::new(IdGen::new("gtest".into(), 0)),
                Arc::new(ExchangeGuard::new(self.order_limit_10s)),
                Arc::clone(&account),
                self.confirm,
                &config,
                Bus::new(lanes, Some(to_persist.clone())),
                to_exchange,
                to_persist,
            );
            let (reader, stdin) = UnixStream::pair().unwrap();
            let (signals_rx, signals) = UnixStream::pair().unwrap();
            let input = Input::from_fd(OwnedFd::from(reader), signals_rx);
            let (end, ended) = unbounded();
            std::thread::spawn(move || {
                intake.run(input);
                let _ = end.send(());
            });
            Running {
                stdin: Some(stdin),
                signals,
                account,
                to_exchange: from_intake,
                to_persist: persist_rx,
                ended,
                seen: Vec::new(),
            }
        }
    }

    impl Running {
        fn type_lines(&mut self, text: &str) {
            self.stdin.as_mut().expect("stdin open").write_all(text.as_bytes()).unwrap();
        }

        /// Waits for the next event of `kind` intake publishes.
        fn wait_for(&mut self, kind: &str) -> Arc<Event> {
            loop {
                let msg = self.to_persist.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {kind}"));
                let found = match &msg {
                    ToPersist::Event(e) if e.kind == kind => Some(Arc::clone(e)),
                    _ => None,
                };
                self.seen.push(msg);
                if let Some(event) = found {
                    return event;
                }
            }
        }

        /// Waits for intake to stop by itself (stdin stays open).
        fn wait_end(self) -> Outputs {
            self.ended.recv_timeout(Duration::from_secs(10)).expect("intake did not stop");
            self.outputs()
        }

        /// Closes stdin and waits for intake to finish.
        fn finish(mut self) -> Outputs {
            drop(self.stdin.take());
            self.wait_end()
        }

        fn outputs(mut self) -> Outputs {
            self.seen.extend(self.to_persist.try_iter());
            let mut outputs = Outputs {
                events: vec![],
                settings: vec![],
                orders: vec![],
                to_exchange: self.to_exchange.try_iter().collect(),
            };
            for msg in self.seen {
                match msg {
                    ToPersist::Event(e) => outputs.events.push(e),
                    ToPersist::Setting { key, value } => outputs.settings.push((key, value)),
                    ToPersist::Order(o) => outputs.orders.push(*o),
                    _ => {}
                }
            }
            outputs
        }
    }

    #[test]
    fn quit_stops_reading_even_while_input_stays_open() {
        let mut intake = Setup::default().start();
        intake.type_lines("quit\nbuy BTCUSDT 0.001\n");
        let out = intake.wait_end();
        assert!(out.to_exchange.is_empty());
        assert!(out.events.is_empty(), "{:?}", out.kinds());
    }

    #[test]
    fn a_signal_stops_reading_and_says_so() {
        let mut intake = Setup::default().start();
        (&intake.signals).write_all(&[1]).unwrap();
        let shutting_down = intake.wait_for("shutting_down");
        assert!(shutting_down.text.starts_with("signal received: no more commands"));
        let out = intake.wait_end();
        assert!(out.to_exchange.is_empty());
    }

    #[test]
    fn end_of_input_cancels_what_waits_for_a_confirmation() {
        let mut intake = Setup { confirm: true, ..Setup::default() }.start();
        intake.type_lines("buy BTCUSDT 0.001\n");
        let out = intake.finish();
        assert_eq!(out.kinds(), ["confirm_request", "order_cancelled"]);
        assert_eq!(out.first("order_cancelled").fields["reason"], "input ended before a confirmation");
        assert_eq!(out.orders.last().unwrap().status, OrderStatus::Cancelled);
        assert!(out.to_exchange.is_empty());
    }

    #[test]
    fn confirming_an_id_that_waits_for_nothing_is_an_error() {
        let mut intake = Setup { confirm: true, ..Setup::default() }.start();
        intake.type_lines("buy BTCUSDT 0.001\nconfirm 42\n");
        let out = intake.finish();
        assert_eq!(out.first("error").fields["message"], "line 2: no order '42' is waiting for a confirmation");
        assert!(out.to_exchange.is_empty());
    }

    #[test]
    fn halt_cancels_what_waits_for_a_confirmation_saves_the_switch_and_cancels_every_open_order() {
        let mut intake = Setup { confirm: true, ..Setup::default() }.start();
        intake.type_lines("buy BTCUSDT 0.001\nhalt\n");
        let account = Arc::clone(&intake.account);
        let out = intake.finish();
        assert_eq!(out.kinds(), ["confirm_request", "halted", "order_cancelled"]);
        assert_eq!(out.first("halted").fields["halted"], true);
        assert_eq!(out.first("order_cancelled").fields["reason"], "halt");
        assert_eq!(out.settings, [("halted", "on".to_string())]);
        assert!(matches!(out.to_exchange[..], [ToExchange::CancelAll]));
        assert!(account.is_halted());
    }

    #[test]
    fn halt_cancels_the_twap_slices_not_sent_yet() {
        let mut intake = Setup { tier: Tier::Strategist, ..Setup::default() }.start();
        intake.type_lines("twap BTCUSDT 0.002 1\nhalt\n");
        let out = intake.finish();
        let submitted = out.submitted();
        assert_eq!(submitted.len(), 1);
        assert_eq!(submitted[0].slice_number, Some(1));
        let cancelled = out.first("order_cancelled");
        assert_eq!(cancelled.fields["reason"], "halt");
        assert_eq!(cancelled.order_id, Some(submitted[0].order_id + 1));
        assert!(matches!(out.to_exchange.last(), Some(ToExchange::CancelAll)));
    }

    #[test]
    fn resume_lifts_the_kill_switch_and_saves_it() {
        let mut intake = Setup::default().start();
        intake.type_lines("halt\nresume\nbuy BTCUSDT 0.001\n");
        let account = Arc::clone(&intake.account);
        let out = intake.finish();
        assert_eq!(out.first("resumed").fields["halted"], false);
        assert_eq!(out.settings, [("halted", "on".to_string()), ("halted", "off".to_string())]);
        assert!(!account.is_halted());
        assert_eq!(out.submitted().len(), 1);
    }

    #[test]
    fn an_order_carries_its_expected_price_and_the_age_of_the_quote_it_came_from() {
        let mut intake = Setup::default().start();
        intake.type_lines("buy BTCUSDT 0.001\n");
        let out = intake.finish();
        let order = out.submitted()[0];
        // The test's book is read as the simulator's is: current, age zero.
        assert_eq!((order.expected_price, order.expected_price_age_us), (Some(d("65000.01")), Some(0)));
    }

    #[test]
    fn a_confirmation_waiting_does_not_hold_back_a_twap_slice_due() {
        let mut intake = Setup { tier: Tier::Strategist, ..Setup::default() }.start();
        intake.type_lines("twap BTCUSDT 0.002 1\nconfirm on\nbuy BTCUSDT 0.001\n");
        intake.wait_for("confirm_request");
        let slices: Vec<Order> = (0..2)
            .map(|_| match intake.to_exchange.recv_timeout(Duration::from_secs(10)) {
                Ok(ToExchange::Submit(s)) => s.order,
                other => panic!("expected a slice, got {other:?}"),
            })
            .collect();
        assert_eq!(slices.iter().map(|o| o.slice_number).collect::<Vec<_>>(), [Some(1), Some(2)]);
        let out = intake.finish();
        // The buy still waited when the second slice went; only end of input cancelled it.
        assert_eq!(out.first("order_cancelled").fields["reason"], "input ended before a confirmation");
    }

    #[test]
    fn a_twap_slice_the_rate_limiter_refuses_when_due_is_cancelled_with_the_reason() {
        // Room for one slice and its stop-loss in the 10 s window, not for two.
        let setup = Setup { tier: Tier::Strategist, order_limit_10s: 4, ..Setup::default() };
        let mut intake = setup.start();
        intake.type_lines("twap BTCUSDT 0.002 1\n");
        let out = intake.finish();
        assert_eq!(out.submitted().len(), 1);
        let cancelled = out.first("order_cancelled");
        let reason = cancelled.fields["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("rate limit: 2 orders in the last 10 s (the exchange allows 4 per 10 s)"),
            "{reason}"
        );
        let slice = out.orders.iter().rev().find(|o| o.slice_number == Some(2)).unwrap();
        assert_eq!(slice.status, OrderStatus::Cancelled);
    }

    #[test]
    fn the_end_of_a_tilt_cooldown_is_announced_without_a_new_line() {
        let tilt = TiltSettings { burst_orders: 1, cooldown_secs: 1, ..TiltSettings::default() };
        // The confirmation the cooldown asks for expires after the cooldown: that timer wakes intake.
        let setup = Setup { tilt, confirm_timeout: Duration::from_millis(1200), ..Setup::default() };
        let mut intake = setup.start();
        intake.type_lines("buy BTCUSDT 0.001\nbuy BTCUSDT 0.001\n");
        assert_eq!(intake.wait_for("tilt_changed").fields["state"], "COOLDOWN");
        assert_eq!(intake.wait_for("confirm_request").fields["tilt_cooldown"], true);
        assert_eq!(intake.wait_for("tilt_changed").fields["state"], "CALM");
        let out = intake.finish();
        assert_eq!(out.first("order_cancelled").fields["reason"], "no confirmation within 1 s");
    }
}
