//! Alerts delivered as Standard Webhooks by a real engine to a real HTTP
//! receiver on 127.0.0.1, with time on an injected clock: a threshold
//! alert arrives signed; a 500 is retried on the schedule; an endpoint
//! that keeps failing goes to the dead-letter list after the whole
//! schedule (about a day, on the injected clock) and a replay delivers it
//! with the same webhook-id; a rotated secret signs beside the new one.
//! Every captured delivery is then verified by the `standardwebhooks`
//! package from PyPI (a third-party implementation) when the test Python
//! has it.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use quotad_engine::alerts::{DeliveryState, EndpointSpec};
use quotad_engine::audit::AuditMeta;
use quotad_engine::clock::ManualClock;
use quotad_engine::model::{Consistency, Principal, QuotaPolicy, Tier};
use quotad_engine::quota::{TenantOp, WebhookChange};
use quotad_engine::{Engine, EngineConfig, NewTenant};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver got, and what it answers next.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(String, HeaderMap, String)>>,
    /// Status to answer, per path; 204 when not set.
    answer: Mutex<std::collections::HashMap<String, u16>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let path = uri.path().to_string();
    r.got.lock().unwrap().push((path.clone(), headers, body));
    let code = r.answer.lock().unwrap().get(&path).copied().unwrap_or(204);
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, format!("http://{addr}"))
}

fn got(r: &Receiver, path: &str) -> Vec<(HeaderMap, String)> {
    r.got
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, ..)| p == path)
        .map(|(_, h, b)| (h.clone(), b.clone()))
        .collect()
}

/// Wait (real time, bounded) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Wait (real time, bounded) until the engine has recorded `tries`
/// attempts of the delivery to `endpoint`: an attempt is recorded after
/// the receiver answered, and the injected clock must not move in between
/// (its retry time is computed from the clock when it is recorded).
async fn recorded(engine: &Engine, t: uuid::Uuid, endpoint: &str, tries: u32) {
    for _ in 0..400 {
        let state = engine.tenant(t).await.unwrap();
        if state
            .alerts
            .deliveries
            .values()
            .filter(|d| d.endpoint == endpoint)
            .any(|d| d.tries >= tries)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {tries} recorded attempts to {endpoint}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_delivered_signed_retried_dead_lettered_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // The injected clock starts at the real time, so the signatures'
    // timestamps are ones a verifier accepts for the first deliveries.
    let clock = ManualClock::new(now_ms());
    let mut config = EngineConfig::new(dir.path());
    config.clock = clock.clone();
    config.shards = 1;
    config.webhooks.allow_private = true;
    config.webhooks.interval = Duration::from_millis(10);
    let engine = Engine::open(config).await.unwrap();
    let by = AuditMeta::new("admin", "req");
    let t = engine
        .create_tenant(
            NewTenant {
                slug: "hooks".into(),
                name: "Hooks".into(),
                tier: Tier::Starter,
                timezone: chrono_tz::UTC,
                trial_days: None,
                settings_json: "{}".into(),
                owner: None,
            },
            &by,
        )
        .await
        .unwrap()
        .tenant
        .id;
    let mut policy: QuotaPolicy = engine.catalog().defaults(Tier::Starter)["api_requests"].clone();
    policy.limit = Some(10);
    engine
        .admin(
            t,
            TenantOp::SetQuota {
                quota: "api_requests".into(),
                policy,
            },
            &by,
        )
        .await
        .unwrap();
    let (r, base) = receiver().await;
    let spec = |path: &str, events: &[&str]| {
        EndpointSpec::check(
            &format!("{base}{path}"),
            &events.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "",
            true,
        )
        .unwrap()
    };
    let (_, good, good_secret) = engine
        .add_webhook(t, spec("/good", &[]), &by)
        .await
        .unwrap();
    let (_, bad, _) = engine
        .add_webhook(t, spec("/bad", &["quota.exceeded"]), &by)
        .await
        .unwrap();
    assert!(good_secret.starts_with("whsec_"));
    r.answer.lock().unwrap().insert("/bad".into(), 503);
    // A private address is refused without --allow-private-webhooks: see
    // the node test; here the engine allows it.

    // 8 of 10: the 80% threshold, once. The first answer is a 500.
    r.answer.lock().unwrap().insert("/good".into(), 500);
    let service = Principal::platform("svc");
    for _ in 0..8 {
        engine
            .increment(
                &service,
                t,
                "api_requests",
                1,
                None,
                Some(Consistency::Strict),
            )
            .await
            .unwrap();
    }
    until("the first attempt", || got(&r, "/good").len() == 1).await;
    recorded(&engine, t, &good, 1).await;
    let state = engine.tenant(t).await.unwrap();
    let d = state
        .alerts
        .deliveries
        .values()
        .find(|d| d.endpoint == good)
        .unwrap()
        .clone();
    assert_eq!((d.state, d.tries), (DeliveryState::Pending, 1));
    assert_eq!(d.attempts[0].status, Some(500));
    r.answer.lock().unwrap().insert("/good".into(), 204);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got(&r, "/good").len(), 1, "not retried before its time");
    clock.advance(5_500);
    until("the retry", || got(&r, "/good").len() == 2).await;
    let both = got(&r, "/good");
    assert_eq!(
        both[0].0["webhook-id"], both[1].0["webhook-id"],
        "a retry keeps its webhook-id"
    );
    let body: serde_json::Value = serde_json::from_str(&both[1].1).unwrap();
    assert_eq!(body["type"], "quota.threshold_reached");
    assert_eq!(body["data"]["threshold"], 80);
    assert_eq!(body["data"]["quota"], "api_requests");

    // Over the limit: quota.exceeded for both endpoints; /bad keeps
    // answering 503 through the whole schedule and is dead-lettered.
    for _ in 0..3 {
        let _ = engine
            .increment(
                &service,
                t,
                "api_requests",
                1,
                None,
                Some(Consistency::Strict),
            )
            .await;
    }
    until("/bad's first attempt", || !got(&r, "/bad").is_empty()).await;
    recorded(&engine, t, &bad, 1).await;
    for n in 2..=8 {
        clock.advance(11 * 3_600_000);
        until(&format!("/bad's attempt {n}"), || {
            got(&r, "/bad").len() == n
        })
        .await;
        recorded(&engine, t, &bad, n as u32).await;
    }
    let dead = |engine: Arc<Engine>| {
        let bad = bad.clone();
        async move {
            engine
                .tenant(t)
                .await
                .unwrap()
                .alerts
                .deliveries
                .values()
                .find(|d| d.endpoint == bad)
                .cloned()
                .unwrap()
        }
    };
    let mut d = dead(engine.clone()).await;
    for _ in 0..100 {
        if d.state == DeliveryState::Dead {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        d = dead(engine.clone()).await;
    }
    assert_eq!((d.state, d.tries), (DeliveryState::Dead, 8));
    clock.advance(11 * 3_600_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got(&r, "/bad").len(), 8, "dead: no more attempts");
    // Replayed, it is delivered with the same webhook-id.
    r.answer.lock().unwrap().insert("/bad".into(), 200);
    engine
        .webhook_change(t, WebhookChange::Replay { id: d.id }, &by)
        .await
        .unwrap();
    until("the replay", || got(&r, "/bad").len() == 9).await;
    let bads = got(&r, "/bad");
    assert_eq!(bads[8].0["webhook-id"], bads[0].0["webhook-id"]);
    let alerts = engine.tenant(t).await.unwrap().alerts;
    let kinds: Vec<&str> = alerts.recent.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "quota.exceeded").count(),
        1,
        "exceeded once in the period: {kinds:?}"
    );
    assert!(kinds.contains(&"quota.threshold_reached"));

    // A new month: the thresholds fire again. The secret was just
    // rotated, so the delivery carries both signatures.
    clock.advance(32 * 86_400_000);
    let (_, new_secret) = engine
        .rotate_webhook_secret(t, &good, Duration::from_secs(3600), &by)
        .await
        .unwrap();
    assert_ne!(new_secret, good_secret);
    let before = got(&r, "/good").len();
    for _ in 0..8 {
        engine
            .increment(
                &service,
                t,
                "api_requests",
                1,
                None,
                Some(Consistency::Strict),
            )
            .await
            .unwrap();
    }
    until("a delivery after the rotation", || {
        got(&r, "/good").len() > before
    })
    .await;
    let last = got(&r, "/good").last().cloned().unwrap();
    let sigs = last.0["webhook-signature"].to_str().unwrap().to_string();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
    let alerts = engine.tenant(t).await.unwrap().alerts;
    let eighty = alerts
        .recent
        .iter()
        .filter(|a| {
            a.kind.as_str() == "quota.threshold_reached" && a.data.contains("\"threshold\":80")
        })
        .count();
    assert_eq!(eighty, 2, "80% once in each period");

    // The third-party check: every delivery to /good verifies with the
    // secret of its time (the rotated one after the rotation).
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let messages: Vec<serde_json::Value> = got(&r, "/good")
        .iter()
        .enumerate()
        .map(|(i, (h, body))| {
            serde_json::json!({
                "secret": if i >= before { new_secret.clone() } else { good_secret.clone() },
                "id": h["webhook-id"].to_str().unwrap(),
                "timestamp": h["webhook-timestamp"].to_str().unwrap(),
                "signature": h["webhook-signature"].to_str().unwrap(),
                "body": body,
            })
        })
        .collect();
    let file = dir.path().join("deliveries.json");
    std::fs::write(&file, serde_json::to_string(&messages).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/python/verify_webhooks.py"
    );
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&file)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "standardwebhooks did not verify the deliveries (scripts/test.sh installs it):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("verified {} deliveries", messages.len())),
        "{stdout}"
    );
}

/// An hour far above the tenant's trailing day raises `usage.anomaly`,
/// once per cool-down window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_far_above_the_trailing_day_raises_an_anomaly_once() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let start = 1_790_000_000_000 - 1_790_000_000_000 % (6 * HOUR);
    let clock = ManualClock::new(start);
    let mut config = EngineConfig::new(dir.path());
    config.clock = clock.clone();
    config.shards = 1;
    config.alert_interval = Duration::from_secs(3600);
    let engine = Engine::open(config).await.unwrap();
    let by = AuditMeta::new("admin", "req");
    let t = engine
        .create_tenant(
            NewTenant {
                slug: "spiky".into(),
                name: "Spiky".into(),
                tier: Tier::Starter,
                timezone: chrono_tz::UTC,
                trial_days: None,
                settings_json: "{}".into(),
                owner: None,
            },
            &by,
        )
        .await
        .unwrap()
        .tenant
        .id;
    let service = Principal::platform("svc");
    let spend = |amount| {
        let (engine, service) = (engine.clone(), service.clone());
        async move {
            engine
                .increment(
                    &service,
                    t,
                    "api_requests",
                    amount,
                    None,
                    Some(Consistency::Strict),
                )
                .await
                .unwrap()
        }
    };
    for h in 0..24 {
        clock.set(start + h * HOUR + 60_000);
        spend(100 + h % 3 * 10).await;
    }
    clock.set(start + 24 * HOUR + 60_000);
    spend(1_500).await;
    let anomalies = |engine: Arc<Engine>| async move {
        engine
            .tenant(t)
            .await
            .unwrap()
            .alerts
            .recent
            .iter()
            .filter(|a| a.kind.as_str() == "usage.anomaly")
            .cloned()
            .collect::<Vec<_>>()
    };
    engine.raise_due_alerts(true).await.unwrap();
    assert!(
        anomalies(engine.clone()).await.is_empty(),
        "the hour is not over"
    );
    clock.set(start + 25 * HOUR + 1);
    engine.raise_due_alerts(true).await.unwrap();
    engine.raise_due_alerts(true).await.unwrap();
    let found = anomalies(engine.clone()).await;
    assert_eq!(found.len(), 1, "once: {found:?}");
    let data: serde_json::Value = serde_json::from_str(&found[0].data).unwrap();
    assert_eq!(data["usage"], 1500);
    assert_eq!(data["quota"], "api_requests");
    assert!(data["statistic"].as_str().unwrap().contains("4 stddev"));
}
