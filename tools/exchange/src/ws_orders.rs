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
/// and what to do with it. On a `logged_on` session (`session.logon`) a request without a
/// signature is the session's key's.
pub fn request(
    app: &App,
    id: &Value,
    http: (&str, &str),
    params: &Map<String, Value>,
    local_now_ms: i64,
    logged_on: bool,
) -> (String, After) {
    let with_limits = params.get("returnRateLimits").map(text).as_deref() != Some("false");
    let session_signed = logged_on && !params.contains_key("signature");
    if let Err(e) = if session_signed { Ok(()) } else { check_signature(app, params) } {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::faults::Fault;
    use genesis::exchange::binance::{Secret, Signer};
    use genesis::exchange::sim::{SimConfig, Simulator};

    const KEY: &str = "test-key";
    const SECRET: &str = "test-secret";
    const NOW: i64 = 1_700_000_040_000;

    fn app(faults: &[&str]) -> App {
        App::new(
            Simulator::new(SimConfig::default()),
            Credentials { api_key: KEY.into(), api_secret: SECRET.into() },
            50,
            faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
            7,
        )
    }

    /// `params` with apiKey and timestamp, signed with `secret` as the engine signs.
    fn signed(params: &[(&str, &str)], secret: &str) -> Map<String, Value> {
        let mut pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
        pairs.push(("apiKey", KEY.into()));
        pairs.push(("timestamp", NOW.to_string()));
        let signature = Signer::new(&Secret::from(secret)).sign(signature_payload(&pairs).as_bytes(), b"");
        let mut map: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
        map.insert("timestamp".into(), json!(NOW));
        map.insert("signature".into(), json!(signature.as_str()));
        map
    }

    fn call(app: &App, method: &str, params: &Map<String, Value>) -> (Value, After) {
        let (text, after) = request(app, &json!(7), route(method).unwrap(), params, NOW, false);
        (serde_json::from_str(&text).unwrap(), after)
    }

    fn place(app: &App, id: &str) -> (Value, After) {
        let market = [
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.001"),
            ("newClientOrderId", id),
        ];
        let params = signed(&market, SECRET);
        call(app, "order.place", &params)
    }

    #[test]
    fn every_trading_method_is_routed_to_its_rest_endpoint() {
        assert_eq!(route("order.place"), Some(("POST", "/api/v3/order")));
        assert_eq!(route("v3/order.status"), Some(("GET", "/api/v3/order")));
        assert_eq!(route("order.cancel"), Some(("DELETE", "/api/v3/order")));
        assert_eq!(route("openOrders.cancelAll"), Some(("DELETE", "/api/v3/openOrders")));
        assert_eq!(route("order.cancelReplace"), Some(("POST", "/api/v3/order/cancelReplace")));
        assert_eq!(route("order.amend.keepPriority"), None);
    }

    #[test]
    fn a_signed_placement_answers_its_result_with_the_rate_limits() {
        let app = app(&[]);
        let (answer, after) = place(&app, "ws-1");
        assert_eq!(after, After::Respond);
        assert_eq!((answer["id"].clone(), answer["status"].clone()), (json!(7), json!(200)));
        assert_eq!(answer["result"]["clientOrderId"], "ws-1");
        assert_eq!(answer["result"]["status"], "FILLED");
        let kinds: Vec<(String, String)> = answer["rateLimits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["rateLimitType"].as_str().unwrap().into(), l["interval"].as_str().unwrap().into()))
            .collect();
        let expected = [("ORDERS", "SECOND"), ("ORDERS", "DAY"), ("REQUEST_WEIGHT", "MINUTE")];
        assert_eq!(kinds, expected.map(|(a, b)| (a.to_string(), b.to_string())));
        let status =
            signed(&[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-1"), ("returnRateLimits", "false")], SECRET);
        let (answer, _) = call(&app, "order.status", &status);
        assert_eq!(answer["result"]["status"], "FILLED");
        assert!(answer.get("rateLimits").is_none(), "returnRateLimits=false: {answer}");
    }

    #[test]
    fn a_wrong_key_or_signature_is_refused_before_anything_executes() {
        let app = app(&[]);
        let pairs = [("symbol", "BTCUSDT")];
        let (answer, _) = call(&app, "openOrders.cancelAll", &signed(&pairs, "not-the-secret"));
        assert_eq!((answer["status"].clone(), answer["error"]["code"].clone()), (json!(400), json!(-1022)));
        let mut wrong_key = signed(&pairs, SECRET);
        wrong_key.insert("apiKey".into(), json!("someone-else"));
        let (answer, _) = call(&app, "openOrders.cancelAll", &wrong_key);
        assert_eq!((answer["status"].clone(), answer["error"]["code"].clone()), (json!(401), json!(-2015)));
        let mut unsigned = signed(&pairs, SECRET);
        unsigned.remove("signature");
        let (answer, _) = call(&app, "openOrders.cancelAll", &unsigned);
        assert_eq!(answer["error"]["code"], -1102);
        unsigned.remove("apiKey");
        let (answer, _) = call(&app, "openOrders.cancelAll", &unsigned);
        assert_eq!(answer["error"]["code"], -1102);
    }

    #[test]
    fn the_rest_fault_plan_applies_a_429_says_when_to_retry_and_a_drop_is_a_drop() {
        let app = app(&["place:429:7", "place:drop-after-execute"]);
        let (answer, after) = place(&app, "ws-2");
        assert_eq!(after, After::Respond);
        assert_eq!((answer["status"].clone(), answer["error"]["code"].clone()), (json!(429), json!(-1003)));
        let data = &answer["error"]["data"];
        assert_eq!(data["retryAfter"].as_i64().unwrap() - data["serverTime"].as_i64().unwrap(), 7000);
        let (_, after) = place(&app, "ws-3");
        assert_eq!(after, After::Drop, "executed, answer never sent");
        let status = signed(&[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-3")], SECRET);
        assert_eq!(call(&app, "order.status", &status).0["result"]["status"], "FILLED");
    }
}
