//! One integration test binary: drives the real executables through stdin and reads their
//! stdout and database.

mod support;

mod crash;
mod engine_binance;
mod engine_risk;
mod engine_sim;
mod live_tracking;
mod market_stream;
mod protection;
mod reconcile;
mod shutdown;
mod slippage;
mod startup;
mod ws_ed25519;
mod ws_transport;
