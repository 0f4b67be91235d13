//! Calendar windows of period counters, aligned in the tenant's timezone.
//!
//! A window is `[start, end)` in Unix milliseconds. Daily and monthly windows
//! start at local midnight (the 1st, for months). Where DST skips local
//! midnight the window starts at the first instant after the gap; where a
//! local midnight happens twice it starts at the first one. Hourly windows
//! follow the local clock's hour marks (DST shifts whole hours, so an hour
//! window is always one hour long).
use crate::model::Period;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    /// `None` for periods that never reset.
    pub end_ms: Option<i64>,
}

const HOUR_MS: i64 = 3_600_000;

/// The window of `period` that contains `now_ms`.
///
/// Calendar windows take timezone arithmetic (about 140 ns a daily window
/// in a zone with DST), and the state machine asks for the same hour and
/// day of the same zone for every operation it applies. Each thread keeps
/// the last window it computed per period and zone kind: windows tile time,
/// so a window that contains `now_ms` is the answer for it, whatever
/// instant it was first computed for.
pub fn window(period: Period, tz: Tz, now_ms: i64) -> Window {
    let slot = match period {
        Period::Hourly => 0,
        Period::Daily => 1,
        Period::Monthly => 2,
        Period::Never | Period::Second | Period::Minute => return computed(period, tz, now_ms),
    };
    LAST.with(|cell| {
        let mut last = cell.get();
        if let Some((z, w)) = last[slot]
            && z == tz
            && w.start_ms <= now_ms
            && w.end_ms.is_some_and(|end| now_ms < end)
        {
            return w;
        }
        let w = computed(period, tz, now_ms);
        last[slot] = Some((tz, w));
        cell.set(last);
        w
    })
}

thread_local! {
    /// The last hourly, daily and monthly window computed on this thread.
    static LAST: std::cell::Cell<[Option<(Tz, Window)>; 3]> =
        const { std::cell::Cell::new([None; 3]) };
}

/// [`window`] without the cache.
fn computed(period: Period, tz: Tz, now_ms: i64) -> Window {
    match period {
        Period::Never | Period::Second | Period::Minute => Window {
            start_ms: 0,
            end_ms: None,
        },
        Period::Hourly => {
            let local = utc(now_ms).with_timezone(&tz);
            let into_hour = i64::from(local.minute()) * 60_000
                + i64::from(local.second()) * 1000
                + i64::from(local.timestamp_subsec_millis());
            let start = now_ms - into_hour;
            Window {
                start_ms: start,
                end_ms: Some(start + HOUR_MS),
            }
        }
        Period::Daily => calendar_window(tz, now_ms, |d| d, |d| d.succ_opt().unwrap_or(d)),
        Period::Monthly => calendar_window(tz, now_ms, first_of_month, |d| {
            first_of_month(first_of_month(d) + chrono::Days::new(32))
        }),
    }
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

/// `align` maps a local date to its period's first day, `next` maps a
/// period's first day to the next period's first day.
fn calendar_window(
    tz: Tz,
    now_ms: i64,
    align: impl Fn(NaiveDate) -> NaiveDate,
    next: impl Fn(NaiveDate) -> NaiveDate,
) -> Window {
    let mut first = align(utc(now_ms).with_timezone(&tz).date_naive());
    let mut start = boundary(tz, first);
    if start > now_ms {
        // A repeated local midnight can put `now` before its own date's
        // boundary: it belongs to the previous period.
        first = align(first.pred_opt().unwrap_or(first));
        start = boundary(tz, first);
    }
    let mut end = boundary(tz, next(first));
    while end <= now_ms {
        first = next(first);
        start = end;
        end = boundary(tz, next(first));
    }
    Window {
        start_ms: start,
        end_ms: Some(end),
    }
}

/// The instant at which local midnight of `date` begins.
fn boundary(tz: Tz, date: NaiveDate) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(first, _) => first.timestamp_millis(),
        chrono::LocalResult::None => gap_end(tz, midnight),
    }
}

/// A local time inside a DST gap does not exist; the period starts where the
/// gap ends, which is that local time read with the offset in force before it.
fn gap_end(tz: Tz, local: NaiveDateTime) -> i64 {
    let mut probe = local;
    for _ in 0..96 {
        probe -= chrono::Duration::minutes(30);
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            let offset = i64::from(t.offset().fix().local_minus_utc());
            return (local.and_utc().timestamp() - offset) * 1000;
        }
    }
    local.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn monthly_new_york_resets_at_local_midnight_on_the_first() {
        let tz = chrono_tz::America::New_York;
        let w = window(Period::Monthly, tz, ms(tz, 2026, 11, 30, 23, 59));
        assert_eq!(w.start_ms, ms(tz, 2026, 11, 1, 0, 0));
        assert_eq!(w.end_ms, Some(ms(tz, 2026, 12, 1, 0, 0)));
        // 05:00 UTC on Dec 1st is midnight in New York (EST, UTC-5).
        assert_eq!(
            w.end_ms,
            Some(
                Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0)
                    .unwrap()
                    .timestamp_millis()
            )
        );
    }

    #[test]
    fn daily_window_over_spring_forward_is_23_hours() {
        let tz = chrono_tz::America::New_York;
        let w = window(Period::Daily, tz, ms(tz, 2026, 3, 8, 12, 0));
        assert_eq!(w.end_ms.unwrap() - w.start_ms, 23 * HOUR_MS);
        let w = window(Period::Daily, tz, ms(tz, 2026, 11, 1, 12, 0));
        assert_eq!(w.end_ms.unwrap() - w.start_ms, 25 * HOUR_MS);
    }

    #[test]
    fn midnight_in_a_dst_gap_starts_when_the_gap_ends() {
        // Santiago skipped 00:00-01:00 on 2024-09-08.
        let tz = chrono_tz::America::Santiago;
        let now = Utc
            .with_ymd_and_hms(2024, 9, 8, 12, 0, 0)
            .unwrap()
            .timestamp_millis();
        let w = window(Period::Daily, tz, now);
        let start = utc(w.start_ms).with_timezone(&tz);
        assert_eq!((start.hour(), start.minute()), (1, 0));
        assert_eq!(
            start.date_naive(),
            NaiveDate::from_ymd_opt(2024, 9, 8).unwrap()
        );
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop::sample::select(vec![
            chrono_tz::UTC,
            chrono_tz::America::New_York,
            chrono_tz::America::Santiago,
            chrono_tz::Europe::London,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Adelaide,
            chrono_tz::Pacific::Apia,
        ])
    }

    fn periods() -> impl Strategy<Value = Period> {
        prop::sample::select(vec![Period::Hourly, Period::Daily, Period::Monthly])
    }

    proptest! {
        /// Windows contain `now`, tile time without gaps or overlaps, and
        /// begin on the local calendar boundary of their period.
        #[test]
        fn windows_tile_time_on_local_boundaries(
            tz in zones(),
            period in periods(),
            // 2000-01-01 .. 2040-01-01
            now in 946_684_800_000i64..2_208_988_800_000i64,
        ) {
            let w = window(period, tz, now);
            let end = w.end_ms.unwrap();
            prop_assert!(w.start_ms <= now && now < end, "{w:?} does not contain {now}");
            // The next window starts exactly where this one ends ...
            prop_assert_eq!(window(period, tz, end).start_ms, end);
            // ... and the instant before the start is in the previous window.
            prop_assert_eq!(window(period, tz, w.start_ms - 1).end_ms, Some(w.start_ms));
            let local = utc(w.start_ms).with_timezone(&tz);
            prop_assert_eq!((local.minute(), local.second()), (0, 0));
            if period != Period::Hourly {
                // Local midnight, or the first instant after a DST gap.
                let before = utc(w.start_ms - 1).with_timezone(&tz);
                prop_assert!(local.hour() == 0 || before.date_naive() < local.date_naive());
                prop_assert_ne!(before.date_naive(), local.date_naive());
            }
            if period == Period::Monthly {
                prop_assert_eq!(local.day(), 1);
            }
        }

        /// The cached windows are the computed ones, whatever order the
        /// instants and zones come in.
        #[test]
        fn a_cached_window_is_the_computed_one(
            asks in prop::collection::vec(
                (zones(), periods(), 946_684_800_000i64..2_208_988_800_000i64, 0i64..200_000_000),
                1..40,
            ),
        ) {
            for (tz, period, base, step) in asks {
                for now in [base, base + step, base - step, base + 3_600_000] {
                    prop_assert_eq!(window(period, tz, now), computed(period, tz, now));
                }
            }
        }
    }
}
