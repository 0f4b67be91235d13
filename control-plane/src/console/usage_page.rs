//! A quota's usage over a chosen range, hourly or daily: a chart with the
//! limit line and the current pace carried forward, the statistics of
//! `GET …/usage`, and the series as CSV.
use super::chart::{Chart, render};
use super::forms::encode;
use super::guard::{Ctx, Refused};
use super::layout::{self, Section};
use super::overview::{nav, read};
use super::widgets::{local_ms, local_time, thousands};
use crate::extract::{ApiPath, RawQuery};
use crate::usage::UsageDto;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use chrono_tz::Tz;
use maud::html;
use quotad_engine::model::{Period, QuotaKind};
use quotad_engine::quota::TenantState;
use quotad_engine::quota::period::window;
use serde::Deserialize;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The ranges offered: (name, length). 90 days of hours is 2,160 buckets,
/// well within what `GET …/usage` answers.
const RANGES: [(&str, i64); 5] = [
    ("24h", 24 * HOUR),
    ("72h", 72 * HOUR),
    ("7d", 7 * DAY),
    ("30d", 30 * DAY),
    ("90d", 90 * DAY),
];

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    quota: Option<String>,
    granularity: Option<String>,
    range: Option<String>,
}

/// What the page and the CSV show: the choice, resolved.
struct Choice {
    quota: String,
    daily: bool,
    range: &'static str,
    length_ms: i64,
}

impl Choice {
    fn of(q: &UsageQuery, state: &TenantState) -> Choice {
        let quota = q
            .quota
            .clone()
            .filter(|n| state.quotas.contains_key(n))
            .or_else(|| state.quotas.keys().next().map(str::to_string))
            .unwrap_or_else(|| "api_requests".into());
        let daily = q.granularity.as_deref() == Some("day");
        let default = if daily { RANGES[3] } else { RANGES[0] };
        let (range, length_ms) = RANGES
            .iter()
            .find(|(name, _)| Some(*name) == q.range.as_deref())
            .copied()
            .unwrap_or(default);
        Choice {
            quota,
            daily,
            range,
            length_ms,
        }
    }

    fn granularity(&self) -> &'static str {
        if self.daily { "day" } else { "hour" }
    }

    fn query(&self) -> String {
        format!(
            "quota={}&granularity={}&range={}",
            encode(&self.quota),
            self.granularity(),
            self.range
        )
    }
}

/// The series, with each bucket's total of the quota's period so far when
/// the limit applies to such a total (a counter whose period is at least a
/// bucket long).
struct Series {
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    points: Vec<(i64, u64)>,
    totals: Option<Vec<u64>>,
    usage: UsageDto,
}

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

async fn series(ctx: &Ctx, id: &str, state: &TenantState, c: &Choice) -> Result<Series, Refused> {
    let tz = state.tenant.timezone;
    let now = ctx.state.app.engine.now_ms();
    let (bucket_period, bucket_ms) = if c.daily {
        (Period::Daily, DAY)
    } else {
        (Period::Hourly, HOUR)
    };
    let to = window(bucket_period, tz, now).end_ms.unwrap_or(now);
    let from = to - c.length_ms;
    let policy = state.quotas.get(&c.quota).map(|q| q.policy.clone());
    let totals_apply = policy.as_ref().is_some_and(|p| {
        p.kind == QuotaKind::Counter
            && match p.period {
                Period::Hourly => !c.daily,
                Period::Daily | Period::Monthly => true,
                _ => false,
            }
    });
    let fetch = |from: i64, to: i64| {
        let params = [
            ("quota", c.quota.clone()),
            ("granularity", c.granularity().to_string()),
            ("from", crate::dto::rfc3339(from)),
            ("to", crate::dto::rfc3339(to)),
        ];
        crate::usage::history(
            State(ctx.state.app.clone()),
            ctx.principal.clone(),
            ApiPath(id.to_string()),
            RawQuery::of(&params),
        )
    };
    let usage = fetch(from, to).await.map_err(Refused::from)?.1;
    let points: Vec<(i64, u64)> = usage
        .points
        .iter()
        .map(|p| (ms(&p.start), p.amount))
        .collect();
    let totals = match (&policy, totals_apply) {
        (Some(p), true) => {
            // The period `from` falls in began earlier: what was used of it
            // before `from` starts the running total.
            let period_start = window(p.period, tz, from).start_ms;
            let mut running = if period_start < from {
                let before = fetch(period_start, from).await.map_err(Refused::from)?.1;
                before.points.iter().map(|p| p.amount).sum::<u64>()
            } else {
                0
            };
            let mut period = Some(period_start);
            Some(
                points
                    .iter()
                    .map(|(start, amount)| {
                        let w = window(p.period, tz, *start).start_ms;
                        if period != Some(w) {
                            period = Some(w);
                            running = 0;
                        }
                        running = running.saturating_add(*amount);
                        running
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    Ok(Series {
        from_ms: from,
        to_ms: to,
        bucket_ms,
        points,
        totals,
        usage,
    })
}

fn tz_of(state: &TenantState) -> Tz {
    state.tenant.timezone
}

pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<UsageQuery>) -> Response {
    let (state, can) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let c = Choice::of(&q, &state);
    let s = match series(&ctx, &id, &state, &c).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let tz = tz_of(&state);
    let now = ctx.state.app.engine.now_ms();
    let limit = state.quotas.get(&c.quota).and_then(|q| q.policy.limit);
    let st = &s.usage.statistics;
    let reached = st.projected_exhaustion.as_deref().map(ms);
    let projection = match (&s.totals, reached) {
        (Some(t), Some(at)) => t.last().map(|total| (now.min(s.to_ms), *total, at)),
        _ => None,
    };
    let unit = if c.daily { "day" } else { "hour" };
    let label = format!("{} per {unit}", c.quota);
    let chart = Chart {
        from_ms: s.from_ms,
        to_ms: s.to_ms,
        bucket_ms: s.bucket_ms,
        points: &s.points,
        period_totals: s.totals.as_deref(),
        limit,
        projection,
        tz,
        label: &label,
    };
    let body = html! {
        h1 { "Usage" }
        form.filters method="get" action=(format!("/console/tenants/{id}/usage")) {
            div.field {
                label for="u-quota" { "Quota" }
                select #u-quota name="quota" {
                    @for name in state.quotas.keys() {
                        option value=(name) selected[*name == c.quota] { (name) }
                    }
                }
            }
            div.field {
                label for="u-granularity" { "Granularity" }
                select #u-granularity name="granularity" {
                    option value="hour" selected[!c.daily] { "Hourly" }
                    option value="day" selected[c.daily] { "Daily" }
                }
            }
            div.field {
                label for="u-range" { "Range" }
                select #u-range name="range" {
                    @for (name, _) in RANGES {
                        option value=(name) selected[name == c.range] { "last " (name) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        figure.chart {
            (render(&chart))
            figcaption {
                "Bars: " (c.quota) " used per " (unit) " (" (tz.name()) ")."
                @if s.totals.is_some() {
                    " Line: used in the quota's period so far, against the limit line; dashed: the current pace carried forward."
                } @else {
                    " The limit applies to the quota's level or rate, not to these amounts, so no limit line is drawn."
                }
            }
        }
        dl.summary #stats {
            dt { "Total in range" } dd { (thousands(s.points.iter().map(|p| p.1).sum::<u64>())) }
            dt { "Peak" } dd { (thousands(st.peak)) @if let Some(at) = &st.peak_at { " at " (local_time(at, tz)) } }
            dt { "Average per " (unit) } dd { (format!("{:.1}", st.average)) }
            dt { "Trend" } dd {
                @match st.trend_percent {
                    Some(t) => { (format!("{t:+.1}%")) " (second half of the range against the first)" },
                    None => "no usage in the first half to compare with",
                }
            }
            dt { "Projected exhaustion" } dd #exhaustion {
                @match reached {
                    Some(at) => { "at this period's pace the limit is reached on " strong { (local_ms(at, tz)) } },
                    None => "not within this period at its pace so far",
                }
            }
        }
        p { a href=(format!("/console/tenants/{id}/usage.csv?{}", c.query())) download { "Download the series (CSV)" } }
        details {
            summary { "The series as a table" }
            div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                table {
                    caption.visually-hidden { (label) }
                    thead { tr { th scope="col" { "Start" } th scope="col" { "Used" } @if s.totals.is_some() { th scope="col" { "Used in period" } } } }
                    tbody {
                        @for (i, (start, amount)) in s.points.iter().enumerate() {
                            tr {
                                td { (local_ms(*start, tz)) }
                                td { (thousands(*amount)) }
                                @if let Some(t) = &s.totals { td { (thousands(t[i])) } }
                            }
                        }
                    }
                }
            }
        }
    };
    let page = layout::page(
        &ctx,
        "Usage",
        Some(&nav(&state, &can, &id)),
        Section::Usage,
        body,
    );
    (StatusCode::OK, page).into_response()
}

pub async fn csv(ctx: Ctx, Path(id): Path<String>, Query(q): Query<UsageQuery>) -> Response {
    let (state, _) = match read(&ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let c = Choice::of(&q, &state);
    let s = match series(&ctx, &id, &state, &c).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let tz = tz_of(&state);
    let mut out = String::from("start,start_local,amount");
    if s.totals.is_some() {
        out.push_str(",used_in_period");
    }
    out.push('\n');
    for (i, (start, amount)) in s.points.iter().enumerate() {
        out.push_str(&format!(
            "{},{},{amount}",
            crate::dto::rfc3339(*start),
            local_ms(*start, tz)
        ));
        if let Some(t) = &s.totals {
            out.push_str(&format!(",{}", t[i]));
        }
        out.push('\n');
    }
    let mut resp = out.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=\"{}-{}-{}.csv\"",
        state.tenant.slug,
        c.quota,
        c.granularity()
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
