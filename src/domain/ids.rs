//! Identifiers. Our client order ids carry a prefix fixed per database, so that the engine
//! can always recognise its own orders on the exchange (start-up reconciliation relies on it).

use super::prng::{mix64, GOLDEN_GAMMA};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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

/// The parts of one of our client order ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedClientId {
    pub role_letter: char,
    pub order_id: i64,
    pub position_id: Option<i64>,
}

/// Hands out order ids, position ids and client order ids; shared by the stages.
#[derive(Debug)]
pub struct IdGen {
    prefix: String,
    next_order_id: AtomicI64,
    /// SplitMix64 counter for the random part: seeded from the OS once, then no system call
    /// per id (a uuid v4 per order was a `getrandom` call on the order's path).
    random: AtomicU64,
}

impl IdGen {
    /// `prefix` must be short and of `[A-Za-z0-9]`; ids continue after the last stored one.
    /// (A position is named after its entry order: it has no id sequence of its own.)
    pub fn new(prefix: String, last_order_id: i64) -> Self {
        IdGen::with_seed(prefix, last_order_id, uuid::Uuid::new_v4().as_u64_pair().0)
    }

    /// As [`IdGen::new`], with the random part's seed given (tests).
    fn with_seed(prefix: String, last_order_id: i64, seed: u64) -> Self {
        IdGen { prefix, next_order_id: AtomicI64::new(last_order_id + 1), random: AtomicU64::new(seed) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn next_order_id(&self) -> i64 {
        self.next_order_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes sure ids handed out from now on are above `order_id` (after reconciliation
    /// recovered orders the database did not have).
    pub fn skip_past(&self, order_id: i64) {
        self.next_order_id.fetch_max(order_id + 1, Ordering::Relaxed);
    }

    /// `<prefix>-<role letter><order_id>-<position_id>-<random>`: recognisably ours (prefix),
    /// unique across restarts (random part), and self-describing, so that start-up
    /// reconciliation can put an order the database lost back under its order id and its
    /// position. At most 36 characters.
    pub fn client_order_id(&self, role_letter: char, order_id: i64, position_id: Option<i64>) -> String {
        // Pushed piece by piece (itoa, hex) rather than with `write!`: this runs on every order's
        // path, and the formatter's machinery was most of its instructions.
        let mut id = String::with_capacity(MAX_CLIENT_ORDER_ID_LEN + 20);
        let mut digits = itoa::Buffer::new();
        id.push_str(&self.prefix);
        id.push('-');
        id.push(role_letter);
        id.push_str(digits.format(order_id));
        id.push('-');
        id.push_str(digits.format(position_id.unwrap_or(0)));
        id.push('-');
        // 128 random bits as 32 lowercase hex characters, as many as fit.
        let step = self.random.fetch_add(GOLDEN_GAMMA.wrapping_mul(2), Ordering::Relaxed);
        let (high, low) =
            (mix64(step.wrapping_add(GOLDEN_GAMMA)), mix64(step.wrapping_add(GOLDEN_GAMMA.wrapping_mul(2))));
        let mut random = [0u8; 32];
        // 8 bytes in, 16 hex characters out, twice: the lengths always match.
        let (first, second) = random.split_at_mut(16);
        let _ = hex::encode_to_slice(high.to_be_bytes(), first);
        let _ = hex::encode_to_slice(low.to_be_bytes(), second);
        id.push_str(std::str::from_utf8(&random).unwrap_or_default());
        id.truncate(MAX_CLIENT_ORDER_ID_LEN);
        id
    }

    /// What one of our client order ids says: (role letter, order_id, position_id).
    pub fn parse_client_order_id(&self, client_order_id: &str) -> Option<ParsedClientId> {
        let rest = client_order_id.strip_prefix(self.prefix.as_str())?.strip_prefix('-')?;
        let mut parts = rest.splitn(3, '-');
        let head = parts.next()?;
        let position: i64 = parts.next()?.parse().ok()?;
        let role_letter = head.chars().next()?;
        let order_id: i64 = head.get(1..)?.parse().ok()?;
        Some(ParsedClientId { role_letter, order_id, position_id: (position > 0).then_some(position) })
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
        let ids = IdGen::new("gabc123".into(), 0);
        let id = ids.client_order_id('E', 123_456_789_012, Some(9_999_999_999));
        assert!(is_valid_client_order_id(&id), "{id}");
        assert!(id.len() <= MAX_CLIENT_ORDER_ID_LEN);
        assert!(ids.is_ours(&id));
        assert!(!IdGen::new("gother1".into(), 0).is_ours(&id));
    }

    #[test]
    fn a_new_prefix_is_g_and_six_lowercase_hex_characters() {
        let prefix = new_prefix();
        assert_eq!(prefix.len(), 7, "{prefix}");
        assert!(prefix.starts_with('g'), "{prefix}");
        assert!(prefix[1..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{prefix}");
    }

    #[test]
    fn the_generator_reports_its_prefix() {
        assert_eq!(IdGen::new("gabc123".into(), 0).prefix(), "gabc123");
    }

    #[test]
    fn client_order_ids_do_not_repeat() {
        let ids = IdGen::new(new_prefix(), 0);
        let a = ids.client_order_id('E', 1, None);
        let b = ids.client_order_id('E', 1, None);
        assert_ne!(a, b);
    }

    #[test]
    fn client_order_ids_fill_the_room_binance_allows_with_hex() {
        let ids = IdGen::new("gabc123".into(), 0);
        let id = ids.client_order_id('E', 1, None);
        assert_eq!(id.len(), MAX_CLIENT_ORDER_ID_LEN, "{id}");
        let random = id.rsplit('-').next().unwrap();
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    }

    #[test]
    fn the_random_part_is_splitmix64_from_the_seed() {
        // SplitMix64 from seed 0 (reference outputs): e220a8397b1dcdaf 6e789e6aa1b965f4 06c45d188009454f f88bb8a8724c81ec.
        let ids = IdGen::with_seed("gabc123".into(), 0, 0);
        assert_eq!(ids.client_order_id('E', 1, None), "gabc123-E1-0-e220a8397b1dcdaf6e789e6");
        assert_eq!(ids.client_order_id('E', 2, None), "gabc123-E2-0-06c45d188009454ff88bb8a");
    }

    #[test]
    fn two_generators_for_the_same_database_make_different_ids() {
        let (a, b) = (IdGen::new("gabc123".into(), 0), IdGen::new("gabc123".into(), 0));
        assert_ne!(a.client_order_id('E', 1, None), b.client_order_id('E', 1, None));
    }

    #[test]
    fn client_order_ids_say_role_order_and_position() {
        let ids = IdGen::new("gabc123".into(), 0);
        let stop = ids.client_order_id('S', 42, Some(7));
        assert_eq!(
            ids.parse_client_order_id(&stop),
            Some(ParsedClientId { role_letter: 'S', order_id: 42, position_id: Some(7) })
        );
        let entry = ids.client_order_id('E', 41, None);
        assert_eq!(ids.parse_client_order_id(&entry).map(|p| (p.order_id, p.position_id)), Some((41, None)));
        assert_eq!(ids.parse_client_order_id("x-R4BD3S824d31be3228a348eaa0a303"), None);
        assert_eq!(ids.parse_client_order_id("gabc123-Exx-0-abc"), None);
    }

    #[test]
    fn skip_past_moves_ids_beyond_recovered_ones() {
        let ids = IdGen::new("gx".into(), 5);
        ids.skip_past(9);
        assert_eq!(ids.next_order_id(), 10);
        ids.skip_past(3);
        assert_eq!(ids.next_order_id(), 11);
    }

    #[test]
    fn order_ids_continue_after_the_last_stored_one() {
        let ids = IdGen::new("gx".into(), 41);
        assert_eq!(ids.next_order_id(), 42);
        assert_eq!(ids.next_order_id(), 43);
    }

    #[test]
    fn invalid_client_order_ids_are_recognised() {
        assert!(!is_valid_client_order_id(""));
        assert!(!is_valid_client_order_id("a.b"));
        assert!(!is_valid_client_order_id(&"x".repeat(37)));
        assert!(is_valid_client_order_id("abc-DEF_123"));
    }
}
