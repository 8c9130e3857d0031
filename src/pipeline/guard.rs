//! Exchange guard: the client-side rate limiter, the 418 ban and the circuit breaker, shared
//! by intake (which refuses a new entry at once, with the reason) and exchange I/O (which
//! reports each outcome). Cold state behind one short lock.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// Longest the breaker stays open before probing again.
pub const BREAKER_MAX_OPEN: Duration = Duration::from_secs(60);
const ORDER_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Refusing new entries until `until`; then one probe is let through.
    Open {
        until: Instant,
    },
    /// One probe is out; its outcome closes or re-opens the breaker.
    HalfOpen,
}

#[derive(Debug)]
struct State {
    /// Orders admitted in the last 10 s (an entry counts two: it and its stop-loss).
    admitted: VecDeque<Instant>,
    order_limit_10s: u32,
    banned_until: Option<Instant>,
    breaker: BreakerState,
    consecutive_failures: u32,
    /// How many times in a row the breaker opened: the next open lasts 2^opens s.
    opens: u32,
    /// Request weight used this minute and the limit, as the exchange last reported them.
    weight: Option<(u64, u64)>,
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardChange {
    BreakerOpened { failures: u32, retry_in: Duration },
    BreakerClosed,
}

#[derive(Debug)]
pub struct ExchangeGuard {
    state: Mutex<State>,
}

impl ExchangeGuard {
    /// `order_limit_10s` as the exchange reports it (`exchangeInfo` rateLimits); we keep under it.
    pub fn new(order_limit_10s: u32) -> ExchangeGuard {
        ExchangeGuard {
            state: Mutex::new(State {
                admitted: VecDeque::new(),
                order_limit_10s: order_limit_10s.max(2),
                banned_until: None,
                breaker: BreakerState::Closed,
                consecutive_failures: 0,
                opens: 0,
                weight: None,
            }),
        }
    }

    /// The exchange's order limit, once start-up has read `exchangeInfo`.
    pub fn set_order_limit_10s(&self, order_limit_10s: u32) {
        self.state.lock().order_limit_10s = order_limit_10s.max(2);
    }

    pub fn breaker(&self) -> BreakerState {
        self.state.lock().breaker
    }

    /// Admits a new order of `weight` exchange orders at `now`, or says why not.
    pub fn admit(&self, now: Instant, weight: u32, is_entry: bool) -> Result<(), String> {
        let mut s = self.state.lock();
        if let Some(until) = s.banned_until {
            if now < until {
                if is_entry {
                    return Err(format!(
                        "the exchange banned this IP (418); new entries refused for {} s more",
                        until.duration_since(now).as_secs() + 1
                    ));
                }
            } else {
                s.banned_until = None;
            }
        }
        if is_entry {
            match s.breaker {
                BreakerState::Open { until } if now < until => {
                    return Err(format!(
                        "circuit breaker open after {} consecutive exchange failures; next probe in {} s",
                        s.consecutive_failures,
                        until.duration_since(now).as_secs() + 1
                    ))
                }
                BreakerState::Open { .. } => s.breaker = BreakerState::HalfOpen,
                BreakerState::HalfOpen | BreakerState::Closed => {}
            }
        }
        // Keep a tenth of the weight budget for protective calls and live tracking.
        if let Some((used, limit)) = s.weight {
            if is_entry && used * 10 >= limit * 9 {
                return Err(format!(
                    "request weight: {used} of the exchange's {limit} per minute used; new entries refused until the minute frees"
                ));
            }
        }
        while s.admitted.front().is_some_and(|t| now.duration_since(*t) >= ORDER_WINDOW) {
            s.admitted.pop_front();
        }
        // Keep one order of headroom under the exchange's limit for protective orders.
        let room = s.order_limit_10s.saturating_sub(1);
        if is_entry && s.admitted.len() as u32 + weight > room {
            let wait =
                s.admitted.front().map(|t| ORDER_WINDOW.saturating_sub(now.duration_since(*t))).unwrap_or_default();
            return Err(format!(
                "rate limit: {} orders in the last 10 s (the exchange allows {} per 10 s); try again in {:.1} s",
                s.admitted.len(),
                s.order_limit_10s,
                wait.as_secs_f64()
            ));
        }
        for _ in 0..weight {
            s.admitted.push_back(now);
        }
        Ok(())
    }

    /// The weight the exchange reported in its last response.
    pub fn record_weight(&self, used: u64, limit: u64) {
        self.state.lock().weight = Some((used, limit));
    }

    /// The exchange answered (accepted or rejected: it is alive).
    pub fn record_success(&self) -> Option<GuardChange> {
        let mut s = self.state.lock();
        s.consecutive_failures = 0;
        if s.breaker != BreakerState::Closed {
            s.breaker = BreakerState::Closed;
            s.opens = 0;
            return Some(GuardChange::BreakerClosed);
        }
        None
    }

    /// No usable answer (not sent, unknown outcome, 5xx).
    pub fn record_failure(&self, now: Instant) -> Option<GuardChange> {
        let mut s = self.state.lock();
        s.consecutive_failures += 1;
        let trips = s.breaker == BreakerState::HalfOpen || s.consecutive_failures >= BREAKER_THRESHOLD;
        if trips && !matches!(s.breaker, BreakerState::Open { .. }) {
            let retry_in = Duration::from_secs(1u64 << s.opens.min(6)).min(BREAKER_MAX_OPEN);
            s.opens += 1;
            s.breaker = BreakerState::Open { until: now + retry_in };
            return Some(GuardChange::BreakerOpened { failures: s.consecutive_failures, retry_in });
        }
        None
    }

    /// A 418: no new entries until the ban expires.
    pub fn record_ban(&self, now: Instant, retry_after: Duration) {
        let mut s = self.state.lock();
        let until = now + retry_after;
        s.banned_until = Some(s.banned_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_refused_before_the_exchange_order_limit() {
        let guard = ExchangeGuard::new(10);
        let now = Instant::now();
        for _ in 0..4 {
            assert!(guard.admit(now, 2, true).is_ok());
        }
        let err = guard.admit(now, 2, true).unwrap_err();
        assert!(err.starts_with("rate limit: 8 orders in the last 10 s (the exchange allows 10 per 10 s)"), "{err}");
        // Exits are protective: never refused by the limiter.
        assert!(guard.admit(now, 2, false).is_ok());
    }

    #[test]
    fn the_order_window_slides() {
        let guard = ExchangeGuard::new(4);
        let now = Instant::now();
        assert!(guard.admit(now, 2, true).is_ok());
        assert!(guard.admit(now, 2, true).is_err());
        assert!(guard.admit(now + Duration::from_secs(10), 2, true).is_ok());
    }

    #[test]
    fn breaker_opens_after_repeated_failures_and_backs_off_exponentially() {
        let guard = ExchangeGuard::new(50);
        let now = Instant::now();
        for _ in 0..BREAKER_THRESHOLD - 1 {
            assert_eq!(guard.record_failure(now), None);
        }
        assert_eq!(
            guard.record_failure(now),
            Some(GuardChange::BreakerOpened { failures: BREAKER_THRESHOLD, retry_in: Duration::from_secs(1) })
        );
        assert!(guard.admit(now, 2, true).unwrap_err().starts_with("circuit breaker open"));
        // After the wait one probe goes through; its failure re-opens for twice as long.
        assert!(guard.admit(now + Duration::from_secs(1), 2, true).is_ok());
        assert_eq!(guard.breaker(), BreakerState::HalfOpen);
        assert_eq!(
            guard.record_failure(now + Duration::from_secs(1)),
            Some(GuardChange::BreakerOpened { failures: BREAKER_THRESHOLD + 1, retry_in: Duration::from_secs(2) })
        );
    }

    #[test]
    fn breaker_wait_is_capped_at_sixty_seconds() {
        let guard = ExchangeGuard::new(50);
        let mut now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            for _ in 0..BREAKER_THRESHOLD {
                if let Some(GuardChange::BreakerOpened { retry_in, .. }) = guard.record_failure(now) {
                    last = retry_in;
                }
            }
            now += Duration::from_secs(61);
            let _ = guard.admit(now, 1, true);
        }
        assert_eq!(last, BREAKER_MAX_OPEN);
    }

    #[test]
    fn entries_are_refused_near_the_weight_limit_but_exits_are_not() {
        let guard = ExchangeGuard::new(50);
        let now = Instant::now();
        guard.record_weight(5399, 6000);
        assert!(guard.admit(now, 2, true).is_ok());
        guard.record_weight(5400, 6000);
        let err = guard.admit(now, 2, true).unwrap_err();
        assert!(err.starts_with("request weight: 5400 of the exchange's 6000 per minute used"), "{err}");
        assert!(guard.admit(now, 2, false).is_ok());
    }

    #[test]
    fn a_success_closes_the_breaker() {
        let guard = ExchangeGuard::new(50);
        let now = Instant::now();
        for _ in 0..BREAKER_THRESHOLD {
            guard.record_failure(now);
        }
        assert_eq!(guard.record_success(), Some(GuardChange::BreakerClosed));
        assert_eq!(guard.breaker(), BreakerState::Closed);
        assert!(guard.admit(now, 2, true).is_ok());
    }

    #[test]
    fn a_ban_refuses_entries_until_it_expires_but_not_exits() {
        let guard = ExchangeGuard::new(50);
        let now = Instant::now();
        guard.record_ban(now, Duration::from_secs(120));
        assert!(guard.admit(now, 2, true).unwrap_err().contains("banned"));
        assert!(guard.admit(now, 2, false).is_ok());
        assert!(guard.admit(now + Duration::from_secs(121), 2, true).is_ok());
    }
}
