//! The SQLite store: schema, the one writing connection, and the reads that answer queries and
//! restore state at start.
//!
//! Durability: WAL with `synchronous=NORMAL`. A process crash (`kill -9`) loses nothing that
//! was committed; a power failure may lose the last commits since the previous WAL checkpoint
//! sync. Start-up reconciliation with the exchange (client order ids carry our prefix) recovers
//! what such a loss would drop, which is why the ~10x cost of `synchronous=FULL` is not paid on
//! every order.

use crate::domain::lifecycle::OrderStatus;
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use crate::domain::position::{Position, PositionStatus};
use crate::domain::{format_ts, ids};
use crate::events::Event;
use crate::exchange::Balance;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::str::FromStr;

mod migrate;

const SCHEMA: &str = include_str!("schema.sql");

/// Errors at the database boundary.
#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    /// A stored value that does not parse (a corrupt or foreign row).
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Corrupt(what) => write!(f, "database holds a bad value: {what}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sqlite(e) => Some(e),
            StoreError::Corrupt(_) => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// What the engine needs from the database before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The client order id prefix fixed for this database.
    pub prefix: String,
    pub last_order_id: i64,
    /// Stored confirmation preference (`confirm on|off`), if any.
    pub confirm: Option<bool>,
}

/// The setting that says which orders of ours may be on the exchange and not in the database:
/// `clean` after a clean stop, else the time (µs) the oldest such order may have been sent.
pub const UNRECORDED_SINCE: &str = "orders_unrecorded_since_us";

/// Which of the exchange's history start-up must read to find orders the database lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryScan {
    /// The last run stopped cleanly, or the database is new: every order sent is recorded.
    Nothing,
    /// The last run did not stop cleanly: orders sent since this time (µs) may be missing.
    Since(i64),
    /// A database written before the marker existed: all the exchange remembers.
    Everything,
}

/// One write the persist stage batches into a transaction.
#[derive(Debug, Clone)]
pub enum Write<'a> {
    Order(&'a Order),
    Position(&'a Position),
    Event(&'a Event),
    Setting(&'a str, &'a str),
    /// The account's balances, replacing what was stored.
    Balances(&'a [Balance], i64),
    /// One realized P&L: (at_us, position_id, order_id, pnl).
    RealizedPnl(i64, i64, i64, Decimal),
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database, sets the pragmas deliberately, applies the schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests and benches.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Small pages: every commit writes each page it touches whole into the WAL, and a commit
        // touches a few (an order, its events, a position). 1 KiB pages write a quarter of the
        // bytes of 4 KiB ones. Takes effect only when the file is created (before WAL mode).
        conn.pragma_update(None, "page_size", 1024)?;
        // rusqlite's bundled SQLite stays at synchronous=FULL after journal_mode=WAL: set both.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.execute_batch(SCHEMA)?;
        migrate::add_columns(&conn)?;
        Ok(Store { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Reads (and on first use creates) what the engine needs to start.
    pub fn load_meta(&mut self) -> Result<Meta, StoreError> {
        let prefix: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'client_id_prefix'", [], |r| r.get(0))
            .optional()?;
        let prefix = match prefix {
            Some(p) => p,
            None => {
                let p = ids::new_prefix();
                self.conn.execute("INSERT INTO meta (key, value) VALUES ('client_id_prefix', ?1)", [&p])?;
                p
            }
        };
        let last_order_id: i64 =
            self.conn.query_row("SELECT COALESCE(MAX(order_id), 0) FROM orders", [], |r| r.get(0))?;
        let confirm = self.setting("confirm")?.map(|v| v == "on");
        Ok(Meta { prefix, last_order_id, confirm })
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// Applies writes in one transaction: all or nothing.
    pub fn write_batch(&mut self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for write in writes {
            match write {
                Write::Order(order) => upsert_order(&tx, order)?,
                Write::Position(position) => upsert_position(&tx, position)?,
                Write::Event(event) => append_event(&tx, event)?,
                Write::Balances(balances, at_us) => {
                    tx.execute("DELETE FROM balances", [])?;
                    for b in balances.iter() {
                        tx.prepare_cached(
                            "INSERT INTO balances (asset, free, locked, updated_at) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![
                            b.asset,
                            text(b.free),
                            text(b.locked),
                            format_ts(*at_us)
                        ])?;
                    }
                }
                Write::RealizedPnl(at_us, position_id, order_id, pnl) => {
                    tx.prepare_cached(
                        "INSERT INTO realized_pnl (at_us, position_id, order_id, pnl) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![at_us, position_id, order_id, text(*pnl)])?;
                }
                Write::Setting(key, value) => {
                    tx.prepare_cached(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![key, value])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// One order by `order_id` or `client_order_id`.
    pub fn find_order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let by_number = id.parse::<i64>().ok();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ?1 OR order_id = ?2 OR exchange_order_id = ?2
             ORDER BY (client_order_id = ?1) DESC, (order_id = ?2) DESC LIMIT 1"
        ))?;
        let row = stmt.query_row(params![id, by_number], order_from_row).optional()?;
        row.transpose()
    }

    /// Realized P&L records since `since_us`: (pnl, at_us).
    pub fn realized_since(&self, since_us: i64) -> Result<Vec<(Decimal, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT pnl, at_us FROM realized_pnl WHERE at_us >= ?1 ORDER BY id")?;
        let rows = stmt.query_map([since_us], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (pnl, at) = row?;
            let pnl = Decimal::from_str(&pnl).map_err(|_| StoreError::Corrupt(format!("realized pnl '{pnl}'")))?;
            out.push((pnl, at));
        }
        Ok(out)
    }

    /// The client order id of the order recorded under `order_id`, if any.
    pub fn client_order_id_of(&self, order_id: i64) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT client_order_id FROM orders WHERE order_id = ?1")?;
        Ok(stmt.query_row([order_id], |r| r.get(0)).optional()?)
    }

    /// What start-up must read of the exchange's history (see [`HistoryScan`]), and marks this
    /// run as started at `now_us`: until it stops cleanly, its orders may go unrecorded. A mark
    /// left by an earlier run that did not finish its start-up is kept: its orders are still
    /// unaccounted for.
    pub fn begin_run(&mut self, now_us: i64) -> Result<HistoryScan, StoreError> {
        let scan = match self.setting(UNRECORDED_SINCE)? {
            Some(mark) if mark == "clean" => HistoryScan::Nothing,
            Some(mark) => HistoryScan::Since(
                mark.parse().map_err(|_| StoreError::Corrupt(format!("setting {UNRECORDED_SINCE} '{mark}'")))?,
            ),
            None => {
                let any: bool = self.conn.query_row("SELECT EXISTS (SELECT 1 FROM orders)", [], |r| r.get(0))?;
                if any {
                    HistoryScan::Everything
                } else {
                    HistoryScan::Nothing
                }
            }
        };
        if scan == HistoryScan::Nothing {
            self.write_batch(&[Write::Setting(UNRECORDED_SINCE, &now_us.to_string())])?;
        }
        Ok(scan)
    }

    /// Every order sent by the run that ends now is recorded: the next start reads no history.
    pub fn mark_clean_stop(&mut self) -> Result<(), StoreError> {
        self.write_batch(&[Write::Setting(UNRECORDED_SINCE, "clean")])
    }

    /// Every symbol an order was ever recorded on.
    pub fn traded_symbols(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT DISTINCT symbol FROM orders ORDER BY symbol")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The writer does not checkpoint on its own: a checkpoint syncs the database file and, run
    /// inside a commit, stalled the persist stage (and the order path behind it) for tens of ms.
    /// A background thread copies the bulk passively instead (see [`run_checkpoints`]) and the
    /// writer finishes each round between two transactions ([`Store::finish_checkpoint`]); the
    /// WAL then holds at most one round of writes.
    pub fn disable_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Finishes the background checkpoint's round from the writer, between two transactions:
    /// a passive checkpoint that copies only the frames committed since the background passes.
    /// SQLite starts the WAL over from its beginning only at a commit that finds every frame
    /// already in the database file, which a background pass racing a busy writer never sees.
    /// Without this the WAL, and its index mapped into our memory (`-shm`), grew for as long as
    /// orders came: ~6 GB and 11 MB resident after 100,000 orders at 2,000/s.
    /// Returns true when the whole WAL is in the database file (the next commit restarts it).
    pub fn finish_checkpoint(&self) -> Result<bool, StoreError> {
        let (busy, log, copied) = wal_checkpoint(&self.conn)?;
        Ok(busy == 0 && log == copied)
    }

    /// Opens a second connection for reads beside the writer (WAL allows both).
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Store { conn })
    }

    /// Orders still working (PENDING or PARTIAL), oldest first.
    pub fn open_orders(&self) -> Result<Vec<Order>, StoreError> {
        self.orders_where("status IN ('PENDING', 'PARTIAL') ORDER BY order_id")
    }

    fn orders_where(&self, clause: &str) -> Result<Vec<Order>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE {clause}"))?;
        let rows = stmt.query_map([], order_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Filled entries whose position row is missing (a crash between the two commits).
    pub fn entries_without_position(&self) -> Result<Vec<Order>, StoreError> {
        self.orders_where(
            "role = 'ENTRY' AND filled_quantity <> '0' AND status <> 'PENDING'
             AND NOT EXISTS (SELECT 1 FROM positions p WHERE p.position_id = orders.order_id) ORDER BY order_id",
        )
    }

    /// Positions not closed, oldest first.
    pub fn open_positions(&self) -> Result<Vec<Position>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {POSITION_COLUMNS} FROM positions WHERE status <> 'CLOSED' ORDER BY position_id"
        ))?;
        let rows = stmt.query_map([], position_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    pub fn find_position(&self, position_id: i64) -> Result<Option<Position>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("SELECT {POSITION_COLUMNS} FROM positions WHERE position_id = ?1"))?;
        let row = stmt.query_row([position_id], position_from_row).optional()?;
        row.transpose()
    }
}

/// Checkpoints the WAL every `every`, passively (never blocking the writer), until `stop` is
/// signalled or dropped. After each round, `copied` asks the writer to finish it
/// ([`Store::finish_checkpoint`]), which lets the WAL start over. On the way out this
/// connection closes; closed after the writer's, it is the last, and SQLite then copies what is
/// left and removes the WAL file.
pub fn run_checkpoints(
    path: &Path,
    every: std::time::Duration,
    stop: &crossbeam_channel::Receiver<()>,
    copied: impl Fn(),
) {
    let Ok(conn) = Connection::open(path) else { return };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(100));
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        // Busy or locked by another process: the next round tries again.
        if catch_up(&conn) {
            copied();
        }
    }
}

/// WAL frames committed during the last background pass that the writer may be left to copy
/// (a frame is a page: about 13 ms of writes at 2,000 orders/s with 1 KiB pages).
const WRITER_SHARE: i64 = 500;
/// Background passes per round at most.
const PASSES: usize = 4;

/// Passive checkpoints until few frames were committed during the last one: each pass copies
/// what the writer added during the one before (with 4 KiB pages, a pass over 2 s of writes
/// took ~200 ms, the next ~20, the next ~2), so the writer's own pass stays small. False if none could run.
fn catch_up(conn: &Connection) -> bool {
    let mut seen = None;
    for _ in 0..PASSES {
        let Ok((0, log, _)) = wal_checkpoint(conn) else { return seen.is_some() };
        let added = seen.map_or(i64::MAX, |before| log - before);
        seen = Some(log);
        // A restarted WAL counts from zero again: the writer has nothing left to finish.
        if added <= WRITER_SHARE {
            break;
        }
    }
    true
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (1 if it could not run, WAL frames, frames copied).
fn wal_checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
}

const ORDER_COLUMNS: &str = "order_id, position_id, client_order_id, exchange_order_id, side, quantity, \
filled_quantity, status, slice_number, total_slices, slippage_percent, symbol, role, exchange_type, expected_price, \
avg_fill_price, cum_quote, commission, commission_asset, stop_price, limit_price, latency_us, reason, created_at_us, \
expected_price_age_us";

const POSITION_COLUMNS: &str = "position_id, symbol, quantity, entry_price, entry_order_id, stop_loss, \
stop_loss_order_id, status, realized_pnl, opened_at_us, entry_fees";

fn text(d: Decimal) -> String {
    d.normalize().to_string()
}

fn opt_text(d: Option<Decimal>) -> Option<String> {
    d.map(text)
}

fn upsert_order(tx: &rusqlite::Transaction<'_>, o: &Order) -> Result<(), StoreError> {
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

fn upsert_position(tx: &rusqlite::Transaction<'_>, p: &Position) -> Result<(), StoreError> {
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

fn append_event(tx: &rusqlite::Transaction<'_>, e: &Event) -> Result<(), StoreError> {
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

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Order, StoreError>> {
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

fn position_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Position, StoreError>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn order(id: i64) -> Order {
        let mut o = Order::new(
            id,
            format!("gtest-E{id}"),
            "BTCUSDT".into(),
            Side::Buy,
            OrderRole::Entry,
            ExchangeOrderType::Market,
            d("0.001"),
            1_700_000_000_000_000,
        );
        o.expected_price = Some(d("65000.01"));
        o
    }

    #[test]
    fn the_expected_price_age_round_trips() {
        let mut store = Store::open_in_memory().unwrap();
        let mut o = order(1);
        o.expected_price_age_us = Some(1_234);
        store.write_batch(&[Write::Order(&o)]).unwrap();
        assert_eq!(store.find_order("gtest-E1").unwrap().unwrap().expected_price_age_us, Some(1_234));
        o.expected_price_age_us = None;
        store.write_batch(&[Write::Order(&o)]).unwrap();
        assert_eq!(store.find_order("gtest-E1").unwrap().unwrap().expected_price_age_us, None);
    }

    #[test]
    fn a_database_made_before_the_quote_age_column_gets_it_and_keeps_its_orders() {
        let dir = std::env::temp_dir().join(format!("genesis-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let _ = std::fs::remove_file(&path);
        {
            let mut store = Store::open(&path).unwrap();
            store.write_batch(&[Write::Order(&order(1))]).unwrap();
            store.connection().execute_batch("ALTER TABLE orders DROP COLUMN expected_price_age_us").unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let old = store.find_order("gtest-E1").unwrap().unwrap();
        assert_eq!((old.expected_price, old.expected_price_age_us), (Some(d("65000.01")), None));
        let mut o = order(2);
        o.client_order_id = "gtest-E2".into();
        o.expected_price_age_us = Some(7);
        store.write_batch(&[Write::Order(&o)]).unwrap();
        assert_eq!(store.find_order("gtest-E2").unwrap().unwrap().expected_price_age_us, Some(7));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn meta_creates_a_prefix_once_and_keeps_it() {
        let mut store = Store::open_in_memory().unwrap();
        let first = store.load_meta().unwrap();
        let second = store.load_meta().unwrap();
        assert_eq!(first.prefix, second.prefix);
        assert_eq!(first.last_order_id, 0);
        assert_eq!(first.confirm, None);
    }

    #[test]
    fn an_order_round_trips_with_exact_decimals_stored_as_text() {
        let mut store = Store::open_in_memory().unwrap();
        let mut o = order(1);
        o.filled_quantity = d("0.001");
        o.cum_quote = d("65.00001");
        o.avg_price = Some(d("65000.01"));
        o.slippage_percent = Some(d("0.0000"));
        o.status = OrderStatus::Filled;
        store.write_batch(&[Write::Order(&o)]).unwrap();
        let back = store.find_order("gtest-E1").unwrap().unwrap();
        assert_eq!(back.cum_quote, d("65.00001"));
        assert_eq!(back.avg_price, Some(d("65000.01")));
        assert_eq!(back.status, OrderStatus::Filled);
        let kind: String =
            store.connection().query_row("SELECT typeof(quantity) FROM orders", [], |r| r.get(0)).unwrap();
        assert_eq!(kind, "text");
    }

    #[test]
    fn status_finds_an_order_by_order_id_or_client_id() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Order(&order(7)), Write::Order(&order(8))]).unwrap();
        assert_eq!(store.find_order("7").unwrap().unwrap().order_id, 7);
        assert_eq!(store.find_order("gtest-E8").unwrap().unwrap().order_id, 8);
        assert!(store.find_order("nope").unwrap().is_none());
    }

    #[test]
    fn an_upsert_moves_the_status_and_keeps_one_row() {
        let mut store = Store::open_in_memory().unwrap();
        let mut o = order(1);
        store.write_batch(&[Write::Order(&o)]).unwrap();
        o.status = OrderStatus::Cancelled;
        o.reason = Some("no confirmation within 10 s".into());
        store.write_batch(&[Write::Order(&o)]).unwrap();
        let count: i64 = store.connection().query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 1);
        assert_eq!(store.find_order("1").unwrap().unwrap().reason.as_deref(), Some("no confirmation within 10 s"));
    }

    #[test]
    fn an_order_with_another_orders_id_never_overwrites_its_row() {
        let mut store = Store::open_in_memory().unwrap();
        let mut first = order(1);
        first.status = OrderStatus::Cancelled;
        store.write_batch(&[Write::Order(&first)]).unwrap();
        let mut other = order(1);
        other.client_order_id = "gtest01-S1-1-other".into();
        store.write_batch(&[Write::Order(&other)]).unwrap();
        let kept = store.find_order("1").unwrap().unwrap();
        assert_eq!((kept.client_order_id, kept.status), (first.client_order_id, OrderStatus::Cancelled));
        assert_eq!(store.client_order_id_of(2).unwrap(), None);
    }

    #[test]
    fn a_new_database_reads_no_history_and_marks_the_run_started() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.begin_run(1_000).unwrap(), HistoryScan::Nothing);
        assert_eq!(store.setting(UNRECORDED_SINCE).unwrap().as_deref(), Some("1000"));
    }

    #[test]
    fn after_a_run_that_did_not_stop_cleanly_its_time_is_read_and_the_mark_kept() {
        let mut store = Store::open_in_memory().unwrap();
        store.begin_run(1_000).unwrap();
        assert_eq!(store.begin_run(2_000).unwrap(), HistoryScan::Since(1_000));
        assert_eq!(store.begin_run(3_000).unwrap(), HistoryScan::Since(1_000), "the first unaccounted run counts");
    }

    #[test]
    fn after_a_clean_stop_no_history_is_read() {
        let mut store = Store::open_in_memory().unwrap();
        store.begin_run(1_000).unwrap();
        store.mark_clean_stop().unwrap();
        assert_eq!(store.begin_run(2_000).unwrap(), HistoryScan::Nothing);
        assert_eq!(store.setting(UNRECORDED_SINCE).unwrap().as_deref(), Some("2000"));
    }

    #[test]
    fn a_database_with_orders_and_no_mark_reads_all_the_history() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Order(&order(1))]).unwrap();
        assert_eq!(store.begin_run(1_000).unwrap(), HistoryScan::Everything);
    }

    #[test]
    fn a_database_error_keeps_sqlites_error_as_its_source() {
        let e = StoreError::from(rusqlite::Error::InvalidQuery);
        assert!(std::error::Error::source(&e).is_some());
        assert!(std::error::Error::source(&StoreError::Corrupt("x".into())).is_none());
    }

    #[test]
    fn a_mark_that_is_not_a_time_is_reported_as_corrupt() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Setting(UNRECORDED_SINCE, "soon")]).unwrap();
        assert!(matches!(store.begin_run(1_000), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_event_log_is_append_only() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Event(&Event::new(EventKind::CancelAll, "x"))]).unwrap();
        assert!(store.connection().execute("DELETE FROM event_log", []).is_err());
        assert!(store.connection().execute("UPDATE event_log SET event = 'y'", []).is_err());
    }

    #[test]
    fn a_failed_batch_writes_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        let a = order(1);
        let mut b = order(2);
        b.client_order_id = a.client_order_id.clone(); // violates UNIQUE
        assert!(store.write_batch(&[Write::Order(&a), Write::Order(&b)]).is_err());
        assert!(store.find_order("1").unwrap().is_none());
    }

    #[test]
    fn an_order_row_with_a_money_column_that_is_not_a_decimal_is_reported_as_corrupt() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Order(&order(1))]).unwrap();
        store.connection().execute("UPDATE orders SET quantity = 'lots'", []).unwrap();
        let err = store.find_order("1").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert_eq!(err.to_string(), "database holds a bad value: 'lots' is not a decimal");
        assert!(store.open_orders().is_err());
    }

    #[test]
    fn a_position_row_with_a_money_column_that_is_not_a_decimal_is_reported_as_corrupt() {
        let mut store = Store::open_in_memory().unwrap();
        let position = Position {
            position_id: 1,
            symbol: "BTCUSDT".into(),
            quantity: d("0.001"),
            entry_price: d("65000"),
            entry_fees: Decimal::ZERO,
            entry_order_id: 1,
            stop_loss: None,
            stop_loss_order_id: None,
            stop_loss_client_id: None,
            status: PositionStatus::Open,
            realized_pnl: Decimal::ZERO,
            opened_at_us: 1_700_000_000_000_000,
            updated_at_us: 1_700_000_000_000_000,
            closed_at_us: None,
        };
        store.write_batch(&[Write::Position(&position)]).unwrap();
        store.connection().execute("UPDATE positions SET entry_price = '65,000'", []).unwrap();
        let err = store.open_positions().unwrap_err();
        assert_eq!(err.to_string(), "database holds a bad value: '65,000' is not a decimal");
        assert!(store.find_position(1).is_err());
    }

    #[test]
    fn the_writer_finishing_a_checkpoint_round_restarts_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let mut store = Store::open(&path).unwrap();
        store.disable_auto_checkpoint().unwrap();
        let wal_size = || std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
        let mut id = 0;
        let mut write = |store: &mut Store, n: i64| {
            for _ in 0..n {
                id += 1;
                store.write_batch(&[Write::Order(&order(id))]).unwrap();
            }
        };
        write(&mut store, 50);
        // As under load, the background pass cannot copy what is committed while it runs (here,
        // what lies past a reader's snapshot), and the WAL does not restart: it grows.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT COUNT(*) FROM orders;").unwrap();
        write(&mut store, 5);
        assert!(catch_up(&Connection::open(&path).unwrap()));
        reader.execute_batch("COMMIT").unwrap();
        let before = wal_size();
        write(&mut store, 5);
        let grown = wal_size();
        assert!(grown > before, "WAL {before} then {grown} bytes");
        // The writer's pass copies the rest: the next commits write from the WAL's beginning.
        assert!(store.finish_checkpoint().unwrap());
        write(&mut store, 5);
        assert_eq!(wal_size(), grown);
    }

    #[test]
    fn settings_persist() {
        let mut store = Store::open_in_memory().unwrap();
        store.write_batch(&[Write::Setting("confirm", "off")]).unwrap();
        assert_eq!(store.load_meta().unwrap().confirm, Some(false));
    }
}
