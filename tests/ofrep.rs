//! Feature flags read by a third-party client: OpenFeature's Python SDK
//! with its OFREP provider (`tests/python/ofrep_flow.py`) against a real
//! node. `scripts/test.sh` installs both into the test Python.
mod common;

use common::{Node, http, operator, rest_call, service_token};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;

async fn tenant(node: &Node, slug: &str, tier: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": slug, "slug": slug, "tier": tier}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["data"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openfeature_python_sdk_reads_tenant_flags_over_ofrep() {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import openfeature.contrib.provider.ofrep, requests"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{python} cannot import openfeature's OFREP provider: run the README's test command \
         (scripts/test.sh), which installs it, or set QUOTAD_TEST_PYTHON"
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let pro = tenant(&node, "of-pro", "PROFESSIONAL").await;
    let free = tenant(&node, "of-free", "FREE").await;
    let op = operator();
    let (status, body) = rest_call(
        &node,
        Some(&op),
        &Method::PUT,
        &format!("/api/v1/tenants/{pro}/flags/max_context_tokens"),
        &Some(json!({"value": 65536})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, key) = rest_call(
        &node,
        Some(&op),
        &Method::POST,
        &format!("/api/v1/tenants/{free}/api-keys"),
        &Some(json!({"name": "flags", "scopes": ["check"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(&python)
        .arg(format!("{root}/tests/python/ofrep_flow.py"))
        .args(["--http", &node.http])
        .args(["--service-token", &service_token()])
        .args(["--operator-token", &op])
        .args(["--pro", &pro, "--free", &free])
        .args(["--free-key", key["data"]["key"].as_str().unwrap()])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OFREP client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ofrep flow: all good"), "{stdout}");
}
