//! The operators' alerts as a service: their webhook endpoints (kept in
//! the meta group, secrets sealed before they are proposed and shown
//! once), replays, and the hand-on of every tenant's alerts from the
//! groups this node leads.
use super::Engine;
use super::webhooks::{Feed, context};
use crate::alerts::platform::{ENDPOINTS_MAX, Mirrored};
use crate::alerts::{DeliveryState, signature};
use crate::alerts::{Endpoint, EndpointSpec, PlatformAlertOp, PlatformAlerts, PlatformChange};
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::TenantId;
use crate::quota::QuotaError;
use crate::raft::{Command, MetaOp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Tenants' alerts handed on in one meta entry, at most.
const MIRROR_BATCH: usize = 500;

/// What this node knows was handed on already, per tenant (so a round
/// looks at the meta group's record only for tenants with new alerts).
#[derive(Default)]
pub(crate) struct HandedOn(Mutex<HashMap<TenantId, u64>>);

impl Engine {
    /// Read the operators' alerts (this node's replica of the meta group).
    pub fn platform_alerts<T>(&self, f: impl FnOnce(&PlatformAlerts) -> T) -> T {
        match self.router.meta.state.read() {
            Ok(m) => f(&m.platform_alerts),
            Err(poisoned) => f(&poisoned.into_inner().platform_alerts),
        }
    }

    /// Propose `change` to the meta group.
    pub(crate) async fn platform_write(
        &self,
        change: PlatformChange,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        let op = PlatformAlertOp {
            change,
            by: by.actor.clone(),
            request_id: by.request_id.clone(),
            at_ms: self.now_ms(),
        };
        self.router
            .meta_write(Command::Meta(MetaOp::PlatformAlerts(Since(Box::new(op)))))
            .await?;
        Ok(())
    }

    /// Propose `change` and wait until this node's replica shows `done`.
    async fn platform_change(
        &self,
        change: PlatformChange,
        by: &AuditMeta,
        done: impl Fn(&PlatformAlerts) -> bool,
    ) -> Result<(), EngineError> {
        self.platform_write(change, by).await?;
        self.router.await_meta(|m| done(&m.platform_alerts)).await;
        Ok(())
    }

    fn platform_endpoint_exists(&self, id: &str) -> Result<(), EngineError> {
        if self.platform_alerts(|p| p.feed.endpoints.contains_key(id)) {
            Ok(())
        } else {
            Err(EngineError::PlatformWebhookNotFound { id: id.to_string() })
        }
    }

    /// Register an operators' endpoint; returns its id and its signing
    /// secret (shown this once).
    pub async fn add_platform_webhook(
        &self,
        spec: EndpointSpec,
        by: &AuditMeta,
    ) -> Result<(String, String), EngineError> {
        if self.platform_alerts(|p| p.feed.endpoints.len()) >= ENDPOINTS_MAX {
            return Err(EngineError::TooManyPlatformWebhooks {
                limit: ENDPOINTS_MAX as u32,
            });
        }
        self.webhook_addresses(&spec.url).await?;
        let id = format!("ep_{}", uuid::Uuid::new_v4().simple());
        let secret = signature::new_secret();
        let sealed = self
            .secrets_key()?
            .seal(&context(Feed::Platform, &id), &secret);
        let endpoint = Endpoint::new(id.clone(), spec, sealed);
        self.platform_change(PlatformChange::Add(Box::new(endpoint)), by, |p| {
            p.feed.endpoints.contains_key(&id)
        })
        .await?;
        if !self.platform_alerts(|p| p.feed.endpoints.contains_key(&id)) {
            // Another operator's endpoint took the last place first.
            return Err(EngineError::TooManyPlatformWebhooks {
                limit: ENDPOINTS_MAX as u32,
            });
        }
        Ok((id, secret))
    }

    pub async fn update_platform_webhook(
        &self,
        id: &str,
        spec: EndpointSpec,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        self.platform_endpoint_exists(id)?;
        self.webhook_addresses(&spec.url).await?;
        let change = PlatformChange::Update {
            id: id.to_string(),
            spec: spec.clone(),
        };
        self.platform_change(change, by, |p| {
            p.feed.endpoints.get(id).is_none_or(|e| {
                e.url == spec.url && e.events == spec.events && e.enabled == spec.enabled
            })
        })
        .await?;
        self.platform_endpoint_exists(id)
    }

    pub async fn remove_platform_webhook(
        &self,
        id: &str,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        self.platform_endpoint_exists(id)?;
        let change = PlatformChange::Remove { id: id.to_string() };
        self.platform_change(change, by, |p| !p.feed.endpoints.contains_key(id))
            .await
    }

    /// A new signing secret; the old one keeps signing for `overlap`.
    pub async fn rotate_platform_webhook_secret(
        &self,
        id: &str,
        overlap: Duration,
        by: &AuditMeta,
    ) -> Result<String, EngineError> {
        self.platform_endpoint_exists(id)?;
        let secret = signature::new_secret();
        let sealed = self
            .secrets_key()?
            .seal(&context(Feed::Platform, id), &secret);
        let change = PlatformChange::Rotate {
            id: id.to_string(),
            secret: sealed.clone(),
            overlap_until_ms: self.now_ms().saturating_add(overlap.as_millis() as i64),
        };
        self.platform_change(change, by, |p| {
            p.feed.endpoints.get(id).is_none_or(|e| e.secret == sealed)
        })
        .await?;
        self.platform_endpoint_exists(id)?;
        Ok(secret)
    }

    /// Queue a finished delivery of the operators' again.
    pub async fn replay_platform_delivery(
        &self,
        id: u64,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        let finished = self.platform_alerts(|p| {
            p.feed
                .deliveries
                .get(&id)
                .map(|d| d.state != DeliveryState::Pending)
        });
        if finished != Some(true) {
            return Err(QuotaError::invalid(
                "delivery",
                format!("delivery {id} is unknown or still pending"),
            )
            .into());
        }
        self.platform_change(PlatformChange::Replay { id }, by, |p| {
            p.feed
                .deliveries
                .get(&id)
                .is_none_or(|d| d.state == DeliveryState::Pending || d.tries > 0)
        })
        .await
    }

    /// One round of the hand-on: the alerts of tenants in the groups this
    /// node leads that the operators' feed does not have yet, proposed to
    /// the meta group (which raises each once). Returns how many.
    pub async fn hand_on_alerts(&self) -> Result<usize, EngineError> {
        // Three short looks, never two locks at once: the tenants with
        // alerts beyond what this node knows was handed on; the meta
        // group's record for those; their alerts beyond it.
        let known =
            |t: &TenantId, known: &HashMap<TenantId, u64>| known.get(t).copied().unwrap_or(0);
        let mut candidates: Vec<TenantId> = Vec::new();
        {
            let handed = self.handed_on.0.lock().unwrap_or_else(|p| p.into_inner());
            for shard in self.router.served() {
                let Ok(state) = shard.group.state.read() else {
                    continue;
                };
                candidates.extend(
                    state
                        .tenants
                        .iter()
                        .filter(|(id, t)| t.alerts.raised > known(id, &handed))
                        .map(|(id, _)| *id),
                );
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let recorded: Vec<(TenantId, u64)> =
            self.platform_alerts(|p| candidates.iter().map(|t| (*t, p.mirrored(t))).collect());
        let mut batch: Vec<Mirrored> = Vec::new();
        {
            let mut handed = self.handed_on.0.lock().unwrap_or_else(|p| p.into_inner());
            for (tenant, last) in &recorded {
                handed.insert(*tenant, *last);
            }
            for shard in self.router.served() {
                let Ok(state) = shard.group.state.read() else {
                    continue;
                };
                for (tenant, last) in &recorded {
                    let Some(t) = state.tenants.get(tenant) else {
                        continue;
                    };
                    for alert in t.alerts.recent.iter().filter(|a| a.seq > *last) {
                        if batch.len() >= MIRROR_BATCH {
                            break;
                        }
                        batch.push(Mirrored {
                            tenant: *tenant,
                            alert: alert.clone(),
                        });
                    }
                }
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        let mut last: HashMap<TenantId, u64> = HashMap::new();
        for m in &batch {
            last.insert(m.tenant, m.alert.seq);
        }
        self.platform_write(
            PlatformChange::Mirror(batch),
            &AuditMeta::new("system", "alerts"),
        )
        .await?;
        let mut handed = self.handed_on.0.lock().unwrap_or_else(|p| p.into_inner());
        handed.extend(last);
        Ok(n)
    }
}
