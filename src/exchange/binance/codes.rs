//! Binance's error codes and their texts, written once, word for word as Binance sends them
//! (`errors.md` of the Spot API docs). The simulator refuses with them and `genesis-exchange`
//! answers with them, so the two cannot drift apart; the HTTP status stays with each caller.

/// One of Binance's fixed texts with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub code: i64,
    pub msg: &'static str,
}

/// The body of a Binance error, `{"code":-1121,"msg":"Invalid symbol."}`: a [`Known`] text, or
/// one of the texts with parameters below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: i64,
    pub msg: String,
}

impl From<Known> for ErrorBody {
    fn from(known: Known) -> ErrorBody {
        ErrorBody { code: known.code, msg: known.msg.to_string() }
    }
}

/// `-1000`: the request's outcome is unknown (Binance answers it with a 5xx).
pub const UNKNOWN: i64 = -1000;
/// `-1013`: a symbol filter refused the order.
pub const FILTER_FAILURE: i64 = -1013;
/// `-1021`: the timestamp is outside the receive window.
pub const INVALID_TIMESTAMP: i64 = -1021;
/// `-1100` .. `-1102`: a parameter malformed, sent twice, missing.
pub const ILLEGAL_CHARS: i64 = -1100;
pub const MANDATORY_PARAM_EMPTY_OR_MALFORMED: i64 = -1102;
/// `-2010`: the matching engine refused a new order.
pub const NEW_ORDER_REJECTED: i64 = -2010;
/// `-2011`: a cancel of an order that is not open.
pub const CANCEL_REJECTED: i64 = -2011;
/// `-2013`: a query of an order that does not exist.
pub const NO_SUCH_ORDER: i64 = -2013;

fn owned(code: i64, msg: String) -> ErrorBody {
    ErrorBody { code, msg }
}

// The texts without parameters.
pub const TIMEOUT: Known = Known {
    code: -1007,
    msg: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
};
pub const TIMESTAMP_OUTSIDE_WINDOW: Known =
    Known { code: INVALID_TIMESTAMP, msg: "Timestamp for this request is outside of the recvWindow." };
pub const TIMESTAMP_AHEAD: Known =
    Known { code: INVALID_TIMESTAMP, msg: "Timestamp for this request was 1000ms ahead of the server's time." };
pub const INVALID_SIGNATURE: Known = Known { code: -1022, msg: "Signature for this request is not valid." };
pub const DUPLICATE_PARAMETER: Known = Known { code: -1101, msg: "Duplicate values for a parameter detected." };
pub const INVALID_TIME_IN_FORCE: Known = Known { code: -1115, msg: "Invalid timeInForce." };
pub const INVALID_ORDER_TYPE: Known = Known { code: -1116, msg: "Invalid orderType." };
pub const INVALID_SIDE: Known = Known { code: -1117, msg: "Invalid side." };
pub const EMPTY_NEW_CLIENT_ORDER_ID: Known = Known { code: -1118, msg: "New client order ID was empty." };
pub const INVALID_INTERVAL: Known = Known { code: -1120, msg: "Invalid interval." };
pub const INVALID_SYMBOL: Known = Known { code: -1121, msg: "Invalid symbol." };
pub const INVALID_PARAMETER_COMBINATION: Known =
    Known { code: -1128, msg: "Combination of optional parameters invalid." };
pub const RECV_WINDOW_TOO_LARGE: Known = Known { code: -1131, msg: "recvWindow must be less than 60000" };
pub const INSUFFICIENT_BALANCE: Known =
    Known { code: NEW_ORDER_REJECTED, msg: "Account has insufficient balance for requested action." };
pub const DUPLICATE_ORDER: Known = Known { code: NEW_ORDER_REJECTED, msg: "Duplicate order sent." };
pub const WOULD_TRIGGER_IMMEDIATELY: Known =
    Known { code: NEW_ORDER_REJECTED, msg: "Order would trigger immediately." };
pub const WOULD_TAKE: Known = Known { code: NEW_ORDER_REJECTED, msg: "Order would immediately match and take." };
pub const UNKNOWN_ORDER: Known = Known { code: CANCEL_REJECTED, msg: "Unknown order sent." };
pub const ORDER_DOES_NOT_EXIST: Known = Known { code: NO_SUCH_ORDER, msg: "Order does not exist." };
pub const API_KEY_FORMAT_INVALID: Known = Known { code: -2014, msg: "API-key format invalid." };
pub const API_KEY_REJECTED: Known = Known { code: -2015, msg: "Invalid API-key, IP, or permissions for action." };
pub const CANCEL_REPLACE_PARTIALLY_FAILED: Known = Known { code: -2021, msg: "Order cancel-replace partially failed." };
pub const SUBSCRIPTION_ACTIVE: Known = Known { code: -2035, msg: "User Data Stream subscription already active." };
pub const SUBSCRIPTION_NOT_ACTIVE: Known = Known { code: -2036, msg: "User Data Stream subscription not active." };
pub const CANCEL_REPLACE_FAILED: Known = Known { code: -2022, msg: "Order cancel-replace failed." };

// The texts with parameters.

/// `-1000`, with the reason in brackets after Binance's text.
pub fn unknown_error(reason: &str) -> ErrorBody {
    owned(UNKNOWN, format!("An unknown error occurred while processing the request. ({reason})"))
}

/// `-1003` on a 429: over the request weight of a minute.
pub fn too_much_weight(limit: u64) -> ErrorBody {
    owned(
        -1003,
        format!(
            "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. Please use \
             WebSocket Streams for live updates to avoid polling the API."
        ),
    )
}

/// `-1003` on a 418: banned until `until_ms`.
pub fn banned(until_ms: i64) -> ErrorBody {
    owned(
        -1003,
        format!(
            "Way too much request weight used; IP banned until {until_ms}. Please use WebSocket Streams for live \
             updates to avoid bans."
        ),
    )
}

/// `-1015`: over the order count of a window (`per`: `10 SECOND` or `DAY`).
pub fn too_many_orders(limit: u64, per: &str) -> ErrorBody {
    owned(-1015, format!("Too many new orders; current limit is {limit} orders per {per}."))
}

/// `-1003` on a 429: over RAW_REQUESTS (errors.md's generic text is "Too many requests
/// queued."; this one names the limit as the weight's does).
pub fn too_many_requests(limit: u64) -> ErrorBody {
    owned(-1003, format!("Too many requests; current limit is {limit} requests per 5 MINUTE."))
}

/// `-1013`, naming the filter (`PRICE_FILTER`, `LOT_SIZE`, `NOTIONAL`, ...).
pub fn filter_failure(filter: &str) -> ErrorBody {
    owned(FILTER_FAILURE, format!("Filter failure: {filter}"))
}

pub fn illegal_characters(name: &str, legal_range: &str) -> ErrorBody {
    owned(ILLEGAL_CHARS, format!("Illegal characters found in parameter '{name}'; legal range is '{legal_range}'."))
}

pub fn mandatory_parameter(name: &str) -> ErrorBody {
    owned(
        MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// `-1102` for a pair of which one must be sent (`quantity` or `quoteOrderQty`).
pub fn one_of_two_parameters(first: &str, second: &str) -> ErrorBody {
    owned(
        MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        format!("Param '{first}' or '{second}' must be sent, but both were empty/null!"),
    )
}

/// `-1104`: parameters the endpoint does not read.
pub fn not_all_parameters_read(read: usize, sent: usize) -> ErrorBody {
    owned(-1104, format!("Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'."))
}

pub fn not_required(name: &str) -> ErrorBody {
    owned(-1106, format!("Parameter '{name}' sent when not required."))
}

/// `-1130`: a parameter with a value the endpoint does not take.
pub fn invalid_data(name: &str) -> ErrorBody {
    owned(-1130, format!("Data sent for parameter '{name}' is not valid."))
}

pub fn too_much_precision(name: &str) -> ErrorBody {
    owned(-1111, format!("Parameter '{name}' has too much precision."))
}

/// `-2010` for an order kind the symbol does not take (`"Iceberg"`, `"Stop loss"`, ...).
pub fn not_supported(kind: &str) -> ErrorBody {
    owned(NEW_ORDER_REJECTED, format!("{kind} orders are not supported for this symbol."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_texts_with_parameters_read_as_binance_writes_them() {
        let pairs = [
            (unknown_error("disk full"), -1000, "An unknown error occurred while processing the request. (disk full)"),
            (
                too_much_weight(6000),
                -1003,
                "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use \
                 WebSocket Streams for live updates to avoid polling the API.",
            ),
            (
                banned(7),
                -1003,
                "Way too much request weight used; IP banned until 7. Please use WebSocket Streams for live updates \
                 to avoid bans.",
            ),
            (too_many_orders(10, "10 SECOND"), -1015, "Too many new orders; current limit is 10 orders per 10 SECOND."),
            (too_many_requests(61000), -1003, "Too many requests; current limit is 61000 requests per 5 MINUTE."),
            (filter_failure("LOT_SIZE"), -1013, "Filter failure: LOT_SIZE"),
            (
                illegal_characters("symbol", "^[A-Z0-9-_.]{1,20}$"),
                -1100,
                "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
            ),
            (
                mandatory_parameter("side"),
                -1102,
                "Mandatory parameter 'side' was not sent, was empty/null, or malformed.",
            ),
            (
                one_of_two_parameters("quantity", "quoteOrderQty"),
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            ),
            (
                not_all_parameters_read(3, 4),
                -1104,
                "Not all sent parameters were read; read '3' parameter(s) but was sent '4'.",
            ),
            (not_required("price"), -1106, "Parameter 'price' sent when not required."),
            (too_much_precision("price"), -1111, "Parameter 'price' has too much precision."),
            (invalid_data("limit"), -1130, "Data sent for parameter 'limit' is not valid."),
            (not_supported("Iceberg"), -2010, "Iceberg orders are not supported for this symbol."),
        ];
        for (body, code, msg) in pairs {
            assert_eq!((body.code, body.msg.as_str()), (code, msg));
        }
    }

    #[test]
    fn a_fixed_text_becomes_an_error_body_unchanged() {
        assert_eq!(ErrorBody::from(INVALID_SYMBOL), ErrorBody { code: -1121, msg: "Invalid symbol.".into() });
    }
}
