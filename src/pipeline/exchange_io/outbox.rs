//! Everything exchange I/O tells the other stages: records for persist, events for stdout.
//!
//! Each send can wake a parked thread, and on two cores the woken thread often takes our core
//! for its whole turn (a persist commit is long, next to an order). While a sell is between its command and
//! its verified fill, the records and events of the stops it releases are held and sent right
//! after the verification query, in the order they were made (the stops' `order_cancelled`
//! still comes before the sell's `order_submitted`); docs/perf/journal.md has what it saved.
//! Nothing is held across a wait: whatever must wait (a rate limit, an unknown outcome)
//! releases what is held first.
//!
//! An order's own lines (`order_submitted`, `order_filled`) go out with what is held, from this
//! thread, before any record is handed to persist or any event to the log
//! ([`Outbox::release_with`]): the fill's line is what the user waits for.

use super::super::msg::ToPersist;
use crate::events::{Bus, Event};
use crossbeam_channel::Sender;
use std::sync::Arc;

/// One message made while holding.
enum Held {
    Record(ToPersist),
    Announce(Event),
}

pub(super) struct Outbox {
    bus: Bus,
    to_persist: Sender<ToPersist>,
    /// `Some` while holding.
    held: Option<Vec<Held>>,
}

impl Outbox {
    pub(super) fn new(bus: Bus, to_persist: Sender<ToPersist>) -> Outbox {
        Outbox { bus, to_persist, held: None }
    }

    /// A record for the database.
    pub(super) fn record(&mut self, msg: ToPersist) {
        match &mut self.held {
            Some(held) => held.push(Held::Record(msg)),
            None => {
                let _ = self.to_persist.send(msg);
            }
        }
    }

    /// An event for stdout (and the event log).
    pub(super) fn announce(&mut self, event: Event) {
        match &mut self.held {
            Some(held) => held.push(Held::Announce(event)),
            None => self.bus.publish(event),
        }
    }

    /// A one-line `error` event.
    pub(super) fn error(&mut self, text: impl Into<String>) {
        self.announce(Event::error(text))
    }

    /// From now until [`Outbox::release`], records and events wait in memory.
    pub(super) fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Puts what was held and then `lines` on stdout first (from this thread when that waits
    /// for nothing), then hands the records and the events' log entries to persist in the
    /// order they were made; stops holding.
    pub(super) fn release_with(&mut self, lines: Vec<Event>) {
        let held = self.held.take().unwrap_or_default();
        let mut shown = Vec::with_capacity(held.len() + lines.len());
        let mut then = Vec::with_capacity(held.len() + lines.len());
        for msg in held.into_iter().chain(lines.into_iter().map(Held::Announce)) {
            match msg {
                Held::Record(msg) => then.push(Err(msg)),
                Held::Announce(event) => {
                    let event = Arc::new(event);
                    shown.push(Arc::clone(&event));
                    then.push(Ok(event));
                }
            }
        }
        self.bus.show_now(&shown);
        for msg in then {
            match msg {
                Ok(event) => self.bus.log(event),
                Err(record) => {
                    let _ = self.to_persist.send(record);
                }
            }
        }
    }

    /// Sends what was held, in order, and stops holding. Cheap when nothing is held.
    pub(super) fn release(&mut self) {
        for msg in self.held.take().into_iter().flatten() {
            match msg {
                Held::Record(msg) => {
                    let _ = self.to_persist.send(msg);
                }
                Held::Announce(event) => self.bus.publish(event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crossbeam_channel::{unbounded, Receiver};

    /// An outbox whose events are also logged to persist, so one queue shows the order of both.
    fn outbox() -> (Outbox, Receiver<ToPersist>) {
        let (to_persist, persisted) = unbounded();
        let (lanes, _queues) = crate::events::stdout_lanes(16, 16);
        (Outbox::new(Bus::new(lanes, Some(to_persist.clone())), to_persist), persisted)
    }

    fn setting(value: &str) -> ToPersist {
        ToPersist::Setting { key: "k", value: value.into() }
    }

    /// What persist received, one word each: the setting's value or the event's kind.
    fn received(persisted: &Receiver<ToPersist>) -> Vec<String> {
        persisted
            .try_iter()
            .map(|m| match m {
                ToPersist::Setting { value, .. } => value,
                ToPersist::Event(e) => e.kind.to_string(),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn records_and_events_go_out_at_once_when_not_holding() {
        let (mut out, persisted) = outbox();
        out.record(setting("a"));
        out.announce(Event::new(EventKind::OrderCancelled, "x"));
        assert_eq!(received(&persisted), ["a", "order_cancelled"]);
    }

    #[test]
    fn held_messages_wait_for_release_and_keep_their_order() {
        let (mut out, persisted) = outbox();
        out.hold();
        out.record(setting("a"));
        out.announce(Event::new(EventKind::OrderCancelled, "x"));
        out.error("oops");
        out.record(setting("b"));
        assert!(received(&persisted).is_empty());
        out.release();
        assert_eq!(received(&persisted), ["a", "order_cancelled", "error", "b"]);
    }

    #[test]
    fn release_with_shows_the_held_events_then_the_lines_and_logs_them_in_order() {
        let (to_persist, persisted) = unbounded();
        let (lanes, queues) = crate::events::stdout_lanes(16, 16);
        let mut out = Outbox::new(Bus::new(lanes, Some(to_persist.clone())), to_persist);
        out.hold();
        out.announce(Event::new(EventKind::OrderCancelled, "x"));
        out.record(setting("a"));
        out.release_with(vec![Event::new(EventKind::OrderSubmitted, "y"), Event::new(EventKind::OrderFilled, "z")]);
        assert_eq!(received(&persisted), ["order_cancelled", "a", "order_submitted", "order_filled"]);
        assert_eq!(queues.take_kinds(), ["order_cancelled", "order_submitted", "order_filled"]);
        out.record(setting("b"));
        assert_eq!(received(&persisted), ["b"], "no longer holding");
    }

    #[test]
    fn after_a_release_messages_go_out_at_once_again() {
        let (mut out, persisted) = outbox();
        out.hold();
        out.release();
        out.release();
        out.record(setting("c"));
        assert_eq!(received(&persisted), ["c"]);
    }
}
