//! Black-box: the real binary, REST to manage, gRPC to enforce, kill -9.
mod common;

use common::{Node, create_tenant, http, set_quota};
use quotad_proto::v1 as pb;
use serde_json::json;

fn inc(tenant: &str, key: &str) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: "api_requests".into(),
        amount: 1,
        idempotency_key: key.into(),
        consistency: pb::Consistency::Strict as i32,
        ..Default::default()
    }
}

async fn usage(node: &Node, tenant: &str) -> u64 {
    common::api_requests_used(node, tenant).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_is_admitted_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "acme", "FREE").await;
    let q = set_quota(
        &node,
        &tenant,
        "api_requests",
        json!({"limit": 100, "action": "block"}),
    )
    .await;
    assert_eq!(q["data"]["limit"], 100);

    // 150 concurrent increments from 150 tasks over 5 connections.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(node.grpc().await);
    }
    let mut tasks = Vec::new();
    for i in 0..150 {
        let mut c = clients[i % clients.len()].clone();
        let t = tenant.clone();
        tasks.push(tokio::spawn(async move {
            let d = c
                .increment(inc(&t, &format!("req-{i}")))
                .await
                .unwrap()
                .into_inner();
            (i, d.allowed)
        }));
    }
    let mut allowed = Vec::new();
    let mut denied = Vec::new();
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        if ok { allowed.push(i) } else { denied.push(i) }
    }
    assert_eq!(allowed.len(), 100, "admitted");
    assert_eq!(denied.len(), 50);
    assert_eq!(usage(&node, &tenant).await, 100);

    node.kill9();
    let node = Node::start(dir.path());
    assert_eq!(
        usage(&node, &tenant).await,
        100,
        "usage after kill -9 and restart"
    );

    // Room again, yet retries of earlier requests still count once and
    // get their first answer.
    set_quota(&node, &tenant, "api_requests", json!({"limit": 1000})).await;
    let mut c = node.grpc().await;
    let d = c
        .increment(inc(&tenant, &format!("req-{}", allowed[0])))
        .await
        .unwrap()
        .into_inner();
    assert!(d.replayed && d.allowed);
    let d = c
        .increment(inc(&tenant, &format!("req-{}", denied[0])))
        .await
        .unwrap()
        .into_inner();
    assert!(d.replayed && !d.allowed);
    assert_eq!(usage(&node, &tenant).await, 100);
    let d = c
        .increment(inc(&tenant, "fresh"))
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed && !d.replayed);
    assert_eq!(usage(&node, &tenant).await, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_increments_are_durable_once_a_later_strict_one_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "fast", "STARTER").await;
    let mut c = node.grpc().await;
    for _ in 0..20 {
        let mut r = inc(&tenant, "");
        r.consistency = pb::Consistency::Fast as i32;
        assert!(c.increment(r).await.unwrap().into_inner().allowed);
    }
    // A strict write is ordered after the fast ones: once it is
    // acknowledged, they are durable too.
    assert!(
        c.increment(inc(&tenant, ""))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    node.kill9();
    let node = Node::start(dir.path());
    assert_eq!(usage(&node, &tenant).await, 21);
}

fn code(r: Result<tonic::Response<impl std::fmt::Debug>, tonic::Status>) -> (tonic::Code, String) {
    let s = r.expect_err("should fail");
    (s.code(), s.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "strict", "FREE").await;
    let mut c = node.grpc().await;
    assert!(
        c.increment(inc(&tenant, ""))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let unknown = uuid::Uuid::new_v4().to_string();

    use tonic::Code::*;
    let req = |t: &str, q: &str, amount: i64| pb::IncrementRequest {
        tenant_id: t.into(),
        quota: q.into(),
        amount,
        ..Default::default()
    };
    let cases = [
        (req(&unknown, "api_requests", 1), NotFound, "not found"),
        (req(&tenant, "no_such_quota", 1), NotFound, "no_such_quota"),
        (req(&tenant, "api_requests", 0), InvalidArgument, "amount"),
        (
            req(&tenant, "api_requests", i64::MAX),
            InvalidArgument,
            "amount",
        ),
        (req(&tenant, "api_requests", -1), InvalidArgument, "amount"),
        (
            req("not-a-uuid", "api_requests", 1),
            InvalidArgument,
            "tenant_id",
        ),
        (req("", "api_requests", 1), InvalidArgument, "tenant_id"),
        (req(&tenant, "Bad Quota!", 1), InvalidArgument, "quota"),
    ];
    for (r, want, mention) in cases {
        let (got, msg) = code(c.increment(r.clone()).await);
        assert_eq!(got, want, "{r:?}: {msg}");
        assert!(msg.contains(mention), "{msg:?} should mention {mention:?}");
    }
    let (got, msg) = code(
        c.check(pb::CheckRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
            amount: 0,
            ..Default::default()
        })
        .await,
    );
    assert_eq!((got, msg.contains("amount")), (InvalidArgument, true));
    let (got, _) = code(
        c.settle(pb::SettleRequest {
            tenant_id: tenant.clone(),
            reservation_id: "xyz".into(),
            actual: 1,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(got, InvalidArgument);
    let (got, _) = code(
        c.release(pb::ReleaseRequest {
            tenant_id: tenant.clone(),
            reservation_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(got, NotFound);
    assert_eq!(
        usage(&node, &tenant).await,
        1,
        "gRPC errors changed nothing"
    );

    // REST: status, envelope, field.
    let http = http();
    let cases = [
        (
            "POST",
            "/api/v1/tenants".to_string(),
            Some("{\"name\": \"x\", ".to_string()),
            400,
            "body",
        ),
        (
            "POST",
            "/api/v1/tenants".into(),
            Some(json!({"name": "X", "slug": "x", "tier": "GOLD"}).to_string()),
            400,
            "tier",
        ),
        (
            "POST",
            "/api/v1/tenants".into(),
            Some(json!({"name": "X", "slug": "Bad Slug"}).to_string()),
            400,
            "slug",
        ),
        (
            "POST",
            "/api/v1/tenants".into(),
            Some(json!({"name": "X", "slug": "x", "timezone": "Mars/Base"}).to_string()),
            400,
            "timezone",
        ),
        (
            "POST",
            "/api/v1/tenants".into(),
            Some(json!({"name": "X", "slug": "strict"}).to_string()),
            409,
            "slug",
        ),
        ("GET", "/api/v1/tenants/not-a-uuid".into(), None, 400, "id"),
        (
            "GET",
            format!("/api/v1/tenants/{unknown}"),
            None,
            404,
            "tenant_id",
        ),
        (
            "POST",
            format!("/api/v1/tenants/{tenant}/upgrade"),
            Some(json!({"tier": "PLATINUM"}).to_string()),
            400,
            "tier",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}/quotas/api_requests"),
            Some(json!({"limit": -5}).to_string()),
            400,
            "limit",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}/quotas/api_requests"),
            Some(json!({"action": "block"}).to_string()),
            400,
            "limit",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}/quotas/api_requests"),
            Some(json!({"limit": 5, "softLimit": 9}).to_string()),
            400,
            "softLimit",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}/quotas/api_requests"),
            Some(json!({"limit": 5, "period": "weekly"}).to_string()),
            400,
            "period",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}/quotas/api_requests"),
            Some(json!({"limit": 5, "colour": "red"}).to_string()),
            400,
            "colour",
        ),
        (
            "PUT",
            format!("/api/v1/tenants/{tenant}"),
            Some(json!({"slug": "renamed"}).to_string()),
            400,
            "slug",
        ),
    ];
    for (method, path, body, status, field) in cases {
        let mut r = http.request(method.parse().unwrap(), node.url(&path));
        if let Some(b) = body.clone() {
            r = r.header("content-type", "application/json").body(b);
        }
        let resp = r.send().await.unwrap();
        let got = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(got, status, "{method} {path} {body:?}: {v}");
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["field"], field, "{method} {path} {body:?}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Nothing was half-written: the slug refused for a bad tier is free,
    // the quota kept its policy, the tenant its slug.
    create_tenant(&node, "x", "STARTER").await;
    let q: serde_json::Value = http
        .get(node.url(&format!("/api/v1/tenants/{tenant}/quotas/api_requests")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (q["data"]["limit"].as_u64(), q["data"]["usage"].as_u64()),
        (Some(10_000), Some(1))
    );
    let t: serde_json::Value = http
        .get(node.url(&format!("/api/v1/tenants/{tenant}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["data"]["slug"], "strict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "gpu", "PROFESSIONAL").await;
    set_quota(&node, &tenant, "gpu_hours", json!({"limit": 100})).await;
    let mut c = node.grpc().await;
    let r = c
        .reserve(pb::ReserveRequest {
            tenant_id: tenant.clone(),
            quota: "gpu_hours".into(),
            amount: 50,
            ttl_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.decision.as_ref().unwrap().allowed);
    let d = c
        .settle(pb::SettleRequest {
            tenant_id: tenant.clone(),
            reservation_id: r.reservation_id,
            actual: 30,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.usage, 30);
    let spend = |amount| pb::IncrementRequest {
        tenant_id: tenant.clone(),
        quota: "gpu_hours".into(),
        amount,
        ..Default::default()
    };
    assert!(c.increment(spend(70)).await.unwrap().into_inner().allowed);
    let d = c.increment(spend(1)).await.unwrap().into_inner();
    assert_eq!((d.allowed, d.verdict()), (false, pb::Verdict::Denied));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_each_item_and_health_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "batch", "FREE").await;
    set_quota(&node, &tenant, "api_requests", json!({"limit": 3})).await;
    let mut c = node.grpc().await;
    let item = |amount| pb::BatchItem {
        item: Some(pb::batch_item::Item::Increment(pb::IncrementRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
            amount,
            ..Default::default()
        })),
    };
    let check = pb::BatchItem {
        item: Some(pb::batch_item::Item::Check(pb::CheckRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
            amount: 1,
            ..Default::default()
        })),
    };
    let resp = c
        .batch(pb::BatchRequest {
            items: vec![item(2), item(0), item(1), item(1), check],
            consistency: 0,
        })
        .await
        .unwrap()
        .into_inner();
    use pb::batch_result::Result as R;
    let results: Vec<_> = resp
        .results
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect();
    assert_eq!(results.len(), 5);
    assert!(matches!(&results[0], R::Decision(d) if d.allowed));
    assert!(
        matches!(&results[1], R::Error(e) if e.code == "INVALID_ARGUMENT" && e.field == "amount")
    );
    assert!(matches!(&results[2], R::Decision(d) if d.allowed && d.usage == 3));
    assert!(matches!(&results[3], R::Decision(d) if !d.allowed));
    assert!(matches!(&results[4], R::Decision(d) if !d.allowed && d.usage == 3));

    for path in ["/healthz", "/readyz"] {
        let r = common::client().get(node.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// A batch over several tenants: each tenant's items are decided in
/// request order, tenants do not affect each other, strict and fast items
/// mix, and bad or unknown tenants fail alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_tenants_keeps_each_tenants_order_and_fails_items_alone() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_tenant(&node, "batch-a", "FREE").await;
    let b = create_tenant(&node, "batch-b", "FREE").await;
    set_quota(&node, &a, "api_requests", json!({"limit": 2})).await;
    set_quota(&node, &b, "api_requests", json!({"limit": 5})).await;
    let mut c = node.grpc().await;
    let inc = |t: &str, amount, consistency: pb::Consistency| pb::BatchItem {
        item: Some(pb::batch_item::Item::Increment(pb::IncrementRequest {
            tenant_id: t.to_string(),
            quota: "api_requests".into(),
            amount,
            consistency: consistency as i32,
            ..Default::default()
        })),
    };
    use pb::Consistency::{Fast, Strict, Unspecified};
    let unknown = uuid::Uuid::new_v4().to_string();
    let items = vec![
        inc(&a, 1, Strict),
        inc(&b, 4, Fast),
        inc(&a, 1, Fast),
        inc("not-a-uuid", 1, Strict),
        inc(&b, 1, Unspecified),
        inc(&a, 1, Strict),
        inc(&unknown, 1, Strict),
        inc(&b, 1, Strict),
    ];
    let resp = c
        .batch(pb::BatchRequest {
            items,
            consistency: Strict as i32,
        })
        .await
        .unwrap()
        .into_inner();
    use pb::batch_result::Result as R;
    let r: Vec<_> = resp
        .results
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect();
    assert_eq!(r.len(), 8);
    let usage = |x: &R| match x {
        R::Decision(d) => (d.allowed, d.usage),
        R::Error(e) => panic!("unexpected error {e:?}"),
    };
    assert_eq!(usage(&r[0]), (true, 1));
    assert_eq!(usage(&r[1]), (true, 4));
    assert_eq!(usage(&r[2]), (true, 2));
    assert!(matches!(&r[3], R::Error(e) if e.code == "INVALID_ARGUMENT" && e.field == "tenant_id"));
    assert_eq!(usage(&r[4]), (true, 5));
    assert_eq!(usage(&r[5]), (false, 2), "a's limit of 2 is reached");
    assert!(
        matches!(&r[6], R::Error(e) if e.code == "NOT_FOUND"),
        "{:?}",
        r[6]
    );
    assert_eq!(usage(&r[7]), (false, 5), "b's limit of 5 is reached");
    // What the batch admitted is what the tenants now use.
    for (t, used) in [(&a, 2), (&b, 5)] {
        let u = c
            .get_usage(pb::GetUsageRequest {
                tenant_id: t.clone(),
                quota: "api_requests".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(u.quotas[0].used, used);
    }
}

/// The bidirectional Stream: every request is answered once under its id,
/// the limit holds across the stream, bad items fail alone naming the
/// field, and what was admitted is what the tenant uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_every_request_once_and_keeps_the_limit() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "stream-rpc", "FREE").await;
    set_quota(&node, &tenant, "api_requests", json!({"limit": 50})).await;
    let mut c = node.grpc().await;
    let item = |tenant: &str, amount| pb::BatchItem {
        item: Some(pb::batch_item::Item::Increment(pb::IncrementRequest {
            tenant_id: tenant.to_string(),
            quota: "api_requests".into(),
            amount,
            ..Default::default()
        })),
    };
    // 200 increments of 1 (ids 0..200), and every 25th id a bad amount;
    // sent from a channel the test feeds while answers already come back.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let feeder = {
        let tenant = tenant.clone();
        tokio::spawn(async move {
            for id in 0..200u64 {
                let amount = if id % 25 == 0 { -3 } else { 1 };
                let req = pb::StreamRequest {
                    id,
                    item: Some(item(&tenant, amount)),
                };
                tx.send(req).await.unwrap();
            }
        })
    };
    let mut answers = c
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = std::collections::BTreeMap::new();
    while let Some(a) = answers.next().await {
        let a = a.unwrap();
        assert!(
            seen.insert(a.id, a.result.unwrap().result.unwrap())
                .is_none(),
            "id {} answered twice",
            a.id
        );
    }
    feeder.await.unwrap();
    assert_eq!(seen.len(), 200, "every request answered");
    use pb::batch_result::Result as R;
    let mut admitted = 0;
    for (id, r) in &seen {
        match r {
            R::Error(e) => {
                assert_eq!(id % 25, 0, "only the bad items fail: {id} {e:?}");
                assert_eq!(
                    (e.code.as_str(), e.field.as_str()),
                    ("INVALID_ARGUMENT", "amount")
                );
            }
            R::Decision(d) => {
                assert_ne!(id % 25, 0);
                admitted += u64::from(d.allowed);
                assert!(d.usage <= 50, "usage {} over the limit", d.usage);
            }
        }
    }
    assert_eq!(admitted, 50, "exactly the limit admitted");
    let u = c
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.quotas[0].used, 50);
}

/// kill -9 in the middle of a stream of strict increments: every
/// acknowledged one is counted after restart, and none is counted twice
/// when the unanswered ones are retried with their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_acknowledged_increment() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "stream", "ENTERPRISE").await;
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // 8 writers, each at most 500 requests; the kill ends them sooner.
    for w in 0..8 {
        let mut c = node.grpc().await;
        let (t, acked, stop) = (tenant.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked_keys = Vec::new();
            let mut unanswered = Vec::new();
            for i in 0..500 {
                let key = format!("w{w}-{i}");
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match c.increment(inc(&t, &key)).await {
                    Ok(d) => {
                        assert!(d.into_inner().allowed);
                        acked.fetch_add(1, Ordering::SeqCst);
                        acked_keys.push(key);
                    }
                    Err(_) => {
                        unanswered.push(key);
                        break;
                    }
                }
            }
            (acked_keys, unanswered)
        }));
    }
    // Kill once a good part of the stream has been acknowledged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 400 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    node.kill9();
    stop.store(true, Ordering::SeqCst);
    let mut acked_keys = Vec::new();
    let mut unanswered = Vec::new();
    for t in tasks {
        let (a, u) = t.await.unwrap();
        acked_keys.extend(a);
        unanswered.extend(u);
    }
    assert!(
        acked_keys.len() >= 400,
        "only {} acknowledged",
        acked_keys.len()
    );

    let node = Node::start(dir.path());
    let after_restart = usage(&node, &tenant).await;
    let in_doubt = unanswered.len() as u64;
    let acked_n = acked_keys.len() as u64;
    assert!(
        (acked_n..=acked_n + in_doubt).contains(&after_restart),
        "usage {after_restart}: acknowledged {acked_n}, in doubt {in_doubt}"
    );
    // Retrying everything, acknowledged or not, counts each request once.
    let mut c = node.grpc().await;
    for key in acked_keys.iter().chain(&unanswered) {
        assert!(
            c.increment(inc(&tenant, key))
                .await
                .unwrap()
                .into_inner()
                .allowed
        );
    }
    assert_eq!(usage(&node, &tenant).await, acked_n + in_doubt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_history_over_rest_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "history", "STARTER").await;
    let mut c = node.grpc().await;
    for amount in [3, 4, 5] {
        let mut r = inc(&tenant, "");
        r.amount = amount;
        assert!(c.increment(r).await.unwrap().into_inner().allowed);
    }
    let v: serde_json::Value = http()
        .get(node.url(&format!(
            "/api/v1/tenants/{tenant}/usage?quota=api_requests&granularity=hour"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = v["data"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 24, "{v}");
    let sum: u64 = points.iter().map(|p| p["amount"].as_u64().unwrap()).sum();
    assert_eq!(sum, 12);
    assert_eq!(v["data"]["statistics"]["total"], 12);
    // All in this hour, or split over an hour boundary.
    assert!(v["data"]["statistics"]["peak"].as_u64().unwrap() >= 5);
    let r = http()
        .get(node.url(&format!(
            "/api/v1/tenants/{tenant}/usage?quota=api_requests&granularity=week"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "granularity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_tenants_usage_refusals_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "metered", "FREE").await;
    set_quota(&node, &tenant, "api_requests", json!({"limit": 2})).await;
    let mut c = node.grpc().await;
    for _ in 0..3 {
        c.increment(inc(&tenant, "")).await.unwrap();
    }
    // A cross-tenant attempt.
    let other = common::token_for("eve", Some(&uuid::Uuid::new_v4().to_string()), &[], 600);
    let r = common::client()
        .get(node.url(&format!("/api/v1/tenants/{tenant}")))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let text = common::metrics_text(&node).await;
    let has = |needle: &str| {
        assert!(
            text.lines().any(|l| l.starts_with(needle)),
            "no line starting with {needle:?} in:\n{text}"
        );
    };
    has("tenant_count{tier=\"FREE\"} 1");
    has(&format!(
        "tenant_quota_usage{{tenant_id=\"{tenant}\",quota_type=\"api_requests\"}} 2"
    ));
    has(&format!(
        "tenant_api_requests_total{{tenant_id=\"{tenant}\"}} 3"
    ));
    has(&format!(
        "quota_exceeded_events{{tenant_id=\"{tenant}\"}} 1"
    ));
    has("cross_tenant_shares_total{resource_type=\"model\"} 0");
    has("sharing_access_requests{state=\"pending\"} 0");
    has("cross_tenant_access_violations_total 1");
    has("grpc_request_duration_seconds_bucket{method=\"Increment\"");
    // The log writer's commits (fsyncs) and the operations they carried:
    // at least the three increments, each in some commit.
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let (commits, ops) = (
        value("quotad_log_commits_total "),
        value("quotad_log_ops_total "),
    );
    assert!(commits >= 1 && ops >= 3 && value("quotad_log_entries_total ") >= commits);
    has(
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/tenants\",status=\"201\"",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "traced", "FREE").await;
    let mut c = node.grpc().await;
    let mut req = tonic::Request::new(inc(&tenant, ""));
    req.metadata_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let resp = c.increment(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "trace-42");
    let mut bad = tonic::Request::new(inc("not-a-uuid", ""));
    bad.metadata_mut()
        .insert("x-request-id", "trace-43".parse().unwrap());
    let status = c.increment(bad).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "trace-43");
    // Without one, the node makes one up.
    let resp = c.increment(inc(&tenant, "")).await.unwrap();
    assert!(!resp.metadata().get("x-request-id").unwrap().is_empty());
}

/// A node, a cluster client for it, and a FREE tenant: what the history
/// checker's own tests check against.
async fn checked_tenant(
    dir: &std::path::Path,
) -> (Node, quotad_proto::client::QuotaClient, String) {
    let node = Node::start(dir);
    let t = create_tenant(&node, "checked", "FREE").await;
    let client = common::quota_client(vec![node.grpc.clone()]).await;
    (node, client, t)
}

/// The history checker itself: an increment the client was told was
/// admitted, but that the node does not have (write and key both lost), is
/// reported, not hidden by the checker's own re-send admitting it anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "lost acknowledged writes")]
async fn the_history_checker_reports_an_acknowledged_write_the_node_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, client, t) = checked_tenant(dir.path()).await;
    let history = common::history::History::default();
    // The client was told "admitted"; the node never counted it.
    history.record("k-lost", common::history::Outcome::Admitted);
    history.resolve(&client, &t, "api_requests").await;
}

/// A key answered before that the node no longer knows is a lost write,
/// even when the usage happens to add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "a lost write")]
async fn the_history_checker_reports_a_forgotten_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, client, t) = checked_tenant(dir.path()).await;
    // One increment counted under another key than the history knows.
    let d = client
        .increment(pb::IncrementRequest {
            tenant_id: t.clone(),
            quota: "api_requests".into(),
            amount: 1,
            idempotency_key: "k-other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(d.allowed);
    let history = common::history::History::default();
    history.record("k-forgotten", common::history::Outcome::Admitted);
    history.resolve(&client, &t, "api_requests").await;
}
