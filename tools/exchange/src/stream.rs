//! The user data stream's subscribers: `userDataStream.subscribe.signature`, and the queue that
//! carries each request's order changes to every subscription as `executionReport` events.

use crate::api::App;
use crate::auth;
use crate::params::Params;
use crate::reply::ApiError;
use crate::stp::StpBook;
use crate::time_in_force::TifBook;
use genesis::domain::order::OrderReport;
use genesis::exchange::binance::user_data::{event_message, execution_reports_json, Change};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Orders a request changed, for the user data stream: the report, what happened, and the
/// cancel's own client id where there is one.
pub(crate) type Changes = Vec<(OrderReport, Change, Option<String>)>;

/// Pushes (one request's changes each) queued for one subscriber before it counts as too slow
/// and is dropped.
const SUBSCRIBER_QUEUE: usize = 4096;

/// One `userDataStream.subscribe*` on one connection.
pub(crate) struct Subscriber {
    subscription_id: u64,
    tx: SyncSender<Arc<Pushed>>,
}

/// One request's changes, as queued for every subscriber; each subscriber's connection thread
/// renders them into `executionReport` frames (off the request's thread).
pub struct Pushed {
    changes: Changes,
    server_now_ms: i64,
}

/// A subscription's end of the stream: what was pushed, rendered as the text frames sent.
pub struct StreamRx {
    subscription_id: u64,
    rx: Receiver<Arc<Pushed>>,
    /// For each order's time in force (`f`) and STP mode (`V`), which its report lacks.
    tifs: Arc<TifBook>,
    stp: Arc<StpBook>,
}

impl StreamRx {
    fn render(&self, pushed: &Pushed) -> Vec<String> {
        let mut frames = Vec::new();
        for (report, change, cancel_id) in &pushed.changes {
            let tif = self.tifs.tif_of(report.exchange_order_id);
            let stp = self.stp.mode_of(report.exchange_order_id, &report.symbol);
            for mut event in execution_reports_json(report, *change, pushed.server_now_ms, cancel_id.as_deref()) {
                if let Some(tif) = tif {
                    event["f"] = Value::String(tif.as_str().into());
                }
                event["V"] = Value::String(stp.into());
                frames.push(event_message(self.subscription_id, &event));
            }
        }
        frames
    }

    /// The frames of the next queued push, if any.
    pub fn try_recv(&self) -> Result<Vec<String>, std::sync::mpsc::TryRecvError> {
        self.rx.try_recv().map(|pushed| self.render(&pushed))
    }

    /// Every frame queued now.
    #[cfg(test)]
    pub fn try_iter(&self) -> impl Iterator<Item = String> + '_ {
        self.rx.try_iter().flat_map(|pushed| self.render(&pushed))
    }
}

impl App {
    /// `userDataStream.subscribe.signature`: the key must be the account's, the signature
    /// HMAC-SHA256 over the other parameters sorted by name (`name=value&...`), the timestamp
    /// within recvWindow. Returns the subscription id and the channel of its events.
    pub fn subscribe_signature(
        &self,
        params: &serde_json::Map<String, Value>,
        local_now_ms: i64,
    ) -> Result<(u64, StreamRx), ApiError> {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
        let api_key = params.get("apiKey").map(text).ok_or_else(|| ApiError::mandatory("apiKey"))?;
        if api_key != self.creds.api_key {
            return Err(ApiError::new(401, -2015, "Invalid API-key, IP, or permissions for action."));
        }
        let signature = params.get("signature").map(text).ok_or_else(|| ApiError::mandatory("signature"))?;
        let payload = genesis::exchange::binance::user_data::signature_payload(&pairs);
        if !genesis::exchange::binance::sign::verify(&self.creds.api_secret, payload.as_bytes(), b"", &signature) {
            return Err(ApiError::bad(-1022, "Signature for this request is not valid."));
        }
        auth::check_timestamp(&Params::from_sources(&payload, None), self.server_now_ms(local_now_ms))?;
        let subscription_id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(SUBSCRIBER_QUEUE);
        self.subscribers.lock().push(Subscriber { subscription_id, tx });
        log::info!("user data stream: subscription {subscription_id} started");
        let (tifs, stp) = (Arc::clone(&self.tifs), Arc::clone(&self.stp));
        Ok((subscription_id, StreamRx { subscription_id, rx, tifs, stp }))
    }

    /// Ends a subscription (its connection closed or it unsubscribed).
    pub fn unsubscribe(&self, subscription_id: u64) {
        self.subscribers.lock().retain(|s| s.subscription_id != subscription_id);
    }

    /// `POST /sim/stream/drop`: every subscriber's connection is closed; changes made until a
    /// client subscribes again are pushed to no one.
    pub fn drop_streams(&self) -> usize {
        let dropped = std::mem::take(&mut *self.subscribers.lock());
        log::info!("user data stream: dropping {} connections (fault)", dropped.len());
        dropped.len()
    }

    /// Pushes what [`App::respond`] queued, in order. The queue's lock is held while pushing,
    /// so two connections flushing at once cannot reorder the events.
    pub fn flush_pushes(&self) {
        let mut unpushed = self.unpushed.lock();
        for (changes, server_now_ms) in unpushed.drain(..) {
            self.push(changes, server_now_ms);
        }
    }

    /// Pushes `executionReport` events for orders that changed. Called with the simulator
    /// locked (or from the ordered queue), so the events go out in the order the changes were made.
    pub(crate) fn push(&self, changes: Changes, server_now_ms: i64) {
        let mut subscribers = self.subscribers.lock();
        if subscribers.is_empty() || changes.is_empty() {
            return;
        }
        // Rendered by each subscriber's own thread: queuing is all the request's thread does.
        let pushed = Arc::new(Pushed { changes, server_now_ms });
        subscribers.retain(|s| match s.tx.try_send(Arc::clone(&pushed)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("user data stream: subscription {} too slow; dropped", s.subscription_id);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}
