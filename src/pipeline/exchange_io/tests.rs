//! Exchange I/O against the embedded simulator behind a scripted gateway: each test makes a
//! call fail (or answer as the exchange might) at one point and checks what the stage did, in
//! the records and events it sent and on the simulator.

use super::reconcile::Summary;
use super::*;
use crate::domain::order::{ExchangeStatus, Fill};
use crate::domain::risk::{DailyPnl, RiskLimits, Tier};
use crate::domain::symbol::SymbolRules;
use crate::events::StdoutQueues;
use crate::exchange::sim::{SimConfig, SimGateway, Simulator};
use crate::exchange::{Balance, BookTicker, Replaced};
use crate::pipeline::msg::Timing;
use crate::pipeline::startup::StartupReads;
use crate::store::{HistoryScan, Store, Write};
use crossbeam_channel::unbounded;
use parking_lot::Mutex;
use std::collections::VecDeque;

const PREFIX: &str = "gtest01";

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// What one call of the gateway does instead of asking the simulator.
enum Step<T> {
    /// Refused (or its answer lost) before reaching the simulator.
    Fail(ExchangeError),
    /// This answer.
    Answer(T),
}

/// Steps per kind of call; once a queue is empty, the simulator answers.
#[derive(Default)]
struct Script {
    place: VecDeque<Step<OrderReport>>,
    query: VecDeque<Step<OrderReport>>,
    cancel: VecDeque<Step<OrderReport>>,
    cancel_replace: VecDeque<Step<Replaced>>,
    open_orders: VecDeque<Step<Vec<OrderReport>>>,
    all_orders: VecDeque<Step<Vec<OrderReport>>>,
    account: VecDeque<Step<Vec<Balance>>>,
    trades: VecDeque<Step<Vec<Fill>>>,
    /// The reading end of the stage's stdout, when the test watches it.
    stdout: Option<std::os::unix::net::UnixStream>,
    /// What stdout had received when each stop-loss request was about to leave.
    stdout_at_stops: Vec<String>,
}

/// Everything on `stdout` so far, without waiting.
fn read_available(stdout: &mut std::os::unix::net::UnixStream) -> String {
    use std::io::Read;
    stdout.set_nonblocking(true).expect("non-blocking");
    let mut bytes = Vec::new();
    let _ = stdout.read_to_end(&mut bytes);
    String::from_utf8(bytes).expect("utf-8 lines")
}

fn scripted<T>(step: Option<Step<T>>, call: impl FnOnce() -> Result<T, ExchangeError>) -> Result<T, ExchangeError> {
    match step {
        None => call(),
        Some(Step::Fail(e)) => Err(e),
        Some(Step::Answer(v)) => Ok(v),
    }
}

/// The simulator as the stage's gateway, with the script in front of it.
struct Scripted {
    sim: SimGateway,
    script: Arc<Mutex<Script>>,
}

impl Exchange for Scripted {
    fn last_timing(&self) -> crate::exchange::RequestTiming {
        self.sim.last_timing()
    }
    fn exchange_info(&mut self) -> Result<Vec<SymbolRules>, ExchangeError> {
        self.sim.exchange_info()
    }
    fn book_ticker(&mut self, symbol: &str) -> Result<BookTicker, ExchangeError> {
        self.sim.book_ticker(symbol)
    }
    fn place_order(&mut self, order: &NewOrder) -> Result<OrderReport, ExchangeError> {
        let mut script = self.script.lock();
        if order.order_type != ExchangeOrderType::Market {
            if let Some(mut stdout) = script.stdout.take() {
                let mut seen = script.stdout_at_stops.concat();
                seen.push_str(&read_available(&mut stdout));
                script.stdout_at_stops.push(seen);
                script.stdout = Some(stdout);
            }
        }
        let step = script.place.pop_front();
        drop(script);
        scripted(step, || self.sim.place_order(order))
    }
    fn query_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        let step = self.script.lock().query.pop_front();
        scripted(step, || self.sim.query_order(symbol, client_order_id))
    }
    fn cancel_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        let step = self.script.lock().cancel.pop_front();
        scripted(step, || self.sim.cancel_order(symbol, client_order_id))
    }
    fn cancel_replace(&mut self, cancel_client_order_id: &str, order: &NewOrder) -> Result<Replaced, ExchangeError> {
        let step = self.script.lock().cancel_replace.pop_front();
        scripted(step, || self.sim.cancel_replace(cancel_client_order_id, order))
    }
    fn open_orders(&mut self, symbol: Option<&str>) -> Result<Vec<OrderReport>, ExchangeError> {
        let step = self.script.lock().open_orders.pop_front();
        scripted(step, || self.sim.open_orders(symbol))
    }
    fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        self.sim.cancel_open_orders(symbol)
    }
    fn all_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        let step = self.script.lock().all_orders.pop_front();
        scripted(step, || self.sim.all_orders(symbol))
    }
    fn account(&mut self) -> Result<Vec<Balance>, ExchangeError> {
        let step = self.script.lock().account.pop_front();
        scripted(step, || self.sim.account())
    }
    fn order_trades(&mut self, symbol: &str, exchange_order_id: i64) -> Result<Vec<Fill>, ExchangeError> {
        let step = self.script.lock().trades.pop_front();
        scripted(step, || self.sim.order_trades(symbol, exchange_order_id))
    }
}

struct SimTop(Arc<Mutex<Simulator>>);

impl Quotes for SimTop {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
        self.0.lock().book_ticker(symbol).ok()
    }
}

fn unknown(reason: &str) -> ExchangeError {
    ExchangeError::Unknown { reason: reason.into() }
}

fn rejected(code: i64, msg: &str) -> ExchangeError {
    ExchangeError::Rejected { http_status: 400, code, msg: msg.into() }
}

/// The stage, its simulator and script, and everything it sent.
struct Harness {
    io: ExchangeIo,
    script: Arc<Mutex<Script>>,
    sim: Arc<Mutex<Simulator>>,
    ids: Arc<IdGen>,
    from_io: Receiver<ToPersist>,
    _stdout: StdoutQueues,
    /// The bus the stage publishes on (start-up reads publish on it too).
    bus: Bus,
    events: Vec<Arc<Event>>,
    orders: Vec<Order>,
    positions: Vec<Position>,
}

impl Harness {
    fn new() -> Harness {
        Harness::on(Simulator::new(SimConfig::default()))
    }

    fn on(sim: Simulator) -> Harness {
        let sim = SimGateway::new(sim).shared();
        let rules: Rules = sim.lock().exchange_info().into_iter().map(|r| (r.symbol.clone(), r)).collect();
        Harness::with(
            sim,
            Arc::new(rules),
            Arc::new(Mutex::new(Script::default())),
            Arc::new(IdGen::new(PREFIX.into(), 0)),
        )
    }

    fn with(sim: Arc<Mutex<Simulator>>, rules: Arc<Rules>, script: Arc<Mutex<Script>>, ids: Arc<IdGen>) -> Harness {
        Harness::with_sink(sim, rules, script, ids, crate::events::Sink::queued_only(crate::events::Format::Json))
    }

    /// A stage whose stdout is a socket the test reads (`Script::stdout`).
    fn watching_stdout() -> Harness {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let sim = SimGateway::new(Simulator::new(SimConfig::default())).shared();
        let rules: Rules = sim.lock().exchange_info().into_iter().map(|r| (r.symbol.clone(), r)).collect();
        let script = Arc::new(Mutex::new(Script { stdout: Some(theirs), ..Script::default() }));
        let sink = crate::events::Sink::on(ours.into(), crate::events::Format::Json);
        Harness::with_sink(sim, Arc::new(rules), script, Arc::new(IdGen::new(PREFIX.into(), 0)), sink)
    }

    fn with_sink(
        sim: Arc<Mutex<Simulator>>,
        rules: Arc<Rules>,
        script: Arc<Mutex<Script>>,
        ids: Arc<IdGen>,
        sink: crate::events::Sink,
    ) -> Harness {
        let config = crate::config::Config::defaults();
        let (stdout, queues) = crate::events::stdout_lanes_to(1024, 1024, sink);
        let (to_persist, from_io) = unbounded();
        let account = Account::new(Tier::Sniper, RiskLimits::default(), "USDT", DailyPnl::new("USDT"));
        let gateway = Scripted { sim: SimGateway::from_shared(Arc::clone(&sim)), script: Arc::clone(&script) };
        let bus = Bus::new(stdout, Some(to_persist.clone()));
        let mut io = ExchangeIo::new(
            Box::new(gateway),
            Arc::new(account),
            Arc::new(SimTop(Arc::clone(&sim))),
            Arc::new(super::super::stats::Stats::default()),
            rules,
            Arc::clone(&ids),
            Arc::new(ExchangeGuard::new(u32::MAX)),
            &config,
            bus.clone(),
            to_persist,
        );
        io.resolve_schedule = [Duration::ZERO; RESOLVE_SCHEDULE.len()];
        Harness {
            io,
            script,
            sim,
            ids,
            from_io,
            _stdout: queues,
            bus,
            events: Vec::new(),
            orders: Vec::new(),
            positions: Vec::new(),
        }
    }

    fn script(&self) -> parking_lot::MutexGuard<'_, Script> {
        self.script.lock()
    }

    /// Takes in everything the stage sent to persist (records and events).
    fn collect(&mut self) {
        while let Ok(msg) = self.from_io.try_recv() {
            match msg {
                ToPersist::Order(o) => self.orders.push(*o),
                ToPersist::Position(p) => self.positions.push(*p),
                ToPersist::Event(e) => self.events.push(e),
                _ => {}
            }
        }
    }

    fn events(&mut self, kind: &str) -> Vec<Arc<Event>> {
        self.collect();
        self.events.iter().filter(|e| e.kind == kind).cloned().collect()
    }

    fn event(&mut self, kind: &str) -> Arc<Event> {
        let found = self.events(kind);
        assert_eq!(found.len(), 1, "one '{kind}' event expected; got {:?}", self.kinds());
        found[0].clone()
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.kind.as_str()).collect()
    }

    /// The order as last recorded.
    fn order(&mut self, client_order_id: &str) -> Order {
        self.collect();
        self.orders.iter().rev().find(|o| o.client_order_id == client_order_id).cloned().expect("order recorded")
    }

    /// The position as last recorded.
    fn position(&mut self, position_id: i64) -> Position {
        self.collect();
        self.positions.iter().rev().find(|p| p.position_id == position_id).cloned().expect("position recorded")
    }

    fn new_order(&self, role: OrderRole, symbol: &str, side: Side, quantity: &str, position: Option<i64>) -> Order {
        let id = self.ids.next_order_id();
        let cid = self.ids.client_order_id(role.id_letter(), id, position);
        let mut order =
            Order::new(id, cid, symbol.into(), side, role, ExchangeOrderType::Market, d(quantity), now_us());
        order.position_id = position;
        order
    }

    fn submit(&mut self, order: Order) {
        self.io.submit(Submission { order, timing: Timing::new(Instant::now()) });
    }

    /// A message from intake.
    fn on_intake(&mut self, msg: ToExchange) {
        self.io.on_intake(msg);
    }

    /// A market buy, verified, with its position opened and protected; the position's id.
    fn buy(&mut self, symbol: &str, quantity: &str) -> i64 {
        let order = self.new_order(OrderRole::Entry, symbol, Side::Buy, quantity, None);
        let id = order.order_id;
        self.submit(order);
        assert!(self.io.positions.contains_key(&id), "the buy opened position {id}: {:?}", self.kinds());
        id
    }

    fn sell(&mut self, symbol: &str, quantity: &str) -> Order {
        let order = self.new_order(OrderRole::Exit, symbol, Side::Sell, quantity, None);
        self.submit(order.clone());
        order
    }

    fn stop_of(&self, position_id: i64) -> String {
        self.io.positions[&position_id].stop_loss_client_id.clone().expect("the position has a stop")
    }

    /// Another client of the same account.
    fn other_client(&self) -> SimGateway {
        SimGateway::from_shared(Arc::clone(&self.sim))
    }

    /// Moves the book (and triggers what it crosses).
    fn set_price(&self, symbol: &str, bid: &str, ask: &str) {
        self.sim.lock().set_price(symbol, d(bid), d(ask)).expect("set price");
    }

    /// A database holding every record the stage sent so far.
    fn database(&mut self) -> Store {
        self.collect();
        let mut store = Store::open_in_memory().expect("store");
        let mut writes: Vec<Write<'_>> = self.positions.iter().map(Write::Position).collect();
        writes.extend(self.orders.iter().map(Write::Order));
        store.write_batch(&writes).expect("write");
        store
    }

    /// A new stage on the same exchange (a restart), with `rules`.
    fn restart_with(&self, rules: Arc<Rules>) -> Harness {
        let last = self.ids.next_order_id();
        Harness::with(Arc::clone(&self.sim), rules, Arc::clone(&self.script), Arc::new(IdGen::new(PREFIX.into(), last)))
    }

    fn restart(&self) -> Harness {
        self.restart_with(Arc::clone(&self.io.rules))
    }

    /// Reconciles as a start after a crash of a database without the history mark.
    fn reconcile(&mut self, store: &Store) -> Summary {
        self.reconcile_reading(store, HistoryScan::Everything)
    }

    /// Reconciles, reading `scan` of the exchange's history; failed reads retried at once.
    fn reconcile_reading(&mut self, store: &Store, scan: HistoryScan) -> Summary {
        let mut reads =
            StartupReads::new(self.bus.clone(), Box::new(|_| false)).with_backoff(Duration::ZERO, Duration::ZERO);
        self.io.reconcile(store, scan, &mut reads).expect("reconcile")
    }
}

/// A position held by the account (the simulator's starting balances hold it), not yet protected.
fn position(id: i64, symbol: &str, quantity: &str, entry: &str) -> Position {
    Position {
        position_id: id,
        symbol: symbol.into(),
        quantity: d(quantity),
        entry_price: d(entry),
        entry_fees: Decimal::ZERO,
        entry_order_id: id,
        stop_loss: None,
        stop_loss_order_id: None,
        stop_loss_client_id: None,
        status: PositionStatus::Unprotected,
        realized_pnl: Decimal::ZERO,
        opened_at_us: now_us(),
        updated_at_us: now_us(),
        closed_at_us: None,
    }
}

fn reason(event: &Event) -> String {
    event.fields["reason"].as_str().expect("reason").to_string()
}

// ---- placement -------------------------------------------------------------------------------

#[test]
fn the_order_filled_line_is_on_stdout_before_the_stop_loss_request_leaves() {
    let mut h = Harness::watching_stdout();
    let position = h.buy("BTCUSDT", "0.01");
    let at_stop = h.script().stdout_at_stops.clone();
    assert_eq!(at_stop.len(), 1, "one stop-loss request");
    let lines: Vec<serde_json::Value> =
        at_stop[0].lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap_or("?")).collect();
    assert_eq!(kinds, ["order_submitted", "order_filled"]);
    assert_eq!(lines[1]["order_id"], position);
    // The stop's own event follows, through the writer.
    assert_eq!(h.event("stop_loss_placed").fields["position_id"], position);
}

#[test]
fn a_placement_that_was_never_sent_is_sent_again_and_fills_once() {
    let mut h = Harness::new();
    let not_sent = || Step::Fail(ExchangeError::NotSent { reason: "connection refused".into() });
    h.script().place.extend([not_sent(), not_sent()]);
    let order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = order.client_order_id.clone();
    h.submit(order);
    h.collect();
    assert_eq!(h.order(&cid).status, OrderStatus::Filled);
    let ours = h.sim.lock().all_orders("ETHUSDT").unwrap().into_iter().filter(|r| r.client_order_id == cid).count();
    assert_eq!(ours, 1);
}

#[test]
fn an_unknown_placement_the_exchange_never_saw_fails_as_not_placed() {
    let mut h = Harness::new();
    h.script().place.push_back(Step::Fail(unknown("timeout after send")));
    let order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = order.client_order_id.clone();
    h.submit(order);
    let failed = h.event("order_failed");
    assert!(reason(&failed).contains("(-2013): not placed: the exchange has no such order"), "{failed:?}");
    assert_eq!(h.order(&cid).status, OrderStatus::Failed);
    assert!(h.io.positions.is_empty());
}

#[test]
fn a_placement_whose_queries_keep_failing_stays_pending_and_names_the_last_query_error() {
    let mut h = Harness::new();
    h.script().place.push_back(Step::Fail(unknown("timeout after send")));
    let stale = || Step::Fail(rejected(-1021, "Timestamp for this request is outside of the recvWindow."));
    h.script().query.extend((0..RESOLVE_SCHEDULE.len()).map(|_| stale()));
    let order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = order.client_order_id.clone();
    h.submit(order);
    let pending = h.event("order_unknown");
    let why = reason(&pending);
    assert!(why.contains("-1021") && why.contains("outside of the recvWindow"), "{pending:?}");
    assert_eq!(h.order(&cid).status, OrderStatus::Pending);
}

#[test]
fn five_failures_in_a_row_open_the_circuit_breaker_and_the_next_answer_closes_it() {
    let mut h = Harness::new();
    let not_sent = || Step::Fail(ExchangeError::NotSent { reason: "connection refused".into() });
    // The first entry fails after three attempts; the second's second attempt is the fifth
    // failure in a row; its third attempt is answered.
    h.script().place.extend((0..5).map(|_| not_sent()));
    let first = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.submit(first);
    assert!(h.events("circuit_breaker").is_empty());
    let second = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.submit(second);
    let states: Vec<String> =
        h.events("circuit_breaker").iter().map(|e| e.fields["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(states, ["OPEN", "CLOSED"]);
    let opened = &h.events("circuit_breaker")[0];
    assert_eq!(opened.fields["failures"], 5);
    assert!(opened.text.ends_with("new entries refused, probing again in 1 s"), "{}", opened.text);
}

#[test]
fn an_entry_beyond_max_num_algo_orders_is_refused_before_it_is_sent() {
    let mut h = Harness::new();
    for _ in 0..5 {
        h.io.slots.stop_opened("ETHUSDT");
    }
    let order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = order.client_order_id.clone();
    h.submit(order);
    let refused = h.event("order_rejected");
    assert_eq!(refused.fields["rule"], "unprotectable");
    assert!(refused.fields["message"].as_str().unwrap().contains("MAX_NUM_ALGO_ORDERS (5); not sent"), "{refused:?}");
    assert_eq!(h.order(&cid).status, OrderStatus::Failed);
    assert!(h.sim.lock().query("ETHUSDT", crate::exchange::sim::OrderRef::ClientOrderId(&cid)).is_err());
}

#[test]
fn a_report_the_lifecycle_refuses_is_not_applied() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.apply_event(LifecycleEvent::Rejected, None, now_us()).unwrap();
    let report = OrderReport {
        symbol: "ETHUSDT".into(),
        exchange_order_id: 7,
        client_order_id: order.client_order_id.clone(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Market,
        status: ExchangeStatus::Filled,
        orig_qty: d("0.01"),
        executed_qty: d("0.01"),
        cum_quote_qty: d("30"),
        price: Decimal::ZERO,
        stop_price: Decimal::ZERO,
        fills: Vec::new(),
        time_ms: 0,
        expiry_reason: None,
    };
    h.io.apply(&mut order, &report);
    assert_eq!(order.status, OrderStatus::Failed);
    assert_eq!(order.filled_quantity, Decimal::ZERO);
}

#[test]
fn an_entry_reaching_exchange_io_after_a_halt_is_refused_before_it_is_sent() {
    let mut h = Harness::new();
    // Intake checked the line before the halt (a confirmation or a TWAP slice waited meanwhile).
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = entry.client_order_id.clone();
    h.io.account.set_halted(true);
    h.submit(entry);
    assert_eq!(h.event("order_rejected").fields["rule"], "halted");
    assert_eq!(h.order(&cid).status, OrderStatus::Failed);
    assert!(h.other_client().query_order("ETHUSDT", &cid).is_err(), "nothing reached the exchange");
}

#[test]
fn refusing_an_order_that_already_ended_keeps_its_status() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.apply_event(LifecycleEvent::Cancelled, None, now_us()).unwrap();
    h.io.refuse(&mut order, "halted", "halted by the kill switch");
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(h.order(&order.client_order_id).status, OrderStatus::Cancelled);
}

#[test]
fn failing_an_order_that_already_ended_keeps_its_status() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.apply_event(LifecycleEvent::Cancelled, None, now_us()).unwrap();
    h.io.fail(&mut order, "not placed");
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(h.order(&order.client_order_id).status, OrderStatus::Cancelled);
}

// ---- unknown outcomes re-checked during operation -------------------------------------------

/// Puts `order` among the unknown outcomes, due for a re-check now.
fn leave_unknown(h: &mut Harness, order: Order, checks: u32) {
    h.io.unresolved.push(Unresolved {
        order,
        timing: Timing::new(Instant::now()),
        next_check: Instant::now(),
        checks,
        absent: 0,
    });
}

#[test]
fn a_sell_resolved_by_a_recheck_is_recorded_filled_and_announced() {
    let mut h = Harness::new();
    let sell = h.new_order(OrderRole::Exit, "ETHUSDT", Side::Sell, "0.01", None);
    let cid = sell.client_order_id.clone();
    h.other_client().place_order(&NewOrder::market_for(&sell)).expect("the sell reached the exchange");
    leave_unknown(&mut h, sell, 0);
    h.io.recheck_unresolved();
    assert_eq!(h.event("order_resolved").fields["exchange_status"], "FILLED");
    // Its fill was not announced when it was placed: recording it now does.
    assert_eq!(h.event("order_filled").client_order_id.as_deref(), Some(cid.as_str()));
    assert_eq!(h.order(&cid).status, OrderStatus::Filled);
}

#[test]
fn an_order_absent_at_three_rechecks_is_recorded_failed() {
    let mut h = Harness::new();
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let cid = entry.client_order_id.clone();
    h.io.slots.entry_sent("ETHUSDT");
    leave_unknown(&mut h, entry, 0);
    for _ in 0..3 {
        assert!(h.events("order_failed").is_empty());
        h.io.unresolved[0].next_check = Instant::now();
        h.io.recheck_unresolved();
    }
    assert!(h.io.unresolved.is_empty());
    assert!(reason(&h.event("order_failed")).starts_with("not placed: the exchange has no such order"));
    assert_eq!(h.order(&cid).status, OrderStatus::Failed);
    assert_eq!(h.io.slots.get("ETHUSDT").entries_in_flight, 0, "its stop slot is free again");
}

#[test]
fn a_recheck_that_fails_keeps_the_order_pending_for_the_next() {
    let mut h = Harness::new();
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.script().query.push_back(Step::Fail(unknown("503")));
    leave_unknown(&mut h, entry, 0);
    h.io.recheck_unresolved();
    assert_eq!(h.io.unresolved.len(), 1);
    assert_eq!(h.io.unresolved[0].checks, 1);
    assert!(h.io.unresolved[0].next_check > Instant::now());
    assert!(h.events("order_failed").is_empty() && h.events("order_resolved").is_empty());
}

#[test]
fn after_the_last_recheck_an_unknown_order_is_left_to_the_next_start() {
    let mut h = Harness::new();
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.script().query.push_back(Step::Fail(unknown("503")));
    leave_unknown(&mut h, entry, RECHECKS - 1);
    h.io.recheck_unresolved();
    assert!(h.io.unresolved.is_empty());
    assert_eq!(h.io.next_recheck(), None);
    assert!(h.events("order_failed").is_empty() && h.events("order_resolved").is_empty());
}

// ---- positions and stop-losses --------------------------------------------------------------

#[test]
fn a_stop_loss_whose_outcome_stays_unknown_leaves_the_position_unprotected_and_says_why() {
    let mut h = Harness::new();
    h.io.stop_loss_attempts = 1;
    h.script().place.push_back(Step::Fail(unknown("timeout after send")));
    h.script().query.extend((0..RESOLVE_SCHEDULE.len()).map(|_| Step::Fail(unknown("503"))));
    let mut p = position(1, "ETHUSDT", "0.0099", "3000");
    h.io.protect(&mut p);
    assert_eq!(p.status, PositionStatus::Unprotected);
    let failed = h.event("stop_loss_failed");
    let why = reason(&failed);
    assert!(why.starts_with("outcome unknown: ") && why.ends_with("503"), "{failed:?}");
    assert_eq!(why.matches("outcome unknown").count(), 1, "{failed:?}");
}

#[test]
fn a_refused_stop_loss_is_retried_on_a_doubling_schedule_without_sleeping() {
    let mut h = Harness::new();
    h.io.stop_loss_attempts = 3;
    let refused = || Step::Fail(rejected(-2010, "Account has insufficient balance for requested action."));
    h.script().place.extend([refused(), refused()]);
    let mut p = position(1, "ETHUSDT", "0.0099", "3000");
    let started = Instant::now();
    h.io.protect(&mut p);
    assert!(started.elapsed() < Duration::from_millis(100), "a refusal is not retried in a row");
    assert_eq!(h.script().place.len(), 1, "one attempt, not three");
    assert_eq!(p.status, PositionStatus::Unprotected);
    assert_eq!(h.event("stop_loss_failed").fields["retry_in_ms"], 1000);
    h.io.positions.insert(1, p);
    // Due: the next attempt is refused too, and waits twice as long.
    h.io.reprotect_now();
    h.io.retry_protection();
    assert_eq!(h.io.reprotect[&1].1, Duration::from_secs(2));
    // Then it goes through.
    h.io.reprotect_now();
    h.io.retry_protection();
    assert_eq!(h.io.positions[&1].status, PositionStatus::Open);
    assert!(h.io.reprotect.is_empty());
    assert_eq!(h.events("stop_loss_placed").len(), 1);
}

#[test]
fn the_protection_wait_stops_growing_at_a_minute() {
    let mut h = Harness::new();
    let waits: Vec<Duration> = (0..8).map(|_| h.io.schedule_reprotect(7)).collect();
    assert_eq!(waits[0], Duration::from_secs(1));
    assert_eq!(waits[6], Duration::from_secs(60));
    assert_eq!(waits[7], Duration::from_secs(60));
    assert!(h.io.next_reprotect().is_some());
}

#[test]
fn a_scheduled_attempt_for_a_position_that_is_gone_or_protected_is_dropped() {
    let mut h = Harness::new();
    h.io.schedule_reprotect(9);
    h.io.reprotect_now();
    h.io.retry_protection();
    assert!(h.io.reprotect.is_empty(), "position 9 is not open");
    let id = h.buy("ETHUSDT", "0.01");
    h.io.schedule_reprotect(id);
    h.io.reprotect_now();
    h.io.retry_protection();
    assert!(h.io.reprotect.is_empty(), "position {id} has its stop");
    assert_eq!(h.events("stop_loss_placed").len(), 1, "no second stop");
}

#[test]
fn resume_protects_every_position_the_halt_left_unprotected() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    h.on_intake(ToExchange::CancelAll);
    assert_eq!(h.io.positions[&id].status, PositionStatus::Unprotected);
    h.on_intake(ToExchange::Reprotect);
    assert_eq!(h.io.positions[&id].status, PositionStatus::Open);
    assert_eq!(h.events("stop_loss_placed").len(), 2);
}

#[test]
fn positions_left_unprotected_by_a_cancel_all_still_take_their_stop_slots() {
    let mut h = Harness::new();
    for _ in 0..5 {
        h.buy("ETHUSDT", "0.01");
    }
    h.on_intake(ToExchange::CancelAll);
    let order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.submit(order);
    assert_eq!(h.event("order_rejected").fields["rule"], "unprotectable");
}

#[test]
fn a_position_too_small_to_protect_is_left_as_dust() {
    let mut h = Harness::new();
    let mut p = position(1, "ETHUSDT", "0.0001", "3000");
    h.io.protect(&mut p);
    assert_eq!(p.status, PositionStatus::Dust);
    assert_eq!(h.event("position_dust").fields["quantity"], "0.0001");
    assert!(h.sim.lock().open_orders(None).unwrap().is_empty(), "no stop placed");
}

#[test]
fn a_position_on_a_symbol_without_rules_is_not_protected() {
    let mut h = Harness::new();
    let mut p = position(1, "XYZUSDT", "1", "10");
    h.io.protect(&mut p);
    assert_eq!(p.status, PositionStatus::Unprotected);
    assert_eq!(p.stop_loss_client_id, None);
    h.collect();
    assert!(h.events.is_empty() && h.orders.is_empty());
}

#[test]
fn a_failed_emergency_exit_leaves_the_position_unprotected_and_says_so() {
    let mut h = Harness::new();
    h.script().place.extend([
        Step::Fail(rejected(-2010, "Order would trigger immediately.")),
        Step::Fail(rejected(-2010, "Account has insufficient balance for requested action.")),
    ]);
    let mut p = position(1, "ETHUSDT", "0.0099", "3000");
    h.io.protect(&mut p);
    assert_eq!(p.status, PositionStatus::Unprotected);
    let exit = h.event("emergency_exit");
    let failed = h.event("stop_loss_failed");
    assert!(reason(&failed).contains("insufficient balance"), "{failed:?}");
    let exit_order = h.order(exit.client_order_id.as_deref().unwrap());
    assert_eq!((exit_order.role, exit_order.status), (OrderRole::EmergencyExit, OrderStatus::Failed));
}

#[test]
fn an_entry_on_a_symbol_without_rules_opens_no_position() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "XYZUSDT", Side::Buy, "1", None);
    order.filled_quantity = d("1");
    order.avg_price = Some(d("10"));
    h.io.open_position(order, true);
    assert!(h.io.positions.is_empty());
    h.collect();
    assert!(h.positions.is_empty());
}

#[test]
fn entry_fees_paid_in_the_quote_asset_are_booked_and_leave_the_quantity_whole() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.filled_quantity = d("0.01");
    order.avg_price = Some(d("3000"));
    order.add_fills(&[Fill::new(d("3000"), d("0.01"), d("0.03"), "USDT", 1)], 0);
    let id = order.order_id;
    h.io.open_position(order, false);
    let p = h.position(id);
    assert_eq!((p.quantity, p.entry_fees), (d("0.01"), d("0.03")));
}

#[test]
fn an_execution_of_a_stop_loss_changes_no_position() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let mut stop = h.new_order(OrderRole::StopLoss, "ETHUSDT", Side::Sell, "0.0099", Some(id));
    stop.filled_quantity = d("0.0099");
    let execution =
        Execution { order: stop, timing: Timing::new(Instant::now()), verification_error: None, announced: false };
    let before = h.io.positions.clone();
    h.io.executed(execution);
    assert_eq!(h.io.positions, before);
}

#[test]
fn a_sells_released_stop_is_announced_before_the_sell_is() {
    let mut h = Harness::new();
    h.buy("ETHUSDT", "0.01");
    h.sell("ETHUSDT", "0.0099");
    h.collect();
    let kinds = h.kinds();
    let cancelled = kinds.iter().position(|k| *k == "order_cancelled").expect("the stop's order_cancelled");
    let submitted = kinds.iter().rposition(|k| *k == "order_submitted").expect("the sell's order_submitted");
    assert!(cancelled < submitted, "{kinds:?}");
}

#[test]
fn a_sell_releases_its_stop_in_its_own_request() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    let sell = h.sell("ETHUSDT", "0.0099");
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
    assert_eq!(h.order(&stop).reason.as_deref(), Some(RELEASED_FOR_SELL));
    let sold = h.other_client().query_order("ETHUSDT", &sell.client_order_id).unwrap();
    assert_eq!(sold.status, ExchangeStatus::Filled);
    assert!(h.io.positions.is_empty(), "the sell closed the position");
}

#[test]
fn a_sell_closing_two_positions_releases_both_stops() {
    let mut h = Harness::new();
    let first = h.buy("ETHUSDT", "0.01");
    let second = h.buy("ETHUSDT", "0.01");
    let stops = [h.stop_of(first), h.stop_of(second)];
    h.sell("ETHUSDT", "0.0198");
    for stop in &stops {
        assert_eq!(h.order(stop).status, OrderStatus::Cancelled, "{stop}");
    }
    assert!(h.io.positions.is_empty(), "{:?}", h.kinds());
}

#[test]
fn a_sell_refused_after_its_stop_was_released_protects_the_position_again() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    // More than the account holds (10.01 ETH): the cancel goes through, the sell is refused.
    h.sell("ETHUSDT", "20");
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
    assert_eq!(h.events("order_failed").len(), 1, "{:?}", h.kinds());
    let new_stop = h.stop_of(position);
    assert_ne!(new_stop, stop, "a new stop protects the position");
    assert_eq!(h.other_client().query_order("ETHUSDT", &new_stop).unwrap().status, ExchangeStatus::New);
}

#[test]
fn a_sell_refused_by_a_filter_keeps_the_stop_it_would_have_released() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    h.script().cancel_replace.push_back(Step::Fail(rejected(-1013, "Filter failure: LOT_SIZE")));
    h.sell("ETHUSDT", "0.0099");
    assert_eq!(h.events("order_failed").len(), 1, "{:?}", h.kinds());
    assert_eq!(h.stop_of(position), stop);
    assert_eq!(h.other_client().query_order("ETHUSDT", &stop).unwrap().status, ExchangeStatus::New);
    assert!(h.events("order_cancelled").is_empty(), "{:?}", h.kinds());
}

#[test]
fn a_sell_whose_combined_request_was_never_sent_cancels_then_sells() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    h.script().cancel_replace.push_back(Step::Fail(ExchangeError::NotSent { reason: "connection refused".into() }));
    let sell = h.sell("ETHUSDT", "0.0099");
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
    let sold = h.other_client().query_order("ETHUSDT", &sell.client_order_id).unwrap();
    assert_eq!(sold.status, ExchangeStatus::Filled);
    assert!(h.io.positions.is_empty());
}

#[test]
fn a_sell_whose_combined_answer_was_lost_after_it_executed_is_found_by_query() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    let sell = h.new_order(OrderRole::Exit, "ETHUSDT", Side::Sell, "0.0099", None);
    h.other_client().cancel_replace(&stop, &NewOrder::market_for(&sell)).expect("executed on the exchange");
    h.script().cancel_replace.push_back(Step::Fail(unknown("timeout after send")));
    h.submit(sell);
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
    assert!(h.io.positions.is_empty(), "the sell found by query closed the position: {:?}", h.kinds());
    assert!(h.events("order_unknown").is_empty());
}

#[test]
fn a_sell_whose_combined_request_is_lost_unseen_fails_and_keeps_the_stop() {
    let mut h = Harness::new();
    let position = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(position);
    h.script().cancel_replace.push_back(Step::Fail(unknown("timeout after send")));
    h.sell("ETHUSDT", "0.0099");
    assert_eq!(h.events("order_failed").len(), 1, "{:?}", h.kinds());
    assert_eq!(h.stop_of(position), stop, "the stop was never cancelled");
}

#[test]
fn a_sell_after_its_stop_already_filled_closes_the_position_once() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    // The market falls through the stop before live tracking has seen it.
    h.set_price("ETHUSDT", "2000.00", "2000.01");
    let sell = h.sell("ETHUSDT", "0.0099");
    assert_eq!(h.order(&stop).status, OrderStatus::Filled, "the release found the stop filled");
    let closed = h.event("position_closed");
    assert_eq!(closed.client_order_id.as_deref(), Some(stop.as_str()), "closed by the stop, not by the sell");
    let sold = h.other_client().query_order("ETHUSDT", &sell.client_order_id).unwrap();
    assert_eq!(sold.status, ExchangeStatus::Filled, "the sell went ahead");
    assert!(h.io.positions.is_empty());
    assert_eq!(h.events("stop_loss_placed").len(), 1, "nothing re-protected");
}

#[test]
fn a_third_losing_exit_in_a_row_starts_the_tilt_cooldown() {
    let mut h = Harness::new();
    for n in 1..=3 {
        let id = h.buy("ETHUSDT", "0.01");
        h.set_price("ETHUSDT", "2950.00", "2950.01");
        h.sell("ETHUSDT", "0.0099");
        assert!(!h.io.positions.contains_key(&id));
        h.set_price("ETHUSDT", "2999.99", "3000.00");
        assert_eq!(h.events("tilt_changed").len(), usize::from(n == 3), "after {n} losing exits");
    }
}

// ---- cancel-all -------------------------------------------------------------------------------

#[test]
fn cancel_all_cancels_on_the_symbols_it_knows_when_open_orders_cannot_be_listed() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    h.script().open_orders.push_back(Step::Fail(rejected(-2015, "Invalid API-key, IP, or permissions for action.")));
    h.io.cancel_all();
    let error = h.event("error");
    assert!(error.text.contains("could not list open orders"), "{error:?}");
    assert_eq!(h.event("cancel_all").fields["cancelled"], 1);
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
}

#[test]
fn cancel_all_also_cancels_the_orders_of_other_clients() {
    let mut h = Harness::new();
    h.buy("ETHUSDT", "0.01");
    let theirs = NewOrder {
        symbol: "ETHUSDT".into(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Limit,
        quantity: d("0.01"),
        price: Some(d("2000.00")),
        stop_price: None,
        client_order_id: "someone-else-1".into(),
    };
    h.other_client().place_order(&theirs).expect("another client's limit order");
    h.io.cancel_all();
    assert_eq!(h.event("cancel_all").fields["cancelled"], 2);
    assert!(h.sim.lock().open_orders(None).unwrap().is_empty());
    assert_eq!(h.events("order_cancelled").len(), 1, "only ours is reported as an order of ours");
}

// ---- the run loop -----------------------------------------------------------------------------

#[test]
fn a_command_queued_to_the_stages_thread_runs_and_intakes_hang_up_ends_it_once_protected() {
    let h = Harness::new();
    let order = h.new_order(OrderRole::Entry, "BTCUSDT", Side::Buy, "0.01", None);
    let (to_io, from_intake) = crossbeam_channel::bounded(1);
    to_io.send(ToExchange::Submit(Box::new(Submission { order, timing: Timing::new(Instant::now()) }))).unwrap();
    drop(to_io);
    h.io.run(from_intake);
    let kinds: Vec<&str> = h
        .from_io
        .try_iter()
        .filter_map(|m| match m {
            ToPersist::Event(e) => Some(e.kind.as_str()),
            _ => None,
        })
        .collect();
    assert!(kinds.contains(&"order_filled") && kinds.contains(&"stop_loss_placed"), "{kinds:?}");
}

#[test]
fn a_stop_placed_on_intakes_thread_wakes_the_stages_thread_to_watch_it() {
    let mut h = Harness::new();
    let buy = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    let shared = inline::Shared::new(std::mem::replace(&mut h.io, Harness::new().io));
    let (to_io, from_intake) = crossbeam_channel::bounded::<ToExchange>(1);
    // The stage's thread plans its first wake with nothing to watch: a balance sync, far off.
    let thread = std::thread::spawn({
        let shared = Arc::clone(&shared);
        move || inline::run(shared, from_intake)
    });
    std::thread::sleep(Duration::from_millis(50));
    shared.run(ToExchange::Submit(Box::new(Submission { order: buy, timing: Timing::new(Instant::now()) })));
    h.set_price("ETHUSDT", "2000.00", "2000.01");
    // The watch (every 250 ms by default) sees the stop filled; without the wake it would sleep
    // until the balance sync a minute away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.events("stop_loss_triggered").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(to_io);
    thread.join().unwrap();
    assert_eq!(h.events("stop_loss_triggered").len(), 1, "{:?}", h.kinds());
}

#[test]
fn intake_running_a_buy_leaves_its_position_protected_before_the_next_command() {
    let h = Harness::new();
    let buy = h.new_order(OrderRole::Entry, "BTCUSDT", Side::Buy, "0.01", None);
    let position = buy.order_id;
    let mut h = h;
    let shared = inline::Shared::new(std::mem::replace(&mut h.io, Harness::new().io));
    shared.run(ToExchange::Submit(Box::new(Submission { order: buy, timing: Timing::new(Instant::now()) })));
    h.collect();
    // On intake's thread, with nothing handed to another thread: the line, then the stop.
    let kinds = h.kinds();
    let filled = kinds.iter().position(|k| *k == "order_filled").expect("order_filled");
    let stop = kinds.iter().position(|k| *k == "stop_loss_placed").expect("stop_loss_placed");
    assert!(filled < stop, "{kinds:?}");
    assert_eq!(h.event("stop_loss_placed").fields["position_id"], position);
}

#[test]
fn a_failed_balance_sync_keeps_the_sync_due() {
    let mut h = Harness::new();
    h.io.balances_dirty = true;
    h.script().account.push_back(Step::Fail(ExchangeError::NotSent { reason: "connection refused".into() }));
    h.io.sync_balances();
    assert!(h.io.balances_dirty);
    assert!(!h.from_io.try_iter().any(|m| matches!(m, ToPersist::Balances { .. })));
}

// ---- live tracking ----------------------------------------------------------------------------

#[test]
fn a_failed_poll_changes_nothing_and_the_next_poll_sees_the_cancel() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    h.other_client().cancel_order("ETHUSDT", &stop).expect("another client cancels the stop");
    h.script().open_orders.push_back(Step::Fail(unknown("503")));
    h.io.watch();
    assert!(h.events("order_cancelled").is_empty());
    h.io.watch();
    assert_eq!(reason(&h.event("order_cancelled")), "cancelled outside Genesis");
    assert_ne!(h.stop_of(id), stop, "re-protected");
}

#[test]
fn a_stop_that_left_the_open_orders_stays_watched_when_its_query_fails() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    h.script().open_orders.push_back(Step::Answer(Vec::new()));
    h.script().query.push_back(Step::Fail(unknown("503")));
    h.io.watch();
    assert!(h.io.resting.contains_key(&stop));
    assert!(h.events("order_cancelled").is_empty());
}

#[test]
fn a_stop_partly_filled_is_seen_by_the_poll_and_reduces_its_position() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    let mut report = h.other_client().query_order("ETHUSDT", &stop).unwrap();
    report.status = ExchangeStatus::PartiallyFilled;
    report.executed_qty = d("0.0040");
    report.cum_quote_qty = d("11.76");
    h.script().open_orders.push_back(Step::Answer(vec![report]));
    h.io.watch();
    let triggered = h.event("stop_loss_triggered");
    assert_eq!(triggered.fields["quantity"], "0.004");
    assert_eq!(h.io.positions[&id].quantity, d("0.0059"));
    assert_eq!(h.io.resting[&stop].status, OrderStatus::Partial);
    assert!(h.events("position_closed").is_empty());
}

/// A stop of ours resting on the exchange for a position that is not open here.
#[test]
fn a_stop_expired_in_match_is_recorded_as_such_and_its_position_protected_again() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    let mut report = h.other_client().cancel_order("ETHUSDT", &stop).unwrap();
    report.status = ExchangeStatus::ExpiredInMatch;
    h.io.on_resting_report(report, Seen::Stream, "cancelled outside Genesis", OnCancel::Reprotect);
    assert_eq!(h.order(&stop).reason.as_deref(), Some("expired in match by the exchange's self-trade prevention"));
    assert_eq!(h.events("stop_loss_placed").len(), 2, "protected again");
    assert_eq!(h.io.positions[&id].status, PositionStatus::Open);
}

#[test]
fn a_stop_the_exchange_expired_names_its_expiry_reason() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    let mut report = h.other_client().cancel_order("ETHUSDT", &stop).unwrap();
    report.status = ExchangeStatus::Expired;
    report.expiry_reason = Some("EXCHANGE_CANCELED".into());
    h.io.on_resting_report(report, Seen::Stream, "cancelled outside Genesis", OnCancel::Reprotect);
    assert_eq!(h.order(&stop).reason.as_deref(), Some("expired by the exchange: EXCHANGE_CANCELED"));
    let cancelled = h.events("order_cancelled");
    assert_eq!(cancelled.last().unwrap().fields["expiry_reason"], "EXCHANGE_CANCELED");
    assert_eq!(h.events("stop_loss_placed").len(), 2, "protected again");
}

fn orphan_stop(h: &mut Harness) -> String {
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    h.io.positions.clear();
    stop
}

#[test]
fn a_stop_filled_for_a_position_that_is_not_open_closes_nothing() {
    let mut h = Harness::new();
    let stop = orphan_stop(&mut h);
    h.set_price("ETHUSDT", "2000.00", "2000.01");
    h.io.watch();
    assert_eq!(h.order(&stop).status, OrderStatus::Filled);
    assert!(h.events("stop_loss_triggered").is_empty() && h.events("position_closed").is_empty());
}

#[test]
fn a_stop_cancelled_for_a_position_that_is_not_open_is_not_replaced() {
    let mut h = Harness::new();
    let stop = orphan_stop(&mut h);
    h.other_client().cancel_order("ETHUSDT", &stop).unwrap();
    h.io.watch();
    assert_eq!(h.order(&stop).status, OrderStatus::Cancelled);
    assert_eq!(h.events("stop_loss_placed").len(), 1, "only the first stop");
}

// ---- start-up reconciliation ------------------------------------------------------------------

#[test]
fn an_unsettled_order_the_exchange_never_saw_is_recorded_cancelled() {
    let mut h = Harness::new();
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.io.persist_order(&entry);
    let store = h.database();
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!((summary.checked, summary.updated), (1, 1));
    let order = again.order(&entry.client_order_id);
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.reason.as_deref(), Some("not on the exchange at start-up (never sent)"));
}

#[test]
fn a_query_that_fails_at_start_up_is_retried_until_it_answers() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    let store = h.database();
    let mut again = h.restart();
    again.script().query.push_back(Step::Fail(unknown("503")));
    let summary = again.reconcile(&store);
    assert_eq!(summary.unresolved, 0);
    assert_eq!(again.events("reconciling").len(), 1);
    assert!(again.io.resting.contains_key(&stop));
    assert_eq!(again.io.positions[&id].stop_loss_client_id.as_deref(), Some(stop.as_str()), "kept, not replaced");
    assert_eq!(summary.stop_losses_placed, 0);
}

/// The simulator's three symbols and `extra` more, as a large exchange lists them.
fn many_symbols(h: &Harness, extra: usize) -> Arc<Rules> {
    let mut rules = (*h.io.rules).clone();
    let model = rules["SOLUSDT"].clone();
    for n in 0..extra {
        let symbol = format!("X{n}USDT");
        rules.insert(symbol.clone(), SymbolRules { symbol, base_asset: format!("X{n}"), ..model.clone() });
    }
    Arc::new(rules)
}

#[test]
fn orders_of_ours_are_looked_for_on_every_symbol_whose_coins_the_account_holds() {
    let h = Harness::new();
    // A stop of ours resting on SOLUSDT; the database never heard of SOLUSDT.
    let cid = h.ids.client_order_id('S', 40, Some(39));
    let stop = NewOrder {
        symbol: "SOLUSDT".into(),
        side: Side::Sell,
        order_type: ExchangeOrderType::StopLoss,
        quantity: d("0.1"),
        price: None,
        stop_price: Some(d("140.00")),
        client_order_id: cid.clone(),
    };
    h.other_client().place_order(&stop).unwrap();
    let mut again = h.restart_with(many_symbols(&h, 20));
    let summary = again.reconcile(&Store::open_in_memory().unwrap());
    assert_eq!(summary.recovered, 1);
    assert!(again.io.resting.contains_key(&cid));
}

#[test]
fn a_failed_history_read_is_retried_not_taken_for_nothing_there() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let mut again = h.restart();
    again.script().all_orders.push_back(Step::Fail(unknown("503")));
    // The database lost everything: only the exchange's history can bring it back.
    let summary = again.reconcile(&Store::open_in_memory().unwrap());
    assert_eq!((summary.unresolved, summary.recovered), (0, 2), "the entry and its stop");
    assert_eq!(again.events("reconciling").len(), 1);
    assert!(again.io.positions.contains_key(&id));
}

#[test]
fn after_a_clean_stop_no_history_is_read() {
    let mut h = Harness::new();
    h.buy("ETHUSDT", "0.01");
    let mut again = h.restart();
    again.script().all_orders.push_back(Step::Fail(unknown("must not be asked")));
    let summary = again.reconcile_reading(&Store::open_in_memory().unwrap(), HistoryScan::Nothing);
    assert_eq!(summary.recovered, 0);
    assert_eq!(again.script().all_orders.len(), 1, "allOrders was not read");
}

#[test]
fn after_a_crash_only_the_history_since_the_last_run_started_is_read() {
    let mut h = Harness::new();
    h.buy("ETHUSDT", "0.01");
    let later = now_us() + 3_600_000_000;
    let mut again = h.restart();
    let summary = again.reconcile_reading(&Store::open_in_memory().unwrap(), HistoryScan::Since(later));
    assert_eq!(summary.recovered, 0, "the orders are older than the run that crashed");
    let mut again = h.restart();
    let summary = again.reconcile_reading(&Store::open_in_memory().unwrap(), HistoryScan::Since(now_us() - 60_000_000));
    assert_eq!(summary.recovered, 2);
}

#[test]
fn start_up_counts_the_request_weight_it_spends() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let store = h.database();
    let mut again = h.restart();
    let summary = again.reconcile_reading(&store, HistoryScan::Since(now_us() - 60_000_000));
    // account 20; the stop's query 4; allOrders on ETHUSDT 20 (traded), BTCUSDT and SOLUSDT
    // 20 each (the simulator's account holds both coins).
    assert_eq!(summary.weight_used, 20 + 4 + 3 * 20);
    assert_eq!(again.event("reconciled").fields["weight_used"], summary.weight_used);
    assert!(again.io.positions.contains_key(&id));
}

#[test]
fn order_ids_continue_past_every_id_of_ours_the_exchange_holds() {
    let mut h = Harness::new();
    h.buy("ETHUSDT", "0.01");
    let store = h.database();
    // A start whose id counter was set back (a database restored from an older copy).
    let mut again = Harness::with(
        Arc::clone(&h.sim),
        Arc::clone(&h.io.rules),
        Arc::clone(&h.script),
        Arc::new(IdGen::new(PREFIX.into(), 0)),
    );
    again.reconcile_reading(&store, HistoryScan::Since(now_us() - 60_000_000));
    assert!(again.ids.next_order_id() > 2, "ids 1 and 2 (the entry and its stop) are never used again");
}

#[test]
fn a_recovered_order_whose_id_is_another_orders_gets_its_own_row_and_position() {
    let mut h = Harness::new();
    let first = h.buy("ETHUSDT", "0.01");
    let store = h.database();
    // An earlier start reused order id `first` for a second entry, then lost its record.
    let lost = h.ids.client_order_id('E', first, None);
    h.other_client()
        .place_order(&NewOrder::market_for(&Order::new(
            first,
            lost.clone(),
            "ETHUSDT".into(),
            Side::Buy,
            OrderRole::Entry,
            ExchangeOrderType::Market,
            d("0.02"),
            now_us(),
        )))
        .unwrap();
    let mut again = h.restart();
    let summary = again.reconcile_reading(&store, HistoryScan::Since(now_us() - 60_000_000));
    assert_eq!(summary.recovered, 1);
    let recovered = again.order(&lost);
    assert_ne!(recovered.order_id, first, "renumbered");
    assert_eq!(recovered.filled_quantity, d("0.02"));
    assert!(again.io.positions.contains_key(&recovered.order_id), "the recovered entry opens its own position");
    assert!(again.io.positions.contains_key(&first), "the recorded one keeps its own");
}

#[test]
fn a_position_the_account_no_longer_holds_is_closed_at_start_up() {
    let mut config = SimConfig::default();
    config.starting_balances.insert("ETH".into(), Decimal::ZERO);
    let mut h = Harness::on(Simulator::new(config));
    let p = position(5, "ETHUSDT", "0.5", "3000");
    h.io.persist_position(&p);
    let store = h.database();
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    let p = again.position(5);
    assert_eq!((p.status, p.quantity), (PositionStatus::Closed, Decimal::ZERO));
    assert!(p.closed_at_us.is_some());
    assert!(again.io.positions.is_empty());
    assert_eq!(summary.stop_losses_placed, 0);
}

/// Quotes for the simulator's symbols, plus a BNBUSDT bid of 600.
struct WithBnb(Arc<Mutex<Simulator>>);

impl Quotes for WithBnb {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
        if symbol == "BNBUSDT" {
            return Some(BookTicker {
                symbol: symbol.into(),
                bid: d("600"),
                bid_qty: d("1"),
                ask: d("600.1"),
                ask_qty: d("1"),
            });
        }
        self.0.lock().book_ticker(symbol).ok()
    }
}

#[test]
fn a_fee_paid_in_bnb_is_valued_at_that_moments_quote_and_never_added_to_another_asset() {
    let mut h = Harness::new();
    h.io.quotes = Arc::new(WithBnb(Arc::clone(&h.sim)));
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.02", None);
    order.filled_quantity = d("0.02");
    order.avg_price = Some(d("3000"));
    order.add_fills(
        &[
            Fill::new(d("3000"), d("0.01"), d("0.00001"), "ETH", 1),
            Fill::new(d("3000"), d("0.01"), d("0.0001"), "BNB", 2),
        ],
        0,
    );
    let id = order.order_id;
    assert_eq!((order.commission, order.commission_asset.as_deref()), (d("0.00001"), Some("ETH")), "BNB kept apart");
    h.io.open_position(order, false);
    let p = h.position(id);
    // 0.00001 ETH at 3000 and 0.0001 BNB at 600, both in USDT.
    assert_eq!(p.entry_fees, d("0.09"));
    assert_eq!(p.quantity, d("0.0199"), "only the ETH fee leaves the account's ETH");
}

#[test]
fn a_fee_in_an_asset_without_a_quote_is_left_unvalued() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.filled_quantity = d("0.01");
    order.avg_price = Some(d("3000"));
    order.add_fills(&[Fill::new(d("3000"), d("0.01"), d("0.0001"), "BNB", 1)], 0);
    h.io.value_fees(&mut order);
    assert_eq!(order.fills[0].commission_quote, None);
}

/// A quote cache that has nothing yet.
struct NoQuotes;

impl Quotes for NoQuotes {
    fn top_of_book(&self, _symbol: &str) -> Option<BookTicker> {
        None
    }
}

#[test]
fn a_fee_in_a_third_asset_without_a_cached_quote_is_valued_at_the_exchanges_bid() {
    let mut h = Harness::new();
    h.io.quotes = Arc::new(NoQuotes);
    let sol_bid = h.sim.lock().book_ticker("SOLUSDT").unwrap().bid;
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.add_fills(&[Fill::new(d("3000"), d("0.01"), d("0.002"), "SOL", 1)], 0);
    h.io.value_fees(&mut order);
    assert_eq!(order.fills[0].commission_quote, Some(d("0.002") * sol_bid));
}

#[test]
fn trades_that_cannot_be_read_count_at_the_highest_fee_rate() {
    let mut h = Harness::new();
    let mut order = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    order.filled_quantity = d("0.01");
    order.avg_price = Some(d("3000"));
    order.exchange_order_id = Some(77);
    h.script().trades.push_back(Step::Fail(unknown("503")));
    let id = order.order_id;
    h.io.open_position(order, false);
    let p = h.position(id);
    assert_eq!(p.quantity, d("0.0099"), "0.01 less 0.1 %, floored to the step");
    assert_eq!(p.entry_fees, d("0.03"));
}

#[test]
fn a_filled_entry_whose_position_row_was_lost_gets_its_position_and_keeps_its_stop() {
    let mut h = Harness::new();
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    let store = h.database();
    // The crash committed the entry but not its position, nor the stop.
    store.connection().execute("DELETE FROM positions", []).unwrap();
    store.connection().execute("DELETE FROM orders WHERE client_order_id = ?1", [&stop]).unwrap();
    let mut again = h.restart();
    let summary = again.reconcile_reading(&store, HistoryScan::Since(now_us() - 60_000_000));
    assert_eq!((summary.recovered, summary.stop_losses_placed), (1, 0));
    let position = &again.io.positions[&id];
    assert_eq!(position.status, PositionStatus::Open);
    assert_eq!(position.stop_loss_client_id.as_deref(), Some(stop.as_str()));
}

#[test]
fn a_dust_position_gets_no_stop_at_start_up() {
    let mut h = Harness::new();
    let mut p = position(5, "ETHUSDT", "0.0001", "3000");
    p.status = PositionStatus::Dust;
    h.io.persist_position(&p);
    let store = h.database();
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!(summary.stop_losses_placed, 0);
    assert_eq!(again.io.positions[&5].status, PositionStatus::Dust);
}

#[test]
fn a_stranded_stop_limit_whose_emergency_exit_is_refused_leaves_the_position_unprotected() {
    let mut h = Harness::new();
    let id = h.buy("BTCUSDT", "0.001");
    let stop = h.io.resting[&h.stop_of(id)].clone();
    assert_eq!(stop.exchange_type, ExchangeOrderType::StopLossLimit);
    let gap = (stop.limit_price.unwrap() * d("0.9")).round_dp(2);
    h.set_price("BTCUSDT", &gap.to_string(), &(gap + d("0.01")).to_string());
    h.script().place.push_back(Step::Fail(rejected(-2010, "Account has insufficient balance for requested action.")));
    h.io.exit_stranded_stops();
    assert!(h.io.resting.is_empty(), "the stranded stop is cancelled");
    assert_eq!(h.io.positions[&id].status, PositionStatus::Unprotected);
    assert!(h.event("emergency_exit").fields["reason"].as_str().unwrap().contains("below its limit"));
    assert!(h.io.reprotect.contains_key(&id), "tried again later");
}

#[test]
fn a_failed_balance_read_is_retried_before_positions_are_checked() {
    let mut h = Harness::new();
    let p = position(5, "ETHUSDT", "20", "3000");
    h.io.persist_position(&p);
    let store = h.database();
    let mut again = h.restart();
    again.script().account.push_back(Step::Fail(unknown("503")));
    again.reconcile(&store);
    assert_eq!(again.io.positions[&5].quantity, d("10"), "trimmed to the 10 ETH held");
    assert_eq!(again.events("reconciling").len(), 1);
}

#[test]
fn a_position_on_a_symbol_the_exchange_no_longer_lists_is_kept_as_recorded() {
    let mut h = Harness::new();
    let p = position(5, "XYZUSDT", "3", "10");
    h.io.persist_position(&p);
    let store = h.database();
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!(again.io.positions[&5].quantity, d("3"));
    assert_eq!(again.io.positions[&5].status, PositionStatus::Unprotected);
    assert_eq!(summary.stop_losses_placed, 0);
}

/// Places an order of ours straight on the exchange, as an engine that never recorded it did.
fn place_lost(h: &Harness, role: char, order_id: i64, side: Side, quantity: &str) -> String {
    let client_order_id = h.ids.client_order_id(role, order_id, None);
    let order = NewOrder {
        symbol: "ETHUSDT".into(),
        side,
        order_type: ExchangeOrderType::Market,
        quantity: d(quantity),
        price: None,
        stop_price: None,
        client_order_id: client_order_id.clone(),
    };
    h.other_client().place_order(&order).expect("placed");
    client_order_id
}

#[test]
fn a_buy_and_its_sell_the_database_lacks_leave_the_position_they_made_closed() {
    let h = Harness::new();
    place_lost(&h, 'E', 1, Side::Buy, "0.01");
    let sell = place_lost(&h, 'X', 2, Side::Sell, "0.01");
    let mut again = h.restart();
    let summary = again.reconcile(&Store::open_in_memory().unwrap());
    assert_eq!((summary.recovered, summary.stop_losses_placed), (2, 0));
    let closed = again.event("position_closed");
    assert_eq!(closed.client_order_id.as_deref(), Some(sell.as_str()));
    assert_eq!(again.position(1).status, PositionStatus::Closed);
    assert!(again.io.positions.is_empty());
}

#[test]
fn an_order_of_ours_with_an_unknown_role_is_recovered_as_a_record_only() {
    let h = Harness::new();
    let cid = place_lost(&h, 'R', 1, Side::Buy, "0.01");
    let mut again = h.restart();
    let summary = again.reconcile(&Store::open_in_memory().unwrap());
    assert_eq!((summary.recovered, summary.updated), (1, 1));
    let order = again.order(&cid);
    assert_eq!((order.role, order.status), (OrderRole::Recovered, OrderStatus::Filled));
    assert!(again.io.positions.is_empty());
}

#[test]
fn an_unsettled_entry_that_expired_with_nothing_filled_is_recorded_cancelled_and_opens_nothing() {
    let mut h = Harness::new();
    let entry = h.new_order(OrderRole::Entry, "ETHUSDT", Side::Buy, "0.01", None);
    h.io.persist_order(&entry);
    let store = h.database();
    let mut again = h.restart();
    again.script().query.push_back(Step::Answer(OrderReport {
        symbol: "ETHUSDT".into(),
        exchange_order_id: 77,
        client_order_id: entry.client_order_id.clone(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Market,
        status: ExchangeStatus::Expired,
        orig_qty: d("0.01"),
        executed_qty: Decimal::ZERO,
        cum_quote_qty: Decimal::ZERO,
        price: Decimal::ZERO,
        stop_price: Decimal::ZERO,
        fills: Vec::new(),
        time_ms: 0,
        expiry_reason: None,
    }));
    let summary = again.reconcile(&store);
    assert_eq!((summary.checked, summary.updated), (1, 1));
    let order = again.order(&entry.client_order_id);
    assert_eq!((order.status, order.exchange_order_id), (OrderStatus::Cancelled, Some(77)));
    assert!(again.io.positions.is_empty());
}

/// A position whose stop was placed, with a database that never recorded the stop (a kill
/// between its placement and its record): the entry and the unprotected position only.
fn stop_never_recorded(h: &mut Harness) -> (i64, String, Store) {
    let id = h.buy("ETHUSDT", "0.01");
    let stop = h.stop_of(id);
    h.collect();
    h.orders.retain(|o| o.client_order_id != stop);
    let first = h.positions.iter().position(|p| p.position_id == id).expect("position recorded");
    h.positions.truncate(first + 1);
    (id, stop, h.database())
}

#[test]
fn a_stop_the_database_lacks_that_filled_while_the_engine_was_down_closes_its_position_at_start_up() {
    let mut h = Harness::new();
    let (id, stop, store) = stop_never_recorded(&mut h);
    h.set_price("ETHUSDT", "2000.00", "2000.01");
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!(summary.recovered, 1);
    assert_eq!(again.order(&stop).status, OrderStatus::Filled);
    assert_eq!(again.event("position_closed").client_order_id.as_deref(), Some(stop.as_str()));
    assert_eq!(again.position(id).status, PositionStatus::Closed);
    assert!(again.io.positions.is_empty() && again.io.resting.is_empty());
}

#[test]
fn a_stop_the_database_lacks_that_was_cancelled_while_the_engine_was_down_is_replaced_at_start_up() {
    let mut h = Harness::new();
    let (id, stop, store) = stop_never_recorded(&mut h);
    h.other_client().cancel_order("ETHUSDT", &stop).unwrap();
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!((summary.recovered, summary.stop_losses_placed), (1, 1));
    assert_eq!(again.order(&stop).status, OrderStatus::Cancelled);
    let replacement = again.io.positions[&id].stop_loss_client_id.clone().unwrap();
    assert_ne!(replacement, stop);
    assert!(again.other_client().query_order("ETHUSDT", &replacement).unwrap().status.is_open());
}

/// A position whose sell (or emergency exit) filled on the exchange while the database still
/// holds it PENDING, its outcome unknown when the engine stopped; the stop was released first.
fn exit_left_pending(h: &mut Harness, role: OrderRole) -> (i64, String, Store) {
    let id = h.buy("ETHUSDT", "0.01");
    h.other_client().cancel_order("ETHUSDT", &h.stop_of(id)).unwrap();
    let exit = h.new_order(role, "ETHUSDT", Side::Sell, "0.0099", Some(id));
    h.io.persist_order(&exit);
    h.other_client().place_order(&NewOrder::market_for(&exit)).expect("the exit filled");
    (id, exit.client_order_id, h.database())
}

#[test]
fn a_sell_still_unknown_at_shutdown_and_found_filled_at_start_up_closes_its_position() {
    let mut h = Harness::new();
    let (id, sell, store) = exit_left_pending(&mut h, OrderRole::Exit);
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!(summary.stop_losses_placed, 0, "no stop for coins already sold");
    assert_eq!(again.order(&sell).status, OrderStatus::Filled);
    assert_eq!(again.event("position_closed").client_order_id.as_deref(), Some(sell.as_str()));
    assert_eq!(again.position(id).status, PositionStatus::Closed);
    assert!(again.io.positions.is_empty());
}

#[test]
fn an_emergency_exit_recorded_before_it_was_sent_and_found_filled_at_start_up_closes_its_position() {
    let mut h = Harness::new();
    let (id, exit, store) = exit_left_pending(&mut h, OrderRole::EmergencyExit);
    let mut again = h.restart();
    let summary = again.reconcile(&store);
    assert_eq!(summary.stop_losses_placed, 0);
    assert_eq!(again.event("position_closed").client_order_id.as_deref(), Some(exit.as_str()));
    assert_eq!(again.position(id).status, PositionStatus::Closed);
}
