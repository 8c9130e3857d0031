//! Request parameters: the query string and the form body as one list, and the number formats
//! Binance accepts (`rest-api.md`, "General API Information").

use crate::reply::ApiError;
use genesis::domain::money::Decimal;
use genesis::exchange::binance::sign::parse_query;

/// `^[0-9]{1,20}(\.[0-9]{1,20})?$` as a Decimal; anything else is `None`.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return None;
    }
    text.parse().ok()
}

/// Request parameters from the query string and the form body; where both carry one, the
/// query string wins (and within one source, the first occurrence).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn from_sources(query: &str, body: Option<&str>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let sources = std::iter::once(query).chain(body);
        for source in sources {
            for (k, v) in parse_query(source) {
                if !pairs.iter().any(|(pk, _)| *pk == k) {
                    pairs.push((k, v));
                }
            }
        }
        Params { pairs }
    }

    /// The value as sent, empty included.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The names sent, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::mandatory(name))
    }

    pub fn decimal(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => {
                parse_decimal(text).map(Some).ok_or_else(|| ApiError::illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$"))
            }
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .map(Some)
                .ok_or_else(|| ApiError::illegal(name, "^[0-9]{1,20}$")),
        }
    }
}
