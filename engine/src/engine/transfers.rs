//! Moving cross-tenant usage records from consumers to providers' totals,
//! exactly once (see `crate::sharing::ledger` for why each step is safe to
//! repeat), and charging subscription grants when a month begins. Each
//! node runs it for the groups it leads.
use super::Engine;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, TenantId};
use crate::quota::{Received, TenantOp};

impl Engine {
    /// One round: every consumer of the groups this node leads that owes a
    /// provider seals what it owes, the provider takes it, the consumer
    /// notes that it was taken. Returns how many transfers were completed.
    pub async fn transfer_shared_usage(&self) -> Result<usize, EngineError> {
        let now = self.clock.now_ms();
        let mut owed: Vec<(TenantId, TenantId)> = Vec::new();
        let mut billing: Vec<TenantId> = Vec::new();
        let closed = self.with_catalog(|c| c.closed.0.clone());
        let mut closing: Vec<(TenantId, u32, i64)> = Vec::new();
        // Providers whose standing (may they share now?) differs from what
        // their grants say.
        let mut standing: Vec<(TenantId, Option<String>)> = Vec::new();
        let given: std::collections::HashMap<TenantId, Vec<Option<String>>> =
            self.with_catalog(|c| {
                let mut m: std::collections::HashMap<TenantId, Vec<Option<String>>> =
                    std::collections::HashMap::new();
                for g in c.grants.values().filter(|g| g.ended.is_none()) {
                    m.entry(g.provider).or_default().push(g.paused.0.clone());
                }
                m
            });
        for shard in self.router.served() {
            if let Ok(state) = shard.group.state.read() {
                for t in state.tenants.values() {
                    owed.extend(t.shared.owed().map(|p| (t.tenant.id, p)));
                    if t.grants.values().any(|g| g.billing_due(now)) {
                        billing.push(t.tenant.id);
                    }
                    if let Some(paused) = given.get(&t.tenant.id) {
                        let should = t.refusal(now);
                        if paused.iter().any(|p| *p != should) {
                            standing.push((t.tenant.id, should));
                        }
                    }
                    let involved = !t.grants.is_empty()
                        || !t.shared.received.is_empty()
                        || !t.shared.received_seq.is_empty();
                    if involved {
                        closing.extend(
                            closed
                                .iter()
                                .filter(|(p, _)| !t.shared.closed.contains_key(p))
                                .map(|(p, at)| (t.tenant.id, *p, *at)),
                        );
                    }
                }
            }
        }
        let mut first_error = None;
        for (provider, paused) in standing {
            if let Err(e) = self.set_provider_standing(provider, paused).await {
                first_error.get_or_insert(e);
            }
        }
        // Periods the platform closed, before more usage is taken.
        for (tenant, period, at) in closing {
            let op = TenantOp::ClosePeriod(Since((period, at)));
            if let Err(e) = self
                .apply(tenant, op, None, Some(Consistency::Strict))
                .await
            {
                first_error.get_or_insert(e);
            }
        }
        // A new month's subscription charges, recorded before they are sent.
        for consumer in billing {
            let op = TenantOp::BillSubscriptions(Since(()));
            if let Err(e) = self
                .apply(consumer, op, None, Some(Consistency::Strict))
                .await
            {
                tracing::debug!(%consumer, error = %e, "subscriptions not billed; retried next round");
                first_error.get_or_insert(e);
            }
        }
        let mut done = 0;
        for (consumer, provider) in owed {
            match self.transfer(consumer, provider).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(%consumer, %provider, error = %e, "usage transfer not done; retried next round");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    async fn transfer(&self, consumer: TenantId, provider: TenantId) -> Result<bool, EngineError> {
        let strict = Some(Consistency::Strict);
        self.apply(
            consumer,
            TenantOp::SealTransfer(Since(provider)),
            None,
            strict,
        )
        .await?;
        let state = self.tenant(consumer).await?;
        let Some(transfer) = state
            .shared
            .outbox
            .get(&provider)
            .and_then(|o| o.sending.clone())
        else {
            return Ok(false);
        };
        let seq = transfer.seq;
        let received = TenantOp::ReceiveUsage(Since(Box::new(Received { consumer, transfer })));
        match self.apply(provider, received, None, strict).await {
            Ok(_) => {}
            // A provider that no longer exists takes nothing; the consumer's
            // own lines (its statement) stay, and nothing is owed.
            Err(e) if e.code() == crate::error_code::ErrorCode::NotFound => {
                tracing::warn!(%consumer, %provider, "usage owed to a provider that is gone; dropped from the outbox");
            }
            Err(e) => return Err(e),
        }
        self.apply(
            consumer,
            TenantOp::AckTransfer(Since((provider, seq))),
            None,
            strict,
        )
        .await?;
        Ok(true)
    }
}
