//! Identifiers. Our client order ids carry a prefix fixed per database, so that the engine
//! can always recognise its own orders on the exchange (start-up reconciliation relies on it).

use std::sync::atomic::{AtomicI64, Ordering};

/// Longest client order id Binance accepts (`^[a-zA-Z0-9-_]{1,36}$`).
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 36;

/// True when `id` is a client order id Binance accepts.
pub fn is_valid_client_order_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ORDER_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh per-database prefix: `g` plus 6 lowercase hex characters.
pub fn new_prefix() -> String {
    format!("g{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Hands out order ids, position ids and client order ids; shared by the stages.
#[derive(Debug)]
pub struct IdGen {
    prefix: String,
    next_order_id: AtomicI64,
    next_position_id: AtomicI64,
}

impl IdGen {
    /// `prefix` must be short and of `[A-Za-z0-9]`; ids continue after the given last ones.
    pub fn new(prefix: String, last_order_id: i64, last_position_id: i64) -> Self {
        IdGen {
            prefix,
            next_order_id: AtomicI64::new(last_order_id + 1),
            next_position_id: AtomicI64::new(last_position_id + 1),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn next_order_id(&self) -> i64 {
        self.next_order_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_position_id(&self) -> i64 {
        self.next_position_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `<prefix>-<role letter><random>`: unique across restarts (random part), recognisably ours
    /// (prefix), at most 36 characters.
    pub fn client_order_id(&self, role_letter: char) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let mut id = String::with_capacity(MAX_CLIENT_ORDER_ID_LEN);
        id.push_str(&self.prefix);
        id.push('-');
        id.push(role_letter);
        let room = MAX_CLIENT_ORDER_ID_LEN - id.len();
        id.push_str(&random[..room.min(random.len())]);
        id
    }

    /// True when a client order id on the exchange was made by this database's engine.
    pub fn is_ours(&self, client_order_id: &str) -> bool {
        client_order_id.strip_prefix(self.prefix.as_str()).is_some_and(|rest| rest.starts_with('-'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_ids_are_valid_for_binance_and_recognisably_ours() {
        let ids = IdGen::new("gabc123".into(), 0, 0);
        let id = ids.client_order_id('E');
        assert!(is_valid_client_order_id(&id), "{id}");
        assert_eq!(id.len(), MAX_CLIENT_ORDER_ID_LEN);
        assert!(ids.is_ours(&id));
        assert!(!IdGen::new("gother1".into(), 0, 0).is_ours(&id));
    }

    #[test]
    fn client_order_ids_do_not_repeat() {
        let ids = IdGen::new(new_prefix(), 0, 0);
        let a = ids.client_order_id('E');
        let b = ids.client_order_id('E');
        assert_ne!(a, b);
    }

    #[test]
    fn order_ids_continue_after_the_last_stored_one() {
        let ids = IdGen::new("gx".into(), 41, 7);
        assert_eq!(ids.next_order_id(), 42);
        assert_eq!(ids.next_order_id(), 43);
        assert_eq!(ids.next_position_id(), 8);
    }

    #[test]
    fn invalid_client_order_ids_are_recognised() {
        assert!(!is_valid_client_order_id(""));
        assert!(!is_valid_client_order_id("a.b"));
        assert!(!is_valid_client_order_id(&"x".repeat(37)));
        assert!(is_valid_client_order_id("abc-DEF_123"));
    }
}
