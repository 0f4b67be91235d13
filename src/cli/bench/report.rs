//! What one load run measured: counts, throughput and HDR latency
//! percentiles, and how it compares with the same load on the ceiling.
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::time::Duration;

/// 1 µs .. 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Requests answered without error.
    pub requests: u64,
    pub errors: u64,
    /// Decisions in the answered requests (a batch holds several).
    pub decisions: u64,
    pub elapsed: Duration,
    pub per_second: f64,
    pub decisions_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Report {
    /// Successful requests' latencies are in `h` (microseconds); each of
    /// them carried `per_request` decisions.
    pub fn new(h: &Histogram<u64>, errors: u64, per_request: u64, elapsed: Duration) -> Report {
        let requests = h.len();
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            requests,
            errors,
            decisions: requests * per_request,
            elapsed,
            per_second: requests as f64 / secs,
            decisions_per_second: (requests * per_request) as f64 / secs,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }

    /// This run's throughput as a fraction of `ceiling`'s.
    pub fn fraction_of(&self, ceiling: &Report) -> f64 {
        if ceiling.per_second > 0.0 {
            self.per_second / ceiling.per_second
        } else {
            0.0
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "decisions": self.decisions,
            "seconds": self.elapsed.as_secs_f64(),
            "perSecond": self.per_second,
            "decisionsPerSecond": self.decisions_per_second,
            "p50Us": self.p50_us,
            "p99Us": self.p99_us,
            "p999Us": self.p999_us,
            "maxUs": self.max_us,
        })
    }

    /// A table row: target, requests, errors, req/s, decisions/s, p50..max.
    pub fn row(&self, target: &str, fraction: Option<f64>) -> Vec<String> {
        vec![
            target.to_string(),
            self.requests.to_string(),
            self.errors.to_string(),
            format!("{:.0}", self.per_second),
            format!("{:.0}", self.decisions_per_second),
            fraction.map_or("-".into(), |f| format!("{:.0}%", f * 100.0)),
            format!("{} µs", self.p50_us),
            format!("{} µs", self.p99_us),
            format!("{} µs", self.p999_us),
            format!("{} µs", self.max_us),
        ]
    }

    pub const HEADER: [&'static str; 10] = [
        "TARGET",
        "REQUESTS",
        "ERRORS",
        "REQ/S",
        "DECISIONS/S",
        "OF CEILING",
        "P50",
        "P99",
        "P99.9",
        "MAX",
    ];
}

/// Open loop: when task `task` of `tasks` sends its `k`-th request, for
/// `rate` requests/s over all tasks. The tasks interleave, so the sends are
/// evenly spaced `1 / rate` apart however many tasks there are.
pub fn open_loop_offset(task: usize, tasks: usize, rate: f64, k: u64) -> Duration {
    let slot = k as f64 * tasks as f64 + task as f64;
    Duration::from_secs_f64(slot / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles_come_from_the_recorded_latencies() {
        let mut h = histogram();
        // 1..=1000 µs, once each.
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let r = Report::new(&h, 7, 1, Duration::from_secs(2));
        assert_eq!(r.requests, 1000);
        assert_eq!(r.errors, 7);
        assert_eq!(r.decisions, 1000);
        assert_eq!(r.per_second, 500.0);
        // HDR at 3 significant digits is exact below 2048.
        assert_eq!(r.p50_us, 500);
        assert_eq!(r.p99_us, 990);
        assert_eq!(r.p999_us, 999);
        assert_eq!(r.max_us, 1000);
    }

    #[test]
    fn merged_histograms_add_up() {
        let (mut a, mut b) = (histogram(), histogram());
        for _ in 0..30 {
            a.record(100).unwrap();
        }
        for _ in 0..70 {
            b.record(5_000).unwrap();
        }
        a.add(&b).unwrap();
        let r = Report::new(&a, 0, 1, Duration::from_secs(1));
        assert_eq!(r.requests, 100);
        assert_eq!(r.p50_us, h_equiv(5_000));
        assert_eq!(r.max_us, h_equiv(5_000));
    }

    #[test]
    fn batches_count_every_decision_and_fractions_compare_requests() {
        let mut h = histogram();
        for _ in 0..50 {
            h.record(10).unwrap();
        }
        let r = Report::new(&h, 0, 1000, Duration::from_secs(5));
        assert_eq!(r.decisions, 50_000);
        assert_eq!(r.decisions_per_second, 10_000.0);
        assert_eq!(r.per_second, 10.0);
        let mut c = histogram();
        for _ in 0..200 {
            c.record(10).unwrap();
        }
        let ceiling = Report::new(&c, 0, 1000, Duration::from_secs(5));
        assert_eq!(r.fraction_of(&ceiling), 0.25);
        let empty = Report::new(&histogram(), 3, 1, Duration::from_secs(1));
        assert_eq!(r.fraction_of(&empty), 0.0);
    }

    #[test]
    fn open_loop_sends_are_evenly_spaced_across_tasks() {
        // 4 tasks at 1000/s: together one send per millisecond.
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|t| (0..250).map(move |k| open_loop_offset(t, 4, 1000.0, k)))
            .collect();
        all.sort();
        assert_eq!(all.len(), 1000);
        for (i, at) in all.iter().enumerate() {
            assert_eq!(at.as_micros(), i as u128 * 1000);
        }
        // Within one second, exactly `rate` sends are due.
        assert_eq!(all.iter().filter(|d| d.as_secs() < 1).count(), 1000);
    }

    /// The value HDR reports for `v` at 3 significant digits.
    fn h_equiv(v: u64) -> u64 {
        let mut h = histogram();
        h.record(v).unwrap();
        h.max()
    }
}
