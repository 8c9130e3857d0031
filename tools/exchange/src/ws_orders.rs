//! The WebSocket API's trading methods (`order.place`, `order.status`, `order.cancel`,
//! `openOrders.cancelAll`, `order.cancelReplace`), answered by the REST handlers: each request
//! is checked for its key and HMAC signature (the parameters but `signature`, sorted by name,
//! `name=value` joined by `&`, as web-socket-api.md "SIGNED request example (HMAC)" says), then
//! becomes the REST request it stands for, so the weight, the fault plan, the timestamp, the
//! order count and the matching are the REST side's, one code path for both.
//!
//! The answer: `{"id","status","result"}` or `{"id","status","error":{"code","msg"[,"data"]}}`,
//! with `rateLimits` (REQUEST_WEIGHT always; ORDERS for requests that place orders) unless
//! `returnRateLimits` is `false`. A 429 / 418 carries `error.data` `{serverTime, retryAfter}`
//! (`retryAfter`: when to retry, epoch ms). A drop-after-execute fault closes the connection
//! with no answer; a delay fault answers late.

use crate::api::{After, ApiError, App, HttpRequest, Reply};
use genesis::exchange::binance::sign::{verify, QueryBuilder};
use genesis::exchange::binance::user_data::signature_payload;
use serde_json::{json, Map, Value};

/// The REST request a trading method stands for: (HTTP method, path).
pub fn route(method: &str) -> Option<(&'static str, &'static str)> {
    match method.strip_prefix("v3/").unwrap_or(method) {
        "order.place" => Some(("POST", "/api/v3/order")),
        "order.status" => Some(("GET", "/api/v3/order")),
        "order.cancel" => Some(("DELETE", "/api/v3/order")),
        "openOrders.cancelAll" => Some(("DELETE", "/api/v3/openOrders")),
        "order.cancelReplace" => Some(("POST", "/api/v3/order/cancelReplace")),
        _ => None,
    }
}

/// A parameter's text: a string as it is, anything else as JSON writes it.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key and the signature of a signed request.
fn check_signature(app: &App, params: &Map<String, Value>) -> Result<(), ApiError> {
    let creds = app.credentials();
    let api_key = params.get("apiKey").map(text).ok_or_else(|| ApiError::mandatory("apiKey"))?;
    if api_key != creds.api_key {
        return Err(ApiError::new(401, -2015, "Invalid API-key, IP, or permissions for action."));
    }
    let signature = params.get("signature").map(text).ok_or_else(|| ApiError::mandatory("signature"))?;
    let pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
    let payload = signature_payload(&pairs);
    if !verify(&creds.api_secret, payload.as_bytes(), b"", &signature) {
        return Err(ApiError::bad(-1022, "Signature for this request is not valid."));
    }
    Ok(())
}

/// The `rateLimits` of an answer, from the counters the REST reply carries in its headers.
fn rate_limits(app: &App, reply: &Reply) -> Value {
    let (order_limit, weight_limit) = app.limits_now();
    let header = |name: &str| {
        reply.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let limit = |kind: &str, interval: &str, num: u64, limit: u64, count: u64| json!({"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit, "count": count});
    let mut out = Vec::new();
    if let Some(count) = header("X-MBX-ORDER-COUNT-10S") {
        out.push(limit("ORDERS", "SECOND", 10, order_limit, count));
    }
    if let Some(count) = header("X-MBX-ORDER-COUNT-1D") {
        out.push(limit("ORDERS", "DAY", 1, crate::limits::ORDER_LIMIT_1D, count));
    }
    if let Some(count) = header("X-MBX-USED-WEIGHT-1M") {
        out.push(limit("REQUEST_WEIGHT", "MINUTE", 1, weight_limit, count));
    }
    Value::Array(out)
}

/// The WebSocket API answer for a REST reply.
fn answer(app: &App, id: &Value, reply: &Reply, with_limits: bool, server_now_ms: i64) -> String {
    let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    let mut out = json!({"id": id, "status": reply.status});
    if reply.status == 200 {
        out["result"] = body;
    } else {
        let mut error = body;
        let retry_after =
            reply.headers.iter().find(|(n, _)| *n == "Retry-After").and_then(|(_, v)| v.parse::<i64>().ok());
        if let Some(secs) = retry_after {
            let at = server_now_ms.saturating_add(secs.saturating_mul(1000));
            error["data"] = json!({"serverTime": server_now_ms, "retryAfter": at});
        }
        out["error"] = error;
    }
    if with_limits {
        out["rateLimits"] = rate_limits(app, reply);
    }
    out.to_string()
}

/// One trading request (`http`: its REST method and path, from [`route`]); the answer to send
/// and what to do with it.
pub fn request(
    app: &App,
    id: &Value,
    http: (&str, &str),
    params: &Map<String, Value>,
    local_now_ms: i64,
) -> (String, After) {
    let with_limits = params.get("returnRateLimits") != Some(&Value::Bool(false));
    if let Err(e) = check_signature(app, params) {
        let reply = e.reply();
        return (answer(app, id, &reply, with_limits, app.server_now_ms(local_now_ms)), After::Respond);
    }
    let mut query = String::with_capacity(256);
    {
        let mut q = QueryBuilder::new(&mut query);
        for (name, value) in params {
            if !matches!(name.as_str(), "apiKey" | "signature" | "returnRateLimits") {
                q.str(name, &text(value));
            }
        }
    }
    let req = HttpRequest {
        method: http.0,
        path: http.1,
        query: &query,
        body: "",
        content_type: None,
        api_key: None,
        loopback: false,
    };
    let reply = app.respond_verified(&req, local_now_ms);
    (answer(app, id, &reply, with_limits, app.server_now_ms(local_now_ms)), reply.after)
}
