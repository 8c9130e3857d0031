//! The application: everything a request can touch ([`App`]) and the path of one `/api/v3/*`
//! request through it. Routing and handlers are in `endpoints` and `orders`, the `/sim/*`
//! endpoints in `control`, the user data stream in `stream`.
//!
//! Order of checks for `/api/v3/*`: route → ban (418) → raw requests and request weight (429
//! -1003) → API key and signature (SIGNED only) → fault plan → timestamp (SIGNED only) →
//! parameters → order counts per 10 s and per day (placements and cancel-replaces, 429 -1015)
//! → the simulator → each order's STP mode into the answer → faults that act after execution.

use crate::auth::{self, Credentials};
use crate::endpoints::{Ctx, Endpoint, NoRoute};
use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::filters::FilterBook;
use crate::ids::IdGen;
use crate::limits::{Exceeded, LimitConfig, Limits};
use crate::stp::StpBook;
use crate::stream::{Changes, Subscriber};
use crate::time_in_force::TifBook;
use genesis::domain::money::Decimal;
use genesis::exchange::binance::user_data::Change;
use genesis::exchange::sim::Simulator;
use parking_lot::Mutex;
use serde_json::Value;
use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::params::{parse_decimal, Params};
pub use crate::reply::{After, ApiError, HttpRequest, Reply, MSG_INSUFFICIENT, MSG_TIMEOUT};
pub use crate::stream::StreamRx;

/// Everything a request can touch.
pub struct App {
    pub(crate) sim: Arc<Mutex<Simulator>>,
    pub(crate) creds: Credentials,
    pub(crate) limits: Mutex<Limits>,
    pub(crate) faults: Mutex<FaultPlan>,
    /// Server clock minus the local clock, ms (`skew` faults).
    pub(crate) skew_ms: AtomicI64,
    pub(crate) ids: IdGen,
    pub(crate) tifs: Arc<TifBook>,
    pub(crate) stp: Arc<StpBook>,
    pub(crate) filters: FilterBook,
    /// User data stream subscribers (WebSocket connections), each fed by its own channel.
    pub(crate) subscribers: Mutex<Vec<Subscriber>>,
    pub(crate) next_subscription: AtomicU64,
    /// Changes made by requests whose events are not pushed yet (see [`App::respond`]).
    pub(crate) unpushed: Mutex<Vec<(Changes, i64)>>,
    /// The market streams' connections (`market_streams`).
    pub(crate) market: crate::market_streams::MarketHub,
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

impl App {
    pub fn new(sim: Simulator, creds: Credentials, order_limit_10s: u64, faults: Vec<Fault>, id_base: u64) -> App {
        let mut plan = FaultPlan::default();
        for fault in faults {
            plan.add(fault);
        }
        App {
            sim: Arc::new(Mutex::new(sim)),
            creds,
            limits: Mutex::new(Limits::new(order_limit_10s)),
            faults: Mutex::new(plan),
            skew_ms: AtomicI64::new(0),
            ids: IdGen::new(id_base),
            tifs: Arc::new(TifBook::default()),
            stp: Arc::new(StpBook::default()),
            filters: FilterBook::default(),
            subscribers: Mutex::new(Vec::new()),
            unpushed: Mutex::new(Vec::new()),
            next_subscription: AtomicU64::new(0),
            market: Default::default(),
        }
    }

    /// The market streams' connections.
    pub fn market(&self) -> &crate::market_streams::MarketHub {
        &self.market
    }

    /// `--weight-limit`, `--raw-request-limit`, `--order-limit`, `--daily-order-limit`.
    pub fn set_limits(&self, config: LimitConfig) {
        self.limits.lock().set_config(config);
    }

    pub fn server_now_ms(&self, local_now_ms: i64) -> i64 {
        local_now_ms.saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Answers one request and pushes its stream events at once (tests).
    #[cfg(test)]
    pub fn handle(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let reply = self.respond(req, local_now_ms);
        self.flush_pushes();
        reply
    }

    /// Answers one request. `local_now_ms` is this machine's clock (the server clock adds the
    /// skew). Every reply carries `X-MBX-USED-WEIGHT-1M`. The user data stream's events for
    /// the changes it made wait for [`App::flush_pushes`]: the server sends the HTTP response
    /// first, as Binance's stream is separate from its REST answers (formatting them before
    /// the response added to every order's round trip).
    pub fn respond(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let mut reply = if req.path == "/sim" || req.path.starts_with("/sim/") {
            self.control(req, local_now_ms)
        } else {
            self.api(req, local_now_ms, false)
        };
        let used = self.limits.lock().used_weight(local_now_ms);
        reply.headers.push(("X-MBX-USED-WEIGHT-1M", used.to_string()));
        reply
    }

    /// A WebSocket API request (see `ws_orders`), as the REST request it stands for: its key
    /// and signature were checked over the WebSocket API's payload, so they are not again here.
    /// Everything else (weight, faults, timestamp, order count, the matching) is the REST path.
    pub fn respond_verified(&self, req: &HttpRequest<'_>, local_now_ms: i64) -> Reply {
        let mut reply = self.api(req, local_now_ms, true);
        let used = self.limits.lock().used_weight(local_now_ms);
        reply.headers.push(("X-MBX-USED-WEIGHT-1M", used.to_string()));
        reply
    }

    /// The limits the WebSocket API's `rateLimits` report: (orders per 10 s, weight per minute).
    pub fn limits_now(&self) -> (u64, u64) {
        let limits = self.limits.lock();
        (limits.order_limit_10s(), limits.weight_limit_1m())
    }

    /// The account's key and secret (the WebSocket API checks its own signatures).
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    fn api(&self, req: &HttpRequest<'_>, now: i64, verified: bool) -> Reply {
        let endpoint = match Endpoint::route(req.method, req.path) {
            Ok(e) => e,
            Err(NoRoute::NotFound) => return ApiError::new(404, -1, format!("Unknown endpoint {}.", req.path)).reply(),
            Err(NoRoute::MethodNotAllowed) => {
                return ApiError::new(405, -1, format!("Method {} is not allowed on {}.", req.method, req.path)).reply()
            }
        };
        let body = is_form(req.content_type).then_some(req.body);
        let params = Params::from_sources(req.query, body);
        let weight = endpoint.weight(&params);
        {
            let mut limits = self.limits.lock();
            let ban = |until: i64| {
                let secs = u64::try_from((until - now + 999) / 1000).unwrap_or(1).max(1);
                ApiError::banned(self.server_now_ms(until), secs).reply()
            };
            if let Some(until) = limits.banned_until(now) {
                return ban(until);
            }
            // RAW_REQUESTS, then REQUEST_WEIGHT; ignoring either's 429s leads to a ban.
            let refused = match limits.count_request(now) {
                Err(Exceeded::Requests { retry_after_secs }) => {
                    Some(ApiError::too_many_requests(retry_after_secs, limits.config().raw_requests_5m))
                }
                _ => match limits.charge_weight(weight, now) {
                    Err(Exceeded::Weight { retry_after_secs }) => {
                        Some(ApiError::too_much_weight(retry_after_secs, limits.weight_limit_1m()))
                    }
                    _ => None,
                },
            };
            if let Some(refused) = refused {
                if let Some(until) = limits.note_refusal(now) {
                    return ban(until);
                }
                return refused.reply();
            }
        }
        let signed = endpoint.signed();
        if signed && !verified {
            if let Err(e) = auth::check_key_and_signature(&self.creds, req.api_key, req.query, req.body) {
                return e.reply();
            }
        }
        let what = format!("{} {}", req.method, req.path);
        let fault = self.faults.lock().next(endpoint.step(&params), signed, &what, now);
        let mut after_execute = None;
        match fault {
            None => {}
            Some(FaultKind::Skew(ms)) => self.skew_ms.store(ms, Ordering::Relaxed),
            Some(FaultKind::TooManyRequests(secs)) => {
                let mut e = ApiError::too_much_weight(secs, self.limits.lock().weight_limit_1m());
                e.retry_after_secs = Some(secs);
                return e.reply();
            }
            Some(FaultKind::Banned(secs)) => {
                let until = self
                    .server_now_ms(now)
                    .saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX));
                return ApiError::banned(until, secs).reply();
            }
            Some(FaultKind::Timestamp) => return auth::timestamp_error(false).reply(),
            Some(FaultKind::Reject) => return ApiError::bad(-2010, MSG_INSUFFICIENT).reply(),
            Some(FaultKind::TriggerImmediately) => {
                return ApiError::bad(-2010, "Order would trigger immediately.").reply()
            }
            Some(kind) => after_execute = Some(kind),
        }
        let server_now = self.server_now_ms(now);
        if signed {
            if let Err(e) = auth::check_timestamp(&params, server_now) {
                return e.reply();
            }
        }
        if let Err(e) = crate::checks::check_params(endpoint, req.query, body, &params) {
            return e.reply();
        }
        let limit_config = self.limits.lock().config();
        // Over the order limit, a cancel-replace with orderRateLimitExceededMode=CANCEL_ONLY
        // still cancels; anything else is refused here.
        let mut over_limit = None;
        if endpoint.places_orders() {
            if let Err(Exceeded::Orders { retry_after_secs, limit, per }) = self.limits.lock().check_order(now) {
                let refused = ApiError::too_many_orders(limit, per, retry_after_secs);
                let cancel_only = endpoint == Endpoint::CancelReplace
                    && params.get("orderRateLimitExceededMode") == Some("CANCEL_ONLY");
                if !cancel_only {
                    return refused.reply();
                }
                over_limit = Some(refused);
            }
        }
        let ctx = Ctx {
            server_now_ms: server_now,
            limits: limit_config,
            ids: &self.ids,
            tifs: &self.tifs,
            stp: &self.stp,
            filters: &self.filters,
            changes: RefCell::new(Vec::new()),
        };
        let mut sim = self.sim.lock();
        let mut result = match over_limit.clone() {
            None => endpoint.execute(&params, &mut sim, &ctx),
            Some(refused) => crate::cancel_replace::cancel_only(&params, &mut sim, &ctx, refused),
        };
        self.show_stp_modes(endpoint, &params, &ctx, &mut result);
        let traded_at_once = ctx
            .changes
            .borrow()
            .iter()
            .any(|(r, change, _)| *change == Change::Placed && r.executed_qty > Decimal::ZERO);
        // Queued under the simulator's lock, so they go out in the order the changes were made.
        self.unpushed.lock().push((ctx.changes.take(), server_now));
        drop(sim);
        // A cancel-replace that reached the matching engine counts even when a part failed
        // (its answer then carries `data`); a filter failure or a bad parameter does not.
        let counted = endpoint.places_orders()
            && over_limit.is_none()
            && result.as_ref().map_or_else(|e| e.data.is_some(), |_| true);
        let mut reply = match result {
            Ok(value) => Reply::json(200, value),
            Err(e) => e.reply(),
        };
        if counted {
            let mut limits = self.limits.lock();
            let mut counts = limits.count_order(now);
            if traded_at_once {
                counts = limits.uncount_filled_order(now);
            }
            drop(limits);
            let (count_10s, count_1d) = counts;
            reply.headers.push(("X-MBX-ORDER-COUNT-10S", count_10s.to_string()));
            reply.headers.push(("X-MBX-ORDER-COUNT-1D", count_1d.to_string()));
        }
        match after_execute {
            Some(FaultKind::ServerErrorAfterExecute) => {
                let mut failed = ApiError::new(503, -1007, MSG_TIMEOUT).reply();
                failed.headers.extend(reply.headers);
                failed
            }
            Some(FaultKind::DropAfterExecute) => Reply { after: After::Drop, ..reply },
            Some(FaultKind::DelayAfterExecute(ms)) => Reply { after: After::Delay(Duration::from_millis(ms)), ..reply },
            _ => reply,
        }
    }

    /// Keeps the STP mode of each order the request placed, and shows each order's mode in
    /// the answer (the simulator's shapes say NONE).
    fn show_stp_modes(&self, endpoint: Endpoint, p: &Params, ctx: &Ctx<'_>, result: &mut Result<Value, ApiError>) {
        use Endpoint::*;
        if !matches!(
            endpoint,
            NewOrder | CancelReplace | QueryOrder | CancelOrder | OpenOrders | CancelOpenOrders | AllOrders
        ) {
            return;
        }
        for (report, change, _) in ctx.changes.borrow().iter() {
            if *change == Change::Placed {
                let mode = self.stp.mode_for(&report.symbol, p.get("selfTradePreventionMode"));
                if let Ok(mode) = mode {
                    self.stp.remember(report.exchange_order_id, &report.symbol, mode);
                }
            }
        }
        match result {
            Ok(value) => self.stp.patch_json(value),
            Err(ApiError { data: Some(data), .. }) => self.stp.patch_json(data),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
