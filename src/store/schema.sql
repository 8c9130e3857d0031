-- Genesis database schema. Money columns are TEXT holding exact decimals: a DECIMAL(20,8)
-- column would have NUMERIC affinity and turn the text into a float. The CHECKs keep it so.
-- The CHECKs on enumerations compare with OR, not IN (...): SQLite evaluates an IN list in a
-- CHECK by building an ephemeral table on every insert and update: with OR, the persist stage
-- ran 381 M instructions for 1,000 orders instead of 731 M (callgrind).

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    order_id          INTEGER PRIMARY KEY,
    position_id       INTEGER,
    client_order_id   TEXT NOT NULL UNIQUE,
    exchange_order_id INTEGER UNIQUE,
    type              TEXT NOT NULL CHECK (type = 'MARKET' OR type = 'LIMIT' OR type = 'STOP_LOSS'),
    side              TEXT NOT NULL CHECK (side = 'BUY' OR side = 'SELL'),
    -- MARKET: average fill price once filled; STOP_LOSS: the stop (trigger) price.
    price             TEXT CHECK (price IS NULL OR typeof(price) = 'text'),
    quantity          TEXT NOT NULL CHECK (typeof(quantity) = 'text'),
    filled_quantity   TEXT NOT NULL DEFAULT '0' CHECK (typeof(filled_quantity) = 'text'),
    status            TEXT NOT NULL CHECK (status = 'PENDING' OR status = 'PARTIAL' OR status = 'FILLED'
                                             OR status = 'CANCELLED' OR status = 'FAILED'),
    slice_number      INTEGER CHECK (slice_number IS NULL OR slice_number >= 1),
    total_slices      INTEGER CHECK (total_slices IS NULL OR total_slices >= 1),
    latency_ms        REAL CHECK (latency_ms IS NULL OR latency_ms >= 0),
    slippage_percent  TEXT CHECK (slippage_percent IS NULL OR typeof(slippage_percent) = 'text'),
    created_at        TEXT NOT NULL,
    executed_at       TEXT,
    -- Beyond the story's columns: what the engine needs.
    symbol            TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role = 'ENTRY' OR role = 'EXIT' OR role = 'STOP_LOSS'
                                             OR role = 'EMERGENCY_EXIT' OR role = 'RECOVERED'),
    exchange_type     TEXT NOT NULL,
    expected_price    TEXT CHECK (expected_price IS NULL OR typeof(expected_price) = 'text'),
    avg_fill_price    TEXT CHECK (avg_fill_price IS NULL OR typeof(avg_fill_price) = 'text'),
    cum_quote         TEXT NOT NULL DEFAULT '0' CHECK (typeof(cum_quote) = 'text'),
    commission        TEXT NOT NULL DEFAULT '0' CHECK (typeof(commission) = 'text'),
    commission_asset  TEXT,
    stop_price        TEXT CHECK (stop_price IS NULL OR typeof(stop_price) = 'text'),
    limit_price       TEXT CHECK (limit_price IS NULL OR typeof(limit_price) = 'text'),
    latency_us        INTEGER,
    reason            TEXT,
    updated_at        TEXT NOT NULL,
    created_at_us     INTEGER NOT NULL,
    -- Age of the quote expected_price came from, at the decision; NULL without one. A database
    -- made before the column existed gets it from store/migrate.rs (ALTER TABLE).
    expected_price_age_us INTEGER CHECK (expected_price_age_us IS NULL OR expected_price_age_us >= 0),
    CHECK (side = 'SELL' OR type <> 'STOP_LOSS')
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (status) WHERE status IN ('PENDING', 'PARTIAL');
CREATE INDEX IF NOT EXISTS orders_position ON orders (position_id);

CREATE TABLE IF NOT EXISTS positions (
    position_id        INTEGER PRIMARY KEY,
    symbol             TEXT NOT NULL,
    quantity           TEXT NOT NULL CHECK (typeof(quantity) = 'text'),
    entry_price        TEXT NOT NULL CHECK (typeof(entry_price) = 'text'),
    entry_fees         TEXT NOT NULL DEFAULT '0' CHECK (typeof(entry_fees) = 'text'),
    entry_order_id     INTEGER NOT NULL REFERENCES orders (order_id),
    stop_loss          TEXT CHECK (stop_loss IS NULL OR typeof(stop_loss) = 'text'),
    stop_loss_order_id INTEGER,
    status             TEXT NOT NULL CHECK (status = 'OPEN' OR status = 'UNPROTECTED' OR status = 'DUST' OR status = 'CLOSED'),
    realized_pnl       TEXT NOT NULL DEFAULT '0' CHECK (typeof(realized_pnl) = 'text'),
    opened_at          TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    closed_at          TEXT,
    opened_at_us       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS positions_open ON positions (status) WHERE status <> 'CLOSED';

-- Append-only: every event the engine published, with the order's client id as correlation id.
-- No AUTOINCREMENT: rows are never deleted, so max(id)+1 never reuses an id, and each commit
-- saves a write of the sqlite_sequence page.
CREATE TABLE IF NOT EXISTS event_log (
    id             INTEGER PRIMARY KEY,
    ts             TEXT NOT NULL,
    correlation_id TEXT,
    event          TEXT NOT NULL,
    details        TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS event_log_append_only_update BEFORE UPDATE ON event_log
BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS event_log_append_only_delete BEFORE DELETE ON event_log
BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END;

CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The account's balances as last synced from the exchange.
CREATE TABLE IF NOT EXISTS balances (
    asset      TEXT PRIMARY KEY,
    free       TEXT NOT NULL CHECK (typeof(free) = 'text'),
    locked     TEXT NOT NULL CHECK (typeof(locked) = 'text'),
    updated_at TEXT NOT NULL
);

-- The exchange's trades: the truth for every order's filled quantity, average price and fees,
-- and so for the positions' quantities and realized P&L. One row per trade, written once
-- however it was learnt (placement response, user data stream, query plus myTrades, start-up).
-- commission_quote is the fee valued in the quote asset when the trade was learnt (exact for a
-- fee in the base or quote asset, at that moment's bid for a third asset; NULL if no quote).
CREATE TABLE IF NOT EXISTS fills (
    symbol            TEXT NOT NULL,
    trade_id          INTEGER NOT NULL,
    order_id          INTEGER NOT NULL,
    client_order_id   TEXT NOT NULL,
    exchange_order_id INTEGER,
    side              TEXT NOT NULL CHECK (side = 'BUY' OR side = 'SELL'),
    price             TEXT NOT NULL CHECK (typeof(price) = 'text'),
    quantity          TEXT NOT NULL CHECK (typeof(quantity) = 'text'),
    quote_quantity    TEXT NOT NULL CHECK (typeof(quote_quantity) = 'text'),
    commission        TEXT NOT NULL CHECK (typeof(commission) = 'text'),
    commission_asset  TEXT NOT NULL,
    commission_quote  TEXT CHECK (commission_quote IS NULL OR typeof(commission_quote) = 'text'),
    is_maker          INTEGER NOT NULL CHECK (is_maker = 0 OR is_maker = 1),
    time_ms           INTEGER NOT NULL,
    PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX IF NOT EXISTS fills_order ON fills (order_id);

-- Realized P&L, one row per (partial) close, for the daily loss limit after a restart.
CREATE TABLE IF NOT EXISTS realized_pnl (
    id          INTEGER PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    position_id INTEGER NOT NULL,
    order_id    INTEGER NOT NULL,
    pnl         TEXT NOT NULL CHECK (typeof(pnl) = 'text')
);
CREATE INDEX IF NOT EXISTS realized_pnl_at ON realized_pnl (at_us);
