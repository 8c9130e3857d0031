//! The binance gateway end to end, over HTTP on loopback, against genesis-exchange.

use crate::support::server::*;
use crate::support::*;
use std::time::Duration;

const CALM: [&str; 3] = ["--no-confirm", "--tilt", "off"];

#[test]
fn buy_verify_protect_sell_and_cancel_all_over_http() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let input = "buy BTCUSDT 0.001\nbuy ETHUSDT 0.01\nsell ETHUSDT 0.0099\nbyu BTCUSDT 1\ncancel-all\npositions\n";
    let s = run_on(&server, &work, &CALM, input);
    assert!(s.status.success(), "{}", s.stderr);
    assert_eq!(s.of_kind("order_filled").len(), 3, "{}", s.stdout);
    let stops = s.of_kind("stop_loss_placed");
    assert_eq!(stops[0]["exchange_type"], "STOP_LOSS_LIMIT", "BTCUSDT allows no plain STOP_LOSS");
    assert!(s.of_kind("position_closed").iter().any(|e| e["position_id"].as_i64().is_some()));
    assert!(s.first("error")["message"].as_str().unwrap().contains("unknown command 'byu'"));
    assert_eq!(s.first("cancel_all")["cancelled"], 1);
    assert_eq!(s.first("positions")["positions"][0]["status"], "UNPROTECTED");
    // The next start re-protects the position cancel-all left bare, then all agrees.
    let again = run_on(&server, &work, &CALM, "");
    assert_eq!(again.first("reconciled")["stop_losses_placed"], 1);
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn an_order_cancelled_by_another_client_is_noticed_and_the_position_reprotected() {
    use genesis::exchange::Exchange;
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    let placed = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let stop_id = placed["client_order_id"].as_str().unwrap().to_string();
    server.client().cancel_order("ETHUSDT", &stop_id).expect("another client cancels the stop");
    let cancelled = live.wait_for("order_cancelled", Duration::from_secs(5));
    assert_eq!(cancelled["client_order_id"], stop_id.as_str());
    assert_eq!(cancelled["reason"], "cancelled outside Genesis");
    let replaced = live.wait_for("stop_loss_placed", Duration::from_secs(5));
    assert_ne!(replaced["client_order_id"], stop_id.as_str());
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_stop_triggered_by_a_price_move_is_seen_within_a_second_and_closes_the_position() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &[CALM[0], CALM[1], CALM[2], "--daily-loss-limit", "5"]);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let moved = std::time::Instant::now();
    server.set_price("ETHUSDT", "2000.00", "2000.01");
    live.wait_for("stop_loss_triggered", Duration::from_secs(5));
    assert!(moved.elapsed() < Duration::from_secs(1), "seen after {:?}", moved.elapsed());
    live.wait_for("position_closed", Duration::from_secs(5));
    live.send("buy SOLUSDT 0.1");
    assert_eq!(live.wait_for("order_rejected", Duration::from_secs(5))["rule"], "daily_loss_limit");
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn secrets_never_reach_stdout_logs_or_the_database() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut all = server.engine_args();
    all.extend(CALM.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let s = run_piped_env(
        &work,
        &refs,
        "buy BTCUSDT 0.001\nstatus 1\naccount\n",
        &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET), ("RUST_LOG", "trace")],
    );
    assert!(s.status.success());
    for secret in [KEY, SECRET] {
        assert!(!s.stdout.contains(secret), "secret on stdout");
        assert!(!s.stderr.contains(secret), "secret in the logs");
    }
    let dump = std::fs::read(work.db()).unwrap();
    for secret in [KEY, SECRET] {
        assert!(!dump.windows(secret.len()).any(|w| w == secret.as_bytes()), "secret in the database");
    }
}

#[test]
fn a_missing_key_is_a_clear_startup_error() {
    let work = Workdir::new();
    let s = run_piped_env(
        &work,
        &["--exchange", "binance", "--base-url", "http://127.0.0.1:9"],
        "",
        &[("BINANCE_API_KEY", ""), ("BINANCE_API_SECRET", "")],
    );
    assert!(!s.status.success());
    assert!(s.stderr.contains("needs the BINANCE_API_KEY environment variable"), "{}", s.stderr);
}

#[test]
fn production_is_refused_without_live() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--exchange", "binance", "--base-url", "https://api.binance.com"], "");
    assert_eq!(s.status.code(), Some(2));
    assert!(s.stderr.contains("is the production exchange (real money): add --live"), "{}", s.stderr);
}

/// One fault of the exchange server on one step of the order path.
struct Case {
    step: &'static str,
    fault: &'static str,
}

fn outcome(s: &Session) -> String {
    let mut parts = Vec::new();
    let filled = s.of_kind("order_filled").len();
    let failed: Vec<String> =
        s.of_kind("order_failed").iter().map(|e| e["reason"].as_str().unwrap_or("").to_string()).collect();
    if filled > 0 {
        parts.push(format!("{filled} filled"));
    }
    for reason in failed {
        parts.push(format!("failed ({})", reason.chars().take(60).collect::<String>()));
    }
    if !s.of_kind("order_unknown").is_empty() {
        parts.push("left PENDING, unknown".into());
    }
    let stops = s.of_kind("stop_loss_placed").len();
    if stops > 0 {
        parts.push(format!("{stops} stop placed"));
    }
    if !s.of_kind("stop_loss_failed").is_empty() {
        parts.push("stop failed: UNPROTECTED".into());
    }
    if !s.of_kind("rate_limited").is_empty() {
        parts.push("waited out the limit".into());
    }
    for c in s.of_kind("cancel_all") {
        parts.push(format!("cancel-all cancelled {}", c["cancelled"]));
    }
    parts.join("; ")
}

/// What position `position_id`'s entry (its order id) left in the account, by the exchange's
/// trades: its fill less its commission in ETH, floored to ETHUSDT's step.
fn what_the_entry_left(server: &Server, position_id: i64) -> rust_decimal::Decimal {
    use genesis::exchange::Exchange;
    let orders = server.orders(&["ETHUSDT"]);
    let (_, entry) = orders
        .iter()
        .find(|(cid, _)| cid.split('-').nth(1) == Some(&format!("E{position_id}")))
        .expect("the position's entry on the server");
    let trades = server.client().order_trades("ETHUSDT", entry.exchange_order_id).expect("myTrades");
    let left: rust_decimal::Decimal = trades.iter().map(|t| t.qty).sum::<rust_decimal::Decimal>()
        - trades.iter().filter(|t| t.commission_asset == "ETH").map(|t| t.commission).sum::<rust_decimal::Decimal>();
    let step: rust_decimal::Decimal = "0.0001".parse().unwrap();
    (left / step).floor() * step
}

/// Every fault of the server on placement, verification, stop-loss placement and cancel-all;
/// after each, the server and the database agree (after the restart's reconciliation).
#[test]
fn fault_matrix_server_and_database_agree_after_every_fault() {
    let faults = [
        "5xx-after-execute",
        "drop-after-execute",
        "delay-after-execute:1500",
        "429:1",
        "418:1",
        "1021",
        "skew:-3000",
        "reject",
    ];
    let steps = ["place", "query", "stop", "cancel-replace", "cancel-all"];
    let mut table = String::from(
        "| fault \\ step | placement | verification | stop-loss placement | sell releasing its stop | cancel-all |\n\
         |---|---|---|---|---|---|\n",
    );
    for fault in faults {
        table.push_str(&format!("| `{fault}` |"));
        for step in steps {
            let case = Case { step, fault };
            // An account that holds only USDT: a stop for more than an entry left is refused.
            let server = Server::start(&["--balances", "USDT=100000"]);
            server.fault(&format!("{}:{}", case.step, case.fault));
            let work = Workdir::new();
            let args = ["--no-confirm", "--tilt", "off", "--read-timeout-ms", "500"];
            let input = match step {
                "cancel-all" => "buy ETHUSDT 0.01\ncancel-all\n",
                // A sell places itself and cancels its position's stop in one request.
                "cancel-replace" => "buy ETHUSDT 0.01\nsell ETHUSDT 0.0099\n",
                _ => "buy ETHUSDT 0.01\n",
            };
            let s = run_on(&server, &work, &args, input);
            assert!(s.status.success(), "{fault} on {step}: {}", s.stderr);
            assert!(server.faults_fired() >= 1, "{fault} on {step} never fired");
            // A restart reconciles whatever the fault left unknown.
            let again = run_on(&server, &work, &args, "");
            assert!(again.status.success(), "{fault} on {step}, restart: {}", again.stderr);
            assert_server_and_database_agree(&server, &work);
            for placed in s.of_kind("stop_loss_placed").into_iter().chain(again.of_kind("stop_loss_placed")) {
                let position_id = placed["position_id"].as_i64().unwrap();
                assert_eq!(
                    dec(&placed["quantity"]),
                    what_the_entry_left(&server, position_id),
                    "{fault} on {step}: the stop of position {position_id}"
                );
            }
            table.push_str(&format!(" {} |", outcome(&s)));
        }
        table.push('\n');
    }
    println!("{table}");
}

#[test]
fn an_unknown_outcome_stays_pending_visibly_and_is_resolved_during_operation() {
    let server = Server::start(&[]);
    // The placement executes but its answer is lost; the next five queries fail too.
    server.fault("place:drop-after-execute");
    server.fault("query:5xx-after-execute x5");
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    let unknown = live.wait_for("order_unknown", Duration::from_secs(20));
    live.send(&format!("status {}", unknown["order_id"]));
    let status = live.wait_for("status", Duration::from_secs(5));
    assert_eq!(status["order"]["status"], "PENDING");
    assert!(status["order"]["reason"].as_str().unwrap().starts_with("outcome unknown"));
    let resolved = live.wait_for("order_resolved", Duration::from_secs(15));
    assert_eq!(resolved["exchange_status"], "FILLED");
    live.wait_for("stop_loss_placed", Duration::from_secs(5));
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_stop_loss_that_cannot_be_placed_leaves_the_position_unprotected_and_says_so() {
    let server = Server::start(&[]);
    server.fault("stop:reject x3");
    let work = Workdir::new();
    let s = run_on(&server, &work, &CALM, "buy ETHUSDT 0.01\npositions\n");
    let failed = s.first("stop_loss_failed");
    assert!(failed["reason"].as_str().unwrap().contains("-2010"), "{failed}");
    assert!(s.stderr.contains("UNPROTECTED"), "logged at error level: {}", s.stderr);
    assert_eq!(s.first("positions")["positions"][0]["status"], "UNPROTECTED");
    assert_eq!(count(&work.conn(), "SELECT COUNT(*) FROM orders WHERE role = 'STOP_LOSS' AND status = 'FAILED'"), 1);
}

#[test]
fn a_stop_the_market_already_passed_becomes_an_emergency_exit_at_market() {
    let server = Server::start(&[]);
    server.fault("stop:trigger-immediately");
    let work = Workdir::new();
    let s = run_on(&server, &work, &CALM, "buy ETHUSDT 0.01\npositions\n");
    let exit = s.first("emergency_exit");
    assert_eq!(exit["quantity"], "0.0099");
    assert!(s.of_kind("position_closed").len() == 1, "{}", s.stdout);
    assert_eq!(s.first("positions")["count"], 0);
    assert_eq!(
        count(&work.conn(), "SELECT COUNT(*) FROM orders WHERE role = 'EMERGENCY_EXIT' AND status = 'FILLED'"),
        1
    );
    assert_server_and_database_agree(&server, &work);
}

/// The gateway's cancel-replace against the real server: a stop-limit sell of `stop_qty` BTC
/// placed first (the book at 60,000), then the gateway and the stop's client id.
mod cancel_replace {
    use super::*;
    use genesis::domain::order::{ExchangeOrderType, ExchangeStatus, Side};
    use genesis::exchange::binance::BinanceGateway;
    use genesis::exchange::{Exchange, ExchangeError, NewOrder, Replaced};
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn market_sell(quantity: &str, client_order_id: &str) -> NewOrder {
        NewOrder {
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            order_type: ExchangeOrderType::Market,
            quantity: d(quantity),
            price: None,
            stop_price: None,
            client_order_id: client_order_id.into(),
        }
    }

    /// These pin the gateway's `cancelReplace` against the server, not an engine's account: the
    /// stop they place needs coins that no buy of theirs brought.
    const CANCEL_REPLACE_ACCOUNT: &[&str] = &["--balances", "USDT=100000,BTC=1"];

    fn with_stop(server: &Server, stop_qty: &str) -> (BinanceGateway, &'static str) {
        server.set_price("BTCUSDT", "60000.00", "60000.01");
        let mut gateway = server.client();
        let stop = NewOrder {
            order_type: ExchangeOrderType::StopLossLimit,
            price: Some(d("58900")),
            stop_price: Some(d("59000")),
            ..market_sell(stop_qty, "t-S1")
        };
        assert_eq!(gateway.place_order(&stop).expect("the stop").status, ExchangeStatus::New);
        (gateway, "t-S1")
    }

    fn btc_locked(gateway: &mut BinanceGateway) -> Decimal {
        gateway.account().unwrap().into_iter().find(|b| b.asset == "BTC").unwrap().locked
    }

    #[test]
    fn releases_a_stop_and_sells_the_coins_it_locked_in_one_request() {
        let server = Server::start(CANCEL_REPLACE_ACCOUNT);
        let (mut gateway, stop) = with_stop(&server, "1");
        assert_eq!(btc_locked(&mut gateway), d("1"));
        let replaced = gateway.cancel_replace(stop, &market_sell("1", "t-M1")).unwrap();
        let Replaced::Both { cancelled, placed } = replaced else { panic!("both parts expected: {replaced:?}") };
        assert_eq!((cancelled.client_order_id.as_str(), cancelled.status), (stop, ExchangeStatus::Canceled));
        assert_eq!((placed.client_order_id.as_str(), placed.status), ("t-M1", ExchangeStatus::Filled));
        assert_eq!(placed.executed_qty, d("1"));
        assert!(!placed.fills.is_empty());
        assert_eq!(btc_locked(&mut gateway), Decimal::ZERO);
    }

    #[test]
    fn an_unknown_order_is_cancel_refused_and_nothing_is_placed() {
        let server = Server::start(CANCEL_REPLACE_ACCOUNT);
        let mut gateway = server.client();
        let replaced = gateway.cancel_replace("t-gone", &market_sell("0.001", "t-M2")).unwrap();
        assert_eq!(
            replaced,
            Replaced::CancelRefused {
                error: ExchangeError::Rejected { http_status: 400, code: -2011, msg: "Unknown order sent.".into() }
            }
        );
        assert!(gateway.query_order("BTCUSDT", "t-M2").unwrap_err().is_no_such_order());
    }

    #[test]
    fn a_refused_new_order_is_place_refused_and_the_cancel_stands() {
        let server = Server::start(CANCEL_REPLACE_ACCOUNT);
        let (mut gateway, stop) = with_stop(&server, "0.5");
        let replaced = gateway.cancel_replace(stop, &market_sell("2", "t-M3")).unwrap();
        let Replaced::PlaceRefused { cancelled, error } = replaced else { panic!("409 expected: {replaced:?}") };
        assert_eq!((cancelled.client_order_id.as_str(), cancelled.status), (stop, ExchangeStatus::Canceled));
        assert!(matches!(error, ExchangeError::Rejected { http_status: 409, code: -2010, .. }), "{error:?}");
        assert_eq!(gateway.query_order("BTCUSDT", stop).unwrap().status, ExchangeStatus::Canceled);
        assert!(gateway.query_order("BTCUSDT", "t-M3").unwrap_err().is_no_such_order());
    }

    #[test]
    fn a_503_after_execution_is_unknown_though_both_parts_happened() {
        let server = Server::start(CANCEL_REPLACE_ACCOUNT);
        let (mut gateway, stop) = with_stop(&server, "0.5");
        server.fault("cancel-replace:5xx-after-execute");
        let e = gateway.cancel_replace(stop, &market_sell("0.5", "t-M4")).unwrap_err();
        assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
        assert_eq!(server.faults_fired(), 1);
        assert_eq!(gateway.query_order("BTCUSDT", stop).unwrap().status, ExchangeStatus::Canceled);
        assert_eq!(gateway.query_order("BTCUSDT", "t-M4").unwrap().status, ExchangeStatus::Filled);
    }
}
