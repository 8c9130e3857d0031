//! End to end against a tiny scripted HTTP/1.1 server on 127.0.0.1: what goes on the wire and
//! how each kind of failure comes back.

use super::sign::{parse_query, split_signature, verify};
use super::wire;
use super::*;
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeStatus, Fill, Side};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn params(&self) -> Vec<(String, String)> {
        let mut all = parse_query(&self.query);
        all.extend(parse_query(&self.body));
        all
    }
    fn param(&self, name: &str) -> Option<String> {
        self.params().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    /// The signature verifies over query ‖ body without the signature parameter.
    fn signature_verifies(&self) -> bool {
        let (query, q_sig) = split_signature(&self.query);
        let (body, b_sig) = split_signature(&self.body);
        match q_sig.or(b_sig) {
            Some(sig) => verify(SECRET, query.as_bytes(), body.as_bytes(), &sig),
            None => false,
        }
    }
}

enum Reply {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Read the request, then close the connection without answering.
    Drop,
    /// Read the request, write these bytes as they are, then close the connection.
    Raw(&'static str),
}

fn respond(status: u16, body: impl Into<String>) -> Reply {
    Reply::Respond { status, headers: vec![], body: body.into() }
}

fn respond_with(status: u16, headers: Vec<(&'static str, String)>, body: impl Into<String>) -> Reply {
    Reply::Respond { status, headers, body: body.into() }
}

struct FakeServer {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    /// Answers requests in order with `replies`, keeping connections alive; stops when the
    /// replies run out.
    fn start(replies: Vec<Reply>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut replies: VecDeque<Reply> = replies.into();
            while !replies.is_empty() {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                serve_connection(stream, &mut replies, &recorded);
            }
        });
        FakeServer { base_url: format!("http://{addr}"), requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }

    fn config(&self) -> BinanceConfig {
        let mut config = BinanceConfig::new(self.base_url.as_str(), API_KEY, SECRET);
        config.read_timeout = Duration::from_secs(3);
        config
    }
}

fn serve_connection(stream: TcpStream, replies: &mut VecDeque<Reply>, recorded: &Mutex<Vec<Recorded>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader) else {
            return;
        };
        recorded.lock().push(request);
        match replies.pop_front() {
            Some(Reply::Respond { status, headers, body }) => {
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err() {
                    return;
                }
                let _ = writer.flush();
            }
            Some(Reply::Raw(bytes)) => {
                let _ = writer.write_all(bytes.as_bytes());
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Some(Reply::Drop) | None => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
        if replies.is_empty() {
            // Let the client read the last answer before the socket goes.
            std::thread::sleep(Duration::from_millis(50));
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded { method, path, query, headers, body: String::from_utf8(body).ok()? })
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn time_reply(offset_ms: i64) -> Reply {
    respond(200, wire::server_time_json(clock::local_ms() + offset_ms).to_string())
}

fn btc_rules() -> SymbolRules {
    crate::domain::symbol::fixtures::btcusdt()
}

fn info_reply() -> Reply {
    respond_with(
        200,
        vec![("X-MBX-USED-WEIGHT-1M", "21".into())],
        wire::exchange_info_json(&[btc_rules()], &wire::default_rate_limits(), 1).to_string(),
    )
}

fn market_buy(client_order_id: &str) -> NewOrder {
    NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Market,
        quantity: d("0.001"),
        price: None,
        stop_price: None,
        client_order_id: client_order_id.into(),
    }
}

fn filled(client_order_id: &str) -> OrderReport {
    OrderReport {
        symbol: "BTCUSDT".into(),
        exchange_order_id: 9_780_331_417,
        client_order_id: client_order_id.into(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Market,
        status: ExchangeStatus::Filled,
        orig_qty: d("0.001"),
        executed_qty: d("0.001"),
        cum_quote_qty: d("65.00037"),
        price: Decimal::ZERO,
        stop_price: Decimal::ZERO,
        fills: vec![Fill::new(d("65000.37"), d("0.001"), d("0.000001"), "BTC", 77)],
        time_ms: 1_737_635_557_417,
        expiry_reason: None,
    }
}

fn full_reply(client_order_id: &str) -> Reply {
    respond_with(
        200,
        vec![("X-MBX-USED-WEIGHT-1M", "23".into()), ("x-mbx-order-count-10s", "1".into())],
        wire::order_json(&filled(client_order_id), true).to_string(),
    )
}

fn error_body(code: i64, msg: &str) -> String {
    wire::error_json(code, msg).to_string()
}

#[test]
fn connect_measures_the_clock_offset_and_caches_rules_and_rate_limits() {
    let server = FakeServer::start(vec![time_reply(10_000), info_reply()]);
    let gateway = BinanceGateway::connect(server.config()).unwrap();
    assert!((gateway.clock_offset_ms() - 10_000).abs() < 500);
    assert_eq!(gateway.rules(), &[btc_rules()]);
    assert_eq!(gateway.symbol_rules("BTCUSDT"), Some(&btc_rules()));
    assert_eq!(gateway.order_limit_10s(), Some(100));
    assert_eq!(gateway.weight_limit_1m(), Some(6000));
    assert_eq!(gateway.used_weight_1m(), Some(21));
    assert_eq!(gateway.rate_limits(), wire::default_rate_limits());
    assert_eq!(Exchange::order_limit_10s(&gateway), Some(100));
    assert_eq!(gateway.weight_status(), Some((21, 6000)));
    let requests = server.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/v3/time");
    assert_eq!(requests[1].path, "/api/v3/exchangeInfo");
    // Public calls carry no key.
    assert_eq!(requests[1].header("x-mbx-apikey"), None);
}

#[test]
fn place_order_posts_its_signed_parameters_in_the_query_string_and_parses_the_full_response() {
    let server = FakeServer::start(vec![time_reply(5_000), info_reply(), full_reply("g1-E0001")]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let report = gateway.place_order(&market_buy("g1-E0001")).unwrap();
    assert_eq!(report, filled("g1-E0001"));
    assert_eq!(gateway.used_weight_1m(), Some(23));
    assert_eq!(gateway.order_count_10s(), Some(1));
    let timing = gateway.last_timing();
    assert!(timing.round_trip_ns > 0 && timing.sign_ns > 0, "{timing:?}");

    let sent = &server.requests()[2];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/api/v3/order");
    // No body: the request is its head alone, which ureq sends in one write.
    assert_eq!(sent.body, "");
    assert_eq!(sent.header("x-mbx-apikey"), Some(API_KEY));
    assert!(sent.signature_verifies(), "{}", sent.query);
    assert!(sent.query.starts_with(
        "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=g1-E0001&newOrderRespType=FULL&selfTradePreventionMode=EXPIRE_TAKER&recvWindow=5000&timestamp="
    ));
    let timestamp: i64 = sent.param("timestamp").unwrap().parse().unwrap();
    assert!((timestamp - (clock::local_ms() + 5_000)).abs() < 1_000);
}

#[test]
fn queries_and_cancels_use_the_documented_methods_paths_and_parameters() {
    let order = wire::order_query_json(&OrderReport { fills: vec![], ..filled("g1-E0002") }).to_string();
    let cancel = wire::cancel_json(
        &OrderReport { status: ExchangeStatus::Canceled, fills: vec![], ..filled("g1-E0002") },
        "cancel-xyz",
    )
    .to_string();
    let ticker = wire::book_ticker_json(&BookTicker {
        symbol: "BTCUSDT".into(),
        bid: d("65000"),
        bid_qty: d("1"),
        ask: d("65000.01"),
        ask_qty: d("2"),
    })
    .to_string();
    let balances = vec![Balance { asset: "USDT".into(), free: d("1000"), locked: Decimal::ZERO }];
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(200, order.clone()),
        respond(200, cancel),
        respond(200, format!("[{order}]")),
        respond(400, error_body(-2011, "Unknown order sent.")),
        respond(200, format!("[{order}]")),
        respond(200, ticker),
        respond(200, wire::account_json(&balances).to_string()),
        respond(200, "[]"),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();

    let queried = gateway.query_order("BTCUSDT", "g1-E0002").unwrap();
    assert_eq!(queried.client_order_id, "g1-E0002");
    let cancelled = gateway.cancel_order("BTCUSDT", "g1-E0002").unwrap();
    assert_eq!(cancelled.client_order_id, "g1-E0002");
    assert_eq!(cancelled.status, ExchangeStatus::Canceled);
    assert_eq!(gateway.open_orders(Some("BTCUSDT")).unwrap().len(), 1);
    assert_eq!(gateway.cancel_open_orders("BTCUSDT").unwrap(), vec![]);
    assert_eq!(gateway.all_orders("BTCUSDT").unwrap().len(), 1);
    assert_eq!(gateway.book_ticker("BTCUSDT").unwrap().ask, d("65000.01"));
    assert_eq!(gateway.account().unwrap(), balances);
    assert_eq!(gateway.open_orders(None).unwrap(), vec![]);

    let requests = server.requests();
    let expect = [
        ("GET", "/api/v3/order", Some("BTCUSDT"), Some("g1-E0002"), true),
        ("DELETE", "/api/v3/order", Some("BTCUSDT"), Some("g1-E0002"), true),
        ("GET", "/api/v3/openOrders", Some("BTCUSDT"), None, true),
        ("DELETE", "/api/v3/openOrders", Some("BTCUSDT"), None, true),
        ("GET", "/api/v3/allOrders", Some("BTCUSDT"), None, true),
        ("GET", "/api/v3/ticker/bookTicker", Some("BTCUSDT"), None, false),
        ("GET", "/api/v3/account", None, None, true),
        ("GET", "/api/v3/openOrders", None, None, true),
    ];
    for (sent, (method, path, symbol, orig_id, signed)) in requests[2..].iter().zip(expect) {
        assert_eq!(sent.method, method, "{sent:?}");
        assert_eq!(sent.path, path, "{sent:?}");
        assert_eq!(sent.body, "", "{sent:?}");
        assert_eq!(sent.param("symbol").as_deref(), symbol, "{sent:?}");
        assert_eq!(sent.param("origClientOrderId").as_deref(), orig_id, "{sent:?}");
        if signed {
            assert!(sent.signature_verifies(), "{sent:?}");
            assert_eq!(sent.header("x-mbx-apikey"), Some(API_KEY));
            assert_eq!(sent.param("recvWindow").as_deref(), Some("5000"));
        } else {
            assert_eq!(sent.param("signature"), None);
            assert_eq!(sent.param("timestamp"), None);
        }
    }
}

#[test]
fn server_error_after_the_request_is_unknown() {
    let server = FakeServer::start(vec![time_reply(0), info_reply(), respond(503, "<html>Service Unavailable</html>")]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0003")).unwrap_err();
    assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
    assert_eq!(server.requests().len(), 3, "an unknown outcome is never resent");
}

#[test]
fn too_many_requests_with_a_long_retry_after_is_rate_limited_for_that_long() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond_with(429, vec![("Retry-After", "3".into())], error_body(-1003, "Too much request weight used")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0004")).unwrap_err();
    assert_eq!(
        e,
        ExchangeError::RateLimited {
            retry_after: Duration::from_secs(3),
            banned: false,
            code: -1003,
            msg: "Too much request weight used".into()
        }
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn too_many_requests_with_a_short_retry_after_is_waited_out_and_sent_again() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond_with(429, vec![("Retry-After", "0".into())], error_body(-1003, "Too much request weight used")),
        full_reply("g1-E0005"),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let report = gateway.place_order(&market_buy("g1-E0005")).unwrap();
    assert_eq!(report.client_order_id, "g1-E0005");
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[3].param("newClientOrderId").as_deref(), Some("g1-E0005"));
}

#[test]
fn ip_ban_is_rate_limited_and_banned() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond_with(
            418,
            vec![("Retry-After", "1".into())],
            error_body(-1003, "Way too much request weight used; IP banned"),
        ),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.book_ticker("BTCUSDT").unwrap_err();
    assert!(
        matches!(e, ExchangeError::RateLimited { banned: true, retry_after, .. } if retry_after == Duration::from_secs(1)),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 3, "a ban is never waited out in place");
}

#[test]
fn timestamp_rejection_resyncs_the_clock_and_resends_with_the_same_client_id() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(400, error_body(-1021, "Timestamp for this request is outside of the recvWindow.")),
        time_reply(20_000),
        full_reply("g1-E0006"),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let report = gateway.place_order(&market_buy("g1-E0006")).unwrap();
    assert_eq!(report.client_order_id, "g1-E0006");
    assert!((gateway.clock_offset_ms() - 20_000).abs() < 500);

    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[2].path, "/api/v3/order");
    assert_eq!(requests[3].path, "/api/v3/time");
    assert_eq!(requests[4].path, "/api/v3/order");
    for sent in [&requests[2], &requests[4]] {
        assert_eq!(sent.param("newClientOrderId").as_deref(), Some("g1-E0006"));
        assert!(sent.signature_verifies());
    }
    let first: i64 = requests[2].param("timestamp").unwrap().parse().unwrap();
    let second: i64 = requests[4].param("timestamp").unwrap().parse().unwrap();
    assert!(second - first > 19_000, "{first} {second}");
}

#[test]
fn a_second_timestamp_rejection_is_returned_not_retried_forever() {
    let refuse = || respond(400, error_body(-1021, "Timestamp for this request is outside of the recvWindow."));
    let server = FakeServer::start(vec![time_reply(0), info_reply(), refuse(), time_reply(0), refuse()]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0007")).unwrap_err();
    assert!(e.is_timestamp_error(), "{e:?}");
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn a_timestamp_rejection_whose_resync_fails_returns_the_rejection() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(400, error_body(-1021, "Timestamp for this request is outside of the recvWindow.")),
        respond(503, "<html>Service Unavailable</html>"),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0011")).unwrap_err();
    assert!(e.is_timestamp_error(), "{e:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "the order is not sent again without a fresh clock");
    assert_eq!(requests[3].path, "/api/v3/time");
}

#[test]
fn a_garbled_http_response_is_unknown() {
    let server = FakeServer::start(vec![time_reply(0), info_reply(), Reply::Raw("HELLO THERE\r\n\r\n")]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0012")).unwrap_err();
    assert!(matches!(&e, ExchangeError::Unknown { reason } if reason.starts_with("bad HTTP response")), "{e:?}");
}

#[test]
fn a_success_whose_body_is_cut_off_is_unknown() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        Reply::Raw("HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"symbol\":\"BTCUSDT\","),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0013")).unwrap_err();
    assert!(
        matches!(&e, ExchangeError::Unknown { reason } if reason.starts_with("HTTP 200 but the body was lost")),
        "{e:?}"
    );
}

#[test]
fn a_rejection_whose_body_is_cut_off_is_still_rejected_by_its_status() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        Reply::Raw("HTTP/1.1 400 Bad Request\r\nContent-Length: 400\r\n\r\n{\"code\":-20"),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0014")).unwrap_err();
    assert_eq!(e, ExchangeError::Rejected { http_status: 400, code: 0, msg: "HTTP 400: ".into() });
}

#[test]
fn connection_dropped_after_the_request_is_unknown() {
    let server = FakeServer::start(vec![time_reply(0), info_reply(), Reply::Drop]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0008")).unwrap_err();
    assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].path, "/api/v3/order");
}

#[test]
fn malformed_success_body_for_an_order_is_unknown() {
    let server =
        FakeServer::start(vec![time_reply(0), info_reply(), respond(200, r#"{"symbol":"BTCUSDT","orderId":"#)]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0009")).unwrap_err();
    assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
}

#[test]
fn business_rejection_keeps_the_binance_code_and_message_without_secrets() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(401, error_body(-2015, "Invalid API-key, IP, or permissions for action.")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let e = gateway.account().unwrap_err();
    assert_eq!(
        e,
        ExchangeError::Rejected {
            http_status: 401,
            code: -2015,
            msg: "Invalid API-key, IP, or permissions for action.".into()
        }
    );
    for text in [e.to_string(), format!("{e:?}"), format!("{gateway:?}")] {
        assert!(!text.contains(API_KEY), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }
}

fn dead_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn refused_connection_is_not_sent() {
    let config = BinanceConfig::new(dead_port_url(), API_KEY, SECRET);
    let e = BinanceGateway::connect(config.clone()).unwrap_err();
    assert!(matches!(e, ExchangeError::NotSent { .. }), "{e:?}");

    let mut gateway = BinanceGateway::new(config).unwrap();
    let e = gateway.place_order(&market_buy("g1-E0010")).unwrap_err();
    assert!(matches!(e, ExchangeError::NotSent { .. }), "{e:?}");
    assert!(!e.to_string().contains(API_KEY) && !e.to_string().contains(SECRET));
}

fn stop_report(client_order_id: &str) -> OrderReport {
    OrderReport {
        side: Side::Sell,
        order_type: ExchangeOrderType::StopLossLimit,
        status: ExchangeStatus::Canceled,
        orig_qty: d("0.001"),
        executed_qty: Decimal::ZERO,
        cum_quote_qty: Decimal::ZERO,
        price: d("58000"),
        stop_price: d("58100"),
        fills: vec![],
        ..filled(client_order_id)
    }
}

fn replaced_body(cancelled: &str, placed: &str) -> String {
    serde_json::json!({
        "cancelResult": "SUCCESS",
        "newOrderResult": "SUCCESS",
        "cancelResponse": wire::cancel_json(&stop_report(cancelled), "cancel-xyz"),
        "newOrderResponse": wire::order_json(&filled(placed), true),
    })
    .to_string()
}

fn cancel_refused_body(code: i64, msg: &str) -> String {
    serde_json::json!({"code": -2022, "msg": "Order cancel-replace failed.", "data": {
        "cancelResult": "FAILURE",
        "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": {"code": code, "msg": msg},
        "newOrderResponse": null,
    }})
    .to_string()
}

fn place_refused_body(cancelled: &str, code: i64, msg: &str) -> String {
    serde_json::json!({"code": -2021, "msg": "Order cancel-replace partially failed.", "data": {
        "cancelResult": "SUCCESS",
        "newOrderResult": "FAILURE",
        "cancelResponse": wire::cancel_json(&stop_report(cancelled), "cancel-xyz"),
        "newOrderResponse": {"code": code, "msg": msg},
    }})
    .to_string()
}

#[test]
fn cancel_replace_posts_the_new_order_with_the_mode_and_the_stops_id_and_reads_both_parts() {
    let server =
        FakeServer::start(vec![time_reply(0), info_reply(), respond(200, replaced_body("g1-S0001", "g1-E0020"))]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let replaced = gateway.cancel_replace("g1-S0001", &market_buy("g1-E0020")).unwrap();
    assert_eq!(replaced, Replaced::Both { cancelled: stop_report("g1-S0001"), placed: filled("g1-E0020") });
    let sent = &server.requests()[2];
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/api/v3/order/cancelReplace"));
    assert_eq!(sent.header("x-mbx-apikey"), Some(API_KEY));
    assert_eq!(sent.body, "");
    assert!(sent.signature_verifies(), "{}", sent.query);
    assert!(
        sent.query.starts_with(
            "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=g1-E0020&newOrderRespType=FULL\
             &selfTradePreventionMode=EXPIRE_TAKER&cancelReplaceMode=STOP_ON_FAILURE&cancelOrigClientOrderId=g1-S0001&recvWindow=5000&timestamp="
        ),
        "{}",
        sent.query
    );
}

#[test]
fn cancel_replace_whose_cancel_is_refused_reports_the_cancels_code_and_places_nothing() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(400, cancel_refused_body(-2011, "Unknown order sent.")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let replaced = gateway.cancel_replace("g1-S0002", &market_buy("g1-E0021")).unwrap();
    assert_eq!(
        replaced,
        Replaced::CancelRefused {
            error: ExchangeError::Rejected { http_status: 400, code: -2011, msg: "Unknown order sent.".into() }
        }
    );
}

#[test]
fn cancel_replace_whose_new_order_is_refused_reports_the_cancel_and_the_refusal() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(409, place_refused_body("g1-S0003", -2010, "Account has insufficient balance for requested action.")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let replaced = gateway.cancel_replace("g1-S0003", &market_buy("g1-E0022")).unwrap();
    assert_eq!(
        replaced,
        Replaced::PlaceRefused {
            cancelled: stop_report("g1-S0003"),
            error: ExchangeError::Rejected {
                http_status: 409,
                code: -2010,
                msg: "Account has insufficient balance for requested action.".into()
            },
        }
    );
}

#[test]
fn cancel_replace_answers_without_the_documented_data_are_classified_as_any_request() {
    let not_json = "<html>Conflict</html>";
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        // 409: the cancel happened; without the documented data the rest is unclear.
        respond(409, not_json),
        respond(409, cancel_refused_body(-2011, "Unknown order sent.")),
        // 400 -2022 without data, or with a shape that contradicts it: a plain rejection.
        respond(400, error_body(-2022, "Order cancel-replace failed.")),
        respond(
            400,
            place_refused_body("g1-S0004", -2010, "Account has insufficient balance for requested action.")
                .replace("-2021", "-2022"),
        ),
        // Other 4xx: as any request (a filter failure: nothing happened).
        respond(400, error_body(-1013, "Filter failure: LOT_SIZE")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    let mut next = || gateway.cancel_replace("g1-S0004", &market_buy("g1-E0023")).unwrap_err();
    for _ in 0..2 {
        let e = next();
        assert!(matches!(&e, ExchangeError::Unknown { reason } if reason.contains("409")), "{e:?}");
        assert!(!e.to_string().contains(API_KEY) && !e.to_string().contains(SECRET), "{e}");
    }
    for _ in 0..2 {
        let e = next();
        assert!(matches!(e, ExchangeError::Rejected { http_status: 400, code: -2022, .. }), "{e:?}");
    }
    assert_eq!(
        next(),
        ExchangeError::Rejected { http_status: 400, code: -1013, msg: "Filter failure: LOT_SIZE".into() }
    );
}

#[test]
fn cancel_replace_parts_whose_outcome_is_unknown_make_it_unknown() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(400, cancel_refused_body(-1007, "Timeout waiting for response from backend server.")),
        respond(409, place_refused_body("g1-S0005", -1006, "Execution status unknown.")),
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    for what in ["cancel", "new order"] {
        let e = gateway.cancel_replace("g1-S0005", &market_buy("g1-E0024")).unwrap_err();
        assert!(
            matches!(&e, ExchangeError::Unknown { reason } if reason.contains(&format!("the {what} answered"))),
            "{e:?}"
        );
    }
}

#[test]
fn cancel_replace_server_errors_drops_and_garbled_successes_are_unknown_and_never_resent() {
    let server = FakeServer::start(vec![
        time_reply(0),
        info_reply(),
        respond(503, wire::error_json(-1007, "Timeout waiting for response from backend server.").to_string()),
        respond(200, r#"{"cancelResult":"SUCCESS"}"#),
        Reply::Drop,
    ]);
    let mut gateway = BinanceGateway::connect(server.config()).unwrap();
    for _ in 0..3 {
        let e = gateway.cancel_replace("g1-S0006", &market_buy("g1-E0025")).unwrap_err();
        assert!(matches!(e, ExchangeError::Unknown { .. }), "{e:?}");
    }
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn cancel_replace_missing_a_stop_price_is_refused_before_sending() {
    let mut gateway = BinanceGateway::new(BinanceConfig::new(dead_port_url(), API_KEY, SECRET)).unwrap();
    let stop = NewOrder { order_type: ExchangeOrderType::StopLoss, ..market_buy("g1-E0026") };
    let e = gateway.cancel_replace("g1-S0007", &stop).unwrap_err();
    assert!(matches!(e, ExchangeError::Rejected { code: -1102, .. }), "{e:?}");
}
