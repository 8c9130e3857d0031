//! Genesis: a low-latency market-order execution engine for Binance Spot.
//!
//! ```text
//!  stdin ─► intake ──Submit──► exchange I/O ──Executed──► verify ──Record──► persist ─► SQLite
//!             │  ▲                 ▲    │                    │
//!             │  └─ confirmation   │    └── HTTP (ureq) ─► Binance / simulator
//!             │     timer          └──── Verified (stop-loss, positions) ◄┘
//!             └──────────────── events ──► stdout (text or JSON lines)
//! ```
//!
//! Modules in data-flow order: [`config`], [`domain`] (pure model), [`pipeline`] (the stage
//! threads), [`exchange`] (gateways), [`store`] (SQLite), [`events`] (the event bus).

pub mod config;
pub mod domain;
pub mod events;
pub mod exchange;
pub mod pipeline;
pub mod store;
