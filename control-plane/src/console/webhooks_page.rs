//! A tenant's webhooks and alerts: its endpoints (admins add them; the
//! signing secret is shown once, on the page that answers the form), the
//! delivery log with each attempt and a replay for finished deliveries,
//! and the latest alerts, through the webhooks handlers; the same for the
//! operators' endpoints and alerts at `/console/platform/webhooks`.
use super::guard::{Ctx, Refused};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{csrf, field_error, local_time};
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody, RawQuery};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::Role;

/// How the page was reached: after creating an endpoint (its secret),
/// after a failed form (its error and what was typed).
#[derive(Default)]
struct After<'a> {
    secret: Option<&'a str>,
    error: Option<&'a ApiError>,
    typed: Option<&'a super::guard::Fields>,
}

/// What a webhooks page shows: a tenant's or the operators'.
struct View {
    /// Where its forms post (`/console/tenants/{id}` or `/console/platform`).
    base: String,
    admin: bool,
    tz: chrono_tz::Tz,
    platform: bool,
    endpoints: Vec<crate::webhooks::WebhookDto>,
    deliveries: Vec<crate::webhooks::DeliveryDto>,
    alerts: Vec<crate::webhooks::AlertDto>,
}

async fn render(ctx: &Ctx, id: &str, after: After<'_>) -> Response {
    let (state, can) = match read(ctx, id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let alerts = match crate::webhooks::alerts(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.to_string()),
        RawQuery::of(&[("limit", "50".to_string())]),
    )
    .await
    {
        Ok(a) => a.1,
        Err(e) => return Refused::from(e).into_response(),
    };
    let view = View {
        base: format!("/console/tenants/{id}"),
        admin: can.at_least(Role::Admin),
        tz: state.tenant.timezone,
        platform: false,
        endpoints: crate::webhooks::endpoints(&state.alerts),
        deliveries: crate::webhooks::deliveries(&state, |_| true),
        alerts,
    };
    let nav = nav(&state, &can, id);
    respond(ctx, &view, after, Some(&nav), Section::Webhooks)
}

/// The operators' webhooks and alerts (every tenant's alerts, the
/// platform's own).
async fn render_platform(ctx: &Ctx, after: After<'_>) -> Response {
    if !ctx.is_operator() {
        return Refused::new(
            StatusCode::FORBIDDEN,
            "Only a platform operator may see the platform's alerts.",
        )
        .into_response();
    }
    let app = &ctx.state.app;
    let alerts = match app.engine.platform_alerts(|p| {
        crate::webhooks::alerts_of(
            &p.feed,
            crate::webhooks::AlertParams {
                kind: None,
                limit: Some(50),
            },
        )
    }) {
        Ok(a) => a,
        Err(e) => return Refused::from(e).into_response(),
    };
    let view = View {
        base: "/console/platform".to_string(),
        admin: true,
        tz: chrono_tz::UTC,
        platform: true,
        endpoints: app
            .engine
            .platform_alerts(|p| crate::webhooks::endpoints(&p.feed)),
        deliveries: crate::platform_webhooks::log(app, |_| true),
        alerts,
    };
    respond(ctx, &view, after, None, Section::PlatformAlerts)
}

fn respond(
    ctx: &Ctx,
    view: &View,
    after: After<'_>,
    nav: Option<&layout::TenantNav>,
    section: Section,
) -> Response {
    let (tz, admin, base) = (view.tz, view.admin, view.base.as_str());
    let field = |name: &str| {
        after
            .error
            .filter(|e| e.field.as_deref() == Some(name))
            .map(|e| e.message.as_str())
    };
    let typed = |name: &str| {
        after
            .typed
            .and_then(|t| t.get(name))
            .unwrap_or("")
            .to_string()
    };
    let body = html! {
        h1 { (if view.platform { "Platform webhooks and alerts" } else { "Webhooks and alerts" }) }
        @if view.platform {
            p { "Every tenant's alerts reach these endpoints, each naming its tenant (" code { "tenantId" } "), with the platform's own: a tenant's or the platform's endpoint disabled after failing deliveries. Times are UTC." }
        }
        @if let Some(secret) = after.secret {
            div.notice role="status" {
                p { "The endpoint was added. Its signing secret, shown this once:" }
                p { code.secret { (secret) } }
                p { "Verify each delivery's " code { "webhook-signature" } " with it (any Standard Webhooks library does)." }
            }
        }
        section aria-labelledby="ep-h" {
            h2 #ep-h { "Endpoints" }
            @if view.endpoints.is_empty() {
                p { "No endpoints yet." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Endpoints table (scrolls sideways on a narrow screen)" {
                    table.endpoints {
                        caption.visually-hidden { "Webhook endpoints" }
                        thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Status" } th scope="col" { "Secret" } } }
                        tbody {
                            @for e in &view.endpoints {
                                tr data-endpoint=(e.id) {
                                    th scope="row" { code { (e.url) } @if !e.description.is_empty() { br; small { (e.description) } } }
                                    td { @if e.events.is_empty() { "all" } @else { (e.events.join(", ")) } }
                                    td { @if e.enabled { "enabled" } @else { "disabled" @if let Some(r) = &e.disabled_reason { ": " (r) } } }
                                    td { "…" (e.secret_last4) }
                                }
                            }
                        }
                    }
                }
            }
            @if admin {
                @if let Some(e) = after.error.filter(|e| !matches!(e.field.as_deref(), Some("url" | "events" | "description"))) {
                    p.error role="alert" { (e.message) }
                }
                form.create method="post" action=(format!("{base}/webhooks")) novalidate {
                    (csrf(&ctx.csrf))
                    div.field {
                        label for="hook-url" { "URL" }
                        input #hook-url type="url" name="url" value=(typed("url"))
                            aria-invalid=[field("url").map(|_| "true")] aria-describedby=[field("url").map(|_| "hook-url-error")];
                        (field_error("hook-url", field("url")))
                    }
                    div.field {
                        label for="hook-events" { "Events (comma-separated; empty: all)" }
                        input #hook-events type="text" name="events" value=(typed("events"))
                            aria-invalid=[field("events").map(|_| "true")] aria-describedby=[field("events").map(|_| "hook-events-error")];
                        (field_error("hook-events", field("events")))
                    }
                    div.field {
                        label for="hook-description" { "Description" }
                        input #hook-description type="text" name="description" value=(typed("description"));
                    }
                    button type="submit" { "Add endpoint" }
                }
            }
        }
        section aria-labelledby="dl-h" {
            h2 #dl-h { "Deliveries" }
            @if view.deliveries.is_empty() {
                p { "Nothing delivered yet." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Deliveries table (scrolls sideways on a narrow screen)" {
                    table.deliveries {
                        caption.visually-hidden { "Delivery log, newest first" }
                        thead { tr {
                            th scope="col" { "Message" } th scope="col" { "Type" } th scope="col" { "State" }
                            th scope="col" { "Tries" } th scope="col" { "Last answer" } th scope="col" { "Next attempt" }
                            @if admin { th scope="col" { "Replay" } }
                        } }
                        tbody {
                            @for d in &view.deliveries {
                                tr data-delivery=(d.id) data-state=(d.state) {
                                    th scope="row" { code { (d.webhook_id) } }
                                    td { (d.kind.as_deref().unwrap_or("")) }
                                    td.state { (d.state) }
                                    td { (d.tries) }
                                    td { @if let Some(a) = d.attempts.last() {
                                        (a.status.map(|s| s.to_string()).or(a.error.clone()).unwrap_or_default()) " in " (a.latency_ms) " ms"
                                    } @else { "—" } }
                                    td { @if let Some(n) = &d.next_attempt_at { (local_time(n, tz)) } @else { "—" } }
                                    @if admin {
                                        td { @if d.state != "pending" {
                                            form.inline method="post" action=(format!("{base}/deliveries/{}/retry", d.id)) {
                                                (csrf(&ctx.csrf))
                                                button type="submit" { "Replay" span.visually-hidden { " delivery " (d.id) } }
                                            }
                                        } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="al-h" {
            h2 #al-h { "Alerts" }
            @if view.alerts.is_empty() {
                p { "No alerts yet." }
            } @else {
                ul.alerts {
                    @for a in &view.alerts {
                        li data-type=(a.kind) {
                            strong { (a.kind) } " · " (local_time(&a.at, tz))
                            @if view.platform { @if let Some(t) = a.data.get("tenantId").and_then(|t| t.as_str()) {
                                " · " a href=(format!("/console/tenants/{t}")) { "tenant " (t) }
                            } }
                            @if let Some(q) = a.data.get("quota").and_then(|q| q.as_str()) { " · " (q) }
                            @if let Some(t) = a.data.get("threshold").and_then(|t| t.as_u64()) { " · " (t) " %" }
                        }
                    }
                }
            }
        }
    };
    let status = after
        .error
        .map(|e| {
            e.status
                .or_else(|| StatusCode::from_u16(e.code.http_status()).ok())
                .unwrap_or(StatusCode::BAD_REQUEST)
        })
        .unwrap_or(if after.secret.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        });
    let title = if view.platform {
        "Platform webhooks and alerts"
    } else {
        "Webhooks and alerts"
    };
    let page = layout::page(ctx, title, nav, section, body);
    (status, page).into_response()
}

pub async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    render(&ctx, &id, After::default()).await
}

async fn allowed(ctx: &Ctx, id: &str, action: &str) -> Result<(), Response> {
    let (_, can) = read(ctx, id).await.map_err(IntoResponse::into_response)?;
    if can.at_least(Role::Admin) {
        return Ok(());
    }
    let e = ApiError::new(
        ErrorCode::PermissionDenied,
        "changing webhooks needs the admin role",
    );
    Err(ctx
        .refused(id.parse().ok(), action, e)
        .await
        .into_response())
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
    if let Err(r) = allowed(&ctx, &id, "add a webhook endpoint").await {
        return r;
    }
    let body = endpoint_body(&fields);
    let result = crate::webhooks::create(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await;
    match result {
        Ok(created) => {
            let secret = created.1.secret;
            render(
                &ctx,
                &id,
                After {
                    secret: Some(&secret),
                    ..After::default()
                },
            )
            .await
        }
        Err(e) => {
            render(
                &ctx,
                &id,
                After {
                    error: Some(&e),
                    typed: Some(&fields),
                    ..After::default()
                },
            )
            .await
        }
    }
}

pub async fn replay(
    ctx: Ctx,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    if let Err(r) = allowed(&ctx, &id, "replay a webhook delivery").await {
        return r;
    }
    let result = crate::webhooks::retry(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), delivery)),
    )
    .await;
    match result {
        Ok(_) => Redirect::to(&format!("/console/tenants/{id}/webhooks")).into_response(),
        Err(e) => {
            render(
                &ctx,
                &id,
                After {
                    error: Some(&e),
                    ..After::default()
                },
            )
            .await
        }
    }
}

/// The JSON an endpoint form stands for (events comma-separated).
fn endpoint_body(fields: &super::guard::Fields) -> serde_json::Value {
    let events: Vec<String> = fields
        .get("events")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    serde_json::json!({
        "url": fields.text("url").unwrap_or_default(),
        "events": events,
        "description": fields.text("description"),
    })
}

pub async fn platform_page(ctx: Ctx) -> Response {
    render_platform(&ctx, After::default()).await
}

pub async fn platform_add(ctx: Ctx, Form(form): Form<Vec<(String, String)>>) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let result = crate::platform_webhooks::create(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        JsonBody::json(&endpoint_body(&fields)),
    )
    .await;
    match result {
        Ok(created) => {
            let secret = created.1.secret;
            let after = After {
                secret: Some(&secret),
                ..After::default()
            };
            render_platform(&ctx, after).await
        }
        Err(e) => {
            let after = After {
                error: Some(&e),
                typed: Some(&fields),
                ..After::default()
            };
            render_platform(&ctx, after).await
        }
    }
}

pub async fn platform_replay(
    ctx: Ctx,
    Path(delivery): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    let result = crate::platform_webhooks::retry(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(delivery),
    )
    .await;
    match result {
        Ok(_) => Redirect::to("/console/platform/webhooks").into_response(),
        Err(e) => {
            let after = After {
                error: Some(&e),
                ..After::default()
            };
            render_platform(&ctx, after).await
        }
    }
}
