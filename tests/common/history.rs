//! The history checker for cluster tests. Each increment has its own
//! idempotency key and amount 1; the history records what the client was
//! told. After the run, every request left without a definite answer is
//! retried with its key (a replay tells whether it counted), and then:
//! - every acknowledged admitted increment is counted: usage == admitted;
//! - admitted usage never exceeds the blocking limit;
//! - a key's answer never changes (a retried key replays its first answer).
use quotad_proto::client::QuotaClient;
use quotad_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Admitted,
    Denied,
    /// No definite answer (error after retries): may or may not count.
    Unknown(String),
}

#[derive(Default)]
pub struct History {
    ops: Mutex<BTreeMap<String, Outcome>>,
    /// When each request with a definite answer was sent, and answered.
    answered: Mutex<Vec<(Instant, Instant)>>,
}

pub fn outcome(r: &Result<pb::Decision, tonic::Status>) -> Outcome {
    match r {
        Ok(d) if d.allowed => Outcome::Admitted,
        Ok(_) => Outcome::Denied,
        Err(s) => Outcome::Unknown(format!("{:?}: {}", s.code(), s.message())),
    }
}

impl History {
    /// Record the answer to a request sent at `sent`.
    pub fn record_sent(&self, key: &str, sent: Instant, o: Outcome) {
        if !matches!(o, Outcome::Unknown(_)) {
            self.answered.lock().unwrap().push((sent, Instant::now()));
        }
        self.ops.lock().unwrap().insert(key.to_string(), o);
    }

    pub fn record(&self, key: &str, o: Outcome) {
        if !matches!(o, Outcome::Unknown(_)) {
            let now = Instant::now();
            self.answered.lock().unwrap().push((now, now));
        }
        self.ops.lock().unwrap().insert(key.to_string(), o);
    }

    pub fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.ops
            .lock()
            .unwrap()
            .values()
            .filter(|o| want(o))
            .count()
    }

    /// The first definite answer to a request sent at or after `t`.
    pub fn first_answer_after(&self, t: Instant) -> Option<Instant> {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(sent, _)| *sent >= t)
            .map(|(_, answered)| *answered)
            .min()
    }

    /// Retry every unknown with its key until it is definite; a key
    /// already definite must replay the same answer.
    pub async fn resolve(&self, client: &QuotaClient, tenant: &str, quota: &str) {
        let ops: Vec<(String, Outcome)> = self
            .ops
            .lock()
            .unwrap()
            .iter()
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, before) in ops {
            let req = pb::IncrementRequest {
                tenant_id: tenant.into(),
                quota: quota.into(),
                amount: 1,
                idempotency_key: key.clone(),
                consistency: pb::Consistency::Strict as i32,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let now = loop {
                let r = client.increment(req.clone()).await;
                let o = outcome(&r);
                if !matches!(o, Outcome::Unknown(_)) || Instant::now() > deadline {
                    break o;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if let Outcome::Unknown(why) = &now {
                panic!("key {key} still has no definite answer: {why}");
            }
            if !matches!(before, Outcome::Unknown(_)) {
                assert_eq!(now, before, "key {key} replayed a different answer");
            }
            self.ops.lock().unwrap().insert(key, now);
        }
    }

    /// The invariants, against the usage the cluster reports.
    pub fn check(&self, usage: u64, limit: u64) {
        let admitted = self.count(|o| *o == Outcome::Admitted) as u64;
        let unknown = self.count(|o| matches!(o, Outcome::Unknown(_)));
        assert_eq!(unknown, 0, "resolve() first");
        assert_eq!(
            usage, admitted,
            "usage must equal the admitted increments (each acknowledged one counted, no other)"
        );
        assert!(
            usage <= limit,
            "usage {usage} exceeds the blocking limit {limit}"
        );
    }
}
