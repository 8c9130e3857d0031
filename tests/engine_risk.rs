//! Risk rules, tiers and the tilt guard, through the real binary on the simulator.

use crate::support::*;
use rust_decimal::Decimal;
use std::time::Duration;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn an_entry_above_five_percent_of_equity_is_refused_with_the_numbers() {
    let work = Workdir::new();
    // Equity on the simulator's default account is about 210,000 USDT: 5 % is about 10,500.
    let s = run_piped(&work, &["--no-confirm"], "buy BTCUSDT 0.2\n");
    let refused = s.first("order_rejected");
    assert_eq!(refused["rule"], "position_size");
    let message = refused["message"].as_str().unwrap();
    assert!(message.starts_with("order value 13000.00 USDT is above 5% of equity"), "{message}");
    assert!(s.of_kind("order_submitted").is_empty());
    assert_eq!(count(&work.conn(), "SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn exits_are_never_refused_by_the_position_rule() {
    let work = Workdir::new();
    // 0.5 BTC held from the start, worth far more than 5 % of equity.
    let s = run_piped(&work, &["--no-confirm"], "sell BTCUSDT 0.5\n");
    assert!(s.of_kind("order_rejected").is_empty(), "{}", s.stdout);
    assert_eq!(s.of_kind("order_filled").len(), 1);
}

#[test]
fn an_entry_below_ten_dollars_is_refused() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "buy SOLUSDT 0.05\n");
    let refused = s.first("order_rejected");
    assert_eq!(refused["rule"], "minimum_order");
    assert!(refused["message"].as_str().unwrap().contains("below the minimum order of 10.00 USDT"));
}

#[test]
fn buy_without_quantity_is_sized_to_the_position_rule() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm", "--max-position-pct", "1"], "buy ETHUSDT\naccount\n");
    let filled = s.first("order_filled");
    let equity = dec(&s.first("account")["equity"]);
    let notional = dec(&filled["filled_quantity"]) * dec(&filled["expected_price"]);
    assert!(notional <= equity * d("0.0101"), "{notional} vs {equity}");
    assert!(notional > equity * d("0.0099"), "{notional} vs {equity}");
}

#[test]
fn iceberg_is_refused_below_hunter_with_the_tier_needed() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm"], "iceberg BTCUSDT 0.01 5\ntwap BTCUSDT 0.01 10\n");
    let refusals = s.of_kind("order_rejected");
    assert_eq!(refusals.len(), 2);
    assert_eq!(refusals[0]["rule"], "tier");
    assert_eq!(refusals[0]["message"], "iceberg orders need tier HUNTER or above (account is SNIPER)");
    assert_eq!(refusals[1]["message"], "TWAP orders need tier STRATEGIST or above (account is SNIPER)");
    assert!(s.of_kind("order_submitted").is_empty());
}

#[test]
fn iceberg_as_hunter_executes_slices_recording_slice_numbers() {
    let work = Workdir::new();
    let s = run_piped(&work, &["--no-confirm", "--tier", "hunter", "--tilt", "off"], "iceberg ETHUSDT 0.04 4\n");
    assert!(s.of_kind("order_rejected").is_empty(), "{}", s.stdout);
    assert_eq!(s.of_kind("order_filled").len(), 4);
    let conn = work.conn();
    let slices: Vec<(i64, i64, String)> = conn
        .prepare("SELECT slice_number, total_slices, quantity FROM orders WHERE role = 'ENTRY' ORDER BY order_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(slices, (1..=4).map(|n| (n, 4, "0.01".to_string())).collect::<Vec<_>>());
}

#[test]
fn twap_as_strategist_spreads_its_slices_over_the_time_given() {
    let work = Workdir::new();
    let start = std::time::Instant::now();
    let s = run_piped(&work, &["--no-confirm", "--tier", "strategist", "--tilt", "off"], "twap SOLUSDT 0.2 2\n");
    assert_eq!(s.of_kind("order_filled").len(), 2);
    // The second slice waits a second: end of input does not cut a running TWAP short.
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(count(&work.conn(), "SELECT COUNT(*) FROM orders WHERE total_slices = 2 AND status = 'FILLED'"), 2);
}

#[test]
fn the_tier_is_saved_in_the_database() {
    let work = Workdir::new();
    run_piped(&work, &["--tier", "HUNTER"], "");
    let s = run_piped(&work, &[], "account\n");
    assert_eq!(s.first("account")["tier"], "HUNTER");
}

#[test]
fn losing_round_trips_reach_the_daily_loss_limit_and_block_new_entries_but_not_exits() {
    let work = Workdir::new();
    // Each 10 SOL round trip loses the spread and two 0.1 % fees: about 3 USDT.
    let args = ["--no-confirm", "--daily-loss-limit", "5", "--tilt", "off"];
    let s = run_piped(&work, &args, "buy SOLUSDT 10\nsell SOLUSDT 9.99\nbuy SOLUSDT 10\nsell SOLUSDT 9.99\nbuy SOLUSDT 10\nsell SOLUSDT 1\naccount\n");
    let refused = s.first("order_rejected");
    assert_eq!(refused["rule"], "daily_loss_limit");
    assert!(refused["message"].as_str().unwrap().starts_with("daily loss limit reached: realized -"));
    assert_eq!(s.of_kind("order_filled").len(), 5, "two round trips and the final exit");
    assert!(dec(&s.first("account")["realized_today"]) <= d("-5"));
    // After a restart the day's losses still count.
    let again = run_piped(&work, &args, "buy SOLUSDT 1\n");
    assert_eq!(again.first("order_rejected")["rule"], "daily_loss_limit");
}

#[test]
fn a_burst_of_entries_puts_the_account_in_a_tilt_cooldown_that_ends() {
    let work = Workdir::new();
    let config = work.dir.path().join("genesis.toml");
    std::fs::write(&config, "[risk.tilt]\nburst_orders = 2\nburst_window_secs = 10\ncooldown_secs = 1\n").unwrap();
    let mut live = Live::start(&work, &["--no-confirm", "--config", config.to_str().unwrap()]);
    live.send("buy SOLUSDT 0.1");
    live.wait_for("order_filled", Duration::from_secs(10));
    live.send("buy SOLUSDT 0.1");
    live.wait_for("order_filled", Duration::from_secs(10));
    live.send("buy SOLUSDT 0.1");
    let tilt = live.wait_for("tilt_changed", Duration::from_secs(10));
    assert_eq!(tilt["state"], "COOLDOWN");
    // Confirmations are off, yet the entry asks first.
    let request = live.wait_for("confirm_request", Duration::from_secs(10));
    assert_eq!(request["tilt_cooldown"], true);
    live.send("n");
    live.wait_for("order_cancelled", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    live.send("account");
    let account = live.wait_for("account", Duration::from_secs(10));
    assert_eq!(account["tilt"]["state"], "CALM");
    assert!(live.seen.iter().any(|e| e["event"] == "tilt_changed" && e["state"] == "CALM"));
    assert!(live.finish().success());
}
