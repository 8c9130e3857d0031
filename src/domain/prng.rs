//! SplitMix64, the one pseudo-random generator of the project: client order ids' random part,
//! the benchmark's workload and the exchange server's generated ids all draw from it. Small,
//! fast, and the same sequence everywhere for a seed; not for secrets.

/// SplitMix64's counter step (the golden ratio in 64 bits).
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output for counter value `z`: a bijection, so a counter never repeats a value.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator: a counter stepped by [`GOLDEN_GAMMA`], each value mixed by [`mix64`].
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant at small ranges).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64s_reference_from_seed_zero() {
        let mut rng = SplitMix64::new(0);
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f, 0xf88bb8a8724c81ec]);
    }

    #[test]
    fn a_range_stays_within_its_bounds() {
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).map(|_| rng.range(3, 5)).all(|v| (3..=5).contains(&v)));
    }
}
