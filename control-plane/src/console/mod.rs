//! The web console at `/console`: server-rendered pages over the same
//! handlers as the REST API.
//!
//! Every page and form calls the REST handler that does the same thing,
//! in process, as the signed-in caller: the console has no rules of its
//! own, so what a caller may see and change is exactly what the API lets
//! them. Pages are HTML rendered here (maud) with no inline script or
//! style; the one script is htmx (vendored, `assets/`), for the parts of a
//! page that refresh themselves (quota bars). Forms post without it.
//!
//! # Layout
//! - [`session`]: the signed session cookie and CSRF tokens.
//! - `guard`: the caller of a request ([`guard::Ctx`]), the CSRF check,
//!   security headers, the error page.
//! - `layout`, `widgets`, `forms`: the page shell, shared pieces, form
//!   values.
//! - `assets`: the vendored and own static files.
//! - one file per page: `signin`, `tenants_page`, `cluster_page`,
//!   `overview`, `quota_edit`, `usage_page` (with `chart`),
//!   `members_page`, `audit_page`, `sharing_page`, `settings_page`.
mod assets;
mod audit_page;
pub mod brand;
mod chart;
mod cluster_page;
mod flags_page;
mod forms;
mod guard;
mod integrations_page;
mod layout;
mod members_page;
mod overview;
mod quota_edit;
mod quota_levels_page;
pub mod session;
mod settings_page;
mod sharing_page;
mod signin;
mod sso_signin;
mod tenants_page;
mod usage_page;
mod webhooks_page;
mod widgets;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use session::{Session, SessionError, SessionKey};
use std::time::Duration;

/// How the console signs and scopes its sessions.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Signs sessions; the same on every node of a deployment (see
    /// [`SessionKey::derive`]).
    pub key: SessionKey,
    /// Cookies are `Secure` (the node serves TLS).
    pub secure: bool,
    /// How long a session lasts (at most as long as the credential it was
    /// opened with).
    pub session_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub app: AppState,
    pub key: SessionKey,
    pub secure: bool,
    pub ttl_ms: i64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl ConsoleState {
    /// The session a cookie carries, if it is valid now: signed by this
    /// deployment, not expired, not signed out, and (for an API key) the
    /// key still valid.
    pub async fn open(&self, cookie: &str) -> Result<Session, SessionError> {
        let session = self.key.open(cookie)?;
        let now = self.app.engine.now_ms();
        if now >= session.exp {
            return Err(SessionError::Expired);
        }
        let id = session.session_id().ok_or(SessionError::Malformed)?;
        if self.app.engine.session_signed_out(&id) {
            return Err(SessionError::SignedOut);
        }
        if let Some(key) = &session.key {
            let tenant = session
                .tenant
                .as_deref()
                .and_then(|t| t.parse().ok())
                .ok_or(SessionError::Malformed)?;
            let valid = match self.app.engine.tenant(tenant).await {
                Ok(state) => state
                    .api_keys
                    .0
                    .get(key)
                    .is_some_and(|k| k.expires_at_ms.is_none_or(|at| now < at)),
                Err(_) => false,
            };
            if !valid {
                return Err(SessionError::KeyGone);
            }
        }
        Ok(session)
    }
}

impl axum::extract::FromRef<AppState> for ConsoleState {
    fn from_ref(app: &AppState) -> ConsoleState {
        ConsoleState {
            key: app.console.key.clone(),
            secure: app.console.secure,
            ttl_ms: i64::try_from(app.console.session_ttl.as_millis()).unwrap_or(i64::MAX),
            app: app.clone(),
        }
    }
}

/// The console's routes, under `/console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(signin::home))
        .route("/console/", get(signin::home))
        .route("/console/signin", get(signin::form).post(signin::submit))
        .route("/console/signout", post(signin::sign_out))
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/brand/{file}", get(brand::serve))
        .route(
            "/console/tenants/{id}/integrations",
            get(integrations_page::page),
        )
        .route(
            "/console/tenants/{id}/integrations/{form}",
            post(integrations_page::save),
        )
        .route("/console/sso", get(sso_signin::pick))
        .route("/console/sso/callback", get(sso_signin::back))
        .route("/console/sso/{tenant}", get(sso_signin::start))
        .route(
            "/console/tenants/{id}/flags",
            get(flags_page::page).post(flags_page::add),
        )
        .route(
            "/console/tenants/{id}/flags/{key}",
            post(flags_page::set_one),
        )
        .route(
            "/console/tenants/{id}/flags/{key}/remove",
            post(flags_page::remove),
        )
        .route(
            "/console/tenants/{id}/webhooks",
            get(webhooks_page::page).post(webhooks_page::add),
        )
        .route(
            "/console/tenants/{id}/deliveries/{delivery}/retry",
            post(webhooks_page::replay),
        )
        .route(
            "/console/tenants",
            get(tenants_page::list).post(tenants_page::create),
        )
        .route("/console/cluster", get(cluster_page::page))
        .route(
            "/console/platform/webhooks",
            get(webhooks_page::platform_page).post(webhooks_page::platform_add),
        )
        .route(
            "/console/platform/deliveries/{delivery}/retry",
            post(webhooks_page::platform_replay),
        )
        .route("/console/tenants/{id}", get(overview::page))
        .route(
            "/console/tenants/{id}/quotas",
            get(overview::quotas_fragment),
        )
        .route(
            "/console/tenants/{id}/quotas/{quota}",
            get(quota_edit::form).post(quota_edit::save),
        )
        .route(
            "/console/tenants/{id}/quotas/{quota}/levels",
            get(quota_levels_page::page),
        )
        .route("/console/tenants/{id}/tier", post(overview::change_tier))
        .route(
            "/console/tenants/{id}/status",
            post(overview::change_status),
        )
        .route(
            "/console/tenants/{id}/members",
            get(members_page::page).post(members_page::add),
        )
        .route(
            "/console/tenants/{id}/members/{user}/role",
            post(members_page::change_role),
        )
        .route(
            "/console/tenants/{id}/members/{user}/remove",
            post(members_page::remove),
        )
        .route("/console/tenants/{id}/audit", get(audit_page::page))
        .route("/console/tenants/{id}/usage", get(usage_page::page))
        .route("/console/tenants/{id}/usage.csv", get(usage_page::csv))
        .route(
            "/console/tenants/{id}/settings",
            get(settings_page::page).post(settings_page::save),
        )
        .route(
            "/console/tenants/{id}/settings/domains",
            post(settings_page::add_domain),
        )
        .route(
            "/console/tenants/{id}/settings/domains/{domain}/verify",
            post(settings_page::verify_domain),
        )
        .route(
            "/console/tenants/{id}/settings/domains/{domain}/remove",
            post(settings_page::remove_domain),
        )
        .route("/console/tenants/{id}/sharing", get(sharing_page::page))
        .route(
            "/console/tenants/{id}/sharing/statement.csv",
            get(sharing_page::statement_csv),
        )
        .route(
            "/console/tenants/{id}/sharing/policies/{pid}/request",
            post(sharing_page::request),
        )
        .route(
            "/console/tenants/{id}/sharing/policies/{pid}/withdraw",
            post(sharing_page::withdraw),
        )
        .route(
            "/console/tenants/{id}/sharing/requests/{rid}/decide",
            post(sharing_page::decide),
        )
        .route(
            "/console/tenants/{id}/sharing/grants/{gid}/revoke",
            post(sharing_page::revoke),
        )
        .layer(axum::middleware::from_fn(guard::headers))
}
