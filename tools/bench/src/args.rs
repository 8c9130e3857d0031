//! The harness's flags, and the paths they resolve to.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeKind {
    /// The engine's embedded simulator.
    Sim,
    /// `genesis-exchange` on 127.0.0.1, reached over HTTP by the engine's Binance gateway.
    Binance,
}

impl ExchangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Sim => "sim",
            ExchangeKind::Binance => "binance",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
    /// The engine's default: pin from 2 cores up.
    Auto,
}

impl OnOff {
    pub fn as_str(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
            OnOff::Auto => "auto",
        }
    }
}

/// Benchmark harness: drives the real engine end to end and reports latency per stage.
#[derive(Parser, Debug, Clone)]
#[command(name = "genesis-bench", version)]
pub struct Args {
    /// Where the engine trades: its embedded simulator, or genesis-exchange over loopback HTTP.
    #[arg(long, value_enum, default_value = "sim")]
    pub exchange: ExchangeKind,
    /// Orders sent to the engine (alternating buy/sell pairs).
    #[arg(long, default_value_t = 10_000)]
    pub orders: u64,
    /// Orders per second written on a schedule; 0 writes them as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seed of the order stream and of the simulator / server.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The engine binary [default: `genesis` next to this executable].
    #[arg(long)]
    pub engine: Option<PathBuf>,
    /// The exchange server binary [default: `genesis-exchange` next to this executable].
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Directory for report.json, report.txt and latency.svg.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Bare placement + verification query pairs sent for the baseline.
    #[arg(long, default_value_t = 1000)]
    pub baseline: u64,
    /// A paced run (--rate) alternates this many blocks of the engine's orders with as many
    /// blocks of the baseline's pairs, so both see the same minutes of the machine (1: the
    /// baseline after the engine).
    #[arg(long, default_value_t = 10)]
    pub blocks: usize,
    /// Before the load: leave the started engine idle this many seconds and report its CPU time.
    #[arg(long, default_value_t = 0)]
    pub idle_secs: u64,
    /// How the engine's orders reach genesis-exchange (the engine's --transport): `rest` or
    /// `ws` (the WebSocket API). The baseline is a bare REST client either way.
    #[arg(long, default_value = "rest", value_parser = ["rest", "ws"])]
    pub transport: String,
    /// Pin the engine's hot stages to cores (the engine's --pin).
    #[arg(long, value_enum, default_value = "auto")]
    pub pin: OnOff,
    /// The engine's --spin-us: busy-wait before blocking (0: block at once, the default).
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
    /// genesis-exchange moves every price by a random step this often, milliseconds (its
    /// --walk-ms; 0: prices stand still). The quote-age target is judged at 100.
    #[arg(long, default_value_t = 0)]
    pub walk_ms: u64,
    /// Where the engine's quotes come from (its --quotes): the market stream or the REST poll.
    #[arg(long, default_value = "stream", value_parser = ["stream", "rest"])]
    pub quotes: String,
    /// Resident-memory sampling interval, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub sample_ms: u64,
    /// Give up (and kill the engine) after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

/// Paths and facts resolved once from the flags.
#[derive(Debug, Clone)]
pub struct Setup {
    pub engine: PathBuf,
    pub server: PathBuf,
}

impl Args {
    pub fn resolve(&self) -> Result<Setup, String> {
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(format!("--rate must be a finite number >= 0, got {}", self.rate));
        }
        if self.blocks == 0 {
            return Err("--blocks must be at least 1".into());
        }
        if self.orders == 0 {
            return Err("--orders must be at least 1".into());
        }
        let beside = |name: &str| -> Result<PathBuf, String> {
            let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
            Ok(exe.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name)))
        };
        let engine = match &self.engine {
            Some(p) => p.clone(),
            None => beside("genesis")?,
        };
        let server = match &self.server {
            Some(p) => p.clone(),
            None => beside("genesis-exchange")?,
        };
        if !engine.is_file() {
            return Err(format!("engine binary {} not found (build it, or pass --engine)", engine.display()));
        }
        if self.exchange == ExchangeKind::Binance && !server.is_file() {
            return Err(format!("server binary {} not found (build it, or pass --server)", server.display()));
        }
        Ok(Setup { engine, server })
    }
}
