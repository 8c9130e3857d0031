//! Exchange I/O stage: owns the gateway, the open positions and our resting orders.
//!
//! Receives submissions, cancel-all and queries from intake; records each execution
//! ([`super::record`]) and sends records to persist. It places and verifies orders, protects every filled entry with a stop-loss, releases the stops a sell
//! needs (the last one in the sell's own cancel-replace) and re-protects what a sell leaves.
//! Every outcome is classified: accepted, rejected, or unknown — and an unknown outcome is
//! resolved by querying the client order id, never by resending blindly.

use super::account::{account_event, tilt_event, Account};
use super::guard::{ExchangeGuard, GuardChange};
use super::msg::{Execution, Query, Submission, ToExchange, ToPersist};
use super::slots::AlgoSlots;
use super::Rules;
use crate::domain::ids::IdGen;
use crate::domain::lifecycle::{LifecycleEvent, OrderStatus};
use crate::domain::money::Decimal;
use crate::domain::now_us;
use crate::domain::order::{ExchangeOrderType, Order, OrderReport, OrderRole, Side};
use crate::domain::position::{self, Position, PositionStatus, Protection, StopSettings};
use crate::events::{Bus, Event, EventKind};
use crate::exchange::{Exchange, ExchangeError, NewOrder, Quotes, Replaced};
use crossbeam_channel::{never, Receiver, Sender};
use fills::{fees_in_quote, unaccounted, SoldPart, ASSUMED_FEE_RATE};
use outbox::Outbox;
use sells::RELEASED_FOR_SELL;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unknown::{Unresolved, RECHECKS, RECHECK_EVERY, RESOLVE_SCHEDULE};
use watch::{OnCancel, Seen};

mod cancel_all;
mod fills;
pub mod inline;
mod outbox;
mod protection;
pub mod reconcile;
mod sells;
#[cfg(test)]
mod tests;
mod unknown;
mod watch;

/// Shortest gap between two balance syncs after fills.
const AFTER_FILL_SYNC_GAP: Duration = Duration::from_secs(1);

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
    stream: Option<crate::exchange::PushLink>,
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
    /// Records each execution once its line is out, before positions and stop-losses.
    recorder: super::record::Recorder,
    /// Positions not closed, by id (oldest first).
    positions: BTreeMap<i64, Position>,
    /// Our orders resting on the exchange (stop-losses), by client order id.
    resting: HashMap<String, Order>,
    /// The stop the sell in flight cancelled with its own request, booked once it is verified.
    released_stop: Option<OrderReport>,
    /// Positions a sell in flight takes, by the sell's client order id.
    allocations: HashMap<String, Vec<position::Allocation>>,
    /// Orders whose placement outcome is still unknown.
    unresolved: Vec<Unresolved>,
    /// Unprotected positions: when their next protection attempt is due, and the last wait.
    reprotect: BTreeMap<i64, (Instant, Duration)>,
    /// When exchange I/O's thread planned to wake for its timed work (see [`inline`]).
    thread_wakes_at: Instant,
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
        to_persist: Sender<ToPersist>,
    ) -> ExchangeIo {
        // Positions and resting orders come from `reconcile`, checked against the exchange.
        let slots = AlgoSlots::default();
        let positions = BTreeMap::new();
        ExchangeIo {
            gateway,
            account,
            quotes,
            recorder: super::record::Recorder {
                slippage_alert_pct: config.risk.slippage_alert_pct,
                bus: bus.clone(),
                to_persist: to_persist.clone(),
                stats: Arc::clone(&stats),
            },
            stats,
            spin: config.tuning.spin,
            watch_interval: config.tuning.watch_interval,
            last_watch: Instant::now(),
            stream: None,
            stream_up: false,
            balance_sync: config.tuning.balance_sync,
            balances_dirty: false,
            last_balance_sync: Instant::now(),
            rules,
            ids,
            slots,
            guard,
            max_entry_retry_wait: config.binance.max_entry_retry_wait,
            stop_settings: config.risk.stops,
            stop_loss_attempts: config.risk.stop_loss_attempts.max(1),
            out: Outbox::new(bus, to_persist),
            positions,
            resting: HashMap::new(),
            released_stop: None,
            allocations: HashMap::new(),
            unresolved: Vec::new(),
            reprotect: BTreeMap::new(),
            thread_wakes_at: Instant::now(),
            resolve_schedule: RESOLVE_SCHEDULE,
        }
    }

    /// Order changes pushed by the user data stream reach `run` through this link.
    pub fn set_stream(&mut self, link: crate::exchange::PushLink) {
        self.stats.set_stream_state("connecting");
        self.stream = Some(link);
    }

    /// Runs until intake hangs up and nothing is left in flight (every command through the
    /// queue; the engine shares the stage with intake instead, see [`inline`]).
    pub fn run(self, from_intake: Receiver<ToExchange>) {
        inline::run(inline::Shared::new(self), from_intake)
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

    /// One command. Every execution before it was recorded and acted on already (positions
    /// opened or closed, stops placed), so a sell finds its entries' positions and an entry the
    /// day's losses booked.
    fn on_intake(&mut self, msg: ToExchange) {
        match msg {
            ToExchange::Submit(submission) => self.submit(*submission),
            ToExchange::CancelAll => self.cancel_all(),
            ToExchange::Query(query) => self.forward_query(query),
            ToExchange::Reprotect => {
                // `resume`: every position left without a stop (by `halt`, say) is protected now.
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

    /// Every earlier order was recorded on this thread already, so a query sent straight to
    /// persist queues behind every record of every order before it.
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

    /// Sends one order and queries its real fill; then records the execution and acts on it.
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
                // The fill's line goes to stdout first: before the execution is recorded, before
                // the stop-loss is sent and before any record reaches persist.
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
                self.executed(Execution { order, timing, verification_error, announced: true });
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

    fn apply(&mut self, order: &mut Order, report: &OrderReport) {
        if let Err(e) = order.apply_report(report, now_us()) {
            log::error!("{} {e}: exchange report {} refused", order.client_order_id, report.status.as_str());
        }
        self.value_fees(order);
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

    /// An order the exchange executed: recorded, then its positions opened or closed and
    /// protected, here and now (the fill's line is out already).
    fn executed(&mut self, mut execution: Execution) {
        self.recorder.record(&mut execution);
        let order = execution.order;
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
}
