//! Exchange I/O's state, shared by intake's thread and exchange I/O's own.
//!
//! The order path runs to completion on intake's thread: intake reads the line and checks it,
//! then takes the stage's lock and runs the command through it itself ([`Shared::run`]): the
//! placement, the verification query, the fill's line on stdout. A hand-over to a parked thread
//! costs more than the order's compute (docs/perf/journal.md); the line no longer waits for
//! exchange I/O's thread to wake.
//!
//! After the fill's line, the same thread records the execution and acts on it (positions, the
//! stop-loss): nothing is handed to another thread and waited for, so the next command finds
//! every earlier one complete. Exchange I/O's own thread ([`run`]) keeps what comes from
//! elsewhere or on a clock: the user stream's reports, the watch of resting orders, re-checks of
//! unknown outcomes, protection retries, balance syncs. While it holds the lock, intake waits for it (the next line
//! waits in stdin's pipe, as it did behind the one-slot queue before). Intake's queue to this
//! stage is kept for intake's hang-up: when intake ends, this thread finishes what is in flight
//! and stops.

use super::ExchangeIo;
use crate::pipeline::msg::ToExchange;
use crossbeam_channel::{bounded, never, Receiver, RecvError, Select, Sender, TryRecvError};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Shared {
    io: Mutex<ExchangeIo>,
    /// A command run on intake's thread made timed work due sooner than exchange I/O's thread
    /// planned to wake (the first stop to watch, balances to sync after a fill): this wakes it
    /// to plan again.
    to_thread: Sender<()>,
    from_intake_thread: Receiver<()>,
}

impl Shared {
    pub fn new(io: ExchangeIo) -> Arc<Shared> {
        let (to_thread, from_intake_thread) = bounded(1);
        Arc::new(Shared { io: Mutex::new(io), to_thread, from_intake_thread })
    }

    /// Intake's thread: runs `msg` through the stage here and now.
    pub fn run(&self, msg: ToExchange) {
        let mut io = self.io.lock();
        io.on_intake(msg);
        if io.next_due() < io.thread_wakes_at {
            let _ = self.to_thread.try_send(());
        }
    }
}

/// Exchange I/O's thread: runs until intake hangs up.
pub fn run(shared: Arc<Shared>, from_intake: Receiver<ToExchange>) {
    let (mut from_stream, spin) = {
        let io = shared.io.lock();
        (io.stream.as_ref().map_or_else(never, |s| s.rx.clone()), io.spin)
    };
    loop {
        let (periodic, after_fills_due) = shared.io.lock().due_work(&from_intake);
        crate::pipeline::spin_until(spin, || !from_intake.is_empty());
        // Waits without taking: whoever holds the lock next takes the message.
        let mut select = Select::new();
        select.recv(&from_intake);
        select.recv(&from_stream);
        select.recv(&shared.from_intake_thread);
        let woken = select.ready_timeout(periodic).is_ok();
        let mut io = shared.io.lock();
        if shared.from_intake_thread.try_recv().is_ok() {
            // Planned again at the top of the loop.
            continue;
        }
        if !woken {
            io.periodic_sync(after_fills_due);
            continue;
        }
        match from_intake.try_recv() {
            Ok(msg) => io.on_intake(msg),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        match from_stream.try_recv() {
            Ok(msg) => io.on_stream_recv(Ok(msg), &mut from_stream),
            // The stream thread ends only once its link (in the stage) is dropped, after this
            // loop; only a panic in that thread could end it here (see `on_stream_recv`).
            #[cfg(not(tarpaulin_include))]
            Err(TryRecvError::Disconnected) => io.on_stream_recv(Err(RecvError), &mut from_stream),
            Err(_) => {}
        }
    }
    let mut io = shared.io.lock();
    if io.balances_dirty {
        io.sync_balances();
    }
}

impl ExchangeIo {
    /// What is due when the stage's thread wakes: the balances after fills (when idle), the
    /// watch, the re-checks. Returns how long it may then wait, and when the balances after
    /// fills were due.
    fn due_work(&mut self, from_intake: &Receiver<ToExchange>) -> (Duration, Instant) {
        // Idle: the balances after the last fills (off the order path). At most once per
        // second: `account` weighs 20, a sync per fill would eat the exchange's weight budget.
        let after_fills_due = self.last_balance_sync + super::AFTER_FILL_SYNC_GAP;
        if self.balances_dirty && from_intake.is_empty() && Instant::now() >= after_fills_due {
            self.sync_balances();
        }
        let now = Instant::now();
        if self.next_watch().is_some_and(|due| due <= now) {
            self.watch();
        }
        if self.next_recheck().is_some_and(|due| due <= now) {
            self.recheck_unresolved();
        }
        // Unprotected positions: their next protection attempt, off the order path.
        if self.next_reprotect().is_some_and(|due| due <= now) {
            self.retry_protection();
        }
        self.thread_wakes_at = self.next_due();
        (self.thread_wakes_at.saturating_duration_since(Instant::now()), after_fills_due)
    }

    /// When the next timed task is due: the balance sync, the watch, a re-check, a protection
    /// retry.
    fn next_due(&self) -> Instant {
        let sync_due = if self.balances_dirty {
            self.last_balance_sync + super::AFTER_FILL_SYNC_GAP
        } else {
            self.last_balance_sync + self.balance_sync
        };
        [self.next_watch(), self.next_recheck(), self.next_reprotect()]
            .into_iter()
            .flatten()
            .fold(sync_due, Instant::min)
    }

    /// Nothing woke the thread before the next periodic task: the balance sync, if due.
    fn periodic_sync(&mut self, after_fills_due: Instant) {
        if self.last_balance_sync.elapsed() >= self.balance_sync
            || (self.balances_dirty && Instant::now() >= after_fills_due)
        {
            self.sync_balances();
        }
    }
}
