//! The event bus: stages publish typed events; subscribers (stdout, the database's event log)
//! are fed through their own bounded channels, so publishers never wait on rendering or I/O.

pub mod event;
mod json;
pub mod kind;
mod sink;

pub use event::Event;
pub use kind::EventKind;
pub use sink::{Format, Sink};

use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// Replies to questions: the lane a slow reader loses first.
const LOW_PRIORITY: [EventKind; 8] = [
    EventKind::Status,
    EventKind::Orders,
    EventKind::Positions,
    EventKind::Account,
    EventKind::Stats,
    EventKind::Help,
    EventKind::ConfirmSet,
    EventKind::PriceSet,
];

/// The stdout subscriber's two queues. Publishing never waits on them: when a reader is too
/// slow and a queue is full, the event is counted and the writer says how many it lost (the
/// database's event log still has every one). Order, protection and alert events ride the
/// high-priority lane, drained first.
#[derive(Clone)]
pub struct StdoutLanes {
    high: Sender<Arc<Event>>,
    low: Sender<Arc<Event>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    sink: Arc<Sink>,
}

/// The writer's side of [`StdoutLanes`].
pub struct StdoutQueues {
    high: Receiver<Arc<Event>>,
    low: Receiver<Arc<Event>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    sink: Arc<Sink>,
}

/// The two lanes, with their capacities, to the process's stdout (JSON lines; nothing is
/// written directly).
pub fn stdout_lanes(high: usize, low: usize) -> (StdoutLanes, StdoutQueues) {
    stdout_lanes_to(high, low, Sink::queued_only(Format::Json))
}

/// The two lanes, with their capacities, to `sink`.
pub fn stdout_lanes_to(high: usize, low: usize, sink: Sink) -> (StdoutLanes, StdoutQueues) {
    let (high_tx, high_rx) = crossbeam_channel::bounded(high);
    let (low_tx, low_rx) = crossbeam_channel::bounded(low);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = Arc::new(sink);
    (
        StdoutLanes { high: high_tx, low: low_tx, dropped: Arc::clone(&dropped), sink: Arc::clone(&sink) },
        StdoutQueues { high: high_rx, low: low_rx, dropped, sink },
    )
}

#[cfg(test)]
impl StdoutQueues {
    /// The kinds of the events queued for the writer, taken out, high lane first.
    pub(crate) fn take_kinds(&self) -> Vec<&'static str> {
        self.high.try_iter().chain(self.low.try_iter()).map(|e| e.kind.as_str()).collect()
    }
}

impl StdoutLanes {
    fn send(&self, event: Arc<Event>) {
        let lane = if LOW_PRIORITY.contains(&event.kind) { &self.low } else { &self.high };
        // Counted before it can be seen, so a direct write never passes it (see `Sink`).
        self.sink.queue_one();
        if let Err(e) = lane.try_send(event) {
            self.sink.done(1);
            if e.is_full() {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Writes `events` from the calling thread if nothing waits for the writer and stdout takes
    /// them now; else queues them, in order.
    fn show_now(&self, events: &[Arc<Event>]) {
        let mut lines = Vec::with_capacity(1024 * events.len());
        for event in events {
            self.sink.render(event, &mut lines);
        }
        if !self.sink.try_write_now(&lines) {
            for event in events {
                self.send(Arc::clone(event));
            }
        }
    }
}

/// The publishing side; cheap to clone, one per stage.
#[derive(Clone)]
pub struct Bus {
    to_stdout: StdoutLanes,
    to_log: Option<Sender<crate::pipeline::msg::ToPersist>>,
}

impl Bus {
    pub fn new(to_stdout: StdoutLanes, to_log: Option<Sender<crate::pipeline::msg::ToPersist>>) -> Bus {
        Bus { to_stdout, to_log }
    }

    /// Publishes to every subscriber. A subscriber that has gone away is skipped.
    pub fn publish(&self, event: Event) {
        trace(&event);
        let event = Arc::new(event);
        self.log(Arc::clone(&event));
        self.to_stdout.send(event);
    }

    /// Puts `events` on stdout, from the calling thread when that waits for nothing (see
    /// [`Sink`]), else through the writer; not into the event log: the caller hands each to
    /// [`Bus::log`] once the lines are out.
    pub fn show_now(&self, events: &[Arc<Event>]) {
        events.iter().for_each(|e| trace(e));
        self.to_stdout.show_now(events);
    }

    /// Into the database's event log only.
    pub fn log(&self, event: Arc<Event>) {
        if let Some(log) = &self.to_log {
            let _ = log.send(crate::pipeline::msg::ToPersist::Event(event));
        }
    }

    /// Publishes to stdout only (for the persist stage, which logs its own events).
    pub fn publish_stdout(&self, event: Arc<Event>) {
        self.to_stdout.send(event);
    }

    /// A one-line `error` event; `message` repeats the sentence for programs.
    pub fn error(&self, text: impl Into<String>) {
        self.publish(Event::error(text))
    }
}

/// The engine's log line for an event (debug; warnings for failures).
fn trace(event: &Event) {
    match event.kind {
        EventKind::Error | EventKind::StopLossFailed | EventKind::OrderFailed => {
            log::warn!(target: "genesis::events", "{} {}", event.client_order_id.as_deref().unwrap_or("-"), event.text)
        }
        _ => {
            log::debug!(target: "genesis::events", "{} {}", event.client_order_id.as_deref().unwrap_or("-"), event.text)
        }
    }
}

/// The stdout subscriber: renders each event on one line and writes when the queue is empty
/// (or 64 KiB are waiting), so a person sees every event at once and a pipe gets whole lines.
/// It shares stdout with the order path's direct writes (see [`Sink`]).
pub fn run_stdout_writer(queues: StdoutQueues) {
    const BATCH: usize = 64 * 1024;
    let sink = &queues.sink;
    let mut lines = Vec::with_capacity(BATCH);
    let mut events = 0u64;
    let mut reported = 0u64;
    loop {
        // High priority first; then one low-priority event at a time.
        let event = match queues.high.try_recv() {
            Ok(event) => event,
            Err(_) => crossbeam_channel::select! {
                recv(queues.high) -> e => match e { Ok(e) => e, Err(_) => match queues.low.recv() { Ok(e) => e, Err(_) => break } },
                recv(queues.low) -> e => match e { Ok(e) => e, Err(_) => match queues.high.recv() { Ok(e) => e, Err(_) => break } },
            },
        };
        sink.render(&event, &mut lines);
        events += 1;
        let idle = queues.high.is_empty() && queues.low.is_empty();
        if idle {
            let dropped = queues.dropped.load(std::sync::atomic::Ordering::Relaxed);
            if dropped > reported {
                let lost = Event::new(
                    EventKind::EventsDropped,
                    format!(
                        "{} events not shown: stdout was read too slowly (the database's event_log has them)",
                        dropped - reported
                    ),
                )
                .field("count", dropped - reported);
                sink.render(&lost, &mut lines);
                reported = dropped;
            }
        }
        if idle || lines.len() >= BATCH {
            sink.write_queued(&lines, events);
            lines.clear();
            events = 0;
        }
    }
    sink.write_queued(&lines, events);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_carry_the_message() {
        let (lanes, queues) = stdout_lanes(4, 4);
        Bus::new(lanes, None).error("unknown symbol 'XYZ'");
        let e = queues.high.recv().unwrap();
        assert_eq!(e.kind, "error");
        assert_eq!(e.fields["message"], "unknown symbol 'XYZ'");
    }

    #[test]
    fn a_full_stdout_queue_counts_the_event_instead_of_waiting() {
        let (lanes, queues) = stdout_lanes(1, 1);
        let bus = Bus::new(lanes, None);
        bus.publish(Event::new(EventKind::OrderFilled, "a"));
        bus.publish(Event::new(EventKind::OrderFilled, "b"));
        bus.publish(Event::new(EventKind::Status, "c"));
        assert_eq!(queues.high.len(), 1);
        assert_eq!(queues.low.len(), 1);
        assert_eq!(queues.dropped.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
