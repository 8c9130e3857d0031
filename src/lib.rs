//! Genesis: a low-latency market-order execution engine for Binance Spot.
//!
//! ```text
//!  stdin ─► intake ──Submit──► exchange I/O ──Executed──► verify ──records──► persist ─► SQLite
//!             │  ▲              │  ▲     │  place, query, verified fill        │
//!             │  └ confirmation │  │     └── HTTP (ureq) ─► Binance / simulator │
//!             │    timer        │  └──── Verified: position, stop-loss ◄───────┘
//!             │                 └─ watch (live tracking), reconcile (start-up)
//!             └────────────── events (bus) ──► stdout (text or JSON lines), event_log
//! ```
//!
//! Intake reads stdin itself: one `poll(2)` waits on stdin, the signal pipe and intake's
//! timers, so no thread stands between a typed line and intake.
//!
//! Modules in data-flow order: [`config`], [`domain`] (pure model), [`pipeline`] (the stage
//! threads), [`exchange`] (gateways), [`store`] (SQLite), [`events`] (the event bus).
//! `docs/architecture.md` says what each stage owns and why the shape differs from the sketch.

pub mod config;
pub mod domain;
pub mod events;
pub mod exchange;
pub mod pipeline;
pub mod store;
