//! The exchange server (`genesis-exchange`) on an ephemeral port, and checks that the
//! server's orders and the engine's database agree.

use super::*;
use genesis::exchange::binance::{BinanceConfig, BinanceGateway};
use genesis::exchange::Exchange;
use std::collections::HashMap;
use std::sync::OnceLock;

pub const KEY: &str = "test-api-key-0123456789";
pub const SECRET: &str = "test-api-secret-9876543210";

/// The server binary, built on first use (`cargo test --workspace` builds it already).
pub fn exchange_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = engine_bin().with_file_name("genesis-exchange");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "genesis-exchange", "--bin", "genesis-exchange"]);
            if engine_bin().parent().and_then(|p| p.file_name()).is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo build genesis-exchange");
            assert!(status.success(), "building genesis-exchange failed");
        }
        path
    })
    .clone()
}

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// The server on an account that holds only USDT (as a new trader's does: coins held
    /// before would hide an oversize stop or sell), unless `args` give `--balances`.
    pub fn start(args: &[&str]) -> Server {
        let usdt_only: &[&str] = if args.contains(&"--balances") { &[] } else { &["--balances", "USDT=100000"] };
        let mut child = Command::new(exchange_bin())
            .args(["--port", "0", "--api-key", KEY, "--api-secret", SECRET])
            .args(usdt_only)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn genesis-exchange");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
        let at = first.find("http://127.0.0.1:").unwrap_or_else(|| panic!("no URL in {first:?}"));
        let url = first[at..].split_whitespace().next().unwrap().to_string();
        Server { child, url }
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let url = format!("{}{path}", self.url);
        let mut response = match method {
            "GET" => agent.get(&url).call(),
            "DELETE" => agent.delete(&url).call(),
            _ => agent.post(&url).header("Content-Type", "application/json").send(body.as_bytes()),
        }
        .expect("control request");
        let text = response.body_mut().read_to_string().expect("control body");
        assert_eq!(response.status().as_u16(), 200, "{method} {path}: {text}");
        serde_json::from_str(&text).expect("control JSON")
    }

    /// Adds a fault to the server's plan, e.g. `place:5xx-after-execute`.
    pub fn fault(&self, spec: &str) {
        self.control("POST", "/sim/fault", &format!("{{\"spec\":\"{spec}\"}}"));
    }

    pub fn faults_fired(&self) -> usize {
        self.control("GET", "/sim/fault", "")["fired"].as_array().map_or(0, |a| a.len())
    }

    pub fn set_price(&self, symbol: &str, bid: &str, ask: &str) {
        self.control("POST", "/sim/price", &format!("{{\"symbol\":\"{symbol}\",\"bid\":\"{bid}\",\"ask\":\"{ask}\"}}"));
    }

    /// `POST /sim/stream/drop`: closes every user data stream connection; returns how many.
    pub fn drop_streams(&self) -> u64 {
        self.control("POST", "/sim/stream/drop", "")["dropped"].as_u64().unwrap_or(0)
    }

    /// `POST /sim/market-stream/drop`: closes every market stream connection; returns how many.
    pub fn drop_market_streams(&self) -> u64 {
        self.control("POST", "/sim/market-stream/drop", "")["dropped"].as_u64().unwrap_or(0)
    }

    /// Market stream connections open on the server now.
    pub fn market_stream_connections(&self) -> u64 {
        self.control("GET", "/sim/market-stream", "")["connections"].as_u64().unwrap_or(0)
    }

    /// `POST /sim/market-stream/silence`: the market streams stay open and send nothing (stale).
    pub fn silence_market_streams(&self, silent: bool) {
        self.control("POST", "/sim/market-stream/silence", &format!("{{\"silent\":{silent}}}"));
    }

    /// A client of the same account (another program, say).
    pub fn client(&self) -> BinanceGateway {
        patiently(|| BinanceGateway::connect(BinanceConfig::new(self.url.clone(), KEY, SECRET)))
    }

    /// Every order the server holds for `symbols`, by client order id.
    pub fn orders(&self, symbols: &[&str]) -> HashMap<String, genesis::domain::order::OrderReport> {
        let mut client = self.client();
        let mut out = HashMap::new();
        for symbol in symbols {
            for report in patiently(|| client.all_orders(symbol)) {
                out.insert(report.client_order_id.clone(), report);
            }
        }
        out
    }

    /// The engine's flags to trade on this server.
    pub fn engine_args(&self) -> Vec<String> {
        vec!["--exchange".into(), "binance".into(), "--base-url".into(), self.url.clone()]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine's environment with the server's keys.
pub const KEYS: [(&str, &str); 2] = [("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)];

/// Starts the engine on the server with `flags`, kept running for a conversation.
pub fn live_on(server: &Server, work: &Workdir, flags: &[&str]) -> Live {
    let mut args = server.engine_args();
    args.extend(flags.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Live::start_env(&engine_bin(), &work.db(), &args, &KEYS)
}

/// Runs the engine on the server with `args`, piping `input`.
pub fn run_on(server: &Server, work: &Workdir, args: &[&str], input: &str) -> Session {
    let mut all: Vec<String> = server.engine_args();
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run_piped_env(work, &refs, input, &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)])
}

/// Maps the server's status to the one the database must hold.
pub fn expected_db_status(report: &genesis::domain::order::OrderReport) -> &'static str {
    use genesis::domain::order::ExchangeStatus as S;
    match report.status {
        S::New | S::PendingNew | S::PendingCancel => {
            if report.executed_qty > rust_decimal::Decimal::ZERO {
                "PARTIAL"
            } else {
                "PENDING"
            }
        }
        S::PartiallyFilled => "PARTIAL",
        S::Filled => "FILLED",
        S::Canceled | S::Expired | S::ExpiredInMatch => "CANCELLED",
        S::Rejected => "FAILED",
    }
}

/// Calls `call` until the exchange answers, waiting out its rate limit (a test that restarts
/// the engine many times a minute uses up the weight the checks need).
pub fn patiently<T>(mut call: impl FnMut() -> Result<T, genesis::exchange::ExchangeError>) -> T {
    for _ in 0..100 {
        match call() {
            Ok(answer) => return answer,
            Err(genesis::exchange::ExchangeError::RateLimited { retry_after, .. }) => std::thread::sleep(retry_after),
            Err(e) => panic!("exchange: {e}"),
        }
    }
    panic!("still rate limited after 100 waits");
}

/// The end-state checks of the crash and fault tests: every order of ours the server holds
/// is in the database with the server's status and filled quantity; no order is there twice;
/// every open position has exactly one live stop-loss on the server; the database is sound.
pub fn assert_server_and_database_agree(server: &Server, work: &Workdir) -> AgreementReport {
    let conn = work.conn();
    let prefix: String =
        conn.query_row("SELECT value FROM meta WHERE key = 'client_id_prefix'", [], |r| r.get(0)).expect("prefix");
    let orders = server.orders(&["BTCUSDT", "ETHUSDT", "SOLUSDT"]);
    let mut ours = 0;
    for (cid, report) in &orders {
        if !cid.starts_with(&format!("{prefix}-")) {
            continue;
        }
        ours += 1;
        let row: Option<(String, String)> = conn
            .query_row("SELECT status, filled_quantity FROM orders WHERE client_order_id = ?1", [cid], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ok();
        let (status, filled) =
            row.unwrap_or_else(|| panic!("server order {cid} ({:?}) missing from the database", report.status));
        assert_eq!(status, expected_db_status(report), "status of {cid}");
        assert_eq!(filled.parse::<rust_decimal::Decimal>().unwrap(), report.executed_qty, "filled quantity of {cid}");
    }
    // The trades: every trade of every order of ours is in the database once, as the exchange
    // has it (quantity, price, commission and its asset).
    let mut client = server.client();
    for (cid, report) in
        orders.iter().filter(|(c, r)| c.starts_with(&format!("{prefix}-")) && !r.executed_qty.is_zero())
    {
        let mut theirs: Vec<(i64, String, String, String, String)> =
            patiently(|| client.order_trades(&report.symbol, report.exchange_order_id))
                .into_iter()
                .map(|t| {
                    (
                        t.trade_id,
                        t.qty.normalize().to_string(),
                        t.price.normalize().to_string(),
                        t.commission.normalize().to_string(),
                        t.commission_asset,
                    )
                })
                .collect();
        theirs.sort();
        let mut stmt = conn
            .prepare("SELECT trade_id, quantity, price, commission, commission_asset FROM fills WHERE client_order_id = ?1 ORDER BY trade_id")
            .expect("fills query");
        let ours: Vec<(i64, String, String, String, String)> = stmt
            .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ours, theirs, "the trades of {cid} in the database");
    }
    // No order sent twice: one server order per order id of ours.
    let mut by_order_id: HashMap<String, usize> = HashMap::new();
    for cid in orders.keys().filter(|c| c.starts_with(&format!("{prefix}-"))) {
        let head = cid.split('-').nth(1).unwrap_or_default().to_string();
        *by_order_id.entry(head).or_default() += 1;
    }
    assert!(by_order_id.values().all(|n| *n == 1), "an order id went out twice: {by_order_id:?}");
    // Every open position: exactly one live stop on the server.
    let mut open_positions = 0;
    let mut stmt = conn
        .prepare("SELECT position_id, status FROM positions WHERE status IN ('OPEN', 'UNPROTECTED')")
        .expect("positions query");
    let positions: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    for (position_id, status) in positions {
        open_positions += 1;
        let live: Vec<&String> = orders
            .iter()
            .filter(|(cid, r)| {
                cid.starts_with(&format!("{prefix}-S"))
                    && r.status.is_open()
                    && cid.split('-').nth(2) == Some(&position_id.to_string())
            })
            .map(|(cid, _)| cid)
            .collect();
        assert_eq!(live.len(), 1, "position {position_id} ({status}) has {} live stops: {live:?}", live.len());
    }
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    assert_eq!(check, "ok");
    AgreementReport { server_orders: ours, open_positions }
}

#[derive(Debug, Clone, Copy)]
pub struct AgreementReport {
    pub server_orders: usize,
    pub open_positions: usize,
}
