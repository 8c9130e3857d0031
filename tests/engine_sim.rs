//! The core story on the embedded simulator, through the real binary.

use crate::support::*;
use rust_decimal::Decimal;
use std::time::Duration;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn buy_is_submitted_filled_verified_and_protected() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.001\n");
    assert!(s.status.success(), "stderr: {}", s.stderr);
    let filled = s.first("order_filled");
    let cid = filled["client_order_id"].as_str().unwrap();
    assert_eq!(filled["filled_quantity"], "0.001");
    assert_eq!(s.first("order_submitted")["client_order_id"], cid);
    let avg = dec(&filled["avg_price"]);
    let stop = s.first("stop_loss_placed");
    // 2 % below the average fill, rounded down to BTCUSDT's 0.01 tick.
    let expected_stop = (avg * d("0.98")).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero);
    assert_eq!(dec(&stop["stop_price"]), expected_stop);
    // BTCUSDT has no plain STOP_LOSS: the stop travels as STOP_LOSS_LIMIT.
    assert_eq!(stop["exchange_type"], "STOP_LOSS_LIMIT");
    // Commission was taken in BTC, so the stop covers what the buy left: 0.000999 → 0.00099.
    assert_eq!(stop["quantity"], "0.00099");
}

#[test]
fn with_pinning_required_the_engine_starts_and_an_order_fills() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm", "--pin", "on"], "buy BTCUSDT 0.001\n");
    assert!(s.status.success(), "stderr: {}", s.stderr);
    s.first("ready");
    assert_eq!(s.first("order_filled")["filled_quantity"], "0.001");
}

#[test]
fn each_order_filled_line_comes_before_its_stop_loss_events() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.001\nbuy ETHUSDT 0.01\n");
    assert!(s.status.success(), "stderr: {}", s.stderr);
    let at = |kind: &str, cid: &str| {
        s.events.iter().position(|e| e["event"] == kind && e["client_order_id"] == cid).expect(kind)
    };
    for filled in s.of_kind("order_filled") {
        let cid = filled["client_order_id"].as_str().unwrap();
        // A position takes its entry's order id.
        let stop = s
            .events
            .iter()
            .position(|e| e["event"] == "stop_loss_placed" && e["position_id"] == filled["order_id"])
            .expect("the buy's stop");
        assert!(
            at("order_submitted", cid) < at("order_filled", cid) && at("order_filled", cid) < stop,
            "{:?}",
            s.kinds()
        );
    }
}

#[test]
fn a_clean_exit_folds_the_wal_into_the_database_and_removes_it() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy ETHUSDT 0.01\n");
    assert!(s.status.success(), "stderr: {}", s.stderr);
    let mut wal = work.db().into_os_string();
    wal.push("-wal");
    assert!(!std::path::Path::new(&wal).exists(), "{wal:?} left behind");
    assert_eq!(count(&work.conn(), "SELECT COUNT(*) FROM orders WHERE status = 'FILLED'"), 1);
}

#[test]
fn every_order_and_its_stop_loss_land_in_the_database() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy ETHUSDT 0.01\n");
    assert!(s.status.success());
    let cid = s.first("order_filled")["client_order_id"].as_str().unwrap().to_string();
    let conn = work.conn();
    assert_eq!(order_field(&conn, &cid, "status").as_deref(), Some("FILLED"));
    assert_eq!(order_field(&conn, &cid, "type").as_deref(), Some("MARKET"));
    assert_eq!(order_field(&conn, &cid, "filled_quantity").as_deref(), Some("0.01"));
    assert!(order_field(&conn, &cid, "latency_ms").is_some());
    assert!(order_field(&conn, &cid, "slippage_percent").is_some());
    assert!(order_field(&conn, &cid, "executed_at").is_some());
    let stop_cid = s.first("stop_loss_placed")["client_order_id"].as_str().unwrap().to_string();
    assert_eq!(order_field(&conn, &stop_cid, "type").as_deref(), Some("STOP_LOSS"));
    // ETHUSDT allows plain STOP_LOSS.
    assert_eq!(order_field(&conn, &stop_cid, "exchange_type").as_deref(), Some("STOP_LOSS"));
    assert_eq!(order_field(&conn, &stop_cid, "status").as_deref(), Some("PENDING"));
    let (status, stop_id): (String, i64) =
        conn.query_row("SELECT status, stop_loss_order_id FROM positions", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(status, "OPEN");
    assert_eq!(Some(stop_id.to_string()), order_field(&conn, &stop_cid, "order_id"));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders WHERE typeof(quantity) <> 'text'"), 0);
    assert!(count(&conn, &format!("SELECT COUNT(*) FROM event_log WHERE correlation_id = '{cid}'")) >= 2);
}

#[test]
fn client_order_ids_carry_the_database_prefix() {
    let work = Workdir::new();
    let a = run_piped(&work, &["--no-confirm"], "buy SOLUSDT 0.1\n");
    let b = run_piped(&work, &["--no-confirm"], "buy SOLUSDT 0.1\n");
    let prefix = a.first("ready")["client_id_prefix"].as_str().unwrap().to_string();
    assert_eq!(b.first("ready")["client_id_prefix"], prefix.as_str());
    for s in [&a, &b] {
        let cid = s.first("order_filled")["client_order_id"].as_str().unwrap();
        assert!(cid.starts_with(&format!("{prefix}-")), "{cid}");
        assert!(cid.len() <= 36);
    }
}

#[test]
fn sell_releases_the_stop_closes_the_position_and_reprotects_the_rest() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy SOLUSDT 1\nsell SOLUSDT 0.5\npositions\n");
    assert!(s.status.success(), "{}", s.stderr);
    let kinds = s.kinds();
    assert_eq!(s.of_kind("stop_loss_placed").len(), 2, "{kinds:?}");
    assert!(s.of_kind("order_cancelled").iter().any(|e| e["reason"] == "released for a sell"));
    let positions = s.first("positions");
    assert_eq!(positions["count"], 1);
    let p = &positions["positions"][0];
    // 1 SOL less 0.1 % commission = 0.999; the sell took 0.5.
    assert_eq!(p["quantity"], "0.499");
    assert_eq!(p["status"], "OPEN");
}

#[test]
fn selling_the_whole_position_closes_it_with_realized_pnl() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy SOLUSDT 1\nsell SOLUSDT 0.999\npositions\n");
    let closed = s.first("position_closed");
    // Bought at the ask, sold at the bid, fees paid: a small loss.
    assert!(dec(&closed["realized_pnl"]) < Decimal::ZERO);
    assert_eq!(s.first("positions")["count"], 0);
    let conn = work.conn();
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM positions WHERE status = 'CLOSED' AND closed_at IS NOT NULL"), 1);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders WHERE role = 'STOP_LOSS' AND status = 'CANCELLED'"), 1);
}

#[test]
fn cancel_all_cancels_every_open_order_and_leaves_positions_unprotected() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.001\nbuy ETHUSDT 0.01\ncancel-all\norders\npositions\n");
    assert!(s.status.success());
    let cancel = s.first("cancel_all");
    assert_eq!(cancel["cancelled"], 2);
    assert_eq!(cancel["symbols"], serde_json::json!(["BTCUSDT", "ETHUSDT"]));
    assert_eq!(s.first("orders")["count"], 0);
    let positions = s.first("positions");
    assert!(positions["positions"].as_array().unwrap().iter().all(|p| p["status"] == "UNPROTECTED"));
    let conn = work.conn();
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders WHERE role = 'STOP_LOSS' AND status = 'CANCELLED'"), 2);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM event_log WHERE event = 'cancel_all'"), 1);
}

#[test]
fn cancel_all_with_nothing_open_says_so() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "cancel-all\n");
    assert_eq!(s.first("cancel_all")["cancelled"], 0);
}

#[test]
fn bad_input_gets_one_error_each_and_the_process_keeps_going() {
    let work = Workdir::new();
    let input = "byu BTCUSDT 1\nbuy XYZUSDT 1\nsell BTCUSDT\nbuy BTCUSDT 0\nbuy BTCUSDT -1\nbuy BTCUSDT abc\n\
                 buy BTCUSDT 0.000001\nbuy BTCUSDT 0.00001\ny\nstatus nope\n# a comment\n\nbuy BTCUSDT 0.001\n";
    let s = run_piped(&work, &["--no-confirm"], input);
    assert!(s.status.success());
    let errors: Vec<String> = s.of_kind("error").iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert_eq!(errors.len(), 10, "{errors:#?}");
    assert!(errors[0].starts_with("line 1: unknown command 'byu'"));
    assert!(errors[1].starts_with("line 2: unknown symbol 'XYZUSDT'"));
    assert!(errors[2].contains("missing quantity: usage: sell SYMBOL QTY"));
    assert!(errors[3].contains("'0' must be greater than zero"));
    assert!(errors[4].contains("'-1' must be greater than zero"));
    assert!(errors[5].contains("'abc' is not a number"));
    assert!(errors[6].contains("has more decimals than BTCUSDT's step size 0.00001 allows"));
    assert!(errors[7].contains("below BTCUSDT's minimum notional"));
    assert!(errors[8].contains("no order is waiting for a confirmation"));
    assert!(errors[9].contains("no order 'nope'"));
    // The last, valid line still executed, and nothing invalid reached the exchange.
    assert_eq!(s.of_kind("order_submitted").len(), 1);
    assert_eq!(count(&work.conn(), "SELECT COUNT(*) FROM orders WHERE role = 'ENTRY'"), 1);
}

#[test]
fn no_input_line_panics_the_engine() {
    let work = Workdir::new();
    let input = "\u{0}\u{1}\nbuy \u{1F600} 1\nbuy BTCUSDT 1e999\nsell BTCUSDT 99999999999999999999999999999\n\
                 status\nconfirm\nreject\n\u{ff}\u{fe}\n";
    let s = run_piped(&work, &["--no-confirm"], input);
    assert!(s.status.success(), "{}", s.stderr);
    assert!(!s.stderr.contains("panicked"));
}

#[test]
fn a_line_too_long_to_be_a_command_gets_one_error_and_the_next_line_runs() {
    let work = Workdir::new();
    let input = format!("{}\nbuy BTCUSDT 0.001\n", "x".repeat(200_000));
    let s = run_piped(&work, &["--no-confirm"], &input);
    assert!(s.status.success(), "{}", s.stderr);
    let errors = s.of_kind("error");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["message"], "line 1: longer than 65536 bytes; ignored up to its end");
    assert_eq!(s.of_kind("order_submitted").len(), 1);
}

#[test]
fn confirmation_shows_the_trade_and_y_executes_it() {
    let work = Workdir::new();
    let s = run_piped(&work, &[], "buy BTCUSDT 0.001\ny\n");
    let request = s.first("confirm_request");
    assert_eq!(request["side"], "BUY");
    assert_eq!(request["quantity"], "0.001");
    assert_eq!(request["symbol"], "BTCUSDT");
    let expected = dec(&request["expected_price"]);
    assert_eq!(dec(&request["notional"]), expected * d("0.001"));
    assert!(dec(&request["stop_loss_price"]) < expected);
    assert_eq!(s.of_kind("order_filled").len(), 1);
}

#[test]
fn n_rejects_the_oldest_confirmation_and_records_it_cancelled() {
    let work = Workdir::new();
    let s = run_piped(&work, &[], "buy BTCUSDT 0.001\nn\n");
    let cancelled = s.first("order_cancelled");
    assert_eq!(cancelled["reason"], "rejected by the user");
    assert!(s.of_kind("order_submitted").is_empty());
    let cid = cancelled["client_order_id"].as_str().unwrap();
    assert_eq!(order_field(&work.conn(), cid, "status").as_deref(), Some("CANCELLED"));
}

#[test]
fn confirm_and_reject_by_id_answer_a_specific_order() {
    let work = Workdir::new();
    let mut live = Live::start(&work, &[]);
    live.send("buy BTCUSDT 0.001");
    let first = live.wait_for("confirm_request", Duration::from_secs(10));
    live.send("buy ETHUSDT 0.01");
    let second = live.wait_for("confirm_request", Duration::from_secs(10));
    live.send(&format!("reject {}", first["order_id"]));
    live.wait_for("order_cancelled", Duration::from_secs(10));
    live.send(&format!("confirm {}", second["client_order_id"].as_str().unwrap()));
    let filled = live.wait_for("order_filled", Duration::from_secs(10));
    assert_eq!(filled["symbol"], "ETHUSDT");
    assert!(live.finish().success());
}

#[test]
fn an_unanswered_confirmation_is_auto_cancelled_after_the_timeout() {
    let work = Workdir::new();
    let mut live = Live::start(&work, &["--confirm-timeout", "1"]);
    live.send("buy BTCUSDT 0.001");
    let request = live.wait_for("confirm_request", Duration::from_secs(10));
    let cancelled = live.wait_for("order_cancelled", Duration::from_secs(10));
    assert_eq!(cancelled["order_id"], request["order_id"]);
    assert_eq!(cancelled["reason"], "no confirmation within 1 s");
    assert!(live.finish().success());
    let cid = request["client_order_id"].as_str().unwrap();
    let conn = work.conn();
    assert_eq!(order_field(&conn, cid, "status").as_deref(), Some("CANCELLED"));
    assert_eq!(order_field(&conn, cid, "reason").as_deref(), Some("no confirmation within 1 s"));
}

#[test]
fn confirm_off_is_remembered_across_restarts() {
    let work = Workdir::new();
    run_piped(&work, &[], "confirm off\n");
    let s = run_piped(&work, &[], "buy BTCUSDT 0.001\n");
    assert!(s.of_kind("confirm_request").is_empty());
    assert_eq!(s.of_kind("order_filled").len(), 1);
}

#[test]
fn status_shows_fill_slippage_latency_and_stop_loss() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.001\nstatus 1\n");
    let status = s.first("status");
    assert_eq!(status["order"]["status"], "FILLED");
    assert_eq!(status["order"]["filled_quantity"], "0.001");
    assert!(status["order"]["avg_price"].is_string());
    assert!(status["order"]["slippage_percent"].is_string());
    assert!(status["order"]["latency_ms"].is_number());
    assert_eq!(status["stop_loss"]["type"], "STOP_LOSS");
    assert_eq!(status["position"]["status"], "OPEN");
}

#[test]
fn the_exchange_state_survives_a_restart() {
    let work = Workdir::new();
    run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.001\n");
    // A new process finds the stop still open on the exchange and cancels it.
    let s = run_piped(&work, &["--no-confirm"], "orders\ncancel-all\n");
    assert_eq!(s.first("orders")["count"], 1);
    assert_eq!(s.first("cancel_all")["cancelled"], 1);
}

#[test]
fn piped_commands_all_complete_before_exit() {
    let work = Workdir::new();
    let mut input = String::new();
    for _ in 0..20 {
        input.push_str("buy SOLUSDT 0.1\nsell SOLUSDT 0.099\n");
    }
    // Twenty entries in a burst would put a person in the tilt guard's cooldown.
    let s = run_piped(&work, &["--no-confirm", "--tilt", "off"], &input);
    assert!(s.status.success());
    assert_eq!(s.of_kind("order_filled").len(), 40);
    let conn = work.conn();
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders WHERE role IN ('ENTRY', 'EXIT') AND status = 'FILLED'"), 40);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM orders WHERE status IN ('PENDING', 'PARTIAL') AND role <> 'STOP_LOSS'"),
        0
    );
}

#[test]
fn help_lists_the_commands() {
    let work = Workdir::new();
    let s = run_piped(&work, &[], "help\n");
    assert!(s.first("help")["commands"].as_str().unwrap().contains("cancel-all"));
}

#[test]
fn text_output_is_one_readable_line_per_event() {
    let work = Workdir::new();
    let out = std::process::Command::new(engine_bin())
        .args(["--no-confirm", "--db"])
        .arg(work.db())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"buy BTCUSDT 0.001\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("order_filled") && l.contains("BTCUSDT")), "{text}");
    assert!(text.lines().all(|l| !l.starts_with('{')));
}

#[test]
fn a_price_move_through_the_stop_is_detected_and_closes_the_position() {
    let work = Workdir::new();
    let mut live = Live::start(&work, &["--no-confirm", "--daily-loss-limit", "5"]);
    live.send("buy ETHUSDT 0.01");
    let placed = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    live.send("price ETHUSDT 2000 2000.01");
    live.wait_for("price_set", Duration::from_secs(5));
    let moved = std::time::Instant::now();
    let triggered = live.wait_for("stop_loss_triggered", Duration::from_secs(5));
    assert!(moved.elapsed() < Duration::from_secs(1), "detected after {:?}", moved.elapsed());
    assert_eq!(triggered["client_order_id"], placed["client_order_id"]);
    assert_eq!(triggered["fill_price"], "2000");
    let closed = live.wait_for("position_closed", Duration::from_secs(5));
    // Bought 0.01 at 3000, 0.0099 sold at 2000: about -10 USDT with fees.
    assert!(dec(&closed["realized_pnl"]) < d("-9.9"));
    // The stop-out's loss counts against the day: the next entry is refused.
    live.send("buy SOLUSDT 0.1");
    let refused = live.wait_for("order_rejected", Duration::from_secs(5));
    assert_eq!(refused["rule"], "daily_loss_limit");
    assert!(live.finish().success());
    let conn = work.conn();
    let stop_cid = placed["client_order_id"].as_str().unwrap();
    assert_eq!(order_field(&conn, stop_cid, "status").as_deref(), Some("FILLED"));
    assert_eq!(order_field(&conn, stop_cid, "filled_quantity").as_deref(), Some("0.0099"));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM positions WHERE status = 'CLOSED'"), 1);
}

#[test]
fn a_locked_database_stops_new_orders_keeps_the_records_and_recovers() {
    let work = Workdir::new();
    let mut live = Live::start(&work, &["--no-confirm"]);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    // Another process holds the database exclusively for longer than the engine's busy timeout.
    let holder = work.conn();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    live.send("buy SOLUSDT 0.1");
    live.wait_for("order_filled", Duration::from_secs(10));
    let error = live.wait_for("error", Duration::from_secs(15));
    assert!(error["message"].as_str().unwrap().starts_with("database write failed"), "{error}");
    live.send("buy SOLUSDT 0.1");
    let refused = live.wait_for("error", Duration::from_secs(5));
    assert!(refused["message"].as_str().unwrap().contains("the database refuses writes"), "{refused}");
    holder.execute_batch("COMMIT").unwrap();
    live.wait_for("database_ok", Duration::from_secs(10));
    assert!(live.finish().success());
    // Nothing the engine did while the database was locked was lost.
    let conn = work.conn();
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders WHERE role = 'ENTRY' AND status = 'FILLED'"), 2);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM positions WHERE status = 'OPEN'"), 2);
}
