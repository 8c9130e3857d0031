//! The market stream: parsing, the shared book's rules, and the thread against a scripted
//! WebSocket server on 127.0.0.1.

use super::*;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::thread::JoinHandle;
use tungstenite::handshake::server::{Request, Response};

/// Generous: only reached when something is wrong.
const WAIT: Duration = Duration::from_secs(10);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn ticker(symbol: &str, bid: &str, ask: &str) -> BookTicker {
    BookTicker { symbol: symbol.into(), bid: d(bid), bid_qty: d("1.5"), ask: d(ask), ask_qty: d("2") }
}

fn event(symbol: &str, bid: &str, ask: &str) -> String {
    let stream = stream_name(symbol);
    json!({"stream": stream, "data": {"u": 400900217, "s": symbol, "b": bid, "B": "1.5", "a": ask, "A": "2"}})
        .to_string()
}

#[test]
fn a_book_ticker_event_of_a_combined_stream_parses() {
    let frame = parse_frame(&event("BNBUSDT", "25.35190000", "25.36520000")).unwrap();
    assert_eq!(frame, StreamFrame::Ticker(ticker("BNBUSDT", "25.3519", "25.3652")));
}

#[test]
fn answers_shutdowns_and_other_frames_are_told_apart() {
    assert_eq!(parse_frame(r#"{"result":null,"id":1}"#), Ok(StreamFrame::Answer { id: 1, outcome: Ok(()) }));
    let refused = parse_frame(r#"{"code":2,"msg":"Invalid request","id":3}"#).unwrap();
    assert!(matches!(refused, StreamFrame::Answer { id: 3, outcome: Err(e) } if e.contains("Invalid request")));
    let shutdown = r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}"#;
    assert_eq!(parse_frame(shutdown), Ok(StreamFrame::Shutdown));
    assert_eq!(parse_frame(r#"{"stream":"btcusdt@trade","data":{"e":"trade"}}"#), Ok(StreamFrame::Other));
    assert_eq!(parse_frame(r#"{"result":["btcusdt@bookTicker"]}"#), Ok(StreamFrame::Other));
}

#[test]
fn a_malformed_frame_is_an_error_naming_what_is_wrong() {
    assert!(parse_frame("nope").unwrap_err().starts_with("not JSON"));
    let missing_ask = r#"{"stream":"btcusdt@bookTicker","data":{"s":"BTCUSDT","b":"1","B":"1","A":"1"}}"#;
    assert!(parse_frame(missing_ask).unwrap_err().starts_with("bookTicker"));
}

#[test]
fn binance_hosts_map_to_their_stream_hosts_and_others_keep_theirs() {
    assert_eq!(market_stream_url("https://api.binance.com"), "wss://stream.binance.com:9443/stream");
    assert_eq!(market_stream_url("https://testnet.binance.vision/api"), "wss://stream.testnet.binance.vision/stream");
    assert_eq!(market_stream_url("https://demo-api.binance.com"), "wss://demo-stream.binance.com/stream");
    assert_eq!(market_stream_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/stream");
    assert_eq!(stream_name("BTCUSDT"), "btcusdt@bookTicker");
}

#[test]
fn a_quote_counts_only_from_a_live_connection() {
    let book = StreamBook::new(Duration::from_secs(60));
    book.update(ticker("BTCUSDT", "1", "2"));
    assert_eq!(book.quote("BTCUSDT"), None, "not from this connection: none is up");
    book.open(&["BTCUSDT".to_string()]);
    assert_eq!(book.quote("BTCUSDT"), None, "from the connection before");
    book.update(ticker("BTCUSDT", "3", "4"));
    let (quote, age) = book.quote("BTCUSDT").unwrap();
    assert_eq!((quote.bid, quote.ask), (d("3"), d("4")));
    assert!(age < Duration::from_secs(60));
    assert_eq!((book.covered(), book.updates(), book.live()), (1, 2, true));
    book.close();
    assert_eq!((book.quote("BTCUSDT"), book.covered(), book.live()), (None, 0, false));
}

#[test]
fn a_connection_heard_from_too_long_ago_is_stale() {
    let book = StreamBook::new(Duration::ZERO);
    book.open(&[]);
    book.update(ticker("BTCUSDT", "1", "2"));
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!((book.quote("BTCUSDT"), book.live(), book.covered()), (None, false, 0));
}

#[test]
fn a_rest_answer_asked_for_after_the_subscription_is_a_stream_quote() {
    let book = StreamBook::new(Duration::from_secs(60));
    let before = Instant::now();
    book.open(&[]);
    book.want("ETHUSDT");
    book.want("ETHUSDT");
    assert_eq!(book.wanted.lock().len(), 1);
    book.seed(&ticker("ETHUSDT", "1", "2"), Instant::now());
    assert_eq!(book.quote("ETHUSDT"), None, "not subscribed yet");
    book.confirm(&["ETHUSDT".to_string()]);
    book.seed(&ticker("ETHUSDT", "1", "2"), before);
    assert_eq!(book.quote("ETHUSDT"), None, "asked for before the subscription");
    let asked = Instant::now();
    book.seed(&ticker("ETHUSDT", "1", "2"), asked);
    assert_eq!(book.quote("ETHUSDT").unwrap().0.bid, d("1"));
    book.update(ticker("ETHUSDT", "5", "6"));
    book.seed(&ticker("ETHUSDT", "1", "2"), asked);
    assert_eq!(book.quote("ETHUSDT").unwrap().0.bid, d("5"), "an event after the request wins");
    book.close();
    book.seed(&ticker("ETHUSDT", "7", "8"), Instant::now());
    book.open(&[]);
    assert_eq!(book.quote("ETHUSDT"), None, "nothing seeded while down");
}

// --- the thread against a scripted server ---

type Server = WebSocket<TcpStream>;
type Script = Box<dyn FnOnce(Server, String) + Send>;

/// A WebSocket server that runs one script per connection (with the request's path and query),
/// in order, then stops listening. Returns the stream URL.
fn ws_server(scripts: Vec<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for script in scripts {
            let Ok((tcp, _)) = listener.accept() else { return };
            let mut target = String::new();
            #[allow(clippy::result_large_err)] // tungstenite's callback type, not ours
            let callback = |req: &Request, resp: Response| {
                target = req.uri().to_string();
                Ok(resp)
            };
            let Ok(ws) = tungstenite::accept_hdr(tcp, callback) else { return };
            script(ws, target);
        }
    });
    url
}

fn send(ws: &mut Server, text: String) {
    ws.send(Message::text(text)).unwrap();
}

/// The next text frame the client sent, as JSON (pings are answered by the read).
fn next_request(ws: &mut Server) -> Value {
    loop {
        if let Message::Text(text) = ws.read().unwrap() {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

fn until_closed(ws: &mut Server) {
    while ws.read().is_ok() {}
}

const CLOCKS: Clocks = Clocks {
    ping_every: Duration::from_secs(60),
    stale_after: Duration::from_secs(60),
    connect_timeout: Duration::from_secs(2),
    max_streams: MAX_STREAMS,
};

struct Client {
    book: Arc<StreamBook>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    fn start(url: &str, clocks: Clocks, wanted: &[&str]) -> Client {
        let book = Arc::new(StreamBook::new(clocks.stale_after));
        for symbol in wanted {
            book.want(symbol);
        }
        let thread_book = Arc::clone(&book);
        let url = url.to_string();
        let thread = std::thread::spawn(move || run(&url, &thread_book, &clocks));
        Client { book, thread: Some(thread) }
    }

    /// Waits until `ready(book)`.
    fn until(&self, what: &str, ready: impl Fn(&StreamBook) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(&self.book) {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop_and_join(mut self) {
        self.book.stop();
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the thread did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.book.stop();
    }
}

#[test]
fn the_connection_names_the_wanted_streams_and_their_events_become_quotes() {
    let (targets_tx, targets) = crossbeam_channel::unbounded();
    let url = ws_server(vec![Box::new(move |mut ws, target| {
        targets_tx.send(target).unwrap();
        send(&mut ws, r#"{"stream":"btcusdt@trade","data":{}}"#.into());
        send(&mut ws, "garbage".into());
        ws.send(Message::Binary(vec![1].into())).unwrap();
        send(&mut ws, event("BTCUSDT", "100.1", "100.2"));
        until_closed(&mut ws);
    })]);
    let client = Client::start(&url, CLOCKS, &["BTCUSDT", "ETHUSDT"]);
    client.until("a BTCUSDT quote", |b| b.quote("BTCUSDT").is_some());
    assert_eq!(client.book.quote("BTCUSDT").unwrap().0, ticker("BTCUSDT", "100.1", "100.2"));
    assert_eq!(targets.recv_timeout(WAIT).unwrap(), "/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker");
    client.stop_and_join();
}

#[test]
fn a_symbol_wanted_later_is_subscribed_and_a_refusal_leaves_it_on_rest() {
    let (requests_tx, requests) = crossbeam_channel::unbounded();
    let url = ws_server(vec![Box::new(move |mut ws, _| {
        let first = next_request(&mut ws);
        send(&mut ws, json!({"result": null, "id": first["id"]}).to_string());
        let second = next_request(&mut ws);
        send(&mut ws, json!({"code": 2, "msg": "Invalid request", "id": second["id"]}).to_string());
        requests_tx.send((first, second)).unwrap();
        until_closed(&mut ws);
    })]);
    let client = Client::start(&url, CLOCKS, &["BTCUSDT"]);
    client.until("connected", StreamBook::live);
    client.book.want("ETHUSDT");
    client.until("ETHUSDT confirmed", |b| b.inner.read().confirmed.contains_key("ETHUSDT"));
    client.book.want("SOLUSDT");
    let (first, second) = requests.recv_timeout(WAIT).unwrap();
    assert_eq!((first["method"].as_str(), &first["params"]), (Some("SUBSCRIBE"), &json!(["ethusdt@bookTicker"])));
    assert_eq!(second["params"], json!(["solusdt@bookTicker"]));
    client.book.seed(&ticker("SOLUSDT", "1", "2"), Instant::now());
    assert_eq!(client.book.quote("SOLUSDT"), None, "refused: not on the stream");
    client.stop_and_join();
}

#[test]
fn pings_go_out_to_keep_a_quiet_connection_proven_live() {
    let (pings_tx, pings) = crossbeam_channel::unbounded();
    let url = ws_server(vec![Box::new(move |mut ws, _| {
        let mut seen = 0;
        while seen < 2 {
            if let Message::Ping(_) = ws.read().unwrap() {
                seen += 1;
            }
        }
        pings_tx.send(seen).unwrap();
        until_closed(&mut ws);
    })]);
    let clocks = Clocks { ping_every: Duration::from_millis(10), ..CLOCKS };
    let client = Client::start(&url, clocks, &["BTCUSDT"]);
    assert_eq!(pings.recv_timeout(WAIT).unwrap(), 2);
    client.stop_and_join();
}

#[test]
fn a_silent_connection_goes_stale_and_is_made_again() {
    let url = ws_server(vec![
        Box::new(|mut ws, _| {
            send(&mut ws, event("BTCUSDT", "1", "2"));
            // Silent from now on: nothing read, nothing sent, until the client gives up.
            std::thread::sleep(Duration::from_secs(2));
            drop(ws);
        }),
        Box::new(|mut ws, _| {
            send(&mut ws, event("BTCUSDT", "3", "4"));
            until_closed(&mut ws);
        }),
    ]);
    let clocks = Clocks { stale_after: Duration::from_millis(300), ..CLOCKS };
    let client = Client::start(&url, clocks, &["BTCUSDT"]);
    client.until("the first quote", |b| b.quote("BTCUSDT").is_some());
    client.until("stale", |b| !b.live());
    client.until("the second connection's quote", |b| b.quote("BTCUSDT").is_some_and(|(t, _)| t.bid == d("3")));
    client.stop_and_join();
}

#[test]
fn a_shutdown_a_close_and_a_reset_each_end_a_connection_and_it_is_made_again() {
    let (connections_tx, connections) = crossbeam_channel::unbounded();
    let count = |tx: crossbeam_channel::Sender<u32>, n: u32| tx.send(n).unwrap();
    let (a, b, c, e) = (connections_tx.clone(), connections_tx.clone(), connections_tx.clone(), connections_tx);
    let url = ws_server(vec![
        Box::new(move |mut ws, _| {
            count(a, 1);
            send(&mut ws, r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#.into());
            until_closed(&mut ws);
        }),
        Box::new(move |mut ws, _| {
            count(b, 2);
            ws.close(None).unwrap();
            until_closed(&mut ws);
        }),
        Box::new(move |ws, _| {
            count(c, 3);
            let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
        }),
        Box::new(move |mut ws, _| {
            count(e, 4);
            send(&mut ws, event("BTCUSDT", "1", "2"));
            until_closed(&mut ws);
        }),
    ]);
    let client = Client::start(&url, CLOCKS, &["BTCUSDT"]);
    client.until("the fourth connection's quote", |b| b.quote("BTCUSDT").is_some());
    assert_eq!(connections.try_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    client.stop_and_join();
}

#[test]
fn past_the_stream_limit_a_symbol_is_not_subscribed() {
    let (first_tx, first) = crossbeam_channel::unbounded();
    let url = ws_server(vec![Box::new(move |mut ws, target| {
        // Three send gaps with nothing sent: no SUBSCRIBE for the symbol past the limit.
        ws.get_ref().set_read_timeout(Some(SEND_GAP * 3)).unwrap();
        match ws.read() {
            Ok(Message::Text(text)) => panic!("unexpected request {text}"),
            other => assert!(other.is_err(), "{other:?}"),
        }
        first_tx.send(target).unwrap();
    })]);
    let clocks = Clocks { max_streams: 1, ..CLOCKS };
    let client = Client::start(&url, clocks, &["BTCUSDT", "ETHUSDT"]);
    assert_eq!(first.recv_timeout(WAIT).unwrap(), "/stream?streams=btcusdt@bookTicker");
    client.stop_and_join();
}

#[test]
fn a_server_that_cannot_be_reached_is_tried_again_until_stopped() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("ws://{}/stream", listener.local_addr().unwrap());
    drop(listener);
    for url in [closed, "ws://:80/stream".to_string()] {
        let client = Client::start(&url, CLOCKS, &["BTCUSDT"]);
        std::thread::sleep(Duration::from_millis(150));
        assert!(!client.book.live());
        client.stop_and_join();
    }
}

#[test]
fn a_server_that_refuses_the_upgrade_is_tried_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    let (served_tx, served) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut tcp, _)) = listener.accept() else { return };
            let _ = std::io::Write::write_all(&mut tcp, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            served_tx.send(()).unwrap();
        }
    });
    let client = Client::start(&url, CLOCKS, &["BTCUSDT"]);
    served.recv_timeout(WAIT).unwrap();
    served.recv_timeout(WAIT).unwrap();
    assert!(!client.book.live());
    client.stop_and_join();
}

#[test]
fn with_nothing_wanted_no_connection_is_made_and_the_thread_starts_and_stops() {
    let book = Arc::new(StreamBook::new(Duration::from_secs(1)));
    start("ws://127.0.0.1:9/stream".into(), Arc::clone(&book), CLOCKS, || {}).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!book.live());
    book.stop();
}
