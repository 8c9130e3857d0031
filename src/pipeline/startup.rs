//! Start-up reads that must succeed before the engine trades.
//!
//! A read that failed at start-up is not "nothing there": the order it would have shown may be
//! a filled entry or a live stop-loss that the database lost. So every read that start-up
//! depends on (the server time, the symbols' rules, the balances, every order that may have
//! left the process) goes through [`StartupReads::read`], which retries until it has an answer:
//! with back-off after a failure (`reconciling` event), after the exchange's `Retry-After` on a
//! 429 or a ban (`rate_limited` event). Only two things end it early: the exchange refusing the
//! request itself (a bad key: retrying cannot help), and the user asking to stop (`quit`,
//! SIGINT, SIGTERM), which ends the process cleanly without trading.
//!
//! It also counts the request weight start-up spends, as Binance documents each request's.

use crate::events::{Bus, Event, EventKind};
use crate::exchange::ExchangeError;
use std::time::Duration;

/// First wait after a failed start-up read; doubled after each failure, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Request weights of the start-up reads (Binance's documented weights).
pub mod weight {
    pub const TIME: u64 = 1;
    pub const EXCHANGE_INFO: u64 = 20;
    pub const ACCOUNT: u64 = 20;
    pub const ALL_ORDERS: u64 = 20;
    pub const QUERY_ORDER: u64 = 4;
}

/// Why start-up ended without an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StartupError {
    /// The user asked to stop (`quit`, SIGINT, SIGTERM) while a read was being retried.
    Stopped,
    /// The exchange refused the request itself (a bad API key, say): retrying cannot help.
    Refused(ExchangeError),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartupError::Stopped => write!(f, "stopped before reconciliation completed"),
            StartupError::Refused(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartupError::Stopped => None,
            StartupError::Refused(e) => Some(e),
        }
    }
}

/// Waits up to the given time; true when the user asked to stop meanwhile.
pub type StopWait<'a> = Box<dyn FnMut(Duration) -> bool + 'a>;

/// Runs start-up reads until each has an answer; see the module doc.
pub struct StartupReads<'a> {
    bus: Bus,
    wait: StopWait<'a>,
    first_backoff: Duration,
    max_backoff: Duration,
    weight_used: u64,
}

impl<'a> StartupReads<'a> {
    pub fn new(bus: Bus, wait: StopWait<'a>) -> StartupReads<'a> {
        StartupReads { bus, wait, first_backoff: FIRST_BACKOFF, max_backoff: MAX_BACKOFF, weight_used: 0 }
    }

    /// Shorter waits (tests).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> StartupReads<'a> {
        self.first_backoff = first;
        self.max_backoff = max;
        self
    }

    /// Request weight spent so far by the reads (a refusal for the rate limit costs none).
    pub fn weight_used(&self) -> u64 {
        self.weight_used
    }

    /// Calls `call` until it answers. `what` names the request in the events.
    pub fn read<T>(
        &mut self,
        what: &str,
        weight: u64,
        mut call: impl FnMut() -> Result<T, ExchangeError>,
    ) -> Result<T, StartupError> {
        let mut backoff = self.first_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let error = match call() {
                Ok(answer) => {
                    self.weight_used += weight;
                    return Ok(answer);
                }
                Err(error) => error,
            };
            let retry_in = match &error {
                ExchangeError::RateLimited { retry_after, banned, .. } => {
                    let retry_in = (*retry_after).max(self.first_backoff);
                    self.bus.publish(
                        Event::new(
                            EventKind::RateLimited,
                            format!(
                                "start-up: {what} {}; waiting {} ms before trying again",
                                if *banned {
                                    "refused: the exchange banned us for now"
                                } else {
                                    "refused: rate limited"
                                },
                                retry_in.as_millis()
                            ),
                        )
                        .field("request", what)
                        .field("reason", error.to_string())
                        .field("banned", *banned)
                        .field("retry_in_ms", retry_in.as_millis() as u64)
                        // The name the same event uses during operation.
                        .field("retry_after_ms", retry_in.as_millis() as u64),
                    );
                    retry_in
                }
                ExchangeError::Rejected { .. } => return Err(StartupError::Refused(error)),
                ExchangeError::NotSent { .. } | ExchangeError::Unknown { .. } => {
                    if matches!(error, ExchangeError::Unknown { .. }) {
                        // It reached the exchange: Binance charges it.
                        self.weight_used += weight;
                    }
                    let retry_in = backoff;
                    backoff = (backoff * 2).min(self.max_backoff);
                    self.bus.publish(
                        Event::new(
                            EventKind::Reconciling,
                            format!(
                                "start-up: {what} failed ({error}); attempt {attempt}, trying again in {} ms; \
                                 no command is taken until it succeeds",
                                retry_in.as_millis()
                            ),
                        )
                        .field("request", what)
                        .field("reason", error.to_string())
                        .field("attempt", attempt)
                        .field("retry_in_ms", retry_in.as_millis() as u64),
                    );
                    retry_in
                }
            };
            if (self.wait)(retry_in) {
                return Err(StartupError::Stopped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{stdout_lanes, StdoutQueues};
    use crate::pipeline::msg::ToPersist;
    use crossbeam_channel::Receiver;
    use std::cell::Cell;
    use std::sync::Arc;

    /// A bus whose events land in the returned receiver (as the event log's do).
    fn bus() -> (Bus, (Receiver<ToPersist>, StdoutQueues)) {
        let (lanes, queues) = stdout_lanes(64, 64);
        let (to_log, from_bus) = crossbeam_channel::unbounded();
        (Bus::new(lanes, Some(to_log)), (from_bus, queues))
    }

    fn events((from_bus, _): &(Receiver<ToPersist>, StdoutQueues)) -> Vec<Arc<Event>> {
        from_bus
            .try_iter()
            .filter_map(|m| match m {
                ToPersist::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn unknown() -> ExchangeError {
        ExchangeError::Unknown { reason: "HTTP 503".into() }
    }

    #[test]
    fn a_failed_read_is_retried_with_doubling_waits_until_it_answers() {
        let (bus, queues) = bus();
        let waits = std::cell::RefCell::new(Vec::new());
        let mut reads = StartupReads::new(
            bus,
            Box::new(|d| {
                waits.borrow_mut().push(d);
                false
            }),
        );
        let mut left = 3;
        let answer = reads.read("allOrders ETHUSDT", 20, || {
            left -= 1;
            if left > 0 {
                Err(unknown())
            } else {
                Ok(7)
            }
        });
        assert_eq!(answer, Ok(7));
        assert_eq!(*waits.borrow(), [FIRST_BACKOFF, FIRST_BACKOFF * 2]);
        let seen = events(&queues);
        assert_eq!(seen.iter().map(|e| e.kind).collect::<Vec<_>>(), ["reconciling", "reconciling"]);
        assert_eq!(seen[1].fields["retry_in_ms"], 500);
        assert_eq!(seen[1].fields["request"], "allOrders ETHUSDT");
        assert_eq!(reads.weight_used(), 60, "the two 5xx answers were charged too");
    }

    #[test]
    fn the_back_off_stops_growing_at_its_ceiling() {
        let (bus, _queues) = bus();
        let last = Cell::new(Duration::ZERO);
        let mut reads = StartupReads::new(
            bus,
            Box::new(|d| {
                last.set(d);
                false
            }),
        )
        .with_backoff(Duration::from_millis(1), Duration::from_millis(4));
        let mut left = 6;
        let _ = reads.read("account", 20, || {
            left -= 1;
            if left > 0 {
                Err(ExchangeError::NotSent { reason: "connection refused".into() })
            } else {
                Ok(())
            }
        });
        assert_eq!(last.get(), Duration::from_millis(4));
        assert_eq!(reads.weight_used(), 20, "requests that were never sent cost nothing");
    }

    #[test]
    fn a_rate_limited_read_waits_the_exchanges_retry_after_and_says_so() {
        let (bus, queues) = bus();
        let waited = Cell::new(Duration::ZERO);
        let mut reads = StartupReads::new(
            bus,
            Box::new(|d| {
                waited.set(d);
                false
            }),
        );
        let mut first = true;
        let answer = reads.read("time", 1, || {
            if std::mem::take(&mut first) {
                Err(ExchangeError::RateLimited {
                    retry_after: Duration::from_secs(37),
                    banned: true,
                    code: -1003,
                    msg: "Way too much request weight used".into(),
                })
            } else {
                Ok(1)
            }
        });
        assert_eq!(answer, Ok(1));
        assert_eq!(waited.get(), Duration::from_secs(37));
        let seen = events(&queues);
        assert_eq!(seen[0].kind, "rate_limited");
        assert_eq!(seen[0].fields["retry_in_ms"], 37_000);
        assert_eq!(seen[0].fields["banned"], true);
    }

    #[test]
    fn a_request_the_exchange_refuses_ends_start_up_with_its_error() {
        let (bus, _queues) = bus();
        let mut reads = StartupReads::new(bus, Box::new(|_| false));
        let refusal = ExchangeError::Rejected { http_status: 401, code: -2015, msg: "Invalid API-key".into() };
        let answer: Result<(), _> = reads.read("account", 20, || Err(refusal.clone()));
        assert_eq!(answer, Err(StartupError::Refused(refusal)));
        assert!(std::error::Error::source(&answer.unwrap_err()).is_some());
    }

    #[test]
    fn a_stop_asked_for_while_waiting_ends_the_retries() {
        let (bus, _queues) = bus();
        let mut reads = StartupReads::new(bus, Box::new(|_| true));
        let answer: Result<(), _> = reads.read("allOrders ETHUSDT", 20, || Err(unknown()));
        assert_eq!(answer, Err(StartupError::Stopped));
        assert_eq!(StartupError::Stopped.to_string(), "stopped before reconciliation completed");
        assert!(std::error::Error::source(&StartupError::Stopped).is_none());
    }
}
