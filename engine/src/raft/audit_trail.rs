//! What the state machine writes to a tenant's audit chain for each audited
//! operation: an action name, its target, and JSON of the affected part of
//! the tenant before and after.
use crate::audit::AuditEntry;
use crate::quota::{AlertOp, GrantChange, OpOutcome, TenantOp, TenantState, WebhookChange};

/// The last event of a purged tenant's chain (restore leaves it out).
pub const TENANT_PURGED: &str = "tenant.purged";

fn json<T: serde::Serialize>(v: Option<&T>) -> String {
    v.and_then(|v| serde_json::to_string(v).ok())
        .unwrap_or_default()
}

/// A quota policy as its audit events show it: the rules beyond one
/// limit (format 19) only when it has any, so events of plain policies
/// keep the bytes older releases wrote into the chain.
#[derive(serde::Serialize)]
struct PolicyPart<'a> {
    kind: crate::model::QuotaKind,
    period: crate::model::Period,
    limit: Option<u64>,
    soft_limit: Option<u64>,
    action: crate::model::Action,
    alert_thresholds: &'a [u8],
    overridden: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<&'a crate::model::QuotaRules>,
}

impl<'a> PolicyPart<'a> {
    fn of(p: &'a crate::model::QuotaPolicy) -> Self {
        PolicyPart {
            kind: p.kind,
            period: p.period,
            limit: p.limit,
            soft_limit: p.soft_limit,
            action: p.action,
            alert_thresholds: &p.alert_thresholds,
            overridden: p.overridden,
            rules: p.rules(),
        }
    }
}

/// A grant as its audit events show it. Every replica writes these bytes
/// into the chain, so they are fixed here field by field: a field added to
/// `Grant` later shows only when set, and events of older releases' grants
/// stay the same.
#[derive(serde::Serialize)]
struct GrantPart<'a> {
    id: &'a uuid::Uuid,
    policy: &'a uuid::Uuid,
    provider: &'a crate::model::TenantId,
    consumer: &'a crate::model::TenantId,
    resource_type: &'a crate::sharing::ResourceType,
    resource_id: &'a str,
    permissions: &'a std::collections::BTreeSet<crate::sharing::Permission>,
    expires_at_ms: &'a Option<i64>,
    cap: &'a Option<crate::sharing::UsageCap>,
    pricing: &'a crate::sharing::Pricing,
    platform_fee_bp: u32,
    consumer_tier: crate::model::Tier,
    created_at_ms: i64,
    ended: &'a Option<crate::sharing::GrantEnd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statement_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<&'a str>,
}

impl<'a> GrantPart<'a> {
    fn of(g: &'a crate::sharing::Grant) -> Self {
        GrantPart {
            id: &g.id,
            policy: &g.policy,
            provider: &g.provider,
            consumer: &g.consumer,
            resource_type: &g.resource_type,
            resource_id: &g.resource_id,
            permissions: &g.permissions,
            expires_at_ms: &g.expires_at_ms,
            cap: &g.cap,
            pricing: &g.pricing,
            platform_fee_bp: g.platform_fee_bp,
            consumer_tier: g.consumer_tier,
            created_at_ms: g.created_at_ms,
            ended: &g.ended,
            statement_zone: g.statement_zone.map(|z| z.name()),
            paused: g.paused.as_deref(),
        }
    }
}

/// Branding as its audit events show it, fixed field by field like
/// [`GrantPart`].
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BrandingPart<'a> {
    logo_url: &'a Option<String>,
    favicon_url: &'a Option<String>,
    primary_color: String,
    secondary_color: String,
    text_color: String,
    theme: &'static str,
    product_name: &'a Option<String>,
    white_label: bool,
}

impl<'a> BrandingPart<'a> {
    fn of(b: &'a crate::custom::Branding) -> Self {
        BrandingPart {
            logo_url: &b.logo_url,
            favicon_url: &b.favicon_url,
            primary_color: b.primary_color.hex(),
            secondary_color: b.secondary_color.hex(),
            text_color: b.text_color.hex(),
            theme: b.theme.as_str(),
            product_name: &b.product_name,
            white_label: b.white_label,
        }
    }
}

/// A webhook endpoint as its audit events show it: never its secret, only
/// the secret's last four characters.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointPart<'a> {
    id: &'a str,
    url: &'a str,
    events: Vec<&'static str>,
    description: &'a str,
    enabled: bool,
    secret_last4: &'a str,
}

fn endpoint_part(s: &TenantState, id: &str) -> String {
    json(
        s.alerts
            .endpoints
            .get(id)
            .map(|e| EndpointPart {
                id: &e.id,
                url: &e.url,
                events: e.events.iter().map(|t| t.as_str()).collect(),
                description: &e.description,
                enabled: e.enabled,
                secret_last4: &e.secret.last4,
            })
            .as_ref(),
    )
}

/// The part of `state` that `op` is about, as JSON ("" if absent).
pub fn part(op: &TenantOp, state: Option<&TenantState>) -> String {
    let Some(s) = state else { return String::new() };
    match op {
        TenantOp::Create { .. }
        | TenantOp::Update(_)
        | TenantOp::Delete { .. }
        | TenantOp::Restore
        | TenantOp::Purge => json(Some(&s.tenant)),
        TenantOp::ChangeTier { .. } => json(Some(&s.tenant.tier)),
        TenantOp::SetQuota { quota, .. } => json(
            s.quotas
                .get(quota)
                .map(|q| PolicyPart::of(&q.policy))
                .as_ref(),
        ),
        TenantOp::PatchQuota(p) => json(
            s.quotas
                .get(&p.0.quota)
                .map(|q| PolicyPart::of(&q.policy))
                .as_ref(),
        ),
        TenantOp::AddMember { user_id, .. }
        | TenantOp::RemoveMember { user_id }
        | TenantOp::ChangeRole { user_id, .. } => json(s.members.get(user_id)),
        TenantOp::AddDomain { domain, .. }
        | TenantOp::VerifyDomain { domain }
        | TenantOp::RemoveDomain { domain } => json(s.domains.get(domain)),
        TenantOp::CreateApiKey(k) => json(s.api_keys.0.get(&k.0.id).map(|k| k.view()).as_ref()),
        TenantOp::RotateApiKey(r) => json(s.api_keys.0.get(&r.0.id).map(|k| k.view()).as_ref()),
        TenantOp::RevokeApiKey(id) => json(s.api_keys.0.get(&id.0).map(|k| k.view()).as_ref()),
        TenantOp::HoldGrant(g) => json(
            s.grants
                .get(&g.0.policy)
                .map(|h| GrantPart::of(&h.grant))
                .as_ref(),
        ),
        TenantOp::SetBranding(_) => json(s.custom.branding.as_ref().map(BrandingPart::of).as_ref()),
        TenantOp::SetFlag(f) => json(s.custom.flags.get(&f.0.key).map(|v| v.json()).as_ref()),
        TenantOp::Webhook(c) => match &*c.0 {
            WebhookChange::Add { endpoint, .. } => endpoint_part(s, &endpoint.id),
            WebhookChange::Update { id, .. }
            | WebhookChange::Remove { id }
            | WebhookChange::Rotate { id, .. } => endpoint_part(s, id),
            WebhookChange::Delivered { .. } | WebhookChange::Replay { .. } => String::new(),
        },
        // Never the client secret: its last four characters only.
        TenantOp::SetSso(_) => json(
            s.custom
                .sso
                .as_ref()
                .map(|o| {
                    serde_json::json!({
                        "issuer": o.issuer,
                        "clientId": o.client_id,
                        "clientSecretLast4": o.client_secret.as_ref().map(|c| c.last4.clone()),
                        "allowedEmailDomains": o.allowed_email_domains,
                        "roleClaim": o.role_claim,
                        "roleMapping": o.role_mapping,
                        "defaultRole": o.default_role,
                        "samlMetadata": o.saml_metadata.is_some(),
                    })
                })
                .as_ref(),
        ),
        TenantOp::SetApiSettings(_) => json(Some(&serde_json::json!({
            "ipAllowlist": s.custom.api.ip_allowlist.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "corsOrigins": s.custom.api.cors_origins,
        }))),
        TenantOp::Alerts(a) => match &*a.0 {
            AlertOp::Billing { .. } | AlertOp::BillingSuspend => json(Some(&serde_json::json!({
                "status": s.tenant.status,
                "billing": s.alerts.billing.as_ref().map(|b| serde_json::json!({
                    "failures": b.failures,
                    "graceUntilMs": b.grace_until_ms,
                    "suspend": b.suspend,
                    "suspended": b.suspended,
                })),
            }))),
            AlertOp::Tick | AlertOp::Raise { .. } => String::new(),
        },
        TenantOp::CreditGrant(g) => {
            let (GrantChange::Add { quota, .. } | GrantChange::Void { quota, .. }) = &*g.0;
            json(
                s.quotas
                    .get(quota)
                    .and_then(|q| q.layers())
                    .map(|l| &l.grants),
            )
        }
        TenantOp::SetShadow(_) => json(Some(&*s.shadow)),
        TenantOp::Audit { .. }
        | TenantOp::Spend(_)
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
        | TenantOp::ClosePeriod(_) => String::new(),
    }
}

/// The audit entry for `op`, given the part before and the state after.
pub fn entry(
    op: &TenantOp,
    before: String,
    after: Option<&TenantState>,
    outcome: &OpOutcome,
) -> AuditEntry {
    let (action, target) = match op {
        TenantOp::Create { tenant, .. } => ("tenant.created", tenant.slug.clone()),
        TenantOp::Update(_) => ("tenant.updated", String::new()),
        TenantOp::Delete { .. } => ("tenant.deleted", String::new()),
        TenantOp::AddDomain { domain, .. } => ("domain.added", domain.clone()),
        TenantOp::VerifyDomain { domain } => ("domain.verified", domain.clone()),
        TenantOp::RemoveDomain { domain } => ("domain.removed", domain.clone()),
        TenantOp::Restore => ("tenant.restored", String::new()),
        TenantOp::Purge => (TENANT_PURGED, String::new()),
        TenantOp::ChangeTier { tier, .. } => ("tenant.tier_changed", tier.as_str().to_string()),
        TenantOp::SetQuota { quota, .. } => ("quota.updated", quota.clone()),
        TenantOp::PatchQuota(p) => ("quota.updated", p.0.quota.clone()),
        TenantOp::AddMember { user_id, .. } => ("member.added", user_id.clone()),
        TenantOp::RemoveMember { user_id } => ("member.removed", user_id.clone()),
        TenantOp::ChangeRole { user_id, .. } => ("member.role_changed", user_id.clone()),
        TenantOp::CreateApiKey(k) => ("api_key.created", k.0.id.clone()),
        TenantOp::RotateApiKey(r) => ("api_key.rotated", r.0.id.clone()),
        TenantOp::RevokeApiKey(id) => ("api_key.revoked", id.0.clone()),
        TenantOp::HoldGrant(g) if g.0.ended.is_some() => {
            ("sharing.grant_ended", g.0.id.to_string())
        }
        TenantOp::HoldGrant(g) => ("sharing.grant_held", g.0.id.to_string()),
        TenantOp::SetBranding(b) if b.0.branding.is_none() => ("branding.removed", String::new()),
        TenantOp::SetBranding(_) => ("branding.updated", String::new()),
        TenantOp::SetFlag(f) if f.0.value.is_none() => ("flag.removed", f.0.key.clone()),
        TenantOp::SetFlag(f) => ("flag.set", f.0.key.clone()),
        TenantOp::Webhook(c) => match &*c.0 {
            WebhookChange::Add { endpoint, .. } => ("webhook.created", endpoint.id.clone()),
            WebhookChange::Update { id, .. } => ("webhook.updated", id.clone()),
            WebhookChange::Remove { id } => ("webhook.removed", id.clone()),
            WebhookChange::Rotate { id, .. } => ("webhook.secret_rotated", id.clone()),
            WebhookChange::Delivered { id, .. } => ("webhook.delivery_attempted", id.to_string()),
            WebhookChange::Replay { id } => ("webhook.delivery_replayed", id.to_string()),
        },
        TenantOp::SetApiSettings(_) => ("api_settings.updated", String::new()),
        TenantOp::SetSso(c) if c.0.0.is_none() => ("sso.removed", String::new()),
        TenantOp::SetSso(_) => ("sso.updated", String::new()),
        TenantOp::Alerts(a) => match &*a.0 {
            AlertOp::Billing {
                succeeded: true, ..
            } => ("billing.payment_succeeded", String::new()),
            AlertOp::Billing { .. } => ("billing.payment_failed", String::new()),
            AlertOp::BillingSuspend => ("tenant.suspended_for_billing", String::new()),
            AlertOp::Tick => ("alerts.tick", String::new()),
            AlertOp::Raise { kind, .. } => ("alert.raised", kind.as_str().to_string()),
        },
        TenantOp::Audit {
            action,
            target,
            detail,
        } => {
            return AuditEntry {
                action: action.clone(),
                target: target.clone(),
                before: String::new(),
                after: detail.clone(),
            };
        }
        TenantOp::Increment { quota, .. } | TenantOp::Reserve { quota, .. } => {
            ("usage.recorded", quota.clone())
        }
        TenantOp::Spend(sp) => ("usage.recorded", sp.0.quota.clone()),
        TenantOp::CreditGrant(g) => match &*g.0 {
            GrantChange::Add { quota, .. } => ("quota.grant_added", quota.clone()),
            GrantChange::Void { quota, grant } => {
                ("quota.grant_voided", format!("{quota}/{grant}"))
            }
        },
        TenantOp::SetShadow(_) => ("tenant.shadow_changed", String::new()),
        TenantOp::IncrementAll(all) => (
            "usage.recorded",
            all.0
                .spends
                .iter()
                .map(|s| s.quota.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        TenantOp::SharedUse(u) => ("sharing.used", u.0.policy.to_string()),
        TenantOp::SharedReserve(r) => ("sharing.reserved", r.0.via.policy.to_string()),
        TenantOp::BillSubscriptions(_) => ("sharing.subscriptions_billed", String::new()),
        TenantOp::ClosePeriod(c) => (
            "sharing.period_closed",
            crate::sharing::ledger::period_text(c.0.0),
        ),
        TenantOp::SealTransfer(p) => ("sharing.transfer_sealed", p.0.to_string()),
        TenantOp::ReceiveUsage(r) => ("sharing.usage_received", r.0.consumer.to_string()),
        TenantOp::AckTransfer(a) => ("sharing.transfer_acknowledged", a.0.0.to_string()),
        TenantOp::Settle { .. } => ("reservation.settled", String::new()),
        TenantOp::Release { .. } => ("reservation.released", String::new()),
    };
    let mut after = part(op, after);
    if let OpOutcome::TierChanged { over_limit } = outcome
        && !over_limit.is_empty()
    {
        after = serde_json::json!({ "tier": serde_json::from_str::<serde_json::Value>(&after).unwrap_or_default(), "overLimit": over_limit }).to_string();
    }
    AuditEntry {
        action: action.to_string(),
        target,
        before,
        after,
    }
}
