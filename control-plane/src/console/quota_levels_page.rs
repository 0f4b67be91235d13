//! One quota beyond its limit: its further windows, rollover and shadow
//! mode, its credit grants with their balances, and its live scope values
//! (highest usage first, a page at a time) — what `GET …/quotas/{type}`
//! and `GET …/quotas/{type}/scopes` answer, for people.
use super::guard::Ctx;
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{local_time, name_of, thousands};
use crate::dto::QuotaDto;
use crate::extract::{ApiPath, RawQuery};
use crate::quota_rules_dto::{LevelDto, ScopesPageDto};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde::Deserialize;

const PAGE: u64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct LevelsQuery {
    offset: Option<u64>,
}

fn level_row(label: &str, l: &LevelDto, tz: Tz) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            td { (name_of(&l.kind)) ", " (name_of(&l.period)) }
            td.limit { (l.limit.map(thousands).unwrap_or_else(|| "unlimited".into())) }
            td.usage { (thousands(l.usage)) }
            td.remaining { (l.remaining.map(thousands).unwrap_or_else(|| "—".into())) }
            td { (l.reset_at.as_deref().map(|r| local_time(r, tz)).unwrap_or_else(|| "never".into())) }
            td { (name_of(&l.action)) }
        }
    }
}

fn level_head(first: &str) -> Markup {
    html! {
        thead { tr {
            th scope="col" { (first) }
            th scope="col" { "Kind" }
            th scope="col" { "Limit" }
            th scope="col" { "Usage" }
            th scope="col" { "Remaining" }
            th scope="col" { "Resets" }
            th scope="col" { "When over" }
        } }
    }
}

fn body(id: &str, q: &QuotaDto, scopes: &ScopesPageDto, tz: Tz) -> Markup {
    let on_off = |b: bool| if b { "on" } else { "off" };
    let next = scopes.offset + PAGE;
    html! {
        h1 { "Quota " code { (q.quota_type) } }
        p { a href=(format!("/console/tenants/{id}")) { "Back to the overview" } }
        section #levels aria-labelledby="levels-h" {
            h2 #levels-h { "Windows" }
            p.help { "A request is admitted only if the quota and every further window admit it." }
            div.table-wrap tabindex="0" role="region" aria-label="Windows (scrolls sideways on a narrow screen)" { table.levels {
                (level_head("Window"))
                tbody {
                    tr {
                        th scope="row" { "the quota" }
                        td { (name_of(&q.kind)) ", " (name_of(&q.period)) }
                        td.limit { (q.limit.map(thousands).unwrap_or_else(|| "unlimited".into())) }
                        td.usage { (thousands(q.usage)) }
                        td.remaining { (q.remaining.map(thousands).unwrap_or_else(|| "—".into())) }
                        td { (q.reset_at.as_deref().map(|r| local_time(r, tz)).unwrap_or_else(|| "never".into())) }
                        td { (name_of(&q.action)) }
                    }
                    @for (i, w) in q.windows.iter().enumerate() {
                        (level_row(&format!("window {}", i + 1), w, tz))
                    }
                }
            } }
            dl.facts {
                dt { "Rollover" }
                dd #rollover { (on_off(q.rollover))
                    @if q.rollover { " (at most " (q.rollover_max.or(q.limit).map(thousands).unwrap_or_else(|| "unlimited".into())) ")" } }
                dt { "Carried into this period" }
                dd #carried { (thousands(q.carried_over)) }
                dt { "Overage carried at reset" }
                dd { (on_off(q.preserve_overage)) }
                dt { "Shadow mode" }
                dd #shadow { (on_off(q.shadow)) }
            }
        }
        section #grants aria-labelledby="grants-h" {
            h2 #grants-h { "Credit grants" }
            p { "Balance: " span #grant-balance { (thousands(q.grant_balance)) } "; used from grants this period: " (thousands(q.used_from_grants)) }
            @if q.grants.is_empty() {
                p { "No grants." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-label="Credit grants (scrolls sideways on a narrow screen)" { table.grants {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { "Amount" }
                        th scope="col" { "Used" }
                        th scope="col" { "Remaining" }
                        th scope="col" { "Status" }
                        th scope="col" { "Priority" }
                        th scope="col" { "Effective" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for g in &q.grants {
                            tr data-grant=(g.id) {
                                td { (g.id) }
                                td { (thousands(g.amount)) }
                                td { (thousands(g.used)) }
                                td.remaining { (thousands(g.remaining)) }
                                td.status { (g.status) }
                                td { (g.priority) }
                                td { (local_time(&g.effective_at, tz)) }
                                td { (g.expires_at.as_deref().map(|e| local_time(e, tz)).unwrap_or_else(|| "never".into())) }
                                td { (g.reason) }
                            }
                        }
                    }
                } }
            }
        }
        section #scopes aria-labelledby="scopes-h" {
            h2 #scopes-h { "Scopes" }
            @match &q.scopes {
                None => p { "This quota has no scope rules: requests that name a scope are limited by the quota alone." },
                Some(rules) => {
                    div.table-wrap tabindex="0" role="region" aria-label="Scope rules (scrolls sideways on a narrow screen)" { table.rules {
                        (level_head("Rule"))
                        tbody {
                            @if let Some(d) = &rules.default {
                                tr { th scope="row" { "default" } td { (name_of(&d.period)) } td { (thousands(d.limit)) } td { "—" } td { "—" } td { "—" } td { (d.action.as_ref().map(name_of).unwrap_or_default()) } }
                            }
                            @for (pattern, r) in &rules.overrides {
                                tr { th scope="row" { code { (pattern) } } td { (name_of(&r.period)) } td { (thousands(r.limit)) } td { "—" } td { "—" } td { "—" } td { (r.action.as_ref().map(name_of).unwrap_or_default()) } }
                            }
                        }
                    } }
                    p #scopes-total { (thousands(scopes.total)) " live scope values" }
                    @if !scopes.items.is_empty() {
                        div.table-wrap tabindex="0" role="region" aria-label="Live scope values (scrolls sideways on a narrow screen)" { table.scope-values {
                            thead { tr {
                                th scope="col" { "Value" }
                                th scope="col" { "Rule" }
                                th scope="col" { "Usage" }
                                th scope="col" { "Limit" }
                                th scope="col" { "Remaining" }
                                th scope="col" { "Resets" }
                            } }
                            tbody {
                                @for s in &scopes.items {
                                    tr data-scope=(s.value) {
                                        th scope="row" { code { (s.value) } }
                                        td { (s.rule.as_deref().unwrap_or("none")) }
                                        @if let Some(l) = &s.level {
                                            td.usage { (thousands(l.usage)) }
                                            td { (l.limit.map(thousands).unwrap_or_else(|| "unlimited".into())) }
                                            td { (l.remaining.map(thousands).unwrap_or_else(|| "—".into())) }
                                            td { (l.reset_at.as_deref().map(|r| local_time(r, tz)).unwrap_or_else(|| "never".into())) }
                                        } @else {
                                            td { "—" } td { "—" } td { "—" } td { "—" }
                                        }
                                    }
                                }
                            }
                        } }
                        nav aria-label="Scope pages" {
                            @if scopes.offset > 0 {
                                a rel="prev" href=(format!("/console/tenants/{id}/quotas/{}/levels?offset={}", q.quota_type, scopes.offset.saturating_sub(PAGE))) { "Previous" }
                                " "
                            }
                            @if next < scopes.total {
                                a rel="next" href=(format!("/console/tenants/{id}/quotas/{}/levels?offset={next}", q.quota_type)) { "Next" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn page(
    ctx: Ctx,
    Path((id, quota)): Path<(String, String)>,
    Query(lq): Query<LevelsQuery>,
) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let app = State(ctx.state.app.clone());
    let refused = |e| ctx.refused(id.parse().ok(), "read quota", e);
    let q = match crate::quotas::get(
        app.clone(),
        ctx.principal.clone(),
        ApiPath((id.clone(), quota.clone())),
        RawQuery::of(&[]),
    )
    .await
    {
        Ok(q) => q.1,
        Err(e) => return refused(e).await.into_response(),
    };
    let offset = lq.offset.unwrap_or(0);
    let scopes = match crate::quota_levels::scopes(
        app,
        ctx.principal.clone(),
        ApiPath((id.clone(), quota.clone())),
        RawQuery::of(&[("offset", offset.to_string()), ("limit", PAGE.to_string())]),
    )
    .await
    {
        Ok(s) => s.1,
        Err(e) => return refused(e).await.into_response(),
    };
    let tz = state.tenant.timezone;
    layout::page(
        &ctx,
        &format!("Quota {quota}"),
        Some(&nav(&state, &can, &id)),
        Section::Overview,
        body(&id, &q, &scopes, tz),
    )
    .into_response()
}
