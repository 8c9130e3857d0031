//! The top of book from Binance's market streams (`web-socket-streams.md`): ONE combined-stream
//! connection (`/stream?streams=<symbol>@bookTicker/...`) on its own thread, feeding a shared
//! [`StreamBook`] that intake reads without waiting (a read lock, no I/O).
//!
//! - Which symbols: every symbol whose quote was asked for ([`StreamBook::want`]): intake's
//!   orders, and the positions (equity, the watch of stops and fills ask for their bids). They
//!   are subscribed on demand (`SUBSCRIBE`, answered `{"result":null,"id":N}`) and never
//!   unsubscribed; past Binance's 1,024 streams per connection a symbol stays on REST quotes.
//! - Binance allows 5 incoming messages per second per connection (pings, pongs, `SUBSCRIBE`
//!   included): the thread sends at most one message per [`SEND_GAP`], and a ping only every
//!   second, so with the pongs it owes the server it stays under 4.
//! - A bookTicker event is pushed on every change of the best bid or ask, in order on one TCP
//!   connection. So while the connection is live, a quote is current as of the last frame read,
//!   whatever the symbol: its age at a decision is the time since then (never since the
//!   symbol's own last change, which on a quiet pair can be minutes). A connection is live from
//!   its handshake until nothing (events, pongs) has been heard for `stale_after`; then it is
//!   closed, quotes fall back to REST (see `quotes`), and it is made again with a back-off
//!   (100 ms doubling to 5 s, reset by a connection that came up).
//! - A REST answer asked for after a symbol's subscription was confirmed is as good as an event
//!   ([`StreamBook::seed`]): a quiet pair need not wait for its first change to be on the stream.

use super::stream::authority_and_address;
use crate::domain::money::Decimal;
use crate::exchange::BookTicker;
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Most streams one connection may listen to (web-socket-streams.md "WebSocket Limits").
pub const MAX_STREAMS: usize = 1024;
/// Smallest gap between two messages we send (Binance allows 5 per second, pongs included).
pub const SEND_GAP: Duration = Duration::from_millis(300);
/// Streams named in one `SUBSCRIBE` (and in the connection URL).
const BATCH: usize = 100;
/// How long a read waits: bounds how soon a new symbol is subscribed and a stop is seen (an
/// event ends the wait at once).
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// How often a thread with nothing to subscribe looks again.
const IDLE_WAIT: Duration = Duration::from_millis(250);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The clocks of the connection: [`Clocks::ENGINE`] in the engine; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// A ping goes out this often, so a quiet market still proves the connection live.
    pub ping_every: Duration,
    /// Nothing heard for this long: the connection is stale, closed and made again.
    pub stale_after: Duration,
    pub connect_timeout: Duration,
    /// Streams on one connection ([`MAX_STREAMS`]).
    pub max_streams: usize,
}

impl Clocks {
    pub const ENGINE: Clocks = Clocks {
        ping_every: Duration::from_secs(1),
        stale_after: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        max_streams: MAX_STREAMS,
    };
}

/// The market stream URL (`.../stream`) for a REST base URL. Binance serves its streams
/// elsewhere (web-socket-streams.md, testnet/general-info.md, demo-mode/general-info.md):
/// `api*.binance.com` → `wss://stream.binance.com:9443`, `testnet.binance.vision` →
/// `wss://stream.testnet.binance.vision`, `demo-api.binance.com` → `wss://demo-stream.binance.com`;
/// any other host (the simulator) keeps its host and port (`http` → `ws`, `https` → `wss`).
pub fn market_stream_url(base_url: &str) -> String {
    let api = super::user_data::ws_api_url(base_url);
    let (scheme, rest) = api.split_once("://").unwrap_or(("ws", &api));
    let host = rest.strip_suffix(super::user_data::WS_API_PATH).unwrap_or(rest);
    let host = match host {
        "ws-api.binance.com:443" => "stream.binance.com:9443",
        "ws-api.testnet.binance.vision" => "stream.testnet.binance.vision",
        "demo-ws-api.binance.com" => "demo-stream.binance.com",
        other => other,
    };
    format!("{scheme}://{host}/stream")
}

/// `btcusdt@bookTicker` for `BTCUSDT` (stream names are lowercase).
pub fn stream_name(symbol: &str) -> String {
    format!("{}@bookTicker", symbol.to_ascii_lowercase())
}

/// A frame of the combined stream, as far as this client cares.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFrame {
    /// A bookTicker event.
    Ticker(BookTicker),
    /// The answer to request `id`: `ok` for `{"result":null}`, else the error's text.
    Answer { id: u64, outcome: Result<(), String> },
    /// `serverShutdown`: the server is about to close the connection.
    Shutdown,
    /// Anything else (other streams, properties): ignored.
    Other,
}

#[derive(Deserialize)]
struct WireTicker {
    s: String,
    b: Decimal,
    #[serde(rename = "B")]
    bid_qty: Decimal,
    a: Decimal,
    #[serde(rename = "A")]
    ask_qty: Decimal,
}

/// Parses one text frame of a combined stream (`{"stream":..,"data":..}`) or an answer.
pub fn parse_frame(text: &str) -> Result<StreamFrame, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(stream) = value.get("stream").and_then(|s| s.as_str()) {
        let data = value.get("data").cloned().unwrap_or_default();
        if stream.ends_with("@bookTicker") {
            let t: WireTicker = serde_json::from_value(data).map_err(|e| format!("bookTicker: {e}"))?;
            return Ok(StreamFrame::Ticker(BookTicker {
                symbol: t.s,
                bid: t.b,
                bid_qty: t.bid_qty,
                ask: t.a,
                ask_qty: t.ask_qty,
            }));
        }
        if data.get("e").and_then(|e| e.as_str()) == Some("serverShutdown") {
            return Ok(StreamFrame::Shutdown);
        }
        return Ok(StreamFrame::Other);
    }
    match value.get("id").and_then(|id| id.as_u64()) {
        Some(id) if value.get("result").is_some() && value.get("code").is_none() => {
            Ok(StreamFrame::Answer { id, outcome: Ok(()) })
        }
        Some(id) => Ok(StreamFrame::Answer { id, outcome: Err(value.to_string()) }),
        None => Ok(StreamFrame::Other),
    }
}

struct Entry {
    ticker: BookTicker,
    /// When it was received (an event) or asked for (a REST seed).
    at: Instant,
    /// The connection it came on: only the current one's entries are current.
    session: u64,
}

struct Inner {
    entries: HashMap<String, Entry>,
    /// The current connection's number; `live` while it is up.
    session: u64,
    live: bool,
    last_heard: Instant,
    /// Symbols whose subscription the current connection confirmed, and when.
    confirmed: HashMap<String, Instant>,
}

/// The top of book the stream keeps, shared by the stream thread, the REST fallback and intake.
pub struct StreamBook {
    inner: RwLock<Inner>,
    wanted: Mutex<BTreeSet<String>>,
    stale_after: Duration,
    updates: AtomicU64,
    /// Raised when the REST side is gone: the thread closes its connection and ends.
    stop: AtomicBool,
}

impl StreamBook {
    pub fn new(stale_after: Duration) -> StreamBook {
        StreamBook {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                session: 0,
                live: false,
                last_heard: Instant::now(),
                confirmed: HashMap::new(),
            }),
            wanted: Mutex::new(BTreeSet::new()),
            stale_after,
            updates: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Asks for `symbol` on the stream (subscribed by the stream thread, not here).
    pub fn want(&self, symbol: &str) {
        let mut wanted = self.wanted.lock();
        if !wanted.contains(symbol) {
            wanted.insert(symbol.to_string());
        }
    }

    fn is_live(inner: &Inner, stale_after: Duration) -> bool {
        inner.live && inner.last_heard.elapsed() <= stale_after
    }

    /// True while the connection is up and heard from within `stale_after`.
    pub fn live(&self) -> bool {
        Self::is_live(&self.inner.read(), self.stale_after)
    }

    /// The quote of `symbol` and its age, if the live connection has it.
    pub fn quote(&self, symbol: &str) -> Option<(BookTicker, Duration)> {
        let inner = self.inner.read();
        let entry = inner.entries.get(symbol).filter(|e| e.session == inner.session)?;
        if !Self::is_live(&inner, self.stale_after) {
            return None;
        }
        Some((entry.ticker.clone(), inner.last_heard.max(entry.at).elapsed()))
    }

    /// Symbols the live connection has a quote of.
    pub fn covered(&self) -> usize {
        let inner = self.inner.read();
        if !Self::is_live(&inner, self.stale_after) {
            return 0;
        }
        inner.entries.values().filter(|e| e.session == inner.session).count()
    }

    /// bookTicker events received since start.
    pub fn updates(&self) -> u64 {
        self.updates.load(Ordering::Relaxed)
    }

    /// A REST answer to a request sent at `asked_at`: current on the stream from then on if the
    /// symbol's subscription was confirmed before it was asked and no later event came.
    pub fn seed(&self, ticker: &BookTicker, asked_at: Instant) {
        let mut inner = self.inner.write();
        let session = inner.session;
        let subscribed_before = inner.confirmed.get(&ticker.symbol).is_some_and(|at| *at <= asked_at);
        let newer = inner.entries.get(&ticker.symbol).is_some_and(|e| e.session == session && e.at >= asked_at);
        if inner.live && subscribed_before && !newer {
            inner.entries.insert(ticker.symbol.clone(), Entry { ticker: ticker.clone(), at: asked_at, session });
        }
    }

    fn open(&self, confirmed: &[String]) {
        let mut inner = self.inner.write();
        let now = Instant::now();
        inner.session += 1;
        inner.live = true;
        inner.last_heard = now;
        inner.confirmed = confirmed.iter().map(|s| (s.clone(), now)).collect();
    }

    fn close(&self) {
        self.inner.write().live = false;
    }

    fn heard(&self) {
        self.inner.write().last_heard = Instant::now();
    }

    fn confirm(&self, symbols: &[String]) {
        let mut inner = self.inner.write();
        let now = Instant::now();
        for symbol in symbols {
            inner.confirmed.insert(symbol.clone(), now);
        }
    }

    fn update(&self, ticker: BookTicker) {
        self.updates.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.write();
        let now = Instant::now();
        inner.last_heard = now;
        let session = inner.session;
        inner.entries.insert(ticker.symbol.clone(), Entry { ticker, at: now, session });
    }

    /// A live connection that has just delivered `ticker` (tests of the quote source).
    #[cfg(test)]
    pub(super) fn test_event(&self, ticker: BookTicker) {
        self.open(&[]);
        self.update(ticker);
    }

    /// Ends the stream thread (it closes its connection within a read timeout).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the stream thread for `url` (`ws://host:port/stream`); it ends after
/// [`StreamBook::stop`]. `on_thread` runs first, on the thread (pinning).
pub fn start(
    url: String,
    book: Arc<StreamBook>,
    clocks: Clocks,
    on_thread: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("market-stream".into()).spawn(move || {
        on_thread();
        run(&url, &book, &clocks)
    })?;
    Ok(())
}

/// The engine's market stream for the REST `base_url`: its book, and its thread started with the
/// engine's clocks; `on_thread` runs first on the thread (pinning).
pub fn start_engine(base_url: &str, on_thread: impl FnOnce() + Send + 'static) -> std::io::Result<Arc<StreamBook>> {
    let book = Arc::new(StreamBook::new(Clocks::ENGINE.stale_after));
    start(market_stream_url(base_url), Arc::clone(&book), Clocks::ENGINE, on_thread)?;
    Ok(book)
}

fn run(url: &str, book: &StreamBook, clocks: &Clocks) {
    let mut backoff = FIRST_BACKOFF;
    let mut request_id = 0u64;
    while !book.stop.load(Ordering::Relaxed) {
        let wanted: Vec<String> = book.wanted.lock().iter().take(BATCH.min(clocks.max_streams)).cloned().collect();
        if wanted.is_empty() {
            std::thread::sleep(IDLE_WAIT);
            continue;
        }
        match session(url, book, clocks, &wanted, &mut request_id) {
            Ok(()) => return,
            Err((reason, was_up)) => {
                if was_up {
                    backoff = FIRST_BACKOFF;
                }
                log::warn!(
                    "market stream: {reason}; REST quotes meanwhile, reconnecting in {} ms",
                    backoff.as_millis()
                );
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !book.stop.load(Ordering::Relaxed) {
            std::thread::sleep(READ_TIMEOUT);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(url: &str, timeout: Duration) -> Result<Socket, String> {
    let (authority, host_port) = authority_and_address(url);
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {authority}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let (socket, _) =
        tungstenite::client_tls_with_config(url, tcp, None, None).map_err(|e| format!("handshake: {e}"))?;
    match socket.get_ref() {
        MaybeTlsStream::Plain(s) => s.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?,
        // No test can run it: TLS exists only against Binance's hosts; tests stay on 127.0.0.1.
        #[cfg(not(tarpaulin_include))]
        MaybeTlsStream::Rustls(s) => s.get_ref().set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?,
        #[cfg(not(tarpaulin_include))]
        _ => {}
    }
    Ok(socket)
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// One connection, from the handshake until it fails (`Err(reason, it came up)`) or a stop
/// (`Ok`). `first`: the streams named in the URL.
fn session(
    url: &str,
    book: &StreamBook,
    clocks: &Clocks,
    first: &[String],
    request_id: &mut u64,
) -> Result<(), (String, bool)> {
    let names: Vec<String> = first.iter().map(|s| stream_name(s)).collect();
    let mut socket =
        connect(&format!("{url}?streams={}", names.join("/")), clocks.connect_timeout).map_err(|e| (e, false))?;
    book.open(first);
    log::info!("market stream up ({} symbols); REST quote polling paused", first.len());
    let result = serve(&mut socket, book, clocks, first, request_id);
    book.close();
    let _ = socket.close(None);
    let _ = socket.flush();
    result.map_err(|reason| (reason, true))
}

/// Reads events and sends pings and subscriptions until the connection fails or a stop.
fn serve(
    socket: &mut Socket,
    book: &StreamBook,
    clocks: &Clocks,
    first: &[String],
    request_id: &mut u64,
) -> Result<(), String> {
    let mut sent: BTreeSet<String> = first.iter().cloned().collect();
    let mut pending: HashMap<u64, Vec<String>> = HashMap::new();
    let mut last_sent = Instant::now();
    let mut last_ping = Instant::now();
    let mut warned_full = false;
    loop {
        if book.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if book.inner.read().last_heard.elapsed() > clocks.stale_after {
            return Err(format!("nothing heard for {} ms (stale)", clocks.stale_after.as_millis()));
        }
        if last_sent.elapsed() >= SEND_GAP {
            let new: Vec<String> = book.wanted.lock().difference(&sent).take(BATCH).cloned().collect();
            let room = clocks.max_streams.saturating_sub(sent.len());
            if last_ping.elapsed() >= clocks.ping_every {
                last_ping = Instant::now();
                last_sent = last_ping;
                socket.send(Message::Ping(Vec::new().into())).map_err(|e| format!("ping: {e}"))?;
            } else if !new.is_empty() && room > 0 {
                let new: Vec<String> = new.into_iter().take(room).collect();
                *request_id += 1;
                let params: Vec<String> = new.iter().map(|s| stream_name(s)).collect();
                let request = serde_json::json!({"method": "SUBSCRIBE", "params": params, "id": *request_id});
                last_sent = Instant::now();
                socket.send(Message::text(request.to_string())).map_err(|e| format!("subscribe: {e}"))?;
                sent.extend(new.iter().cloned());
                pending.insert(*request_id, new);
            } else if !new.is_empty() && !warned_full {
                warned_full = true;
                log::warn!("market stream: {} streams on one connection; more stay on REST quotes", sent.len());
            }
        }
        let message = match socket.read() {
            Ok(m) => m,
            Err(e) if is_timeout(&e) => {
                // A pong owed to the server's ping goes out here.
                let _ = socket.flush();
                continue;
            }
            Err(e) => return Err(format!("read: {e}")),
        };
        book.heard();
        let Message::Text(text) = message else {
            if let Message::Close(frame) = message {
                return Err(format!("closed by the server ({frame:?})"));
            }
            continue;
        };
        match parse_frame(text.as_str()) {
            Ok(StreamFrame::Ticker(ticker)) => book.update(ticker),
            Ok(StreamFrame::Answer { id, outcome: Ok(()) }) => book.confirm(&pending.remove(&id).unwrap_or_default()),
            Ok(StreamFrame::Answer { id, outcome: Err(e) }) => {
                log::warn!("market stream: request {id} refused: {e}; those symbols stay on REST quotes");
            }
            Ok(StreamFrame::Shutdown) => return Err("the server is shutting down".into()),
            Ok(StreamFrame::Other) => {}
            Err(e) => log::warn!("market stream: {e}"),
        }
    }
}

#[cfg(test)]
#[path = "market_stream_tests.rs"]
mod tests;
