//! Operators' list of every tenant: search, filters, sorting, paging,
//! counts per tier; and creating a tenant.
use super::forms::encode;
use super::guard::{Ctx, Fields, Refused};
use super::layout::{self, Section};
use super::widgets::{csrf, field_error, local_ms};
use crate::envelope::ApiError;
use crate::extract::ApiJson;
use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use quotad_engine::model::{Tenant, TenantStatus, Tier};
use serde::Deserialize;

const PAGE: usize = 25;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    trial: String,
    #[serde(default)]
    sort: String,
    page: Option<usize>,
}

const SORTS: [(&str, &str); 6] = [
    ("name", "Name (A–Z)"),
    ("-name", "Name (Z–A)"),
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("tier", "Tier"),
    ("status", "Status"),
];

const STATUSES: [TenantStatus; 4] = [
    TenantStatus::Active,
    TenantStatus::Trial,
    TenantStatus::Suspended,
    TenantStatus::Deleted,
];

fn matches(t: &Tenant, q: &ListQuery) -> bool {
    let needle = q.q.trim().to_lowercase();
    let found = needle.is_empty()
        || t.name.to_lowercase().contains(&needle)
        || t.slug.contains(&needle)
        || t.id.to_string().contains(&needle)
        || t.id.simple().to_string().contains(&needle);
    let tier = q.tier.is_empty() || t.tier.as_str() == q.tier;
    let status = q.status.is_empty() || t.status.as_str() == q.status;
    let trial = match q.trial.as_str() {
        "yes" => t.status == TenantStatus::Trial,
        "no" => t.status != TenantStatus::Trial,
        _ => true,
    };
    found && tier && status && trial
}

fn sort(list: &mut [Tenant], how: &str) {
    match how {
        "-name" => list.sort_by_key(|t| std::cmp::Reverse(t.name.to_lowercase())),
        "-created" => list.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms)),
        "created" => list.sort_by_key(|t| t.created_at_ms),
        "tier" => list.sort_by(|a, b| a.tier.cmp(&b.tier).then_with(|| a.name.cmp(&b.name))),
        "status" => list.sort_by(|a, b| {
            a.status
                .as_str()
                .cmp(b.status.as_str())
                .then_with(|| a.name.cmp(&b.name))
        }),
        _ => list.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.slug.cmp(&b.slug))
        }),
    }
}

fn page_link(q: &ListQuery, page: usize) -> String {
    format!(
        "/console/tenants?q={}&tier={}&status={}&trial={}&sort={}&page={page}",
        encode(&q.q),
        encode(&q.tier),
        encode(&q.status),
        encode(&q.trial),
        encode(&q.sort)
    )
}

fn filters(q: &ListQuery) -> Markup {
    html! {
        form.filters method="get" action="/console/tenants" role="search" {
            div.field {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(q.q) placeholder="name, slug or id";
            }
            div.field {
                label for="f-tier" { "Tier" }
                select #f-tier name="tier" {
                    option value="" { "Any" }
                    @for t in Tier::ALL {
                        option value=(t.as_str()) selected[q.tier == t.as_str()] { (t.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in STATUSES {
                        option value=(s.as_str()) selected[q.status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-trial" { "Trial" }
                select #f-trial name="trial" {
                    option value="" { "Any" }
                    option value="yes" selected[q.trial == "yes"] { "On trial" }
                    option value="no" selected[q.trial == "no"] { "Not on trial" }
                }
            }
            div.field {
                label for="f-sort" { "Sort by" }
                select #f-sort name="sort" {
                    @for (value, label) in SORTS {
                        option value=(value) selected[q.sort == value] { (label) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
    }
}

/// The create form, with what was typed and the error, if any.
fn create_form(ctx: &Ctx, f: Option<&Fields>, error: Option<&ApiError>) -> Markup {
    let v = |name: &str| f.and_then(|f| f.get(name)).unwrap_or("").to_string();
    let on = |field: &str| {
        error
            .filter(|e| e.field.as_deref() == Some(field))
            .map(|e| e.message.as_str())
    };
    let general = error.filter(|e| {
        !["name", "slug", "tier", "ownerUserId", "trialDays"]
            .iter()
            .any(|f| e.field.as_deref() == Some(f))
    });
    let input = |id: &str, label: &str, kind: &str| {
        let error = on(id);
        html! {
            div.field {
                label for=(format!("new-{id}")) { (label) }
                input id=(format!("new-{id}")) type=(kind) name=(id) value=(v(id))
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[error.map(|_| format!("new-{id}-error"))];
                (field_error(&format!("new-{id}"), error))
            }
        }
    };
    html! {
        section aria-labelledby="create-h" {
            h2 #create-h { "Create a tenant" }
            @if let Some(e) = general {
                p.error role="alert" { (e.message) }
            }
            form.create method="post" action="/console/tenants" novalidate {
                (csrf(&ctx.csrf))
                (input("name", "Name", "text"))
                (input("slug", "Slug", "text"))
                div.field {
                    label for="new-tier" { "Tier" }
                    select #new-tier name="tier" {
                        @for t in Tier::ALL {
                            option value=(t.as_str()) selected[v("tier") == t.as_str()] { (t.as_str()) }
                        }
                    }
                    (field_error("new-tier", on("tier")))
                }
                (input("ownerUserId", "Owner (user id)", "text"))
                (input("trialDays", "Trial days (optional)", "text"))
                button type="submit" { "Create tenant" }
            }
        }
    }
}

async fn render(ctx: &Ctx, q: &ListQuery, form: Option<(&Fields, &ApiError)>) -> Response {
    if !ctx.is_operator() {
        return Refused::new(
            StatusCode::FORBIDDEN,
            "Only a platform operator may list every tenant.",
        )
        .into_response();
    }
    let mut all = match ctx.state.app.engine.tenant_directory().await {
        Ok(t) => t,
        Err(e) => return Refused::from(ApiError::from(e)).into_response(),
    };
    let per_tier: Vec<(Tier, usize)> = Tier::ALL
        .iter()
        .map(|tier| (*tier, all.iter().filter(|t| t.tier == *tier).count()))
        .collect();
    let total = all.len();
    all.retain(|t| matches(t, q));
    sort(&mut all, &q.sort);
    let pages = all.len().div_ceil(PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let shown = &all[(page - 1) * PAGE..(page * PAGE).min(all.len())];
    let body = html! {
        h1 { "Tenants" }
        section aria-labelledby="tiers-h" {
            h2 #tiers-h .visually-hidden { "Tenants per tier" }
            ul.counts {
                li { span.count { (total) } " in all" }
                @for (tier, n) in &per_tier {
                    li { span.count { (n) } " " (tier.as_str()) }
                }
            }
        }
        (filters(q))
        p #result-count role="status" { (all.len()) " matching · page " (page) " of " (pages) }
        div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
            table.tenants {
                caption.visually-hidden { "Tenants" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Slug" } th scope="col" { "Tier" } th scope="col" { "Status" } th scope="col" { "Trial ends" } th scope="col" { "Created" } } }
                tbody {
                    @for t in shown {
                        tr {
                            th scope="row" { a href=(format!("/console/tenants/{}", t.id)) { (t.name) } }
                            td { code { (t.slug) } }
                            td { (t.tier.as_str()) }
                            td { span class={"status " (t.status.as_str().to_lowercase())} { (t.status.as_str()) } }
                            td { (t.trial_ends_at_ms.filter(|_| t.status == TenantStatus::Trial).map(|ms| local_ms(ms, t.timezone)).unwrap_or_default()) }
                            td { (local_ms(t.created_at_ms, t.timezone)) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(page_link(q, page - 1)) rel="prev" { "Previous page" } }
            @if page < pages { a href=(page_link(q, page + 1)) rel="next" { "Next page" } }
        }
        (create_form(ctx, form.map(|f| f.0), form.map(|f| f.1)))
    };
    let status = if form.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        layout::page(ctx, "Tenants", None, Section::Tenants, body),
    )
        .into_response()
}

pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    render(&ctx, &q, None).await
}

pub async fn create(ctx: Ctx, Form(form): Form<Vec<(String, String)>>) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let mut body = serde_json::Map::new();
    for name in ["name", "slug", "tier", "ownerUserId"] {
        if let Some(v) = fields.text(name) {
            body.insert(name.into(), v.into());
        }
    }
    if !body.contains_key("name") {
        body.insert("name".into(), "".into());
    }
    if !body.contains_key("slug") {
        body.insert("slug".into(), "".into());
    }
    if let Some(days) = fields.text("trialDays") {
        body.insert("trialDays".into(), super::forms::number(&days));
    }
    let result = match ApiJson::of(&serde_json::Value::Object(body)) {
        Ok(json) => {
            crate::tenants::create(
                axum::extract::State(ctx.state.app.clone()),
                ctx.principal.clone(),
                json,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            Redirect::to(&format!("/console/tenants/{}?done=created", created.1.id)).into_response()
        }
        Err(e) if e.code == quotad_engine::error_code::ErrorCode::PermissionDenied => {
            ctx.refused(None, "create tenant", e).await.into_response()
        }
        Err(e) => render(&ctx, &ListQuery::default(), Some((&fields, &e))).await,
    }
}
