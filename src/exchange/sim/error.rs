//! Errors of the simulator: Binance-shaped refusals, and persistence failures.

use crate::exchange::binance::codes::{self, ErrorBody};
use crate::exchange::ExchangeError;

/// A refusal in Binance's terms: the HTTP status, the Binance code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    pub http_status: u16,
    pub code: i64,
    pub msg: String,
}

impl SimError {
    /// A business refusal (Binance answers these with HTTP 400).
    pub fn rejected(code: i64, msg: impl Into<String>) -> SimError {
        SimError { http_status: 400, code, msg: msg.into() }
    }
    /// One of Binance's refusals from the shared table, with HTTP 400.
    pub(crate) fn refused(body: impl Into<ErrorBody>) -> SimError {
        let body = body.into();
        SimError::rejected(body.code, body.msg)
    }
    /// The state changed in memory but could not be journaled: the outcome is unknown to the
    /// caller, as with Binance's -1000 on a 5xx.
    pub(crate) fn internal(reason: &str) -> SimError {
        let body = codes::unknown_error(reason);
        SimError { http_status: 500, code: body.code, msg: body.msg }
    }
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} ({}): {}", self.http_status, self.code, self.msg)
    }
}

impl std::error::Error for SimError {}

impl From<SimError> for ExchangeError {
    /// A 5xx means the outcome is unknown (query before anything else); everything else is a
    /// refusal.
    fn from(e: SimError) -> ExchangeError {
        if e.http_status >= 500 {
            ExchangeError::Unknown { reason: format!("({}) {}", e.code, e.msg) }
        } else {
            ExchangeError::Rejected { http_status: e.http_status, code: e.code, msg: e.msg }
        }
    }
}

/// The exchange state file could not be read or written.
#[derive(Debug)]
pub enum SimStoreError {
    Io { path: std::path::PathBuf, source: std::io::Error },
    Corrupt { path: std::path::PathBuf, line: usize, reason: String },
}

impl std::fmt::Display for SimStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimStoreError::Io { path, source } => {
                write!(f, "exchange state {}: {source}", path.display())
            }
            SimStoreError::Corrupt { path, line, reason } => {
                write!(f, "exchange state {} is corrupt at line {line}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for SimStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimStoreError::Io { source, .. } => Some(source),
            SimStoreError::Corrupt { .. } => None,
        }
    }
}
