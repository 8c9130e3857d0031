//! Persist stage: owns the SQLite connection. Writes every order, position and event,
//! batching what is queued into one transaction (each state change stays atomic: a batch
//! commits whole or not at all), and answers queries once everything before them is written.

use super::msg::{Query, ToPersist};
use crate::domain::format_ts;
use crate::domain::order::Order;
use crate::domain::position::Position;
use crate::events::{Bus, Event, EventKind};
use crate::store::{Store, Write};
use crossbeam_channel::Receiver;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most messages folded into one transaction.
const MAX_BATCH: usize = 1024;

pub struct Persist {
    pub store: Store,
    /// Told when the database refuses writes, so intake refuses new orders meanwhile.
    pub account: Arc<super::account::Account>,
    pub stats: Arc<super::stats::Stats>,
    pub guard: Arc<super::guard::ExchangeGuard>,
    /// Publishes query replies (to stdout only: this stage writes its own events to the log).
    pub bus: Bus,
    /// Set by the checkpoint thread after each background pass: the writer finishes the round.
    pub checkpoint_due: Arc<AtomicBool>,
}

impl Persist {
    pub fn run(mut self, from_stages: Receiver<ToPersist>) {
        let mut batch: Vec<ToPersist> = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = from_stages.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match from_stages.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            self.handle(&mut batch);
            if self.checkpoint_due.swap(false, Ordering::Relaxed) {
                self.finish_checkpoint();
            }
        }
    }

    /// Between two transactions, so the WAL starts over (see [`Store::finish_checkpoint`]).
    fn finish_checkpoint(&mut self) {
        let started = std::time::Instant::now();
        match self.store.finish_checkpoint() {
            Ok(whole) => log::debug!("WAL checkpoint finished in {:?}; whole WAL copied: {whole}", started.elapsed()),
            // Not fatal: the WAL only grows until a later round succeeds.
            Err(e) => log::warn!("finishing the WAL checkpoint: {e}"),
        }
    }

    fn handle(&mut self, batch: &mut Vec<ToPersist>) {
        let mut start = 0;
        while start < batch.len() {
            // Writes up to the next query commit first, so the query sees them.
            let end =
                batch[start..].iter().position(|m| matches!(m, ToPersist::Query(_))).map_or(batch.len(), |i| start + i);
            self.commit(&batch[start..end]);
            if let Some(ToPersist::Query(query)) = batch.get(end) {
                let reply = self.answer(query);
                self.commit(&[ToPersist::Event(Arc::clone(&reply))]);
            }
            start = end + 1;
        }
        batch.clear();
    }

    /// Commits the writes, retrying while the database refuses (locked, full, read-only):
    /// nothing is reported as logged until it is.
    fn commit(&mut self, messages: &[ToPersist]) {
        if messages.is_empty() {
            return;
        }
        let writes = latest_snapshots(messages);
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(10);
        let mut attempt = 0u32;
        loop {
            match self.store.write_batch(&writes) {
                Ok(()) => {
                    if attempt > 0 {
                        self.account.set_db_error(None);
                        self.bus.publish_stdout(Arc::new(Event::new(
                            EventKind::DatabaseOk,
                            "database writes succeed again; new orders accepted",
                        )));
                    }
                    self.stats.record_commit(started.elapsed().as_micros() as u64, writes.len());
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    log::error!(
                        "database write failed (attempt {attempt}): {e}; {} records kept in memory, retrying",
                        writes.len()
                    );
                    if attempt == 1 {
                        self.account.set_db_error(Some(e.to_string()));
                        self.bus.error(format!(
                            "database write failed: {e}; new orders refused, records kept in memory and retried"
                        ));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn answer(&self, query: &Query) -> Arc<Event> {
        let event = match query {
            Query::Status { id } => self.status(id),
            Query::Orders => self.orders(),
            Query::Positions => self.positions(),
            Query::Stats => {
                let breaker = match self.guard.breaker() {
                    super::guard::BreakerState::Closed => "CLOSED",
                    super::guard::BreakerState::Open { .. } => "OPEN",
                    super::guard::BreakerState::HalfOpen => "HALF_OPEN",
                };
                Ok(self.stats.event(vec![("circuit_breaker", Value::from(breaker))]))
            }
            // Exchange I/O answers it; never forwarded here.
            Query::Account { .. } => Ok(Event::new(EventKind::Error, "account: not answered by persist")),
        };
        let event = event.unwrap_or_else(|e| {
            Event::new(EventKind::Error, format!("query failed: {e}")).field("message", format!("query failed: {e}"))
        });
        let event = Arc::new(event);
        self.bus.publish_stdout(Arc::clone(&event));
        event
    }

    fn status(&self, id: &str) -> Result<Event, crate::store::StoreError> {
        let Some(order) = self.store.find_order(id)? else {
            return Ok(Event::new(EventKind::Error, format!("status: no order '{id}'"))
                .field("message", format!("status: no order '{id}'")));
        };
        let position = match order.position_id {
            Some(pid) => self.store.find_position(pid)?,
            None => None,
        };
        let stop = match &position {
            Some(p) => match p.stop_loss_order_id {
                Some(stop_id) => self.store.find_order(&stop_id.to_string())?,
                None => None,
            },
            None => None,
        };
        let stop_text = match (&position, &stop) {
            (Some(p), Some(s)) if s.order_id != order.order_id => {
                format!(
                    "; stop-loss {} at {} {} (position {} {})",
                    s.order_id,
                    s.stop_price.unwrap_or_default(),
                    s.status.as_str(),
                    p.position_id,
                    p.status.as_str()
                )
            }
            (Some(p), _) => format!("; position {} {}", p.position_id, p.status.as_str()),
            _ => String::new(),
        };
        let text = format!(
            "{} {} {} {} {} {}: filled {} avg {} slippage {} latency {}{}{}",
            order.order_id,
            order.client_order_id,
            order.side.as_str(),
            order.quantity,
            order.symbol,
            order.status.as_str(),
            order.filled_quantity,
            order.avg_price.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            order.slippage_percent.map(|s| format!("{s}%")).unwrap_or_else(|| "-".into()),
            order.latency_us.map(|us| format!("{:.3} ms", us as f64 / 1000.0)).unwrap_or_else(|| "-".into()),
            stop_text,
            order.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        );
        Ok(Event::new(EventKind::Status, text)
            .order(order.order_id, &order.client_order_id)
            .field("order", order_json(&order))
            .field("position", position.as_ref().map(position_json).unwrap_or(Value::Null))
            .field("stop_loss", stop.as_ref().map(order_json).unwrap_or(Value::Null)))
    }

    fn orders(&self) -> Result<Event, crate::store::StoreError> {
        let orders = self.store.open_orders()?;
        let text = if orders.is_empty() {
            "no open orders".to_string()
        } else {
            let list: Vec<String> = orders
                .iter()
                .map(|o| {
                    format!(
                        "{} {} {} {} {}{} {}",
                        o.order_id,
                        o.symbol,
                        o.side.as_str(),
                        o.exchange_type.as_str(),
                        o.quantity,
                        o.stop_price.map(|s| format!(" stop {s}")).unwrap_or_default(),
                        o.status.as_str()
                    )
                })
                .collect();
            format!("{} open: {}", orders.len(), list.join("; "))
        };
        Ok(Event::new(EventKind::Orders, text)
            .field("count", orders.len())
            .field("orders", orders.iter().map(order_json).collect::<Vec<_>>()))
    }

    fn positions(&self) -> Result<Event, crate::store::StoreError> {
        let positions = self.store.open_positions()?;
        let text = if positions.is_empty() {
            "no open positions".to_string()
        } else {
            let list: Vec<String> = positions
                .iter()
                .map(|p| {
                    format!(
                        "{} {} {} @ {} stop {} {}",
                        p.position_id,
                        p.symbol,
                        p.quantity,
                        p.entry_price,
                        p.stop_loss.map(|s| s.to_string()).unwrap_or_else(|| "none".into()),
                        p.status.as_str()
                    )
                })
                .collect();
            format!("{} open: {}", positions.len(), list.join("; "))
        };
        Ok(Event::new(EventKind::Positions, text)
            .field("count", positions.len())
            .field("positions", positions.iter().map(position_json).collect::<Vec<_>>()))
    }
}

fn dec(d: Option<crate::domain::money::Decimal>) -> Value {
    d.map(|d| Value::from(d.normalize().to_string())).unwrap_or(Value::Null)
}

pub fn order_json(o: &Order) -> Value {
    json!({
        "order_id": o.order_id,
        "client_order_id": o.client_order_id,
        "exchange_order_id": o.exchange_order_id,
        "position_id": o.position_id,
        "symbol": o.symbol,
        "side": o.side.as_str(),
        "type": o.order_type().as_str(),
        "exchange_type": o.exchange_type.as_str(),
        "role": o.role.as_str(),
        "status": o.status.as_str(),
        "quantity": o.quantity.normalize().to_string(),
        "filled_quantity": o.filled_quantity.normalize().to_string(),
        "avg_price": dec(o.avg_price),
        "expected_price": dec(o.expected_price),
        "stop_price": dec(o.stop_price),
        "limit_price": dec(o.limit_price),
        "slippage_percent": dec(o.slippage_percent),
        "latency_ms": o.latency_us.map(|us| us as f64 / 1000.0),
        "reason": o.reason,
        "created_at": format_ts(o.created_at_us),
    })
}

pub fn position_json(p: &Position) -> Value {
    json!({
        "position_id": p.position_id,
        "symbol": p.symbol,
        "quantity": p.quantity.normalize().to_string(),
        "entry_price": p.entry_price.normalize().to_string(),
        "stop_loss": dec(p.stop_loss),
        "stop_loss_order_id": p.stop_loss_order_id,
        "status": p.status.as_str(),
        "realized_pnl": p.realized_pnl.normalize().to_string(),
        "opened_at": format_ts(p.opened_at_us),
    })
}

/// The writes for one transaction. An order or a position is written as a whole snapshot
/// (an upsert), so when one appears several times in a transaction, only its last snapshot is
/// written: the committed rows are the same (the columns an upsert leaves alone on conflict are
/// fixed when the order or position is made), and nobody sees between the statements of one
/// transaction. In a flood most orders go from PENDING to FILLED within one batch, and the
/// upserts were the largest part of persist's time (a third, `perf`). Events, balances,
/// settings and realized P&L are all kept, in order.
fn latest_snapshots(messages: &[ToPersist]) -> Vec<Write<'_>> {
    let mut orders_seen = HashSet::new();
    let mut positions_seen = HashSet::new();
    let mut writes: Vec<Write<'_>> = messages
        .iter()
        .rev()
        .filter_map(|m| match m {
            ToPersist::Order(o) => orders_seen.insert(o.order_id).then_some(Write::Order(o)),
            ToPersist::Position(p) => positions_seen.insert(p.position_id).then_some(Write::Position(p)),
            ToPersist::Event(e) => Some(Write::Event(e)),
            ToPersist::Setting { key, value } => Some(Write::Setting(key, value)),
            ToPersist::Balances { balances, at_us } => Some(Write::Balances(balances, *at_us)),
            ToPersist::RealizedPnl { at_us, position_id, order_id, pnl } => {
                Some(Write::RealizedPnl(*at_us, *position_id, *order_id, *pnl))
            }
            ToPersist::Query(_) => None,
        })
        .collect();
    writes.reverse();
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Decimal;
    use crate::domain::order::{ExchangeOrderType, OrderRole, Side};
    use crate::domain::position::PositionStatus;
    use crate::domain::risk::{DailyPnl, RiskLimits, Tier};
    use crate::events::stdout_lanes;
    use crate::pipeline::account::Account;
    use crate::pipeline::guard::{ExchangeGuard, BREAKER_THRESHOLD};
    use std::time::Instant;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn persist(guard: ExchangeGuard) -> Persist {
        let (lanes, _queues) = stdout_lanes(16, 16);
        Persist {
            store: Store::open_in_memory().unwrap(),
            account: Arc::new(Account::new(Tier::Sniper, RiskLimits::default(), "USDT", DailyPnl::new("USDT"))),
            stats: Arc::default(),
            guard: Arc::new(guard),
            bus: Bus::new(lanes, None),
            checkpoint_due: Arc::default(),
        }
    }

    fn entry(order_id: i64, position_id: Option<i64>) -> Order {
        let mut order = Order::new(
            order_id,
            format!("gtest-E{order_id}"),
            "BTCUSDT".into(),
            Side::Buy,
            OrderRole::Entry,
            ExchangeOrderType::Market,
            d("0.001"),
            0,
        );
        order.position_id = position_id;
        order
    }

    fn position(position_id: i64, entry_order_id: i64, status: PositionStatus) -> Position {
        Position {
            position_id,
            symbol: "BTCUSDT".into(),
            quantity: d("0.00099"),
            entry_price: d("65000"),
            entry_fees: Decimal::ZERO,
            entry_order_id,
            stop_loss: None,
            stop_loss_order_id: None,
            stop_loss_client_id: None,
            status,
            realized_pnl: Decimal::ZERO,
            opened_at_us: 0,
            updated_at_us: 0,
            closed_at_us: None,
        }
    }

    fn open_breaker(guard: &ExchangeGuard, now: Instant) {
        for _ in 0..BREAKER_THRESHOLD {
            guard.record_failure(now);
        }
    }

    #[test]
    fn a_checkpoint_that_fails_is_not_fatal_and_the_next_writes_still_land() {
        let dir = tempfile::tempdir().unwrap();
        let mut persist = persist(ExchangeGuard::new(50));
        persist.store = Store::open(&dir.path().join("p.db")).unwrap();
        // SQLite refuses a checkpoint inside the connection's own open transaction.
        persist.store.connection().execute_batch("BEGIN; SELECT COUNT(*) FROM orders;").unwrap();
        assert!(persist.store.finish_checkpoint().is_err());
        persist.finish_checkpoint();
        persist.store.connection().execute_batch("COMMIT").unwrap();
        let order = entry(7, None);
        persist.handle(&mut vec![ToPersist::Order(Box::new(order.clone()))]);
        assert_eq!(persist.store.find_order("7").unwrap().map(|o| o.client_order_id), Some(order.client_order_id));
    }

    #[test]
    fn stats_show_an_open_circuit_breaker() {
        let guard = ExchangeGuard::new(50);
        open_breaker(&guard, Instant::now());
        let reply = persist(guard).answer(&Query::Stats);
        assert_eq!(reply.kind, "stats");
        assert_eq!(reply.fields["circuit_breaker"], "OPEN");
    }

    #[test]
    fn stats_show_a_half_open_circuit_breaker_while_its_probe_is_out() {
        let guard = ExchangeGuard::new(50);
        let now = Instant::now();
        open_breaker(&guard, now);
        // Past the open period, the next entry is let through as the probe.
        guard.admit(now + Duration::from_secs(2), 2, true).unwrap();
        let reply = persist(guard).answer(&Query::Stats);
        assert_eq!(reply.fields["circuit_breaker"], "HALF_OPEN");
    }

    #[test]
    fn an_account_query_is_not_answered_from_the_database() {
        let reply = persist(ExchangeGuard::new(50)).answer(&Query::Account { confirm: true });
        assert_eq!(reply.kind, "error");
        assert_eq!(reply.text, "account: not answered by persist");
    }

    #[test]
    fn a_query_the_database_cannot_answer_gets_an_error_reply() {
        let persist = persist(ExchangeGuard::new(50));
        persist.store.connection().execute_batch("DROP TABLE orders").unwrap();
        let reply = persist.answer(&Query::Status { id: "1".into() });
        assert_eq!(reply.kind, "error");
        let message = reply.fields["message"].as_str().unwrap();
        assert!(message.starts_with("query failed: database error:"), "{message}");
        assert!(message.contains("no such table: orders"), "{message}");
    }

    #[test]
    fn status_of_an_order_whose_position_has_no_stop_loss_names_the_position() {
        let mut persist = persist(ExchangeGuard::new(50));
        let (order, position) = (entry(1, Some(1)), position(1, 1, PositionStatus::Unprotected));
        persist.commit(&[ToPersist::Order(Box::new(order)), ToPersist::Position(Box::new(position))]);
        let reply = persist.answer(&Query::Status { id: "1".into() });
        assert_eq!(reply.kind, "status");
        assert!(reply.text.ends_with("; position 1 UNPROTECTED"), "{}", reply.text);
        assert_eq!(reply.fields["position"]["status"], "UNPROTECTED");
        assert_eq!(reply.fields["stop_loss"], Value::Null);
    }

    #[test]
    fn status_of_a_stop_loss_names_its_position_not_itself_as_the_stop() {
        let mut persist = persist(ExchangeGuard::new(50));
        let mut stop = entry(2, Some(1));
        stop.role = OrderRole::StopLoss;
        stop.side = Side::Sell;
        stop.exchange_type = ExchangeOrderType::StopLossLimit;
        stop.stop_price = Some(d("63700"));
        let mut position = position(1, 1, PositionStatus::Open);
        position.stop_loss = Some(d("63700"));
        position.stop_loss_order_id = Some(2);
        persist.commit(&[
            ToPersist::Order(Box::new(entry(1, Some(1)))),
            ToPersist::Order(Box::new(stop)),
            ToPersist::Position(Box::new(position)),
        ]);
        let reply = persist.answer(&Query::Status { id: "2".into() });
        assert!(reply.text.ends_with("; position 1 OPEN"), "{}", reply.text);
        assert_eq!(reply.fields["stop_loss"]["order_id"], 2);
    }

    #[test]
    fn a_query_handed_to_commit_writes_nothing_for_it() {
        let mut persist = persist(ExchangeGuard::new(50));
        persist.commit(&[ToPersist::Query(Query::Orders), ToPersist::Order(Box::new(entry(1, None)))]);
        assert_eq!(persist.stats.event(vec![]).fields["records_persisted"], 1);
        assert!(persist.store.find_order("1").unwrap().is_some());
    }

    fn kinds(writes: &[Write<'_>]) -> Vec<String> {
        writes
            .iter()
            .map(|w| match w {
                Write::Order(o) => format!("order {} {}", o.order_id, o.status.as_str()),
                Write::Position(p) => format!("position {} {}", p.position_id, p.status.as_str()),
                Write::Event(e) => format!("event {}", e.kind),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn an_order_updated_twice_in_one_transaction_is_written_once_in_its_last_state() {
        let mut filled = entry(1, None);
        filled.status = crate::domain::lifecycle::OrderStatus::Filled;
        let messages = [
            ToPersist::Order(Box::new(entry(1, None))),
            ToPersist::Order(Box::new(entry(2, None))),
            ToPersist::Order(Box::new(filled)),
        ];
        assert_eq!(kinds(&latest_snapshots(&messages)), ["order 2 PENDING", "order 1 FILLED"]);
    }

    #[test]
    fn a_position_updated_twice_in_one_transaction_is_written_once_in_its_last_state() {
        let messages = [
            ToPersist::Position(Box::new(position(4, 1, PositionStatus::Unprotected))),
            ToPersist::Position(Box::new(position(4, 1, PositionStatus::Open))),
        ];
        assert_eq!(kinds(&latest_snapshots(&messages)), ["position 4 OPEN"]);
    }

    #[test]
    fn every_event_of_a_transaction_is_written_in_the_order_it_came() {
        let messages = [
            ToPersist::Event(Arc::new(Event::new(EventKind::OrderSubmitted, "a"))),
            ToPersist::Order(Box::new(entry(1, None))),
            ToPersist::Event(Arc::new(Event::new(EventKind::OrderFilled, "b"))),
            ToPersist::Event(Arc::new(Event::new(EventKind::OrderFilled, "b"))),
        ];
        assert_eq!(
            kinds(&latest_snapshots(&messages)),
            ["event order_submitted", "order 1 PENDING", "event order_filled", "event order_filled"]
        );
    }

    #[test]
    fn a_batch_with_an_order_pending_then_filled_leaves_the_filled_row() {
        let mut persist = persist(ExchangeGuard::new(50));
        let mut filled = entry(1, None);
        filled.status = crate::domain::lifecycle::OrderStatus::Filled;
        filled.filled_quantity = d("0.001");
        persist.handle(&mut vec![ToPersist::Order(Box::new(entry(1, None))), ToPersist::Order(Box::new(filled))]);
        let row = persist.store.find_order("1").unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.filled_quantity), ("FILLED", d("0.001")));
    }
}
