//! Usage charts drawn here, as SVG: no chart script, nothing for the CSP
//! to allow, and every point is an element with its time and amount
//! (`data-start`, `data-amount`) and a `<title>` a pointer or a screen
//! reader reaches.
use super::widgets::{local_ms, thousands};
use chrono_tz::Tz;
use maud::{Markup, html};

const W: f64 = 800.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// What one chart shows.
pub struct Chart<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
    /// `(bucket start, amount)`, in time order.
    pub points: &'a [(i64, u64)],
    /// Usage of the quota's period up to the end of each bucket (resets at
    /// each period start), when the quota's limit applies to such a total.
    pub period_totals: Option<&'a [u64]>,
    pub limit: Option<u64>,
    /// The current period's pace carried forward: from (time, total) to
    /// the time the limit is reached.
    pub projection: Option<(i64, u64, i64)>,
    pub tz: Tz,
    pub label: &'a str,
}

impl Chart<'_> {
    fn top_value(&self) -> f64 {
        let peak = self.points.iter().map(|p| p.1).max().unwrap_or(0);
        let totals = self
            .period_totals
            .and_then(|t| t.iter().copied().max())
            .unwrap_or(0);
        let limit = self
            .limit
            .filter(|_| self.period_totals.is_some())
            .unwrap_or(0);
        (peak.max(totals).max(limit).max(1) as f64) * 1.08
    }

    fn x(&self, ms: i64) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        LEFT + (ms - self.from_ms).clamp(0, self.to_ms - self.from_ms) as f64 / span
            * (W - LEFT - RIGHT)
    }

    fn y(&self, v: u64, top: f64) -> f64 {
        let plot = H - TOP - BOTTOM;
        TOP + plot - (v as f64 / top) * plot
    }
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// The chart as an SVG figure with a caption saying what it shows.
pub fn render(c: &Chart) -> Markup {
    let top = c.top_value();
    let bar_w = (c.x(c.from_ms + c.bucket_ms) - c.x(c.from_ms)).max(1.0) * 0.8;
    let base = c.y(0, top);
    let line: Option<String> = c.period_totals.map(|totals| {
        c.points
            .iter()
            .zip(totals)
            .map(|((start, _), total)| {
                format!("{},{}", f(c.x(start + c.bucket_ms)), f(c.y(*total, top)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    });
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby="chart-title chart-desc" {
            title #chart-title { (c.label) }
            desc #chart-desc {
                (c.points.len()) " buckets from " (local_ms(c.from_ms, c.tz)) " to " (local_ms(c.to_ms, c.tz))
                @if let Some(l) = c.limit { "; limit " (thousands(l)) }
            }
            // Axes and their labels.
            line.axis x1=(f(LEFT)) x2=(f(W - RIGHT)) y1=(f(base)) y2=(f(base)) {}
            line.axis x1=(f(LEFT)) x2=(f(LEFT)) y1=(f(TOP)) y2=(f(base)) {}
            text.label x=(f(LEFT - 6.0)) y=(f(TOP + 10.0)) text-anchor="end" { (thousands(top as u64)) }
            text.label x=(f(LEFT - 6.0)) y=(f(base)) text-anchor="end" { "0" }
            text.label x=(f(LEFT)) y=(f(H - 8.0)) { (local_ms(c.from_ms, c.tz)) }
            text.label x=(f(W - RIGHT)) y=(f(H - 8.0)) text-anchor="end" { (local_ms(c.to_ms, c.tz)) }
            g.bars {
                @for (start, amount) in c.points {
                    @let y = c.y(*amount, top);
                    rect.point x=(f(c.x(*start) + bar_w * 0.1)) y=(f(y)) width=(f(bar_w)) height=(f(base - y))
                        data-start=(start) data-amount=(amount) {
                        title { (local_ms(*start, c.tz)) ": " (thousands(*amount)) }
                    }
                }
            }
            @if let Some(points) = &line {
                polyline.total points=(points) {}
            }
            @if let (Some(l), Some(_)) = (c.limit, c.period_totals) {
                @let y = c.y(l, top);
                line.limit x1=(f(LEFT)) x2=(f(W - RIGHT)) y1=(f(y)) y2=(f(y)) data-limit=(l) {}
                text.label.limit-label x=(f(W - RIGHT)) y=(f(y - 4.0)) text-anchor="end" { "limit " (thousands(l)) }
            }
            @if let (Some((at, total, reached)), Some(l)) = (c.projection, c.limit) {
                // Drawn up to the chart's edge when the limit is reached later.
                @let end = reached.min(c.to_ms);
                @let share = if reached > at { (end - at) as f64 / (reached - at) as f64 } else { 1.0 };
                @let value = total as f64 + (l.saturating_sub(total)) as f64 * share;
                line.trend x1=(f(c.x(at))) y1=(f(c.y(total, top))) x2=(f(c.x(end))) y2=(f(c.y(value as u64, top))) data-reached=(reached) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_a_bar_scaled_to_the_highest_value_and_the_limit_a_line() {
        let points = [(0, 10), (3_600_000, 30), (7_200_000, 0)];
        let totals = [10, 40, 40];
        let c = Chart {
            from_ms: 0,
            to_ms: 3 * 3_600_000,
            bucket_ms: 3_600_000,
            points: &points,
            period_totals: Some(&totals),
            limit: Some(100),
            projection: Some((3 * 3_600_000, 40, 20 * 3_600_000)),
            tz: chrono_tz::UTC,
            label: "api_requests per hour",
        };
        let svg = render(&c).into_string();
        assert_eq!(svg.matches("class=\"point\"").count(), 3);
        assert!(svg.contains("data-amount=\"30\""));
        assert!(svg.contains("data-limit=\"100\""));
        assert!(svg.contains("class=\"total\""));
        assert!(svg.contains("class=\"trend\""));
        // The scale's top is above the limit (the highest value drawn).
        assert!(svg.contains(">108<"), "{svg}");
        // A zero bucket has no height.
        assert!(svg.contains("height=\"0.0\""));
    }

    #[test]
    fn without_period_totals_there_is_no_limit_line() {
        let points = [(0, 5)];
        let c = Chart {
            from_ms: 0,
            to_ms: 86_400_000,
            bucket_ms: 86_400_000,
            points: &points,
            period_totals: None,
            limit: Some(100),
            projection: None,
            tz: chrono_tz::UTC,
            label: "storage per day",
        };
        let svg = render(&c).into_string();
        assert!(!svg.contains("data-limit"));
        assert!(!svg.contains("class=\"total\""));
    }
}
