//! Stop-order slots per symbol, shared by intake (which refuses an entry it could not
//! protect) and exchange I/O (which opens and closes stops). Cold state: one short lock.

use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SlotCount {
    /// Our stop orders open on the exchange.
    pub open_stops: u32,
    /// Entries sent whose stop-loss is not settled yet.
    pub entries_in_flight: u32,
}

#[derive(Debug, Default)]
pub struct AlgoSlots {
    by_symbol: Mutex<HashMap<String, SlotCount>>,
}

impl AlgoSlots {
    pub fn get(&self, symbol: &str) -> SlotCount {
        self.by_symbol.lock().get(symbol).copied().unwrap_or_default()
    }

    fn update(&self, symbol: &str, change: impl FnOnce(&mut SlotCount)) {
        let mut map = self.by_symbol.lock();
        change(map.entry(symbol.to_string()).or_default());
    }

    pub fn entry_sent(&self, symbol: &str) {
        self.update(symbol, |c| c.entries_in_flight += 1)
    }

    pub fn entry_settled(&self, symbol: &str) {
        self.update(symbol, |c| c.entries_in_flight = c.entries_in_flight.saturating_sub(1))
    }

    pub fn stop_opened(&self, symbol: &str) {
        self.update(symbol, |c| c.open_stops += 1)
    }

    pub fn stop_closed(&self, symbol: &str) {
        self.update(symbol, |c| c.open_stops = c.open_stops.saturating_sub(1))
    }

    /// True when one more entry could still get its stop-loss under `max` open stops, with
    /// `positions_needing_stops` open positions on the symbol (protected or not: an unprotected
    /// one will take its slot back when its stop is retried).
    pub fn has_room(&self, symbol: &str, max: Option<u32>, positions_needing_stops: u32) -> bool {
        match max {
            None => true,
            Some(max) => {
                let c = self.get(symbol);
                c.open_stops.max(positions_needing_stops) + c.entries_in_flight < max
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_flight_count_against_the_algo_limit() {
        let slots = AlgoSlots::default();
        slots.stop_opened("BTCUSDT");
        slots.entry_sent("BTCUSDT");
        assert!(!slots.has_room("BTCUSDT", Some(2), 1));
        slots.entry_settled("BTCUSDT");
        assert!(slots.has_room("BTCUSDT", Some(2), 1));
        assert!(slots.has_room("ETHUSDT", Some(1), 0));
        assert!(slots.has_room("BTCUSDT", None, 9));
    }

    #[test]
    fn positions_whose_stops_were_cancelled_still_count_against_the_algo_limit() {
        let slots = AlgoSlots::default();
        assert!(!slots.has_room("BTCUSDT", Some(5), 5), "five positions need five stops");
        assert!(slots.has_room("BTCUSDT", Some(5), 4));
    }

    #[test]
    fn counts_never_go_below_zero() {
        let slots = AlgoSlots::default();
        slots.stop_closed("BTCUSDT");
        slots.entry_settled("BTCUSDT");
        assert_eq!(slots.get("BTCUSDT"), SlotCount::default());
    }
}
