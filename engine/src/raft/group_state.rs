use super::command::{Command, CommandResponse, MetaOp, StampedOp};
use crate::model::TenantId;
use crate::quota::{TenantOp, TenantState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The replicated state of one group. Shard groups hold tenants; the meta
/// group holds the slug index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub tenants: HashMap<TenantId, TenantState>,
    pub slugs: BTreeMap<String, TenantId>,
}

impl GroupState {
    /// Apply a committed command. Deterministic: uses only the command and
    /// the state (time comes from each operation's stamp).
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        match cmd {
            Command::Batch(ops) => {
                for op in ops {
                    self.apply_op(op);
                }
                CommandResponse::Applied
            }
            Command::Meta(MetaOp::ClaimSlug { slug, tenant }) => match self.slugs.get(slug) {
                Some(owner) if owner != tenant => CommandResponse::SlugTaken { owner: *owner },
                _ => {
                    self.slugs.insert(slug.clone(), *tenant);
                    CommandResponse::SlugClaimed
                }
            },
            Command::Meta(MetaOp::ReleaseSlug { slug, tenant }) => {
                if self.slugs.get(slug) == Some(tenant) {
                    self.slugs.remove(slug);
                }
                CommandResponse::Applied
            }
        }
    }

    fn apply_op(&mut self, s: &StampedOp) {
        match &s.op {
            TenantOp::Create { tenant, quotas } => {
                self.tenants
                    .entry(s.tenant)
                    .or_insert_with(|| TenantState::new(tenant.clone(), quotas.clone()));
            }
            op => {
                if let Some(t) = self.tenants.get_mut(&s.tenant) {
                    // The leader only logs operations that succeeded on the
                    // same state, so this succeeds too; an error here would
                    // change nothing (apply is all-or-nothing).
                    if let Err(e) = t.apply(op, s.at_ms) {
                        tracing::error!(tenant = %s.tenant, error = %e, "replicated operation failed on apply");
                    }
                }
            }
        }
    }
}
