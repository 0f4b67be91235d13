//! The grants a consumer holds, in its own tenant state: what its actor
//! checks on every shared use, with no call to the provider's shard. The
//! meta group's catalog decides grants; the consumer's copy follows it (a
//! grant is held, re-held with new terms, or dropped) and counts the use
//! against the grant's cap.
use super::catalog::{Grant, GrantEnd};
use super::period::{next_period, period_in, subscription_charge_in};
use super::policy::{Permission, Pricing};
use crate::format::Added;
use crate::quota::period::window;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Which grant a call uses, and for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Via {
    pub policy: Uuid,
    /// `execute` unless the call names another.
    pub permission: Permission,
}

/// A grant in its consumer's state, with its use in the cap's period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldGrant {
    pub grant: Grant,
    /// Units used in the cap's current period.
    pub cap_used: u64,
    /// The start of that period (UTC-aligned windows in the tenant's zone).
    pub cap_window_start_ms: i64,
    /// Units held by open reservations through the grant: they count
    /// against the cap until settled or released (format 8).
    #[serde(default)]
    pub cap_held: Added<8, u64>,
    /// The last month (UTC, `yyyymm`) a subscription grant was billed for;
    /// 0 before its first (format 9).
    #[serde(default)]
    pub billed_period: Added<9, u32>,
}

/// The consumer's grants by policy id (a consumer holds at most one active
/// grant per policy; an ended one is kept until replaced, so a refused use
/// can say why).
pub type HeldGrants = BTreeMap<Uuid, HeldGrant>;

/// Why a shared use is refused: no grant, an ended or expired one, a
/// missing permission, or a full cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseRefused {
    NoGrant,
    Inactive(String),
    Permission(Permission),
    CapReached { units: u64, used: u64 },
}

impl std::fmt::Display for UseRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UseRefused::NoGrant => f.write_str("the tenant holds no grant for this sharing policy"),
            UseRefused::Inactive(why) => f.write_str(why),
            UseRefused::Permission(p) => {
                write!(
                    f,
                    "the grant does not include the {} permission",
                    p.as_str()
                )
            }
            UseRefused::CapReached { units, used } => write!(
                f,
                "the grant's usage cap is reached ({used} of {units} units this period)"
            ),
        }
    }
}

impl HeldGrant {
    pub fn new(grant: Grant) -> HeldGrant {
        HeldGrant {
            grant,
            cap_used: 0,
            cap_window_start_ms: i64::MIN,
            cap_held: Added(0),
            billed_period: Added(0),
        }
    }

    /// Take new terms from the catalog, keeping the use counted so far.
    pub fn follow(&mut self, grant: Grant) {
        self.grant = grant;
    }

    pub fn end(&mut self, end: GrantEnd) {
        self.grant.ended.get_or_insert(end);
    }

    /// Start a new cap period when `now_ms` has left the current one.
    fn roll(&mut self, tz: Tz, now_ms: i64) {
        if let Some(cap) = self.grant.cap {
            let w = window(cap.period, tz, now_ms);
            if w.start_ms != self.cap_window_start_ms {
                self.cap_window_start_ms = w.start_ms;
                self.cap_used = 0;
            }
        }
    }

    /// Whether `amount` units may be used for `permission` at `now_ms`;
    /// changes nothing.
    pub fn check(
        &self,
        permission: Permission,
        amount: u64,
        tz: Tz,
        now_ms: i64,
    ) -> Result<(), UseRefused> {
        if let Some(why) = self.grant.inactive_reason(now_ms) {
            return Err(UseRefused::Inactive(why));
        }
        if !self.grant.permissions.contains(&permission) {
            return Err(UseRefused::Permission(permission));
        }
        if let Some(cap) = self.grant.cap {
            let mut probe = self.clone();
            probe.roll(tz, now_ms);
            let used = probe.cap_used.saturating_add(*probe.cap_held);
            if used.saturating_add(amount) > cap.units {
                return Err(UseRefused::CapReached {
                    units: cap.units,
                    used,
                });
            }
        }
        Ok(())
    }

    /// The subscription charges due at `now_ms`: one per month from the
    /// grant's start (prorated) or the month after the last billed, through
    /// the current month, while the grant is active. Marks them billed.
    pub fn bill(&mut self, now_ms: i64) -> Vec<(u32, super::Amount)> {
        let Pricing::Subscription { price, .. } = self.grant.pricing else {
            return Vec::new();
        };
        if !self.grant.admits(now_ms) {
            return Vec::new();
        }
        let zone = self.grant.zone();
        let now = period_in(now_ms, zone);
        let since = self.grant.created_at_ms;
        let mut period = if *self.billed_period == 0 {
            period_in(since, zone)
        } else {
            next_period(*self.billed_period)
        };
        let mut due = Vec::new();
        while period <= now {
            due.push((period, subscription_charge_in(price, period, since, zone)));
            *self.billed_period = period;
            period = next_period(period);
        }
        due
    }

    /// Whether [`HeldGrant::bill`] would charge anything at `now_ms`.
    pub fn billing_due(&self, now_ms: i64) -> bool {
        matches!(self.grant.pricing, Pricing::Subscription { .. })
            && self.grant.admits(now_ms)
            && *self.billed_period < period_in(now_ms, self.grant.zone())
    }

    /// Hold `amount` units of the cap for a reservation.
    pub fn hold(&mut self, amount: u64) {
        *self.cap_held = self.cap_held.saturating_add(amount);
    }

    /// Give back a reservation's hold.
    pub fn unhold(&mut self, amount: u64) {
        *self.cap_held = self.cap_held.saturating_sub(amount);
    }

    /// Count `amount` units used at `now_ms` (after [`HeldGrant::check`]).
    pub fn record(&mut self, amount: u64, tz: Tz, now_ms: i64) {
        self.roll(tz, now_ms);
        self.cap_used = self.cap_used.saturating_add(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Period, Tier};
    use crate::sharing::{Pricing, ResourceType, UsageCap};

    fn grant(cap: Option<UsageCap>) -> HeldGrant {
        HeldGrant::new(Grant {
            id: Uuid::from_u128(1),
            policy: Uuid::from_u128(2),
            provider: Uuid::from_u128(3),
            consumer: Uuid::from_u128(4),
            resource_type: ResourceType::model(),
            resource_id: "m".into(),
            permissions: [Permission::Execute].into(),
            expires_at_ms: Some(10_000_000_000),
            cap,
            pricing: Pricing::Free,
            platform_fee_bp: 1_500,
            consumer_tier: Tier::Free,
            created_at_ms: 0,
            ended: None,
            statement_zone: Default::default(),
            paused: Default::default(),
        })
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_cap_admits_up_to_its_units_per_period_and_starts_again_in_the_next() {
        let tz = chrono_tz::UTC;
        let mut g = grant(Some(UsageCap {
            units: 10,
            period: Period::Hourly,
        }));
        let at = 5 * HOUR + 10;
        assert_eq!(g.check(Permission::Execute, 10, tz, at), Ok(()));
        g.record(7, tz, at);
        assert_eq!(
            g.check(Permission::Execute, 4, tz, at + 1),
            Err(UseRefused::CapReached { units: 10, used: 7 })
        );
        assert_eq!(g.check(Permission::Execute, 3, tz, at + 1), Ok(()));
        g.record(3, tz, at + 1);
        assert!(g.check(Permission::Execute, 1, tz, 6 * HOUR - 1).is_err());
        assert_eq!(g.check(Permission::Execute, 10, tz, 6 * HOUR), Ok(()));
        g.record(1, tz, 6 * HOUR);
        assert_eq!(g.cap_used, 1, "a new hour, a new count");
    }

    #[test]
    fn a_subscription_bills_each_month_once_while_active() {
        use crate::sharing::ledger::period_start_ms;
        use crate::sharing::{Amount, Currency};
        let mut g = grant(None);
        let day = 86_400_000;
        let nov = period_start_ms(202611);
        g.grant.pricing = Pricing::Subscription {
            price: Amount::parse("30").unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        };
        g.grant.created_at_ms = nov + 20 * day;
        g.grant.expires_at_ms = None;
        assert!(g.billing_due(nov + 20 * day));
        let first = g.bill(nov + 20 * day);
        assert_eq!(first, vec![(202611, Amount::parse("10").unwrap())]);
        assert!(g.bill(nov + 25 * day).is_empty(), "once a month");
        assert!(!g.billing_due(nov + 25 * day));
        // Two months later (the node was down over a month's start): each
        // month is charged, in full.
        let jan = period_start_ms(202701) + day;
        assert_eq!(
            g.bill(jan),
            vec![
                (202612, Amount::parse("30").unwrap()),
                (202701, Amount::parse("30").unwrap())
            ]
        );
        g.end(GrantEnd {
            at_ms: jan,
            reason: "revoked".into(),
            by: None,
        });
        assert!(g.bill(period_start_ms(202702)).is_empty(), "ended: no more");
    }

    #[test]
    fn reservations_hold_the_cap_until_settled_or_released() {
        let tz = chrono_tz::UTC;
        let mut g = grant(Some(UsageCap {
            units: 10,
            period: Period::Never,
        }));
        g.hold(6);
        assert_eq!(
            g.check(Permission::Execute, 5, tz, 1),
            Err(UseRefused::CapReached { units: 10, used: 6 })
        );
        g.unhold(6);
        g.record(4, tz, 1);
        assert_eq!(g.check(Permission::Execute, 6, tz, 2), Ok(()));
    }

    #[test]
    fn permissions_expiry_and_an_end_refuse_with_their_reason() {
        let tz = chrono_tz::UTC;
        let mut g = grant(None);
        assert_eq!(
            g.check(Permission::Download, 1, tz, 0),
            Err(UseRefused::Permission(Permission::Download))
        );
        assert!(matches!(
            g.check(Permission::Execute, 1, tz, 10_000_000_000),
            Err(UseRefused::Inactive(why)) if why.contains("expired")
        ));
        g.end(GrantEnd {
            at_ms: 5,
            reason: "revoked by the provider".into(),
            by: None,
        });
        assert!(matches!(
            g.check(Permission::Execute, 1, tz, 6),
            Err(UseRefused::Inactive(why)) if why.contains("revoked by the provider")
        ));
        // Uncapped: any amount.
        let g = grant(None);
        assert_eq!(g.check(Permission::Execute, u64::MAX, tz, 0), Ok(()));
    }
}
