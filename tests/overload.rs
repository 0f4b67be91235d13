//! Black-box: a node driven far past what it can take, for a bounded time
//! and a bounded count. It refuses the excess with RESOURCE_EXHAUSTED
//! (and counts it on `/metrics`), its memory stays under a stated bound,
//! every acknowledged increment is counted exactly once, and it serves
//! normally afterwards.
mod common;

use common::cpu_limit::CpuLimit;
use common::{Node, create_tenant, set_quota};
use futures::StreamExt;
use quotad_proto::credential::AuthChannel;
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the flood lasts...
const LOAD: Duration = Duration::from_secs(6);
/// ...and at most how many requests each stream sends.
const PER_STREAM: u64 = 250_000;
/// The node's share of the machine during the test, in cores (a cgroup).
/// The load generator shares the machine's two cores with the node; with
/// all of them, the node sustains nearly what the generator can offer
/// (about 57,000 decisions/s against 94,000 offered, 1.7x, debug build).
/// Held to a fifth of a core, it sustains about 7,000/s and the flood
/// offers about 30,000/s, 4x: a node that reads slowly holds the rest
/// back in the client through HTTP/2 flow control, so that is about what
/// this machine can offer (the test prints the ratio it got). Starved
/// so, a node whose commit path shared a runtime with request intake
/// answered some admitted requests OUTCOME_UNKNOWN (see `raft::runtime`).
const NODE_CPU: f64 = 0.2;
/// Streams of increments, each with as many in flight as HTTP/2 flow
/// control lets through (the node takes up to 4,096 per stream). With the
/// Batches and unary calls below, the load can hold ~200,000 decisions
/// outstanding, twelve times the node's in-flight bound (16,384).
const STREAMS: usize = 32;
const CONNECTIONS: usize = 4;
/// Tenants the streams spread over (every shard group gets some).
const TENANTS: usize = 8;
/// Unary strict increments kept in flight on one more tenant, twice its
/// queue bound (1,024).
const HOT_UNARY: usize = 2_048;
/// Callers sending Batches of `BATCH_ITEMS` increments over every tenant,
/// one after the other: cheap to send, costly to decide, so they offer
/// many times what the node can decide.
const BATCHERS: usize = 64;
const BATCH_ITEMS: usize = 1_000;
/// The node's peak resident memory (VmHWM) must stay under this. Measured
/// (debug build, the node held to `NODE_CPU`): 111-123 MiB when first
/// written; 148-162 MiB by the quota model (issue 22: a larger binary and
/// more state per tenant; 70-75 MiB before the flood). With the bounds
/// lifted (`--max-in-flight`, `--tenant-queue`, `--commit-queue` at 10^8)
/// the same flood reached 181 MiB then, 235 MiB now, and nothing was
/// refused. (On both cores: 158-190 MiB, and 430 MiB with the bounds
/// lifted.)
const RSS_BOUND_MIB: u64 = 185;
/// Before the flood, the rate the node sustains: Batch callers one Batch
/// at a time each, few enough that no bound is reached (4,000 decisions
/// outstanding at most, 500 per tenant), for this long. The flood's
/// offered rate is reported against it.
const SUSTAINED: Duration = Duration::from_secs(2);
const SUSTAINED_BATCHERS: usize = 4;

/// What one tenant's requests got.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    allowed: AtomicU64,
    shed: AtomicU64,
    /// Answers that are neither a decision nor load shedding.
    other: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn other(&self, what: String) {
        self.other.lock().unwrap().push(what);
    }
}

fn increment(tenant: &str, consistency: pb::Consistency) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: "api_requests".into(),
        amount: 1,
        idempotency_key: String::new(),
        consistency: consistency as i32,
        ..Default::default()
    }
}

/// One stream: send until `deadline` or `PER_STREAM` requests, then close
/// and read every answer.
async fn stream(
    mut client: QuotaServiceClient<AuthChannel>,
    tenant: String,
    consistency: pb::Consistency,
    deadline: Instant,
    tally: Arc<Tally>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1_024);
    let feeder = {
        let tally = tally.clone();
        tokio::spawn(async move {
            for id in 0..PER_STREAM {
                if Instant::now() >= deadline {
                    break;
                }
                let item = pb::batch_item::Item::Increment(increment(&tenant, consistency));
                let req = pb::StreamRequest {
                    id,
                    item: Some(pb::BatchItem { item: Some(item) }),
                };
                if tx.send(req).await.is_err() {
                    break;
                }
                tally.sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut answers = client
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open a stream")
        .into_inner();
    while let Some(a) = answers.next().await {
        let a = match a {
            Ok(a) => a,
            Err(s) => {
                tally.other(format!("stream ended: {s:?}"));
                break;
            }
        };
        tally.answered.fetch_add(1, Ordering::Relaxed);
        match a.result.and_then(|r| r.result) {
            Some(pb::batch_result::Result::Decision(d)) => {
                tally
                    .allowed
                    .fetch_add(u64::from(d.allowed), Ordering::Relaxed);
            }
            Some(pb::batch_result::Result::Error(e)) if e.code == "RESOURCE_EXHAUSTED" => {
                tally.shed.fetch_add(1, Ordering::Relaxed);
            }
            other => tally.other(format!("{other:?}")),
        }
    }
    feeder.await.unwrap();
}

/// One caller of unary strict increments, one at a time, until `deadline`.
async fn unary(
    mut client: QuotaServiceClient<AuthChannel>,
    tenant: String,
    deadline: Instant,
    tally: Arc<Tally>,
) {
    while Instant::now() < deadline {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let r = client
            .increment(increment(&tenant, pb::Consistency::Strict))
            .await;
        tally.answered.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(d) => {
                tally
                    .allowed
                    .fetch_add(u64::from(d.into_inner().allowed), Ordering::Relaxed);
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                tally.shed.fetch_add(1, Ordering::Relaxed);
                // Shed answers say when to retry, as gRPC's retry policy reads it.
                if s.metadata().get("grpc-retry-pushback-ms").is_none() {
                    tally.other(format!("shed without a pushback: {s:?}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(s) => tally.other(format!("{s:?}")),
        }
    }
}

/// One caller of Batches spreading their items over `tenants` (item `i`
/// to tenant `i % n`), one Batch at a time, until `deadline`.
async fn batches(
    mut client: QuotaServiceClient<AuthChannel>,
    tenants: Vec<String>,
    consistency: pb::Consistency,
    deadline: Instant,
    tallies: Vec<Arc<Tally>>,
) {
    let items: Vec<pb::BatchItem> = (0..BATCH_ITEMS)
        .map(|i| pb::BatchItem {
            item: Some(pb::batch_item::Item::Increment(increment(
                &tenants[i % tenants.len()],
                consistency,
            ))),
        })
        .collect();
    let tally = |i: usize| &tallies[i % tenants.len()];
    while Instant::now() < deadline {
        for i in 0..BATCH_ITEMS {
            tally(i).sent.fetch_add(1, Ordering::Relaxed);
        }
        let results = match client
            .batch(pb::BatchRequest {
                items: items.clone(),
                consistency: consistency as i32,
            })
            .await
        {
            Ok(r) => r.into_inner().results,
            Err(s) => {
                tally(0).other(format!("batch failed: {s:?}"));
                return;
            }
        };
        if results.len() != BATCH_ITEMS {
            tally(0).other(format!("{} answers to {BATCH_ITEMS} items", results.len()));
            return;
        }
        for (i, r) in results.into_iter().enumerate() {
            let t = tally(i);
            t.answered.fetch_add(1, Ordering::Relaxed);
            match r.result {
                Some(pb::batch_result::Result::Decision(d)) => {
                    t.allowed.fetch_add(u64::from(d.allowed), Ordering::Relaxed);
                }
                Some(pb::batch_result::Result::Error(e)) if e.code == "RESOURCE_EXHAUSTED" => {
                    t.shed.fetch_add(1, Ordering::Relaxed);
                }
                other => t.other(format!("{other:?}")),
            }
        }
    }
}

/// A strict increment once the load is over, retried while still shed
/// (fast increments may still be filling the commit queues); once it is
/// answered, everything sent before it for the tenant is applied.
async fn barrier(client: &mut QuotaServiceClient<AuthChannel>, tenant: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .increment(increment(tenant, pb::Consistency::Strict))
            .await
        {
            Ok(d) => return d.into_inner().allowed,
            Err(s) if s.code() == tonic::Code::ResourceExhausted && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(s) => panic!("the node does not serve after the load: {s:?}"),
        }
    }
}

/// Every other caller fast, the rest strict: fast increments are answered
/// before commit, so the commit queue must refuse rather than grow.
fn half_fast(i: usize) -> pb::Consistency {
    if i.is_multiple_of(2) {
        pb::Consistency::Fast
    } else {
        pb::Consistency::Strict
    }
}

/// The sum of `quotad_requests_shed_total` over its reasons, per reason.
fn shed_metric(text: &str) -> (f64, Vec<String>) {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("quotad_requests_shed_total{"))
        .collect();
    let total = lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (total, lines.iter().map(|l| l.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_bounded_memory_and_nothing_acknowledged_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Default limits: what is tested is what an operator runs.
    let node = Node::start(dir.path());
    let mut tenants = Vec::new();
    for i in 0..=TENANTS {
        let t = create_tenant(&node, &format!("flood-{i}"), "FREE").await;
        // Blocking, so an over-count would show as a usage above the
        // allowed answers rather than hide in an unlimited quota.
        set_quota(
            &node,
            &t,
            "api_requests",
            json!({"limit": 1_000_000_000u64, "action": "block"}),
        )
        .await;
        tenants.push(t);
    }
    let hot = tenants.pop().unwrap();
    let tallies: Vec<Arc<Tally>> = (0..=TENANTS).map(|_| Arc::default()).collect();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(node.grpc().await);
    }

    let _cpu = CpuLimit::apply(node.pid(), NODE_CPU);
    let started = Instant::now();
    let mut calm = Vec::new();
    for b in 0..SUSTAINED_BATCHERS {
        let consistency = half_fast(b);
        calm.push(tokio::spawn(batches(
            clients[b % CONNECTIONS].clone(),
            tenants.clone(),
            consistency,
            started + SUSTAINED,
            tallies[..TENANTS].to_vec(),
        )));
    }
    for t in calm {
        t.await.unwrap();
    }
    let calm_secs = started.elapsed().as_secs_f64();
    let total = |f: fn(&Tally) -> u64| tallies.iter().map(|t| f(t)).sum::<u64>();
    let calm_answered = total(|t| t.answered.load(Ordering::Relaxed));
    assert_eq!(
        total(|t| t.shed.load(Ordering::Relaxed)),
        0,
        "a load within every bound was refused"
    );
    let sustained_rate = calm_answered as f64 / calm_secs;

    let rss_before = node.memory_kib("VmRSS");
    let flood_started = Instant::now();
    let deadline = flood_started + LOAD;
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let consistency = half_fast(s);
        tasks.push(tokio::spawn(stream(
            clients[s % CONNECTIONS].clone(),
            tenants[s % TENANTS].clone(),
            consistency,
            deadline,
            tallies[s % TENANTS].clone(),
        )));
    }
    for b in 0..BATCHERS {
        let consistency = half_fast(b);
        tasks.push(tokio::spawn(batches(
            clients[b % CONNECTIONS].clone(),
            tenants.clone(),
            consistency,
            deadline,
            tallies[..TENANTS].to_vec(),
        )));
    }
    for u in 0..HOT_UNARY {
        tasks.push(tokio::spawn(unary(
            clients[u % CONNECTIONS].clone(),
            hot.clone(),
            deadline,
            tallies[TENANTS].clone(),
        )));
    }
    // Bounded: the feeders stop at the deadline; answers to what was sent
    // then follow (a queue's worth, not an unbounded backlog).
    let drained = tokio::time::timeout(LOAD + Duration::from_secs(60), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert!(drained.is_ok(), "answers still missing 60 s after the load");

    let hwm = node.memory_kib("VmHWM");
    let sum = total;
    let sent = sum(|t| t.sent.load(Ordering::Relaxed));
    let answered = sum(|t| t.answered.load(Ordering::Relaxed));
    let shed = sum(|t| t.shed.load(Ordering::Relaxed));
    let allowed = sum(|t| t.allowed.load(Ordering::Relaxed));
    let hot_shed = tallies[TENANTS].shed.load(Ordering::Relaxed);
    // The feeders stop at the deadline: what was sent, was sent within it.
    let offered_rate = (sent - calm_answered) as f64 / LOAD.as_secs_f64();
    eprintln!(
        "overload: sustained {sustained_rate:.0} decisions/s within the bounds; the flood \
         offered {offered_rate:.0}/s ({:.1}x) for {} s: {sent} sent in all, {answered} \
         answered, {allowed} allowed, {shed} shed ({hot_shed} unary); RSS {} MiB before, \
         peak {} MiB",
        offered_rate / sustained_rate,
        LOAD.as_secs(),
        rss_before / 1024,
        hwm / 1024
    );
    for t in &tallies {
        let other = t.other.lock().unwrap();
        assert!(
            other.is_empty(),
            "answers other than a decision or load shedding ({} of them): {:?}",
            other.len(),
            &other[..other.len().min(5)]
        );
    }
    assert_eq!(answered, sent, "every request answered");
    assert!(shed > 0, "nothing was refused: the node took all {sent}");
    assert!(
        hot_shed > 0,
        "the hot tenant's unary flood was never refused"
    );
    assert!(
        hwm < RSS_BOUND_MIB * 1024,
        "peak RSS {} MiB is over the bound of {RSS_BOUND_MIB} MiB",
        hwm / 1024
    );

    // Every refusal was counted, by the bound that refused it.
    let text = common::metrics_text(&node).await;
    let (metric, lines) = shed_metric(&text);
    assert_eq!(metric, shed as f64, "{lines:?}");

    // Usage is exactly what was acknowledged as allowed, tenant by tenant.
    let mut c = node.grpc().await;
    for (tenant, tally) in tenants.iter().chain([&hot]).zip(&tallies) {
        let extra = u64::from(barrier(&mut c, tenant).await);
        let used = common::api_requests_used(&node, tenant).await;
        assert_eq!(
            used,
            tally.allowed.load(Ordering::Relaxed) + extra,
            "tenant {tenant}: usage is not the allowed answers"
        );
    }

    // And it serves normally: a caller at a sane pace is never refused.
    for _ in 0..100 {
        let d = c
            .increment(increment(&hot, pb::Consistency::Strict))
            .await
            .expect("served after the load")
            .into_inner();
        assert!(d.allowed);
    }
    let ready = common::client()
        .get(node.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
