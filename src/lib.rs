//! Genesis: a low-latency market-order execution engine for Binance Spot.
//!
//! ```text
//!  stdin ─► intake thread: parse · checks · confirm · sign ─► place ─► query ─► verified fill ─► stdout: order_filled
//!             (runs exchange I/O's stage itself, under its lock)          │  HTTP (ureq) ─► Binance / simulator
//!             then, same thread: record · open position · stop-loss ◄────┘
//!                                    └─► persist ─► SQLite
//!             exchange I/O's own thread: watch (live tracking), user stream, re-checks,
//!             protection retries, balance syncs; reconcile (start-up)
//!             events (bus) ──► stdout writer (text or JSON lines), event_log
//! ```
//!
//! Intake reads stdin itself (one `poll(2)` waits on stdin, the signal pipe and intake's timers)
//! and runs the order path to completion on its thread, through exchange I/O's stage: the fill's
//! line is on stdout before the execution is recorded, the stop-loss request leaves or any record
//! reaches persist; then the same thread records the execution and protects the position.
//!
//! Modules in data-flow order: [`config`], [`domain`] (pure model), [`pipeline`] (the stage
//! threads), [`exchange`] (gateways), [`store`] (SQLite), [`events`] (the event bus).
//! `docs/architecture.md` says what each stage owns and why the shape differs from the sketch.
//! [`os`] holds every system call that needs `unsafe`; nothing else may use it.

#![deny(unsafe_code)]

pub mod config;
pub mod domain;
pub mod events;
pub mod exchange;
#[allow(unsafe_code)]
pub mod os;
pub mod pipeline;
pub mod store;
