//! Tenant key distributions for the load generator: uniform, or Zipf (rank
//! `k` drawn with weight `1 / k^s`), so a few tenants are hot and most are
//! cold, as on a real marketplace.

/// Draws tenant indexes in `0..n` from a uniform number in `[0, 1)`.
#[derive(Debug, Clone)]
pub enum KeyDist {
    Uniform(usize),
    /// Cumulative weights of ranks 0..n, the last one 1.0.
    Zipf(Vec<f64>),
}

impl KeyDist {
    pub fn uniform(n: usize) -> KeyDist {
        KeyDist::Uniform(n.max(1))
    }

    /// Zipf over `n` keys with exponent `s` (> 0; 1.0 is the classic law).
    pub fn zipf(n: usize, s: f64) -> KeyDist {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        // Rounding must not leave the top of the range unmapped.
        cdf[n - 1] = 1.0;
        KeyDist::Zipf(cdf)
    }

    /// The key for `u` in `[0, 1)`.
    pub fn sample(&self, u: f64) -> usize {
        match self {
            KeyDist::Uniform(n) => ((u * *n as f64) as usize).min(n - 1),
            KeyDist::Zipf(cdf) => cdf.partition_point(|&c| c <= u).min(cdf.len() - 1),
        }
    }
}

/// A xorshift64 generator per load task: no shared RNG, no locks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(d: &KeyDist, n: usize, draws: usize) -> Vec<usize> {
        let mut rng = Rng::new(42);
        let mut f = vec![0; n];
        for _ in 0..draws {
            f[d.sample(rng.unit())] += 1;
        }
        f
    }

    #[test]
    fn every_draw_lands_on_a_key_and_the_ends_are_reachable() {
        for d in [KeyDist::uniform(10), KeyDist::zipf(10, 1.0)] {
            assert_eq!(d.sample(0.0), 0);
            assert_eq!(d.sample(0.999_999_999), 9);
            let f = frequencies(&d, 10, 10_000);
            assert_eq!(f.iter().sum::<usize>(), 10_000);
        }
        assert_eq!(KeyDist::zipf(1, 1.0).sample(0.7), 0);
    }

    #[test]
    fn zipf_ranks_follow_one_over_k() {
        // s = 1 over 100 keys: rank 1 has 1/H(100) = 19.3% of the draws,
        // rank 2 half of that, rank 10 a tenth.
        let n = 100;
        let f = frequencies(&KeyDist::zipf(n, 1.0), n, 200_000);
        let h: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        for (rank, tolerance) in [(1usize, 0.01), (2, 0.01), (10, 0.005)] {
            let expected = 1.0 / (rank as f64 * h);
            let got = f[rank - 1] as f64 / 200_000.0;
            assert!(
                (got - expected).abs() < tolerance,
                "rank {rank}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn uniform_spreads_evenly() {
        let f = frequencies(&KeyDist::uniform(4), 4, 40_000);
        for c in f {
            assert!((9_000..11_000).contains(&c), "{c}");
        }
    }
}
