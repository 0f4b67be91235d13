//! A tenant's API keys for the data plane: created, listed, rotated and
//! revoked by its owners and admins (and operators). A key's text is shown
//! once, when it is made; the tenant's state keeps only its hash.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::{ApiKeyDto, CreateApiKey, IssuedApiKeyDto, RotateApiKey};
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody, time_param};
use axum::extract::State;
use quotad_engine::auth::api_key;
use quotad_engine::format::Since;
use quotad_engine::model::{Role, Scope, Scopes, UnknownScope};
use quotad_engine::quota::{ApiKeyRotation, NewApiKey, TenantOp, TenantState};

fn keys(state: &TenantState) -> Vec<ApiKeyDto> {
    state.api_keys.0.values().map(ApiKeyDto::from).collect()
}

fn issued(state: &TenantState, id: &str, text: String) -> Result<IssuedApiKeyDto, ApiError> {
    let key = state.api_keys.0.get(id).ok_or_else(|| {
        ApiError::new(
            quotad_engine::error_code::ErrorCode::Internal,
            "the key is not in the tenant after its change",
        )
    })?;
    Ok(IssuedApiKeyDto {
        key: text,
        api_key: ApiKeyDto::from(key),
    })
}

fn scopes(raw: &[String]) -> Result<Scopes, ApiError> {
    let parsed = raw
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, UnknownScope>>()
        .map_err(|e| ApiError::invalid("scopes", e.to_string()))?;
    let set = Scopes::of(parsed);
    if set.is_empty() {
        return Err(ApiError::invalid("scopes", "give at least one scope"));
    }
    Ok(set)
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/api-keys", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's keys (never their secrets)", body = crate::envelope::Envelope<Vec<crate::dto::ApiKeyDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<ApiKeyDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    Ok(ok(keys(&state)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/api-keys", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::CreateApiKey, responses((status = 201, description = "Created; the key's text is shown this once", body = crate::envelope::Envelope<crate::dto::IssuedApiKeyDto>), crate::envelope::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<IssuedApiKeyDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: CreateApiKey = body.parse()?;
    let scopes = scopes(&body.scopes)?;
    let expires_at_ms = match &body.expires_at {
        Some(at) => {
            let ms = time_param("expiresAt", at)?;
            if ms <= s.engine.now_ms() {
                return Err(ApiError::invalid("expiresAt", "is in the past"));
            }
            Some(ms)
        }
        None => None,
    };
    let (key_id, text, hash) = api_key::generate(id);
    let op = TenantOp::CreateApiKey(Since(Box::new(NewApiKey {
        id: key_id.clone(),
        name: body.name.trim().to_string(),
        scopes,
        hash,
        last4: api_key::last4(&text),
        created_by: p.user.clone(),
        expires_at_ms,
    })));
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(created(issued(&state, &key_id, text)?))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/api-keys/{key}/rotate", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")), request_body = crate::dto::RotateApiKey, responses((status = 200, description = "The key's new text, shown this once", body = crate::envelope::Envelope<crate::dto::IssuedApiKeyDto>), crate::envelope::ApiErrors))]
pub async fn rotate(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, key)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<IssuedApiKeyDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: RotateApiKey = if body.is_empty() {
        RotateApiKey::default()
    } else {
        body.parse()?
    };
    let text = api_key::with_new_secret(id, &key_id(&key)?);
    let op = TenantOp::RotateApiKey(Since(ApiKeyRotation {
        id: key.clone(),
        hash: api_key::hash(&text),
        last4: api_key::last4(&text),
        grace_ms: body.grace_seconds.saturating_mul(1000),
    }));
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(ok(issued(&state, &key, text)?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/api-keys/{key}", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")), responses((status = 200, description = "Revoked (on every node within a second); the keys left", body = crate::envelope::Envelope<Vec<crate::dto::ApiKeyDto>>), crate::envelope::ApiErrors))]
pub async fn revoke(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, key)): ApiPath<(String, String)>,
) -> ApiResult<Vec<ApiKeyDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let op = TenantOp::RevokeApiKey(Since(key_id(&key)?));
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(ok(keys(&state)))
}

/// A key id as keys carry it: 16 lowercase hex digits.
fn key_id(raw: &str) -> Result<String, ApiError> {
    if raw.len() == 16
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid(
            "key",
            "a key id is 16 lowercase hex digits (the `id` of a listed key)",
        ))
    }
}
