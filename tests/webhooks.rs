//! Webhooks against real nodes: endpoints over REST (tier-gated, private
//! addresses refused unless the node allows them, the signing secret shown
//! once and never again, in no response, audit event or log line), alerts
//! of quota spends delivered to a receiver on 127.0.0.1 and verified with
//! the `standardwebhooks` package, the delivery log, the dead-letter list
//! and replay, and a 3-node cluster whose leader is killed with deliveries
//! queued: every alert still arrives, duplicates only as retries with the
//! same `webhook-id`.
mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::cluster::TestCluster;
use common::{Node, create_tenant, http, operator, rest_call, set_quota, token_for};
use quotad_proto::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(String, HeaderMap, String)>>,
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

async fn serve_receiver(l: tokio::net::TcpListener) -> Arc<Receiver> {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    r
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

async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn spend(node: &Node, tenant: &str, n: usize) {
    let mut g = node.grpc().await;
    for _ in 0..n {
        let _ = g
            .increment(pb::IncrementRequest {
                tenant_id: tenant.into(),
                quota: "api_requests".into(),
                amount: 1,
                consistency: pb::Consistency::Strict as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// `n` strict increments, each with its own idempotency key and retried
/// (bounded) while the cluster elects a new leader: counted once each.
async fn spend_through_failover(node: &Node, tenant: &str, n: usize, prefix: &str) {
    let mut g = node.grpc().await;
    for i in 0..n {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let r = g
                .increment(pb::IncrementRequest {
                    tenant_id: tenant.into(),
                    quota: "api_requests".into(),
                    amount: 1,
                    idempotency_key: format!("{prefix}-{i}"),
                    consistency: pb::Consistency::Strict as i32,
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => break,
                Err(e) if Instant::now() < end => {
                    eprintln!("retrying after: {}", e.message());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no answer after the failover: {e}"),
            }
        }
    }
}

async fn call(
    node: &Node,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    rest_call(node, Some(token), &method, path, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_gated_checked_and_their_secrets_shown_once_then_alerts_arrive_signed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let r = serve_receiver(listener).await;

    // Without --allow-private-webhooks, a loopback receiver is refused.
    let dir = tempfile::tempdir().unwrap();
    {
        let strict = Node::start(&dir.path().join("strict"));
        let t = create_tenant(&strict, "strict", "STARTER").await;
        let (status, body) = call(
            &strict,
            &operator(),
            Method::POST,
            &format!("/api/v1/tenants/{t}/webhooks"),
            Some(json!({"url": format!("{base}/x")})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], "url");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--allow-private-webhooks"),
            "{body}"
        );
    }

    let mut args = Node::local_args();
    args.push("--allow-private-webhooks".into());
    // Everything the node logs, debug included, to look for secrets in.
    let options = common::NodeOptions {
        log_file: Some(dir.path().join("node.log")),
        log_filter: Some("debug,openraft=info,h2=info,hyper=info".into()),
    };
    let node = Node::start_opts(&dir.path().join("node"), &args, &options);
    let op = operator();
    let free = create_tenant(&node, "hooks-free", "FREE").await;
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/tenants/{free}/webhooks"),
        Some(json!({"url": format!("{base}/free")})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "webhooks needs the STARTER tier or above; the tenant is on FREE"
    );

    let t = create_tenant(&node, "hooks", "STARTER").await;
    let hooks = format!("/api/v1/tenants/{t}/webhooks");
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &hooks,
        Some(json!({"url": format!("{base}/good"), "description": "ops"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["data"]["secret"].as_str().unwrap().to_string();
    let good = body["data"]["webhook"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        body["data"]["webhook"]["secretLast4"],
        secret[secret.len() - 4..]
    );
    for (bad, field) in [
        (json!({"url": "ftp://x.test/"}), "url"),
        (
            json!({"url": format!("{base}/e"), "events": ["quota.exploded"]}),
            "events",
        ),
        (json!({"url": format!("{base}/e"), "colour": 1}), "colour"),
    ] {
        let (status, body) = call(&node, &op, Method::POST, &hooks, Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .contains(field)
                || body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
    // Only quota.exceeded, answered 400: dead at once, then replayed.
    let (_, body) = call(
        &node,
        &op,
        Method::POST,
        &hooks,
        Some(json!({"url": format!("{base}/picky"), "events": ["quota.exceeded"]})),
    )
    .await;
    let picky = body["data"]["webhook"]["id"].as_str().unwrap().to_string();
    r.answer.lock().unwrap().insert("/picky".into(), 400);
    let (status, _) = call(
        &node,
        &op,
        Method::POST,
        &hooks,
        Some(json!({"url": format!("{base}/third")})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &hooks,
        Some(json!({"url": format!("{base}/fourth")})),
    )
    .await;
    assert_eq!(status, 409, "STARTER holds 3: {body}");

    set_quota(&node, &t, "api_requests", json!({"limit": 10})).await;
    spend(&node, &t, 11).await;
    until("the threshold and exceeded deliveries", 20, async || {
        got(&r, "/good").len() >= 4
    })
    .await;
    let (_, alerts) = call(
        &node,
        &op,
        Method::GET,
        &format!("/api/v1/tenants/{t}/alerts"),
        None,
    )
    .await;
    let kinds: Vec<String> = alerts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}:{}", a["type"].as_str().unwrap(), a["data"]["threshold"]))
        .collect();
    assert_eq!(
        kinds,
        [
            "quota.exceeded:null",
            "quota.threshold_reached:95",
            "quota.threshold_reached:90",
            "quota.threshold_reached:80"
        ]
    );
    let deliveries = format!("/api/v1/tenants/{t}/deliveries");
    until("picky's dead letter", 20, async || {
        let (_, d) = call(
            &node,
            &op,
            Method::GET,
            &format!("{deliveries}?state=dead"),
            None,
        )
        .await;
        d["data"].as_array().unwrap().len() == 1
    })
    .await;
    let (_, dead) = call(
        &node,
        &op,
        Method::GET,
        &format!("{deliveries}?state=dead"),
        None,
    )
    .await;
    let d = &dead["data"][0];
    assert_eq!(
        (
            d["endpointId"].as_str().unwrap(),
            d["attempts"][0]["status"].as_u64()
        ),
        (picky.as_str(), Some(400))
    );
    r.answer.lock().unwrap().insert("/picky".into(), 200);
    // Replayed from the console: its webhooks page lists the dead delivery
    // in the log with a replay form, and the form sends it again.
    let (session, _) = common::console::sign_in(&node, &op).await;
    let page = common::console::bare()
        .get(node.url(&format!("/console/tenants/{t}/webhooks")))
        .header("cookie", format!("quotad_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let id = d["id"].as_u64().unwrap();
    let replay = format!("/console/tenants/{t}/deliveries/{id}/retry");
    assert!(html.contains(&replay), "a replay form for {id}");
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let posted = common::console::bare()
        .post(node.url(&replay))
        .header("cookie", format!("quotad_session={session}"))
        .form(&[("_csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303, "back to the webhooks page");
    until("the replay", 20, async || got(&r, "/picky").len() == 2).await;
    let picks = got(&r, "/picky");
    assert_eq!(picks[0].0["webhook-id"], picks[1].0["webhook-id"]);
    let (status, _) = call(
        &node,
        &op,
        Method::POST,
        &format!("{deliveries}/{}/retry", d["id"]),
        None,
    )
    .await;
    assert!(status == 400 || status == 200, "a pending or delivered one");
    // A viewer reads but may not replay.
    let (status, _) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/tenants/{t}/members"),
        Some(json!({"userId": "vera", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201);
    let vera = token_for("vera", Some(&t), &[], 3600);
    let (status, _) = call(&node, &vera, Method::GET, &deliveries, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        &vera,
        Method::POST,
        &format!("{deliveries}/{}/retry", d["id"]),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // standardwebhooks verifies every delivery with the secret.
    verify_with_standardwebhooks(dir.path(), &secret, &got(&r, "/good"));

    // Rotation returns a new secret once; the old one still signs for the overlap.
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("{hooks}/{good}/rotate"),
        Some(json!({"overlapSeconds": 600})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["data"]["secret"].as_str().unwrap().to_string();
    assert!(body["data"]["webhook"]["previousSecretUntil"].is_string());

    // The secrets appear nowhere after they were shown: not in any read,
    // not in the audit chain, not in the node's log.
    let mut seen = String::new();
    for path in [
        hooks.clone(),
        format!("{hooks}/{good}"),
        deliveries.clone(),
        format!("/api/v1/tenants/{t}/audit?limit=500"),
        format!("/api/v1/tenants/{t}/alerts"),
    ] {
        let (status, body) = call(&node, &op, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}");
        seen.push_str(&body.to_string());
    }
    let metrics = common::metrics_text(&node).await;
    assert!(
        metrics.contains("quotad_alerts_total{type=\"quota.threshold_reached\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("quotad_webhook_attempts_total{result=\"delivered\"}"));
    seen.push_str(&metrics);
    seen.push_str(&node.log());
    for s in [&secret, &rotated] {
        let key = s.trim_start_matches("whsec_");
        assert!(!seen.contains(key), "a signing secret leaked");
    }
    assert!(
        seen.contains("webhook.created") && seen.contains("webhook.secret_rotated"),
        "audited"
    );
    let _ = http();
}

/// The node holding the outbox is killed with every delivery queued (the
/// receiver down): the next leader delivers them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_delivery_is_lost_when_the_leader_holding_the_queue_is_killed() {
    let mut c = TestCluster::start(3, &["--shards", "1", "--allow-private-webhooks"]).await;
    // A port with nobody listening yet: attempts fail with connection
    // refused and are retried 5 s later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let op = operator();
    // The operators' endpoint hears every tenant's alerts, on the same
    // dead port until the kill.
    let (status, body) = call(
        c.node(0),
        &op,
        Method::POST,
        "/api/v1/platform/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{port}/ops")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut tenants = Vec::new();
    for i in 0..4 {
        let t = create_tenant(c.node(0), &format!("outbox-{i}"), "STARTER").await;
        let (status, body) = call(
            c.node(0),
            &op,
            Method::POST,
            &format!("/api/v1/tenants/{t}/webhooks"),
            Some(json!({"url": format!("http://127.0.0.1:{port}/hook")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        set_quota(c.node(0), &t, "api_requests", json!({"limit": 10})).await;
        // The first tenant reaches only 80% before the kill.
        spend(c.node(0), &t, if i == 0 { 8 } else { 11 }).await;
        tenants.push(t);
    }
    // Every alert has been tried once and is queued for its retry.
    let mut expected = HashSet::new();
    for t in &tenants {
        let path = format!("/api/v1/tenants/{t}/deliveries");
        let want = if *t == tenants[0] { 1 } else { 4 };
        until("first attempts", 20, async || {
            let (_, d) = call(c.node(0), &op, Method::GET, &path, None).await;
            let d = d["data"].as_array().cloned().unwrap_or_default();
            d.len() == want && d.iter().all(|d| d["tries"] == 1 && d["state"] == "pending")
        })
        .await;
        let (_, d) = call(c.node(0), &op, Method::GET, &path, None).await;
        for d in d["data"].as_array().unwrap() {
            expected.insert(d["webhookId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(expected.len(), 13);
    let (_, placement) = call(
        c.node(0),
        &op,
        Method::GET,
        &format!("/api/v1/tenants/{}/placement", tenants[0]),
        None,
    )
    .await;
    let group = placement["data"]["group"].as_u64().unwrap();
    let leader = c.leader_of(group).await;
    c.kill9(c.index_of(leader));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let r = serve_receiver(listener).await;
    // The first tenant goes on to 90% and 95% under the new leader: each
    // threshold once in the period, across the kill.
    let alive = (0..3).find(|i| c.members[*i].node.is_some()).unwrap();
    spend_through_failover(c.node(alive), &tenants[0], 2, "after-kill").await;
    let mut thresholds = Vec::new();
    until("the first tenant's 90% and 95% alerts", 20, async || {
        let (_, a) = call(
            c.node(alive),
            &op,
            Method::GET,
            &format!("/api/v1/tenants/{}/alerts", tenants[0]),
            None,
        )
        .await;
        thresholds = a["data"].as_array().cloned().unwrap_or_default();
        thresholds.len() == 3
    })
    .await;
    let mut seen: Vec<u64> = thresholds
        .iter()
        .map(|a| a["data"]["threshold"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, [80, 90, 95], "each threshold once: {thresholds:?}");
    let (_, d) = call(
        c.node(alive),
        &op,
        Method::GET,
        &format!("/api/v1/tenants/{}/deliveries", tenants[0]),
        None,
    )
    .await;
    for d in d["data"].as_array().unwrap() {
        expected.insert(d["webhookId"].as_str().unwrap().to_string());
    }
    assert_eq!(expected.len(), 15);
    until(
        "every queued delivery, from the new leader",
        60,
        async || {
            let ids: HashSet<String> = got(&r, "/hook")
                .iter()
                .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_string())
                .collect();
            ids == expected
        },
    )
    .await;
    // Nothing but the expected messages; a repeat only under its own id.
    for (h, body) in got(&r, "/hook") {
        assert!(
            expected.contains(h["webhook-id"].to_str().unwrap()),
            "{body}"
        );
    }
    // The operators got each tenant alert once (one platform message per
    // tenant alert, whoever led the meta group and the tenants' group
    // when it was handed on), whatever retries repeated.
    let mut per_alert: std::collections::HashMap<(String, u64), HashSet<String>> =
        Default::default();
    until(
        "every tenant alert at the operators' endpoint",
        60,
        async || {
            per_alert.clear();
            for (h, body) in got(&r, "/ops") {
                let v: Value = serde_json::from_str(&body).unwrap();
                let key = (
                    v["data"]["tenantId"].as_str().unwrap().to_string(),
                    v["data"]["tenantAlertId"].as_u64().unwrap(),
                );
                per_alert
                    .entry(key)
                    .or_default()
                    .insert(h["webhook-id"].to_str().unwrap().to_string());
            }
            per_alert.len() == 15
        },
    )
    .await;
    for (alert, ids) in &per_alert {
        assert_eq!(
            ids.len(),
            1,
            "{alert:?} raised for the operators more than once: {ids:?}"
        );
    }
}

async fn alert_types(node: &Node, tenant: &str) -> Vec<Value> {
    let (status, v) = call(
        node,
        &operator(),
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/alerts"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

async fn wait_alert(node: &Node, tenant: &str, kind: &str) -> Value {
    let mut found = Value::Null;
    until(kind, 20, async || {
        if let Some(a) = alert_types(node, tenant)
            .await
            .into_iter()
            .find(|a| a["type"] == kind)
        {
            found = a;
            true
        } else {
            false
        }
    })
    .await;
    found
}

async fn owned(node: &Node, slug: &str, tier: &str, owner: &str, extra: Value) -> String {
    let mut body = json!({"name": slug, "slug": slug, "tier": tier, "ownerUserId": owner});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, v) = call(
        node,
        &operator(),
        Method::POST,
        "/api/v1/tenants",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["data"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_billing_trials_and_violations_raise_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    args.extend([
        "--billing-grace-days".into(),
        "0".into(),
        "--billing-suspend".into(),
    ]);
    let node = Node::start_with(dir.path(), &args);
    let provider = owned(&node, "alert-provider", "PROFESSIONAL", "pam", json!({})).await;
    let consumer = owned(&node, "alert-consumer", "STARTER", "carl", json!({})).await;
    let as_tenant =
        |tenant: &str, user: &str| (token_for(user, None, &[], 3600), tenant.to_string());
    let send = async |who: &(String, String), method: Method, path: &str, body: Option<Value>| {
        let mut r = common::client()
            .request(method, node.url(path))
            .bearer_auth(&who.0)
            .header("X-Tenant-ID", &who.1);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let pam = as_tenant(&provider, "pam");
    let carl = as_tenant(&consumer, "carl");
    let (status, policy) = send(
        &pam,
        Method::POST,
        "/api/v1/sharing/policies",
        Some(json!({
            "resourceId": "model-7", "resourceType": "model", "visibility": "marketplace",
            "permissions": ["execute"], "pricing": {"type": "free"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{policy}");
    let pid = policy["data"]["id"].as_str().unwrap().to_string();
    let (status, asked) = send(
        &carl,
        Method::POST,
        &format!("/api/v1/sharing/policies/{pid}/request-access"),
        Some(json!({"justification": "evals"})),
    )
    .await;
    assert_eq!(status, 201, "{asked}");
    let requested = wait_alert(&node, &provider, "sharing.access_requested").await;
    assert_eq!(requested["data"]["consumerTenantId"], consumer.as_str());
    let rid = asked["data"]["id"].as_str().unwrap().to_string();
    let (status, body) = send(
        &pam,
        Method::POST,
        &format!("/api/v1/sharing/requests/{rid}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let granted = wait_alert(&node, &consumer, "sharing.access_granted").await;
    assert_eq!(granted["data"]["policyId"], pid.as_str());

    // The consumer's API key used for the provider: a violation, alerted
    // to the tenant it targeted.
    let (status, key) = call(
        &node,
        &operator(),
        Method::POST,
        &format!("/api/v1/tenants/{consumer}/api-keys"),
        Some(json!({"name": "k", "scopes": ["increment"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let bearer =
        quotad_proto::credential::Bearer::new(key["data"]["key"].as_str().unwrap()).unwrap();
    let mut g = common::grpc_with(&node.grpc, bearer).await;
    let refused = g
        .increment(pb::IncrementRequest {
            tenant_id: provider.clone(),
            quota: "api_requests".into(),
            amount: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let violation = wait_alert(&node, &provider, "sharing.access_violation").await;
    assert_eq!(violation["data"]["credentialOf"], consumer.as_str());

    // Billing: a failure with no grace (0 days) and suspension on: alerted,
    // then suspended by the alert loop; a payment reactivates it.
    let billing = format!("/api/v1/tenants/{consumer}/billing-events");
    let (status, body) = call(
        &node,
        &token_for("carl", Some(&consumer), &[], 3600),
        Method::POST,
        &billing,
        Some(json!({"type": "payment_failed"})),
    )
    .await;
    assert_eq!(status, 403, "operators (the billing system) only: {body}");
    let (status, body) = call(
        &node,
        &operator(),
        Method::POST,
        &billing,
        Some(json!({"type": "payment_bounced"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("type"))
    );
    let (status, body) = call(&node, &operator(), Method::POST, &billing, Some(json!({"type": "payment_failed", "invoiceId": "in_42", "amount": 4900, "currency": "USD", "reason": "card declined"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["failing"]["failures"], 1);
    let failed = wait_alert(&node, &consumer, "billing.payment_failed").await;
    assert_eq!(failed["data"]["invoiceId"], "in_42");
    until("suspension after the grace period", 20, async || {
        let (_, t) = call(
            &node,
            &operator(),
            Method::GET,
            &format!("/api/v1/tenants/{consumer}"),
            None,
        )
        .await;
        t["data"]["status"] == "suspended" || t["data"]["status"] == "SUSPENDED"
    })
    .await;
    let (status, body) = call(
        &node,
        &operator(),
        Method::POST,
        &billing,
        Some(json!({"type": "payment_succeeded", "invoiceId": "in_42"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["failing"], Value::Null);
    assert!(
        body["data"]["status"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("active"),
        "{body}"
    );
    let ok = wait_alert(&node, &consumer, "billing.payment_succeeded").await;
    assert_eq!(ok["data"]["reactivated"], true);
    let (_, audit) = call(
        &node,
        &operator(),
        Method::GET,
        &format!("/api/v1/tenants/{consumer}/audit?limit=500"),
        None,
    )
    .await;
    let actions: Vec<&str> = audit["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "billing.payment_failed",
        "tenant.suspended_for_billing",
        "billing.payment_succeeded",
    ] {
        assert!(actions.contains(&a), "{a}: {actions:?}");
    }

    // A one-day trial: its last-day warning comes at once (nearest
    // milestone), in the tenant's timezone.
    let trial = owned(
        &node,
        "alert-trial",
        "STARTER",
        "tina",
        json!({"trialDays": 1, "timezone": "America/New_York"}),
    )
    .await;
    let expiring = wait_alert(&node, &trial, "tenant.trial_expiring").await;
    assert_eq!(expiring["data"]["daysLeft"], 1);
    assert_eq!(expiring["data"]["timezone"], "America/New_York");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alerts = alert_types(&node, &trial).await;
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["type"] == "tenant.trial_expiring")
            .count(),
        1,
        "raised once: {alerts:?}"
    );
    let metrics = common::metrics_text(&node).await;
    for t in [
        "sharing.access_requested",
        "sharing.access_granted",
        "sharing.access_violation",
        "billing.payment_failed",
        "tenant.trial_expiring",
    ] {
        assert!(
            metrics.contains(&format!("quotad_alerts_total{{type=\"{t}\"}}")),
            "{t}"
        );
    }
}

/// Verify deliveries with `standardwebhooks` (tests/python/verify_webhooks.py).
fn verify_with_standardwebhooks(dir: &std::path::Path, secret: &str, got: &[(HeaderMap, String)]) {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let messages: Vec<Value> = got
        .iter()
        .map(|(h, body)| json!({"secret": secret, "id": h["webhook-id"].to_str().unwrap(), "timestamp": h["webhook-timestamp"].to_str().unwrap(), "signature": h["webhook-signature"].to_str().unwrap(), "body": body}))
        .collect();
    let file = dir.join("captured-deliveries.json");
    std::fs::write(&file, serde_json::to_string(&messages).unwrap()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/verify_webhooks.py"
        ))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("verified {} deliveries", messages.len())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_hear_every_tenants_alerts_and_a_disabled_endpoint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let r = serve_receiver(listener).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    args.push("--allow-private-webhooks".into());
    let options = common::NodeOptions {
        log_file: Some(dir.path().join("node.log")),
        log_filter: Some("debug,openraft=info,h2=info,hyper=info".into()),
    };
    let node = Node::start_opts(&dir.path().join("node"), &args, &options);
    let op = operator();
    let t = owned(&node, "ops-watched", "STARTER", "olga", json!({})).await;
    let olga = token_for("olga", None, &[], 3600);

    // Operators only: a tenant's owner may not see or add them.
    for (method, path) in [
        (Method::GET, "/api/v1/platform/webhooks"),
        (Method::POST, "/api/v1/platform/webhooks"),
        (Method::GET, "/api/v1/platform/alerts"),
        (Method::GET, "/api/v1/platform/deliveries"),
        (Method::GET, "/api/v1/platform/webhook-changes"),
    ] {
        let (status, body) = call(
            &node,
            &olga,
            method.clone(),
            path,
            Some(json!({"url": format!("{base}/steal")})),
        )
        .await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        "/api/v1/platform/webhooks",
        Some(json!({"url": "gopher://x.test/"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("url"))
    );
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        "/api/v1/platform/webhooks",
        Some(json!({"url": format!("{base}/ops"), "description": "on call"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["data"]["secret"].as_str().unwrap().to_string();
    let ops = body["data"]["webhook"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    // Only this type, answered 410: dead at once (the dead-letter list).
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        "/api/v1/platform/webhooks",
        Some(json!({"url": format!("{base}/gone"), "events": ["billing.payment_failed"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    r.answer.lock().unwrap().insert("/gone".into(), 410);

    // The tenant's endpoint refuses everything: three deliveries dead in a
    // row disable it, and the tenant raises webhook.endpoint_disabled.
    r.answer.lock().unwrap().insert("/refuses".into(), 404);
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/tenants/{t}/webhooks"),
        Some(json!({"url": format!("{base}/refuses")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let refused = body["data"]["webhook"]["id"].as_str().unwrap().to_string();
    set_quota(&node, &t, "api_requests", json!({"limit": 10})).await;
    spend(&node, &t, 10).await; // 80, 90, 95 %
    wait_alert(&node, &t, "webhook.endpoint_disabled").await;
    let (_, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/tenants/{t}/billing-events"),
        Some(json!({"type": "payment_failed", "invoiceId": "in_9"})),
    )
    .await;
    assert!(body["data"].is_object(), "{body}");

    // Every one of the tenant's alerts reaches the operators, once, naming
    // the tenant; the disabled endpoint among them.
    let tenant_alerts = alert_types(&node, &t).await;
    let mut platform = Vec::new();
    until(
        "the tenant's alerts on the platform's list",
        20,
        async || {
            let (_, a) = call(&node, &op, Method::GET, "/api/v1/platform/alerts", None).await;
            platform = a["data"].as_array().cloned().unwrap_or_default();
            platform.len() == tenant_alerts.len()
        },
    )
    .await;
    for a in &platform {
        assert_eq!(a["data"]["tenantId"], t.as_str(), "{a}");
    }
    let mut handed: Vec<(u64, String)> = platform
        .iter()
        .map(|a| {
            (
                a["data"]["tenantAlertId"].as_u64().unwrap(),
                a["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    handed.sort();
    let mut own: Vec<(u64, String)> = tenant_alerts
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().unwrap(),
                a["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    own.sort();
    assert_eq!(handed, own, "each of the tenant's alerts once");
    let disabled = platform
        .iter()
        .find(|a| a["type"] == "webhook.endpoint_disabled")
        .expect("the operators hear of the disabled endpoint");
    assert_eq!(disabled["data"]["endpointId"], refused.as_str());
    let (status, body) = call(
        &node,
        &op,
        Method::GET,
        "/api/v1/platform/alerts?type=webhook.endpoint_disabled&limit=5",
        None,
    )
    .await;
    assert_eq!((status, body["data"].as_array().unwrap().len()), (200, 1));
    let (status, body) = call(
        &node,
        &op,
        Method::GET,
        "/api/v1/platform/alerts?limit=0",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit"))
    );

    // Delivered to the operators' endpoint, signed with its secret.
    until("every platform alert delivered to /ops", 20, async || {
        got(&r, "/ops").len() == platform.len()
    })
    .await;
    let delivered = got(&r, "/ops");
    let ids: HashSet<&str> = delivered
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids.len(), platform.len(), "one message per alert");
    assert!(ids.iter().all(|i| i.starts_with("msg_platform_")));
    assert!(
        delivered
            .iter()
            .any(|(_, b)| b.contains("webhook.endpoint_disabled"))
    );
    verify_with_standardwebhooks(dir.path(), &secret, &delivered);

    // The payment failure went to /gone too, answered 410: dead; a replay
    // sends it again under the same webhook-id.
    let mut dead = Value::Null;
    until("the dead letter", 20, async || {
        let (_, d) = call(
            &node,
            &op,
            Method::GET,
            "/api/v1/platform/deliveries?state=dead",
            None,
        )
        .await;
        dead = d["data"][0].clone();
        dead.is_object()
    })
    .await;
    assert_eq!(dead["type"], "billing.payment_failed");
    assert_eq!(dead["attempts"][0]["status"], 410);
    r.answer.lock().unwrap().insert("/gone".into(), 200);
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/platform/deliveries/{}/retry", dead["id"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until("the replay delivered", 20, async || {
        got(&r, "/gone").len() == 2
    })
    .await;
    let gone = got(&r, "/gone");
    assert_eq!(gone[0].0["webhook-id"], gone[1].0["webhook-id"]);
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        "/api/v1/platform/deliveries/nope/retry",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("delivery"))
    );

    // Rotation, then removal; each change recorded with who made it; the
    // secrets in no response and no log line.
    let (status, body) = call(
        &node,
        &op,
        Method::POST,
        &format!("/api/v1/platform/webhooks/{ops}/rotate"),
        Some(json!({"overlapSeconds": 60})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["data"]["secret"].as_str().unwrap().to_string();
    assert!(body["data"]["webhook"]["previousSecretUntil"].is_string());
    let (status, body) = call(
        &node,
        &op,
        Method::PUT,
        &format!("/api/v1/platform/webhooks/{ops}"),
        Some(json!({"url": format!("{base}/ops2"), "events": ["quota.exceeded"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["events"], json!(["quota.exceeded"]));
    let (status, _) = call(
        &node,
        &op,
        Method::DELETE,
        "/api/v1/platform/webhooks/ep_nope",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &node,
        &op,
        Method::DELETE,
        &format!("/api/v1/platform/webhooks/{ops}"),
        None,
    )
    .await;
    assert_eq!((status, body["data"].as_array().unwrap().len()), (200, 1));
    let (_, changes) = call(
        &node,
        &op,
        Method::GET,
        "/api/v1/platform/webhook-changes",
        None,
    )
    .await;
    let actions: Vec<&str> = changes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.deleted",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.delivery_replayed",
            "webhook.created",
            "webhook.created"
        ]
    );
    assert!(
        changes["data"][0]["actor"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    let mut seen = String::new();
    for path in [
        "/api/v1/platform/webhooks",
        "/api/v1/platform/deliveries",
        "/api/v1/platform/alerts",
        "/api/v1/platform/webhook-changes",
    ] {
        seen.push_str(
            &call(&node, &op, Method::GET, path, None)
                .await
                .1
                .to_string(),
        );
    }
    seen.push_str(&std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default());
    for s in [&secret, &rotated] {
        let key = &s["whsec_".len()..];
        assert!(!seen.contains(key), "a platform signing secret leaked");
    }
}
