//! Intake stage: turns stdin lines into orders.
//!
//! Owns the parser, the symbol checks, the pending confirmations and their timer. Receives
//! lines from the stdin reader; sends submissions, cancel-all and queries to exchange I/O
//! (in order: a query or cancel-all runs after every command typed before it), and records
//! to persist. Every order gets its `client_order_id` here, before it leaves the process.

use super::guard::ExchangeGuard;
use super::msg::{Line, Query, Submission, Timing, ToExchange, ToPersist};
use super::Rules;
use crate::domain::command::{self, Command};
use crate::domain::ids::IdGen;
use crate::domain::lifecycle::LifecycleEvent;
use crate::domain::money::{below_by_percent, Decimal};
use crate::domain::now_us;
use crate::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use crate::events::{Bus, Event};
use crate::exchange::Quotes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An order waiting for `y` / `n`.
struct PendingConfirmation {
    order: Order,
    deadline: Instant,
    read_at: Instant,
}

pub struct Intake {
    pub rules: Arc<Rules>,
    pub quotes: Arc<dyn Quotes>,
    pub ids: Arc<IdGen>,
    pub guard: Arc<ExchangeGuard>,
    pub confirm: bool,
    pub confirm_timeout: Duration,
    pub stop_loss_pct: Decimal,
    pub bus: Bus,
    pub to_exchange: Sender<ToExchange>,
    pub to_persist: Sender<ToPersist>,
    pending: VecDeque<PendingConfirmation>,
}

/// A command refused at intake: one sentence.
struct Refusal(String);

impl<E: std::fmt::Display> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal(e.to_string())
    }
}

#[allow(clippy::too_many_arguments)]
impl Intake {
    pub fn new(
        rules: Arc<Rules>,
        quotes: Arc<dyn Quotes>,
        ids: Arc<IdGen>,
        guard: Arc<ExchangeGuard>,
        confirm: bool,
        config: &crate::config::Config,
        bus: Bus,
        to_exchange: Sender<ToExchange>,
        to_persist: Sender<ToPersist>,
    ) -> Intake {
        Intake {
            rules,
            quotes,
            ids,
            guard,
            confirm,
            confirm_timeout: config.confirm_timeout,
            stop_loss_pct: config.stop_loss_pct,
            bus,
            to_exchange,
            to_persist,
            pending: VecDeque::new(),
        }
    }

    /// Runs until `quit` or end of input; then cancels what still waits for a confirmation.
    pub fn run(mut self, from_reader: Receiver<Line>) {
        loop {
            let received = match self.pending.front() {
                Some(first) => from_reader
                    .recv_timeout(first.deadline.saturating_duration_since(Instant::now())),
                None => from_reader
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(line) => {
                    if !self.handle(line) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.expire_confirmations();
        }
        while let Some(p) = self.pending.pop_front() {
            self.cancel_pending(p.order, "input ended before a confirmation");
        }
    }

    /// Handles one line; false means stop reading.
    fn handle(&mut self, line: Line) -> bool {
        let command = match command::parse(&line.text) {
            Ok(Some(command)) => command,
            Ok(None) => return true,
            Err(e) => {
                self.bus.error(format!("line {}: {e}", line.number));
                return true;
            }
        };
        let result = match command {
            Command::Buy { symbol, quantity } => {
                self.market_order(Side::Buy, &symbol, quantity, line.read_at)
            }
            Command::Sell { symbol, quantity } => {
                self.market_order(Side::Sell, &symbol, Some(quantity), line.read_at)
            }
            Command::AnswerOldest { accept } => match self.pending.pop_front() {
                Some(p) => self.answer(p, accept),
                None => Err(Refusal(format!(
                    "no order is waiting for a confirmation ('{}' ignored)",
                    line.text.trim()
                ))),
            },
            Command::Answer { id, accept } => {
                match self.pending.iter().position(|p| {
                    p.order.order_id.to_string() == id || p.order.client_order_id == id
                }) {
                    Some(i) => {
                        let p = self.pending.remove(i).expect("index from position()");
                        self.answer(p, accept)
                    }
                    None => Err(Refusal(format!(
                        "no order '{id}' is waiting for a confirmation"
                    ))),
                }
            }
            Command::Status { id } => self.query(Query::Status { id }),
            Command::Orders => self.query(Query::Orders),
            Command::Positions => self.query(Query::Positions),
            Command::CancelAll => {
                while let Some(p) = self.pending.pop_front() {
                    self.cancel_pending(p.order, "cancel-all");
                }
                self.send(ToExchange::CancelAll)
            }
            Command::SetConfirm { on } => {
                self.confirm = on;
                let value = if on { "on" } else { "off" };
                let _ = self.to_persist.send(ToPersist::Setting {
                    key: "confirm",
                    value: value.to_string(),
                });
                self.bus.publish(
                    Event::new("confirm_set", format!("confirmation {value} (saved)"))
                        .field("confirm", on),
                );
                Ok(())
            }
            Command::Help => {
                self.bus
                    .publish(Event::new("help", command::HELP).field("commands", command::HELP));
                Ok(())
            }
            Command::Quit => return false,
        };
        if let Err(Refusal(message)) = result {
            self.bus.error(format!("line {}: {message}", line.number));
        }
        true
    }

    fn send(&self, msg: ToExchange) -> Result<(), Refusal> {
        // Blocking on a full queue is the back-pressure: the reader stops reading stdin,
        // nothing is dropped and nothing grows without bound.
        self.to_exchange
            .send(msg)
            .map_err(|_| Refusal("the engine is shutting down".into()))
    }

    fn query(&self, query: Query) -> Result<(), Refusal> {
        self.send(ToExchange::Query(query))
    }

    fn market_order(
        &mut self,
        side: Side,
        symbol: &str,
        quantity: Option<Decimal>,
        read_at: Instant,
    ) -> Result<(), Refusal> {
        let rules = self.rules.get(symbol).ok_or_else(|| {
            let mut known: Vec<&str> = self.rules.keys().map(String::as_str).collect();
            known.sort_unstable();
            Refusal(format!(
                "unknown symbol '{symbol}' (known: {})",
                known.join(", ")
            ))
        })?;
        let quantity = quantity
            .ok_or_else(|| Refusal(format!("buy {symbol} needs a quantity: buy {symbol} QTY")))?;
        rules.check_quantity(quantity)?;
        let quote = self
            .quotes
            .top_of_book(symbol)
            .ok_or_else(|| Refusal(format!("no price for {symbol} right now")))?;
        let expected = match side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        };
        rules.check_notional(quantity, expected)?;
        let role = if side == Side::Buy {
            OrderRole::Entry
        } else {
            OrderRole::Exit
        };
        let mut order = Order::new(
            self.ids.next_order_id(),
            self.ids.client_order_id(role.id_letter()),
            symbol.to_string(),
            side,
            role,
            ExchangeOrderType::Market,
            quantity,
            now_us(),
        );
        order.expected_price = Some(expected);
        if self.confirm {
            self.ask_confirmation(
                order,
                read_at,
                rules.round_price_down(below_by_percent(expected, self.stop_loss_pct)),
            );
            Ok(())
        } else {
            self.submit(order, read_at)
        }
    }

    fn submit(&mut self, order: Order, read_at: Instant) -> Result<(), Refusal> {
        // An order costs two exchange orders: itself and the stop-loss it places or re-places.
        self.guard
            .admit(Instant::now(), 2, order.role == OrderRole::Entry)
            .map_err(Refusal)?;
        let timing = Timing::new(read_at);
        self.send(ToExchange::Submit(Box::new(Submission { order, timing })))
    }

    fn ask_confirmation(&mut self, order: Order, read_at: Instant, stop_price: Decimal) {
        let expected = order.expected_price.unwrap_or_default();
        let notional = (order.quantity * expected).round_dp(8).normalize();
        let stop_text = if order.side == Side::Buy {
            format!(", stop-loss at {stop_price}")
        } else {
            String::new()
        };
        let mut event = Event::new(
            "confirm_request",
            format!(
                "confirm {}: {} {} {} at ~{} = {} {}{} — answer y/n (or confirm {} / reject {}) within {} s",
                order.order_id,
                order.side.as_str(),
                order.quantity,
                order.symbol,
                expected,
                notional,
                self.rules.get(&order.symbol).map(|r| r.quote_asset.as_str()).unwrap_or(""),
                stop_text,
                order.order_id,
                order.order_id,
                self.confirm_timeout.as_secs()
            ),
        )
        .order(order.order_id, &order.client_order_id)
        .field("symbol", order.symbol.as_str())
        .field("side", order.side.as_str())
        .money("quantity", order.quantity)
        .money("expected_price", expected)
        .money("notional", notional)
        .field("timeout_s", self.confirm_timeout.as_secs());
        if order.side == Side::Buy {
            event = event.money("stop_loss_price", stop_price);
        }
        self.bus.publish(event);
        let _ = self
            .to_persist
            .send(ToPersist::Order(Box::new(order.clone())));
        self.pending.push_back(PendingConfirmation {
            order,
            deadline: Instant::now() + self.confirm_timeout,
            read_at,
        });
    }

    fn answer(&mut self, pending: PendingConfirmation, accept: bool) -> Result<(), Refusal> {
        if accept {
            // Latency counts from the confirmation, not from the time spent deciding.
            self.submit(pending.order, Instant::now().max(pending.read_at))
        } else {
            self.cancel_pending(pending.order, "rejected by the user");
            Ok(())
        }
    }

    fn expire_confirmations(&mut self) {
        let now = Instant::now();
        while self.pending.front().is_some_and(|p| p.deadline <= now) {
            if let Some(p) = self.pending.pop_front() {
                let reason = format!(
                    "no confirmation within {} s",
                    self.confirm_timeout.as_secs()
                );
                self.cancel_pending(p.order, &reason);
            }
        }
    }

    fn cancel_pending(&self, mut order: Order, reason: &str) {
        let _ = order.apply_event(
            LifecycleEvent::Cancelled,
            Some(reason.to_string()),
            now_us(),
        );
        let _ = self
            .to_persist
            .send(ToPersist::Order(Box::new(order.clone())));
        self.bus.publish(
            Event::new(
                "order_cancelled",
                format!(
                    "{} {} {} {} cancelled: {reason}",
                    order.order_id,
                    order.side.as_str(),
                    order.quantity,
                    order.symbol
                ),
            )
            .order(order.order_id, &order.client_order_id)
            .field("symbol", order.symbol.as_str())
            .field("reason", reason),
        );
    }
}
