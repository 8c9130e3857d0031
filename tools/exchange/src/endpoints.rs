//! The routing table: which endpoint a method and path are, its weight, whether it is SIGNED,
//! its fault step, and the handler it runs; the market-wide handlers (`exchangeInfo`, book
//! tickers, `depth`) live here too.

use crate::faults::Step;
use crate::ids::IdGen;
use crate::limits::LimitConfig;
use crate::orders::{
    account, all_orders, cancel_open_orders, cancel_order, my_trades, new_order, open_orders, query_order,
};
use crate::params::Params;
use crate::reply::ApiError;
use crate::time_in_force::TifBook;
use genesis::domain::money::Decimal;
use genesis::domain::order::OrderReport;
use genesis::exchange::binance::user_data::Change;
use genesis::exchange::binance::wire::{
    book_ticker_json, exchange_info_json, fmt_decimal, server_time_json, RateLimit,
};
use genesis::exchange::sim::Simulator;
use serde_json::{json, Value};
use std::cell::RefCell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Time,
    ExchangeInfo,
    BookTicker,
    TickerPrice,
    Ticker24hr,
    AvgPrice,
    Klines,
    Trades,
    AggTrades,
    Depth,
    NewOrder,
    TestOrder,
    CancelReplace,
    QueryOrder,
    CancelOrder,
    OpenOrders,
    CancelOpenOrders,
    AllOrders,
    MyTrades,
    Account,
}

/// The route's answer when nothing matched.
pub(crate) enum NoRoute {
    NotFound,
    MethodNotAllowed,
}

impl Endpoint {
    pub(crate) fn route(method: &str, path: &str) -> Result<Endpoint, NoRoute> {
        use Endpoint::*;
        let path = path.strip_suffix('/').unwrap_or(path);
        let candidates: &[(&str, Endpoint)] = match path {
            "/api/v3/ping" => &[("GET", Ping)],
            "/api/v3/time" => &[("GET", Time)],
            "/api/v3/exchangeInfo" => &[("GET", ExchangeInfo)],
            "/api/v3/ticker/bookTicker" => &[("GET", BookTicker)],
            "/api/v3/ticker/price" => &[("GET", TickerPrice)],
            "/api/v3/ticker/24hr" => &[("GET", Ticker24hr)],
            "/api/v3/avgPrice" => &[("GET", AvgPrice)],
            "/api/v3/klines" | "/api/v3/uiKlines" => &[("GET", Klines)],
            "/api/v3/trades" | "/api/v3/historicalTrades" => &[("GET", Trades)],
            "/api/v3/aggTrades" => &[("GET", AggTrades)],
            "/api/v3/depth" => &[("GET", Depth)],
            "/api/v3/order" => &[("POST", NewOrder), ("GET", QueryOrder), ("DELETE", CancelOrder)],
            "/api/v3/order/test" => &[("POST", TestOrder)],
            "/api/v3/order/cancelReplace" => &[("POST", CancelReplace)],
            "/api/v3/openOrders" => &[("GET", OpenOrders), ("DELETE", CancelOpenOrders)],
            "/api/v3/allOrders" => &[("GET", AllOrders)],
            "/api/v3/myTrades" => &[("GET", MyTrades)],
            "/api/v3/account" => &[("GET", Account)],
            _ => return Err(NoRoute::NotFound),
        };
        candidates.iter().find(|(m, _)| *m == method).map(|(_, e)| *e).ok_or(NoRoute::MethodNotAllowed)
    }

    pub fn signed(self) -> bool {
        use Endpoint::*;
        matches!(
            self,
            NewOrder
                | TestOrder
                | CancelReplace
                | QueryOrder
                | CancelOrder
                | OpenOrders
                | CancelOpenOrders
                | AllOrders
                | MyTrades
                | Account
        )
    }

    /// Request weight, as in the reference.
    pub fn weight(self, p: &Params) -> u64 {
        use Endpoint::*;
        let with_symbol = p.get("symbol").is_some();
        match self {
            Ping | Time => 1,
            ExchangeInfo | AllOrders | Account => 20,
            BookTicker | TickerPrice => {
                if with_symbol {
                    2
                } else {
                    4
                }
            }
            Ticker24hr => crate::market_data::ticker_24hr_weight(p),
            AvgPrice | Klines => 2,
            Trades => 25,
            AggTrades => 4,
            Depth => match depth_limit(p) {
                0..=100 => 5,
                101..=500 => 25,
                501..=1000 => 50,
                _ => 250,
            },
            NewOrder | CancelReplace | CancelOrder | CancelOpenOrders => 1,
            TestOrder => {
                if p.get("computeCommissionRates") == Some("true") {
                    20
                } else {
                    1
                }
            }
            QueryOrder => 4,
            OpenOrders => {
                if with_symbol {
                    6
                } else {
                    80
                }
            }
            MyTrades => {
                if p.get("orderId").is_some() {
                    5
                } else {
                    20
                }
            }
        }
    }

    /// Counted against the ORDERS limits (`--order-limit`, the daily count), as Binance counts
    /// them: a placement, and a cancel-replace (even when its new order is not attempted).
    pub(crate) fn places_orders(self) -> bool {
        matches!(self, Endpoint::NewOrder | Endpoint::CancelReplace)
    }

    /// The fault step this request is.
    pub fn step(self, p: &Params) -> Option<Step> {
        match self {
            Endpoint::NewOrder => match p.get("type") {
                Some("MARKET") => Some(Step::Place),
                Some("STOP_LOSS") | Some("STOP_LOSS_LIMIT") => Some(Step::Stop),
                _ => None,
            },
            Endpoint::CancelReplace => Some(Step::CancelReplace),
            Endpoint::QueryOrder => Some(Step::Query),
            Endpoint::CancelOrder => Some(Step::Cancel),
            Endpoint::OpenOrders => Some(Step::OpenOrders),
            Endpoint::CancelOpenOrders => Some(Step::CancelAll),
            Endpoint::AllOrders => Some(Step::AllOrders),
            Endpoint::Account => Some(Step::Account),
            Endpoint::ExchangeInfo => Some(Step::ExchangeInfo),
            Endpoint::Time => Some(Step::Time),
            Endpoint::MyTrades => Some(Step::MyTrades),
            _ => None,
        }
    }

    pub(crate) fn execute(self, p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        use Endpoint::*;
        match self {
            Ping => Ok(json!({})),
            Time => Ok(server_time_json(ctx.server_now_ms)),
            ExchangeInfo => exchange_info(p, sim, ctx),
            BookTicker => tickers(p, sim, book_ticker_json),
            TickerPrice => crate::market_data::ticker_price(p, sim),
            Ticker24hr => crate::market_data::ticker_24hr(p, sim, ctx.server_now_ms),
            AvgPrice => crate::market_data::avg_price(p, sim, ctx.server_now_ms),
            Klines => crate::market_data::klines(p, sim, ctx.server_now_ms),
            Trades => crate::market_data::trades(p, sim),
            AggTrades => crate::market_data::agg_trades(p, sim),
            Depth => depth(p, sim, ctx),
            NewOrder => new_order(p, sim, ctx, false),
            TestOrder => new_order(p, sim, ctx, true),
            CancelReplace => crate::cancel_replace::cancel_replace(p, sim, ctx),
            QueryOrder => query_order(p, sim, ctx.tifs),
            CancelOrder => cancel_order(p, sim, ctx),
            OpenOrders => open_orders(p, sim),
            CancelOpenOrders => cancel_open_orders(p, sim, ctx),
            AllOrders => all_orders(p, sim, ctx.tifs),
            MyTrades => my_trades(p, sim),
            Account => account(p, sim),
        }
    }
}

/// What the handlers need besides the parameters and the simulator.
pub struct Ctx<'a> {
    pub server_now_ms: i64,
    pub limits: LimitConfig,
    pub ids: &'a IdGen,
    /// IOC and FOK orders, shown as such.
    pub tifs: &'a TifBook,
    /// Each symbol's STP modes and each order's.
    pub stp: &'a crate::stp::StpBook,
    /// The order filters the simulator lacks.
    pub filters: &'a crate::filters::FilterBook,
    /// The orders the request changed, for the user data stream: report, kind of change, and
    /// the cancel request's client id for a cancel.
    pub changes: RefCell<Vec<(OrderReport, Change, Option<String>)>>,
}

fn depth_limit(p: &Params) -> u64 {
    p.get("limit").and_then(|l| l.parse::<u64>().ok()).unwrap_or(100).clamp(1, 5000)
}

pub fn rate_limits(limits: &LimitConfig) -> Vec<RateLimit> {
    vec![
        RateLimit::new("REQUEST_WEIGHT", "MINUTE", 1, limits.weight_1m),
        RateLimit::new("ORDERS", "SECOND", 10, limits.orders_10s),
        RateLimit::new("ORDERS", "DAY", 1, limits.orders_1d),
        RateLimit::new("RAW_REQUESTS", "MINUTE", 5, limits.raw_requests_5m),
    ]
}

fn exchange_info(p: &Params, sim: &Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let all = sim.exchange_info();
    let wanted: Option<Vec<String>> = if let Some(symbol) = p.get("symbol") {
        Some(vec![symbol.to_string()])
    } else if let Some(list) = p.get("symbols") {
        Some(serde_json::from_str::<Vec<String>>(list).map_err(|_| {
            ApiError::illegal("symbols", "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$")
        })?)
    } else {
        None
    };
    let symbols = match wanted {
        None => all,
        Some(names) => names
            .iter()
            .map(|n| all.iter().find(|r| r.symbol == *n).cloned().ok_or_else(ApiError::invalid_symbol))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut info = exchange_info_json(&symbols, &rate_limits(&ctx.limits), ctx.server_now_ms);
    crate::checks::decorate_exchange_info(&mut info, ctx.stp);
    ctx.filters.decorate(&mut info);
    Ok(info)
}

fn tickers(
    p: &Params,
    sim: &Simulator,
    shape: impl Fn(&genesis::exchange::BookTicker) -> Value,
) -> Result<Value, ApiError> {
    if let Some(symbol) = p.get("symbol") {
        return Ok(shape(&sim.book_ticker(symbol)?));
    }
    let names: Vec<String> = match p.get("symbols") {
        Some(list) => serde_json::from_str(list).map_err(|_| {
            ApiError::illegal("symbols", "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$")
        })?,
        None => sim.exchange_info().into_iter().map(|r| r.symbol).collect(),
    };
    let items = names.iter().map(|n| sim.book_ticker(n).map(|t| shape(&t))).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(items))
}

fn depth(p: &Params, sim: &Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    p.int("limit")?;
    let limit = usize::try_from(depth_limit(p)).unwrap_or(100);
    let (bids, asks) = sim.depth(symbol, limit)?;
    let levels = |side: Vec<(Decimal, Decimal)>| {
        side.into_iter().map(|(price, qty)| json!([fmt_decimal(price), fmt_decimal(qty)])).collect::<Vec<_>>()
    };
    Ok(json!({
        "lastUpdateId": ctx.server_now_ms,
        "bids": levels(bids),
        "asks": levels(asks),
    }))
}
