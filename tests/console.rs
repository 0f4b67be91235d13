//! The web console (`/console`) against real nodes: in headless Chromium
//! (Debian's, driven by Playwright for Python; `tests/python/console_browser.py`)
//! and, for what needs no browser, over HTTP with reqwest.
//!
//! `scripts/test.sh` installs Chromium, Playwright and axe-core and points
//! `QUOTAD_TEST_PYTHON`, `QUOTAD_TEST_CHROMIUM` and `QUOTAD_TEST_AXE` at
//! them. Screenshots go to `target/console-screenshots/` (not kept in the
//! repository).
mod common;

use common::browser::{axe, browse, require_browser, shots};
use common::cluster::TestCluster;
use common::console::{bare, sign_in};
use common::{Node, SECRET, http, operator, token_for};
use serde_json::{Value, json};
use std::time::Duration;

/// A tenant named `name`, owned by alice, with viewer vic and an
/// `llm_tokens` quota of 1,000 a month; its id.
async fn acme(node: &Node, name: &str, slug: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": name, "slug": slug, "tier": "PROFESSIONAL", "ownerUserId": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let r = http()
        .post(node.url(&format!("/api/v1/tenants/{id}/members")))
        .json(&json!({"userId": "vic", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    common::set_quota(
        node,
        &id,
        "llm_tokens",
        json!({"limit": 1000, "period": "monthly", "kind": "counter", "action": "block", "alertThresholds": [80, 90, 95]}),
    )
    .await;
    id
}

/// Other tenants, so that a search has something to leave out.
async fn others(node: &Node) {
    for (name, slug) in [
        ("Globex", "globex"),
        ("Initech", "initech"),
        ("Umbrella Labs", "umbrella"),
    ] {
        let r = http()
            .post(node.url("/api/v1/tenants"))
            .json(&json!({"name": name, "slug": slug}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_tenant_and_watches_its_quota_fill_live_then_edits_it() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    others(&node).await;
    let tenant = acme(&node, "Acme Corp", "acme-corp").await;
    let r = http()
        .post(node.url(&format!("/api/v1/tenants/{tenant}/domains")))
        .json(&json!({"domain": "quota.acme.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let grpc = node.grpc.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        browse(
            "operator",
            &[
                ("http", node.http.clone()),
                ("grpc", grpc),
                ("tenant", tenant),
                ("tenant-name", "Acme Corp".into()),
                ("shots", shots().display().to_string()),
            ],
        )
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_sees_no_edit_controls_and_forged_or_tokenless_posts_are_refused() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = acme(&node, "Acme Corp", "acme-corp").await;
    let viewer = token_for("vic", Some(&tenant), &[], 3600);
    let owner = token_for("alice", Some(&tenant), &[], 3600);
    tokio::task::spawn_blocking(move || {
        browse(
            "viewer",
            &[
                ("http", node.http.clone()),
                ("tenant", tenant),
                ("viewer", viewer),
                ("owner", owner),
            ],
        )
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_works_on_every_node_and_forged_foreign_or_signed_out_ones_do_not() {
    require_browser();
    let cluster = TestCluster::start(2, &[]).await;
    let tenant = acme(cluster.node(0), "Acme Corp", "acme-corp").await;
    // Another deployment: its own data dir and a secret of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Node::start_without_secret(other_dir.path(), &Node::local_args());
    let secret = std::fs::read_to_string(other_dir.path().join("jwt-secret")).unwrap();
    assert_ne!(secret.trim(), SECRET);
    let other_operator = other_token(secret.trim());
    let a = cluster.node(0).http.clone();
    let b = cluster.node(1).http.clone();
    let other_http = other.http.clone();
    tokio::task::spawn_blocking(move || {
        browse(
            "cluster",
            &[
                ("http", a),
                ("http", b),
                ("tenant", tenant),
                ("other", other_http),
                ("other-operator", other_operator),
            ],
        )
    })
    .await
    .unwrap();
    drop(other);
}

fn other_token(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = quotad_control_plane::auth::Claims {
        sub: "their-ops".into(),
        tenant_id: None,
        roles: vec!["operator".into()],
        exp: now + 3600,
        iat: Some(now),
    };
    quotad_control_plane::auth::mint(secret.as_bytes(), &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_asks_for_a_marketplace_policy_and_the_provider_approves_it() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let provider = acme(&node, "Acme Corp", "acme-corp").await;
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(
            &json!({"name": "Globex", "slug": "globex", "tier": "STARTER", "ownerUserId": "gina"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let consumer = v["data"]["id"].as_str().unwrap().to_string();
    publish(&node, &provider).await;
    let owner = token_for("alice", Some(&provider), &[], 3600);
    let consumer_owner = token_for("gina", Some(&consumer), &[], 3600);
    tokio::task::spawn_blocking(move || {
        browse(
            "sharing",
            &[
                ("http", node.http.clone()),
                ("tenant", provider),
                ("owner", owner),
                ("consumer", consumer),
                ("consumer-owner", consumer_owner),
            ],
        )
    })
    .await
    .unwrap();
}

/// The product README's policy, asking for approval, published by Acme's
/// owner.
async fn publish(node: &Node, provider: &str) {
    let r = http()
        .post(node.url("/api/v1/sharing/policies"))
        .bearer_auth(token_for("alice", Some(provider), &[], 3600))
        .json(&json!({
            "resourceId": "service-123",
            "resourceType": "service",
            "visibility": "marketplace",
            "permissions": ["read", "execute"],
            "pricing": {"type": "usage_based", "usagePrice": 0.001, "currency": "USD"},
            "conditions": {"approval": "request"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_passes_axe_at_desktop_and_phone_width_with_screenshots() {
    require_browser();
    assert!(
        std::path::Path::new(&axe()).exists(),
        "no axe-core at {}: scripts/test.sh installs it from npm, or set QUOTAD_TEST_AXE",
        axe()
    );
    let dir = tempfile::tempdir().unwrap();
    // Webhooks to a closed port on loopback: deliveries fail and are
    // logged, nothing leaves the machine.
    let mut args = Node::local_args();
    args.push("--allow-private-webhooks".into());
    let node = Node::start_with(dir.path(), &args);
    others(&node).await;
    let tenant = acme(&node, "Acme Corp", "acme-corp").await;
    publish(&node, &tenant).await;
    // The tenant's branding (every page is checked in it) and a webhook
    // endpoint, so the webhooks page has endpoints, deliveries and alerts.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            "branding",
            json!({"primaryColor": "#5b2a86", "secondaryColor": "#f2a900", "productName": "Acme AI", "logoUrl": "https://127.0.0.1:9/acme-logo.svg"}),
        ),
        (
            reqwest::Method::POST,
            "webhooks",
            json!({"url": format!("http://127.0.0.1:{closed}/hook"), "description": "ops"}),
        ),
        (
            reqwest::Method::PUT,
            "flags/max_context_tokens",
            json!({"value": 65536}),
        ),
        // A quota with a further window, scope rules and a credit grant,
        // for the quota's levels page.
        (
            reqwest::Method::PUT,
            "quotas/chat",
            json!({"limit": 1000, "period": "monthly", "windows": [{"limit": 50, "period": "second"}],
                   "rollover": true, "scopes": {"default": {"limit": 20, "period": "daily"},
                   "overrides": {"premium_*": {"limit": 100, "period": "daily"}}}}),
        ),
        (
            reqwest::Method::POST,
            "quotas/chat/grants",
            json!({"amount": 500, "reason": "launch promo"}),
        ),
    ] {
        let r = http()
            .request(
                method,
                node.url(&format!("/api/v1/tenants/{tenant}/{path}")),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }
    // An operators' endpoint, so the platform's alerts page has one.
    let r = http()
        .post(node.url("/api/v1/platform/webhooks"))
        .json(&json!({"url": format!("http://127.0.0.1:{closed}/ops"), "description": "on call"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http()
        .post(node.url(&format!("/api/v1/tenants/{tenant}/domains")))
        .json(&json!({"domain": "quota.acme.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut grpc = node.grpc().await;
    grpc.increment(quotad_proto::v1::IncrementRequest {
        tenant_id: tenant.clone(),
        quota: "llm_tokens".into(),
        amount: 870,
        ..Default::default()
    })
    .await
    .unwrap();
    for (user, amount) in [("alice", 7), ("premium_bob", 30), ("carol", 2)] {
        let d = grpc
            .increment(quotad_proto::v1::IncrementRequest {
                tenant_id: tenant.clone(),
                quota: "chat".into(),
                amount,
                scope: user.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed, "{user}");
    }
    tokio::task::spawn_blocking(move || {
        browse(
            "pages",
            &[
                ("http", node.http.clone()),
                ("tenant", tenant),
                ("axe", axe()),
                ("shots", shots().display().to_string()),
            ],
        )
    })
    .await
    .unwrap();
}

// ------------------------------------------------------------ over HTTP

async fn get(node: &Node, path: &str, session: &str) -> reqwest::Response {
    bare()
        .get(node.url(path))
        .header("cookie", format!("quotad_session={session}"))
        .send()
        .await
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn console_answers_carry_strict_security_headers_and_sessions_end_with_their_credential() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = acme(&node, "Acme Corp", "acme-corp").await;

    let (session, line) = sign_in(&node, &operator()).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(line.contains(attr), "{attr} in {line}");
    }
    assert!(
        !line.contains("Secure"),
        "no Secure flag without TLS: {line}"
    );
    let r = get(&node, &format!("/console/tenants/{tenant}"), &session).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style"
    );
    assert!(html.contains("Acme Corp"));

    // A session lasts no longer than the token it was opened with.
    let short = token_for("ops", None, &["operator"], 2);
    let (brief, _) = sign_in(&node, &short).await;
    assert_eq!(get(&node, "/console/tenants", &brief).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = get(&node, "/console/tenants", &brief).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("expired"), "{}", location(&r));
    // A live bar refreshing on an expired session sends its page to sign-in
    // (htmx follows HX-Redirect) instead of swapping the sign-in form in.
    let r = bare()
        .get(node.url(&format!("/console/tenants/{tenant}/quotas")))
        .header("cookie", format!("quotad_session={brief}"))
        .header("hx-request", "true")
        .header(
            "hx-current-url",
            node.url(&format!("/console/tenants/{tenant}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let to = r.headers()["hx-redirect"].to_str().unwrap();
    assert!(
        to.starts_with(&format!(
            "/console/signin?next=/console/tenants/{tenant}&why="
        )),
        "{to}"
    );

    // An API key signs in as a viewer of its tenant, until it is revoked.
    let r = http()
        .post(node.url(&format!("/api/v1/tenants/{tenant}/api-keys")))
        .json(&json!({"name": "console", "scopes": ["check"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let key = v["data"]["key"].as_str().unwrap().to_string();
    let key_id = v["data"]["apiKey"]["id"].as_str().unwrap().to_string();
    let (by_key, _) = sign_in(&node, &key).await;
    let r = get(&node, "/console", &by_key).await;
    assert_eq!(location(&r), format!("/console/tenants/{tenant}"));
    let r = get(&node, &format!("/console/tenants/{tenant}"), &by_key).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("llm_tokens") && !html.contains("class=\"edit\""));
    let r = get(&node, "/console/tenants", &by_key).await;
    assert_eq!(r.status(), 403, "an API key is no operator");
    let r = http()
        .delete(node.url(&format!("/api/v1/tenants/{tenant}/api-keys/{key_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&node, &format!("/console/tenants/{tenant}"), &by_key).await;
    assert_eq!(r.status(), 303, "a revoked key's session ends");

    // A wrong credential is told so, and counted.
    let c = bare();
    let r = c
        .post(node.url("/console/signin"))
        .header("cookie", "quotad_signin=n1")
        .form(&[("_csrf", "n1"), ("credential", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Not signed in"));
    // The sign-in form itself needs its token (login CSRF).
    let r = c
        .post(node.url("/console/signin"))
        .form(&[("credential", operator().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let metrics = common::metrics_text(&node).await;
    for reason in ["expired", "key_gone", "signin", "csrf"] {
        assert!(
            metrics.contains(&format!(
                "quotad_console_refusals_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted"
        );
    }
    // The console never sends a visitor elsewhere after sign-in.
    let c = bare();
    let form = c.get(node.url("/console/signin")).send().await.unwrap();
    let nonce = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str()
                .unwrap()
                .strip_prefix("quotad_signin=")
                .map(|v| v.split(';').next().unwrap().to_string())
        })
        .unwrap();
    let r = c
        .post(node.url("/console/signin"))
        .header("cookie", format!("quotad_signin={nonce}"))
        .form(&[
            ("_csrf", nonce.as_str()),
            ("credential", operator().as_str()),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/console");
}

/// `GET path` with a session, as a request to `host`.
async fn get_on(node: &Node, host: &str, path: &str, session: Option<&str>) -> String {
    let mut r = bare().get(node.url(path)).header("host", host);
    if let Some(s) = session {
        r = r.header("cookie", format!("quotad_session={s}"));
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path} on {host}");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_wears_the_tenants_branding_and_white_label_hides_the_platform_in_chromium() {
    use common::rest_call;
    use reqwest::Method;
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let op = common::operator();
    let make = |slug: &'static str, tier: &'static str| {
        let node = &node;
        async move {
            let r = common::http()
                .post(node.url("/api/v1/tenants"))
                .json(&json!({"name": slug, "slug": slug, "tier": tier}))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["data"]["id"].as_str().unwrap().to_string()
        }
    };
    let brand = |id: String, body: Value| {
        let (node, op) = (&node, op.clone());
        async move {
            let (status, answer) = rest_call(
                node,
                Some(&op),
                &Method::PUT,
                &format!("/api/v1/tenants/{id}/branding"),
                &Some(body),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    let pro = make("pro-works", "PROFESSIONAL").await;
    let glow = make("glow", "ENTERPRISE").await;
    let lapsed = make("lapsed", "PROFESSIONAL").await;
    brand(pro.clone(), json!({"primaryColor": "#5b2a86", "logoUrl": "https://cdn.pro.test/logo.svg", "productName": "Pro Works"})).await;
    brand(glow.clone(), json!({"primaryColor": "#00594f", "logoUrl": "https://cdn.glow.test/mark.svg", "productName": "Glow AI", "whiteLabel": true})).await;
    brand(
        lapsed.clone(),
        json!({"primaryColor": "#8a1538", "productName": "Lapsed Co"}),
    )
    .await;
    let (status, _) = rest_call(
        &node,
        Some(&op),
        &Method::POST,
        &format!("/api/v1/tenants/{lapsed}/upgrade"),
        &Some(json!({"tier": "STARTER"})),
    )
    .await;
    assert_eq!(status, 200);
    for (path, body) in [
        (
            format!("/api/v1/tenants/{glow}/domains"),
            Some(json!({"domain": "console.glow.test"})),
        ),
        (
            format!("/api/v1/tenants/{glow}/domains/console.glow.test/verify"),
            None,
        ),
    ] {
        let (status, answer) = rest_call(&node, Some(&op), &Method::POST, &path, &body).await;
        assert!(status == 200 || status == 201, "{answer}");
    }

    let (session, _) = sign_in(&node, &op).await;
    let local = node.http.trim_start_matches("http://").to_string();
    // A branded tenant: its stylesheet, logo and name, beside the platform's.
    let page = get_on(
        &node,
        &local,
        &format!("/console/tenants/{pro}"),
        Some(&session),
    )
    .await;
    assert!(
        page.contains(&format!("/console/brand/{pro}.css?v=")),
        "{page}"
    );
    assert!(page.contains("https://cdn.pro.test/logo.svg"));
    assert!(page.contains("Pro Works"));
    assert!(page.contains("quotad console"), "not white-labelled");
    let css = get_on(&node, &local, &format!("/console/brand/{pro}.css"), None).await;
    assert!(css.contains("#5b2a86"), "{css}");
    // A tenant whose tier lost custom branding: the platform's look.
    let page = get_on(
        &node,
        &local,
        &format!("/console/tenants/{lapsed}"),
        Some(&session),
    )
    .await;
    assert!(!page.contains("/console/brand/"), "{page}");
    assert!(!page.contains("Lapsed Co"));
    let r = bare()
        .get(node.url(&format!("/console/brand/{lapsed}.css")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // White label, on the tenant's verified custom domain: before and
    // after sign-in, not a trace of the platform's name.
    let host = format!("console.glow.test:{}", local.rsplit(':').next().unwrap());
    let signin = get_on(&node, &host, "/console/signin", None).await;
    assert!(
        signin.contains("Glow AI") && signin.contains(&format!("/console/brand/{glow}.css")),
        "{signin}"
    );
    assert!(!signin.to_lowercase().contains("quotad"), "{signin}");
    for path in [
        format!("/console/tenants/{glow}"),
        format!("/console/tenants/{glow}/members"),
        "/console".to_string(),
    ] {
        let r = bare()
            .get(node.url(&path))
            .header("host", &host)
            .header("cookie", format!("quotad_session={session}"))
            .send()
            .await
            .unwrap();
        if r.status() == 303 && path == "/console" {
            continue; // the home page sends an operator on to the tenants list
        }
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("Glow AI"), "{path}: {page}");
        assert!(page.contains("https://cdn.glow.test/mark.svg"), "{path}");
        assert!(!page.to_lowercase().contains("quotad"), "{path}: {page}");
    }
    // The same in Chromium, page by page, with the custom domain resolved
    // to this machine.
    require_browser();
    tokio::task::spawn_blocking(move || {
        browse(
            "brand",
            &[
                ("http", node.http.clone()),
                ("tenant", glow),
                ("branded", pro),
                ("lapsed", lapsed),
                ("white-host", "console.glow.test".to_string()),
                ("shots", shots().display().to_string()),
            ],
        )
    })
    .await
    .unwrap();
}

/// The integrations page changes branding, API settings and SSO through
/// the same rules as REST: a bad colour is shown by its field and changes
/// nothing; a good one is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_forms_save_through_the_rest_rules() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = acme(&node, "Acme Corp", "acme-int").await;
    let (session, _) = sign_in(&node, &common::operator()).await;
    let page = get(
        &node,
        &format!("/console/tenants/{tenant}/integrations"),
        &session,
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("custom_branding") && html.contains("99.9%"),
        "features and SLA listed"
    );
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let post = |form: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let (node, session, csrf, tenant) = (&node, session.clone(), csrf.clone(), tenant.clone());
        async move {
            let mut f = fields;
            f.push(("_csrf", Box::leak(csrf.into_boxed_str())));
            bare()
                .post(node.url(&format!("/console/tenants/{tenant}/integrations/{form}")))
                .header("cookie", format!("quotad_session={session}"))
                .form(&f)
                .send()
                .await
                .unwrap()
        }
    };
    let bad = post(
        "branding",
        vec![("primaryColor", "#ffffff"), ("textColor", "#777777")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("WCAG AA") && text.contains("b-textColor-error"),
        "shown by its field"
    );
    let ok = post(
        "branding",
        vec![
            ("primaryColor", "#123456"),
            ("textColor", "#ffffff"),
            ("productName", "Acme AI"),
        ],
    )
    .await;
    assert_eq!(ok.status(), 303);
    let api = post(
        "api",
        vec![
            ("ipAllowlist", "10.0.0.0/8\n192.0.2.0/24"),
            ("corsOrigins", "https://app.acme.test"),
        ],
    )
    .await;
    assert_eq!(api.status(), 303);
    let b: Value = common::get_json(&node.url(&format!("/api/v1/tenants/{tenant}/branding"))).await;
    assert_eq!(
        (
            b["data"]["primaryColor"].clone(),
            b["data"]["productName"].clone()
        ),
        (json!("#123456"), json!("Acme AI"))
    );
    let a: Value =
        common::get_json(&node.url(&format!("/api/v1/tenants/{tenant}/api-settings"))).await;
    assert_eq!(
        a["data"]["ipAllowlist"],
        json!(["10.0.0.0/8", "192.0.2.0/24"])
    );
    let sso = post("sso", vec![("issuer", "not a url"), ("clientId", "q")]).await;
    assert_eq!(sso.status(), 400);
    assert!(sso.text().await.unwrap().contains("s-issuer-error"));
}
