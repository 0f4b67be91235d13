//! Repeated identical failures, logged once with a count: a loop that
//! retries every 250 ms against a dead peer would otherwise write a line
//! per retry (hundreds of megabytes an hour, burying everything else).
//!
//! Each retrying site keeps its last failure per key. The first failure is
//! logged; the same failure again is counted, not logged, until a minute
//! has passed (then it is logged with the count) or the failure changes
//! or stops (then the count of the old one is logged once).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a failure that keeps repeating is logged again.
pub const RELOG_AFTER: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Repeats {
    last: Mutex<HashMap<String, Last>>,
}

struct Last {
    message: String,
    /// Times seen since it was last logged.
    unlogged: u64,
    logged_at: Instant,
}

/// What to log for a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Log {
    /// Log it; the failure before it (a different one) had repeated
    /// `previous` times unlogged.
    New { previous: u64 },
    /// The same failure, logged again after [`RELOG_AFTER`]: `times` since
    /// it was last logged.
    Again { times: u64 },
    /// The same failure, counted.
    Quiet,
}

impl Repeats {
    /// A failure of `key` with `message`, seen at `now`.
    pub fn failed(&self, key: &str, message: &str, now: Instant) -> Log {
        let Ok(mut last) = self.last.lock() else {
            return Log::New { previous: 0 };
        };
        match last.get_mut(key) {
            Some(l) if l.message == message => {
                l.unlogged += 1;
                if now.duration_since(l.logged_at) < RELOG_AFTER {
                    return Log::Quiet;
                }
                let times = std::mem::take(&mut l.unlogged);
                l.logged_at = now;
                Log::Again { times }
            }
            _ => {
                let before = last.insert(
                    key.to_string(),
                    Last {
                        message: message.to_string(),
                        unlogged: 0,
                        logged_at: now,
                    },
                );
                Log::New {
                    previous: before.map_or(0, |b| b.unlogged),
                }
            }
        }
    }

    /// `key` succeeded: the times its last failure repeated unlogged, if it
    /// had failed.
    pub fn recovered(&self, key: &str) -> Option<u64> {
        self.last.lock().ok()?.remove(key).map(|l| l.unlogged)
    }
}

/// Log a retried failure through `repeats` at `level`:
/// `log_repeated!(Level::INFO, repeats, key, err, "what", field = value, …)`.
#[macro_export]
macro_rules! log_repeated {
    ($level:expr, $repeats:expr, $key:expr, $err:expr, $what:literal $(, $k:ident = $v:expr)*) => {{
        let message = $err.to_string();
        match $repeats.failed(&$key, &message, std::time::Instant::now()) {
            $crate::repeats::Log::New { previous: 0 } => {
                tracing::event!($level, $($k = $v,)* error = %message, $what)
            }
            $crate::repeats::Log::New { previous } => {
                tracing::event!($level, $($k = $v,)* error = %message, previous_repeated = previous, $what)
            }
            $crate::repeats::Log::Again { times } => {
                tracing::event!($level, $($k = $v,)* error = %message, repeated = times, $what)
            }
            $crate::repeats::Log::Quiet => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_is_logged_once_then_with_its_count() {
        let r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.failed("g1", "unreachable", t0), Log::New { previous: 0 });
        for i in 1..=100u64 {
            let at = t0 + Duration::from_millis(250 * i);
            let expect = if at.duration_since(t0) < RELOG_AFTER {
                Log::Quiet
            } else {
                Log::Again { times: i }
            };
            assert_eq!(r.failed("g1", "unreachable", at), expect, "retry {i}");
        }
        // Another key is its own.
        assert_eq!(r.failed("g2", "unreachable", t0), Log::New { previous: 0 });
        // A different failure is logged, with how often the old one repeated.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(r.failed("g2", "unreachable", later), Log::Quiet);
        assert_eq!(r.failed("g2", "refused", later), Log::New { previous: 1 });
        assert_eq!(r.recovered("g2"), Some(0));
        assert_eq!(r.recovered("g2"), None);
    }
}
