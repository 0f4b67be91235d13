//! Console sign-in through a tenant's SSO issuer (OIDC authorization code
//! flow): `/console/sso/{tenant}` sends the browser to the issuer with a
//! signed `state` (and a nonce, also in a short-lived cookie), the issuer
//! sends it back to `/console/sso/callback` with a code, which the node
//! exchanges (with the tenant's client secret) for an ID token, verifies
//! like any SSO token, and turns into a console session for that tenant
//! with the mapped role.
use super::ConsoleState;
use super::guard::Refused;
use super::session::{COOKIE, Session, cookie, set_cookie};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use quotad_engine::model::TenantId;
use serde::Deserialize;

const STATE_COOKIE: &str = "quotad_sso";
/// How long a sign-in may take at the issuer.
const STATE_TTL_MS: i64 = 600_000;

fn refused(why: impl Into<String>) -> Response {
    Refused::new(StatusCode::BAD_REQUEST, why).into_response()
}

/// `{tenant id or slug}` -> the tenant.
fn tenant_of(state: &ConsoleState, raw: &str) -> Option<TenantId> {
    raw.parse()
        .ok()
        .or_else(|| state.app.engine.tenant_with_slug(raw))
}

/// Where the issuer sends the browser back: this node as the browser
/// reached it.
fn callback(state: &ConsoleState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.secure { "https" } else { "http" };
    format!("{scheme}://{host}/console/sso/callback")
}

#[derive(Debug, Deserialize)]
pub struct Pick {
    org: Option<String>,
}

/// The sign-in page's "single sign-on" form: the organisation's slug.
pub async fn pick(Query(p): Query<Pick>) -> Response {
    match p.org.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        // Not a redirect: a browser checks every redirect after a form's
        // submission against the CSP's `form-action 'self'`, and the next
        // one leaves for the issuer. A page that moves on by itself is a
        // navigation of its own.
        Some(org) => {
            let to = format!("/console/sso/{}", super::forms::encode(org));
            moving_on("Single sign-on", "On to your organisation's sign-in.", &to).into_response()
        }
        None => Redirect::to("/console/signin?why=Enter%20your%20organisation.").into_response(),
    }
}

pub async fn start(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = tenant_of(&state, &raw) else {
        return refused("No such organisation.");
    };
    let Ok(tenant) = state.app.engine.tenant(id).await else {
        return refused("No such organisation.");
    };
    let Some(sso) = tenant.custom.sso.as_ref() else {
        return refused("This organisation has no single sign-on.");
    };
    let authorize = match state.app.engine.sso_authorization_endpoint(&tenant).await {
        Ok(a) => a,
        Err(why) => return refused(format!("Single sign-on is not available: {why}.")),
    };
    let nonce = Session::new_id();
    let exp = state.app.engine.now_ms() + STATE_TTL_MS;
    let text = format!("{id}.{nonce}.{exp}");
    let signed = format!("{text}.{}", state.key.tag("sso-state", &text));
    let Ok(url) = url::Url::parse_with_params(
        &authorize,
        &[
            ("client_id", sso.client_id.as_str()),
            ("redirect_uri", &callback(&state, &headers)),
            ("response_type", "code"),
            ("scope", "openid email profile"),
            ("state", &signed),
            ("nonce", &nonce),
        ],
    ) else {
        return refused("The issuer's sign-in address is not a URL.");
    };
    let mut r = Redirect::to(url.as_str()).into_response();
    // Lax, not Strict: the browser must send it when the issuer sends it
    // back (a top-level navigation from another site).
    let c = set_cookie(STATE_COOKIE, &nonce, STATE_TTL_MS / 1000, state.secure)
        .replace("SameSite=Strict", "SameSite=Lax");
    if let Ok(v) = c.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct Back {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn back(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<Back>,
) -> Response {
    if let Some(e) = q.error {
        return refused(format!(
            "The issuer did not sign you in: {}.",
            quotad_engine::excerpt::short(&e)
        ));
    }
    let (Some(code), Some(signed)) = (q.code, q.state) else {
        return refused("The issuer sent no code.");
    };
    let Some((text, tag)) = signed.rsplit_once('.') else {
        return refused("The sign-in state is malformed.");
    };
    if !state.key.tag_ok("sso-state", text, tag) {
        crate::metrics::count_console_refusal("sso_state");
        return refused("The sign-in state was not made here.");
    }
    let parts: Vec<&str> = text.split('.').collect();
    let [id, nonce, exp] = parts[..] else {
        return refused("The sign-in state is malformed.");
    };
    let now = state.app.engine.now_ms();
    if exp.parse::<i64>().is_ok_and(|e| e < now) {
        return refused("The sign-in took too long; start again.");
    }
    if cookie(&headers, STATE_COOKIE) != Some(nonce) {
        crate::metrics::count_console_refusal("sso_state");
        return refused("This sign-in was started in another browser; start again.");
    }
    let Some(tenant_id) = id.parse::<TenantId>().ok() else {
        return refused("The sign-in state is malformed.");
    };
    let Ok(tenant) = state.app.engine.tenant(tenant_id).await else {
        return refused("No such organisation.");
    };
    let engine = &state.app.engine;
    let user = match engine
        .sso_exchange(&tenant, &code, &callback(&state, &headers))
        .await
    {
        Ok(token) => engine.sso_user(&tenant, &token).await,
        Err(why) => Err(why),
    };
    let user = match user {
        Ok(u) if u.nonce.as_deref() == Some(nonce) => u,
        Ok(_) => return refused("The issuer's token is not for this sign-in (nonce)."),
        Err(why) => {
            crate::metrics::count_console_refusal("signin");
            return Refused::new(StatusCode::UNAUTHORIZED, format!("Not signed in: {why}."))
                .into_response();
        }
    };
    let exp = user
        .expires_at_ms
        .map_or(now + state.ttl_ms, |e| e.min(now + state.ttl_ms));
    let session = Session {
        id: Session::new_id(),
        sub: user.user.clone(),
        roles: Vec::new(),
        tenant: Some(tenant_id.to_string()),
        key: None,
        sso_role: Some(user.role.as_str().to_string()),
        iat: now,
        exp,
    };
    tracing::info!(user = %session.sub, tenant = %tenant_id, "console sign-in through SSO");
    let to = format!("/console/tenants/{tenant_id}");
    // A page, not a redirect: the session cookie is SameSite=Strict, and a
    // browser does not send it on a navigation that started at the issuer.
    // Leaving from this page (same site) sends it.
    let mut r = moving_on("Signed in", "Signed in.", &to).into_response();
    for c in [
        set_cookie(
            COOKIE,
            &state.key.seal(&session),
            (exp - now) / 1000,
            state.secure,
        ),
        set_cookie(STATE_COOKIE, "", 0, state.secure).replace("SameSite=Strict", "SameSite=Lax"),
    ] {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A page that moves on to `to` by itself (and offers a link, for a
/// browser that does not).
fn moving_on(title: &str, text: &str, to: &str) -> (StatusCode, maud::Markup) {
    let page = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={to}"));
                title { (title) }
            }
            body { main { p { (text) " " a href=(to) { "Continue" } } } }
        }
    };
    (StatusCode::OK, page)
}
