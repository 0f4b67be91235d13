//! Statement periods: calendar months, as `yyyymm`, in UTC unless the
//! platform configured another zone for statements (each grant keeps the
//! zone it was made in, so replicas place its usage alike); and what a
//! month of a subscription costs.
use super::money::Amount;
use chrono::{Datelike, TimeZone, Utc};
use chrono_tz::Tz;

/// A statement period: a calendar month, as `yyyymm`.
pub type PeriodKey = u32;

/// The month (UTC) that `at_ms` falls in.
pub fn period_of(at_ms: i64) -> PeriodKey {
    period_in(at_ms, chrono_tz::UTC)
}

/// The month that `at_ms` falls in, in `zone`.
pub fn period_in(at_ms: i64, zone: Tz) -> PeriodKey {
    let t = Utc
        .timestamp_millis_opt(at_ms)
        .single()
        .unwrap_or_default()
        .with_timezone(&zone);
    t.year() as u32 * 100 + t.month()
}

/// `2026-11` -> 202611.
pub fn parse_period(text: &str) -> Option<PeriodKey> {
    let (y, m) = text.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (u32, u32) = (y.parse().ok()?, m.parse().ok()?);
    (1970..=9999).contains(&y).then_some(())?;
    (1..=12).contains(&m).then_some(y * 100 + m)
}

pub fn period_text(p: PeriodKey) -> String {
    format!("{:04}-{:02}", p / 100, p % 100)
}

/// The start of the calendar month (UTC) `period` names, in ms.
pub fn period_start_ms(period: PeriodKey) -> i64 {
    period_start_in(period, chrono_tz::UTC)
}

/// The start of the month `period` names in `zone`: its first local
/// midnight (or the first instant after it, where a DST change skips it).
pub fn period_start_in(period: PeriodKey, zone: Tz) -> i64 {
    let (y, m) = ((period / 100) as i32, period % 100);
    for hour in 0..3 {
        if let Some(t) = zone.with_ymd_and_hms(y, m, 1, hour, 0, 0).earliest() {
            return t.timestamp_millis();
        }
    }
    0
}

/// The month after `period`.
pub fn next_period(period: PeriodKey) -> PeriodKey {
    if period % 100 == 12 {
        (period / 100 + 1) * 100 + 1
    } else {
        period + 1
    }
}

/// A subscription's charge for `period` (a UTC month) when it started at
/// `since_ms`: see [`subscription_charge_in`].
pub fn subscription_charge(price: Amount, period: PeriodKey, since_ms: i64) -> Amount {
    subscription_charge_in(price, period, since_ms, chrono_tz::UTC)
}

/// A subscription's charge for `period` in `zone` when it started at
/// `since_ms`: the whole price for a month it covers entirely, else the
/// share of the month left after `since_ms`, rounded down to 10^-12.
pub fn subscription_charge_in(price: Amount, period: PeriodKey, since_ms: i64, zone: Tz) -> Amount {
    let (start, end) = (
        period_start_in(period, zone),
        period_start_in(next_period(period), zone),
    );
    if since_ms <= start {
        return price;
    }
    let left = i128::from(end.saturating_sub(since_ms).max(0));
    let month = i128::from(end - start).max(1);
    Amount::from_picos(price.picos().saturating_mul(left).div_euclid(month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_in_a_configured_zone() {
        // 2026-11-30T12:00Z is already December on Kiritimati (UTC+14) and
        // still November in Honolulu (UTC-10).
        let at = 1_796_040_000_000;
        assert_eq!(period_of(at), 202611);
        assert_eq!(period_in(at, chrono_tz::Pacific::Kiritimati), 202612);
        assert_eq!(period_in(at, chrono_tz::Pacific::Honolulu), 202611);
        assert_eq!(
            period_start_in(202612, chrono_tz::Pacific::Kiritimati),
            1_796_083_200_000 - 14 * 3_600_000
        );
    }
}
