//! Generated client order ids (for cancels and orders sent without `newClientOrderId`).

use genesis::domain::prng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Generated client order ids (22 characters of `[A-Za-z0-9]`, like Binance's).
#[derive(Debug)]
pub struct IdGen {
    base: u64,
    counter: AtomicU64,
}

/// SplitMix64's output for `x`'s counter step (the project's one PRNG, `domain::prng`).
fn splitmix(x: u64) -> u64 {
    prng::mix64(x.wrapping_add(prng::GOLDEN_GAMMA))
}

impl IdGen {
    pub fn new(base: u64) -> IdGen {
        IdGen { base, counter: AtomicU64::new(0) }
    }

    pub fn next_id(&self) -> String {
        const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = splitmix(self.base ^ n);
        let lo = splitmix(hi ^ n.rotate_left(32));
        let mut v = (u128::from(hi) << 64) | u128::from(lo);
        let mut out = String::with_capacity(22);
        for _ in 0..22 {
            out.push(char::from(ALPHABET[(v % 62) as usize]));
            v /= 62;
        }
        out
    }
}
