//! Live order tracking on the binance gateway: the user data stream of the WebSocket API
//! pushes order changes; the poll of open orders stays as the fallback and the check.

use crate::support::server::*;
use crate::support::*;
use genesis::exchange::Exchange;
use rust_decimal::Decimal;
use serde_json::Value;
use std::time::{Duration, Instant};

fn start(server: &Server, work: &Workdir, extra: &[&str]) -> Live {
    let mut flags = vec!["--no-confirm", "--tilt", "off", "--daily-loss-limit", "100000"];
    flags.extend_from_slice(extra);
    live_on(server, work, &flags)
}

fn stats(live: &mut Live) -> Value {
    live.send("stats");
    live.wait_for("stats", Duration::from_secs(5))
}

/// Waits until `stats` says the user data stream is subscribed.
fn wait_stream_up(live: &mut Live) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if stats(live)["stream"] == "up" {
            return;
        }
        assert!(Instant::now() < deadline, "the user data stream never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ETHUSDT book as it stands, and a price 10% below it (through any stop).
fn prices(server: &Server) -> ((String, String), (String, String)) {
    let top = server.client().book_ticker("ETHUSDT").expect("book ticker");
    let low = (top.bid * Decimal::new(9, 1)).round_dp(2);
    let tick = Decimal::new(1, 2);
    ((top.bid.to_string(), top.ask.to_string()), (low.to_string(), (low + tick).to_string()))
}

#[test]
fn a_stop_triggered_by_a_price_move_is_pushed_by_the_stream_within_a_second() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work, &[]);
    wait_stream_up(&mut live);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let (_, (bid, ask)) = prices(&server);
    let moved = Instant::now();
    server.set_price("ETHUSDT", &bid, &ask);
    live.wait_for("stop_loss_triggered", Duration::from_secs(5));
    let seen = moved.elapsed();
    assert!(seen < Duration::from_secs(1), "seen after {seen:?}");
    live.wait_for("position_closed", Duration::from_secs(5));
    let s = stats(&mut live);
    assert!(s["updates_by_stream"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["worst_detection_ms"].as_u64().unwrap() < 1000, "{s}");
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_dropped_stream_loses_nothing_the_poll_catches_the_gap_and_the_stream_comes_back() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work, &[]);
    wait_stream_up(&mut live);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let (_, (bid, ask)) = prices(&server);
    // The stream goes down right before the stop triggers: no one is subscribed to hear it.
    assert_eq!(server.drop_streams(), 1);
    let moved = Instant::now();
    server.set_price("ETHUSDT", &bid, &ask);
    live.wait_for("stop_loss_triggered", Duration::from_secs(5));
    assert!(moved.elapsed() < Duration::from_secs(1), "seen after {:?}", moved.elapsed());
    live.wait_for("position_closed", Duration::from_secs(5));
    let s = stats(&mut live);
    assert!(s["updates_by_poll"].as_u64().unwrap() >= 1, "the poll caught the gap: {s}");
    // The stream reconnects and pushes again.
    wait_stream_up(&mut live);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let (_, (bid, ask)) = prices(&server);
    server.set_price("ETHUSDT", &bid, &ask);
    live.wait_for("stop_loss_triggered", Duration::from_secs(5));
    live.wait_for("position_closed", Duration::from_secs(5));
    let s = stats(&mut live);
    assert!(s["updates_by_stream"].as_u64().unwrap() >= 1, "after the reconnect the stream pushes: {s}");
    assert!(live.finish().success());
    let agreed = assert_server_and_database_agree(&server, &work);
    assert_eq!(agreed.open_positions, 0);
}

#[test]
fn an_order_cancelled_by_another_client_is_seen_by_the_stream() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work, &[]);
    wait_stream_up(&mut live);
    live.send("buy ETHUSDT 0.01");
    let placed = live.wait_for("stop_loss_placed", Duration::from_secs(10));
    let stop_id = placed["client_order_id"].as_str().unwrap().to_string();
    server.client().cancel_order("ETHUSDT", &stop_id).expect("another client cancels the stop");
    let cancelled = live.wait_for("order_cancelled", Duration::from_secs(2));
    assert_eq!(cancelled["client_order_id"], stop_id.as_str());
    assert_eq!(cancelled["reason"], "cancelled outside Genesis");
    let replaced = live.wait_for("stop_loss_placed", Duration::from_secs(5));
    assert_ne!(replaced["client_order_id"], stop_id.as_str());
    let s = stats(&mut live);
    assert!(s["updates_by_stream"].as_u64().unwrap() >= 1, "{s}");
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
}

fn median_and_worst(mut ms: Vec<u128>) -> (u128, u128) {
    ms.sort_unstable();
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

/// Detection delay, from the price move (`/sim/price`) to `stop_loss_triggered` on stdout,
/// 20 triggers with the poll alone (`--stream off`, poll every 250 ms) and 20 with the stream.
/// `cargo test --release --test integration -- --ignored --nocapture detection_delay`
#[test]
#[ignore]
fn detection_delay_poll_versus_stream() {
    const TRIGGERS: usize = 20;
    let mut lines = Vec::new();
    for mode in ["off", "on"] {
        let server = Server::start(&[]);
        let work = Workdir::new();
        let mut live = start(&server, &work, &["--stream", mode]);
        if mode == "on" {
            wait_stream_up(&mut live);
        }
        let ((bid0, ask0), (bid, ask)) = prices(&server);
        let mut delays = Vec::new();
        for _ in 0..TRIGGERS {
            live.send("buy ETHUSDT 0.01");
            live.wait_for("stop_loss_placed", Duration::from_secs(10));
            // Land the move at a random point of the poll's cycle.
            std::thread::sleep(Duration::from_millis(50 + (delays.len() as u64 * 37) % 250));
            let moved = Instant::now();
            server.set_price("ETHUSDT", &bid, &ask);
            live.wait_for("stop_loss_triggered", Duration::from_secs(5));
            delays.push(moved.elapsed().as_millis());
            live.wait_for("position_closed", Duration::from_secs(5));
            server.set_price("ETHUSDT", &bid0, &ask0);
        }
        let s = stats(&mut live);
        let (median, worst) = median_and_worst(delays);
        lines.push(format!(
            "{:<7} {TRIGGERS} triggers: median {median} ms, worst {worst} ms (engine: by poll {}, by stream {}, detection_ms {})",
            if mode == "on" { "stream" } else { "poll" },
            s["updates_by_poll"],
            s["updates_by_stream"],
            s["detection_ms"]
        ));
        assert!(live.finish().success());
        assert_server_and_database_agree(&server, &work);
    }
    println!("detection delay, price move to stop_loss_triggered:\n{}", lines.join("\n"));
}
