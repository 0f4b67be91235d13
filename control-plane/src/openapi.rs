//! The OpenAPI 3 document, generated from the handlers' annotations and
//! the DTOs, served at `/api/v1/openapi.json`.
use crate::envelope::{ErrorBody, ErrorEnvelope};
use crate::{
    api_keys, api_settings, audit, billing, branding, domains, dto, features, flags, health,
    marketplace, members, placement, platform_webhooks, quota_levels, quotas, sharing, sso,
    statements, tenants, usage, webhooks,
};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "quotad control plane",
        description = "Tenants, tiers, members, quotas, usage history, audit, cross-tenant sharing, tier features, branding and feature flags of a quotad deployment."
    ),
    paths(
        tenants::create,
        tenants::get,
        tenants::update,
        tenants::delete,
        tenants::restore,
        tenants::upgrade,
        quotas::list,
        quotas::get,
        quotas::set,
        quota_levels::grants,
        quota_levels::add_grant,
        quota_levels::void_grant,
        quota_levels::scopes,
        quota_levels::set_shadow,
        members::list,
        members::add,
        members::change_role,
        members::remove,
        api_keys::list,
        api_keys::create,
        api_keys::rotate,
        api_keys::revoke,
        audit::list,
        domains::list,
        domains::add,
        domains::verify,
        domains::remove,
        usage::history,
        features::list,
        api_settings::get,
        api_settings::put,
        sso::get,
        sso::put,
        sso::delete,
        branding::get,
        branding::put,
        branding::delete,
        flags::list,
        flags::get,
        flags::put,
        flags::delete,
        flags::platform_list,
        flags::platform_get,
        flags::platform_put,
        flags::platform_delete,
        flags::platform_changes,
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::remove,
        webhooks::rotate,
        webhooks::delivery_log,
        webhooks::retry,
        webhooks::alerts,
        platform_webhooks::list,
        platform_webhooks::create,
        platform_webhooks::get,
        platform_webhooks::update,
        platform_webhooks::remove,
        platform_webhooks::rotate,
        platform_webhooks::delivery_log,
        platform_webhooks::retry,
        platform_webhooks::alerts,
        platform_webhooks::changes,
        billing::event,
        placement::get,
        placement::dedicate,
        sharing::create,
        sharing::list,
        sharing::get,
        sharing::replace,
        sharing::delete,
        sharing::request_access,
        sharing::policy_requests,
        sharing::requests,
        sharing::approve,
        sharing::deny,
        sharing::grants,
        sharing::revoke,
        marketplace::list,
        statements::tenant,
        statements::platform,
        statements::closed,
        statements::close,
        statements::settings,
        statements::set_settings,
        health::healthz,
        health::readyz,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, dto::TenantDto, dto::QuotaDto, dto::MemberDto)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tenants", description = "Tenant lifecycle and tiers"),
        (name = "quotas", description = "A tenant's quotas"),
        (name = "members", description = "Members and roles"),
        (name = "api-keys", description = "The tenant's API keys for the data plane"),
        (name = "audit", description = "The tenant's hash-chained audit log"),
        (name = "domains", description = "Custom domains"),
        (name = "usage", description = "Usage history and statistics"),
        (name = "customization", description = "Tier features and branding"),
        (name = "flags", description = "Feature flags: the tenant's, and the platform's definitions (evaluation over OFREP at /ofrep/v1, documented by OpenFeature)"),
        (name = "webhooks", description = "Webhook endpoints, deliveries (Standard Webhooks, signed, retried, dead-lettered, replayed) and alerts"),
        (name = "placement", description = "Where a tenant's state lives; dedicated groups"),
        (name = "sharing", description = "Sharing policies, access requests, grants and the marketplace"),
        (name = "health", description = "Probes")
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
