//! The user data stream of the Binance WebSocket API (`/ws-api/v3`), on the wire, both ways.
//!
//! - The subscription request `userDataStream.subscribe.signature`: `apiKey` and `timestamp`,
//!   signed as every WebSocket API request is: the parameters other than `signature`, sorted by
//!   name, as `name=value` joined by `&`, HMAC-SHA256 with the secret, hex.
//! - Pushed events `{"subscriptionId":N,"event":{"e":"executionReport",...}}`: one per change
//!   of an order (NEW, TRADE, CANCELED, EXPIRED...), fields as in Binance's `user-data-stream.md`
//!   (`c` the client order id, or the cancel's id on a cancel, where `C` is the order's own).
//!
//! The serialising half serves the Binance-compatible server (`tools/exchange`).

use super::sign::Signer;
use super::wire::{fmt_decimal, WireError};
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;

/// The WebSocket API path.
pub const WS_API_PATH: &str = "/ws-api/v3";

/// The WebSocket API URL for a REST base URL: `http` → `ws`, `https` → `wss`, path `/ws-api/v3`.
/// Binance's own hosts serve the WebSocket API elsewhere, whatever port the REST URL names
/// (rest-api.md "General API Information", web-socket-api.md, demo-mode/general-info.md):
/// `api`, `api-gcp`, `api1`–`api4.binance.com` → `ws-api.binance.com:443`;
/// `testnet.binance.vision` → `ws-api.testnet.binance.vision`; `demo-api.binance.com` →
/// `demo-ws-api.binance.com`. Every other host (the simulator) keeps its host and port.
pub fn ws_api_url(base_url: &str) -> String {
    let base = base_url.trim().trim_end_matches('/');
    let base = base.strip_suffix("/api").unwrap_or(base);
    let (scheme, rest) = match base.split_once("://") {
        Some(("https", rest)) => ("wss", rest),
        Some((_, rest)) => ("ws", rest),
        None => ("ws", base),
    };
    let host = rest.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(rest, |(host, _)| host);
    let ws_host = match host.to_ascii_lowercase().as_str() {
        "api.binance.com"
        | "api-gcp.binance.com"
        | "api1.binance.com"
        | "api2.binance.com"
        | "api3.binance.com"
        | "api4.binance.com" => "ws-api.binance.com:443",
        "testnet.binance.vision" => "ws-api.testnet.binance.vision",
        "demo-api.binance.com" => "demo-ws-api.binance.com",
        _ => rest,
    };
    format!("{scheme}://{ws_host}{WS_API_PATH}")
}

/// The signed payload of a WebSocket API request: `name=value` sorted by name, joined by `&`.
pub fn signature_payload(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().filter(|(k, _)| *k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// `{"id":id,"method":"userDataStream.subscribe.signature","params":{apiKey,timestamp,signature}}`.
pub fn subscribe_signature_request(id: u64, api_key: &str, timestamp_ms: i64, signer: &Signer) -> String {
    let payload = signature_payload(&[("apiKey", api_key.to_string()), ("timestamp", timestamp_ms.to_string())]);
    let signature = signer.sign(payload.as_bytes(), b"");
    json!({
        "id": id,
        "method": "userDataStream.subscribe.signature",
        "params": {"apiKey": api_key, "timestamp": timestamp_ms, "signature": signature.as_str()},
    })
    .to_string()
}

/// One message the WebSocket API sends.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// The answer to a request: `status` 200 with `result`, or an error `code` and `msg`.
    Response { id: Value, status: u16, result: Value, error: Option<(i64, String)> },
    /// An order changed: the report, and the event time `E` (ms).
    Execution { report: OrderReport, event_ms: i64 },
    /// Another user data event (balances, list status, stream terminated...).
    Other(String),
}

#[derive(Deserialize)]
struct WireExecution {
    #[serde(rename = "E")]
    event_ms: i64,
    #[serde(rename = "s")]
    symbol: String,
    #[serde(rename = "c")]
    client_order_id: String,
    #[serde(rename = "C", default)]
    orig_client_order_id: Option<String>,
    #[serde(rename = "S")]
    side: String,
    #[serde(rename = "o")]
    order_type: String,
    #[serde(rename = "q")]
    orig_qty: Decimal,
    #[serde(rename = "p", default)]
    price: Option<Decimal>,
    #[serde(rename = "P", default)]
    stop_price: Option<Decimal>,
    #[serde(rename = "X")]
    status: String,
    #[serde(rename = "i")]
    order_id: i64,
    #[serde(rename = "l", default)]
    last_qty: Option<Decimal>,
    #[serde(rename = "z")]
    cum_qty: Decimal,
    #[serde(rename = "L", default)]
    last_price: Option<Decimal>,
    #[serde(rename = "n", default)]
    commission: Option<Decimal>,
    #[serde(rename = "N", default)]
    commission_asset: Option<String>,
    #[serde(rename = "T")]
    transact_ms: i64,
    #[serde(rename = "t", default)]
    trade_id: Option<i64>,
    /// The trade was on the maker side.
    #[serde(rename = "m", default)]
    is_maker: Option<bool>,
    #[serde(rename = "Z", default)]
    cum_quote: Option<Decimal>,
    /// Expiry reason, on an expired order's event.
    #[serde(rename = "eR", default)]
    expiry_reason: Option<String>,
}

/// An `executionReport` event object into an [`OrderReport`] (status `X`, executed `z`,
/// cumulative quote `Z`, a fill from `l`/`L`/`n`/`N`/`t` when it traded, time `T`).
pub fn parse_execution_report(event: &Value) -> Result<(OrderReport, i64), WireError> {
    WireExecution::deserialize(event).map_err(malformed_execution).and_then(WireExecution::into_report)
}

fn malformed_execution(e: serde_json::Error) -> WireError {
    WireError(format!("malformed executionReport: {e}"))
}

impl WireExecution {
    fn into_report(self) -> Result<(OrderReport, i64), WireError> {
        let side = Side::parse(&self.side).ok_or_else(|| WireError(format!("unknown side '{}'", self.side)))?;
        let order_type = ExchangeOrderType::parse(&self.order_type)
            .ok_or_else(|| WireError(format!("unknown order type '{}'", self.order_type)))?;
        let status = ExchangeStatus::parse(&self.status)
            .ok_or_else(|| WireError(format!("unknown order status '{}'", self.status)))?;
        let mut fills = Vec::new();
        if let (Some(qty), Some(price), Some(trade_id)) = (self.last_qty, self.last_price, self.trade_id) {
            if qty > Decimal::ZERO && trade_id >= 0 {
                let commission_asset = self.commission_asset.unwrap_or_default();
                fills.push(Fill {
                    is_maker: self.is_maker.unwrap_or(false),
                    time_ms: self.transact_ms,
                    ..Fill::new(price, qty, self.commission.unwrap_or(Decimal::ZERO), &commission_asset, trade_id)
                });
            }
        }
        // On a cancel `c` is the cancel request's id and `C` the order's own.
        let client_order_id = self.orig_client_order_id.filter(|c| !c.is_empty()).unwrap_or(self.client_order_id);
        let report = OrderReport {
            symbol: self.symbol,
            exchange_order_id: self.order_id,
            client_order_id,
            side,
            order_type,
            status,
            orig_qty: self.orig_qty,
            executed_qty: self.cum_qty,
            cum_quote_qty: self.cum_quote.unwrap_or(Decimal::ZERO),
            price: self.price.unwrap_or(Decimal::ZERO),
            stop_price: self.stop_price.unwrap_or(Decimal::ZERO),
            fills,
            time_ms: self.transact_ms,
            expiry_reason: self.expiry_reason,
        };
        Ok((report, self.event_ms))
    }
}

/// A message's outer shape. The event stays raw text: its type is read first, then the text
/// goes straight into its own struct. (Through a `Value`, the stream thread spent most of its
/// time building and reading maps: runs of ~145 µs at p50 at 500 orders/s.)
#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    id: Value,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<Value>,
}

/// Only the event's type: every other field is skipped, not stored.
#[derive(Deserialize)]
struct EventKind<'a> {
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
}

/// One text message of the WebSocket API.
pub fn parse_ws_message(text: &str) -> Result<WsMessage, WireError> {
    let message: WireMessage<'_> =
        serde_json::from_str(text).map_err(|e| WireError(format!("malformed message: {e}")))?;
    if let Some(event) = message.event {
        let kind = serde_json::from_str::<EventKind<'_>>(event.get()).ok().and_then(|k| k.e);
        return match kind.as_deref() {
            Some("executionReport") => serde_json::from_str::<WireExecution>(event.get())
                .map_err(malformed_execution)
                .and_then(WireExecution::into_report)
                .map(|(report, event_ms)| WsMessage::Execution { report, event_ms }),
            Some(other) => Ok(WsMessage::Other(other.to_string())),
            None => Err(WireError("event without a type".into())),
        };
    }
    let status = message.status.as_ref().and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
    let Some(status) = status else {
        return Err(WireError("message is neither an event nor a response".into()));
    };
    let error = message.error.map(|e| {
        (e.get("code").and_then(Value::as_i64).unwrap_or(0), e.get("msg").and_then(Value::as_str).unwrap_or("").into())
    });
    Ok(WsMessage::Response { id: message.id, status, result: message.result, error })
}

/// What happened to an order, for the server's push: a placement, a trade (fills in the
/// report), or a cancel / expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Placed,
    Updated,
}

fn execution_type(status: ExchangeStatus) -> &'static str {
    match status {
        ExchangeStatus::Canceled | ExchangeStatus::PendingCancel => "CANCELED",
        ExchangeStatus::Expired | ExchangeStatus::ExpiredInMatch => "EXPIRED",
        ExchangeStatus::Rejected => "REJECTED",
        ExchangeStatus::PartiallyFilled | ExchangeStatus::Filled => "TRADE",
        ExchangeStatus::New | ExchangeStatus::PendingNew => "NEW",
    }
}

#[allow(clippy::too_many_arguments)]
fn execution_json(
    r: &OrderReport,
    event_ms: i64,
    x: &str,
    status: ExchangeStatus,
    fill: Option<&Fill>,
    cum_qty: Decimal,
    cum_quote: Decimal,
    cancel_client_order_id: Option<&str>,
) -> Value {
    let (c, orig) = match cancel_client_order_id {
        Some(cancel) => (cancel, r.client_order_id.as_str()),
        None => (r.client_order_id.as_str(), ""),
    };
    let zero = fmt_decimal(Decimal::ZERO);
    let mut event = json!({
        "e": "executionReport",
        "E": event_ms,
        "s": r.symbol,
        "c": c,
        "S": r.side.as_str(),
        "o": r.order_type.as_str(),
        "f": "GTC",
        "q": fmt_decimal(r.orig_qty),
        "p": fmt_decimal(r.price),
        "P": fmt_decimal(r.stop_price),
        "F": zero,
        "g": -1,
        "C": orig,
        "x": x,
        "X": status.as_str(),
        "r": "NONE",
        "i": r.exchange_order_id,
        "l": fill.map_or(zero.clone(), |f| fmt_decimal(f.qty)),
        "z": fmt_decimal(cum_qty),
        "L": fill.map_or(zero.clone(), |f| fmt_decimal(f.price)),
        "n": fill.map_or("0".to_string(), |f| fmt_decimal(f.commission)),
        "N": fill.map(|f| f.commission_asset.clone()),
        "T": r.time_ms,
        "t": fill.map_or(-1, |f| f.trade_id),
        "I": 0,
        "w": status.is_open(),
        "m": false,
        "M": false,
        "O": r.time_ms,
        "Z": fmt_decimal(cum_quote),
        "Y": fill.map_or(zero.clone(), |f| fmt_decimal(f.price * f.qty)),
        "Q": zero,
        "W": r.time_ms,
        "V": "NONE",
    });
    // user-data-stream.md: `eR` "appears when the order has expired".
    if let (Some(reason), ExchangeStatus::Expired | ExchangeStatus::ExpiredInMatch) = (&r.expiry_reason, status) {
        event["eR"] = Value::String(reason.clone());
    }
    event
}

/// The `executionReport` events Binance sends for one change of an order: NEW for a
/// placement, one TRADE per fill (`z`/`Z` cumulative up to that fill, status
/// PARTIALLY_FILLED until the last), CANCELED (with the cancel's id) or EXPIRED.
pub fn execution_reports_json(
    r: &OrderReport,
    change: Change,
    event_ms: i64,
    cancel_client_order_id: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::new();
    if change == Change::Placed {
        out.push(execution_json(r, event_ms, "NEW", ExchangeStatus::New, None, Decimal::ZERO, Decimal::ZERO, None));
    }
    if r.fills.is_empty() {
        if change == Change::Updated || !r.status.is_open() {
            let cancel = cancel_client_order_id.filter(|_| r.status == ExchangeStatus::Canceled);
            out.push(execution_json(
                r,
                event_ms,
                execution_type(r.status),
                r.status,
                None,
                r.executed_qty,
                r.cum_quote_qty,
                cancel,
            ));
        }
        return out;
    }
    // Cumulative amounts before this report's fills.
    let mut cum_qty = r.executed_qty - r.fills.iter().map(|f| f.qty).sum::<Decimal>();
    let mut cum_quote = r.cum_quote_qty - r.fills.iter().map(|f| f.price * f.qty).sum::<Decimal>();
    for (i, fill) in r.fills.iter().enumerate() {
        cum_qty += fill.qty;
        cum_quote += fill.price * fill.qty;
        let last = i + 1 == r.fills.len();
        let status = if last { r.status } else { ExchangeStatus::PartiallyFilled };
        let quote = if last { r.cum_quote_qty } else { cum_quote };
        out.push(execution_json(r, event_ms, "TRADE", status, Some(fill), cum_qty, quote, None));
    }
    out
}

/// A pushed event: `{"subscriptionId":N,"event":{...}}`.
pub fn event_message(subscription_id: u64, event: &Value) -> String {
    json!({"subscriptionId": subscription_id, "event": event}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::binance::{sign, Secret};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn stop(status: ExchangeStatus, executed: &str, fills: Vec<Fill>) -> OrderReport {
        OrderReport {
            symbol: "ETHUSDT".into(),
            exchange_order_id: 7,
            client_order_id: "abc-S-1".into(),
            side: Side::Sell,
            order_type: ExchangeOrderType::StopLossLimit,
            status,
            orig_qty: d("0.0099"),
            executed_qty: d(executed),
            cum_quote_qty: fills.iter().map(|f| f.price * f.qty).sum(),
            price: d("2400"),
            stop_price: d("2410"),
            fills,
            time_ms: 1_700_000_000_123,
            expiry_reason: None,
        }
    }

    fn fill(qty: &str, price: &str, id: i64) -> Fill {
        Fill::new(d(price), d(qty), d("0.01"), "USDT", id)
    }

    #[test]
    fn ws_url_follows_the_rest_base_url() {
        assert_eq!(ws_api_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws-api/v3");
        assert_eq!(ws_api_url("http://127.0.0.1:8080/api/"), "ws://127.0.0.1:8080/ws-api/v3");
        assert_eq!(ws_api_url("https://testnet.binance.vision"), "wss://ws-api.testnet.binance.vision/ws-api/v3");
        assert_eq!(ws_api_url("https://api.binance.com"), "wss://ws-api.binance.com:443/ws-api/v3");
        assert_eq!(ws_api_url("127.0.0.1:8080"), "ws://127.0.0.1:8080/ws-api/v3");
    }

    #[test]
    fn ws_url_of_every_binance_rest_host_and_explicit_ports() {
        for rest in [
            "https://api.binance.com:443",
            "https://api-gcp.binance.com",
            "https://api1.binance.com",
            "https://api2.binance.com/api",
            "https://api3.binance.com",
            "https://API4.binance.com:443/",
        ] {
            assert_eq!(ws_api_url(rest), "wss://ws-api.binance.com:443/ws-api/v3", "{rest}");
        }
        assert_eq!(ws_api_url("https://testnet.binance.vision:443"), "wss://ws-api.testnet.binance.vision/ws-api/v3");
        assert_eq!(ws_api_url("https://demo-api.binance.com/api"), "wss://demo-ws-api.binance.com/ws-api/v3");
        assert_eq!(ws_api_url("http://localhost:9"), "ws://localhost:9/ws-api/v3");
        assert_eq!(ws_api_url("http://[::1]:8080"), "ws://[::1]:8080/ws-api/v3");
    }

    #[test]
    fn subscription_is_signed_over_sorted_parameters() {
        let signer = Signer::new(&Secret::new("secret"));
        let text = subscribe_signature_request(3, "key", 1_700_000_000_000, &signer);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["method"], "userDataStream.subscribe.signature");
        assert_eq!(v["params"]["apiKey"], "key");
        let payload = "apiKey=key&timestamp=1700000000000";
        assert!(sign::verify("secret", payload.as_bytes(), b"", v["params"]["signature"].as_str().unwrap()));
        assert_eq!(
            signature_payload(&[("timestamp", "1".into()), ("signature", "x".into()), ("apiKey", "k".into())]),
            "apiKey=k&timestamp=1"
        );
    }

    #[test]
    fn a_fill_in_two_trades_is_two_events_and_each_parses_back() {
        let r = stop(ExchangeStatus::Filled, "0.0099", vec![fill("0.004", "2405", 11), fill("0.0059", "2404", 12)]);
        let events = execution_reports_json(&r, Change::Updated, 1_700_000_000_130, None);
        assert_eq!(events.len(), 2);
        let (first, e) = parse_execution_report(&events[0]).unwrap();
        assert_eq!(e, 1_700_000_000_130);
        assert_eq!(first.status, ExchangeStatus::PartiallyFilled);
        assert_eq!(first.executed_qty, d("0.004"));
        assert_eq!(first.fills, vec![Fill { time_ms: first.time_ms, ..fill("0.004", "2405", 11) }]);
        let (last, _) = parse_execution_report(&events[1]).unwrap();
        assert_eq!(last.status, ExchangeStatus::Filled);
        assert_eq!(last.executed_qty, d("0.0099"));
        assert_eq!(last.cum_quote_qty, r.cum_quote_qty);
        assert_eq!(last.time_ms, r.time_ms);
        assert_eq!((last.client_order_id.as_str(), last.order_type), ("abc-S-1", ExchangeOrderType::StopLossLimit));
        assert_eq!(last.stop_price, d("2410"));
    }

    #[test]
    fn a_cancel_names_the_order_in_big_c_and_parses_to_the_order_id() {
        let r = stop(ExchangeStatus::Canceled, "0", vec![]);
        let events = execution_reports_json(&r, Change::Updated, 1, Some("cancel123"));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["c"], "cancel123");
        assert_eq!(events[0]["C"], "abc-S-1");
        assert_eq!(events[0]["x"], "CANCELED");
        let msg = parse_ws_message(&event_message(0, &events[0])).unwrap();
        let WsMessage::Execution { report, .. } = msg else { panic!("{msg:?}") };
        assert_eq!(report.client_order_id, "abc-S-1");
        assert_eq!(report.status, ExchangeStatus::Canceled);
        assert!(report.fills.is_empty());
    }

    #[test]
    fn an_expired_orders_event_carries_its_expiry_reason_and_parses_back() {
        let fill = Fill::new(d("2405"), d("0.004"), d("0"), "USDT", 11);
        let r = OrderReport {
            expiry_reason: Some("INSUFFICIENT_LIQUIDITY".into()),
            ..stop(ExchangeStatus::Expired, "0.004", vec![fill])
        };
        let events = execution_reports_json(&r, Change::Updated, 1, None);
        assert_eq!(events.last().unwrap()["eR"], "INSUFFICIENT_LIQUIDITY");
        let (back, _) = parse_execution_report(events.last().unwrap()).unwrap();
        assert_eq!(back.expiry_reason.as_deref(), Some("INSUFFICIENT_LIQUIDITY"));
        // Only on the event that says EXPIRED.
        let open = OrderReport { status: ExchangeStatus::New, ..r };
        assert!(execution_reports_json(&open, Change::Placed, 1, None)[0].get("eR").is_none());
    }

    #[test]
    fn a_placement_is_new_and_responses_parse() {
        let r = stop(ExchangeStatus::New, "0", vec![]);
        let events = execution_reports_json(&r, Change::Placed, 1, None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["x"], "NEW");
        let ok = parse_ws_message(r#"{"id":1,"status":200,"result":{"subscriptionId":0}}"#).unwrap();
        assert!(matches!(ok, WsMessage::Response { status: 200, ref result, .. } if result["subscriptionId"] == 0));
        let err = parse_ws_message(
            r#"{"id":1,"status":400,"error":{"code":-1022,"msg":"Signature for this request is not valid."}}"#,
        )
        .unwrap();
        assert!(matches!(err, WsMessage::Response { status: 400, error: Some((-1022, _)), .. }));
        assert!(parse_ws_message("{}").is_err());
    }

    #[test]
    fn an_update_without_fills_is_one_event_whose_execution_type_follows_the_status() {
        for (status, execution_type) in [
            (ExchangeStatus::New, "NEW"),
            (ExchangeStatus::PendingNew, "NEW"),
            (ExchangeStatus::PartiallyFilled, "TRADE"),
            (ExchangeStatus::Filled, "TRADE"),
            (ExchangeStatus::Canceled, "CANCELED"),
            (ExchangeStatus::PendingCancel, "CANCELED"),
            (ExchangeStatus::Rejected, "REJECTED"),
            (ExchangeStatus::Expired, "EXPIRED"),
            (ExchangeStatus::ExpiredInMatch, "EXPIRED"),
        ] {
            let events = execution_reports_json(&stop(status, "0", vec![]), Change::Updated, 1, None);
            assert_eq!(events.len(), 1, "{status:?}");
            assert_eq!(events[0]["x"], execution_type, "{status:?}");
            assert_eq!(events[0]["X"], status.as_str(), "{status:?}");
        }
    }

    #[test]
    fn events_other_than_execution_reports_are_named_by_their_type() {
        let terminated = r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#;
        assert_eq!(parse_ws_message(terminated), Ok(WsMessage::Other("eventStreamTerminated".into())));
        assert_eq!(
            parse_ws_message(r#"{"subscriptionId":0,"event":{"E":1728973001334}}"#),
            Err(WireError("event without a type".into()))
        );
    }

    #[test]
    fn a_pushed_report_with_a_bad_amount_is_refused_with_the_field_named() {
        let pushed = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"x","S":"BUY","o":"MARKET","q":"lots","X":"NEW","i":1,"z":"0","T":1}}"#;
        let WireError(message) = parse_ws_message(pushed).unwrap_err();
        assert!(message.starts_with("malformed executionReport:"), "{message}");
    }

    #[test]
    fn text_that_is_not_a_message_object_is_an_error_not_a_panic() {
        for junk in
            ["", "[]", "5", "null", r#"{"event":5}"#, r#"{"status":"ok"}"#, r#"{"status":70000}"#, "{\"event\":"]
        {
            assert!(parse_ws_message(junk).is_err(), "{junk:?}");
        }
    }
}
