//! `genesis-exchange`: the Genesis simulator behind a Binance-compatible HTTP server on
//! 127.0.0.1, with reproducible fault injection. Flags → configuration → serve.
//!
//! - `api`: the application, and one `/api/v3/*` request's path through it (pure: no sockets).
//! - `endpoints`: the routing table (weights, SIGNED, fault steps) and the market-wide handlers.
//! - `orders`: the order and account endpoints.
//! - `control`: the `/sim/*` control endpoints and the random walk.
//! - `stream`: the user data stream's subscribers and their queue.
//! - `reply`, `params`, `ids`: request, reply and error shapes; parameters; generated ids.
//! - `auth`: API key, signature, timestamp / recvWindow.
//! - `cancel_replace`: `POST /api/v3/order/cancelReplace`, both modes.
//! - `checks`: parameter checks (-1101, -1104, -1111, -1130).
//! - `filters`: the order filters the simulator lacks (built-in, or a `--markets` document's).
//! - `limits`: request weight per minute, orders per 10 s and per day.
//! - `market_data`: tickers, average price, klines, trades, aggregate trades.
//! - `markets`: `--markets FILE`, the symbols of an `exchangeInfo` document.
//! - `faults`: the scripted fault plan.
//! - `stp`: self-trade prevention modes, per symbol and per order.
//! - `time_in_force`: LIMIT IOC and FOK on a simulator that rests every order as GTC.
//! - `server`: the HTTP/1.1 server (thread per keep-alive connection).
//! - `ws`: the WebSocket API on the same port (`/ws-api/v3`): the user data stream.
//! - `market_streams`: the market streams on the same port (`/ws/...`, `/stream?streams=`): bookTicker.

mod api;
mod auth;
mod cancel_replace;
mod checks;
mod control;
mod endpoints;
mod faults;
mod filters;
mod ids;
mod limits;
mod market_data;
mod market_streams;
mod markets;
mod orders;
mod params;
mod reply;
mod server;
mod session;
mod stp;
mod stream;
mod time_in_force;
mod ws;
mod ws_orders;

use clap::Parser;
use genesis::domain::money::Decimal;
use genesis::exchange::sim::{SimConfig, Simulator};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The Genesis simulator behind a Binance Spot compatible HTTP API on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(name = "genesis-exchange", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// API key the clients must send in X-MBX-APIKEY.
    #[arg(long, env = "BINANCE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Secret the clients sign with (HMAC-SHA256).
    #[arg(long, env = "BINANCE_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// An Ed25519 API key the WebSocket API logs on with (`session.logon`); needs
    /// --ed25519-public-key-file.
    #[arg(long, env = "GENESIS_EXCHANGE_ED25519_API_KEY", requires = "ed25519_public_key_file")]
    ed25519_api_key: Option<String>,
    /// The PEM public key (`-----BEGIN PUBLIC KEY-----`) of --ed25519-api-key.
    #[arg(long, env = "GENESIS_EXCHANGE_ED25519_PUBLIC_KEY_FILE", value_name = "FILE", requires = "ed25519_api_key")]
    ed25519_public_key_file: Option<PathBuf>,
    /// Seed of the simulator (book shapes, random walk).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// New orders allowed per 10 s (exchangeInfo rateLimits ORDERS SECOND 10).
    #[arg(long, default_value_t = 50)]
    order_limit: u64,
    /// Request weight allowed per minute (exchangeInfo rateLimits REQUEST_WEIGHT MINUTE 1).
    #[arg(long, default_value_t = limits::WEIGHT_LIMIT_1M)]
    weight_limit: u64,
    /// Requests allowed per 5 minutes (exchangeInfo rateLimits RAW_REQUESTS MINUTE 5).
    #[arg(long, default_value_t = limits::RAW_REQUEST_LIMIT_5M)]
    raw_request_limit: u64,
    /// Unfilled orders allowed per day (exchangeInfo rateLimits ORDERS DAY 1).
    #[arg(long, default_value_t = limits::ORDER_LIMIT_1D)]
    daily_order_limit: u64,
    /// Starting balances, ASSET=AMOUNT,… (ignored when --state loads a saved exchange).
    #[arg(long, default_value = "USDT=100000,BTC=1,ETH=10,SOL=100")]
    balances: String,
    /// Keep the exchange in this file (and FILE.journal); default: in memory.
    #[arg(long, conflicts_with = "markets")]
    state: Option<PathBuf>,
    /// Trade the symbols of this exchangeInfo document instead of BTCUSDT, ETHUSDT, SOLUSDT.
    #[arg(long, value_name = "FILE")]
    markets: Option<PathBuf>,
    /// Added to every response, microseconds.
    #[arg(long, default_value_t = 0)]
    latency_us: u64,
    /// Move every price by a seeded random step every N ms (default: prices stand still).
    #[arg(long)]
    walk_ms: Option<u64>,
    /// A scripted fault, STEP:KIND[:ARG][@N][xK] (repeatable), e.g. place:5xx-after-execute@2.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
}

/// The first order id and trade id of a fresh exchange (one counter across symbols each).
const FIRST_ORDER_ID: i64 = 40_000_000_001;
const FIRST_TRADE_ID: i64 = 4_000_000_001;

fn parse_balances(text: &str) -> Result<BTreeMap<String, Decimal>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (asset, amount) = item.split_once('=').ok_or_else(|| format!("balance '{item}' is not ASSET=AMOUNT"))?;
        let asset = asset.trim().to_ascii_uppercase();
        if asset.is_empty() || !asset.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("balance '{item}': bad asset name"));
        }
        let amount: Decimal = api::parse_decimal(amount.trim())
            .ok_or_else(|| format!("balance '{item}': '{amount}' is not a decimal amount"))?;
        out.insert(asset, amount);
    }
    Ok(out)
}

fn fail(msg: &str) -> ! {
    eprintln!("genesis-exchange: {msg}");
    std::process::exit(2);
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = Args::parse();
    let (Some(api_key), Some(api_secret)) =
        (args.api_key.filter(|k| !k.is_empty()), args.api_secret.filter(|s| !s.is_empty()))
    else {
        fail(
            "no credentials: pass --api-key and --api-secret, or set BINANCE_API_KEY and \
             BINANCE_API_SECRET (the clients must sign with the same pair)",
        );
    };
    if let (Some(key), Some(path)) = (&args.ed25519_api_key, &args.ed25519_public_key_file) {
        let pem = std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        session::accept_ed25519(key.clone(), pem);
    }
    let starting_balances = parse_balances(&args.balances).unwrap_or_else(|e| fail(&e));
    let faults = args
        .faults
        .iter()
        .map(|spec| faults::Fault::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| fail(&e));
    // Ids in the range Binance's have reached, so no client finds an order at "1".
    let config = SimConfig {
        seed: args.seed,
        starting_balances,
        first_order_id: FIRST_ORDER_ID,
        first_trade_id: FIRST_TRADE_ID,
        ..SimConfig::default()
    };
    let (sim, document) = match (&args.state, &args.markets) {
        (Some(path), _) => (Simulator::open(path, config).unwrap_or_else(|e| fail(&e.to_string())), None),
        (None, Some(path)) => {
            let (markets, document) = markets::load(path).unwrap_or_else(|e| fail(&e));
            log::info!("{} markets from {}", markets.len(), path.display());
            (Simulator::with_markets(config, &markets), Some(document))
        }
        (None, None) => (Simulator::new(config), None),
    };
    let id_base = (server::local_ms() as u64) ^ (u64::from(std::process::id()) << 40);
    let mut app = api::App::new(sim, auth::Credentials { api_key, api_secret }, args.order_limit, faults, id_base);
    if let Some(document) = document {
        let mut stp = stp::StpBook::default();
        for doc in &document.symbols {
            if let Some(default) = &doc.default_stp {
                let allowed: Vec<&str> = doc.allowed_stp.iter().map(String::as_str).collect();
                stp.set_symbol(&doc.symbol, default, &allowed);
            }
        }
        app.stp = Arc::new(stp);
        app.filters = filters::FilterBook::from_doc(&document.symbols, &document.exchange_filters);
    }
    let app = Arc::new(app);
    app.set_limits(limits::LimitConfig {
        weight_1m: args.weight_limit,
        raw_requests_5m: args.raw_request_limit,
        orders_10s: args.order_limit,
        orders_1d: args.daily_order_limit,
    });
    let listener =
        server::bind(args.port).unwrap_or_else(|e| fail(&format!("cannot listen on 127.0.0.1:{}: {e}", args.port)));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| fail(&format!("no local address: {e}")));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "genesis-exchange listening on http://127.0.0.1:{port}");
        let _ = out.flush();
    }
    log::info!(
        "seed {}, order limit {}/10s, latency {} us, state {}",
        args.seed,
        args.order_limit,
        args.latency_us,
        args.state.as_ref().map_or("in memory".to_string(), |p| p.display().to_string())
    );
    if let Some(ms) = args.walk_ms.filter(|ms| *ms > 0) {
        let app = Arc::clone(&app);
        std::thread::Builder::new()
            .name("walk".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(ms));
                app.walk();
            })
            .unwrap_or_else(|e| fail(&format!("cannot start the random walk: {e}")));
    }
    server::serve(listener, app, Duration::from_micros(args.latency_us));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_flag_parses_and_refuses_junk() {
        let b = parse_balances("USDT=100000,BTC=1,ETH=10,SOL=100").unwrap();
        assert_eq!(b["USDT"], Decimal::from(100_000));
        assert_eq!(b["SOL"], Decimal::from(100));
        assert_eq!(parse_balances("btc=0.5").unwrap()["BTC"], "0.5".parse().unwrap());
        assert!(parse_balances("USDT").is_err());
        assert!(parse_balances("USDT=-1").is_err());
        assert!(parse_balances("=1").is_err());
        assert!(parse_balances("USDT=1e3").is_err());
    }

    #[test]
    fn flags_parse_with_their_defaults() {
        let a = Args::try_parse_from(["genesis-exchange", "--api-key", "k", "--api-secret", "s"]).unwrap();
        assert_eq!((a.port, a.seed, a.order_limit, a.latency_us), (0, 42, 50, 0));
        assert_eq!((a.weight_limit, a.raw_request_limit, a.daily_order_limit), (6000, 61_000, 200_000));
        assert_eq!(a.walk_ms, None);
        let a = Args::try_parse_from([
            "genesis-exchange",
            "--fault",
            "place:5xx-after-execute@2",
            "--fault",
            "stop:reject x3",
            "--walk-ms",
            "250",
        ])
        .unwrap();
        assert_eq!(a.faults.len(), 2);
        assert_eq!(a.walk_ms, Some(250));
    }

    #[test]
    fn markets_and_state_cannot_be_combined() {
        let a = Args::try_parse_from(["genesis-exchange", "--markets", "m.json"]).unwrap();
        assert_eq!(a.markets, Some(PathBuf::from("m.json")));
        assert!(Args::try_parse_from(["genesis-exchange", "--markets", "m.json", "--state", "s"]).is_err());
    }
}
