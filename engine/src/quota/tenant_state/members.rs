//! Members and their roles; a tenant always keeps an owner, and members
//! count against its `users` quota.
use super::TenantState;
use crate::model::{Member, Role, well_known};
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome};
use crate::quota::quota_state::Use;

impl TenantState {
    pub(super) fn add_member(
        &mut self,
        user_id: &String,
        role: &Role,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        if self.members.contains_key(user_id) {
            return Err(QuotaError::MemberExists {
                tenant: self.tenant.id,
                user: user_id.clone(),
            });
        }
        if let Some(users) = self.quotas.get_mut(well_known::USERS) {
            let d = users.admit(tz, now_ms, 1, Use::Consume);
            if !d.allowed {
                return Err(QuotaError::QuotaExceeded {
                    quota: well_known::USERS.to_string(),
                    limit: d.limit.unwrap_or_default(),
                });
            }
        }
        self.members.insert(
            user_id.clone(),
            Member {
                user_id: user_id.clone(),
                role: *role,
                added_at_ms: now_ms,
                email: None,
            },
        );
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn remove_member(
        &mut self,
        user_id: &String,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let role = self.member_role(user_id)?;
        if role == Role::Owner && self.owners() == 1 {
            return Err(QuotaError::LastOwner {
                tenant: self.tenant.id,
            });
        }
        self.members.remove(user_id);
        if let Some(users) = self.quotas.get_mut(well_known::USERS) {
            let level = users.used;
            users.lower(tz, now_ms, level.min(1));
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn change_role(
        &mut self,
        user_id: &String,
        role: &Role,
    ) -> Result<Applied, QuotaError> {
        let current = self.member_role(user_id)?;
        if current == Role::Owner && *role != Role::Owner && self.owners() == 1 {
            return Err(QuotaError::LastOwner {
                tenant: self.tenant.id,
            });
        }
        if let Some(m) = self.members.get_mut(user_id) {
            m.role = *role;
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn member_role(&self, user_id: &str) -> Result<Role, QuotaError> {
        self.role_of(user_id)
            .ok_or_else(|| QuotaError::MemberNotFound {
                tenant: self.tenant.id,
                user: user_id.to_string(),
            })
    }

    pub(super) fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }
}
