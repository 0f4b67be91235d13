//! A data dir written by an earlier build keeps opening, and serves the
//! same state. This is the safety net for changes to what is stored: Raft
//! log entries, snapshots, the vote and node metadata, all in the node's
//! redb file.
//!
//! `tests/fixtures/datadir-format2.tar.gz` was written by `main` at format
//! 2 (before issue 17's redesign). Three tenants were set up through the
//! REST API: quotas, members, a custom domain, keyed strict and keyless
//! fast increments, and a soft delete. Snapshots were taken
//! (`--snapshot-every 20`), and more increments were logged after the last
//! one, so a restart reads both a snapshot and a log tail.
//! `datadir-format2.json` is what that node served before it stopped. This
//! test opens a copy with today's binary and compares.
//!
//! To write a fixture for a new format, run the ignored test:
//! `cargo test --test data_dir_compat write_the_fixture -- --ignored`.
//! Keep the old fixture: each one stays a test.
mod common;

use common::{Node, create_tenant, http, set_quota};
use quotad_proto::v1 as pb;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const NAME: &str = "datadir-format2";
const SHARDS: &str = "2";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn args() -> Vec<String> {
    let mut args = Node::local_args();
    args.extend(["--shards", SHARDS, "--snapshot-every", "20"].map(String::from));
    args
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Response fields computed from the time of the request, not stored.
const VOLATILE: &[&str] = &["resetsAt", "retryAfterSecs", "trialDaysLeft", "generatedAt"];

fn without_volatile(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k, without_volatile(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_volatile).collect()),
        other => other,
    }
}

async fn get(node: &Node, path: &str) -> Value {
    let resp = http().get(node.url(path)).send().await.expect(path);
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect(path);
    json!({"status": status, "body": without_volatile(body)})
}

async fn used(node: &Node, tenant: &str, quota: &str) -> Value {
    match node
        .grpc()
        .await
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant.into(),
            quota: quota.into(),
        })
        .await
    {
        Ok(u) => json!(
            u.into_inner()
                .quotas
                .iter()
                .map(|q| q.used)
                .collect::<Vec<_>>()
        ),
        Err(s) => json!({"code": format!("{:?}", s.code())}),
    }
}

/// What the node serves of each tenant, through the REST API and gRPC.
async fn observe(node: &Node, tenants: &[(String, String)]) -> Value {
    let mut out = serde_json::Map::new();
    for (slug, id) in tenants {
        let base = format!("/api/v1/tenants/{id}");
        let mut t = serde_json::Map::new();
        for part in ["", "/quotas", "/members", "/domains", "/audit"] {
            t.insert(
                format!("GET {{tenant}}{part}"),
                get(node, &format!("{base}{part}")).await,
            );
        }
        for quota in ["api_requests", "llm_tokens"] {
            t.insert(format!("used {quota}"), used(node, id, quota).await);
        }
        out.insert(slug.clone(), Value::Object(t));
    }
    Value::Object(out)
}

fn increment(
    tenant: &str,
    quota: &str,
    key: &str,
    consistency: pb::Consistency,
) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: quota.into(),
        amount: 1,
        idempotency_key: key.into(),
        consistency: consistency as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture: run with --ignored when a stored format changes"]
async fn write_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start_with(&data, &args());
    let mut tenants = Vec::new();
    for (slug, tier) in [
        ("acme", "PROFESSIONAL"),
        ("globex", "ENTERPRISE"),
        ("initech", "FREE"),
    ] {
        tenants.push((slug.to_string(), create_tenant(&node, slug, tier).await));
    }
    let (acme, globex, initech) = (&tenants[0].1, &tenants[1].1, &tenants[2].1);
    set_quota(
        &node,
        acme,
        "api_requests",
        json!({"limit": 500, "action": "block"}),
    )
    .await;
    set_quota(
        &node,
        globex,
        "llm_tokens",
        json!({"kind": "counter", "period": "never", "limit": 100_000, "action": "alert"}),
    )
    .await;
    for (tenant, body) in [
        (acme, json!({"userId": "alice", "role": "admin"})),
        (acme, json!({"userId": "bob", "role": "viewer"})),
        (globex, json!({"userId": "carol", "role": "member"})),
    ] {
        let r = http()
            .post(node.url(&format!("/api/v1/tenants/{tenant}/members")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    let r = http()
        .post(node.url(&format!("/api/v1/tenants/{acme}/domains")))
        .json(&json!({"domain": "quota.acme.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    let mut grpc = node.grpc().await;
    for i in 0..60 {
        let key = format!("k-{i}");
        let d = grpc
            .increment(increment(
                acme,
                "api_requests",
                &key,
                pb::Consistency::Strict,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed);
        grpc.increment(increment(globex, "llm_tokens", "", pb::Consistency::Fast))
            .await
            .unwrap();
    }
    let r = http()
        .delete(node.url(&format!("/api/v1/tenants/{initech}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    // A log tail after the last snapshot: fewer entries than a snapshot's
    // interval, each strict so it is on disk when answered.
    for i in 0..5 {
        let key = format!("tail-{i}");
        grpc.increment(increment(
            acme,
            "api_requests",
            &key,
            pb::Consistency::Strict,
        ))
        .await
        .unwrap();
    }
    let seen = observe(&node, &tenants).await;
    node.signal("TERM");
    drop(node);

    let out = fixtures();
    std::fs::create_dir_all(&out).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-czf"])
        .arg(out.join(format!("{NAME}.tar.gz")))
        .arg("-C")
        .arg(dir.path())
        .arg("data")
        .status()
        .unwrap();
    assert!(status.success());
    let doc = json!({"writtenAtMs": now_ms(), "tenants": tenants, "served": seen});
    std::fs::write(
        out.join(format!("{NAME}.json")),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_written_at_format_2_opens_and_serves_the_same_state() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{NAME}.json"))).unwrap(),
    )
    .unwrap();
    let tenants: Vec<(String, String)> =
        serde_json::from_value(expected["tenants"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(fixtures().join(format!("{NAME}.tar.gz")))
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "unpacking the fixture");
    // The node's clock set back to when the fixture was written: what is
    // kept for a time (idempotency keys, holds) is as it was then, however
    // long ago that is.
    let written_at = expected["writtenAtMs"].as_i64().expect("writtenAtMs");
    let mut args = args();
    args.push(format!("--clock-offset-ms={}", written_at - now_ms()));
    let node = Node::start_with(&dir.path().join("data"), &args);
    let seen = observe(&node, &tenants).await;
    for (slug, _) in &tenants {
        let (want, got) = (&expected["served"][slug], &seen[slug]);
        for (what, value) in want.as_object().unwrap() {
            // Answers may have gained fields since (new features, read as
            // their defaults); every field served then is served the same.
            assert!(
                served_then(&got[what], value),
                "{slug}: {what}: served now {}, then {value}",
                got[what]
            );
        }
    }
    // The idempotency keys came back too: a re-sent key replays.
    let acme = &tenants[0].1;
    let d = node
        .grpc()
        .await
        .increment(increment(
            acme,
            "api_requests",
            "k-7",
            pb::Consistency::Strict,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        d.replayed,
        "a key from before the restart was decided again"
    );
}

/// Whether `now` answers everything `then` did, the same: objects may have
/// gained keys; arrays keep their length and order.
fn served_then(now: &Value, then: &Value) -> bool {
    match (now, then) {
        (Value::Object(n), Value::Object(t)) => t
            .iter()
            .all(|(k, v)| n.get(k).is_some_and(|nv| served_then(nv, v))),
        (Value::Array(n), Value::Array(t)) => {
            n.len() == t.len() && n.iter().zip(t).all(|(a, b)| served_then(a, b))
        }
        _ => now == then,
    }
}
