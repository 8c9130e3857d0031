//! `POST /api/v3/order/cancelReplace` (rest-api.md "Cancel an Existing Order and Send a New
//! Order"): both `cancelReplaceMode`s, the order to cancel named by `cancelOrderId` and/or
//! `cancelOrigClientOrderId` (by id first; a client id sent too must then match).
//!
//! The simulator checks the new order's filters first (a failure: the plain error, nothing
//! changed), then cancels, then places. `STOP_ON_FAILURE`: a refused cancel is 400 -2022 with
//! the new order `NOT_ATTEMPTED`. `ALLOW_FAILURE`: the new order is placed anyway; placed is
//! 409 -2021 (`FAILURE`/`SUCCESS`), refused too is 400 -2022 (`FAILURE`/`FAILURE`). A done
//! cancel whose new order is refused is 409 -2021 in both modes. Both parts reach the user
//! data stream as a separate cancel and placement would. An IOC / FOK new order is placed
//! after the cancel through the time-in-force book (`time_in_force`).
//!
//! Over the ORDERS limit, `orderRateLimitExceededMode=CANCEL_ONLY` still cancels ([`cancel_only`]);
//! the default, `DO_NOTHING`, is the plain 429 -1015 (answered before this module runs).

use crate::endpoints::Ctx;
use crate::orders::{parse_new_order, placement_json, RespType};
use crate::params::Params;
use crate::reply::ApiError;
use crate::time_in_force::Tif;
use genesis::exchange::binance::user_data::Change;
use genesis::exchange::binance::wire::{cancel_json, error_json};
use genesis::exchange::sim::{OrderRef, SimReplaced, Simulator};
use genesis::exchange::NewOrder;
use serde_json::{json, Value};

/// A client order id no order can have (`#` is outside `^[a-zA-Z0-9-_]{1,36}$`): cancelling
/// it is the simulator's "Unknown order sent." after its filter checks.
const NO_SUCH_CLIENT_ID: &str = "#unknown";

/// The client order id of the order to cancel, or [`NO_SUCH_CLIENT_ID`] when `cancelOrderId`
/// names no order of the symbol (or one whose client id is not `cancelOrigClientOrderId`).
fn order_to_cancel(p: &Params, sim: &Simulator, symbol: &str) -> Result<String, ApiError> {
    let by_id = p.int("cancelOrderId")?;
    let by_client = p.get("cancelOrigClientOrderId");
    match (by_id, by_client) {
        (None, None) => Err(ApiError::bad(
            -1102,
            "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were empty/null!",
        )),
        (None, Some(client)) => Ok(client.to_string()),
        (Some(id), client) => Ok(match sim.query(symbol, OrderRef::OrderId(id)) {
            Ok(report) if client.is_none_or(|c| c == report.client_order_id) => report.client_order_id,
            _ => NO_SUCH_CLIENT_ID.to_string(),
        }),
    }
}

/// The parts of a cancel-replace both modes check first: the mode, the order to cancel, the
/// new order (parameters and filters).
fn checked(p: &Params, sim: &Simulator, ctx: &Ctx<'_>) -> Result<(bool, String, NewOrder, RespType, Tif), ApiError> {
    let allow_failure = match p.get("cancelReplaceMode") {
        Some("STOP_ON_FAILURE") => false,
        Some("ALLOW_FAILURE") => true,
        None => return Err(ApiError::mandatory("cancelReplaceMode")),
        Some(_) => return Err(ApiError::illegal("cancelReplaceMode", "STOP_ON_FAILURE, ALLOW_FAILURE")),
    };
    match p.get("orderRateLimitExceededMode") {
        None | Some("DO_NOTHING") | Some("CANCEL_ONLY") => {}
        Some(_) => return Err(ApiError::illegal("orderRateLimitExceededMode", "DO_NOTHING, CANCEL_ONLY")),
    }
    let symbol = p.require("symbol")?;
    let cancel_client_order_id = order_to_cancel(p, sim, symbol)?;
    let (order, resp, tif) = parse_new_order(p, sim, ctx)?;
    sim.check_order(&order)?;
    ctx.filters.check(&order, sim, ctx.server_now_ms)?;
    Ok((allow_failure, cancel_client_order_id, order, resp, tif))
}

/// The cancel, then the new order. A GTC one is the simulator's own cancel-replace (one journal
/// record); an IOC / FOK one is placed through the time-in-force book after the cancel.
fn replace(
    sim: &mut Simulator,
    ctx: &Ctx<'_>,
    cancel: &str,
    order: &NewOrder,
    tif: Tif,
) -> Result<SimReplaced, ApiError> {
    if tif == Tif::Gtc {
        return Ok(sim.cancel_replace(cancel, order)?);
    }
    let cancelled = match sim.cancel(&order.symbol, OrderRef::ClientOrderId(cancel)) {
        Ok(cancelled) => cancelled,
        Err(error) => return Ok(SimReplaced::CancelRefused(error)),
    };
    Ok(match ctx.tifs.place(sim, order, tif) {
        Ok((placed, _)) => SimReplaced::Both { cancelled, placed },
        Err(error) => SimReplaced::PlaceRefused { cancelled, error },
    })
}

/// The new order's answer, its time in force shown.
fn new_order_json(ctx: &Ctx<'_>, placed: &genesis::domain::order::OrderReport, resp: RespType) -> Value {
    let mut value = placement_json(placed, resp);
    ctx.tifs.patch_json(&mut value);
    value
}

/// `orderRateLimitExceededMode=CANCEL_ONLY` over the ORDERS limit: the checks, then the cancel
/// alone; 429 with -2021 (cancelled; the new order's error is `refused`, the -1015) or -2022
/// (the cancel failed too; new order not attempted), `Retry-After` as `refused`'s.
pub fn cancel_only(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>, refused: ApiError) -> Result<Value, ApiError> {
    let (_, cancel_client_order_id, order, _, _) = checked(p, sim, ctx)?;
    let cancel_id = match p.get("cancelNewClientOrderId") {
        Some(id) => id.to_string(),
        None => ctx.ids.next_id(),
    };
    let limited = |code: i64, msg: &str, data: Value| ApiError {
        data: Some(data),
        retry_after_secs: refused.retry_after_secs,
        ..ApiError::new(429, code, msg)
    };
    match sim.cancel(&order.symbol, OrderRef::ClientOrderId(&cancel_client_order_id)) {
        Ok(cancelled) => {
            let data = json!({
                "cancelResult": "SUCCESS",
                "newOrderResult": "FAILURE",
                "cancelResponse": cancel_json(&cancelled, &cancel_id),
                "newOrderResponse": error_json(refused.code, &refused.msg),
            });
            ctx.changes.borrow_mut().push((cancelled, Change::Updated, Some(cancel_id)));
            Err(limited(-2021, "Order cancel-replace partially failed.", data))
        }
        Err(error) => Err(limited(
            -2022,
            "Order cancel-replace failed.",
            json!({
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": error_json(error.code, &error.msg),
                "newOrderResponse": null,
            }),
        )),
    }
}

pub fn cancel_replace(p: &Params, sim: &mut Simulator, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let (allow_failure, cancel_client_order_id, order, resp, tif) = checked(p, sim, ctx)?;
    let cancel_id = match p.get("cancelNewClientOrderId") {
        Some(id) => id.to_string(),
        None => ctx.ids.next_id(),
    };
    match replace(sim, ctx, &cancel_client_order_id, &order, tif)? {
        SimReplaced::Both { cancelled, placed } => {
            let value = json!({
                "cancelResult": "SUCCESS",
                "newOrderResult": "SUCCESS",
                "cancelResponse": cancel_json(&cancelled, &cancel_id),
                "newOrderResponse": new_order_json(ctx, &placed, resp),
            });
            let mut changes = ctx.changes.borrow_mut();
            changes.push((cancelled, Change::Updated, Some(cancel_id)));
            changes.push((placed, Change::Placed, None));
            Ok(value)
        }
        SimReplaced::CancelRefused(error) if allow_failure => match ctx.tifs.place(sim, &order, tif) {
            Ok((placed, _)) => {
                let data = json!({
                    "cancelResult": "FAILURE",
                    "newOrderResult": "SUCCESS",
                    "cancelResponse": error_json(error.code, &error.msg),
                    "newOrderResponse": new_order_json(ctx, &placed, resp),
                });
                ctx.changes.borrow_mut().push((placed, Change::Placed, None));
                Err(ApiError {
                    data: Some(data),
                    ..ApiError::new(409, -2021, "Order cancel-replace partially failed.")
                })
            }
            Err(place_error) => Err(ApiError {
                data: Some(json!({
                    "cancelResult": "FAILURE",
                    "newOrderResult": "FAILURE",
                    "cancelResponse": error_json(error.code, &error.msg),
                    "newOrderResponse": error_json(place_error.code, &place_error.msg),
                })),
                ..ApiError::bad(-2022, "Order cancel-replace failed.")
            }),
        },
        SimReplaced::CancelRefused(error) => Err(ApiError {
            data: Some(json!({
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": error_json(error.code, &error.msg),
                "newOrderResponse": null,
            })),
            ..ApiError::bad(-2022, "Order cancel-replace failed.")
        }),
        SimReplaced::PlaceRefused { cancelled, error } => {
            let data = json!({
                "cancelResult": "SUCCESS",
                "newOrderResult": "FAILURE",
                "cancelResponse": cancel_json(&cancelled, &cancel_id),
                "newOrderResponse": error_json(error.code, &error.msg),
            });
            ctx.changes.borrow_mut().push((cancelled, Change::Updated, Some(cancel_id)));
            Err(ApiError { data: Some(data), ..ApiError::new(409, -2021, "Order cancel-replace partially failed.") })
        }
    }
}
