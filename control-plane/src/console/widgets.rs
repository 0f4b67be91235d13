//! Pieces several pages share: the quota bar, times in the tenant's zone,
//! field errors, the CSRF input.
use crate::dto::QuotaDto;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde::Serialize;

/// The snake_case name serde gives an enum value (`allow_overage`).
pub fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="_csrf" value=(token); }
}

/// An RFC 3339 time in `tz`, to the minute, with the zone's abbreviation.
pub fn local_time(rfc3339: &str, tz: Tz) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

pub fn local_ms(ms: i64, tz: Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_default()
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where a quota's usage stands against its alert thresholds: how many
/// thresholds it has passed, and the words for it (colour is never the
/// only signal).
pub struct Standing {
    /// `ok`, `t1`, `t2`, `t3` (thresholds passed, up to three), `over`.
    pub class: &'static str,
    pub words: String,
}

pub fn standing(q: &QuotaDto) -> Standing {
    let Some(pct) = q.percentage else {
        return Standing {
            class: "ok",
            words: "Unlimited".into(),
        };
    };
    if pct >= 100.0 {
        return Standing {
            class: "over",
            words: "At or over the limit".into(),
        };
    }
    let mut thresholds = q.alert_thresholds.clone();
    thresholds.sort_unstable();
    let passed: Vec<u8> = thresholds
        .iter()
        .copied()
        .filter(|t| pct >= f64::from(*t))
        .collect();
    match passed.last() {
        None => Standing {
            class: "ok",
            words: "Below its alert thresholds".into(),
        },
        Some(top) => Standing {
            class: match passed.len() {
                1 => "t1",
                2 => "t2",
                _ => "t3",
            },
            words: format!("Above the {top}% threshold"),
        },
    }
}

/// A quota's bar: an SVG (sizes as attributes: the CSP allows no inline
/// style) with the thresholds marked, and the same facts in words.
pub fn quota_bar(q: &QuotaDto) -> Markup {
    let pct = q.percentage.unwrap_or(0.0).clamp(0.0, 100.0);
    let s = standing(q);
    html! {
        svg.bar viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
            rect.track x="0" y="0" width="100" height="10" {}
            rect class={"fill " (s.class)} x="0" y="0" width=(format!("{pct:.2}")) height="10" data-percent=(format!("{pct:.2}")) {}
            @for t in &q.alert_thresholds {
                line.tick x1=(t) x2=(t) y1="0" y2="10" {}
            }
        }
        p class={"standing " (s.class)} { (s.words) }
    }
}

/// A field's error under it, referenced by the field's
/// `aria-describedby`.
pub fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error id=(format!("{id}-error")) role="alert" { (e) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn times_are_shown_in_the_tenants_zone() {
        assert_eq!(
            local_time("2026-12-01T05:00:00.000Z", chrono_tz::America::New_York),
            "2026-12-01 00:00 EST"
        );
    }
}
