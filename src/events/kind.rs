//! The `event` of every line on stdout: the stdout contract, in one place. The strings are
//! binding (scripts read them; `../shared/contract-check` checks them): a kind may be added,
//! never renamed.

/// What an event says happened; [`EventKind::as_str`] is its `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    // Orders.
    ConfirmRequest,
    OrderSubmitted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderUnverified,
    OrderRejected,
    OrderFailed,
    OrderCancelled,
    OrderUnknown,
    OrderResolved,
    CancelAll,
    // Protection and positions.
    StopLossPlaced,
    StopLossFailed,
    StopLossTriggered,
    EmergencyExit,
    PositionClosed,
    PositionDust,
    // Alerts and guards.
    SlippageAlert,
    CircuitBreaker,
    TiltChanged,
    Halted,
    Resumed,
    RateLimited,
    // Replies to questions and settings.
    Status,
    Orders,
    Positions,
    Account,
    Stats,
    Help,
    ConfirmSet,
    PriceSet,
    DatabaseOk,
    // The engine.
    Ready,
    Reconciling,
    Reconciled,
    ShuttingDown,
    Stopped,
    EventsDropped,
    Error,
}

impl EventKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [EventKind; 39] = [
        EventKind::ConfirmRequest,
        EventKind::OrderSubmitted,
        EventKind::OrderFilled,
        EventKind::OrderPartiallyFilled,
        EventKind::OrderUnverified,
        EventKind::OrderRejected,
        EventKind::OrderFailed,
        EventKind::OrderCancelled,
        EventKind::OrderUnknown,
        EventKind::OrderResolved,
        EventKind::CancelAll,
        EventKind::StopLossPlaced,
        EventKind::StopLossFailed,
        EventKind::StopLossTriggered,
        EventKind::EmergencyExit,
        EventKind::PositionClosed,
        EventKind::PositionDust,
        EventKind::SlippageAlert,
        EventKind::CircuitBreaker,
        EventKind::TiltChanged,
        EventKind::Halted,
        EventKind::Resumed,
        EventKind::RateLimited,
        EventKind::Status,
        EventKind::Orders,
        EventKind::Positions,
        EventKind::Account,
        EventKind::Stats,
        EventKind::Help,
        EventKind::ConfirmSet,
        EventKind::PriceSet,
        EventKind::DatabaseOk,
        EventKind::Ready,
        EventKind::Reconciling,
        EventKind::Reconciled,
        EventKind::ShuttingDown,
        EventKind::Stopped,
        EventKind::EventsDropped,
        EventKind::Error,
    ];

    /// The `event` field of its lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::ConfirmRequest => "confirm_request",
            EventKind::OrderSubmitted => "order_submitted",
            EventKind::OrderFilled => "order_filled",
            EventKind::OrderPartiallyFilled => "order_partially_filled",
            EventKind::OrderUnverified => "order_unverified",
            EventKind::OrderRejected => "order_rejected",
            EventKind::OrderFailed => "order_failed",
            EventKind::OrderCancelled => "order_cancelled",
            EventKind::OrderUnknown => "order_unknown",
            EventKind::OrderResolved => "order_resolved",
            EventKind::CancelAll => "cancel_all",
            EventKind::StopLossPlaced => "stop_loss_placed",
            EventKind::StopLossFailed => "stop_loss_failed",
            EventKind::StopLossTriggered => "stop_loss_triggered",
            EventKind::EmergencyExit => "emergency_exit",
            EventKind::PositionClosed => "position_closed",
            EventKind::PositionDust => "position_dust",
            EventKind::SlippageAlert => "slippage_alert",
            EventKind::CircuitBreaker => "circuit_breaker",
            EventKind::TiltChanged => "tilt_changed",
            EventKind::Halted => "halted",
            EventKind::Resumed => "resumed",
            EventKind::RateLimited => "rate_limited",
            EventKind::Status => "status",
            EventKind::Orders => "orders",
            EventKind::Positions => "positions",
            EventKind::Account => "account",
            EventKind::Stats => "stats",
            EventKind::Help => "help",
            EventKind::ConfirmSet => "confirm_set",
            EventKind::PriceSet => "price_set",
            EventKind::DatabaseOk => "database_ok",
            EventKind::Ready => "ready",
            EventKind::Reconciling => "reconciling",
            EventKind::Reconciled => "reconciled",
            EventKind::ShuttingDown => "shutting_down",
            EventKind::Stopped => "stopped",
            EventKind::EventsDropped => "events_dropped",
            EventKind::Error => "error",
        }
    }
}

impl std::fmt::Display for EventKind {
    /// The `event` string; width and alignment apply (the text lines pad it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Tests and readers compare with the contract's strings.
impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract: changing a line here is a breaking change for every script reading stdout.
    const CONTRACT: &str = "\
confirm_request
order_submitted
order_filled
order_partially_filled
order_unverified
order_rejected
order_failed
order_cancelled
order_unknown
order_resolved
cancel_all
stop_loss_placed
stop_loss_failed
stop_loss_triggered
emergency_exit
position_closed
position_dust
slippage_alert
circuit_breaker
tilt_changed
halted
resumed
rate_limited
status
orders
positions
account
stats
help
confirm_set
price_set
database_ok
ready
reconciling
reconciled
shutting_down
stopped
events_dropped
error";

    #[test]
    fn every_kind_says_its_contract_string() {
        let said: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(said, CONTRACT.lines().collect::<Vec<_>>());
    }

    #[test]
    fn no_two_kinds_share_a_string() {
        let mut said: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        said.sort_unstable();
        said.dedup();
        assert_eq!(said.len(), EventKind::ALL.len());
    }

    #[test]
    fn a_kind_pads_like_its_string_and_equals_it() {
        assert_eq!(format!("{:<8}|", EventKind::Ready), "ready   |");
        assert!(EventKind::OrderFilled == "order_filled");
    }
}
