//! `timeInForce` IOC and FOK (rest-api.md "New order": LIMIT, STOP_LOSS_LIMIT and
//! TAKE_PROFIT_LIMIT take it; enums.md "Time in force"), on a simulator whose resting orders
//! are all GTC:
//!
//! - IOC: the order trades what crosses at its price; the rest expires (`EXPIRED`,
//!   `expiryReason` `UNFILLED_IOC_QUANTITY_EXPIRED`).
//! - FOK: when the book holds the whole quantity at the price or better, the order fills;
//!   otherwise it expires with nothing traded (`UNFILLED_FOK_ORDER_EXPIRED`).
//!
//! A LIMIT is placed and its unfilled rest cancelled at once; a stop-limit rests until it
//! triggers, and its rest is cancelled when it does ([`TifBook::expire_triggered`]). The order
//! is then shown as `EXPIRED` with its `timeInForce` wherever it is answered (placement, query,
//! allOrders, the user data stream). A FOK stop-limit that triggers into a book that fills only
//! part of it trades that part before the rest expires (Binance would trade nothing).

use genesis::domain::money::Decimal;
use genesis::domain::order::{ExchangeStatus, OrderReport, Side};
use genesis::exchange::sim::{OrderRef, SimError, Simulator, LEVELS};
use genesis::exchange::NewOrder;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tif {
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    pub fn parse(text: &str) -> Option<Tif> {
        match text {
            "GTC" => Some(Tif::Gtc),
            "IOC" => Some(Tif::Ioc),
            "FOK" => Some(Tif::Fok),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Gtc => "GTC",
            Tif::Ioc => "IOC",
            Tif::Fok => "FOK",
        }
    }

    /// The `expiryReason` of an order of this time in force that expired unfilled.
    fn expiry_reason(self) -> Option<&'static str> {
        match self {
            Tif::Gtc => None,
            Tif::Ioc => Some("UNFILLED_IOC_QUANTITY_EXPIRED"),
            Tif::Fok => Some("UNFILLED_FOK_ORDER_EXPIRED"),
        }
    }
}

/// What the simulator does not keep of an IOC / FOK order: its time in force, the price it
/// was sent with (a FOK that cannot fill is placed where it cannot trade), and whether this
/// server expired it (a stop-limit cancelled before it triggered stays CANCELED).
#[derive(Debug, Clone, Copy)]
struct Kept {
    tif: Tif,
    price: Decimal,
    expired: bool,
}

/// The IOC and FOK orders placed so far, by order id.
#[derive(Debug, Default)]
pub struct TifBook {
    orders: Mutex<HashMap<i64, Kept>>,
}

impl TifBook {
    /// A report as clients see it: an IOC / FOK order cancelled by this server is `EXPIRED`,
    /// at the price it was sent with.
    pub fn present(&self, report: &mut OrderReport) {
        if let Some(kept) = self.orders.lock().get(&report.exchange_order_id) {
            report.price = kept.price;
            if kept.expired && report.status == ExchangeStatus::Canceled {
                report.status = ExchangeStatus::Expired;
                report.expiry_reason = kept.tif.expiry_reason().map(str::to_string);
            }
        }
    }

    /// An IOC / FOK order's time in force (`None`: GTC).
    pub fn tif_of(&self, order_id: i64) -> Option<Tif> {
        self.orders.lock().get(&order_id).map(|k| k.tif)
    }

    /// Sets `timeInForce` in an order's JSON (the wire shapes say GTC).
    pub fn patch_json(&self, value: &mut Value) {
        let Some(id) = value.get("orderId").and_then(Value::as_i64) else {
            return;
        };
        if let Some(kept) = self.orders.lock().get(&id) {
            value["timeInForce"] = Value::String(kept.tif.as_str().to_string());
        }
    }

    /// Places `order` (a LIMIT) with `tif`. Returns the placement report (fills included) as
    /// the client sees it, and the cancel of the rest when there was one (for the stream).
    pub fn place(
        &self,
        sim: &mut Simulator,
        order: &NewOrder,
        tif: Tif,
    ) -> Result<(OrderReport, Option<OrderReport>), SimError> {
        if tif == Tif::Gtc {
            return Ok((sim.place(order)?, None));
        }
        if order.order_type.is_algo() {
            let placed = sim.place(order)?;
            let price = order.price.unwrap_or(Decimal::ZERO);
            self.orders.lock().insert(placed.exchange_order_id, Kept { tif, price, expired: false });
            return Ok((placed, None));
        }
        let price = order.price.unwrap_or(Decimal::ZERO);
        let mut sent = order.clone();
        if tif == Tif::Fok && fillable(sim, order)? < order.quantity {
            // Where it cannot trade: it rests untouched, then expires.
            let top = sim.book_ticker(&order.symbol)?;
            sent.price = Some(match order.side {
                Side::Buy => price.min(top.bid),
                Side::Sell => price.max(top.ask),
            });
        }
        let mut placed = sim.place(&sent)?;
        self.orders.lock().insert(placed.exchange_order_id, Kept { tif, price, expired: true });
        let rest = if matches!(placed.status, ExchangeStatus::New | ExchangeStatus::PartiallyFilled) {
            let mut cancelled = sim.cancel(&order.symbol, OrderRef::OrderId(placed.exchange_order_id))?;
            self.present(&mut cancelled);
            placed.status = ExchangeStatus::Expired;
            placed.expiry_reason = tif.expiry_reason().map(str::to_string);
            Some(cancelled)
        } else {
            None
        };
        placed.price = price;
        Ok((placed, rest))
    }
}

impl TifBook {
    /// After a price move: the IOC / FOK stop-limits among `changed` that triggered and are
    /// still open have their rest cancelled at once, and are reported `EXPIRED` (their fills
    /// kept, for the stream).
    pub fn expire_triggered(&self, sim: &mut Simulator, changed: &mut [OrderReport]) {
        for report in changed.iter_mut().filter(|r| r.order_type.is_algo() && r.status.is_open()) {
            let id = report.exchange_order_id;
            let Some(tif) = self.orders.lock().get(&id).map(|k| k.tif) else { continue };
            if sim.cancel(&report.symbol, OrderRef::OrderId(id)).is_err() {
                continue;
            }
            if let Some(kept) = self.orders.lock().get_mut(&id) {
                kept.expired = true;
            }
            report.status = ExchangeStatus::Expired;
            report.expiry_reason = tif.expiry_reason().map(str::to_string);
        }
    }
}

/// The quantity the book offers at the order's price or better.
fn fillable(sim: &Simulator, order: &NewOrder) -> Result<Decimal, SimError> {
    let limit = order.price.unwrap_or(Decimal::ZERO);
    let (bids, asks) = sim.depth(&order.symbol, LEVELS)?;
    Ok(match order.side {
        Side::Buy => asks.iter().filter(|(p, _)| *p <= limit).map(|(_, q)| *q).sum(),
        Side::Sell => bids.iter().filter(|(p, _)| *p >= limit).map(|(_, q)| *q).sum(),
    })
}
