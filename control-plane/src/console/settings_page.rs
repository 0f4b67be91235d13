//! A tenant's settings: its name and timezone, and its custom domains with
//! the DNS record that verifies each, through the tenants and domains
//! handlers.
use super::guard::{Ctx, Fields};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{csrf, field_error, local_time};
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::Role;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "saved" => Some("The settings were saved."),
        "added" => {
            Some("The domain was added: publish its TXT record, then ask an operator to verify it.")
        }
        "verified" => Some("The domain is verified."),
        "removed" => Some("The domain was removed."),
        _ => None,
    }
}

/// Which form failed, with what was typed.
struct Failed<'a> {
    form: &'static str,
    error: &'a ApiError,
    typed: &'a Fields,
}

async fn render(ctx: &Ctx, id: &str, done: Option<&str>, failed: Option<Failed<'_>>) -> Response {
    let (state, can) = match read(ctx, id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let tz = state.tenant.timezone;
    let admin = can.at_least(Role::Admin);
    let domains = match crate::domains::list(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.to_string()),
    )
    .await
    {
        Ok(d) => d.1,
        Err(e) => return super::guard::Refused::from(e).into_response(),
    };
    let error_of = |form: &str, field: &str| {
        failed
            .as_ref()
            .filter(|f| f.form == form && f.error.field.as_deref() == Some(field))
            .map(|f| f.error.message.as_str())
    };
    let general = |form: &str, fields: &[&str]| {
        failed
            .as_ref()
            .filter(|f| {
                f.form == form && !fields.iter().any(|x| f.error.field.as_deref() == Some(x))
            })
            .map(|f| f.error.message.clone())
    };
    let typed = |form: &str, name: &str, current: &str| {
        failed
            .as_ref()
            .filter(|f| f.form == form)
            .and_then(|f| f.typed.get(name))
            .unwrap_or(current)
            .to_string()
    };
    let body = html! {
        @if let Some(n) = notice(done) { p.notice role="status" { (n) } }
        h1 { "Settings" }
        section aria-labelledby="general-h" {
            h2 #general-h { "General" }
            @if admin {
                @if let Some(e) = general("general", &["name", "timezone", "settings.timezone"]) { p.error role="alert" { (e) } }
                form.edit method="post" action=(format!("/console/tenants/{id}/settings")) novalidate {
                    (csrf(&ctx.csrf))
                    @let name_error = error_of("general", "name");
                    div.field {
                        label for="s-name" { "Name" }
                        input #s-name type="text" name="name" value=(typed("general", "name", &state.tenant.name))
                            aria-invalid=[name_error.map(|_| "true")] aria-describedby=[name_error.map(|_| "s-name-error")];
                        (field_error("s-name", name_error))
                    }
                    @let tz_error = error_of("general", "timezone").or(error_of("general", "settings.timezone"));
                    div.field {
                        label for="s-timezone" { "Timezone" }
                        input #s-timezone type="text" name="timezone" value=(typed("general", "timezone", tz.name()))
                            aria-invalid=[tz_error.map(|_| "true")]
                            aria-describedby=(if tz_error.is_some() { "s-timezone-error s-timezone-help" } else { "s-timezone-help" });
                        p.help #s-timezone-help { "An IANA name such as Europe/Paris: calendar quota periods reset at midnight there." }
                        (field_error("s-timezone", tz_error))
                    }
                    button type="submit" { "Save settings" }
                }
            } @else {
                dl.summary {
                    dt { "Name" } dd { (state.tenant.name) }
                    dt { "Timezone" } dd { (tz.name()) }
                }
            }
        }
        section aria-labelledby="domains-h" {
            h2 #domains-h { "Custom domains" }
            @if domains.is_empty() { p { "No custom domain." } } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                    table.domains {
                        thead { tr { th scope="col" { "Domain" } th scope="col" { "Status" } th scope="col" { "Verification record (DNS TXT)" } th scope="col" { "Added" }
                            @if admin { th scope="col" { "Action" } } } }
                        tbody {
                            @for d in &domains {
                                tr data-domain=(d.domain) {
                                    th scope="row" { (d.domain) }
                                    td { @if d.verified { "✓ verified" } @else { "not verified" } }
                                    td { code { (d.verification_record) } }
                                    td { (local_time(&d.added_at, tz)) }
                                    @if admin {
                                        td {
                                            @if ctx.is_operator() && !d.verified {
                                                form.inline method="post" action=(format!("/console/tenants/{id}/settings/domains/{}/verify", d.domain)) {
                                                    (csrf(&ctx.csrf))
                                                    button type="submit" { "Verify" span.visually-hidden { " " (d.domain) } }
                                                }
                                            }
                                            form.inline method="post" action=(format!("/console/tenants/{id}/settings/domains/{}/remove", d.domain)) {
                                                (csrf(&ctx.csrf))
                                                button.danger type="submit" { "Remove" span.visually-hidden { " " (d.domain) } }
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
                @if let Some(e) = general("domain", &["domain"]) { p.error role="alert" { (e) } }
                @let domain_error = error_of("domain", "domain");
                form.create method="post" action=(format!("/console/tenants/{id}/settings/domains")) novalidate {
                    (csrf(&ctx.csrf))
                    div.field {
                        label for="s-domain" { "Add a domain" }
                        input #s-domain type="text" name="domain" value=(typed("domain", "domain", "")) placeholder="quota.example.com"
                            aria-invalid=[domain_error.map(|_| "true")] aria-describedby=[domain_error.map(|_| "s-domain-error")];
                        (field_error("s-domain", domain_error))
                    }
                    button type="submit" { "Add domain" }
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
        "Settings",
        Some(&nav(&state, &can, id)),
        Section::Settings,
        body,
    );
    (status, page).into_response()
}

pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    render(&ctx, &id, q.done.as_deref(), None).await
}

/// After a settings handler: back to the page, the page with the error
/// next to its form, or (for want of rights) the audited error page.
async fn after(
    ctx: &Ctx,
    id: &str,
    form: &'static str,
    typed: &Fields,
    done: &str,
    result: Result<(), ApiError>,
) -> Response {
    match result {
        Ok(()) => {
            Redirect::to(&format!("/console/tenants/{id}/settings?done={done}")).into_response()
        }
        Err(e)
            if matches!(
                e.code,
                ErrorCode::PermissionDenied | ErrorCode::NotFound | ErrorCode::Unauthenticated
            ) =>
        {
            ctx.refused(id.parse().ok(), form, e).await.into_response()
        }
        Err(e) => {
            render(
                ctx,
                id,
                None,
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

pub async fn save(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = serde_json::json!({
        "name": fields.get("name").unwrap_or("").trim(),
        "timezone": fields.get("timezone").unwrap_or("").trim(),
    });
    let result = crate::tenants::update(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "general", &fields, "saved", result).await
}

pub async fn add_domain(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = serde_json::json!({ "domain": fields.get("domain").unwrap_or("").trim() });
    let result = crate::domains::add(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "domain", &fields, "added", result).await
}

pub async fn verify_domain(
    ctx: Ctx,
    Path((id, domain)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let result = crate::domains::verify(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), domain)),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "verify", &fields, "verified", result).await
}

pub async fn remove_domain(
    ctx: Ctx,
    Path((id, domain)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let result = crate::domains::remove(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), domain)),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "remove", &fields, "removed", result).await
}
