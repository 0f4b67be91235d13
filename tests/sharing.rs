//! Black-box: cross-tenant sharing over REST with tenant tokens: policies
//! (the product README's body as written), the marketplace, access
//! requests, approval, grants and their revocation, the conditions, and
//! bad input.
mod common;

use common::{Node, http, metrics_text, rest_call as call, token_for};
use reqwest::Method;
use serde_json::{Value, json};

/// A tenant of `tier` owned by `owner`; its id.
async fn tenant(node: &Node, slug: &str, tier: &str, owner: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": slug, "slug": slug, "tier": tier, "ownerId": owner}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["data"]["id"].as_str().unwrap().to_string()
}

/// `METHOD path` as `owner` of `tenant`, naming it in `X-Tenant-ID` as the
/// product's examples do.
async fn as_tenant(
    node: &Node,
    tenant: &str,
    owner: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = token_for(owner, None, &[], 3600);
    let mut r = common::client()
        .request(method, node.url(path))
        .bearer_auth(token)
        .header("X-Tenant-ID", tenant);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The product README's "Create Sharing Policy" body, verbatim.
fn product_policy() -> Value {
    json!({
      "resourceId": "service-123",
      "resourceType": "service",
      "visibility": "marketplace",
      "permissions": ["read", "execute"],
      "pricing": {
        "type": "usage_based",
        "usagePrice": 0.001,
        "currency": "USD"
      }
    })
}

async fn audit_actions(node: &Node, tenant: &str) -> Vec<String> {
    let v =
        common::get_json(&node.url(&format!("/api/v1/tenants/{tenant}/audit?limit=1000"))).await;
    assert_eq!(v["data"]["chain"]["valid"], true, "{v}");
    v["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_publishes_a_consumer_finds_asks_is_approved_and_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = tenant(&node, "model-house", "PROFESSIONAL", "pam").await;
    let consumer = tenant(&node, "app-shop", "STARTER", "carl").await;

    let (status, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(product_policy()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let p = &created["data"];
    let policy = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["providerTenantId"], provider.as_str());
    assert_eq!(p["pricing"]["type"], "usage_based");
    // The price comes back as the exact number sent.
    assert!(
        created.to_string().contains("\"usagePrice\":0.001"),
        "{created}"
    );
    assert_eq!(p["pricing"]["unitQuota"], "api_requests");
    assert_eq!(p["revenueShare"]["platformFeePercent"], 15);
    assert_eq!(p["revenueShare"]["providerSharePercent"], 85);
    assert_eq!(p["approval"], "request");

    // The consumer finds it in the marketplace.
    let (status, page) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::GET,
        "/api/v1/marketplace?q=service&resourceType=service&maxPrice=0.01",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let items = page["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], policy.as_str());
    assert!(
        items[0].get("conditions").is_none(),
        "conditions are the provider's"
    );
    let (_, none) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::GET,
        "/api/v1/marketplace?maxPrice=0.0009",
        None,
    )
    .await;
    assert_eq!(none["data"]["items"], json!([]), "{none}");

    // It asks, with the README's body; the request waits for the provider.
    let (status, asked) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        Some(json!({"justification": "Need this service for our ML pipeline"})),
    )
    .await;
    assert_eq!(status, 201, "{asked}");
    assert_eq!(asked["data"]["status"], "pending");
    let rid = asked["data"]["id"].as_str().unwrap().to_string();
    let (status, again) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        Some(json!({"justification": "again"})),
    )
    .await;
    assert_eq!(
        (status, &again["error"]["field"]),
        (409, &json!("policyId")),
        "{again}"
    );

    let (status, pending) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        &format!("/api/v1/sharing/policies/{policy}/requests?status=pending"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(pending["data"].as_array().unwrap().len(), 1, "{pending}");
    // The consumer cannot decide its own request.
    let (status, _) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/requests/{rid}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, approved) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        &format!("/api/v1/sharing/requests/{rid}/approve"),
        Some(json!({"reason": "welcome"})),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["data"]["status"], "approved");
    let grant = approved["data"]["grant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        approved["data"]["grant"]["permissions"],
        json!(["read", "execute"])
    );

    let (_, held) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::GET,
        "/api/v1/sharing/grants?as=consumer",
        None,
    )
    .await;
    assert_eq!(held["data"][0]["id"], grant.as_str(), "{held}");
    assert_eq!(held["data"][0]["status"], "active");
    let (_, given) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        "/api/v1/sharing/grants?as=provider",
        None,
    )
    .await;
    assert_eq!(given["data"][0]["consumerTenantId"], consumer.as_str());
    let metrics = metrics_text(&node).await;
    assert!(
        metrics.contains("cross_tenant_shares_total{resource_type=\"service\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sharing_access_requests{state=\"approved\"} 1"));

    // The provider revokes it.
    let (status, ended) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::DELETE,
        &format!("/api/v1/sharing/grants/{grant}?reason=contract%20ended"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["data"]["status"], "ended");
    assert_eq!(ended["data"]["endedReason"], "contract ended");
    let metrics = metrics_text(&node).await;
    assert!(metrics.contains("cross_tenant_shares_total{resource_type=\"service\"} 0"));

    // Both audit chains tell the story.
    let c = audit_actions(&node, &consumer).await;
    for a in [
        "sharing.access_requested",
        "sharing.access_approved",
        "sharing.grant_held",
        "sharing.grant_ended",
    ] {
        assert!(c.contains(&a.to_string()), "consumer lacks {a}: {c:?}");
    }
    let p = audit_actions(&node, &provider).await;
    for a in [
        "sharing.policy_created",
        "sharing.access_requested",
        "sharing.access_approved",
        "sharing.grant_ended",
    ] {
        assert!(p.contains(&a.to_string()), "provider lacks {a}: {p:?}");
    }

    // Deleting the policy: gone for everyone.
    let (status, _) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::DELETE,
        &format!("/api/v1/sharing/policies/{policy}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::GET,
        &format!("/api/v1/sharing/policies/{policy}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_refuse_the_wrong_consumers_and_max_consumers_holds_under_a_race() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = tenant(&node, "gpu-lab", "ENTERPRISE", "pam").await;
    let free = tenant(&node, "tiny", "FREE", "fred").await;
    let banned = tenant(&node, "banned", "ENTERPRISE", "bob").await;
    let mut body = product_policy();
    body["resourceType"] = json!("model");
    body["conditions"] = json!({
        "minConsumerTier": "PROFESSIONAL",
        "deniedTenants": [banned],
        "approval": "automatic",
    });
    let (status, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let policy = created["data"]["id"].as_str().unwrap().to_string();
    let ask = format!("/api/v1/sharing/policies/{policy}/request-access");
    let (status, r) = as_tenant(&node, &free, "fred", Method::POST, &ask, None).await;
    assert_eq!(status, 403, "{r}");
    assert_eq!(r["error"]["field"], "conditions.minConsumerTier");
    assert!(r["error"]["message"].as_str().unwrap().contains("FREE"));
    let (status, r) = as_tenant(&node, &banned, "bob", Method::POST, &ask, None).await;
    assert_eq!(
        (status, &r["error"]["field"]),
        (403, &json!("conditions.deniedTenants"))
    );

    // 40 consumers race for a policy of at most 10.
    let (status, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(json!({
            "resourceId": "scarce-agent",
            "resourceType": "agent",
            "visibility": "public",
            "permissions": ["execute"],
            "conditions": {"maxConsumers": 10},
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["data"]["approval"], "automatic",
        "public is automatic"
    );
    let scarce = created["data"]["id"].as_str().unwrap().to_string();
    let mut consumers = Vec::new();
    for n in 0..40 {
        consumers.push(tenant(&node, &format!("racer-{n}"), "STARTER", &format!("u{n}")).await);
    }
    let node = std::sync::Arc::new(node);
    let mut asks = Vec::new();
    for (n, c) in consumers.iter().enumerate() {
        let (node, c, scarce) = (node.clone(), c.clone(), scarce.clone());
        asks.push(tokio::spawn(async move {
            as_tenant(
                &node,
                &c,
                &format!("u{n}"),
                Method::POST,
                &format!("/api/v1/sharing/policies/{scarce}/request-access"),
                None,
            )
            .await
        }));
    }
    let mut granted = Vec::new();
    for (n, a) in asks.into_iter().enumerate() {
        let (status, r) = a.await.unwrap();
        match status {
            201 => {
                assert_eq!(r["data"]["status"], "approved", "{r}");
                granted.push(n);
            }
            409 => assert_eq!(r["error"]["field"], "conditions.maxConsumers", "{r}"),
            other => panic!("{other}: {r}"),
        }
    }
    assert_eq!(granted.len(), 10);
    let (_, given) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        "/api/v1/sharing/grants?as=provider",
        None,
    )
    .await;
    assert_eq!(given["data"].as_array().unwrap().len(), 10);
    let (_, listed) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        &format!("/api/v1/sharing/policies/{scarce}"),
        None,
    )
    .await;
    assert_eq!(listed["data"]["activeConsumers"], 10);

    // Tightening the policy ends the grants it no longer admits.
    let denied: Vec<&String> = granted.iter().take(3).map(|n| &consumers[*n]).collect();
    let (status, changed) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::PUT,
        &format!("/api/v1/sharing/policies/{scarce}"),
        Some(json!({
            "resourceId": "scarce-agent",
            "resourceType": "agent",
            "visibility": "public",
            "permissions": ["execute"],
            "conditions": {"maxConsumers": 10, "deniedTenants": denied},
        })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    for (i, n) in granted.iter().enumerate() {
        let (_, held) = as_tenant(
            &node,
            consumers[*n].as_str(),
            &format!("u{n}"),
            Method::GET,
            "/api/v1/sharing/grants",
            None,
        )
        .await;
        let g = &held["data"][0];
        if i < 3 {
            assert_eq!(g["status"], "ended", "{held}");
            assert!(
                g["endedReason"].as_str().unwrap().contains("denies"),
                "{held}"
            );
        } else {
            assert_eq!(g["status"], "active", "{held}");
        }
    }
    let (_, listed) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        &format!("/api/v1/sharing/policies/{scarce}"),
        None,
    )
    .await;
    assert_eq!(listed["data"]["activeConsumers"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sharing_input_names_its_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = tenant(&node, "prov", "PROFESSIONAL", "pam").await;
    let other = tenant(&node, "other", "PROFESSIONAL", "olga").await;
    let post = |body: Value| {
        let (node, provider) = (&node, provider.clone());
        async move {
            as_tenant(
                node,
                &provider,
                "pam",
                Method::POST,
                "/api/v1/sharing/policies",
                Some(body),
            )
            .await
        }
    };
    let with = |path: &str, v: Value| {
        let mut b = product_policy();
        let mut at = &mut b;
        let parts: Vec<&str> = path.split('.').collect();
        for k in &parts[..parts.len() - 1] {
            at = &mut at[*k];
        }
        at[parts[parts.len() - 1]] = v;
        b
    };
    let cases = [
        (with("visibility", json!("everyone")), 400, "visibility"),
        (
            with("permissions", json!(["read", "fly"])),
            400,
            "permissions",
        ),
        (with("permissions", json!([])), 400, "permissions"),
        (
            with("resourceType", json!("spaceship")),
            400,
            "resourceType",
        ),
        (
            with("pricing.currency", json!("USX")),
            400,
            "pricing.currency",
        ),
        (
            with("pricing.usagePrice", json!(-0.5)),
            400,
            "pricing.usagePrice",
        ),
        (
            with("pricing.usagePrice", json!("cheap")),
            400,
            "pricing.usagePrice",
        ),
        (with("pricing.type", json!("barter")), 400, "pricing.type"),
        (
            with(
                "revenueShare",
                json!({"platformFeePercent": 15, "providerSharePercent": 80}),
            ),
            400,
            "revenueShare",
        ),
        (
            with(
                "revenueShare",
                json!({"platformFeePercent": 5, "providerSharePercent": 95}),
            ),
            403,
            "revenueShare.platformFeePercent",
        ),
        (
            with("conditions", json!({"maxConsumers": 0})),
            400,
            "conditions.maxConsumers",
        ),
        (
            with("conditions", json!({"expiresAt": "2001-01-01T00:00:00Z"})),
            400,
            "conditions.expiresAt",
        ),
        (with("surprise", json!(1)), 400, "surprise"),
    ];
    for (body, want, field) in cases {
        let (status, r) = post(body.clone()).await;
        assert_eq!(status, want, "{body} -> {r}");
        assert_eq!(r["error"]["field"], field, "{body} -> {r}");
    }
    let (_, mine) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        "/api/v1/sharing/policies?mine=true",
        None,
    )
    .await;
    assert_eq!(mine["data"], json!([]), "nothing half-written: {mine}");

    // An operator sets another fee; its share must make 100.
    let mut fee = product_policy();
    fee["revenueShare"] = json!({"platformFeePercent": 12.5, "providerSharePercent": 87.5});
    let (status, r) = call(
        &node,
        Some(&common::operator()),
        &Method::POST,
        "/api/v1/sharing/policies",
        &Some(fee),
    )
    .await;
    assert_eq!(
        (status, &r["error"]["field"]),
        (400, &json!("X-Tenant-ID")),
        "{r}"
    );
    let mut fee = product_policy();
    fee["revenueShare"] = json!({"platformFeePercent": 12.5});
    let r = http()
        .post(node.url("/api/v1/sharing/policies"))
        .header("X-Tenant-ID", &provider)
        .json(&fee)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["revenueShare"]["providerSharePercent"], 87.5);
    let public = v["data"]["id"].as_str().unwrap().to_string();

    // Asking for one's own policy; a private policy is "not found".
    let (status, r) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        &format!("/api/v1/sharing/policies/{public}/request-access"),
        None,
    )
    .await;
    assert_eq!(
        (status, &r["error"]["field"]),
        (400, &json!("policyId")),
        "{r}"
    );
    let (status, private) = post(with("visibility", json!("private"))).await;
    assert_eq!(status, 201);
    let private = private["data"]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/api/v1/sharing/policies/{private}"),
        format!("/api/v1/sharing/policies/{private}/request-access"),
    ] {
        let method = if path.ends_with("access") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, r) = as_tenant(&node, &other, "olga", method, &path, None).await;
        assert_eq!(status, 404, "{path}: {r}");
    }
    // Another tenant's policy cannot be changed, whatever the body.
    let (status, _) = as_tenant(
        &node,
        &other,
        "olga",
        Method::PUT,
        &format!("/api/v1/sharing/policies/{public}"),
        Some(json!({"nonsense": true})),
    )
    .await;
    assert_eq!(status, 404, "authorization before validation");
    // The tier's limit: PROFESSIONAL publishes 25.
    for n in 0..23 {
        let (status, r) = post(with("resourceId", json!(format!("svc-{n}")))).await;
        assert_eq!(status, 201, "{r}");
    }
    let (status, r) = post(with("resourceId", json!("one-too-many"))).await;
    assert_eq!(status, 409, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("25"),
        "{r}"
    );
    // A tenant's token cannot act for another tenant through X-Tenant-ID.
    let token = token_for("olga", Some(&other), &[], 3600);
    let (status, _) = call(
        &node,
        Some(&token),
        &Method::GET,
        &format!("/api/v1/sharing/policies/{public}"),
        &None,
    )
    .await;
    assert_eq!(
        status, 200,
        "the token's tenant acts when no header names one"
    );
    let resp = common::client()
        .get(node.url("/api/v1/sharing/grants"))
        .bearer_auth(&token)
        .header("X-Tenant-ID", &provider)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

/// The whole flow with third-party clients: REST with tenant JWTs, grpcio
/// for the hot path (see `tests/python/sharing_flow.py`).
#[test]
fn python_grpcio_uses_a_shared_model_until_revoked_and_statements_add_up() {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_grpc = std::process::Command::new(&python)
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_grpc,
        "{python} cannot import grpc and grpc_tools: run the README's test command \
         (scripts/test.sh), which installs them, or set QUOTAD_TEST_PYTHON"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (provider, consumer) = rt.block_on(async {
        (
            tenant(&node, "model-house", "PROFESSIONAL", "pam").await,
            tenant(&node, "app-shop", "STARTER", "carl").await,
        )
    });
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/tests/python/sharing_flow.py"))
        .args(["--grpc", node.grpc.trim_start_matches("http://")])
        .args(["--http", &node.http])
        .args(["--proto-root", &format!("{root}/proto")])
        .args(["--operator", &common::operator()])
        .args(["--provider", &provider])
        .args([
            "--provider-token",
            &token_for("pam", Some(&provider), &[], 3600),
        ])
        .args(["--consumer", &consumer])
        .args([
            "--consumer-token",
            &token_for("carl", Some(&consumer), &[], 3600),
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "python sharing flow failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python sharing flow: all good"));
    // Refusals were counted and audited on both sides.
    let metrics = rt.block_on(metrics_text(&node));
    let violations: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cross_tenant_access_violations_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(violations >= 2.0, "{violations}");
    assert!(metrics.contains("cross_tenant_usage_total{resource_type=\"model\"} 465"));
    for t in [&provider, &consumer] {
        let actions = rt.block_on(audit_actions(&node, t));
        assert!(
            actions.contains(&"sharing.use_refused".to_string()),
            "{t}: {actions:?}"
        );
    }
}

/// A grant's usage cap is enforced like a blocking quota, reservations
/// through the grant included: holds count against it until settled or
/// released, and what is settled is recorded for the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grants_cap_blocks_like_a_quota_and_reservations_through_it_settle_to_the_provider() {
    use quotad_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = tenant(&node, "capped-lab", "PROFESSIONAL", "pam").await;
    let consumer = tenant(&node, "capped-app", "STARTER", "carl").await;
    let mut body = product_policy();
    body["conditions"] = json!({
        "approval": "automatic",
        "usageCap": {"units": 100, "period": "daily"},
    });
    let (status, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let policy = created["data"]["id"].as_str().unwrap().to_string();
    let (status, r) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        None,
    )
    .await;
    assert_eq!(
        (status, &r["data"]["status"]),
        (201, &json!("approved")),
        "{r}"
    );

    let mut grpc = node.grpc().await;
    let reserve = |amount: i64| pb::ReserveRequest {
        tenant_id: consumer.clone(),
        quota: "api_requests".into(),
        amount,
        ttl_ms: 60_000,
        sharing_policy_id: policy.clone(),
        ..Default::default()
    };
    let increment = |amount: i64| pb::IncrementRequest {
        tenant_id: consumer.clone(),
        quota: "api_requests".into(),
        amount,
        sharing_policy_id: policy.clone(),
        ..Default::default()
    };
    let held = grpc.reserve(reserve(60)).await.unwrap().into_inner();
    assert!(held.decision.as_ref().unwrap().allowed);
    let refused = grpc.reserve(reserve(50)).await.unwrap().into_inner();
    let d = refused.decision.unwrap();
    assert!(!d.allowed);
    assert!(d.reason.contains("usage cap"), "{}", d.reason);
    assert!(held.reservation_id.len() > 10);
    grpc.settle(pb::SettleRequest {
        tenant_id: consumer.clone(),
        reservation_id: held.reservation_id.clone(),
        actual: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    let d = grpc.increment(increment(70)).await.unwrap().into_inner();
    assert!(d.allowed, "{}", d.reason);
    let d = grpc.increment(increment(1)).await.unwrap().into_inner();
    assert!(!d.allowed, "the cap is full");
    assert!(d.reason.contains("100 of 100"), "{}", d.reason);
    // A hold released gives its part of the cap back (nothing is charged).
    let check = grpc
        .check(pb::CheckRequest {
            tenant_id: consumer.clone(),
            quota: "api_requests".into(),
            amount: 1,
            sharing_policy_id: policy.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!check.allowed);

    // The provider's statement: the settled 30 and the 70.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, st) = as_tenant(
            &node,
            &provider,
            "pam",
            Method::GET,
            "/api/v1/sharing/statements",
            None,
        )
        .await;
        let units = st["data"]["lines"][0]["units"].as_u64().unwrap_or(0);
        if units == 100 {
            assert_eq!(st["data"]["lines"][0]["gross"], "0.1", "{st}");
            assert_eq!(st["data"]["lines"][0]["platformFee"], "0.015", "{st}");
            assert_eq!(st["data"]["lines"][0]["providerNet"], "0.085", "{st}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A subscription grant is charged once a month: prorated from the day it
/// is granted, in full in the months after (the node's clock is moved into
/// the next month with `--clock-offset-ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_billed_prorated_then_monthly() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    let node = Node::start_with(dir.path(), &args);
    let provider = tenant(&node, "sub-lab", "PROFESSIONAL", "pam").await;
    let consumer = tenant(&node, "sub-app", "STARTER", "carl").await;
    let mut body = product_policy();
    body["pricing"] =
        json!({"type": "subscription", "subscriptionPrice": 49.99, "currency": "EUR"});
    body["conditions"] = json!({"approval": "automatic"});
    let (status, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["data"]["pricing"]["subscriptionPrice"],
        json!(49.99)
    );
    let policy = created["data"]["id"].as_str().unwrap().to_string();
    let (status, r) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let granted_at =
        chrono::DateTime::parse_from_rfc3339(r["data"]["grant"]["createdAt"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
    // The first month, prorated: 49.99 x the share of the month left,
    // rounded down to 10^-12.
    let start = |y: i32, m: u32| {
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, y, m, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    let now = chrono::DateTime::from_timestamp_millis(granted_at).unwrap();
    let (y, m) = (chrono::Datelike::year(&now), chrono::Datelike::month(&now));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let (from, to) = (start(y, m), start(ny, nm));
    let picos = 49_990_000_000_000i128 * i128::from(to - granted_at) / i128::from(to - from);
    let first = quotad_engine::sharing::Amount::from_picos(picos).to_string();
    let this_month = format!("{y:04}-{m:02}");
    let next_month = format!("{ny:04}-{nm:02}");
    wait_for_subscription(&node, &provider, &this_month, &first).await;
    // Into the next month: charged the full price, once.
    drop(node);
    let ahead = to - chrono::Utc::now().timestamp_millis() + 86_400_000;
    args.extend(["--clock-offset-ms".to_string(), ahead.to_string()]);
    let node = Node::start_with(dir.path(), &args);
    wait_for_subscription(&node, &provider, &next_month, "49.99").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let lines = provider_lines(&node, &provider, &next_month).await;
    assert_eq!(lines.as_array().unwrap().len(), 1, "billed once: {lines}");
    wait_for_subscription(&node, &provider, &this_month, &first).await;

    // The operator closes the past month: its statements are final.
    let close = |period: &str| {
        common::http()
            .post(node.url(&format!("/api/v1/platform/periods/{period}/close")))
            .send()
    };
    let r = close(&next_month).await.unwrap();
    assert_eq!(r.status(), 409, "the current month has not ended");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "period");
    let r = common::client()
        .post(node.url(&format!("/api/v1/platform/periods/{this_month}/close")))
        .bearer_auth(token_for("pam", Some(&provider), &[], 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operators close periods");
    let r = close(&this_month).await.unwrap();
    assert_eq!(r.status(), 200);
    let before = provider_lines(&node, &provider, &this_month).await;
    let (_, st) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::GET,
        &format!("/api/v1/sharing/statements?period={this_month}"),
        None,
    )
    .await;
    assert_eq!(st["data"]["closed"], true, "{st}");
    assert_eq!(st["data"]["lines"], before);
    assert_eq!(st["data"]["adjustments"], json!([]));
    let periods = common::get_json(&node.url("/api/v1/platform/periods")).await;
    assert_eq!(periods["data"][0]["period"], this_month.as_str());
}

/// The provider's statement lines of `period`.
async fn provider_lines(node: &Node, provider: &str, period: &str) -> Value {
    let (_, v) = as_tenant(
        node,
        provider,
        "pam",
        Method::GET,
        &format!("/api/v1/sharing/statements?as=provider&period={period}"),
        None,
    )
    .await;
    v["data"]["lines"].clone()
}

/// Wait for the provider's subscription line of `period`: one month, `gross`.
async fn wait_for_subscription(node: &Node, provider: &str, period: &str, gross: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lines = provider_lines(node, provider, period).await;
        let sub = lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == "subscription")
            .cloned();
        if let Some(l) = sub {
            assert_eq!(
                (&l["units"], &l["gross"]),
                (&json!(1), &json!(gross)),
                "{lines}"
            );
            assert_eq!(l["currency"], "EUR");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{period}: {lines}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Resource types come from the tier catalog: a configured one can be
/// shared, one it does not list cannot (the error lists those it does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_types_are_the_catalogs() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("tiers.toml");
    let builtin = quotad_engine::quota::BUILTIN_CATALOG.replace(
        "resource_types = [\"service\", \"model\", \"dataset\", \"agent\"]",
        "resource_types = [\"model\", \"prompt_pack\"]",
    );
    std::fs::write(&catalog, builtin).unwrap();
    let mut args = Node::local_args();
    args.extend([
        "--tier-catalog".to_string(),
        catalog.to_str().unwrap().to_string(),
    ]);
    let node = Node::start_with(&dir.path().join("data"), &args);
    let provider = tenant(&node, "prompts", "PROFESSIONAL", "pam").await;
    let mut body = product_policy();
    body["resourceType"] = json!("prompt_pack");
    let (status, r) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["data"]["resourceType"], "prompt_pack");
    body["resourceType"] = json!("service");
    let (status, r) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    assert_eq!(
        (status, &r["error"]["field"]),
        (400, &json!("resourceType")),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model, prompt_pack"),
        "{r}"
    );
    let metrics = metrics_text(&node).await;
    assert!(metrics.contains("cross_tenant_shares_total{resource_type=\"prompt_pack\"} 0"));
}

/// Statement months are UTC unless the platform configures a zone; a grant
/// counts in the zone it was made in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_months_follow_the_configured_zone() {
    use quotad_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let settings = node.url("/api/v1/platform/sharing/settings");
    let v = common::get_json(&settings).await;
    assert_eq!(v["data"]["statementTimezone"], "UTC", "{v}");
    let r = http()
        .put(&settings)
        .json(&json!({"statementTimezone": "Mars/Olympus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let zone = "Pacific/Kiritimati";
    let r = http()
        .put(&settings)
        .json(&json!({"statementTimezone": zone}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let provider = tenant(&node, "zone-lab", "PROFESSIONAL", "pam").await;
    let consumer = tenant(&node, "zone-app", "STARTER", "carl").await;
    let r = common::client()
        .put(&settings)
        .bearer_auth(token_for("pam", Some(&provider), &[], 3600))
        .json(&json!({"statementTimezone": "UTC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operators only");
    let mut body = product_policy();
    body["conditions"] = json!({"approval": "automatic"});
    let (_, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    let policy = created["data"]["id"].as_str().unwrap().to_string();
    let (status, r) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["data"]["grant"]["statementTimezone"], zone, "{r}");
    let mut grpc = node.grpc().await;
    let d = grpc
        .increment(pb::IncrementRequest {
            tenant_id: consumer.clone(),
            quota: "api_requests".into(),
            amount: 3,
            sharing_policy_id: policy.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed);
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let local = chrono::Utc::now().with_timezone(&tz);
    let month = format!(
        "{:04}-{:02}",
        chrono::Datelike::year(&local),
        chrono::Datelike::month(&local)
    );
    let (_, st) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::GET,
        &format!("/api/v1/sharing/statements?as=consumer&period={month}"),
        None,
    )
    .await;
    assert_eq!(st["data"]["lines"][0]["units"], 3, "{month}: {st}");
}

/// A provider that may not share (suspended) pauses its grants: the
/// consumer's next use is refused with the reason; reactivated, they admit
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_providers_grants_admit_nothing_until_it_is_reactivated() {
    use quotad_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = tenant(&node, "paused-lab", "PROFESSIONAL", "pam").await;
    let consumer = tenant(&node, "paused-app", "STARTER", "carl").await;
    let mut body = product_policy();
    body["conditions"] = json!({"approval": "automatic"});
    let (_, created) = as_tenant(
        &node,
        &provider,
        "pam",
        Method::POST,
        "/api/v1/sharing/policies",
        Some(body),
    )
    .await;
    let policy = created["data"]["id"].as_str().unwrap().to_string();
    let (status, _) = as_tenant(
        &node,
        &consumer,
        "carl",
        Method::POST,
        &format!("/api/v1/sharing/policies/{policy}/request-access"),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let mut grpc = node.grpc().await;
    let use_it = || pb::IncrementRequest {
        tenant_id: consumer.clone(),
        quota: "api_requests".into(),
        amount: 1,
        sharing_policy_id: policy.clone(),
        ..Default::default()
    };
    assert!(grpc.increment(use_it()).await.unwrap().into_inner().allowed);
    let status_to = |status: &str| {
        http()
            .put(node.url(&format!("/api/v1/tenants/{provider}")))
            .json(&json!({"status": status}))
            .send()
    };
    assert_eq!(status_to("SUSPENDED").await.unwrap().status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        match grpc.increment(use_it()).await {
            Err(s) => break s,
            Ok(_) => {
                assert!(std::time::Instant::now() < deadline, "still admitted");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("suspended"),
        "{}",
        refused.message()
    );
    assert_eq!(status_to("ACTIVE").await.unwrap().status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while grpc.increment(use_it()).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "not resumed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
