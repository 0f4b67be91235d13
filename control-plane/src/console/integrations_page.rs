//! A tenant's customization and integrations: its tier's features and
//! SLA, its branding, API settings (IP allowlist, CORS origins) and single
//! sign-on, through the same handlers as REST (so tier gating, validation
//! and the write-only client secret are theirs).
use super::guard::{Ctx, Fields};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{csrf, field_error};
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::Role;

struct Failed<'a> {
    form: &'static str,
    error: &'a ApiError,
    typed: &'a Fields,
}

fn lines(v: &[String]) -> String {
    v.join("\n")
}

fn split(raw: &str) -> Vec<String> {
    raw.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn render(ctx: &Ctx, id: &str, failed: Option<Failed<'_>>) -> Response {
    let (state, can) = match read(ctx, id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let admin = can.at_least(Role::Admin);
    let app = &ctx.state.app;
    let catalog = app.engine.catalog();
    let tier = state.tenant.tier;
    let branding = crate::branding::dto(app, &state);
    let api = &state.custom.api;
    let sso = state.custom.sso.as_ref();
    let err = |form: &str, field: &str| {
        failed
            .as_ref()
            .filter(|f| f.form == form && f.error.field.as_deref() == Some(field))
            .map(|f| f.error.message.as_str())
    };
    // An error no field of the form shows (a tier refusal, say).
    let general = |form: &str| {
        failed
            .as_ref()
            .filter(|f| f.form == form && f.error.field.is_none())
            .map(|f| f.error.message.clone())
    };
    let typed = |form: &str, name: &str, current: String| {
        failed
            .as_ref()
            .filter(|f| f.form == form)
            .and_then(|f| f.typed.get(name).map(str::to_string))
            .unwrap_or(current)
    };
    let body = html! {
        h1 { "Integrations" }
        section aria-labelledby="feat-h" {
            h2 #feat-h { "Tier features" }
            p { "Tier " strong { (tier) } ", SLA " strong { (catalog.features().sla(tier).as_str()) } "." }
            ul.features {
                @for (name, min) in catalog.features().all() {
                    li data-feature=(name) {
                        @if tier >= min { "✓ " (name) } @else { "✗ " (name) " (" (min) " and above)" }
                    }
                }
            }
        }
        @for (form, title, fields) in [("branding", "Branding", 0), ("api", "API settings", 1), ("sso", "Single sign-on", 2)] {
            section aria-labelledby=(format!("{form}-h")) {
                h2 id=(format!("{form}-h")) { (title) }
                @if admin {
                    @if let Some(e) = general(form) { p.error role="alert" { (e) } }
                    form.edit method="post" action=(format!("/console/tenants/{id}/integrations/{form}")) novalidate {
                        (csrf(&ctx.csrf))
                        @if fields == 0 {
                            @for (name, label, value) in [
                                ("primaryColor", "Primary colour (#rrggbb)", branding.primary_color.clone()),
                                ("secondaryColor", "Secondary colour (#rrggbb)", branding.secondary_color.clone()),
                                ("textColor", "Text on the primary colour (#rrggbb)", branding.text_color.clone()),
                                ("logoUrl", "Logo URL (https)", branding.logo_url.clone().unwrap_or_default()),
                                ("productName", "Product name", branding.product_name.clone().unwrap_or_default()),
                            ] {
                                div.field {
                                    label for=(format!("b-{name}")) { (label) }
                                    input id=(format!("b-{name}")) type="text" name=(name) value=(typed(form, name, value))
                                        aria-invalid=[err(form, name).map(|_| "true")] aria-describedby=[err(form, name).map(|_| format!("b-{name}-error"))];
                                    (field_error(&format!("b-{name}"), err(form, name)))
                                }
                            }
                            p.help { "In force: " @if branding.active { "yes" } @else { "no (custom_branding needs a higher tier)" } }
                            button type="submit" { "Save branding" }
                        } @else if fields == 1 {
                            div.field {
                                label for="a-ip" { "IP allowlist for API keys (one network per line)" }
                                textarea #a-ip name="ipAllowlist" rows="3"
                                    aria-invalid=[err(form, "ipAllowlist").map(|_| "true")] aria-describedby=[err(form, "ipAllowlist").map(|_| "a-ip-error")] {
                                    (typed(form, "ipAllowlist", lines(&api.ip_allowlist.iter().map(|c| c.to_string()).collect::<Vec<_>>())))
                                }
                                (field_error("a-ip", err(form, "ipAllowlist")))
                            }
                            div.field {
                                label for="a-cors" { "Allowed browser origins (one per line)" }
                                textarea #a-cors name="corsOrigins" rows="3"
                                    aria-invalid=[err(form, "corsOrigins").map(|_| "true")] aria-describedby=[err(form, "corsOrigins").map(|_| "a-cors-error")] {
                                    (typed(form, "corsOrigins", lines(&api.cors_origins)))
                                }
                                (field_error("a-cors", err(form, "corsOrigins")))
                            }
                            button type="submit" { "Save API settings" }
                        } @else {
                            @for (name, label, value) in [
                                ("issuer", "Issuer URL", sso.map(|s| s.issuer.clone()).unwrap_or_default()),
                                ("clientId", "Client id", sso.map(|s| s.client_id.clone()).unwrap_or_default()),
                                ("allowedEmailDomains", "Allowed email domains (comma-separated)", sso.map(|s| s.allowed_email_domains.join(", ")).unwrap_or_default()),
                                ("roleClaim", "Claim mapped to roles", sso.map(|s| s.role_claim.clone()).unwrap_or_else(|| "groups".into())),
                            ] {
                                div.field {
                                    label for=(format!("s-{name}")) { (label) }
                                    input id=(format!("s-{name}")) type="text" name=(name) value=(typed(form, name, value))
                                        aria-invalid=[err(form, name).map(|_| "true")] aria-describedby=[err(form, name).map(|_| format!("s-{name}-error"))];
                                    (field_error(&format!("s-{name}"), err(form, name)))
                                }
                            }
                            div.field {
                                label for="s-secret" { "Client secret (write-only)" }
                                input #s-secret type="password" name="clientSecret" autocomplete="off" aria-describedby="s-secret-help";
                                p.help #s-secret-help {
                                    @match sso.and_then(|s| s.client_secret.as_ref()) {
                                        Some(c) => { "Set (…" (c.last4) "); leave empty to keep it." }
                                        None => { "Not set." }
                                    }
                                }
                            }
                            div.field {
                                label for="s-mapping" { "Claim value = role (one per line)" }
                                textarea #s-mapping name="roleMapping" rows="3"
                                    aria-invalid=[err(form, "roleMapping").map(|_| "true")] aria-describedby=[err(form, "roleMapping").map(|_| "s-mapping-error")] {
                                    (typed(form, "roleMapping", sso.map(|s| s.role_mapping.iter().map(|(k, r)| format!("{k} = {}", r.as_str())).collect::<Vec<_>>().join("\n")).unwrap_or_default()))
                                }
                                (field_error("s-mapping", err(form, "roleMapping")))
                            }
                            @if sso.is_some() {
                                p.help { "Users sign in at " code { "/console/sso/" (state.tenant.slug) } "." }
                            }
                            button type="submit" { "Save single sign-on" }
                        }
                    }
                } @else {
                    p { "Admins change these." }
                }
            }
        }
    };
    let status = failed
        .as_ref()
        .map(|f| {
            f.error
                .status
                .or_else(|| StatusCode::from_u16(f.error.code.http_status()).ok())
                .unwrap_or(StatusCode::BAD_REQUEST)
        })
        .unwrap_or(StatusCode::OK);
    let page = layout::page(
        ctx,
        "Integrations",
        Some(&nav(&state, &can, id)),
        Section::Integrations,
        body,
    );
    (status, page).into_response()
}

pub async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    render(&ctx, &id, None).await
}

async fn allowed(ctx: &Ctx, id: &str, action: &str) -> Result<(), Response> {
    let (_, can) = read(ctx, id).await.map_err(IntoResponse::into_response)?;
    if can.at_least(Role::Admin) {
        return Ok(());
    }
    let e = ApiError::new(
        ErrorCode::PermissionDenied,
        "changing integrations needs the admin role",
    );
    Err(ctx
        .refused(id.parse().ok(), action, e)
        .await
        .into_response())
}

pub async fn save(
    ctx: Ctx,
    Path((id, form)): Path<(String, String)>,
    Form(posted): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(posted) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = allowed(&ctx, &id, "change integrations").await {
        return r;
    }
    let app = ctx.state.app.clone();
    let text = |name: &str| fields.text(name);
    let (which, result): (&'static str, Result<(), ApiError>) = match form.as_str() {
        "branding" => {
            let body = serde_json::json!({
                "primaryColor": text("primaryColor"),
                "secondaryColor": text("secondaryColor"),
                "textColor": text("textColor"),
                "logoUrl": text("logoUrl"),
                "productName": text("productName"),
            });
            (
                "branding",
                crate::branding::put(
                    State(app),
                    ctx.principal.clone(),
                    ApiPath(id.clone()),
                    JsonBody::json(&body),
                )
                .await
                .map(|_| ()),
            )
        }
        "api" => {
            let body = serde_json::json!({
                "ipAllowlist": split(fields.get("ipAllowlist").unwrap_or("")),
                "corsOrigins": split(fields.get("corsOrigins").unwrap_or("")),
            });
            (
                "api",
                crate::api_settings::put(
                    State(app),
                    ctx.principal.clone(),
                    ApiPath(id.clone()),
                    JsonBody::json(&body),
                )
                .await
                .map(|_| ()),
            )
        }
        "sso" => {
            let mapping: serde_json::Map<String, serde_json::Value> = fields
                .get("roleMapping")
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim().to_string(),
                        serde_json::Value::String(v.trim().to_string()),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "issuer": text("issuer").unwrap_or_default(),
                "clientId": text("clientId").unwrap_or_default(),
                "clientSecret": text("clientSecret"),
                "allowedEmailDomains": split(fields.get("allowedEmailDomains").unwrap_or("")),
                "roleClaim": text("roleClaim"),
                "roleMapping": mapping,
            });
            (
                "sso",
                crate::sso::put(
                    State(app),
                    ctx.principal.clone(),
                    ApiPath(id.clone()),
                    JsonBody::json(&body),
                )
                .await
                .map(|_| ()),
            )
        }
        _ => {
            return super::guard::Refused::new(StatusCode::NOT_FOUND, "no such form")
                .into_response();
        }
    };
    match result {
        Ok(()) => Redirect::to(&format!("/console/tenants/{id}/integrations")).into_response(),
        Err(e) => {
            render(
                &ctx,
                &id,
                Some(Failed {
                    form: which,
                    error: &e,
                    typed: &fields,
                }),
            )
            .await
        }
    }
}
