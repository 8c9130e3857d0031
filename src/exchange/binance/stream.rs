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
use crate::domain::order::OrderReport;
use crossbeam_channel::{Receiver, Sender};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// What the stream thread tells the exchange I/O stage.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMsg {
    /// Subscribed (first time or after a reconnect): poll now to cover the gap.
    Subscribed,
    /// The connection is gone; the poll alone watches until the next `Subscribed`.
    Down(String),
    /// An order changed: the report and the event time `E` (ms).
    Report { report: OrderReport, event_ms: i64 },
}

/// The stage's end: the receiver, and the stop flag raised when it is dropped.
pub struct StreamLink {
    pub rx: Receiver<StreamMsg>,
    stop: Arc<AtomicBool>,
}

impl Drop for StreamLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where and as whom to subscribe.
#[derive(Clone)]
pub struct StreamConfig {
    /// `ws://host:port/ws-api/v3` or `wss://...`.
    pub url: String,
    pub api_key: Secret,
    pub api_secret: Secret,
    pub connect_timeout: Duration,
    /// Server time minus local time, ms (the REST gateway's measured offset).
    pub clock_offset_ms: i64,
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

/// Starts the stream thread; `capacity` bounds the channel to the stage.
pub fn start(config: StreamConfig, capacity: usize) -> std::io::Result<StreamLink> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new().name("user-stream".into()).spawn(move || run(config, tx, thread_stop, CLOCKS))?;
    Ok(StreamLink { rx, stop })
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
fn authority_and_address(url: &str) -> (&str, String) {
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
        MaybeTlsStream::Rustls(s) => s.get_ref(),
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
    let timestamp = super::clock::local_ms() + config.clock_offset_ms;
    let request = subscribe_signature_request(subscribe_id, config.api_key.expose(), timestamp, signer);
    if let Err(e) = socket.send(Message::text(request)) {
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
                if let Err(e) = socket.flush() {
                    if !is_timeout(&e) {
                        return retry(format!("flush: {e}"), subscribed);
                    }
                }
                continue;
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
