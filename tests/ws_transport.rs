//! `--transport ws`: orders over the WebSocket API of genesis-exchange, the engine end to end
//! and the gateway on its own, with the server's fault plan.

use crate::support::server::*;
use crate::support::*;
use genesis::domain::money::Decimal;
use genesis::domain::order::{ExchangeOrderType, ExchangeStatus, Side};
use genesis::exchange::binance::ws_api::WsApiGateway;
use genesis::exchange::binance::BinanceConfig;
use genesis::exchange::{Exchange, ExchangeError, NewOrder, Replaced};
use std::time::Duration;

const CALM_WS: [&str; 5] = ["--no-confirm", "--tilt", "off", "--transport", "ws"];

/// The engine on `server` over the WebSocket API, with debug logs (they name each request).
fn run_ws(server: &Server, work: &Workdir, extra: &[&str], input: &str) -> Session {
    let mut all: Vec<String> = server.engine_args();
    all.extend(CALM_WS.iter().chain(extra).map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run_piped_env(
        work,
        &refs,
        input,
        &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET), ("RUST_LOG", "genesis::exchange=debug")],
    )
}

fn gateway(server: &Server) -> WsApiGateway {
    gateway_with(server, |_| {})
}

fn gateway_with(server: &Server, adjust: impl FnOnce(&mut BinanceConfig)) -> WsApiGateway {
    let mut config = BinanceConfig::new(server.url.clone(), KEY, SECRET);
    adjust(&mut config);
    let mut gateway = WsApiGateway::new(config).expect("gateway");
    patiently(|| gateway.sync_time());
    gateway
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn market(side: Side, qty: &str, id: &str) -> NewOrder {
    NewOrder {
        symbol: "ETHUSDT".into(),
        side,
        order_type: ExchangeOrderType::Market,
        quantity: d(qty),
        price: None,
        stop_price: None,
        client_order_id: id.into(),
    }
}

fn stop(qty: &str, stop_price: &str, id: &str) -> NewOrder {
    NewOrder {
        symbol: "ETHUSDT".into(),
        side: Side::Sell,
        order_type: ExchangeOrderType::StopLoss,
        quantity: d(qty),
        price: None,
        stop_price: Some(d(stop_price)),
        client_order_id: id.into(),
    }
}

#[test]
fn the_story_over_the_websocket_api_buy_protect_sell_cancel_all() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let input = "buy BTCUSDT 0.001\nbuy ETHUSDT 0.01\nsell ETHUSDT 0.0099\ncancel-all\npositions\n";
    let s = run_ws(&server, &work, &[], input);
    assert!(s.status.success(), "{}", s.stderr);
    assert_eq!(s.of_kind("order_filled").len(), 3, "{}", s.stdout);
    assert_eq!(s.of_kind("stop_loss_placed").len(), 2, "{}", s.stdout);
    assert_eq!(s.first("cancel_all")["cancelled"], 1);
    for method in ["order.place", "order.status", "order.cancelReplace", "openOrders.cancelAll"] {
        assert!(s.stderr.contains(&format!("ws-api: {method} -> 200")), "{method} not over ws:\n{}", s.stderr);
    }
    assert_eq!(s.first("positions")["positions"][0]["status"], "UNPROTECTED");
    // The next start re-protects the position cancel-all left bare, then all agrees.
    let again = run_ws(&server, &work, &[], "");
    assert_eq!(again.first("reconciled")["stop_losses_placed"], 1);
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_placement_whose_answer_is_lost_over_ws_is_resolved_by_query_never_resent() {
    let server = Server::start(&[]);
    server.fault("place:drop-after-execute");
    let work = Workdir::new();
    let s = run_ws(&server, &work, &[], "buy ETHUSDT 0.01\n");
    assert!(s.status.success(), "{}", s.stderr);
    assert_eq!(server.faults_fired(), 1);
    assert!(s.stderr.contains("order.place: no answer"), "{}", s.stderr);
    assert_eq!(s.of_kind("order_filled").len(), 1, "{}", s.stdout);
    let entries = server.orders(&["ETHUSDT"]).values().filter(|o| o.order_type == ExchangeOrderType::Market).count();
    assert_eq!(entries, 1, "the market order was placed once");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_connection_lost_mid_session_is_made_again_and_trading_goes_on() {
    let server = Server::start(&[]);
    let work = Workdir::new();
    let mut all = server.engine_args();
    all.extend(CALM_WS.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let env = [("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)];
    let mut live = Live::start_env(&engine_bin(), &work.db(), &refs, &env);
    live.send("buy ETHUSDT 0.01");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    // The verification of the next order loses its connection.
    server.fault("query:drop-after-execute");
    live.send("buy SOLUSDT 0.1");
    let filled = live.wait_for("order_filled", Duration::from_secs(10));
    assert_eq!(filled["symbol"], "SOLUSDT");
    live.wait_for("stop_loss_placed", Duration::from_secs(10));
    live.send("buy BTCUSDT 0.001");
    let filled = live.wait_for("order_filled", Duration::from_secs(10));
    assert_eq!(filled["symbol"], "BTCUSDT");
    assert!(live.finish().success());
    assert_eq!(server.faults_fired(), 1);
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn the_gateway_places_queries_cancels_and_cancel_replaces_over_ws() {
    // An account that holds only USDT: a sell of more than was bought is refused.
    let server = Server::start(&["--balances", "USDT=100000"]);
    let mut ws = gateway(&server);
    let bought = ws.place_order(&market(Side::Buy, "0.05", "ws-E1")).expect("placed");
    assert_eq!(bought.status, ExchangeStatus::Filled);
    assert!(!bought.fills.is_empty(), "a FULL answer carries the fills");
    let queried = ws.query_order("ETHUSDT", "ws-E1").expect("queried");
    assert_eq!(queried.executed_qty, bought.executed_qty);
    assert!(ws.last_timing().round_trip_ns > 0 && ws.last_timing().sign_ns > 0);
    let resting = ws.place_order(&stop("0.005", "1000", "ws-S1")).expect("stop placed");
    assert_eq!(resting.status, ExchangeStatus::New);
    let cancelled = ws.cancel_order("ETHUSDT", "ws-S1").expect("cancelled");
    assert_eq!(cancelled.status, ExchangeStatus::Canceled);
    assert_eq!(cancelled.client_order_id, "ws-S1");
    ws.place_order(&stop("0.005", "1000", "ws-S2")).expect("stop placed");
    match ws.cancel_replace("ws-S2", &market(Side::Sell, "0.005", "ws-X1")).expect("cancel-replace") {
        Replaced::Both { cancelled, placed } => {
            assert_eq!(cancelled.client_order_id, "ws-S2");
            assert_eq!(placed.status, ExchangeStatus::Filled);
        }
        other => panic!("{other:?}"),
    }
    // The stop is gone: the cancel is refused and the new order not attempted.
    match ws.cancel_replace("ws-S2", &market(Side::Sell, "0.005", "ws-X2")).expect("an answer") {
        Replaced::CancelRefused { error } => assert!(matches!(error, ExchangeError::Rejected { code: -2011, .. })),
        other => panic!("{other:?}"),
    }
    ws.place_order(&stop("0.005", "1000", "ws-S3")).expect("stop placed");
    // Cancelled, then a sell of more than the account holds is refused.
    match ws.cancel_replace("ws-S3", &market(Side::Sell, "0.5", "ws-X3")).expect("an answer") {
        Replaced::PlaceRefused { cancelled, error } => {
            assert_eq!(cancelled.client_order_id, "ws-S3");
            assert!(matches!(error, ExchangeError::Rejected { http_status: 409, .. }), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(ws.query_order("ETHUSDT", "never-placed").unwrap_err().is_no_such_order());
    ws.place_order(&stop("0.005", "1000", "ws-S4")).expect("stop placed");
    let all = ws.cancel_open_orders("ETHUSDT").expect("cancel-all");
    assert_eq!(all.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), ["ws-S4"]);
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()), "nothing open is an empty list");
    assert_eq!(ws.connections(), 1, "one connection for all of it");
    let (used, limit) = ws.weight_status().expect("rateLimits read");
    assert!(used > 0 && limit > 0);
    assert!(ws.order_count_10s().is_some_and(|n| n >= 1), "ORDERS counted");
    assert!(ws.order_limit_10s().is_none(), "exchangeInfo not read yet");
}

#[test]
fn the_gateway_reads_everything_else_over_rest() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    assert!(ws.exchange_info().expect("exchangeInfo").iter().any(|r| r.symbol == "ETHUSDT"));
    assert!(ws.order_limit_10s().is_some());
    assert!(ws.weight_status().is_some(), "REST's weight until a WebSocket answer says otherwise");
    assert!(ws.book_ticker("ETHUSDT").expect("ticker").ask > Decimal::ZERO);
    let placed = ws.place_order(&market(Side::Buy, "0.01", "ws-E2")).expect("placed");
    assert!(ws.account().expect("account").iter().any(|b| b.asset == "ETH"));
    assert!(ws.open_orders(Some("ETHUSDT")).expect("open orders").is_empty());
    assert_eq!(ws.all_orders("ETHUSDT").expect("all orders").len(), 1);
    assert_eq!(ws.orders_between("ETHUSDT", 0, i64::MAX / 2).expect("orders between").len(), 1);
    let trades = ws.order_trades("ETHUSDT", placed.exchange_order_id).expect("myTrades");
    assert_eq!(trades.iter().map(|t| t.qty).sum::<Decimal>(), placed.executed_qty);
    assert!(ws.last_timing().round_trip_ns > 0, "the REST call's timing");
    assert_eq!(ws.connections(), 1);
    assert!(format!("{ws:?}").contains("***"), "the key is hidden");
    assert!(!format!("{ws:?}").contains(KEY));
}

#[test]
fn a_lost_answer_is_unknown_and_the_next_request_connects_again() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    server.fault("place:drop-after-execute");
    let lost = ws.place_order(&market(Side::Buy, "0.01", "ws-E3")).unwrap_err();
    assert!(matches!(lost, ExchangeError::Unknown { .. }), "{lost:?}");
    let found = ws.query_order("ETHUSDT", "ws-E3").expect("the query finds it");
    assert_eq!(found.status, ExchangeStatus::Filled);
    assert_eq!(ws.connections(), 2);
}

#[test]
fn an_answer_later_than_the_read_timeout_is_unknown() {
    let server = Server::start(&[]);
    let mut ws = gateway_with(&server, |c| c.read_timeout = Duration::from_millis(300));
    server.fault("place:delay-after-execute:1500");
    let late = ws.place_order(&market(Side::Buy, "0.01", "ws-E4")).unwrap_err();
    assert!(matches!(&late, ExchangeError::Unknown { reason } if reason.contains("no answer")), "{late:?}");
    assert_eq!(ws.query_order("ETHUSDT", "ws-E4").expect("found").status, ExchangeStatus::Filled);
}

#[test]
fn a_server_error_after_execution_is_unknown() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    server.fault("place:5xx-after-execute");
    let e = ws.place_order(&market(Side::Buy, "0.01", "ws-E5")).unwrap_err();
    assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
    assert_eq!(ws.connections(), 1, "an answer came: the connection stays");
}

#[test]
fn a_short_429_is_waited_out_and_a_long_one_or_a_ban_is_rate_limited() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    server.fault("place:429:1");
    assert!(ws.place_order(&market(Side::Buy, "0.01", "ws-E6")).is_ok(), "refused, waited 1 s, sent again");
    server.fault("place:429:7");
    match ws.place_order(&market(Side::Buy, "0.01", "ws-E7")).unwrap_err() {
        ExchangeError::RateLimited { retry_after, banned: false, code: -1003, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7))
        }
        other => panic!("{other:?}"),
    }
    server.fault("place:418:120");
    match ws.place_order(&market(Side::Buy, "0.01", "ws-E8")).unwrap_err() {
        ExchangeError::RateLimited { retry_after, banned: true, .. } => {
            assert_eq!(retry_after, Duration::from_secs(120))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_timestamp_refusal_resyncs_the_clock_and_sends_once_more() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    server.fault("place:1021");
    let placed = ws.place_order(&market(Side::Buy, "0.01", "ws-E9")).expect("placed after the resync");
    assert_eq!(placed.status, ExchangeStatus::Filled);
    assert_eq!(server.orders(&["ETHUSDT"]).len(), 1);
    // Twice in a row: the second refusal is the answer.
    server.fault("place:1021 x2");
    let e = ws.place_order(&market(Side::Buy, "0.01", "ws-E10")).unwrap_err();
    assert!(e.is_timestamp_error(), "{e:?}");
}

#[test]
fn a_wrong_secret_is_refused_by_the_signature_check() {
    let server = Server::start(&[]);
    let mut ws = gateway_with(&server, |c| c.api_secret = "not-the-secret".into());
    let e = ws.place_order(&market(Side::Buy, "0.01", "ws-E11")).unwrap_err();
    assert!(matches!(e, ExchangeError::Rejected { code: -1022, .. }), "{e:?}");
    assert!(server.orders(&["ETHUSDT"]).is_empty());
}

#[test]
fn an_old_connection_is_replaced_between_requests() {
    let server = Server::start(&[]);
    let mut ws = gateway(&server);
    ws.open().expect("connected");
    ws.set_max_connection_age(Duration::ZERO);
    ws.place_order(&market(Side::Buy, "0.01", "ws-E12")).expect("placed");
    // Answered by the status sent with the placement, on the placement's connection.
    ws.query_order("ETHUSDT", "ws-E12").expect("verified");
    assert_eq!(ws.connections(), 2);
    ws.query_order("ETHUSDT", "ws-E12").expect("queried");
    assert_eq!(ws.connections(), 3, "each request on a new connection");
}

#[test]
fn no_server_is_not_sent() {
    let mut ws = WsApiGateway::new(BinanceConfig::new("http://127.0.0.1:9", KEY, SECRET)).unwrap();
    let e = ws.place_order(&market(Side::Buy, "0.01", "ws-E13")).unwrap_err();
    assert!(matches!(e, ExchangeError::NotSent { .. }), "{e:?}");
}

/// The fault matrix of the REST gateway (engine_binance.rs) over the WebSocket API: the server's
/// faults on every step the WebSocket API carries; after each (and a restart's reconciliation)
/// the server and the database agree.
#[test]
fn fault_matrix_over_ws_server_and_database_agree_after_every_fault() {
    // The faults whose handling depends on the transport (418, skew and reject are classified
    // as over REST, and the gateway tests above cover them).
    let faults = ["5xx-after-execute", "drop-after-execute", "delay-after-execute:1500", "429:1", "1021"];
    let steps = ["place", "query", "stop", "cancel-replace", "cancel-all"];
    for fault in faults {
        for step in steps {
            let server = Server::start(&["--balances", "USDT=100000"]);
            server.fault(&format!("{step}:{fault}"));
            let work = Workdir::new();
            let input = match step {
                "cancel-all" => "buy ETHUSDT 0.01\ncancel-all\n",
                "cancel-replace" => "buy ETHUSDT 0.01\nsell ETHUSDT 0.0099\n",
                _ => "buy ETHUSDT 0.01\n",
            };
            let s = run_ws(&server, &work, &["--read-timeout-ms", "500"], input);
            assert!(s.status.success(), "{fault} on {step}: {}", s.stderr);
            assert!(server.faults_fired() >= 1, "{fault} on {step} never fired");
            let again = run_ws(&server, &work, &["--read-timeout-ms", "500"], "");
            assert!(again.status.success(), "{fault} on {step}, restart: {}", again.stderr);
            assert_server_and_database_agree(&server, &work);
        }
    }
}

/// The kill test (crash.rs) over the WebSocket API, shorter: kill -9 at varied points while
/// orders go over `ws`, restart on the same database; nothing lost, nothing doubled, every
/// position protected.
#[test]
fn twenty_kill_9s_over_ws_lose_nothing_double_nothing_and_leave_every_position_protected() {
    use rand::{Rng, SeedableRng};
    // 10 ms per answer (WebSocket answers included) widens the windows the kills land in.
    let server = Server::start(&["--latency-us", "10000", "--balances", "USDT=100000"]);
    let work = Workdir::new();
    let mut args = server.engine_args();
    args.extend(CALM_WS.iter().map(|a| a.to_string()));
    args.extend(["--daily-loss-limit", "1000000", "--watch-ms", "100"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261206);
    let commands = ["buy ETHUSDT 0.01", "sell ETHUSDT 0.0099", "buy SOLUSDT 0.1", "sell SOLUSDT 0.099"];
    let mut buys_sent = 0;
    for _ in 0..20 {
        let mut live = Live::start_env(&engine_bin(), &work.db(), &args, &env);
        for _ in 0..rng.random_range(1..=3) {
            let command = commands[rng.random_range(0..commands.len())];
            buys_sent += usize::from(command.starts_with("buy"));
            live.send(command);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        live.kill9();
    }
    let live = Live::start_env(&engine_bin(), &work.db(), &args, &env);
    assert!(live.finish().success());
    assert_server_and_database_agree(&server, &work);
    let entries = server
        .orders(&["ETHUSDT", "SOLUSDT"])
        .keys()
        .filter(|cid| cid.split('-').nth(1).is_some_and(|h| h.starts_with('E')))
        .count();
    assert!(entries <= buys_sent, "{entries} entry orders on the server for {buys_sent} buy commands");
}
