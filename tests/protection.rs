//! Every entry protected for exactly what it left, every fee counted: the exchange's trades are
//! the truth. Accounts hold only USDT, so a stop for more than the entry left is refused.

use crate::support::server::*;
use crate::support::*;
use genesis::exchange::Exchange;
use rust_decimal::Decimal;
use serde_json::Value;
use std::time::Duration;

const CALM: [&str; 3] = ["--no-confirm", "--tilt", "off"];

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn usdt_only(faults: &[&str]) -> Server {
    let mut args = vec!["--balances", "USDT=100000"];
    for fault in faults {
        args.extend(["--fault", fault]);
    }
    Server::start(&args)
}

/// ETHUSDT's step: quantities are floored to it.
const ETH_STEP: &str = "0.0001";

/// What an entry of `filled` ETH leaves after its commission in ETH, floored to the step.
fn left_after(filled: Decimal, commission_eth: Decimal) -> Decimal {
    let step = d(ETH_STEP);
    ((filled - commission_eth) / step).floor() * step
}

/// The exchange's trades of an order: (quantity, price, commission, commission asset).
fn trades(server: &Server, client_order_id: &str) -> Vec<(Decimal, Decimal, Decimal, String)> {
    let mut client = server.client();
    let report = client.query_order("ETHUSDT", client_order_id).expect("query");
    client
        .order_trades("ETHUSDT", report.exchange_order_id)
        .expect("myTrades")
        .into_iter()
        .map(|t| (t.qty, t.price, t.commission, t.commission_asset))
        .collect()
}

fn commission_in(trades: &[(Decimal, Decimal, Decimal, String)], asset: &str) -> Decimal {
    trades.iter().filter(|t| t.3 == asset).map(|t| t.2).sum()
}

fn stop_quantity(placed: &Value) -> Decimal {
    dec(&placed["quantity"])
}

#[test]
fn scenario_1_a_fill_learnt_by_query_is_protected_for_what_it_left_after_its_commission() {
    let server = usdt_only(&["place:5xx-after-execute"]);
    let work = Workdir::new();
    let s = run_on(&server, &work, &CALM, "buy ETHUSDT 0.01\npositions\n");
    let filled = s.first("order_filled");
    let entry = filled["client_order_id"].as_str().unwrap();
    let theirs = trades(&server, entry);
    let commission = commission_in(&theirs, "ETH");
    assert!(commission > Decimal::ZERO);
    assert_eq!(dec(&filled["commission"]), commission, "the commission comes from the trades, not 0");
    let expected = left_after(dec(&filled["filled_quantity"]), commission);
    assert_eq!(stop_quantity(s.first("stop_loss_placed")), expected);
    assert!(s.of_kind("stop_loss_failed").is_empty(), "{:?}", s.kinds());
    assert_eq!(s.first("positions")["positions"][0]["status"], "OPEN");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn scenario_1_an_entry_recovered_at_start_up_is_protected_for_what_it_left() {
    let server = usdt_only(&["place:drop-after-execute", "query:5xx-after-execute x6"]);
    let work = Workdir::new();
    // The placement's answer and every query of it are lost: the entry stays PENDING.
    let first = run_on(&server, &work, &CALM, "buy ETHUSDT 0.01\n");
    let entry = first.first("order_unknown")["client_order_id"].as_str().unwrap().to_string();
    let s = run_on(&server, &work, &CALM, "positions\n");
    let theirs = trades(&server, &entry);
    let filled: Decimal = theirs.iter().map(|t| t.0).sum();
    assert_eq!(stop_quantity(s.first("stop_loss_placed")), left_after(filled, commission_in(&theirs, "ETH")));
    assert_eq!(s.first("positions")["positions"][0]["status"], "OPEN");
    assert_server_and_database_agree(&server, &work);
}

/// Realized P&L as the exchange's trades give it, for one entry wholly closed by one exit.
fn pnl_from_trades(
    entry: &[(Decimal, Decimal, Decimal, String)],
    exit: &[(Decimal, Decimal, Decimal, String)],
) -> Decimal {
    let bought: Decimal = entry.iter().map(|t| t.0).sum();
    let entry_cost: Decimal = entry.iter().map(|t| t.0 * t.1).sum();
    let entry_price = entry_cost / bought;
    let entry_fees: Decimal = entry.iter().map(|t| t.2 * t.1).sum(); // in ETH, valued at the trade's price
    let sold: Decimal = exit.iter().map(|t| t.0).sum();
    let proceeds: Decimal = exit.iter().map(|t| t.0 * t.1).sum();
    let exit_fees: Decimal = exit.iter().map(|t| t.2).sum(); // in USDT
    proceeds - entry_price * sold - entry_fees - exit_fees
}

fn realized(work: &Workdir) -> Decimal {
    let conn = work.conn();
    let mut stmt = conn.prepare("SELECT pnl FROM realized_pnl").unwrap();
    let rows: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    rows.iter().map(|p| d(p)).sum()
}

#[test]
fn scenario_2_a_stop_that_filled_while_the_engine_was_down_books_its_exit_fee() {
    let server = usdt_only(&[]);
    let work = Workdir::new();
    let first = run_on(&server, &work, &CALM, "buy ETHUSDT 0.01\n");
    let entry = first.first("order_filled")["client_order_id"].as_str().unwrap().to_string();
    let stop = first.first("stop_loss_placed")["client_order_id"].as_str().unwrap().to_string();
    // The market falls through the stop while Genesis is not running.
    server.set_price("ETHUSDT", "2000.00", "2000.01");
    let s = run_on(&server, &work, &CALM, "positions\n");
    s.first("position_closed");
    let exit = trades(&server, &stop);
    assert!(commission_in(&exit, "USDT") > Decimal::ZERO);
    let expected = pnl_from_trades(&trades(&server, &entry), &exit);
    assert_eq!(realized(&work).round_dp(8), expected.round_dp(8), "realized P&L with every fee");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn scenario_2_a_stop_filled_as_seen_by_the_poll_books_its_exit_fee() {
    let server = usdt_only(&[]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &["--no-confirm", "--tilt", "off", "--watch-ms", "100"]);
    live.send("buy ETHUSDT 0.01");
    let entry = live.wait_for("order_filled", Duration::from_secs(10))["client_order_id"].as_str().unwrap().to_string();
    let stop =
        live.wait_for("stop_loss_placed", Duration::from_secs(10))["client_order_id"].as_str().unwrap().to_string();
    server.set_price("ETHUSDT", "2000.00", "2000.01");
    let closed = live.wait_for("position_closed", Duration::from_secs(10));
    assert!(live.finish().success());
    let exit = trades(&server, &stop);
    let expected = pnl_from_trades(&trades(&server, &entry), &exit);
    assert_eq!(dec(&closed["realized_pnl"]), expected.round_dp(8));
    assert_eq!(realized(&work).round_dp(8), expected.round_dp(8));
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn scenario_3_a_stop_limit_stranded_below_its_limit_is_cancelled_and_the_position_sold_at_market() {
    let server = usdt_only(&[]);
    let work = Workdir::new();
    let mut live =
        live_on(&server, &work, &["--no-confirm", "--tilt", "off", "--watch-ms", "100", "--quote-refresh-ms", "50"]);
    // BTCUSDT allows only STOP_LOSS_LIMIT.
    live.send("buy BTCUSDT 0.001");
    let placed = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    assert_eq!(placed["exchange_type"], "STOP_LOSS_LIMIT");
    let limit = dec(&placed["limit_price"]);
    // A gap through the stop and below its limit: the triggered limit order cannot fill.
    let gap = (limit * d("0.9")).round_dp(2);
    server.set_price("BTCUSDT", &gap.to_string(), &(gap + d("0.01")).to_string());
    let exit = live.wait_for("emergency_exit", Duration::from_secs(10));
    assert!(exit["reason"].as_str().unwrap().contains("below its limit"), "{exit}");
    live.wait_for("position_closed", Duration::from_secs(10));
    assert!(live.finish().success());
    let stop = placed["client_order_id"].as_str().unwrap();
    assert_eq!(order_field(&work.conn(), stop, "status").as_deref(), Some("CANCELLED"));
    assert_eq!(assert_server_and_database_agree(&server, &work).open_positions, 0);
}

#[test]
fn scenario_4_a_refused_stop_is_retried_while_running_until_the_position_is_protected() {
    let server = usdt_only(&["stop:reject x2"]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    let failed = live.wait_for("stop_loss_failed", Duration::from_secs(10));
    assert_eq!(failed["retry_in_ms"], 1000);
    // 1 s later refused again, 2 s after that placed.
    let placed = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    assert_eq!(placed["position_id"], failed["position_id"]);
    live.send("positions");
    assert_eq!(live.wait_for("positions", Duration::from_secs(5))["positions"][0]["status"], "OPEN");
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn scenario_4_resume_protects_what_halt_left_unprotected() {
    let server = usdt_only(&[]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    live.send("halt");
    live.wait_for("cancel_all", Duration::from_secs(10));
    live.send("resume");
    let again = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    live.send("positions");
    let positions = live.wait_for("positions", Duration::from_secs(5));
    assert_eq!(positions["positions"][0]["status"], "OPEN");
    assert_eq!(positions["positions"][0]["position_id"], again["position_id"]);
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn scenario_5_positions_left_without_stops_keep_their_slots_under_the_stop_order_limit() {
    let server = usdt_only(&[]);
    let work = Workdir::new();
    let input = "buy ETHUSDT 0.01\n".repeat(5) + "cancel-all\n" + &"buy ETHUSDT 0.01\n".repeat(3);
    let s = run_on(&server, &work, &CALM, &input);
    let refused = s.of_kind("order_rejected");
    assert_eq!(refused.len(), 3, "{:?}", s.kinds());
    assert!(refused.iter().all(|r| r["rule"] == "unprotectable"));
    // The next start protects all five within the limit.
    let again = run_on(&server, &work, &CALM, "positions\n");
    assert_eq!(again.first("reconciled")["stop_losses_placed"], 5);
    assert_eq!(assert_server_and_database_agree(&server, &work).open_positions, 5);
}
