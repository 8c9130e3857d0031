//! The gateway against scripted WebSocket servers on 127.0.0.1: what it sends, and what it
//! makes of answers, events, pings and connections that go away.

use super::*;
use crate::exchange::binance::user_data::signature_payload;
use serde_json::json;
use std::net::TcpListener;
use std::sync::mpsc;

const KEY: &str = "ws-test-key";
const SECRET: &str = "ws-test-secret";
/// Generous: only reached when something is wrong.
const WAIT: Duration = Duration::from_secs(10);

type Server = WebSocket<TcpStream>;
type Script = Box<dyn FnOnce(Server) + Send>;

/// A server that runs one script per WebSocket connection, in order, then stops listening.
/// Returns its base URL (the gateway derives `ws://…/ws-api/v3` from it).
fn server(scripts: Vec<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for script in scripts {
            let (tcp, _) = listener.accept().unwrap();
            // Each frame leaves at once (Nagle would hold a frame sent right after another).
            tcp.set_nodelay(true).unwrap();
            script(tungstenite::accept(tcp).unwrap());
        }
    });
    base
}

fn gateway(base: &str) -> WsApiGateway {
    WsApiGateway::new(BinanceConfig::new(base, KEY, SECRET)).unwrap()
}

/// The next request the client sent.
fn next_request(ws: &mut Server) -> Value {
    loop {
        if let Message::Text(text) = ws.read().unwrap() {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

fn send(ws: &mut Server, value: Value) {
    ws.send(Message::text(value.to_string())).unwrap();
}

/// Answers the next request with an empty list.
fn answer_one(mut ws: Server) -> Server {
    let request = next_request(&mut ws);
    send(&mut ws, json!({"id": request["id"], "status": 200, "result": []}));
    ws
}

fn until_closed(mut ws: Server) {
    while ws.read().is_ok() {}
}

#[test]
fn a_request_is_signed_over_its_sorted_parameters_and_what_comes_before_its_answer_is_skipped() {
    let (tx, rx) = mpsc::channel();
    let base = server(vec![Box::new(move |mut ws| {
        let request = next_request(&mut ws);
        ws.send(Message::Ping(vec![1].into())).unwrap();
        send(&mut ws, json!({"subscriptionId": 0, "event": {"e": "outboundAccountPosition"}}));
        send(&mut ws, json!({"id": 9999, "status": 200, "result": []}));
        let limits = json!([
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 3},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000, "count": 3},
        ]);
        send(&mut ws, json!({"id": request["id"], "status": 200, "result": [], "rateLimits": limits}));
        tx.send(request).unwrap();
        until_closed(ws);
    })]);
    let mut ws = gateway(&base);
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()));
    assert_eq!(ws.weight_status(), Some((3, 6000)));
    let request = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(request["method"], "openOrders.cancelAll");
    let params = request["params"].as_object().unwrap();
    assert_eq!((params["apiKey"].as_str(), params["symbol"].as_str()), (Some(KEY), Some("ETHUSDT")));
    assert_eq!(params["recvWindow"], 5000);
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
    let payload = signature_payload(&pairs);
    assert!(payload.starts_with("apiKey=ws-test-key&recvWindow=5000&symbol=ETHUSDT&timestamp="), "{payload}");
    let signature = params["signature"].as_str().unwrap();
    assert!(super::super::sign::verify(SECRET, payload.as_bytes(), b"", signature));
}

#[test]
fn answers_that_leave_the_outcome_open_are_unknown() {
    let base = server(vec![Box::new(|mut ws| {
        let r = next_request(&mut ws);
        send(&mut ws, json!({"id": r["id"], "status": 200}));
        let r = next_request(&mut ws);
        send(&mut ws, json!({"id": r["id"], "status": 200, "result": {"unexpected": true}}));
        let r = next_request(&mut ws);
        send(&mut ws, json!({"id": r["id"], "status": 204}));
        next_request(&mut ws);
        ws.close(None).unwrap();
        let _ = ws.flush();
        until_closed(ws);
    })]);
    let mut ws = gateway(&base);
    for expected in ["200 without a result", "unreadable answer", "204 without a result", "closed before the answer"] {
        let e = ws.query_order("ETHUSDT", "g1-E1").unwrap_err();
        assert!(matches!(&e, ExchangeError::Unknown { reason } if reason.contains(expected)), "{expected}: {e:?}");
    }
}

#[test]
fn a_connection_the_server_ended_while_idle_is_made_again_before_the_next_request() {
    // The server acts on `go` (sent once the client has its answer), then says what it did.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<&str>();
    let go = std::sync::Arc::new(parking_lot::Mutex::new(go_rx));
    let (go1, go2, done1, done2) = (std::sync::Arc::clone(&go), go, done_tx.clone(), done_tx);
    let base = server(vec![
        // Answers, pings while idle, answers again, then closes with a close frame.
        Box::new(move |ws| {
            let mut ws = answer_one(ws);
            go1.lock().recv().unwrap();
            ws.send(Message::Ping(Vec::new().into())).unwrap();
            done1.send("pinged").unwrap();
            let mut ws = answer_one(ws);
            go1.lock().recv().unwrap();
            ws.close(None).unwrap();
            let _ = ws.flush();
            done1.send("closed").unwrap();
            until_closed(ws);
        }),
        // Answers, then goes away without a close frame.
        Box::new(move |ws| {
            let ws = answer_one(ws);
            go2.lock().recv().unwrap();
            drop(ws);
            done2.send("dropped").unwrap();
        }),
        Box::new(|ws| until_closed(answer_one(ws))),
    ]);
    let mut ws = gateway(&base);
    for (step, next) in ["pinged", "closed", "dropped"].into_iter().enumerate() {
        assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()), "request {step}");
        go_tx.send(()).unwrap();
        assert_eq!(done.recv_timeout(WAIT), Ok(next));
    }
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()));
    assert_eq!(ws.connections(), 3, "the ping kept the first; the close and the drop each made one");
}

#[test]
fn a_timestamp_refusal_whose_clock_resync_fails_is_the_refusal() {
    // The one script answers -1021; the REST time request that follows finds no server.
    let base = server(vec![Box::new(|mut ws| {
        let r = next_request(&mut ws);
        let error = json!({"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."});
        send(&mut ws, json!({"id": r["id"], "status": 400, "error": error}));
    })]);
    let e = gateway(&base).cancel_order("ETHUSDT", "g1-S1").unwrap_err();
    assert!(e.is_timestamp_error(), "{e:?}");
}

#[test]
fn a_refused_handshake_is_not_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || drop(listener.accept()));
    let e = gateway(&base).open().unwrap_err();
    assert!(matches!(&e, ExchangeError::NotSent { reason } if reason.contains("handshake")), "{e:?}");
}

fn market_buy(id: &str) -> NewOrder {
    NewOrder {
        symbol: "ETHUSDT".into(),
        side: crate::domain::order::Side::Buy,
        order_type: ExchangeOrderType::Market,
        quantity: "1".parse().unwrap(),
        price: None,
        stop_price: None,
        client_order_id: id.into(),
    }
}

/// An order report as the server gives it: `executed` of 1 ETH filled, exchange id `order_id`.
fn report(client_order_id: &str, order_id: i64, executed: &str) -> Value {
    let status = if executed == "1" { "FILLED" } else { "NEW" };
    json!({"symbol": "ETHUSDT", "orderId": order_id, "clientOrderId": client_order_id, "transactTime": 1,
        "price": "0", "origQty": "1", "executedQty": executed, "cummulativeQuoteQty": "0", "status": status,
        "type": "MARKET", "side": "BUY"})
}

fn answer(request: &Value, result: Value) -> Value {
    json!({"id": request["id"], "status": 200, "result": result})
}

fn unknown_order(request: &Value) -> Value {
    json!({"id": request["id"], "status": 400, "error": {"code": -2013, "msg": "Order does not exist."}})
}

/// A server that reads the placement and the status behind it, lets `script` answer both, then
/// answers every further request with the order filled and reports each request's method.
fn placement_server(
    script: impl FnOnce(&mut Server, &Value, &Value) + Send + 'static,
) -> (String, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let base = server(vec![Box::new(move |mut ws| {
        let place = next_request(&mut ws);
        let status = next_request(&mut ws);
        tx.send(place["method"].as_str().unwrap().to_string()).unwrap();
        tx.send(status["method"].as_str().unwrap().to_string()).unwrap();
        script(&mut ws, &place, &status);
        while let Ok(Message::Text(text)) = ws.read() {
            let request: Value = serde_json::from_str(text.as_str()).unwrap();
            tx.send(request["method"].as_str().unwrap().to_string()).unwrap();
            send(&mut ws, answer(&request, report("g1-E1", 7, "1")));
        }
    })]);
    (base, rx)
}

fn methods(rx: &mpsc::Receiver<String>) -> Vec<String> {
    rx.try_iter().collect()
}

#[test]
fn a_market_placement_carries_its_status_request_and_the_verification_is_that_answer() {
    let (base, rx) = placement_server(|ws, place, status| {
        assert_eq!(status["params"]["origClientOrderId"], "g1-E1");
        send(ws, answer(place, report("g1-E1", 7, "1")));
        send(ws, answer(status, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    assert_eq!(ws.place_order(&market_buy("g1-E1")).unwrap().exchange_order_id, 7);
    let verified = ws.query_order("ETHUSDT", "g1-E1").unwrap();
    assert_eq!(verified.executed_qty, "1".parse().unwrap());
    // A second query is a request of its own: the status ahead answers once.
    ws.query_order("ETHUSDT", "g1-E1").unwrap();
    assert_eq!(methods(&rx), ["order.place", "order.status", "order.status"]);
}

#[test]
fn a_status_answered_before_the_placement_is_kept_until_asked_for() {
    let (base, rx) = placement_server(|ws, place, status| {
        send(ws, answer(status, report("g1-E1", 7, "1")));
        send(ws, answer(place, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().status, crate::domain::order::ExchangeStatus::Filled);
    assert_eq!(methods(&rx), ["order.place", "order.status"]);
}

#[test]
fn a_status_handled_before_the_placement_unknown_order_is_queried_again() {
    let (base, rx) = placement_server(|ws, place, status| {
        send(ws, unknown_order(status));
        send(ws, answer(place, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(methods(&rx), ["order.place", "order.status", "order.status"]);
}

#[test]
fn a_status_behind_the_placements_answer_or_of_another_order_is_queried_again() {
    for (status_id, executed) in [(7, "0"), (8, "1")] {
        let (base, rx) = placement_server(move |ws, place, status| {
            send(ws, answer(place, report("g1-E1", 7, "1")));
            send(ws, answer(status, report("g1-E1", status_id, executed)));
        });
        let mut ws = gateway(&base);
        ws.place_order(&market_buy("g1-E1")).unwrap();
        let verified = ws.query_order("ETHUSDT", "g1-E1").unwrap();
        assert_eq!((verified.exchange_order_id, verified.executed_qty), (7, "1".parse().unwrap()));
        assert_eq!(methods(&rx), ["order.place", "order.status", "order.status"], "{status_id} {executed}");
    }
}

#[test]
fn an_unreadable_status_ahead_is_queried_again() {
    let (base, rx) = placement_server(|ws, place, status| {
        send(ws, answer(place, report("g1-E1", 7, "1")));
        send(ws, answer(status, json!({"unexpected": true})));
    });
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(methods(&rx), ["order.place", "order.status", "order.status"]);
}

#[test]
fn a_query_for_another_order_does_not_use_the_status_ahead() {
    let (base, rx) = placement_server(|ws, place, status| {
        send(ws, answer(place, report("g1-E1", 7, "1")));
        send(ws, answer(status, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    ws.query_order("BTCUSDT", "g1-E1").unwrap();
    ws.query_order("ETHUSDT", "g1-E1").unwrap();
    assert_eq!(methods(&rx), ["order.place", "order.status", "order.status", "order.status"]);
}

#[test]
fn a_refused_placement_drops_its_status_ahead() {
    let (base, rx) = placement_server(|ws, place, status| {
        let error = json!({"code": -2010, "msg": "Account has insufficient balance for requested action."});
        send(ws, json!({"id": place["id"], "status": 400, "error": error}));
        send(ws, unknown_order(status));
    });
    let mut ws = gateway(&base);
    assert!(matches!(ws.place_order(&market_buy("g1-E1")), Err(ExchangeError::Rejected { code: -2010, .. })));
    ws.query_order("ETHUSDT", "g1-E1").unwrap();
    assert_eq!(methods(&rx), ["order.place", "order.status", "order.status"]);
}

#[test]
fn a_connection_lost_before_the_status_ahead_answered_is_made_again_for_the_query() {
    let (tx, rx) = mpsc::channel();
    let base = server(vec![
        Box::new(|mut ws| {
            let place = next_request(&mut ws);
            next_request(&mut ws);
            send(&mut ws, answer(&place, report("g1-E1", 7, "1")));
            ws.close(None).unwrap();
            let _ = ws.flush();
            until_closed(ws);
        }),
        Box::new(move |mut ws| {
            let query = next_request(&mut ws);
            tx.send(query["method"].clone()).unwrap();
            send(&mut ws, answer(&query, report("g1-E1", 7, "1")));
            until_closed(ws);
        }),
    ]);
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "order.status");
    assert_eq!(ws.connections(), 2);
}

#[test]
fn a_connection_dropped_before_the_status_ahead_answered_is_made_again_for_the_query() {
    let (tx, rx) = mpsc::channel();
    let base = server(vec![
        Box::new(|mut ws| {
            let place = next_request(&mut ws);
            next_request(&mut ws);
            send(&mut ws, answer(&place, report("g1-E1", 7, "1")));
            // Gone without a close frame: the read fails.
        }),
        Box::new(move |mut ws| {
            let query = next_request(&mut ws);
            tx.send(query["method"].clone()).unwrap();
            send(&mut ws, answer(&query, report("g1-E1", 7, "1")));
            until_closed(ws);
        }),
    ]);
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "order.status");
}

#[test]
fn a_status_ahead_waits_past_events_for_its_answer() {
    let (base, rx) = placement_server(|ws, place, status| {
        send(ws, answer(place, report("g1-E1", 7, "1")));
        ws.send(Message::Ping(vec![1].into())).unwrap();
        send(ws, json!({"subscriptionId": 0, "event": {"e": "outboundAccountPosition"}}));
        send(ws, answer(status, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    ws.query_order("ETHUSDT", "g1-E1").unwrap();
    assert_eq!(methods(&rx), ["order.place", "order.status"]);
}

#[test]
fn a_frame_that_is_not_json_is_skipped_while_the_answer_is_awaited() {
    let (base, rx) = placement_server(|ws, place, status| {
        ws.send(Message::text("not json")).unwrap();
        send(ws, answer(place, report("g1-E1", 7, "1")));
        send(ws, answer(status, report("g1-E1", 7, "1")));
    });
    let mut ws = gateway(&base);
    assert_eq!(ws.place_order(&market_buy("g1-E1")).unwrap().exchange_order_id, 7);
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(methods(&rx), ["order.place", "order.status"]);
}

fn ed25519_gateway(base: &str) -> WsApiGateway {
    use crate::exchange::binance::ed25519::{Ed25519Key, Ed25519Login, TEST_KEY_PEM};
    let mut config = BinanceConfig::new(base, KEY, SECRET);
    let key = Ed25519Key::from_pem(TEST_KEY_PEM).unwrap();
    config.ed25519 = Some(Ed25519Login { api_key: "ed-key".into(), key });
    WsApiGateway::new(config).unwrap()
}

/// Answers the logon, then the next request; sends both requests to `tx`.
fn logged_on(tx: mpsc::Sender<Value>) -> Script {
    Box::new(move |mut ws| {
        let logon = next_request(&mut ws);
        send(&mut ws, json!({"id": logon["id"], "status": 200, "result": {"apiKey": "ed-key"}}));
        tx.send(logon).unwrap();
        let ws = answer_one_and_report(ws, &tx);
        until_closed(ws);
    })
}

fn answer_one_and_report(mut ws: Server, tx: &mpsc::Sender<Value>) -> Server {
    let request = next_request(&mut ws);
    send(&mut ws, json!({"id": request["id"], "status": 200, "result": []}));
    tx.send(request).unwrap();
    ws
}

#[test]
fn with_an_ed25519_key_each_connection_logs_on_and_its_requests_carry_no_key_or_signature() {
    use crate::exchange::binance::ed25519::{verify, Ed25519Key, TEST_KEY_PEM};
    let (tx, rx) = mpsc::channel();
    let base = server(vec![logged_on(tx.clone()), logged_on(tx)]);
    let mut ws = ed25519_gateway(&base);
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()));
    let logon = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(logon["method"], "session.logon");
    let params = &logon["params"];
    let payload = format!("apiKey=ed-key&recvWindow=5000&timestamp={}", params["timestamp"]);
    let public = Ed25519Key::from_pem(TEST_KEY_PEM).unwrap().public_key_pem();
    assert!(verify(&public, payload.as_bytes(), params["signature"].as_str().unwrap()));
    let request = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(request["method"], "openOrders.cancelAll");
    assert!(request["params"].get("apiKey").is_none() && request["params"].get("signature").is_none());
    assert!(request["params"]["timestamp"].is_i64() && request["params"]["symbol"] == "ETHUSDT");
    // A renewed connection (the age limit) is logged on again before its first request.
    ws.set_max_connection_age(Duration::ZERO);
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()));
    assert_eq!(rx.recv_timeout(WAIT).unwrap()["method"], "session.logon");
    assert_eq!((ws.connections(), ws.logons()), (2, 2));
}

#[test]
fn a_refused_logon_is_the_refusal_and_a_lost_one_is_not_sent() {
    let refuse = |code: i64, status: u16| -> Script {
        Box::new(move |mut ws| {
            let logon = next_request(&mut ws);
            ws.send(Message::Ping(vec![1].into())).unwrap();
            send(&mut ws, json!({"id": 0, "status": 200, "result": {}}));
            let error = json!({"code": code, "msg": "Signature for this request is not valid."});
            send(&mut ws, json!({"id": logon["id"], "status": status, "error": error}));
            until_closed(ws);
        })
    };
    let base = server(vec![
        refuse(-1022, 400),
        refuse(-1001, 503),
        Box::new(|mut ws| {
            next_request(&mut ws);
            ws.close(None).unwrap();
            let _ = ws.flush();
            until_closed(ws);
        }),
        Box::new(|mut ws| {
            next_request(&mut ws);
        }),
    ]);
    let mut ws = ed25519_gateway(&base);
    let e = ws.open().unwrap_err();
    assert!(matches!(e, ExchangeError::Rejected { code: -1022, .. }), "{e:?}");
    for expected in ["answered 503", "closed", "no answer"] {
        let e = ws.open().unwrap_err();
        assert!(matches!(&e, ExchangeError::NotSent { reason } if reason.contains(expected)), "{expected}: {e:?}");
    }
    assert_eq!(ws.logons(), 0);
}

#[test]
fn a_status_ahead_whose_connection_was_replaced_meanwhile_is_queried_again() {
    let (tx, rx) = mpsc::channel();
    let (closed_tx, closed) = mpsc::channel();
    let base = server(vec![
        Box::new(move |mut ws| {
            let place = next_request(&mut ws);
            next_request(&mut ws);
            send(&mut ws, answer(&place, report("g1-E1", 7, "1")));
            ws.close(None).unwrap();
            let _ = ws.flush();
            closed_tx.send(()).unwrap();
            until_closed(ws);
        }),
        Box::new(move |ws| {
            let mut ws = answer_one(ws);
            let query = next_request(&mut ws);
            tx.send(query["method"].clone()).unwrap();
            send(&mut ws, answer(&query, report("g1-E1", 7, "1")));
            until_closed(ws);
        }),
    ]);
    let mut ws = gateway(&base);
    ws.place_order(&market_buy("g1-E1")).unwrap();
    closed.recv_timeout(WAIT).unwrap();
    // Another request first: it finds the connection closed and makes a new one.
    assert_eq!(ws.cancel_open_orders("ETHUSDT"), Ok(Vec::new()));
    assert_eq!(ws.query_order("ETHUSDT", "g1-E1").unwrap().exchange_order_id, 7);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "order.status");
    assert_eq!(ws.connections(), 2);
}
