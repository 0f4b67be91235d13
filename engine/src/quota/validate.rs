//! Input rules shared by gRPC and REST, so both reject the same things with
//! the same field names.
use super::error::QuotaError;
use crate::model::{Action, Period, QuotaKind, QuotaPolicy};

/// The largest amount one request may carry: 10^15 (a petabyte in bytes).
/// Anything larger is a caller bug, not usage.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;
/// The largest limit a quota may have; larger means "unlimited".
pub const MAX_LIMIT: u64 = 1_000_000_000_000_000_000;
/// Reservations live at most a day.
pub const MAX_TTL_MS: u64 = 24 * 3_600_000;
pub const DEFAULT_TTL_MS: u64 = 60_000;

pub use crate::excerpt::short;

/// Quota names: lowercase letter first, then lowercase letters, digits, `_`;
/// at most 64 characters.
pub fn quota_name(name: &str) -> Result<(), QuotaError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(QuotaError::invalid(
            "quota",
            format!(
                "{:?} is not a quota name (lowercase letters, digits and '_', starting with a letter, at most 64 characters)",
                short(name)
            ),
        ))
    }
}

/// A signed amount for increments: non-zero, within ±MAX_AMOUNT.
pub fn amount(amount: i64) -> Result<(), QuotaError> {
    if amount == 0 {
        return Err(QuotaError::invalid("amount", "must not be 0"));
    }
    if amount.unsigned_abs() > MAX_AMOUNT {
        return Err(QuotaError::invalid(
            "amount",
            format!("{amount} is beyond the maximum of {MAX_AMOUNT}"),
        ));
    }
    Ok(())
}

/// A positive amount (checks, reservations).
pub fn positive_amount(field: &'static str, amount: i64) -> Result<u64, QuotaError> {
    if amount <= 0 {
        return Err(QuotaError::invalid(field, "must be at least 1"));
    }
    if amount as u64 > MAX_AMOUNT {
        return Err(QuotaError::invalid(
            field,
            format!("{amount} is larger than the maximum of {MAX_AMOUNT}"),
        ));
    }
    Ok(amount as u64)
}

pub fn ttl_ms(ttl: u64) -> Result<u64, QuotaError> {
    match ttl {
        0 => Ok(DEFAULT_TTL_MS),
        t if t > MAX_TTL_MS => Err(QuotaError::invalid(
            "ttl_ms",
            format!("{t} is longer than the maximum of {MAX_TTL_MS} (one day)"),
        )),
        t => Ok(t),
    }
}

/// A policy is consistent: the period fits the kind, the soft limit is below
/// the limit, thresholds are percentages.
pub fn policy(p: &QuotaPolicy) -> Result<(), QuotaError> {
    let period_ok = match p.kind {
        QuotaKind::Counter => matches!(
            p.period,
            Period::Hourly | Period::Daily | Period::Monthly | Period::Never
        ),
        QuotaKind::Rate => matches!(p.period, Period::Second | Period::Minute),
        QuotaKind::Gauge => p.period == Period::Never,
    };
    if !period_ok {
        let allowed = match p.kind {
            QuotaKind::Counter => "hourly, daily, monthly or never",
            QuotaKind::Rate => "second or minute",
            QuotaKind::Gauge => "never",
        };
        return Err(QuotaError::invalid(
            "period",
            format!("a {:?} quota needs period {allowed}", p.kind).to_lowercase(),
        ));
    }
    if let Some(limit) = p.limit
        && limit > MAX_LIMIT
    {
        return Err(QuotaError::invalid(
            "limit",
            format!("{limit} is beyond the maximum of {MAX_LIMIT}; omit the limit for unlimited"),
        ));
    }
    if let Some(soft) = p.soft_limit {
        match p.limit {
            Some(limit) if soft > limit => {
                return Err(QuotaError::invalid(
                    "softLimit",
                    format!("{soft} is above the limit {limit}"),
                ));
            }
            _ if soft > MAX_LIMIT => {
                return Err(QuotaError::invalid("softLimit", "too large"));
            }
            _ => {}
        }
    }
    if p.alert_thresholds.len() > 8 {
        return Err(QuotaError::invalid(
            "alertThresholds",
            "at most 8 thresholds",
        ));
    }
    if p.alert_thresholds.iter().any(|t| *t == 0 || *t > 100) {
        return Err(QuotaError::invalid(
            "alertThresholds",
            "thresholds are percentages from 1 to 100",
        ));
    }
    if p.kind == QuotaKind::Rate && matches!(p.action, Action::AllowOverage) && p.limit.is_none() {
        return Err(QuotaError::invalid("action", "allow_overage needs a limit"));
    }
    match p.rules() {
        Some(r) => rules(p, r),
        None => Ok(()),
    }
}

/// The rules beyond the one limit: each window and scope limit a counter
/// or rate policy with a limit, rollover only on a counter with a limit,
/// scope values and patterns as requests name them.
fn rules(p: &QuotaPolicy, r: &crate::model::QuotaRules) -> Result<(), QuotaError> {
    use crate::model::quota_rules::{MAX_SCOPE_OVERRIDES, MAX_WINDOWS, scope_value_ok};
    let limit_ok = |field: &'static str, w: &QuotaPolicy| -> Result<(), QuotaError> {
        if w.kind == QuotaKind::Gauge || w.limit.is_none() || w.rules().is_some() {
            return Err(QuotaError::invalid(
                field,
                "each is a limit per period: a counter (hourly, daily, monthly) or a rate (second, minute) with a limit",
            ));
        }
        policy(w).map_err(|e| QuotaError::invalid(field, e.reason()))
    };
    if r.windows.len() > MAX_WINDOWS {
        return Err(QuotaError::invalid(
            "windows",
            format!("at most {MAX_WINDOWS} further windows"),
        ));
    }
    for w in &r.windows {
        limit_ok("windows", w)?;
    }
    if (r.rollover || r.preserve_overage) && (p.kind != QuotaKind::Counter || p.limit.is_none()) {
        return Err(QuotaError::invalid(
            if r.rollover {
                "rollover"
            } else {
                "preserveOverage"
            },
            "carries from one period into the next: needs a counter with a limit",
        ));
    }
    if r.rollover_max.is_some() && !r.rollover {
        return Err(QuotaError::invalid("rolloverMax", "needs rollover"));
    }
    if r.rollover_max.is_some_and(|m| m > MAX_LIMIT) {
        return Err(QuotaError::invalid("rolloverMax", "too large"));
    }
    if let Some(scopes) = &r.scopes {
        if p.kind == QuotaKind::Gauge {
            return Err(QuotaError::invalid(
                "scopes",
                "a gauge is a level, not a spend: it has no scopes",
            ));
        }
        if scopes.default.is_none() && scopes.overrides.is_empty() {
            return Err(QuotaError::invalid(
                "scopes",
                "name a default limit or at least one override",
            ));
        }
        if scopes.overrides.len() > MAX_SCOPE_OVERRIDES {
            return Err(QuotaError::invalid(
                "scopes.overrides",
                format!("at most {MAX_SCOPE_OVERRIDES}"),
            ));
        }
        if let Some(d) = &scopes.default {
            limit_ok("scopes.default", d)?;
        }
        for (i, (pattern, w)) in scopes.overrides.iter().enumerate() {
            if !scope_value_ok(pattern, true) {
                return Err(QuotaError::invalid(
                    "scopes.overrides",
                    format!(
                        "{:?}: 1-128 bytes of letters, digits and . _ - : @ / +, and at most one *",
                        crate::excerpt::short(pattern)
                    ),
                ));
            }
            if i > 0 && scopes.overrides[i - 1].0 >= *pattern {
                return Err(QuotaError::invalid(
                    "scopes.overrides",
                    format!("{pattern:?} is named twice"),
                ));
            }
            limit_ok("scopes.overrides", w)?;
        }
    }
    Ok(())
}

/// A scope value as a request names it (an end user, an API key, a
/// project, a model).
pub fn scope(value: &str) -> Result<(), QuotaError> {
    if crate::model::quota_rules::scope_value_ok(value, false) {
        return Ok(());
    }
    Err(QuotaError::invalid(
        "scope",
        "1-128 bytes of letters, digits and . _ - : @ / +",
    ))
}

/// Tenant slugs are DNS labels: 1-63 of `a-z0-9-`, not starting or ending
/// with `-` (they name sub-domains).
pub fn slug(slug: &str) -> Result<(), QuotaError> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(QuotaError::invalid(
            "slug",
            format!(
                "{:?} is not a slug (1-63 of a-z, 0-9 and '-', not starting or ending with '-')",
                short(slug)
            ),
        ))
    }
}

pub fn tenant_name(name: &str) -> Result<(), QuotaError> {
    if name.trim().is_empty() {
        return Err(QuotaError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(QuotaError::invalid("name", "at most 200 characters"));
    }
    Ok(())
}

pub fn timezone(tz: &str) -> Result<chrono_tz::Tz, QuotaError> {
    tz.parse::<chrono_tz::Tz>().map_err(|_| {
        QuotaError::invalid(
            "timezone",
            format!(
                "{:?} is not an IANA timezone (e.g. \"America/New_York\", \"UTC\")",
                short(tz)
            ),
        )
    })
}

pub fn tenant_id(id: &str) -> Result<uuid::Uuid, QuotaError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| QuotaError::invalid("tenant_id", format!("{:?} is not a UUID", short(id))))
}

pub fn reservation_id(id: &str) -> Result<uuid::Uuid, QuotaError> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        QuotaError::invalid("reservation_id", format!("{:?} is not a UUID", short(id)))
    })
}

/// User ids come from the identity provider (a token's `sub`): 1-128
/// printable characters.
pub fn user_id(id: &str) -> Result<(), QuotaError> {
    if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(QuotaError::invalid(
            "userId",
            "a user id has 1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// An API key's name: 1-64 printable characters.
pub fn api_key_name(name: &str) -> Result<(), QuotaError> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(QuotaError::invalid(
            "name",
            "an API key's name has 1 to 64 printable characters",
        ));
    }
    Ok(())
}

/// Longest an old secret keeps working after a rotation.
pub const MAX_ROTATION_GRACE_MS: i64 = 7 * 86_400_000;

pub fn api_key_grace(grace_ms: i64) -> Result<(), QuotaError> {
    if !(0..=MAX_ROTATION_GRACE_MS).contains(&grace_ms) {
        return Err(QuotaError::invalid(
            "graceSeconds",
            "between 0 and 604800 (7 days)",
        ));
    }
    Ok(())
}

/// A contact email address: `local@domain`, the domain a DNS name with a
/// dot, at most 254 characters, no spaces or control characters. (Whether
/// it receives mail is not ours to check.)
pub fn email(field: &'static str, email: &str) -> Result<(), QuotaError> {
    let bad = |why: &str| {
        Err(QuotaError::invalid(
            field,
            format!("{:?} is not an email address: {why}", short(email)),
        ))
    };
    if email.len() > 254 {
        return bad("at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("no spaces or control characters");
    }
    let Some((local, host)) = email.rsplit_once('@') else {
        return bad("it has no '@'");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return bad("the part before '@' has 1 to 64 characters and no '@'");
    }
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !host.contains('.') || !labels_ok {
        return bad("the part after '@' is a domain name such as example.com");
    }
    Ok(())
}

/// A custom domain: a lowercase DNS name of at least two labels (no IP
/// addresses, no trailing dot), at most 253 characters.
pub fn domain(d: &str) -> Result<(), QuotaError> {
    let labels: Vec<&str> = d.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_alpha = labels
        .last()
        .is_some_and(|t| t.chars().any(|c| c.is_ascii_lowercase()));
    if d.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || !tld_alpha {
        return Err(QuotaError::invalid(
            "domain",
            format!(
                "{:?} is not a domain name (lowercase, like \"quota.example.com\")",
                short(d)
            ),
        ));
    }
    Ok(())
}
