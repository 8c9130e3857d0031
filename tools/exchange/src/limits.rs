//! Request weight and order counts in fixed windows aligned to the clock, as Binance counts
//! them: weight per minute (limit 6000), new orders per 10 s (the `--order-limit`) and per day.

/// REQUEST_WEIGHT per MINUTE 1, unless `--weight-limit` says otherwise.
pub const WEIGHT_LIMIT_1M: u64 = 6000;

/// ORDERS per DAY 1 (as Binance's).
pub const ORDER_LIMIT_1D: u64 = 200_000;
/// RAW_REQUESTS per MINUTE 5 (as Binance's).
pub const RAW_REQUEST_LIMIT_5M: u64 = 61_000;

/// Requests sent into a minute whose weight was already refused (429) before the IP is banned.
pub const IGNORED_429S_BEFORE_BAN: u64 = 5;
/// The shortest ban Binance gives (rest-api.md: "from 2 minutes to 3 days").
pub const BAN_MS: i64 = 120_000;

const MINUTE_MS: i64 = 60_000;
const TEN_SECONDS_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;

/// A count in the current fixed window of `len_ms`.
#[derive(Debug, Clone, Copy)]
struct Window {
    len_ms: i64,
    index: i64,
    count: u64,
}

impl Window {
    fn new(len_ms: i64) -> Window {
        Window { len_ms, index: i64::MIN, count: 0 }
    }

    fn roll(&mut self, now_ms: i64) {
        let index = now_ms.div_euclid(self.len_ms);
        if index != self.index {
            self.index = index;
            self.count = 0;
        }
    }

    fn count(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.count
    }

    fn add(&mut self, n: u64, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.count = self.count.saturating_add(n);
        self.count
    }

    /// Whole seconds until the window ends (at least 1).
    fn retry_after_secs(&self, now_ms: i64) -> u64 {
        let end = now_ms.div_euclid(self.len_ms).saturating_add(1) * self.len_ms;
        let left = (end - now_ms).max(1);
        u64::try_from((left + 999) / 1000).unwrap_or(1).max(1)
    }
}

/// Why a request is refused for its rate: which limit, and `Retry-After` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Weight { retry_after_secs: u64 },
    Orders { retry_after_secs: u64 },
}

/// The counters of the one account (and IP) this server serves.
#[derive(Debug)]
pub struct Limits {
    order_limit_10s: u64,
    weight_limit_1m: u64,
    weight_1m: Window,
    orders_10s: Window,
    orders_1d: Window,
    /// Requests refused for weight in the current minute.
    refused_1m: Window,
    banned_until_ms: i64,
}

impl Limits {
    pub fn new(order_limit_10s: u64) -> Limits {
        Limits {
            order_limit_10s,
            weight_limit_1m: WEIGHT_LIMIT_1M,
            weight_1m: Window::new(MINUTE_MS),
            orders_10s: Window::new(TEN_SECONDS_MS),
            orders_1d: Window::new(DAY_MS),
            refused_1m: Window::new(MINUTE_MS),
            banned_until_ms: i64::MIN,
        }
    }

    pub fn order_limit_10s(&self) -> u64 {
        self.order_limit_10s
    }

    pub fn weight_limit_1m(&self) -> u64 {
        self.weight_limit_1m
    }

    /// `--weight-limit`: a test or benchmark that restarts an engine many times a minute.
    pub fn set_weight_limit_1m(&mut self, limit: u64) {
        self.weight_limit_1m = limit.max(1);
    }

    /// Adds a request's weight; refused (and not counted) when it would pass the limit.
    pub fn charge_weight(&mut self, weight: u64, now_ms: i64) -> Result<u64, Exceeded> {
        let used = self.weight_1m.count(now_ms);
        if used.saturating_add(weight) > self.weight_limit_1m {
            return Err(Exceeded::Weight { retry_after_secs: self.weight_1m.retry_after_secs(now_ms) });
        }
        Ok(self.weight_1m.add(weight, now_ms))
    }

    /// Until when the IP is banned (418), if it is.
    pub fn banned_until(&self, now_ms: i64) -> Option<i64> {
        (now_ms < self.banned_until_ms).then_some(self.banned_until_ms)
    }

    /// A request refused for weight (429). The first one tells the client to wait for the next
    /// minute; after [`IGNORED_429S_BEFORE_BAN`] more in the same minute the IP is banned for
    /// [`BAN_MS`]: returns the end of the ban then.
    pub fn note_refusal(&mut self, now_ms: i64) -> Option<i64> {
        if self.refused_1m.add(1, now_ms) > IGNORED_429S_BEFORE_BAN {
            self.banned_until_ms = now_ms.saturating_add(BAN_MS);
            return Some(self.banned_until_ms);
        }
        None
    }

    pub fn used_weight(&mut self, now_ms: i64) -> u64 {
        self.weight_1m.count(now_ms)
    }

    /// Whether one more order fits in the current 10 s.
    pub fn check_order(&mut self, now_ms: i64) -> Result<(), Exceeded> {
        if self.orders_10s.count(now_ms) >= self.order_limit_10s {
            return Err(Exceeded::Orders { retry_after_secs: self.orders_10s.retry_after_secs(now_ms) });
        }
        Ok(())
    }

    /// Counts a placed order; returns the counts (10 s, day) after it.
    pub fn count_order(&mut self, now_ms: i64) -> (u64, u64) {
        (self.orders_10s.add(1, now_ms), self.orders_1d.add(1, now_ms))
    }

    /// An order that traded at once no longer counts as unfilled (faqs/order_count_decrement.md:
    /// the count drops by one on an order's first fill); returns the counts after.
    pub fn uncount_filled_order(&mut self, now_ms: i64) -> (u64, u64) {
        let down = |w: &mut Window| {
            let n = w.count(now_ms).saturating_sub(1);
            w.count = n;
            n
        };
        (down(&mut self.orders_10s), down(&mut self.orders_1d))
    }

    /// Orders placed in the current (10 s, day).
    pub fn order_counts(&mut self, now_ms: i64) -> (u64, u64) {
        (self.orders_10s.count(now_ms), self.orders_1d.count(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_accumulates_per_minute_and_refuses_past_the_limit() {
        let mut l = Limits::new(50);
        let t = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS; // start of a minute
        assert_eq!(l.charge_weight(20, t), Ok(20));
        assert_eq!(l.charge_weight(4, t + 10), Ok(24));
        assert_eq!(l.charge_weight(5976, t + 20), Ok(6000));
        assert_eq!(l.charge_weight(1, t + 30_500), Err(Exceeded::Weight { retry_after_secs: 30 }));
        assert_eq!(l.used_weight(t + 59_999), 6000);
        // The next minute starts from zero.
        assert_eq!(l.charge_weight(1, t + MINUTE_MS), Ok(1));
    }

    #[test]
    fn orders_are_limited_per_ten_seconds_with_retry_after_to_the_window_end() {
        let mut l = Limits::new(2);
        let t = 1_700_000_000_000; // a multiple of 10 s
        assert_eq!(l.check_order(t), Ok(()));
        assert_eq!(l.count_order(t), (1, 1));
        assert_eq!(l.count_order(t + 100), (2, 2));
        assert_eq!(l.check_order(t + 2_500), Err(Exceeded::Orders { retry_after_secs: 8 }));
        assert_eq!(l.check_order(t + 9_999), Err(Exceeded::Orders { retry_after_secs: 1 }));
        assert_eq!(l.check_order(t + 10_000), Ok(()));
        assert_eq!(l.count_order(t + 10_000), (1, 3));
        assert_eq!(l.order_counts(t + 10_001), (1, 3));
    }

    #[test]
    fn an_order_filled_at_once_stops_counting_against_the_limit() {
        let mut l = Limits::new(2);
        let t = 1_700_000_000_000;
        assert_eq!(l.count_order(t), (1, 1));
        assert_eq!(l.uncount_filled_order(t), (0, 0));
        assert_eq!(l.uncount_filled_order(t), (0, 0));
        assert_eq!(l.count_order(t), (1, 1));
        assert_eq!(l.count_order(t), (2, 2));
        assert!(l.check_order(t).is_err());
    }

    #[test]
    fn ignoring_429s_for_the_rest_of_the_minute_bans_the_ip_for_two_minutes() {
        let mut l = Limits::new(2);
        let t = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS;
        for i in 0..IGNORED_429S_BEFORE_BAN {
            assert_eq!(l.note_refusal(t + i as i64), None);
        }
        assert_eq!(l.banned_until(t + 10), None);
        assert_eq!(l.note_refusal(t + 10), Some(t + 10 + BAN_MS));
        assert_eq!(l.banned_until(t + 11), Some(t + 10 + BAN_MS));
        assert_eq!(l.banned_until(t + 10 + BAN_MS), None);
        // A new minute starts the count again.
        assert_eq!(l.note_refusal(t + 3 * MINUTE_MS), None);
    }
}
