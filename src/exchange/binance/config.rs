//! How to reach Binance: the URL, the keys, the timeouts and the optional Ed25519 session key,
//! with their defaults. Built by `pipeline::connect_binance` from the engine's flags.

use super::{ed25519, Secret};
use std::time::Duration;

/// How to reach Binance. `Debug` prints the key, the secret and the proxy as `***`.
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    /// Scheme and host, e.g. `https://api.binance.com` or `https://testnet.binance.vision`
    /// (a trailing `/` or `/api` is ignored); paths `/api/v3/...` are appended.
    pub base_url: String,
    pub api_key: Secret,
    pub api_secret: Secret,
    /// TCP connect + TLS handshake (default 2 s).
    pub connect_timeout: Duration,
    /// Each of send request, send body, receive response head, receive body (default 5 s).
    pub read_timeout: Duration,
    /// `recvWindow` sent with signed requests (default 5000 ms).
    pub recv_window_ms: u64,
    /// Longest `Retry-After` on a 429 that is waited out in place (default 2 s; zero: never).
    pub max_retry_after_wait: Duration,
    /// HTTP proxy URL; `None` (the default) means a direct connection whatever the environment.
    pub proxy: Option<Secret>,
    /// An Ed25519 key that logs the WebSocket API session on (`--transport ws`): its requests
    /// then carry no key or signature. `None`: every WebSocket request is HMAC-signed.
    pub ed25519: Option<ed25519::Ed25519Login>,
}

impl BinanceConfig {
    /// A configuration with the defaults above.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<Secret>, api_secret: impl Into<Secret>) -> Self {
        BinanceConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            recv_window_ms: 5000,
            max_retry_after_wait: Duration::from_secs(2),
            proxy: None,
            ed25519: None,
        }
    }
}
