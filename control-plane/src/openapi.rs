//! The OpenAPI 3 document, generated from the handlers' annotations and
//! the DTOs, served at `/api/v1/openapi.json`.
use crate::{audit, domains, dto, health, members, placement, quotas, tenants, usage};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// `{"success": true, "data": …}`
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": {…}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
    /// UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE,
    /// INTERNAL.
    pub code: String,
    pub message: String,
    /// The request field the error is about.
    pub field: Option<String>,
}

/// The errors every `/api/v1` endpoint may answer with.
#[derive(IntoResponses)]
pub enum ApiErrors {
    /// A malformed id, body or parameter (`error.field` names it).
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorEnvelope),
    /// No token, or an invalid or expired one.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// Not allowed for this caller, or a cross-tenant request.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// No such tenant, quota, member or route.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// Conflicts with the current state (a taken slug, the last owner, a
    /// full `users` quota).
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
    /// The request body is larger than 256 KiB (`error.field` is `body`).
    #[response(status = 413)]
    TooLarge(ErrorEnvelope),
    /// RESOURCE_EXHAUSTED: the node is shedding load (a queue in front of
    /// the tenant's decisions is full) and changed nothing; retry after
    /// `Retry-After` seconds.
    #[response(status = 429)]
    Overloaded(ErrorEnvelope),
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// The node is not ready (e.g. no Raft leader), or the request was not
    /// answered within the node's request timeout.
    #[response(status = 503)]
    Unavailable(ErrorEnvelope),
}

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
        description = "Tenants, tiers, members, quotas, usage history and audit of a quotad deployment."
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
        members::list,
        members::add,
        members::change_role,
        members::remove,
        audit::list,
        domains::list,
        domains::add,
        domains::verify,
        domains::remove,
        usage::history,
        placement::get,
        placement::dedicate,
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
        (name = "audit", description = "The tenant's hash-chained audit log"),
        (name = "domains", description = "Custom domains"),
        (name = "usage", description = "Usage history and statistics"),
        (name = "placement", description = "Where a tenant's state lives; dedicated groups"),
        (name = "health", description = "Probes")
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
