//! Top of book for intake, kept fresh off the order path, so an order's expected price is a
//! cache read, not a round trip. The market stream (`market_stream`, `--quotes stream`) is the
//! source; a background thread polls `GET /api/v3/ticker/bookTicker` for the symbols asked about
//! only while the stream does not cover them (down, stale, not subscribed yet), and stops as soon
//! as it does. A 429 or 418 stops every `bookTicker` request (poller and intake alike) for the
//! `Retry-After` it carried: polling on through a rate limit is what turns a 429 into an IP ban.

use super::market_stream::StreamBook;
use super::{BinanceConfig, BinanceGateway};
use crate::exchange::{BookTicker, Exchange, ExchangeError, QuoteStatus, Quotes};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub struct BinanceQuotes {
    /// REST answers and when they were asked for.
    cache: RwLock<HashMap<String, (BookTicker, Instant)>>,
    /// The market stream's book, when `--quotes stream`.
    stream: Option<Arc<StreamBook>>,
    rest_fetches: AtomicU64,
    watched: Mutex<HashSet<String>>,
    /// Used by the poller, and by intake when a quote is missing or stale.
    fetcher: Mutex<BinanceGateway>,
    max_age: Duration,
    /// No request before this instant (the last 429 / 418 said to wait).
    backoff_until: Mutex<Option<Instant>>,
}

impl BinanceQuotes {
    /// Starts the poller; it stops when the last `Arc` is dropped. `on_thread` runs first on the
    /// poller's thread (the engine pins it there).
    pub fn start(
        config: BinanceConfig,
        refresh: Duration,
        stream: Option<Arc<StreamBook>>,
        on_thread: impl FnOnce() + Send + 'static,
    ) -> Result<Arc<BinanceQuotes>, crate::exchange::ExchangeError> {
        let quotes = Arc::new(BinanceQuotes {
            cache: RwLock::new(HashMap::new()),
            stream,
            rest_fetches: AtomicU64::new(0),
            watched: Mutex::new(HashSet::new()),
            fetcher: Mutex::new(BinanceGateway::new(config)?),
            max_age: refresh * 3,
            backoff_until: Mutex::new(None),
        });
        let weak = Arc::downgrade(&quotes);
        std::thread::Builder::new()
            .name("quotes".into())
            .spawn(move || {
                on_thread();
                poll(weak, refresh)
            })
            .map_err(|e| crate::exchange::ExchangeError::NotSent { reason: format!("quote poller: {e}") })?;
        Ok(quotes)
    }

    fn fetch(&self, symbol: &str) -> Option<BookTicker> {
        if self.backoff_until.lock().is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let asked_at = Instant::now();
        self.rest_fetches.fetch_add(1, Ordering::Relaxed);
        let ticker = self.fetcher.lock().book_ticker(symbol);
        match ticker {
            Ok(t) => {
                if let Some(stream) = &self.stream {
                    stream.seed(&t, asked_at);
                }
                self.cache.write().insert(symbol.to_string(), (t.clone(), asked_at));
                Some(t)
            }
            Err(e) => {
                if let ExchangeError::RateLimited { retry_after, .. } = &e {
                    *self.backoff_until.lock() = Some(Instant::now() + *retry_after);
                }
                log::warn!("bookTicker {symbol}: {e}");
                None
            }
        }
    }
}

impl BinanceQuotes {
    /// True when the live market stream has `symbol`: no REST poll for it.
    fn on_stream(&self, symbol: &str) -> bool {
        self.stream.as_ref().is_some_and(|s| s.quote(symbol).is_some())
    }
}

impl Quotes for BinanceQuotes {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
        self.quote(symbol).map(|(t, _)| t)
    }

    /// The stream's quote while it is live; else a REST answer younger than three refreshes;
    /// else one asked for now. The age counts from when the REST request was sent.
    fn quote(&self, symbol: &str) -> Option<(BookTicker, Duration)> {
        if let Some(stream) = &self.stream {
            stream.want(symbol);
            if let Some(quote) = stream.quote(symbol) {
                return Some(quote);
            }
        }
        if let Some((t, at)) = self.cache.read().get(symbol) {
            if at.elapsed() <= self.max_age {
                return Some((t.clone(), at.elapsed()));
            }
        }
        self.watched.lock().insert(symbol.to_string());
        let asked_at = Instant::now();
        self.fetch(symbol).map(|t| (t, asked_at.elapsed()))
    }

    fn status(&self) -> QuoteStatus {
        let (source, stream_symbols, stream_updates) = match &self.stream {
            Some(s) if s.live() => ("stream", s.covered(), s.updates()),
            Some(s) => ("rest", 0, s.updates()),
            None => ("rest", 0, 0),
        };
        QuoteStatus { source, stream_symbols, stream_updates, rest_fetches: self.rest_fetches.load(Ordering::Relaxed) }
    }
}

impl Drop for BinanceQuotes {
    fn drop(&mut self) {
        if let Some(stream) = &self.stream {
            stream.stop();
        }
    }
}

fn poll(quotes: Weak<BinanceQuotes>, refresh: Duration) {
    loop {
        std::thread::sleep(refresh);
        let Some(quotes) = quotes.upgrade() else {
            return;
        };
        // Only what the market stream does not cover: nothing at all while it is live.
        let symbols: Vec<String> = quotes.watched.lock().iter().filter(|s| !quotes.on_stream(s)).cloned().collect();
        for symbol in symbols {
            quotes.fetch(&symbol);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_quote_the_exchange_cannot_give_is_none_and_stays_watched() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        // A refresh far away: the only fetch is the one `top_of_book` makes.
        let quotes =
            BinanceQuotes::start(BinanceConfig::new(url, "key", "secret"), Duration::from_secs(3600), None, || {})
                .unwrap();
        assert_eq!(quotes.top_of_book("BTCUSDT"), None);
        assert!(quotes.cache.read().is_empty());
        assert!(quotes.watched.lock().contains("BTCUSDT"), "the poller keeps trying it");
    }

    #[test]
    fn a_live_stream_quote_is_served_before_any_rest_request_and_stats_say_where_quotes_come_from() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let config = || BinanceConfig::new(url.clone(), "key", "secret");
        let rest = BinanceQuotes::start(config(), Duration::from_secs(3600), None, || {}).unwrap();
        assert_eq!(rest.status().source, "rest");
        let book = Arc::new(StreamBook::new(Duration::from_secs(60)));
        let quotes = BinanceQuotes::start(config(), Duration::from_secs(3600), Some(Arc::clone(&book)), || {}).unwrap();
        assert_eq!(
            quotes.status(),
            QuoteStatus { source: "rest", stream_symbols: 0, stream_updates: 0, rest_fetches: 0 }
        );
        book.test_event(BookTicker {
            symbol: "BTCUSDT".into(),
            bid: 1.into(),
            bid_qty: 1.into(),
            ask: 2.into(),
            ask_qty: 1.into(),
        });
        let (ticker, age) = quotes.quote("BTCUSDT").expect("the stream's quote");
        assert_eq!((ticker.bid, quotes.status().rest_fetches), (1.into(), 0), "no REST request");
        assert!(age < Duration::from_secs(60));
        assert_eq!((quotes.status().source, quotes.status().stream_symbols), ("stream", 1));
    }

    /// A server that answers every request with `status` and `Retry-After: 60`, counting them.
    fn refusing_server(status: u16) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = r#"{"code":-1003,"msg":"Too much request weight used."}"#;
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nRetry-After: 60\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(format!("{head}{body}").as_bytes());
                    }
                    line.clear();
                }
            }
        });
        (url, count)
    }

    #[test]
    fn a_429_or_418_stops_quote_requests_for_its_retry_after() {
        for status in [429, 418] {
            let (url, requests) = refusing_server(status);
            let quotes =
                BinanceQuotes::start(BinanceConfig::new(url, "key", "secret"), Duration::from_secs(3600), None, || {})
                    .unwrap();
            assert_eq!(quotes.top_of_book("BTCUSDT"), None);
            assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
            // Asked again at once: no request goes out until Retry-After has passed.
            assert_eq!(quotes.top_of_book("BTCUSDT"), None);
            assert_eq!(quotes.top_of_book("ETHUSDT"), None);
            assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1, "HTTP {status}");
            let until = quotes.backoff_until.lock().expect("backing off");
            assert!(until > Instant::now() + Duration::from_secs(50), "HTTP {status}");
        }
    }
}
