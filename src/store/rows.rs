//! Domain types to rows and back: the column lists, the upserts of orders and positions, the
//! event log's append, and the readers that turn a row into an `Order` or a `Position` (a money
//! column that is not an exact decimal is reported as corrupt, never read as zero).

use super::StoreError;
use crate::domain::format_ts;
use crate::domain::lifecycle::OrderStatus;
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use crate::domain::position::{Position, PositionStatus};
use crate::events::Event;
use rusqlite::{params, Row};
use std::str::FromStr;

pub(super) const ORDER_COLUMNS: &str = "order_id, position_id, client_order_id, exchange_order_id, side, quantity, \
filled_quantity, status, slice_number, total_slices, slippage_percent, symbol, role, exchange_type, expected_price, \
avg_fill_price, cum_quote, commission, commission_asset, stop_price, limit_price, latency_us, reason, created_at_us, \
expected_price_age_us";

pub(super) const POSITION_COLUMNS: &str = "position_id, symbol, quantity, entry_price, entry_order_id, stop_loss, \
stop_loss_order_id, status, realized_pnl, opened_at_us, entry_fees";

pub(super) fn text(d: Decimal) -> String {
    d.normalize().to_string()
}

fn opt_text(d: Option<Decimal>) -> Option<String> {
    d.map(text)
}

pub(super) fn upsert_order(tx: &rusqlite::Transaction<'_>, o: &Order) -> Result<(), StoreError> {
    let price = match o.order_type() {
        crate::domain::order::OrderType::StopLoss => o.stop_price,
        _ => o.avg_price.or(o.limit_price),
    };
    let latency_ms = o.latency_us.map(|us| us as f64 / 1000.0);
    let written = tx.prepare_cached(
        "INSERT INTO orders (order_id, position_id, client_order_id, exchange_order_id, type, side, price, quantity,
            filled_quantity, status, slice_number, total_slices, latency_ms, slippage_percent, created_at, executed_at,
            symbol, role, exchange_type, expected_price, avg_fill_price, cum_quote, commission, commission_asset,
            stop_price, limit_price, latency_us, reason, updated_at, created_at_us, expected_price_age_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
            ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)
         ON CONFLICT(order_id) DO UPDATE SET position_id = excluded.position_id,
            exchange_order_id = excluded.exchange_order_id, price = excluded.price,
            filled_quantity = excluded.filled_quantity, status = excluded.status, latency_ms = excluded.latency_ms,
            slippage_percent = excluded.slippage_percent, executed_at = excluded.executed_at,
            expected_price = excluded.expected_price, expected_price_age_us = excluded.expected_price_age_us,
            avg_fill_price = excluded.avg_fill_price,
            cum_quote = excluded.cum_quote, commission = excluded.commission,
            commission_asset = excluded.commission_asset, latency_us = excluded.latency_us,
            reason = excluded.reason, updated_at = excluded.updated_at
         WHERE orders.client_order_id = excluded.client_order_id",
    )?
    .execute(params![
        o.order_id,
        o.position_id,
        o.client_order_id,
        o.exchange_order_id,
        o.order_type().as_str(),
        o.side.as_str(),
        opt_text(price),
        text(o.quantity),
        text(o.filled_quantity),
        o.status.as_str(),
        o.slice_number,
        o.total_slices,
        latency_ms,
        opt_text(o.slippage_percent),
        format_ts(o.created_at_us),
        o.executed_at_us.map(format_ts),
        o.symbol,
        o.role.as_str(),
        o.exchange_type.as_str(),
        opt_text(o.expected_price),
        opt_text(o.avg_price),
        text(o.cum_quote),
        text(o.commission),
        o.commission_asset,
        opt_text(o.stop_price),
        opt_text(o.limit_price),
        o.latency_us.map(|v| v as i64),
        o.reason,
        format_ts(o.updated_at_us),
        o.created_at_us,
        o.expected_price_age_us.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
    ])?;
    if written == 0 {
        // Another order holds this order id: never merge two orders into one row. (Start-up
        // renumbers a recovered order whose id is taken, so this is a bug if it is ever seen.)
        log::error!("order {} not written: order id {} belongs to another order", o.client_order_id, o.order_id);
        return Ok(());
    }
    for fill in &o.fills {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO fills (symbol, trade_id, order_id, client_order_id, exchange_order_id, side, price,
                quantity, quote_quantity, commission, commission_asset, commission_quote, is_maker, time_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            o.symbol,
            fill.trade_id,
            o.order_id,
            o.client_order_id,
            o.exchange_order_id,
            o.side.as_str(),
            text(fill.price),
            text(fill.qty),
            text(fill.price * fill.qty),
            text(fill.commission),
            fill.commission_asset,
            opt_text(fill.commission_quote),
            fill.is_maker,
            fill.time_ms,
        ])?;
    }
    Ok(())
}

pub(super) fn upsert_position(tx: &rusqlite::Transaction<'_>, p: &Position) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO positions (position_id, symbol, quantity, entry_price, entry_order_id, stop_loss,
            stop_loss_order_id, status, realized_pnl, opened_at, updated_at, closed_at, opened_at_us, entry_fees)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(position_id) DO UPDATE SET quantity = excluded.quantity, stop_loss = excluded.stop_loss,
            entry_fees = excluded.entry_fees,
            stop_loss_order_id = excluded.stop_loss_order_id, status = excluded.status,
            realized_pnl = excluded.realized_pnl, updated_at = excluded.updated_at, closed_at = excluded.closed_at",
    )?
    .execute(params![
        p.position_id,
        p.symbol,
        text(p.quantity),
        text(p.entry_price),
        p.entry_order_id,
        opt_text(p.stop_loss),
        p.stop_loss_order_id,
        p.status.as_str(),
        text(p.realized_pnl),
        format_ts(p.opened_at_us),
        format_ts(p.updated_at_us),
        p.closed_at_us.map(format_ts),
        p.opened_at_us,
        text(p.entry_fees),
    ])?;
    Ok(())
}

pub(super) fn append_event(tx: &rusqlite::Transaction<'_>, e: &Event) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO event_log (ts, correlation_id, event, details) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![format_ts(e.ts_us), e.client_order_id, e.kind.as_str(), e.details_json()])?;
    Ok(())
}

fn dec(row: &Row<'_>, idx: usize) -> rusqlite::Result<Result<Decimal, StoreError>> {
    let s: String = row.get(idx)?;
    Ok(Decimal::from_str(&s).map_err(|_| StoreError::Corrupt(format!("'{s}' is not a decimal"))))
}

fn opt_dec(row: &Row<'_>, idx: usize) -> rusqlite::Result<Result<Option<Decimal>, StoreError>> {
    let s: Option<String> = row.get(idx)?;
    Ok(match s {
        None => Ok(None),
        Some(s) => Decimal::from_str(&s).map(Some).map_err(|_| StoreError::Corrupt(format!("'{s}' is not a decimal"))),
    })
}

pub(super) fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Order, StoreError>> {
    let side: String = row.get(4)?;
    let status: String = row.get(7)?;
    let role: String = row.get(12)?;
    let exchange_type: String = row.get(13)?;
    let created_at_us: i64 = row.get(23)?;
    let quantity = dec(row, 5)?;
    let filled = dec(row, 6)?;
    let slippage = opt_dec(row, 10)?;
    let expected = opt_dec(row, 14)?;
    let avg = opt_dec(row, 15)?;
    let cum_quote = dec(row, 16)?;
    let commission = dec(row, 17)?;
    let stop = opt_dec(row, 19)?;
    let limit = opt_dec(row, 20)?;
    let latency_us: Option<i64> = row.get(21)?;
    let expected_age_us: Option<i64> = row.get(24)?;
    let build = || -> Result<Order, StoreError> {
        let bad = |what: &str, v: &str| StoreError::Corrupt(format!("{what} '{v}'"));
        let mut o = Order::new(
            0,
            String::new(),
            String::new(),
            Side::parse(&side).ok_or_else(|| bad("side", &side))?,
            OrderRole::parse(&role).ok_or_else(|| bad("role", &role))?,
            ExchangeOrderType::parse(&exchange_type).ok_or_else(|| bad("exchange type", &exchange_type))?,
            quantity?,
            created_at_us,
        );
        o.status = OrderStatus::parse(&status).ok_or_else(|| bad("status", &status))?;
        o.filled_quantity = filled?;
        o.slippage_percent = slippage?;
        o.expected_price = expected?;
        o.avg_price = avg?;
        o.cum_quote = cum_quote?;
        o.commission = commission?;
        o.stop_price = stop?;
        o.limit_price = limit?;
        o.latency_us = latency_us.map(|v| v.max(0) as u64);
        o.expected_price_age_us = expected_age_us.map(|v| v.max(0) as u64);
        Ok(o)
    };
    let mut order = match build() {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    order.order_id = row.get(0)?;
    order.position_id = row.get(1)?;
    order.client_order_id = row.get(2)?;
    order.exchange_order_id = row.get(3)?;
    order.slice_number = row.get(8)?;
    order.total_slices = row.get(9)?;
    order.symbol = row.get(11)?;
    order.commission_asset = row.get(18)?;
    order.reason = row.get(22)?;
    Ok(Ok(order))
}

pub(super) fn position_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Position, StoreError>> {
    let status: String = row.get(7)?;
    let quantity = dec(row, 2)?;
    let entry = dec(row, 3)?;
    let stop = opt_dec(row, 5)?;
    let pnl = dec(row, 8)?;
    let opened_at_us: i64 = row.get(9)?;
    let entry_fees = dec(row, 10)?;
    let build = || -> Result<Position, StoreError> {
        Ok(Position {
            position_id: 0,
            symbol: String::new(),
            quantity: quantity?,
            entry_price: entry?,
            entry_fees: entry_fees?,
            entry_order_id: 0,
            stop_loss: stop?,
            stop_loss_order_id: None,
            stop_loss_client_id: None,
            status: PositionStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("position status '{status}'")))?,
            realized_pnl: pnl?,
            opened_at_us,
            updated_at_us: opened_at_us,
            closed_at_us: None,
        })
    };
    let mut p = match build() {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    p.position_id = row.get(0)?;
    p.symbol = row.get(1)?;
    p.entry_order_id = row.get(4)?;
    p.stop_loss_order_id = row.get(6)?;
    Ok(Ok(p))
}
