//! Account state shared by intake (which checks the rules before an order) and exchange I/O
//! (which syncs balances and books realized P&L): tier, balances, the day's realized P&L and
//! the tilt guard. Cold state behind one short lock, never held across I/O.

use crate::domain::money::Decimal;
use crate::domain::risk::{self, DailyPnl, RiskLimits, RiskRefusal, Tier};
use crate::domain::tilt::{TiltChange, TiltGuard, TiltStatus};
use crate::events::EventKind;
use crate::exchange::{Balance, Quotes};
use parking_lot::Mutex;
use std::sync::Arc;

#[derive(Debug)]
struct State {
    /// Shared, not copied: each entry's risk check values them (a string per asset to copy).
    balances: Arc<[Balance]>,
    synced_at_us: Option<i64>,
    daily: DailyPnl,
    tilt: TiltGuard,
}

#[derive(Debug)]
pub struct Account {
    pub tier: Tier,
    pub limits: RiskLimits,
    /// The asset equity and P&L are counted in.
    pub quote_asset: String,
    state: Mutex<State>,
    /// The kill switch: new entries refused until `resume` (saved in the database).
    halted: std::sync::atomic::AtomicBool,
    /// The database refuses writes: new orders refused until it recovers.
    db_error: Mutex<Option<String>>,
}

/// What `account` shows.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub balances: Vec<Balance>,
    pub synced_at_us: Option<i64>,
    pub realized_today: Decimal,
    pub tilt: TiltStatus,
}

impl Account {
    pub fn new(tier: Tier, limits: RiskLimits, quote_asset: &str, daily: DailyPnl) -> Account {
        let tilt = TiltGuard::new(limits.tilt);
        Account {
            tier,
            limits,
            quote_asset: quote_asset.to_string(),
            state: Mutex::new(State { balances: Arc::from([]), synced_at_us: None, daily, tilt }),
            halted: std::sync::atomic::AtomicBool::new(false),
            db_error: Mutex::new(None),
        }
    }

    pub fn is_halted(&self) -> bool {
        self.halted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_halted(&self, halted: bool) {
        self.halted.store(halted, std::sync::atomic::Ordering::SeqCst)
    }

    /// Refuses a new entry while the kill switch is on.
    pub fn check_not_halted(&self) -> Result<(), RiskRefusal> {
        if self.is_halted() {
            return Err(RiskRefusal::halted("halt"));
        }
        Ok(())
    }

    pub fn set_db_error(&self, error: Option<String>) {
        *self.db_error.lock() = error;
    }

    pub fn db_error(&self) -> Option<String> {
        self.db_error.lock().clone()
    }

    pub fn set_balances(&self, balances: Vec<Balance>, at_us: i64) {
        let mut s = self.state.lock();
        s.balances = balances.into();
        s.synced_at_us = Some(at_us);
    }

    pub fn view(&self, now_us: i64) -> AccountView {
        let s = self.state.lock();
        AccountView {
            balances: s.balances.to_vec(),
            synced_at_us: s.synced_at_us,
            realized_today: s.daily.realized_today(now_us),
            tilt: s.tilt.status(now_us),
        }
    }

    /// Equity in the quote asset: balances valued at the bid of ASSET+QUOTE.
    pub fn equity(&self, quotes: &dyn Quotes) -> Decimal {
        // Valued outside the lock: a stale quote is fetched over HTTP.
        let balances = Arc::clone(&self.state.lock().balances);
        let quote = self.quote_asset.as_str();
        // One symbol buffer for every asset: this runs on each entry's path.
        let mut symbol = String::with_capacity(16);
        risk::equity_in_quote(&balances, quote, |asset| {
            symbol.clear();
            symbol.push_str(asset);
            symbol.push_str(quote);
            quotes.top_of_book(&symbol).map(|t| t.bid)
        })
    }

    /// The daily loss limit of this account's tier.
    pub fn daily_loss_limit(&self) -> Decimal {
        self.limits.daily_loss_limit_for(self.tier)
    }

    pub fn check_daily_loss(&self, now_us: i64) -> Result<(), RiskRefusal> {
        self.state.lock().daily.check_entry(self.daily_loss_limit(), now_us)
    }

    /// Books a realized P&L (daily total and tilt streak).
    pub fn record_exit(&self, pnl: Decimal, at_us: i64) -> Option<TiltChange> {
        let mut s = self.state.lock();
        s.daily.record(pnl, at_us);
        s.tilt.record_exit(pnl, at_us)
    }

    pub fn record_entry(&self, at_us: i64) -> Option<TiltChange> {
        self.state.lock().tilt.record_entry(at_us)
    }

    pub fn entry_needs_confirmation(&self, now_us: i64) -> bool {
        self.state.lock().tilt.entry_needs_confirmation(now_us)
    }

    /// Reports the end of a cooldown once.
    pub fn poll_tilt(&self, now_us: i64) -> Option<TiltChange> {
        self.state.lock().tilt.poll(now_us)
    }
}

/// The event for a tilt change.
pub fn tilt_event(change: &TiltChange) -> crate::events::Event {
    use crate::domain::format_ts;
    match change {
        TiltChange::Cooldown { until_us, reason } => crate::events::Event::new(
            EventKind::TiltChanged,
            format!(
                "tilt guard: cooldown until {} ({reason}); new entries need an explicit confirmation",
                format_ts(*until_us)
            ),
        )
        .field("state", "COOLDOWN")
        .field("until", format_ts(*until_us))
        .field("reason", reason.as_str()),
        TiltChange::Calm { .. } => {
            crate::events::Event::new(EventKind::TiltChanged, "tilt guard: cooldown over").field("state", "CALM")
        }
    }
}

/// The reply to `account`: tier, confirmations, equity, the day's P&L against its limit, the
/// tilt guard and the balances.
pub fn account_event(account: &Account, quotes: &dyn Quotes, confirm: bool) -> crate::events::Event {
    use crate::domain::format_ts;
    use crate::domain::money::usd;
    use serde_json::json;
    let now = crate::domain::now_us();
    let view = account.view(now);
    let equity = usd(account.equity(quotes));
    let limit = account.daily_loss_limit();
    let (tilt_state, tilt_text) = match &view.tilt {
        TiltStatus::Calm => (json!({"state": "CALM"}), "calm".to_string()),
        TiltStatus::Cooldown { until_us, reason } => (
            json!({"state": "COOLDOWN", "until": format_ts(*until_us), "reason": reason}),
            format!("COOLDOWN until {} ({reason})", format_ts(*until_us)),
        ),
    };
    let held: Vec<&Balance> = view.balances.iter().filter(|b| !b.free.is_zero() || !b.locked.is_zero()).collect();
    let balances: Vec<serde_json::Value> = held
        .iter()
        .map(|b| json!({"asset": b.asset, "free": b.free.normalize().to_string(), "locked": b.locked.normalize().to_string()}))
        .collect();
    let balance_text: Vec<String> =
        held.iter().map(|b| format!("{} {}", b.asset, (b.free + b.locked).normalize())).collect();
    let quote = &account.quote_asset;
    crate::events::Event::new(
        EventKind::Account,
        format!(
            "tier {}, confirmations {}, equity {equity} {quote}, realized today {} {quote} (limit -{limit}), tilt {tilt_text}; balances: {}",
            account.tier.as_str(),
            if confirm { "on" } else { "off" },
            usd(view.realized_today),
            balance_text.join(", ")
        ),
    )
    .field("tier", account.tier.as_str())
    .field("confirm", confirm)
    .money("equity", equity)
    .money("realized_today", view.realized_today)
    .money("daily_loss_limit", limit)
    .money("max_position_pct", account.limits.max_position_pct)
    .money("min_order_usd", account.limits.min_order_usd)
    .field("tilt", tilt_state)
    .field("balances", balances)
    .field("balances_synced_at", view.synced_at_us.map(format_ts))
}
