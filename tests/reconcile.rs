//! Start-up reconciliation against genesis-exchange, deterministically: an engine runs and
//! exits, the exchange is changed behind its back (as a crash or another client would leave
//! it), and the next start must bring the database and the exchange back into agreement.

use crate::support::server::*;
use crate::support::*;
use genesis::domain::order::{ExchangeOrderType, ExchangeStatus, Side};
use genesis::exchange::{Exchange, NewOrder};
use rust_decimal::Decimal;
use serde_json::Value;
use std::time::Duration;

const CALM: [&str; 3] = ["--no-confirm", "--tilt", "off"];

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Runs the engine on `input` to its end; the session must end cleanly.
fn run(server: &Server, work: &Workdir, input: &str) -> Session {
    let s = run_on(server, work, &CALM, input);
    assert!(s.status.success(), "{}", s.stderr);
    s
}

fn prefix(s: &Session) -> String {
    s.first("ready")["client_id_prefix"].as_str().unwrap().to_string()
}

fn market(client_order_id: &str, side: Side, quantity: &str) -> NewOrder {
    NewOrder {
        symbol: "ETHUSDT".into(),
        side,
        order_type: ExchangeOrderType::Market,
        quantity: d(quantity),
        price: None,
        stop_price: None,
        client_order_id: client_order_id.into(),
    }
}

fn stop(client_order_id: &str, quantity: &str, stop_price: &str) -> NewOrder {
    NewOrder {
        symbol: "ETHUSDT".into(),
        side: Side::Sell,
        order_type: ExchangeOrderType::StopLoss,
        quantity: d(quantity),
        price: None,
        stop_price: Some(d(stop_price)),
        client_order_id: client_order_id.into(),
    }
}

fn reconciled(s: &Session) -> &Value {
    s.first("reconciled")
}

/// Leaves the database as a run killed with `kill -9` a minute ago would: its orders are not
/// accounted for, so the next start reads the exchange's history for orders the database lacks
/// (after a clean stop it reads none).
fn crash(work: &Workdir) {
    let a_minute_ago = (std::time::SystemTime::now() - Duration::from_secs(60))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        .to_string();
    work.conn()
        .execute("UPDATE settings SET value = ?1 WHERE key = 'orders_unrecorded_since_us'", [a_minute_ago])
        .unwrap();
}

#[test]
fn an_entry_and_its_stop_the_database_lacks_are_recovered_as_one_protected_position() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let p = prefix(&run(&server, &work, ""));
    // Sent by an engine killed before it recorded either: the entry 1 and the stop 2 of position 1.
    let mut client = server.client();
    client.place_order(&market(&format!("{p}-E1-0-lost"), Side::Buy, "0.01")).unwrap();
    let stop_id = format!("{p}-S2-1-lost");
    client.place_order(&stop(&stop_id, "0.0099", "2900.00")).unwrap();
    crash(&work);
    let s = run(&server, &work, "positions\n");
    assert_eq!(reconciled(&s)["recovered"], 2);
    assert_eq!(reconciled(&s)["stop_losses_placed"], 0, "the recovered stop protects it");
    let position = &s.first("positions")["positions"][0];
    assert_eq!(position["status"], "OPEN");
    // The entry's query carries no fills; the stop knew what the commission left.
    assert_eq!(position["quantity"], "0.0099");
    assert_eq!(order_field(&work.conn(), &stop_id, "position_id").as_deref(), Some("1"));
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_second_live_stop_of_a_position_is_cancelled_at_the_next_start() {
    // Coins held before: on spot a stop locks its coins, so only these let a second stop exist.
    let server = Server::start(&["--balances", "USDT=100000,ETH=10"]);
    let work = Workdir::new();
    let first = run(&server, &work, "buy ETHUSDT 0.01\n");
    let placed = first.first("stop_loss_placed");
    let kept = placed["client_order_id"].as_str().unwrap().to_string();
    let position_id = placed["position_id"].as_i64().unwrap();
    let extra = format!("{}-S3-{position_id}-dup", prefix(&first));
    server.client().place_order(&stop(&extra, "0.0099", "2900.00")).unwrap();
    crash(&work);
    let s = run(&server, &work, "");
    assert_eq!(reconciled(&s)["recovered"], 1);
    assert_eq!(reconciled(&s)["stop_losses_cancelled"], 1);
    let orders = server.orders(&["ETHUSDT"]);
    assert_eq!(orders[&extra].status, ExchangeStatus::Canceled);
    assert_eq!(orders[&kept].status, ExchangeStatus::New, "the stop the position names stays");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_stop_cancelled_while_the_engine_was_down_is_replaced_at_the_next_start() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let first = run(&server, &work, "buy ETHUSDT 0.01\n");
    let cancelled = first.first("stop_loss_placed")["client_order_id"].as_str().unwrap().to_string();
    server.client().cancel_order("ETHUSDT", &cancelled).unwrap();
    let s = run(&server, &work, "");
    assert_eq!((reconciled(&s)["checked"].as_i64(), reconciled(&s)["updated"].as_i64()), (Some(1), Some(1)));
    assert_eq!(reconciled(&s)["stop_losses_placed"], 1);
    let conn = work.conn();
    assert_eq!(order_field(&conn, &cancelled, "status").as_deref(), Some("CANCELLED"));
    assert_eq!(order_field(&conn, &cancelled, "reason").as_deref(), Some("cancelled while Genesis was not running"));
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_sell_the_database_lacks_closes_its_position_at_the_next_start() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let first = run(&server, &work, "buy ETHUSDT 0.01\n");
    let placed = first.first("stop_loss_placed");
    let position_id = placed["position_id"].as_i64().unwrap();
    // An engine killed mid-sell: it released the stop and sold, and recorded neither.
    let mut client = server.client();
    client.cancel_order("ETHUSDT", placed["client_order_id"].as_str().unwrap()).unwrap();
    let sell_id = format!("{}-X3-0-lost", prefix(&first));
    client.place_order(&market(&sell_id, Side::Sell, "0.0099")).unwrap();
    crash(&work);
    let s = run(&server, &work, "positions\n");
    assert_eq!(reconciled(&s)["recovered"], 1);
    assert_eq!(reconciled(&s)["stop_losses_placed"], 0);
    let closed = s.first("position_closed");
    assert_eq!(
        (closed["position_id"].as_i64(), closed["client_order_id"].as_str()),
        (Some(position_id), Some(&*sell_id))
    );
    assert_eq!(s.first("positions")["count"], 0);
    let agreed = assert_server_and_database_agree(&server, &work);
    assert_eq!(agreed.open_positions, 0);
}

#[test]
fn a_sell_whose_outcome_was_still_unknown_at_shutdown_closes_its_position_at_the_next_start() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = live_on(&server, &work, &CALM);
    live.send("buy ETHUSDT 0.01");
    let position_id = live.wait_for("stop_loss_placed", Duration::from_secs(10))["position_id"].as_i64().unwrap();
    // The sell (with its stop's cancel) executes but its answer is lost, and so are the
    // queries that would resolve it: the stop's, then the sell's five.
    server.fault("cancel-replace:drop-after-execute");
    server.fault("query:5xx-after-execute x6");
    live.send("sell ETHUSDT 0.0099");
    let sell = live.wait_for("order_unknown", Duration::from_secs(20))["client_order_id"].as_str().unwrap().to_string();
    assert!(live.finish().success());
    assert_eq!(order_field(&work.conn(), &sell, "status").as_deref(), Some("PENDING"));
    let s = run(&server, &work, "positions\n");
    assert_eq!(reconciled(&s)["stop_losses_placed"], 0, "no stop for coins already sold");
    let closed = s.first("position_closed");
    assert_eq!((closed["position_id"].as_i64(), closed["client_order_id"].as_str()), (Some(position_id), Some(&*sell)));
    assert_eq!(s.first("positions")["count"], 0);
    assert_eq!(assert_server_and_database_agree(&server, &work).open_positions, 0);
}
