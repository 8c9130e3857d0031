//! Quotes from the market stream (`--quotes stream`, the default on binance): an order's expected
//! price comes from the bookTicker stream and records the quote's age; a stale or dropped stream
//! falls back to REST quotes and trading goes on; once the stream is back, REST polling stops.

use crate::support::server::*;
use crate::support::*;
use genesis::exchange::Exchange;
use rust_decimal::Decimal;
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn start(server: &Server, work: &Workdir) -> Live {
    live_on(server, work, &["--no-confirm", "--tilt", "off", "--daily-loss-limit", "100000"])
}

/// The `quotes` object of `stats`.
fn quotes(live: &mut Live) -> Value {
    live.send("stats");
    live.wait_for("stats", Duration::from_secs(5))["quotes"].clone()
}

/// Asks `stats` until `ready(quotes)`; returns that `quotes`.
fn wait_quotes(live: &mut Live, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let q = quotes(live);
        if ready(&q) {
            return q;
        }
        assert!(Instant::now() < deadline, "never: {what}; last {q}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn on_stream(q: &Value) -> bool {
    q["source"] == "stream" && q["stream_symbols"].as_u64().unwrap_or(0) >= 1
}

/// Moves ETHUSDT up one dollar and waits until the engine's stream has the new top; returns the
/// new ask.
fn move_price_seen_on_stream(server: &Server, live: &mut Live) -> Decimal {
    let before = quotes(live)["stream_updates"].as_u64().unwrap();
    let top = server.client().book_ticker("ETHUSDT").expect("book ticker");
    let (bid, ask) = (top.bid + Decimal::ONE, top.ask + Decimal::ONE);
    server.set_price("ETHUSDT", &bid.to_string(), &ask.to_string());
    wait_quotes(live, "the price move on the stream", |q| q["stream_updates"].as_u64().unwrap() > before);
    ask
}

/// Buys 0.01 ETHUSDT; returns its `order_filled` event.
fn buy(live: &mut Live) -> Value {
    live.send("buy ETHUSDT 0.01");
    live.wait_for("order_filled", WAIT)
}

/// An order's expected price came from the stream: it is the moved ask, no REST quote was asked
/// for meanwhile, and its age is in the event and the database.
fn assert_priced_by_stream(server: &Server, work: &Workdir, live: &mut Live) {
    let rest_before = quotes(live)["rest_fetches"].as_u64().unwrap();
    let ask = move_price_seen_on_stream(server, live);
    let filled = buy(live);
    assert_eq!(dec(&filled["expected_price"]), ask, "{filled}");
    assert_eq!(quotes(live)["rest_fetches"].as_u64().unwrap(), rest_before, "no REST quote: REST polling is off");
    let age = filled["expected_price_age_us"].as_u64().expect("the quote's age");
    assert!(age < 3_000_000, "a live stream's quote is younger than the staleness limit: {age}");
    let coid = filled["client_order_id"].as_str().unwrap();
    assert_eq!(order_field(&work.conn(), coid, "expected_price_age_us"), Some(age.to_string()));
}

#[test]
fn an_orders_expected_price_comes_from_the_market_stream_with_its_age_recorded() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work);
    let first = buy(&mut live);
    assert!(first["expected_price_age_us"].is_u64(), "every order records its quote's age: {first}");
    wait_quotes(&mut live, "ETHUSDT on the stream", on_stream);
    assert_priced_by_stream(&server, &work, &mut live);
    assert!(live.finish().success());
}

#[test]
fn a_stale_market_stream_falls_back_to_rest_quotes_and_trading_goes_on_until_it_is_back() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work);
    buy(&mut live);
    wait_quotes(&mut live, "ETHUSDT on the stream", on_stream);
    server.silence_market_streams(true);
    let stale = wait_quotes(&mut live, "REST quotes", |q| q["source"] == "rest");
    let filled = buy(&mut live);
    assert!(filled["expected_price_age_us"].is_u64(), "{filled}");
    assert!(quotes(&mut live)["rest_fetches"].as_u64() > stale["rest_fetches"].as_u64(), "priced by REST");
    server.silence_market_streams(false);
    wait_quotes(&mut live, "the stream back", on_stream);
    assert_priced_by_stream(&server, &work, &mut live);
    assert!(live.finish().success());
}

#[test]
fn a_dropped_market_stream_reconnects_and_prices_orders_again() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut live = start(&server, &work);
    buy(&mut live);
    wait_quotes(&mut live, "ETHUSDT on the stream", on_stream);
    assert_eq!(server.drop_market_streams(), 1, "one connection for every symbol");
    let deadline = Instant::now() + WAIT;
    while server.market_stream_connections() == 0 {
        assert!(Instant::now() < deadline, "the engine never connected again");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A move is seen only by the connection made after the drop.
    move_price_seen_on_stream(&server, &mut live);
    wait_quotes(&mut live, "the stream back", on_stream);
    assert_priced_by_stream(&server, &work, &mut live);
    assert!(live.finish().success());
}
