//! Remembered answers for idempotency keys, so a retried request counts once.
use super::op::OpOutcome;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How long a key is remembered: retries come within seconds or minutes.
pub const RETENTION_MS: i64 = 3_600_000;
/// Keys remembered per tenant at most. When full, new keyed requests are
/// refused rather than an unexpired key forgotten (which would let its
/// retry count twice).
pub const MAX_KEYS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// What the request was, so a key reused for another request is caught.
    pub fingerprint: String,
    pub outcome: OpOutcome,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyLog {
    by_key: BTreeMap<String, Remembered>,
    order: VecDeque<(i64, String)>,
}

impl IdempotencyLog {
    pub fn get(&self, key: &str) -> Option<&Remembered> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn remember(&mut self, key: String, fingerprint: String, outcome: OpOutcome, now_ms: i64) {
        self.order.push_back((now_ms, key.clone()));
        self.by_key.insert(
            key,
            Remembered {
                fingerprint,
                outcome,
                at_ms: now_ms,
            },
        );
    }

    /// Forget keys older than the retention. Deterministic in `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| at + RETENTION_MS <= now_ms)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((at, key)) = self.order.pop_front()
            && self.by_key.get(&key).is_some_and(|r| r.at_ms == at)
        {
            self.by_key.remove(&key);
        }
    }
}
