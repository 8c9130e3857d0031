//! The user data stream client: one thread, a synchronous WebSocket (`tungstenite`) to the
//! WebSocket API, subscribed with `userDataStream.subscribe.signature`. Every
//! `executionReport` becomes an [`OrderReport`] sent to the exchange I/O stage.
//!
//! - Reconnects on any error with a back-off (100 ms doubling to 5 s; reset once subscribed).
//!   After every subscription it sends [`StreamMsg::Subscribed`]: the stage polls at once, so a
//!   change made while the stream was down is still learnt (the poll is the gap's reconcile).
//! - Holds nothing but its channel to the stage and a stop flag the stage's [`StreamLink`] sets
//!   when dropped: it never keeps the pipeline alive, and exits within one read timeout.
//! - Never spins: reads block up to 250 ms; a WebSocket ping goes out every 30 s and a
//!   connection silent for 75 s is closed and made again.
//! - The key is sent only inside the subscription request; it is never logged.

use super::user_data::{parse_ws_message, subscribe_signature_request, WsMessage};
use super::{Secret, Signer};
use crossbeam_channel::Sender;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The stage's end: the receiver, and the stop flag raised when it is dropped.
pub use crate::exchange::PushLink as StreamLink;
/// What the stream thread tells the exchange I/O stage (the exchange boundary's type).
pub use crate::exchange::PushMsg as StreamMsg;

/// Where and as whom to subscribe.
#[derive(Clone)]
pub struct StreamConfig {
    /// `ws://host:port/ws-api/v3` or `wss://...`.
    pub url: String,
    pub api_key: Secret,
    pub api_secret: Secret,
    pub connect_timeout: Duration,
    /// The REST gateway's clock (shared: a resync after a -1021 there moves it here too).
    pub clock: super::clock::ExchangeClock,
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig").field("url", &self.url).field("api_key", &self.api_key).finish_non_exhaustive()
    }
}

const READ_TIMEOUT: Duration = Duration::from_millis(250);
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENT_LIMIT: Duration = Duration::from_secs(75);
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The clocks of a session: the constants above in the engine; tests shorten them.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    /// A ping goes out this often.
    ping_every: Duration,
    /// A connection silent this long is closed and made again.
    silent_limit: Duration,
    /// The subscription must be answered within this (or the connect timeout, if longer).
    subscribe_within: Duration,
}

const CLOCKS: Clocks =
    Clocks { ping_every: PING_EVERY, silent_limit: SILENT_LIMIT, subscribe_within: SUBSCRIBE_WITHIN };

/// Starts the stream thread; `capacity` bounds the channel to the stage. `on_thread` runs first
/// on the new thread (the engine pins it there).
pub fn start(
    config: StreamConfig,
    capacity: usize,
    on_thread: impl FnOnce() + Send + 'static,
) -> std::io::Result<StreamLink> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new().name("user-stream".into()).spawn(move || {
        on_thread();
        run(config, tx, thread_stop, CLOCKS)
    })?;
    Ok(StreamLink::new(rx, stop))
}

impl crate::exchange::PushSource for StreamConfig {
    fn start(self: Box<Self>, capacity: usize, on_thread: Box<dyn FnOnce() + Send>) -> std::io::Result<StreamLink> {
        start(*self, capacity, on_thread)
    }
}

/// Why a session ended.
enum End {
    /// The stage is gone: exit.
    Stop,
    /// Reconnect after the back-off (`subscribed`: the session got as far as a subscription).
    Retry { reason: String, subscribed: bool },
}

fn run(config: StreamConfig, tx: Sender<StreamMsg>, stop: Arc<AtomicBool>, clocks: Clocks) {
    let signer = Signer::new(&config.api_secret);
    let mut backoff = FIRST_BACKOFF;
    let mut request_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match session(&config, &signer, &tx, &stop, &mut request_id, &clocks) {
            End::Stop => return,
            End::Retry { reason, subscribed } => {
                if subscribed {
                    backoff = FIRST_BACKOFF;
                    if tx.send(StreamMsg::Down(reason.clone())).is_err() {
                        return;
                    }
                }
                log::warn!("user data stream: {reason}; reconnecting in {} ms", backoff.as_millis());
            }
        }
        // Sleep the back-off in short steps so a stop is seen quickly.
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(READ_TIMEOUT.min(until.saturating_duration_since(Instant::now())));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// The authority of a `ws://` / `wss://` URL, and the `host:port` to connect to: the URL's
/// port, else 443 for `wss` and 80 for `ws`.
pub(super) fn authority_and_address(url: &str) -> (&str, String) {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let default_port = if url.starts_with("wss://") { 443 } else { 80 };
    let host_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    (authority, host_port)
}

fn connect(config: &StreamConfig) -> Result<Socket, String> {
    let url = &config.url;
    let (authority, host_port) = authority_and_address(url);
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {authority}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, config.connect_timeout).map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(config.connect_timeout.max(Duration::from_secs(2)))).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let (socket, _) =
        tungstenite::client_tls_with_config(url.as_str(), tcp, None, None).map_err(|e| format!("handshake: {e}"))?;
    Ok(socket)
}

fn set_read_timeout(socket: &Socket, timeout: Duration) {
    let tcp = match socket.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        // No test can run it: a TLS stream exists only once the handshake has verified the
        // server against the webpki roots, i.e. on Binance's hosts; tests stay on 127.0.0.1.
        #[cfg(not(tarpaulin_include))]
        MaybeTlsStream::Rustls(s) => s.get_ref(),
        // No test can run it: the enum is non-exhaustive, but with our features (rustls only)
        // it has no other variant.
        #[cfg(not(tarpaulin_include))]
        _ => return,
    };
    let _ = tcp.set_read_timeout(Some(timeout));
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// One connection: connect, subscribe, forward events until an error or a stop.
fn session(
    config: &StreamConfig,
    signer: &Signer,
    tx: &Sender<StreamMsg>,
    stop: &AtomicBool,
    request_id: &mut u64,
    clocks: &Clocks,
) -> End {
    let retry = |reason: String, subscribed: bool| End::Retry { reason, subscribed };
    let mut socket = match connect(config) {
        Ok(s) => s,
        Err(e) => return retry(e, false),
    };
    *request_id += 1;
    let subscribe_id = *request_id;
    let timestamp = config.clock.now_ms();
    let request = subscribe_signature_request(subscribe_id, config.api_key.expose(), timestamp, signer);
    if let Err(e) = socket.send(Message::text(request)) {
        // No test can run it deterministically: the connection would have to break in the
        // microseconds between the handshake and this send (live tracking's tests sometimes
        // meet it, by chance).
        #[cfg(not(tarpaulin_include))]
        return retry(format!("send subscription: {e}"), false);
    }
    set_read_timeout(&socket, READ_TIMEOUT);
    let mut subscribed = false;
    let started = Instant::now();
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            let _ = socket.close(None);
            let _ = socket.flush();
            return End::Stop;
        }
        if !subscribed && started.elapsed() > config.connect_timeout.max(clocks.subscribe_within) {
            return retry("no answer to the subscription".into(), false);
        }
        if last_heard.elapsed() > clocks.silent_limit {
            return retry(format!("nothing heard for {} s", clocks.silent_limit.as_secs()), subscribed);
        }
        if last_ping.elapsed() >= clocks.ping_every {
            last_ping = Instant::now();
            if let Err(e) = socket.send(Message::Ping(Vec::new().into())) {
                return retry(format!("ping: {e}"), subscribed);
            }
        }
        let message = match socket.read() {
            Ok(m) => m,
            Err(e) if is_timeout(&e) => {
                // A pong queued by the read goes out here.
                match socket.flush() {
                    // No test can run it: there is something to flush only after a write
                    // timed out (5 s with the send buffer full), and the connection would
                    // have to break after the read timed out and before this flush (a break
                    // during the read fails the read).
                    #[cfg(not(tarpaulin_include))]
                    Err(e) if !is_timeout(&e) => return retry(format!("flush: {e}"), subscribed),
                    _ => continue,
                }
            }
            Err(e) => return retry(format!("read: {e}"), subscribed),
        };
        last_heard = Instant::now();
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => return retry(format!("closed by the server ({frame:?})"), subscribed),
            _ => continue,
        };
        match parse_ws_message(text.as_str()) {
            Ok(WsMessage::Execution { report, event_ms }) => {
                if tx.send(StreamMsg::Report { report, event_ms }).is_err() {
                    return End::Stop;
                }
            }
            Ok(WsMessage::Response { id, status, result, error }) => {
                if id.as_u64() != Some(subscribe_id) {
                    continue;
                }
                if status != 200 {
                    let (code, msg) = error.unwrap_or_default();
                    return retry(format!("subscription refused ({status}, {code}): {msg}"), false);
                }
                subscribed = true;
                log::info!("user data stream subscribed (subscription {})", result["subscriptionId"]);
                if tx.send(StreamMsg::Subscribed).is_err() {
                    return End::Stop;
                }
            }
            Ok(WsMessage::Other(kind)) => {
                if kind == "eventStreamTerminated" {
                    return retry("the server ended the subscription".into(), subscribed);
                }
            }
            Err(e) => log::warn!("user data stream: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The stream thread against a scripted WebSocket server on 127.0.0.1.

    use super::*;
    use crossbeam_channel::Receiver;
    use serde_json::{json, Value};
    use std::net::TcpListener;
    use std::thread::JoinHandle;
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;

    /// Generous: only reached when something is wrong.
    const WAIT: Duration = Duration::from_secs(10);

    type Server = WebSocket<TcpStream>;
    type Script = Box<dyn FnOnce(Server) + Send>;

    /// A WebSocket server that runs one script per connection, in order, then stops listening
    /// (later connections are refused). Returns its URL.
    fn ws_server(scripts: Vec<Script>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws-api/v3", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for script in scripts {
                let Ok((tcp, _)) = listener.accept() else { return };
                let Ok(ws) = tungstenite::accept(tcp) else { return };
                script(ws);
            }
        });
        url
    }

    /// Reads up to the subscription request; returns its id.
    fn read_subscription(ws: &mut Server) -> u64 {
        loop {
            if let Message::Text(text) = ws.read().unwrap() {
                let request: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(request["method"], "userDataStream.subscribe.signature");
                return request["id"].as_u64().unwrap();
            }
        }
    }

    fn send_json(ws: &mut Server, value: Value) {
        ws.send(Message::text(value.to_string())).unwrap();
    }

    fn accept_subscription(ws: &mut Server, id: u64) {
        send_json(ws, json!({"id": id, "status": 200, "result": {"subscriptionId": 0}}));
    }

    /// Reads (answering pings) until the client goes away.
    fn until_closed(ws: &mut Server) {
        while ws.read().is_ok() {}
    }

    fn subscribe_and_hold() -> Script {
        Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            until_closed(&mut ws);
        })
    }

    fn config(url: &str, connect_timeout: Duration) -> StreamConfig {
        StreamConfig {
            url: url.into(),
            api_key: Secret::new("key"),
            api_secret: Secret::new("secret"),
            connect_timeout,
            clock: Default::default(),
        }
    }

    /// The stream thread with its own channel and stop flag, raised when dropped.
    struct Client {
        rx: Receiver<StreamMsg>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Client {
        fn start(url: &str, capacity: usize, connect_timeout: Duration, clocks: Clocks) -> Client {
            let config = config(url, connect_timeout);
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            let stop = Arc::new(AtomicBool::new(false));
            let thread_stop = Arc::clone(&stop);
            let thread = std::thread::spawn(move || run(config, tx, thread_stop, clocks));
            Client { rx, stop, thread: Some(thread) }
        }

        fn next(&self) -> StreamMsg {
            self.rx.recv_timeout(WAIT).expect("a message from the stream thread")
        }

        /// The reason of the next `Down`, skipping what comes before it.
        fn next_down(&self) -> String {
            loop {
                if let StreamMsg::Down(reason) = self.next() {
                    return reason;
                }
            }
        }
    }

    impl Drop for Client {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn ends_within(thread: &JoinHandle<()>, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    const FAST_CONNECT: Duration = Duration::from_secs(2);

    #[test]
    fn a_refused_subscription_is_made_again_on_a_new_connection() {
        let (ids_tx, ids) = crossbeam_channel::unbounded();
        let first_ids = ids_tx.clone();
        let url = ws_server(vec![
            Box::new(move |mut ws| {
                let id = read_subscription(&mut ws);
                first_ids.send(id).unwrap();
                let error = json!({"code": -1022, "msg": "Signature for this request is not valid."});
                send_json(&mut ws, json!({"id": id, "status": 400, "error": error}));
                until_closed(&mut ws);
            }),
            Box::new(move |mut ws| {
                let id = read_subscription(&mut ws);
                ids_tx.send(id).unwrap();
                accept_subscription(&mut ws, id);
                until_closed(&mut ws);
            }),
        ]);
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed, "a refusal is not a Down: it never was up");
        assert_eq!(ids.try_iter().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn an_unanswered_subscription_is_made_again_on_a_new_connection() {
        let (ids_tx, ids) = crossbeam_channel::unbounded();
        let first_ids = ids_tx.clone();
        let url = ws_server(vec![
            Box::new(move |mut ws| {
                first_ids.send(read_subscription(&mut ws)).unwrap();
                until_closed(&mut ws);
            }),
            Box::new(move |mut ws| {
                let id = read_subscription(&mut ws);
                ids_tx.send(id).unwrap();
                accept_subscription(&mut ws, id);
                until_closed(&mut ws);
            }),
        ]);
        let clocks = Clocks { subscribe_within: Duration::from_millis(200), ..CLOCKS };
        let client = Client::start(&url, 8, Duration::from_millis(100), clocks);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        assert_eq!(ids.try_iter().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_close_from_the_server_reports_the_stream_down_with_its_reason() {
        let url = ws_server(vec![Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "maintenance".into() })).unwrap();
            until_closed(&mut ws);
        })]);
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        let reason = client.next_down();
        assert!(reason.starts_with("closed by the server") && reason.contains("maintenance"), "{reason}");
    }

    #[test]
    fn a_ping_from_the_server_is_answered_with_its_payload() {
        let (pongs_tx, pongs) = crossbeam_channel::unbounded();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            ws.send(Message::Ping(b"still there?".to_vec().into())).unwrap();
            loop {
                if let Message::Pong(payload) = ws.read().unwrap() {
                    pongs_tx.send(payload.to_vec()).unwrap();
                    break;
                }
            }
            accept_subscription(&mut ws, id);
            until_closed(&mut ws);
        })]);
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        assert_eq!(pongs.recv_timeout(WAIT).unwrap(), b"still there?");
    }

    #[test]
    fn a_terminated_event_stream_reports_the_stream_down_and_other_events_are_ignored() {
        let url = ws_server(vec![Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            send_json(&mut ws, json!({"subscriptionId": 0, "event": {"e": "outboundAccountPosition", "E": 1}}));
            send_json(&mut ws, json!({"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": 2}}));
            until_closed(&mut ws);
        })]);
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        assert_eq!(client.next(), StreamMsg::Down("the server ended the subscription".into()));
    }

    #[test]
    fn a_malformed_message_is_skipped_and_the_session_goes_on() {
        let url = ws_server(vec![Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            ws.send(Message::text("{not json")).unwrap();
            accept_subscription(&mut ws, id);
            until_closed(&mut ws);
        })]);
        // One script: had the session ended, the next connection would be refused.
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
    }

    #[test]
    fn a_silent_connection_is_reported_down_and_made_again() {
        let url = ws_server(vec![subscribe_and_hold(), subscribe_and_hold()]);
        let clocks = Clocks { silent_limit: Duration::from_millis(300), ..CLOCKS };
        let client = Client::start(&url, 8, FAST_CONNECT, clocks);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        let reason = client.next_down();
        assert!(reason.starts_with("nothing heard for"), "{reason}");
        assert_eq!(client.next(), StreamMsg::Subscribed);
    }

    #[test]
    fn pings_go_out_on_schedule() {
        let (pings_tx, pings) = crossbeam_channel::unbounded();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            loop {
                if let Message::Ping(_) = ws.read().unwrap() {
                    pings_tx.send(()).unwrap();
                    break;
                }
            }
            until_closed(&mut ws);
        })]);
        let clocks = Clocks { ping_every: Duration::from_millis(50), ..CLOCKS };
        let client = Client::start(&url, 8, FAST_CONNECT, clocks);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        assert_eq!(pings.recv_timeout(WAIT), Ok(()));
    }

    #[test]
    fn a_ping_on_a_reset_connection_reports_the_stream_down() {
        let (closed_tx, closed) = crossbeam_channel::unbounded();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            send_json(&mut ws, placed_event(1));
            // Wait for a ping and leave it unread: closing with unread data resets the connection.
            ws.get_ref().peek(&mut [0u8; 1]).unwrap();
            drop(ws);
            closed_tx.send(()).unwrap();
        })]);
        // A channel of one: the thread waits on it with the connection's data read, so the
        // next thing it does on the socket, after the reset, is the ping (due at every turn).
        let clocks = Clocks { ping_every: Duration::ZERO, ..CLOCKS };
        let client = Client::start(&url, 1, FAST_CONNECT, clocks);
        closed.recv_timeout(WAIT).unwrap();
        let reason = client.next_down();
        assert!(reason.starts_with("ping:"), "{reason}");
    }

    /// The thread on a channel the test can drop without raising the stop flag (which a
    /// gone stage's `StreamLink` would raise too).
    fn start_bare(url: &str) -> (Receiver<StreamMsg>, Arc<AtomicBool>, JoinHandle<()>) {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let config = config(url, FAST_CONNECT);
        (rx, stop, std::thread::spawn(move || run(config, tx, thread_stop, CLOCKS)))
    }

    fn placed_event(event_ms: i64) -> Value {
        let placed = json!({"e": "executionReport", "E": event_ms, "s": "BTCUSDT", "c": "g1-S1", "S": "SELL",
            "o": "STOP_LOSS_LIMIT", "q": "0.001", "p": "63381.5", "P": "63700", "X": "NEW", "i": 7, "z": "0",
            "T": 1_700_000_000_000i64});
        json!({"subscriptionId": 0, "event": placed})
    }

    #[test]
    fn a_stop_closes_the_connection_with_a_close_frame_and_ends_the_thread() {
        let (closes_tx, closes) = crossbeam_channel::unbounded();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            while let Ok(message) = ws.read() {
                if let Message::Close(_) = message {
                    closes_tx.send(()).unwrap();
                }
            }
        })]);
        let mut client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        let thread = client.thread.take().unwrap();
        drop(client);
        assert_eq!(closes.recv_timeout(WAIT), Ok(()));
        assert!(ends_within(&thread, WAIT));
    }

    #[test]
    fn execution_reports_are_forwarded_with_their_event_time() {
        let url = ws_server(vec![Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            send_json(&mut ws, placed_event(1_700_000_000_042));
            until_closed(&mut ws);
        })]);
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
        let StreamMsg::Report { report, event_ms } = client.next() else { panic!("a report") };
        assert_eq!(event_ms, 1_700_000_000_042);
        assert_eq!((report.client_order_id.as_str(), report.exchange_order_id), ("g1-S1", 7));
        assert_eq!(report.status, crate::domain::order::ExchangeStatus::New);
    }

    #[test]
    fn answers_to_other_requests_are_not_taken_for_the_subscription() {
        let url = ws_server(vec![Box::new(|mut ws| {
            let id = read_subscription(&mut ws);
            let error = json!({"code": -1022, "msg": "Signature for this request is not valid."});
            send_json(&mut ws, json!({"id": id + 100, "status": 400, "error": error}));
            accept_subscription(&mut ws, id);
            until_closed(&mut ws);
        })]);
        // One script: had the other answer refused the subscription, the next connection
        // would be refused and nothing would come.
        let client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        assert_eq!(client.next(), StreamMsg::Subscribed);
    }

    #[test]
    fn the_thread_ends_when_the_stage_is_gone_before_the_subscription_is_answered() {
        let (asked_tx, asked) = crossbeam_channel::unbounded();
        let (go_tx, go) = crossbeam_channel::unbounded::<()>();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            asked_tx.send(()).unwrap();
            let _ = go.recv_timeout(WAIT);
            accept_subscription(&mut ws, id);
            until_closed(&mut ws);
        })]);
        let (rx, stop, thread) = start_bare(&url);
        asked.recv_timeout(WAIT).unwrap();
        drop(rx);
        drop(go_tx);
        assert!(ends_within(&thread, WAIT));
        assert!(!stop.load(Ordering::Relaxed));
    }

    #[test]
    fn the_thread_ends_when_the_stage_is_gone_before_a_report() {
        let (go_tx, go) = crossbeam_channel::unbounded::<()>();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            let _ = go.recv_timeout(WAIT);
            send_json(&mut ws, placed_event(1));
            until_closed(&mut ws);
        })]);
        let (rx, stop, thread) = start_bare(&url);
        assert_eq!(rx.recv_timeout(WAIT), Ok(StreamMsg::Subscribed));
        drop(rx);
        drop(go_tx);
        assert!(ends_within(&thread, WAIT));
        assert!(!stop.load(Ordering::Relaxed));
    }

    #[test]
    fn the_thread_ends_when_the_stage_is_gone_and_the_connection_drops() {
        let (go_tx, go) = crossbeam_channel::unbounded::<()>();
        let url = ws_server(vec![Box::new(move |mut ws| {
            let id = read_subscription(&mut ws);
            accept_subscription(&mut ws, id);
            let _ = go.recv_timeout(WAIT);
        })]);
        let (rx, stop, thread) = start_bare(&url);
        assert_eq!(rx.recv_timeout(WAIT), Ok(StreamMsg::Subscribed));
        // The `Down` that finds no one ends it.
        drop(rx);
        drop(go_tx);
        assert!(ends_within(&thread, WAIT));
        assert!(!stop.load(Ordering::Relaxed));
    }

    #[test]
    fn a_stream_stopped_while_its_connection_fails_ends_instead_of_backing_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws-api/v3", listener.local_addr().unwrap());
        let (accepted_tx, accepted) = crossbeam_channel::unbounded();
        let (release_tx, release) = crossbeam_channel::unbounded::<()>();
        std::thread::spawn(move || {
            let connection = listener.accept();
            accepted_tx.send(()).unwrap();
            let _ = release.recv_timeout(WAIT);
            // The handshake fails: the connection closes without an answer.
            drop(connection);
        });
        let mut client = Client::start(&url, 8, FAST_CONNECT, CLOCKS);
        accepted.recv_timeout(WAIT).unwrap();
        let thread = client.thread.take().unwrap();
        drop(client);
        drop(release_tx);
        assert!(ends_within(&thread, WAIT));
    }

    #[test]
    fn a_url_without_a_port_connects_to_the_port_of_its_scheme() {
        assert_eq!(
            authority_and_address("wss://ws-api.testnet.binance.vision/ws-api/v3").1,
            "ws-api.testnet.binance.vision:443"
        );
        assert_eq!(authority_and_address("ws://localhost/ws-api/v3"), ("localhost", "localhost:80".to_string()));
        assert_eq!(authority_and_address("ws://127.0.0.1:8765/ws-api/v3").1, "127.0.0.1:8765");
    }

    #[test]
    fn the_config_prints_its_url_but_not_its_key_or_secret() {
        let config = StreamConfig {
            url: "wss://ws-api.binance.com:443/ws-api/v3".into(),
            api_key: Secret::new("vmPUZE6mv9SD5VNH"),
            api_secret: Secret::new("NhqPtmdSJYdKjVHj"),
            connect_timeout: Duration::from_secs(2),
            clock: Default::default(),
        };
        let text = format!("{config:?}");
        assert!(text.contains("wss://ws-api.binance.com:443/ws-api/v3"), "{text}");
        assert!(!text.contains("vmPUZE6mv9SD5VNH") && !text.contains("NhqPtmdSJYdKjVHj"), "{text}");
    }

    #[test]
    fn the_start_hook_runs_on_the_stream_thread() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        // Port 9 on loopback: nothing listens, so the thread only ever retries.
        let link = start(config("ws://127.0.0.1:9/ws-api/v3", Duration::from_millis(50)), 4, move || {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap().as_deref(), Some("user-stream"));
        drop(link);
    }
}
