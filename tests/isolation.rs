//! Joining safely and node pools, on real processes: a node that joins and
//! dies takes no quorum (it is a learner until enough replicas can vote)
//! and an operator removes it; its failures are logged once with a count.
//! A tenant's dedicated group pinned to a pool of reserved nodes lives only
//! there, nothing else does, and it keeps answering through a kill -9 of
//! one of the pool's nodes.
mod common;

use common::cluster::TestCluster;
use common::load::{inc, tenant_with_limit, usage};
use common::{NodeOptions, create_tenant, http};
use quotad_proto::cluster::ClusterStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `quotad cluster remove ID` through node 0, as an operator.
fn remove(c: &TestCluster, id: u64) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args([
            "--grpc",
            &c.node(0).grpc,
            "cluster",
            "remove",
            &id.to_string(),
        ])
        .args(["--timeout-secs", "60"])
        .args(["--token", &common::operator()])
        .output()
        .unwrap()
}

/// The message of a log line, without its timestamp: identical failures
/// read the same.
fn message(line: &str) -> String {
    line.split_once('Z')
        .map_or(line, |(_, rest)| rest)
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_joins_and_dies_takes_no_quorum_and_an_operator_removes_it() {
    let _serial = SERIAL.lock().await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("node-0.log");
    let log_for = log.clone();
    let mut c = TestCluster::start_with(1, &["--shards", "2"], move |i, setup| {
        if i == 0 {
            setup.options = NodeOptions {
                log_file: Some(log_for.clone()),
                log_filter: Some("info,openraft=error".into()),
            };
        }
    })
    .await;
    let tenant = tenant_with_limit(c.node(0), "survivor", 1_000_000).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    client
        .increment(inc(&tenant, "before".into()))
        .await
        .unwrap();

    // A second node joins and is killed at once.
    let dead = c.add_node().await;
    let dead_id = c.members[dead].id;
    c.kill9(dead);
    let killed_at = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);

    // Node 0 alone keeps committing: strict increments and a new tenant
    // (a meta-group write), each within a few seconds, for ten seconds.
    let until = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while Instant::now() < until {
        tokio::time::timeout(
            Duration::from_secs(5),
            client.increment(inc(&tenant, format!("alone-{n}"))),
        )
        .await
        .unwrap_or_else(|_| panic!("increment {n} hung: the quorum is gone"))
        .unwrap_or_else(|e| panic!("increment {n}: {e:?}"));
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        create_tenant(c.node(0), "after-the-join", "FREE"),
    )
    .await
    .expect("a meta-group write commits");
    let status: ClusterStatus = c.status_from(0).await.unwrap();
    for g in &status.groups {
        assert_eq!(g.voters, vec![c.members[0].id], "group {}: {g:?}", g.group);
    }
    assert_eq!(usage(&client, &tenant).await, 1 + n);

    // The operator removes the node that never came back.
    let out = remove(&c, dead_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.status_from(0).await.unwrap();
        let gone = s.nodes.iter().all(|x| x.id != dead_id)
            && s.groups.iter().all(|g| {
                !g.replicas.contains(&dead_id)
                    && !g.voters.contains(&dead_id)
                    && !g.learners.contains(&dead_id)
            });
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "not removed: {s:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ten seconds of retrying against a dead node: no failure logged over
    // and over.
    let text = std::fs::read_to_string(&log).unwrap();
    let since_kill = &text[(killed_at as usize).min(text.len())..];
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in since_kill.lines().filter(|l| !l.trim().is_empty()) {
        *counts.entry(message(line)).or_default() += 1;
    }
    let worst = counts.iter().max_by_key(|(_, n)| **n);
    if let Some((line, times)) = worst {
        assert!(*times <= 5, "logged {times} times: {line}");
    }
    assert!(
        since_kill.lines().count() < 200,
        "{} lines in ten seconds:\n{since_kill}",
        since_kill.lines().count()
    );
}

/// Node `i`'s id.
fn id(c: &TestCluster, i: usize) -> u64 {
    c.members[i].id
}

/// `GET …/placement` as the operator.
async fn placement(c: &TestCluster, tenant: &str) -> Value {
    let v = common::get_json(
        &c.node(0)
            .url(&format!("/api/v1/tenants/{tenant}/placement")),
    )
    .await;
    v["data"].clone()
}

/// Wait until the meta group is on `n` nodes.
async fn meta_on(c: &TestCluster, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.status_from(0).await.unwrap();
        let meta = s.groups.iter().find(|g| g.group == 0).unwrap();
        if meta.voters.len() + meta.learners.len() == n && meta.replicas.len() == n {
            return;
        }
        assert!(Instant::now() < deadline, "meta not on {n} nodes: {meta:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until `group` is held by exactly `pool` (with `voters` of them
/// voting) and no other group but the meta group has a copy there.
async fn pinned(c: &TestCluster, group: u64, pool: &[u64], voters: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.status_from(0).await.unwrap();
        let mine = s.groups.iter().find(|g| g.group == group);
        let mut members: Vec<u64> = mine
            .map(|g| g.voters.iter().chain(&g.learners).copied().collect())
            .unwrap_or_default();
        members.sort_unstable();
        let others_clear = s.groups.iter().all(|g| {
            g.group == group
                || g.group == 0
                || g.replicas
                    .iter()
                    .chain(&g.voters)
                    .chain(&g.learners)
                    .all(|n| !pool.contains(n))
        });
        if members == pool
            && mine.is_some_and(|g| g.voters.len() == voters && g.replicas.len() == pool.len())
            && others_clear
        {
            return;
        }
        assert!(Instant::now() < deadline, "not settled: {s:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Strict increments until `want` are acknowledged in all, each retried
/// with its key until answered (a retry counts once); the count.
async fn spend_until(
    client: &quotad_proto::client::QuotaClient,
    tenant: &str,
    from: u64,
    want: u64,
    prefix: &str,
) -> u64 {
    let until = Instant::now() + Duration::from_secs(40);
    let mut acknowledged = from;
    while acknowledged < want {
        assert!(
            Instant::now() < until,
            "{acknowledged} of {want} acknowledged in 40 s"
        );
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            client.increment(inc(tenant, format!("{prefix}-{acknowledged}"))),
        )
        .await;
        if let Ok(Ok(_)) = r {
            acknowledged += 1;
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_pinned_to_a_node_pool_lives_only_there_and_survives_a_kill_9() {
    let _serial = SERIAL.lock().await;
    // Four nodes: two shared, two reserved for pool "acme" (zones a, b).
    let mut c = TestCluster::start(2, &["--shards", "2"]).await;
    for zone in ["a", "b"] {
        c.add_node_args(&[
            "--node-label",
            &format!("pool=acme,zone={zone}"),
            "--reserved",
        ])
        .await;
    }
    let mut pool: Vec<u64> = (2..4).map(|i| id(&c, i)).collect();
    meta_on(&c, 4).await;
    let tenant = create_tenant(c.node(0), "pooled", "ENTERPRISE").await;
    common::set_quota(
        c.node(0),
        &tenant,
        common::load::QUOTA,
        json!({"kind": "counter", "period": "never", "limit": 1_000_000, "action": "block"}),
    )
    .await;
    let client = common::quota_client(c.grpc_addrs()).await;
    let mut acknowledged = spend_until(&client, &tenant, 0, 20, "pre").await;

    // Pinning to a pool nobody is in is refused by name.
    let r = http()
        .post(
            c.node(0)
                .url(&format!("/api/v1/tenants/{tenant}/dedicated")),
        )
        .json(&json!({"pool": "nowhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "pool", "{body}");

    let r = http()
        .post(
            c.node(0)
                .url(&format!("/api/v1/tenants/{tenant}/dedicated")),
        )
        .json(&json!({"pool": "acme"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let group = body["data"]["group"].as_u64().unwrap();
    assert_eq!(body["data"]["level"], "dedicated_instance", "{body}");

    // Its replicas only on the two pool nodes (one votes, one follows as a
    // learner), and no other group's there.
    pinned(&c, group, &pool, 1).await;
    let p = placement(&c, &tenant).await;
    assert_eq!(
        (&p["level"], &p["pool"]),
        (&json!("dedicated_instance"), &json!("acme")),
        "{p}"
    );
    let replicas = p["replicas"].as_array().unwrap();
    let zones: std::collections::BTreeSet<&str> = replicas
        .iter()
        .map(|r| r["labels"]["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), 2, "one replica per zone: {p}");
    assert!(replicas.iter().all(|r| r["reserved"] == true), "{p}");

    // Kill -9 the pool node that does not vote: the tenant keeps answering.
    let s = c.status_from(0).await.unwrap();
    let learner = s.groups.iter().find(|g| g.group == group).unwrap().learners[0];
    let learner_i = c.index_of(learner);
    c.kill9(learner_i);
    acknowledged = spend_until(&client, &tenant, acknowledged, acknowledged + 30, "two").await;
    assert_eq!(usage(&client, &tenant).await, acknowledged);
    c.restart(learner_i);

    // A third pool node: three voters, one per zone; kill -9 the one that
    // leads, and the tenant keeps answering with nothing lost.
    let third = c
        .add_node_args(&["--node-label", "pool=acme,zone=c", "--reserved"])
        .await;
    pool.push(id(&c, third));
    pool.sort_unstable();
    meta_on(&c, 5).await;
    pinned(&c, group, &pool, 3).await;
    let leader = c.leader_of(group).await;
    c.kill9(c.index_of(leader));
    acknowledged = spend_until(&client, &tenant, acknowledged, acknowledged + 30, "three").await;
    assert_eq!(usage(&client, &tenant).await, acknowledged);
    let s = c.status_from(0).await.unwrap();
    let g = s.groups.iter().find(|g| g.group == group).unwrap();
    assert!(pool.contains(&g.leader) && g.leader != leader, "{g:?}");
}
