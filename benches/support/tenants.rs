//! Creating many tenants through the engine for the in-process benches
//! (strict and audited, as the REST API creates them).
use quotad_engine::audit::AuditMeta;
use quotad_engine::model::{TenantId, Tier};
use quotad_engine::{Engine, NewTenant};
use std::sync::Arc;

/// `n` tenants of `tier`, slugs `{prefix}-0..n`, up to 512 at a time.
pub async fn create(engine: &Arc<Engine>, n: usize, prefix: &str, tier: Tier) -> Vec<TenantId> {
    use futures::StreamExt;
    let by = AuditMeta::new("bench", "bench");
    futures::stream::iter(0..n)
        .map(|i| {
            let (engine, by) = (engine.clone(), by.clone());
            let new = NewTenant {
                slug: format!("{prefix}-{i}"),
                name: format!("{prefix} {i}"),
                tier,
                timezone: chrono_tz::UTC,
                trial_days: None,
                settings_json: "{}".into(),
                owner: None,
            };
            async move { engine.create_tenant(new, &by).await.unwrap().tenant.id }
        })
        .buffer_unordered(512)
        .collect()
        .await
}
