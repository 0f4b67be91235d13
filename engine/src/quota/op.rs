//! The vocabulary of changes to a tenant: every operation a tenant's actor
//! decides and every replica applies ([`TenantOp`]), and what applying one
//! answers ([`OpOutcome`]). Logged in Raft entries and forwarded between
//! nodes, so its variants are a stored format (see `crate::format`).
use super::all_or_nothing::{AllDecided, AllOrNothing};
use super::decision::Decision;
use super::error::QuotaError;
use super::policy_patch::PolicyPatch;
use super::validate;
use crate::format::Since;
use crate::model::{NewOwner, QuotaPolicy, Role, Scopes, Tenant, TenantId, TenantStatus, Tier};
use chrono_tz::Tz;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Changes to the descriptive fields of a tenant; `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub timezone: Option<Tz>,
    pub status: Option<TenantStatus>,
    pub trial_ends_at_ms: Option<Option<i64>>,
    pub settings_json: Option<String>,
}

/// Every change to a tenant. Ids (reservation ids) are chosen by the leader
/// and carried here, so replicas need no randomness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantOp {
    Create {
        /// Boxed: an operation is moved through channels and batches by
        /// value, and the rare creation should not make every increment
        /// the size of a tenant (the encoding is the same).
        tenant: Box<Tenant>,
        quotas: BTreeMap<String, QuotaPolicy>,
        /// The first owner (counts against the `users` quota).
        owner: Option<NewOwner>,
    },
    Update(TenantUpdate),
    /// Move to `tier`; `defaults` are that tier's quotas from the catalog.
    ChangeTier {
        tier: Tier,
        defaults: BTreeMap<String, QuotaPolicy>,
    },
    SetQuota {
        quota: String,
        policy: QuotaPolicy,
    },
    Increment {
        quota: String,
        amount: i64,
        idempotency_key: Option<String>,
    },
    Reserve {
        quota: String,
        amount: u64,
        ttl_ms: u64,
        reservation_id: Uuid,
        idempotency_key: Option<String>,
    },
    Settle {
        reservation_id: Uuid,
        actual: u64,
    },
    Release {
        reservation_id: Uuid,
    },
    AddMember {
        user_id: String,
        role: Role,
    },
    RemoveMember {
        user_id: String,
    },
    ChangeRole {
        user_id: String,
        role: Role,
    },
    /// Register a custom domain (unverified), with its verification token.
    AddDomain {
        domain: String,
        token: String,
    },
    VerifyDomain {
        domain: String,
    },
    RemoveDomain {
        domain: String,
    },
    /// Soft delete: refuse everything until restored or purged.
    Delete {
        retention_ms: i64,
    },
    Restore,
    /// Remove the tenant's state for good (after its retention).
    Purge,
    /// Record an event that changes nothing else (an access denial).
    Audit {
        action: String,
        target: String,
        detail: String,
    },
    /// Spend on several quotas as one decision: all or nothing (format 2).
    IncrementAll(Since<2, AllOrNothing>),
    /// Change a quota's policy as a caller asked, resolved against the
    /// tenant's tier when applied (format 3).
    PatchQuota(Since<3, Box<QuotaPatch>>),
    /// Add an API key, whose secret the caller made and hashed (format 4).
    CreateApiKey(Since<4, Box<NewApiKey>>),
    /// Give a key a new secret (format 4).
    RotateApiKey(Since<4, ApiKeyRotation>),
    /// Remove a key: it opens nothing from the entry on (format 4).
    RevokeApiKey(Since<4, String>),
    /// Hold a sharing grant as the catalog decided it: new, with new
    /// terms, or ended (format 6). Applying it again changes nothing.
    HoldGrant(Since<6, Box<crate::sharing::Grant>>),
    /// Spend on a quota through a sharing grant: the grant must allow it,
    /// and the use is recorded for the provider (format 7).
    SharedUse(Since<7, SharedUse>),
    /// Seal what the tenant owes a provider's totals into a transfer
    /// (format 7; see `crate::sharing::ledger`).
    SealTransfer(Since<7, TenantId>),
    /// As the provider: take a consumer's transfer, once (format 7).
    ReceiveUsage(Since<7, Box<Received>>),
    /// The provider took the transfer with this sequence (format 7).
    AckTransfer(Since<7, (TenantId, u64)>),
    /// Hold an amount through a sharing grant; its settlement is recorded
    /// for the provider (format 8).
    SharedReserve(Since<8, Box<SharedReserve>>),
    /// Charge the subscription grants the tenant holds for every month
    /// not billed yet, through the current one (format 9).
    BillSubscriptions(Since<9, ()>),
    /// Close a statement period for this tenant: its lines are final from
    /// here (format 10).
    ClosePeriod(Since<10, (u32, i64)>),
    /// Set the tenant's branding, or remove it (format 16).
    SetBranding(Since<16, Box<BrandingChange>>),
    /// Set or remove one of the tenant's flag values (format 16).
    SetFlag(Since<16, Box<FlagChange>>),
    /// Webhook endpoints, and the outbox of their deliveries (format 17).
    Webhook(Since<17, Box<WebhookChange>>),
    /// Alerts raised from outside a decision (format 17).
    Alerts(Since<17, Box<AlertOp>>),
    /// Set the tenant's API settings (format 17); `Needs` is the
    /// api_settings feature, checked against the tier when it applies.
    SetApiSettings(
        Since<
            17,
            Box<(
                crate::custom::api_settings::ApiSettings,
                crate::custom::Needs,
            )>,
        >,
    ),
    /// Set (or, `None`, remove) the tenant's single sign-on (format 17).
    SetSso(
        Since<
            17,
            Box<(
                Option<crate::custom::sso::SsoSettings>,
                crate::custom::Needs,
            )>,
        >,
    ),
    /// A spend that names a scope, or a hold with one (format 19).
    Spend(Since<19, Box<ScopedSpend>>),
    /// Add or void a credit grant on one of the tenant's quotas (format 19).
    CreditGrant(Since<19, Box<GrantChange>>),
    /// Put the whole tenant in shadow mode, or take it out (format 19).
    SetShadow(Since<19, bool>),
}

/// What [`TenantOp::Spend`] carries: an increment (or, with `hold`, a
/// reservation) that names a scope value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedSpend {
    pub quota: String,
    pub amount: i64,
    /// Inline up to 24 bytes (end-user ids mostly are): the call is cloned
    /// on its way to the actor, and a heap copy there was an allocation
    /// and a free per scoped decision. Encoded as a string, as before.
    pub scope: CompactString,
    pub idempotency_key: Option<String>,
    /// Each tier's cap on a tenant's live scope values ([`Tier::ALL`]
    /// order), as the deciding node's catalog says: the cap of the tier the
    /// tenant is on when it applies.
    pub max_scopes: [u64; 4],
    /// A reservation: `(ttl_ms, reservation_id)`.
    pub hold: Option<(u64, Uuid)>,
}

impl ScopedSpend {
    /// The cap on live scope values for a tenant of `tier`.
    pub fn cap(&self, tier: Tier) -> u64 {
        tier_cap(&self.max_scopes, tier)
    }
}

/// The cap on live scope values for a tenant of `tier`, from each tier's
/// ([`Tier::ALL`] order).
pub(crate) fn tier_cap(max_scopes: &[u64; 4], tier: Tier) -> u64 {
    Tier::ALL
        .iter()
        .position(|t| *t == tier)
        .map_or(u64::MAX, |i| max_scopes[i])
}

/// What [`TenantOp::CreditGrant`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantChange {
    Add {
        quota: String,
        grant: super::layer_state::NewCreditGrant,
    },
    Void {
        quota: String,
        grant: u32,
    },
}

/// What [`TenantOp::Alerts`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertOp {
    /// Raise the time-driven alerts due now (a trial's milestones).
    Tick,
    /// Raise `kind` once per `window` of `key` (an anomaly per quota and
    /// cool-down window, a sharing event per request or grant).
    Raise {
        kind: crate::alerts::AlertType,
        key: String,
        window: i64,
        /// The alert's data, JSON.
        data: String,
    },
    /// A payment failed (starting a grace period of `grace_ms`, then
    /// suspension if `suspend`) or succeeded (ending it), as the
    /// platform's billing system reported it.
    Billing {
        succeeded: bool,
        grace_ms: i64,
        suspend: bool,
        data: String,
    },
    /// The grace period of an unpaid bill ran out: suspend the tenant.
    BillingSuspend,
}

/// What [`TenantOp::Webhook`] carries. Secrets arrive sealed; ids, times
/// and retry times are the leader's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookChange {
    /// A new endpoint; `limit`: the tier's, `needs`: the webhooks feature.
    Add {
        endpoint: Box<crate::alerts::Endpoint>,
        limit: Option<u32>,
        needs: crate::custom::Needs,
    },
    Update {
        id: String,
        spec: crate::alerts::EndpointSpec,
    },
    Remove {
        id: String,
    },
    /// A new signing secret; the old one also signs until `overlap_until_ms`.
    Rotate {
        id: String,
        secret: crate::custom::secret::Sealed,
        overlap_until_ms: i64,
    },
    /// The delivery worker's attempt and what it means.
    Delivered {
        id: u64,
        attempt: crate::alerts::Attempt,
        outcome: crate::alerts::Outcome,
    },
    /// Queue a finished delivery again (from the dead-letter list).
    Replay {
        id: u64,
    },
}

/// What [`TenantOp::SetBranding`] carries: the branding (`None` removes
/// it) and the features it needs, checked against the tier in apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandingChange {
    pub branding: Option<crate::custom::Branding>,
    pub needs: Vec<crate::custom::Needs>,
}

/// What [`TenantOp::SetFlag`] carries: the value (`None` removes it), and
/// the flag's definition as the leader saw it (its type and lowest tier;
/// none for a flag of the tenant's own) with the tier's limit on values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagChange {
    pub key: String,
    pub value: Option<crate::custom::FlagValue>,
    pub kind: Option<crate::custom::FlagType>,
    pub needs: Option<crate::custom::Needs>,
    pub limit: Option<u32>,
}

/// What [`TenantOp::SharedReserve`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedReserve {
    pub quota: String,
    pub amount: u64,
    pub ttl_ms: u64,
    pub reservation_id: Uuid,
    pub idempotency_key: Option<String>,
    pub via: crate::sharing::Via,
}

/// What [`TenantOp::SharedUse`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedUse {
    pub quota: String,
    pub amount: i64,
    pub idempotency_key: Option<String>,
    pub policy: Uuid,
    pub permission: crate::sharing::Permission,
}

/// What [`TenantOp::ReceiveUsage`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub consumer: TenantId,
    pub transfer: crate::sharing::Transfer,
}

/// What [`TenantOp::CreateApiKey`] carries: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    pub hash: [u8; 32],
    pub last4: String,
    pub created_by: String,
    pub expires_at_ms: Option<i64>,
}

/// What [`TenantOp::RotateApiKey`] carries: the new secret's hash, and how
/// long the old secret keeps working (0: not at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRotation {
    pub id: String,
    pub hash: [u8; 32],
    pub last4: String,
    pub grace_ms: i64,
}

/// What [`TenantOp::PatchQuota`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPatch {
    pub quota: String,
    pub patch: PolicyPatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    /// Tenant created or changed.
    Tenant,
    /// Tier changed; quotas whose current usage is above their new limit.
    TierChanged {
        over_limit: Vec<String>,
    },
    Decision(Decision),
    Reserved {
        decision: Decision,
        reservation_id: Option<Uuid>,
        expires_at_ms: Option<i64>,
    },
    Released {
        amount: u64,
    },
    /// The answer to [`TenantOp::IncrementAll`] (format 2).
    AllDecided(Since<2, AllDecided>),
    /// A credit grant as added or voided (format 19).
    CreditGrant(Since<19, Box<super::layer_state::CreditGrant>>),
}

impl OpOutcome {
    /// An answer stored for an idempotency key, not a new decision.
    pub fn is_replay(&self) -> bool {
        match self {
            OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => d.replayed,
            OpOutcome::AllDecided(all) => all.0.decisions.iter().flatten().any(|d| d.replayed),
            _ => false,
        }
    }

    pub(super) fn replayed(mut self) -> Self {
        match &mut self {
            OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => d.replayed = true,
            OpOutcome::AllDecided(all) => all.0.mark_replayed(),
            _ => {}
        }
        self
    }
}

/// What applying an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: OpOutcome,
    /// False when nothing persistent changed (a denial without an
    /// idempotency key, a replay): such operations need no log entry,
    /// because time-driven changes (period resets, expiries) happen the same
    /// way at the next logged operation.
    pub changed: bool,
}

impl Applied {
    /// A change that must be logged.
    pub(crate) fn changed(outcome: OpOutcome) -> Applied {
        Applied {
            outcome,
            changed: true,
        }
    }
}

/// How an operation is treated on its way to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// A control-plane change: audited, always strict.
    Admin,
    /// A spend (or its settlement): strict or fast as the caller asks.
    Admission,
}

impl TenantOp {
    /// Its name, as traces show it.
    pub fn kind(&self) -> &'static str {
        match self {
            TenantOp::Create { .. } => "create",
            TenantOp::Update(_) => "update",
            TenantOp::ChangeTier { .. } => "change_tier",
            TenantOp::SetQuota { .. } => "set_quota",
            TenantOp::Increment { .. } => "increment",
            TenantOp::Reserve { .. } => "reserve",
            TenantOp::Settle { .. } => "settle",
            TenantOp::Release { .. } => "release",
            TenantOp::AddMember { .. } => "add_member",
            TenantOp::RemoveMember { .. } => "remove_member",
            TenantOp::ChangeRole { .. } => "change_role",
            TenantOp::AddDomain { .. } => "add_domain",
            TenantOp::VerifyDomain { .. } => "verify_domain",
            TenantOp::RemoveDomain { .. } => "remove_domain",
            TenantOp::Delete { .. } => "delete",
            TenantOp::Restore => "restore",
            TenantOp::Purge => "purge",
            TenantOp::Audit { .. } => "audit",
            TenantOp::IncrementAll(_) => "increment_all",
            TenantOp::PatchQuota(_) => "patch_quota",
            TenantOp::CreateApiKey(_) => "create_api_key",
            TenantOp::RotateApiKey(_) => "rotate_api_key",
            TenantOp::RevokeApiKey(_) => "revoke_api_key",
            TenantOp::HoldGrant(_) => "hold_grant",
            TenantOp::SharedUse(_) => "shared_use",
            TenantOp::SealTransfer(_) => "seal_transfer",
            TenantOp::ReceiveUsage(_) => "receive_usage",
            TenantOp::AckTransfer(_) => "ack_transfer",
            TenantOp::SharedReserve(_) => "shared_reserve",
            TenantOp::BillSubscriptions(_) => "bill_subscriptions",
            TenantOp::ClosePeriod(_) => "close_period",
            TenantOp::SetBranding(_) => "set_branding",
            TenantOp::SetFlag(_) => "set_flag",
            TenantOp::Webhook(_) => "webhook",
            TenantOp::Alerts(_) => "alerts",
            TenantOp::SetApiSettings(_) => "set_api_settings",
            TenantOp::SetSso(_) => "set_sso",
            TenantOp::Spend(_) => "spend",
            TenantOp::CreditGrant(_) => "credit_grant",
            TenantOp::SetShadow(_) => "set_shadow",
        }
    }

    /// Whether it is an admin change or an admission. Exhaustive: a new
    /// operation must say which it is.
    pub fn class(&self) -> OpClass {
        match self {
            TenantOp::Create { .. }
            | TenantOp::Update(_)
            | TenantOp::ChangeTier { .. }
            | TenantOp::SetQuota { .. }
            | TenantOp::PatchQuota(_)
            | TenantOp::AddMember { .. }
            | TenantOp::RemoveMember { .. }
            | TenantOp::ChangeRole { .. }
            | TenantOp::AddDomain { .. }
            | TenantOp::VerifyDomain { .. }
            | TenantOp::RemoveDomain { .. }
            | TenantOp::Delete { .. }
            | TenantOp::Restore
            | TenantOp::Purge
            | TenantOp::Audit { .. }
            | TenantOp::CreateApiKey(_)
            | TenantOp::RotateApiKey(_)
            | TenantOp::RevokeApiKey(_)
            | TenantOp::HoldGrant(_)
            | TenantOp::SetBranding(_)
            | TenantOp::SetFlag(_) => OpClass::Admin,
            // A delivery's attempt is the worker's bookkeeping, not an
            // admin change: not audited, like a spend.
            TenantOp::Webhook(c) => match *c.0 {
                WebhookChange::Delivered { .. } => OpClass::Admission,
                _ => OpClass::Admin,
            },
            // Billing events and suspensions change the tenant: audited.
            // Ticks and raised alerts are bookkeeping, like a spend.
            TenantOp::SetApiSettings(_) | TenantOp::SetSso(_) => OpClass::Admin,
            TenantOp::CreditGrant(_) | TenantOp::SetShadow(_) => OpClass::Admin,
            TenantOp::Alerts(a) => match *a.0 {
                AlertOp::Billing { .. } | AlertOp::BillingSuspend => OpClass::Admin,
                AlertOp::Tick | AlertOp::Raise { .. } => OpClass::Admission,
            },
            TenantOp::Increment { .. }
            | TenantOp::IncrementAll(_)
            | TenantOp::Reserve { .. }
            | TenantOp::Settle { .. }
            | TenantOp::Release { .. }
            | TenantOp::SharedUse(_)
            | TenantOp::SealTransfer(_)
            | TenantOp::ReceiveUsage(_)
            | TenantOp::AckTransfer(_)
            | TenantOp::SharedReserve(_)
            | TenantOp::BillSubscriptions(_)
            | TenantOp::Spend(_)
            | TenantOp::ClosePeriod(_) => OpClass::Admission,
        }
    }

    /// The fields of an admin change that a caller chose. Exhaustive, so a new
    /// operation says what it checks. Changes that also claim or release a name
    /// in the meta group, and spends, are not admin changes of this kind.
    pub fn validate_admin(&self) -> Result<(), QuotaError> {
        match self {
            TenantOp::Update(u) => u.name.as_deref().map_or(Ok(()), validate::tenant_name),
            TenantOp::SetQuota { quota, policy } => {
                validate::quota_name(quota)?;
                validate::policy(policy)
            }
            TenantOp::AddMember { user_id: id, .. } => validate::user_id(id),
            // The policy it makes is validated when it is resolved, in apply.
            TenantOp::PatchQuota(p) => validate::quota_name(&p.0.quota),
            TenantOp::CreateApiKey(k) => validate::api_key_name(&k.0.name),
            TenantOp::RotateApiKey(r) => validate::api_key_grace(r.0.grace_ms),
            TenantOp::SetFlag(f) => crate::custom::features::check_name(&f.0.key)
                .map_err(|e| QuotaError::invalid("key", e)),
            // Checked as a whole (`BrandingInput::check`) before it is made.
            TenantOp::SetBranding(_) => Ok(()),
            // Checked as a whole (`EndpointSpec::check`) before it is made.
            TenantOp::Webhook(_) => Ok(()),
            TenantOp::Alerts(_) => Ok(()),
            // Checked as a whole (`ApiSettings::check`) before it is made.
            TenantOp::SetApiSettings(_) => Ok(()),
            // Checked as a whole (`SsoInput::check`) before it is made.
            TenantOp::SetSso(_) => Ok(()),
            TenantOp::CreditGrant(g) => match &*g.0 {
                GrantChange::Add { quota, grant } => {
                    validate::quota_name(quota)?;
                    super::layer_state::check_grant(grant)
                }
                GrantChange::Void { quota, .. } => validate::quota_name(quota),
            },
            TenantOp::SetShadow(_) => Ok(()),
            TenantOp::ChangeTier { .. }
            | TenantOp::RemoveMember { .. }
            | TenantOp::ChangeRole { .. }
            | TenantOp::VerifyDomain { .. }
            | TenantOp::Delete { .. }
            | TenantOp::Restore
            | TenantOp::Audit { .. }
            | TenantOp::RevokeApiKey(_)
            | TenantOp::HoldGrant(_) => Ok(()),
            TenantOp::Create { .. }
            | TenantOp::AddDomain { .. }
            | TenantOp::RemoveDomain { .. }
            | TenantOp::Purge => Err(QuotaError::invalid(
                "operation",
                "this change also claims or releases a name across the cluster; it has its own call",
            )),
            TenantOp::Increment { .. }
            | TenantOp::IncrementAll(_)
            | TenantOp::Reserve { .. }
            | TenantOp::Settle { .. }
            | TenantOp::Release { .. }
            | TenantOp::SharedUse(_)
            | TenantOp::SealTransfer(_)
            | TenantOp::ReceiveUsage(_)
            | TenantOp::AckTransfer(_)
            | TenantOp::SharedReserve(_)
            | TenantOp::BillSubscriptions(_)
            | TenantOp::Spend(_)
            | TenantOp::ClosePeriod(_) => Err(QuotaError::invalid(
                "operation",
                "a spend is not an admin change",
            )),
        }
    }

    /// Whether applying it may give a quota a new policy.
    pub fn sets_policies(&self) -> bool {
        match self {
            TenantOp::Create { .. }
            | TenantOp::ChangeTier { .. }
            | TenantOp::SetQuota { .. }
            | TenantOp::PatchQuota(_) => true,
            TenantOp::Update(_)
            | TenantOp::AddMember { .. }
            | TenantOp::RemoveMember { .. }
            | TenantOp::ChangeRole { .. }
            | TenantOp::AddDomain { .. }
            | TenantOp::VerifyDomain { .. }
            | TenantOp::RemoveDomain { .. }
            | TenantOp::Delete { .. }
            | TenantOp::Restore
            | TenantOp::Purge
            | TenantOp::Audit { .. }
            | TenantOp::CreateApiKey(_)
            | TenantOp::RotateApiKey(_)
            | TenantOp::RevokeApiKey(_)
            | TenantOp::HoldGrant(_)
            | TenantOp::SetBranding(_)
            | TenantOp::SetFlag(_)
            | TenantOp::Webhook(_)
            | TenantOp::Alerts(_)
            | TenantOp::SetApiSettings(_)
            | TenantOp::SetSso(_)
            | TenantOp::Spend(_)
            | TenantOp::CreditGrant(_)
            | TenantOp::SetShadow(_)
            | TenantOp::Increment { .. }
            | TenantOp::IncrementAll(_)
            | TenantOp::Reserve { .. }
            | TenantOp::Settle { .. }
            | TenantOp::Release { .. }
            | TenantOp::SharedUse(_)
            | TenantOp::SealTransfer(_)
            | TenantOp::ReceiveUsage(_)
            | TenantOp::AckTransfer(_)
            | TenantOp::SharedReserve(_)
            | TenantOp::BillSubscriptions(_)
            | TenantOp::ClosePeriod(_) => false,
        }
    }

    /// Whether sending it twice is harmless: a second one is replayed
    /// (an idempotency key) or refused or changes nothing (it names what it
    /// changes). Exhaustive, like [`TenantOp::class`].
    pub fn retry_safe(&self) -> bool {
        match self {
            TenantOp::Increment {
                idempotency_key, ..
            }
            | TenantOp::Reserve {
                idempotency_key, ..
            } => idempotency_key.is_some(),
            TenantOp::IncrementAll(all) => all.0.idempotency_key.is_some(),
            TenantOp::SharedUse(u) => u.0.idempotency_key.is_some(),
            TenantOp::SharedReserve(r) => r.0.idempotency_key.is_some(),
            // Each is applied once whatever the repeats (sequence numbers).
            TenantOp::SealTransfer(_)
            | TenantOp::ReceiveUsage(_)
            | TenantOp::AckTransfer(_)
            | TenantOp::BillSubscriptions(_)
            | TenantOp::ClosePeriod(_) => true,
            TenantOp::Settle { .. }
            | TenantOp::Release { .. }
            | TenantOp::Create { .. }
            | TenantOp::HoldGrant(_) => true,
            // Applying one twice changes twice (an update's timestamp, a
            // second audit event) or fails the second time where the first
            // succeeded: not retried blindly.
            TenantOp::Update(_)
            | TenantOp::ChangeTier { .. }
            | TenantOp::SetQuota { .. }
            | TenantOp::PatchQuota(_)
            | TenantOp::AddMember { .. }
            | TenantOp::RemoveMember { .. }
            | TenantOp::ChangeRole { .. }
            | TenantOp::AddDomain { .. }
            | TenantOp::VerifyDomain { .. }
            | TenantOp::RemoveDomain { .. }
            | TenantOp::Delete { .. }
            | TenantOp::Restore
            | TenantOp::Purge
            | TenantOp::Audit { .. }
            | TenantOp::CreateApiKey(_)
            | TenantOp::RotateApiKey(_)
            | TenantOp::RevokeApiKey(_)
            | TenantOp::SetBranding(_)
            | TenantOp::SetFlag(_) => false,
            // An attempt recorded twice is recorded once (the delivery is
            // no longer pending); other changes are admin changes.
            TenantOp::Webhook(c) => matches!(*c.0, WebhookChange::Delivered { .. }),
            // Each raises once per occasion, whatever the repeats; a
            // billing event raises an alert each time it is reported.
            TenantOp::Alerts(a) => !matches!(*a.0, AlertOp::Billing { .. }),
            TenantOp::SetApiSettings(_) | TenantOp::SetSso(_) => false,
            TenantOp::Spend(s) => s.0.idempotency_key.is_some(),
            // An added grant with a key is added once; a void names its
            // grant; shadow mode is a value.
            TenantOp::CreditGrant(g) => match &*g.0 {
                GrantChange::Add { grant, .. } => grant.idempotency_key.is_some(),
                GrantChange::Void { .. } => true,
            },
            TenantOp::SetShadow(_) => true,
        }
    }
}

#[cfg(test)]
mod size {
    /// Operations are moved by value through the actor's mailbox, the
    /// commit queue and the batch of an entry, a copy each time: the rare
    /// large ones (a new tenant, an API key, a quota patch) are boxed so an
    /// increment is not the size of a tenant.
    #[test]
    fn an_operation_stays_small() {
        use std::mem::size_of;
        assert!(
            size_of::<super::TenantOp>() <= 96,
            "{}",
            size_of::<super::TenantOp>()
        );
        assert!(size_of::<crate::raft::StampedOp>() <= 168);
        assert!(size_of::<crate::shard::TenantCall>() <= 152);
        assert!(size_of::<crate::shard::BatchItem>() <= 104);
    }
}
