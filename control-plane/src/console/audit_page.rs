//! A tenant's audit chain: events with filters and paging, each with its
//! before and after, and whether the whole chain verifies.
use super::forms::encode;
use super::guard::Ctx;
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::local_time;
use crate::extract::{ApiPath, RawQuery};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    after: Option<u64>,
}

fn pretty(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
        .unwrap_or_else(|| "—".into())
}

pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<AuditQuery>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let tz = state.tenant.timezone;
    let mut params = vec![("limit", PAGE.to_string())];
    if !q.action.trim().is_empty() {
        params.push(("action", q.action.trim().to_string()));
    }
    if !q.actor.trim().is_empty() {
        params.push(("actor", q.actor.trim().to_string()));
    }
    if let Some(after) = q.after {
        params.push(("after", after.to_string()));
    }
    let listed = crate::audit::list(
        State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath(id.clone()),
        RawQuery::of(&params),
    )
    .await;
    let audit = match listed {
        Ok(page) => page.1,
        Err(e) => {
            return ctx
                .refused(id.parse().ok(), "read audit", e)
                .await
                .into_response();
        }
    };
    let next = audit.next_after.map(|after| {
        format!(
            "/console/tenants/{id}/audit?action={}&actor={}&after={after}",
            encode(&q.action),
            encode(&q.actor)
        )
    });
    let body = html! {
        h1 { "Audit" }
        @if audit.chain.valid {
            p.badge.valid #chain role="status" { "✓ Chain valid: all " (audit.total) " events verify" }
        } @else {
            p.badge.broken #chain role="status" {
                "✗ Chain broken at event " (audit.chain.broken_at.unwrap_or(0))
                @if let Some(r) = &audit.chain.reason { ": " (r) }
            }
        }
        form.filters method="get" action=(format!("/console/tenants/{id}/audit")) {
            div.field {
                label for="action" { "Action" }
                input #action type="text" name="action" value=(q.action) placeholder="e.g. quota.updated";
            }
            div.field {
                label for="actor" { "Actor" }
                input #actor type="text" name="actor" value=(q.actor);
            }
            button type="submit" { "Filter" }
        }
        @if audit.events.is_empty() {
            p { "No events match." }
        }
        ol.events {
            @for e in &audit.events {
                li.event data-seq=(e.seq) data-action=(e.action) {
                    div.event-head {
                        span.seq { "#" (e.seq) }
                        " " strong.action { (e.action) }
                        " on " code { (e.target) }
                        " by " span.actor { (e.actor) }
                        " at " time datetime=(e.at) { (local_time(&e.at, tz)) }
                    }
                    details {
                        summary { "Before and after" span.visually-hidden { " of event " (e.seq) } }
                        div.diff {
                            div { h3 { "Before" } pre.before { (pretty(&e.before)) } }
                            div { h3 { "After" } pre.after { (pretty(&e.after)) } }
                        }
                        p.hash { "Hash " code { (e.hash) } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if q.after.is_some() {
                a href=(format!("/console/tenants/{id}/audit?action={}&actor={}", encode(&q.action), encode(&q.actor))) { "First page" }
            }
            @if let Some(n) = next { a href=(n) rel="next" { "Next page" } }
        }
    };
    let page = layout::page(
        &ctx,
        "Audit",
        Some(&nav(&state, &can, &id)),
        Section::Audit,
        body,
    );
    (StatusCode::OK, page).into_response()
}
