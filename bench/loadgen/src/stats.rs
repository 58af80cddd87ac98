//! The small numeric pieces: a seeded random number generator for keys, and percentiles over
//! recorded latencies.

/// A xorshift64* generator: fast, seedable, good enough to spread keys evenly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for client `stream` of a run seeded with `seed`. The pair goes through
    /// splitmix64 so that neighbouring seeds or streams give unrelated sequences (and never the
    /// all-zero state xorshift cannot leave).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut z = seed
            .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `[0, n)`, `n > 0` (multiply-shift: no division, negligible bias for the key
    /// counts used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method: the smallest
/// recorded value that at least `p` % of the values are less than or equal to. `None` when
/// nothing was recorded.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.001), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn keys_are_seeded_and_spread() {
        let a: Vec<u64> = {
            let mut r = Rng::new(1, 0);
            (0..5).map(|_| r.below(10)).collect()
        };
        let mut r = Rng::new(1, 0);
        assert_eq!(a, (0..5).map(|_| r.below(10)).collect::<Vec<_>>());
        let mut other = Rng::new(1, 1);
        assert_ne!(a, (0..5).map(|_| other.below(10)).collect::<Vec<_>>());

        let mut counts = [0u32; 10];
        let mut r = Rng::new(42, 3);
        for _ in 0..100_000 {
            counts[r.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
