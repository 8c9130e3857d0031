//! Exchange I/O stage: owns the gateway, the open positions and our resting orders.
//!
//! Receives submissions, cancel-all and queries from intake, and verified fills back from the
//! record stage; sends executions to the record stage and records to persist. It places and
//! verifies orders, protects every filled entry with a stop-loss, releases the stops a sell
//! needs (the last one in the sell's own cancel-replace) and re-protects what a sell leaves.
//! Every outcome is classified: accepted, rejected, or unknown — and an unknown outcome is
//! resolved by querying the client order id, never by resending blindly.

use super::account::{account_event, tilt_event, Account};
use super::guard::{ExchangeGuard, GuardChange};
use super::msg::{Execution, FromRecord, Query, Submission, ToExchange, ToPersist, ToRecord};
use super::slots::AlgoSlots;
use super::Rules;
use crate::domain::ids::IdGen;
use crate::domain::lifecycle::{LifecycleEvent, OrderStatus};
use crate::domain::money::Decimal;
use crate::domain::now_us;
use crate::domain::order::{ExchangeOrderType, Order, OrderReport, OrderRole, Side};
use crate::domain::position::{self, Position, PositionStatus, Protection, StopSettings};
use crate::events::{Bus, Event, EventKind};
use crate::exchange::binance::stream::StreamLink;
use crate::exchange::{Exchange, ExchangeError, NewOrder, Quotes, Replaced};
use crossbeam_channel::{never, Receiver, Sender};
use outbox::Outbox;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watch::{OnCancel, Seen};

pub mod inline;
mod outbox;
pub mod reconcile;
#[cfg(test)]
mod tests;
mod watch;

/// An order whose placement outcome is still unknown, re-checked on a schedule.
struct Unresolved {
    order: Order,
    timing: super::msg::Timing,
    next_check: Instant,
    checks: u32,
    absent: u32,
}

/// Binance's highest spot taker fee (0.1 %): what a fill whose trades could not be read is taken
/// to have paid, so that a stop never covers more than the account holds and a loss is never
/// understated.
const ASSUMED_FEE_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

/// Fees of `order` in its quote asset, from its trades; a part whose trades could not be read
/// counts at [`ASSUMED_FEE_RATE`], never as free.
fn fees_in_quote(order: &Order) -> Decimal {
    order.fees_in_quote() + unaccounted(order) * order.avg_price.unwrap_or_default() * ASSUMED_FEE_RATE
}

/// The filled quantity no trade seen accounts for.
fn unaccounted(order: &Order) -> Decimal {
    (order.filled_quantity - order.fills_quantity()).max(Decimal::ZERO)
}

/// One part of a sell, booked against the positions it closes.
#[derive(Debug, Clone, Copy)]
struct SoldPart {
    quantity: Decimal,
    price: Decimal,
    /// Its fees, in the quote asset.
    fees: Decimal,
}

impl SoldPart {
    /// The whole of a sell.
    fn all_of(sell: &Order) -> SoldPart {
        SoldPart {
            quantity: sell.filled_quantity,
            price: sell.avg_price.unwrap_or_default(),
            fees: fees_in_quote(sell),
        }
    }
}

/// Why a stop was cancelled before a sell.
const RELEASED_FOR_SELL: &str = "released for a sell";

/// Protection retries of an unprotected position: 1 s, doubling to 60 s, until protected.
const REPROTECT_FIRST: Duration = Duration::from_secs(1);
const REPROTECT_MAX: Duration = Duration::from_secs(60);

/// Re-check schedule of unknown outcomes during operation: every 5 s, 24 times (2 minutes).
const RECHECK_EVERY: Duration = Duration::from_secs(5);
const RECHECKS: u32 = 24;

/// Shortest gap between two balance syncs after fills.
const AFTER_FILL_SYNC_GAP: Duration = Duration::from_secs(1);

/// Waits between queries that resolve an unknown outcome (bounded: then the order stays
/// PENDING, visibly).
const RESOLVE_SCHEDULE: [Duration; 5] = [
    Duration::from_millis(0),
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// Why a placement did not give a report.
#[derive(Debug)]
enum PlaceFailure {
    /// Known not to exist on the exchange (rejected, never sent, or queried and absent).
    Failed(ExchangeError),
    /// Still unknown after the bounded resolution schedule.
    Unresolved(String),
}

impl std::fmt::Display for PlaceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaceFailure::Failed(e) => write!(f, "{e}"),
            PlaceFailure::Unresolved(reason) => write!(f, "outcome unknown: {reason}"),
        }
    }
}

pub struct ExchangeIo {
    gateway: Box<dyn Exchange>,
    account: Arc<Account>,
    quotes: Arc<dyn Quotes>,
    stats: Arc<super::stats::Stats>,
    /// Busy-wait before blocking (`--spin-us`, off by default).
    spin: Duration,
    /// Our resting orders are polled this often (live tracking).
    watch_interval: Duration,
    last_watch: Instant,
    /// The user data stream (binance, `--stream on`): pushed order changes.
    stream: Option<StreamLink>,
    /// Subscribed now: the poll slows to `STREAM_UP_WATCH` and stays as the check.
    stream_up: bool,
    /// Balances are synced after fills (when idle) and at this interval.
    balance_sync: Duration,
    balances_dirty: bool,
    last_balance_sync: Instant,
    rules: Arc<Rules>,
    ids: Arc<IdGen>,
    /// Stop orders per symbol, against MAX_NUM_ALGO_ORDERS.
    slots: AlgoSlots,
    guard: Arc<ExchangeGuard>,
    max_entry_retry_wait: Duration,
    stop_settings: StopSettings,
    stop_loss_attempts: u32,
    /// Records for persist and events for stdout (held while a sell is on its way).
    out: Outbox,
    to_record: Sender<ToRecord>,
    /// Positions not closed, by id (oldest first).
    positions: BTreeMap<i64, Position>,
    /// Our orders resting on the exchange (stop-losses), by client order id.
    resting: HashMap<String, Order>,
    /// The stop the sell in flight cancelled with its own request, booked once it is verified.
    released_stop: Option<OrderReport>,
    /// Positions a sell in flight takes, by the sell's client order id.
    allocations: HashMap<String, Vec<position::Allocation>>,
    /// Executions sent to the record stage and not yet answered.
    in_record: usize,
    /// Of those, the exits (their realized P&L is not booked yet).
    exits_in_record: usize,
    /// Orders whose placement outcome is still unknown.
    unresolved: Vec<Unresolved>,
    /// Unprotected positions: when their next protection attempt is due, and the last wait.
    reprotect: BTreeMap<i64, (Instant, Duration)>,
    /// Waits between the queries that resolve an unknown outcome (`RESOLVE_SCHEDULE`; the
    /// unit tests shorten them).
    resolve_schedule: [Duration; RESOLVE_SCHEDULE.len()],
}

#[allow(clippy::too_many_arguments)]
impl ExchangeIo {
    pub fn new(
        gateway: Box<dyn Exchange>,
        account: Arc<Account>,
        quotes: Arc<dyn Quotes>,
        stats: Arc<super::stats::Stats>,
        rules: Arc<Rules>,
        ids: Arc<IdGen>,
        guard: Arc<ExchangeGuard>,
        config: &crate::config::Config,
        bus: Bus,
        to_record: Sender<ToRecord>,
        to_persist: Sender<ToPersist>,
    ) -> ExchangeIo {
        // Positions and resting orders come from `reconcile`, checked against the exchange.
        let slots = AlgoSlots::default();
        let positions = BTreeMap::new();
        ExchangeIo {
            gateway,
            account,
            quotes,
            stats,
            spin: config.spin,
            watch_interval: config.watch_interval,
            last_watch: Instant::now(),
            stream: None,
            stream_up: false,
            balance_sync: config.balance_sync,
            balances_dirty: false,
            last_balance_sync: Instant::now(),
            rules,
            ids,
            slots,
            guard,
            max_entry_retry_wait: config.max_entry_retry_wait,
            stop_settings: config.stop_settings(),
            stop_loss_attempts: config.stop_loss_attempts.max(1),
            out: Outbox::new(bus, to_persist),
            to_record,
            positions,
            resting: HashMap::new(),
            released_stop: None,
            allocations: HashMap::new(),
            in_record: 0,
            exits_in_record: 0,
            unresolved: Vec::new(),
            reprotect: BTreeMap::new(),
            resolve_schedule: RESOLVE_SCHEDULE,
        }
    }

    /// Order changes pushed by the user data stream reach `run` through this link.
    pub fn set_stream(&mut self, link: StreamLink) {
        self.stats.set_stream_state("connecting");
        self.stream = Some(link);
    }

    /// Runs until intake hangs up and nothing is left in flight (every command through the
    /// queue; the engine shares the stage with intake instead, see [`inline`]).
    pub fn run(self, from_intake: Receiver<ToExchange>, from_record: Receiver<FromRecord>) {
        inline::run(inline::Shared::new(self, from_record), from_intake)
    }

    /// `GET /api/v3/account` into the account state and the database.
    fn sync_balances(&mut self) {
        self.last_balance_sync = Instant::now();
        match self.gateway.account() {
            Ok(balances) => {
                let now = now_us();
                self.balances_dirty = false;
                if self.account.view(now).balances != balances {
                    // Coins or funds moved: a stop refused for the balance may fit now.
                    self.reprotect_now();
                }
                self.account.set_balances(balances.clone(), now);
                self.out.record(ToPersist::Balances { balances, at_us: now });
            }
            Err(e) => log::warn!("balance sync failed: {e}"),
        }
    }

    /// Waits until every execution sent to the record stage has come back and been acted on.
    fn drain(&mut self, from_record: &Receiver<FromRecord>) {
        while self.in_record > 0 {
            match from_record.recv() {
                Ok(reply) => self.on_recorded(reply),
                Err(_) => break,
            }
        }
    }

    fn on_intake(&mut self, msg: ToExchange, from_record: &Receiver<FromRecord>) {
        match msg {
            ToExchange::Submit(submission) => {
                // A sell closes positions: the entries before it must have opened theirs. An
                // entry checks the day's losses: the exits before it must have booked theirs.
                if submission.order.side == Side::Sell || self.exits_in_record > 0 {
                    self.drain(from_record);
                }
                self.submit(*submission)
            }
            ToExchange::CancelAll => {
                // Entries in flight get their stop first, and then it is cancelled with the rest.
                self.drain(from_record);
                self.cancel_all();
            }
            ToExchange::Query(query) => {
                self.drain(from_record);
                self.forward_query(query);
            }
            ToExchange::Reprotect => {
                // `resume`: every position left without a stop (by `halt`, say) is protected now.
                self.drain(from_record);
                let now = Instant::now();
                let unprotected: Vec<i64> = self
                    .positions
                    .values()
                    .filter(|p| p.status == PositionStatus::Unprotected && p.stop_loss_client_id.is_none())
                    .map(|p| p.position_id)
                    .collect();
                for id in unprotected {
                    self.reprotect.insert(id, (now, Duration::ZERO));
                }
                self.retry_protection();
            }
        }
    }

    /// After a drain, the record stage has written everything it was given, so a query sent
    /// straight to persist now queues behind every record of every order before it.
    fn forward_query(&mut self, query: Query) {
        if let Query::Account { confirm } = query {
            if self.balances_dirty {
                self.sync_balances();
            }
            self.out.announce(account_event(&self.account, self.quotes.as_ref(), confirm));
            return;
        }
        self.out.record(ToPersist::Query(query));
    }

    fn persist_order(&mut self, order: &Order) {
        self.out.record(ToPersist::Order(Box::new(order.clone())));
    }

    fn persist_position(&mut self, position: &Position) {
        self.out.record(ToPersist::Position(Box::new(position.clone())));
    }

    fn submit(&mut self, submission: Submission) {
        self.place_and_verify(submission);
        // Whatever the outcome, nothing stays held past the order.
        self.book_released_stop();
        self.out.release();
    }

    /// Books the stop a sell's cancel-replace cancelled: kept aside until the sell is
    /// verified, so the stop's bookkeeping (its record, `order_cancelled`, its position) is
    /// not on the sell's path.
    fn book_released_stop(&mut self) {
        if let Some(report) = self.released_stop.take() {
            self.on_resting_report(report, Seen::Request, RELEASED_FOR_SELL, OnCancel::Expected);
        }
    }

    /// Sends one order and queries its real fill; the execution goes to the record stage.
    fn place_and_verify(&mut self, submission: Submission) {
        let Submission { mut order, mut timing } = submission;
        // A sell frees the coins its positions' stops lock; the last stop goes in the sell's
        // own request. The released stops' records and events wait until the sell is verified.
        let mut releasing = None;
        if order.side == Side::Sell {
            self.out.hold();
            releasing = self.release_stops_for_sell(&order);
        }
        if order.role == OrderRole::Entry {
            // Intake checked the day's losses when the line was read; the exits queued before
            // this entry may have booked more since. This is the last point before sending.
            if let Err(refusal) = self.account.check_not_halted().and_then(|_| self.account.check_daily_loss(now_us()))
            {
                self.refuse(&mut order, refusal.rule.as_str(), &refusal.message);
                return;
            }
            // Checked here, not at intake: only this stage knows, in order, the stops that the
            // sells queued before this entry will free.
            let max = self.rules.get(&order.symbol).and_then(|r| r.max_num_algo_orders);
            if !self.slots.has_room(&order.symbol, max, self.positions_needing_stops(&order.symbol)) {
                let reason = format!(
                    "cannot protect another {} entry: its open and pending stop-losses reach MAX_NUM_ALGO_ORDERS ({}); not sent",
                    order.symbol,
                    max.unwrap_or_default()
                );
                self.refuse(&mut order, "unprotectable", &reason);
                return;
            }
            self.slots.entry_sent(&order.symbol);
        }
        let request = NewOrder::market_for(&order);
        timing.sent_at = Some(Instant::now());
        let placed = match releasing {
            Some(stop_id) => self.place_releasing(&request, &stop_id),
            None => self.place(&request, order.role != OrderRole::Entry),
        };
        timing.placed_at = Some(Instant::now());
        timing.sign_ns = self.gateway.last_timing().sign_ns;
        match placed {
            Ok(report) => {
                self.apply(&mut order, &report);
                // Verification: ask the exchange for the order's real fill.
                let verification_error = match self.gateway.query_order(&order.symbol, &order.client_order_id) {
                    Ok(report) => {
                        self.apply(&mut order, &report);
                        None
                    }
                    Err(e) => {
                        log::warn!("{} verification query failed: {e}", order.client_order_id);
                        Some(e.to_string())
                    }
                };
                // A placement answered by a query (an unknown outcome) carries no trades.
                self.complete_fills(&mut order);
                timing.queried_at = Some(Instant::now());
                super::record::assess(&mut order, &mut timing);
                self.book_released_stop();
                // The fill's line goes to stdout from this thread, before the stop-loss is sent
                // (the record stage hands the order back for that) and before any record
                // reaches persist.
                let submitted = Event::new(
                    EventKind::OrderSubmitted,
                    format!(
                        "{} {} {} {} sent (exchange id {})",
                        order.order_id,
                        order.side.as_str(),
                        order.quantity,
                        order.symbol,
                        report.exchange_order_id
                    ),
                )
                .order(order.order_id, &order.client_order_id)
                .field("exchange_order_id", report.exchange_order_id)
                .field("symbol", order.symbol.as_str())
                .field("side", order.side.as_str())
                .money("quantity", order.quantity)
                .field("exchange_status", report.status.as_str());
                let latency = super::OrderLatency::of(&timing);
                let filled = super::record::fill_event(&order, verification_error.as_deref(), &latency);
                self.out.release_with(vec![submitted, filled]);
                self.in_record += 1;
                if order.side == Side::Sell {
                    self.exits_in_record += 1;
                }
                let execution = Execution { order, timing, verification_error, announced: true };
                let _ = self.to_record.send(ToRecord::Executed(Box::new(execution)));
            }
            Err(PlaceFailure::Failed(error)) => {
                let reason = error.to_string();
                self.fail(&mut order, &reason);
                if order.role == OrderRole::Entry {
                    self.slots.entry_settled(&order.symbol);
                }
                self.reprotect_after_sell(&order.client_order_id, Decimal::ZERO, &order);
            }
            Err(PlaceFailure::Unresolved(reason)) => {
                // Stays PENDING: the exchange may hold it. Re-checked on a bounded schedule below,
                // then by the next start's reconciliation.
                order.reason = Some(format!(
                    "outcome unknown: {reason}; re-checked every {} s, {} times",
                    RECHECK_EVERY.as_secs(),
                    RECHECKS
                ));
                order.updated_at_us = now_us();
                self.persist_order(&order);
                self.out.announce(
                    Event::new(
                        EventKind::OrderUnknown,
                        format!(
                            "{} outcome unknown after {} queries: {reason}; stays PENDING",
                            order.order_id,
                            RESOLVE_SCHEDULE.len()
                        ),
                    )
                    .order(order.order_id, &order.client_order_id)
                    .field("reason", reason),
                );
                self.unresolved.push(Unresolved {
                    order,
                    timing,
                    next_check: Instant::now() + RECHECK_EVERY,
                    checks: 0,
                    absent: 0,
                });
            }
        }
    }

    /// When the next re-check of an unknown outcome is due.
    fn next_recheck(&self) -> Option<Instant> {
        self.unresolved.iter().map(|u| u.next_check).min()
    }

    /// Re-checks the orders whose outcome is still unknown; a resolved one continues as if
    /// its placement had answered (verification, position, stop-loss).
    fn recheck_unresolved(&mut self) {
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
                    self.in_record += 1;
                    if u.order.side == Side::Sell {
                        self.exits_in_record += 1;
                    }
                    let execution =
                        Execution { order: u.order, timing: u.timing, verification_error: None, announced: false };
                    let _ = self.to_record.send(ToRecord::Executed(Box::new(execution)));
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

    fn apply(&mut self, order: &mut Order, report: &OrderReport) {
        if let Err(e) = order.apply_report(report, now_us()) {
            log::error!("{} {e}: exchange report {} refused", order.client_order_id, report.status.as_str());
        }
        self.value_fees(order);
    }

    /// Reads the trades of a fill learnt without them (a query's or a listing's report):
    /// `myTrades?orderId=` (weight 5). A read that fails leaves the part unaccounted, which
    /// counts at the assumed fee rate.
    fn complete_fills(&mut self, order: &mut Order) {
        if let (false, Some(exchange_order_id)) = (order.fills_complete(), order.exchange_order_id) {
            match self.gateway.order_trades(&order.symbol, exchange_order_id) {
                Ok(trades) => {
                    order.add_fills(&trades, now_us() / 1000);
                }
                Err(e) => {
                    let (id, missing) = (&order.client_order_id, unaccounted(order));
                    log::warn!(
                        "{id}: trades not read ({e}); {missing} of its fill counts at the {ASSUMED_FEE_RATE} rate"
                    );
                }
            }
        }
        self.value_fees(order);
    }

    /// Values in the quote asset every fee not valued yet: exactly for the base and quote
    /// assets, at this moment's bid for a third asset (BNB).
    fn value_fees(&mut self, order: &mut Order) {
        let rules = Arc::clone(&self.rules);
        let Some(rules) = rules.get(&order.symbol) else { return };
        for fill in order.fills.iter_mut().filter(|f| f.commission_quote.is_none()) {
            fill.commission_quote = fill.exact_commission_quote(&rules.base_asset, &rules.quote_asset);
            if fill.commission_quote.is_some() {
                continue;
            }
            // A third asset: its bid now, cached if intake asked for it, else one bookTicker.
            let pair = format!("{}{}", fill.commission_asset, rules.quote_asset);
            let bid = match self.quotes.top_of_book(&pair) {
                Some(top) => Some(top.bid),
                None => self.gateway.book_ticker(&pair).ok().map(|top| top.bid),
            };
            if bid.is_none() {
                log::error!("trade {}: no {pair} quote to value its fee in", fill.trade_id);
            }
            fill.commission_quote = bid.map(|bid| fill.commission * bid);
        }
    }

    /// A risk rule refused the order before it was sent: recorded FAILED, `order_rejected`.
    fn refuse(&mut self, order: &mut Order, rule: &str, message: &str) {
        if let Err(e) = order.apply_event(LifecycleEvent::Rejected, Some(format!("{rule}: {message}")), now_us()) {
            log::error!("{} {e}", order.client_order_id);
        }
        self.persist_order(order);
        self.out.announce(
            Event::new(
                EventKind::OrderRejected,
                format!(
                    "{} {} {} {} refused: {rule}: {message}",
                    order.order_id,
                    order.side.as_str(),
                    order.quantity,
                    order.symbol
                ),
            )
            .order(order.order_id, &order.client_order_id)
            .field("rule", rule)
            .field("message", message),
        );
    }

    fn fail(&mut self, order: &mut Order, reason: &str) {
        if let Err(e) = order.apply_event(LifecycleEvent::Rejected, Some(reason.to_string()), now_us()) {
            log::error!("{} {e}", order.client_order_id);
        }
        self.persist_order(order);
        self.out.announce(Event::order_ended(EventKind::OrderFailed, order, reason));
    }

    /// Places with the retry policy: -1021 is retried by the gateway; "never sent" is retried;
    /// a rate limit is waited out (an entry only briefly); an unknown outcome is resolved by query.
    fn place(&mut self, request: &NewOrder, protective: bool) -> Result<OrderReport, PlaceFailure> {
        let mut not_sent_retries = 0;
        loop {
            let result = self.gateway.place_order(request);
            self.record_outcome(&result);
            match result {
                Ok(report) => return Ok(report),
                Err(ExchangeError::NotSent { reason }) if not_sent_retries < 2 => {
                    not_sent_retries += 1;
                    log::warn!("{} not sent ({reason}); retrying", request.client_order_id);
                }
                Err(ExchangeError::RateLimited { retry_after, banned, code, msg }) => {
                    let may_wait = protective || (!banned && retry_after <= self.max_entry_retry_wait);
                    if !may_wait {
                        return Err(PlaceFailure::Failed(ExchangeError::RateLimited {
                            retry_after,
                            banned,
                            code,
                            msg,
                        }));
                    }
                    self.out.announce(
                        Event::new(
                            EventKind::RateLimited,
                            format!(
                                "{} waits {:.1} s for the exchange's rate limit: {msg}",
                                request.client_order_id,
                                retry_after.as_secs_f64()
                            ),
                        )
                        .field("client_order_id", request.client_order_id.as_str())
                        .field("retry_after_ms", retry_after.as_millis() as u64)
                        .field("until", crate::domain::format_ts(now_us() + retry_after.as_micros() as i64))
                        .field("banned", banned),
                    );
                    self.out.release();
                    std::thread::sleep(retry_after);
                }
                Err(ExchangeError::Unknown { reason }) => return self.resolve_unknown(request, reason),
                Err(error) => return Err(PlaceFailure::Failed(error)),
            }
        }
    }

    /// Feeds the guard: the breaker counts failures, a 418 stops new entries.
    fn record_outcome<T>(&mut self, result: &Result<T, ExchangeError>) {
        if let Some((used, limit)) = self.gateway.weight_status() {
            self.guard.record_weight(used, limit);
        }
        let change = match result {
            Ok(_) | Err(ExchangeError::Rejected { .. }) => self.guard.record_success(),
            Err(ExchangeError::RateLimited { retry_after, banned, .. }) => {
                if *banned {
                    self.guard.record_ban(Instant::now(), *retry_after);
                }
                None
            }
            Err(ExchangeError::NotSent { .. } | ExchangeError::Unknown { .. }) => {
                self.guard.record_failure(Instant::now())
            }
        };
        match change {
            Some(GuardChange::BreakerOpened { failures, retry_in }) => {
                let text = format!(
                    "circuit breaker OPEN after {failures} consecutive exchange failures: new entries refused, \
                     probing again in {} s",
                    retry_in.as_secs()
                );
                self.out.announce(
                    Event::new(EventKind::CircuitBreaker, text)
                        .field("state", "OPEN")
                        .field("failures", failures)
                        .field("retry_in_s", retry_in.as_secs()),
                )
            }
            Some(GuardChange::BreakerClosed) => self.out.announce(
                Event::new(EventKind::CircuitBreaker, "circuit breaker CLOSED: the exchange answers again")
                    .field("state", "CLOSED"),
            ),
            None => {}
        }
    }

    /// Queries the client order id on a bounded schedule until the outcome is known.
    fn resolve_unknown(&mut self, request: &NewOrder, reason: String) -> Result<OrderReport, PlaceFailure> {
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

    fn on_recorded(&mut self, reply: FromRecord) {
        let FromRecord::Recorded(execution) = reply;
        self.in_record = self.in_record.saturating_sub(1);
        let order = execution.order;
        if order.side == Side::Sell {
            self.exits_in_record = self.exits_in_record.saturating_sub(1);
        }
        if order.filled_quantity > Decimal::ZERO {
            self.balances_dirty = true;
        }
        match order.role {
            OrderRole::Entry => {
                self.slots.entry_settled(&order.symbol);
                if order.filled_quantity > Decimal::ZERO {
                    self.open_position(order, true);
                }
            }
            OrderRole::Exit | OrderRole::EmergencyExit => {
                let filled = order.filled_quantity;
                self.reprotect_after_sell(&order.client_order_id, filled, &order);
            }
            OrderRole::StopLoss | OrderRole::Recovered => {}
        }
    }

    /// Opens the position of a filled entry and protects it (`protect_now`; reconciliation
    /// protects later, once it knows which stops survived on the exchange).
    fn open_position(&mut self, mut order: Order, protect_now: bool) {
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
    fn protect(&mut self, position: &mut Position) {
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
    fn positions_needing_stops(&self, symbol: &str) -> u32 {
        let needing = self
            .positions
            .values()
            .filter(|p| p.symbol == symbol && matches!(p.status, PositionStatus::Open | PositionStatus::Unprotected));
        needing.count() as u32
    }

    /// Schedules the next protection attempt of an unprotected position (1 s, doubling to
    /// 60 s); returns the wait.
    fn schedule_reprotect(&mut self, position_id: i64) -> Duration {
        let entry = self.reprotect.entry(position_id).or_insert((Instant::now(), Duration::ZERO));
        let wait = if entry.1.is_zero() { REPROTECT_FIRST } else { (entry.1 * 2).min(REPROTECT_MAX) };
        *entry = (Instant::now() + wait, wait);
        wait
    }

    /// When the next protection attempt is due.
    fn next_reprotect(&self) -> Option<Instant> {
        self.reprotect.values().map(|(due, _)| *due).min()
    }

    /// Makes every scheduled protection attempt due now (the balances changed; `resume`).
    fn reprotect_now(&mut self) {
        let now = Instant::now();
        for (due, _) in self.reprotect.values_mut() {
            *due = now;
        }
    }

    /// Protects again every unprotected position whose attempt is due.
    fn retry_protection(&mut self) {
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
    fn emergency_exit(&mut self, position: &mut Position, stop_price: Decimal, reason: &str) {
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

    /// Before a sell: pick the positions it closes (oldest first) and cancel their stops,
    /// since on spot the stop holds the coins. The last stop is left for the sell's own
    /// request to cancel (cancel-replace): its client order id.
    fn release_stops_for_sell(&mut self, sell: &Order) -> Option<String> {
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
    fn place_releasing(&mut self, sell: &NewOrder, stop_id: &str) -> Result<OrderReport, PlaceFailure> {
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
    fn cancel_stop(&mut self, symbol: &str, client_order_id: &str, why: &str) {
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
    fn reprotect_after_sell(&mut self, sell_client_id: &str, filled: Decimal, sell: &Order) {
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
    fn close_part(&mut self, position: &mut Position, take: Decimal, sell: &Order, part: SoldPart) {
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

    /// Emergency cancel: every open order on every symbol, not only the ones we know.
    fn cancel_all(&mut self) {
        let mut symbols: BTreeSet<String> = self.resting.values().map(|o| o.symbol.clone()).collect();
        match self.with_retries("list open orders", |gw| gw.open_orders(None)) {
            Ok(open) => symbols.extend(open.into_iter().map(|o| o.symbol)),
            Err(e) => {
                self.out.error(format!("cancel-all: could not list open orders ({e}); cancelling on known symbols"))
            }
        }
        let mut cancelled = 0usize;
        let mut cancelled_symbols = Vec::new();
        for symbol in symbols {
            let mut count = match self.with_retries("cancel open orders", |gw| gw.cancel_open_orders(&symbol)) {
                Ok(reports) => {
                    let n = reports.len();
                    for report in reports {
                        self.on_resting_report(report, Seen::Request, "cancel-all", OnCancel::Expected);
                    }
                    n
                }
                Err(e) => {
                    self.out.error(format!("cancel-all: {symbol}: {e}"));
                    0
                }
            };
            // A cancel whose answer was lost (timeout, 5xx) may have worked: ask about each of
            // ours that no answer covered, so it is not mistaken later for someone else's cancel.
            let unreported: Vec<String> =
                self.resting.values().filter(|o| o.symbol == symbol).map(|o| o.client_order_id.clone()).collect();
            for client_order_id in unreported {
                if let Ok(report) = self.gateway.query_order(&symbol, &client_order_id) {
                    if !report.status.is_open() {
                        count += usize::from(report.executed_qty < report.orig_qty);
                        self.on_resting_report(report, Seen::Request, "cancel-all", OnCancel::Expected);
                    }
                }
            }
            if count > 0 {
                cancelled += count;
                cancelled_symbols.push(symbol.clone());
            }
        }
        log::warn!("cancel-all: cancelled {cancelled} open orders on {:?}", cancelled_symbols);
        self.out.announce(
            Event::new(
                EventKind::CancelAll,
                if cancelled == 0 {
                    "cancel-all: no open orders".to_string()
                } else {
                    format!("cancel-all: cancelled {cancelled} open orders on {}", cancelled_symbols.join(", "))
                },
            )
            .field("cancelled", cancelled)
            .field("symbols", cancelled_symbols),
        );
    }

    /// Protective calls are never abandoned on a rate limit or a transient error: wait and go on
    /// (bounded here so a dead exchange cannot hang shutdown forever).
    fn with_retries<T>(
        &mut self,
        what: &str,
        mut call: impl FnMut(&mut dyn Exchange) -> Result<T, ExchangeError>,
    ) -> Result<T, ExchangeError> {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call(self.gateway.as_mut()) {
                Ok(v) => return Ok(v),
                Err(ExchangeError::Rejected { http_status, code, msg }) => {
                    return Err(ExchangeError::Rejected { http_status, code, msg })
                }
                Err(e) if attempt >= 6 => return Err(e),
                Err(ExchangeError::RateLimited { retry_after, msg, .. }) => {
                    self.out.announce(
                        Event::new(
                            EventKind::RateLimited,
                            format!(
                                "{what} waits {:.1} s for the exchange's rate limit: {msg}",
                                retry_after.as_secs_f64()
                            ),
                        )
                        .field("retry_after_ms", retry_after.as_millis() as u64)
                        .field("until", crate::domain::format_ts(now_us() + retry_after.as_micros() as i64)),
                    );
                    self.out.release();
                    std::thread::sleep(retry_after);
                }
                Err(e) => {
                    log::warn!("{what}: {e}; retrying in {} ms", wait.as_millis());
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
    }
}
