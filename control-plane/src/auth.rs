//! Bearer-token authentication (JWT) and per-tenant authorization.
//!
//! Tokens are HS256 (shared secret) or RS256 (public key) with claims
//! `sub` (user id), `tenant_id` (optional), `roles` (array), `exp`. The
//! role `operator` is a platform operator. Anything else that is wrong with
//! a token (bad signature, `alg: none`, an algorithm not configured,
//! expired, a claim missing) is a 401.
//!
//! Authorization for a tenant: operators may do everything. Others must be a
//! member of the tenant; their role is the member role, narrowed (never
//! widened) by the tenant roles listed in the token. A token scoped to
//! another tenant (`tenant_id`), or an `X-Tenant-ID` header naming another
//! tenant than the path, is refused with 403 and counted as a cross-tenant
//! access violation.
use crate::AppState;
use crate::envelope::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use quotad_engine::audit::AuditMeta;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, TenantId};
use quotad_engine::quota::TenantState;

pub use quotad_engine::auth::jwt::{Claims, JwtKeys, OPERATOR, mint};

/// The caller, from a verified bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    /// This request's id (`X-Request-ID`, or one made up), for logs and audit.
    pub request_id: String,
    pub token_tenant: Option<String>,
    pub roles: Vec<String>,
    /// `X-Tenant-ID`, if the request carried one.
    pub header_tenant: Option<String>,
    /// The tenant whose verified custom domain the request's `Host` is.
    pub host_tenant: Option<TenantId>,
    /// Signed in to the console with an API key of this tenant: a viewer
    /// of that tenant (a data-plane key opens no changes).
    pub key_tenant: Option<TenantId>,
    /// A token of this tenant's SSO issuer: the role its claims map to
    /// there (no membership needed; nothing in other tenants).
    pub sso: Option<(TenantId, Role)>,
}

impl Principal {
    /// Who is acting, for the audit log.
    pub fn audit(&self) -> AuditMeta {
        AuditMeta::new(&self.user, &self.request_id)
    }

    pub fn is_operator(&self) -> bool {
        self.roles.iter().any(|r| r == OPERATOR)
    }

    /// The highest tenant role the token grants, if it lists any.
    fn token_cap(&self) -> Option<Role> {
        self.roles
            .iter()
            .filter_map(|r| r.parse::<Role>().ok())
            .max()
    }
}

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

impl Principal {
    async fn from_headers(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("missing Authorization: Bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| unauthenticated("Authorization must be \"Bearer <token>\""))?;
        let header_tenant = parts
            .headers
            .get("x-tenant-id")
            .map(|v| v.to_str().unwrap_or("<not text>").to_string());
        let claims = match state.auth.verify(token.trim()) {
            Ok(c) => c,
            Err(why) => {
                return Principal::of_sso(parts, state, token.trim(), &header_tenant, why).await;
            }
        };
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let host_tenant = match host {
            Some(h) => state.engine.tenant_for_host(h).await,
            None => None,
        };
        Ok(Principal {
            user: claims.sub,
            request_id,
            host_tenant,
            token_tenant: claims.tenant_id,
            roles: claims.roles,
            header_tenant,
            key_tenant: None,
            sso: None,
        })
    }

    /// A token the platform did not issue: one of the SSO issuer of the
    /// tenant the request is about (path, `X-Tenant-ID`, custom domain)?
    async fn of_sso(
        parts: &Parts,
        state: &AppState,
        token: &str,
        header_tenant: &Option<String>,
        platform_refusal: String,
    ) -> Result<Principal, ApiError> {
        let host_tenant = match parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            Some(h) => state.engine.tenant_for_host(h).await,
            None => None,
        };
        let tenant = parts
            .uri
            .path()
            .strip_prefix("/api/v1/tenants/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|id| id.parse::<TenantId>().ok())
            .or_else(|| header_tenant.as_deref().and_then(|h| h.parse().ok()))
            .or(host_tenant);
        let Some(tenant) = tenant else {
            return Err(unauthenticated(platform_refusal));
        };
        let Ok(t) = state.engine.tenant(tenant).await else {
            return Err(unauthenticated(platform_refusal));
        };
        if t.custom.sso.is_none() {
            return Err(unauthenticated(platform_refusal));
        }
        let user = state.engine.sso_user(&t, token).await.map_err(|why| {
            metrics::counter!(quotad_engine::telemetry::AUTH_FAILURES, "reason" => "sso")
                .increment(1);
            unauthenticated(format!(
                "{platform_refusal}; nor a token of the tenant's SSO issuer: {why}"
            ))
        })?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Principal {
            user: user.user,
            request_id,
            token_tenant: Some(tenant.to_string()),
            roles: Vec::new(),
            header_tenant: header_tenant.clone(),
            host_tenant,
            key_tenant: None,
            sso: Some((tenant, user.role)),
        })
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(p) => Ok(p.clone()),
            None => Principal::from_headers(parts, state).await,
        }
    }
}

/// The request's id: the caller's `X-Request-ID`, or a new UUID.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware on every route: give the request an id, log within its span,
/// and echo it in the response's `X-Request-ID`.
pub async fn request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Middleware on every `/api/v1` route: no valid token, no handler. Handlers
/// then authorize per tenant with the [`Principal`] it leaves behind.
pub async fn require_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = req.into_parts();
    match Principal::from_headers(&parts, &state).await {
        Ok(p) => {
            parts.extensions.insert(p);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Role(Role),
    Operator,
}

/// Check the tenant context (path vs token vs header) before anything of
/// the tenant is read. A mismatch is refused, counted, and recorded in the
/// audit chain of the tenant that was targeted.
pub async fn check_context(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
) -> Result<(), ApiError> {
    let id = tenant.to_string();
    let from_token = p
        .token_tenant
        .as_ref()
        .filter(|t| !t.eq_ignore_ascii_case(&id) && !p.is_operator())
        .map(|t| ("the token", t));
    let from_header = p
        .header_tenant
        .as_ref()
        .filter(|h| !h.eq_ignore_ascii_case(&id))
        .map(|h| ("X-Tenant-ID", h));
    let host = p
        .host_tenant
        .filter(|h| *h != tenant)
        .map(|h| h.to_string());
    let from_host = host.as_ref().map(|h| ("the custom domain in Host", h));
    let Some((what, other)) = from_token.or(from_header).or(from_host) else {
        return Ok(());
    };
    metrics::counter!(quotad_engine::telemetry::CROSS_TENANT_VIOLATIONS).increment(1);
    tracing::warn!(user = %p.user, path_tenant = %id, %what, other, request_id = %p.request_id, "cross-tenant access refused");
    let now = state.engine.now_ms();
    state.engine.raise_alert_in_background(
        tenant,
        quotad_engine::alerts::AlertType::SharingAccessViolation,
        format!("cross_tenant:{}", p.user),
        now - now.rem_euclid(60_000),
        serde_json::json!({ "tenantId": id, "source": "control plane", "caller": p.user, "named": other, "via": what }),
    );
    let detail = serde_json::json!({ "source": what, "named": other }).to_string();
    match state
        .engine
        .record_audit(tenant, &p.audit(), "access.denied", "cross_tenant", detail)
        .await
    {
        Ok(()) => {}
        // Nothing to record against a tenant that does not exist.
        Err(e) if e.code() == ErrorCode::NotFound => {}
        Err(e) => tracing::error!(error = %e, "could not audit a cross-tenant denial"),
    }
    Err(ApiError::new(
        ErrorCode::PermissionDenied,
        format!("{what} names tenant {other}, not {id}"),
    ))
}

/// The caller's effective role in the tenant, if allowed `need`.
/// Call [`check_context`] first.
///
/// Control-plane calls are never charged to the tenant's quotas: a tenant
/// that used up `api_requests` (its product traffic, counted through gRPC
/// and Envoy) must still be able to upgrade, raise a quota or read its
/// usage. A suspended, deleted or expired-trial tenant's members may read
/// but not change anything. Operators are never held back.
pub fn authorize(
    p: &Principal,
    t: &TenantState,
    now_ms: i64,
    need: Need,
) -> Result<Option<Role>, ApiError> {
    let Some(role) = role_for(p, t, need)? else {
        return Ok(None);
    };
    let write = matches!(need, Need::Role(min) if min > Role::Member);
    if write && let Some(reason) = t.refusal(now_ms) {
        return Err(ApiError::new(ErrorCode::PermissionDenied, reason));
    }
    Ok(Some(role))
}

/// The usual start of a tenant handler: parse the id, check the tenant
/// context, read the tenant, authorize the caller.
pub async fn access(
    s: &AppState,
    p: &Principal,
    raw_id: &str,
    need: Need,
) -> Result<(TenantId, TenantState, Option<Role>), ApiError> {
    let id = crate::extract::tenant_id(raw_id)?;
    check_context(s, p, id).await?;
    let state = s.engine.tenant(id).await?;
    let role = authorize(p, &state, s.engine.now_ms(), need)?;
    Ok((id, state, role))
}

/// The caller's role in the tenant if it suffices for `need` (`None` for
/// operators), without charging or status checks.
pub fn role_for(p: &Principal, t: &TenantState, need: Need) -> Result<Option<Role>, ApiError> {
    if p.is_operator() {
        return Ok(None);
    }
    let denied = |why: String| ApiError::new(ErrorCode::PermissionDenied, why);
    let member = if p.key_tenant == Some(t.tenant.id) {
        Role::Viewer
    } else if let Some((tenant, role)) = p.sso.filter(|(tenant, _)| *tenant == t.tenant.id) {
        let _ = tenant;
        role
    } else {
        t.role_of(&p.user).ok_or_else(|| {
            denied(format!(
                "user {:?} is not a member of tenant {}",
                p.user, t.tenant.id
            ))
        })?
    };
    let role = match p.token_cap() {
        Some(cap) => member.min(cap),
        None => member,
    };
    match need {
        Need::Operator => Err(denied("only a platform operator may do this".into())),
        Need::Role(min) if role < min => Err(denied(format!(
            "role {} may not do this; it needs {}",
            role.as_str(),
            min.as_str()
        ))),
        Need::Role(_) => Ok(Some(role)),
    }
}
