//! What idle tenants cost in a group's replicated state, part by part:
//! the tenant state (quotas included) and the audit chain. No engine and
//! no storage: the state machine's own structures, as `apply` leaves them
//! after each tenant's creation, counted by a counting allocator.
//!
//! ```sh
//! cargo bench --bench state_size          # 20,000 FREE tenants
//! QUOTAD_STATE_TENANTS=100000 cargo bench --bench state_size
//! ```
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::heap_bytes;
use quotad_engine::audit::AuditMeta;
use quotad_engine::model::{Tenant, TenantStatus, Tier};
use quotad_engine::quota::{QuotaState, TenantOp, TenantState, TierCatalog};
use quotad_engine::raft::{Command, ReplicatedState, ShardState, StampedOp};

/// Heap released by clearing one part of a copy of `g`, per tenant.
fn part(g: &ShardState, n: i64, clear: impl FnOnce(&mut ShardState)) -> i64 {
    let mut copy = g.clone();
    let before = heap_bytes();
    clear(&mut copy);
    let freed = before - heap_bytes();
    drop(copy);
    freed / n
}

fn main() {
    let n: i64 = std::env::var("QUOTAD_STATE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let catalog = TierCatalog::builtin();
    let by = AuditMeta::new("admin-user-1", "req-0123456789abcdef");
    let mut g = ShardState::default();
    let base = heap_bytes();
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        let tenant = Tenant {
            id,
            slug: format!("scale-{i}"),
            name: format!("Scale {i}"),
            tier: Tier::Free,
            status: TenantStatus::Active,
            timezone: chrono_tz::UTC,
            trial_ends_at_ms: None,
            settings_json: "{}".into(),
            created_at_ms: 1_790_000_000_000,
            updated_at_ms: 1_790_000_000_000,
            deleted: None,
        };
        let op = TenantOp::Create {
            tenant: Box::new(tenant),
            quotas: catalog.defaults(Tier::Free).clone(),
            owner: None,
        };
        g.apply(&Command::Batch(vec![StampedOp {
            tenant: id,
            at_ms: 1_790_000_000_000,
            op,
            audit: Some(by.clone()),
        }]));
    }
    // What the archive has yet to take goes once it is synced.
    g.unarchived = Default::default();
    let total = (heap_bytes() - base) / n;
    let tenants = part(&g, n, |c| c.tenants = Default::default());
    let audit = part(&g, n, |c| c.audit = Default::default());
    println!("{n} idle FREE tenants in one group's state");
    println!("| part | bytes per tenant |");
    println!("|---|---|");
    println!("| tenant state, quotas included | {tenants} |");
    println!("| audit chain (the creation event) | {audit} |");
    println!("| whole group state | {total} |");
    println!(
        "| (inline: TenantState {} bytes, QuotaState {} bytes) | |",
        std::mem::size_of::<TenantState>(),
        std::mem::size_of::<QuotaState>()
    );
}
