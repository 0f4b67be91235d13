//! Statement periods: calendar months in UTC, as `yyyymm`, and what a
//! month of a subscription costs.
use super::money::Amount;
use chrono::{Datelike, TimeZone, Utc};

/// A statement period: a calendar month in UTC, as `yyyymm`.
pub type PeriodKey = u32;

/// The month (UTC) that `at_ms` falls in.
pub fn period_of(at_ms: i64) -> PeriodKey {
    let t = Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default();
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
    let (y, m) = ((period / 100) as i32, period % 100);
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map_or(0, |t| t.timestamp_millis())
}

/// The month after `period`.
pub fn next_period(period: PeriodKey) -> PeriodKey {
    if period % 100 == 12 {
        (period / 100 + 1) * 100 + 1
    } else {
        period + 1
    }
}

/// A subscription's charge for `period` when it started at `since_ms`:
/// the whole price for a month it covers entirely, else the share of the
/// month left after `since_ms`, rounded down to 10^-12.
pub fn subscription_charge(price: Amount, period: PeriodKey, since_ms: i64) -> Amount {
    let (start, end) = (
        period_start_ms(period),
        period_start_ms(next_period(period)),
    );
    if since_ms <= start {
        return price;
    }
    let left = i128::from(end.saturating_sub(since_ms).max(0));
    let month = i128::from(end - start).max(1);
    Amount::from_picos(price.picos().saturating_mul(left).div_euclid(month))
}
