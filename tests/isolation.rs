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
    let v: Value = http()
        .get(
            c.node(0)
                .url(&format!("/api/v1/tenants/{tenant}/placement")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_pinned_to_a_node_pool_lives_only_there_and_survives_a_kill_9() {
    let _serial = SERIAL.lock().await;
    // Two shared nodes, three reserved for pool "acme" in three zones.
    let mut c = TestCluster::start(2, &["--shards", "2"]).await;
    for zone in ["a", "b", "c"] {
        c.add_node_args(&[
            "--node-label",
            &format!("pool=acme,zone={zone}"),
            "--reserved",
        ])
        .await;
    }
    let pool: Vec<u64> = (2..5).map(|i| id(&c, i)).collect();
    // Every node holds the meta group (one node at a time).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.status_from(0).await.unwrap();
        let meta = s.groups.iter().find(|g| g.group == 0).unwrap();
        if meta.voters.len() + meta.learners.len() == 5 && meta.voters.len() == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "meta not on every node: {meta:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tenant = create_tenant(c.node(0), "pooled", "ENTERPRISE").await;
    common::set_quota(
        c.node(0),
        &tenant,
        common::load::QUOTA,
        json!({"kind": "counter", "period": "never", "limit": 1_000_000, "action": "block"}),
    )
    .await;
    let client = common::quota_client(c.grpc_addrs()).await;
    for k in 0..20 {
        client
            .increment(inc(&tenant, format!("pre-{k}")))
            .await
            .unwrap();
    }

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

    // Placement settles: the pool's three nodes vote in the tenant's
    // group, and no other group keeps a replica on them.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.status_from(0).await.unwrap();
        let mine = s.groups.iter().find(|g| g.group == group);
        let mut voters = mine.map(|g| g.voters.clone()).unwrap_or_default();
        voters.sort_unstable();
        let others_clear = s.groups.iter().all(|g| {
            g.group == group
                || g.group == 0
                || g.replicas
                    .iter()
                    .chain(&g.voters)
                    .chain(&g.learners)
                    .all(|n| !pool.contains(n))
        });
        if voters == pool && mine.is_some_and(|g| g.replicas.len() == 3) && others_clear {
            break;
        }
        assert!(Instant::now() < deadline, "not settled: {s:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let p = placement(&c, &tenant).await;
    assert_eq!(p["level"], "dedicated_instance", "{p}");
    assert_eq!(p["pool"], "acme", "{p}");
    let replicas = p["replicas"].as_array().unwrap();
    let zones: std::collections::BTreeSet<&str> = replicas
        .iter()
        .map(|r| r["labels"]["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), 3, "one replica per zone: {p}");
    assert!(
        replicas
            .iter()
            .all(|r| r["role"] == "voter" && r["reserved"] == true)
    );

    // Kill -9 the pool node that leads the group; the tenant keeps
    // answering, and nothing acknowledged is lost.
    let leader = c.leader_of(group).await;
    c.kill9(c.index_of(leader));
    let mut acknowledged = 20;
    let until = Instant::now() + Duration::from_secs(30);
    let mut k = 0;
    while acknowledged < 70 {
        assert!(
            Instant::now() < until,
            "{acknowledged} acknowledged in 30 s"
        );
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            client.increment(inc(&tenant, format!("post-{k}"))),
        )
        .await;
        if let Ok(Ok(_)) = r {
            acknowledged += 1;
            k += 1;
        }
    }
    assert_eq!(usage(&client, &tenant).await, acknowledged);
    let s = c.status_from(0).await.unwrap();
    let g = s.groups.iter().find(|g| g.group == group).unwrap();
    assert!(pool.contains(&g.leader) && g.leader != leader, "{g:?}");
}
