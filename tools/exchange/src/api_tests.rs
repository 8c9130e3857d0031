//! Handlers without sockets: signed requests built with the engine's own signer.

use super::*;
use genesis::exchange::binance::sign::QueryBuilder;
use genesis::exchange::binance::{Secret, Signer};
use genesis::exchange::sim::SimConfig;
use serde_json::{json, Value};

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";
/// A fixed local clock (a multiple of 60 s, so windows start here).
const NOW: i64 = 1_700_000_040_000;

fn app(order_limit: u64, faults: &[&str]) -> App {
    App::new(
        Simulator::new(SimConfig::default()),
        Credentials { api_key: KEY.into(), api_secret: SECRET.into() },
        order_limit,
        faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
        7,
    )
}

/// `params` + timestamp, signed, as the gateway sends it (POST: form body; else: query).
struct Call {
    method: &'static str,
    path: String,
    query: String,
    body: String,
    key: Option<&'static str>,
}

fn signed(method: &'static str, path: &str, params: &[(&str, &str)], timestamp: i64) -> Call {
    let mut payload = String::new();
    {
        let mut q = QueryBuilder::new(&mut payload);
        for (k, v) in params {
            q.str(k, v);
        }
        q.display("timestamp", timestamp);
    }
    Signer::new(&Secret::from(SECRET)).append_signature(&mut payload);
    let (query, body) = if method == "POST" { (String::new(), payload) } else { (payload, String::new()) };
    Call { method, path: path.into(), query, body, key: Some(KEY) }
}

fn public(path: &str, query: &str) -> Call {
    Call { method: "GET", path: path.into(), query: query.into(), body: String::new(), key: None }
}

impl Call {
    /// The request as the server hands it to the app (from loopback).
    fn request(&self) -> HttpRequest<'_> {
        HttpRequest {
            method: self.method,
            path: &self.path,
            query: &self.query,
            body: &self.body,
            content_type: (!self.body.is_empty()).then_some("application/x-www-form-urlencoded"),
            api_key: self.key,
            loopback: true,
        }
    }
}

fn send(app: &App, call: &Call, now: i64) -> (Reply, Value) {
    let reply = app.handle(&call.request(), now);
    let value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply, value)
}

/// A user data stream subscription of the test account, as a WebSocket client makes it.
fn subscribe(app: &App) -> crate::api::StreamRx {
    let request = genesis::exchange::binance::user_data::subscribe_signature_request(
        1,
        KEY,
        NOW,
        &Signer::new(&Secret::from(SECRET)),
    );
    let request: Value = serde_json::from_str(&request).unwrap();
    app.subscribe_signature(request["params"].as_object().unwrap(), NOW).unwrap().1
}

fn control(app: &App, method: &'static str, path: &str, body: &str) -> (Reply, Value) {
    let req = HttpRequest {
        method,
        path,
        query: "",
        body,
        content_type: Some("application/json"),
        api_key: None,
        loopback: true,
    };
    let reply = app.handle(&req, NOW);
    let value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply, value)
}

fn market(id: &str) -> Call {
    signed(
        "POST",
        "/api/v3/order",
        &[("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001"), ("newClientOrderId", id)],
        NOW,
    )
}

fn stop_limit(id: &str) -> Call {
    signed(
        "POST",
        "/api/v3/order",
        &[
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "STOP_LOSS_LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.001"),
            ("price", "60000"),
            ("stopPrice", "60100"),
            ("newClientOrderId", id),
        ],
        NOW,
    )
}

fn query(id: &str) -> Call {
    signed("GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", id)], NOW)
}

#[test]
fn market_order_fills_with_a_full_response_and_order_count_headers() {
    let app = app(50, &[]);
    let (reply, v) = send(&app, &market("m1"), NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["status"], "FILLED");
    assert_eq!(v["clientOrderId"], "m1");
    assert_eq!(v["origQty"], "0.00100000");
    assert!(v["orderId"].is_i64());
    assert!(!v["fills"].as_array().unwrap().is_empty());
    // Counted, then uncounted: it traded at once, so it is not an unfilled order.
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-10S"), Some("0"));
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-1D"), Some("0"));
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("1"));
    // The engine's parser reads it back.
    let report = genesis::exchange::binance::wire::parse_order(&reply.body).unwrap();
    assert_eq!(report.executed_qty, "0.001".parse().unwrap());
}

#[test]
fn stop_limit_defaults_to_ack_and_query_cancel_and_lists_follow_it() {
    let app = app(50, &[]);
    let (reply, v) = send(&app, &stop_limit("s1"), NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v.as_object().unwrap().len(), 5, "ACK shape: {v}");
    let order_id = v["orderId"].as_i64().unwrap();

    let (reply, v) = send(&app, &query("s1"), NOW);
    assert_eq!(reply.status, 200);
    assert_eq!((v["status"].as_str(), v["type"].as_str()), (Some("NEW"), Some("STOP_LOSS_LIMIT")));
    assert_eq!(v["stopPrice"], "60100.00000000");
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("5"));
    let by_id = signed("GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("orderId", &order_id.to_string())], NOW);
    assert_eq!(send(&app, &by_id, NOW).1["clientOrderId"], "s1");
    let mismatch = signed(
        "GET",
        "/api/v3/order",
        &[("symbol", "BTCUSDT"), ("orderId", &order_id.to_string()), ("origClientOrderId", "other")],
        NOW,
    );
    assert_eq!(send(&app, &mismatch, NOW).1["code"], -2013);

    let open = signed("GET", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], NOW);
    let (reply, v) = send(&app, &open, NOW);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("19"));
    let (reply, _) = send(&app, &signed("GET", "/api/v3/openOrders", &[], NOW), NOW);
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("99"));

    let cancel = signed(
        "DELETE",
        "/api/v3/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "s1"), ("newClientOrderId", "c1")],
        NOW,
    );
    let (reply, v) = send(&app, &cancel, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["status"], "CANCELED");
    assert_eq!(v["clientOrderId"], "c1");
    assert_eq!(v["origClientOrderId"], "s1");
    // Cancelling again: -2011.
    let (reply, v) = send(&app, &cancel, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-2011)));

    // Cancel-all with nothing open: 400 -2011; with orders: cancel-shaped items, generated ids.
    let all = signed("DELETE", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], NOW);
    let (reply, v) = send(&app, &all, NOW);
    assert_eq!(reply.status, 400);
    assert_eq!(v, json!({"code": -2011, "msg": "Unknown order sent."}));
    send(&app, &stop_limit("s2"), NOW);
    let (reply, v) = send(&app, &all, NOW);
    assert_eq!(reply.status, 200);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["origClientOrderId"], "s2");
    assert_eq!(items[0]["clientOrderId"].as_str().unwrap().len(), 22);

    let all_orders = signed("GET", "/api/v3/allOrders", &[("symbol", "BTCUSDT")], NOW);
    assert_eq!(send(&app, &all_orders, NOW).1.as_array().unwrap().len(), 2);
    let no_symbol = signed("GET", "/api/v3/allOrders", &[], NOW);
    assert_eq!(send(&app, &no_symbol, NOW).1["code"], -1102);
}

#[test]
fn trades_account_and_market_data_have_binance_shapes() {
    let app = app(50, &[]);
    let (_, placed) = send(&app, &market("m1"), NOW);
    let trades =
        signed("GET", "/api/v3/myTrades", &[("symbol", "BTCUSDT"), ("orderId", &placed["orderId"].to_string())], NOW);
    let (_, v) = send(&app, &trades, NOW);
    let t = &v.as_array().unwrap()[0];
    assert_eq!(t["orderId"], placed["orderId"]);
    assert_eq!(t["isBuyer"], true);
    assert!(t["price"].as_str().unwrap().ends_with(|c: char| c.is_ascii_digit()));

    let (_, v) = send(&app, &signed("GET", "/api/v3/account", &[], NOW), NOW);
    assert_eq!(v["makerCommission"], 10);
    let balances = genesis::exchange::binance::wire::parse_account(&v.to_string()).unwrap();
    assert!(balances.iter().any(|b| b.asset == "BTC"));

    let (reply, v) = send(&app, &public("/api/v3/exchangeInfo", ""), NOW);
    assert_eq!(reply.status, 200);
    assert_eq!(v["symbols"].as_array().unwrap().len(), 3);
    assert!(v["rateLimits"]
        .as_array()
        .unwrap()
        .contains(&json!({"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50})));
    assert!(v["rateLimits"]
        .as_array()
        .unwrap()
        .contains(&json!({"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000})));
    let (_, v) = send(&app, &public("/api/v3/exchangeInfo", "symbol=ETHUSDT"), NOW);
    assert_eq!(v["symbols"][0]["symbol"], "ETHUSDT");
    let q = "symbols=%5B%22BTCUSDT%22%2C%22SOLUSDT%22%5D";
    let (_, v) = send(&app, &public("/api/v3/exchangeInfo", q), NOW);
    assert_eq!(v["symbols"].as_array().unwrap().len(), 2);
    let (reply, v) = send(&app, &public("/api/v3/exchangeInfo", "symbol=NOPE"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1121)));
    let (_, v) = send(&app, &public("/api/v3/exchangeInfo", "symbols=%5Bjunk"), NOW);
    assert_eq!(v["code"], -1100);

    let (_, v) = send(&app, &public("/api/v3/ticker/bookTicker", "symbol=BTCUSDT"), NOW);
    assert_eq!(v["bidPrice"], "64999.99000000");
    let (_, v) = send(&app, &public("/api/v3/ticker/bookTicker", ""), NOW);
    assert_eq!(v.as_array().unwrap().len(), 3);
    // Before any trade: the mid, rounded down to the tick (149.995 -> 149.99).
    let (_, v) = send(&app, &public("/api/v3/ticker/price", "symbol=SOLUSDT"), NOW);
    assert_eq!(v["price"], "149.99000000");
    let (reply, v) = send(&app, &public("/api/v3/depth", "symbol=BTCUSDT&limit=5"), NOW);
    assert_eq!(v["bids"].as_array().unwrap().len(), 5);
    assert_eq!(v["asks"][0][0], "65000.00000000");
    let before: u64 = reply.header("X-MBX-USED-WEIGHT-1M").unwrap().parse().unwrap();
    let (reply, _) = send(&app, &public("/api/v3/depth", "symbol=BTCUSDT&limit=1000"), NOW);
    let after: u64 = reply.header("X-MBX-USED-WEIGHT-1M").unwrap().parse().unwrap();
    assert_eq!(after - before, 50);
    assert_eq!(send(&app, &public("/api/v3/ping", ""), NOW).1, json!({}));
    assert_eq!(send(&app, &public("/api/v3/time", ""), NOW).1, json!({"serverTime": NOW}));
}

#[test]
fn security_key_signature_and_timestamp() {
    let app = app(50, &[]);
    let mut call = query("x");
    call.key = Some("wrong");
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 401);
    assert_eq!(v, json!({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}));
    let mut call = query("x");
    call.query = call.query.replace("origClientOrderId=x", "origClientOrderId=y");
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1022)));
    let stale = signed("GET", "/api/v3/account", &[], NOW - 6000);
    let (reply, v) = send(&app, &stale, NOW);
    assert_eq!(reply.status, 400);
    assert_eq!(v["code"], -1021);
    assert_eq!(v["msg"], crate::auth::MSG_OUTSIDE_WINDOW);
    let ahead = signed("GET", "/api/v3/account", &[], NOW + 1500);
    assert_eq!(send(&app, &ahead, NOW).1["msg"], crate::auth::MSG_AHEAD);
    let wide = signed("GET", "/api/v3/account", &[("recvWindow", "10000")], NOW - 6000);
    assert_eq!(send(&app, &wide, NOW).0.status, 200);
    // Every reply carries the weight header, refusals included.
    assert!(send(&app, &stale, NOW).0.header("X-MBX-USED-WEIGHT-1M").is_some());
}

#[test]
fn query_string_wins_over_the_body_and_both_are_signed_together() {
    let app = app(50, &[]);
    // symbol in the query, the rest in the body; the signature covers query ‖ body.
    let query = "symbol=BTCUSDT&side=SELL".to_string();
    let mut body = String::new();
    QueryBuilder::new(&mut body)
        .str("symbol", "ETHUSDT")
        .str("type", "MARKET")
        .str("quantity", "0.001")
        .str("newClientOrderId", "mixed")
        .display("timestamp", NOW);
    let sig = Signer::new(&Secret::from(SECRET)).sign(query.as_bytes(), body.as_bytes());
    body.push_str(&format!("&signature={sig}"));
    let call = Call { method: "POST", path: "/api/v3/order".into(), query, body, key: Some(KEY) };
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!((v["symbol"].as_str(), v["side"].as_str()), (Some("BTCUSDT"), Some("SELL")));
}

#[test]
fn malformed_orders_get_binance_errors_not_panics() {
    let app = app(50, &[]);
    let cases: Vec<(Vec<(&str, &str)>, i64)> = vec![
        (vec![("side", "BUY"), ("type", "MARKET")], -1102),
        (vec![("symbol", "BTCUSDT"), ("side", "UP"), ("type", "MARKET"), ("quantity", "1")], -1117),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "ICEBERG"), ("quantity", "1")], -1116),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET")], -1102),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1e3")], -1100),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "-1")], -1100),
        (vec![("symbol", "XXX"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1")], -1121),
        (
            vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "0.001"), ("price", "1000")],
            -1102,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
                ("timeInForce", "GTC"),
            ],
            -1106,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
                ("newClientOrderId", ""),
            ],
            -1118,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
                ("newClientOrderId", "bad id!"),
            ],
            -1100,
        ),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.0000001")], -1013),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "STOP_LOSS"),
                ("quantity", "0.001"),
                ("stopPrice", "60000"),
            ],
            -2010,
        ),
        (vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "100")], -2010),
    ];
    for (params, code) in cases {
        let call = signed("POST", "/api/v3/order", &params, NOW);
        let (reply, v) = send(&app, &call, NOW);
        assert_eq!(reply.status, 400, "{params:?}: {}", reply.body);
        assert_eq!(v["code"], code, "{params:?}: {}", reply.body);
    }
    // Garbage anywhere: still JSON errors.
    for (method, path, query) in [
        ("GET", "/api/v3/order", "%%%&&=="),
        ("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=abc"),
        ("GET", "/api/v3/nothing", ""),
        ("PUT", "/api/v3/order", ""),
        ("GET", "/sim/nothing", ""),
    ] {
        let call = Call { method, path: path.into(), query: query.into(), body: "\u{0}\u{ff}".into(), key: Some(KEY) };
        let (reply, v) = send(&app, &call, NOW);
        assert!(reply.status >= 400, "{method} {path}");
        assert!(v["code"].is_i64(), "{method} {path}: {}", reply.body);
    }
    // quoteOrderQty market orders are converted at the top of the book.
    let call = signed(
        "POST",
        "/api/v3/order",
        &[("symbol", "SOLUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quoteOrderQty", "1500")],
        NOW,
    );
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["origQty"], "10.00000000");
    // order/test validates and answers {} without placing anything.
    let mut test = market("t1");
    test.path = "/api/v3/order/test".into();
    assert_eq!(send(&app, &test, NOW).1, json!({}));
    assert_eq!(send(&app, &query("t1"), NOW).1["code"], -2013);
}

#[test]
fn order_limit_refuses_with_429_and_retry_after() {
    let app = app(2, &[]);
    // Unfilled orders count (a filled one would not).
    assert_eq!(send(&app, &stop_limit("a"), NOW).0.status, 200);
    assert_eq!(send(&app, &stop_limit("b"), NOW).0.status, 200);
    let (reply, v) = send(&app, &market("c"), NOW + 3_000);
    assert_eq!(reply.status, 429);
    assert_eq!(v, json!({"code": -1015, "msg": "Too many new orders; current limit is 2 orders per 10 SECOND."}));
    assert_eq!(reply.header("Retry-After"), Some("7"));
    assert_eq!(send(&app, &query("c"), NOW + 3_000).1["code"], -2013);
    let later = signed(
        "POST",
        "/api/v3/order",
        &[("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001")],
        NOW + 10_000,
    );
    assert_eq!(send(&app, &later, NOW + 10_000).0.status, 200);
}

#[test]
fn weight_limit_refuses_with_429_minus_1003() {
    let app = app(50, &[]);
    let info = public("/api/v3/exchangeInfo", "");
    for _ in 0..300 {
        assert_eq!(send(&app, &info, NOW + 1).0.status, 200);
    }
    let (reply, v) = send(&app, &info, NOW + 1_000);
    assert_eq!(reply.status, 429);
    assert_eq!(v["code"], -1003);
    assert_eq!(reply.header("Retry-After"), Some("59"));
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("6000"));
}

#[test]
fn faults_after_execute_leave_the_order_placed() {
    let app = app(50, &["place:5xx-after-execute", "place:drop-after-execute", "place:delay-after-execute:1500"]);
    let (reply, v) = send(&app, &market("f1"), NOW);
    assert_eq!(reply.status, 503);
    assert_eq!(v, json!({"code": -1007, "msg": MSG_TIMEOUT}));
    assert_eq!(send(&app, &query("f1"), NOW).1["status"], "FILLED");
    let (reply, _) = send(&app, &market("f2"), NOW);
    assert_eq!(reply.after, After::Drop);
    assert_eq!(send(&app, &query("f2"), NOW).1["status"], "FILLED");
    let (reply, v) = send(&app, &market("f3"), NOW);
    assert_eq!(reply.after, After::Delay(Duration::from_millis(1500)));
    assert_eq!((reply.status, v["status"].as_str()), (200, Some("FILLED")));
    let (reply, _) = send(&app, &market("f4"), NOW);
    assert_eq!((reply.status, reply.after), (200, After::Respond));
}

#[test]
fn refusing_faults_do_not_execute() {
    let app = app(50, &["place:429:7", "place:418:120", "place:1021", "stop:reject x2", "cancel-all:reject"]);
    let (reply, v) = send(&app, &market("r1"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-1003)));
    assert_eq!(reply.header("Retry-After"), Some("7"));
    let (reply, v) = send(&app, &market("r1"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (418, Some(-1003)));
    assert!(v["msg"].as_str().unwrap().starts_with("Way too much request weight used; IP banned until"));
    assert_eq!(reply.header("Retry-After"), Some("120"));
    let (reply, v) = send(&app, &market("r1"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1021)));
    assert_eq!(send(&app, &query("r1"), NOW).1["code"], -2013);
    for _ in 0..2 {
        let (reply, v) = send(&app, &stop_limit("r2"), NOW);
        assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-2010)));
        assert_eq!(v["msg"], MSG_INSUFFICIENT);
    }
    assert_eq!(send(&app, &stop_limit("r2"), NOW).0.status, 200);
    assert_eq!(send(&app, &market("r1"), NOW).0.status, 200);
    let all = signed("DELETE", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], NOW);
    assert_eq!(send(&app, &all, NOW).1["code"], -2010);
    assert_eq!(send(&app, &query("r2"), NOW).1["status"], "NEW");
}

#[test]
fn skew_moves_the_server_clock_from_then_on() {
    let app = app(50, &["query:skew:-10000"]);
    let (reply, v) = send(&app, &query("nothing"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1021)));
    assert_eq!(v["msg"], crate::auth::MSG_AHEAD);
    assert_eq!(send(&app, &public("/api/v3/time", ""), NOW).1["serverTime"], NOW - 10_000);
    let synced = signed("GET", "/api/v3/account", &[], NOW - 10_000);
    assert_eq!(send(&app, &synced, NOW).0.status, 200);
    let (_, v) = control(&app, "GET", "/sim/fault", "");
    assert_eq!(v["skewMs"], -10_000);
    control(&app, "DELETE", "/sim/fault", "");
    assert_eq!(send(&app, &public("/api/v3/time", ""), NOW).1["serverTime"], NOW);
}

#[test]
fn control_endpoints_add_faults_move_prices_and_show_state() {
    let app = app(50, &[]);
    let (reply, v) =
        control(&app, "POST", "/sim/fault", r#"{"step":"place","kind":"reject","arg":null,"nth":2,"times":1}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["plan"][0]["spec"], "place:reject@2x1");
    control(&app, "POST", "/sim/fault", r#"[{"spec":"query:1021"}]"#);
    assert_eq!(send(&app, &market("p1"), NOW).0.status, 200);
    assert_eq!(send(&app, &market("p2"), NOW).1["code"], -2010);
    let (_, v) = control(&app, "GET", "/sim/fault", "");
    assert_eq!(v["plan"].as_array().unwrap().len(), 2);
    assert_eq!(v["fired"][0]["spec"], "place:reject@2x1");
    assert_eq!(v["fired"][0]["request"], "POST /api/v3/order");
    let (reply, _) = control(&app, "POST", "/sim/fault", r#"{"step":"x","kind":"reject"}"#);
    assert_eq!(reply.status, 400);
    let (reply, _) = control(&app, "POST", "/sim/fault", "not json");
    assert_eq!(reply.status, 400);
    let (_, v) = control(&app, "DELETE", "/sim/fault", "");
    assert_eq!(v["plan"], json!([]));

    // A stop-limit sell triggers when the bid falls to its stop.
    send(&app, &stop_limit("sl"), NOW);
    let (reply, v) = control(&app, "POST", "/sim/price", r#"{"symbol":"BTCUSDT","bid":"60050.00","ask":"60050.01"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let changed = v.as_array().unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["clientOrderId"], "sl");
    assert_eq!(changed[0]["status"], "FILLED");
    let (reply, v) = control(&app, "POST", "/sim/price", r#"{"symbol":"BTCUSDT","bid":"2","ask":"1"}"#);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1102)));
    let (reply, _) = control(&app, "POST", "/sim/price", r#"{"symbol":"BTCUSDT"}"#);
    assert_eq!(reply.status, 400);

    let (_, v) = control(&app, "GET", "/sim/state", "");
    assert_eq!(v["openOrders"], json!([]));
    assert!(v["balances"].as_array().unwrap().len() >= 4);
    assert_eq!(v["books"][0]["bidPrice"], "60050.00000000");
    // p1 traded at once and sl when the price moved: neither counts as unfilled any more.
    assert_eq!(v["orderCount10s"], 0);

    let req = HttpRequest {
        method: "GET",
        path: "/sim/state",
        query: "",
        body: "",
        content_type: None,
        api_key: None,
        loopback: false,
    };
    assert_eq!(app.handle(&req, NOW).status, 403);
}

/// `POST /api/v3/order/cancelReplace` (STOP_ON_FAILURE) cancelling `cancel` and selling
/// `quantity` BTC at market as `new_id`, with `changes` made to those parameters (a value
/// replaces the parameter's, `None` removes it).
fn cancel_replace_with(cancel: &str, quantity: &str, new_id: &str, changes: &[(&str, Option<&str>)]) -> Call {
    let mut params = vec![
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "MARKET"),
        ("quantity", quantity),
        ("cancelReplaceMode", "STOP_ON_FAILURE"),
        ("cancelOrigClientOrderId", cancel),
        ("newClientOrderId", new_id),
    ];
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push((name, value));
        }
    }
    signed("POST", "/api/v3/order/cancelReplace", &params, NOW)
}

fn cancel_replace(cancel: &str, quantity: &str, new_id: &str) -> Call {
    cancel_replace_with(cancel, quantity, new_id, &[])
}

fn locked_btc(app: &App) -> String {
    let (_, v) = control(app, "GET", "/sim/state", "");
    let btc = v["balances"].as_array().unwrap().iter().find(|b| b["asset"] == "BTC").unwrap().clone();
    btc["locked"].as_str().unwrap().to_string()
}

#[test]
fn cancel_replace_releases_a_stop_and_sells_answering_both_responses() {
    let app = app(50, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let call = cancel_replace_with("s1", "0.001", "m1", &[("cancelNewClientOrderId", Some("c1"))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!((v["cancelResult"].as_str(), v["newOrderResult"].as_str()), (Some("SUCCESS"), Some("SUCCESS")));
    let cancel = &v["cancelResponse"];
    assert_eq!((cancel["origClientOrderId"].as_str(), cancel["clientOrderId"].as_str()), (Some("s1"), Some("c1")));
    assert_eq!(cancel["status"], "CANCELED");
    // The new order answers as POST /api/v3/order does: a MARKET order defaults to FULL.
    let placed = &v["newOrderResponse"];
    assert_eq!((placed["clientOrderId"].as_str(), placed["status"].as_str()), (Some("m1"), Some("FILLED")));
    assert!(!placed["fills"].as_array().unwrap().is_empty());
    assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
    // The stop and the cancel-replace; its new order filled at once, so one is unfilled.
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-10S"), Some("1"));
    assert_eq!(reply.header("X-MBX-USED-WEIGHT-1M"), Some("2"));
    assert_eq!(locked_btc(&app), "0.00000000");
    // newOrderRespType shapes the new order's response.
    send(&app, &stop_limit("s2"), NOW);
    let ack = cancel_replace_with("s2", "0.001", "m2", &[("newOrderRespType", Some("ACK"))]);
    let (reply, v) = send(&app, &ack, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["newOrderResponse"].as_object().unwrap().len(), 5, "ACK shape: {v}");
}

#[test]
fn cancel_replace_pushes_the_cancel_and_the_placement_to_the_user_data_stream() {
    let app = app(50, &[]);
    let events = subscribe(&app);
    send(&app, &stop_limit("s1"), NOW);
    assert_eq!(send(&app, &cancel_replace("s1", "0.001", "m1"), NOW).0.status, 200);
    let pushed: Vec<Value> =
        events.try_iter().map(|m| serde_json::from_str::<Value>(&m).unwrap()["event"].clone()).collect();
    let seen: Vec<(&str, &str, &str)> =
        pushed.iter().map(|e| (e["C"].as_str().unwrap(), e["x"].as_str().unwrap(), e["X"].as_str().unwrap())).collect();
    // The stop's placement, its cancel (C = the order's id), the sell's placement and its fill.
    assert_eq!(seen[0], ("", "NEW", "NEW"));
    assert_eq!(seen[1], ("s1", "CANCELED", "CANCELED"));
    assert_eq!(seen[2], ("", "NEW", "NEW"));
    assert_eq!(pushed[2]["c"], "m1");
    assert_eq!(seen.last().unwrap(), &("", "TRADE", "FILLED"));
    assert_eq!(pushed.last().unwrap()["c"], "m1");
}

#[test]
fn cancel_replace_of_an_unknown_order_is_400_minus_2022_and_places_nothing() {
    let app = app(50, &[]);
    let (reply, v) = send(&app, &cancel_replace("nothing", "0.001", "m1"), NOW);
    assert_eq!(reply.status, 400);
    assert_eq!(
        v,
        json!({"code": -2022, "msg": "Order cancel-replace failed.", "data": {
            "cancelResult": "FAILURE",
            "newOrderResult": "NOT_ATTEMPTED",
            "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
            "newOrderResponse": null,
        }})
    );
    assert_eq!(send(&app, &query("m1"), NOW).1["code"], -2013);
    // It reached the matching engine, so it counts as an order.
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-10S"), Some("1"));
}

#[test]
fn cancel_replace_whose_new_order_is_refused_is_409_and_the_cancel_stands() {
    let app = app(50, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let (reply, v) = send(&app, &cancel_replace("s1", "2", "m1"), NOW);
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!((v["code"].as_i64(), v["msg"].as_str()), (Some(-2021), Some("Order cancel-replace partially failed.")));
    let data = &v["data"];
    assert_eq!((data["cancelResult"].as_str(), data["newOrderResult"].as_str()), (Some("SUCCESS"), Some("FAILURE")));
    assert_eq!(data["cancelResponse"]["origClientOrderId"], "s1");
    assert_eq!(data["cancelResponse"]["status"], "CANCELED");
    assert_eq!(data["newOrderResponse"], json!({"code": -2010, "msg": MSG_INSUFFICIENT}));
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "CANCELED");
    assert_eq!(send(&app, &query("m1"), NOW).1["code"], -2013);
    assert_eq!(locked_btc(&app), "0.00000000");
}

#[test]
fn cancel_replace_failing_a_filter_is_a_plain_error_and_changes_nothing() {
    let app = app(50, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let (reply, v) = send(&app, &cancel_replace("s1", "0.000001", "m1"), NOW);
    assert_eq!(reply.status, 400);
    assert_eq!(v, json!({"code": -1013, "msg": "Filter failure: LOT_SIZE"}));
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "NEW");
    assert_eq!(locked_btc(&app), "0.00100000");
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-10S"), None);
}

#[test]
fn cancel_replace_needs_a_mode_and_the_order_to_cancel() {
    let app = app(50, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let cases = [
        (
            cancel_replace_with("s1", "0.001", "m1", &[("cancelReplaceMode", None)]),
            -1102,
            "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or malformed.",
        ),
        (
            cancel_replace_with("s1", "0.001", "m1", &[("cancelReplaceMode", Some("NOPE"))]),
            -1100,
            "Illegal characters found in parameter 'cancelReplaceMode'; legal range is 'STOP_ON_FAILURE, ALLOW_FAILURE'.",
        ),
        (
            cancel_replace_with("s1", "0.001", "m1", &[("cancelOrigClientOrderId", None)]),
            -1102,
            "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were empty/null!",
        ),
    ];
    for (call, code, msg) in cases {
        let (reply, v) = send(&app, &call, NOW);
        assert_eq!(
            (reply.status, v["code"].as_i64(), v["msg"].as_str()),
            (400, Some(code), Some(msg)),
            "{}",
            call.body
        );
    }
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "NEW");
}

#[test]
fn cancel_replace_goes_through_the_fault_plan() {
    let app = app(50, &["cancel-replace:5xx-after-execute", "cancel-replace:429:3", "place:reject"]);
    send(&app, &stop_limit("s1"), NOW);
    // Executed, then 503: the stop is gone and the sell filled.
    let (reply, v) = send(&app, &cancel_replace("s1", "0.001", "m1"), NOW);
    assert_eq!(reply.status, 503);
    assert_eq!(v, json!({"code": -1007, "msg": MSG_TIMEOUT}));
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "CANCELED");
    assert_eq!(send(&app, &query("m1"), NOW).1["status"], "FILLED");
    // Refused without executing.
    send(&app, &stop_limit("s2"), NOW);
    let (reply, v) = send(&app, &cancel_replace("s2", "0.001", "m2"), NOW);
    assert_eq!((reply.status, v["code"].as_i64(), reply.header("Retry-After")), (429, Some(-1003), Some("3")));
    assert_eq!(send(&app, &query("s2"), NOW).1["status"], "NEW");
    // A `place` fault does not fire on a cancel-replace of a MARKET order.
    assert_eq!(send(&app, &cancel_replace("s2", "0.001", "m2"), NOW).0.status, 200);
}

#[test]
fn cancel_replace_counts_against_the_order_limit() {
    let app = app(2, &[]);
    send(&app, &stop_limit("s1"), NOW);
    assert_eq!(send(&app, &cancel_replace("s1", "0.001", "m1"), NOW).0.status, 200);
    assert_eq!(send(&app, &stop_limit("s2"), NOW).0.status, 200);
    let (reply, v) = send(&app, &cancel_replace("s2", "0.001", "m2"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-1015)));
    assert_eq!(send(&app, &query("s2"), NOW).1["status"], "NEW");
}

#[test]
fn generated_ids_are_legal_and_distinct() {
    let ids = IdGen::new(1);
    let a = ids.next_id();
    let b = ids.next_id();
    assert_ne!(a, b);
    assert_eq!(a.len(), 22);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn the_stream_events_of_a_request_wait_until_its_response_is_out() {
    let app = app(50, &[]);
    let events = subscribe(&app);
    let call = stop_limit("s1");
    assert_eq!(app.respond(&call.request(), NOW).status, 200);
    assert_eq!(events.try_iter().count(), 0, "nothing pushed before the response is written");
    app.flush_pushes();
    let pushed: Vec<Value> = events.try_iter().map(|m| serde_json::from_str::<Value>(&m).unwrap()).collect();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["event"]["c"], "s1");
}

#[path = "api_doc_tests.rs"]
mod doc;
