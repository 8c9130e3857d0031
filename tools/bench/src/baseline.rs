//! The baseline: the exchange requests the engine makes for one order (the placement, then
//! the verification query), sent bare through the engine's own gateway: signed, on a warm
//! keep-alive connection (binance) or on the engine's own journaled simulator (sim), nothing around
//! them. A sell's placement is what the engine sends: a cancel-replace of the stop-loss its buy
//! was protected with (placed untimed after the buy, as the engine does).
//!
//! The pairs go out at the run's `--rate`, as the engine's orders did: an idle gap alone makes
//! the same bare request slower (a sim placement back to back: 4 µs at the median; one every
//! 500 µs: 11 µs, caches and the CPU gone cold in between), and the engine's overhead is what it
//! adds to a request at that cadence. A second pass back to back is reported beside it.

use crate::args::{Args, ExchangeKind};
use crate::run::{Scratch, Server};
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

/// Unmeasured pairs sent first, so connection set-up and first-touch costs are not counted.
const WARM_UP: u64 = 20;

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
    /// Placement + query with no gap between pairs (a hot loop), for reference.
    pub back_to_back: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

fn micros(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_micros() as u64
}

pub fn run(args: &Args, server: Option<&Server>) -> Result<Baseline, String> {
    if args.baseline == 0 {
        return Ok(Baseline::default());
    }
    match (args.exchange, server) {
        (ExchangeKind::Binance, Some(server)) => {
            let config = BinanceConfig::new(server.url.clone(), server.api_key.as_str(), server.api_secret.as_str());
            let gateway = BinanceGateway::connect(config).map_err(|e| format!("baseline gateway: {e}"))?;
            Ok(measure(gateway, args, format!("BinanceGateway → genesis-exchange at {}", server.url)))
        }
        _ => {
            // The same simulator as the engine embeds, journal on disk included: the journal's
            // write per request is the simulated exchange's cost, not the engine's.
            let dir = Scratch::new().map_err(|e| format!("baseline state dir {e}"))?;
            let path = genesis::exchange::sim::state_path(&dir.0.join("baseline.db"));
            let sim = Simulator::open(&path, SimConfig { seed: args.seed, ..SimConfig::default() })
                .map_err(|e| format!("baseline simulator {}: {e}", path.display()))?;
            // `measure` consumes the simulator, so it is gone before `dir` is removed.
            Ok(measure(
                SimGateway::new(sim),
                args,
                "SimGateway on the embedded, journaled Simulator (in process)".into(),
            ))
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

fn measure(mut gateway: impl Exchange, args: &Args, target: String) -> Baseline {
    let mut b = Baseline { target, ..Baseline::default() };
    let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    b.paced_every_us = gap.map(|g| g.as_micros() as u64);
    let hot = pass(&mut gateway, args, None, "hot", &mut b);
    b.back_to_back = hot.pair;
    let cadence = pass(&mut gateway, args, gap, "paced", &mut b);
    Baseline { sign: cadence.sign, place: cadence.place, query: cadence.query, pair: cadence.pair, ..b }
}

/// One pass of `args.baseline` measured pairs (after the warm-up), a pair every `gap` (none:
/// back to back). Errors are counted into `b`.
///
/// The requests are the engine's: a buy is placed and queried, then (untimed, as the engine
/// does it after the fill is verified) protected with the stop-loss the engine would place; the
/// sell that closes it is a cancel-replace of that stop, then queried.
fn pass(gateway: &mut impl Exchange, args: &Args, gap: Option<Duration>, name: &str, b: &mut Baseline) -> Baseline {
    let mut out = Baseline::default();
    let rules: HashMap<String, SymbolRules> = match gateway.exchange_info() {
        Ok(rules) => rules.into_iter().map(|r| (r.symbol.clone(), r)).collect(),
        Err(e) => {
            b.errors += 1;
            b.first_error.get_or_insert(format!("exchangeInfo: {e}"));
            return out;
        }
    };
    // The same stream as the engine gets (a different seed would do as well: the requests are
    // the same kind); buy/sell alternate so balances hold.
    let total = WARM_UP * 2 + args.baseline;
    let nonce = std::process::id();
    let t0 = Instant::now();
    let mut stop: Option<String> = None;
    for (i, order) in Workload::new(args.seed).take(total as usize).enumerate() {
        let request = new_order(&order, format!("bench-{nonce}-{name}-{i}"));
        if let Some(gap) = gap {
            // On a schedule, as the harness writes the engine's lines.
            let due = t0 + gap * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let start = Instant::now();
        let placed = match stop.take() {
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
            stop = protect(gateway, &rules, report, format!("bench-{nonce}-{name}-{i}-stop"));
        }
        if (i as u64) < WARM_UP * 2 {
            continue;
        }
        if let Some(error) = error {
            b.errors += 1;
            b.first_error.get_or_insert(error);
            continue;
        }
        out.sign.push(sign_ns / 1000);
        out.place.push(micros(start, placed_at));
        out.query.push(micros(placed_at, queried_at));
        out.pair.push(micros(start, queried_at));
    }
    out
}

/// Places the stop-loss the engine would place for a filled buy; its client order id, if placed.
fn protect(
    gateway: &mut impl Exchange,
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
