//! A tenant's API keys: created with a hash the caller made, rotated,
//! revoked. Expired keys stay listed (and open nothing) until revoked.
use super::TenantState;
use crate::model::{ApiKey, MAX_API_KEYS};
use crate::quota::error::QuotaError;
use crate::quota::op::{ApiKeyRotation, Applied, NewApiKey, OpOutcome};

impl TenantState {
    pub(super) fn create_api_key(
        &mut self,
        k: &NewApiKey,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        if self.api_keys.0.len() >= MAX_API_KEYS {
            return Err(QuotaError::TooManyApiKeys {
                tenant: self.tenant.id,
                limit: MAX_API_KEYS,
            });
        }
        if k.scopes.is_empty() {
            return Err(QuotaError::invalid(
                "scopes",
                "a key needs at least one scope",
            ));
        }
        if self.api_keys.0.contains_key(&k.id) {
            // Ids are 64 random bits: a clash is a replayed entry, not a new key.
            return Err(QuotaError::invalid("id", "an API key with this id exists"));
        }
        self.api_keys.0.insert(
            k.id.clone(),
            ApiKey {
                id: k.id.clone(),
                name: k.name.clone(),
                scopes: k.scopes,
                hash: k.hash,
                last4: k.last4.clone(),
                created_at_ms: now_ms,
                created_by: k.created_by.clone(),
                expires_at_ms: k.expires_at_ms,
                previous: None,
                rotated_at_ms: None,
            },
        );
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn rotate_api_key(
        &mut self,
        r: &ApiKeyRotation,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tenant = self.tenant.id;
        let key = self
            .api_keys
            .0
            .get_mut(&r.id)
            .ok_or_else(|| QuotaError::ApiKeyNotFound {
                tenant,
                id: r.id.clone(),
            })?;
        key.previous = (r.grace_ms > 0).then(|| (key.hash, now_ms.saturating_add(r.grace_ms)));
        key.hash = r.hash;
        key.last4 = r.last4.clone();
        key.rotated_at_ms = Some(now_ms);
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn revoke_api_key(&mut self, id: &String) -> Result<Applied, QuotaError> {
        if self.api_keys.0.remove(id).is_none() {
            return Err(QuotaError::ApiKeyNotFound {
                tenant: self.tenant.id,
                id: id.clone(),
            });
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }
}
