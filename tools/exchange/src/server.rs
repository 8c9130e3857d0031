//! A small HTTP/1.1 server on 127.0.0.1: one thread per connection, keep-alive, requests with
//! `Content-Length` or chunked bodies. Written on `std::net` rather than a server crate so that
//! a fault can close the socket with no response at all (`drop-after-execute`) and a delayed
//! answer holds only its own connection.

use crate::api::{After, App, HttpRequest, Reply};
use genesis::exchange::binance::wire::error_json;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 512;
/// An idle keep-alive connection is closed after this (longer than ureq keeps one, 300 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1024 * 1024;

/// Local wall-clock time, ms since the epoch.
pub fn local_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Binds 127.0.0.1:`port` (0: a free port).
pub fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port))
}

/// Serves until the process ends. `latency` is added to every response.
pub fn serve(listener: TcpListener, app: Arc<App>, latency: Duration) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            log::warn!("too many connections; closing a new one");
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let app = Arc::clone(&app);
        let active_here = Arc::clone(&active);
        let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
            if let Err(e) = connection(stream, &app, latency) {
                log::debug!("connection: {e}");
            }
            active_here.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One request as read off the wire.
#[derive(Debug, Default)]
struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl RawRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

enum ReadError {
    /// The peer closed (or went idle) between requests.
    Closed,
    /// Not HTTP we can read: answer 400 (or 413) and close.
    Bad(u16, String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

fn read_line(reader: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
    buf.clear();
    let n = reader.by_ref().take(MAX_LINE).read_until(b'\n', buf)?;
    if n > 0 && buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(ReadError::Bad(431, "line too long".into()));
        }
        return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(n)
}

/// Carries out what the fault plan says happens to a reply (`After`), then `--latency-us`: the
/// one place both the REST and the WebSocket API answers go through. False when the connection
/// was dropped and nothing must be written. The user data stream's pushes are never held back
/// by a dropped or slow answer.
pub fn hold_reply(
    app: &App,
    after: After,
    connection: &TcpStream,
    started: Instant,
    latency: Duration,
    what: &str,
) -> bool {
    match after {
        After::Drop => {
            log::info!("{what}: connection dropped (fault)");
            app.flush_pushes();
            let _ = connection.shutdown(Shutdown::Both);
            return false;
        }
        After::Delay(delay) => {
            app.flush_pushes();
            std::thread::sleep(delay);
        }
        After::Respond => {}
    }
    if !latency.is_zero() {
        genesis::exchange::sim::wait_until(started + latency, Duration::from_micros(100));
    }
    true
}

fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Result<RawRequest, ReadError> {
    let mut line = Vec::with_capacity(256);
    // Blank lines before a request are allowed (RFC 9112 §2.2).
    loop {
        match read_line(reader, &mut line) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) if line.is_empty() => continue,
            Ok(_) => break,
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Err(ReadError::Closed)
            }
            Err(e) => return Err(e),
        }
    }
    let request_line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400, "malformed request line".into()));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::Bad(505, "HTTP/1.0 and 1.1 only".into())),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = RawRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        ..RawRequest::default()
    };
    loop {
        if read_line(reader, &mut line)? == 0 {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if line.is_empty() {
            break;
        }
        if req.headers.len() >= MAX_HEADERS {
            return Err(ReadError::Bad(431, "too many headers".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(ReadError::Bad(400, "malformed header".into()));
        };
        req.headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let connection = req.header("Connection").map(str::to_ascii_lowercase);
    req.keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };
    if req.header("Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = req.header("Transfer-Encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(reader)?;
    } else if let Some(length) = req.header("Content-Length") {
        let length: usize = length.parse().map_err(|_| ReadError::Bad(400, "bad Content-Length".into()))?;
        if length > MAX_BODY {
            return Err(ReadError::Bad(413, "body too large".into()));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(req)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        read_line(reader, &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ReadError::Bad(400, "bad chunk size".into()))?;
        if size == 0 {
            // Trailers up to the blank line.
            while read_line(reader, &mut line)? > 0 && !line.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Bad(413, "body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader, &mut line)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn write_reply(writer: &mut TcpStream, reply: &Reply, keep_alive: bool) -> io::Result<()> {
    let mut out = Vec::with_capacity(256 + reply.body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        )
        .as_bytes(),
    );
    for (name, value) in &reply.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reply.body.as_bytes());
    writer.write_all(&out)?;
    writer.flush()
}

/// `GET /ws-api/v3` with `Upgrade: websocket`: the WebSocket API.
fn is_ws_upgrade(req: &RawRequest) -> bool {
    req.method == "GET"
        && req.path.trim_end_matches('/') == genesis::exchange::binance::user_data::WS_API_PATH
        && req.header("Upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

fn connection(stream: TcpStream, app: &App, latency: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let loopback = stream.peer_addr().map(|a: SocketAddr| a.ip().is_loopback()).unwrap_or(false);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    loop {
        let req = match read_request(&mut reader, &mut writer) {
            Ok(req) => req,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Bad(status, msg)) => {
                let reply = Reply::json(status, error_json(-1, &format!("Bad request: {msg}.")));
                let _ = write_reply(&mut writer, &reply, false);
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        };
        let upgrade = req.method == "GET" && req.header("Upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if upgrade && crate::market_streams::is_market_stream(&req.path) {
            let Some(key) = req.header("Sec-WebSocket-Key").map(str::to_string) else {
                let reply = Reply::json(400, error_json(-1, "Bad request: no Sec-WebSocket-Key."));
                let _ = write_reply(&mut writer, &reply, false);
                return Ok(());
            };
            writer.write_all(crate::ws::upgrade_response(&key).as_bytes())?;
            writer.flush()?;
            let buffered = reader.buffer().to_vec();
            return crate::market_streams::serve(reader.into_inner(), buffered, app.market(), &req.path, &req.query);
        }
        if is_ws_upgrade(&req) {
            let Some(key) = req.header("Sec-WebSocket-Key").map(str::to_string) else {
                let reply = Reply::json(400, error_json(-1, "Bad request: no Sec-WebSocket-Key."));
                let _ = write_reply(&mut writer, &reply, false);
                return Ok(());
            };
            writer.write_all(crate::ws::upgrade_response(&key).as_bytes())?;
            writer.flush()?;
            let buffered = reader.buffer().to_vec();
            return crate::ws::serve(reader.into_inner(), buffered, app, latency);
        }
        let started = Instant::now();
        let body = String::from_utf8_lossy(&req.body);
        let http = HttpRequest {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            body: &body,
            content_type: req.header("Content-Type"),
            api_key: req.header("X-MBX-APIKEY"),
            loopback,
        };
        // The response first, then the user data stream's events (see `App::respond`).
        let reply = app.respond(&http, local_ms());
        log::debug!("{} {} -> {} {:?}", req.method, req.path, reply.status, reply.after);
        if !hold_reply(app, reply.after, &writer, started, latency, &format!("{} {}", req.method, req.path)) {
            return Ok(());
        }
        let written = write_reply(&mut writer, &reply, req.keep_alive);
        app.flush_pushes();
        written?;
        if !req.keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}
