//! Top of book for intake, kept fresh off the order path: a background thread polls
//! `GET /api/v3/ticker/bookTicker` for the symbols intake has asked about, so an order's
//! expected price is normally a cache read, not a round trip.

use super::{BinanceConfig, BinanceGateway};
use crate::exchange::{BookTicker, Exchange, Quotes};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub struct BinanceQuotes {
    cache: RwLock<HashMap<String, (BookTicker, Instant)>>,
    watched: Mutex<HashSet<String>>,
    /// Used by the poller, and by intake when a quote is missing or stale.
    fetcher: Mutex<BinanceGateway>,
    max_age: Duration,
}

impl BinanceQuotes {
    /// Starts the poller; it stops when the last `Arc` is dropped. `on_thread` runs first on the
    /// poller's thread (the engine pins it there).
    pub fn start(
        config: BinanceConfig,
        refresh: Duration,
        on_thread: impl FnOnce() + Send + 'static,
    ) -> Result<Arc<BinanceQuotes>, crate::exchange::ExchangeError> {
        let quotes = Arc::new(BinanceQuotes {
            cache: RwLock::new(HashMap::new()),
            watched: Mutex::new(HashSet::new()),
            fetcher: Mutex::new(BinanceGateway::new(config)?),
            max_age: refresh * 3,
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
        let ticker = self.fetcher.lock().book_ticker(symbol);
        match ticker {
            Ok(t) => {
                self.cache.write().insert(symbol.to_string(), (t.clone(), Instant::now()));
                Some(t)
            }
            Err(e) => {
                log::warn!("bookTicker {symbol}: {e}");
                None
            }
        }
    }
}

impl Quotes for BinanceQuotes {
    fn top_of_book(&self, symbol: &str) -> Option<BookTicker> {
        if let Some((t, at)) = self.cache.read().get(symbol) {
            if at.elapsed() <= self.max_age {
                return Some(t.clone());
            }
        }
        self.watched.lock().insert(symbol.to_string());
        self.fetch(symbol)
    }
}

fn poll(quotes: Weak<BinanceQuotes>, refresh: Duration) {
    loop {
        std::thread::sleep(refresh);
        let Some(quotes) = quotes.upgrade() else {
            return;
        };
        let symbols: Vec<String> = quotes.watched.lock().iter().cloned().collect();
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
            BinanceQuotes::start(BinanceConfig::new(url, "key", "secret"), Duration::from_secs(3600), || {}).unwrap();
        assert_eq!(quotes.top_of_book("BTCUSDT"), None);
        assert!(quotes.cache.read().is_empty());
        assert!(quotes.watched.lock().contains("BTCUSDT"), "the poller keeps trying it");
    }
}
