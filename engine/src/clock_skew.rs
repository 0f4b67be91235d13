//! Keeps a node's stamps within a bound of its peers' clocks.
//!
//! A tenant's time never goes backwards (its actor continues from the
//! latest stamp). So a leader whose clock runs an hour ahead stamps an
//! hour into the future, and after a failover to a node with a true clock
//! that tenant's time stands still for the hour: rates do not refill,
//! reservations do not expire, periods do not roll. A leader an hour
//! behind does the same to the tenants it takes over.
//!
//! Every Raft RPC carries the sender's clock and its reply the receiver's
//! (gRPC metadata, so no message format changes). From each round trip a
//! node estimates every peer's offset, takes the median of the cluster
//! (itself included, offset 0) and keeps its stamps within `max_skew` of
//! that median: a minority of wrong clocks is outvoted, and a node whose own
//! clock is wrong stamps the cluster's time instead, counted in
//! `quotad_clock_skew_clamped_total`.
use crate::clock::{Clock, SharedClock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// gRPC metadata: the sender's clock, ms since the epoch.
pub const CLOCK_HEADER: &str = "quotad-clock-ms";

/// A peer's offset not refreshed for this long no longer counts (the node
/// left, or cannot be reached).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Peers' clock offsets as measured by this node, and their median.
pub struct PeerClocks {
    /// This node's own clock, unbounded (what the offsets are relative to).
    pub raw: SharedClock,
    offsets: Mutex<HashMap<u64, (i64, Instant)>>,
    /// Median over the cluster of (peer clock - this clock), ms.
    median_ms: AtomicI64,
}

impl PeerClocks {
    pub fn new(raw: SharedClock) -> Arc<PeerClocks> {
        Arc::new(PeerClocks {
            raw,
            offsets: Mutex::new(HashMap::new()),
            median_ms: AtomicI64::new(0),
        })
    }

    /// A round trip to `peer`: sent and received at `sent_ms`/`received_ms`
    /// on this clock, answered at `peer_ms` on the peer's.
    pub fn observe(&self, peer: u64, sent_ms: i64, peer_ms: i64, received_ms: i64) {
        let midpoint = sent_ms + (received_ms - sent_ms) / 2;
        let offset = peer_ms.saturating_sub(midpoint);
        let Ok(mut offsets) = self.offsets.lock() else {
            return;
        };
        let now = Instant::now();
        offsets.insert(peer, (offset, now));
        offsets.retain(|_, (_, seen)| now.duration_since(*seen) < FORGET_AFTER);
        let mut all: Vec<i64> = offsets.values().map(|(o, _)| *o).collect();
        all.push(0);
        self.median_ms.store(median(&mut all), Ordering::Relaxed);
        metrics::gauge!(crate::telemetry::CLOCK_OFFSET)
            .set(-(self.median_ms.load(Ordering::Relaxed) as f64) / 1000.0);
    }

    /// Whether `peer` answered a call within `d`: a learner that stopped
    /// answering is not promoted however far its log got.
    pub fn heard_within(&self, peer: u64, d: Duration) -> bool {
        self.offsets
            .lock()
            .ok()
            .and_then(|o| o.get(&peer).map(|(_, seen)| seen.elapsed() < d))
            .unwrap_or(false)
    }

    /// The cluster's median clock minus this node's, ms.
    pub fn median_offset_ms(&self) -> i64 {
        self.median_ms.load(Ordering::Relaxed)
    }
}

/// The lower median (of an even count, the smaller middle value: with one
/// peer, a node keeps its own clock rather than splitting the difference).
fn median(values: &mut [i64]) -> i64 {
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// This node's clock kept within `max_skew_ms` of the cluster's median.
pub struct BoundedClock {
    peers: Arc<PeerClocks>,
    max_skew_ms: i64,
}

impl BoundedClock {
    pub fn new(peers: Arc<PeerClocks>, max_skew_ms: i64) -> BoundedClock {
        BoundedClock { peers, max_skew_ms }
    }
}

impl Clock for BoundedClock {
    fn now_ms(&self) -> i64 {
        let local = self.peers.raw.now_ms();
        let offset = self.peers.median_offset_ms();
        if offset.abs() <= self.max_skew_ms {
            return local;
        }
        metrics::counter!(crate::telemetry::CLOCK_SKEW_CLAMPED).increment(1);
        let cluster = local.saturating_add(offset);
        local.clamp(
            cluster.saturating_sub(self.max_skew_ms),
            cluster.saturating_add(self.max_skew_ms),
        )
    }
}

/// A clock shifted by a fixed amount: `--clock-offset-ms`, for drills that
/// show what a wrong clock does (and that the bound above holds).
pub struct OffsetClock {
    pub inner: SharedClock,
    pub offset_ms: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms().saturating_add(self.offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const HOUR: i64 = 3_600_000;

    fn node(now: i64) -> (Arc<ManualClock>, Arc<PeerClocks>, BoundedClock) {
        let raw = ManualClock::new(now);
        let peers = PeerClocks::new(raw.clone());
        let bounded = BoundedClock::new(peers.clone(), 1_000);
        (raw, peers, bounded)
    }

    #[test]
    fn a_node_an_hour_ahead_stamps_the_clusters_time_within_the_bound() {
        let t = 1_790_000_000_000;
        let (_, peers, clock) = node(t + HOUR);
        // Two peers with true clocks, 2 ms round trips.
        peers.observe(2, t + HOUR, t + 1, t + HOUR + 2);
        peers.observe(3, t + HOUR, t + 1, t + HOUR + 2);
        assert_eq!(peers.median_offset_ms(), -HOUR);
        assert_eq!(clock.now_ms(), t + 1_000);
    }

    #[test]
    fn a_node_an_hour_behind_is_raised_and_a_true_node_outvotes_one_wrong_peer() {
        let t = 1_790_000_000_000;
        let (_, peers, clock) = node(t - HOUR);
        peers.observe(2, t - HOUR, t, t - HOUR);
        peers.observe(3, t - HOUR, t + 5, t - HOUR);
        assert_eq!(clock.now_ms(), t - 1_000);
        // A true node with one peer ahead and one behind keeps its clock.
        let (_, peers, clock) = node(t);
        peers.observe(2, t, t + HOUR, t);
        peers.observe(3, t, t - HOUR, t);
        assert_eq!(clock.now_ms(), t);
        // Within the bound: the own clock, unchanged.
        let (_, peers, clock) = node(t);
        peers.observe(2, t, t + 900, t);
        peers.observe(3, t, t + 900, t);
        assert_eq!(clock.now_ms(), t);
    }

    #[test]
    fn with_one_peer_a_node_keeps_its_own_clock() {
        let t = 1_790_000_000_000;
        let (_, peers, clock) = node(t);
        peers.observe(2, t, t + HOUR, t);
        assert_eq!(clock.now_ms(), t, "no majority against it");
    }
}
