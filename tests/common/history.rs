//! The history checker for cluster tests. Each increment has its own
//! idempotency key and amount 1; the history records what the client was
//! told. After the run:
//! - before anything is re-sent, the usage lies between the acknowledged
//!   admitted increments and those plus the requests without an answer
//!   (a re-send could otherwise re-admit a lost write and hide it);
//! - every key is re-sent: an answered key must come back `replayed` with
//!   its first answer (a key the cluster forgot is a lost write), and a
//!   request left without an answer learns it (a replay: it counted; else
//!   it never reached the state machine and counts now);
//! - then every admitted increment is counted: usage == admitted, and
//!   admitted usage never exceeds the blocking limit.
use futures::StreamExt;
use quotad_proto::client::QuotaClient;
use quotad_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys [`History::resolve`] re-sends at once.
const RESEND_CONCURRENCY: usize = 16;

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

    /// One request without a definite answer, and why (for diagnostics).
    pub fn first_unknown(&self) -> Option<(String, String)> {
        self.ops.lock().unwrap().iter().find_map(|(k, o)| match o {
            Outcome::Unknown(why) => Some((k.clone(), why.clone())),
            _ => None,
        })
    }

    /// The keys whose (resolved) outcome is `Admitted`.
    pub fn admitted_keys(&self) -> Vec<String> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| **o == Outcome::Admitted)
            .map(|(k, _)| k.clone())
            .collect()
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

    /// Check the usage against the answers, then re-send every key (see
    /// the module comment).
    pub async fn resolve(&self, client: &QuotaClient, tenant: &str, quota: &str) {
        self.resolve_with(client, tenant, quota, |_| "").await
    }

    /// [`History::resolve`] for increments sent in a scope: `scope_of`
    /// names each key's (re-sent in the same scope).
    pub async fn resolve_with<'a>(
        &self,
        client: &QuotaClient,
        tenant: &str,
        quota: &str,
        scope_of: impl Fn(&str) -> &'a str,
    ) {
        let scope_of = &scope_of;
        let ops: Vec<(String, Outcome)> = self
            .ops
            .lock()
            .unwrap()
            .iter()
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        let acknowledged = ops.iter().filter(|(_, o)| *o == Outcome::Admitted).count() as u64;
        let unknown = ops
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Unknown(_)))
            .count() as u64;
        let before = used(client, tenant, quota).await;
        assert!(
            (acknowledged..=acknowledged + unknown).contains(&before),
            "usage {before} before any re-send: {acknowledged} increments were acknowledged as \
             admitted and {unknown} have no answer (a lower usage lost acknowledged writes)"
        );
        // Re-sent several at a time: each key is independent of the others.
        let resend = |(key, before): (String, Outcome)| async move {
            let req = pb::IncrementRequest {
                tenant_id: tenant.into(),
                quota: quota.into(),
                amount: 1,
                idempotency_key: key.clone(),
                consistency: pb::Consistency::Strict as i32,
                scope: scope_of(&key).to_string(),
                ..Default::default()
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let answer = loop {
                let r = client.increment(req.clone()).await;
                if r.is_ok() || Instant::now() > deadline {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            (key, before, answer)
        };
        let answers: Vec<_> = futures::stream::iter(ops)
            .map(resend)
            .buffer_unordered(RESEND_CONCURRENCY)
            .collect()
            .await;
        for (key, before, answer) in answers {
            let now = outcome(&answer);
            if let Outcome::Unknown(why) = &now {
                panic!("key {key} still has no definite answer: {why}");
            }
            let replayed = answer.as_ref().is_ok_and(|d| d.replayed);
            if !matches!(before, Outcome::Unknown(_)) {
                assert!(
                    replayed,
                    "key {key} was answered {before:?} but the cluster had forgotten it (the \
                     re-send was decided anew: {now:?}): a lost write"
                );
                assert_eq!(now, before, "key {key} replayed a different answer");
            }
            self.ops.lock().unwrap().insert(key, now);
        }
    }

    /// The invariants after [`History::resolve`], against the usage the
    /// cluster reports.
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

/// The quota's usage as the cluster reports it.
async fn used(client: &QuotaClient, tenant: &str, quota: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .get_usage(pb::GetUsageRequest {
                tenant_id: tenant.into(),
                quota: quota.into(),
            })
            .await;
        match r {
            Ok(u) => return u.quotas.first().map_or(0, |q| q.used),
            Err(e) if Instant::now() > deadline => panic!("cannot read usage: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
