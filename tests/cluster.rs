//! Black-box cluster tests: real `quotad serve` processes on loopback, the
//! Rust routing client, kill -9, a cut proxy for partitions, scale-out.
//!
//! The soak version (many rounds, random kill points) is ignored by
//! default; run it with
//! `QUOTAD_SOAK_ROUNDS=20 cargo test --release --test cluster soak -- --ignored --nocapture`.
mod common;

use common::cluster::TestCluster;
use common::history::{History, Outcome, outcome};
use common::load::{QUOTA, inc, tenant_with_limit, usage};
use common::{create_tenant, http, set_quota, soak};
use quotad_proto::v1 as pb;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One cluster at a time when the harness runs tests in threads
/// (`cargo test`; nextest runs them one by one, see .config/nextest.toml).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long after the kill checks, and increments, were answered again.
struct Resumed {
    checks: Duration,
    increments: Duration,
}

/// One round: strict increments from several workers; after `kill_after`
/// answers, kill -9 the leader of the tenant's group.
async fn kill_round(
    c: &mut TestCluster,
    tenant: &str,
    limit: u64,
    round: usize,
    kill_after: usize,
) -> Resumed {
    let client = Arc::new(common::quota_client(c.grpc_addrs()).await);
    let (group, _) = client.route(tenant);
    let history = Arc::new(History::default());
    let issued = Arc::new(AtomicUsize::new(0));
    let total = limit as usize + 40;
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (client, history, issued, tenant) = (
            client.clone(),
            history.clone(),
            issued.clone(),
            tenant.to_string(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                let key = format!("r{round}-{n}");
                let sent = Instant::now();
                let r = client.increment(inc(&tenant, key.clone())).await;
                history.record_sent(&key, sent, outcome(&r));
            }
        }));
    }
    // Checks run throughout; the first one answered after the kill shows
    // when deciding resumed.
    let killed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let resumed: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (client, tenant, killed_at, resumed, stop) = (
            client.clone(),
            tenant.to_string(),
            killed_at.clone(),
            resumed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let ok = client
                    .check(pb::CheckRequest {
                        tenant_id: tenant.clone(),
                        quota: QUOTA.into(),
                        amount: 1,
                        ..Default::default()
                    })
                    .await
                    .is_ok();
                let killed = *killed_at.lock().unwrap();
                if ok && killed.is_some_and(|k| sent >= k) {
                    resumed.lock().unwrap().get_or_insert(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while history.count(|o| !matches!(o, Outcome::Unknown(_))) < kill_after {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The group's leader now (placement may have moved it since the start).
    let victim = c.index_of(c.leader_of(group).await);
    c.kill9(victim);
    *killed_at.lock().unwrap() = Some(Instant::now());
    for w in workers {
        w.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed.lock().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "checks did not resume after the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    checker.await.unwrap();
    let killed = killed_at.lock().unwrap().unwrap();
    let checks = resumed.lock().unwrap().unwrap() - killed;
    let increments = history
        .first_answer_after(killed)
        .expect("increments answered after the kill")
        - killed;

    history.resolve(&client, tenant, QUOTA).await;
    let used = usage(&client, tenant).await;
    history.check(used, limit);
    assert_eq!(used, limit, "the stream asked for more than the limit");
    c.restart(victim);
    c.wait_settled(Duration::from_secs(60)).await;
    // The restarted node agrees (it serves or forwards the read).
    let mut direct = common::grpc_at(&c.node(victim).grpc).await;
    let u = direct
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant.into(),
            quota: QUOTA.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.quotas[0].used, used);
    Resumed { checks, increments }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_shard_leader_loses_no_acknowledged_increment() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start(3, &["--shards", "2"]).await;
    let tenant = tenant_with_limit(c.node(0), "failover", 200).await;
    let r = kill_round(&mut c, &tenant, 200, 0, 80).await;
    eprintln!(
        "after the kill: checks answered again in {} ms, strict increments in {} ms",
        r.checks.as_millis(),
        r.increments.as_millis()
    );
    // Checks are answered by the surviving replicas while the new leader
    // is being elected, increments once it is: kill_round asserts that both
    // resume. How fast is measured, not asserted (BENCHMARKS.md, Failover).
}

/// The same over mutual TLS on every port, nodes joined with the token:
/// the new leader's election, the forwards and the restarted node's catch-up
/// all go through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_shard_leader_over_mutual_tls_loses_no_acknowledged_increment() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start_tls(3, &["--shards", "2"]).await;
    assert!(c.node(0).grpc.starts_with("https://"));
    let tenant = tenant_with_limit(c.node(0), "failover-tls", 120).await;
    let r = kill_round(&mut c, &tenant, 120, 0, 50).await;
    eprintln!(
        "over TLS, after the kill: checks answered again in {} ms, strict increments in {} ms",
        r.checks.as_millis(),
        r.increments.as_millis()
    );
}

/// Many rounds with random kill points. Bounded by rounds and by time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "soak: run with --ignored (see the file's header)"]
async fn soak_random_leader_kills() {
    let _serial = SERIAL.lock().await;
    let rounds = soak::rounds(10);
    let budget = soak::budget();
    let mut rng = soak::rng();
    eprintln!("soak: {rounds} rounds");
    let started = Instant::now();
    let mut c = TestCluster::start(3, &["--shards", "2"]).await;
    let mut resumes = Vec::new();
    for round in 0..rounds {
        if started.elapsed() > budget {
            eprintln!("soak: time budget spent after {round} rounds");
            break;
        }
        let limit = 150;
        let tenant = tenant_with_limit(c.node(0), &format!("soak-{round}"), limit).await;
        let kill_after = rand::Rng::random_range(&mut rng, 1..limit as usize);
        let r = kill_round(&mut c, &tenant, limit, round, kill_after).await;
        eprintln!(
            "soak round {round}: killed after {kill_after} answers; checks again after {} ms, increments after {} ms",
            r.checks.as_millis(),
            r.increments.as_millis()
        );
        resumes.push(r);
    }
    let summary = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "p50 {} ms, max {} ms",
            v[v.len() / 2].as_millis(),
            v[v.len() - 1].as_millis()
        )
    };
    if !resumes.is_empty() {
        eprintln!(
            "soak: {} rounds; checks resumed {}; increments resumed {}",
            resumes.len(),
            summary(resumes.iter().map(|r| r.checks).collect()),
            summary(resumes.iter().map(|r| r.increments).collect())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_the_whole_cluster_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start(3, &["--shards", "2"]).await;
    let tenant = tenant_with_limit(c.node(0), "restart", 1_000).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    for n in 0..120 {
        let d = client
            .increment(inc(&tenant, format!("k{n}")))
            .await
            .unwrap();
        assert!(d.allowed);
    }
    let before = usage(&client, &tenant).await;
    assert_eq!(before, 120);
    drop(client);
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    c.wait_settled(Duration::from_secs(60)).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    assert_eq!(usage(&client, &tenant).await, before);
    // Replays still replay, and new increments count.
    let d = client.increment(inc(&tenant, "k7".into())).await.unwrap();
    assert!(d.replayed);
    client
        .increment(inc(&tenant, "after".into()))
        .await
        .unwrap();
    assert_eq!(usage(&client, &tenant).await, before + 1);
    // Every node answers for the tenant (forwarding as needed); the ones
    // that do not lead its group say which node does.
    // Leaders may still be being balanced after the restart: a round whose
    // leader moved meanwhile is repeated (the keyed increments replay).
    let (group, _) = client.route(&tenant);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let leader = c.index_of(c.leader_of(group).await);
        if hints_agree(&c, &tenant, leader).await || rounds == 10 {
            assert!(rounds < 10 || hints_agree(&c, &tenant, leader).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(usage(&client, &tenant).await, before + 4);
}

/// Whether every node but `leader` names the leader in its answers (REST
/// header, gRPC metadata), and the leader names none.
async fn hints_agree(c: &TestCluster, tenant: &str, leader: usize) -> bool {
    for i in 0..3 {
        let resp = http()
            .get(c.node(i).url(&format!("/api/v1/tenants/{tenant}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "node {i}");
        let rest_hint = resp
            .headers()
            .get("x-quotad-leader")
            .map(|v| v.to_str().unwrap().to_string());
        let mut direct = common::grpc_at(&c.node(i).grpc).await;
        let resp = direct
            .increment(inc(tenant, format!("via-{i}")))
            .await
            .unwrap();
        let grpc_hint = resp
            .metadata()
            .get("quotad-leader")
            .map(|v| v.to_str().unwrap().to_string());
        let want = if i == leader {
            (None, None)
        } else {
            (
                Some(c.members[leader].http_addr.clone()),
                Some(c.members[leader].grpc_addr.clone()),
            )
        };
        if (rest_hint, grpc_hint) != want {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_minority_refuses_strict_increments_and_nothing_is_over_admitted() {
    let _serial = SERIAL.lock().await;
    let c = TestCluster::start(3, &["--shards", "1"]).await;
    let limit = 100;
    let tenant = tenant_with_limit(c.node(0), "partition", limit).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    let history = History::default();
    for n in 0..30 {
        let key = format!("before-{n}");
        let r = client.increment(inc(&tenant, key.clone())).await;
        history.record(&key, outcome(&r));
    }
    // Cut off the leader of the tenant's group: it is the minority.
    let (group, _) = client.route(&tenant);
    let minority = c.index_of(c.leader_of(group).await);
    c.isolate(minority);
    let direct = common::grpc_at(&c.node(minority).grpc).await;
    let minority_side = async {
        let sends = (0..5).map(|n| {
            let mut direct = direct.clone();
            let (tenant, history) = (&tenant, &history);
            async move {
                let key = format!("minority-{n}");
                let mut req = tonic::Request::new(inc(tenant, key.clone()));
                req.set_timeout(Duration::from_secs(12));
                let r = direct.increment(req).await.map(|r| r.into_inner());
                history.record(&key, outcome(&r));
                r.is_ok()
            }
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    };
    // The majority elects a leader and goes on, up to the limit.
    let majority: Vec<String> = (0..3)
        .filter(|i| *i != minority)
        .map(|i| c.members[i].grpc_addr.clone())
        .collect();
    let majority_side = async {
        let client = common::quota_client(majority).await;
        for n in 0..120 {
            let key = format!("majority-{n}");
            let r = client.increment(inc(&tenant, key.clone())).await;
            history.record(&key, outcome(&r));
        }
    };
    let (answered, ()) = tokio::join!(minority_side, majority_side);
    assert_eq!(answered, 0, "the minority acknowledged a strict increment");
    c.heal();
    c.wait_settled(Duration::from_secs(60)).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    history.resolve(&client, &tenant, QUOTA).await;
    let used = usage(&client, &tenant).await;
    history.check(used, limit);
    assert_eq!(used, limit);
}

/// A leader that accepts a node's connections but never answers (a hung
/// process, a path that drops packets) costs that node's callers a bounded
/// wait, not the kernel's minutes: a strict increment forwarded to it is
/// answered OUTCOME_UNKNOWN (it may have been received), with or without
/// an idempotency key, and once healed the same key counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forward_to_a_black_holed_leader_is_answered_within_a_bound() {
    let _serial = SERIAL.lock().await;
    let c = TestCluster::start(3, &["--shards", "1"]).await;
    let tenant = tenant_with_limit(c.node(0), "black-hole", 1_000).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    let (group, _) = client.route(&tenant);
    let leader = c.index_of(c.leader_of(group).await);
    let via = (leader + 1) % 3;
    let mut direct = common::grpc_at(&c.node(via).grpc).await;
    // Forwarded from `via` to the leader: the connection between them is
    // open when the path goes silent.
    direct
        .increment(inc(&tenant, "before".into()))
        .await
        .expect("a forwarded increment before the cut");
    let before = usage(&client, &tenant).await;

    c.black_hole(via, leader);
    let bound = Duration::from_secs(30);
    let send = |key: &'static str| {
        let mut direct = direct.clone();
        let tenant = tenant.clone();
        async move {
            let started = Instant::now();
            let answer =
                tokio::time::timeout(bound, direct.increment(inc(&tenant, key.to_string())))
                    .await
                    .unwrap_or_else(|_| panic!("no answer within {bound:?} (key {key:?})"));
            (answer, started.elapsed())
        }
    };
    // With a key the node retries the leader until its route timeout;
    // without one it may not retry at all.
    let ((keyed, keyed_took), (unkeyed, unkeyed_took)) = tokio::join!(send("during-cut"), send(""));
    for (what, answer, took) in [
        ("keyed", &keyed, keyed_took),
        ("unkeyed", &unkeyed, unkeyed_took),
    ] {
        eprintln!("{what} increment answered after {took:?}: {answer:?}");
        let status = answer
            .as_ref()
            .expect_err("the leader cannot have answered");
        assert_eq!(status.code(), tonic::Code::Unknown, "{what}: {status:?}");
        assert!(
            status.message().contains("outcome is unknown"),
            "{what}: {status:?}"
        );
    }

    c.heal();
    // Neither reached the leader; the keyed one, sent again, counts once.
    let again = client
        .increment(inc(&tenant, "during-cut".into()))
        .await
        .expect("the keyed increment after healing");
    assert!(again.allowed);
    assert_eq!(usage(&client, &tenant).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_node_takes_replicas_and_leaders_under_load() {
    let _serial = SERIAL.lock().await;
    let tenants: usize = std::env::var("QUOTAD_SCALE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut c = TestCluster::start(3, &["--shards", "8", "--snapshot-every", "500"]).await;
    // Tenants, created over REST from all nodes at once.
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = Vec::new();
    for w in 0..16 {
        let (ids, next) = (ids.clone(), next.clone());
        let url = c.node(w % 3).url("/api/v1/tenants");
        creators.push(tokio::spawn(async move {
            let client = http();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= tenants {
                    return;
                }
                let resp = client
                    .post(&url)
                    .json(&json!({"name": format!("Scale {n}"), "slug": format!("scale-{n}"), "tier": "STARTER"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let body: serde_json::Value = resp.json().await.unwrap();
                ids.lock()
                    .unwrap()
                    .push(body["data"]["id"].as_str().unwrap().to_string());
            }
        }));
    }
    for cr in creators {
        cr.await.unwrap();
    }
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().unwrap().clone());
    assert_eq!(ids.len(), tenants);

    // Load: strict increments on random tenants until told to stop.
    let client = Arc::new(common::quota_client(c.grpc_addrs()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for w in 0..8 {
        let (client, stop, admitted, ids) =
            (client.clone(), stop.clone(), admitted.clone(), ids.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let tenant = &ids[(n * 7919 + w * 104_729) % ids.len()];
                let req = pb::IncrementRequest {
                    tenant_id: tenant.clone(),
                    quota: "api_requests".into(),
                    amount: 1,
                    idempotency_key: format!("w{w}-{n}"),
                    consistency: pb::Consistency::Strict as i32,
                    ..Default::default()
                };
                match client.increment(req).await {
                    Ok(d) if d.allowed => {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(s) => failures.push(format!("{:?}: {}", s.code(), s.message())),
                }
                n += 1;
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fourth = c.add_node().await;
    let status = c.wait_settled(Duration::from_secs(180)).await;
    // Leaders move after replicas: wait for the fourth node to lead.
    let new_id = c.members[fourth].id;
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let s = c.status().await.unwrap_or(status.clone());
        let leads = s
            .groups
            .iter()
            .filter(|g| g.group != 0 && g.leader == new_id)
            .count();
        // Leadership can move to the new node before the last replica
        // does: wait for both (a status taken between them failed here).
        let replicas = s
            .groups
            .iter()
            .filter(|g| g.group != 0 && g.replicas.contains(&new_id))
            .count();
        if leads >= 1 && replicas == 6 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "node {new_id} leads {leads} groups and holds {replicas} replicas (want 1+ and 6): {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for l in load {
        failures.extend(l.await.unwrap());
    }
    assert!(failures.is_empty(), "strict decisions failed: {failures:?}");
    let on_new = status
        .groups
        .iter()
        .filter(|g| g.group != 0 && g.replicas.contains(&new_id))
        .count();
    // 8 groups x 3 replicas over 4 nodes: 6 each.
    assert_eq!(on_new, 6, "{status:#?}");

    // Usage totals: the sum over tenants equals the admitted increments.
    let mut total = 0;
    for t in ids.iter() {
        let u = client
            .get_usage(pb::GetUsageRequest {
                tenant_id: t.clone(),
                quota: "api_requests".into(),
            })
            .await
            .unwrap();
        total += u.quotas[0].used as usize;
    }
    assert_eq!(total, admitted.load(Ordering::SeqCst));
}

fn operator_post(url: String) -> reqwest::RequestBuilder {
    http().post(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enterprise_tenant_moves_to_a_dedicated_group_under_load() {
    let _serial = SERIAL.lock().await;
    let c = TestCluster::start(3, &["--shards", "2"]).await;
    let free = create_tenant(c.node(0), "not-enterprise", "FREE").await;
    let resp = operator_post(c.node(1).url(&format!("/api/v1/tenants/{free}/dedicated")))
        .send()
        .await
        .unwrap();
    // A tier feature (dedicated_schema) the tenant's tier lacks: 403
    // naming the tier that has it, as every tier-gated endpoint answers.
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "dedicated_schema needs the ENTERPRISE tier or above; the tenant is on FREE",
        "{body}"
    );

    let tenant = create_tenant(c.node(0), "big-corp", "ENTERPRISE").await;
    let limit = 100_000;
    set_quota(
        c.node(0),
        &tenant,
        QUOTA,
        json!({"kind": "counter", "period": "never", "limit": limit, "action": "block"}),
    )
    .await;
    let client = Arc::new(common::quota_client(c.grpc_addrs()).await);
    let (from, _) = client.route(&tenant);
    let history = Arc::new(History::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..4 {
        let (client, history, stop, tenant) = (
            client.clone(),
            history.clone(),
            stop.clone(),
            tenant.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("w{w}-{n}");
                let r = client.increment(inc(&tenant, key.clone())).await;
                history.record(&key, outcome(&r));
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = operator_post(
        c.node(2)
            .url(&format!("/api/v1/tenants/{tenant}/dedicated")),
    )
    .send()
    .await
    .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let group = body["data"]["group"].as_u64().unwrap();
    assert!(group > 2, "a new group, beyond the hash shards: {body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    // Again: the same group.
    let again: serde_json::Value = operator_post(
        c.node(0)
            .url(&format!("/api/v1/tenants/{tenant}/dedicated")),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(again["data"]["group"], group);
    let placement: serde_json::Value = http()
        .get(
            c.node(1)
                .url(&format!("/api/v1/tenants/{tenant}/placement")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &placement["data"];
    assert_eq!(
        (&p["group"], &p["dedicated"], &p["level"], &p["pool"]),
        (
            &json!(group),
            &json!(true),
            &json!("dedicated_group"),
            &json!(null)
        ),
        "{p}"
    );
    let replicas = p["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3, "{p}");
    assert_eq!(
        replicas
            .iter()
            .filter(|r| r["leader"] == json!(true))
            .count(),
        1,
        "{p}"
    );

    // Nothing acknowledged before, during or after the move was lost.
    let client = common::quota_client(c.grpc_addrs()).await;
    assert_eq!(client.route(&tenant).0, group);
    assert_ne!(from, group);
    history.resolve(&client, &tenant, QUOTA).await;
    history.check(usage(&client, &tenant).await, limit);
    assert!(history.count(|o| *o == Outcome::Admitted) > 0);

    // The group is the tenant's, replicated like any other.
    let status = c.wait_settled(Duration::from_secs(60)).await;
    let g = status.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(g.dedicated_tenant, tenant);
    assert_eq!(g.voters.len(), 3);
    // The audit chain moved with it, intact, and records the move.
    let audit: serde_json::Value = http()
        .get(
            c.node(0)
                .url(&format!("/api/v1/tenants/{tenant}/audit?limit=200")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"]["chain"]["valid"], true, "{audit}");
    let actions: Vec<&str> = audit["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"tenant.created"), "{actions:?}");
    assert!(actions.contains(&"tenant.dedicated"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_is_drained_first_and_nothing_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start(4, &["--shards", "4"]).await;
    let tenant = tenant_with_limit(c.node(0), "drain", 10_000).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    for n in 0..50 {
        client
            .increment(inc(&tenant, format!("k{n}")))
            .await
            .unwrap();
    }
    let gone = c.members[1].id;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args([
            "--grpc",
            &c.node(0).grpc,
            "cluster",
            "remove",
            &gone.to_string(),
        ])
        .args(["--timeout-secs", "120"])
        .args(["--token", &common::operator()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed"));
    c.kill9(1);
    // Followers learn the last membership change with the next heartbeat.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = c.status().await.unwrap();
        let clear = status.nodes.iter().all(|n| n.id != gone)
            && status
                .groups
                .iter()
                .all(|g| !g.replicas.contains(&gone) && !g.voters.contains(&gone));
        if clear {
            break;
        }
        assert!(Instant::now() < deadline, "{status:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = common::quota_client(c.grpc_addrs()).await;
    assert_eq!(usage(&client, &tenant).await, 50);
    client
        .increment(inc(&tenant, "after".into()))
        .await
        .unwrap();
    assert_eq!(usage(&client, &tenant).await, 51);
    // `cluster status` prints the three remaining nodes.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["--grpc", &c.node(0).grpc, "--json", "cluster", "status"])
        .args(["--token", &common::service_token()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["nodes"].as_array().unwrap().len(), 3, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_cluster_starts_three_nodes_and_stops_them() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A base port below the kernel's ephemeral range (where other tests'
    // port-0 sockets land), with the 30 ports above it free now.
    let free = |base: u16| {
        (base..base + 30).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
    };
    let base = (0..200u32)
        .map(|i| 20_000 + ((std::process::id() + i * 7_919) % 12_000) as u16)
        .find(|b| free(*b))
        .expect("30 free ports below 32000");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args([
            "dev-cluster",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .env("JWT_SECRET", common::SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            // Keep reading to the end, so the launcher never writes to a
            // closed pipe.
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("nodes up")) {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the launcher printed only {lines:?}"));
        lines.push(line);
    }
    assert!(lines.iter().any(|l| l.contains("3 nodes up")), "{lines:?}");
    let grpc = format!("http://127.0.0.1:{}", base + 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
            .args(["--grpc", &grpc, "--json", "cluster", "status"])
            .args(["--token", &common::operator()])
            .output()
            .unwrap();
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let full = s["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["voters"].as_array().unwrap().len() == 3);
            if s["nodes"].as_array().unwrap().len() == 3 && full {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the dev cluster did not form");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // SIGTERM stops the launcher and its nodes.
    std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    for i in 1..=3u16 {
        let addr = format!("127.0.0.1:{}", base + 10 * i);
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "node {i} still listens on {addr}"
        );
    }
}

/// Provider and consumer in different groups; the consumer's group leader
/// is killed during a stream of shared increments. Afterwards the
/// provider's totals, the consumer's records and its quota all hold
/// exactly the acknowledged units: nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_leader_kill_during_shared_use_loses_and_doubles_nothing() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start(3, &["--shards", "2"]).await;
    let client = Arc::new(common::quota_client(c.grpc_addrs()).await);
    let provider = create_tenant(c.node(0), "provider-co", "PROFESSIONAL").await;
    let provider_group = client.route(&provider).0;
    let mut consumer = None;
    for n in 0..32 {
        let t = create_tenant(c.node(0), &format!("consumer-{n}"), "STARTER").await;
        if client.route(&t).0 != provider_group {
            consumer = Some(t);
            break;
        }
    }
    let consumer = consumer.expect("a consumer in the other group");
    let consumer_group = client.route(&consumer).0;
    set_quota(
        c.node(0),
        &consumer,
        QUOTA,
        json!({"kind": "counter", "period": "never", "limit": 1_000_000, "action": "block"}),
    )
    .await;
    let acting = |tenant: &str, path: &str| {
        http()
            .post(c.node(1).url(path))
            .header("X-Tenant-ID", tenant.to_string())
    };
    let r = acting(&provider, "/api/v1/sharing/policies")
        .json(&json!({
            "resourceId": "llama-70b",
            "resourceType": "model",
            "visibility": "marketplace",
            "permissions": ["execute"],
            "pricing": {"type": "usage_based", "usagePrice": "0.0025", "currency": "EUR", "unitQuota": QUOTA},
            "conditions": {"approval": "automatic"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let policy: serde_json::Value = r.json().await.unwrap();
    let policy = policy["data"]["id"].as_str().unwrap().to_string();
    let r = acting(
        &consumer,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);

    let shared = {
        let (consumer, policy) = (consumer.clone(), policy.clone());
        move |key: String| pb::IncrementRequest {
            tenant_id: consumer.clone(),
            quota: QUOTA.into(),
            amount: 3,
            idempotency_key: key,
            consistency: pb::Consistency::Strict as i32,
            sharing_policy_id: policy.clone(),
            ..Default::default()
        }
    };
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, answered, stop, shared) = (
            client.clone(),
            answered.clone(),
            stop.clone(),
            shared.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2_000 {
                let key = format!("w{w}-{n}");
                let r = client.increment(shared(key.clone())).await;
                outcomes.push((key, r.map(|d| d.allowed).map_err(|s| s.code())));
                answered.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            outcomes
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < 80 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = c.leader_of(consumer_group).await;
    let killed = c.index_of(leader);
    c.kill9(killed);
    let resumed_after = answered.load(Ordering::SeqCst) + 80;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < resumed_after && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.unwrap());
    }
    c.restart(killed);
    // Calls without an answer are sent again with their key until answered:
    // each then says whether it was admitted, once.
    let mut admitted = 0u64;
    let mut refused = 0;
    for (key, r) in outcomes {
        let allowed = match r {
            Ok(allowed) => allowed,
            Err(_) => {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match client.increment(shared(key.clone())).await {
                        Ok(d) => break d.allowed,
                        Err(s) if Instant::now() < deadline => {
                            let _ = s;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(s) => panic!("{key} never answered: {s}"),
                    }
                }
            }
        };
        if allowed {
            admitted += 3;
        } else {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "nothing was over any limit");
    assert!(admitted > 0);
    assert_eq!(
        usage(&client, &consumer).await,
        admitted,
        "charged once each"
    );
    // The provider's totals catch up with the consumer's records.
    let statement = |tenant: String, side: &'static str| {
        let url = c
            .node(2)
            .url(&format!("/api/v1/sharing/statements?as={side}"));
        async move {
            let v: serde_json::Value = http()
                .get(url)
                .header("X-Tenant-ID", tenant)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]["lines"].clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let provider_lines = loop {
        let lines = statement(provider.clone(), "provider").await;
        if lines[0]["units"] == json!(admitted) || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        provider_lines[0]["units"],
        json!(admitted),
        "{provider_lines}"
    );
    assert_eq!(provider_lines.as_array().unwrap().len(), 1);
    let consumer_lines = statement(consumer.clone(), "consumer").await;
    assert_eq!(consumer_lines, provider_lines);
    let gross: f64 = provider_lines[0]["gross"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((gross - admitted as f64 * 0.0025).abs() < 1e-9, "{gross}");
    eprintln!(
        "shared use through a consumer leader kill: {admitted} units admitted, all at the provider once"
    );
}

/// Scoped increments (five end users, each 30 at most, the tenant 100)
/// through a leader kill: nothing acknowledged is lost, and neither the
/// tenant nor any end user is admitted beyond its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_leader_under_scoped_increments_loses_nothing_and_over_admits_no_level() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::start(3, &["--shards", "2"]).await;
    let (limit, per_user, users) = (100u64, 30u64, 5usize);
    let tenant = tenant_with_limit(c.node(0), "scoped-failover", limit).await;
    set_quota(
        c.node(0),
        &tenant,
        QUOTA,
        json!({"limit": limit, "scopes": {"default": {"limit": per_user, "period": "monthly"}}}),
    )
    .await;
    let client = Arc::new(common::quota_client(c.grpc_addrs()).await);
    let (group, _) = client.route(&tenant);
    // A scoped increment sent to a follower is forwarded to the leader
    // with the caller's credential, and allowed there.
    let leader = c.index_of(c.leader_of(group).await);
    let mut follower = common::grpc_at(&c.node((leader + 1) % 3).grpc).await;
    let d = follower
        .increment(pb::IncrementRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
            amount: 1,
            scope: "user-0".into(),
            consistency: pb::Consistency::Strict as i32,
            ..Default::default()
        })
        .await
        .expect("a forwarded scoped increment")
        .into_inner();
    assert!(d.allowed, "{d:?}");
    let history = Arc::new(History::default());
    let issued = Arc::new(AtomicUsize::new(0));
    let total = 170;
    let user_of = move |n: usize| format!("user-{}", n % users);
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (client, history, issued, tenant) = (
            client.clone(),
            history.clone(),
            issued.clone(),
            tenant.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                let key = format!("s-{n}");
                let mut req = inc(&tenant, key.clone());
                req.scope = user_of(n);
                let sent = Instant::now();
                let r = client.increment(req).await;
                history.record_sent(&key, sent, outcome(&r));
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while history.count(|o| !matches!(o, Outcome::Unknown(_))) < 60 {
        assert!(
            Instant::now() < deadline && workers.iter().any(|w| !w.is_finished()),
            "no progress before the kill: {} answered, {} without an answer, e.g. {:?}",
            history.count(|o| !matches!(o, Outcome::Unknown(_))),
            history.count(|o| matches!(o, Outcome::Unknown(_))),
            history.first_unknown()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let victim = c.index_of(c.leader_of(group).await);
    c.kill9(victim);
    for w in workers {
        w.await.unwrap();
    }
    let scopes: Vec<String> = (0..total).map(user_of).collect();
    history
        .resolve_with(&client, &tenant, QUOTA, |key| {
            let n: usize = key.trim_start_matches("s-").parse().unwrap();
            scopes[n].as_str()
        })
        .await;
    let used = usage(&client, &tenant).await;
    history.check(used, limit);
    // Each end user: admitted as often as its scope counter says, never
    // beyond its limit.
    let mut admitted = vec![0u64; users];
    for key in history.admitted_keys() {
        let n: usize = key.trim_start_matches("s-").parse().unwrap();
        admitted[n % users] += 1;
    }
    let survivor = (victim + 1) % 3;
    for (u, n) in admitted.iter().enumerate() {
        assert!(*n <= per_user, "user-{u} admitted {n} > {per_user}");
        let q: serde_json::Value = http()
            .get(c.node(survivor).url(&format!(
                "/api/v1/tenants/{tenant}/quotas/{QUOTA}?scope=user-{u}"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            q["data"]["scope"]["level"]["usage"].as_u64(),
            Some(*n),
            "user-{u}: {q}"
        );
    }
    assert_eq!(admitted.iter().sum::<u64>(), used);
    eprintln!("scoped increments through a leader kill: {used} admitted, per user {admitted:?}");
}
