//! Every flag, limit and default in one typed place.

use crate::domain::money::Decimal;
use crate::domain::risk::{RiskLimits, Tier};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeKind {
    /// The embedded Binance-like simulator (no keys, no network).
    Sim,
    /// Binance Spot REST (testnet by default; production needs --live).
    Binance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// How orders reach Binance (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Transport {
    /// REST, one keep-alive HTTP connection: the proven path, and the default.
    #[default]
    Rest,
    /// The WebSocket API (`order.place`, `order.status`, `order.cancel`, `openOrders.cancelAll`,
    /// `order.cancelReplace`) over one connection, HMAC-signed; the other reads stay on REST.
    /// Opt-in until its latency is measured against REST's.
    Ws,
}

/// Where Binance quotes come from (`--quotes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum QuoteSource {
    /// The bookTicker market stream; REST while it is down or stale.
    #[default]
    Stream,
    /// The REST poll alone.
    Rest,
}

/// Core pinning of the hot stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pinning {
    On,
    Off,
    /// Pin wherever there are two cores or more (the order path shares one core; see
    /// `pipeline::run`).
    Auto,
}

/// Genesis: market orders on Binance Spot, confirmed, verified, protected, logged.
///
/// Commands on stdin (buy SYMBOL QTY, sell SYMBOL QTY, y, n, confirm ID, reject ID, status ID,
/// orders, positions, cancel-all, confirm on|off, help, quit); events on stdout.
#[derive(Debug, Clone, Parser)]
#[command(name = "genesis", version, about, long_about = None)]
pub struct Cli {
    /// Which exchange to trade on.
    #[arg(long, value_enum, default_value = "sim")]
    pub exchange: ExchangeKind,
    /// SQLite database file (the simulator keeps its state beside it).
    #[arg(long, default_value = "./genesis.db")]
    pub db: PathBuf,
    /// Execute without asking for confirmation (overrides the stored preference for this run).
    #[arg(long)]
    pub no_confirm: bool,
    /// Seconds to wait for a confirmation before the order is auto-cancelled.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub confirm_timeout: u64,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Log lines (stderr) as JSON objects.
    #[arg(long)]
    pub log_json: bool,
    /// Simulator seed (deterministic books, fills and faults).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Binance base URL (with --exchange binance). Production needs --live.
    #[arg(long, default_value = "https://testnet.binance.vision", value_name = "URL")]
    pub base_url: String,
    /// Allow the production exchange (real money).
    #[arg(long)]
    pub live: bool,
    /// Binance: TCP connect + TLS handshake timeout, milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub connect_timeout_ms: u64,
    /// Binance: timeout of each send/receive phase of a request, milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub read_timeout_ms: u64,
    /// Binance: how often the top of book of traded symbols is refreshed, milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub quote_refresh_ms: u64,
    /// Binance: where the top of book comes from. `stream` (the default): one combined
    /// bookTicker market stream, with the REST poll as its fallback while it is down or stale;
    /// `rest`: the poll alone, every --quote-refresh-ms.
    #[arg(long, value_enum, default_value = "stream", value_name = "stream|rest")]
    pub quotes: QuoteSource,
    /// Longest Retry-After (429) an entry waits before it fails, milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub max_entry_retry_wait_ms: u64,
    /// TOML file with limits and defaults; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Account tier: SNIPER, HUNTER or STRATEGIST (saved in the database) [default: saved, else SNIPER].
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
    /// An entry may be worth at most this percentage of equity [default: 5].
    #[arg(long, value_name = "PCT")]
    pub max_position_pct: Option<Decimal>,
    /// Smallest entry in the quote asset (USD) [default: 10].
    #[arg(long, value_name = "USD")]
    pub min_order_usd: Option<Decimal>,
    /// Net realized loss per UTC day that stops new entries, for the account's tier [default: 25 for SNIPER].
    #[arg(long, value_name = "USD")]
    pub daily_loss_limit: Option<Decimal>,
    /// Stop-loss distance below the average entry price, percent [default: 2].
    #[arg(long, value_name = "PCT")]
    pub stop_loss_pct: Option<Decimal>,
    /// Gap between a STOP_LOSS_LIMIT's stop and its limit price, percent [default: 0.5].
    #[arg(long, value_name = "PCT")]
    pub stop_limit_gap_pct: Option<Decimal>,
    /// Adverse slippage above this percentage raises a slippage_alert [default: 0.5].
    #[arg(long, value_name = "PCT")]
    pub slippage_alert_pct: Option<Decimal>,
    /// The tilt guard (cooldowns after losing streaks or order bursts) [default: on].
    #[arg(long, value_enum, value_name = "on|off")]
    pub tilt: Option<OnOff>,
    /// Our resting orders (stop-losses) are polled this often, milliseconds (every 1 s at most
    /// while the user data stream is up: the stream is the fast path, the poll its check).
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub watch_ms: u64,
    /// Binance: the user data stream of the WebSocket API (push of order changes), beside the poll.
    #[arg(long, value_enum, default_value = "on", value_name = "on|off")]
    pub stream: OnOff,
    /// Binance: how orders are placed, queried and cancelled. `rest` (the default) is the
    /// proven path; `ws` (the WebSocket API, one signed connection) is opt-in until measured.
    #[arg(long, value_enum, default_value = "rest", value_name = "rest|ws")]
    pub transport: Transport,
    /// Binance, `--transport ws`: an Ed25519 private key (PKCS#8 PEM, readable by its owner
    /// only) that logs the WebSocket API session on; its API key comes from
    /// BINANCE_ED25519_API_KEY. Without it, each WebSocket request is HMAC-signed.
    #[arg(long, env = "BINANCE_ED25519_KEY_FILE", value_name = "PATH")]
    pub ed25519_key_file: Option<std::path::PathBuf>,
    /// Simulator: prices take a seeded random-walk step this often, milliseconds (0: never).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub sim_walk_ms: u64,
    /// Balances are synced from the exchange at start, after fills and this often, seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub balance_sync_secs: u64,
    /// Pin the order path (intake, exchange I/O) to one core and background threads to
    /// another: on (a thread that cannot be pinned fails the start), off, or auto (with 2 cores
    /// or more; a refused pin is only a warning).
    #[arg(long, value_enum, default_value = "auto")]
    pub pin: Pinning,
    /// Exchange I/O busy-waits this long for the next message before blocking; for dedicated
    /// cores only: it trades CPU for the 13-60 µs a parked thread takes to wake.
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub spin_us: u64,
    /// Simulator: simulated exchange round trip, microseconds.
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub sim_latency_us: u64,
    /// Simulator: fills priced this many basis points worse than the book.
    #[arg(long, default_value_t = 0, value_name = "BPS")]
    pub sim_slippage_bps: u32,
    /// Simulator: probability that a market order fills only partly (0..1).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub sim_partial_fill_prob: f64,
    /// Simulator: probability that an order is rejected (0..1).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub sim_reject_prob: f64,
}

/// The engine's settings, derived from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub exchange: ExchangeKind,
    pub db: PathBuf,
    /// `Some(false)` when --no-confirm was given; `None` leaves it to the stored preference.
    pub confirm_override: Option<bool>,
    pub confirm_timeout: Duration,
    pub json: bool,
    pub log_json: bool,
    pub seed: u64,
    pub stop_loss_pct: Decimal,
    pub stop_limit_gap_pct: Decimal,
    pub slippage_alert_pct: Decimal,
    /// `--tier`, when given (else the saved tier, else SNIPER).
    pub tier: Option<Tier>,
    pub limits: RiskLimits,
    /// `--daily-loss-limit`: overrides the limit of the account's tier.
    pub daily_loss_limit_override: Option<Decimal>,
    pub balance_sync: Duration,
    pub watch_interval: Duration,
    /// `--stream`: subscribe to the user data stream (binance only).
    pub stream: bool,
    /// `--transport`: REST or the WebSocket API for orders (binance only).
    pub transport: Transport,
    /// `--ed25519-key-file`: logs the WebSocket API session on (binance, `--transport ws`).
    pub ed25519_key_file: Option<std::path::PathBuf>,
    pub sim_walk: Option<Duration>,
    pub base_url: String,
    pub live: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub quote_refresh: Duration,
    /// `--quotes`: the market stream (with REST as its fallback) or REST alone (binance only).
    pub quotes: QuoteSource,
    pub max_entry_retry_wait: Duration,
    /// `--pin`; `pipeline::placement` turns it into cores.
    pub pin: Pinning,
    pub spin: Duration,
    pub sim_latency_us: u64,
    pub sim_slippage_bps: u32,
    pub sim_partial_fill_prob: f64,
    pub sim_reject_prob: f64,
    /// Stop-loss placement attempts before the position is flagged UNPROTECTED.
    pub stop_loss_attempts: u32,
    /// Capacity of each channel between stages.
    pub channel_capacity: usize,
}

/// A flag value outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn percent(name: &str, value: Decimal) -> Result<Decimal, ConfigError> {
    if value <= Decimal::ZERO || value >= Decimal::ONE_HUNDRED {
        return Err(ConfigError(format!("--{name} must be between 0 and 100 (exclusive), got {value}")));
    }
    Ok(value)
}

fn probability(name: &str, value: f64) -> Result<f64, ConfigError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(ConfigError(format!("--{name} must be between 0 and 1, got {value}")));
    }
    Ok(value)
}

/// The `--config` TOML file: every limit and default, any subset.
///
/// ```toml
/// tier = "SNIPER"
/// stop_loss_pct = 2
/// stop_limit_gap_pct = 0.5
/// slippage_alert_pct = 0.5
/// [risk]
/// max_position_pct = 5
/// min_order_usd = 10
/// [risk.daily_loss_limit]
/// sniper = 25
/// hunter = 100
/// strategist = 500
/// [risk.tilt]
/// enabled = true
/// losing_streak = 3
/// streak_window_secs = 1800
/// burst_orders = 5
/// burst_window_secs = 10
/// cooldown_secs = 900
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub tier: Option<String>,
    #[serde(deserialize_with = "crate::domain::risk::opt_decimal_from_number_or_string")]
    pub stop_loss_pct: Option<Decimal>,
    #[serde(deserialize_with = "crate::domain::risk::opt_decimal_from_number_or_string")]
    pub stop_limit_gap_pct: Option<Decimal>,
    #[serde(deserialize_with = "crate::domain::risk::opt_decimal_from_number_or_string")]
    pub slippage_alert_pct: Option<Decimal>,
    pub risk: RiskLimits,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }
}

/// Production hosts: trading there is real money and needs `--live`.
const PRODUCTION_HOSTS: [&str; 6] = [
    "api.binance.com",
    "api-gcp.binance.com",
    "api1.binance.com",
    "api2.binance.com",
    "api3.binance.com",
    "api4.binance.com",
];

/// Refuses a malformed base URL, and the production exchange without `--live`.
pub fn checked_base_url(url: &str, live: bool) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ConfigError(format!("--base-url must start with http:// or https://, got '{url}'")))?;
    let host = rest.split(['/', ':']).next().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() {
        return Err(ConfigError(format!("--base-url has no host: '{url}'")));
    }
    if PRODUCTION_HOSTS.contains(&host.as_str()) && !live {
        return Err(ConfigError(format!(
            "--base-url {url} is the production exchange (real money): add --live to trade there"
        )));
    }
    Ok(url.to_string())
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        if cli.confirm_timeout == 0 {
            return Err(ConfigError("--confirm-timeout must be at least 1 second".into()));
        }
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let tier = match cli.tier.clone().or(file.tier.clone()) {
            Some(text) => Some(Tier::parse(&text).ok_or_else(|| {
                ConfigError(format!("unknown tier '{text}' (expected SNIPER, HUNTER or STRATEGIST)"))
            })?),
            None => None,
        };
        let mut limits = file.risk.clone();
        if let Some(pct) = cli.max_position_pct {
            limits.max_position_pct = pct;
        }
        if let Some(usd) = cli.min_order_usd {
            limits.min_order_usd = usd;
        }
        if let Some(tilt) = cli.tilt {
            limits.tilt.enabled = tilt == OnOff::On;
        }
        if let Some(limit) = cli.daily_loss_limit {
            if limit < Decimal::ZERO {
                return Err(ConfigError(format!("--daily-loss-limit must not be negative, got {limit}")));
            }
        }
        limits.validate().map_err(|e| ConfigError(e.to_string()))?;
        Ok(Config {
            exchange: cli.exchange,
            db: cli.db,
            confirm_override: if cli.no_confirm { Some(false) } else { None },
            confirm_timeout: Duration::from_secs(cli.confirm_timeout),
            json: cli.json,
            log_json: cli.log_json,
            seed: cli.seed,
            stop_loss_pct: percent("stop-loss-pct", cli.stop_loss_pct.or(file.stop_loss_pct).unwrap_or(Decimal::TWO))?,
            stop_limit_gap_pct: percent(
                "stop-limit-gap-pct",
                cli.stop_limit_gap_pct.or(file.stop_limit_gap_pct).unwrap_or(Decimal::new(5, 1)),
            )?,
            slippage_alert_pct: percent(
                "slippage-alert-pct",
                cli.slippage_alert_pct.or(file.slippage_alert_pct).unwrap_or(Decimal::new(5, 1)),
            )?,
            tier,
            limits,
            daily_loss_limit_override: cli.daily_loss_limit,
            balance_sync: Duration::from_secs(cli.balance_sync_secs.max(1)),
            watch_interval: Duration::from_millis(cli.watch_ms.max(10)),
            stream: cli.stream == OnOff::On,
            transport: cli.transport,
            ed25519_key_file: cli.ed25519_key_file.clone(),
            sim_walk: (cli.sim_walk_ms > 0).then(|| Duration::from_millis(cli.sim_walk_ms)),
            base_url: checked_base_url(&cli.base_url, cli.live)?,
            live: cli.live,
            connect_timeout: Duration::from_millis(cli.connect_timeout_ms.max(1)),
            read_timeout: Duration::from_millis(cli.read_timeout_ms.max(1)),
            quote_refresh: Duration::from_millis(cli.quote_refresh_ms.max(10)),
            quotes: cli.quotes,
            max_entry_retry_wait: Duration::from_millis(cli.max_entry_retry_wait_ms),
            pin: cli.pin,
            spin: Duration::from_micros(cli.spin_us),
            sim_latency_us: cli.sim_latency_us,
            sim_slippage_bps: cli.sim_slippage_bps,
            sim_partial_fill_prob: probability("sim-partial-fill-prob", cli.sim_partial_fill_prob)?,
            sim_reject_prob: probability("sim-reject-prob", cli.sim_reject_prob)?,
            stop_loss_attempts: 3,
            channel_capacity: 4096,
        })
    }

    /// Defaults, as if no flag was given (tests and benches start from here).
    pub fn defaults() -> Config {
        Config::from_cli(Cli::parse_from(["genesis"])).expect("the defaults are valid")
    }

    pub fn stop_settings(&self) -> crate::domain::position::StopSettings {
        crate::domain::position::StopSettings {
            stop_loss_pct: self.stop_loss_pct,
            stop_limit_gap_pct: self.stop_limit_gap_pct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults();
        assert_eq!(c.exchange, ExchangeKind::Sim);
        assert_eq!(c.transport, Transport::Rest, "REST stays the default until ws is measured");
        assert_eq!(c.quotes, QuoteSource::Stream, "the market stream, REST as its fallback");
        assert_eq!(c.db, PathBuf::from("./genesis.db"));
        assert_eq!(c.confirm_timeout, Duration::from_secs(10));
        assert_eq!(c.confirm_override, None);
        assert_eq!(c.stop_loss_pct, Decimal::from(2));
        assert_eq!(c.slippage_alert_pct, "0.5".parse().unwrap());
    }

    #[test]
    fn no_confirm_overrides_the_preference() {
        let c = Config::from_cli(Cli::parse_from(["genesis", "--no-confirm"])).unwrap();
        assert_eq!(c.confirm_override, Some(false));
    }

    #[test]
    fn production_needs_live() {
        let err = checked_base_url("https://api.binance.com", false).unwrap_err();
        assert_eq!(
            err.0,
            "--base-url https://api.binance.com is the production exchange (real money): add --live to trade there"
        );
        assert!(checked_base_url("https://api.binance.com", true).is_ok());
        assert!(checked_base_url("https://testnet.binance.vision", false).is_ok());
        assert!(checked_base_url("http://127.0.0.1:8080", false).is_ok());
        assert!(checked_base_url("ftp://x", false).is_err());
    }

    #[test]
    fn a_config_file_sets_limits_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.toml");
        std::fs::write(
            &path,
            "tier = \"hunter\"\nstop_loss_pct = 3\n[risk]\nmax_position_pct = \"4\"\n[risk.tilt]\nenabled = false\n",
        )
        .unwrap();
        let c = Config::from_cli(Cli::parse_from([
            "genesis",
            "--config",
            path.to_str().unwrap(),
            "--max-position-pct",
            "2.5",
        ]))
        .unwrap();
        assert_eq!(c.tier, Some(Tier::Hunter));
        assert_eq!(c.stop_loss_pct, Decimal::from(3));
        assert_eq!(c.limits.max_position_pct, "2.5".parse().unwrap());
        assert!(!c.limits.tilt.enabled);
    }

    #[test]
    fn a_config_file_with_an_unknown_key_is_refused() {
        let err = FileConfig::parse("stop_los_pct = 3").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn an_unknown_tier_is_refused() {
        let err = Config::from_cli(Cli::parse_from(["genesis", "--tier", "whale"])).unwrap_err();
        assert_eq!(err.0, "unknown tier 'whale' (expected SNIPER, HUNTER or STRATEGIST)");
    }

    #[test]
    fn out_of_range_percentages_are_refused() {
        let err = Config::from_cli(Cli::parse_from(["genesis", "--stop-loss-pct", "0"])).unwrap_err();
        assert_eq!(err.0, "--stop-loss-pct must be between 0 and 100 (exclusive), got 0");
    }
}
