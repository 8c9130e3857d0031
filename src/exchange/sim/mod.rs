//! The embedded Binance-like simulator: [`Simulator`] is the exchange (books, balances,
//! orders, Binance's filters and refusals, optional journal on disk); [`SimGateway`] puts it
//! behind the [`Exchange`] trait with a simulated round trip.
//!
//! ```text
//!  SimGateway ──lock──► Simulator ─┬─ market.rs   validation, matching, balances
//!      ▲                           ├─ book.rs     synthetic depth per symbol
//!  other threads (shared())        ├─ records.rs  orders and trades as kept (market and store share them)
//!                                  └─ store.rs    snapshot + journal (`<path>`, `<path>.journal`)
//! ```

mod book;
mod config;
mod error;
mod market;
mod records;
mod store;
#[cfg(test)]
mod tests;

pub use book::LEVELS;
pub use config::SimConfig;
pub use error::{SimError, SimStoreError};
pub use market::{MarketSpec, OrderRef, SimReplaced, Simulator, CLOSED_ORDERS_KEPT, TRADES_KEPT};
pub use records::Trade;
pub use store::journal_path;

use super::{Balance, BookTicker, Exchange, ExchangeError, NewOrder, Replaced, RequestTiming};
use crate::domain::order::{Fill, OrderReport};
use crate::domain::symbol::SymbolRules;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The simulator as an [`Exchange`]. Each call locks the simulator, then waits out the
/// configured round trip (outside the lock); zero latency means no wait at all.
pub struct SimGateway {
    sim: Arc<Mutex<Simulator>>,
    latency: Duration,
    last: RequestTiming,
}

impl SimGateway {
    pub fn new(sim: Simulator) -> SimGateway {
        SimGateway::from_shared(Arc::new(Mutex::new(sim)))
    }

    /// A gateway over a simulator that other threads already hold.
    pub fn from_shared(sim: Arc<Mutex<Simulator>>) -> SimGateway {
        let latency = Duration::from_micros(sim.lock().config().latency_us);
        SimGateway { sim, latency, last: RequestTiming::default() }
    }

    /// The simulator, for threads that read the book or move prices.
    pub fn shared(&self) -> Arc<Mutex<Simulator>> {
        Arc::clone(&self.sim)
    }

    fn call<T>(&mut self, request: impl FnOnce(&mut Simulator) -> Result<T, SimError>) -> Result<T, ExchangeError> {
        let start = Instant::now();
        let result = request(&mut self.sim.lock());
        if !self.latency.is_zero() {
            wait_until(start + self.latency, Duration::from_micros(150));
        }
        self.last =
            RequestTiming { sign_ns: 0, round_trip_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX) };
        result.map_err(ExchangeError::from)
    }
}

/// Sleeps until `spin` before `deadline`, then spins, so short latencies are met closely
/// (the embedded simulator and `genesis-exchange` both simulate latency with it).
pub fn wait_until(deadline: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > spin {
            std::thread::sleep(left - spin);
        } else {
            std::hint::spin_loop();
        }
    }
}

impl Exchange for SimGateway {
    fn exchange_info(&mut self) -> Result<Vec<SymbolRules>, ExchangeError> {
        self.call(|sim| Ok(sim.exchange_info()))
    }

    fn book_ticker(&mut self, symbol: &str) -> Result<BookTicker, ExchangeError> {
        self.call(|sim| sim.book_ticker(symbol))
    }

    fn place_order(&mut self, order: &NewOrder) -> Result<OrderReport, ExchangeError> {
        self.call(|sim| sim.place(order))
    }

    fn query_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        self.call(|sim| sim.query(symbol, OrderRef::ClientOrderId(client_order_id)))
    }

    fn cancel_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError> {
        self.call(|sim| sim.cancel(symbol, OrderRef::ClientOrderId(client_order_id)))
    }

    fn cancel_replace(&mut self, cancel_client_order_id: &str, order: &NewOrder) -> Result<Replaced, ExchangeError> {
        let replaced = self.call(|sim| sim.cancel_replace(cancel_client_order_id, order))?;
        Ok(match replaced {
            SimReplaced::Both { cancelled, placed } => Replaced::Both { cancelled, placed },
            SimReplaced::CancelRefused(error) => Replaced::CancelRefused { error: error.into() },
            SimReplaced::PlaceRefused { cancelled, error } => Replaced::PlaceRefused { cancelled, error: error.into() },
        })
    }

    fn open_orders(&mut self, symbol: Option<&str>) -> Result<Vec<OrderReport>, ExchangeError> {
        self.call(|sim| sim.open_orders(symbol))
    }

    fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        self.call(|sim| match sim.cancel_open_orders(symbol) {
            Err(e) if e.code == -2011 => Ok(Vec::new()),
            other => other,
        })
    }

    fn all_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError> {
        self.call(|sim| sim.all_orders(symbol))
    }

    fn account(&mut self) -> Result<Vec<Balance>, ExchangeError> {
        self.call(|sim| Ok(sim.balances()))
    }

    fn order_trades(&mut self, symbol: &str, exchange_order_id: i64) -> Result<Vec<Fill>, ExchangeError> {
        self.call(|sim| {
            Ok(sim
                .my_trades(symbol)?
                .into_iter()
                .filter(|t| t.order_id == exchange_order_id)
                .map(|t| Fill {
                    is_maker: t.is_maker,
                    time_ms: t.time_ms,
                    ..Fill::new(t.price, t.qty, t.commission, &t.commission_asset, t.id)
                })
                .collect())
        })
    }

    fn last_timing(&self) -> RequestTiming {
        self.last
    }
}

/// Top of book straight from the shared simulator: a short lock, no round trip.
pub struct SimQuotes {
    sim: Arc<Mutex<Simulator>>,
}

impl super::Quotes for SimQuotes {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
        self.sim.lock().book_ticker(symbol).ok()
    }

    fn set_price(
        &self,
        symbol: &str,
        bid: crate::domain::money::Decimal,
        ask: crate::domain::money::Decimal,
    ) -> Result<(), String> {
        self.sim.lock().set_price(symbol, bid, ask).map(|_| ()).map_err(|e| e.msg)
    }
}

/// Moves every price one seeded random-walk step per `every`, until the simulator is dropped.
fn start_random_walk(sim: &Arc<Mutex<Simulator>>, every: Duration) {
    let weak = Arc::downgrade(sim);
    let _ = std::thread::Builder::new().name("sim-walk".into()).spawn(move || loop {
        std::thread::sleep(every);
        let Some(sim) = weak.upgrade() else { return };
        let stepped = sim.lock().random_walk_step();
        if let Err(e) = stepped {
            log::warn!("simulator random walk: {e}");
        }
    });
}

/// The simulator state file that goes with an engine database.
pub fn state_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".sim");
    std::path::PathBuf::from(name)
}

/// Opens the embedded simulator beside the engine's database, with the knobs from the flags.
pub fn connect_embedded(config: &crate::config::Config) -> Result<super::Connected, String> {
    let sim_config = SimConfig {
        seed: config.sim.seed,
        latency_us: config.sim.latency_us,
        extra_slippage_bps: crate::domain::money::Decimal::from(config.sim.slippage_bps),
        partial_fill_probability: config.sim.partial_fill_prob,
        reject_probability: config.sim.reject_prob,
        ..SimConfig::default()
    };
    let path = state_path(&config.db);
    let sim = Simulator::open(&path, sim_config).map_err(|e| format!("simulator state {}: {e}", path.display()))?;
    let gateway = SimGateway::new(sim);
    if let Some(every) = config.sim.walk {
        start_random_walk(&gateway.shared(), every);
    }
    let quotes = Arc::new(SimQuotes { sim: gateway.shared() });
    Ok(super::Connected { gateway: Box::new(gateway), quotes, stream: None })
}
