//! WebSocket API session authentication (web-socket-api.md, "Session Authentication"):
//! `session.logon`, `session.status`, `session.logout`, for the one Ed25519 API key the server
//! is given (`--ed25519-api-key` with `--ed25519-public-key-file`, a PEM public key).
//!
//! `session.logon` checks, in Binance's order: `apiKey` and `signature` present (-1102), the key
//! known as an Ed25519 key (401 -2015, the HMAC key included: only Ed25519 keys log on),
//! `timestamp` within `recvWindow` (-1021, -1131), the signature over the parameters but
//! `signature`, sorted by name (-1022). A logged-on connection's trading requests may then omit
//! `apiKey` and `signature` (`ws_orders`); their timestamp is still checked.

use crate::api::{ApiError, Params};
use genesis::exchange::binance::ed25519::verify;
use genesis::exchange::binance::sign::QueryBuilder;
use genesis::exchange::binance::user_data::signature_payload;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The Ed25519 key the server accepts: (API key, public key PEM).
static ED25519: OnceLock<(String, String)> = OnceLock::new();

/// Accepts `public_key_pem` for `api_key` (once, at start-up).
pub fn accept_ed25519(api_key: String, public_key_pem: String) {
    let _ = ED25519.set((api_key, public_key_pem));
}

/// One connection's session.
#[derive(Debug, Default)]
pub struct Session {
    /// The logged-on API key and since when (server ms).
    pub authorized: Option<(String, i64)>,
    pub connected_since: i64,
}

impl Session {
    pub fn new(connected_since: i64) -> Session {
        Session { authorized: None, connected_since }
    }

    pub fn logged_on(&self) -> bool {
        self.authorized.is_some()
    }

    fn status(&self, server_now_ms: i64, user_data_stream: bool) -> Value {
        json!({
            "apiKey": self.authorized.as_ref().map(|(k, _)| k.as_str()),
            "authorizedSince": self.authorized.as_ref().map(|(_, t)| *t),
            "connectedSince": self.connected_since,
            "returnRateLimits": true,
            "serverTime": server_now_ms,
            "userDataStream": user_data_stream,
        })
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `session.logon`, `session.status` or `session.logout`: the result, or the error.
pub fn handle(
    session: &mut Session,
    method: &str,
    params: &Map<String, Value>,
    server_now_ms: i64,
    user_data_stream: bool,
) -> Result<Value, ApiError> {
    match method {
        "session.logon" => {
            let api_key = logon(params, server_now_ms)?;
            session.authorized = Some((api_key, server_now_ms));
        }
        "session.logout" => session.authorized = None,
        _ => {}
    }
    Ok(session.status(server_now_ms, user_data_stream))
}

fn logon(params: &Map<String, Value>, server_now_ms: i64) -> Result<String, ApiError> {
    let api_key = params.get("apiKey").map(text).ok_or_else(|| ApiError::mandatory("apiKey"))?;
    let signature = params.get("signature").map(text).ok_or_else(|| ApiError::mandatory("signature"))?;
    let Some((known, public_key_pem)) = ED25519.get().filter(|(known, _)| *known == api_key) else {
        return Err(ApiError::new(401, -2015, "Invalid API-key, IP, or permissions for action."));
    };
    let mut query = String::new();
    {
        let mut q = QueryBuilder::new(&mut query);
        for (name, value) in params {
            q.str(name, &text(value));
        }
    }
    crate::auth::check_timestamp(&Params::from_sources(&query, None), server_now_ms)?;
    let pairs: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
    if !verify(public_key_pem, signature_payload(&pairs).as_bytes(), &signature) {
        return Err(ApiError::bad(-1022, "Signature for this request is not valid."));
    }
    Ok(known.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesis::exchange::binance::ed25519::Ed25519Key;

    const NOW: i64 = 1_700_000_000_000;
    /// RFC 8032's test 1 key pair.
    const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";

    fn logon_params(api_key: &str, timestamp: i64, sign_over: Option<&str>) -> Map<String, Value> {
        accept_ed25519("ed-key".into(), PUBLIC.into());
        let payload = format!("apiKey={api_key}&recvWindow=5000&timestamp={timestamp}");
        let key = Ed25519Key::from_pem(PRIVATE).unwrap();
        let signature = key.sign(sign_over.unwrap_or(&payload).as_bytes());
        let value = json!({"apiKey": api_key, "recvWindow": 5000, "timestamp": timestamp, "signature": signature});
        value.as_object().unwrap().clone()
    }

    fn code(result: Result<Value, ApiError>) -> (u16, i64) {
        let e = result.unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn a_logon_signed_by_the_ed25519_key_authorizes_the_session_until_logout() {
        let mut session = Session::new(NOW - 10);
        let status = handle(&mut session, "session.logon", &logon_params("ed-key", NOW, None), NOW, false).unwrap();
        assert_eq!((status["apiKey"].as_str(), status["authorizedSince"].as_i64()), (Some("ed-key"), Some(NOW)));
        assert_eq!(status["connectedSince"], NOW - 10);
        assert!(session.logged_on());
        let status = handle(&mut session, "session.status", &Map::new(), NOW + 1, true).unwrap();
        assert_eq!((status["apiKey"].as_str(), status["userDataStream"].as_bool()), (Some("ed-key"), Some(true)));
        let status = handle(&mut session, "session.logout", &Map::new(), NOW + 2, false).unwrap();
        assert!(status["apiKey"].is_null() && status["authorizedSince"].is_null());
        assert!(!session.logged_on());
    }

    #[test]
    fn a_logon_is_refused_as_binance_refuses_it() {
        let mut session = Session::new(NOW);
        let mut logon = |params: Map<String, Value>| code(handle(&mut session, "session.logon", &params, NOW, false));
        assert_eq!(logon(logon_params("hmac-key", NOW, None)), (401, -2015), "not the Ed25519 key");
        assert_eq!(logon(logon_params("ed-key", NOW - 60_000, None)), (400, -1021), "outside recvWindow");
        assert_eq!(logon(logon_params("ed-key", NOW, Some("apiKey=ed-key"))), (400, -1022), "signed over other bytes");
        let mut unsigned = logon_params("ed-key", NOW, None);
        unsigned.remove("signature");
        assert_eq!(logon(unsigned), (400, -1102));
        let mut keyless = logon_params("ed-key", NOW, None);
        keyless.remove("apiKey");
        assert_eq!(logon(keyless), (400, -1102));
        assert!(!session.logged_on());
    }
}
