//! Start-up that cannot be fooled: reads that fail at start-up (5xx, a dropped connection, 429,
//! 418) are retried until they answer, never taken for "nothing there"; while they are, the
//! engine takes no command, and `quit` still ends it cleanly. Accounts hold only USDT, and the
//! server keeps its default rate limits.

use crate::support::server::*;
use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const CALM: [&str; 3] = ["--no-confirm", "--tilt", "off"];
const USDT_ONLY: [&str; 2] = ["--balances", "USDT=100000"];

/// Waits until `done` holds (checked every 20 ms), up to `limit`.
fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(server: &Server, work: &Workdir, input: &str) -> Session {
    let s = run_on(server, work, &CALM, input);
    assert!(s.status.success(), "{}", s.stderr);
    s
}

fn server(faults: &[&str]) -> Server {
    let mut args: Vec<&str> = USDT_ONLY.to_vec();
    for fault in faults {
        args.extend(["--fault", fault]);
    }
    Server::start(&args)
}

/// Buys, and kills the engine (`kill -9`) once the server has executed the request that
/// `fault` holds back: the engine never learns of its answer, nor records it.
fn crash_while_held_back(server: &Server, work: &Workdir, wait_for: &str) {
    let mut live = live_on(server, work, &CALM);
    live.send("buy ETHUSDT 0.01");
    if !wait_for.is_empty() {
        live.wait_for(wait_for, Duration::from_secs(10));
    }
    wait_until(Duration::from_secs(10), "the held-back request", || server.faults_fired() == 1);
    live.kill9();
}

fn reconciled(s: &Session) -> &Value {
    s.first("reconciled")
}

#[test]
fn scenario_1_a_failed_history_read_after_a_crash_neither_doubles_the_stop_nor_reuses_its_id() {
    let server = server(&["stop:delay-after-execute:5000"]);
    let work = Workdir::new();
    crash_while_held_back(&server, &work, "order_filled");
    server.fault("all-orders:5xx-after-execute");
    let s = run(&server, &work, "positions\n");
    assert_eq!(s.of_kind("reconciling").len(), 1, "{:?}", s.kinds());
    // The stop the crash left unrecorded (and the entry too, when persist had not caught up).
    assert!(reconciled(&s)["recovered"].as_i64() >= Some(1), "{}", reconciled(&s));
    assert_eq!(reconciled(&s)["stop_losses_placed"], 0, "no second stop");
    assert_eq!(s.first("positions")["positions"][0]["status"], "OPEN");
    // One live stop per position, every order under its own id, no id used twice.
    assert_eq!(assert_server_and_database_agree(&server, &work).open_positions, 1);
}

#[test]
fn scenario_1_a_failed_history_read_after_a_crash_does_not_lose_a_filled_entry() {
    let server = server(&["place:delay-after-execute:5000"]);
    let work = Workdir::new();
    crash_while_held_back(&server, &work, "");
    server.fault("all-orders:5xx-after-execute");
    server.fault("query:5xx-after-execute");
    let s = run(&server, &work, "positions\n");
    assert!(!s.of_kind("reconciling").is_empty(), "{:?}", s.kinds());
    let position = &s.first("positions")["positions"][0];
    assert_eq!(position["status"], "OPEN", "the filled entry is recorded and protected");
    assert_eq!(assert_server_and_database_agree(&server, &work).open_positions, 1);
}

#[test]
fn scenario_2_an_order_recovered_under_a_reused_id_never_overwrites_the_other_order() {
    let server = server(&[]);
    let work = Workdir::new();
    let first = run(&server, &work, "buy ETHUSDT 0.01\nsell ETHUSDT 0.0099\n");
    let entry = first.first("order_filled")["client_order_id"].as_str().unwrap().to_string();
    let prefix = first.first("ready")["client_id_prefix"].as_str().unwrap().to_string();
    let conn = work.conn();
    let entry_id = order_field(&conn, &entry, "order_id").unwrap();
    let before = (order_field(&conn, &entry, "status"), order_field(&conn, &entry, "filled_quantity"));
    // An older engine reused the entry's order id for another entry, then lost its record.
    let lost = format!("{prefix}-E{entry_id}-0-lost");
    let mut client = server.client();
    use genesis::exchange::Exchange;
    client
        .place_order(&genesis::exchange::NewOrder {
            symbol: "ETHUSDT".into(),
            side: genesis::domain::order::Side::Buy,
            order_type: genesis::domain::order::ExchangeOrderType::Market,
            quantity: "0.02".parse().unwrap(),
            price: None,
            stop_price: None,
            client_order_id: lost.clone(),
        })
        .unwrap();
    live_on(&server, &work, &CALM).kill9();
    for _ in 0..2 {
        let s = run(&server, &work, "positions\n");
        let conn = work.conn();
        assert_eq!(
            (order_field(&conn, &entry, "status"), order_field(&conn, &entry, "filled_quantity")),
            before,
            "the recorded entry's row is untouched"
        );
        let recovered_id = order_field(&conn, &lost, "order_id").expect("the lost entry has its own row");
        assert_ne!(recovered_id, entry_id);
        assert_eq!(order_field(&conn, &lost, "filled_quantity").as_deref(), Some("0.02"));
        let positions = &s.first("positions")["positions"];
        assert_eq!(positions.as_array().unwrap().len(), 1, "the recovered entry opened its own position");
        assert_eq!(positions[0]["position_id"].to_string(), recovered_id);
    }
}

#[test]
fn scenario_3_a_rate_limited_start_waits_it_out_instead_of_exiting() {
    let server = server(&["time:429:1 x2", "exchange-info:418:1"]);
    let work = Workdir::new();
    let s = run(&server, &work, "buy ETHUSDT 0.01\n");
    let limited = s.of_kind("rate_limited");
    assert_eq!(limited.len(), 2, "{:?}", s.kinds());
    assert_eq!(limited[0]["retry_in_ms"], 1000);
    assert_eq!(limited[1]["banned"], true);
    s.first("ready");
    s.first("order_filled");
}

#[test]
fn every_start_up_read_that_fails_is_retried_before_ready() {
    let server = server(&[]);
    let work = Workdir::new();
    // A crash after a buy, so the next start reads the history of ETHUSDT.
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    live.kill9();
    for fault in
        ["exchange-info:5xx-after-execute", "account:drop-after-execute", "account:429:1@2", "all-orders:418:1"]
    {
        server.fault(fault);
    }
    let s = run(&server, &work, "buy ETHUSDT 0.01\n");
    let retried: Vec<&str> = s
        .of_kind("reconciling")
        .iter()
        .chain(s.of_kind("rate_limited").iter())
        .map(|e| e["request"].as_str().unwrap())
        .collect();
    assert!(retried.contains(&"exchangeInfo"), "{retried:?}");
    assert!(retried.contains(&"account"), "{retried:?}");
    assert!(retried.iter().any(|r| r.starts_with("allOrders")), "{retried:?}");
    s.first("order_filled");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_start_reports_the_request_weight_it_used() {
    let server = server(&[]);
    let work = Workdir::new();
    let s = run(&server, &work, "");
    // time 1, exchangeInfo 20, account 20: a new database reads no history.
    assert_eq!(reconciled(&s)["weight_used"], 41);
}

#[test]
fn quit_while_start_up_retries_ends_the_engine_cleanly_without_trading() {
    let server = server(&["account:5xx-after-execute x1000"]);
    let work = Workdir::new();
    let s = run(&server, &work, "quit\n");
    assert!(!s.of_kind("reconciling").is_empty());
    s.first("stopped");
    assert!(s.of_kind("ready").is_empty() && s.of_kind("order_submitted").is_empty(), "{:?}", s.kinds());
    assert!(server.orders(&["ETHUSDT"]).is_empty(), "nothing was sent");
}

#[test]
fn a_script_ending_in_quit_piped_during_start_up_runs_once_the_engine_is_ready() {
    let server = server(&["account:5xx-after-execute x2"]);
    let work = Workdir::new();
    let s = run(&server, &work, "buy ETHUSDT 0.01\nquit\n");
    assert_eq!(s.of_kind("reconciling").len(), 2);
    s.first("order_filled");
    assert!(s.of_kind("stopped").is_empty());
}

#[test]
fn sigterm_while_start_up_retries_ends_the_engine_cleanly() {
    let server = server(&["account:5xx-after-execute x1000"]);
    let work = Workdir::new();
    let mut args = server.engine_args();
    args.extend(CALM.iter().map(|a| a.to_string()));
    let mut child = std::process::Command::new(engine_bin())
        .args(["--json", "--db"])
        .arg(work.db())
        .args(&args)
        .envs(KEYS)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn genesis");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    while !line.contains("\"reconciling\"") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no reconciling event before the end of output");
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "exit 0 after SIGTERM at start-up");
}
