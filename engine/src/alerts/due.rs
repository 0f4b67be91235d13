//! Alerts that time raises rather than a request: a trial's milestones
//! (7, 3 and 1 days before it ends, counted in whole local days of the
//! tenant's timezone, and its end), a payment failure's grace running out,
//! and an anomalous hour of usage. Pure functions of the tenant, its
//! history and the time.
use crate::model::{Period, Tenant, TenantStatus};
use crate::quota::period::window;
use crate::usage_history::Point;

/// Days before a trial ends that `tenant.trial_expiring` is raised.
pub const TRIAL_WARNINGS: [i64; 3] = [7, 3, 1];

/// The trial alert due at `now_ms`, if any: `Some((days, at_ms))` for
/// "expiring in `days` days" (the nearest milestone passed, so a tenant
/// created 2 days before its end is not told "7 days"), `Some((0, end))`
/// once it has ended. Milestones are local midnights `days` days before
/// the local date the trial ends on.
pub fn trial_milestone(t: &Tenant, now_ms: i64) -> Option<(i64, i64)> {
    if t.status != TenantStatus::Trial {
        return None;
    }
    let end = t.trial_ends_at_ms?;
    if now_ms >= end {
        return Some((0, end));
    }
    let end_day = window(Period::Daily, t.timezone, end).start_ms;
    TRIAL_WARNINGS.iter().rev().find_map(|days| {
        // Step back one local day at a time (days are 23 to 25 hours
        // around daylight saving changes).
        let mut at = end_day;
        for _ in 0..*days {
            at = window(Period::Daily, t.timezone, at - 1).start_ms;
        }
        (now_ms >= at).then_some((*days, at))
    })
}

/// What the anomaly rule found: the last complete hour against the hours
/// before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    pub hour_start_ms: i64,
    pub usage: u64,
    pub mean: f64,
    pub stddev: f64,
}

/// Fewest units in the hour for it to count as an anomaly (a tenant going
/// from 1 request an hour to 9 is not one).
pub const ANOMALY_MIN_UNITS: u64 = 100;
/// Hours of baseline.
pub const ANOMALY_BASELINE_HOURS: usize = 24;

/// Whether the last of `hours` (oldest first, the last complete hour last)
/// is far above the tenant's own trailing baseline, the hours before it.
///
/// The statistic: the hour's usage against the mean and standard
/// deviation of the previous 24 hours. It is anomalous when it is at least
/// 100 units, more than the mean plus 4 standard deviations, and more than
/// 3 times the mean. Why: hourly usage of a steady tenant varies around its
/// mean, and 4 deviations is far outside that variation (about 1 in 15,000
/// hours for a normal spread), so a real spike rather than noise; the 3×
/// floor keeps a tenant whose usage hardly varies (a tiny deviation) from
/// alerting on a modest rise; 100 units keeps tiny tenants quiet. A day of
/// baseline covers the daily cycle's recent hours without needing weeks
/// of history.
pub fn anomaly(hours: &[Point]) -> Option<Anomaly> {
    let (last, before) = hours.split_last()?;
    if before.len() < ANOMALY_BASELINE_HOURS || last.amount < ANOMALY_MIN_UNITS {
        return None;
    }
    let base = &before[before.len() - ANOMALY_BASELINE_HOURS..];
    let n = base.len() as f64;
    let mean = base.iter().map(|p| p.amount as f64).sum::<f64>() / n;
    let var = base
        .iter()
        .map(|p| (p.amount as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let stddev = var.sqrt();
    let usage = last.amount as f64;
    (usage > mean + 4.0 * stddev && usage > 3.0 * mean).then_some(Anomaly {
        hour_start_ms: last.start_ms,
        usage: last.amount,
        mean,
        stddev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tier;

    const DAY: i64 = 86_400_000;

    fn tenant(end: i64, tz: chrono_tz::Tz) -> Tenant {
        Tenant {
            id: uuid::Uuid::nil(),
            slug: "t".into(),
            name: "t".into(),
            tier: Tier::Free,
            status: TenantStatus::Trial,
            timezone: tz,
            trial_ends_at_ms: Some(end),
            settings_json: "{}".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            deleted: Default::default(),
        }
    }

    #[test]
    fn trial_milestones_are_local_midnights_and_the_nearest_one_counts() {
        use chrono::TimeZone;
        let ny = chrono_tz::America::New_York;
        // Ends 2026-11-10 15:00 in New York (after the DST change of Nov 1).
        let end = ny
            .with_ymd_and_hms(2026, 11, 10, 15, 0, 0)
            .unwrap()
            .timestamp_millis();
        let t = tenant(end, ny);
        let midnight = |d| {
            ny.with_ymd_and_hms(2026, 11, d, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(trial_milestone(&t, midnight(3) - 1), None);
        assert_eq!(trial_milestone(&t, midnight(3)), Some((7, midnight(3))));
        assert_eq!(trial_milestone(&t, midnight(7) + 5), Some((3, midnight(7))));
        assert_eq!(trial_milestone(&t, midnight(9)), Some((1, midnight(9))));
        assert_eq!(trial_milestone(&t, end), Some((0, end)));
        // Seven local days before crosses the DST change: not 7 × 24 h.
        let oct30 = ny
            .with_ymd_and_hms(2026, 10, 30, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let t2 = tenant(
            ny.with_ymd_and_hms(2026, 11, 6, 12, 0, 0)
                .unwrap()
                .timestamp_millis(),
            ny,
        );
        assert_eq!(trial_milestone(&t2, oct30), Some((7, oct30)));
        assert_ne!(oct30 + 7 * DAY, midnight(6));
        let mut active = t.clone();
        active.status = TenantStatus::Active;
        assert_eq!(trial_milestone(&active, end), None);
    }

    fn hours(values: &[u64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, a)| Point {
                start_ms: i as i64 * 3_600_000,
                amount: *a,
            })
            .collect()
    }

    #[test]
    fn an_hour_far_above_the_trailing_day_is_an_anomaly_and_noise_is_not() {
        let steady: Vec<u64> = (0..24).map(|i| 1000 + (i % 5) * 20).collect();
        let with = |last: u64| {
            let mut v = steady.clone();
            v.push(last);
            anomaly(&hours(&v))
        };
        assert!(with(1200).is_none(), "within the usual spread");
        assert!(with(2500).is_none(), "4σ but not 3× the mean");
        let a = with(5000).expect("far above");
        assert_eq!(a.usage, 5000);
        assert!((a.mean - (1000.0 + 920.0 / 24.0)).abs() < 1e-9, "{a:?}");
        assert!(
            anomaly(&hours(&[1; 25])).is_none(),
            "tiny tenants stay quiet"
        );
        let mut tiny = vec![0; 24];
        tiny.push(99);
        assert!(anomaly(&hours(&tiny)).is_none(), "below 100 units");
        tiny[24] = 100;
        assert!(anomaly(&hours(&tiny)).is_some());
        assert!(
            anomaly(&hours(&[5000; 10])).is_none(),
            "not enough baseline"
        );
    }
}
