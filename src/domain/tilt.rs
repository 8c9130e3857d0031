//! The tilt guard: signs that the person at the keyboard is trading on emotion put the account
//! into a cooldown, during which every new entry needs an explicit confirmation, even with
//! confirmations turned off. Exits and cancels are never affected.
//!
//! The signals (thresholds in [`TiltSettings`], defaults in brackets):
//!
//! 1. **Losing streak**: `losing_streak` [3] losing exits in a row, all within
//!    `streak_window_secs` [1800 = 30 min]. A winning exit resets the streak; a break-even exit
//!    (P&L exactly zero) neither extends nor resets it.
//! 2. **Order burst**: more than `burst_orders` [5] entries within `burst_window_secs`
//!    [10 s], faster than a person trades.
//!
//! Either signal starts a cooldown of `cooldown_secs` [900 = 15 min] from the moment it fires
//! (a signal firing during a cooldown extends it). A threshold of zero turns that signal off.
//! Both windows include their edges: entries exactly 10 s apart are "within 10 s".
//!
//! Pure: time comes in as microseconds since the epoch (UTC), nothing here reads a clock.
//! After a restart the guard can be rebuilt by replaying stored entries and exits.

/// Thresholds of the tilt signals; durations in seconds. A TOML `[tilt]` table may override
/// any subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TiltSettings {
    /// Whether the guard starts enabled.
    pub enabled: bool,
    /// Losing exits in a row that start a cooldown (0 turns the signal off).
    pub losing_streak: u32,
    /// The losing exits must all fall within this many seconds.
    pub streak_window_secs: u64,
    /// More entries than this within the burst window start a cooldown (0 turns it off).
    pub burst_orders: u32,
    pub burst_window_secs: u64,
    /// Length of a cooldown.
    pub cooldown_secs: u64,
}

impl Default for TiltSettings {
    fn default() -> Self {
        TiltSettings {
            enabled: true,
            losing_streak: 3,
            streak_window_secs: 30 * 60,
            burst_orders: 5,
            burst_window_secs: 10,
            cooldown_secs: 15 * 60,
        }
    }
}

/// Where the guard stands at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TiltStatus {
    Calm,
    /// New entries need an explicit confirmation until `until_us`.
    Cooldown {
        until_us: i64,
        reason: String,
    },
}

/// A change worth a `tilt_changed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TiltChange {
    /// A signal fired: a cooldown started, or an ongoing one was extended to `until_us`.
    Cooldown { until_us: i64, reason: String },
    /// The cooldown is over (it ran out at `at_us`, or the guard was disabled).
    Calm { at_us: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cooldown {
    until_us: i64,
    reason: String,
}

/// Watches entries and exits for the tilt signals. `enabled` may be flipped at any time;
/// while it is false the guard records nothing and is never in cooldown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiltGuard {
    pub enabled: bool,
    settings: TiltSettings,
    /// Times of the current run of losing exits still inside the streak window.
    losses: Vec<i64>,
    /// Times of entries still inside the burst window.
    entries: Vec<i64>,
    cooldown: Option<Cooldown>,
}

const MICROS_PER_SEC: i64 = 1_000_000;

fn secs_to_us(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(MICROS_PER_SEC)
}

/// `30 min`, `10 s`, `1 h`, `90 s`: the largest whole unit.
fn describe_secs(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

impl TiltGuard {
    pub fn new(settings: TiltSettings) -> TiltGuard {
        TiltGuard { enabled: settings.enabled, settings, losses: Vec::new(), entries: Vec::new(), cooldown: None }
    }

    pub fn settings(&self) -> &TiltSettings {
        &self.settings
    }

    /// Records a new entry placed at `at_us`. Returns the change, if any: a burst starts a
    /// cooldown; an entry after a cooldown ran out reports the return to calm.
    pub fn record_entry(&mut self, at_us: i64) -> Option<TiltChange> {
        let expired = self.expire(at_us);
        if !self.enabled || self.settings.burst_orders == 0 {
            return expired;
        }
        let window_us = secs_to_us(self.settings.burst_window_secs);
        self.entries.push(at_us);
        self.entries.retain(|&t| at_us.saturating_sub(t) <= window_us);
        let count = self.entries.len();
        if count > self.settings.burst_orders as usize {
            self.entries.clear();
            let reason = format!(
                "{count} entries within {}, faster than a person trades",
                describe_secs(self.settings.burst_window_secs)
            );
            return Some(self.trip(at_us, reason));
        }
        expired
    }

    /// Records an exit realized at `at_us` with `pnl` (fees included): a loss extends the
    /// losing streak, a win resets it. Returns the change, if any.
    pub fn record_exit(&mut self, pnl: rust_decimal::Decimal, at_us: i64) -> Option<TiltChange> {
        let expired = self.expire(at_us);
        if !self.enabled || self.settings.losing_streak == 0 {
            return expired;
        }
        if pnl.is_sign_positive() && !pnl.is_zero() {
            self.losses.clear();
            return expired;
        }
        if pnl.is_zero() {
            return expired;
        }
        let window_us = secs_to_us(self.settings.streak_window_secs);
        self.losses.push(at_us);
        self.losses.retain(|&t| at_us.saturating_sub(t) <= window_us);
        let count = self.losses.len();
        if count >= self.settings.losing_streak as usize {
            self.losses.clear();
            let reason =
                format!("{count} losing exits in a row within {}", describe_secs(self.settings.streak_window_secs));
            return Some(self.trip(at_us, reason));
        }
        expired
    }

    /// Where the guard stands at `now_us`. Pure: use [`TiltGuard::poll`] to learn when a
    /// cooldown has ended.
    pub fn status(&self, now_us: i64) -> TiltStatus {
        match &self.cooldown {
            Some(c) if self.enabled && now_us < c.until_us => {
                TiltStatus::Cooldown { until_us: c.until_us, reason: c.reason.clone() }
            }
            _ => TiltStatus::Calm,
        }
    }

    /// True when a new entry at `now_us` must be confirmed explicitly, whatever the
    /// confirmation preference says.
    pub fn entry_needs_confirmation(&self, now_us: i64) -> bool {
        matches!(self.status(now_us), TiltStatus::Cooldown { .. })
    }

    /// Reports, once, that a cooldown has ended by `now_us` (or that the guard was disabled
    /// during one). Call it from a timer to publish `tilt_changed` on time.
    pub fn poll(&mut self, now_us: i64) -> Option<TiltChange> {
        self.expire(now_us)
    }

    fn expire(&mut self, now_us: i64) -> Option<TiltChange> {
        let cooldown = self.cooldown.as_ref()?;
        if !self.enabled {
            self.cooldown = None;
            self.losses.clear();
            self.entries.clear();
            return Some(TiltChange::Calm { at_us: now_us });
        }
        if now_us >= cooldown.until_us {
            let at_us = cooldown.until_us;
            self.cooldown = None;
            return Some(TiltChange::Calm { at_us });
        }
        None
    }

    fn trip(&mut self, at_us: i64, reason: String) -> TiltChange {
        let mut until_us = at_us.saturating_add(secs_to_us(self.settings.cooldown_secs));
        if let Some(current) = &self.cooldown {
            until_us = until_us.max(current.until_us);
        }
        self.cooldown = Some(Cooldown { until_us, reason: reason.clone() });
        TiltChange::Cooldown { until_us, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    const SEC: i64 = 1_000_000;
    const MIN: i64 = 60 * SEC;
    const T0: i64 = 1_764_062_469_000_000; // 2025-11-25T09:21:09Z

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn guard() -> TiltGuard {
        TiltGuard::new(TiltSettings::default())
    }

    #[test]
    fn defaults_are_three_losses_in_30_min_and_more_than_5_entries_in_10_s_for_15_min() {
        let s = TiltSettings::default();
        assert!(s.enabled);
        assert_eq!(s.losing_streak, 3);
        assert_eq!(s.streak_window_secs, 1800);
        assert_eq!(s.burst_orders, 5);
        assert_eq!(s.burst_window_secs, 10);
        assert_eq!(s.cooldown_secs, 900);
    }

    #[test]
    fn three_losing_exits_within_the_window_start_a_cooldown() {
        let mut g = guard();
        assert_eq!(g.record_exit(d("-1.5"), T0), None);
        assert_eq!(g.record_exit(d("-0.01"), T0 + 10 * MIN), None);
        let change = g.record_exit(d("-3"), T0 + 30 * MIN);
        let until = T0 + 30 * MIN + 15 * MIN;
        assert_eq!(
            change,
            Some(TiltChange::Cooldown { until_us: until, reason: "3 losing exits in a row within 30 min".into() })
        );
        assert_eq!(
            g.status(T0 + 31 * MIN),
            TiltStatus::Cooldown { until_us: until, reason: "3 losing exits in a row within 30 min".into() }
        );
        assert!(g.entry_needs_confirmation(T0 + 31 * MIN));
    }

    #[test]
    fn two_losing_exits_stay_calm() {
        let mut g = guard();
        assert_eq!(g.record_exit(d("-5"), T0), None);
        assert_eq!(g.record_exit(d("-5"), T0 + MIN), None);
        assert_eq!(g.status(T0 + MIN), TiltStatus::Calm);
        assert!(!g.entry_needs_confirmation(T0 + MIN));
    }

    #[test]
    fn losing_exits_spread_beyond_the_window_stay_calm() {
        let mut g = guard();
        assert_eq!(g.record_exit(d("-1"), T0), None);
        assert_eq!(g.record_exit(d("-1"), T0 + 16 * MIN), None);
        // 30 min and 1 µs after the first: only two losses are inside the window.
        assert_eq!(g.record_exit(d("-1"), T0 + 30 * MIN + 1), None);
        assert_eq!(g.status(T0 + 31 * MIN), TiltStatus::Calm);
        // The two recent ones still count: one more loss completes a streak.
        assert!(matches!(g.record_exit(d("-1"), T0 + 40 * MIN), Some(TiltChange::Cooldown { .. })));
    }

    #[test]
    fn a_winning_exit_resets_the_streak() {
        let mut g = guard();
        g.record_exit(d("-1"), T0);
        g.record_exit(d("-1"), T0 + MIN);
        assert_eq!(g.record_exit(d("0.01"), T0 + 2 * MIN), None);
        assert_eq!(g.record_exit(d("-1"), T0 + 3 * MIN), None);
        assert_eq!(g.record_exit(d("-1"), T0 + 4 * MIN), None);
        assert_eq!(g.status(T0 + 4 * MIN), TiltStatus::Calm);
        assert!(g.record_exit(d("-1"), T0 + 5 * MIN).is_some());
    }

    #[test]
    fn a_break_even_exit_neither_extends_nor_resets_the_streak() {
        let mut g = guard();
        g.record_exit(d("-1"), T0);
        g.record_exit(d("-1"), T0 + MIN);
        assert_eq!(g.record_exit(d("0"), T0 + 2 * MIN), None);
        assert_eq!(g.status(T0 + 2 * MIN), TiltStatus::Calm);
        assert!(g.record_exit(d("-1"), T0 + 3 * MIN).is_some());
    }

    #[test]
    fn six_entries_within_ten_seconds_start_a_cooldown() {
        let mut g = guard();
        for i in 0..5 {
            assert_eq!(g.record_entry(T0 + 2 * i * SEC), None);
        }
        // The sixth lands exactly 10 s after the first: still within the window.
        assert_eq!(
            g.record_entry(T0 + 10 * SEC),
            Some(TiltChange::Cooldown {
                until_us: T0 + 10 * SEC + 15 * MIN,
                reason: "6 entries within 10 s, faster than a person trades".into()
            })
        );
        assert!(g.entry_needs_confirmation(T0 + 11 * SEC));
    }

    #[test]
    fn five_entries_within_ten_seconds_stay_calm() {
        let mut g = guard();
        for i in 0..5 {
            assert_eq!(g.record_entry(T0 + i * SEC), None);
        }
        assert_eq!(g.status(T0 + 5 * SEC), TiltStatus::Calm);
    }

    #[test]
    fn six_entries_spread_over_more_than_ten_seconds_stay_calm() {
        let mut g = guard();
        for i in 0..6 {
            assert_eq!(g.record_entry(T0 + 2 * i * SEC + i), None);
        }
        assert_eq!(g.status(T0 + 11 * SEC), TiltStatus::Calm);
    }

    #[test]
    fn cooldown_ends_after_its_length_and_poll_reports_it_once() {
        let mut g = guard();
        for i in 0..6 {
            g.record_entry(T0 + i * SEC);
        }
        let until = T0 + 5 * SEC + 15 * MIN;
        assert!(g.entry_needs_confirmation(until - 1));
        assert_eq!(g.poll(until - 1), None);
        assert_eq!(g.status(until), TiltStatus::Calm);
        assert!(!g.entry_needs_confirmation(until));
        assert_eq!(g.poll(until + 3 * SEC), Some(TiltChange::Calm { at_us: until }));
        assert_eq!(g.poll(until + 4 * SEC), None);
    }

    #[test]
    fn an_entry_after_the_cooldown_ran_out_reports_the_return_to_calm() {
        let mut g = guard();
        for i in 0..6 {
            g.record_entry(T0 + i * SEC);
        }
        let until = T0 + 5 * SEC + 15 * MIN;
        assert_eq!(g.record_entry(until + MIN), Some(TiltChange::Calm { at_us: until }));
    }

    #[test]
    fn a_signal_during_a_cooldown_extends_it() {
        let mut g = guard();
        for i in 0..6 {
            g.record_entry(T0 + i * SEC);
        }
        g.record_exit(d("-1"), T0 + MIN);
        g.record_exit(d("-1"), T0 + 2 * MIN);
        let change = g.record_exit(d("-1"), T0 + 3 * MIN);
        assert_eq!(
            change,
            Some(TiltChange::Cooldown {
                until_us: T0 + 18 * MIN,
                reason: "3 losing exits in a row within 30 min".into()
            })
        );
        assert!(g.entry_needs_confirmation(T0 + 17 * MIN));
    }

    #[test]
    fn disabled_guard_never_trips() {
        let mut g = TiltGuard::new(TiltSettings { enabled: false, ..TiltSettings::default() });
        for i in 0..20 {
            assert_eq!(g.record_entry(T0 + i), None);
            assert_eq!(g.record_exit(d("-100"), T0 + i), None);
        }
        assert_eq!(g.status(T0 + 20), TiltStatus::Calm);
        assert!(!g.entry_needs_confirmation(T0 + 20));
    }

    #[test]
    fn disabling_during_a_cooldown_ends_it_and_poll_reports_it() {
        let mut g = guard();
        for i in 0..6 {
            g.record_entry(T0 + i * SEC);
        }
        g.enabled = false;
        assert_eq!(g.status(T0 + 6 * SEC), TiltStatus::Calm);
        assert_eq!(g.poll(T0 + 7 * SEC), Some(TiltChange::Calm { at_us: T0 + 7 * SEC }));
        g.enabled = true;
        assert_eq!(g.status(T0 + 8 * SEC), TiltStatus::Calm);
    }

    #[test]
    fn zero_thresholds_turn_the_signals_off() {
        let mut g = TiltGuard::new(TiltSettings { losing_streak: 0, burst_orders: 0, ..TiltSettings::default() });
        for i in 0..20 {
            assert_eq!(g.record_entry(T0 + i), None);
            assert_eq!(g.record_exit(d("-1"), T0 + i), None);
        }
        assert_eq!(g.status(T0 + 20), TiltStatus::Calm);
    }

    #[test]
    fn extreme_timestamps_and_durations_do_not_panic() {
        let mut g = TiltGuard::new(TiltSettings {
            streak_window_secs: u64::MAX,
            burst_window_secs: u64::MAX,
            cooldown_secs: u64::MAX,
            ..TiltSettings::default()
        });
        for t in [i64::MIN, -1, 0, i64::MAX, i64::MIN, i64::MAX] {
            g.record_entry(t);
            g.record_exit(d("-1"), t);
            g.status(t);
            g.poll(t);
        }
    }

    #[test]
    fn durations_are_described_in_their_largest_whole_unit() {
        assert_eq!(describe_secs(10), "10 s");
        assert_eq!(describe_secs(90), "90 s");
        assert_eq!(describe_secs(1800), "30 min");
        assert_eq!(describe_secs(7200), "2 h");
    }

    #[test]
    fn durations_that_are_not_whole_hours_are_described_in_minutes() {
        assert_eq!(describe_secs(5400), "90 min");
        assert_eq!(describe_secs(3660), "61 min");
    }

    #[test]
    fn the_guard_keeps_the_settings_it_was_built_with() {
        let settings = TiltSettings { losing_streak: 4, cooldown_secs: 60, ..TiltSettings::default() };
        assert_eq!(TiltGuard::new(settings).settings(), &settings);
    }
}
