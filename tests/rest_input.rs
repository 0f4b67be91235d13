//! Black-box: what the control plane does with the bodies it is sent:
//! the product's field names, settings the engine interprets, errors in
//! JSON's words that name the field, and authorization before any of it.
mod common;

use chrono::{Datelike, TimeZone};
use common::{Node, rest_call, token_for};
use reqwest::Method;
use serde_json::{Value, json};

/// `POST /api/v1/tenants` as `user`; the status and the envelope.
async fn create_as(node: &Node, user: &str, body: Value) -> (u16, Value) {
    let token = token_for(user, None, &[], 3600);
    rest_call(
        node,
        Some(&token),
        &Method::POST,
        "/api/v1/tenants",
        &Some(body),
    )
    .await
}

/// `GET /api/v1/tenants/{tenant}/members` as the holder of `token`.
async fn members_of(node: &Node, token: &str, tenant: &str) -> Value {
    let path = format!("/api/v1/tenants/{tenant}/members");
    rest_call(node, Some(token), &Method::GET, &path, &None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_named_as_the_product_names_it_and_keeps_a_checked_email() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    // ownerUserId, ownerEmail (and ownerId, the older name, still works).
    let (status, v) = create_as(
        &node,
        "user-1",
        json!({"name": "One", "slug": "one", "ownerUserId": "user-1", "ownerEmail": "admin@one.test"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let one = v["data"]["id"].as_str().unwrap().to_string();
    let owner1 = token_for("user-1", None, &[], 3600);
    let members = members_of(&node, &owner1, &one).await;
    assert_eq!(
        members["data"],
        json!([{"userId": "user-1", "role": "owner", "email": "admin@one.test",
                "addedAt": members["data"][0]["addedAt"]}])
    );
    let (status, _) = create_as(
        &node,
        "user-2",
        json!({"name": "Two", "slug": "two", "ownerId": "user-2"}),
    )
    .await;
    assert_eq!(status, 201);

    // Someone else as owner: only operators may.
    let (status, v) = create_as(
        &node,
        "user-3",
        json!({"name": "Three", "slug": "three", "ownerUserId": "someone-else"}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    // A bad email is refused, naming the field; nothing is created.
    for email in ["not-an-email", "a@b", "two@@x.test", "sp ace@x.test", ""] {
        let (status, v) = create_as(
            &node,
            "user-4",
            json!({"name": "Four", "slug": "four", "ownerEmail": email}),
        )
        .await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (400, Some("ownerEmail")),
            "{email:?}: {v}"
        );
    }
    let (status, _) = create_as(&node, "user-4", json!({"name": "Four", "slug": "four"})).await;
    assert_eq!(status, 201, "the refused creations left the slug free");

    // The email survives kill -9 and a restart: it is in the Raft log and
    // snapshots (format version 1), read back from the store.
    drop(node);
    let node = Node::start(dir.path());
    let members = members_of(&node, &owner1, &one).await;
    assert_eq!(members["data"][0]["email"], "admin@one.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_timezone_sets_the_tenants_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (status, v) = create_as(&node, "alice", json!({"name": "Acme", "slug": "acme"})).await;
    assert_eq!(status, 201);
    let t = v["data"]["id"].as_str().unwrap().to_string();
    let alice = token_for("alice", None, &[], 3600);
    let path = format!("/api/v1/tenants/{t}");
    let (status, v) = rest_call(
        &node,
        Some(&alice),
        &Method::PUT,
        &path,
        &Some(json!({"name": "Acme Corporation", "settings": {"timezone": "America/New_York", "theme": "dark"}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["timezone"], "America/New_York");
    assert_eq!(
        v["data"]["settings"],
        json!({"timezone": "America/New_York", "theme": "dark"})
    );

    // The monthly period now ends at New York's midnight.
    let (_, q) = rest_call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("{path}/quotas/api_requests"),
        &None,
    )
    .await;
    let ny = chrono_tz::America::New_York;
    let now = chrono::Utc::now().with_timezone(&ny);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let reset = ny
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(q["data"]["resetAt"], json!(reset), "{q}");

    // Bad values are refused naming settings.timezone, and change nothing.
    for (settings, why) in [
        (json!({"timezone": "Mars/Olympus"}), "IANA"),
        (json!({"timezone": 5}), "string"),
    ] {
        let (status, v) = rest_call(
            &node,
            Some(&alice),
            &Method::PUT,
            &path,
            &Some(json!({"name": "Changed", "settings": settings})),
        )
        .await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (400, Some("settings.timezone")),
            "{v}"
        );
        assert!(v["error"]["message"].as_str().unwrap().contains(why), "{v}");
    }
    let (status, v) = rest_call(
        &node,
        Some(&alice),
        &Method::PUT,
        &path,
        &Some(json!({"timezone": "Europe/Paris", "settings": {"timezone": "Asia/Tokyo"}})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("settings.timezone")),
        "{v}"
    );
    let (_, v) = rest_call(&node, Some(&alice), &Method::GET, &path, &None).await;
    assert_eq!(v["data"]["name"], "Acme Corporation");
    assert_eq!(v["data"]["timezone"], "America/New_York");

    // At creation too.
    let (status, v) = create_as(
        &node,
        "bob",
        json!({"name": "Tokyo", "slug": "tokyo", "settings": {"timezone": "Asia/Tokyo"}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["data"]["timezone"], "Asia/Tokyo");
}

/// Every write to a tenant, sent by the owner of *another* tenant with a
/// body that would fail validation, is refused as forbidden: the body is
/// never looked at. The routes come from the OpenAPI document, so a new
/// endpoint is covered when it is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_comes_before_body_validation_on_every_tenant_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (_, v) = create_as(&node, "victim", json!({"name": "V", "slug": "victim"})).await;
    let victim = v["data"]["id"].as_str().unwrap().to_string();
    let (_, _) = create_as(&node, "mallory", json!({"name": "M", "slug": "mallory"})).await;
    let mallory = token_for("mallory", None, &[], 3600);
    let doc = common::get_json(&node.url("/api/v1/openapi.json")).await;
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.starts_with("/api/v1/tenants/{id}") {
            continue;
        }
        let path = template
            .replace("{id}", &victim)
            .replace("{quota}", "api_requests")
            .replace("{user}", "victim")
            .replace("{domain}", "x.example.com");
        for method in ["post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            for body in [
                json!({"bogus": true, "limit": "lots", "tier": 7}),
                json!([1, 2, 3]),
            ] {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (status, v) = rest_call(&node, Some(&mallory), &m, &path, &Some(body)).await;
                assert_eq!(
                    (status, v["error"]["code"].as_str()),
                    (403, Some("PERMISSION_DENIED")),
                    "{method} {template}: {v}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} tenant writes found");
    // Query parameters too: a foreign caller's bad parameters are not read.
    for path in [
        format!("/api/v1/tenants/{victim}/audit?limit=lots&from=yesterday"),
        format!("/api/v1/tenants/{victim}/usage?quota=NOT+A+NAME&granularity=week"),
    ] {
        let (status, v) = rest_call(&node, Some(&mallory), &Method::GET, &path, &None).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_errors_name_the_field_in_json_terms() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (_, v) = create_as(&node, "alice", json!({"name": "A", "slug": "a"})).await;
    let t = v["data"]["id"].as_str().unwrap().to_string();
    let alice = token_for("alice", None, &[], 3600);
    let quota = format!("/api/v1/tenants/{t}/quotas/api_requests");
    let cases = [
        (
            Method::POST,
            "/api/v1/tenants".to_string(),
            r#"{"slug": "no-name"}"#,
            "name",
            "name is required",
        ),
        (
            Method::PUT,
            quota.clone(),
            r#"{"limit": 99999999999999999999}"#,
            "limit",
            "limit is too large",
        ),
        (
            Method::PUT,
            quota.clone(),
            r#"{"limit": 1.5}"#,
            "limit",
            "whole number",
        ),
        (
            Method::PUT,
            quota.clone(),
            r#"{"limit": "many"}"#,
            "limit",
            "not a string",
        ),
        (
            Method::PUT,
            quota.clone(),
            r#"{"limit": 5, "period": "weekly"}"#,
            "period",
            "expected one of",
        ),
        (
            Method::POST,
            "/api/v1/tenants".to_string(),
            r#"{"name": "x", "slug": "x", "trialDays": -1}"#,
            "trialDays",
            "out of range",
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{t}/members"),
            r#"{"userId": "bob"}"#,
            "role",
            "role is required",
        ),
    ];
    let (status, v) = rest_call(
        &node,
        Some(&alice),
        &Method::GET,
        &format!("/api/v1/tenants/{t}/audit?limit=lots"),
        &None,
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("limit")),
        "{v}"
    );
    assert_eq!(v["error"]["message"], "limit must be a whole number");
    for (method, path, body, field, words) in cases {
        let resp = common::client()
            .request(method, node.url(&path))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (400, Some(field)),
            "{v}"
        );
        assert!(message.contains(words), "{message}");
        for rust in ["u64", "u32", "i64", "floating point", "struct ", "`"] {
            assert!(!message.contains(rust), "Rust leaks into {message:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let op = common::operator();
    const LIMIT: isize = 256 << 10;
    // A tenant whose `settings.note` makes the whole body `LIMIT + extra`
    // bytes long.
    let body = |extra: isize| {
        let base = json!({"name": "Big", "slug": "big", "settings": {"note": ""}});
        let len = serde_json::to_vec(&base).unwrap().len() as isize;
        let note = "x".repeat((LIMIT + extra - len) as usize);
        Some(json!({"name": "Big", "slug": "big", "settings": {"note": note}}))
    };
    let path = "/api/v1/tenants";

    let (status, v) = rest_call(&node, Some(&op), &Method::POST, path, &body(1)).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
        (Some("INVALID_ARGUMENT"), Some("body")),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("larger than the limit of 262144 bytes"),
        "{v}"
    );
    // At the limit the body is read; its settings are then too large.
    let (status, v) = rest_call(&node, Some(&op), &Method::POST, path, &body(0)).await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("settings")),
        "{v}"
    );
    // Neither claimed the slug.
    let small = Some(json!({"name": "Big", "slug": "big"}));
    let (status, v) = rest_call(&node, Some(&op), &Method::POST, path, &small).await;
    assert_eq!(status, 201, "{v}");
}
