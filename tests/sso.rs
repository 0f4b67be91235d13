//! Single sign-on with a real OIDC issuer: `oidc-provider-mock` (PyPI, an
//! authlib-based provider) runs on 127.0.0.1 as the tenant's issuer. Its
//! ID tokens, got through the authorization-code flow, act for that tenant
//! with the roles their claims map to; they are refused for another
//! tenant, for an email domain not allowed, and once the tenant's tier
//! drops below SSO. The client secret is write-only. The console signs
//! a tenant's user in through the issuer, over HTTP and in headless
//! Chromium.
mod common;

use common::console::bare;
use common::{Node, http, operator, rest_call};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Issuer {
    child: Child,
    url: String,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn issuer() -> Issuer {
    // reqwest's rustls comes without a provider: the node's (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&python)
        .args([
            "-m",
            "oidc_provider_mock",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} -m oidc_provider_mock: {e} (scripts/test.sh installs it)")
        });
    let url = format!("http://127.0.0.1:{port}");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let up = reqwest::get(format!("{url}/.well-known/openid-configuration")).await;
        if up.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < end,
            "oidc-provider-mock did not start (is it installed in {python}?)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Issuer { child, url }
}

/// An ID token for `sub` through the authorization-code flow, as a
/// browser and the relying party would get it.
async fn id_token(issuer: &Issuer, client: &str, sub: &str) -> String {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let authorize = url::Url::parse_with_params(
        &format!("{}/oauth2/authorize", issuer.url),
        &[
            ("client_id", client),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "s1"),
            ("nonce", "n1"),
        ],
    )
    .unwrap();
    let r = c
        .post(authorize.as_str())
        .form(&[("sub", sub)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "authorize: {}", r.status());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let t: Value = c
        .post(format!("{}/oauth2/token", issuer.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", client),
            ("client_secret", "ignored-by-the-mock"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {t}"))
        .to_string()
}

async fn user(issuer: &Issuer, sub: &str, claims: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/users/{sub}", issuer.url))
        .json(&claims)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn tenant(node: &Node, slug: &str) -> String {
    let r = http()
        .post(node.url("/api/v1/tenants"))
        .json(&json!({"name": slug, "slug": slug, "tier": "PROFESSIONAL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_issuer_signs_its_users_in_with_mapped_roles_and_nowhere_else() {
    let idp = issuer().await;
    user(
        &idp,
        "ann",
        json!({"email": "ann@acme.test", "groups": ["quota-admins"]}),
    )
    .await;
    user(
        &idp,
        "bob",
        json!({"email": "bob@acme.test", "groups": ["staff"]}),
    )
    .await;
    user(
        &idp,
        "eve",
        json!({"email": "eve@evil.test", "groups": ["quota-admins"]}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    args.push("--allow-private-webhooks".into());
    let node = Node::start_with(dir.path(), &args);
    let (acme, other) = (
        tenant(&node, "sso-acme").await,
        tenant(&node, "sso-other").await,
    );
    let op = operator();
    let sso = format!("/api/v1/tenants/{acme}/sso");
    let secret = "client-secret-7Hq2x9Zk4321";
    let (status, body) = rest_call(
        &node,
        Some(&op),
        &Method::PUT,
        &sso,
        &Some(json!({"issuer": "http://127.0.0.1:9", "clientId": "quotad-acme"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("issuer")),
        "an issuer that does not answer: {body}"
    );
    let (status, body) = rest_call(&node, Some(&op), &Method::PUT, &sso, &Some(json!({
        "issuer": idp.url, "clientId": "quotad-acme", "clientSecret": secret,
        "allowedEmailDomains": ["acme.test"], "roleMapping": {"quota-admins": "admin", "staff": "viewer"},
        "samlMetadata": "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://idp.acme.test\"/>"
    }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["clientSecretLast4"], "4321");
    assert_eq!(body["data"]["active"], true);

    let ann = id_token(&idp, "quotad-acme", "ann").await;
    let bob = id_token(&idp, "quotad-acme", "bob").await;
    let eve = id_token(&idp, "quotad-acme", "eve").await;
    let quotas = format!("/api/v1/tenants/{acme}/quotas");
    let (status, body) = rest_call(&node, Some(&ann), &Method::GET, &quotas, &None).await;
    assert_eq!(status, 200, "ann reads: {body}");
    let set = format!("{quotas}/api_requests");
    let (status, body) = rest_call(
        &node,
        Some(&ann),
        &Method::PUT,
        &set,
        &Some(json!({"limit": 5000})),
    )
    .await;
    assert_eq!(status, 200, "ann is an admin: {body}");
    let (status, _) = rest_call(&node, Some(&bob), &Method::GET, &quotas, &None).await;
    assert_eq!(status, 200, "bob reads");
    let (status, _) = rest_call(
        &node,
        Some(&bob),
        &Method::PUT,
        &set,
        &Some(json!({"limit": 6000})),
    )
    .await;
    assert_eq!(status, 403, "bob is a viewer");
    let (status, body) = rest_call(&node, Some(&eve), &Method::GET, &quotas, &None).await;
    assert_eq!(status, 401, "eve's domain is not allowed: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("domain"),
        "{body}"
    );
    let (status, _) = rest_call(
        &node,
        Some(&ann),
        &Method::GET,
        &format!("/api/v1/tenants/{other}/quotas"),
        &None,
    )
    .await;
    assert_eq!(status, 401, "not a token for another tenant");
    let (_, audit) = rest_call(
        &node,
        Some(&op),
        &Method::GET,
        &format!("/api/v1/tenants/{acme}/audit?limit=500"),
        &None,
    )
    .await;
    let text = audit.to_string();
    assert!(
        text.contains("sso:ann@acme.test"),
        "ann's change is audited under her SSO identity"
    );
    assert!(
        !text.contains(secret),
        "the client secret is not in the audit"
    );
    let (_, read) = rest_call(&node, Some(&op), &Method::GET, &sso, &None).await;
    assert!(!read.to_string().contains(secret));

    // The console signs ann in through the issuer (authorization code
    // flow) and she lands in her tenant, in no other.
    let session = console_sign_in(&node, &idp, &acme, "ann").await;
    let page = console_get(&node, &format!("/console/tenants/{acme}"), &session).await;
    assert_eq!(page.0, 200);
    assert!(
        page.1.contains("sso:ann@acme.test"),
        "signed in as her SSO identity"
    );
    let (status, _) = console_get(&node, &format!("/console/tenants/{other}"), &session).await;
    assert_eq!(status, 403, "not another tenant");
    let forged = bare()
        .get(node.url("/console/sso/callback?code=x&state=abc.def"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400, "a state not made here");
    // The same sign-in in headless Chromium, from the sign-in page's
    // organisation field through the issuer's own form.
    common::browser::require_browser();
    let args = [
        ("http", node.http.clone()),
        ("tenant", acme.clone()),
        ("consumer", other.clone()),
        ("issuer", idp.url.clone()),
        ("org", "sso-acme".to_string()),
        ("sub", "ann".to_string()),
        ("expect-user", "sso:ann@acme.test".to_string()),
    ];
    tokio::task::spawn_blocking(move || common::browser::browse("sso", &args))
        .await
        .unwrap();

    // Below the tier, the issuer's tokens open nothing (the settings stay).
    let (status, _) = rest_call(
        &node,
        Some(&op),
        &Method::POST,
        &format!("/api/v1/tenants/{acme}/upgrade"),
        &Some(json!({"tier": "STARTER"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = rest_call(&node, Some(&ann), &Method::GET, &quotas, &None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sso needs the PROFESSIONAL tier"),
        "{body}"
    );
    let (_, read) = rest_call(&node, Some(&op), &Method::GET, &sso, &None).await;
    assert_eq!(read["data"]["active"], false);
    let (status, _) = console_get(&node, &format!("/console/tenants/{acme}"), &session).await;
    assert_eq!(status, 303, "the console session ends with the tier's SSO");
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v[name.len() + 1..].split(';').next().unwrap().to_string())
}

/// The console's SSO sign-in, as a browser goes through it: the node
/// sends it to the issuer, the user is `sub` there, the issuer sends it
/// back with a code; the session cookie.
async fn console_sign_in(node: &Node, idp: &Issuer, tenant: &str, sub: &str) -> String {
    let c = bare();
    let start = c
        .get(node.url(&format!("/console/sso/{tenant}")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303, "to the issuer");
    let state_cookie = set_cookie(&start, "quotad_sso").expect("the sign-in's nonce cookie");
    let to_issuer = start.headers()["location"].to_str().unwrap().to_string();
    assert!(to_issuer.starts_with(&idp.url), "{to_issuer}");
    let back = c
        .post(&to_issuer)
        .form(&[("sub", sub)])
        .send()
        .await
        .unwrap();
    assert!(back.status().is_redirection(), "{}", back.status());
    let to_node = back.headers()["location"].to_str().unwrap().to_string();
    let done = c
        .get(&to_node)
        .header("cookie", format!("quotad_sso={state_cookie}"))
        .send()
        .await
        .unwrap();
    let status = done.status();
    let session = set_cookie(&done, "quotad_session");
    assert_eq!(status, 200, "{}", done.text().await.unwrap());
    session.expect("a session")
}

async fn console_get(node: &Node, path: &str, session: &str) -> (u16, String) {
    let r = bare()
        .get(node.url(path))
        .header("cookie", format!("quotad_session={session}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}
