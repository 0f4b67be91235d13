//! The behaviour every archive backend must show. Each check uses fresh
//! tenant and group ids, so the suite can run again and again against one
//! shared (ScyllaDB) keyspace. Run by `engine/tests/archive_contract.rs`
//! against every backend.
use super::{Archive, SCHEMA_VERSION, SNAPSHOTS_KEPT, SnapshotRecord, UsageBucket};
use crate::audit::{self, AuditEntry, AuditEvent, AuditLog, AuditMeta};
use crate::usage_history::Granularity;
use uuid::Uuid;

const HOUR: i64 = 3_600_000;

fn now_ms() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_ms()
}

fn fresh_group() -> u64 {
    // Beyond any real group id (shard groups count up from 1).
    (Uuid::new_v4().as_u128() as u64) | (1 << 62)
}

fn bucket(tenant: Uuid, quota: &str, g: Granularity, start_ms: i64, amount: u64) -> UsageBucket {
    UsageBucket {
        tenant,
        quota: quota.into(),
        granularity: g,
        start_ms,
        amount,
    }
}

/// Creating or migrating the schema twice is harmless.
pub async fn migrate_is_idempotent(a: &dyn Archive) {
    assert_eq!(a.migrate().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(a.migrate().await.unwrap(), SCHEMA_VERSION);
}

/// A bucket written again replaces its amount (totals, not deltas), reads
/// cover `[from, to)` oldest first, and tenants, quotas and granularities
/// do not mix.
pub async fn usage_buckets_are_upserted_not_added(a: &dyn Archive) {
    let (t, other) = (Uuid::new_v4(), Uuid::new_v4());
    let base = (now_ms() / HOUR - 48) * HOUR;
    let h = |i: i64| base + i * HOUR;
    a.put_usage(&[
        bucket(t, "tokens", Granularity::Hour, h(2), 30),
        bucket(t, "tokens", Granularity::Hour, h(0), 10),
        bucket(t, "tokens", Granularity::Hour, h(1), 20),
        bucket(t, "requests", Granularity::Hour, h(1), 7),
        bucket(t, "tokens", Granularity::Day, h(0), 60),
        bucket(other, "tokens", Granularity::Hour, h(1), 99),
    ])
    .await
    .unwrap();
    // A resend after a retry, with one bucket grown meanwhile.
    a.put_usage(&[
        bucket(t, "tokens", Granularity::Hour, h(1), 25),
        bucket(t, "tokens", Granularity::Hour, h(2), 30),
    ])
    .await
    .unwrap();
    let got = a
        .usage(t, "tokens", Granularity::Hour, h(0), h(3))
        .await
        .unwrap();
    let amounts: Vec<(i64, u64)> = got.iter().map(|b| (b.start_ms, b.amount)).collect();
    assert_eq!(amounts, [(h(0), 10), (h(1), 25), (h(2), 30)]);
    assert!(got.iter().all(|b| b.tenant == t && b.quota == "tokens"));
    let window = a
        .usage(t, "tokens", Granularity::Hour, h(1), h(2))
        .await
        .unwrap();
    assert_eq!(window.len(), 1, "to is exclusive, from inclusive");
    assert_eq!(window[0].start_ms, h(1));
    let daily = a
        .usage(t, "tokens", Granularity::Day, h(0), h(24))
        .await
        .unwrap();
    assert_eq!(daily.iter().map(|b| b.amount).collect::<Vec<_>>(), [60]);
    let requests = a
        .usage(t, "requests", Granularity::Hour, h(0), h(3))
        .await
        .unwrap();
    assert_eq!(requests.iter().map(|b| b.amount).collect::<Vec<_>>(), [7]);
    assert!(
        a.usage(t, "tokens", Granularity::Hour, h(3), h(0))
            .await
            .unwrap()
            .is_empty(),
        "an empty range"
    );
}

/// Buckets past their retention are not kept.
pub async fn expired_buckets_are_dropped(a: &dyn Archive) {
    let t = Uuid::new_v4();
    let old = now_ms() - crate::usage_history::HOURLY_RETENTION_MS - 2 * HOUR;
    let recent = now_ms() - 2 * HOUR;
    a.put_usage(&[
        bucket(t, "tokens", Granularity::Hour, old, 5),
        bucket(t, "tokens", Granularity::Hour, recent, 6),
        // Daily buckets are kept longer than hourly ones.
        bucket(t, "tokens", Granularity::Day, old, 7),
    ])
    .await
    .unwrap();
    let hourly = a
        .usage(t, "tokens", Granularity::Hour, old - HOUR, now_ms())
        .await
        .unwrap();
    assert_eq!(hourly.iter().map(|b| b.amount).collect::<Vec<_>>(), [6]);
    let daily = a
        .usage(t, "tokens", Granularity::Day, old - HOUR, now_ms())
        .await
        .unwrap();
    assert_eq!(daily.iter().map(|b| b.amount).collect::<Vec<_>>(), [7]);
}

fn chain(n: usize) -> Vec<AuditEvent> {
    let mut log = AuditLog::default();
    let meta = AuditMeta::new("alice", "req-1");
    for i in 0..n {
        log.append(
            &meta,
            1_000 + i as i64,
            AuditEntry {
                action: "quota.updated".into(),
                target: format!("quota-{i}"),
                before: format!("{{\"limit\":{i}}}"),
                after: format!("{{\"limit\":{}}}", i + 1),
            },
        );
    }
    log.events()
}

/// Audit events are kept by sequence number: resending is harmless, reads
/// page in order, and the chain read back verifies.
pub async fn audit_events_keep_their_chain(a: &dyn Archive) {
    let (t, other) = (Uuid::new_v4(), Uuid::new_v4());
    let events = chain(8);
    a.put_audit(t, &events[..5]).await.unwrap();
    // A resend of what was already written, with the rest.
    a.put_audit(t, &events[3..]).await.unwrap();
    a.put_audit(other, &events[..2]).await.unwrap();
    let all = a.audit(t, 0, 100).await.unwrap();
    assert_eq!(all, events);
    assert_eq!(audit::verify(&all), Ok(()));
    let page = a.audit(t, 2, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4, 5],
        "after_seq and limit page"
    );
    assert!(a.audit(t, 8, 10).await.unwrap().is_empty());
    assert_eq!(a.audit(other, 0, 100).await.unwrap().len(), 2);
    assert!(a.audit(Uuid::new_v4(), 0, 100).await.unwrap().is_empty());
}

fn snapshot(group: u64, index: u64) -> SnapshotRecord {
    SnapshotRecord {
        group,
        last_index: index,
        last_term: 3,
        taken_at_ms: 1_000 + index as i64,
        data: format!("state as of {index}").into_bytes(),
    }
}

/// The newest snapshots of a group are kept, newest first; writing one
/// again is harmless; groups do not mix.
pub async fn newest_snapshots_are_kept(a: &dyn Archive) {
    let (g, other) = (fresh_group(), fresh_group());
    for index in [10, 50, 20, 40, 30] {
        a.put_snapshot(&snapshot(g, index)).await.unwrap();
    }
    a.put_snapshot(&snapshot(g, 50)).await.unwrap();
    a.put_snapshot(&snapshot(other, 5)).await.unwrap();
    let kept = a.snapshots(g).await.unwrap();
    let indexes: Vec<u64> = kept.iter().map(|s| s.last_index).collect();
    assert_eq!(indexes, [50, 40, 30][..SNAPSHOTS_KEPT]);
    assert_eq!(kept[0], snapshot(g, 50), "stored whole, data included");
    assert_eq!(a.snapshots(other).await.unwrap(), [snapshot(other, 5)]);
    assert!(a.snapshots(fresh_group()).await.unwrap().is_empty());
    let groups = a.snapshot_groups().await.unwrap();
    assert!(groups.contains(&g) && groups.contains(&other), "{groups:?}");
}

/// A snapshot taken later counts as newer even with a lower log index (a
/// cluster restored from the archive starts a fresh log), and the older
/// ones make room for it.
pub async fn snapshots_are_ordered_by_when_they_were_taken(a: &dyn Archive) {
    let g = fresh_group();
    let taken = |index: u64, at: i64| SnapshotRecord {
        taken_at_ms: at,
        ..snapshot(g, index)
    };
    for (index, at) in [(100, 1_000), (300, 3_000), (200, 2_000)] {
        a.put_snapshot(&taken(index, at)).await.unwrap();
    }
    a.put_snapshot(&taken(7, 9_000)).await.unwrap();
    let kept: Vec<(u64, i64)> = a
        .snapshots(g)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.last_index, s.taken_at_ms))
        .collect();
    assert_eq!(
        kept,
        [(7, 9_000), (300, 3_000), (200, 2_000)][..SNAPSHOTS_KEPT]
    );
}

/// Sync progress starts unknown and never moves backwards.
pub async fn sync_position_only_moves_forward(a: &dyn Archive) {
    let g = fresh_group();
    assert_eq!(a.synced_to(g).await.unwrap(), None);
    a.set_synced_to(g, 10).await.unwrap();
    assert_eq!(a.synced_to(g).await.unwrap(), Some(10));
    a.set_synced_to(g, 5).await.unwrap();
    assert_eq!(a.synced_to(g).await.unwrap(), Some(10));
    a.set_synced_to(g, 12).await.unwrap();
    assert_eq!(a.synced_to(g).await.unwrap(), Some(12));
}

/// The tenant the dedicated-schema checks use: one well-known id, so runs
/// against a shared ScyllaDB cluster reuse one dedicated keyspace rather
/// than leaving a new one behind each time. (Everything written inside it
/// still uses fresh ids.)
pub const DEDICATED_TENANT: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_00c0_47ac_7000);

/// A tenant's dedicated schema is an archive of its own: what is written
/// there is not seen in the deployment's schema and the other way round;
/// it is registered once usable, and asking again gives the same schema.
pub async fn a_dedicated_schema_is_apart_and_registered(a: &dyn Archive) {
    let t = DEDICATED_TENANT;
    let d = a.dedicated(t).await.unwrap();
    assert_eq!(d.migrate().await.unwrap(), SCHEMA_VERSION);
    let listed = a.dedicated_schemas().await.unwrap();
    let entry = listed
        .iter()
        .find(|s| s.tenant == t)
        .unwrap_or_else(|| panic!("{t} is not registered: {listed:?}"))
        .clone();
    assert!(!entry.name.is_empty());

    let (g, hour) = (fresh_group(), (now_ms() / HOUR - 2) * HOUR);
    d.put_usage(&[bucket(t, "tokens", Granularity::Hour, hour, 9)])
        .await
        .unwrap();
    d.put_audit(t, &chain(3)).await.unwrap();
    d.put_snapshot(&snapshot(g, 7)).await.unwrap();
    d.set_synced_to(g, 7).await.unwrap();
    // The shared schema has none of it.
    assert!(
        a.usage(t, "tokens", Granularity::Hour, hour, hour + HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(a.snapshots(g).await.unwrap().is_empty());
    assert!(!a.snapshot_groups().await.unwrap().contains(&g));
    assert_eq!(a.synced_to(g).await.unwrap(), None);
    // And the other way round.
    let g2 = fresh_group();
    a.put_snapshot(&snapshot(g2, 3)).await.unwrap();
    assert!(!d.snapshot_groups().await.unwrap().contains(&g2));

    // Asked again: the same schema, the registration unchanged.
    let again = a.dedicated(t).await.unwrap();
    assert_eq!(
        again
            .usage(t, "tokens", Granularity::Hour, hour, hour + HOUR)
            .await
            .unwrap()
            .iter()
            .map(|b| b.amount)
            .collect::<Vec<_>>(),
        [9]
    );
    assert_eq!(again.audit(t, 0, 10).await.unwrap(), chain(3));
    assert_eq!(again.snapshots(g).await.unwrap(), [snapshot(g, 7)]);
    let listed = a.dedicated_schemas().await.unwrap();
    assert!(listed.contains(&entry), "{listed:?}");
    // A dedicated schema has no dedicated schemas.
    assert!(d.dedicated_schemas().await.unwrap().is_empty());
    match d.dedicated(Uuid::new_v4()).await {
        Err(super::ArchiveError::Config { field, .. }) => assert_eq!(field, "tenant"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a dedicated schema made one of its own"),
    }
}

/// Purging a tenant removes its buckets (every quota named, both
/// granularities) and its audit events, nobody else's; again is harmless.
pub async fn purging_a_tenant_removes_only_its_history(a: &dyn Archive) {
    let (t, other) = (Uuid::new_v4(), Uuid::new_v4());
    let day = (now_ms() / (24 * HOUR) - 1) * 24 * HOUR;
    let range = (day, day + 24 * HOUR);
    a.put_usage(&[
        bucket(t, "tokens", Granularity::Hour, day, 1),
        bucket(t, "tokens", Granularity::Day, day, 1),
        bucket(t, "gpu_hours", Granularity::Hour, day + HOUR, 2),
        bucket(other, "tokens", Granularity::Hour, day, 3),
    ])
    .await
    .unwrap();
    a.put_audit(t, &chain(2)).await.unwrap();
    a.put_audit(other, &chain(2)).await.unwrap();
    let quotas = ["gpu_hours".to_string(), "tokens".to_string()];
    a.purge_tenant(t, &quotas).await.unwrap();
    for q in &quotas {
        for g in [Granularity::Hour, Granularity::Day] {
            let left = a.usage(t, q, g, range.0, range.1).await.unwrap();
            assert!(left.is_empty(), "{q} {g:?}: {left:?}");
        }
    }
    assert!(a.audit(t, 0, 10).await.unwrap().is_empty());
    let kept = a
        .usage(other, "tokens", Granularity::Hour, range.0, range.1)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(a.audit(other, 0, 10).await.unwrap().len(), 2);
    a.purge_tenant(t, &quotas).await.unwrap();
    a.purge_tenant(Uuid::new_v4(), &[]).await.unwrap();
}
