//! What a failed request means for the caller: pure classification of transport errors and
//! HTTP responses into [`ExchangeError`].
//!
//! | what happened | error |
//! |---|---|
//! | bad URL, DNS failure, connection refused / unreachable, connect or TLS handshake timeout | `NotSent` |
//! | timeout after the request went out, connection dropped mid-response, garbled HTTP | `Unknown` |
//! | any 5xx (a 5xx -1008 included: its reason says "server busy"); any body code -1000, -1001, -1006, -1007 | `Unknown` |
//! | 429, 418 | `RateLimited` (`Retry-After` seconds; 1 s / 120 s when absent; `banned` on 418) |
//! | 403 (Binance's WAF: a rate-limit violation or a security block, never executed) | `RateLimited` (`Retry-After`, else 60 s) |
//! | 4xx with -1008 (server busy: "try again in a few minutes") | `RateLimited` (`Retry-After`, else 60 s) |
//! | other 4xx | `Rejected` (Binance code and message; code 0 when the body has none) |
//! | 2xx whose body does not parse | `Unknown` (decided by the caller) |

use super::wire::parse_error;
use crate::exchange::ExchangeError;
use std::io::ErrorKind;
use std::time::Duration;

/// Wait after a 429 that carries no `Retry-After`.
pub const DEFAULT_RETRY_AFTER_429: Duration = Duration::from_secs(1);
/// Wait after a 418 (IP ban) that carries no `Retry-After`: the shortest ban.
pub const DEFAULT_RETRY_AFTER_418: Duration = Duration::from_secs(120);

/// Wait after a 403 (WAF) or a 4xx -1008 (server busy) that carries no `Retry-After`.
pub const DEFAULT_RETRY_AFTER_REFUSED: Duration = Duration::from_secs(60);
/// SERVER_BUSY: "Server is currently overloaded with other requests."
pub const SERVER_BUSY: i64 = -1008;

/// Binance codes that leave the outcome unknown whatever the HTTP status.
pub const UNKNOWN_OUTCOME_CODES: [i64; 4] = [-1000, -1001, -1006, -1007];

/// A transport failure (no HTTP response was read).
pub fn classify_transport(error: &ureq::Error) -> ExchangeError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let not_sent = |reason: String| ExchangeError::NotSent { reason };
    let unknown = |reason: String| ExchangeError::Unknown { reason };
    match error {
        E::Timeout(t @ (T::Resolve | T::Connect)) => not_sent(format!("timeout: {t:?}")),
        E::Timeout(t) => unknown(format!("timeout after the request was sent: {t:?}")),
        E::HostNotFound => not_sent("host not found".into()),
        E::ConnectionFailed => not_sent("connection failed".into()),
        E::BadUri(_) => not_sent("bad URL".into()),
        E::Http(_) => not_sent("invalid request".into()),
        E::InvalidProxyUrl => not_sent("invalid proxy URL".into()),
        E::ConnectProxyFailed(_) => not_sent("proxy CONNECT failed".into()),
        E::RequireHttpsOnly(_) => not_sent("https required".into()),
        E::Tls(msg) => not_sent(format!("TLS: {msg}")),
        E::Rustls(e) => not_sent(format!("TLS: {e}")),
        E::Pem(_) => not_sent("TLS certificates".into()),
        E::TlsRequired => not_sent("TLS required".into()),
        E::Io(e) => match e.kind() {
            // The TCP connection was never made: nothing left the machine.
            ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
            | ErrorKind::AddrNotAvailable
            | ErrorKind::AddrInUse => not_sent(format!("connect: {e}")),
            _ => unknown(format!("connection lost: {e}")),
        },
        E::Protocol(e) => unknown(format!("bad HTTP response: {e}")),
        E::LargeResponseHeader(..) => unknown("response header too large".into()),
        E::BodyExceedsLimit(limit) => unknown(format!("response body over {limit} bytes")),
        other => unknown(format!("transport: {other}")),
    }
}

/// An HTTP response: `None` for a 2xx (the caller parses the body; if that fails the outcome
/// is `Unknown`), otherwise the error it stands for. `retry_after` is the raw `Retry-After`.
pub fn classify_response(status: u16, retry_after: Option<&str>, body: &str) -> Option<ExchangeError> {
    if (200..300).contains(&status) {
        return None;
    }
    let api = parse_error(body);
    let (code, msg) = match &api {
        Some((code, msg)) => (*code, msg.clone()),
        None => (0, snippet(body)),
    };
    if status == 429 || status == 418 {
        let banned = status == 418;
        let default = if banned { DEFAULT_RETRY_AFTER_418 } else { DEFAULT_RETRY_AFTER_429 };
        let retry_after =
            retry_after.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs).unwrap_or(default);
        return Some(ExchangeError::RateLimited { retry_after, banned, code, msg });
    }
    let refused_for_now = status == 403 || ((400..500).contains(&status) && code == SERVER_BUSY);
    if refused_for_now {
        let retry_after = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_RETRY_AFTER_REFUSED);
        let what = if status == 403 { "refused by Binance's WAF (HTTP 403)" } else { "server busy" };
        return Some(ExchangeError::RateLimited { retry_after, banned: false, code, msg: format!("{what}: {msg}") });
    }
    if status >= 500 || UNKNOWN_OUTCOME_CODES.contains(&code) {
        let busy = if code == SERVER_BUSY { "server busy; " } else { "" };
        return Some(ExchangeError::Unknown { reason: format!("{busy}HTTP {status} ({code}): {msg}") });
    }
    if (400..500).contains(&status) {
        return Some(ExchangeError::Rejected {
            http_status: status,
            code,
            msg: if api.is_some() { msg } else { format!("HTTP {status}: {msg}") },
        });
    }
    // 1xx / 3xx: not an answer Binance gives; what happened is unknown.
    Some(ExchangeError::Unknown { reason: format!("unexpected HTTP {status}: {msg}") })
}

/// The start of a body, for messages (at most 200 characters).
pub fn snippet(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn kind(e: &ExchangeError) -> &'static str {
        match e {
            ExchangeError::NotSent { .. } => "NotSent",
            ExchangeError::Rejected { .. } => "Rejected",
            ExchangeError::RateLimited { .. } => "RateLimited",
            ExchangeError::Unknown { .. } => "Unknown",
        }
    }

    #[test]
    fn transport_errors_before_sending_are_not_sent_and_after_are_unknown() {
        let table: Vec<(ureq::Error, &str)> = vec![
            (ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused)), "NotSent"),
            (ureq::Error::Io(io::Error::from(io::ErrorKind::HostUnreachable)), "NotSent"),
            (ureq::Error::Io(io::Error::from(io::ErrorKind::NetworkUnreachable)), "NotSent"),
            (ureq::Error::HostNotFound, "NotSent"),
            (ureq::Error::ConnectionFailed, "NotSent"),
            (ureq::Error::BadUri("x".into()), "NotSent"),
            (ureq::Error::Timeout(ureq::Timeout::Connect), "NotSent"),
            (ureq::Error::Timeout(ureq::Timeout::Resolve), "NotSent"),
            (ureq::Error::Tls("handshake"), "NotSent"),
            (ureq::Error::Timeout(ureq::Timeout::SendRequest), "Unknown"),
            (ureq::Error::Timeout(ureq::Timeout::SendBody), "Unknown"),
            (ureq::Error::Timeout(ureq::Timeout::RecvResponse), "Unknown"),
            (ureq::Error::Timeout(ureq::Timeout::RecvBody), "Unknown"),
            (ureq::Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof)), "Unknown"),
            (ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)), "Unknown"),
            (ureq::Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)), "Unknown"),
            (ureq::Error::BodyExceedsLimit(10), "Unknown"),
            (ureq::Error::LargeResponseHeader(1, 2), "Unknown"),
        ];
        for (error, expected) in table {
            assert_eq!(kind(&classify_transport(&error)), expected, "{error:?}");
        }
    }

    #[test]
    fn request_proxy_and_tls_set_up_failures_are_not_sent() {
        let bad_header = ureq::http::header::HeaderName::from_bytes(b"bad header").unwrap_err();
        let bad_pem = ureq::tls::parse_pem(b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n")
            .next()
            .unwrap()
            .err()
            .unwrap();
        assert!(matches!(bad_pem, ureq::Error::Pem(_)), "{bad_pem:?}");
        // rustls turns a clock before 1970 into its own error: a real `rustls::Error`.
        let clock_error = std::time::UNIX_EPOCH.duration_since(std::time::SystemTime::now()).unwrap_err();
        let table: Vec<(ureq::Error, &str)> = vec![
            (ureq::Error::Http(bad_header.into()), "invalid request"),
            (ureq::Error::InvalidProxyUrl, "invalid proxy URL"),
            (ureq::Error::ConnectProxyFailed("403".into()), "proxy CONNECT failed"),
            (ureq::Error::RequireHttpsOnly("http://x".into()), "https required"),
            (ureq::Error::Rustls(clock_error.into()), "TLS: "),
            (bad_pem, "TLS certificates"),
            (ureq::Error::TlsRequired, "TLS required"),
        ];
        for (error, reason) in table {
            let classified = classify_transport(&error);
            assert!(
                matches!(&classified, ExchangeError::NotSent { reason: r } if r.starts_with(reason)),
                "{error:?}: {classified:?}"
            );
        }
    }

    #[test]
    fn transport_errors_ureq_does_not_name_leave_the_outcome_unknown() {
        for error in [ureq::Error::TooManyRedirects, ureq::Error::Other("connector".into())] {
            let classified = classify_transport(&error);
            assert!(
                matches!(&classified, ExchangeError::Unknown { reason } if reason.starts_with("transport: ")),
                "{error:?}: {classified:?}"
            );
        }
    }

    #[test]
    fn http_responses_classify_by_status_and_binance_code() {
        let rejected = |http_status: u16, code: i64, msg: &str| {
            Some(ExchangeError::Rejected { http_status, code, msg: msg.into() })
        };
        let table: Vec<(u16, Option<&str>, &str, Option<ExchangeError>)> = vec![
            (200, None, "{}", None),
            (201, None, "", None),
            (
                400,
                None,
                r#"{"code":-1013,"msg":"Filter failure: LOT_SIZE"}"#,
                rejected(400, -1013, "Filter failure: LOT_SIZE"),
            ),
            (
                400,
                None,
                r#"{"code":-2010,"msg":"Order would trigger immediately."}"#,
                rejected(400, -2010, "Order would trigger immediately."),
            ),
            (
                401,
                None,
                r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
                rejected(401, -2015, "Invalid API-key, IP, or permissions for action."),
            ),
            (
                400,
                None,
                r#"{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}"#,
                rejected(400, -1021, "Timestamp for this request is outside of the recvWindow."),
            ),
            (
                429,
                Some("3"),
                r#"{"code":-1003,"msg":"Too much request weight used"}"#,
                Some(ExchangeError::RateLimited {
                    retry_after: Duration::from_secs(3),
                    banned: false,
                    code: -1003,
                    msg: "Too much request weight used".into(),
                }),
            ),
            (
                429,
                None,
                r#"{"code":-1015,"msg":"Too many new orders."}"#,
                Some(ExchangeError::RateLimited {
                    retry_after: DEFAULT_RETRY_AFTER_429,
                    banned: false,
                    code: -1015,
                    msg: "Too many new orders.".into(),
                }),
            ),
            (
                418,
                Some(" 600 "),
                r#"{"code":-1003,"msg":"Way too much request weight used; IP banned"}"#,
                Some(ExchangeError::RateLimited {
                    retry_after: Duration::from_secs(600),
                    banned: true,
                    code: -1003,
                    msg: "Way too much request weight used; IP banned".into(),
                }),
            ),
            (
                418,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                "",
                Some(ExchangeError::RateLimited {
                    retry_after: DEFAULT_RETRY_AFTER_418,
                    banned: true,
                    code: 0,
                    msg: String::new(),
                }),
            ),
        ];
        for (status, retry_after, body, expected) in table {
            assert_eq!(classify_response(status, retry_after, body), expected, "{status} {body}");
        }
    }

    #[test]
    fn server_errors_and_unknown_outcome_codes_are_unknown() {
        for (status, body) in [
            (500, ""),
            (502, "<html>Bad Gateway</html>"),
            (503, r#"{"code":-1008,"msg":"Server is currently overloaded"}"#),
            (504, "{}"),
            (400, r#"{"code":-1000,"msg":"An unknown error occurred"}"#),
            (400, r#"{"code":-1001,"msg":"Internal error"}"#),
            (400, r#"{"code":-1006,"msg":"Execution status unknown."}"#),
            (408, r#"{"code":-1007,"msg":"Timeout waiting for response"}"#),
            (302, ""),
        ] {
            let e = classify_response(status, None, body);
            assert!(matches!(e, Some(ExchangeError::Unknown { .. })), "{status} {body}: {e:?}");
        }
    }

    #[test]
    fn a_waf_403_and_a_4xx_server_busy_are_rate_limits_not_rejections() {
        assert_eq!(
            classify_response(403, None, "<html>WAF</html>"),
            Some(ExchangeError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER_REFUSED,
                banned: false,
                code: 0,
                msg: "refused by Binance's WAF (HTTP 403): <html>WAF</html>".into(),
            })
        );
        assert_eq!(
            classify_response(403, Some("30"), ""),
            Some(ExchangeError::RateLimited {
                retry_after: Duration::from_secs(30),
                banned: false,
                code: 0,
                msg: "refused by Binance's WAF (HTTP 403): ".into(),
            })
        );
        assert_eq!(
            classify_response(
                400,
                None,
                r#"{"code":-1008,"msg":"Server is currently overloaded with other requests."}"#
            ),
            Some(ExchangeError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER_REFUSED,
                banned: false,
                code: -1008,
                msg: "server busy: Server is currently overloaded with other requests.".into(),
            })
        );
    }

    #[test]
    fn a_5xx_server_busy_stays_unknown_and_says_so() {
        let e = classify_response(503, None, r#"{"code":-1008,"msg":"Server is currently overloaded"}"#);
        assert_eq!(
            e,
            Some(ExchangeError::Unknown {
                reason: "server busy; HTTP 503 (-1008): Server is currently overloaded".into()
            })
        );
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "é".repeat(500);
        let s = snippet(&body);
        assert_eq!(s.chars().count(), 201);
    }
}
