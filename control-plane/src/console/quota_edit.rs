//! Editing one quota: the same change as `PUT …/quotas/{quota}`, with the
//! handler's errors shown next to the field they name.
use super::forms;
use super::guard::{Ctx, Fields};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{csrf, field_error, name_of};
use crate::dto::QuotaDto;
use crate::envelope::ApiError;
use crate::extract::{ApiPath, JsonBody};
use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use quotad_engine::model::{Action, Period, QuotaKind};
use std::collections::HashMap;

const KINDS: [QuotaKind; 3] = [QuotaKind::Counter, QuotaKind::Rate, QuotaKind::Gauge];
const PERIODS: [Period; 6] = [
    Period::Hourly,
    Period::Daily,
    Period::Monthly,
    Period::Never,
    Period::Second,
    Period::Minute,
];
const ACTIONS: [Action; 4] = [
    Action::Block,
    Action::Throttle,
    Action::Alert,
    Action::AllowOverage,
];

/// The form's fields, by the JSON names the handler's errors use.
const FIELDS: [&str; 5] = ["limit", "softLimit", "kind", "period", "action"];
const THRESHOLDS: &str = "alertThresholds";

/// What the form shows: the quota's values, or what was typed.
struct Values(HashMap<&'static str, String>);

impl Values {
    fn of(q: &QuotaDto) -> Values {
        let mut v = HashMap::new();
        v.insert(
            "limit",
            q.limit
                .map(|l| l.to_string())
                .unwrap_or_else(|| "unlimited".into()),
        );
        v.insert(
            "softLimit",
            q.soft_limit.map(|l| l.to_string()).unwrap_or_default(),
        );
        v.insert("kind", name_of(&q.kind));
        v.insert("period", name_of(&q.period));
        v.insert("action", name_of(&q.action));
        v.insert(
            THRESHOLDS,
            q.alert_thresholds
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        Values(v)
    }

    fn typed(f: &Fields) -> Values {
        let mut v = HashMap::new();
        for name in FIELDS.into_iter().chain([THRESHOLDS]) {
            v.insert(name, f.get(name).unwrap_or("").to_string());
        }
        Values(v)
    }

    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
}

fn select<T: serde::Serialize>(
    id: &str,
    label: &str,
    options: &[T],
    values: &Values,
    error: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(id) aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| format!("{id}-error"))] {
                @for o in options {
                    @let name = name_of(o);
                    option value=(name) selected[values.get(id) == name] { (name) }
                }
            }
            (field_error(id, error))
        }
    }
}

fn text(id: &str, label: &str, help: &str, values: &Values, error: Option<&str>) -> Markup {
    let described = if error.is_some() {
        format!("{id}-error {id}-help")
    } else {
        format!("{id}-help")
    };
    html! {
        div.field {
            label for=(id) { (label) }
            input type="text" id=(id) name=(id) value=(values.get(id)) inputmode="numeric"
                aria-invalid=[error.map(|_| "true")] aria-describedby=(described);
            p.help id=(format!("{id}-help")) { (help) }
            (field_error(id, error))
        }
    }
}

fn edit_form(
    ctx: &Ctx,
    id: &str,
    quota: &str,
    values: &Values,
    error: Option<&ApiError>,
) -> Markup {
    // An error that names none of the form's fields is shown above it.
    let on = |field: &str| {
        error
            .filter(|e| e.field.as_deref() == Some(field))
            .map(|e| e.message.as_str())
    };
    let general = error.filter(|e| {
        !FIELDS
            .iter()
            .chain([THRESHOLDS].iter())
            .any(|f| e.field.as_deref() == Some(f))
    });
    html! {
        h1 { "Edit quota " code { (quota) } }
        @if let Some(e) = general {
            p.error role="alert" { (e.message) }
        }
        form.edit method="post" action=(format!("/console/tenants/{id}/quotas/{quota}")) novalidate {
            (csrf(&ctx.csrf))
            (text("limit", "Limit", "A whole number, or \"unlimited\".", values, on("limit")))
            (text("softLimit", "Soft limit", "Optional: alert at this usage before the limit. Leave empty for none.", values, on("softLimit")))
            (select("kind", "Kind", &KINDS, values, on("kind")))
            (select("period", "Period", &PERIODS, values, on("period")))
            (select("action", "When over the limit", &ACTIONS, values, on("action")))
            (text(THRESHOLDS, "Alert thresholds (%)", "Comma-separated percentages of the limit, e.g. 80, 90, 95.", values, on(THRESHOLDS)))
            div.buttons {
                button type="submit" { "Save quota" }
                a href=(format!("/console/tenants/{id}")) { "Cancel" }
            }
        }
    }
}

pub async fn form(ctx: Ctx, Path((id, quota)): Path<(String, String)>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let now = ctx.state.app.engine.now_ms();
    let values = match state.quota(&quota) {
        Ok(q) => Values::of(&QuotaDto::new(&quota, q, state.tenant.timezone, now)),
        // A new custom quota: the form starts empty.
        Err(_) => Values(HashMap::from([
            ("limit", String::new()),
            ("kind", "counter".to_string()),
            ("period", "monthly".to_string()),
            ("action", "block".to_string()),
            (THRESHOLDS, "80, 90, 95".to_string()),
        ])),
    };
    let body = edit_form(&ctx, &id, &quota, &values, None);
    layout::page(
        &ctx,
        &format!("Edit {quota}"),
        Some(&nav(&state, &can, &id)),
        Section::Overview,
        body,
    )
    .into_response()
}

pub async fn save(
    ctx: Ctx,
    Path((id, quota)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fields = match ctx.posted(form) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let mut body = serde_json::Map::new();
    body.insert(
        "limit".into(),
        forms::limit(fields.get("limit").unwrap_or("")),
    );
    body.insert(
        "softLimit".into(),
        match fields.text("softLimit") {
            Some(v) => forms::number(&v),
            None => serde_json::Value::Null,
        },
    );
    for name in ["kind", "period", "action"] {
        if let Some(v) = fields.text(name) {
            body.insert(name.into(), v.into());
        }
    }
    body.insert(
        THRESHOLDS.into(),
        forms::numbers(fields.get(THRESHOLDS).unwrap_or("")),
    );
    let result = crate::quotas::set(
        axum::extract::State(ctx.state.app.clone()),
        ctx.principal.clone(),
        ApiPath((id.clone(), quota.clone())),
        JsonBody::json(&serde_json::Value::Object(body)),
    )
    .await;
    let error = match result {
        Ok(_) => return Redirect::to(&format!("/console/tenants/{id}?done=quota")).into_response(),
        Err(e) => e,
    };
    // Refused for want of rights (or no such tenant): the error page, and
    // the refusal audited. A wrong value: the form again, with the error.
    if error.code != quotad_engine::error_code::ErrorCode::InvalidArgument {
        return ctx
            .refused(id.parse().ok(), "edit quota", error)
            .await
            .into_response();
    }
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let body = edit_form(&ctx, &id, &quota, &Values::typed(&fields), Some(&error));
    let page = layout::page(
        &ctx,
        &format!("Edit {quota}"),
        Some(&nav(&state, &can, &id)),
        Section::Overview,
        body,
    );
    (StatusCode::BAD_REQUEST, page).into_response()
}
