//! Deliveries of alerts to endpoints: attempts, the retry schedule, and
//! what an answer means.
use serde::{Deserialize, Serialize};

/// When each attempt is made, after the alert: at once, then after 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about 28 hours in all, the
/// schedule Standard Webhooks senders use). Each wait gets up to ±10 %
/// jitter, so endpoints that come back are not hit by every sender at once.
pub const SCHEDULE_MS: [i64; 8] = [
    0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/// Attempts kept per delivery (the latest).
pub const ATTEMPTS_KEPT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// The schedule is spent or the endpoint refused for good: kept on the
    /// dead-letter list until replayed.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

/// One try to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: i64,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    pub latency_ms: u32,
    /// Why it failed without an answer (timeout, connection refused, ...).
    pub error: Option<String>,
}

/// What an attempt means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Delivered,
    Retry { next_at_ms: i64 },
    Dead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    pub alert: u64,
    pub endpoint: String,
    pub state: DeliveryState,
    /// When it is due (pending only).
    pub next_at_ms: i64,
    /// Attempts made so far (since the last replay).
    pub tries: u32,
    pub attempts: Vec<Attempt>,
}

/// Whether an answer is worth another try: 5xx, 408, 429, or no answer at
/// all (timeout, connection error). Other 4xx mean the endpoint refuses
/// this message; trying again will not change that.
pub fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s >= 500 || s == 408 || s == 429,
    }
}

/// What attempt number `tries` (1 for the first) ending with `status`
/// means, at `now_ms`; `jitter_permille` in -100..=100 stretches the wait.
pub fn outcome(tries: u32, status: Option<u16>, now_ms: i64, jitter_permille: i64) -> Outcome {
    if status.is_some_and(|s| (200..300).contains(&s)) {
        return Outcome::Delivered;
    }
    if !retryable(status) {
        return Outcome::Dead;
    }
    match SCHEDULE_MS.get(tries as usize) {
        None => Outcome::Dead,
        Some(wait) => {
            let jitter = wait * jitter_permille.clamp(-100, 100) / 1000;
            Outcome::Retry {
                next_at_ms: now_ms.saturating_add(wait + jitter),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes_and_the_schedule_ends_in_the_dead_letter_list() {
        assert_eq!(outcome(1, Some(204), 0, 0), Outcome::Delivered);
        assert_eq!(outcome(1, Some(400), 0, 0), Outcome::Dead);
        assert_eq!(outcome(1, Some(410), 0, 0), Outcome::Dead);
        for retry in [Some(500), Some(503), Some(408), Some(429), None] {
            assert_eq!(
                outcome(1, retry, 1_000, 0),
                Outcome::Retry { next_at_ms: 6_000 },
                "{retry:?}"
            );
        }
        assert_eq!(
            outcome(2, Some(500), 0, 100),
            Outcome::Retry {
                next_at_ms: 330_000
            }
        );
        assert_eq!(
            outcome(2, Some(500), 0, -100),
            Outcome::Retry {
                next_at_ms: 270_000
            }
        );
        assert_eq!(
            outcome(8, Some(500), 0, 0),
            Outcome::Dead,
            "eight tries, then dead"
        );
        let total: i64 = SCHEDULE_MS.iter().sum();
        assert!(
            (24 * 3_600_000..30 * 3_600_000).contains(&total),
            "about a day"
        );
    }
}
