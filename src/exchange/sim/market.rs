//! The simulated exchange: one account, three symbols, synthetic books, Binance's rules and
//! refusals. Pure state machine: no threads; I/O only for the optional journal.

use super::book::{crosses, Book, LEVELS};
use super::config::SimConfig;
use super::error::{SimError, SimStoreError};
use super::records::{SimOrder, Trade};
use super::store::{MutationIn, MutationOut, PriceRecord, SnapshotIn, SnapshotOut, Store};
use crate::domain::money::{is_multiple_of_step, round_down_to_step, round_up_to_step, Decimal};
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, NewOrder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

/// Closed orders remembered for queries (older ones are forgotten, oldest first).
/// Closed orders and trades a snapshot keeps (the journal keeps everything until then).
pub const SNAPSHOT_HISTORY: usize = 1_000;
pub const CLOSED_ORDERS_KEPT: usize = 5_000;
/// Trades remembered for `my_trades`.
pub const TRADES_KEPT: usize = 5_000;
/// 0.1 % of the received asset.
const COMMISSION_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);
/// Commissions carry at most 8 decimals, as on Binance.
const COMMISSION_DP: u32 = 8;
/// Largest random-walk step, in basis points of the mid.
const WALK_BPS: i64 = 2;
/// Plausible -2010 refusals for `reject_probability`.
const RANDOM_REFUSALS: [&str; 4] = [
    "Order would immediately match and take.",
    "Market is closed.",
    "This action is disabled on this account.",
    "Unsupported order combination",
];

/// What a cancel-replace did on the simulator, part by part.
#[derive(Debug, Clone, PartialEq)]
pub enum SimReplaced {
    Both {
        cancelled: OrderReport,
        placed: OrderReport,
    },
    /// The cancel was refused; the new order was not attempted.
    CancelRefused(SimError),
    /// Cancelled; the new order was refused.
    PlaceRefused {
        cancelled: OrderReport,
        error: SimError,
    },
}

/// Which order a query or cancel means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRef<'a> {
    ClientOrderId(&'a str),
    OrderId(i64),
}

struct Market {
    rules: SymbolRules,
    book: Book,
}

/// What the current call changed, for the journal.
#[derive(Default)]
struct Dirty {
    any: bool,
    orders: Vec<i64>,
    assets: Vec<usize>,
    prices: Vec<usize>,
    trades: usize,
}

impl Dirty {
    fn clear(&mut self) {
        self.any = false;
        self.orders.clear();
        self.assets.clear();
        self.prices.clear();
        self.trades = 0;
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A Binance-like spot exchange for one account.
pub struct Simulator {
    config: SimConfig,
    seed: u64,
    rng: ChaCha8Rng,
    markets: Vec<Market>,
    balances: Vec<Balance>,
    open: BTreeMap<i64, SimOrder>,
    open_by_client: HashMap<String, i64>,
    closed: HashMap<i64, SimOrder>,
    /// Closed order ids, oldest closing first.
    closed_fifo: VecDeque<i64>,
    /// Latest closed order per client id.
    closed_by_client: HashMap<String, i64>,
    trades: VecDeque<Trade>,
    next_order_id: i64,
    next_trade_id: i64,
    /// Journal sequence number of the last committed change.
    seq: u64,
    dirty: Dirty,
    store: Option<Store>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::ZERO)
}

struct Spec {
    symbol: &'static str,
    base: &'static str,
    bid: &'static str,
    ask: &'static str,
    tick: &'static str,
    step: &'static str,
    max_qty: &'static str,
    gap: &'static str,
    /// Level quantity range, in steps.
    level_steps: (i64, i64),
    order_types: &'static [ExchangeOrderType],
}

const SPECS: [Spec; 3] = {
    use ExchangeOrderType::*;
    [
        Spec {
            symbol: "BTCUSDT",
            base: "BTC",
            bid: "64999.99",
            ask: "65000.00",
            tick: "0.01",
            step: "0.00001",
            max_qty: "9000",
            gap: "1.00",
            level_steps: (5_000, 50_000),
            order_types: &[Limit, LimitMaker, Market, StopLossLimit, TakeProfitLimit],
        },
        Spec {
            symbol: "ETHUSDT",
            base: "ETH",
            bid: "2999.99",
            ask: "3000.00",
            tick: "0.01",
            step: "0.0001",
            max_qty: "9000",
            gap: "0.05",
            level_steps: (5_000, 50_000),
            order_types: &[Limit, LimitMaker, Market, StopLoss, StopLossLimit, TakeProfit, TakeProfitLimit],
        },
        Spec {
            symbol: "SOLUSDT",
            base: "SOL",
            bid: "149.99",
            ask: "150.00",
            tick: "0.01",
            step: "0.001",
            max_qty: "90000",
            gap: "0.01",
            level_steps: (5_000, 60_000),
            order_types: &[Limit, LimitMaker, Market, StopLoss, StopLossLimit, TakeProfit, TakeProfitLimit],
        },
    ]
};

fn build_market(spec: &Spec, rng: &mut ChaCha8Rng) -> Market {
    let step = dec(spec.step);
    let rules = SymbolRules {
        symbol: spec.symbol.to_string(),
        base_asset: spec.base.to_string(),
        quote_asset: "USDT".to_string(),
        trading: true,
        tick_size: dec(spec.tick),
        min_price: dec(spec.tick),
        max_price: dec("1000000"),
        step_size: step,
        min_qty: step,
        max_qty: dec(spec.max_qty),
        min_notional: Decimal::from(5),
        order_types: spec.order_types.to_vec(),
        max_num_algo_orders: Some(5),
    };
    let (lo, hi) = spec.level_steps;
    let mut level = || step * Decimal::from(rng.random_range(lo..=hi));
    let bid_qty = (0..LEVELS).map(|_| level()).collect();
    let ask_qty = (0..LEVELS).map(|_| level()).collect();
    Market {
        book: Book {
            symbol: rules.symbol.clone(),
            bid: dec(spec.bid),
            ask: dec(spec.ask),
            gap: dec(spec.gap),
            bid_qty,
            ask_qty,
        },
        rules,
    }
}

/// A symbol for [`Simulator::with_markets`]: its rules and where its book starts.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSpec {
    pub rules: SymbolRules,
    pub bid: Decimal,
    pub ask: Decimal,
}

fn build_spec_market(spec: &MarketSpec, rng: &mut ChaCha8Rng) -> Market {
    let smallest = Decimal::new(1, 8);
    let step = if spec.rules.step_size.is_zero() { smallest } else { spec.rules.step_size };
    let gap = if spec.rules.tick_size.is_zero() { smallest } else { spec.rules.tick_size };
    let mut level = || step * Decimal::from(rng.random_range(5_000..=50_000_i64));
    let bid_qty = (0..LEVELS).map(|_| level()).collect();
    let ask_qty = (0..LEVELS).map(|_| level()).collect();
    Market {
        book: Book { symbol: spec.rules.symbol.clone(), bid: spec.bid, ask: spec.ask, gap, bid_qty, ask_qty },
        rules: spec.rules.clone(),
    }
}

fn type_not_supported(order_type: ExchangeOrderType) -> SimError {
    let name = match order_type {
        ExchangeOrderType::Limit => "Limit",
        ExchangeOrderType::Market => "Market",
        ExchangeOrderType::StopLoss => "Stop loss",
        ExchangeOrderType::StopLossLimit => "Stop loss limit",
        ExchangeOrderType::TakeProfit => "Take profit",
        ExchangeOrderType::TakeProfitLimit => "Take profit limit",
        ExchangeOrderType::LimitMaker => "Limit maker",
    };
    SimError::new_order_rejected(&format!("{name} orders are not supported for this symbol."))
}

fn needs_price(order_type: ExchangeOrderType) -> bool {
    matches!(
        order_type,
        ExchangeOrderType::Limit
            | ExchangeOrderType::LimitMaker
            | ExchangeOrderType::StopLossLimit
            | ExchangeOrderType::TakeProfitLimit
    )
}

/// Types that trade as a market order (at once, or when triggered).
fn is_market_like(order_type: ExchangeOrderType) -> bool {
    matches!(order_type, ExchangeOrderType::Market | ExchangeOrderType::StopLoss | ExchangeOrderType::TakeProfit)
}

fn check_param(name: &str, required: bool, value: Option<Decimal>) -> Result<(), SimError> {
    match (required, value) {
        (true, None) => Err(SimError::rejected(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )),
        (false, Some(_)) => Err(SimError::rejected(-1106, format!("Parameter '{name}' sent when not required."))),
        _ => Ok(()),
    }
}

fn check_price(rules: &SymbolRules, price: Decimal) -> Result<(), SimError> {
    let ok = price > Decimal::ZERO
        && (rules.min_price.is_zero() || price >= rules.min_price)
        && (rules.max_price.is_zero() || price <= rules.max_price)
        && is_multiple_of_step(price, rules.tick_size);
    if ok {
        Ok(())
    } else {
        Err(SimError::filter("PRICE_FILTER"))
    }
}

fn check_lot(rules: &SymbolRules, qty: Decimal) -> Result<(), SimError> {
    let ok = qty > Decimal::ZERO
        && qty >= rules.min_qty
        && (rules.max_qty.is_zero() || qty <= rules.max_qty)
        && is_multiple_of_step(qty, rules.step_size);
    if ok {
        Ok(())
    } else {
        Err(SimError::filter("LOT_SIZE"))
    }
}

/// `^[a-zA-Z0-9-_]{1,36}$`, as Binance checks `newClientOrderId`.
fn check_client_id(id: &str) -> Result<(), SimError> {
    if id.is_empty() {
        return Err(SimError::rejected(-1118, "New client order ID was empty."));
    }
    let legal = id.len() <= 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if legal {
        Ok(())
    } else {
        Err(SimError::rejected(
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.",
        ))
    }
}

/// True when a stop's trigger is crossed by the current book: a stop-loss sell when the bid
/// falls to it, a stop-loss buy when the ask rises to it; take-profits the other way round.
fn stop_triggered(order_type: ExchangeOrderType, side: Side, stop: Decimal, book: &Book) -> bool {
    let stop_loss = matches!(order_type, ExchangeOrderType::StopLoss | ExchangeOrderType::StopLossLimit);
    match (side, stop_loss) {
        (Side::Sell, true) => book.bid <= stop,
        (Side::Buy, true) => book.ask >= stop,
        (Side::Sell, false) => book.bid >= stop,
        (Side::Buy, false) => book.ask <= stop,
    }
}

/// The status of an order that may rest on the book.
fn resting_status(report: &OrderReport) -> ExchangeStatus {
    if report.executed_qty >= report.orig_qty {
        ExchangeStatus::Filled
    } else if report.executed_qty > Decimal::ZERO {
        ExchangeStatus::PartiallyFilled
    } else {
        ExchangeStatus::New
    }
}

/// The status of a market order once it has traded what it could.
fn market_status(report: &OrderReport) -> ExchangeStatus {
    if report.executed_qty >= report.orig_qty {
        ExchangeStatus::Filled
    } else {
        ExchangeStatus::Expired
    }
}

/// Cuts a buy plan so that it costs at most `budget`.
fn trim_to_budget(plan: &mut Vec<(Decimal, Decimal)>, budget: Decimal, step: Decimal) {
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

fn asset_index(balances: &mut Vec<Balance>, asset: &str) -> usize {
    match balances.iter().position(|b| b.asset == asset) {
        Some(i) => i,
        None => {
            balances.push(Balance { asset: asset.to_string(), free: Decimal::ZERO, locked: Decimal::ZERO });
            balances.len() - 1
        }
    }
}

impl Simulator {
    /// A fresh in-memory exchange (nothing is written anywhere).
    pub fn new(config: SimConfig) -> Simulator {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let markets: Vec<Market> = SPECS.iter().map(|s| build_market(s, &mut rng)).collect();
        Simulator::from_markets(config, rng, markets)
    }

    /// A fresh in-memory exchange trading `markets` instead of the three built-in symbols
    /// (`genesis-exchange --markets`): each book starts at its spec's bid and ask, levels one
    /// tick apart, 5,000 to 50,000 steps each.
    pub fn with_markets(config: SimConfig, markets: &[MarketSpec]) -> Simulator {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let markets: Vec<Market> = markets.iter().map(|m| build_spec_market(m, &mut rng)).collect();
        Simulator::from_markets(config, rng, markets)
    }

    fn from_markets(config: SimConfig, rng: ChaCha8Rng, markets: Vec<Market>) -> Simulator {
        let seed = config.seed;
        let mut balances: Vec<Balance> = config
            .starting_balances
            .iter()
            .map(|(asset, free)| Balance { asset: asset.clone(), free: *free, locked: Decimal::ZERO })
            .collect();
        for m in &markets {
            asset_index(&mut balances, &m.rules.base_asset);
            asset_index(&mut balances, &m.rules.quote_asset);
        }
        Simulator {
            next_order_id: config.first_order_id,
            next_trade_id: config.first_trade_id,
            config,
            seed,
            rng,
            markets,
            balances,
            open: BTreeMap::new(),
            // Sized for the bounded history up front, so no call pays for a rehash.
            open_by_client: HashMap::new(),
            closed: HashMap::with_capacity(CLOSED_ORDERS_KEPT + 64),
            closed_fifo: VecDeque::with_capacity(CLOSED_ORDERS_KEPT + 64),
            closed_by_client: HashMap::with_capacity(CLOSED_ORDERS_KEPT + 64),
            trades: VecDeque::with_capacity(TRADES_KEPT + 64),
            seq: 0,
            dirty: Dirty::default(),
            store: None,
        }
    }

    /// The exchange kept in `path` (a snapshot) and `<path>.journal`: loads it if present,
    /// else starts fresh from the seed. Every later mutating call is journaled before it
    /// returns. The seed and balances of a loaded state win over `config`; the knobs
    /// (latency, slippage, probabilities) come from `config`.
    pub fn open(path: &Path, config: SimConfig) -> Result<Simulator, SimStoreError> {
        let (mut store, snapshot, journal) = Store::open(path)?;
        let mut sim =
            match snapshot {
                Some(snapshot) => Simulator::from_snapshot(config, snapshot)
                    .map_err(|reason| SimStoreError::Corrupt { path: path.to_path_buf(), line: 1, reason })?,
                None => Simulator::new(config),
            };
        for (i, mutation) in journal.into_iter().enumerate() {
            if mutation.seq > sim.seq {
                sim.replay(mutation).map_err(|reason| SimStoreError::Corrupt {
                    path: store.journal_path().to_path_buf(),
                    line: i + 1,
                    reason,
                })?;
            }
        }
        // Fold what was replayed into a fresh snapshot, so the journal starts empty.
        sim.write_snapshot(&mut store)
            .map_err(|source| SimStoreError::Io { path: store.journal_path().to_path_buf(), source })?;
        sim.store = Some(store);
        Ok(sim)
    }

    fn from_snapshot(config: SimConfig, s: SnapshotIn) -> Result<Simulator, String> {
        let mut sim = Simulator::new(SimConfig { seed: s.seed, ..config });
        sim.set_rng_position(&s.rng_word_pos)?;
        for book in s.books {
            if let Some(m) = sim.markets.iter_mut().find(|m| m.rules.symbol == book.symbol) {
                m.book = book;
            }
        }
        sim.balances = s.balances;
        for m in 0..sim.markets.len() {
            let (base, quote) = (sim.markets[m].rules.base_asset.clone(), sim.markets[m].rules.quote_asset.clone());
            asset_index(&mut sim.balances, &base);
            asset_index(&mut sim.balances, &quote);
        }
        for order in s.closed.into_iter().chain(s.open) {
            sim.restore_order(order);
        }
        sim.trades = s.trades.into();
        sim.next_order_id = s.next_order_id;
        sim.next_trade_id = s.next_trade_id;
        sim.seq = s.seq;
        Ok(sim)
    }

    fn set_rng_position(&mut self, word_pos: &str) -> Result<(), String> {
        let pos: u128 = word_pos.parse().map_err(|_| format!("bad RNG position '{word_pos}'"))?;
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.rng.set_word_pos(pos);
        Ok(())
    }

    fn replay(&mut self, m: MutationIn) -> Result<(), String> {
        self.set_rng_position(&m.rng_word_pos)?;
        self.seq = m.seq;
        self.next_order_id = m.next_order_id;
        self.next_trade_id = m.next_trade_id;
        for p in m.prices {
            if let Some(market) = self.markets.iter_mut().find(|x| x.rules.symbol == p.symbol) {
                market.book.bid = p.bid;
                market.book.ask = p.ask;
            }
        }
        for b in m.balances {
            let i = asset_index(&mut self.balances, &b.asset);
            self.balances[i] = b;
        }
        for order in m.orders {
            self.restore_order(order);
        }
        let last_trade = self.trades.back().map_or(0, |t| t.id);
        self.trades.extend(m.trades.into_iter().filter(|t| t.id > last_trade));
        self.trim_history();
        Ok(())
    }

    /// Puts a loaded order where it belongs (open or closed), replacing an older version.
    fn restore_order(&mut self, order: SimOrder) {
        let id = order.report.exchange_order_id;
        if order.report.status.is_open() {
            self.open_by_client.insert(order.report.client_order_id.clone(), id);
            self.open.insert(id, order);
            return;
        }
        if let Some(prev) = self.open.remove(&id) {
            if self.open_by_client.get(&prev.report.client_order_id) == Some(&id) {
                self.open_by_client.remove(&prev.report.client_order_id);
            }
        }
        self.closed_by_client.insert(order.report.client_order_id.clone(), id);
        if self.closed.insert(id, order).is_none() {
            self.closed_fifo.push_back(id);
        }
    }

    fn write_snapshot(&self, store: &mut Store) -> std::io::Result<()> {
        let snapshot = SnapshotOut {
            version: super::store::SNAPSHOT_VERSION,
            seq: self.seq,
            seed: self.seed,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            books: self.markets.iter().map(|m| &m.book).collect(),
            balances: &self.balances,
            open: self.open.values().collect(),
            closed: self.closed_fifo.iter().filter_map(|id| self.closed.get(id)).collect(),
            trades: self.trades.iter().collect(),
        };
        store.write_snapshot(&snapshot)
    }

    /// A copy of the whole state, for a background snapshot.
    fn owned_snapshot(&self) -> SnapshotIn {
        SnapshotIn {
            version: super::store::SNAPSHOT_VERSION,
            seq: self.seq,
            seed: self.seed,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            books: self.markets.iter().map(|m| m.book.clone()).collect(),
            balances: self.balances.clone(),
            open: self.open.values().cloned().collect(),
            // Only recent history: the copy is made on the order path, and a bigger one (with
            // its serialisation competing for one of two cores) stalled orders for ~15 ms.
            closed: self
                .closed_fifo
                .iter()
                .skip(self.closed_fifo.len().saturating_sub(SNAPSHOT_HISTORY))
                .filter_map(|id| self.closed.get(id))
                .cloned()
                .collect(),
            trades: self.trades.iter().skip(self.trades.len().saturating_sub(SNAPSHOT_HISTORY)).cloned().collect(),
        }
    }

    /// Waits until a background snapshot, if any, is on disk.
    pub fn wait_for_snapshot(&mut self) {
        if let Some(store) = self.store.as_mut() {
            store.wait_for_snapshot();
        }
    }

    /// Journals what the call changed and forgets history beyond the bounds.
    fn commit(&mut self) -> Result<(), SimError> {
        if !self.dirty.any {
            return Ok(());
        }
        self.seq += 1;
        let mut outcome = Ok(());
        if let Some(mut store) = self.store.take() {
            let record = MutationOut {
                seq: self.seq,
                rng_word_pos: self.rng.get_word_pos().to_string(),
                next_order_id: self.next_order_id,
                next_trade_id: self.next_trade_id,
                prices: self
                    .dirty
                    .prices
                    .iter()
                    .filter_map(|&i| self.markets.get(i))
                    .map(|m| PriceRecord { symbol: m.rules.symbol.clone(), bid: m.book.bid, ask: m.book.ask })
                    .collect(),
                balances: self.dirty.assets.iter().filter_map(|&i| self.balances.get(i)).collect(),
                orders: self
                    .dirty
                    .orders
                    .iter()
                    .filter_map(|id| self.open.get(id).or_else(|| self.closed.get(id)))
                    .collect(),
                trades: self.trades.iter().skip(self.trades.len().saturating_sub(self.dirty.trades)).collect(),
            };
            if let Err(e) = store.append(&record) {
                outcome = Err(SimError::internal(&format!("journal write failed: {e}")));
            } else if store.records >= self.config.compact_every.max(1) {
                // The journal already holds everything; a failed snapshot only delays folding.
                if let Err(e) = store.snapshot_in_background(self.owned_snapshot()) {
                    log::warn!("simulator snapshot failed: {e}");
                }
            }
            self.store = Some(store);
        }
        self.dirty.clear();
        self.trim_history();
        outcome
    }

    fn trim_history(&mut self) {
        let forgotten = self.closed_fifo.len().saturating_sub(CLOSED_ORDERS_KEPT);
        for id in self.closed_fifo.drain(..forgotten) {
            if let Some(order) = self.closed.remove(&id) {
                if self.closed_by_client.get(&order.report.client_order_id) == Some(&id) {
                    self.closed_by_client.remove(&order.report.client_order_id);
                }
            }
        }
        while self.trades.len() > TRADES_KEPT {
            self.trades.pop_front();
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn exchange_info(&self) -> Vec<SymbolRules> {
        self.markets.iter().map(|m| m.rules.clone()).collect()
    }

    pub fn rules(&self, symbol: &str) -> Option<&SymbolRules> {
        self.markets.iter().find(|m| m.rules.symbol == symbol).map(|m| &m.rules)
    }

    fn market_index(&self, symbol: &str) -> Result<usize, SimError> {
        self.markets.iter().position(|m| m.rules.symbol == symbol).ok_or_else(SimError::invalid_symbol)
    }

    pub fn book_ticker(&self, symbol: &str) -> Result<BookTicker, SimError> {
        let book = &self.markets[self.market_index(symbol)?].book;
        Ok(BookTicker {
            symbol: book.symbol.clone(),
            bid: book.bid,
            bid_qty: book.bid_qty.first().copied().unwrap_or(Decimal::ZERO),
            ask: book.ask,
            ask_qty: book.ask_qty.first().copied().unwrap_or(Decimal::ZERO),
        })
    }

    /// Up to `limit` levels per side, best first: `(bids, asks)` of `(price, qty)`.
    #[allow(clippy::type_complexity)]
    pub fn depth(
        &self,
        symbol: &str,
        limit: usize,
    ) -> Result<(Vec<(Decimal, Decimal)>, Vec<(Decimal, Decimal)>), SimError> {
        let book = &self.markets[self.market_index(symbol)?].book;
        Ok((book.bids().take(limit).collect(), book.asks().take(limit).collect()))
    }

    pub fn balances(&self) -> Vec<Balance> {
        self.balances.clone()
    }

    pub fn balance(&self, asset: &str) -> Option<&Balance> {
        self.balances.iter().find(|b| b.asset == asset)
    }

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

    fn move_book(&mut self, m: usize, bid: Decimal, ask: Decimal, changed: &mut Vec<OrderReport>) {
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
    fn work_order(&mut self, m: usize, order: &mut SimOrder, now: i64) -> Option<Vec<Fill>> {
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
                order.report.status = market_status(&order.report);
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
    fn plan_taker(&self, m: usize, side: Side, qty: Decimal, limit: Option<Decimal>) -> Vec<(Decimal, Decimal)> {
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

    fn fill_plan(&mut self, m: usize, order: &mut SimOrder, plan: &[(Decimal, Decimal)], now: i64) -> Vec<Fill> {
        plan.iter()
            .filter(|(_, qty)| *qty > Decimal::ZERO)
            .map(|&(price, qty)| self.apply_fill(m, order, price, qty, false, now))
            .collect()
    }

    /// One trade: moves balances (commission taken from the received asset), releases the
    /// matching part of the order's lock, records the trade.
    fn apply_fill(
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
    fn lock(&mut self, m: usize, side: Side, amount: Decimal) -> bool {
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
    fn release(&mut self, m: usize, side: Side, amount: Decimal) {
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
    fn put(&mut self, mut order: SimOrder) {
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

    /// `POST /api/v3/order` with a FULL response: validates as Binance does, then trades
    /// against the book (MARKET, marketable LIMIT) or rests (LIMIT remainder, stops).
    pub fn place(&mut self, order: &NewOrder) -> Result<OrderReport, SimError> {
        let result = self.place_inner(order);
        self.commit()?;
        result
    }

    /// `POST /api/v3/order/test`: the checks [`Simulator::place`] makes before it trades
    /// (symbol, client id, parameters, filters), with nothing placed.
    pub fn check_order(&self, order: &NewOrder) -> Result<(), SimError> {
        self.check_new(order).map(|_| ())
    }

    /// The checks Binance makes before the matching engine (symbol, parameters, filters); a
    /// cancel-replace makes them before it cancels anything. The market's index.
    fn check_new(&self, req: &NewOrder) -> Result<usize, SimError> {
        let m = self.market_index(&req.symbol)?;
        check_client_id(&req.client_order_id)?;
        let rules = &self.markets[m].rules;
        let book = &self.markets[m].book;
        let order_type = req.order_type;
        let side = req.side;
        if !rules.allows(order_type) {
            return Err(type_not_supported(order_type));
        }
        check_param("price", needs_price(order_type), req.price)?;
        check_param("stopPrice", order_type.is_algo(), req.stop_price)?;
        if let Some(price) = req.price {
            check_price(rules, price)?;
        }
        if let Some(stop) = req.stop_price {
            check_price(rules, stop)?;
        }
        check_lot(rules, req.quantity)?;
        let reference = match order_type {
            ExchangeOrderType::Market => book.top_for(side),
            ExchangeOrderType::StopLoss | ExchangeOrderType::TakeProfit => req.stop_price.unwrap_or(Decimal::ZERO),
            _ => req.price.unwrap_or(Decimal::ZERO),
        };
        let notional = req.quantity.checked_mul(reference).unwrap_or(Decimal::MAX);
        if notional < rules.min_notional {
            return Err(SimError::filter("NOTIONAL"));
        }
        if order_type.is_algo() {
            let max = rules.max_num_algo_orders.map_or(usize::MAX, |n| n as usize);
            let open_algo =
                self.open.values().filter(|o| o.report.symbol == req.symbol && o.report.order_type.is_algo()).count();
            if open_algo >= max {
                return Err(SimError::filter("MAX_NUM_ALGO_ORDERS"));
            }
        }
        Ok(m)
    }

    fn place_inner(&mut self, req: &NewOrder) -> Result<OrderReport, SimError> {
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
            order.report.status = market_status(&order.report);
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

    fn find_open(&self, symbol: &str, which: OrderRef<'_>) -> Option<i64> {
        let id = match which {
            OrderRef::ClientOrderId(client) => *self.open_by_client.get(client)?,
            OrderRef::OrderId(id) => id,
        };
        self.open.get(&id).filter(|o| o.report.symbol == symbol).map(|_| id)
    }

    fn find(&self, symbol: &str, which: OrderRef<'_>) -> Option<&SimOrder> {
        let found = match which {
            OrderRef::ClientOrderId(client) => self
                .open_by_client
                .get(client)
                .and_then(|id| self.open.get(id))
                .or_else(|| self.closed_by_client.get(client).and_then(|id| self.closed.get(id))),
            OrderRef::OrderId(id) => self.open.get(&id).or_else(|| self.closed.get(&id)),
        };
        found.filter(|o| o.report.symbol == symbol)
    }

    /// `GET /api/v3/order`: the open order with that id, else the latest closed one.
    pub fn query(&self, symbol: &str, which: OrderRef<'_>) -> Result<OrderReport, SimError> {
        self.market_index(symbol)?;
        self.find(symbol, which).map(|o| o.report.clone()).ok_or_else(SimError::no_such_order)
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

    fn cancel_replace_inner(&mut self, cancel_client_order_id: &str, req: &NewOrder) -> Result<SimReplaced, SimError> {
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

    fn cancel_inner(&mut self, symbol: &str, which: OrderRef<'_>) -> Result<OrderReport, SimError> {
        self.market_index(symbol)?;
        let id = self.find_open(symbol, which).ok_or_else(SimError::unknown_order)?;
        let mut order = self.open.remove(&id).ok_or_else(SimError::unknown_order)?;
        order.report.status = ExchangeStatus::Canceled;
        order.report.time_ms = now_ms();
        let report = order.report.clone();
        self.put(order);
        Ok(report)
    }

    /// `GET /api/v3/openOrders`, for one symbol or all, by order id.
    pub fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<OrderReport>, SimError> {
        if let Some(symbol) = symbol {
            self.market_index(symbol)?;
        }
        Ok(self
            .open
            .values()
            .filter(|o| symbol.is_none_or(|s| o.report.symbol == s))
            .map(|o| o.report.clone())
            .collect())
    }

    /// `DELETE /api/v3/openOrders`: cancels every open order of the symbol; -2011 when there
    /// is none.
    pub fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, SimError> {
        let result = self.cancel_open_orders_inner(symbol);
        self.commit()?;
        result
    }

    fn cancel_open_orders_inner(&mut self, symbol: &str) -> Result<Vec<OrderReport>, SimError> {
        self.market_index(symbol)?;
        let ids: Vec<i64> =
            self.open.values().filter(|o| o.report.symbol == symbol).map(|o| o.report.exchange_order_id).collect();
        if ids.is_empty() {
            return Err(SimError::unknown_order());
        }
        ids.into_iter().map(|id| self.cancel_inner(symbol, OrderRef::OrderId(id))).collect()
    }

    /// `GET /api/v3/allOrders`: the symbol's remembered orders, open or closed, by order id.
    pub fn all_orders(&self, symbol: &str) -> Result<Vec<OrderReport>, SimError> {
        self.market_index(symbol)?;
        let mut orders: Vec<OrderReport> = self
            .open
            .values()
            .chain(self.closed.values())
            .filter(|o| o.report.symbol == symbol)
            .map(|o| o.report.clone())
            .collect();
        orders.sort_by_key(|o| o.exchange_order_id);
        Ok(orders)
    }

    /// `GET /api/v3/myTrades`: the symbol's remembered trades, oldest first.
    pub fn my_trades(&self, symbol: &str) -> Result<Vec<Trade>, SimError> {
        self.market_index(symbol)?;
        Ok(self.trades.iter().filter(|t| t.symbol == symbol).cloned().collect())
    }

    /// The symbol's trades at or after `since_ms`, oldest first, read from the newest end (no
    /// copy of the whole history: an average price on every order stays cheap).
    pub fn trades_since(&self, symbol: &str, since_ms: i64) -> Result<Vec<&Trade>, SimError> {
        self.market_index(symbol)?;
        let mut out: Vec<&Trade> =
            self.trades.iter().rev().take_while(|t| t.time_ms >= since_ms).filter(|t| t.symbol == symbol).collect();
        out.reverse();
        Ok(out)
    }

    /// The symbol's latest trade.
    pub fn last_trade(&self, symbol: &str) -> Result<Option<&Trade>, SimError> {
        self.market_index(symbol)?;
        Ok(self.trades.iter().rev().find(|t| t.symbol == symbol))
    }
}

#[cfg(test)]
impl Simulator {
    /// Makes every later journal write fail, as on a full disk.
    pub(super) fn break_journal(&mut self) {
        self.store.as_mut().expect("a simulator opened on a state file").break_journal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_order_type_is_refused_in_binance_words() {
        use ExchangeOrderType::*;
        let names = [
            (Limit, "Limit"),
            (Market, "Market"),
            (StopLoss, "Stop loss"),
            (StopLossLimit, "Stop loss limit"),
            (TakeProfit, "Take profit"),
            (TakeProfitLimit, "Take profit limit"),
            (LimitMaker, "Limit maker"),
        ];
        for (order_type, name) in names {
            let e = type_not_supported(order_type);
            assert_eq!((e.code, e.msg), (-2010, format!("{name} orders are not supported for this symbol.")));
        }
    }
}
