//! Admission: checks, increments (one quota, several at once, batches of
//! many tenants), and reservations with their settlement and release.
use super::Engine;
use crate::cluster::forward;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, Principal, TenantId};
use crate::quota::{
    AllDecided, AllOrNothing, Decision, OpOutcome, QuotaError, ScopedSpend, Spend, TenantOp,
    validate,
};
use crate::shard::{BatchItem, ScopedCheck, TenantAnswer, TenantCall};
use crate::telemetry;
use crate::wire_error::WireError;
use compact_str::CompactString;
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
    /// A check in a scope value.
    ScopedCheck {
        quota: String,
        amount: i64,
        scope: String,
    },
    /// An increment in a scope value.
    ScopedIncrement {
        quota: String,
        amount: i64,
        scope: String,
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
        self.check_in(by, tenant, quota, amount, None).await
    }

    /// A check on the tenant's quota and, with `scope`, on that scope
    /// value's limit within it.
    pub async fn check_in(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        amount: i64,
        scope: Option<String>,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::positive_amount("amount", amount)?;
        let call = match scope {
            None => TenantCall::Check {
                quota: quota.to_string(),
                amount,
            },
            Some(scope) => {
                validate::scope(&scope)?;
                TenantCall::ScopedCheck(Since(ScopedCheck {
                    quota: quota.to_string(),
                    amount,
                    scope,
                }))
            }
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
        self.increment_in(
            by,
            tenant,
            quota,
            amount,
            None,
            idempotency_key,
            consistency,
        )
        .await
    }

    /// An increment of the tenant's quota and, with `scope`, of that scope
    /// value's limit within it: one decision over every level.
    #[allow(clippy::too_many_arguments)]
    pub async fn increment_in(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        amount: i64,
        scope: Option<String>,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::amount(amount)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = self.spend_op(quota.to_string(), amount, scope, idempotency_key, None)?;
        let d = decision(self.admit(by, tenant, op, consistency).await?)?;
        telemetry::decision(&self.labels, &tenant, d.allowed);
        self.count_shadow(&tenant, quota, &d);
        Ok(d)
    }

    /// The operation of a spend: an increment (or with `hold` a
    /// reservation) that names a scope value or not.
    fn spend_op(
        &self,
        quota: String,
        amount: i64,
        scope: Option<String>,
        idempotency_key: Option<String>,
        hold: Option<(u64, Uuid)>,
    ) -> Result<TenantOp, EngineError> {
        Ok(match (scope, hold) {
            (None, None) => TenantOp::Increment {
                quota,
                amount,
                idempotency_key,
            },
            (None, Some((ttl_ms, reservation_id))) => TenantOp::Reserve {
                quota,
                amount: amount.unsigned_abs(),
                ttl_ms,
                reservation_id,
                idempotency_key,
            },
            (Some(scope), hold) => {
                validate::scope(&scope)?;
                TenantOp::Spend(Since(Box::new(ScopedSpend {
                    quota,
                    amount,
                    scope: CompactString::new(&scope),
                    idempotency_key,
                    max_scopes: self.catalog().live_scopes(),
                    hold,
                })))
            }
        })
    }

    /// Count a decision admitted only because of shadow mode.
    fn count_shadow(&self, tenant: &TenantId, quota: &str, d: &Decision) {
        if d.verdict == crate::quota::Verdict::ShadowDenied {
            telemetry::shadow_denial(&self.labels, tenant, quota);
        }
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
            if let Some(scope) = s.scope.as_deref() {
                validate::scope(scope)?;
            }
        }
        idempotency_key_ok(&idempotency_key)?;
        let quotas: Vec<String> = spends.iter().map(|s| s.quota.clone()).collect();
        let scoped = spends.iter().any(|s| s.scope.is_some());
        let op = TenantOp::IncrementAll(Since(AllOrNothing {
            spends,
            idempotency_key,
            max_scopes: crate::format::Added(scoped.then(|| self.catalog().live_scopes())),
        }));
        let decided = match self.admit(by, tenant, op, consistency).await? {
            OpOutcome::AllDecided(Since(all)) => all,
            other => return Err(unexpected(other)),
        };
        for d in decided.decisions.iter().flatten() {
            telemetry::decision(&self.labels, &tenant, d.allowed && decided.admitted);
        }
        for (s, d) in spends_of(&decided, &quotas) {
            self.count_shadow(&tenant, s, d);
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
        let quotas: Vec<String> = items.iter().map(|(_, op)| op.quota().to_string()).collect();
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
                            self.count_shadow(&tenant, &quotas[i], d);
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
            } => self.increment_item(quota, amount, None, idempotency_key, consistency)?,
            BatchOp::ScopedCheck {
                quota,
                amount,
                scope,
            } => {
                validate::quota_name(&quota)?;
                validate::positive_amount("amount", amount)?;
                validate::scope(&scope)?;
                BatchItem::ScopedCheck(Since(ScopedCheck {
                    quota,
                    amount,
                    scope,
                }))
            }
            BatchOp::ScopedIncrement {
                quota,
                amount,
                scope,
                idempotency_key,
                consistency,
            } => self.increment_item(quota, amount, Some(scope), idempotency_key, consistency)?,
            shared @ (BatchOp::SharedCheck { .. } | BatchOp::SharedIncrement { .. }) => {
                self.shared_batch_item(shared)?
            }
        })
    }

    /// A Batch increment, in a scope value or not.
    fn increment_item(
        &self,
        quota: String,
        amount: i64,
        scope: Option<String>,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<BatchItem, EngineError> {
        validate::quota_name(&quota)?;
        validate::amount(amount)?;
        idempotency_key_ok(&idempotency_key)?;
        Ok(BatchItem::Apply {
            op: self.spend_op(quota, amount, scope, idempotency_key, None)?,
            consistency: consistency.unwrap_or(self.default_consistency),
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
        self.reserve_in(by, tenant, quota, hold, None, idempotency_key, consistency)
            .await
    }

    /// A reservation on the tenant's quota and, with `scope`, on that scope
    /// value's limit within it.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_in(
        &self,
        by: &Principal,
        tenant: TenantId,
        quota: &str,
        hold: Hold,
        scope: Option<String>,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Reserved, EngineError> {
        validate::quota_name(quota)?;
        let amount = validate::positive_amount("amount", hold.amount)?;
        let ttl_ms = validate::ttl_ms(hold.ttl_ms)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = self.spend_op(
            quota.to_string(),
            amount as i64,
            scope,
            idempotency_key,
            Some((ttl_ms, Uuid::new_v4())),
        )?;
        match self.admit(by, tenant, op, consistency).await? {
            OpOutcome::Reserved {
                decision,
                reservation_id,
                expires_at_ms,
            } => {
                telemetry::decision(&self.labels, &tenant, decision.allowed);
                self.count_shadow(&tenant, quota, &decision);
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

impl BatchOp {
    /// The quota it spends on or checks.
    pub fn quota(&self) -> &str {
        match self {
            BatchOp::Check { quota, .. }
            | BatchOp::Increment { quota, .. }
            | BatchOp::ScopedCheck { quota, .. }
            | BatchOp::ScopedIncrement { quota, .. }
            | BatchOp::SharedCheck { quota, .. }
            | BatchOp::SharedIncrement { quota, .. } => quota,
        }
    }
}

/// Each decision of an all-or-nothing answer with its quota's name.
fn spends_of<'a>(
    decided: &'a AllDecided,
    quotas: &'a [String],
) -> impl Iterator<Item = (&'a str, &'a Decision)> {
    quotas
        .iter()
        .zip(&decided.decisions)
        .filter_map(|(q, d)| Some((q.as_str(), d.as_ref()?)))
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
