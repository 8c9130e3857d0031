//! Every flag, limit and default in one typed place.

use crate::domain::money::Decimal;
use crate::domain::position::StopSettings;
use crate::domain::risk::{LimitError, RiskLimits, Tier};
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

/// The engine's settings, derived from the flags, in one group per part of the engine that
/// reads them. A new flag goes into the group of the part that uses it, plus one line in that
/// group's `from_cli`.
#[derive(Debug, Clone)]
pub struct Config {
    pub exchange: ExchangeKind,
    pub db: PathBuf,
    pub confirm: ConfirmSettings,
    pub output: OutputSettings,
    /// Read only with `--exchange binance`.
    pub binance: BinanceSettings,
    /// Read only with `--exchange sim`.
    pub sim: SimSettings,
    pub risk: RiskSettings,
    pub tuning: TuningSettings,
}

/// Asking the user before an order goes out.
#[derive(Debug, Clone)]
pub struct ConfirmSettings {
    /// `Some(false)` when --no-confirm was given; `None` leaves it to the stored preference.
    pub from_flag: Option<bool>,
    pub timeout: Duration,
}

/// How events (stdout) and log lines (stderr) are written.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub json: bool,
    pub log_json: bool,
}

/// The connection to Binance: where, how long to wait, which transport, which streams.
#[derive(Debug, Clone)]
pub struct BinanceSettings {
    pub base_url: String,
    pub live: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub quote_refresh: Duration,
    /// `--quotes`: the market stream (with REST as its fallback) or REST alone (binance only).
    pub quotes: QuoteSource,
    pub max_entry_retry_wait: Duration,
    /// `--stream`: subscribe to the user data stream.
    pub stream: bool,
    /// `--transport`: REST or the WebSocket API for orders.
    pub transport: Transport,
    /// `--ed25519-key-file`: logs the WebSocket API session on (`--transport ws`).
    pub ed25519_key_file: Option<PathBuf>,
}

/// The embedded simulator's knobs (turned into `exchange::sim::SimConfig`).
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    pub walk: Option<Duration>,
    pub latency_us: u64,
    pub slippage_bps: u32,
    pub partial_fill_prob: f64,
    pub reject_prob: f64,
}

/// What protects the money: tier and limits, stop-losses, slippage alerts.
#[derive(Debug, Clone)]
pub struct RiskSettings {
    /// `--tier`, when given (else the saved tier, else SNIPER).
    pub tier: Option<Tier>,
    pub limits: RiskLimits,
    /// `--daily-loss-limit`: overrides the limit of the account's tier.
    pub daily_loss_limit_override: Option<Decimal>,
    pub stops: StopSettings,
    /// Stop-loss placement attempts before the position is flagged UNPROTECTED.
    pub stop_loss_attempts: u32,
    pub slippage_alert_pct: Decimal,
}

/// Threads, waits and polls: how the engine uses the machine, not what it trades.
#[derive(Debug, Clone)]
pub struct TuningSettings {
    /// `--pin`; `pipeline::placement` turns it into cores.
    pub pin: Pinning,
    pub spin: Duration,
    pub watch_interval: Duration,
    pub balance_sync: Duration,
    /// Capacity of each channel between stages.
    pub channel_capacity: usize,
}

/// A flag, or the `--config` file, that the engine refuses to start with. The `Display` is the
/// line printed after `genesis: `.
#[derive(Debug)]
pub enum ConfigError {
    ConfirmTimeoutZero,
    /// The `--config` file could not be read.
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `--config` file is not valid TOML or names an unknown key.
    FileInvalid {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    UnknownTier(String),
    NegativeDailyLossLimit(Decimal),
    /// A risk limit (flag or file) outside its range.
    Limit(LimitError),
    /// `flag` is the flag's name without the dashes.
    PercentOutOfRange {
        flag: &'static str,
        value: Decimal,
    },
    ProbabilityOutOfRange {
        flag: &'static str,
        value: f64,
    },
    BaseUrlScheme(String),
    BaseUrlNoHost(String),
    /// A production host without `--live`.
    ProductionWithoutLive(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::ConfirmTimeoutZero => f.write_str("--confirm-timeout must be at least 1 second"),
            ConfigError::FileUnreadable { path, source } => write!(f, "--config {}: {source}", path.display()),
            ConfigError::FileInvalid { path, source } => write!(f, "--config {}: {}", path.display(), source.message()),
            ConfigError::UnknownTier(text) => {
                write!(f, "unknown tier '{text}' (expected SNIPER, HUNTER or STRATEGIST)")
            }
            ConfigError::NegativeDailyLossLimit(limit) => {
                write!(f, "--daily-loss-limit must not be negative, got {limit}")
            }
            ConfigError::Limit(e) => write!(f, "{e}"),
            ConfigError::PercentOutOfRange { flag, value } => {
                write!(f, "--{flag} must be between 0 and 100 (exclusive), got {value}")
            }
            ConfigError::ProbabilityOutOfRange { flag, value } => {
                write!(f, "--{flag} must be between 0 and 1, got {value}")
            }
            ConfigError::BaseUrlScheme(url) => {
                write!(f, "--base-url must start with http:// or https://, got '{url}'")
            }
            ConfigError::BaseUrlNoHost(url) => write!(f, "--base-url has no host: '{url}'"),
            ConfigError::ProductionWithoutLive(url) => {
                write!(f, "--base-url {url} is the production exchange (real money): add --live to trade there")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::FileUnreadable { source, .. } => Some(source),
            ConfigError::FileInvalid { source, .. } => Some(source.as_ref()),
            ConfigError::Limit(e) => Some(e),
            _ => None,
        }
    }
}

fn percent(flag: &'static str, value: Decimal) -> Result<Decimal, ConfigError> {
    if value <= Decimal::ZERO || value >= Decimal::ONE_HUNDRED {
        return Err(ConfigError::PercentOutOfRange { flag, value });
    }
    Ok(value)
}

fn probability(flag: &'static str, value: f64) -> Result<f64, ConfigError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(ConfigError::ProbabilityOutOfRange { flag, value });
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
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::FileUnreadable { path: path.to_path_buf(), source })?;
        Self::parse(&text)
            .map_err(|source| ConfigError::FileInvalid { path: path.to_path_buf(), source: Box::new(source) })
    }

    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
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
        .ok_or_else(|| ConfigError::BaseUrlScheme(url.to_string()))?;
    let host = rest.split(['/', ':']).next().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() {
        return Err(ConfigError::BaseUrlNoHost(url.to_string()));
    }
    if PRODUCTION_HOSTS.contains(&host.as_str()) && !live {
        return Err(ConfigError::ProductionWithoutLive(url.to_string()));
    }
    Ok(url.to_string())
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        // In this order, so that of several bad flags the same one is named first.
        let confirm = ConfirmSettings::from_cli(&cli)?;
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Ok(Config {
            confirm,
            output: OutputSettings { json: cli.json, log_json: cli.log_json },
            risk: RiskSettings::from_cli(&cli, &file)?,
            binance: BinanceSettings::from_cli(&cli)?,
            sim: SimSettings::from_cli(&cli)?,
            tuning: TuningSettings::from_cli(&cli),
            exchange: cli.exchange,
            db: cli.db,
        })
    }

    /// Defaults, as if no flag was given (tests and benches start from here).
    pub fn defaults() -> Config {
        Config::from_cli(Cli::parse_from(["genesis"])).expect("the defaults are valid")
    }
}

impl ConfirmSettings {
    fn from_cli(cli: &Cli) -> Result<ConfirmSettings, ConfigError> {
        if cli.confirm_timeout == 0 {
            return Err(ConfigError::ConfirmTimeoutZero);
        }
        Ok(ConfirmSettings {
            from_flag: if cli.no_confirm { Some(false) } else { None },
            timeout: Duration::from_secs(cli.confirm_timeout),
        })
    }
}

impl RiskSettings {
    /// Flags first, then the `--config` file, then the defaults.
    fn from_cli(cli: &Cli, file: &FileConfig) -> Result<RiskSettings, ConfigError> {
        let tier = match cli.tier.clone().or(file.tier.clone()) {
            Some(text) => Some(Tier::parse(&text).ok_or(ConfigError::UnknownTier(text))?),
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
                return Err(ConfigError::NegativeDailyLossLimit(limit));
            }
        }
        limits.validate().map_err(ConfigError::Limit)?;
        let stops = StopSettings {
            stop_loss_pct: percent("stop-loss-pct", cli.stop_loss_pct.or(file.stop_loss_pct).unwrap_or(Decimal::TWO))?,
            stop_limit_gap_pct: percent(
                "stop-limit-gap-pct",
                cli.stop_limit_gap_pct.or(file.stop_limit_gap_pct).unwrap_or(Decimal::new(5, 1)),
            )?,
        };
        Ok(RiskSettings {
            tier,
            limits,
            daily_loss_limit_override: cli.daily_loss_limit,
            stops,
            stop_loss_attempts: 3,
            slippage_alert_pct: percent(
                "slippage-alert-pct",
                cli.slippage_alert_pct.or(file.slippage_alert_pct).unwrap_or(Decimal::new(5, 1)),
            )?,
        })
    }
}

impl BinanceSettings {
    fn from_cli(cli: &Cli) -> Result<BinanceSettings, ConfigError> {
        Ok(BinanceSettings {
            base_url: checked_base_url(&cli.base_url, cli.live)?,
            live: cli.live,
            connect_timeout: Duration::from_millis(cli.connect_timeout_ms.max(1)),
            read_timeout: Duration::from_millis(cli.read_timeout_ms.max(1)),
            quote_refresh: Duration::from_millis(cli.quote_refresh_ms.max(10)),
            quotes: cli.quotes,
            max_entry_retry_wait: Duration::from_millis(cli.max_entry_retry_wait_ms),
            stream: cli.stream == OnOff::On,
            transport: cli.transport,
            ed25519_key_file: cli.ed25519_key_file.clone(),
        })
    }
}

impl SimSettings {
    fn from_cli(cli: &Cli) -> Result<SimSettings, ConfigError> {
        Ok(SimSettings {
            seed: cli.seed,
            walk: (cli.sim_walk_ms > 0).then(|| Duration::from_millis(cli.sim_walk_ms)),
            latency_us: cli.sim_latency_us,
            slippage_bps: cli.sim_slippage_bps,
            partial_fill_prob: probability("sim-partial-fill-prob", cli.sim_partial_fill_prob)?,
            reject_prob: probability("sim-reject-prob", cli.sim_reject_prob)?,
        })
    }
}

impl TuningSettings {
    fn from_cli(cli: &Cli) -> TuningSettings {
        TuningSettings {
            pin: cli.pin,
            spin: Duration::from_micros(cli.spin_us),
            watch_interval: Duration::from_millis(cli.watch_ms.max(10)),
            balance_sync: Duration::from_secs(cli.balance_sync_secs.max(1)),
            channel_capacity: 4096,
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
        assert_eq!(c.binance.transport, Transport::Rest, "REST stays the default until ws is measured");
        assert_eq!(c.binance.quotes, QuoteSource::Stream, "the market stream, REST as its fallback");
        assert_eq!(c.db, PathBuf::from("./genesis.db"));
        assert_eq!(c.confirm.timeout, Duration::from_secs(10));
        assert_eq!(c.confirm.from_flag, None);
        assert_eq!(c.risk.stops.stop_loss_pct, Decimal::from(2));
        assert_eq!(c.risk.slippage_alert_pct, "0.5".parse().unwrap());
    }

    #[test]
    fn no_confirm_overrides_the_preference() {
        let c = Config::from_cli(Cli::parse_from(["genesis", "--no-confirm"])).unwrap();
        assert_eq!(c.confirm.from_flag, Some(false));
    }

    #[test]
    fn production_needs_live() {
        let err = checked_base_url("https://api.binance.com", false).unwrap_err();
        assert_eq!(
            err.to_string(),
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
        assert_eq!(c.risk.tier, Some(Tier::Hunter));
        assert_eq!(c.risk.stops.stop_loss_pct, Decimal::from(3));
        assert_eq!(c.risk.limits.max_position_pct, "2.5".parse().unwrap());
        assert!(!c.risk.limits.tilt.enabled);
    }

    #[test]
    fn a_config_file_with_an_unknown_key_is_refused() {
        let err = FileConfig::parse("stop_los_pct = 3").unwrap_err();
        assert!(err.message().contains("unknown field"), "{err}");
    }

    #[test]
    fn an_unknown_tier_is_refused() {
        let err = Config::from_cli(Cli::parse_from(["genesis", "--tier", "whale"])).unwrap_err();
        assert_eq!(err.to_string(), "unknown tier 'whale' (expected SNIPER, HUNTER or STRATEGIST)");
    }

    #[test]
    fn out_of_range_percentages_are_refused() {
        let err = Config::from_cli(Cli::parse_from(["genesis", "--stop-loss-pct", "0"])).unwrap_err();
        assert_eq!(err.to_string(), "--stop-loss-pct must be between 0 and 100 (exclusive), got 0");
    }

    #[test]
    fn a_missing_config_file_names_it_and_keeps_the_io_error() {
        use std::error::Error;
        let err = Config::from_cli(Cli::parse_from(["genesis", "--config", "/nonexistent/genesis.toml"])).unwrap_err();
        assert!(matches!(err, ConfigError::FileUnreadable { .. }), "{err:?}");
        assert!(err.to_string().starts_with("--config /nonexistent/genesis.toml: "), "{err}");
        assert!(err.source().unwrap().downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn an_invalid_config_file_shows_the_toml_message_and_keeps_the_toml_error() {
        use std::error::Error;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.toml");
        std::fs::write(&path, "stop_los_pct = 3\n").unwrap();
        let err = Config::from_cli(Cli::parse_from(["genesis", "--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().starts_with(&format!("--config {}: unknown field", path.display())), "{err}");
        assert!(err.source().unwrap().downcast_ref::<toml::de::Error>().is_some());
    }

    #[test]
    fn a_limit_out_of_range_keeps_the_limit_error_as_its_source() {
        use std::error::Error;
        let err = Config::from_cli(Cli::parse_from(["genesis", "--max-position-pct", "101"])).unwrap_err();
        assert!(err.to_string().starts_with("risk limit max_position_pct = 101 is invalid"), "{err}");
        assert!(err.source().unwrap().downcast_ref::<LimitError>().is_some());
        assert!(ConfigError::ConfirmTimeoutZero.source().is_none());
    }

    #[test]
    fn every_refusal_reads_as_before() {
        let refused = |args: &[&str]| {
            let mut argv = vec!["genesis"];
            argv.extend_from_slice(args);
            Config::from_cli(Cli::parse_from(argv)).unwrap_err().to_string()
        };
        assert_eq!(refused(&["--confirm-timeout", "0"]), "--confirm-timeout must be at least 1 second");
        assert_eq!(refused(&["--daily-loss-limit=-1"]), "--daily-loss-limit must not be negative, got -1");
        assert_eq!(refused(&["--sim-reject-prob", "2"]), "--sim-reject-prob must be between 0 and 1, got 2");
        assert_eq!(
            refused(&["--base-url", "ftp://x"]),
            "--base-url must start with http:// or https://, got 'ftp://x'"
        );
        assert_eq!(refused(&["--base-url", "https://"]), "--base-url has no host: 'https://'");
    }
}
