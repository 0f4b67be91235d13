//! The served OpenAPI document covers the API, and schemathesis (from PyPI)
//! finds no server errors and no responses that contradict it.
mod common;

use common::Node;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let doc: serde_json::Value = common::client()
        .get(node.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/api/v1/tenants", vec!["post"]),
        ("/api/v1/tenants/{id}", vec!["get", "put", "delete"]),
        ("/api/v1/tenants/{id}/restore", vec!["post"]),
        ("/api/v1/tenants/{id}/upgrade", vec!["post"]),
        ("/api/v1/tenants/{id}/quotas", vec!["get"]),
        ("/api/v1/tenants/{id}/quotas/{quota}", vec!["get", "put"]),
        (
            "/api/v1/tenants/{id}/quotas/{quota}/grants",
            vec!["get", "post"],
        ),
        (
            "/api/v1/tenants/{id}/quotas/{quota}/grants/{grant}/void",
            vec!["post"],
        ),
        ("/api/v1/tenants/{id}/quotas/{quota}/scopes", vec!["get"]),
        ("/api/v1/tenants/{id}/shadow", vec!["put"]),
        ("/api/v1/tenants/{id}/members", vec!["get", "post"]),
        ("/api/v1/tenants/{id}/members/{user}", vec!["put", "delete"]),
        ("/api/v1/tenants/{id}/api-keys", vec!["get", "post"]),
        ("/api/v1/tenants/{id}/api-keys/{key}", vec!["delete"]),
        ("/api/v1/tenants/{id}/api-keys/{key}/rotate", vec!["post"]),
        ("/api/v1/tenants/{id}/audit", vec!["get"]),
        ("/api/v1/tenants/{id}/usage", vec!["get"]),
        ("/api/v1/tenants/{id}/domains", vec!["get", "post"]),
        ("/api/v1/tenants/{id}/domains/{domain}", vec!["delete"]),
        ("/api/v1/tenants/{id}/domains/{domain}/verify", vec!["post"]),
        ("/api/v1/tenants/{id}/features", vec!["get"]),
        ("/api/v1/tenants/{id}/api-settings", vec!["get", "put"]),
        ("/api/v1/tenants/{id}/sso", vec!["get", "put", "delete"]),
        (
            "/api/v1/tenants/{id}/branding",
            vec!["get", "put", "delete"],
        ),
        ("/api/v1/tenants/{id}/flags", vec!["get"]),
        (
            "/api/v1/tenants/{id}/flags/{key}",
            vec!["get", "put", "delete"],
        ),
        ("/api/v1/platform/flags", vec!["get"]),
        ("/api/v1/platform/flags/{key}", vec!["get", "put", "delete"]),
        ("/api/v1/platform/flag-changes", vec!["get"]),
        ("/api/v1/tenants/{id}/webhooks", vec!["get", "post"]),
        (
            "/api/v1/tenants/{id}/webhooks/{webhook}",
            vec!["get", "put", "delete"],
        ),
        (
            "/api/v1/tenants/{id}/webhooks/{webhook}/rotate",
            vec!["post"],
        ),
        ("/api/v1/tenants/{id}/deliveries", vec!["get"]),
        (
            "/api/v1/tenants/{id}/deliveries/{delivery}/retry",
            vec!["post"],
        ),
        ("/api/v1/tenants/{id}/alerts", vec!["get"]),
        ("/api/v1/tenants/{id}/billing-events", vec!["post"]),
        ("/api/v1/tenants/{id}/placement", vec!["get"]),
        ("/api/v1/tenants/{id}/dedicated", vec!["post"]),
        ("/api/v1/sharing/policies", vec!["get", "post"]),
        (
            "/api/v1/sharing/policies/{id}",
            vec!["get", "put", "delete"],
        ),
        ("/api/v1/sharing/policies/{id}/request-access", vec!["post"]),
        ("/api/v1/sharing/policies/{id}/requests", vec!["get"]),
        ("/api/v1/sharing/requests", vec!["get"]),
        ("/api/v1/sharing/requests/{rid}/approve", vec!["post"]),
        ("/api/v1/sharing/requests/{rid}/deny", vec!["post"]),
        ("/api/v1/sharing/grants", vec!["get"]),
        ("/api/v1/sharing/grants/{gid}", vec!["delete"]),
        ("/api/v1/marketplace", vec!["get"]),
        ("/api/v1/sharing/statements", vec!["get"]),
        ("/api/v1/platform/statements", vec!["get"]),
        ("/api/v1/platform/periods", vec!["get"]),
        ("/api/v1/platform/periods/{period}/close", vec!["post"]),
        ("/api/v1/platform/sharing/settings", vec!["get", "put"]),
        ("/api/v1/platform/webhooks", vec!["get", "post"]),
        (
            "/api/v1/platform/webhooks/{webhook}",
            vec!["get", "put", "delete"],
        ),
        ("/api/v1/platform/webhooks/{webhook}/rotate", vec!["post"]),
        ("/api/v1/platform/deliveries", vec!["get"]),
        ("/api/v1/platform/deliveries/{delivery}/retry", vec!["post"]),
        ("/api/v1/platform/alerts", vec!["get"]),
        ("/api/v1/platform/webhook-changes", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in expected {
        for m in methods {
            let op = &paths[path][m];
            assert!(op.is_object(), "{m} {path} is not documented");
            if path.starts_with("/api/v1") {
                for status in ["400", "401", "403", "404"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{m} {path} does not document {status}"
                    );
                }
            }
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} not found: run the README's test command (scripts/test.sh), which installs it, or set QUOTAD_TEST_PYTHON",
        schemathesis.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let out = Command::new("timeout")
        .arg("600")
        .arg(&schemathesis)
        .arg("run")
        .arg(node.url("/api/v1/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", common::operator())])
        .args([
            "-c",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        // Bounded and reproducible: 30 cases per operation, fixed seed.
        .args(["-n", "30", "--seed", "1", "--phases", "coverage,fuzzing"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
