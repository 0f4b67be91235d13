//! Cross-tenant sharing from one tenant's side: the marketplace (search,
//! ask for access), its own policies, requests to approve or deny, grants
//! either way, and the month's statement (with CSV export), all through
//! the sharing handlers acting for the page's tenant.
use super::forms::encode;
use super::guard::{Ctx, Refused};
use super::layout::{self, Section};
use super::overview::{Can, nav, read};
use super::widgets::{csrf, local_time};
use crate::auth::Principal;
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody, RawQuery};
use crate::sharing_dto::{GrantDto, PolicyDto, PricingDto};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono_tz::Tz;
use maud::{Markup, html};
use quotad_engine::model::Role;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct SharingQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    side: String,
    done: Option<String>,
}

/// The caller acting for the page's tenant (as `X-Tenant-ID` would say).
fn acting(ctx: &Ctx, id: &str) -> Principal {
    let mut p = ctx.principal.clone();
    p.header_tenant = Some(id.to_string());
    p
}

fn price(p: &PricingDto) -> String {
    let amount = p
        .usage_price
        .as_ref()
        .or(p.subscription_price.as_ref())
        .and_then(|d| serde_json::to_string(d).ok());
    match (p.kind, amount, &p.currency) {
        ("free", _, _) => "free".into(),
        ("usage_based", Some(a), Some(c)) => format!(
            "{a} {c} per unit of {}",
            p.unit_quota.as_deref().unwrap_or("usage")
        ),
        ("subscription", Some(a), Some(c)) => format!("{a} {c} a month"),
        (kind, _, _) => kind.to_string(),
    }
}

fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "requested" => Some("Access was requested."),
        "approved" => Some("The request was approved: the grant is active."),
        "denied" => Some("The request was denied."),
        "revoked" => Some("The grant was revoked."),
        "withdrawn" => Some("The policy was withdrawn."),
        _ => None,
    }
}

fn policies_table(ctx: &Ctx, id: &str, items: &[PolicyDto], can: &Can, market: bool) -> Markup {
    html! {
        div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
            table.policies {
                thead { tr {
                    th scope="col" { "Resource" } th scope="col" { "Type" }
                    @if market { th scope="col" { "Provider" } } @else { th scope="col" { "Visibility" } }
                    th scope="col" { "Price" } th scope="col" { "Approval" } th scope="col" { "Consumers" }
                    @if can.at_least(Role::Admin) { th scope="col" { "Action" } }
                } }
                tbody {
                    @for p in items {
                        tr data-policy=(p.id) {
                            th scope="row" { code { (p.resource_id) } }
                            td { (p.resource_type) }
                            @if market { td { code { (short(&p.provider_tenant_id)) } } } @else { td { (p.visibility) } }
                            td { (price(&p.pricing)) }
                            td { (p.approval) }
                            td { (p.active_consumers) @if let Some(m) = p.max_consumers { " of " (m) } }
                            @if can.at_least(Role::Admin) {
                                td {
                                    @if market && p.provider_tenant_id.to_string() != id {
                                        form.inline method="post" action=(format!("/console/tenants/{id}/sharing/policies/{}/request", p.id)) {
                                            (csrf(&ctx.csrf))
                                            label for=(format!("why-{}", p.id)) .visually-hidden { "Justification for " (p.resource_id) }
                                            input id=(format!("why-{}", p.id)) type="text" name="justification" placeholder="justification";
                                            button type="submit" { "Request access" span.visually-hidden { " to " (p.resource_id) } }
                                        }
                                    } @else if !market {
                                        form.inline method="post" action=(format!("/console/tenants/{id}/sharing/policies/{}/withdraw", p.id)) {
                                            (csrf(&ctx.csrf))
                                            button.danger type="submit" { "Withdraw" span.visually-hidden { " " (p.resource_id) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn grants_table(
    ctx: &Ctx,
    id: &str,
    grants: &[GrantDto],
    tz: Tz,
    can: &Can,
    other: &str,
) -> Markup {
    html! {
        @if grants.is_empty() { p { "None." } } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                table.grants {
                    thead { tr {
                        th scope="col" { "Resource" } th scope="col" { (other) } th scope="col" { "Price" }
                        th scope="col" { "Status" } th scope="col" { "Since" }
                        @if can.at_least(Role::Admin) { th scope="col" { "Action" } }
                    } }
                    tbody {
                        @for g in grants {
                            tr data-grant=(g.id) {
                                th scope="row" { code { (g.resource_id) } }
                                td { code { (if other == "Provider" { short(&g.provider_tenant_id) } else { short(&g.consumer_tenant_id) }) } }
                                td { (price(&g.pricing)) }
                                td { (g.status) @if let Some(r) = &g.ended_reason { " (" (r) ")" } }
                                td { (local_time(&g.created_at, tz)) }
                                @if can.at_least(Role::Admin) {
                                    td {
                                        @if g.status == "active" {
                                            form.inline method="post" action=(format!("/console/tenants/{id}/sharing/grants/{}/revoke", g.id)) {
                                                (csrf(&ctx.csrf))
                                                button.danger type="submit" { "Revoke" span.visually-hidden { " " (g.resource_id) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The month's statement as JSON (the REST answer's `data`).
async fn statement(
    ctx: &Ctx,
    id: &str,
    period: &str,
    side: &str,
    csv: bool,
) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static(if csv { "text/csv" } else { "application/json" }),
    );
    let mut params = vec![("as", side.to_string())];
    if !period.is_empty() {
        params.push(("period", period.to_string()));
    }
    crate::statements::tenant(
        State(ctx.state.app.clone()),
        acting(ctx, id),
        headers,
        RawQuery::of(&params),
    )
    .await
}

pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<SharingQuery>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let tz = state.tenant.timezone;
    let app = || State(ctx.state.app.clone());
    let p = acting(&ctx, &id);
    let mut market_params = vec![("limit", "50".to_string())];
    if !q.q.trim().is_empty() {
        market_params.push(("q", q.q.trim().to_string()));
    }
    let market =
        match crate::marketplace::list(app(), p.clone(), RawQuery::of(&market_params)).await {
            Ok(m) => m.1.items,
            Err(e) => return Refused::from(e).into_response(),
        };
    let mine = match crate::sharing::list(
        app(),
        p.clone(),
        RawQuery::of(&[("mine", "true".into())]),
    )
    .await
    {
        Ok(m) => m.1,
        Err(e) => return Refused::from(e).into_response(),
    };
    let consumed =
        match crate::sharing::grants(app(), p.clone(), RawQuery::of(&[("as", "consumer".into())]))
            .await
        {
            Ok(g) => g.1,
            Err(e) => return Refused::from(e).into_response(),
        };
    let provided =
        match crate::sharing::grants(app(), p.clone(), RawQuery::of(&[("as", "provider".into())]))
            .await
        {
            Ok(g) => g.1,
            Err(e) => return Refused::from(e).into_response(),
        };
    let admin = can.at_least(Role::Admin);
    let (pending, statement_json) = if admin {
        let pending = crate::sharing::requests(
            app(),
            p.clone(),
            RawQuery::of(&[("as", "provider".into()), ("status", "pending".into())]),
        )
        .await
        .map(|r| r.1)
        .unwrap_or_default();
        let side = if q.side == "consumer" {
            "consumer"
        } else {
            "provider"
        };
        let json = match statement(&ctx, &id, q.period.trim(), side, false).await {
            Ok(resp) => match axum::body::to_bytes(resp.into_body(), 4 << 20).await {
                Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).ok(),
                Err(_) => None,
            },
            Err(e) => Some(serde_json::json!({"error": e.message})),
        };
        (pending, json)
    } else {
        (Vec::new(), None)
    };
    let side = if q.side == "consumer" {
        "consumer"
    } else {
        "provider"
    };
    let body = html! {
        @if let Some(n) = notice(q.done.as_deref()) { p.notice role="status" { (n) } }
        h1 { "Sharing" }
        section aria-labelledby="market-h" {
            h2 #market-h { "Marketplace" }
            form.filters method="get" action=(format!("/console/tenants/{id}/sharing")) role="search" {
                div.field {
                    label for="m-q" { "Search the marketplace" }
                    input #m-q type="search" name="q" value=(q.q) placeholder="resource, provider…";
                }
                button type="submit" { "Search" }
            }
            @if market.is_empty() { p { "No listed policy matches." } }
            @else { (policies_table(&ctx, &id, &market, &can, true)) }
        }
        section aria-labelledby="mine-h" {
            h2 #mine-h { "This tenant's policies" }
            @if mine.is_empty() { p { "None: publish one with " code { "POST /api/v1/sharing/policies" } "." } }
            @else { (policies_table(&ctx, &id, &mine, &can, false)) }
        }
        @if admin {
            section aria-labelledby="req-h" {
                h2 #req-h { "Requests to decide" }
                @if pending.is_empty() { p { "No pending request." } } @else {
                    ul.requests {
                        @for r in &pending {
                            li data-request=(r.id) {
                                p { "Tenant " code { (short(&r.consumer_tenant_id)) } " asks for policy " code { (short(&r.policy_id)) }
                                    " (" (r.permissions.join(", ")) ") on " (local_time(&r.requested_at, tz)) }
                                @if !r.justification.is_empty() { blockquote { (r.justification) } }
                                form.inline method="post" action=(format!("/console/tenants/{id}/sharing/requests/{}/decide", r.id)) {
                                    (csrf(&ctx.csrf))
                                    label for=(format!("reason-{}", r.id)) { "Note" }
                                    input id=(format!("reason-{}", r.id)) type="text" name="reason";
                                    button type="submit" name="decision" value="approve" { "Approve" }
                                    button.danger type="submit" name="decision" value="deny" { "Deny" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="grants-h" {
            h2 #grants-h { "Grants" }
            h3 { "Used by this tenant" }
            (grants_table(&ctx, &id, &consumed, tz, &can, "Provider"))
            h3 { "Given by this tenant" }
            (grants_table(&ctx, &id, &provided, tz, &can, "Consumer"))
        }
        @if let Some(st) = &statement_json {
            section aria-labelledby="st-h" {
                h2 #st-h { "Statement" }
                form.filters method="get" action=(format!("/console/tenants/{id}/sharing")) {
                    div.field {
                        label for="st-period" { "Month (YYYY-MM)" }
                        input #st-period type="text" name="period" value=(q.period) placeholder="this month";
                    }
                    div.field {
                        label for="st-side" { "As" }
                        select #st-side name="side" {
                            option value="provider" selected[side == "provider"] { "provider (earned)" }
                            option value="consumer" selected[side == "consumer"] { "consumer (spent)" }
                        }
                    }
                    button type="submit" { "Show" }
                }
                @if let Some(e) = st.get("error") {
                    p.error role="alert" { (e.as_str().unwrap_or("")) }
                } @else {
                    @let data = &st["data"];
                    p #statement-period { "Period " strong { (data["period"].as_str().unwrap_or("")) }
                        @if data["closed"].as_bool() == Some(true) { " (closed)" } @else { " (open)" } }
                    @let lines = data["lines"].as_array().cloned().unwrap_or_default();
                    @if lines.is_empty() { p { "No lines this month." } } @else {
                        div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                            table.statement {
                                thead { tr { th scope="col" { "Policy" } th scope="col" { "Consumer" } th scope="col" { "Kind" } th scope="col" { "Units" } th scope="col" { "Gross" } th scope="col" { "Platform fee" } th scope="col" { "Provider net" } th scope="col" { "Currency" } } }
                                tbody {
                                    @for l in &lines {
                                        tr {
                                            td { code { (l["policyId"].as_str().unwrap_or("").get(..8).unwrap_or("")) } }
                                            td { code { (l["consumerTenantId"].as_str().unwrap_or("").get(..8).unwrap_or("")) } }
                                            td { (l["kind"].as_str().unwrap_or("")) }
                                            td { (l["units"]) }
                                            td { (l["gross"].as_str().unwrap_or("")) }
                                            td { (l["platformFee"].as_str().unwrap_or("")) }
                                            td { (l["providerNet"].as_str().unwrap_or("")) }
                                            td { (l["currency"].as_str().unwrap_or("")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p { a download href=(format!("/console/tenants/{id}/sharing/statement.csv?period={}&side={side}", encode(q.period.trim()))) { "Download the statement (CSV)" } }
                }
            }
        }
    };
    let page = layout::page(
        &ctx,
        "Sharing",
        Some(&nav(&state, &can, &id)),
        Section::Sharing,
        body,
    );
    (StatusCode::OK, page).into_response()
}

pub async fn statement_csv(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<SharingQuery>,
) -> Response {
    let side = if q.side == "consumer" {
        "consumer"
    } else {
        "provider"
    };
    match statement(&ctx, &id, q.period.trim(), side, true).await {
        Ok(mut resp) => {
            let name = format!(
                "attachment; filename=\"statement-{side}-{}.csv\"",
                if q.period.trim().is_empty() {
                    "current"
                } else {
                    q.period.trim()
                }
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => ctx
            .refused(id.parse().ok(), "read statement", e)
            .await
            .into_response(),
    }
}

/// After a sharing action: back to the page saying what was done, or the
/// error page (a refusal for want of rights audited).
async fn after(
    ctx: &Ctx,
    id: &str,
    action: &str,
    done: &str,
    result: Result<(), ApiError>,
) -> Response {
    match result {
        Ok(()) => {
            Redirect::to(&format!("/console/tenants/{id}/sharing?done={done}")).into_response()
        }
        Err(e) => ctx
            .refused(id.parse().ok(), action, e)
            .await
            .into_response(),
    }
}

pub async fn request(
    ctx: Ctx,
    Path((id, pid)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body =
        serde_json::json!({ "justification": fields.get("justification").unwrap_or("").trim() });
    let result = crate::sharing::request_access(
        State(ctx.state.app.clone()),
        acting(&ctx, &id),
        ApiPath(pid),
        JsonBody::json(&body),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "request access", "requested", result).await
}

pub async fn withdraw(
    ctx: Ctx,
    Path((id, pid)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    let result = crate::sharing::delete(
        State(ctx.state.app.clone()),
        acting(&ctx, &id),
        ApiPath(pid),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "withdraw policy", "withdrawn", result).await
}

pub async fn decide(
    ctx: Ctx,
    Path((id, rid)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let body = match fields.text("reason") {
        Some(r) => serde_json::json!({ "reason": r }),
        None => serde_json::json!({}),
    };
    let approve = fields.get("decision") == Some("approve");
    let (app, p) = (State(ctx.state.app.clone()), acting(&ctx, &id));
    let result = if approve {
        crate::sharing::approve(app, p, ApiPath(rid), JsonBody::json(&body)).await
    } else {
        crate::sharing::deny(app, p, ApiPath(rid), JsonBody::json(&body)).await
    }
    .map(|_| ());
    let done = if approve { "approved" } else { "denied" };
    after(&ctx, &id, "decide access request", done, result).await
}

pub async fn revoke(
    ctx: Ctx,
    Path((id, gid)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.posted(form) {
        return r.into_response();
    }
    let result = crate::sharing::revoke(
        State(ctx.state.app.clone()),
        acting(&ctx, &id),
        ApiPath(gid),
        RawQuery::of(&[("reason", "revoked in the console".into())]),
    )
    .await
    .map(|_| ());
    after(&ctx, &id, "revoke grant", "revoked", result).await
}
