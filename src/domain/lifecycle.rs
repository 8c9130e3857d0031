//! The order lifecycle: one transition table, in one place. Anything it does not list is
//! refused (and logged by the caller), never applied.

/// The statuses Genesis records (the story's five).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Decided, sent, or resting on the exchange with nothing filled; also "outcome unknown".
    Pending,
    /// Some quantity filled, more may come.
    Partial,
    Filled,
    /// Cancelled or expired (possibly after a partial fill: see `filled_quantity`).
    Cancelled,
    /// Refused by the exchange or never sent.
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] =
        [OrderStatus::Pending, OrderStatus::Partial, OrderStatus::Filled, OrderStatus::Cancelled, OrderStatus::Failed];
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Partial => "PARTIAL",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Failed => "FAILED",
        }
    }
    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Failed)
    }
}

/// What can happen to an order, in the past tense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// The exchange holds the order, nothing filled yet.
    Accepted,
    PartiallyFilled,
    Filled,
    /// Cancelled by us, by the exchange (expiry) or by another client; also auto-cancel of an
    /// unconfirmed order.
    Cancelled,
    /// The exchange refused it, or it could not be sent.
    Rejected,
}

impl LifecycleEvent {
    pub const ALL: [LifecycleEvent; 5] = [
        LifecycleEvent::Accepted,
        LifecycleEvent::PartiallyFilled,
        LifecycleEvent::Filled,
        LifecycleEvent::Cancelled,
        LifecycleEvent::Rejected,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::Accepted => "Accepted",
            LifecycleEvent::PartiallyFilled => "PartiallyFilled",
            LifecycleEvent::Filled => "Filled",
            LifecycleEvent::Cancelled => "Cancelled",
            LifecycleEvent::Rejected => "Rejected",
        }
    }
}

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionError {
    pub from: OrderStatus,
    pub event: LifecycleEvent,
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid transition: {} on {}", self.event.as_str(), self.from.as_str())
    }
}

impl std::error::Error for TransitionError {}

/// The transition table.
#[rustfmt::skip]
pub fn next_status(from: OrderStatus, event: LifecycleEvent) -> Result<OrderStatus, TransitionError> {
    use LifecycleEvent as E;
    use OrderStatus as S;
    let next = match (from, event) {
        (S::Pending,   E::Accepted)        => S::Pending,
        (S::Pending,   E::PartiallyFilled) => S::Partial,
        (S::Pending,   E::Filled)          => S::Filled,
        (S::Pending,   E::Cancelled)       => S::Cancelled,
        (S::Pending,   E::Rejected)        => S::Failed,
        // A late "accepted" report after a fill was seen carries no news.
        (S::Partial,   E::Accepted)        => S::Partial,
        (S::Partial,   E::PartiallyFilled) => S::Partial,
        (S::Partial,   E::Filled)          => S::Filled,
        (S::Partial,   E::Cancelled)       => S::Cancelled,
        // Repeated reports of a final state are idempotent.
        (S::Filled,    E::Filled)          => S::Filled,
        (S::Filled,    E::PartiallyFilled) => S::Filled,
        (S::Cancelled, E::Cancelled)       => S::Cancelled,
        // A fill that happened before the cancel can be reported after it.
        (S::Cancelled, E::PartiallyFilled) => S::Cancelled,
        (S::Cancelled, E::Filled)          => S::Filled,
        (S::Failed,    E::Rejected)        => S::Failed,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(next)
}

/// The whole table as text, one row per status; the test compares it with the checked-in
/// `lifecycle.txt`, so any change to the lifecycle is a readable diff.
pub fn render_table() -> String {
    let mut out = String::from("from \\ event");
    for event in LifecycleEvent::ALL {
        out.push_str(&format!(" | {}", event.as_str()));
    }
    out.push('\n');
    for from in OrderStatus::ALL {
        out.push_str(from.as_str());
        for event in LifecycleEvent::ALL {
            let cell = next_status(from, event).map(|s| s.as_str()).unwrap_or("-");
            out.push_str(&format!(" | {cell}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_matches_the_checked_in_grid() {
        assert_eq!(render_table(), include_str!("lifecycle.txt"));
    }

    #[test]
    fn terminal_states_refuse_going_back_to_pending() {
        for from in [OrderStatus::Filled, OrderStatus::Cancelled, OrderStatus::Failed] {
            assert_eq!(
                next_status(from, LifecycleEvent::Accepted),
                Err(TransitionError { from, event: LifecycleEvent::Accepted })
            );
        }
    }

    #[test]
    fn filled_cancelled_and_failed_are_terminal() {
        let terminal: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [OrderStatus::Filled, OrderStatus::Cancelled, OrderStatus::Failed]);
    }

    #[test]
    fn a_fill_after_a_cancel_is_accepted() {
        assert_eq!(next_status(OrderStatus::Cancelled, LifecycleEvent::Filled), Ok(OrderStatus::Filled));
    }

    #[test]
    fn a_failed_order_cannot_fill() {
        assert!(next_status(OrderStatus::Failed, LifecycleEvent::Filled).is_err());
    }

    #[test]
    fn transition_error_names_state_and_event() {
        let err = next_status(OrderStatus::Filled, LifecycleEvent::Rejected).unwrap_err();
        assert_eq!(err.to_string(), "invalid transition: Rejected on FILLED");
    }
}
