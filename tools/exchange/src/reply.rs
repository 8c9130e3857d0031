//! What a request is and what its answer is, with no sockets: [`HttpRequest`] as the server read
//! it, [`Reply`] (status, headers, JSON, and what the server does after), and [`ApiError`], a
//! Binance error answer (`errors.md`).

use genesis::exchange::binance::wire::error_json;
use genesis::exchange::sim::SimError;
use serde_json::Value;
use std::time::Duration;

pub const MSG_TIMEOUT: &str =
    "Timeout waiting for response from backend server. Send status unknown; execution status unknown.";
pub const MSG_INSUFFICIENT: &str = "Account has insufficient balance for requested action.";

/// A Binance error answer: HTTP status, code, message, `Retry-After` for 429/418, and the
/// `data` object a failed cancel-replace carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: i64,
    pub msg: String,
    pub retry_after_secs: Option<u64>,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: i64, msg: impl Into<String>) -> ApiError {
        ApiError { status, code, msg: msg.into(), retry_after_secs: None, data: None }
    }
    /// HTTP 400.
    pub fn bad(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError::new(400, code, msg)
    }
    pub fn mandatory(name: &str) -> ApiError {
        ApiError::bad(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
    }
    pub fn illegal(name: &str, range: &str) -> ApiError {
        ApiError::bad(-1100, format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."))
    }
    pub fn not_required(name: &str) -> ApiError {
        ApiError::bad(-1106, format!("Parameter '{name}' sent when not required."))
    }
    pub(crate) fn invalid_symbol() -> ApiError {
        ApiError::bad(-1121, "Invalid symbol.")
    }
    pub(crate) fn too_much_weight(retry_after_secs: u64, limit: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                429,
                -1003,
                format!(
                    "Too much request weight used; current limit is {limit} request \
                     weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid \
                     polling the API."
                ),
            )
        }
    }
    pub(crate) fn banned(until_ms: i64, retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                418,
                -1003,
                format!(
                    "Way too much request weight used; IP banned until {until_ms}. Please use \
                     WebSocket Streams for live updates to avoid bans."
                ),
            )
        }
    }
    /// `per`: `10 SECOND` or `DAY`.
    pub(crate) fn too_many_orders(limit: u64, per: &str, retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(429, -1015, format!("Too many new orders; current limit is {limit} orders per {per}."))
        }
    }
    /// RAW_REQUESTS (errors.md -1003: "Too many requests queued." is the generic text; this
    /// one names the limit as the weight's does).
    pub(crate) fn too_many_requests(retry_after_secs: u64, limit: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(429, -1003, format!("Too many requests; current limit is {limit} requests per 5 MINUTE."))
        }
    }

    pub fn reply(&self) -> Reply {
        let mut body = error_json(self.code, &self.msg);
        if let Some(data) = &self.data {
            body["data"] = data.clone();
        }
        let mut reply = Reply::json(self.status, body);
        if let Some(secs) = self.retry_after_secs {
            reply.headers.push(("Retry-After", secs.to_string()));
        }
        reply
    }
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> ApiError {
        ApiError::new(e.http_status, e.code, e.msg)
    }
}

/// What the server does once the reply is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Respond,
    /// Close the connection without writing anything.
    Drop,
    /// Wait, then respond.
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub after: After,
}

impl Reply {
    pub fn json(status: u16, value: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: value.to_string(), after: After::Respond }
    }
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP request as the server read it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    /// The raw query string, as received (no `?`).
    pub query: &'a str,
    pub body: &'a str,
    pub content_type: Option<&'a str>,
    /// `X-MBX-APIKEY`.
    pub api_key: Option<&'a str>,
    /// The peer is on the loopback interface (required for `/sim/*`).
    pub loopback: bool,
}
