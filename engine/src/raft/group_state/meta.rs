//! The meta group's replicated state: the cluster's nodes and placement,
//! and the names (tenant slugs, custom domains) each held by one tenant.
use super::{Claims, ReplicatedState, misrouted};
use crate::format::{Added, Since};
use crate::model::SignedOut;
use crate::model::membership::Membership;
use crate::raft::command::{Command, CommandResponse, MetaOp};
use crate::sharing::SharingCatalog;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaState {
    /// Nodes, groups and their placement, pins.
    pub membership: Membership,
    /// Tenant slug -> the tenant that holds it.
    pub slugs: Claims,
    /// Custom domain -> the tenant that registered it.
    pub domains: Claims,
    /// Sharing policies, access requests and grants (format 6).
    pub sharing: Added<6, SharingCatalog>,
    /// Console sessions signed out before they expire (format 15).
    pub signed_out: Added<15, SignedOut>,
    /// Operators' feature flags for the whole platform (format 16).
    pub platform_flags: Added<16, crate::custom::PlatformFlags>,
    /// The operators' alerts and webhook endpoints (format 18).
    pub platform_alerts: Added<18, crate::alerts::PlatformAlerts>,
}

impl ReplicatedState for MetaState {
    fn accepts(cmd: &Command) -> bool {
        matches!(cmd, Command::Meta(_))
    }

    fn apply(&mut self, cmd: &Command) -> CommandResponse {
        match cmd {
            Command::Meta(MetaOp::ClaimSlug {
                slug,
                tenant,
                at_ms,
                replacing,
            }) => match self.slugs.claim(slug, *tenant, *at_ms, *replacing) {
                Ok(()) => CommandResponse::SlugClaimed,
                Err(owner) => CommandResponse::SlugTaken { owner },
            },
            Command::Meta(MetaOp::ClaimDomain {
                domain,
                tenant,
                at_ms,
                replacing,
            }) => match self.domains.claim(domain, *tenant, *at_ms, *replacing) {
                Ok(()) => CommandResponse::DomainClaimed,
                Err(owner) => CommandResponse::DomainTaken { owner },
            },
            Command::Meta(MetaOp::ReleaseDomain { domain, tenant }) => {
                self.domains.release(domain, *tenant);
                CommandResponse::Applied
            }
            Command::Meta(MetaOp::Membership(op)) => {
                CommandResponse::Membership(self.membership.apply(op))
            }
            Command::Meta(MetaOp::ReleaseSlug { slug, tenant }) => {
                self.slugs.release(slug, *tenant);
                CommandResponse::Applied
            }
            Command::Meta(MetaOp::Sharing(Since(op))) => {
                CommandResponse::Sharing(Since(Box::new(self.sharing.apply(op))))
            }
            Command::Meta(MetaOp::SignOut(Since(op))) => {
                self.signed_out.sign_out(op.session, op.until_ms, op.at_ms);
                CommandResponse::Applied
            }
            Command::Meta(MetaOp::PlatformFlag(Since(op))) => {
                self.platform_flags.apply(op);
                CommandResponse::Applied
            }
            Command::Meta(MetaOp::PlatformAlerts(Since(op))) => {
                self.platform_alerts.apply(op);
                CommandResponse::Applied
            }
            other => misrouted("the meta group", other),
        }
    }
}
