//! The order as Genesis records it, and the exchange's report of an order (Binance's terms).

use super::lifecycle::{self, LifecycleEvent, OrderStatus, TransitionError};
use super::money::{average_price, Decimal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "BUY" => Some(Side::Buy),
            "SELL" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// Binance order types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExchangeOrderType {
    Limit,
    Market,
    StopLoss,
    StopLossLimit,
    TakeProfit,
    TakeProfitLimit,
    LimitMaker,
}

impl ExchangeOrderType {
    pub const ALL: [ExchangeOrderType; 7] = [
        ExchangeOrderType::Limit,
        ExchangeOrderType::Market,
        ExchangeOrderType::StopLoss,
        ExchangeOrderType::StopLossLimit,
        ExchangeOrderType::TakeProfit,
        ExchangeOrderType::TakeProfitLimit,
        ExchangeOrderType::LimitMaker,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeOrderType::Limit => "LIMIT",
            ExchangeOrderType::Market => "MARKET",
            ExchangeOrderType::StopLoss => "STOP_LOSS",
            ExchangeOrderType::StopLossLimit => "STOP_LOSS_LIMIT",
            ExchangeOrderType::TakeProfit => "TAKE_PROFIT",
            ExchangeOrderType::TakeProfitLimit => "TAKE_PROFIT_LIMIT",
            ExchangeOrderType::LimitMaker => "LIMIT_MAKER",
        }
    }
    pub fn parse(text: &str) -> Option<ExchangeOrderType> {
        ExchangeOrderType::ALL.into_iter().find(|t| t.as_str() == text)
    }
    /// Stop orders count against `MAX_NUM_ALGO_ORDERS`.
    pub fn is_algo(self) -> bool {
        matches!(
            self,
            ExchangeOrderType::StopLoss
                | ExchangeOrderType::StopLossLimit
                | ExchangeOrderType::TakeProfit
                | ExchangeOrderType::TakeProfitLimit
        )
    }
}

/// The order type as the story's `orders.type` column records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderType {
    Market,
    Limit,
    StopLoss,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::Limit => "LIMIT",
            OrderType::StopLoss => "STOP_LOSS",
        }
    }
    pub fn of(exchange_type: ExchangeOrderType) -> OrderType {
        match exchange_type {
            ExchangeOrderType::Market => OrderType::Market,
            ExchangeOrderType::StopLoss | ExchangeOrderType::StopLossLimit => OrderType::StopLoss,
            _ => OrderType::Limit,
        }
    }
}

/// Why the engine placed an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderRole {
    /// A market buy that opens a position.
    Entry,
    /// A market sell typed by the user.
    Exit,
    /// The protective stop of a position.
    StopLoss,
    /// A market sell placed because the stop would have triggered at once.
    EmergencyExit,
    /// An order of ours found on the exchange that the database lacked.
    Recovered,
}

impl OrderRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderRole::Entry => "ENTRY",
            OrderRole::Exit => "EXIT",
            OrderRole::StopLoss => "STOP_LOSS",
            OrderRole::EmergencyExit => "EMERGENCY_EXIT",
            OrderRole::Recovered => "RECOVERED",
        }
    }
    pub fn parse(text: &str) -> Option<OrderRole> {
        [OrderRole::Entry, OrderRole::Exit, OrderRole::StopLoss, OrderRole::EmergencyExit, OrderRole::Recovered]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
    /// The letter in the client order id, so the role is visible on the exchange too.
    pub fn id_letter(self) -> char {
        match self {
            OrderRole::Entry => 'E',
            OrderRole::Exit => 'X',
            OrderRole::StopLoss => 'S',
            OrderRole::EmergencyExit => 'M',
            OrderRole::Recovered => 'R',
        }
    }
}

/// Binance order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExchangeStatus {
    New,
    PendingNew,
    PartiallyFilled,
    Filled,
    Canceled,
    PendingCancel,
    Rejected,
    Expired,
    ExpiredInMatch,
}

impl ExchangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeStatus::New => "NEW",
            ExchangeStatus::PendingNew => "PENDING_NEW",
            ExchangeStatus::PartiallyFilled => "PARTIALLY_FILLED",
            ExchangeStatus::Filled => "FILLED",
            ExchangeStatus::Canceled => "CANCELED",
            ExchangeStatus::PendingCancel => "PENDING_CANCEL",
            ExchangeStatus::Rejected => "REJECTED",
            ExchangeStatus::Expired => "EXPIRED",
            ExchangeStatus::ExpiredInMatch => "EXPIRED_IN_MATCH",
        }
    }
    pub fn parse(text: &str) -> Option<ExchangeStatus> {
        [
            ExchangeStatus::New,
            ExchangeStatus::PendingNew,
            ExchangeStatus::PartiallyFilled,
            ExchangeStatus::Filled,
            ExchangeStatus::Canceled,
            ExchangeStatus::PendingCancel,
            ExchangeStatus::Rejected,
            ExchangeStatus::Expired,
            ExchangeStatus::ExpiredInMatch,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
    /// Still working on the exchange.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ExchangeStatus::New
                | ExchangeStatus::PendingNew
                | ExchangeStatus::PartiallyFilled
                | ExchangeStatus::PendingCancel
        )
    }
}

/// One trade of an order: the exchange's truth for its quantity, price and fee.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fill {
    pub price: Decimal,
    pub qty: Decimal,
    pub commission: Decimal,
    pub commission_asset: String,
    pub trade_id: i64,
    /// The order was the maker of this trade (a placement's fills are taker trades).
    #[serde(default)]
    pub is_maker: bool,
    /// Exchange time of the trade (or of the report that carried it), ms since the epoch.
    #[serde(default)]
    pub time_ms: i64,
    /// The commission valued in the symbol's quote asset when the trade was learnt: exact for
    /// a fee in the base or quote asset, at that moment's quote for a third asset (BNB).
    /// `None` until valued (the exchange I/O stage values each fill it learns).
    #[serde(default)]
    pub commission_quote: Option<Decimal>,
}

impl Fill {
    /// A trade as the exchange reports it, not valued yet.
    pub fn new(price: Decimal, qty: Decimal, commission: Decimal, commission_asset: &str, trade_id: i64) -> Fill {
        Fill {
            price,
            qty,
            commission,
            commission_asset: commission_asset.to_string(),
            trade_id,
            is_maker: false,
            time_ms: 0,
            commission_quote: None,
        }
    }

    /// Its commission in the quote asset, where the asset makes it exact (`None` for a third
    /// asset, whose value needs a quote).
    pub fn exact_commission_quote(&self, base_asset: &str, quote_asset: &str) -> Option<Decimal> {
        if self.commission_asset == quote_asset || self.commission.is_zero() {
            Some(self.commission)
        } else if self.commission_asset == base_asset {
            Some(self.commission * self.price)
        } else {
            None
        }
    }
}

/// What the exchange says about one order (a placement, query or cancel response).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderReport {
    pub symbol: String,
    pub exchange_order_id: i64,
    pub client_order_id: String,
    pub side: Side,
    pub order_type: ExchangeOrderType,
    pub status: ExchangeStatus,
    pub orig_qty: Decimal,
    pub executed_qty: Decimal,
    pub cum_quote_qty: Decimal,
    /// Limit price (zero for market orders).
    pub price: Decimal,
    /// Trigger price (zero when none).
    pub stop_price: Decimal,
    /// Trades, when the response carries them (FULL placement responses).
    pub fills: Vec<Fill>,
    /// Exchange time of the report, milliseconds since the epoch.
    pub time_ms: i64,
    /// Why the exchange expired the order (`expiryReason`, the stream's `eR`; enums.md "Expiry
    /// Reasons", e.g. `INSUFFICIENT_LIQUIDITY`), when the report says. Kept as text: Binance
    /// adds reasons, and an unknown one must not make the report unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<String>,
}

impl OrderReport {
    /// The lifecycle event this report stands for.
    pub fn lifecycle_event(&self) -> LifecycleEvent {
        match self.status {
            ExchangeStatus::New | ExchangeStatus::PendingNew | ExchangeStatus::PendingCancel => {
                if self.executed_qty > Decimal::ZERO {
                    LifecycleEvent::PartiallyFilled
                } else {
                    LifecycleEvent::Accepted
                }
            }
            ExchangeStatus::PartiallyFilled => LifecycleEvent::PartiallyFilled,
            ExchangeStatus::Filled => LifecycleEvent::Filled,
            ExchangeStatus::Canceled | ExchangeStatus::Expired | ExchangeStatus::ExpiredInMatch => {
                LifecycleEvent::Cancelled
            }
            ExchangeStatus::Rejected => LifecycleEvent::Rejected,
        }
    }

    /// Commission taken in `asset` across the report's fills.
    pub fn commission_in(&self, asset: &str) -> Decimal {
        self.fills.iter().filter(|f| f.commission_asset == asset).map(|f| f.commission).sum()
    }
}

/// One order as Genesis tracks and records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub order_id: i64,
    pub client_order_id: String,
    pub exchange_order_id: Option<i64>,
    pub position_id: Option<i64>,
    pub symbol: String,
    pub side: Side,
    pub role: OrderRole,
    pub exchange_type: ExchangeOrderType,
    pub quantity: Decimal,
    /// Limit price of a STOP_LOSS_LIMIT.
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    /// Top of book when the order was decided.
    pub expected_price: Option<Decimal>,
    /// Age of the quote `expected_price` came from at that moment, microseconds (None: no
    /// quote behind it, as a stop's price; or recorded before the field existed).
    pub expected_price_age_us: Option<u64>,
    pub filled_quantity: Decimal,
    pub cum_quote: Decimal,
    pub avg_price: Option<Decimal>,
    /// Commission in `commission_asset` (the first fee asset seen), summed over the fills in
    /// that asset. A fill whose fee is in another asset is in `fills`, never added here.
    pub commission: Decimal,
    pub commission_asset: Option<String>,
    pub status: OrderStatus,
    pub slippage_percent: Option<Decimal>,
    /// Command to verified fill, microseconds.
    pub latency_us: Option<u64>,
    pub slice_number: Option<u32>,
    pub total_slices: Option<u32>,
    /// Why the order ended as it did (cancel reason, rejection message).
    pub reason: Option<String>,
    /// Why the exchange expired it (the report's `expiryReason`), once a report said.
    pub expiry_reason: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub created_at_us: i64,
    pub executed_at_us: Option<i64>,
    pub updated_at_us: i64,
    /// The order's trades seen so far, each once (by trade id).
    pub fills: Vec<Fill>,
}

impl Order {
    /// A new PENDING order that has not left the process yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: i64,
        client_order_id: String,
        symbol: String,
        side: Side,
        role: OrderRole,
        exchange_type: ExchangeOrderType,
        quantity: Decimal,
        now_us: i64,
    ) -> Order {
        Order {
            order_id,
            client_order_id,
            exchange_order_id: None,
            position_id: None,
            symbol,
            side,
            role,
            exchange_type,
            quantity,
            limit_price: None,
            stop_price: None,
            expected_price: None,
            expected_price_age_us: None,
            filled_quantity: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            avg_price: None,
            commission: Decimal::ZERO,
            commission_asset: None,
            status: OrderStatus::Pending,
            slippage_percent: None,
            latency_us: None,
            slice_number: None,
            total_slices: None,
            reason: None,
            expiry_reason: None,
            created_at_us: now_us,
            executed_at_us: None,
            updated_at_us: now_us,
            fills: Vec::new(),
        }
    }

    pub fn order_type(&self) -> OrderType {
        OrderType::of(self.exchange_type)
    }

    /// Applies an exchange report: the transition table decides the status; fills only ever
    /// grow (a stale report never takes filled quantity back) and never exceed the quantity.
    pub fn apply_report(&mut self, report: &OrderReport, now_us: i64) -> Result<OrderStatus, TransitionError> {
        let mut event = report.lifecycle_event();
        // FILLED means the whole quantity; a report that says so with less is a partial fill.
        if event == LifecycleEvent::Filled && report.executed_qty < self.quantity {
            event = LifecycleEvent::PartiallyFilled;
        }
        let next = lifecycle::next_status(self.status, event)?;
        self.exchange_order_id = Some(report.exchange_order_id);
        // Fills only ever grow: a stale report never takes filled quantity back.
        if report.executed_qty > self.filled_quantity && report.executed_qty <= self.quantity {
            self.filled_quantity = report.executed_qty;
            if report.cum_quote_qty >= Decimal::ZERO {
                self.cum_quote = report.cum_quote_qty;
            }
            self.avg_price = average_price(self.cum_quote, self.filled_quantity);
            self.executed_at_us = Some(now_us);
        }
        self.add_fills(&report.fills, report.time_ms);
        if report.expiry_reason.is_some() {
            self.expiry_reason.clone_from(&report.expiry_reason);
        }
        self.status = next;
        self.updated_at_us = now_us;
        Ok(next)
    }

    /// Adds the trades not seen yet (by trade id); `time_ms` stands for a trade's own time
    /// where the report gave none. Returns how many were new.
    pub fn add_fills(&mut self, fills: &[Fill], time_ms: i64) -> usize {
        let mut added = 0;
        for fill in fills {
            if self.fills.iter().any(|f| f.trade_id == fill.trade_id) {
                continue;
            }
            let mut fill = fill.clone();
            if fill.time_ms == 0 {
                fill.time_ms = time_ms;
            }
            match &self.commission_asset {
                None => {
                    self.commission_asset = Some(fill.commission_asset.clone());
                    self.commission = fill.commission;
                }
                Some(asset) if *asset == fill.commission_asset => self.commission += fill.commission,
                // Another asset: kept in its fill, never summed with this one.
                Some(_) => {}
            }
            self.fills.push(fill);
            added += 1;
        }
        added
    }

    /// The quantity the trades seen so far account for.
    pub fn fills_quantity(&self) -> Decimal {
        self.fills.iter().map(|f| f.qty).sum()
    }

    /// True when the trades seen account for the whole filled quantity (a query's report
    /// carries none: its fees are unknown until the trades are read).
    pub fn fills_complete(&self) -> bool {
        self.fills_quantity() >= self.filled_quantity
    }

    /// Commission taken in `asset` across the trades seen.
    pub fn commission_in(&self, asset: &str) -> Decimal {
        self.fills.iter().filter(|f| f.commission_asset == asset).map(|f| f.commission).sum()
    }

    /// Every fee, valued in the quote asset (fills not valued yet count nothing).
    pub fn fees_in_quote(&self) -> Decimal {
        self.fills.iter().filter_map(|f| f.commission_quote).sum()
    }

    /// Moves the order by a lifecycle event that carries no report (refusal, local cancel).
    pub fn apply_event(
        &mut self,
        event: LifecycleEvent,
        reason: Option<String>,
        now_us: i64,
    ) -> Result<OrderStatus, TransitionError> {
        let next = lifecycle::next_status(self.status, event)?;
        self.status = next;
        if reason.is_some() {
            self.reason = reason;
        }
        self.updated_at_us = now_us;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn order(quantity: &str) -> Order {
        Order::new(
            1,
            "g1-E1-0-x".into(),
            "BTCUSDT".into(),
            Side::Buy,
            OrderRole::Entry,
            ExchangeOrderType::Market,
            d(quantity),
            0,
        )
    }

    fn report(status: ExchangeStatus, executed: Decimal, fills: Vec<Fill>) -> OrderReport {
        OrderReport {
            symbol: "BTCUSDT".into(),
            exchange_order_id: 7,
            client_order_id: "g1-E1-0-x".into(),
            side: Side::Buy,
            order_type: ExchangeOrderType::Market,
            status,
            orig_qty: d("1"),
            executed_qty: executed,
            cum_quote_qty: executed * d("100"),
            price: Decimal::ZERO,
            stop_price: Decimal::ZERO,
            fills,
            time_ms: 0,
            expiry_reason: None,
        }
    }

    fn fill(trade_id: i64, qty: Decimal) -> Fill {
        Fill::new(d("100"), qty, d("0.001"), "BTC", trade_id)
    }

    #[test]
    fn the_recorded_type_is_market_stop_loss_or_limit() {
        assert_eq!(OrderType::of(ExchangeOrderType::Market), OrderType::Market);
        assert_eq!(OrderType::of(ExchangeOrderType::StopLoss), OrderType::StopLoss);
        assert_eq!(OrderType::of(ExchangeOrderType::StopLossLimit), OrderType::StopLoss);
        assert_eq!(OrderType::of(ExchangeOrderType::Limit), OrderType::Limit);
        assert_eq!(OrderType::of(ExchangeOrderType::TakeProfitLimit), OrderType::Limit);
    }

    #[test]
    fn each_recorded_type_has_the_name_its_column_holds() {
        let names: Vec<_> = [OrderType::Market, OrderType::Limit, OrderType::StopLoss].map(OrderType::as_str).into();
        assert_eq!(names, ["MARKET", "LIMIT", "STOP_LOSS"]);
    }

    const ROLES: [OrderRole; 5] =
        [OrderRole::Entry, OrderRole::Exit, OrderRole::StopLoss, OrderRole::EmergencyExit, OrderRole::Recovered];

    #[test]
    fn every_role_parses_back_from_its_name() {
        for role in ROLES {
            assert_eq!(OrderRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(OrderRole::parse("entry"), None);
    }

    #[test]
    fn each_role_has_its_own_client_id_letter() {
        let letters: Vec<char> = ROLES.iter().map(|r| r.id_letter()).collect();
        assert_eq!(letters, ['E', 'X', 'S', 'M', 'R']);
    }

    #[test]
    fn an_open_report_with_nothing_executed_is_accepted() {
        let r = report(ExchangeStatus::New, d("0"), vec![]);
        assert_eq!(r.lifecycle_event(), LifecycleEvent::Accepted);
    }

    #[test]
    fn an_open_report_with_something_executed_is_a_partial_fill() {
        let r = report(ExchangeStatus::New, d("0.3"), vec![]);
        assert_eq!(r.lifecycle_event(), LifecycleEvent::PartiallyFilled);
    }

    #[test]
    fn a_repeated_report_of_the_same_fill_keeps_the_first_execution_time() {
        let mut o = order("1");
        let r = report(ExchangeStatus::Filled, d("1"), vec![]);
        o.apply_report(&r, 1).unwrap();
        o.apply_report(&r, 2).unwrap();
        assert_eq!(o.executed_at_us, Some(1));
        assert_eq!(o.updated_at_us, 2);
    }

    #[test]
    fn a_fill_reported_after_a_cancel_is_accepted() {
        let mut o = order("1");
        o.apply_report(&report(ExchangeStatus::Canceled, d("0"), vec![]), 1).unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
        o.apply_report(&report(ExchangeStatus::Filled, d("1"), vec![fill(1, d("1"))]), 2).unwrap();
        assert_eq!(o.status, OrderStatus::Filled);
        assert_eq!(o.filled_quantity, d("1"));
    }

    #[test]
    fn a_repeated_fill_report_counts_its_commission_once() {
        let mut o = order("1");
        let r = report(ExchangeStatus::Filled, d("1"), vec![fill(9, d("1"))]);
        o.apply_report(&r, 1).unwrap();
        o.apply_report(&r, 2).unwrap();
        assert_eq!(o.commission, d("0.001"));
        assert_eq!(o.filled_quantity, d("1"));
    }

    #[test]
    fn filled_with_less_than_the_quantity_is_a_partial_fill() {
        let mut o = order("1");
        assert_eq!(o.apply_report(&report(ExchangeStatus::Filled, d("0.4"), vec![]), 1), Ok(OrderStatus::Partial));
    }

    #[test]
    fn an_expiry_reason_stays_on_the_order_once_a_report_gives_it() {
        let mut o = order("1");
        let expired = OrderReport {
            expiry_reason: Some("INSUFFICIENT_LIQUIDITY".into()),
            ..report(ExchangeStatus::Expired, d("0.4"), vec![])
        };
        o.apply_report(&expired, 1).unwrap();
        assert_eq!(o.expiry_reason.as_deref(), Some("INSUFFICIENT_LIQUIDITY"));
        // A later report without one (a query's) does not take it away.
        let _ = o.apply_report(&report(ExchangeStatus::Expired, d("0.4"), vec![]), 2);
        assert_eq!(o.expiry_reason.as_deref(), Some("INSUFFICIENT_LIQUIDITY"));
    }

    #[test]
    fn average_price_is_quote_over_quantity_of_what_filled() {
        let mut o = order("1");
        o.apply_report(&report(ExchangeStatus::PartiallyFilled, d("0.5"), vec![]), 1).unwrap();
        assert_eq!(o.avg_price, Some(d("100")));
    }

    const STATUSES: [ExchangeStatus; 7] = [
        ExchangeStatus::New,
        ExchangeStatus::PartiallyFilled,
        ExchangeStatus::Filled,
        ExchangeStatus::Canceled,
        ExchangeStatus::Rejected,
        ExchangeStatus::Expired,
        ExchangeStatus::PendingCancel,
    ];

    proptest! {
        /// No sequence of exchange reports panics or corrupts an order: filled quantity never
        /// decreases nor exceeds the quantity; each trade's commission counts once; a refused
        /// transition leaves the order as it was.
        #[test]
        fn no_report_sequence_corrupts_an_order(
            reports in proptest::collection::vec((0usize..7, 0u32..=250, proptest::collection::vec(0i64..6, 0..3)), 0..40)
        ) {
            let mut o = order("1");
            let mut trades = std::collections::HashSet::new();
            for (status, hundredths, trade_ids) in reports {
                let executed = Decimal::new(i64::from(hundredths), 2);
                let fills: Vec<Fill> = trade_ids.iter().map(|&id| fill(id, d("0.01"))).collect();
                let before = o.clone();
                let result = o.apply_report(&report(STATUSES[status], executed, fills), 1);
                match result {
                    Ok(_) => {
                        for id in &trade_ids {
                            trades.insert(*id);
                        }
                    }
                    Err(_) => prop_assert_eq!(&o, &before, "a refused report changed the order"),
                }
                prop_assert!(o.filled_quantity >= before.filled_quantity, "filled went down");
                prop_assert!(o.filled_quantity <= o.quantity, "filled beyond the quantity");
                prop_assert_eq!(o.commission, d("0.001") * Decimal::from(trades.len() as u64));
                if before.status.is_terminal() && before.status != OrderStatus::Cancelled {
                    prop_assert!(o.status.is_terminal(), "{:?} went back to {:?}", before.status, o.status);
                }
            }
        }
    }
}
