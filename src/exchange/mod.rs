//! The exchange boundary: one trait, two gateways (`sim`, in process; `binance`, over HTTP),
//! same behaviour. Errors are classified by what the caller must do next.

pub mod binance;
pub mod sim;

use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use std::time::Duration;

/// Most orders one `allOrders` answer carries (Binance's `limit` maximum).
pub const ORDERS_PAGE: usize = 1000;

/// A new order as it is sent to the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub symbol: String,
    pub side: Side,
    pub order_type: ExchangeOrderType,
    pub quantity: Decimal,
    /// Limit price (LIMIT, STOP_LOSS_LIMIT).
    pub price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub client_order_id: String,
}

impl NewOrder {
    /// The market order `order` stands for: its symbol, side, quantity and client order id.
    pub fn market_for(order: &crate::domain::order::Order) -> NewOrder {
        NewOrder {
            symbol: order.symbol.clone(),
            side: order.side,
            order_type: ExchangeOrderType::Market,
            quantity: order.quantity,
            price: None,
            stop_price: None,
            client_order_id: order.client_order_id.clone(),
        }
    }
}

/// Top of the book.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BookTicker {
    pub symbol: String,
    pub bid: Decimal,
    pub bid_qty: Decimal,
    pub ask: Decimal,
    pub ask_qty: Decimal,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Balance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
}

/// What went wrong, classified by the caller's next step.
#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeError {
    /// The request never reached the exchange: safe to retry.
    NotSent { reason: String },
    /// The exchange refused it (4xx with a Binance code): do not retry; show code and message.
    Rejected { http_status: u16, code: i64, msg: String },
    /// 429 / 418: wait `retry_after`; `banned` (418) stops new entries until it expires.
    RateLimited { retry_after: Duration, banned: bool, code: i64, msg: String },
    /// Timeout after send, dropped connection, 5xx, -1006, -1007: the order may or may not
    /// exist. Query by client order id before anything else; never resend blindly.
    Unknown { reason: String },
}

impl ExchangeError {
    /// Binance code -2013 "Order does not exist." on a query.
    pub fn is_no_such_order(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code: -2013, .. })
    }
    /// -2010 "Order would trigger immediately." on a stop placement.
    pub fn would_trigger_immediately(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code: -2010, msg, .. } if msg.contains("would trigger immediately"))
    }
    /// -2026 ORDER_ARCHIVED on a query: the order was cancelled or expired with nothing
    /// executed over 90 days ago (it existed; it traded nothing), unlike -2013.
    pub fn is_order_archived(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code: -2026, .. })
    }
    /// -2039 CLIENT_ORDER_ID_INVALID: the client order id is not the one of that order id (the
    /// order exists; the pair named does not match), unlike -2013.
    pub fn is_client_order_id_mismatch(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code: -2039, .. })
    }
    /// -1021: our clock is off; resync and retry.
    pub fn is_timestamp_error(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code: -1021, .. })
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::NotSent { reason } => write!(f, "not sent: {reason}"),
            ExchangeError::Rejected { code, msg, .. } => {
                write!(f, "rejected by the exchange ({code}): {msg}")
            }
            ExchangeError::RateLimited { retry_after, banned, code, msg } => write!(
                f,
                "{} ({code}): {msg}; retry after {} s",
                if *banned { "banned by the exchange" } else { "rate limited" },
                retry_after.as_secs_f64().ceil()
            ),
            ExchangeError::Unknown { reason } => write!(f, "outcome unknown: {reason}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// What a cancel-replace did, part by part.
#[derive(Debug, Clone, PartialEq)]
pub enum Replaced {
    /// Cancelled, and the new order placed.
    Both { cancelled: OrderReport, placed: OrderReport },
    /// The cancel was refused (the order had already filled or gone, say), so the new order
    /// was not attempted (HTTP 400, -2022).
    CancelRefused { error: ExchangeError },
    /// Cancelled, but the new order was refused (HTTP 409, -2021).
    PlaceRefused { cancelled: OrderReport, error: ExchangeError },
}

/// Exchange-side timings of the last request, for the latency breakdown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestTiming {
    /// Building and signing the request, nanoseconds.
    pub sign_ns: u64,
    /// Send to response parsed, nanoseconds.
    pub round_trip_ns: u64,
}

/// A Binance-like spot exchange. Calls block; the exchange I/O stage owns the gateway.
pub trait Exchange: Send {
    /// Every symbol's filters (`exchangeInfo`).
    fn exchange_info(&mut self) -> Result<Vec<SymbolRules>, ExchangeError>;
    fn book_ticker(&mut self, symbol: &str) -> Result<BookTicker, ExchangeError>;
    /// `POST /api/v3/order` with `newOrderRespType=FULL`.
    fn place_order(&mut self, order: &NewOrder) -> Result<OrderReport, ExchangeError>;
    /// `GET /api/v3/order?origClientOrderId=`; -2013 when the exchange has no such order.
    fn query_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError>;
    /// `DELETE /api/v3/order?origClientOrderId=`.
    fn cancel_order(&mut self, symbol: &str, client_order_id: &str) -> Result<OrderReport, ExchangeError>;
    /// `POST /api/v3/order/cancelReplace` with `cancelReplaceMode=STOP_ON_FAILURE`: cancels
    /// `cancel_client_order_id` and places `order` on the same symbol in one request (a sell
    /// releases its position's stop this way: one round trip instead of two). `Err` is the
    /// request as a whole: neither part happened (not sent, rate limited, refused by a filter),
    /// or what happened is unknown.
    fn cancel_replace(&mut self, cancel_client_order_id: &str, order: &NewOrder) -> Result<Replaced, ExchangeError>;
    /// `GET /api/v3/openOrders`, for one symbol or all.
    fn open_orders(&mut self, symbol: Option<&str>) -> Result<Vec<OrderReport>, ExchangeError>;
    /// `DELETE /api/v3/openOrders?symbol=`; nothing open (-2011) is an empty list.
    fn cancel_open_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError>;
    /// `GET /api/v3/allOrders?symbol=`: recent orders of the account, open or not.
    fn all_orders(&mut self, symbol: &str) -> Result<Vec<OrderReport>, ExchangeError>;
    /// `GET /api/v3/allOrders?symbol=&startTime=&endTime=&limit=1000`: the account's orders of
    /// `symbol` created in `[start_ms, end_ms]` (at most 24 h apart), oldest first, at most
    /// [`ORDERS_PAGE`] of them. Start-up reads only the time in which an order may have left
    /// without being recorded, so its cost does not grow with the account's history.
    fn orders_between(&mut self, symbol: &str, start_ms: i64, end_ms: i64) -> Result<Vec<OrderReport>, ExchangeError> {
        let mut orders: Vec<OrderReport> =
            self.all_orders(symbol)?.into_iter().filter(|o| (start_ms..=end_ms).contains(&o.time_ms)).collect();
        orders.truncate(ORDERS_PAGE);
        Ok(orders)
    }
    fn account(&mut self) -> Result<Vec<Balance>, ExchangeError>;
    /// `GET /api/v3/myTrades?symbol=&orderId=` (weight 5): one order's trades, for a fill learnt
    /// by a query or a listing, whose report carries no trades and so no commission.
    fn order_trades(&mut self, symbol: &str, exchange_order_id: i64) -> Result<Vec<Fill>, ExchangeError>;
    /// Timings of the last request.
    fn last_timing(&self) -> RequestTiming;
    /// The exchange's order limit per 10 s (`exchangeInfo` rateLimits), when it reports one.
    fn order_limit_10s(&self) -> Option<u64> {
        None
    }
    /// Request weight used this minute and the limit, as the exchange last reported them.
    fn weight_status(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Where quotes come from right now, for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteStatus {
    /// `book` (the simulator's own book), `stream` (a live market stream) or `rest` (polled).
    pub source: &'static str,
    /// Symbols the live market stream has a quote of.
    pub stream_symbols: usize,
    /// Market stream events received since start.
    pub stream_updates: u64,
    /// REST `bookTicker` requests since start.
    pub rest_fetches: u64,
}

/// Top of book for intake's expected price, readable from any thread without a round trip.
pub trait Quotes: Send + Sync {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker>;

    /// The top of book and its age: how long ago it was last known to be the exchange's. A
    /// source that reads the book itself (the simulator) is current: zero.
    fn quote(&self, symbol: &str) -> Option<(BookTicker, Duration)> {
        self.top_of_book(symbol).map(|t| (t, Duration::ZERO))
    }

    fn status(&self) -> QuoteStatus {
        QuoteStatus { source: "book", stream_symbols: 0, stream_updates: 0, rest_fetches: 0 }
    }

    /// Moves the market (tests and demos): only the simulator can.
    fn set_price(&self, _symbol: &str, _bid: Decimal, _ask: Decimal) -> Result<(), String> {
        Err("price control is only available on the simulator (--exchange sim)".into())
    }
}

/// What a push source of order changes (an exchange's user data stream) tells exchange I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum PushMsg {
    /// Subscribed (first time or after a reconnect): poll now to cover the gap.
    Subscribed,
    /// The connection is gone; the poll alone watches until the next `Subscribed`.
    Down(String),
    /// An order changed: the report and the event time `E` (ms).
    Report { report: OrderReport, event_ms: i64 },
}

/// Exchange I/O's end of a running push source: the receiver, and a stop flag raised when it is
/// dropped (the source's thread then ends; it never keeps the pipeline alive).
pub struct PushLink {
    pub rx: crossbeam_channel::Receiver<PushMsg>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PushLink {
    pub fn new(
        rx: crossbeam_channel::Receiver<PushMsg>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> PushLink {
        PushLink { rx, stop }
    }
}

impl Drop for PushLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A push source of order changes, not started yet: where and as whom to subscribe.
pub trait PushSource: Send {
    /// Starts its thread; `capacity` bounds the channel to exchange I/O; `on_thread` runs first
    /// on the new thread (the engine pins it there).
    fn start(self: Box<Self>, capacity: usize, on_thread: Box<dyn FnOnce() + Send>) -> std::io::Result<PushLink>;
}

/// A connected gateway and the quote source that goes with it.
pub struct Connected {
    pub gateway: Box<dyn Exchange>,
    pub quotes: std::sync::Arc<dyn Quotes>,
    /// The exchange's push of order changes, to start once reconciled (binance, `--stream on`).
    pub stream: Option<Box<dyn PushSource>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote source that only reads prices, as every one but the simulator's.
    struct ReadOnlyQuotes;

    impl Quotes for ReadOnlyQuotes {
        fn top_of_book(&self, _symbol: &str) -> Option<BookTicker> {
            None
        }
    }

    #[test]
    fn dropping_a_push_link_tells_its_source_to_stop() {
        let (_tx, rx) = crossbeam_channel::bounded(1);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        drop(PushLink::new(rx, std::sync::Arc::clone(&stop)));
        assert!(stop.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn a_source_that_reads_the_book_gives_quotes_of_age_zero() {
        assert_eq!(ReadOnlyQuotes.quote("BTCUSDT"), None);
        assert_eq!(ReadOnlyQuotes.status().source, "book");
    }

    #[test]
    fn a_quote_source_other_than_the_simulator_refuses_to_move_prices() {
        let refused = ReadOnlyQuotes.set_price("BTCUSDT", Decimal::from(60_000), Decimal::from(60_001));
        assert_eq!(refused, Err("price control is only available on the simulator (--exchange sim)".to_string()));
    }

    #[test]
    fn archived_and_mismatched_client_id_are_told_apart_from_no_such_order() {
        let rejected = |code| ExchangeError::Rejected { http_status: 400, code, msg: String::new() };
        let archived = rejected(-2026);
        let mismatch = rejected(-2039);
        assert!(
            archived.is_order_archived() && !archived.is_no_such_order() && !archived.is_client_order_id_mismatch()
        );
        assert!(
            mismatch.is_client_order_id_mismatch() && !mismatch.is_no_such_order() && !mismatch.is_order_archived()
        );
        assert!(!rejected(-2013).is_order_archived() && !rejected(-2013).is_client_order_id_mismatch());
    }
}
