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
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quotad_engine::audit::AuditMeta;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, TenantId, Tier};
use quotad_engine::quota::TenantState;
use serde::{Deserialize, Serialize};

pub const OPERATOR: &str = "operator";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub roles: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Keys that verify tokens. The secret is kept out of `Debug`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("hs256", &self.hs256.as_ref().map(|_| "<secret>"))
            .field("rs256", &self.rs256.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the JWT secret must be at least 16 bytes")]
    WeakSecret,
    #[error("the RS256 public key is not a PEM RSA public key: {0}")]
    BadPublicKey(jsonwebtoken::errors::Error),
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

impl AuthConfig {
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < 16 {
            return Err(AuthError::WeakSecret);
        }
        Ok(AuthConfig {
            hs256: Some(DecodingKey::from_secret(secret)),
            rs256: None,
        })
    }

    pub fn with_rs256_pem(mut self, pem: &[u8]) -> Result<Self, AuthError> {
        self.rs256 = Some(DecodingKey::from_rsa_pem(pem).map_err(AuthError::BadPublicKey)?);
        Ok(self)
    }

    /// Verify a token; the error says what was wrong (for the 401 message).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| format!("tokens signed with {:?} are not accepted", header.alg))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token has expired".to_string(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "token signature is invalid".to_string()
            }
            _ => format!("invalid token: {e}"),
        })?;
        if data.claims.sub.is_empty() {
            return Err("token has an empty sub".into());
        }
        Ok(data.claims)
    }
}

/// Sign an HS256 token (`quotad token`, tests).
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, AuthError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(AuthError::Sign)
}

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
        let claims = state.auth.verify(token.trim()).map_err(unauthenticated)?;
        let header_tenant = parts
            .headers
            .get("x-tenant-id")
            .map(|v| v.to_str().unwrap_or("<not text>").to_string());
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
    metrics::counter!(crate::metrics::CROSS_TENANT_DENIALS).increment(1);
    tracing::warn!(user = %p.user, path_tenant = %id, %what, other, request_id = %p.request_id, "cross-tenant access refused");
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

/// Features reserved to higher tiers (operators may still act).
pub fn require_tier(
    p: &Principal,
    t: &TenantState,
    min: Tier,
    feature: &str,
) -> Result<(), ApiError> {
    if t.tenant.tier < min && !p.is_operator() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "{feature} need the {min} tier or above; the tenant is on {}",
                t.tenant.tier
            ),
        ));
    }
    Ok(())
}

/// The caller's role in the tenant if it suffices for `need` (`None` for
/// operators), without charging or status checks.
pub fn role_for(p: &Principal, t: &TenantState, need: Need) -> Result<Option<Role>, ApiError> {
    if p.is_operator() {
        return Ok(None);
    }
    let denied = |why: String| ApiError::new(ErrorCode::PermissionDenied, why);
    let member = t.role_of(&p.user).ok_or_else(|| {
        denied(format!(
            "user {:?} is not a member of tenant {}",
            p.user, t.tenant.id
        ))
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_from_now: i64) -> Claims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Claims {
            sub: "alice".into(),
            tenant_id: None,
            roles: vec!["admin".into()],
            exp: (now + exp_from_now) as u64,
            iat: None,
        }
    }

    #[test]
    fn good_tokens_pass_and_bad_ones_say_why() {
        let auth = AuthConfig::hs256(SECRET).unwrap();
        let good = mint(SECRET, &claims(600)).unwrap();
        assert_eq!(auth.verify(&good).unwrap().sub, "alice");

        let expired = mint(SECRET, &claims(-600)).unwrap();
        assert!(auth.verify(&expired).unwrap_err().contains("expired"));

        let other = mint(b"another-secret-of-32-bytes-long!", &claims(600)).unwrap();
        assert!(auth.verify(&other).unwrap_err().contains("signature"));

        // alg: none, unsigned.
        let header = base64url(r#"{"alg":"none","typ":"JWT"}"#);
        let body = base64url(&serde_json::to_string(&claims(600)).unwrap());
        assert!(auth.verify(&format!("{header}.{body}.")).is_err());

        // A claim missing (roles).
        let body = base64url(r#"{"sub":"alice","exp":99999999999}"#);
        let sig_input = format!("{}.{body}", base64url(r#"{"alg":"HS256","typ":"JWT"}"#));
        let unsigned = jsonwebtoken::crypto::sign(
            sig_input.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(
            auth.verify(&format!("{sig_input}.{unsigned}"))
                .unwrap_err()
                .contains("invalid token")
        );

        assert!(AuthConfig::hs256(b"short").is_err());
    }

    #[test]
    fn rs256_tokens_verify_with_the_configured_public_key_only() {
        // A key pair made for this test only (control-plane/tests/fixtures).
        let private = include_bytes!("../tests/fixtures/rs256-test-private.pem");
        let public = include_bytes!("../tests/fixtures/rs256-test-public.pem");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(600),
            &EncodingKey::from_rsa_pem(private).unwrap(),
        )
        .unwrap();
        let hs_only = AuthConfig::hs256(SECRET).unwrap();
        assert!(hs_only.verify(&token).unwrap_err().contains("not accepted"));
        let both = AuthConfig::hs256(SECRET)
            .unwrap()
            .with_rs256_pem(public)
            .unwrap();
        assert_eq!(both.verify(&token).unwrap().sub, "alice");
        // An HS256 token signed with the public key's bytes (key confusion) fails.
        let confused = mint(public, &claims(600)).unwrap();
        assert!(both.verify(&confused).is_err());
        assert!(AuthConfig::default().with_rs256_pem(b"not a key").is_err());
    }

    fn base64url(s: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
