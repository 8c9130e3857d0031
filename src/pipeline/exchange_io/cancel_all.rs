//! Cancel-all: every open order on every symbol, not only the ones we know; and the retry policy
//! of protective calls.

use super::*;

impl ExchangeIo {
    /// Emergency cancel: every open order on every symbol, not only the ones we know.
    pub(super) fn cancel_all(&mut self) {
        let mut symbols: BTreeSet<String> = self.resting.values().map(|o| o.symbol.clone()).collect();
        match self.with_retries("list open orders", |gw| gw.open_orders(None)) {
            Ok(open) => symbols.extend(open.into_iter().map(|o| o.symbol)),
            Err(e) => {
                self.out.error(format!("cancel-all: could not list open orders ({e}); cancelling on known symbols"))
            }
        }
        let mut cancelled = 0usize;
        let mut cancelled_symbols = Vec::new();
        for symbol in symbols {
            let mut count = match self.with_retries("cancel open orders", |gw| gw.cancel_open_orders(&symbol)) {
                Ok(reports) => {
                    let n = reports.len();
                    for report in reports {
                        self.on_resting_report(report, Seen::Request, "cancel-all", OnCancel::Expected);
                    }
                    n
                }
                Err(e) => {
                    self.out.error(format!("cancel-all: {symbol}: {e}"));
                    0
                }
            };
            // A cancel whose answer was lost (timeout, 5xx) may have worked: ask about each of
            // ours that no answer covered, so it is not mistaken later for someone else's cancel.
            let unreported: Vec<String> =
                self.resting.values().filter(|o| o.symbol == symbol).map(|o| o.client_order_id.clone()).collect();
            for client_order_id in unreported {
                if let Ok(report) = self.gateway.query_order(&symbol, &client_order_id) {
                    if !report.status.is_open() {
                        count += usize::from(report.executed_qty < report.orig_qty);
                        self.on_resting_report(report, Seen::Request, "cancel-all", OnCancel::Expected);
                    }
                }
            }
            if count > 0 {
                cancelled += count;
                cancelled_symbols.push(symbol.clone());
            }
        }
        log::warn!("cancel-all: cancelled {cancelled} open orders on {:?}", cancelled_symbols);
        self.out.announce(
            Event::new(
                EventKind::CancelAll,
                if cancelled == 0 {
                    "cancel-all: no open orders".to_string()
                } else {
                    format!("cancel-all: cancelled {cancelled} open orders on {}", cancelled_symbols.join(", "))
                },
            )
            .field("cancelled", cancelled)
            .field("symbols", cancelled_symbols),
        );
    }

    /// Protective calls are never abandoned on a rate limit or a transient error: wait and go on
    /// (bounded here so a dead exchange cannot hang shutdown forever).
    pub(super) fn with_retries<T>(
        &mut self,
        what: &str,
        mut call: impl FnMut(&mut dyn Exchange) -> Result<T, ExchangeError>,
    ) -> Result<T, ExchangeError> {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call(self.gateway.as_mut()) {
                Ok(v) => return Ok(v),
                Err(ExchangeError::Rejected { http_status, code, msg }) => {
                    return Err(ExchangeError::Rejected { http_status, code, msg })
                }
                Err(e) if attempt >= 6 => return Err(e),
                Err(ExchangeError::RateLimited { retry_after, msg, .. }) => {
                    self.out.announce(
                        Event::new(
                            EventKind::RateLimited,
                            format!(
                                "{what} waits {:.1} s for the exchange's rate limit: {msg}",
                                retry_after.as_secs_f64()
                            ),
                        )
                        .field("retry_after_ms", retry_after.as_millis() as u64)
                        .field("until", crate::domain::format_ts(now_us() + retry_after.as_micros() as i64)),
                    );
                    self.out.release();
                    std::thread::sleep(retry_after);
                }
                Err(e) => {
                    log::warn!("{what}: {e}; retrying in {} ms", wait.as_millis());
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
    }
}
