//! Genesis: a low-latency market-order execution engine for Binance Spot.
//!
//! ```text
//!  stdin ─► reader ─► intake ──Submit──► exchange I/O ──Executed──► verify ──records──► persist ─► SQLite
//!                       │  ▲              │  ▲     │  place, query, verified fill        │
//!                       │  └ confirmation │  │     └── HTTP (ureq) ─► Binance / simulator │
//!                       │    timer        │  └──── Verified: position, stop-loss ◄───────┘
//!                       │                 └─ watch (live tracking), reconcile (start-up)
//!                       └────────────── events (bus) ──► stdout (text or JSON lines), event_log
//! ```
//!
//! Modules in data-flow order: [`config`], [`domain`] (pure model), [`pipeline`] (the stage
//! threads), [`exchange`] (gateways), [`store`] (SQLite), [`events`] (the event bus). The README's
//! architecture section says what each stage owns and why the shape differs from the sketch.

pub mod config;
pub mod domain;
pub mod events;
pub mod exchange;
pub mod pipeline;
pub mod store;
