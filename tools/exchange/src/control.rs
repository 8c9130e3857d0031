//! `/sim/*`, the control endpoints (no auth, loopback peers only): the fault plan, prices, the
//! state, dropping streams; and the random walk.

use crate::api::App;
use crate::faults::Fault;
use crate::reply::{ApiError, HttpRequest, Reply};
use genesis::domain::money::Decimal;
use genesis::domain::order::OrderReport;
use genesis::exchange::binance::user_data::Change;
use genesis::exchange::binance::wire::{account_json, book_ticker_json, order_query_json};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

impl App {
    /// `/sim/*`: the fault plan, prices, state. No auth; loopback peers only.
    pub(crate) fn control(&self, req: &HttpRequest<'_>, now: i64) -> Reply {
        if !req.loopback {
            return ApiError::new(403, -1, "The /sim endpoints answer loopback peers only.").reply();
        }
        if let Some((status, body)) = self.market.control(req.method, req.path, req.body) {
            return Reply::json(status, body);
        }
        let bad = |msg: String| ApiError::bad(-1100, msg).reply();
        match (req.method, req.path.strip_suffix('/').unwrap_or(req.path)) {
            ("GET", "/sim/fault") => Reply::json(200, self.fault_json()),
            ("DELETE", "/sim/fault") => {
                self.faults.lock().clear();
                self.skew_ms.store(0, Ordering::Relaxed);
                Reply::json(200, self.fault_json())
            }
            ("POST", "/sim/fault") => {
                let value: Value = match serde_json::from_str(req.body) {
                    Ok(v) => v,
                    Err(e) => return bad(format!("body is not JSON: {e}")),
                };
                let items = match value {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                let mut parsed = Vec::with_capacity(items.len());
                for item in &items {
                    let fault = match item.get("spec").and_then(Value::as_str) {
                        Some(spec) => Fault::parse(spec),
                        None => Fault::from_json(item),
                    };
                    match fault {
                        Ok(f) => parsed.push(f),
                        Err(e) => return bad(e),
                    }
                }
                let mut plan = self.faults.lock();
                for fault in parsed {
                    log::info!("fault added: {}", fault.spec());
                    plan.add(fault);
                }
                drop(plan);
                Reply::json(200, self.fault_json())
            }
            ("POST", "/sim/price") => self.set_price(req.body, now),
            ("POST", "/sim/stream/drop") => Reply::json(200, json!({"dropped": self.drop_streams()})),
            ("GET", "/sim/state") => Reply::json(200, self.state_json(now)),
            (_, "/sim/fault" | "/sim/price" | "/sim/state" | "/sim/stream/drop") => {
                ApiError::new(405, -1, format!("Method {} is not allowed.", req.method)).reply()
            }
            _ => ApiError::new(404, -1, format!("Unknown endpoint {}.", req.path)).reply(),
        }
    }

    fn fault_json(&self) -> Value {
        let mut v = self.faults.lock().to_json();
        v["skewMs"] = json!(self.skew_ms.load(Ordering::Relaxed));
        v
    }

    fn set_price(&self, body: &str, now: i64) -> Reply {
        let bad = |msg: &str| ApiError::bad(-1100, msg).reply();
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return bad("body must be JSON {\"symbol\":…,\"bid\":\"…\",\"ask\":\"…\"}");
        };
        let decimal = |name: &str| -> Option<Decimal> {
            match value.get(name)? {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.to_string().parse().ok(),
                _ => None,
            }
        };
        let Some(symbol) = value.get("symbol").and_then(Value::as_str) else {
            return bad("missing \"symbol\"");
        };
        let (Some(bid), Some(ask)) = (decimal("bid"), decimal("ask")) else {
            return bad("\"bid\" and \"ask\" must be decimal strings");
        };
        let mut sim = self.sim.lock();
        match sim.set_price(symbol, bid, ask) {
            Ok(mut changed) => {
                self.tifs.expire_triggered(&mut sim, &mut changed);
                self.uncount_first_fills(&changed, now);
                self.market.publish(sim.book_ticker(symbol).ok());
                let reply = Reply::json(200, Value::Array(changed.iter().map(order_query_json).collect()));
                self.push(changed.into_iter().map(|r| (r, Change::Updated, None)).collect(), self.server_now_ms(now));
                reply
            }
            Err(e) => ApiError::from(e).reply(),
        }
    }

    /// Orders that traded for the first time in a price move (all their fills are in this
    /// change) leave the unfilled-order count, as a placement that traded at once does.
    pub(crate) fn uncount_first_fills(&self, changed: &[OrderReport], now: i64) {
        let first_fills = changed
            .iter()
            .filter(|r| {
                r.executed_qty > Decimal::ZERO && r.fills.iter().map(|f| f.qty).sum::<Decimal>() == r.executed_qty
            })
            .count();
        let mut limits = self.limits.lock();
        for _ in 0..first_fills {
            limits.uncount_filled_order(now);
        }
    }

    fn state_json(&self, now: i64) -> Value {
        let (used, (count_10s, count_1d), limit) = {
            let mut limits = self.limits.lock();
            (limits.used_weight(now), limits.order_counts(now), limits.order_limit_10s())
        };
        let sim = self.sim.lock();
        let books: Vec<Value> = sim
            .exchange_info()
            .iter()
            .filter_map(|r| sim.book_ticker(&r.symbol).ok())
            .map(|t| book_ticker_json(&t))
            .collect();
        let open: Vec<Value> = sim.open_orders(None).unwrap_or_default().iter().map(order_query_json).collect();
        json!({
            "serverTime": self.server_now_ms(now),
            "skewMs": self.skew_ms.load(Ordering::Relaxed),
            "usedWeight1m": used,
            "orderCount10s": count_10s,
            "orderCount1d": count_1d,
            "orderLimit10s": limit,
            "balances": account_json(&sim.balances())["balances"],
            "openOrders": open,
            "books": books,
        })
    }

    /// One random-walk step; returns how many orders it moved.
    pub fn walk(&self) -> usize {
        let mut sim = self.sim.lock();
        match sim.random_walk_step() {
            Ok(mut changed) => {
                self.tifs.expire_triggered(&mut sim, &mut changed);
                self.market.publish(sim.exchange_info().iter().filter_map(|r| sim.book_ticker(&r.symbol).ok()));
                self.uncount_first_fills(&changed, crate::server::local_ms());
                let now = self.server_now_ms(crate::server::local_ms());
                self.push(changed.iter().map(|r| (r.clone(), Change::Updated, None)).collect(), now);
                for r in &changed {
                    log::info!(
                        "walk: {} {} {} -> {}",
                        r.symbol,
                        r.order_type.as_str(),
                        r.client_order_id,
                        r.status.as_str()
                    );
                }
                changed.len()
            }
            Err(e) => {
                log::warn!("walk: {e}");
                0
            }
        }
    }
}
