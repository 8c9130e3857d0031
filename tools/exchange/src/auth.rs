//! SIGNED endpoints: the API key header, the HMAC-SHA256 signature over exactly the bytes
//! received, and the timestamp against the server clock and `recvWindow`.

use crate::params::Params;
use crate::reply::ApiError;
use genesis::domain::money::Decimal;
use genesis::exchange::binance::sign::{split_signature, verify};

/// Default `recvWindow`, ms.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5_000;
/// Largest `recvWindow` accepted, ms.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;
/// How far ahead of the server a timestamp may be, ms.
pub const AHEAD_TOLERANCE_MS: i64 = 1_000;

pub const MSG_OUTSIDE_WINDOW: &str = "Timestamp for this request is outside of the recvWindow.";
pub const MSG_AHEAD: &str = "Timestamp for this request was 1000ms ahead of the server's time.";

/// The account's credentials.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

pub fn timestamp_error(ahead: bool) -> ApiError {
    ApiError::bad(-1021, if ahead { MSG_AHEAD } else { MSG_OUTSIDE_WINDOW })
}

/// The key and the signature: `X-MBX-APIKEY` must equal the key (else 401 / -2015) and
/// `signature` (query or body) must be hex HMAC-SHA256(secret, query ‖ body), both without the
/// signature parameter, exactly as received (else -1022; absent: -1102).
pub fn check_key_and_signature(
    creds: &Credentials,
    api_key_header: Option<&str>,
    raw_query: &str,
    raw_body: &str,
) -> Result<(), ApiError> {
    if api_key_header.is_none_or(str::is_empty) {
        return Err(ApiError::new(401, -2014, "API-key format invalid."));
    }
    if api_key_header != Some(creds.api_key.as_str()) {
        return Err(ApiError::new(401, -2015, "Invalid API-key, IP, or permissions for action."));
    }
    let (query, query_sig) = split_signature(raw_query);
    let (body, body_sig) = split_signature(raw_body);
    let signature = query_sig.or(body_sig).filter(|s| !s.is_empty()).ok_or_else(|| ApiError::mandatory("signature"))?;
    if !verify(&creds.api_secret, query.as_bytes(), body.as_bytes(), &signature) {
        return Err(ApiError::bad(-1022, "Signature for this request is not valid."));
    }
    Ok(())
}

/// `timestamp` (ms, or µs when it has 16 digits or more) within `recvWindow` (default 5000,
/// at most 60000, up to 3 decimals) of `server_now_ms`, and at most 1000 ms ahead of it.
pub fn check_timestamp(params: &Params, server_now_ms: i64) -> Result<(), ApiError> {
    let text = params.get("timestamp").ok_or_else(|| ApiError::mandatory("timestamp"))?;
    let timestamp: i64 =
        text.parse().ok().filter(|t: &i64| *t >= 0).ok_or_else(|| ApiError::illegal("timestamp", "^[0-9]{1,20}$"))?;
    let timestamp_us = if timestamp >= 1_000_000_000_000_000 { timestamp } else { timestamp.saturating_mul(1000) };
    let window_us = match params.get("recvWindow") {
        None => i64::try_from(DEFAULT_RECV_WINDOW_MS * 1000).unwrap_or(i64::MAX),
        Some(text) => {
            let window: Decimal = crate::params::parse_decimal(text)
                .filter(|w| w.scale() <= 3)
                .ok_or_else(|| ApiError::illegal("recvWindow", "^[0-9]{1,20}(\\.[0-9]{1,3})?$"))?;
            if window > Decimal::from(MAX_RECV_WINDOW_MS) {
                return Err(ApiError::bad(-1131, "recvWindow must be less than 60000"));
            }
            use rust_decimal::prelude::ToPrimitive;
            (window * Decimal::from(1000)).to_i64().unwrap_or(i64::MAX)
        }
    };
    let now_us = server_now_ms.saturating_mul(1000);
    if timestamp_us >= now_us.saturating_add(AHEAD_TOLERANCE_MS * 1000) {
        return Err(timestamp_error(true));
    }
    if now_us.saturating_sub(timestamp_us) > window_us {
        return Err(timestamp_error(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesis::exchange::binance::sign::QueryBuilder;
    use genesis::exchange::binance::{Secret, Signer};

    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn creds() -> Credentials {
        Credentials { api_key: KEY.into(), api_secret: SECRET.into() }
    }

    #[test]
    fn reference_vectors_verify_in_the_query_the_body_or_split_across_both() {
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        let signed = format!("{payload}&signature={sig}");
        assert_eq!(check_key_and_signature(&creds(), Some(KEY), &signed, ""), Ok(()));
        assert_eq!(check_key_and_signature(&creds(), Some(KEY), "", &signed), Ok(()));
        // Upper-case hex is the same HMAC.
        let upper = format!("{payload}&signature={}", sig.to_uppercase());
        assert_eq!(check_key_and_signature(&creds(), Some(KEY), &upper, ""), Ok(()));
        // Mixed: no separator between query and body.
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
        let body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77";
        assert_eq!(check_key_and_signature(&creds(), Some(KEY), query, body), Ok(()));
    }

    #[test]
    fn wrong_key_bad_or_missing_signature_are_refused_with_binance_codes() {
        let mut payload = String::new();
        QueryBuilder::new(&mut payload).str("symbol", "BTCUSDT").display("timestamp", 1);
        Signer::new(&Secret::from(SECRET)).append_signature(&mut payload);
        let e = check_key_and_signature(&creds(), Some("other"), &payload, "").unwrap_err();
        assert_eq!((e.status, e.code), (401, -2015));
        let e = check_key_and_signature(&creds(), None, &payload, "").unwrap_err();
        assert_eq!((e.status, e.code, e.msg.as_str()), (401, -2014, "API-key format invalid."));
        let tampered = payload.replace("BTCUSDT", "ETHUSDT");
        let e = check_key_and_signature(&creds(), Some(KEY), &tampered, "").unwrap_err();
        assert_eq!((e.status, e.code), (400, -1022));
        assert_eq!(e.msg, "Signature for this request is not valid.");
        let e = check_key_and_signature(&creds(), Some(KEY), "symbol=X&signature=zz", "").unwrap_err();
        assert_eq!(e.code, -1022);
        let e = check_key_and_signature(&creds(), Some(KEY), "symbol=X", "").unwrap_err();
        assert_eq!(e.code, -1102);
    }

    fn params(text: &str) -> Params {
        Params::from_sources(text, None)
    }

    #[test]
    fn timestamps_must_fall_in_the_window_and_not_run_ahead() {
        let now = 1_700_000_000_000;
        assert_eq!(check_timestamp(&params(&format!("timestamp={now}")), now), Ok(()));
        let ok_old = format!("timestamp={}", now - 5000);
        assert_eq!(check_timestamp(&params(&ok_old), now), Ok(()));
        let stale = format!("timestamp={}", now - 5001);
        let e = check_timestamp(&params(&stale), now).unwrap_err();
        assert_eq!((e.status, e.code, e.msg.as_str()), (400, -1021, MSG_OUTSIDE_WINDOW));
        let wide = format!("timestamp={}&recvWindow=60000", now - 59_000);
        assert_eq!(check_timestamp(&params(&wide), now), Ok(()));
        let too_wide = format!("timestamp={now}&recvWindow=60001");
        assert_eq!(check_timestamp(&params(&too_wide), now).unwrap_err().code, -1131);
        let ahead = format!("timestamp={}", now + 1000);
        let e = check_timestamp(&params(&ahead), now).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (-1021, MSG_AHEAD));
        let slightly_ahead = format!("timestamp={}", now + 999);
        assert_eq!(check_timestamp(&params(&slightly_ahead), now), Ok(()));
        let micros = format!("timestamp={}", now * 1000 - 10);
        assert_eq!(check_timestamp(&params(&micros), now), Ok(()));
        let fractional = format!("timestamp={}&recvWindow=0.5", now - 1);
        assert_eq!(check_timestamp(&params(&fractional), now).unwrap_err().code, -1021);
        assert_eq!(check_timestamp(&params(""), now).unwrap_err().code, -1102);
        assert_eq!(check_timestamp(&params("timestamp=abc"), now).unwrap_err().code, -1100);
        assert_eq!(check_timestamp(&params(&format!("timestamp={now}&recvWindow=x")), now).unwrap_err().code, -1100);
    }
}
