//! Black-box: authentication and per-tenant authorization of the control
//! plane, and member management.
mod common;

use common::{Node, create_owned, http, rest_call as call, token_for};
use reqwest::Method;
use serde_json::{Value, json};

/// Everything an operator can see of a tenant, but for the api_requests
/// usage (returned separately).
async fn snapshot(node: &Node, tenant: &str) -> (Value, u64) {
    let mut out = serde_json::Map::new();
    let mut api_requests = 0;
    for part in ["", "/quotas", "/members"] {
        let mut v: Value = http()
            .get(node.url(&format!("/api/v1/tenants/{tenant}{part}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if part == "/quotas" {
            for q in v["data"].as_array_mut().unwrap() {
                if q["type"] == "api_requests" {
                    api_requests = q["usage"].as_u64().unwrap();
                    let q = q.as_object_mut().unwrap();
                    for k in ["usage", "percentage", "remaining"] {
                        q.remove(k);
                    }
                }
            }
        }
        out.insert(part.to_string(), v["data"].clone());
    }
    (Value::Object(out), api_requests)
}

fn tampered(token: &str) -> String {
    // Swap the payload for one claiming to be an operator; the signature no
    // longer matches.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = token_for("alice", None, &["operator"], 3600);
    let forged_payload = forged.split('.').nth(1).unwrap();
    format!("{}.{}.{}", parts[0], forged_payload, parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_bad_tokens_other_tenants_and_viewer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_owned(&node, "tenant-a", "alice").await;
    let _b = create_owned(&node, "tenant-b", "bob").await;
    let owner_a = token_for("alice", Some(&a), &[], 3600);
    let (status, _) = call(
        &node,
        Some(&owner_a),
        &Method::POST,
        &format!("/api/v1/tenants/{a}/members"),
        &Some(json!({"userId": "victor", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201);
    let (before, calls_before) = snapshot(&node, &a).await;

    let endpoints: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, format!("/api/v1/tenants/{a}"), None, false),
        (
            Method::PUT,
            format!("/api/v1/tenants/{a}"),
            Some(json!({"name": "Renamed"})),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/upgrade"),
            Some(json!({"tier": "STARTER"})),
            true,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/quotas"),
            None,
            false,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/quotas/api_requests"),
            None,
            false,
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{a}/quotas/api_requests"),
            Some(json!({"limit": 5})),
            true,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/members"),
            None,
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/members"),
            Some(json!({"userId": "mallory", "role": "member"})),
            true,
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{a}/members/victor"),
            Some(json!({"role": "admin"})),
            true,
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{a}/members/victor"),
            None,
            true,
        ),
        // Reading the audit log needs admin: a viewer is refused like a writer.
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/audit"),
            None,
            true,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/usage?quota=api_requests"),
            None,
            false,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/domains"),
            None,
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/domains"),
            Some(json!({"domain": "evil.example.com"})),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/domains/evil.example.com/verify"),
            None,
            true,
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{a}/domains/evil.example.com"),
            None,
            true,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{a}/placement"),
            None,
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/dedicated"),
            None,
            true,
        ),
        (Method::DELETE, format!("/api/v1/tenants/{a}"), None, true),
        (
            Method::POST,
            format!("/api/v1/tenants/{a}/restore"),
            None,
            true,
        ),
    ];
    let expired = token_for("alice", Some(&a), &[], -3600);
    let bad_sig = tampered(&owner_a);
    let other_tenant = token_for("bob", Some(&_b), &["owner"], 3600);
    let viewer = token_for("victor", Some(&a), &["viewer"], 3600);
    let header_mismatch = owner_a.clone();

    let mut checked = 0;
    for (method, path, body, write) in &endpoints {
        for (name, token, want) in [
            ("no token", None, 401),
            ("expired", Some(expired.as_str()), 401),
            ("tampered", Some(bad_sig.as_str()), 401),
            ("other tenant's token", Some(other_tenant.as_str()), 403),
        ] {
            let (status, v) = call(&node, token, method, path, body).await;
            assert_eq!(status, want, "{name}: {method} {path}: {v}");
            assert_eq!(v["success"], false);
            checked += 1;
        }
        let (status, v) = call(&node, Some(&viewer), method, path, body).await;
        let want = if *write { 403 } else { 200 };
        assert_eq!(status, want, "viewer: {method} {path}: {v}");
        // X-Tenant-ID naming another tenant than the path.
        let mut r = common::client()
            .request(method.clone(), node.url(path))
            .bearer_auth(&header_mismatch)
            .header("x-tenant-id", &_b);
        if let Some(b) = body {
            r = r.json(b);
        }
        assert_eq!(
            r.send().await.unwrap().status(),
            403,
            "X-Tenant-ID mismatch: {method} {path}"
        );
        checked += 2;
    }
    assert_eq!(checked, endpoints.len() * 6);
    let (after, calls_after) = snapshot(&node, &a).await;
    assert_eq!(after, before, "refused requests changed nothing");
    // Control-plane calls are never charged to the tenant's api_requests.
    assert_eq!(calls_after, calls_before);

    // Each cross-tenant attempt (another tenant's token, a mismatched
    // X-Tenant-ID) left an audit event on the tenant it targeted.
    let (status, v) = call(
        &node,
        Some(&owner_a),
        &Method::GET,
        &format!("/api/v1/tenants/{a}/audit?action=access.denied&limit=1000"),
        &None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let denials = v["data"]["events"].as_array().unwrap();
    assert_eq!(denials.len(), endpoints.len() * 2);
    assert!(
        denials
            .iter()
            .any(|e| e["actor"] == "bob" && e["after"]["source"] == "the token")
    );
    assert!(
        denials
            .iter()
            .any(|e| e["actor"] == "alice" && e["after"]["source"] == "X-Tenant-ID")
    );
    assert_eq!(v["data"]["chain"]["valid"], true);

    // Creating a tenant needs a valid token, and only operators create for others.
    for token in [None, Some(expired.as_str()), Some(bad_sig.as_str())] {
        let (status, _) = call(
            &node,
            token,
            &Method::POST,
            "/api/v1/tenants",
            &Some(json!({"name": "n", "slug": "n"})),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, v) = call(
        &node,
        Some(&viewer),
        &Method::POST,
        "/api/v1/tenants",
        &Some(json!({"name": "n", "slug": "n", "ownerId": "alice"})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_flows_last_owner_and_users_quota() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    // Self-service: alice creates a FREE tenant and owns it.
    let alice = token_for("alice", None, &[], 3600);
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        "/api/v1/tenants",
        &Some(json!({"name": "Acme", "slug": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let t = v["data"]["id"].as_str().unwrap().to_string();
    let members = format!("/api/v1/tenants/{t}/members");
    let add = |user: &str, role: &str| Some(json!({"userId": user, "role": role}));

    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &members,
        &add("bob", "admin"),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);

    // An admin may add members but not owners.
    let bob = token_for("bob", Some(&t), &[], 3600);
    let (status, v) = call(
        &node,
        Some(&bob),
        &Method::POST,
        &members,
        &add("carol", "owner"),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = call(
        &node,
        Some(&bob),
        &Method::POST,
        &members,
        &add("carol", "member"),
    )
    .await;
    assert_eq!(status, 201);

    // FREE allows 3 users: a fourth is refused, naming the quota.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &members,
        &add("dave", "viewer"),
    )
    .await;
    // Waiting would not help, so it is a 409, not a 429.
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "FAILED_PRECONDITION");
    assert!(v["error"]["message"].as_str().unwrap().contains("users"));

    // The last owner can be neither removed nor demoted.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::DELETE,
        &format!("{members}/alice"),
        &None,
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = call(
        &node,
        Some(&alice),
        &Method::PUT,
        &format!("{members}/alice"),
        &Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 409);

    // Role change, then removal frees a seat.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::PUT,
        &format!("{members}/carol"),
        &Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let carol = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == "carol")
        .unwrap()
        .clone();
    assert_eq!(carol["role"], "viewer");
    let (status, _) = call(
        &node,
        Some(&bob),
        &Method::DELETE,
        &format!("{members}/carol"),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &members,
        &add("dave", "viewer"),
    )
    .await;
    assert_eq!(status, 201);

    // Usage of `users` follows membership.
    let (_, v) = call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("/api/v1/tenants/{t}/quotas/users"),
        &None,
    )
    .await;
    assert_eq!(v["data"]["usage"], 3);

    // Tenant admins may lower a tier quota but not raise it past the tier.
    let (status, v) = call(
        &node,
        Some(&bob),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}/quotas/api_requests"),
        &Some(json!({"limit": 20000})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = call(
        &node,
        Some(&bob),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}/quotas/api_requests"),
        &Some(json!({"limit": 500})),
    )
    .await;
    assert_eq!(status, 200);
    // ... nor slip past the tier by another period or action.
    for body in [
        json!({"limit": 500, "period": "hourly"}),
        json!({"limit": 500, "action": "alert"}),
    ] {
        let (status, v) = call(
            &node,
            Some(&bob),
            &Method::PUT,
            &format!("/api/v1/tenants/{t}/quotas/api_requests"),
            &Some(body),
        )
        .await;
        assert_eq!(status, 403, "{v}");
    }
    // Every change is in the audit chain, with who did it and before/after.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("/api/v1/tenants/{t}/audit?limit=2"),
        &None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let page = &v["data"];
    assert_eq!(page["chain"]["valid"], true);
    assert_eq!(page["events"][0]["action"], "tenant.created");
    assert_eq!(page["events"][0]["actor"], "alice");
    assert_eq!(page["events"][1]["prevHash"], page["events"][0]["hash"]);
    let after = page["nextAfter"].as_u64().unwrap();
    let (_, v) = call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("/api/v1/tenants/{t}/audit?after={after}&limit=100"),
        &None,
    )
    .await;
    let rest = v["data"]["events"].as_array().unwrap();
    let actions: Vec<&str> = rest.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "member.added",
            "member.role_changed",
            "member.removed",
            "member.added",
            "quota.updated"
        ],
    );
    let quota_change = rest.last().unwrap();
    assert_eq!(
        (
            quota_change["actor"].as_str(),
            quota_change["target"].as_str()
        ),
        (Some("bob"), Some("api_requests"))
    );
    assert_eq!(
        (
            quota_change["before"]["limit"].as_u64(),
            quota_change["after"]["limit"].as_u64()
        ),
        (Some(10_000), Some(500))
    );
    let (status, _) = call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("/api/v1/tenants/{t}/audit?from=yesterday"),
        &None,
    )
    .await;
    assert_eq!(status, 400);

    // Suspension is the platform's call, and it changes gRPC verdicts.
    let mut grpc = node.grpc().await;
    let spend = || quotad_proto::v1::IncrementRequest {
        tenant_id: t.clone(),
        quota: "api_requests".into(),
        amount: 1,
        ..Default::default()
    };
    assert!(grpc.increment(spend()).await.unwrap().into_inner().allowed);
    let (status, _) = call(
        &node,
        Some(&common::operator()),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}"),
        &Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    assert_eq!(status, 200);
    let d = grpc.increment(spend()).await.unwrap().into_inner();
    assert_eq!(
        (d.allowed, d.reason.as_str()),
        (false, "tenant is suspended")
    );
    let (status, _) = call(
        &node,
        Some(&common::operator()),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}"),
        &Some(json!({"status": "ACTIVE"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(grpc.increment(spend()).await.unwrap().into_inner().allowed);

    // The owner soft-deletes and restores.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::DELETE,
        &format!("/api/v1/tenants/{t}"),
        &None,
    )
    .await;
    assert_eq!(
        (status, v["data"]["status"].as_str()),
        (200, Some("DELETED")),
        "{v}"
    );
    assert!(v["data"]["purgeAfter"].is_string());
    let d = grpc.increment(spend()).await.unwrap().into_inner();
    assert_eq!((d.allowed, d.reason.as_str()), (false, "tenant is deleted"));
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &format!("/api/v1/tenants/{t}/restore"),
        &None,
    )
    .await;
    assert_eq!(
        (status, v["data"]["status"].as_str()),
        (200, Some("ACTIVE")),
        "{v}"
    );
    assert!(grpc.increment(spend()).await.unwrap().into_inner().allowed);

    // Suspension is the platform's call.
    let (status, _) = call(
        &node,
        Some(&alice),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}"),
        &Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    assert_eq!(status, 403);
}

/// A tenant that used up its product quota (`api_requests`, spent through
/// gRPC) still manages its own account: reads, quotas, members, usage,
/// audit, settings and the upgrade that gets it more. None of it is
/// charged, and every change is in the audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_management_is_never_refused_by_product_quotas_and_inactive_tenants_are_read_only()
{
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let t = create_owned(&node, "counted", "alice").await;
    let op = common::operator();
    let (status, _) = call(
        &node,
        Some(&op),
        &Method::PUT,
        &format!("/api/v1/tenants/{t}/quotas/api_requests"),
        &Some(json!({"limit": 3})),
    )
    .await;
    assert_eq!(status, 200);
    let mut grpc = node.grpc().await;
    let mut allowed = Vec::new();
    for _ in 0..4 {
        let d = grpc
            .increment(quotad_proto::v1::IncrementRequest {
                tenant_id: t.clone(),
                quota: "api_requests".into(),
                amount: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        allowed.push(d.allowed);
    }
    assert_eq!(allowed, [true, true, true, false]);

    let alice = token_for("alice", Some(&t), &[], 3600);
    let path = format!("/api/v1/tenants/{t}");
    let calls: [(Method, String, Option<Value>); 10] = [
        (Method::GET, path.clone(), None),
        (Method::GET, format!("{path}/quotas"), None),
        (
            Method::PUT,
            format!("{path}/quotas/llm_tokens"),
            Some(json!({"limit": 1000, "period": "daily"})),
        ),
        (
            Method::POST,
            format!("{path}/members"),
            Some(json!({"userId": "bob", "role": "viewer"})),
        ),
        (Method::GET, format!("{path}/members"), None),
        (
            Method::GET,
            format!("{path}/usage?quota=api_requests"),
            None,
        ),
        (Method::GET, format!("{path}/audit"), None),
        (
            Method::PUT,
            path.clone(),
            Some(json!({"settings": {"billingEmail": "billing@counted.test"}})),
        ),
        (
            Method::POST,
            format!("{path}/upgrade"),
            Some(json!({"tier": "STARTER"})),
        ),
        (Method::GET, format!("{path}/quotas/api_requests"), None),
    ];
    for (method, p, body) in &calls {
        let (status, v) = call(&node, Some(&alice), method, p, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {p} after api_requests was used up: {status} {v}"
        );
    }
    // Nothing of it was charged: the product usage is still the three.
    assert_eq!(common::api_requests_used(&node, &t).await, 3);
    // Exempt from quotas, not from the audit chain.
    let (_, v) = call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("{path}/audit?actor=alice&limit=100"),
        &None,
    )
    .await;
    let actions: Vec<&str> = v["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "quota.updated",
        "member.added",
        "tenant.updated",
        "tenant.tier_changed",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(v["data"]["chain"]["valid"], true);

    // Suspended: members may read, not write.
    let (status, _) = call(
        &node,
        Some(&op),
        &Method::PUT,
        &path,
        &Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&node, Some(&alice), &Method::GET, &path, &None)
            .await
            .0,
        200
    );
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::PUT,
        &path,
        &Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["message"].as_str()),
        (403, Some("tenant is suspended")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_custom_domain_sets_the_tenant_context() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_owned(&node, "acme", "alice").await;
    let b = create_owned(&node, "beta", "bob").await;
    let alice = token_for("alice", None, &[], 3600);
    let bob = token_for("bob", None, &[], 3600);
    let op = common::operator();
    let domains = format!("/api/v1/tenants/{a}/domains");
    // Custom domains need PROFESSIONAL or above.
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &domains,
        &Some(json!({"domain": "quota.acme.test"})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PROFESSIONAL")
    );
    for t in [&a, &b] {
        let (status, _) = call(
            &node,
            Some(&op),
            &Method::POST,
            &format!("/api/v1/tenants/{t}/upgrade"),
            &Some(json!({"tier": "PROFESSIONAL"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, v) = call(
        &node,
        Some(&alice),
        &Method::POST,
        &domains,
        &Some(json!({"domain": "quota.acme.test"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["data"][0]["verified"], false);
    assert!(
        v["data"][0]["verificationRecord"]
            .as_str()
            .unwrap()
            .starts_with("_quotad-verify.quota.acme.test TXT ")
    );
    // Unique across tenants, and well-formed.
    let (status, v) = call(
        &node,
        Some(&bob),
        &Method::POST,
        &format!("/api/v1/tenants/{b}/domains"),
        &Some(json!({"domain": "quota.acme.test"})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (409, Some("domain")),
        "{v}"
    );
    let (status, _) = call(
        &node,
        Some(&bob),
        &Method::POST,
        &format!("/api/v1/tenants/{b}/domains"),
        &Some(json!({"domain": "127.0.0.1"})),
    )
    .await;
    assert_eq!(status, 400);

    let with_host = |token: &str, tenant: &str| {
        common::client()
            .get(node.url(&format!("/api/v1/tenants/{tenant}")))
            .bearer_auth(token)
            .header("host", "quota.acme.test")
            .send()
    };
    // Unverified: the Host means nothing yet.
    assert_eq!(with_host(&bob, &b).await.unwrap().status(), 200);
    // Only the platform verifies.
    let verify = format!("{domains}/quota.acme.test/verify");
    assert_eq!(
        call(&node, Some(&alice), &Method::POST, &verify, &None)
            .await
            .0,
        403
    );
    let (status, v) = call(&node, Some(&op), &Method::POST, &verify, &None).await;
    assert_eq!(
        (status, v["data"][0]["verified"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
    // Verified: requests on acme's domain belong to acme.
    assert_eq!(with_host(&alice, &a).await.unwrap().status(), 200);
    let r = with_host(&bob, &b).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("custom domain"),
        "{v}"
    );
    // Removing the domain frees it.
    let (status, _) = call(
        &node,
        Some(&alice),
        &Method::DELETE,
        &format!("{domains}/quota.acme.test"),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(with_host(&bob, &b).await.unwrap().status(), 200);
    let (status, _) = call(
        &node,
        Some(&bob),
        &Method::POST,
        &format!("/api/v1/tenants/{b}/domains"),
        &Some(json!({"domain": "quota.acme.test"})),
    )
    .await;
    assert_eq!(status, 201);
}
