//! A tenant's members: list, add, change role, remove, through the members
//! handlers (so the owner and last-owner rules are theirs).
use super::guard::{Ctx, Fields};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{csrf, field_error, local_time};
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::Role;

/// An error of a members form, and which form it belongs to.
struct Failed<'a> {
    /// `add`, or the user id whose row's form failed.
    form: String,
    error: &'a ApiError,
    typed: Option<&'a Fields>,
}

fn role_select(id: &str, current: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in Role::ALL {
                option value=(r.as_str()) selected[r.as_str() == current] { (r.as_str()) }
            }
        }
    }
}

async fn render(ctx: &Ctx, id: &str, failed: Option<Failed<'_>>) -> Response {
    let (state, can) = match read(ctx, id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let tz = state.tenant.timezone;
    let edit = can.at_least(Role::Admin);
    let failed_on = |form: &str| failed.as_ref().filter(|f| f.form == form).map(|f| f.error);
    let body = html! {
        h1 { "Members" }
        div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
            table.members {
                caption.visually-hidden { "Members of " (state.tenant.name) }
                thead { tr {
                    th scope="col" { "User" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Added" }
                    @if edit { th scope="col" { "Change" } }
                } }
                tbody {
                    @for (i, m) in state.members.values().enumerate() {
                        tr data-user=(m.user_id) {
                            th scope="row" { (m.user_id) }
                            td { (m.email.as_deref().unwrap_or("")) }
                            td.role { (m.role.as_str()) }
                            td { (local_time(&crate::dto::rfc3339(m.added_at_ms), tz)) }
                            @if edit {
                                td {
                                    @if let Some(e) = failed_on(&m.user_id) {
                                        p.error role="alert" { (e.message) }
                                    }
                                    form.inline method="post" action=(format!("/console/tenants/{id}/members/{}/role", m.user_id)) {
                                        (csrf(&ctx.csrf))
                                        label for=(format!("role-{i}")) .visually-hidden { "Role of " (m.user_id) }
                                        (role_select(&format!("role-{i}"), m.role.as_str()))
                                        button type="submit" { "Change role" span.visually-hidden { " of " (m.user_id) } }
                                    }
                                    form.inline method="post" action=(format!("/console/tenants/{id}/members/{}/remove", m.user_id)) {
                                        (csrf(&ctx.csrf))
                                        button.danger type="submit" { "Remove" span.visually-hidden { " " (m.user_id) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if edit {
            @let error = failed_on("add");
            @let typed = failed.as_ref().and_then(|f| f.typed);
            @let field = |name: &str| error.filter(|e| e.field.as_deref() == Some(name)).map(|e| e.message.as_str());
            section aria-labelledby="add-h" {
                h2 #add-h { "Add a member" }
                @if let Some(e) = error.filter(|e| !matches!(e.field.as_deref(), Some("userId" | "role"))) {
                    p.error role="alert" { (e.message) }
                }
                form.create method="post" action=(format!("/console/tenants/{id}/members")) novalidate {
                    (csrf(&ctx.csrf))
                    div.field {
                        label for="userId" { "User id" }
                        input #userId type="text" name="userId" value=(typed.and_then(|t| t.get("userId")).unwrap_or(""))
                            aria-invalid=[field("userId").map(|_| "true")]
                            aria-describedby=[field("userId").map(|_| "userId-error")];
                        (field_error("userId", field("userId")))
                    }
                    div.field {
                        label for="add-role" { "Role" }
                        (role_select("add-role", typed.and_then(|t| t.get("role")).unwrap_or("member")))
                        (field_error("add-role", field("role")))
                    }
                    button type="submit" { "Add member" }
                }
            }
        }
    };
    let status = match &failed {
        Some(f) => f
            .error
            .status
            .or_else(|| StatusCode::from_u16(f.error.code.http_status()).ok())
            .unwrap_or(StatusCode::BAD_REQUEST),
        None => StatusCode::OK,
    };
    let page = layout::page(
        ctx,
        "Members",
        Some(&nav(&state, &can, id)),
        Section::Members,
        body,
    );
    (status, page).into_response()
}

pub async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    render(&ctx, &id, None).await
}

/// After a members handler: back to the page, or the page with the error
/// next to the form it came from. A refusal for want of rights is
/// audited and answered with the error page.
async fn after(
    ctx: &Ctx,
    id: &str,
    form: String,
    typed: Option<&Fields>,
    action: &str,
    result: Result<(), ApiError>,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/console/tenants/{id}/members")).into_response(),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::PermissionDenied | ErrorCode::NotFound | ErrorCode::Unauthenticated
            ) =>
        {
            ctx.refused(id.parse().ok(), action, e)
                .await
                .into_response()
        }
        Err(e) => {
            render(
                ctx,
                id,
                Some(Failed {
                    form,
                    error: &e,
                    typed,
                }),
            )
            .await
        }
    }
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
    let body = serde_json::json!({
        "userId": fields.text("userId").unwrap_or_default(),
        "role": fields.get("role").unwrap_or(""),
    });
    let result = crate::members::add(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "add".into(), Some(&fields), "add member", result).await
}

pub async fn change_role(
    ctx: Ctx,
    Path((id, user)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = serde_json::json!({ "role": fields.get("role").unwrap_or("") });
    let result = crate::members::change_role(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), user.clone())),
        JsonBody::json(&body),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, user, None, "change member role", result).await
}

pub async fn remove(
    ctx: Ctx,
    Path((id, user)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    let result = crate::members::remove(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), user.clone())),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, user, None, "remove member", result).await
}
