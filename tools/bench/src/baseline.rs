//! The baseline: the exchange requests the engine makes for one order (the placement, then
//! the verification query), sent bare through the engine's own gateway: signed, on a warm
//! keep-alive connection (binance) or on the engine's own journaled simulator (sim), nothing around
//! them. A sell's placement is what the engine sends: a cancel-replace of the stop-loss its buy
//! was protected with (placed untimed after the buy, as the engine does).
//!
//! The pairs go out at the run's `--rate`, as the engine's orders did: an idle gap alone makes
//! the same bare request slower (a sim placement back to back: 4 µs at the median; one every
//! 500 µs: 11 µs, caches and the CPU gone cold in between), and the engine's overhead is what it
//! adds to a request at that cadence. They go out in blocks between the engine's blocks (see
//! `run::run_engine`), so both are measured over the same minutes of a machine whose speed
//! drifts. A pass back to back follows the engine's run, for reference.

use crate::args::{Args, ExchangeKind};
use crate::run::Scratch;
use crate::server::Server;
use crate::workload::{self, Workload};
use genesis::domain::money::Decimal;
use genesis::domain::order::{ExchangeOrderType, OrderReport, Side};
use genesis::domain::position::{self, Protection, StopSettings};
use genesis::domain::symbol::SymbolRules;
use genesis::exchange::binance::{BinanceConfig, BinanceGateway};
use genesis::exchange::sim::{SimConfig, SimGateway, Simulator};
use genesis::exchange::{Exchange, NewOrder, Replaced};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Unmeasured orders sent first, so connection set-up and first-touch costs are not counted.
const WARM_UP: u64 = 40;

/// Microseconds per pair, in request order.
#[derive(Debug, Default, Clone)]
pub struct Baseline {
    pub target: String,
    /// Signing the placement (binance), microseconds.
    pub sign: Vec<u64>,
    pub place: Vec<u64>,
    pub query: Vec<u64>,
    /// Placement + query, at the run's cadence: what the engine's total is compared with.
    pub pair: Vec<u64>,
    /// The gap between pairs, when they were paced (`--rate`), microseconds.
    pub paced_every_us: Option<u64>,
    /// Blocks the paced pairs were sent in, between the engine's blocks (0: after the engine).
    pub blocks: usize,
    /// Placement + query with no gap between pairs (a hot loop), for reference.
    pub back_to_back: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// One measured pair.
struct Sample {
    sign: u64,
    place: u64,
    query: u64,
    pair: u64,
}

fn micros(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_micros() as u64
}

/// The bare client: the engine's gateway, where it is in the order stream, and the stop the
/// last buy was protected with (the next sell releases it).
pub struct Bare {
    // Declared before `_state_dir`: the simulator is dropped before its directory is removed.
    gateway: Box<dyn Exchange>,
    _state_dir: Option<Scratch>,
    rules: HashMap<String, SymbolRules>,
    orders: Workload,
    sent: u64,
    stop: Option<String>,
    nonce: u32,
    gap: Option<Duration>,
    out: Baseline,
}

impl Bare {
    /// Connects (binance: to the run's server; sim: a fresh journaled simulator) and sends the
    /// warm-up orders. `None` when no baseline is asked for.
    pub fn start(args: &Args, server: Option<&Server>) -> Result<Option<Bare>, String> {
        if args.baseline == 0 {
            return Ok(None);
        }
        let (mut gateway, state_dir, target): (Box<dyn Exchange>, _, _) = match (args.exchange, server) {
            (ExchangeKind::Binance, Some(server)) => {
                let config =
                    BinanceConfig::new(server.url.clone(), server.api_key.as_str(), server.api_secret.as_str());
                let gateway = BinanceGateway::connect(config).map_err(|e| format!("baseline gateway: {e}"))?;
                (Box::new(gateway), None, format!("BinanceGateway → genesis-exchange at {}", server.url))
            }
            _ => {
                // The same simulator as the engine embeds, journal on disk included: the journal's
                // write per request is the simulated exchange's cost, not the engine's.
                let dir = Scratch::new().map_err(|e| format!("baseline state dir {e}"))?;
                let path = genesis::exchange::sim::state_path(&dir.0.join("baseline.db"));
                let sim = Simulator::open(&path, SimConfig { seed: args.seed, ..SimConfig::default() })
                    .map_err(|e| format!("baseline simulator {}: {e}", path.display()))?;
                let target = "SimGateway on the embedded, journaled Simulator (in process)".to_string();
                (Box::new(SimGateway::new(sim)), Some(dir), target)
            }
        };
        let rules = gateway
            .exchange_info()
            .map_err(|e| format!("baseline exchangeInfo: {e}"))?
            .into_iter()
            .map(|r| (r.symbol.clone(), r))
            .collect();
        let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        let mut bare = Bare {
            gateway,
            _state_dir: state_dir,
            rules,
            // The same stream as the engine gets (the requests are the same kind); buy/sell
            // alternate so balances hold.
            orders: Workload::new(args.seed),
            sent: 0,
            stop: None,
            nonce: std::process::id(),
            gap,
            out: Baseline { target, paced_every_us: gap.map(|g| g.as_micros() as u64), ..Baseline::default() },
        };
        bare.send(WARM_UP, gap, |_| {});
        Ok(Some(bare))
    }

    /// `orders` more orders at the run's cadence, measured into the baseline.
    pub fn paced_block(&mut self, orders: u64) {
        self.out.blocks += 1;
        let mut samples = Vec::with_capacity(orders as usize);
        self.send(orders, self.gap, |s| samples.push(s));
        for s in samples {
            self.out.sign.push(s.sign);
            self.out.place.push(s.place);
            self.out.query.push(s.query);
            self.out.pair.push(s.pair);
        }
    }

    /// `orders` more orders back to back, measured into the reference row.
    pub fn back_to_back(&mut self, orders: u64) {
        let mut pairs = Vec::with_capacity(orders as usize);
        self.send(orders, None, |s| pairs.push(s.pair));
        self.out.back_to_back.extend(pairs);
    }

    pub fn finish(self) -> Baseline {
        self.out
    }

    /// Sends `n` orders of the stream, one every `gap` (none: back to back), handing each
    /// measured pair to `sample`. Errors are counted.
    ///
    /// The requests are the engine's: a buy is placed and queried, then (untimed, as the engine
    /// does it after the fill is verified) protected with the stop-loss the engine would place;
    /// the sell that closes it is a cancel-replace of that stop, then queried.
    fn send(&mut self, n: u64, gap: Option<Duration>, mut sample: impl FnMut(Sample)) {
        let t0 = Instant::now();
        for k in 0..n {
            let Some(order) = self.orders.next() else { return };
            let i = self.sent;
            self.sent += 1;
            let request = new_order(&order, format!("bench-{}-{i}", self.nonce));
            if let Some(gap) = gap {
                // On a schedule, as the harness writes the engine's lines.
                let due = t0 + gap * k as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let gateway = self.gateway.as_mut();
            let start = Instant::now();
            let placed = match self.stop.take() {
                Some(stop_id) if request.side == Side::Sell => match gateway.cancel_replace(&stop_id, &request) {
                    Ok(Replaced::Both { placed, .. }) => Ok(placed),
                    Ok(other) => Err(format!("cancel-replace: {other:?}")),
                    Err(e) => Err(format!("cancel-replace: {e}")),
                },
                _ => gateway.place_order(&request).map_err(|e| format!("place: {e}")),
            };
            let sign_ns = gateway.last_timing().sign_ns;
            let placed_at = Instant::now();
            let queried = placed.as_ref().ok().map(|_| gateway.query_order(&request.symbol, &request.client_order_id));
            let queried_at = Instant::now();
            let error = match (&placed, &queried) {
                (Err(e), _) => Some(e.clone()),
                (Ok(_), Some(Err(e))) => Some(format!("query: {e}")),
                _ => None,
            };
            if let (Ok(report), Side::Buy) = (&placed, request.side) {
                self.stop = protect(gateway, &self.rules, report, format!("bench-{}-{i}-stop", self.nonce));
            }
            match error {
                Some(error) => {
                    self.out.errors += 1;
                    self.out.first_error.get_or_insert(error);
                }
                None => sample(Sample {
                    sign: sign_ns / 1000,
                    place: micros(start, placed_at),
                    query: micros(placed_at, queried_at),
                    pair: micros(start, queried_at),
                }),
            }
        }
    }
}

fn new_order(order: &workload::Order, client_order_id: String) -> NewOrder {
    NewOrder {
        symbol: order.symbol.to_string(),
        side: match order.side {
            workload::Side::Buy => Side::Buy,
            workload::Side::Sell => Side::Sell,
        },
        order_type: ExchangeOrderType::Market,
        quantity: Decimal::from_str(&order.quantity).expect("the workload writes valid decimals"),
        price: None,
        stop_price: None,
        client_order_id,
    }
}

/// Places the stop-loss the engine would place for a filled buy; its client order id, if placed.
fn protect(
    gateway: &mut dyn Exchange,
    rules: &HashMap<String, SymbolRules>,
    buy: &OrderReport,
    client_order_id: String,
) -> Option<String> {
    let rules = rules.get(&buy.symbol)?;
    if buy.executed_qty.is_zero() {
        return None;
    }
    let base_commission: Decimal =
        buy.fills.iter().filter(|f| f.commission_asset == rules.base_asset).map(|f| f.commission).sum();
    let held = position::quantity_held(rules, buy.executed_qty, base_commission);
    let entry = buy.cum_quote_qty / buy.executed_qty;
    let settings = StopSettings { stop_loss_pct: Decimal::from(2), stop_limit_gap_pct: Decimal::new(5, 1) };
    let Protection::Stop { quantity, stop_price, order_type, limit_price } =
        position::plan_protection(rules, held, entry, settings)
    else {
        return None;
    };
    let stop = NewOrder {
        symbol: buy.symbol.clone(),
        side: Side::Sell,
        order_type,
        quantity,
        price: limit_price,
        stop_price: Some(stop_price),
        client_order_id,
    };
    gateway.place_order(&stop).ok().map(|r| r.client_order_id)
}
