//! Market data endpoints beyond the book: `ticker/24hr`, `ticker/price`, `avgPrice`, `klines`
//! (and `uiKlines`), `trades`, `historicalTrades` and `aggTrades`, in the shapes of rest-api.md
//! "Market Data endpoints".
//!
//! This exchange has one account and a synthetic book, so its trades are the account's own
//! trades: they are the public trade list, the candles' volume and the tickers' counts. The
//! "last price" is the latest trade's price, or, before any trade of the symbol, the book's mid
//! rounded down to the tick (always a price the symbol could trade at).

use crate::params::Params;
use crate::reply::ApiError;
use genesis::domain::money::{round_down_to_step, Decimal};
use genesis::exchange::binance::wire::fmt_decimal;
use genesis::exchange::sim::{Simulator, Trade};
use serde_json::{json, Value};

const SYMBOLS_RANGE: &str = "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$";
const DAY_MS: i64 = 86_400_000;
const AVG_PRICE_MINS: i64 = 5;

/// The symbols a ticker request names: `symbol`, a JSON list in `symbols`, or every symbol.
/// Both at once: -1128, as Binance ("cannot be used in combination").
pub fn requested_symbols(p: &Params, sim: &Simulator) -> Result<(Vec<String>, bool), ApiError> {
    match (p.get("symbol"), p.get("symbols")) {
        (Some(_), Some(_)) => Err(ApiError::bad(-1128, "Combination of optional parameters invalid.")),
        (Some(symbol), None) => {
            sim.rules(symbol).ok_or_else(|| ApiError::bad(-1121, "Invalid symbol."))?;
            Ok((vec![symbol.to_string()], true))
        }
        (None, Some(list)) => {
            let names: Vec<String> =
                serde_json::from_str(list).map_err(|_| ApiError::illegal("symbols", SYMBOLS_RANGE))?;
            if names.iter().any(|n| sim.rules(n).is_none()) {
                return Err(ApiError::bad(-1121, "Invalid symbol."));
            }
            Ok((names, false))
        }
        (None, None) => Ok((sim.exchange_info().into_iter().map(|r| r.symbol).collect(), false)),
    }
}

/// One object for `symbol`, an array otherwise.
fn one_or_all(p: &Params, sim: &Simulator, item: impl Fn(&str) -> Result<Value, ApiError>) -> Result<Value, ApiError> {
    let (names, single) = requested_symbols(p, sim)?;
    let mut items = names.iter().map(|n| item(n)).collect::<Result<Vec<_>, _>>()?;
    Ok(if single { items.remove(0) } else { Value::Array(items) })
}

/// The price the symbol last traded at (see the module comment).
pub fn last_price(sim: &Simulator, symbol: &str) -> Result<Decimal, ApiError> {
    if let Some(t) = sim.last_trade(symbol)? {
        return Ok(t.price);
    }
    let top = sim.book_ticker(symbol)?;
    let tick = sim.rules(symbol).map_or(Decimal::ZERO, |r| r.tick_size);
    Ok(round_down_to_step((top.bid + top.ask) / Decimal::TWO, tick))
}

/// `GET /api/v3/ticker/price`.
pub fn ticker_price(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    one_or_all(p, sim, |s| Ok(json!({"symbol": s, "price": fmt_decimal(last_price(sim, s)?)})))
}

/// Request weight of `ticker/24hr` (rest-api.md: by symbols asked for).
pub fn ticker_24hr_weight(p: &Params) -> u64 {
    if p.get("symbol").is_some() {
        return 2;
    }
    match p.get("symbols").and_then(|l| serde_json::from_str::<Vec<String>>(l).ok()) {
        Some(list) if list.len() <= 20 => 2,
        Some(list) if list.len() <= 100 => 40,
        _ => 80,
    }
}

/// `GET /api/v3/ticker/24hr` (`type` FULL or MINI): the rolling 24 h ending now.
pub fn ticker_24hr(p: &Params, sim: &Simulator, now_ms: i64) -> Result<Value, ApiError> {
    let mini = match p.get("type") {
        None | Some("FULL") => false,
        Some("MINI") => true,
        Some(_) => return Err(ApiError::bad(-1130, "Data sent for parameter 'type' is not valid.")),
    };
    one_or_all(p, sim, |symbol| {
        let open_time = now_ms - DAY_MS;
        let trades = sim.trades_since(symbol, open_time)?;
        let last = last_price(sim, symbol)?;
        let open = trades.first().map_or(last, |t| t.price);
        let high = trades.iter().map(|t| t.price).max().unwrap_or(last);
        let low = trades.iter().map(|t| t.price).min().unwrap_or(last);
        let volume: Decimal = trades.iter().map(|t| t.qty).sum();
        let quote_volume: Decimal = trades.iter().map(|t| t.quote_qty).sum();
        let (first_id, last_id) = match (trades.first(), trades.last()) {
            (Some(f), Some(l)) => (f.id, l.id),
            _ => (-1, -1),
        };
        let mut v = json!({
            "symbol": symbol,
            "openPrice": fmt_decimal(open),
            "highPrice": fmt_decimal(high),
            "lowPrice": fmt_decimal(low),
            "lastPrice": fmt_decimal(last),
            "volume": fmt_decimal(volume),
            "quoteVolume": fmt_decimal(quote_volume),
            "openTime": open_time,
            "closeTime": now_ms,
            "firstId": first_id,
            "lastId": last_id,
            "count": trades.len(),
        });
        if !mini {
            let change = last - open;
            let percent =
                if open.is_zero() { Decimal::ZERO } else { (change / open * Decimal::ONE_HUNDRED).round_dp(3) };
            let weighted = quote_volume.checked_div(volume).unwrap_or(Decimal::ZERO);
            let top = sim.book_ticker(symbol)?;
            v["priceChange"] = json!(fmt_decimal(change));
            v["priceChangePercent"] = json!(format!("{percent:.3}"));
            v["weightedAvgPrice"] = json!(fmt_decimal(weighted));
            v["prevClosePrice"] = json!(fmt_decimal(open));
            v["lastQty"] = json!(fmt_decimal(trades.last().map_or(Decimal::ZERO, |t| t.qty)));
            v["bidPrice"] = json!(fmt_decimal(top.bid));
            v["bidQty"] = json!(fmt_decimal(top.bid_qty));
            v["askPrice"] = json!(fmt_decimal(top.ask));
            v["askQty"] = json!(fmt_decimal(top.ask_qty));
        }
        Ok(v)
    })
}

/// `GET /api/v3/avgPrice`: the volume-weighted price of the last 5 minutes' trades, or the
/// last price when there were none.
pub fn avg_price(p: &Params, sim: &Simulator, now_ms: i64) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let price = average_price(sim, symbol, now_ms)?;
    let close_time = sim.last_trade(symbol)?.map_or(now_ms, |t| t.time_ms);
    Ok(json!({"mins": AVG_PRICE_MINS, "price": fmt_decimal(price), "closeTime": close_time}))
}

/// The `avgPrice` price (also PERCENT_PRICE_BY_SIDE's reference).
pub fn average_price(sim: &Simulator, symbol: &str, now_ms: i64) -> Result<Decimal, ApiError> {
    let since = now_ms - AVG_PRICE_MINS * 60_000;
    let trades = sim.trades_since(symbol, since)?;
    let volume: Decimal = trades.iter().map(|t| t.qty).sum();
    let quote: Decimal = trades.iter().map(|t| t.quote_qty).sum();
    match quote.checked_div(volume) {
        Some(avg) if !volume.is_zero() => Ok(avg),
        _ => last_price(sim, symbol),
    }
}

/// `limit`: default 500, 1..=1000 (rest-api.md for trades, aggTrades and klines).
fn limit(p: &Params) -> Result<usize, ApiError> {
    let limit = p.int("limit")?.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad(-1130, "Data sent for parameter 'limit' is not valid."));
    }
    Ok(usize::try_from(limit).unwrap_or(500))
}

/// `GET /api/v3/trades` (most recent `limit`) and `historicalTrades` (`fromId` on).
pub fn trades(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let limit = limit(p)?;
    let from_id = p.int("fromId")?;
    let mut list: Vec<Trade> = sim.my_trades(symbol)?;
    if let Some(from) = from_id {
        list.retain(|t| t.id >= from);
        list.truncate(limit);
    } else {
        let skip = list.len().saturating_sub(limit);
        list.drain(..skip);
    }
    Ok(Value::Array(
        list.iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "price": fmt_decimal(t.price),
                    "qty": fmt_decimal(t.qty),
                    "quoteQty": fmt_decimal(t.quote_qty),
                    "time": t.time_ms,
                    "isBuyerMaker": t.is_buyer == t.is_maker,
                    "isBestMatch": true,
                })
            })
            .collect(),
    ))
}

/// `GET /api/v3/aggTrades`: trades of one order at one price, consecutive, make one aggregate
/// whose id (`a`) is its first trade's id.
pub fn agg_trades(p: &Params, sim: &Simulator) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let limit = limit(p)?;
    let from_id = p.int("fromId")?;
    let start = p.int("startTime")?;
    let end = p.int("endTime")?;
    let mut aggs: Vec<(Trade, i64)> = Vec::new();
    for t in sim.my_trades(symbol)? {
        match aggs.last_mut() {
            Some((first, last_id)) if first.order_id == t.order_id && first.price == t.price => {
                first.qty += t.qty;
                *last_id = t.id;
            }
            _ => {
                let id = t.id;
                aggs.push((t, id));
            }
        }
    }
    aggs.retain(|(a, _)| {
        from_id.is_none_or(|f| a.id >= f) && start.is_none_or(|s| a.time_ms >= s) && end.is_none_or(|e| a.time_ms <= e)
    });
    if from_id.is_some() || start.is_some() {
        aggs.truncate(limit);
    } else {
        let skip = aggs.len().saturating_sub(limit);
        aggs.drain(..skip);
    }
    Ok(Value::Array(
        aggs.iter()
            .map(|(a, last_id)| {
                json!({
                    "a": a.id,
                    "p": fmt_decimal(a.price),
                    "q": fmt_decimal(a.qty),
                    "f": a.id,
                    "l": last_id,
                    "T": a.time_ms,
                    "m": a.is_buyer == a.is_maker,
                    "M": true,
                })
            })
            .collect(),
    ))
}

/// A kline interval's length, ms (`1M` is taken as 30 days).
fn interval_ms(text: &str) -> Option<i64> {
    const MIN: i64 = 60_000;
    Some(match text {
        "1s" => 1_000,
        "1m" => MIN,
        "3m" => 3 * MIN,
        "5m" => 5 * MIN,
        "15m" => 15 * MIN,
        "30m" => 30 * MIN,
        "1h" => 60 * MIN,
        "2h" => 120 * MIN,
        "4h" => 240 * MIN,
        "6h" => 360 * MIN,
        "8h" => 480 * MIN,
        "12h" => 720 * MIN,
        "1d" => DAY_MS,
        "3d" => 3 * DAY_MS,
        "1w" => 7 * DAY_MS,
        "1M" => 30 * DAY_MS,
        _ => return None,
    })
}

/// `GET /api/v3/klines` and `uiKlines`: one candle per interval (UTC, aligned to the epoch),
/// from the trades in it; an interval without trades is flat at the previous close.
pub fn klines(p: &Params, sim: &Simulator, now_ms: i64) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    let interval = p.require("interval")?;
    let len = interval_ms(interval).ok_or_else(|| ApiError::bad(-1120, "Invalid interval."))?;
    let limit = i64::try_from(limit(p)?).unwrap_or(500);
    let start = p.int("startTime")?;
    let end = p.int("endTime")?.unwrap_or(now_ms).min(now_ms);
    let last_open = end - end.rem_euclid(len);
    let first_open = match start {
        Some(s) => s - s.rem_euclid(len),
        None => last_open - (limit - 1) * len,
    };
    let trades = sim.my_trades(symbol)?;
    let mut carry = match trades.iter().rev().find(|t| t.time_ms < first_open) {
        Some(t) => t.price,
        None => trades.first().map_or(last_price(sim, symbol)?, |t| t.price),
    };
    let mut out = Vec::new();
    let mut open_time = first_open;
    while open_time <= last_open && out.len() < usize::try_from(limit).unwrap_or(500) {
        let close_time = open_time + len - 1;
        let inside: Vec<&Trade> = trades.iter().filter(|t| t.time_ms >= open_time && t.time_ms <= close_time).collect();
        let open = inside.first().map_or(carry, |t| t.price);
        let close = inside.last().map_or(carry, |t| t.price);
        let high = inside.iter().map(|t| t.price).max().unwrap_or(carry);
        let low = inside.iter().map(|t| t.price).min().unwrap_or(carry);
        let volume: Decimal = inside.iter().map(|t| t.qty).sum();
        let quote: Decimal = inside.iter().map(|t| t.quote_qty).sum();
        let taker_buys: Vec<&&Trade> = inside.iter().filter(|t| t.is_buyer != t.is_maker).collect();
        let taker_base: Decimal = taker_buys.iter().map(|t| t.qty).sum();
        let taker_quote: Decimal = taker_buys.iter().map(|t| t.quote_qty).sum();
        out.push(json!([
            open_time,
            fmt_decimal(open),
            fmt_decimal(high),
            fmt_decimal(low),
            fmt_decimal(close),
            fmt_decimal(volume),
            close_time,
            fmt_decimal(quote),
            inside.len(),
            fmt_decimal(taker_base),
            fmt_decimal(taker_quote),
            "0",
        ]));
        carry = close;
        open_time += len;
    }
    Ok(Value::Array(out))
}
