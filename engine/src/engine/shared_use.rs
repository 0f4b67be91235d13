//! Admission through a sharing grant: the consumer (the tenant named)
//! uses a provider's resource. The consumer's actor checks its copy of the
//! grant (active, unexpired, holding the permission, under its cap), charges
//! the consumer's own quota and records the use for the provider, in one
//! decision; nothing is asked of the provider's shard.
use super::Engine;
use super::admission::BatchOp;
use crate::cluster::forward;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, Principal, TenantId};
use crate::quota::{Decision, OpOutcome, SharedReserve, SharedUse, TenantOp, validate};
use crate::shard::{SharedCheck, TenantAnswer, TenantCall};
use crate::sharing::Via;
use crate::telemetry;
use uuid::Uuid;

impl Engine {
    pub async fn check_shared(
        &self,
        by: &Principal,
        consumer: TenantId,
        quota: &str,
        amount: i64,
        via: Via,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::positive_amount("amount", amount)?;
        let call = TenantCall::SharedCheck(Since(SharedCheck {
            quota: quota.to_string(),
            amount,
            policy: via.policy,
            permission: via.permission,
        }));
        let d = match self.router.call_tenant_as(Some(by), consumer, call).await? {
            TenantAnswer::Decision(d) => d,
            other => return Err(forward::unexpected(other)),
        };
        telemetry::decision(&self.labels, &consumer, d.allowed);
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn increment_shared(
        &self,
        by: &Principal,
        consumer: TenantId,
        quota: &str,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
        via: Via,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::positive_amount("amount", amount)?;
        super::admission::idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::SharedUse(Since(SharedUse {
            quota: quota.to_string(),
            amount,
            idempotency_key,
            policy: via.policy,
            permission: via.permission,
        }));
        let d = match self.admit(by, consumer, op, consistency).await? {
            OpOutcome::Decision(d) => d,
            other => return Err(super::admission::unexpected(other)),
        };
        telemetry::decision(&self.labels, &consumer, d.allowed);
        if d.allowed && !d.replayed {
            metrics::counter!(telemetry::CROSS_TENANT_USAGE, "resource_type" => self.resource_type_of(via.policy))
                .increment(amount as u64);
        }
        Ok(d)
    }

    /// Hold an amount through a grant; settle or release it as any
    /// reservation (the settlement is recorded for the provider).
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_shared(
        &self,
        by: &Principal,
        consumer: TenantId,
        quota: &str,
        hold: super::Hold,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
        via: Via,
    ) -> Result<super::Reserved, EngineError> {
        validate::quota_name(quota)?;
        let amount = validate::positive_amount("amount", hold.amount)?;
        let ttl_ms = validate::ttl_ms(hold.ttl_ms)?;
        super::admission::idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::SharedReserve(Since(Box::new(SharedReserve {
            quota: quota.to_string(),
            amount,
            ttl_ms,
            reservation_id: Uuid::new_v4(),
            idempotency_key,
            via,
        })));
        match self.admit(by, consumer, op, consistency).await? {
            OpOutcome::Reserved {
                decision,
                reservation_id,
                expires_at_ms,
            } => {
                telemetry::decision(&self.labels, &consumer, decision.allowed);
                Ok(super::Reserved {
                    decision,
                    reservation_id,
                    expires_at_ms,
                })
            }
            other => Err(super::admission::unexpected(other)),
        }
    }

    /// The provider of `policy`, as this node's catalog knows it.
    pub fn provider_of(&self, policy: Uuid) -> Option<TenantId> {
        self.with_catalog(|c| c.policies.get(&policy).map(|p| p.provider))
    }

    fn resource_type_of(&self, policy: Uuid) -> String {
        self.with_catalog(|c| {
            c.policies.get(&policy).map_or_else(
                || "unknown".to_string(),
                |p| p.spec.resource_type.to_string(),
            )
        })
    }

    /// A batch item through a grant, as the consumer's actor takes it.
    pub(super) fn shared_batch_item(
        &self,
        op: BatchOp,
    ) -> Result<crate::shard::BatchItem, EngineError> {
        use crate::shard::BatchItem;
        Ok(match op {
            BatchOp::SharedCheck { quota, amount, via } => {
                validate::quota_name(&quota)?;
                validate::positive_amount("amount", amount)?;
                BatchItem::SharedCheck(Since(SharedCheck {
                    quota,
                    amount,
                    policy: via.policy,
                    permission: via.permission,
                }))
            }
            BatchOp::SharedIncrement {
                quota,
                amount,
                idempotency_key,
                consistency,
                via,
            } => {
                validate::quota_name(&quota)?;
                validate::positive_amount("amount", amount)?;
                super::admission::idempotency_key_ok(&idempotency_key)?;
                BatchItem::Apply {
                    op: TenantOp::SharedUse(Since(SharedUse {
                        quota,
                        amount,
                        idempotency_key,
                        policy: via.policy,
                        permission: via.permission,
                    })),
                    consistency: consistency.unwrap_or(self.default_consistency),
                }
            }
            other => {
                return Err(EngineError::Unexpected {
                    answer: format!("not a shared batch item: {other:?}"),
                });
            }
        })
    }
}
