//! Custom domains: registered with a claim across the cluster (a domain
//! belongs to one tenant), verified, removed; and host -> tenant lookup.
use super::Engine;
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{Consistency, TenantId};
use crate::quota::{QuotaError, TenantOp, TenantState, validate};
use crate::raft::{Command, CommandResponse, MetaOp};

impl Engine {
    /// Register a custom domain for the tenant, unverified; returns its
    /// verification token. Domains are unique across the deployment.
    pub async fn add_domain(
        &self,
        tenant: TenantId,
        domain: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::domain(domain)?;
        if self.tenant(tenant).await?.domains.contains_key(domain) {
            // Checked before claiming, so a retry never releases a claim
            // the tenant already held.
            return Err(QuotaError::invalid(
                "domain",
                format!("{domain} is already registered to this tenant"),
            )
            .into());
        }
        let now = self.clock.now_ms();
        let mut replacing = None;
        loop {
            let claim = Command::Meta(MetaOp::ClaimDomain {
                domain: domain.to_string(),
                tenant,
                at_ms: now,
                replacing,
            });
            match self.router.meta_write(claim).await? {
                CommandResponse::DomainTaken { owner }
                    if replacing.is_none() && !self.lists_domain(owner, domain).await? =>
                {
                    replacing = Some(owner);
                }
                CommandResponse::DomainTaken { .. } => {
                    return Err(EngineError::DomainTaken {
                        domain: domain.to_string(),
                    });
                }
                _ => break,
            }
        }
        let token: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let op = TenantOp::AddDomain {
            domain: domain.to_string(),
            token,
        };
        if let Err(e) = self
            .apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await
        {
            let release = Command::Meta(MetaOp::ReleaseDomain {
                domain: domain.to_string(),
                tenant,
            });
            if let Err(e2) = self.router.meta_write(release).await {
                tracing::error!(error = %e2, "could not release a domain after a failed add");
            }
            return Err(e);
        }
        self.tenant(tenant).await
    }

    pub async fn remove_domain(
        &self,
        tenant: TenantId,
        domain: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::RemoveDomain {
            domain: domain.to_string(),
        };
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.router
            .meta_write(Command::Meta(MetaOp::ReleaseDomain {
                domain: domain.to_string(),
                tenant,
            }))
            .await?;
        self.tenant(tenant).await
    }

    /// Whether `tenant`'s committed state lists `domain` (a claim by a
    /// tenant that does not is left over from a failed registration).
    async fn lists_domain(&self, tenant: TenantId, domain: &str) -> Result<bool, EngineError> {
        match self.tenant(tenant).await {
            Ok(t) => Ok(t.domains.contains_key(domain)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The tenant whose *verified* custom domain `host` is (port ignored).
    pub async fn tenant_for_host(&self, host: &str) -> Option<TenantId> {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let tenant = self
            .router
            .meta
            .state
            .read()
            .ok()?
            .domains
            .get(&name)?
            .tenant;
        let state = self.tenant(tenant).await.ok()?;
        let verified = state.domains.get(&name)?.verified;
        verified.then_some(tenant)
    }
}
