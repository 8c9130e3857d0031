//! Every message that crosses a channel between stages, in one place: this file shows all
//! the traffic of the pipeline.

use crate::domain::order::Order;
use crate::domain::position::Position;
use crate::events::event::Event;
use std::sync::Arc;
use std::time::Instant;

/// A line read from stdin, with when it was read.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub number: u64,
    pub read_at: Instant,
}

/// A question answered from the database, after everything before it has been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Status {
        id: String,
    },
    Orders,
    Positions,
    /// Answered by exchange I/O (it owns the balances' sync), not from the database.
    Account {
        confirm: bool,
    },
    /// Latency per stage; answered by persist, after every write before it.
    Stats,
}

/// intake → exchange I/O
#[derive(Debug)]
pub enum ToExchange {
    /// Send this order (a market entry or exit).
    Submit(Box<Submission>),
    /// Cancel every open order on every symbol.
    CancelAll,
    /// Passes down the pipeline behind every order sent before it.
    Query(Query),
    /// `resume`: protect every position left unprotected (a `halt` cancels the stops).
    Reprotect,
}

#[derive(Debug)]
pub struct Submission {
    pub order: Order,
    pub timing: Timing,
}

/// Timestamps along one order's path, for latency per stage.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub read_at: Instant,
    /// Intake done: request ready to send.
    pub ready_at: Instant,
    pub sent_at: Option<Instant>,
    pub placed_at: Option<Instant>,
    pub queried_at: Option<Instant>,
    pub verified_at: Option<Instant>,
    /// Signing time of the placement, nanoseconds.
    pub sign_ns: u64,
}

impl Timing {
    pub fn new(read_at: Instant) -> Timing {
        Timing {
            read_at,
            ready_at: Instant::now(),
            sent_at: None,
            placed_at: None,
            queried_at: None,
            verified_at: None,
            sign_ns: 0,
        }
    }
}

/// An order that reached the exchange, with the placement and verification reports applied:
/// what exchange I/O records and then acts on (positions, stop-losses).
#[derive(Debug)]
pub struct Execution {
    pub order: Order,
    pub timing: Timing,
    /// The verification query failed; the fill comes from the placement response alone.
    pub verification_error: Option<String>,
    /// Its fill's event is out already (exchange I/O wrote it when the query answered).
    pub announced: bool,
}

/// any stage → persist
#[derive(Debug)]
pub enum ToPersist {
    Order(Box<Order>),
    Position(Box<Position>),
    Event(Arc<Event>),
    Setting { key: &'static str, value: String },
    Balances { balances: Vec<crate::exchange::Balance>, at_us: i64 },
    RealizedPnl { at_us: i64, position_id: i64, order_id: i64, pnl: crate::domain::money::Decimal },
    Query(Query),
}
