//! Where each thread runs: its core (`--pin`) and its scheduling policy.
//!
//! Owns the plan (the order path on the last core, background threads on the first; the
//! layout's reasons are where `run` spawns the stages) and the check that it was carried out.
//! Each thread pins itself first thing, through a hook made here, and reports; the spawner
//! waits for the reports ([`Placement::confirm`]) before the engine takes a command. With
//! `--pin on` a thread that cannot be pinned does not run, and the start fails naming it and
//! its core; with `auto` it only warns and runs unpinned. The system calls are in [`crate::os`].

use super::RunError;
use crate::config::Pinning;
use crate::os::{self, Policy};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A thread's pinning failed under `--pin on`: the message names the thread and the core.
type Report = Result<(), String>;

/// The cores of the plan, and the reports of the threads pinned to them.
#[derive(Clone)]
pub struct Placement {
    /// `--pin on`: a thread that cannot be pinned fails the start.
    required: bool,
    /// Intake and exchange I/O.
    pub order_path: Option<usize>,
    /// Persist, the checkpoint, the user stream and the quote poller.
    pub background: Option<usize>,
    to_confirm: Sender<Report>,
    from_pinned: Receiver<Report>,
    /// Hooks made; each reports once (or is dropped unrun, which counts as a report).
    issued: Arc<AtomicUsize>,
    /// Reports taken by `confirm`.
    confirmed: Arc<AtomicUsize>,
}

impl Placement {
    /// The plan for `pin`. Read before any thread is pinned: a pinned thread's view is its own
    /// core only. `on` fails when the cores cannot be read.
    pub fn plan(pin: Pinning) -> Result<Placement, RunError> {
        let cores = match pin {
            Pinning::Off => Vec::new(),
            Pinning::Auto if std::thread::available_parallelism().map_or(true, |n| n.get() < 2) => Vec::new(),
            Pinning::Auto => os::allowed_cores().unwrap_or_else(|e| {
                log::warn!("--pin auto: cannot read this process's cores ({e}); running unpinned");
                Vec::new()
            }),
            Pinning::On => match os::allowed_cores() {
                Ok(cores) if !cores.is_empty() => cores,
                Ok(_) => return Err(RunError::Thread("--pin on: this process may run on no core".into())),
                Err(e) => return Err(RunError::Thread(format!("--pin on: cannot read this process's cores: {e}"))),
            },
        };
        Ok(Placement::on(
            pin == Pinning::On,
            cores.last().copied(),
            if cores.len() >= 2 { cores.first().copied() } else { None },
        ))
    }

    fn on(required: bool, order_path: Option<usize>, background: Option<usize>) -> Placement {
        let (to_confirm, from_pinned) = unbounded();
        Placement {
            required,
            order_path,
            background,
            to_confirm,
            from_pinned,
            issued: Arc::default(),
            confirmed: Arc::default(),
        }
    }

    /// What `name`'s thread runs first: pins it to `core` (none: stays unpinned) and reports.
    /// False: the pin was required and failed, so the thread must not run its stage.
    pub fn hook(&self, name: &'static str, core: Option<usize>) -> impl FnOnce() -> bool + Send + 'static {
        self.issued.fetch_add(1, Ordering::SeqCst);
        let mut report = Reporter { to_confirm: Some(self.to_confirm.clone()) };
        let required = self.required;
        move || {
            let Some(core) = core else {
                report.send(Ok(()));
                return true;
            };
            match os::pin_to(core) {
                Ok(()) => {
                    log::debug!("{name} pinned to core {core}");
                    report.send(Ok(()));
                    true
                }
                Err(e) if required => {
                    let message = format!("--pin on: could not pin the {name} thread to core {core}: {e}");
                    log::error!("{message}");
                    report.send(Err(message));
                    false
                }
                Err(e) => {
                    log::warn!("{name}: could not pin to core {core} ({e}); running unpinned");
                    report.send(Ok(()));
                    true
                }
            }
        }
    }

    /// Waits for every hook made so far to report; the first failure fails the start.
    pub fn confirm(&self) -> Result<(), RunError> {
        let mut failed = None;
        while self.confirmed.load(Ordering::SeqCst) < self.issued.load(Ordering::SeqCst) {
            // A report is always sent (see `Reporter`), and `self` holds a sender.
            let report = self.from_pinned.recv().unwrap_or(Ok(()));
            self.confirmed.fetch_add(1, Ordering::SeqCst);
            if let (Err(e), None) = (report, &failed) {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), |e| Err(RunError::Thread(e)))
    }
}

/// Sends a hook's report once; a hook dropped unrun (its thread never started: that error is
/// the spawner's) reports success, so `confirm` never waits for it.
struct Reporter {
    to_confirm: Option<Sender<Report>>,
}

impl Reporter {
    fn send(&mut self, report: Report) {
        if let Some(to_confirm) = self.to_confirm.take() {
            let _ = to_confirm.send(report);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.send(Ok(()));
    }
}

/// Puts the calling thread in `SCHED_BATCH`: the same share of the CPU, but its wake-ups never
/// preempt the thread that is running. Exchange I/O runs this way. Woken by intake, it used
/// to preempt intake before intake reached its `poll`. So it sent the order while intake was
/// still runnable on its core, and the kernel's same-core hand-off for the socket wake-up
/// (it needs the waker to be alone on its core) failed. The exchange's thread then woke on
/// the other core, and a placement that crosses cores is slower. In `SCHED_BATCH`, intake blocks
/// first (a short wait), and nearly every placement stays on one core (figures:
/// docs/perf/journal.md, "exchange I/O in `SCHED_BATCH`"). Never fails the start.
pub fn no_wakeup_preemption(name: &str) {
    set_policy(name, Policy::Batch);
}

/// Puts the calling thread in `SCHED_IDLE`: it runs only when nothing else on its core wants to,
/// and any other thread's wake-up preempts it at once. Persist and the WAL checkpoint run this
/// way over HTTP. In `SCHED_OTHER` a thread woken behind a commit waited for the commit's turn
/// to end, and the threads woken on the background core are the ones that answer or feed the
/// order path: the user stream, the quote poller, and on loopback the exchange server's own
/// threads. Not with the embedded simulator: there persist is what limits a flood, and idle it
/// fell behind (figures: docs/perf/journal.md, "persist and the checkpoint in `SCHED_IDLE`").
/// Never fails the start.
pub fn yield_to_everything(name: &str) {
    set_policy(name, Policy::Idle);
}

/// Switches the calling thread to a non-real-time `policy`; a refusal is logged, not fatal.
fn set_policy(name: &str, policy: Policy) {
    match os::set_policy(policy) {
        Ok(()) => log::debug!("{name} runs in {}", policy.as_str()),
        // Elsewhere than Linux the policies do not exist: nothing to say.
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
        Err(e) => log::warn!("{name}: could not switch to {}: {e}", policy.as_str()),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The policy of a new thread after it calls `switch`.
    fn policy_after(switch: fn(&str)) -> Policy {
        std::thread::spawn(move || {
            switch("test");
            os::policy().unwrap()
        })
        .join()
        .unwrap()
    }

    /// A core no machine this runs on has: pinning to it fails.
    const MISSING_CORE: usize = libc::CPU_SETSIZE as usize - 1;

    /// Runs `name`'s hook for `core` on a new thread; true: the thread would run its stage.
    fn run_hook(placement: &Placement, name: &'static str, core: Option<usize>) -> bool {
        let hook = placement.hook(name, core);
        std::thread::spawn(hook).join().unwrap()
    }

    #[test]
    fn a_thread_without_wakeup_preemption_runs_in_sched_batch() {
        assert_eq!(policy_after(no_wakeup_preemption), Policy::Batch);
    }

    #[test]
    fn a_thread_that_yields_to_everything_runs_in_sched_idle() {
        assert_eq!(policy_after(yield_to_everything), Policy::Idle);
    }

    #[test]
    fn other_threads_keep_the_normal_policy() {
        std::thread::spawn(|| no_wakeup_preemption("test")).join().unwrap();
        assert_eq!(os::policy().unwrap(), Policy::Normal);
    }

    #[test]
    fn pin_off_plans_no_core() {
        let placement = Placement::plan(Pinning::Off).unwrap();
        assert_eq!((placement.order_path, placement.background), (None, None));
    }

    #[test]
    fn pin_on_puts_the_order_path_on_the_last_core_and_the_background_on_the_first() {
        let cores = os::allowed_cores().unwrap();
        let placement = Placement::plan(Pinning::On).unwrap();
        assert_eq!(placement.order_path, cores.last().copied());
        assert_eq!(placement.background, if cores.len() >= 2 { cores.first().copied() } else { None });
    }

    #[test]
    fn a_required_pin_that_works_lets_the_thread_run_and_the_start_go_on() {
        let placement = Placement::plan(Pinning::On).unwrap();
        assert!(run_hook(&placement, "intake", placement.order_path));
        assert!(placement.confirm().is_ok());
    }

    #[test]
    fn a_required_pin_that_cannot_be_done_stops_the_thread_and_fails_the_start_naming_both() {
        let placement = Placement::on(true, Some(MISSING_CORE), None);
        assert!(!run_hook(&placement, "exchange-io", Some(MISSING_CORE)));
        let error = placement.confirm().unwrap_err().to_string();
        assert!(error.contains("the exchange-io thread") && error.contains(&format!("core {MISSING_CORE}")), "{error}");
    }

    #[test]
    fn an_automatic_pin_that_cannot_be_done_only_warns() {
        let placement = Placement::on(false, Some(MISSING_CORE), None);
        assert!(run_hook(&placement, "intake", Some(MISSING_CORE)));
        assert!(placement.confirm().is_ok());
    }

    #[test]
    fn a_thread_without_a_core_runs_unpinned() {
        let placement = Placement::on(true, None, None);
        assert!(run_hook(&placement, "stdout", None));
        assert!(placement.confirm().is_ok());
    }

    #[test]
    fn a_hook_whose_thread_never_started_does_not_hold_up_the_start() {
        let placement = Placement::on(true, Some(MISSING_CORE), None);
        drop(placement.hook("persist", Some(MISSING_CORE)));
        assert!(placement.confirm().is_ok());
    }

    #[test]
    fn every_failure_is_confirmed_once_and_the_first_is_the_one_reported() {
        let placement = Placement::on(true, Some(MISSING_CORE), None);
        run_hook(&placement, "record", Some(MISSING_CORE));
        run_hook(&placement, "intake", Some(MISSING_CORE));
        assert!(placement.confirm().unwrap_err().to_string().contains("record"));
        assert!(placement.confirm().is_ok(), "reports already taken are not taken again");
    }
}
