//! Tenant customization against a real node: tier features gate every
//! endpoint that needs one (each tier × each gated endpoint), branding is
//! validated and kept across a downgrade, feature flags evaluate with the
//! tier's defaults, the tenant's values and the platform's definitions,
//! over REST and gRPC.
mod common;

use common::rest_call;
use common::{Node, http, operator, token_for};
use quotad_proto::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};

const TIERS: [&str; 4] = ["FREE", "STARTER", "PROFESSIONAL", "ENTERPRISE"];

fn rank(tier: &str) -> usize {
    TIERS.iter().position(|t| *t == tier).unwrap()
}

/// A tenant of `tier` owned by `owner`; its id.
async fn tenant(node: &Node, slug: &str, tier: &str, owner: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": slug, "slug": slug, "tier": tier, "ownerUserId": owner}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["data"]["id"].as_str().unwrap().to_string()
}

async fn upgrade(node: &Node, id: &str, tier: &str) {
    let (status, body) = rest_call(
        node,
        Some(&operator()),
        &Method::POST,
        &format!("/api/v1/tenants/{id}/upgrade"),
        &Some(json!({"tier": tier})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tier_gated_endpoint_is_allowed_from_its_tier_and_refused_below_naming_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let mut grpc = node.grpc().await;
    // (what, lowest tier, method, path under the tenant, body, by operator)
    let gated: [(&str, &str, Method, &str, Value, bool); 8] = [
        // SSO's tier is checked before its issuer: where allowed, this
        // loopback issuer is then refused (a private address), a 400
        // naming `issuer`, with nothing fetched.
        (
            "sso",
            "PROFESSIONAL",
            Method::PUT,
            "sso",
            json!({"issuer": "https://127.0.0.1:9", "clientId": "q"}),
            false,
        ),
        (
            "api_settings",
            "PROFESSIONAL",
            Method::PUT,
            "api-settings",
            json!({"ipAllowlist": ["10.0.0.0/8"]}),
            false,
        ),
        // A public address literal: nothing to resolve, nothing sent (no
        // alert is raised in this test).
        (
            "webhooks",
            "STARTER",
            Method::POST,
            "webhooks",
            json!({"url": "https://93.184.216.34/hook"}),
            false,
        ),
        (
            "custom_branding",
            "PROFESSIONAL",
            Method::PUT,
            "branding",
            json!({"primaryColor": "#0b3d91"}),
            false,
        ),
        (
            "white_label",
            "ENTERPRISE",
            Method::PUT,
            "branding",
            json!({"whiteLabel": true}),
            false,
        ),
        (
            "custom_domains",
            "PROFESSIONAL",
            Method::POST,
            "domains",
            json!({"domain": "DOMAIN"}),
            false,
        ),
        (
            "flag beta_models",
            "PROFESSIONAL",
            Method::PUT,
            "flags/beta_models",
            json!({"value": true}),
            false,
        ),
        (
            "dedicated_schema",
            "ENTERPRISE",
            Method::POST,
            "dedicated",
            json!({}),
            true,
        ),
    ];
    for tier in TIERS {
        let owner = format!("owner-{}", tier.to_lowercase());
        let id = tenant(
            &node,
            &format!("gate-{}", tier.to_lowercase()),
            tier,
            &owner,
        )
        .await;
        let owner_token = token_for(&owner, Some(&id), &[], 3600);
        for (feature, needs, method, path, body, by_operator) in &gated {
            let body = serde_json::from_str(
                &body
                    .to_string()
                    .replace("DOMAIN", &format!("{}.gate.test", tier.to_lowercase())),
            )
            .unwrap();
            let token = if *by_operator {
                operator()
            } else {
                owner_token.clone()
            };
            let (status, answer) = rest_call(
                &node,
                Some(&token),
                method,
                &format!("/api/v1/tenants/{id}/{path}"),
                &Some(body),
            )
            .await;
            if rank(tier) >= rank(needs) && *feature == "sso" {
                assert_eq!(
                    (status, answer["error"]["field"].as_str()),
                    (400, Some("issuer")),
                    "{answer}"
                );
            } else if rank(tier) >= rank(needs) {
                assert!(
                    status == 200 || status == 201,
                    "{feature} on {tier}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{feature} on {tier}: {answer}");
                let message = answer["error"]["message"].as_str().unwrap();
                // White label is part of branding: below custom branding's
                // tier, that is what the refusal names.
                let (feature, needs) =
                    if *feature == "white_label" && rank(tier) < rank("PROFESSIONAL") {
                        ("custom_branding", "PROFESSIONAL")
                    } else {
                        (*feature, *needs)
                    };
                assert_eq!(
                    message,
                    format!("{feature} needs the {needs} tier or above; the tenant is on {tier}"),
                );
            }
        }
        // The gateway's question, over gRPC, for every feature of the catalog.
        let (_, listed) = rest_call(
            &node,
            Some(&owner_token),
            &Method::GET,
            &format!("/api/v1/tenants/{id}/features"),
            &None,
        )
        .await;
        let features = listed["data"]["features"].as_array().unwrap();
        assert!(features.len() >= 8, "{listed}");
        assert_eq!(
            listed["data"]["sla"],
            ["none", "99%", "99.9%", "99.99%"][rank(tier)]
        );
        for f in features {
            let name = f["name"].as_str().unwrap();
            let min = f["minTier"].as_str().unwrap();
            let answer = grpc
                .check_feature(pb::CheckFeatureRequest {
                    tenant_id: id.clone(),
                    feature: name.into(),
                })
                .await
                .unwrap()
                .into_inner();
            let want = rank(tier) >= rank(min);
            assert_eq!(answer.enabled, want, "{name} on {tier}");
            assert_eq!(f["enabled"], want, "{name} on {tier}");
            assert_eq!(answer.min_tier, min);
            assert_eq!(answer.tier, tier);
            if !want {
                assert!(answer.reason.contains(min), "{}", answer.reason);
            }
        }
        let unknown = grpc
            .check_feature(pb::CheckFeatureRequest {
                tenant_id: id.clone(),
                feature: "teleportation".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        assert!(unknown.message().contains("teleportation"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branding_is_validated_field_by_field_and_survives_a_downgrade_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let id = tenant(&node, "brand", "PROFESSIONAL", "olga").await;
    let owner = token_for("olga", Some(&id), &[], 3600);
    let path = format!("/api/v1/tenants/{id}/branding");
    let good = json!({
        "logoUrl": "https://cdn.brand.test/logo.svg",
        "faviconUrl": "https://cdn.brand.test/favicon.ico",
        "primaryColor": "#0B3D91",
        "secondaryColor": "#ffb000",
        "textColor": "#ffffff",
        "theme": "dark",
        "productName": "Brand AI"
    });
    let (status, body) = rest_call(
        &node,
        Some(&owner),
        &Method::PUT,
        &path,
        &Some(good.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["primaryColor"], "#0b3d91");
    assert_eq!(body["data"]["active"], true);
    let bad: [(&str, Value, &str); 9] = [
        ("logoUrl", json!("http://cdn.brand.test/logo.svg"), "https"),
        ("faviconUrl", json!("javascript:alert(1)"), "https"),
        (
            "logoUrl",
            json!("https://user:pw@cdn.brand.test/x.png"),
            "password",
        ),
        ("primaryColor", json!("navy"), "#rrggbb"),
        ("secondaryColor", json!("#12345"), "#rrggbb"),
        ("textColor", json!("#1a4a9a"), "WCAG AA"),
        ("theme", json!("neon"), "light, dark or auto"),
        ("productName", json!("x".repeat(101)), "100"),
        ("whiteLabel", json!("yes"), "whiteLabel"),
    ];
    for (field, value, says) in bad {
        let mut b = good.clone();
        b[field] = value;
        let (status, answer) = rest_call(&node, Some(&owner), &Method::PUT, &path, &Some(b)).await;
        assert_eq!(status, 400, "{field}: {answer}");
        let e = &answer["error"];
        assert!(
            e["field"].as_str().unwrap_or_default().contains(field)
                || e["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{field}: {answer}"
        );
    }
    let (_, now) = rest_call(&node, Some(&owner), &Method::GET, &path, &None).await;
    assert_eq!(
        now["data"]["primaryColor"], "#0b3d91",
        "refused changes left nothing behind"
    );
    let (status, unknown) = rest_call(
        &node,
        Some(&owner),
        &Method::PUT,
        &path,
        &Some(json!({"colour": "#000000"})),
    )
    .await;
    assert_eq!(status, 400, "{unknown}");

    // Down to STARTER: kept, switched off; back up: on again.
    upgrade(&node, &id, "STARTER").await;
    let (_, down) = rest_call(&node, Some(&owner), &Method::GET, &path, &None).await;
    assert_eq!(
        (
            down["data"]["custom"].clone(),
            down["data"]["active"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(down["data"]["productName"], "Brand AI");
    let (status, _) = rest_call(
        &node,
        Some(&owner),
        &Method::PUT,
        &path,
        &Some(good.clone()),
    )
    .await;
    assert_eq!(status, 403);
    upgrade(&node, &id, "PROFESSIONAL").await;
    let (_, up) = rest_call(&node, Some(&owner), &Method::GET, &path, &None).await;
    assert_eq!(up["data"]["active"], true);

    // Audited; a viewer may read but not change it.
    let (_, audit) = rest_call(
        &node,
        Some(&operator()),
        &Method::GET,
        &format!("/api/v1/tenants/{id}/audit"),
        &None,
    )
    .await;
    let actions: Vec<&str> = audit["data"]["events"]
        .as_array()
        .or(audit["data"].as_array())
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"branding.updated"), "{actions:?}");
    let (status, _) = rest_call(
        &node,
        Some(&operator()),
        &Method::POST,
        &format!("/api/v1/tenants/{id}/members"),
        &Some(json!({"userId": "vic", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201);
    let viewer = token_for("vic", Some(&id), &[], 3600);
    let (status, _) = rest_call(&node, Some(&viewer), &Method::GET, &path, &None).await;
    assert_eq!(status, 200);
    let (status, _) = rest_call(&node, Some(&viewer), &Method::PUT, &path, &Some(good)).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_evaluate_from_tier_defaults_tenant_values_and_platform_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let pro = tenant(&node, "flags-pro", "PROFESSIONAL", "pat").await;
    let free = tenant(&node, "flags-free", "FREE", "fay").await;
    let pat = token_for("pat", Some(&pro), &[], 3600);
    let fay = token_for("fay", Some(&free), &[], 3600);
    let flag = |body: &Value, key: &str| -> Value {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (_, list) = rest_call(
        &node,
        Some(&pat),
        &Method::GET,
        &format!("/api/v1/tenants/{pro}/flags"),
        &None,
    )
    .await;
    let ctx = flag(&list, "max_context_tokens");
    assert_eq!(
        (
            ctx["value"].clone(),
            ctx["reason"].clone(),
            ctx["variant"].clone()
        ),
        (json!(32768), json!("DEFAULT"), json!("professional"))
    );
    assert_eq!(flag(&list, "model_routing")["reason"], "STATIC");
    // The tenant's value wins; one of the wrong type is refused.
    let put = |t: &str, tok: &str, key: &str, v: Value| {
        let (t, tok, key) = (t.to_string(), tok.to_string(), key.to_string());
        let node = &node;
        async move {
            rest_call(
                node,
                Some(&tok),
                &Method::PUT,
                &format!("/api/v1/tenants/{t}/flags/{key}"),
                &Some(json!({"value": v})),
            )
            .await
        }
    };
    let (status, body) = put(&pro, &pat, "max_context_tokens", json!(65536)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["value"].clone(),
            body["data"]["reason"].clone()
        ),
        (json!(65536), json!("TARGETING_MATCH"))
    );
    let (status, body) = put(&pro, &pat, "max_context_tokens", json!("lots")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "value");
    // A flag below the tenant's tier: refused to set, DISABLED with the default.
    let (status, body) = put(&free, &fay, "beta_models", json!(true)).await;
    assert_eq!(status, 403, "{body}");
    let (_, one) = rest_call(
        &node,
        Some(&fay),
        &Method::GET,
        &format!("/api/v1/tenants/{free}/flags/beta_models"),
        &None,
    )
    .await;
    assert_eq!(
        (one["data"]["value"].clone(), one["data"]["reason"].clone()),
        (json!(false), json!("DISABLED"))
    );
    // A flag of the tenant's own, and the tier's limit on values (FREE: 5).
    for i in 0..5 {
        let (status, body) = put(&free, &fay, &format!("own_{i}"), json!({"n": i})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = put(&free, &fay, "own_5", json!(1)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 feature flags"),
        "{body}"
    );
    let (status, _) = rest_call(
        &node,
        Some(&fay),
        &Method::DELETE,
        &format!("/api/v1/tenants/{free}/flags/own_4"),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = rest_call(
        &node,
        Some(&fay),
        &Method::DELETE,
        &format!("/api/v1/tenants/{free}/flags/own_4"),
        &None,
    )
    .await;
    assert_eq!(status, 404);

    // Operators define a platform flag; tenants see it at once; its changes are kept.
    let op = operator();
    let def = json!({"type": "string", "default": "v1", "tiers": {"ENTERPRISE": "v2"}, "minTier": "STARTER", "description": "Checkout page"});
    let (status, body) = rest_call(
        &node,
        Some(&op),
        &Method::PUT,
        "/api/v1/platform/flags/checkout",
        &Some(def),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = rest_call(
        &node,
        Some(&pat),
        &Method::PUT,
        "/api/v1/platform/flags/checkout",
        &Some(json!({"type": "boolean", "default": true})),
    )
    .await;
    assert_eq!(status, 403, "operators only");
    let (status, body) = rest_call(
        &node,
        Some(&op),
        &Method::PUT,
        "/api/v1/platform/flags/bad",
        &Some(json!({"type": "boolean", "default": "yes"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("default"))
    );
    let (_, one) = rest_call(
        &node,
        Some(&pat),
        &Method::GET,
        &format!("/api/v1/tenants/{pro}/flags/checkout"),
        &None,
    )
    .await;
    assert_eq!(
        (
            one["data"]["value"].clone(),
            one["data"]["reason"].clone(),
            one["data"]["source"].clone()
        ),
        (json!("v1"), json!("STATIC"), json!("platform"))
    );
    let (_, one) = rest_call(
        &node,
        Some(&fay),
        &Method::GET,
        &format!("/api/v1/tenants/{free}/flags/checkout"),
        &None,
    )
    .await;
    assert_eq!(one["data"]["reason"], "DISABLED");
    let (status, _) = rest_call(
        &node,
        Some(&op),
        &Method::DELETE,
        "/api/v1/platform/flags/checkout",
        &None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, changes) = rest_call(
        &node,
        Some(&op),
        &Method::GET,
        "/api/v1/platform/flag-changes",
        &None,
    )
    .await;
    let changes = changes["data"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        (changes[0]["after"].clone(), changes[1]["before"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(changes[1]["after"]["default"], "v1");
    assert_eq!(changes[0]["actor"], "ops");

    // The tenant's flag changes are in its audit chain.
    let (_, audit) = rest_call(
        &node,
        Some(&op),
        &Method::GET,
        &format!("/api/v1/tenants/{free}/audit"),
        &None,
    )
    .await;
    let events = audit["data"]["events"]
        .as_array()
        .or(audit["data"].as_array())
        .unwrap()
        .clone();
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "flag.set" && e["target"] == "own_0")
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "flag.removed" && e["target"] == "own_4")
    );

    // Over gRPC, as a gateway reads them.
    let mut grpc = node.grpc().await;
    let flags = grpc
        .evaluate_flags(pb::EvaluateFlagsRequest {
            tenant_id: pro.clone(),
            keys: vec!["max_context_tokens".into(), "nope".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .flags;
    assert_eq!(flags[0].value_json, "65536");
    assert_eq!(flags[0].reason, "TARGETING_MATCH");
    assert_eq!(flags[1].error_code, "FLAG_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_refused_outside_the_tenants_ip_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let id = tenant(&node, "nets", "PROFESSIONAL", "nora").await;
    let nora = token_for("nora", Some(&id), &[], 3600);
    let settings = format!("/api/v1/tenants/{id}/api-settings");
    let (status, key) = rest_call(
        &node,
        Some(&operator()),
        &Method::POST,
        &format!("/api/v1/tenants/{id}/api-keys"),
        &Some(json!({"name": "app", "scopes": ["check"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key = key["data"]["key"].as_str().unwrap().to_string();
    let mut grpc = common::grpc_with(
        &node.grpc,
        quotad_proto::credential::Bearer::new(&key).unwrap(),
    )
    .await;
    let check = pb::CheckRequest {
        tenant_id: id.clone(),
        quota: "api_requests".into(),
        amount: 1,
        ..Default::default()
    };
    let ofrep = || {
        common::client()
            .post(node.url("/ofrep/v1/evaluate/flags/max_context_tokens"))
            .bearer_auth(&key)
            .json(&json!({"context": {"targetingKey": id}}))
            .send()
    };
    assert!(grpc.check(check.clone()).await.is_ok(), "no list: anywhere");
    assert_eq!(ofrep().await.unwrap().status(), 200);

    for (body, field) in [
        (json!({"ipAllowlist": ["10.0.0.0/33"]}), "ipAllowlist"),
        (
            json!({"corsOrigins": ["https://app.nets.test/path"]}),
            "corsOrigins",
        ),
        (json!({"ipAllowlist": "10.0.0.0/8"}), "ipAllowlist"),
    ] {
        let (status, e) = rest_call(&node, Some(&nora), &Method::PUT, &settings, &Some(body)).await;
        assert_eq!(status, 400, "{e}");
        assert!(
            e["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .contains(field)
                || e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    let (status, body) = rest_call(
        &node,
        Some(&nora),
        &Method::PUT,
        &settings,
        &Some(json!({"ipAllowlist": ["10.0.0.0/8"], "corsOrigins": ["https://app.nets.test"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["active"], true);
    // A page on the allowed origin may call the tenant's API from a
    // browser; another origin may not.
    let preflight = |origin: &str| {
        common::client()
            .request(Method::OPTIONS, node.url(&settings))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.nets.test").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.nets.test"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let no = preflight("https://evil.test").await.unwrap();
    assert_eq!(no.status(), 403);
    assert!(no.headers().get("access-control-allow-origin").is_none());
    let get = common::client()
        .get(node.url(&settings))
        .bearer_auth(&nora)
        .header("origin", "https://app.nets.test")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.headers()["access-control-allow-origin"],
        "https://app.nets.test"
    );
    let other = common::client()
        .get(node.url(&settings))
        .bearer_auth(&nora)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Keys are looked at again within half a second.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let refused = grpc.check(check.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("IP allowlist"),
        "{}",
        refused.message()
    );
    assert_eq!(ofrep().await.unwrap().status(), 403);
    // Tokens are not API keys: a service token still works from here.
    assert!(node.grpc().await.check(check.clone()).await.is_ok());
    let metrics = common::metrics_text(&node).await;
    assert!(
        metrics.contains("quotad_auth_failures_total{reason=\"ip_allowlist\"}"),
        "{metrics}"
    );

    let (status, _) = rest_call(
        &node,
        Some(&nora),
        &Method::PUT,
        &settings,
        &Some(json!({"ipAllowlist": ["127.0.0.0/8", "::1"]})),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        grpc.check(check.clone()).await.is_ok(),
        "loopback is listed"
    );
    assert_eq!(ofrep().await.unwrap().status(), 200);

    // Below the tier the settings are kept, out of force.
    let (status, _) = rest_call(
        &node,
        Some(&nora),
        &Method::PUT,
        &settings,
        &Some(json!({"ipAllowlist": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(status, 200);
    upgrade(&node, &id, "STARTER").await;
    let (_, kept) = rest_call(&node, Some(&nora), &Method::GET, &settings, &None).await;
    assert_eq!(
        (
            kept["data"]["ipAllowlist"].clone(),
            kept["data"]["active"].clone()
        ),
        (json!(["10.0.0.0/8"]), json!(false))
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        grpc.check(check).await.is_ok(),
        "not in force below the tier"
    );
    let (status, e) = rest_call(
        &node,
        Some(&nora),
        &Method::PUT,
        &settings,
        &Some(json!({"ipAllowlist": []})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        e["error"]["message"],
        "api_settings needs the PROFESSIONAL tier or above; the tenant is on STARTER"
    );
}
