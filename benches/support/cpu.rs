//! The process's CPU time, for figures per decision that do not depend on
//! how many cores the machine has.
use std::time::Duration;

/// The process's user + system CPU time so far.
pub fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks of 1/100 s (Linux's USER_HZ).
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}
