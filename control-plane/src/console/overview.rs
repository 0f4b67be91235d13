//! A tenant's overview: its standing, its tier, and its quotas as bars
//! that refresh themselves.
use super::guard::{Ctx, Refused};
use super::layout::{self, Section, TenantNav};
use super::widgets::{csrf, local_ms, local_time, name_of, quota_bar, thousands};
use crate::auth::{Need, access};
use crate::dto::{QuotaDto, TenantDto};
use crate::extract::{ApiPath, JsonBody};
use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use chrono_tz::Tz;
use maud::{Markup, html};
use quotad_engine::model::{Role, TenantStatus, Tier};
use quotad_engine::quota::TenantState;
use serde::Deserialize;

/// How often a quota section asks for fresh figures.
const REFRESH: &str = "every 2s";

/// What the caller's role lets the page offer.
pub struct Can {
    pub role: Option<Role>,
}

impl Can {
    /// Operators (`None`) may do everything; others per their role.
    pub fn at_least(&self, min: Role) -> bool {
        self.role.is_none_or(|r| r >= min)
    }
}

/// Read the tenant as the caller (the REST rules: a viewer and up).
pub async fn read(ctx: &Ctx, id: &str) -> Result<(TenantState, Can), Refused> {
    let (_, state, role) = access(&ctx.state.app, &ctx.principal, id, Need::Role(Role::Viewer))
        .await
        .map_err(Refused::from)?;
    Ok((state, Can { role }))
}

pub fn nav<'a>(state: &'a TenantState, can: &Can, id: &'a str) -> TenantNav<'a> {
    TenantNav {
        id,
        name: &state.tenant.name,
        role: can.role,
        state,
    }
}

fn quotas_of(state: &TenantState, now: i64) -> Vec<QuotaDto> {
    let tz = state.tenant.timezone;
    state
        .quotas
        .iter()
        .map(|(name, q)| QuotaDto::new(name, q, tz, now))
        .collect()
}

/// The quota section; it asks for itself again every few seconds.
pub fn quotas_section(id: &str, quotas: &[QuotaDto], tz: Tz, can: &Can) -> Markup {
    html! {
        section #quotas aria-labelledby="quotas-h"
            hx-get=(format!("/console/tenants/{id}/quotas")) hx-trigger=(REFRESH) hx-swap="outerHTML" {
            h2 #quotas-h { "Quotas" }
            @if quotas.is_empty() {
                p { "This tenant has no quotas." }
            }
            ul.quotas {
                @for q in quotas {
                    li.quota data-quota=(q.quota_type) {
                        div.quota-head {
                            h3 { (q.quota_type) }
                            @if can.at_least(Role::Admin) {
                                a.edit href=(format!("/console/tenants/{id}/quotas/{}", q.quota_type)) {
                                    "Edit " span.visually-hidden { (q.quota_type) }
                                }
                            }
                        }
                        (quota_bar(q))
                        p.figures {
                            span.usage data-usage=(q.usage) { (thousands(q.usage)) }
                            " of "
                            @match q.limit {
                                Some(l) => span.limit { (thousands(l)) },
                                None => span.limit { "unlimited" },
                            }
                            @if let Some(p) = q.percentage {
                                " (" span.percent { (format!("{p:.1}")) "%" } ")"
                            }
                        }
                        dl.facts {
                            dt { "Remaining" }
                            dd.remaining { (q.remaining.map(thousands).unwrap_or_else(|| "unlimited".into())) }
                            dt { "Resets" }
                            dd { (q.reset_at.as_deref().map(|r| local_time(r, tz)).unwrap_or_else(|| "never".into())) }
                            dt { "When over" }
                            dd { (name_of(&q.action)) }
                            dt { "Soft limit" }
                            dd { (q.soft_limit.map(thousands).unwrap_or_else(|| "none".into())) }
                            dt { "Kind" }
                            dd { (name_of(&q.kind)) ", " (name_of(&q.period)) }
                            @for w in &q.windows {
                                dt { "Also" }
                                dd.window { (w.limit.map(thousands).unwrap_or_default()) " per " (name_of(&w.period)) ": " (thousands(w.usage)) " used" }
                            }
                            @if q.grant_balance > 0 {
                                dt { "Credit grants" }
                                dd.grant-balance { (thousands(q.grant_balance)) " left" }
                            }
                            @if q.shadow {
                                dt { "Shadow mode" }
                                dd { "on: refusals are reported, not enforced" }
                            }
                        }
                        a.levels href=(format!("/console/tenants/{id}/quotas/{}/levels", q.quota_type)) {
                            "Windows, grants and scopes " span.visually-hidden { "of " (q.quota_type) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "tier" => Some("The tier was changed."),
        "status" => Some("The status was changed."),
        "quota" => Some("The quota was saved."),
        "created" => Some("The tenant was created."),
        _ => None,
    }
}

pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let now = ctx.state.app.engine.now_ms();
    let t = TenantDto::from(&state);
    let tz = state.tenant.timezone;
    let quotas = quotas_of(&state, now);
    let trial_days = state
        .tenant
        .trial_ends_at_ms
        .filter(|_| state.tenant.status == TenantStatus::Trial)
        .map(|end| ((end - now).max(0) + 86_399_999) / 86_400_000);
    let body = html! {
        @if let Some(n) = notice(q.done.as_deref()) {
            p.notice role="status" { (n) }
        }
        h1 { (t.name) }
        dl.summary {
            dt { "Status" } dd { span class={"status " (t.status.to_lowercase())} { (t.status) } }
            dt { "Tier" } dd { (t.tier) }
            @if let Some(days) = trial_days {
                dt { "Trial" } dd { (days) " days left (ends " (local_ms(state.tenant.trial_ends_at_ms.unwrap_or(0), tz)) ")" }
            }
            dt { "Slug" } dd { code { (t.slug) } }
            dt { "Id" } dd { code { (t.id) } }
            dt { "Timezone" } dd { (t.timezone) }
            dt { "Created" } dd { (local_time(&t.created_at, tz)) }
        }
        div.actions {
            @if can.at_least(Role::Owner) {
                form.inline method="post" action=(format!("/console/tenants/{id}/tier")) {
                    (csrf(&ctx.csrf))
                    label for="tier" { "Tier" }
                    select #tier name="tier" {
                        @for tier in Tier::ALL {
                            option value=(tier.as_str()) selected[tier == state.tenant.tier] { (tier.as_str()) }
                        }
                    }
                    button type="submit" { "Change tier" }
                }
            }
            @if ctx.is_operator() {
                form.inline method="post" action=(format!("/console/tenants/{id}/status")) {
                    (csrf(&ctx.csrf))
                    @if state.tenant.status == TenantStatus::Suspended {
                        input type="hidden" name="status" value="ACTIVE";
                        button type="submit" { "Reactivate" }
                    } @else if state.tenant.status != TenantStatus::Deleted {
                        input type="hidden" name="status" value="SUSPENDED";
                        button.danger type="submit" { "Suspend" }
                    }
                }
            }
        }
        (quotas_section(&id, &quotas, tz, &can))
    };
    layout::page(
        &ctx,
        &t.name,
        Some(&nav(&state, &can, &id)),
        Section::Overview,
        body,
    )
    .into_response()
}

/// The quota section alone: what the page's bars refresh from.
pub async fn quotas_fragment(ctx: Ctx, Path(id): Path<String>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let now = ctx.state.app.engine.now_ms();
    quotas_section(&id, &quotas_of(&state, now), state.tenant.timezone, &can).into_response()
}

fn tenant_id(id: &str) -> Option<quotad_engine::model::TenantId> {
    id.parse().ok()
}

pub async fn change_tier(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = serde_json::json!({ "tier": fields.get("tier").unwrap_or("") });
    match crate::tenants::upgrade(
        axum::extract::State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/tenants/{id}?done=tier")).into_response(),
        Err(e) => ctx
            .refused(tenant_id(&id), "change tier", e)
            .await
            .into_response(),
    }
}

pub async fn change_status(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = serde_json::json!({ "status": fields.get("status").unwrap_or("") });
    match crate::tenants::update(
        axum::extract::State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        JsonBody::json(&body),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/tenants/{id}?done=status")).into_response(),
        Err(e) => ctx
            .refused(tenant_id(&id), "change status", e)
            .await
            .into_response(),
    }
}
