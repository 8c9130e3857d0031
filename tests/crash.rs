//! Crash safety: kill -9 the engine at varied points against the exchange server, restart it
//! on the same database each time, and check that nothing was lost, nothing doubled and every
//! position is protected.

use crate::support::server::*;
use crate::support::*;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const KILLS: usize = 55;

/// Faults for the start-up reads, one of which is added before each restart.
const START_UP_FAULTS: [&str; 10] = [
    "all-orders:5xx-after-execute",
    "all-orders:drop-after-execute",
    "all-orders:418:1",
    "account:5xx-after-execute",
    "account:429:1 x2",
    "exchange-info:drop-after-execute",
    "exchange-info:418:1",
    "query:5xx-after-execute",
    "time:5xx-after-execute",
    "open-orders:5xx-after-execute",
];

#[test]
fn fifty_five_kill_9s_lose_nothing_double_nothing_and_leave_every_position_protected() {
    // 10 ms per response widens the windows between send and response, and between a fill
    // and its stop-loss, so the kills land inside them. The account holds only USDT (coins
    // held before would hide an oversize sell), and the server keeps Binance's weight limit:
    // restarts back to back, as a crash-looping supervisor would, must not end the engine.
    let server = Server::start(&["--latency-us", "10000", "--balances", "USDT=100000"]);
    let work = Workdir::new();
    let mut args = server.engine_args();
    args.extend(
        ["--no-confirm", "--tilt", "off", "--daily-loss-limit", "1000000", "--watch-ms", "100"].map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)];
    let seed = 20261125;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let commands = ["buy ETHUSDT 0.01", "sell ETHUSDT 0.0099", "buy SOLUSDT 0.1", "sell SOLUSDT 0.099"];
    let mut buys_sent = 0;
    let mut reconciled = Vec::new();
    let mut faults = 0;
    for kill in 0..KILLS {
        if kill > 0 {
            server.fault(START_UP_FAULTS[rng.random_range(0..START_UP_FAULTS.len())]);
            faults += 1;
        }
        let mut live = Live::start_env(&engine_bin(), &work.db(), &args, &env);
        reconciled.push(live.seen.iter().find(|e| e["event"] == "reconciled").cloned());
        let n = rng.random_range(1..=3);
        for _ in 0..n {
            let command = commands[rng.random_range(0..commands.len())];
            buys_sent += usize::from(command.starts_with("buy"));
            live.send(command);
        }
        // 0-60 ms: before the request, between send and response, between fill and stop.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        live.kill9();
        if kill % 10 == 9 {
            eprintln!("kill {} of {KILLS} (seed {seed})", kill + 1);
        }
    }
    // A last, clean start reconciles what the last kill left.
    let live = Live::start_env(&engine_bin(), &work.db(), &args, &env);
    let last = live.seen.iter().find(|e| e["event"] == "reconciled").cloned();
    assert!(live.finish().success());
    let report = assert_server_and_database_agree(&server, &work);
    let recovered: i64 =
        reconciled.iter().flatten().chain(last.iter()).map(|e| e["recovered"].as_i64().unwrap_or(0)).sum();
    let placed: i64 =
        reconciled.iter().flatten().chain(last.iter()).map(|e| e["stop_losses_placed"].as_i64().unwrap_or(0)).sum();
    let entries = server
        .orders(&["ETHUSDT", "SOLUSDT"])
        .keys()
        .filter(|cid| cid.split('-').nth(1).is_some_and(|h| h.starts_with('E')))
        .count();
    assert!(entries <= buys_sent, "{entries} entry orders on the server for {buys_sent} buy commands");
    let mut weights: Vec<i64> =
        reconciled.iter().flatten().chain(last.iter()).filter_map(|e| e["weight_used"].as_i64()).collect();
    weights.sort_unstable();
    println!(
        "start-up weight over {} starts: min {}, median {}, max {}",
        weights.len(),
        weights.first().unwrap_or(&0),
        weights.get(weights.len() / 2).unwrap_or(&0),
        weights.last().unwrap_or(&0)
    );
    println!(
        "{KILLS} kills (seed {seed}), {faults} start-up faults: {buys_sent} buys typed, {entries} entries on the server, {} orders of ours there, \
         {} open positions, {recovered} orders recovered and {placed} stop-losses placed by reconciliation",
        report.server_orders, report.open_positions
    );
}
