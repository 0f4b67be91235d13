use super::Tier;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub type TenantId = uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantStatus {
    Active,
    Trial,
    Suspended,
    /// Soft-deleted: refused everything, restorable until purged.
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Trial => "TRIAL",
            Self::Suspended => "SUSPENDED",
            Self::Deleted => "DELETED",
        }
    }

    /// Whether quota checks may admit anything for a tenant in this status.
    pub fn admits(self) -> bool {
        !matches!(self, Self::Suspended | Self::Deleted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique across the deployment; immutable once created (it appears in
    /// URLs and sub-domains).
    pub slug: String,
    pub name: String,
    pub tier: Tier,
    pub status: TenantStatus,
    pub timezone: Tz,
    pub trial_ends_at_ms: Option<i64>,
    /// Free-form settings object, kept as JSON text so the replicated state
    /// stays in a compact binary encoding.
    pub settings_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When it was soft-deleted, and the status to restore.
    #[serde(default)]
    pub deleted: Option<Deletion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub at_ms: i64,
    /// Purged from this time on.
    pub purge_after_ms: i64,
    pub previous_status: TenantStatus,
}
