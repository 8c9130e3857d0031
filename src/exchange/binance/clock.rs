//! The exchange clock: local wall time plus the offset measured against `GET /api/v3/time`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Local wall-clock time, ms since the epoch (0 if the clock is before 1970).
pub fn local_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Server time minus the local midpoint of the request that fetched it: the best estimate of
/// the server's clock when the request's two legs take equally long.
pub fn offset_ms(local_before_ms: i64, server_ms: i64, local_after_ms: i64) -> i64 {
    let midpoint = local_before_ms + (local_after_ms - local_before_ms) / 2;
    server_ms - midpoint
}

/// The exchange's clock as seen from here. Clones share one offset: the user data stream signs
/// with the REST gateway's clock, so a resync after a -1021 moves both.
#[derive(Debug, Clone, Default)]
pub struct ExchangeClock {
    offset_ms: Arc<AtomicI64>,
}

impl ExchangeClock {
    pub fn with_offset(offset_ms: i64) -> Self {
        ExchangeClock { offset_ms: Arc::new(AtomicI64::new(offset_ms)) }
    }
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
    /// Estimated server time now, ms: the `timestamp` of a signed request.
    pub fn now_ms(&self) -> i64 {
        local_ms().saturating_add(self.offset_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_server_time_minus_local_midpoint() {
        assert_eq!(offset_ms(1_000, 1_600, 1_200), 500);
        assert_eq!(offset_ms(1_000, 900, 1_000), -100);
        assert_eq!(offset_ms(1_000, 1_050, 1_101), 0);
    }

    #[test]
    fn a_clone_of_the_clock_follows_a_resync() {
        let rest = ExchangeClock::default();
        let stream = rest.clone();
        rest.set_offset(-1_500);
        assert_eq!(stream.offset_ms(), -1_500);
    }

    #[test]
    fn clock_adds_the_offset_to_local_time() {
        let clock = ExchangeClock::with_offset(10_000);
        let before = local_ms();
        let now = clock.now_ms();
        let after = local_ms();
        assert!(now >= before + 10_000 && now <= after + 10_000);
    }
}
