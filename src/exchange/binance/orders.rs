//! An order as Binance takes it, whichever transport carries it (REST or the WebSocket API):
//! its parameters (the self-trade prevention mode included), the local check of what Binance
//! would refuse with -1102, and the reading of a cancel-replace's refusal.

use super::error::UNKNOWN_OUTCOME_CODES;
use super::sign::QueryBuilder;
use super::wire;
use crate::domain::order::ExchangeOrderType;
use crate::exchange::{ExchangeError, NewOrder, Replaced};
use std::collections::HashSet;

/// A cancel-replace whose request failed, read from the error answer's body (REST and the
/// WebSocket API carry the same `{code, msg, data}`): see [`BinanceGateway::cancel_replace`].
pub(super) fn cancel_replace_refusal(error: ExchangeError, error_body: &str) -> Result<Replaced, ExchangeError> {
    use wire::CancelReplaceFailure as F;

    let http_status = match &error {
        ExchangeError::Rejected { http_status: 400, code: -2022, .. } => 400,
        ExchangeError::Rejected { http_status: 409, .. } => 409,
        _ => return Err(error),
    };
    let part = |code: i64, msg: String, what: &str| {
        if UNKNOWN_OUTCOME_CODES.contains(&code) {
            Err(ExchangeError::Unknown { reason: format!("cancelReplace: the {what} answered ({code}): {msg}") })
        } else {
            Ok(ExchangeError::Rejected { http_status, code, msg })
        }
    };
    match (http_status, wire::parse_cancel_replace_failure(error_body)) {
        (400, Ok(F::CancelRefused { code, msg })) => Ok(Replaced::CancelRefused { error: part(code, msg, "cancel")? }),
        (409, Ok(F::PlaceRefused { cancelled, code, msg })) => {
            Ok(Replaced::PlaceRefused { cancelled, error: part(code, msg, "new order")? })
        }
        (409, parsed) => {
            let what = match parsed {
                Ok(other) => format!("a body that does not match it: {other:?}"),
                Err(e) => e.to_string(),
            };
            Err(ExchangeError::Unknown {
                reason: format!("cancelReplace answered 409 (cancelled, new order refused) with {what}: {error}"),
            })
        }
        _ => Err(error),
    }
}

/// The parameters of `POST /api/v3/order` for `order`, before recvWindow/timestamp.
pub(super) fn order_params(order: &NewOrder, stp_mode: Option<&str>, q: &mut QueryBuilder<'_>) {
    q.str("symbol", &order.symbol).str("side", order.side.as_str()).str("type", order.order_type.as_str());
    let limit_type = matches!(
        order.order_type,
        ExchangeOrderType::Limit | ExchangeOrderType::StopLossLimit | ExchangeOrderType::TakeProfitLimit
    );
    if limit_type {
        q.str("timeInForce", "GTC");
    }
    q.display("quantity", order.quantity.normalize());
    if let Some(price) = order.price {
        q.display("price", price.normalize());
    }
    if let Some(stop) = order.stop_price {
        q.display("stopPrice", stop.normalize());
    }
    q.str("newClientOrderId", &order.client_order_id).str("newOrderRespType", "FULL");
    if let Some(mode) = stp_mode {
        q.str("selfTradePreventionMode", mode);
    }
}

/// The symbols whose listed modes lack ours (a symbol that lists none is taken to allow it).
pub(super) fn stp_refused(allowed: &[(String, Vec<String>)]) -> HashSet<String> {
    allowed
        .iter()
        .filter(|(_, modes)| !modes.is_empty() && !modes.iter().any(|m| m == SELF_TRADE_PREVENTION_MODE))
        .map(|(symbol, _)| symbol.clone())
        .collect()
}

/// Sent with every order rather than left to the symbol's default (`EXPIRE_MAKER` on most):
/// STP acts by the taker's mode, and Genesis's takers are its entries and exits, so a taker
/// that would trade with one of Genesis's own resting orders (a triggered stop-limit) expires
/// itself (`EXPIRED_IN_MATCH`) and the protection stays on the book. A symbol whose
/// `allowedSelfTradePreventionModes` lacks it gets no mode (its default), not a -1130.
pub const SELF_TRADE_PREVENTION_MODE: &str = "EXPIRE_TAKER";

/// Refuses locally what Binance would refuse with -1102 (a mandatory parameter missing).
pub(super) fn check_order(order: &NewOrder) -> Result<(), ExchangeError> {
    use ExchangeOrderType as T;
    let needs_price = matches!(order.order_type, T::Limit | T::StopLossLimit | T::TakeProfitLimit | T::LimitMaker);
    let needs_stop = matches!(order.order_type, T::StopLoss | T::StopLossLimit | T::TakeProfit | T::TakeProfitLimit);
    let missing = if needs_price && order.price.is_none() {
        Some("price")
    } else if needs_stop && order.stop_price.is_none() {
        Some("stopPrice")
    } else {
        None
    };
    match missing {
        Some(param) => Err(ExchangeError::Rejected {
            http_status: 0,
            code: -1102,
            msg: format!(
                "Mandatory parameter '{param}' was not sent (a {} order needs it).",
                order.order_type.as_str()
            ),
        }),
        None => Ok(()),
    }
}
