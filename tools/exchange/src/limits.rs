//! Rate limits as Binance counts them (rest-api.md "LIMITS"), in fixed windows aligned to the
//! clock: request weight per minute, raw requests per 5 minutes, unfilled orders per 10 s and
//! per day; and the IP ban for ignoring 429s, longer for each repeat offence.

/// REQUEST_WEIGHT per MINUTE 1, unless `--weight-limit` says otherwise.
pub const WEIGHT_LIMIT_1M: u64 = 6000;

/// ORDERS per DAY 1 (Binance's), unless `--daily-order-limit` says otherwise.
pub const ORDER_LIMIT_1D: u64 = 200_000;
/// RAW_REQUESTS per MINUTE 5 (Binance's), unless `--raw-request-limit` says otherwise.
pub const RAW_REQUEST_LIMIT_5M: u64 = 61_000;

/// Requests sent into a minute whose limit was already refused (429) before the IP is banned.
pub const IGNORED_429S_BEFORE_BAN: u64 = 5;
/// The shortest ban, a first offence's (rest-api.md: "from 2 minutes to 3 days").
pub const BAN_MS: i64 = 120_000;
/// The longest ban: each repeat offence doubles the last ban, up to this.
pub const MAX_BAN_MS: i64 = 3 * DAY_MS;
/// A ban this long after the previous one ended is a first offence again.
pub const OFFENCES_FORGOTTEN_MS: i64 = DAY_MS;

const MINUTE_MS: i64 = 60_000;
const TEN_SECONDS_MS: i64 = 10_000;
const FIVE_MINUTES_MS: i64 = 300_000;
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
    Weight {
        retry_after_secs: u64,
    },
    /// RAW_REQUESTS per 5 minutes.
    Requests {
        retry_after_secs: u64,
    },
    /// ORDERS: `per` is the interval as Binance's message names it (`10 SECOND`, `DAY`).
    Orders {
        retry_after_secs: u64,
        limit: u64,
        per: &'static str,
    },
}

/// The limits in force (`exchangeInfo` `rateLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    pub weight_1m: u64,
    pub raw_requests_5m: u64,
    pub orders_10s: u64,
    pub orders_1d: u64,
}

impl LimitConfig {
    /// Binance's defaults except the orders per 10 s.
    pub fn new(orders_10s: u64) -> LimitConfig {
        LimitConfig {
            weight_1m: WEIGHT_LIMIT_1M,
            raw_requests_5m: RAW_REQUEST_LIMIT_5M,
            orders_10s,
            orders_1d: ORDER_LIMIT_1D,
        }
    }
}

/// The counters of the one account (and IP) this server serves.
#[derive(Debug)]
pub struct Limits {
    config: LimitConfig,
    weight_1m: Window,
    raw_5m: Window,
    orders_10s: Window,
    orders_1d: Window,
    /// Requests refused for weight in the current minute.
    refused_1m: Window,
    banned_until_ms: i64,
    /// Bans in a row, each beginning less than [`OFFENCES_FORGOTTEN_MS`] after the last ended.
    offences: u32,
}

impl Limits {
    pub fn new(order_limit_10s: u64) -> Limits {
        Limits {
            config: LimitConfig::new(order_limit_10s),
            weight_1m: Window::new(MINUTE_MS),
            raw_5m: Window::new(FIVE_MINUTES_MS),
            orders_10s: Window::new(TEN_SECONDS_MS),
            orders_1d: Window::new(DAY_MS),
            refused_1m: Window::new(MINUTE_MS),
            banned_until_ms: i64::MIN,
            offences: 0,
        }
    }

    pub fn config(&self) -> LimitConfig {
        self.config
    }

    pub fn order_limit_10s(&self) -> u64 {
        self.config.orders_10s
    }

    pub fn weight_limit_1m(&self) -> u64 {
        self.config.weight_1m
    }

    /// `--weight-limit`, `--raw-request-limit`, `--daily-order-limit` (each at least 1): a test
    /// that reaches a limit, or a benchmark that restarts an engine many times a minute.
    pub fn set_config(&mut self, config: LimitConfig) {
        self.config = LimitConfig {
            weight_1m: config.weight_1m.max(1),
            raw_requests_5m: config.raw_requests_5m.max(1),
            orders_10s: config.orders_10s,
            orders_1d: config.orders_1d.max(1),
        };
    }

    /// Counts one request against RAW_REQUESTS; refused (and not counted) past the limit.
    pub fn count_request(&mut self, now_ms: i64) -> Result<(), Exceeded> {
        if self.raw_5m.count(now_ms) >= self.config.raw_requests_5m {
            return Err(Exceeded::Requests { retry_after_secs: self.raw_5m.retry_after_secs(now_ms) });
        }
        self.raw_5m.add(1, now_ms);
        Ok(())
    }

    /// Adds a request's weight; refused (and not counted) when it would pass the limit.
    pub fn charge_weight(&mut self, weight: u64, now_ms: i64) -> Result<u64, Exceeded> {
        let used = self.weight_1m.count(now_ms);
        if used.saturating_add(weight) > self.config.weight_1m {
            return Err(Exceeded::Weight { retry_after_secs: self.weight_1m.retry_after_secs(now_ms) });
        }
        Ok(self.weight_1m.add(weight, now_ms))
    }

    /// Until when the IP is banned (418), if it is.
    pub fn banned_until(&self, now_ms: i64) -> Option<i64> {
        (now_ms < self.banned_until_ms).then_some(self.banned_until_ms)
    }

    /// A request refused for weight or raw requests (429). The first one tells the client to
    /// wait; after [`IGNORED_429S_BEFORE_BAN`] more in the same minute the IP is banned: returns
    /// the end of the ban then. A first offence is banned for [`BAN_MS`], each repeat for twice
    /// the last, up to [`MAX_BAN_MS`]; a day without a ban forgives.
    pub fn note_refusal(&mut self, now_ms: i64) -> Option<i64> {
        if self.refused_1m.add(1, now_ms) <= IGNORED_429S_BEFORE_BAN {
            return None;
        }
        if now_ms.saturating_sub(self.banned_until_ms) >= OFFENCES_FORGOTTEN_MS {
            self.offences = 0;
        }
        self.offences = self.offences.saturating_add(1);
        self.banned_until_ms = now_ms.saturating_add(ban_ms(self.offences));
        Some(self.banned_until_ms)
    }

    pub fn used_weight(&mut self, now_ms: i64) -> u64 {
        self.weight_1m.count(now_ms)
    }

    /// Whether one more order fits in the current 10 s and the current day.
    pub fn check_order(&mut self, now_ms: i64) -> Result<(), Exceeded> {
        let LimitConfig { orders_10s, orders_1d, .. } = self.config;
        if self.orders_1d.count(now_ms) >= orders_1d {
            let retry_after_secs = self.orders_1d.retry_after_secs(now_ms);
            return Err(Exceeded::Orders { retry_after_secs, limit: orders_1d, per: "DAY" });
        }
        if self.orders_10s.count(now_ms) >= orders_10s {
            let retry_after_secs = self.orders_10s.retry_after_secs(now_ms);
            return Err(Exceeded::Orders { retry_after_secs, limit: orders_10s, per: "10 SECOND" });
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

/// The `offence`th ban in a row (from 1): 2 minutes, doubled for each repeat, at most 3 days.
fn ban_ms(offence: u32) -> i64 {
    let doublings = offence.saturating_sub(1).min(20);
    BAN_MS.saturating_mul(1 << doublings).min(MAX_BAN_MS)
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
        let over = |retry_after_secs| Err(Exceeded::Orders { retry_after_secs, limit: 2, per: "10 SECOND" });
        assert_eq!(l.check_order(t + 2_500), over(8));
        assert_eq!(l.check_order(t + 9_999), over(1));
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

    #[test]
    fn raw_requests_are_limited_per_five_minutes() {
        let mut l = Limits::new(50);
        l.set_config(LimitConfig { raw_requests_5m: 2, ..l.config() });
        let t = 1_700_000_100_000; // a multiple of 5 minutes
        assert_eq!(l.count_request(t), Ok(()));
        assert_eq!(l.count_request(t + 1), Ok(()));
        assert_eq!(l.count_request(t + 60_000), Err(Exceeded::Requests { retry_after_secs: 240 }));
        assert_eq!(l.count_request(t + FIVE_MINUTES_MS), Ok(()));
    }

    #[test]
    fn the_daily_order_limit_refuses_until_the_day_ends() {
        let mut l = Limits::new(50);
        l.set_config(LimitConfig { orders_1d: 2, ..l.config() });
        let day = 1_700_006_400_000; // midnight UTC
        l.count_order(day);
        l.count_order(day + 20_000);
        assert_eq!(
            l.check_order(day + DAY_MS - 1_500),
            Err(Exceeded::Orders { retry_after_secs: 2, limit: 2, per: "DAY" })
        );
        // A fill gives a place back, as for the 10 s count.
        l.uncount_filled_order(day + 30_000);
        assert_eq!(l.check_order(day + 30_000), Ok(()));
        assert_eq!(l.check_order(day + DAY_MS), Ok(()));
    }

    /// Bans the IP once from `t`: the refusals of one minute, past those allowed.
    fn offend(l: &mut Limits, t: i64) -> Option<i64> {
        (0..=IGNORED_429S_BEFORE_BAN).filter_map(|i| l.note_refusal(t + i as i64)).last()
    }

    #[test]
    fn repeat_bans_double_from_two_minutes_up_to_three_days() {
        let mut l = Limits::new(2);
        let mut t = 1_700_000_040_000;
        let mut lengths = Vec::new();
        for _ in 0..13 {
            let until = offend(&mut l, t).unwrap();
            lengths.push((until - t - IGNORED_429S_BEFORE_BAN as i64) / 60_000);
            // Back as soon as the ban ends, at the start of a minute.
            t = until + MINUTE_MS - until.rem_euclid(MINUTE_MS);
        }
        assert_eq!(lengths, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 4320]);
    }

    #[test]
    fn a_day_without_a_ban_makes_the_next_one_a_first_offence() {
        let mut l = Limits::new(2);
        let t = 1_700_000_040_000;
        offend(&mut l, t).unwrap();
        let second = t + 10 * MINUTE_MS;
        assert_eq!(offend(&mut l, second), Some(second + IGNORED_429S_BEFORE_BAN as i64 + 2 * BAN_MS));
        let later = second + DAY_MS + 10 * MINUTE_MS;
        assert_eq!(offend(&mut l, later), Some(later + IGNORED_429S_BEFORE_BAN as i64 + BAN_MS));
    }
}
