//! Admission: checks, increments (one quota, several at once, batches of
//! many tenants), and reservations with their settlement and release.
use super::Engine;
use crate::cluster::forward;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, Principal, TenantId};
use crate::quota::{
    AllDecided, AllOrNothing, Decision, OpOutcome, QuotaError, Spend, TenantOp, validate,
};
use crate::shard::{BatchItem, TenantAnswer, TenantCall};
use crate::telemetry;
use crate::wire_error::WireError;
use uuid::Uuid;

/// The result of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub decision: Decision,
    pub reservation_id: Option<Uuid>,
    pub expires_at_ms: Option<i64>,
}

/// What [`Engine::reserve`] holds: `amount` for `ttl_ms` unless settled or
/// released before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub amount: i64,
    pub ttl_ms: u64,
}

/// One item of [`Engine::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Check {
        quota: String,
        amount: i64,
    },
    Increment {
        quota: String,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    },
    /// A check through a sharing grant.
    SharedCheck {
        quota: String,
        amount: i64,
        via: crate::sharing::Via,
    },
    /// An increment through a sharing grant.
    SharedIncrement {
        quota: String,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
        via: crate::sharing::Via,
    },
}

impl Engine {
    pub async fn check(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        amount: i64,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::positive_amount("amount", amount)?;
        let call = TenantCall::Check {
            quota: quota.to_string(),
            amount,
        };
        let d = match self.router.call_tenant_as(Some(by), tenant, call).await? {
            TenantAnswer::Decision(d) => d,
            other => return Err(forward::unexpected(other)),
        };
        telemetry::decision(&self.labels, &tenant, d.allowed);
        Ok(d)
    }

    pub async fn increment(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::amount(amount)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::Increment {
            quota: quota.to_string(),
            amount,
            idempotency_key,
        };
        let d = decision(self.admit(by, tenant, op, consistency).await?)?;
        telemetry::decision(&self.labels, &tenant, d.allowed);
        Ok(d)
    }

    /// Spend on several of one tenant's quotas as one decision: every
    /// amount is taken or none is (see [`crate::quota::AllOrNothing`]).
    /// An optional spend whose quota the tenant lacks limits nothing.
    pub async fn increment_all(
        &self,
        by: &Principal,
        tenant: TenantId,
        spends: Vec<Spend>,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<AllDecided, EngineError> {
        if spends.is_empty() {
            return Err(QuotaError::invalid("descriptors", "nothing to spend").into());
        }
        for s in &spends {
            validate::quota_name(&s.quota)?;
            validate::positive_amount("amount", i64::try_from(s.amount).unwrap_or(i64::MAX))?;
        }
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::IncrementAll(Since(AllOrNothing {
            spends,
            idempotency_key,
        }));
        let decided = match self.admit(by, tenant, op, consistency).await? {
            OpOutcome::AllDecided(Since(all)) => all,
            other => return Err(unexpected(other)),
        };
        for d in decided.decisions.iter().flatten() {
            telemetry::decision(&self.labels, &tenant, d.allowed && decided.admitted);
        }
        Ok(decided)
    }

    /// Decide a batch of checks and increments, over any tenants. Items of
    /// one tenant go to its actor in one message and are decided in request
    /// order; tenants proceed in parallel. Each item gets its own answer:
    /// a bad item fails alone.
    pub async fn batch(
        &self,
        by: &Principal,
        items: Vec<(TenantId, BatchOp)>,
    ) -> Vec<Result<Decision, EngineError>> {
        let mut results: Vec<Option<Result<Decision, EngineError>>> =
            (0..items.len()).map(|_| None).collect();
        let mut by_tenant: std::collections::HashMap<TenantId, (Vec<usize>, Vec<BatchItem>)> =
            std::collections::HashMap::new();
        for (i, (tenant, op)) in items.into_iter().enumerate() {
            match self.batch_item(op) {
                Ok(item) => {
                    let (indexes, items) = by_tenant.entry(tenant).or_default();
                    indexes.push(i);
                    items.push(item);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let answers = futures::future::join_all(by_tenant.into_iter().map(
            |(tenant, (indexes, items))| async move {
                let answer = self
                    .router
                    .call_tenant_as(Some(by), tenant, TenantCall::Batch(items))
                    .await;
                (tenant, indexes, answer)
            },
        ))
        .await;
        for (tenant, indexes, answer) in answers {
            match answer {
                Ok(TenantAnswer::Batch(decided)) if decided.len() == indexes.len() => {
                    let (mut requests, mut refused) = (0, 0);
                    for (i, d) in indexes.into_iter().zip(decided) {
                        if let Ok(d) = &d {
                            requests += 1;
                            refused += u64::from(!d.allowed);
                        }
                        results[i] = Some(d.map_err(EngineError::from));
                    }
                    self.labels.count(&tenant, requests, refused);
                }
                other => {
                    let e = match other {
                        Err(e) => WireError::from(&e),
                        Ok(a) => (&forward::unexpected(a)).into(),
                    };
                    for i in indexes {
                        results[i] = Some(Err(e.clone().into()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item answered"))
            .collect()
    }

    fn batch_item(&self, op: BatchOp) -> Result<BatchItem, EngineError> {
        Ok(match op {
            BatchOp::Check { quota, amount } => {
                validate::quota_name(&quota)?;
                validate::positive_amount("amount", amount)?;
                BatchItem::Check { quota, amount }
            }
            BatchOp::Increment {
                quota,
                amount,
                idempotency_key,
                consistency,
            } => {
                validate::quota_name(&quota)?;
                validate::amount(amount)?;
                idempotency_key_ok(&idempotency_key)?;
                BatchItem::Apply {
                    op: TenantOp::Increment {
                        quota,
                        amount,
                        idempotency_key,
                    },
                    consistency: consistency.unwrap_or(self.default_consistency),
                }
            }
            shared @ (BatchOp::SharedCheck { .. } | BatchOp::SharedIncrement { .. }) => {
                self.shared_batch_item(shared)?
            }
        })
    }

    pub async fn reserve(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        hold: Hold,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Reserved, EngineError> {
        validate::quota_name(quota)?;
        let amount = validate::positive_amount("amount", hold.amount)?;
        let ttl_ms = validate::ttl_ms(hold.ttl_ms)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::Reserve {
            quota: quota.to_string(),
            amount,
            ttl_ms,
            reservation_id: Uuid::new_v4(),
            idempotency_key,
        };
        match self.admit(by, tenant, op, consistency).await? {
            OpOutcome::Reserved {
                decision,
                reservation_id,
                expires_at_ms,
            } => {
                telemetry::decision(&self.labels, &tenant, decision.allowed);
                Ok(Reserved {
                    decision,
                    reservation_id,
                    expires_at_ms,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn settle(
        &self,
        by: &Principal,
        tenant: TenantId,
        reservation: Uuid,
        actual: i64,
        consistency: Option<Consistency>,
    ) -> Result<Decision, EngineError> {
        if actual < 0 {
            return Err(QuotaError::invalid("actual", "must not be negative").into());
        }
        if actual as u64 > validate::MAX_AMOUNT {
            return Err(QuotaError::invalid(
                "actual",
                format!(
                    "{actual} is larger than the maximum of {}",
                    validate::MAX_AMOUNT
                ),
            )
            .into());
        }
        let op = TenantOp::Settle {
            reservation_id: reservation,
            actual: actual as u64,
        };
        decision(self.admit(by, tenant, op, consistency).await?)
    }

    /// Returns the amount released.
    pub async fn release(
        &self,
        by: &Principal,
        tenant: TenantId,
        reservation: Uuid,
        consistency: Option<Consistency>,
    ) -> Result<u64, EngineError> {
        let op = TenantOp::Release {
            reservation_id: reservation,
        };
        match self.admit(by, tenant, op, consistency).await? {
            OpOutcome::Released { amount } => Ok(amount),
            other => Err(unexpected(other)),
        }
    }
}

impl Engine {
    /// Ask a tenant's actor to admit `op` for `by`, on whichever node
    /// leads its group.
    pub(super) async fn admit(
        &self,
        by: &Principal,
        tenant: TenantId,
        op: TenantOp,
        consistency: Option<Consistency>,
    ) -> Result<OpOutcome, EngineError> {
        let call = TenantCall::Apply {
            op,
            audit: None,
            consistency: consistency.unwrap_or(self.default_consistency),
        };
        match self.router.call_tenant_as(Some(by), tenant, call).await? {
            TenantAnswer::Outcome(o) => Ok(o),
            other => Err(forward::unexpected(other)),
        }
    }

    /// A tenant's state as a data-plane caller, `by`, reads it.
    pub async fn tenant_as(
        &self,
        by: &Principal,
        tenant: TenantId,
    ) -> Result<crate::quota::TenantState, EngineError> {
        match self
            .router
            .call_tenant_as(Some(by), tenant, TenantCall::Read)
            .await?
        {
            TenantAnswer::State(s) => Ok(*s),
            other => Err(forward::unexpected(other)),
        }
    }
}

pub(super) fn idempotency_key_ok(key: &Option<String>) -> Result<(), QuotaError> {
    match key {
        Some(k) if k.len() > 256 => {
            Err(QuotaError::invalid("idempotency_key", "at most 256 bytes"))
        }
        _ => Ok(()),
    }
}

fn decision(outcome: OpOutcome) -> Result<Decision, EngineError> {
    match outcome {
        OpOutcome::Decision(d) => Ok(d),
        other => Err(unexpected(other)),
    }
}

pub(super) fn unexpected(outcome: OpOutcome) -> EngineError {
    EngineError::Raft {
        group: 0,
        message: format!("unexpected outcome {outcome:?}"),
    }
}
