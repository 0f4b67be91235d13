//! Usage history: what each quota consumed per hour and per day (days in
//! the tenant's timezone). Written by the state machine from committed
//! operations, so every replica holds the same history. Hourly buckets are
//! kept 35 days, daily buckets 400 days.
//!
//! Buckets saturate at `u64::MAX` (1.8 × 10^19, about 18,400 increments of
//! the largest amount, 10^15): arithmetic in Raft apply must neither panic
//! (a crash loop on every replica) nor wrap (a history that no longer adds
//! up). Counters saturate at the same ceiling, so the two still agree.
use crate::model::Period;
use crate::quota::period::window;
use chrono_tz::Tz;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
pub const HOURLY_RETENTION_MS: i64 = 35 * DAY_MS;
pub const DAILY_RETENTION_MS: i64 = 400 * DAY_MS;
/// Most points one query returns.
pub const MAX_POINTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Granularity {
    Hour,
    Day,
}

/// Quota names are inline strings (a name of up to 24 bytes needs no
/// allocation): every applied operation looks its two buckets up by name.
/// They encode as strings, the same bytes as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageHistory {
    hourly: BTreeMap<(CompactString, i64), u64>,
    daily: BTreeMap<(CompactString, i64), u64>,
}

/// One bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub start_ms: i64,
    pub amount: u64,
}

impl UsageHistory {
    /// Add `amount` consumed of `quota` at `at_ms`.
    pub fn record(&mut self, quota: &str, tz: Tz, at_ms: i64, amount: u64) {
        let hour = window(Period::Hourly, tz, at_ms).start_ms;
        let day = window(Period::Daily, tz, at_ms).start_ms;
        let key = (CompactString::from(quota), hour);
        let new_bucket = !self.hourly.contains_key(&key);
        let hourly = self.hourly.entry(key).or_default();
        *hourly = hourly.saturating_add(amount);
        let daily = self
            .daily
            .entry((CompactString::from(quota), day))
            .or_default();
        *daily = daily.saturating_add(amount);
        if new_bucket {
            // Drop expired buckets when a new one starts (about once an
            // hour per quota), not on every operation.
            self.hourly
                .retain(|(_, start), _| start.saturating_add(HOURLY_RETENTION_MS) > at_ms);
            self.daily
                .retain(|(_, start), _| start.saturating_add(DAILY_RETENTION_MS) > at_ms);
        }
    }

    /// Start of the newest hourly bucket, if any.
    pub fn newest_hour(&self) -> Option<i64> {
        self.hourly.keys().map(|(_, start)| *start).max()
    }

    /// Raise a bucket's total to `amount` (an archived total is never below
    /// what an older copy of the history holds); returns what was added.
    pub fn raise(&mut self, g: Granularity, quota: &str, start_ms: i64, amount: u64) -> u64 {
        let map = match g {
            Granularity::Hour => &mut self.hourly,
            Granularity::Day => &mut self.daily,
        };
        let slot = map
            .entry((CompactString::from(quota), start_ms))
            .or_default();
        let added = amount.saturating_sub(*slot);
        *slot = slot.saturating_add(added);
        added
    }

    /// Every bucket that may have changed at or after `since_ms`, as
    /// (granularity, quota, start, amount): those whose period contains or
    /// follows it. Without the timezone at hand the bounds are widened to
    /// the longest hour and day any zone has (an hour, and 26 hours).
    pub fn buckets_since(&self, since_ms: i64) -> Vec<(Granularity, &str, i64, u64)> {
        let hour_from = since_ms.saturating_sub(HOUR_MS);
        let day_from = since_ms.saturating_sub(DAY_MS + 2 * HOUR_MS);
        let hourly = self
            .hourly
            .iter()
            .filter(|((_, start), _)| *start >= hour_from)
            .map(|((q, start), a)| (Granularity::Hour, q.as_str(), *start, *a));
        let daily = self
            .daily
            .iter()
            .filter(|((_, start), _)| *start >= day_from)
            .map(|((q, start), a)| (Granularity::Day, q.as_str(), *start, *a));
        hourly.chain(daily).collect()
    }

    /// The buckets of `quota` starting in `[from_ms, to_ms)`, zero-filled,
    /// oldest first.
    pub fn series(
        &self,
        quota: &str,
        tz: Tz,
        g: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<Point> {
        let (map, period) = match g {
            Granularity::Hour => (&self.hourly, Period::Hourly),
            Granularity::Day => (&self.daily, Period::Daily),
        };
        let mut out = Vec::new();
        let mut start = window(period, tz, from_ms).start_ms;
        if start < from_ms {
            start = window(period, tz, from_ms).end_ms.unwrap_or(to_ms);
        }
        while start < to_ms && out.len() < MAX_POINTS {
            let amount = map
                .get(&(CompactString::from(quota), start))
                .copied()
                .unwrap_or(0);
            out.push(Point {
                start_ms: start,
                amount,
            });
            start = window(period, tz, start).end_ms.unwrap_or(to_ms);
        }
        out
    }
}

/// Summary of a series, and where the current period is heading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub total: u64,
    pub peak: u64,
    pub peak_at_ms: Option<i64>,
    /// Per bucket.
    pub average: f64,
    /// Change of the average bucket from the first half of the series to
    /// the second, in percent (`None` when the first half is all zero).
    pub trend_percent: Option<f64>,
    /// When the current period's usage reaches the limit at the pace so far,
    /// if before the period ends.
    pub projected_exhaustion_ms: Option<i64>,
}

/// `period_usage` so far in `[period_start, period_end)`, now at `now_ms`.
pub fn statistics(
    points: &[Point],
    limit: Option<u64>,
    period_usage: u64,
    period_start_ms: i64,
    period_end_ms: Option<i64>,
    now_ms: i64,
) -> Statistics {
    let total = points
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.amount));
    let peak_point = points
        .iter()
        .max_by_key(|p| (p.amount, -p.start_ms))
        .filter(|p| p.amount > 0);
    let average = if points.is_empty() {
        0.0
    } else {
        total as f64 / points.len() as f64
    };
    let half = points.len() / 2;
    let avg = |ps: &[Point]| {
        if ps.is_empty() {
            0.0
        } else {
            ps.iter().map(|p| p.amount as f64).sum::<f64>() / ps.len() as f64
        }
    };
    let (first, second) = (avg(&points[..half]), avg(&points[half..]));
    let trend_percent = (half > 0 && first > 0.0)
        .then(|| ((second - first) / first * 100.0 * 100.0).round() / 100.0);
    let projected_exhaustion_ms = match (limit, period_end_ms) {
        (Some(limit), Some(end)) if period_usage > 0 && now_ms > period_start_ms => {
            if period_usage >= limit {
                Some(now_ms)
            } else {
                let elapsed = (now_ms - period_start_ms) as f64;
                let rate = period_usage as f64 / elapsed;
                // In floating point: a huge limit must not overflow.
                let eta = now_ms as f64 + ((limit - period_usage) as f64 / rate).ceil();
                (eta < end as f64).then_some(eta as i64)
            }
        }
        _ => None,
    };
    Statistics {
        total,
        peak: peak_point.map_or(0, |p| p.amount),
        peak_at_ms: peak_point.map(|p| p.start_ms),
        average,
        trend_percent,
        projected_exhaustion_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000 - 1_790_000_000_000 % DAY_MS; // a UTC midnight

    #[test]
    fn hourly_series_sums_to_what_was_recorded() {
        let mut h = UsageHistory::default();
        let mut total = 0;
        for hour in 0..24 {
            for k in 0..hour {
                h.record("api", chrono_tz::UTC, T0 + hour * HOUR_MS + k * 1000, 2);
                total += 2;
            }
        }
        let s = h.series("api", chrono_tz::UTC, Granularity::Hour, T0, T0 + DAY_MS);
        assert_eq!(s.len(), 24);
        assert_eq!(s.iter().map(|p| p.amount).sum::<u64>(), total);
        assert_eq!(
            s[5],
            Point {
                start_ms: T0 + 5 * HOUR_MS,
                amount: 10
            }
        );
        let d = h.series("api", chrono_tz::UTC, Granularity::Day, T0, T0 + DAY_MS);
        assert_eq!(
            d,
            vec![Point {
                start_ms: T0,
                amount: total
            }]
        );
        assert!(
            h.series("other", chrono_tz::UTC, Granularity::Hour, T0, T0 + DAY_MS)
                .iter()
                .all(|p| p.amount == 0)
        );
    }

    #[test]
    fn statistics_of_a_rising_day() {
        let points: Vec<Point> = (0..24)
            .map(|i| Point {
                start_ms: T0 + i * HOUR_MS,
                amount: i as u64,
            })
            .collect();
        let s = statistics(
            &points,
            Some(1_000),
            276,
            T0,
            Some(T0 + 30 * DAY_MS),
            T0 + DAY_MS,
        );
        assert_eq!(s.total, 276);
        assert_eq!((s.peak, s.peak_at_ms), (23, Some(T0 + 23 * HOUR_MS)));
        assert_eq!(s.average, 11.5);
        // First half averages 5.5, second 17.5.
        assert_eq!(s.trend_percent, Some(218.18));
        // 276 a day: the remaining 724 take 724/276 days more.
        let eta = s.projected_exhaustion_ms.unwrap();
        assert_eq!(
            eta,
            T0 + DAY_MS + (724.0 * DAY_MS as f64 / 276.0).ceil() as i64
        );
        let never = statistics(
            &points,
            Some(1_000_000),
            276,
            T0,
            Some(T0 + 30 * DAY_MS),
            T0 + DAY_MS,
        );
        assert_eq!(never.projected_exhaustion_ms, None);
    }

    #[test]
    fn old_buckets_are_dropped() {
        let mut h = UsageHistory::default();
        h.record("api", chrono_tz::UTC, T0, 1);
        h.record("api", chrono_tz::UTC, T0 + HOURLY_RETENTION_MS, 1);
        assert_eq!(
            h.series("api", chrono_tz::UTC, Granularity::Hour, T0, T0 + HOUR_MS)[0].amount,
            0
        );
        assert_eq!(
            h.series("api", chrono_tz::UTC, Granularity::Day, T0, T0 + DAY_MS)[0].amount,
            1
        );
    }
}

#[cfg(test)]
mod projection_tests {
    use super::*;

    #[test]
    fn a_huge_limit_projects_no_exhaustion_instead_of_overflowing() {
        let s = statistics(
            &[],
            Some(10_000_000_000_000_000_000),
            1,
            0,
            Some(30 * DAY_MS),
            1,
        );
        assert_eq!(s.projected_exhaustion_ms, None);
    }
}
