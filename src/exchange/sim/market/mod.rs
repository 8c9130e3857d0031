//! The simulated exchange: one account, three symbols, synthetic books, Binance's rules and
//! refusals. Pure state machine: no threads; I/O only for the optional journal.
//!
//! Here: the simulator's state and its queries. In parts: [`table`] (the markets),
//! [`validation`] (what is refused before the book), [`orders`] (placement, cancels),
//! [`matching`] (the book, fills and balances), [`journal`] (snapshot, replay, commits).

use super::book::{crosses, Book, LEVELS};
use super::config::SimConfig;
use super::error::{SimError, SimStoreError};
use super::records::{SimOrder, Trade};
use super::store::{MutationIn, MutationOut, PriceRecord, SnapshotIn, SnapshotOut, Store};
use crate::domain::money::{is_multiple_of_step, round_down_to_step, round_up_to_step, Decimal};
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::binance::codes;
use crate::exchange::{Balance, BookTicker, NewOrder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

mod journal;
mod matching;
mod orders;
mod table;
mod validation;

use matching::*;
pub use table::MarketSpec;
use table::*;
use validation::*;

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
        self.markets
            .iter()
            .position(|m| m.rules.symbol == symbol)
            .ok_or_else(|| SimError::refused(codes::INVALID_SYMBOL))
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
        self.find(symbol, which).map(|o| o.report.clone()).ok_or_else(|| SimError::refused(codes::ORDER_DOES_NOT_EXIST))
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
