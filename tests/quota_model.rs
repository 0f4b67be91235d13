//! The quota model beyond one limit, black-box on a real node: scopes with
//! a default and wildcard overrides through gRPC and Envoy's rate limit
//! service, stacked windows, credit grants, rollover and preserved overage
//! across a month in America/New_York (the node's clock moved with
//! `--clock-offset-ms` between restarts), and shadow mode.
mod common;

use common::{Node, create_tenant, set_quota};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quotad_proto::v1 as pb;
use serde_json::{Value, json};
use std::time::Duration;

fn inc(tenant: &str, quota: &str, amount: i64, scope: &str) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: quota.into(),
        amount,
        scope: scope.into(),
        ..Default::default()
    }
}

async fn rest(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = common::http().request(method, node.url(path));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn get(node: &Node, path: &str) -> Value {
    let (status, v) = rest(node, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {v}");
    v["data"].clone()
}

/// Envoy's rate limit client of `node`, with the service token.
async fn rls_client(node: &Node) -> RateLimitServiceClient<quotad_proto::credential::AuthChannel> {
    let channel = tonic::transport::Endpoint::from_shared(node.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    RateLimitServiceClient::new(common::service_bearer().on(channel))
}

fn rls_args(dir: &std::path::Path) -> Vec<String> {
    let config = dir.join("rls.toml");
    std::fs::write(
        &config,
        "[[domains]]\ndomain = \"gw\"\ndefault_quota = \"chat\"\nscope_key = \"user\"\n",
    )
    .unwrap();
    let mut args = Node::local_args();
    args.extend(["--envoy-config".into(), config.display().to_string()]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_with_a_default_and_wildcard_overrides_through_grpc_and_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(&dir.path().join("data"), &rls_args(dir.path()));
    let tenant = create_tenant(&node, "scoped", "ENTERPRISE").await;
    let set = set_quota(
        &node,
        &tenant,
        "chat",
        json!({
            "limit": 1000,
            "period": "monthly",
            "scopes": {
                "default": {"limit": 3, "period": "daily"},
                "overrides": {
                    "premium_*": {"limit": 6, "period": "daily"},
                    "premium_gold": {"limit": 8, "period": "daily"}
                }
            }
        }),
    )
    .await;
    assert_eq!(set["data"]["scopes"]["default"]["limit"], 3, "{set}");
    assert_eq!(
        set["data"]["scopes"]["overrides"]["premium_*"]["action"],
        "block"
    );
    let mut grpc = node.grpc().await;
    // Each end user 3 a day; the 4th is refused by the scope, and takes
    // nothing from the tenant's quota.
    for _ in 0..3 {
        let d = grpc
            .increment(inc(&tenant, "chat", 1, "alice"))
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed);
    }
    let d = grpc
        .increment(inc(&tenant, "chat", 1, "alice"))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed);
    let l = d.limited_by.expect("the refusing level");
    assert_eq!(
        (l.level.as_str(), l.rule.as_str(), l.scope.as_str()),
        ("scope", "default", "alice")
    );
    assert_eq!((l.limit, l.remaining), (Some(3), Some(0)));
    assert_eq!(d.usage, 3, "the tenant's usage as it stands");
    // `premium_*` allows 6, its exact override 8: the most specific wins.
    for (user, allowed) in [("premium_x", 6), ("premium_gold", 8)] {
        let d = grpc
            .increment(inc(&tenant, "chat", allowed, user))
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed, "{user}");
        let d = grpc
            .increment(inc(&tenant, "chat", 1, user))
            .await
            .unwrap()
            .into_inner();
        assert!(!d.allowed, "{user}");
        let rule = d.limited_by.unwrap().rule;
        assert_eq!(
            rule,
            if user == "premium_gold" {
                "premium_gold"
            } else {
                "premium_*"
            }
        );
    }
    // A bad scope value names the field.
    let e = grpc
        .increment(inc(&tenant, "chat", 1, "no spaces"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("scope"), "{}", e.message());

    // Envoy: the `user` entry is the scope.
    let mut rls = rls_client(&node).await;
    let ask = |entries: &[(&str, &str)]| RateLimitRequest {
        domain: "gw".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        }],
        hits_addend: 1,
    };
    for left in [2, 1, 0] {
        let r = rls
            .should_rate_limit(ask(&[("tenant_id", &tenant), ("user", "bob")]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(
            r.statuses[0].limit_remaining,
            982 - (2 - left),
            "the tenant's quota (17 spent through gRPC before)"
        );
    }
    let r = rls
        .should_rate_limit(ask(&[("tenant_id", &tenant), ("user", "bob")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    let s = &r.statuses[0];
    assert_eq!(
        s.current_limit.as_ref().unwrap().requests_per_unit,
        3,
        "bob's daily limit"
    );
    assert_eq!(s.limit_remaining, 0);
    // Without the entry: the tenant's quota alone.
    let r = rls
        .should_rate_limit(ask(&[("tenant_id", &tenant)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
    let e = rls
        .should_rate_limit(ask(&[("tenant_id", &tenant), ("user", "a b")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // REST: the quota's usage is the sum of what every level admitted; the
    // live scopes, top usage first; one value with its rule.
    let base = format!("/api/v1/tenants/{tenant}/quotas/chat");
    let q = get(&node, &base).await;
    assert_eq!(q["usage"], 3 + 6 + 8 + 3 + 1, "{q}");
    let page = get(&node, &format!("{base}/scopes?limit=3")).await;
    assert_eq!(page["total"], 4, "{page}");
    let values: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["premium_gold", "premium_x", "alice"]);
    let rest_page = get(&node, &format!("{base}/scopes?limit=3&offset=3")).await;
    assert_eq!(rest_page["items"][0]["value"], "bob");
    let alice = get(&node, &format!("{base}?scope=alice")).await;
    assert_eq!(alice["scope"]["rule"], "default", "{alice}");
    assert_eq!(alice["scope"]["level"]["remaining"], 0);
    let carol = get(&node, &format!("{base}?scope=premium_carol")).await;
    assert_eq!(carol["scope"]["rule"], "premium_*");
    assert_eq!(carol["scope"]["level"]["remaining"], 6);
    let (status, bad) = rest(
        &node,
        reqwest::Method::GET,
        &format!("{base}/scopes?limit=0"),
        None,
    )
    .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, bad) = rest(
        &node,
        reqwest::Method::PUT,
        &base,
        Some(json!({"limit": 10, "scopes": {"overrides": {"a*b*": {"limit": 1, "period": "daily"}}}})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("scopes"),
        "{bad}"
    );
    // Nothing of the refused change was kept.
    assert_eq!(get(&node, &base).await["limit"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacked_windows_the_burst_refuses_first_and_the_monthly_later() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "stacked", "ENTERPRISE").await;
    let set = set_quota(
        &node,
        &tenant,
        "gen",
        json!({"limit": 12, "period": "monthly", "windows": [{"limit": 5, "period": "second"}]}),
    )
    .await;
    assert_eq!(set["data"]["windows"][0]["kind"], "rate", "{set}");
    assert_eq!(set["data"]["windows"][0]["action"], "throttle");
    let mut grpc = node.grpc().await;
    let d = grpc
        .increment(inc(&tenant, "gen", 5, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed);
    // The burst refuses first, with the time to wait.
    let d = grpc
        .increment(inc(&tenant, "gen", 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed);
    assert_eq!(d.verdict, pb::Verdict::Throttled as i32);
    let l = d.limited_by.unwrap();
    assert_eq!(
        (l.level.as_str(), l.kind.as_str(), l.period.as_str()),
        ("window", "rate", "second")
    );
    assert!(
        d.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1_000),
        "{:?}",
        d.retry_after_ms
    );
    let q = get(&node, &format!("/api/v1/tenants/{tenant}/quotas/gen")).await;
    assert_eq!(q["usage"], 5, "the refusal took nothing: {q}");
    assert_eq!(q["windows"][0]["limit"], 5);
    // A second later the burst admits again; then the month refuses.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let d = grpc
        .increment(inc(&tenant, "gen", 5, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed, "{d:?}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let d = grpc
        .increment(inc(&tenant, "gen", 3, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed);
    assert_eq!(d.limited_by.unwrap().level, "quota");
    assert_eq!(d.remaining, Some(2));
}

/// A month boundary in New York near now (a node's clock may be moved by
/// at most 30 days): the end of this month, or its start when the end is
/// too far.
fn new_york_month_boundary() -> i64 {
    use chrono::{Datelike, TimeZone};
    let tz = chrono_tz::America::New_York;
    let now = chrono::Utc::now().with_timezone(&tz);
    let start = |y: i32, m: u32| {
        tz.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    let (y, m) = (now.year(), now.month());
    let end = if m == 12 {
        start(y + 1, 1)
    } else {
        start(y, m + 1)
    };
    if end - now.timestamp_millis() < 29 * 86_400_000 {
        end
    } else {
        start(y, m)
    }
}

/// A QuotaService client whose service token is valid on a node whose
/// clock runs ahead, until `until_ms` by that clock.
async fn grpc_at_node_time(
    node: &Node,
    until_ms: i64,
) -> quotad_proto::v1::quota_service_client::QuotaServiceClient<quotad_proto::credential::AuthChannel>
{
    let secs = (until_ms - chrono::Utc::now().timestamp_millis()) / 1000 + 3_600;
    let token = common::token_for("gateway", None, &["service"], secs);
    let bearer = quotad_proto::credential::Bearer::new(&token).unwrap();
    common::grpc_with(&node.grpc, bearer).await
}

/// A node on `dir` whose clock reads `at_ms` now.
fn node_at(dir: &std::path::Path, at_ms: i64) -> Node {
    let offset = at_ms - chrono::Utc::now().timestamp_millis();
    let mut args = Node::local_args();
    args.extend(["--clock-offset-ms".into(), offset.to_string()]);
    Node::start_with(dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_expire_and_rollover_and_overage_cross_a_new_york_month() {
    let dir = tempfile::tempdir().unwrap();
    // Noon before a month ends in New York.
    let boundary = new_york_month_boundary();
    let t0 = boundary - 12 * 3_600_000;
    let node = node_at(dir.path(), t0);
    let (status, created) = rest(
        &node,
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(json!({"name": "NY", "slug": "ny-co", "tier": "ENTERPRISE", "timezone": "America/New_York"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tenant = created["data"]["id"].as_str().unwrap().to_string();
    let quota = |name: &str| format!("/api/v1/tenants/{tenant}/quotas/{name}");
    set_quota(
        &node,
        &tenant,
        "credits",
        json!({"limit": 100, "period": "monthly"}),
    )
    .await;
    set_quota(
        &node,
        &tenant,
        "rolling",
        json!({"limit": 100, "period": "monthly", "rollover": true, "rolloverMax": 30}),
    )
    .await;
    set_quota(
        &node,
        &tenant,
        "tokens",
        json!({"limit": 100, "period": "monthly", "action": "allow_overage", "preserveOverage": true}),
    )
    .await;
    let mut grpc = grpc_at_node_time(&node, t0 + 86_400_000).await;
    // A grant of 50 that expires in two hours; the same key adds nothing.
    let grant = json!({
        "amount": 50,
        "expiresAt": chrono::DateTime::from_timestamp_millis(t0 + 7_200_000).unwrap().to_rfc3339(),
        "priority": 1,
        "reason": "launch promo",
        "idempotencyKey": "promo-1"
    });
    let (status, g) = rest(
        &node,
        reqwest::Method::POST,
        &format!("{}/grants", quota("credits")),
        Some(grant.clone()),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    assert_eq!(
        (g["data"]["id"].as_u64(), g["data"]["status"].as_str()),
        (Some(1), Some("active"))
    );
    let (_, again) = rest(
        &node,
        reqwest::Method::POST,
        &format!("{}/grants", quota("credits")),
        Some(grant),
    )
    .await;
    assert_eq!(again["data"]["id"], 1);
    // A tenant admin may not add grants.
    let owner = common::token_for("owner", Some(&tenant), &[], 3600);
    let r = common::client()
        .post(node.url(&format!("{}/grants", quota("credits"))))
        .bearer_auth(owner)
        .json(&json!({"amount": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The allowance first, then the grant.
    for amount in [80, 40] {
        let d = grpc
            .increment(inc(&tenant, "credits", amount, ""))
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed, "{amount}: {d:?}");
    }
    let q = get(&node, &quota("credits")).await;
    assert_eq!(
        (
            q["usage"].as_u64(),
            q["usedFromGrants"].as_u64(),
            q["grantBalance"].as_u64()
        ),
        (Some(120), Some(20), Some(30)),
        "{q}"
    );
    assert_eq!(q["grants"][0]["remaining"], 30);
    for (name, amount) in [("rolling", 60), ("tokens", 130)] {
        let d = grpc
            .increment(inc(&tenant, name, amount, ""))
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed, "{name}");
    }
    drop(grpc);
    drop(node);

    // Three hours later the grant has expired: its 30 are gone.
    let node = node_at(dir.path(), t0 + 3 * 3_600_000);
    let mut grpc = grpc_at_node_time(&node, t0 + 86_400_000).await;
    let d = grpc
        .increment(inc(&tenant, "credits", 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed, "{d:?}");
    let grants = get(&node, &format!("{}/grants", quota("credits"))).await;
    assert_eq!(grants[0]["status"], "expired", "{grants}");
    assert_eq!(grants[0]["used"], 20, "what was drawn stays drawn");
    drop(grpc);
    drop(node);

    // 23:58 in New York is the next month in UTC, still this one for the
    // tenant.
    let node = node_at(dir.path(), boundary - 120_000);
    let q = get(&node, &quota("rolling")).await;
    assert_eq!(
        (q["usage"].as_u64(), q["carriedOver"].as_u64()),
        (Some(60), Some(0)),
        "{q}"
    );
    drop(node);

    // The next month in New York: 40 unused, 30 carried (the cap); 30 of
    // overage carried as usage.
    let node = node_at(dir.path(), boundary + 60_000);
    let q = get(&node, &quota("rolling")).await;
    assert_eq!(
        (
            q["usage"].as_u64(),
            q["carriedOver"].as_u64(),
            q["remaining"].as_u64()
        ),
        (Some(0), Some(30), Some(130)),
        "{q}"
    );
    let reset = chrono::DateTime::parse_from_rfc3339(q["resetAt"].as_str().unwrap()).unwrap();
    let local = reset.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(
        (
            chrono::Datelike::day(&local),
            chrono::Timelike::hour(&local)
        ),
        (1, 0),
        "the next month starts at midnight in New York: {q}"
    );
    let q = get(&node, &quota("tokens")).await;
    assert_eq!(
        (q["usage"].as_u64(), q["remaining"].as_u64()),
        (Some(30), Some(70)),
        "{q}"
    );
    let mut grpc = grpc_at_node_time(&node, t0 + 86_400_000).await;
    let d = grpc
        .increment(inc(&tenant, "rolling", 130, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed, "the carried allowance is spendable: {d:?}");
    let d = grpc
        .increment(inc(&tenant, "rolling", 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed);
    let q = get(&node, &quota("credits")).await;
    assert_eq!(
        (q["usage"].as_u64(), q["remaining"].as_u64()),
        (Some(0), Some(100)),
        "a new month: {q}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_admits_counts_and_reports_denials() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(&dir.path().join("data"), &rls_args(dir.path()));
    let tenant = create_tenant(&node, "shadowed", "ENTERPRISE").await;
    set_quota(
        &node,
        &tenant,
        "trial_limit",
        json!({"limit": 2, "period": "daily", "shadow": true}),
    )
    .await;
    let mut grpc = node.grpc().await;
    let verdicts: Vec<i32> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let d = grpc
                .increment(inc(&tenant, "trial_limit", 1, ""))
                .await
                .unwrap()
                .into_inner();
            assert!(d.allowed, "shadow mode admits");
            v.push(d.verdict);
        }
        v
    };
    assert_eq!(
        verdicts[2],
        pb::Verdict::ShadowDenied as i32,
        "{verdicts:?}"
    );
    let q = get(
        &node,
        &format!("/api/v1/tenants/{tenant}/quotas/trial_limit"),
    )
    .await;
    assert_eq!(
        (q["usage"].as_u64(), q["shadow"].as_bool()),
        (Some(3), Some(true)),
        "counted as usual"
    );
    let metrics = common::metrics_text(&node).await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("quota_shadow_denials_total")
                && l.contains(&tenant)
                && l.contains("trial_limit")
        })
        .unwrap_or_else(|| panic!("no shadow denial counted:\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");

    // A whole tenant in shadow (operators only): Envoy is answered OK.
    set_quota(
        &node,
        &tenant,
        "chat",
        json!({"limit": 1, "period": "daily"}),
    )
    .await;
    let owner = common::token_for("owner", Some(&tenant), &[], 3600);
    let r = common::client()
        .put(node.url(&format!("/api/v1/tenants/{tenant}/shadow")))
        .bearer_auth(owner)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, t) = rest(
        &node,
        reqwest::Method::PUT,
        &format!("/api/v1/tenants/{tenant}/shadow"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        (status, t["data"]["shadow"].as_bool()),
        (200, Some(true)),
        "{t}"
    );
    let mut rls = rls_client(&node).await;
    let ask = || RateLimitRequest {
        domain: "gw".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "tenant_id".into(),
                value: tenant.clone(),
            }],
            ..Default::default()
        }],
        hits_addend: 1,
    };
    for _ in 0..3 {
        let r = rls.should_rate_limit(ask()).await.unwrap().into_inner();
        assert_eq!(r.overall_code, Code::Ok as i32);
    }
    let q = get(&node, &format!("/api/v1/tenants/{tenant}/quotas/chat")).await;
    assert_eq!(q["usage"], 3);
    let (status, _) = rest(
        &node,
        reqwest::Method::PUT,
        &format!("/api/v1/tenants/{tenant}/shadow"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    let r = rls.should_rate_limit(ask()).await.unwrap().into_inner();
    assert_eq!(r.overall_code, Code::OverLimit as i32, "enforced again");
}
