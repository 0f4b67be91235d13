//! Increments for cluster and fault tests: one keyed increment of 1 per
//! request on a tenant's `llm_tokens`, and a bounded load of them from
//! several workers that records every answer (into a [`History`] and, with
//! its decision and times, for the test to read).
use super::history::{History, Outcome, outcome};
use super::{Node, create_tenant, set_quota};
use quotad_proto::client::QuotaClient;
use quotad_proto::v1 as pb;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const QUOTA: &str = "llm_tokens";

/// A PROFESSIONAL tenant whose `llm_tokens` is a never-resetting counter
/// blocking at `limit`.
pub async fn tenant_with_limit(node: &Node, slug: &str, limit: u64) -> String {
    let tenant = create_tenant(node, slug, "PROFESSIONAL").await;
    set_quota(
        node,
        &tenant,
        QUOTA,
        json!({"kind": "counter", "period": "never", "limit": limit, "action": "block"}),
    )
    .await;
    tenant
}

/// A strict increment of 1 with idempotency key `key`.
pub fn inc(tenant: &str, key: String) -> pb::IncrementRequest {
    inc_in(tenant, key, pb::Consistency::Strict)
}

pub fn inc_in(tenant: &str, key: String, consistency: pb::Consistency) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: QUOTA.into(),
        amount: 1,
        idempotency_key: key,
        consistency: consistency as i32,
        ..Default::default()
    }
}

/// The tenant's `llm_tokens` usage.
pub async fn usage(client: &QuotaClient, tenant: &str) -> u64 {
    let u = client
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant.into(),
            quota: QUOTA.into(),
        })
        .await
        .expect("usage");
    u.quotas[0].used
}

/// One answered request of a [`Load`].
#[derive(Debug, Clone)]
pub struct Answer {
    pub key: String,
    pub sent: Instant,
    pub answered: Instant,
    pub result: Result<pb::Decision, String>,
}

impl Answer {
    pub fn admitted(&self) -> bool {
        self.result.as_ref().is_ok_and(|d| d.allowed)
    }
}

/// `workers` tasks sending increments with keys `<prefix>-<n>` until `max`
/// are issued or [`Load::stop`] is called.
pub struct Load {
    pub history: Arc<History>,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        client: Arc<QuotaClient>,
        tenant: &str,
        consistency: pb::Consistency,
        workers: usize,
        max: usize,
        prefix: &str,
    ) -> Load {
        let history = Arc::new(History::default());
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers)
            .map(|_| {
                let (client, history, answers, stop, issued) = (
                    client.clone(),
                    history.clone(),
                    answers.clone(),
                    stop.clone(),
                    issued.clone(),
                );
                let (tenant, prefix) = (tenant.to_string(), prefix.to_string());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = issued.fetch_add(1, Ordering::SeqCst);
                        if n >= max {
                            return;
                        }
                        let key = format!("{prefix}-{n}");
                        let sent = Instant::now();
                        let r = client
                            .increment(inc_in(&tenant, key.clone(), consistency))
                            .await;
                        let answered = Instant::now();
                        history.record_sent(&key, sent, outcome(&r));
                        let failed = r.is_err();
                        answers.lock().unwrap().push(Answer {
                            key,
                            sent,
                            answered,
                            result: r.map_err(|s| format!("{:?}: {}", s.code(), s.message())),
                        });
                        if failed {
                            // As a client would: not straight back at a
                            // node that just failed.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            history,
            answers,
            stop,
            workers,
        }
    }

    /// Requests with a definite answer (admitted or denied) so far.
    pub fn answered(&self) -> usize {
        self.history.count(|o| !matches!(o, Outcome::Unknown(_)))
    }

    pub fn admitted(&self) -> usize {
        self.history.count(|o| *o == Outcome::Admitted)
    }

    /// A copy of every answer so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Wait until `done(self)`, failing the test after `timeout`.
    pub async fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&Load) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?} ({} answered, {} admitted)",
                self.answered(),
                self.admitted()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop issuing and wait for the requests in flight.
    pub async fn stop(self) -> (Arc<History>, Vec<Answer>) {
        self.stop.store(true, Ordering::SeqCst);
        self.finish().await
    }

    /// Wait until every worker is done (all `max` issued), or stop after
    /// `timeout`.
    pub async fn finish_within(self, timeout: Duration) -> (Arc<History>, Vec<Answer>) {
        let deadline = Instant::now() + timeout;
        while !self.workers.iter().all(|w| w.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop().await
    }

    async fn finish(self) -> (Arc<History>, Vec<Answer>) {
        for w in self.workers {
            w.await.expect("load worker");
        }
        let answers = self.answers.lock().unwrap().clone();
        (self.history, answers)
    }
}
