//! The risk rules checked before an order is sent: the tier gate, position sizing (the 5 %
//! rule), the minimum order and the daily loss limit. The tilt guard lives in
//! [`super::tilt`].
//!
//! Pure: no clock, no I/O. Time comes in as microseconds since the epoch (UTC), amounts as
//! `Decimal` in the account's quote asset. Every refusal is a [`RiskRefusal`] naming the rule
//! and the numbers, which the engine turns into an `order_rejected` event.
//!
//! Exits (sells, stop-losses, emergency exits) and cancels are never refused by a risk rule,
//! except that an exit must still meet the symbol's own minimum notional (the exchange would
//! refuse it anyway).

use super::money::{round_down_to_step, usd, Decimal};
use super::order::{OrderRole, Side};
use super::symbol::SymbolRules;
use super::tilt::TiltSettings;
use rust_decimal::RoundingStrategy;

// ---------------------------------------------------------------------------------------------
// Tiers

/// How much of the engine an account may use. Ordered: SNIPER < HUNTER < STRATEGIST.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    #[default]
    Sniper,
    Hunter,
    Strategist,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Sniper, Tier::Hunter, Tier::Strategist];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Sniper => "SNIPER",
            Tier::Hunter => "HUNTER",
            Tier::Strategist => "STRATEGIST",
        }
    }

    /// Case-insensitive: `sniper`, `Hunter`, `STRATEGIST`.
    pub fn parse(text: &str) -> Option<Tier> {
        let text = text.trim();
        Tier::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

/// The ways an order can be placed; each declares the tier it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderPath {
    /// `buy`/`sell SYMBOL QTY`.
    Market,
    /// The protective stop placed after a buy fills.
    StopLoss,
    /// `iceberg SYMBOL QTY SLICES`.
    Iceberg,
    /// `twap SYMBOL QTY SECONDS`.
    Twap,
}

impl OrderPath {
    pub const ALL: [OrderPath; 4] = [OrderPath::Market, OrderPath::StopLoss, OrderPath::Iceberg, OrderPath::Twap];

    pub fn required_tier(self) -> Tier {
        match self {
            OrderPath::Market | OrderPath::StopLoss => Tier::Sniper,
            OrderPath::Iceberg => Tier::Hunter,
            OrderPath::Twap => Tier::Strategist,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            OrderPath::Market => "market orders",
            OrderPath::StopLoss => "stop-loss orders",
            OrderPath::Iceberg => "iceberg orders",
            OrderPath::Twap => "TWAP orders",
        }
    }
}

/// Refuses `path` when `tier` is below the tier it needs.
pub fn check_tier(tier: Tier, path: OrderPath) -> Result<(), RiskRefusal> {
    let needed = path.required_tier();
    if tier >= needed {
        return Ok(());
    }
    Err(RiskRefusal::new(
        RiskRule::Tier,
        format!("{} need tier {} or above (account is {})", path.plural(), needed.as_str(), tier.as_str()),
    ))
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// The rule that refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskRule {
    Tier,
    PositionSize,
    MinimumOrder,
    DailyLossLimit,
    /// Trading halted (kill switch, or a fault the engine will not trade through).
    Halted,
}

impl RiskRule {
    pub const ALL: [RiskRule; 5] =
        [RiskRule::Tier, RiskRule::PositionSize, RiskRule::MinimumOrder, RiskRule::DailyLossLimit, RiskRule::Halted];

    /// snake_case, as it appears in `order_rejected` events.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskRule::Tier => "tier",
            RiskRule::PositionSize => "position_size",
            RiskRule::MinimumOrder => "minimum_order",
            RiskRule::DailyLossLimit => "daily_loss_limit",
            RiskRule::Halted => "halted",
        }
    }
}

/// An order refused by a risk rule; `message` is one sentence with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskRefusal {
    pub rule: RiskRule,
    pub message: String,
}

impl RiskRefusal {
    pub fn new(rule: RiskRule, message: impl Into<String>) -> RiskRefusal {
        RiskRefusal { rule, message: message.into() }
    }

    /// Trading is halted for `reason`.
    pub fn halted(reason: &str) -> RiskRefusal {
        RiskRefusal::new(
            RiskRule::Halted,
            format!("trading is halted ({reason}); new entries are refused until it resumes"),
        )
    }
}

impl std::fmt::Display for RiskRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RiskRefusal {}

// ---------------------------------------------------------------------------------------------
// Limits

/// Daily loss limit per tier, in the quote asset. Zero means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DailyLossLimits {
    #[serde(deserialize_with = "decimal_from_number_or_string")]
    pub sniper: Decimal,
    #[serde(deserialize_with = "decimal_from_number_or_string")]
    pub hunter: Decimal,
    #[serde(deserialize_with = "decimal_from_number_or_string")]
    pub strategist: Decimal,
}

impl Default for DailyLossLimits {
    fn default() -> Self {
        DailyLossLimits { sniper: Decimal::from(25), hunter: Decimal::from(100), strategist: Decimal::from(500) }
    }
}

impl DailyLossLimits {
    pub fn for_tier(&self, tier: Tier) -> Decimal {
        match tier {
            Tier::Sniper => self.sniper,
            Tier::Hunter => self.hunter,
            Tier::Strategist => self.strategist,
        }
    }
}

/// Every risk limit with its default. A TOML table may override any subset:
///
/// ```toml
/// max_position_pct = 5          # or "5"
/// min_order_usd = "10"
/// [daily_loss_limit]
/// sniper = 25
/// [tilt]
/// cooldown_secs = 900
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLimits {
    /// An entry may be worth at most this percentage of equity (5).
    #[serde(deserialize_with = "decimal_from_number_or_string")]
    pub max_position_pct: Decimal,
    /// Smallest entry, in the quote asset (10); the symbol's minimum notional wins when larger.
    #[serde(deserialize_with = "decimal_from_number_or_string")]
    pub min_order_usd: Decimal,
    /// Net realized loss per UTC day that stops new entries (25 / 100 / 500).
    pub daily_loss_limit: DailyLossLimits,
    pub tilt: TiltSettings,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            max_position_pct: Decimal::from(5),
            min_order_usd: Decimal::from(10),
            daily_loss_limit: DailyLossLimits::default(),
            tilt: TiltSettings::default(),
        }
    }
}

/// A configured limit outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    pub name: &'static str,
    pub value: Decimal,
    pub expected: &'static str,
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "risk limit {} = {} is invalid: it must be {}", self.name, self.value, self.expected)
    }
}

impl std::error::Error for LimitError {}

impl RiskLimits {
    /// Checks the ranges: percentage in (0, 100], amounts not negative.
    pub fn validate(&self) -> Result<(), LimitError> {
        let pct = self.max_position_pct;
        if pct <= Decimal::ZERO || pct > Decimal::ONE_HUNDRED {
            return Err(LimitError { name: "max_position_pct", value: pct, expected: "above 0 and at most 100" });
        }
        let amounts = [
            ("min_order_usd", self.min_order_usd),
            ("daily_loss_limit.sniper", self.daily_loss_limit.sniper),
            ("daily_loss_limit.hunter", self.daily_loss_limit.hunter),
            ("daily_loss_limit.strategist", self.daily_loss_limit.strategist),
        ];
        for (name, value) in amounts {
            if value.is_sign_negative() && !value.is_zero() {
                return Err(LimitError { name, value, expected: "zero or more" });
            }
        }
        Ok(())
    }

    pub fn daily_loss_limit_for(&self, tier: Tier) -> Decimal {
        self.daily_loss_limit.for_tier(tier)
    }

    /// The largest entry value allowed for `equity`, or `None` when it is too large to
    /// compute (no practical limit).
    pub fn max_entry_notional(&self, equity: Decimal) -> Option<Decimal> {
        let equity = equity.max(Decimal::ZERO);
        equity
            .checked_mul(self.max_position_pct)
            .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
            .or_else(|| equity.checked_div(Decimal::ONE_HUNDRED).and_then(|v| v.checked_mul(self.max_position_pct)))
    }

    /// The minimum notional of an order: for an entry the larger of `min_order_usd` and the
    /// symbol's minimum notional, for an exit only the symbol's.
    pub fn minimum_notional(&self, intent: Intent, rules: &SymbolRules) -> Decimal {
        match intent {
            Intent::Entry => self.min_order_usd.max(rules.min_notional),
            Intent::Exit => rules.min_notional,
        }
    }
}

/// Accepts a decimal written as a string (`"5"`, `"0.5"`) or as a number (`5`, `0.5`).
pub(crate) fn decimal_from_number_or_string<'de, D>(deserializer: D) -> Result<Decimal, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_any(DecimalVisitor)
}

struct DecimalVisitor;

impl serde::de::Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a decimal number, as a number or a string")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
        // The shortest representation that reads back as `v`: 0.1 stays 0.1.
        let text = v.to_string();
        text.parse::<Decimal>().map_err(|_| E::custom(format!("{v} is not a representable decimal")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
        v.trim()
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(v.trim()))
            .map_err(|_| E::custom(format!("'{v}' is not a decimal number")))
    }
}

// ---------------------------------------------------------------------------------------------
// Entries and exits

/// Whether an order opens risk or takes it off. Only entries are limited by position size,
/// `min_order_usd`, the daily loss limit and the tilt guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    Entry,
    Exit,
}

impl Intent {
    /// Spot, long only: a buy opens a position, a sell closes one.
    pub fn of_side(side: Side) -> Intent {
        match side {
            Side::Buy => Intent::Entry,
            Side::Sell => Intent::Exit,
        }
    }

    /// Stop-losses, emergency exits and recovered orders (already on the exchange) are exits.
    pub fn of_role(role: OrderRole) -> Intent {
        match role {
            OrderRole::Entry => Intent::Entry,
            OrderRole::Exit | OrderRole::StopLoss | OrderRole::EmergencyExit | OrderRole::Recovered => Intent::Exit,
        }
    }
}

/// An amount for a message: two decimals (`600.00`), or up to eight when cents would hide the
/// difference (`500.004`).
fn amount(value: Decimal) -> String {
    let cents = usd(value);
    if cents == value {
        format!("{cents:.2}")
    } else {
        value.round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero).normalize().to_string()
    }
}

/// The 5 % rule: refuses an entry worth more than `max_position_pct` % of `equity` (both in
/// `quote_asset`). Exactly the limit is allowed; exits are never refused.
pub fn check_position_size(
    limits: &RiskLimits,
    intent: Intent,
    notional: Decimal,
    equity: Decimal,
    quote_asset: &str,
) -> Result<(), RiskRefusal> {
    if intent == Intent::Exit {
        return Ok(());
    }
    let Some(max) = limits.max_entry_notional(equity) else {
        return Ok(());
    };
    if notional <= max {
        return Ok(());
    }
    Err(RiskRefusal::new(
        RiskRule::PositionSize,
        format!(
            "order value {} {quote_asset} is above {}% of equity {} {quote_asset} (max {})",
            amount(notional),
            limits.max_position_pct.normalize(),
            amount(equity),
            amount(max)
        ),
    ))
}

/// The minimum order: an entry must be worth at least `min_order_usd` and the symbol's minimum
/// notional, whichever is larger; an exit only the symbol's minimum notional.
pub fn check_minimum_order(
    limits: &RiskLimits,
    intent: Intent,
    notional: Decimal,
    rules: &SymbolRules,
) -> Result<(), RiskRefusal> {
    let min = limits.minimum_notional(intent, rules);
    if notional >= min {
        return Ok(());
    }
    let quote = &rules.quote_asset;
    let source = if intent == Intent::Entry && rules.min_notional <= limits.min_order_usd {
        "the minimum order".to_string()
    } else {
        format!("{}'s minimum notional", rules.symbol)
    };
    Err(RiskRefusal::new(
        RiskRule::MinimumOrder,
        format!("order value {} {quote} is below {source} of {} {quote}", amount(notional), amount(min)),
    ))
}

/// The largest entry quantity within the 5 % rule at `price`, rounded down to the step size
/// (and capped at the symbol's maximum quantity). Refused when that is below the minimum
/// order, the symbol's minimum notional or its minimum quantity.
pub fn size_entry(
    limits: &RiskLimits,
    equity: Decimal,
    price: Decimal,
    rules: &SymbolRules,
) -> Result<Decimal, RiskRefusal> {
    let quote = &rules.quote_asset;
    let symbol = &rules.symbol;
    if price <= Decimal::ZERO {
        return Err(RiskRefusal::new(
            RiskRule::PositionSize,
            format!("cannot size a {symbol} entry at price {price}: the price must be above 0"),
        ));
    }
    let mut quantity = limits.max_entry_notional(equity).and_then(|max| max.checked_div(price)).unwrap_or(Decimal::MAX);
    if rules.max_qty > Decimal::ZERO {
        quantity = quantity.min(rules.max_qty);
    }
    let quantity = round_down_to_step(quantity, rules.step_size);
    let notional = quantity.checked_mul(price).unwrap_or(Decimal::MAX);
    let within = format!(
        "the largest {symbol} entry within {}% of equity {} {quote} is {quantity}",
        limits.max_position_pct.normalize(),
        amount(equity)
    );
    if quantity <= Decimal::ZERO || quantity < rules.min_qty {
        return Err(RiskRefusal::new(
            RiskRule::MinimumOrder,
            format!("{within}, below {symbol}'s minimum quantity {}", rules.min_qty.normalize()),
        ));
    }
    check_minimum_order(limits, Intent::Entry, notional, rules).map_err(|_| {
        RiskRefusal::new(
            RiskRule::MinimumOrder,
            format!(
                "{within} (order value {} {quote}), below the minimum order of {} {quote}",
                amount(notional),
                amount(limits.minimum_notional(Intent::Entry, rules))
            ),
        )
    })?;
    Ok(quantity)
}

/// The account's equity in `quote_asset`: free + locked of the quote asset, plus every other
/// asset valued at `price_of(asset)` (the bid of ASSET+QUOTE). Assets without a price, or with
/// a price of zero or less, are left out.
pub fn equity_in_quote(
    balances: &[crate::exchange::Balance],
    quote_asset: &str,
    mut price_of: impl FnMut(&str) -> Option<Decimal>,
) -> Decimal {
    let mut equity = Decimal::ZERO;
    for balance in balances {
        let held = balance.free.saturating_add(balance.locked);
        if held.is_zero() {
            continue;
        }
        let value = if balance.asset == quote_asset {
            held
        } else {
            match price_of(&balance.asset) {
                Some(price) if price > Decimal::ZERO => held.saturating_mul(price),
                _ => continue,
            }
        };
        equity = equity.saturating_add(value);
    }
    equity
}

// ---------------------------------------------------------------------------------------------
// Daily loss limit

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The UTC day of a timestamp, as days since 1970-01-01 (negative before).
pub fn utc_day(at_us: i64) -> i64 {
    at_us.div_euclid(DAY_US)
}

/// Net realized P&L (fees included) of the current UTC day, in the quote asset. Gains offset
/// losses; the sum starts again at 00:00 UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyPnl {
    quote_asset: String,
    /// `None` before anything was recorded.
    day: Option<i64>,
    realized: Decimal,
}

impl DailyPnl {
    pub fn new(quote_asset: &str) -> DailyPnl {
        DailyPnl { quote_asset: quote_asset.to_string(), day: None, realized: Decimal::ZERO }
    }

    /// Rebuilt from a stored total: `realized` on UTC `day` (see [`utc_day`]).
    pub fn from_day(quote_asset: &str, day: i64, realized: Decimal) -> DailyPnl {
        DailyPnl { quote_asset: quote_asset.to_string(), day: Some(day), realized }
    }

    /// Rebuilt from stored realized P&L records `(pnl, at_us)`: those on the UTC day of
    /// `now_us` are summed, the rest ignored.
    pub fn from_records(quote_asset: &str, records: impl IntoIterator<Item = (Decimal, i64)>, now_us: i64) -> DailyPnl {
        let today = utc_day(now_us);
        let realized = records
            .into_iter()
            .filter(|&(_, at_us)| utc_day(at_us) == today)
            .fold(Decimal::ZERO, |sum, (pnl, _)| sum.saturating_add(pnl));
        DailyPnl::from_day(quote_asset, today, realized)
    }

    /// Adds a realized P&L made at `at_us`. A record of a later day starts that day afresh; a
    /// record of an earlier day than the current one is ignored (it no longer counts).
    pub fn record(&mut self, pnl: Decimal, at_us: i64) {
        let day = utc_day(at_us);
        match self.day {
            Some(current) if day == current => self.realized = self.realized.saturating_add(pnl),
            Some(current) if day < current => {}
            _ => {
                self.day = Some(day);
                self.realized = pnl;
            }
        }
    }

    /// The UTC day being summed, if any.
    pub fn day(&self) -> Option<i64> {
        self.day
    }

    /// Net realized P&L of the UTC day of `now_us` (zero once that day is over).
    pub fn realized_today(&self, now_us: i64) -> Decimal {
        if self.day == Some(utc_day(now_us)) {
            self.realized
        } else {
            Decimal::ZERO
        }
    }

    /// Refuses a new entry once today's net realized loss reaches `limit` (a loss of exactly
    /// the limit blocks). A limit of zero means no limit. Exits and cancels are not checked.
    pub fn check_entry(&self, limit: Decimal, now_us: i64) -> Result<(), RiskRefusal> {
        let limit = limit.abs();
        if limit.is_zero() {
            return Ok(());
        }
        let realized = self.realized_today(now_us);
        if realized > -limit {
            return Ok(());
        }
        let quote = &self.quote_asset;
        Err(RiskRefusal::new(
            RiskRule::DailyLossLimit,
            format!(
                "daily loss limit reached: realized {} {quote} today (limit {} {quote}); \
                 new entries resume at 00:00 UTC",
                amount(realized),
                amount(limit)
            ),
        ))
    }
}

/// As [`decimal_from_number_or_string`], for an optional setting.
pub(crate) fn opt_decimal_from_number_or_string<'de, D>(deserializer: D) -> Result<Option<Decimal>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    decimal_from_number_or_string(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Balance;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn btc() -> SymbolRules {
        crate::domain::symbol::fixtures::btcusdt()
    }

    fn with_min_notional(min: &str) -> SymbolRules {
        SymbolRules { min_notional: d(min), ..btc() }
    }

    fn limits() -> RiskLimits {
        RiskLimits::default()
    }

    /// 2025-11-25T00:00:00Z
    const DAY_START: i64 = 1_764_028_800_000_000;
    const HOUR: i64 = 3_600_000_000;

    // --- tiers ---

    #[test]
    fn tiers_are_ordered_sniper_hunter_strategist_and_default_to_sniper() {
        assert!(Tier::Sniper < Tier::Hunter && Tier::Hunter < Tier::Strategist);
        assert_eq!(Tier::default(), Tier::Sniper);
    }

    #[test]
    fn tier_parse_is_case_insensitive_and_as_str_is_upper_case() {
        assert_eq!(Tier::parse("sniper"), Some(Tier::Sniper));
        assert_eq!(Tier::parse("Hunter"), Some(Tier::Hunter));
        assert_eq!(Tier::parse("STRATEGIST"), Some(Tier::Strategist));
        assert_eq!(Tier::parse("general"), None);
        assert_eq!(Tier::parse(""), None);
        for tier in Tier::ALL {
            assert_eq!(Tier::parse(tier.as_str()), Some(tier));
            assert_eq!(tier.as_str(), tier.as_str().to_uppercase());
        }
    }

    #[test]
    fn tier_gate_allows_and_refuses_every_tier_and_path_pair() {
        use OrderPath::*;
        use Tier::*;
        let table = [
            (Sniper, Market, true),
            (Sniper, StopLoss, true),
            (Sniper, Iceberg, false),
            (Sniper, Twap, false),
            (Hunter, Market, true),
            (Hunter, StopLoss, true),
            (Hunter, Iceberg, true),
            (Hunter, Twap, false),
            (Strategist, Market, true),
            (Strategist, StopLoss, true),
            (Strategist, Iceberg, true),
            (Strategist, Twap, true),
        ];
        assert_eq!(table.len(), Tier::ALL.len() * OrderPath::ALL.len());
        for (tier, path, allowed) in table {
            let result = check_tier(tier, path);
            assert_eq!(result.is_ok(), allowed, "{tier:?} {path:?}");
            if let Err(refusal) = result {
                assert_eq!(refusal.rule, RiskRule::Tier);
                assert!(refusal.message.contains(path.required_tier().as_str()));
            }
        }
    }

    #[test]
    fn tier_refusal_names_the_tier_needed_and_the_account_tier() {
        assert_eq!(
            check_tier(Tier::Sniper, OrderPath::Iceberg).unwrap_err().to_string(),
            "iceberg orders need tier HUNTER or above (account is SNIPER)"
        );
        assert_eq!(
            check_tier(Tier::Hunter, OrderPath::Twap).unwrap_err().to_string(),
            "TWAP orders need tier STRATEGIST or above (account is HUNTER)"
        );
    }

    #[test]
    fn every_order_path_names_itself_in_the_plural_for_refusals() {
        let names: Vec<_> = OrderPath::ALL.iter().map(|p| p.plural()).collect();
        assert_eq!(names, ["market orders", "stop-loss orders", "iceberg orders", "TWAP orders"]);
    }

    #[test]
    fn risk_rules_have_snake_case_names() {
        let names: Vec<_> = RiskRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["tier", "position_size", "minimum_order", "daily_loss_limit", "halted"]);
        let halted = RiskRefusal::halted("kill switch");
        assert_eq!(halted.rule, RiskRule::Halted);
        assert_eq!(halted.to_string(), "trading is halted (kill switch); new entries are refused until it resumes");
    }

    // --- position size ---

    #[test]
    fn a_normal_entry_within_five_percent_is_allowed() {
        assert_eq!(check_position_size(&limits(), Intent::Entry, d("250"), d("10000"), "USDT"), Ok(()));
    }

    #[test]
    fn an_entry_of_exactly_five_percent_of_equity_is_allowed() {
        assert_eq!(check_position_size(&limits(), Intent::Entry, d("500"), d("10000"), "USDT"), Ok(()));
        assert_eq!(check_position_size(&limits(), Intent::Entry, d("499.99"), d("10000"), "USDT"), Ok(()));
    }

    #[test]
    fn an_entry_one_cent_above_five_percent_is_refused_with_the_numbers() {
        let refusal = check_position_size(&limits(), Intent::Entry, d("500.01"), d("10000"), "USDT").unwrap_err();
        assert_eq!(refusal.rule, RiskRule::PositionSize);
        assert_eq!(refusal.message, "order value 500.01 USDT is above 5% of equity 10000.00 USDT (max 500.00)");
        assert_eq!(
            check_position_size(&limits(), Intent::Entry, d("600"), d("10000"), "USDT").unwrap_err().message,
            "order value 600.00 USDT is above 5% of equity 10000.00 USDT (max 500.00)"
        );
    }

    #[test]
    fn exits_are_never_refused_by_position_size() {
        assert_eq!(check_position_size(&limits(), Intent::Exit, d("9000"), d("10000"), "USDT"), Ok(()));
        assert_eq!(check_position_size(&limits(), Intent::Exit, d("1"), d("0"), "USDT"), Ok(()));
    }

    #[test]
    fn position_size_follows_the_configured_percentage() {
        let limits = RiskLimits { max_position_pct: d("2.5"), ..RiskLimits::default() };
        assert!(check_position_size(&limits, Intent::Entry, d("250"), d("10000"), "USDT").is_ok());
        assert_eq!(
            check_position_size(&limits, Intent::Entry, d("250.004"), d("10000"), "USDT").unwrap_err().message,
            "order value 250.004 USDT is above 2.5% of equity 10000.00 USDT (max 250.00)"
        );
    }

    #[test]
    fn position_size_with_no_equity_refuses_every_entry() {
        assert!(check_position_size(&limits(), Intent::Entry, d("10"), d("0"), "USDT").is_err());
        assert!(check_position_size(&limits(), Intent::Entry, d("10"), d("-5"), "USDT").is_err());
    }

    // --- minimum order ---

    #[test]
    fn an_entry_of_9_99_is_below_the_10_minimum() {
        let refusal = check_minimum_order(&limits(), Intent::Entry, d("9.99"), &btc()).unwrap_err();
        assert_eq!(refusal.rule, RiskRule::MinimumOrder);
        assert_eq!(refusal.message, "order value 9.99 USDT is below the minimum order of 10.00 USDT");
    }

    #[test]
    fn an_entry_of_exactly_10_is_allowed() {
        assert_eq!(check_minimum_order(&limits(), Intent::Entry, d("10"), &btc()), Ok(()));
    }

    #[test]
    fn a_symbol_minimum_above_10_wins_for_entries() {
        let rules = with_min_notional("12");
        let refusal = check_minimum_order(&limits(), Intent::Entry, d("11.99"), &rules).unwrap_err();
        assert_eq!(refusal.message, "order value 11.99 USDT is below BTCUSDT's minimum notional of 12.00 USDT");
        assert_eq!(check_minimum_order(&limits(), Intent::Entry, d("12"), &rules), Ok(()));
    }

    #[test]
    fn exits_only_need_the_symbol_minimum_notional() {
        assert_eq!(check_minimum_order(&limits(), Intent::Exit, d("5"), &btc()), Ok(()));
        let refusal = check_minimum_order(&limits(), Intent::Exit, d("4.99"), &btc()).unwrap_err();
        assert_eq!(refusal.message, "order value 4.99 USDT is below BTCUSDT's minimum notional of 5.00 USDT");
    }

    // --- sizing ---

    #[test]
    fn sizing_takes_five_percent_of_equity_rounded_down_to_the_step() {
        // 5% of 10000 = 500; 500 / 65432.10 = 0.0076415...; step 0.00001 -> 0.00764.
        let qty = size_entry(&limits(), d("10000"), d("65432.10"), &btc()).unwrap();
        assert_eq!(qty, d("0.00764"));
        assert!(qty * d("65432.10") <= d("500"));
        assert!((qty + d("0.00001")) * d("65432.10") > d("500"));
    }

    #[test]
    fn sizing_an_exact_multiple_keeps_the_whole_five_percent() {
        assert_eq!(size_entry(&limits(), d("10000"), d("100"), &btc()), Ok(d("5")));
    }

    #[test]
    fn sizing_refuses_when_five_percent_is_below_the_minimum_order() {
        // 5% of 150 = 7.50 < 10.
        let refusal = size_entry(&limits(), d("150"), d("100"), &btc()).unwrap_err();
        assert_eq!(refusal.rule, RiskRule::MinimumOrder);
        assert_eq!(
            refusal.message,
            "the largest BTCUSDT entry within 5% of equity 150.00 USDT is 0.075 \
             (order value 7.50 USDT), below the minimum order of 10.00 USDT"
        );
        // 5% of 200 = 10: exactly the minimum, allowed.
        assert_eq!(size_entry(&limits(), d("200"), d("100"), &btc()), Ok(d("0.1")));
    }

    #[test]
    fn sizing_refuses_when_rounding_down_falls_below_the_minimum() {
        // 5% of 200 = 10, but 10 / 3 rounds down to 3.33 (step 0.01): 9.99 < 10.
        let rules = SymbolRules { step_size: d("0.01"), min_qty: d("0.01"), ..btc() };
        let refusal = size_entry(&limits(), d("200"), d("3"), &rules).unwrap_err();
        assert_eq!(refusal.rule, RiskRule::MinimumOrder);
        assert!(refusal.message.contains("order value 9.99 USDT"));
    }

    #[test]
    fn sizing_refuses_below_the_symbol_minimum_quantity() {
        let rules = SymbolRules { min_qty: d("0.01"), ..btc() };
        let refusal = size_entry(&limits(), d("10000"), d("65000"), &rules).unwrap_err();
        assert_eq!(
            refusal.message,
            "the largest BTCUSDT entry within 5% of equity 10000.00 USDT is 0.00769, \
             below BTCUSDT's minimum quantity 0.01"
        );
    }

    #[test]
    fn sizing_exactly_to_the_symbol_minimum_quantity_is_allowed() {
        // 5 % of 200 at 100 is 0.1, which is exactly the minimum quantity (and 10 USDT).
        let rules = SymbolRules { min_qty: d("0.1"), ..btc() };
        assert_eq!(size_entry(&limits(), d("200"), d("100"), &rules), Ok(d("0.1")));
    }

    #[test]
    fn sizing_respects_a_symbol_minimum_notional_above_ten() {
        let rules = with_min_notional("20");
        assert!(size_entry(&limits(), d("300"), d("100"), &rules).is_err());
        assert_eq!(size_entry(&limits(), d("400"), d("100"), &rules), Ok(d("0.2")));
    }

    #[test]
    fn sizing_on_a_symbol_without_a_step_size_keeps_the_exact_five_percent() {
        let no_step = SymbolRules { step_size: Decimal::ZERO, ..btc() };
        // 5 % of 13000 is 650, which buys 0.01015625 at 64000; a step of 0.00001 would make it 0.01015.
        assert_eq!(size_entry(&limits(), d("13000"), d("64000"), &no_step), Ok(d("0.01015625")));
    }

    #[test]
    fn sizing_caps_at_the_symbol_maximum_quantity() {
        assert_eq!(size_entry(&limits(), d("100000000"), d("0.1"), &btc()), Ok(d("9000")));
    }

    #[test]
    fn sizing_refuses_a_price_of_zero_or_less_without_panicking() {
        for price in ["0", "-1"] {
            let refusal = size_entry(&limits(), d("10000"), d(price), &btc()).unwrap_err();
            assert_eq!(refusal.rule, RiskRule::PositionSize);
        }
    }

    #[test]
    fn sizing_does_not_panic_on_extreme_values() {
        let no_max = SymbolRules { max_qty: Decimal::ZERO, step_size: d("0.00000001"), ..btc() };
        assert!(size_entry(&limits(), Decimal::MAX, d("0.00000001"), &no_max).is_ok());
        assert!(size_entry(&limits(), Decimal::MAX, Decimal::MAX, &no_max).is_ok());
        assert!(size_entry(&limits(), Decimal::MIN, d("1"), &no_max).is_err());
        // 5% of the largest equity is still computed (divided first), so the rule holds.
        assert!(check_position_size(&limits(), Intent::Entry, Decimal::MAX, Decimal::MAX, "USDT").is_err());
        let huge_pct = RiskLimits { max_position_pct: Decimal::MAX, ..RiskLimits::default() };
        assert!(check_position_size(&huge_pct, Intent::Entry, Decimal::MAX, Decimal::MAX, "USDT").is_ok());
        assert!(size_entry(&huge_pct, Decimal::MAX, d("1"), &no_max).is_ok());
    }

    // --- daily loss limit ---

    #[test]
    fn a_net_loss_of_24_99_still_allows_entries() {
        let mut pnl = DailyPnl::new("USDT");
        pnl.record(d("-24.99"), DAY_START + HOUR);
        assert_eq!(pnl.realized_today(DAY_START + 2 * HOUR), d("-24.99"));
        assert_eq!(pnl.check_entry(d("25"), DAY_START + 2 * HOUR), Ok(()));
    }

    #[test]
    fn a_net_loss_of_exactly_25_blocks_entries_with_the_numbers() {
        let mut pnl = DailyPnl::new("USDT");
        pnl.record(d("-10"), DAY_START + HOUR);
        pnl.record(d("-15"), DAY_START + 2 * HOUR);
        let refusal = pnl.check_entry(d("25"), DAY_START + 3 * HOUR).unwrap_err();
        assert_eq!(refusal.rule, RiskRule::DailyLossLimit);
        assert_eq!(
            refusal.message,
            "daily loss limit reached: realized -25.00 USDT today (limit 25.00 USDT); \
             new entries resume at 00:00 UTC"
        );
        pnl.record(d("-0.40"), DAY_START + 4 * HOUR);
        assert_eq!(
            pnl.check_entry(d("25"), DAY_START + 5 * HOUR).unwrap_err().message,
            "daily loss limit reached: realized -25.40 USDT today (limit 25.00 USDT); \
             new entries resume at 00:00 UTC"
        );
    }

    #[test]
    fn gains_offset_losses_toward_the_daily_limit() {
        let mut pnl = DailyPnl::new("USDT");
        pnl.record(d("-30"), DAY_START + HOUR);
        assert!(pnl.check_entry(d("25"), DAY_START + HOUR).is_err());
        pnl.record(d("5.01"), DAY_START + 2 * HOUR);
        assert_eq!(pnl.realized_today(DAY_START + 2 * HOUR), d("-24.99"));
        assert_eq!(pnl.check_entry(d("25"), DAY_START + 2 * HOUR), Ok(()));
    }

    #[test]
    fn the_daily_total_rolls_over_at_utc_midnight() {
        let mut pnl = DailyPnl::new("USDT");
        pnl.record(d("-40"), DAY_START + 23 * HOUR);
        let last_us = DAY_START + DAY_US - 1;
        assert!(pnl.check_entry(d("25"), last_us).is_err());
        assert_eq!(pnl.realized_today(DAY_START + DAY_US), Decimal::ZERO);
        assert_eq!(pnl.check_entry(d("25"), DAY_START + DAY_US), Ok(()));
        pnl.record(d("-3"), DAY_START + DAY_US + HOUR);
        assert_eq!(pnl.realized_today(DAY_START + DAY_US + HOUR), d("-3"));
        // A late record of yesterday no longer counts.
        pnl.record(d("-100"), last_us);
        assert_eq!(pnl.realized_today(DAY_START + DAY_US + HOUR), d("-3"));
    }

    #[test]
    fn the_daily_limit_follows_the_tier() {
        let limits = limits();
        assert_eq!(limits.daily_loss_limit_for(Tier::Sniper), d("25"));
        assert_eq!(limits.daily_loss_limit_for(Tier::Hunter), d("100"));
        assert_eq!(limits.daily_loss_limit_for(Tier::Strategist), d("500"));
        let pnl = DailyPnl::from_day("USDT", utc_day(DAY_START), d("-99.99"));
        assert!(pnl.check_entry(limits.daily_loss_limit_for(Tier::Sniper), DAY_START).is_err());
        assert!(pnl.check_entry(limits.daily_loss_limit_for(Tier::Hunter), DAY_START).is_ok());
    }

    #[test]
    fn a_zero_daily_limit_means_no_limit() {
        let pnl = DailyPnl::from_day("USDT", utc_day(DAY_START), d("-1000"));
        assert_eq!(pnl.check_entry(Decimal::ZERO, DAY_START), Ok(()));
    }

    #[test]
    fn daily_pnl_is_rebuilt_from_stored_records_of_today_only() {
        let records = [
            (d("-50"), DAY_START - 1),
            (d("-20"), DAY_START),
            (d("7.5"), DAY_START + HOUR),
            (d("-12.5"), DAY_START + 2 * HOUR),
            (d("-80"), DAY_START + DAY_US),
        ];
        let pnl = DailyPnl::from_records("USDT", records, DAY_START + 3 * HOUR);
        assert_eq!(pnl.day(), Some(utc_day(DAY_START)));
        assert_eq!(pnl.realized_today(DAY_START + 3 * HOUR), d("-25"));
        assert!(pnl.check_entry(d("25"), DAY_START + 3 * HOUR).is_err());
    }

    #[test]
    fn utc_day_splits_at_midnight_and_handles_times_before_1970() {
        assert_eq!(utc_day(DAY_START) - utc_day(DAY_START - 1), 1);
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(-1), -1);
        let _ = utc_day(i64::MIN);
        let _ = DailyPnl::new("USDT").realized_today(i64::MAX);
    }

    // --- equity ---

    #[test]
    fn equity_counts_quote_free_and_locked_plus_priced_assets() {
        let balances = [
            Balance { asset: "USDT".into(), free: d("900"), locked: d("100") },
            Balance { asset: "BTC".into(), free: d("0.01"), locked: d("0.005") },
            Balance { asset: "ETH".into(), free: d("2"), locked: d("0") },
            Balance { asset: "NOPRICE".into(), free: d("1000"), locked: d("0") },
        ];
        let price_of = |asset: &str| match asset {
            "BTC" => Some(d("60000")),
            "ETH" => Some(d("3000.5")),
            _ => None,
        };
        // 1000 + 0.015 × 60000 + 2 × 3000.5
        assert_eq!(equity_in_quote(&balances, "USDT", price_of), d("7901"));
    }

    #[test]
    fn equity_leaves_out_assets_with_a_negative_price() {
        let balances = [
            Balance { asset: "USDT".into(), free: d("100"), locked: d("0") },
            Balance { asset: "BAD".into(), free: d("5"), locked: d("0") },
        ];
        assert_eq!(equity_in_quote(&balances, "USDT", |_| Some(d("-2"))), d("100"));
    }

    #[test]
    fn equity_does_not_ask_the_price_of_an_asset_with_nothing_held() {
        let balances = [
            Balance { asset: "USDT".into(), free: d("100"), locked: d("0") },
            Balance { asset: "ETH".into(), free: d("0"), locked: d("0") },
            Balance { asset: "BTC".into(), free: d("0.01"), locked: d("0") },
        ];
        let asked = std::cell::RefCell::new(Vec::new());
        let price_of = |asset: &str| {
            asked.borrow_mut().push(asset.to_string());
            Some(d("60000"))
        };
        assert_eq!(equity_in_quote(&balances, "USDT", price_of), d("700"));
        assert_eq!(asked.into_inner(), ["BTC"]);
    }

    #[test]
    fn equity_of_an_empty_account_is_zero() {
        assert_eq!(equity_in_quote(&[], "USDT", |_| None), Decimal::ZERO);
    }

    // --- configuration ---

    #[test]
    fn defaults_are_5_percent_10_minimum_and_25_100_500_daily() {
        let l = RiskLimits::default();
        assert_eq!(l.max_position_pct, d("5"));
        assert_eq!(l.min_order_usd, d("10"));
        assert_eq!(l.daily_loss_limit, DailyLossLimits { sniper: d("25"), hunter: d("100"), strategist: d("500") });
        assert_eq!(l.tilt, TiltSettings::default());
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn toml_overrides_any_subset_with_numbers_or_strings() {
        let from_number: RiskLimits = toml::from_str("max_position_pct = 5").unwrap();
        let from_string: RiskLimits = toml::from_str("max_position_pct = \"5\"").unwrap();
        assert_eq!(from_number, RiskLimits::default());
        assert_eq!(from_string, RiskLimits::default());

        let custom: RiskLimits = toml::from_str(
            "max_position_pct = 2.5\n\
             min_order_usd = \"12.50\"\n\
             [daily_loss_limit]\n\
             hunter = 150\n\
             [tilt]\n\
             cooldown_secs = 600\n\
             enabled = false\n",
        )
        .unwrap();
        assert_eq!(custom.max_position_pct, d("2.5"));
        assert_eq!(custom.min_order_usd, d("12.50"));
        assert_eq!(custom.daily_loss_limit.sniper, d("25"));
        assert_eq!(custom.daily_loss_limit.hunter, d("150"));
        assert_eq!(custom.tilt.cooldown_secs, 600);
        assert!(!custom.tilt.enabled);
        assert_eq!(custom.tilt.losing_streak, 3);

        let empty: RiskLimits = toml::from_str("").unwrap();
        assert_eq!(empty, RiskLimits::default());
    }

    #[test]
    fn toml_with_a_misspelt_or_non_numeric_limit_is_refused() {
        assert!(toml::from_str::<RiskLimits>("max_position_percent = 5").is_err());
        assert!(toml::from_str::<RiskLimits>("max_position_pct = \"five\"").is_err());
        assert!(toml::from_str::<RiskLimits>("[tilt]\ncooldown = 900").is_err());
    }

    #[test]
    fn a_limit_of_the_wrong_type_is_refused_saying_what_is_expected() {
        let err = toml::from_str::<RiskLimits>("max_position_pct = true").unwrap_err();
        assert!(err.to_string().contains("a decimal number, as a number or a string"), "{err}");
    }

    #[test]
    fn limits_read_from_json_accept_whole_numbers() {
        // JSON hands positive whole numbers over as u64, negative ones as i64.
        let limits: RiskLimits =
            serde_json::from_str(r#"{"max_position_pct": 7, "min_order_usd": 12, "daily_loss_limit": {"sniper": 30}}"#)
                .unwrap();
        assert_eq!(limits.max_position_pct, d("7"));
        assert_eq!(limits.min_order_usd, d("12"));
        assert_eq!(limits.daily_loss_limit.sniper, d("30"));
    }

    #[test]
    fn validate_refuses_out_of_range_limits() {
        let zero_pct = RiskLimits { max_position_pct: Decimal::ZERO, ..RiskLimits::default() };
        assert_eq!(
            zero_pct.validate().unwrap_err().to_string(),
            "risk limit max_position_pct = 0 is invalid: it must be above 0 and at most 100"
        );
        let negative = RiskLimits {
            daily_loss_limit: DailyLossLimits { hunter: d("-1"), ..DailyLossLimits::default() },
            ..RiskLimits::default()
        };
        assert_eq!(
            negative.validate().unwrap_err().to_string(),
            "risk limit daily_loss_limit.hunter = -1 is invalid: it must be zero or more"
        );
    }

    #[test]
    fn a_position_limit_of_exactly_100_percent_is_valid() {
        let all_in = RiskLimits { max_position_pct: d("100"), ..RiskLimits::default() };
        assert_eq!(all_in.validate(), Ok(()));
    }

    #[test]
    fn a_position_limit_above_100_percent_is_refused() {
        let over = RiskLimits { max_position_pct: d("100.01"), ..RiskLimits::default() };
        assert_eq!(
            over.validate(),
            Err(LimitError { name: "max_position_pct", value: d("100.01"), expected: "above 0 and at most 100" })
        );
    }

    #[test]
    fn intents_follow_side_and_role() {
        assert_eq!(Intent::of_side(Side::Buy), Intent::Entry);
        assert_eq!(Intent::of_side(Side::Sell), Intent::Exit);
        assert_eq!(Intent::of_role(OrderRole::Entry), Intent::Entry);
        assert_eq!(Intent::of_role(OrderRole::StopLoss), Intent::Exit);
        assert_eq!(Intent::of_role(OrderRole::EmergencyExit), Intent::Exit);
    }
}
