//! Signing in (with a token or a tenant API key), the console's home, and
//! signing out.
use super::ConsoleState;
use super::forms::encode;
use super::guard::{Ctx, Refused};
use super::layout;
use super::session::{COOKIE, SIGNIN_COOKIE, Session, cookie, set_cookie};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use quotad_engine::auth::api_key;
use serde::Deserialize;

/// Only paths of the console are followed after sign-in (no open
/// redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/console".to_string(),
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    why: Option<String>,
}

fn sign_in_page(
    state: &ConsoleState,
    next: &str,
    why: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    brand: Option<&super::brand::Brand>,
) -> Response {
    let nonce = Session::new_id();
    let white_label = brand.is_some_and(|b| b.white_label);
    let body = html! {
        h1 { "Sign in" }
        @if let Some(why) = why {
            p.notice role="status" { (why) }
        }
        form.signin method="post" action="/console/signin" {
            input type="hidden" name="_csrf" value=(nonce);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="credential" { "Token or API key" }
                textarea #credential name="credential" rows="4" required
                    autocomplete="off" spellcheck="false"
                    aria-describedby=(if error.is_some() { "credential-error credential-help" } else { "credential-help" })
                    aria-invalid=[error.map(|_| "true")] {}
                p #credential-help .help {
                    @if white_label {
                        "A token from your administrator, or an API key of your organisation. "
                        "An API key signs in as a viewer."
                    } @else {
                        "A token from " code { "quotad token" } ", or a tenant API key ("
                        code { "qdk_…" } "). An API key signs in as a viewer of its tenant."
                    }
                }
                @if let Some(e) = error {
                    p #credential-error .error role="alert" { (e) }
                }
            }
            button type="submit" { "Sign in" }
        }
        section.sso aria-labelledby="sso-h" {
            h2 #sso-h { "Single sign-on" }
            form method="get" action="/console/sso" {
                div.field {
                    label for="org" { "Organisation (its short name)" }
                    input #org type="text" name="org" autocomplete="organization";
                }
                button type="submit" { "Continue with your organisation's sign-in" }
            }
        }
    };
    let mut resp = (status, layout::bare_branded("Sign in", body, brand)).into_response();
    if let Ok(v) = set_cookie(SIGNIN_COOKIE, &nonce, 600, state.secure).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn form(
    State(state): State<ConsoleState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let brand = super::brand::Brand::of_host(&state.app, host).await;
    sign_in_page(
        &state,
        &next,
        q.why.as_deref(),
        None,
        StatusCode::OK,
        brand.as_ref(),
    )
}

/// What a credential opens: the session's subject, roles, tenant, key and
/// latest expiry.
struct Opened {
    sub: String,
    roles: Vec<String>,
    tenant: Option<String>,
    key: Option<String>,
    until_ms: Option<i64>,
}

async fn open_credential(state: &ConsoleState, credential: &str) -> Result<Opened, String> {
    let now = state.app.engine.now_ms();
    if api_key::is_api_key(credential) {
        let invalid = || "the API key is not valid (unknown, revoked or expired)".to_string();
        let presented = api_key::parse(credential)
            .ok_or_else(|| "the API key is not in the form qdk_…".to_string())?;
        let tenant = state
            .app
            .engine
            .tenant(presented.tenant)
            .await
            .map_err(|_| invalid())?;
        let key = tenant
            .api_keys
            .0
            .get(&presented.id)
            .filter(|k| k.opens(&presented.hash, now))
            .ok_or_else(invalid)?;
        let rotated_out = key
            .previous
            .filter(|(old, _)| *old == presented.hash)
            .map(|(_, until)| until);
        return Ok(Opened {
            sub: format!("api-key:{}", key.id),
            roles: Vec::new(),
            tenant: Some(presented.tenant.to_string()),
            key: Some(key.id.clone()),
            until_ms: [key.expires_at_ms, rotated_out].into_iter().flatten().min(),
        });
    }
    let claims = state.app.auth.verify(credential)?;
    Ok(Opened {
        sub: claims.sub,
        roles: claims.roles,
        tenant: claims.tenant_id,
        key: None,
        until_ms: i64::try_from(claims.exp)
            .ok()
            .map(|s| s.saturating_mul(1000)),
    })
}

pub async fn submit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let next = safe_next(field("next"));
    let nonce_ok = match (cookie(&headers, SIGNIN_COOKIE), field("_csrf")) {
        (Some(c), Some(f)) => !c.is_empty() && c == f,
        _ => false,
    };
    if !nonce_ok {
        crate::metrics::count_console_refusal("csrf");
        return Refused::new(
            StatusCode::FORBIDDEN,
            "This sign-in form's security token is missing or stale. Open the sign-in page again.",
        )
        .into_response();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let brand = super::brand::Brand::of_host(&state.app, host).await;
    let credential = field("credential").unwrap_or("").trim();
    if credential.is_empty() {
        return sign_in_page(
            &state,
            &next,
            None,
            Some("Enter a token or an API key."),
            StatusCode::BAD_REQUEST,
            brand.as_ref(),
        );
    }
    let opened = match open_credential(&state, credential).await {
        Ok(o) => o,
        Err(why) => {
            crate::metrics::count_console_refusal("signin");
            tracing::info!(why = %why, "console sign-in refused");
            return sign_in_page(
                &state,
                &next,
                None,
                Some(&format!("Not signed in: {why}.")),
                StatusCode::UNAUTHORIZED,
                brand.as_ref(),
            );
        }
    };
    let now = state.app.engine.now_ms();
    let exp = opened
        .until_ms
        .map_or(now.saturating_add(state.ttl_ms), |u| {
            u.min(now.saturating_add(state.ttl_ms))
        });
    let session = Session {
        id: Session::new_id(),
        sub: opened.sub,
        roles: opened.roles,
        tenant: opened.tenant,
        key: opened.key,
        sso_role: None,
        iat: now,
        exp,
    };
    tracing::info!(user = %session.sub, "console sign-in");
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    let max_age = (exp - now) / 1000;
    for c in [
        set_cookie(COOKIE, &state.key.seal(&session), max_age, state.secure),
        set_cookie(SIGNIN_COOKIE, "", 0, state.secure),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn sign_out(ctx: Ctx, Form(form): Form<Vec<(String, String)>>) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    let Some(id) = ctx.session.session_id() else {
        return Refused::new(StatusCode::BAD_REQUEST, "malformed session").into_response();
    };
    if let Err(e) = ctx
        .state
        .app
        .engine
        .sign_out_session(id, ctx.session.exp)
        .await
    {
        return Refused::from(crate::envelope::ApiError::from(e)).into_response();
    }
    tracing::info!(user = %ctx.session.sub, "console sign-out");
    let mut resp = Redirect::to("/console/signin?why=You%20have%20signed%20out.").into_response();
    if let Ok(v) = set_cookie(COOKIE, "", 0, ctx.state.secure).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct HomeQuery {
    tenant: Option<String>,
}

/// Where a signed-in caller starts: operators at the tenant list, a
/// caller of one tenant at its overview, anyone else picks a tenant.
pub async fn home(ctx: Ctx, Query(q): Query<HomeQuery>) -> Response {
    if let Some(t) = q.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let id = match t.parse::<uuid::Uuid>() {
            Ok(id) => Some(id),
            Err(_) => ctx
                .state
                .app
                .engine
                .tenant_with_slug(&t.to_ascii_lowercase()),
        };
        return match id {
            Some(id) => Redirect::to(&format!("/console/tenants/{id}")).into_response(),
            None => Refused::new(
                StatusCode::NOT_FOUND,
                format!(
                    "No tenant has the id or slug {:?}.",
                    quotad_engine::excerpt::short(t)
                ),
            )
            .into_response(),
        };
    }
    if ctx.is_operator() {
        return Redirect::to("/console/tenants").into_response();
    }
    if let Some(t) = &ctx.session.tenant {
        return Redirect::to(&format!("/console/tenants/{}", encode(t))).into_response();
    }
    let body = html! {
        h1 { "Open a tenant" }
        form method="get" action="/console" {
            div.field {
                label for="tenant" { "Tenant id or slug" }
                input #tenant type="text" name="tenant" required;
            }
            button type="submit" { "Open" }
        }
    };
    layout::page(&ctx, "Open a tenant", None, layout::Section::Tenants, body).into_response()
}
