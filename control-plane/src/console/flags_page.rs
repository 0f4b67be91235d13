//! A tenant's feature flags: every flag as it evaluates for the tenant,
//! and (admins) the tenant's own values, through the flags handlers (so
//! the type, tier and limit rules are theirs).
use super::guard::{Ctx, Refused};
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

/// A failed form: the flag it was for (`""`: the new-flag form), the
/// error, what was typed.
struct Failed<'a> {
    key: String,
    error: &'a ApiError,
    typed: String,
}

async fn render(ctx: &Ctx, id: &str, failed: Option<Failed<'_>>) -> Response {
    let (state, can) = match read(ctx, id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let admin = can.at_least(Role::Admin);
    let flags = crate::flags::tenant_flags(&ctx.state.app, &state);
    let failed_on = |key: &str| failed.as_ref().filter(|f| f.key == key);
    let body = html! {
        h1 { "Feature flags" }
        p { "What each flag evaluates to for this tenant (over OFREP and gRPC), and why." }
        div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
            table.flags {
                caption.visually-hidden { "Feature flags of " (state.tenant.name) }
                thead { tr {
                    th scope="col" { "Flag" } th scope="col" { "Value" } th scope="col" { "Reason" }
                    th scope="col" { "Source" } th scope="col" { "Tenant's value" }
                    @if admin { th scope="col" { "Change" } }
                } }
                tbody {
                    @for (i, f) in flags.iter().enumerate() {
                        tr data-flag=(f.key) {
                            th scope="row" { code { (f.key) } @if !f.description.is_empty() { br; small { (f.description) } } }
                            td.value { code { (f.value.to_string()) } }
                            td.reason { (f.reason) @if let Some(t) = &f.min_tier { br; small { (t) " and above" } } }
                            td { (f.source) }
                            td { @if let Some(v) = &f.tenant_value { code { (v.to_string()) } } @else { "—" } }
                            @if admin {
                                td {
                                    @let fail = failed_on(&f.key);
                                    form.inline method="post" action=(format!("/console/tenants/{id}/flags/{}", f.key)) novalidate {
                                        (csrf(&ctx.csrf))
                                        label for=(format!("flag-{i}")) .visually-hidden { "Value of " (f.key) " (JSON)" }
                                        input id=(format!("flag-{i}")) type="text" name="value"
                                            value=(fail.map(|x| x.typed.clone()).unwrap_or_else(|| f.value.to_string()))
                                            aria-invalid=[fail.map(|_| "true")]
                                            aria-describedby=[fail.map(|_| format!("flag-{i}-error"))];
                                        button type="submit" { "Set" span.visually-hidden { " " (f.key) } }
                                        (field_error(&format!("flag-{i}"), fail.map(|x| x.error.message.as_str())))
                                    }
                                    @if f.tenant_value.is_some() {
                                        form.inline method="post" action=(format!("/console/tenants/{id}/flags/{}/remove", f.key)) {
                                            (csrf(&ctx.csrf))
                                            button.danger type="submit" { "Remove value" span.visually-hidden { " of " (f.key) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            @let fail = failed_on("");
            section aria-labelledby="own-h" {
                h2 #own-h { "A flag of the tenant's own" }
                form.create method="post" action=(format!("/console/tenants/{id}/flags")) novalidate {
                    (csrf(&ctx.csrf))
                    div.field {
                        label for="new-key" { "Key" }
                        input #new-key type="text" name="key" aria-describedby="new-key-help";
                        p #new-key-help .help { "Lowercase letters, digits, '_', '-' or '.'." }
                    }
                    div.field {
                        label for="new-value" { "Value (JSON: true, 42, \"text\", {…})" }
                        input #new-value type="text" name="value" value=(fail.map(|f| f.typed.clone()).unwrap_or_default())
                            aria-invalid=[fail.map(|_| "true")]
                            aria-describedby=[fail.map(|_| "new-value-error")];
                        (field_error("new-value", fail.map(|f| f.error.message.as_str())))
                    }
                    button type="submit" { "Add flag" }
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
        "Feature flags",
        Some(&nav(&state, &can, id)),
        Section::Flags,
        body,
    );
    (status, page).into_response()
}

pub async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    render(&ctx, &id, None).await
}

/// What was typed, as JSON: itself when it parses, else a string.
fn json_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw.trim()).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

async fn set(ctx: &Ctx, id: &str, key: String, typed: String, form_key: String) -> Response {
    if let Err(r) = allowed(ctx, id, "set a feature flag").await {
        return r;
    }
    let result = crate::flags::put(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.to_string(), key)),
        JsonBody::json(&serde_json::json!({ "value": json_value(&typed) })),
    )
    .await
    .map(|_| ());
    after(ctx, id, form_key, typed, result).await
}

/// A change the caller's role does not allow is refused and audited
/// before the handler runs; what the handler refuses (a value of the
/// wrong type, a flag above the tier, the tier's limit) is shown by the
/// form it came from.
async fn allowed(ctx: &Ctx, id: &str, action: &str) -> Result<(), Response> {
    let (_, can) = read(ctx, id).await.map_err(IntoResponse::into_response)?;
    if can.at_least(Role::Admin) {
        return Ok(());
    }
    let e = ApiError::new(
        ErrorCode::PermissionDenied,
        "changing feature flags needs the admin role",
    );
    Err(ctx
        .refused(id.parse().ok(), action, e)
        .await
        .into_response())
}

async fn after(
    ctx: &Ctx,
    id: &str,
    key: String,
    typed: String,
    result: Result<(), ApiError>,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/console/tenants/{id}/flags")).into_response(),
        Err(e) => {
            render(
                ctx,
                id,
                Some(Failed {
                    key,
                    error: &e,
                    typed,
                }),
            )
            .await
        }
    }
}

pub async fn set_one(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let typed = fields.get("value").unwrap_or("").to_string();
    set(&ctx, &id, key.clone(), typed, key).await
}

pub async fn add(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let typed = fields.get("value").unwrap_or("").to_string();
    let key = fields.text("key").unwrap_or_default();
    set(&ctx, &id, key, typed, String::new()).await
}

pub async fn remove(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    if let Err(r) = allowed(&ctx, &id, "remove a feature flag value").await {
        return r;
    }
    let result = crate::flags::delete(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), key.clone())),
    )
    .await
    .map(|_| ());
    match result {
        Ok(()) => Redirect::to(&format!("/console/tenants/{id}/flags")).into_response(),
        Err(e) => Refused::from(e).into_response(),
    }
}
