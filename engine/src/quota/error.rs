use crate::error_code::ErrorCode;
use crate::model::TenantId;

/// Errors of the quota layer: deterministic, decided from state and input
/// alone, so the leader and every replica agree on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("tenant {tenant} not found")]
    TenantNotFound { tenant: TenantId },
    #[error("tenant {tenant} already exists")]
    TenantExists { tenant: TenantId },
    #[error("tenant {tenant} has no quota {:?}", crate::excerpt::short(quota))]
    QuotaNotFound { tenant: TenantId, quota: String },
    #[error(
        "reservation {reservation} of tenant {tenant} not found (settled, released or expired)"
    )]
    ReservationNotFound {
        tenant: TenantId,
        reservation: String,
    },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    #[error(
        "tenant {tenant} already holds {limit} idempotency keys from the last hour; retry without a key or later"
    )]
    TooManyIdempotencyKeys { tenant: TenantId, limit: usize },
    #[error("user {user:?} is already a member of tenant {tenant}")]
    MemberExists { tenant: TenantId, user: String },
    #[error("user {user:?} is not a member of tenant {tenant}")]
    MemberNotFound { tenant: TenantId, user: String },
    #[error("tenant {tenant} must keep at least one owner")]
    LastOwner { tenant: TenantId },
    /// A change that needs room the tenant's quota does not have (a member
    /// beyond `users`). Waiting does not help; removing usage or a higher
    /// limit does, hence FAILED_PRECONDITION (409), not 429.
    #[error(
        "the tenant's {quota} quota is full ({limit}); free some (e.g. remove a member) or raise the limit (a higher tier)"
    )]
    QuotaExceeded { quota: String, limit: u64 },
    /// A tenant admin asked for more than the tenant's tier grants.
    #[error("{reason}")]
    BeyondTier { reason: String },
    #[error("tenant {tenant} has no API key {id:?}")]
    ApiKeyNotFound { tenant: TenantId, id: String },
    #[error("tenant {tenant} already holds {limit} API keys; revoke one first")]
    TooManyApiKeys { tenant: TenantId, limit: usize },
    /// A shared use the consumer's grant does not allow (no grant, an
    /// ended or expired one, a permission it lacks).
    #[error("sharing policy {policy}: {reason}")]
    SharingDenied { policy: uuid::Uuid, reason: String },
    /// A feature (or flag) the tenant's tier does not have.
    #[error("{0}")]
    NotInTier(crate::custom::FeatureRefused),
    #[error(
        "tenant {tenant} already sets {limit} feature flags, its tier's limit; remove one first"
    )]
    TooManyFlags { tenant: TenantId, limit: u32 },
    #[error(
        "tenant {tenant} has no webhook endpoint {:?}",
        crate::excerpt::short(id)
    )]
    WebhookNotFound { tenant: TenantId, id: String },
    #[error(
        "tenant {tenant} already has {limit} webhook endpoints, its tier's limit; remove one first"
    )]
    TooManyWebhooks { tenant: TenantId, limit: u32 },
    #[error("tenant {tenant} sets no flag {:?}", crate::excerpt::short(key))]
    FlagNotFound { tenant: TenantId, key: String },
    /// A scope value not live yet, beyond the tier's cap on live scope
    /// values: a burst of new end users cannot grow the tenant without end.
    #[error(
        "tenant {tenant} already tracks {limit} live scope values, its tier's limit; a new scope can start once one's period ends"
    )]
    TooManyScopes { tenant: TenantId, limit: u64 },
    #[error(
        "quota {:?} of tenant {tenant} has no credit grant {grant}",
        crate::excerpt::short(quota)
    )]
    GrantNotFound {
        tenant: TenantId,
        quota: String,
        grant: u32,
    },
    #[error("gauge {quota:?} is at {level}; it cannot go down by {amount}")]
    GaugeUnderflow {
        quota: String,
        level: u64,
        amount: u64,
    },
}

impl QuotaError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        QuotaError::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            QuotaError::InvalidArgument { .. } | QuotaError::GaugeUnderflow { .. } => {
                ErrorCode::InvalidArgument
            }
            QuotaError::TenantNotFound { .. }
            | QuotaError::QuotaNotFound { .. }
            | QuotaError::ReservationNotFound { .. }
            | QuotaError::ApiKeyNotFound { .. } => ErrorCode::NotFound,
            QuotaError::TooManyApiKeys { .. }
            | QuotaError::TooManyFlags { .. }
            | QuotaError::TooManyWebhooks { .. } => ErrorCode::FailedPrecondition,
            QuotaError::WebhookNotFound { .. } => ErrorCode::NotFound,
            QuotaError::NotInTier(_) => ErrorCode::PermissionDenied,
            QuotaError::FlagNotFound { .. } => ErrorCode::NotFound,
            QuotaError::TenantExists { .. } => ErrorCode::AlreadyExists,
            QuotaError::IdempotencyKeyReused { .. } => ErrorCode::FailedPrecondition,
            QuotaError::TooManyIdempotencyKeys { .. } | QuotaError::TooManyScopes { .. } => {
                ErrorCode::ResourceExhausted
            }
            QuotaError::GrantNotFound { .. } => ErrorCode::NotFound,
            QuotaError::QuotaExceeded { .. } => ErrorCode::FailedPrecondition,
            QuotaError::MemberExists { .. } => ErrorCode::AlreadyExists,
            QuotaError::MemberNotFound { .. } => ErrorCode::NotFound,
            QuotaError::LastOwner { .. } => ErrorCode::FailedPrecondition,
            QuotaError::BeyondTier { .. } | QuotaError::SharingDenied { .. } => {
                ErrorCode::PermissionDenied
            }
        }
    }

    /// The reason alone, for a caller that names the field itself.
    pub fn reason(&self) -> String {
        match self {
            QuotaError::InvalidArgument { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// The request field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            QuotaError::InvalidArgument { field, .. } => Some(field),
            QuotaError::TenantNotFound { .. } | QuotaError::TenantExists { .. } => {
                Some("tenant_id")
            }
            QuotaError::QuotaNotFound { .. } => Some("quota"),
            QuotaError::ReservationNotFound { .. } => Some("reservation_id"),
            QuotaError::IdempotencyKeyReused { .. } | QuotaError::TooManyIdempotencyKeys { .. } => {
                Some("idempotency_key")
            }
            QuotaError::GaugeUnderflow { .. } => Some("amount"),
            QuotaError::MemberExists { .. } | QuotaError::MemberNotFound { .. } => Some("userId"),
            QuotaError::LastOwner { .. } => Some("role"),
            QuotaError::QuotaExceeded { .. } => Some("quota"),
            QuotaError::ApiKeyNotFound { .. } => Some("keyId"),
            QuotaError::TooManyApiKeys { .. }
            | QuotaError::TooManyFlags { .. }
            | QuotaError::TooManyWebhooks { .. } => None,
            QuotaError::WebhookNotFound { .. } => Some("webhookId"),
            QuotaError::NotInTier(_) => None,
            QuotaError::FlagNotFound { .. } => Some("key"),
            QuotaError::TooManyScopes { .. } => Some("scope"),
            QuotaError::GrantNotFound { .. } => Some("grantId"),
            // About the policy as a whole, not one field of it.
            QuotaError::BeyondTier { .. } => None,
            QuotaError::SharingDenied { .. } => Some("sharing_policy_id"),
        }
    }
}
