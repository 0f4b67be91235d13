//! A node whose clock is an hour off, leading a tenant's group: its stamps
//! stay within `--max-clock-skew-ms` of the other nodes' clocks, so after a
//! failover (or while it leads) the tenant's time keeps moving: a 2 s hold
//! expires in about 2 s, not in an hour. Real processes, the node's clock
//! shifted with `--clock-offset-ms`.
mod common;

use common::cluster::TestCluster;
use common::{create_tenant, set_quota};
use quotad_proto::cluster::cluster_client::ClusterClient;
use quotad_proto::v1 as pb;
use serde_json::json;
use std::time::{Duration, Instant};

const HOUR_MS: &str = "3600000";

/// Make node `i` the leader of `group`, as an operator would: `quotad
/// cluster lead` names it the group's leader in the placement and the
/// group's leader hands over (a bare election loses to the followers'
/// leader leases and to the placement's own choice of leader).
fn lead(c: &TestCluster, i: usize, group: u64) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["--grpc", &c.node(0).grpc, "cluster", "lead"])
        .args([group.to_string(), c.members[i].id.to_string()])
        .args(["--timeout-secs", "60"])
        .args(["--token", &common::operator()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node {i} never led group {group}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is led by node"));
}

/// Hold all 5 units of `quota` for 2 s through node `i`, retrying (with
/// the same idempotency key) while a failover is under way.
async fn hold_everything(c: &TestCluster, i: usize, tenant: &str, quota: &str) {
    let mut client = common::grpc_at(&c.node(i).grpc).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = client
            .reserve(pb::ReserveRequest {
                tenant_id: tenant.into(),
                quota: quota.into(),
                amount: 5,
                ttl_ms: 2_000,
                idempotency_key: format!("hold-{quota}"),
                consistency: pb::Consistency::Strict as i32,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => break r.into_inner(),
            Err(e) => assert!(Instant::now() < deadline, "no hold within 30 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(r.decision.as_ref().unwrap().allowed, "{r:?}");
}

/// Seconds until a check through node `i` admits a unit again (the hold
/// expired), or `None` after 30 s.
async fn hold_expires(c: &TestCluster, i: usize, tenant: &str, quota: &str) -> Option<f64> {
    let start = Instant::now();
    let mut client = common::grpc_at(&c.node(i).grpc).await;
    while start.elapsed() < Duration::from_secs(30) {
        let r = client
            .check(pb::CheckRequest {
                tenant_id: tenant.into(),
                quota: quota.into(),
                amount: 1,
                ..Default::default()
            })
            .await;
        if r.is_ok_and(|r| r.into_inner().allowed) {
            return Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_an_hour_off_does_not_freeze_tenants_time() {
    let mut c = TestCluster::start(3, &[]).await;
    let tenant = create_tenant(c.node(0), "skew", "PROFESSIONAL").await;
    // A quota for each hold, so none waits on another.
    for quota in ["stamped", "ahead", "behind"] {
        set_quota(
            c.node(0),
            &tenant,
            quota,
            json!({"kind": "counter", "period": "never", "limit": 5, "action": "block"}),
        )
        .await;
    }
    let channel = tonic::transport::Endpoint::from_shared(c.node(0).grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let shards = ClusterClient::new(common::service_bearer().on(channel))
        .shard_map(quotad_proto::cluster::ShardMapRequest {})
        .await
        .unwrap()
        .into_inner()
        .shards;
    let group =
        quotad_proto::routing::shard_of(uuid::Uuid::parse_str(&tenant).unwrap().as_u128(), shards);

    // An hour ahead, leading (it stamps a hold), then killed: the true node
    // that takes over must see time move, so its own 2 s hold expires.
    c.kill9(1);
    c.restart_with(1, &["--clock-offset-ms", HOUR_MS]);
    c.wait_settled(Duration::from_secs(90)).await;
    lead(&c, 1, group);
    hold_everything(&c, 1, &tenant, "stamped").await;
    let metrics = common::metrics_text(c.node(1)).await;
    let offset = metric(&metrics, "quotad_clock_offset_seconds").unwrap();
    assert!(
        (3000.0..4000.0).contains(&offset),
        "node 1 measures itself an hour ahead: {offset}"
    );
    assert!(metric(&metrics, "quotad_clock_skew_clamped_total").unwrap() > 0.0);
    c.kill9(1);
    hold_everything(&c, 0, &tenant, "ahead").await;
    let after = hold_expires(&c, 0, &tenant, "ahead").await;
    assert!(
        after.is_some(),
        "after failover from a leader an hour ahead, a 2 s hold did not expire in 30 s"
    );

    // An hour behind, leading: its time must not stand still meanwhile.
    c.restart_with(1, &["--clock-offset-ms", &format!("-{HOUR_MS}")]);
    c.wait_settled(Duration::from_secs(90)).await;
    lead(&c, 1, group);
    hold_everything(&c, 1, &tenant, "behind").await;
    let after = hold_expires(&c, 1, &tenant, "behind").await;
    assert!(
        after.is_some(),
        "under a leader an hour behind, a 2 s hold did not expire in 30 s"
    );
}
