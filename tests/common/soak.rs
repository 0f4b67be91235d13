//! Settings of the soak tests (ignored by default): how many rounds, how
//! long at most, and a seeded random source that says how to reproduce.
use std::time::Duration;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// `QUOTAD_SOAK_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    env("QUOTAD_SOAK_ROUNDS").unwrap_or(default)
}

/// `QUOTAD_SOAK_SECS` (default 900): a soak stops starting rounds after it.
pub fn budget() -> Duration {
    Duration::from_secs(env("QUOTAD_SOAK_SECS").unwrap_or(900))
}

/// Seeded from `QUOTAD_SOAK_SEED`, else at random; prints the seed.
pub fn rng() -> rand::rngs::StdRng {
    let seed: u64 = env("QUOTAD_SOAK_SEED").unwrap_or_else(rand::random);
    eprintln!("soak seed {seed} (reproduce with QUOTAD_SOAK_SEED={seed})");
    <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed)
}
