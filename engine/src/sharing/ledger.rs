//! Cross-tenant usage, exactly once across shards.
//!
//! A consumer's shared use is recorded in the consumer's own state, in the
//! same Raft entry as its charge ([`SharedUsage::record`]): one line per
//! statement period, policy and price, so a price change mid-period is a
//! new line. The provider's totals are fed from there by transfers, one
//! provider at a time:
//!
//! ```text
//!  consumer: seal    pending -> sending (seq n)      (nothing new is sealed until n is acknowledged)
//!  provider: receive sending n, unless seq <= the last taken from this consumer
//!  consumer: ack n   sending -> gone
//! ```
//!
//! Every step is a replicated operation and idempotent, so a retry, a
//! node kill or a leader change between any two of them neither loses nor
//! doubles a unit: a sealed transfer is sent again until acknowledged, and
//! the provider takes each sequence number once.
use super::catalog::Grant;
use super::money::{Amount, Currency};
pub use super::period::{
    PeriodKey, next_period, parse_period, period_of, period_start_ms, period_text,
    subscription_charge,
};
use super::policy::Pricing;
use crate::format::Added;
use crate::model::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What one line of usage is about: who used whose resource, when, at what
/// price per unit (zero when free), and the platform's fee then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    pub period: PeriodKey,
    pub policy: Uuid,
    pub provider: TenantId,
    pub consumer: TenantId,
    pub price: Amount,
    pub currency: Option<Currency>,
    pub fee_bp: u32,
    /// Units used, or a subscription's charge for the period (format 9).
    #[serde(default)]
    pub kind: Added<9, LineKind>,
}

/// What a line counts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum LineKind {
    /// Units used, each at `price`.
    #[default]
    Usage,
    /// One period of a subscription, at `price` (prorated in the first).
    Subscription,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Usage => "usage",
            LineKind::Subscription => "subscription",
        }
    }
}

impl UsageKey {
    /// The line a use of `grant` at `at_ms` goes on.
    pub fn of(grant: &Grant, at_ms: i64) -> UsageKey {
        let (price, currency) = match &grant.pricing {
            Pricing::UsageBased {
                price, currency, ..
            } => (*price, Some(*currency)),
            // A subscription is billed per period, not per unit.
            Pricing::Subscription { currency, .. } => (Amount::ZERO, Some(*currency)),
            Pricing::Free => (Amount::ZERO, None),
        };
        UsageKey {
            period: super::period::period_in(at_ms, grant.zone()),
            policy: grant.policy,
            provider: grant.provider,
            consumer: grant.consumer,
            price,
            currency,
            fee_bp: grant.platform_fee_bp,
            kind: Added(LineKind::Usage),
        }
    }

    /// The line of `grant`'s subscription charge for `period`.
    pub fn subscription(grant: &Grant, period: PeriodKey, charge: Amount) -> UsageKey {
        let currency = match &grant.pricing {
            Pricing::Subscription { currency, .. } | Pricing::UsageBased { currency, .. } => {
                Some(*currency)
            }
            Pricing::Free => None,
        };
        UsageKey {
            period,
            policy: grant.policy,
            provider: grant.provider,
            consumer: grant.consumer,
            price: charge,
            currency,
            fee_bp: grant.platform_fee_bp,
            kind: Added(LineKind::Subscription),
        }
    }
}

/// A sealed batch of lines on its way to one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub seq: u64,
    pub lines: Vec<(UsageKey, u64)>,
}

/// What a consumer owes one provider's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// The sequence number the next sealed transfer gets (from 1).
    pub next_seq: u64,
    /// Recorded, not sealed yet.
    pub pending: BTreeMap<UsageKey, u64>,
    /// Sealed, not acknowledged yet.
    pub sending: Option<Transfer>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.sending.is_none()
    }
}

/// A tenant's cross-tenant usage, as consumer and as provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedUsage {
    /// What it used of others' resources (its consumer statements).
    pub used: BTreeMap<UsageKey, u64>,
    /// By provider: what the provider's totals have not taken yet.
    pub outbox: BTreeMap<TenantId, Outbox>,
    /// What consumers used of its resources (its provider statements).
    pub received: BTreeMap<UsageKey, u64>,
    /// By consumer: the last transfer taken.
    pub received_seq: BTreeMap<TenantId, u64>,
    /// Statement periods closed for this tenant, and when (format 10):
    /// their lines no longer change.
    #[serde(default)]
    pub closed: Added<10, BTreeMap<PeriodKey, i64>>,
    /// Lines of a closed period recorded after it closed: its
    /// statement's adjustments (format 10).
    #[serde(default)]
    pub adjustments: Added<10, BTreeMap<UsageKey, u64>>,
}

impl SharedUsage {
    /// Record `units` used on `key`'s line.
    pub fn record(&mut self, key: UsageKey, units: u64) {
        let lines = if self.closed.contains_key(&key.period) {
            &mut self.adjustments.0
        } else {
            &mut self.used
        };
        let used = lines.entry(key).or_insert(0);
        *used = used.saturating_add(units);
        let out = self.outbox.entry(key.provider).or_default();
        let pending = out.pending.entry(key).or_insert(0);
        *pending = pending.saturating_add(units);
    }

    /// Seal what `provider` has pending, unless a transfer to it is still
    /// unacknowledged. Returns the transfer to send (the sealed one, new or
    /// not), or `None` when nothing is owed.
    pub fn seal(&mut self, provider: TenantId) -> Option<Transfer> {
        let out = self.outbox.get_mut(&provider)?;
        if out.sending.is_none() && !out.pending.is_empty() {
            out.next_seq = out.next_seq.max(1);
            out.sending = Some(Transfer {
                seq: out.next_seq,
                lines: std::mem::take(&mut out.pending).into_iter().collect(),
            });
            out.next_seq += 1;
        }
        out.sending.clone()
    }

    /// The provider took transfer `seq`. Returns whether it was the one
    /// being sent.
    pub fn acknowledge(&mut self, provider: TenantId, seq: u64) -> bool {
        let Some(out) = self.outbox.get_mut(&provider) else {
            return false;
        };
        if out.sending.as_ref().is_some_and(|t| t.seq == seq) {
            // The outbox itself stays: its sequence continues from here.
            out.sending = None;
            return true;
        }
        false
    }

    /// As the provider: take `transfer` from `consumer`, unless taken
    /// before. Returns whether it was new.
    pub fn receive(&mut self, consumer: TenantId, transfer: &Transfer) -> bool {
        let last = self.received_seq.entry(consumer).or_insert(0);
        if transfer.seq <= *last {
            return false;
        }
        *last = transfer.seq;
        for (key, units) in &transfer.lines {
            let lines = if self.closed.contains_key(&key.period) {
                &mut self.adjustments.0
            } else {
                &mut self.received
            };
            let total = lines.entry(*key).or_insert(0);
            *total = total.saturating_add(*units);
        }
        true
    }

    /// Close `period` at `at_ms`: its lines are final; what arrives for it
    /// later is an adjustment. Returns whether it was open.
    pub fn close(&mut self, period: PeriodKey, at_ms: i64) -> bool {
        if self.closed.contains_key(&period) {
            return false;
        }
        self.closed.insert(period, at_ms);
        true
    }

    /// Providers with something pending or unacknowledged.
    pub fn owed(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.outbox
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(p, _)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128, price: &str) -> UsageKey {
        UsageKey {
            period: 202611,
            policy: Uuid::from_u128(n),
            provider: Uuid::from_u128(0xa),
            consumer: Uuid::from_u128(0xc),
            price: Amount::parse(price).unwrap(),
            currency: Some(Currency::parse("USD").unwrap()),
            fee_bp: 1_500,
            kind: Added(LineKind::Usage),
        }
    }

    #[test]
    fn a_subscription_is_prorated_in_its_first_month_only() {
        let price = Amount::parse("30").unwrap();
        let nov = 202611;
        assert_eq!(period_start_ms(nov), 1_793_491_200_000, "2026-11-01T00:00Z");
        assert_eq!(next_period(202612), 202701);
        // November has 30 days: from the 21st, 10 days are left.
        let day = 86_400_000;
        let since = period_start_ms(nov) + 20 * day;
        assert_eq!(
            subscription_charge(price, nov, since),
            Amount::parse("10").unwrap()
        );
        assert_eq!(subscription_charge(price, 202612, since), price);
        assert_eq!(subscription_charge(price, nov, period_start_ms(nov)), price);
        // A third of a cent is rounded down to 10^-12.
        let odd = subscription_charge(Amount::parse("0.01").unwrap(), nov, since);
        assert_eq!(odd, Amount::parse("0.003333333333").unwrap());
    }

    #[test]
    fn periods_are_utc_months() {
        assert_eq!(period_of(1_764_547_200_000), 202512, "2025-12-01T00:00Z");
        assert_eq!(period_of(1_764_547_199_999), 202511);
        assert_eq!(parse_period("2026-11"), Some(202611));
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "x"] {
            assert_eq!(parse_period(bad), None, "{bad}");
        }
        assert_eq!(period_text(202611), "2026-11");
    }

    /// Whatever happens between the steps (a step repeated, a step lost and
    /// done again), the provider takes each unit exactly once.
    #[test]
    fn transfers_take_every_unit_once_through_repeats_and_losses() {
        let provider = Uuid::from_u128(0xa);
        let consumer = Uuid::from_u128(0xc);
        let (mut c, mut p) = (SharedUsage::default(), SharedUsage::default());
        let mut recorded = 0u64;
        let mut taken = 0u64;
        for round in 0..50u64 {
            let units = round % 7 + 1;
            c.record(
                key(
                    round as u128 % 3,
                    if round < 25 { "0.001" } else { "0.002" },
                ),
                units,
            );
            recorded += units;
            let Some(t) = c.seal(provider) else { continue };
            // Round 3k: the provider's answer is lost; the transfer is
            // sealed again (the same one) and sent twice.
            // Taken the first time it arrives, never again.
            assert_eq!(p.receive(consumer, &t), t.seq > taken);
            taken = taken.max(t.seq);
            if round % 3 == 0 {
                let again = c.seal(provider).unwrap();
                assert_eq!(again, t, "an unacknowledged transfer is sent as it was");
                assert!(!p.receive(consumer, &again), "taken once");
            }
            if round % 5 != 0 {
                assert!(c.acknowledge(provider, t.seq));
                assert!(!c.acknowledge(provider, t.seq), "acknowledged once");
            }
        }
        // Drain.
        while let Some(t) = c.seal(provider) {
            p.receive(consumer, &t);
            c.acknowledge(provider, t.seq);
        }
        assert_eq!(p.received.values().sum::<u64>(), recorded);
        assert_eq!(
            p.received, c.used,
            "the provider's lines are the consumer's"
        );
        assert!(c.owed().next().is_none());
    }

    /// A closed period's lines stay as they were; what arrives for it
    /// later is kept apart, as adjustments.
    #[test]
    fn a_closed_period_keeps_its_lines_and_late_units_are_adjustments() {
        let (provider, consumer) = (Uuid::from_u128(0xa), Uuid::from_u128(0xc));
        let (mut c, mut p) = (SharedUsage::default(), SharedUsage::default());
        c.record(key(1, "0.001"), 5);
        let t = c.seal(provider).unwrap();
        c.record(key(1, "0.001"), 2); // late in the month, still in it
        assert!(p.receive(consumer, &t));
        assert!(p.close(202611, 99));
        assert!(!p.close(202611, 100), "closed once");
        let frozen = p.received.clone();
        c.acknowledge(provider, t.seq);
        let late = c.seal(provider).unwrap();
        assert!(p.receive(consumer, &late));
        assert_eq!(p.received, frozen, "the closed statement does not move");
        assert_eq!(p.adjustments.values().sum::<u64>(), 2);
        // The consumer closes too: a record for the closed month (a
        // settlement stamped in it) is an adjustment there as well.
        c.close(202611, 99);
        c.record(key(2, "0.001"), 4);
        assert_eq!(c.adjustments.values().sum::<u64>(), 4);
        assert_eq!(c.used.values().sum::<u64>(), 7);
    }
}

crate::shared_default!(SharedUsage);
