//! When the state machine applied the entries a traced request waits on.
//!
//! The state machine knows entries, not requests; the batcher knows which
//! entry carries a traced request (the log id Raft answers with). So while
//! the batcher waits on a traced entry it asks for apply times, the state
//! machine records them by log index, and the batcher takes its entry's.
//! Untraced, an apply costs one atomic load.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

/// Times kept at most: entries applied while a traced one waits that no
/// one takes (the untraced ones among them) are dropped oldest first.
const KEPT: usize = 256;

#[derive(Debug, Default)]
pub struct ApplyClock {
    /// Traced entries in flight: record only while there are some.
    wanted: AtomicUsize,
    times: Mutex<VecDeque<(u64, SystemTime, SystemTime)>>,
}

impl ApplyClock {
    /// Whether applies are timed now.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) > 0
    }

    /// A traced entry is about to be appended.
    pub fn want(&self) {
        self.wanted.fetch_add(1, Ordering::Relaxed);
    }

    /// Its wait is over: take its apply's times, if it was applied here.
    pub fn take(&self, index: Option<u64>) -> Option<(SystemTime, SystemTime)> {
        self.wanted.fetch_sub(1, Ordering::Relaxed);
        let index = index?;
        let mut times = self.times.lock().ok()?;
        let at = times.iter().rposition(|(i, ..)| *i == index)?;
        times.remove(at).map(|(_, start, end)| (start, end))
    }

    pub fn record(&self, index: u64, start: SystemTime, end: SystemTime) {
        if let Ok(mut times) = self.times.lock() {
            if times.len() == KEPT {
                times.pop_front();
            }
            times.push_back((index, start, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_finds_its_own_apply_and_old_ones_are_dropped() {
        let clock = ApplyClock::default();
        assert!(!clock.wanted());
        clock.want();
        assert!(clock.wanted());
        let t = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        for i in 0..(KEPT as u64 + 10) {
            clock.record(i, t(i), t(i + 1));
        }
        clock.want();
        assert_eq!(clock.take(Some(5)), None, "dropped: older than {KEPT}");
        assert_eq!(
            clock.take(Some(KEPT as u64)),
            Some((t(KEPT as u64), t(KEPT as u64 + 1)))
        );
        assert!(!clock.wanted());
    }
}
