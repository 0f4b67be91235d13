//! One quota's usage and the admission decision for it.
use super::decision::{Decision, Verdict};
use super::layer_state::{Draws, Layers};
use super::period::window;
use super::policy_pool::SharedPolicy;
use crate::format::Added;
use crate::model::{Action, Period, QuotaKind, QuotaPolicy};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Usage of one quota. Counters keep the current period's usage, gauges their
/// level, rates the GCRA theoretical arrival time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaState {
    /// Shared with every quota holding an equal policy.
    pub policy: SharedPolicy,
    /// Start of the counter period `used` belongs to.
    pub window_start_ms: i64,
    /// End of that period, cached so most operations skip the calendar
    /// math; `i64::MIN` means "recompute".
    #[serde(default = "recompute")]
    pub window_end_ms: i64,
    pub used: u64,
    /// Amount held by open reservations.
    pub reserved: u64,
    /// Admitted beyond the limit under `allow_overage`, this period.
    pub overage: u64,
    /// GCRA theoretical arrival time, in nanoseconds.
    pub tat_ns: i64,
    /// Bit i set: `policy.alert_thresholds[i]` already fired this period.
    pub fired: u8,
    /// Further windows, scopes, grants and rollover (format 19; `None`
    /// until the quota uses any: a plain quota pays one word).
    #[serde(default)]
    pub layers: Added<19, Option<Box<Layers>>>,
}

fn now_ns(now_ms: i64) -> i64 {
    now_ms.saturating_mul(1_000_000)
}

fn recompute() -> i64 {
    i64::MIN
}

/// Whether an admitted amount is consumed or held by a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Consume,
    Hold,
}

impl QuotaState {
    /// A refusal that is not about the amount (the tenant may not spend
    /// at all now), reporting the quota as it stands.
    pub fn refused(&self, tz: Tz, now_ms: i64, reason: String) -> Decision {
        Decision {
            usage: self.usage(now_ms),
            limit: self.policy.limit,
            soft_limit: self.policy.soft_limit,
            remaining: self.remaining(now_ms),
            reset_at_ms: self.reset_at_ms(tz, now_ms),
            ..Decision::denied(reason)
        }
    }

    pub fn new(policy: QuotaPolicy) -> Self {
        QuotaState {
            policy: SharedPolicy::new(policy),
            window_start_ms: 0,
            window_end_ms: i64::MIN,
            used: 0,
            reserved: 0,
            overage: 0,
            tat_ns: 0,
            fired: 0,
            layers: Added::default(),
        }
    }

    /// Replace the policy, keeping usage (a tier change or a limit update
    /// does not forget what was spent). Thresholds fired are forgotten
    /// because their meaning changed with the limit.
    /// Credit grants stay whatever changes; a further window keeps its
    /// counters while it keeps its place, kind and period.
    pub fn set_policy(&mut self, policy: QuotaPolicy) {
        let before = self.policy.clone();
        let mut layers = self.layers.0.take();
        if policy.kind != self.policy.kind {
            *self = QuotaState::new(policy);
            if let Some(l) = layers.as_deref_mut() {
                l.windows.clear();
                l.scopes.clear();
                l.carry = 0;
                l.from_grants = 0;
            }
        } else {
            self.policy = SharedPolicy::new(policy);
            self.fired = 0;
            self.window_end_ms = i64::MIN;
        }
        if let Some(l) = layers.as_deref_mut() {
            let old = before.rules().map_or(&[][..], |r| &r.windows[..]);
            let new = self.policy.rules().map_or(&[][..], |r| &r.windows[..]);
            let kept = old
                .iter()
                .zip(new)
                .take_while(|(a, b)| (a.kind, a.period) == (b.kind, b.period))
                .count();
            l.windows.truncate(kept);
            if self.policy.rules().is_none_or(|r| r.scopes.is_none()) {
                l.scopes.clear();
            }
        }
        self.layers.0 = layers.filter(|l| **l != Layers::default());
    }

    /// Whether anything is used or held (a kind change would lose it).
    pub fn in_use(&self) -> bool {
        self.used > 0 || self.reserved > 0
    }

    /// Re-align the current period after a change of timezone or period,
    /// keeping usage: changing how periods are cut never hands out quota.
    pub fn rebase_window(&mut self, tz: Tz, now_ms: i64) {
        if self.policy.kind == QuotaKind::Counter {
            let w = window(self.policy.period, tz, now_ms);
            self.window_start_ms = w.start_ms;
            self.window_end_ms = w.end_ms.unwrap_or(i64::MAX);
        }
    }

    /// Start a new period if `now` is past the current one.
    pub fn roll(&mut self, tz: Tz, now_ms: i64) {
        if self.policy.kind != QuotaKind::Counter
            || (self.window_start_ms..self.window_end_ms).contains(&now_ms)
        {
            return;
        }
        let w = window(self.policy.period, tz, now_ms);
        if w.start_ms < self.window_start_ms {
            // Time went back (a clock step, a failover to a node whose clock
            // lags): stay in the current period rather than reset it.
            return;
        }
        self.window_end_ms = w.end_ms.unwrap_or(i64::MAX);
        if w.start_ms != self.window_start_ms {
            let old = self.window_start_ms;
            self.window_start_ms = w.start_ms;
            self.fired = 0;
            if old != 0 && self.carries() {
                // Reads the old period's overage and grant draws.
                self.carry_over(tz, old, w.start_ms);
            } else {
                self.used = 0;
                if let Some(l) = self.layers.0.as_deref_mut() {
                    l.carry = 0;
                    l.from_grants = 0;
                }
            }
            self.overage = 0;
        }
    }

    /// Whether its period end carries anything into the next period.
    fn carries(&self) -> bool {
        self.policy.limit.is_some()
            && self
                .policy
                .rules()
                .is_some_and(|r| r.rollover || r.preserve_overage)
    }

    pub fn reset_at_ms(&self, tz: Tz, now_ms: i64) -> Option<i64> {
        match self.policy.kind {
            QuotaKind::Counter if (self.window_start_ms..self.window_end_ms).contains(&now_ms) => {
                (self.window_end_ms != i64::MAX).then_some(self.window_end_ms)
            }
            QuotaKind::Counter => window(self.policy.period, tz, now_ms).end_ms,
            QuotaKind::Gauge => None,
            QuotaKind::Rate => {
                Some((self.tat_ns.max(now_ns(now_ms)) + 999_999).div_euclid(1_000_000))
            }
        }
    }

    /// Usage as reported to callers: period usage plus holds; for rates, the
    /// part of the burst currently in use.
    pub fn usage(&self, now_ms: i64) -> u64 {
        match self.policy.kind {
            QuotaKind::Rate => match self.policy.limit {
                Some(limit) => limit.saturating_sub(self.rate_remaining(limit, now_ms)),
                None => 0,
            },
            _ => self.used.saturating_add(self.reserved),
        }
    }

    /// What is left of the period's allowance (the limit and what rolled
    /// over into it; usage that grants or overage cover is not counted
    /// against it). Unused grants are `grant_balance`.
    pub fn remaining(&self, now_ms: i64) -> Option<u64> {
        let limit = self.policy.limit?;
        Some(match self.policy.kind {
            QuotaKind::Rate => self.rate_remaining(limit, now_ms),
            _ => self
                .allowance()
                .unwrap_or(limit)
                .saturating_add(self.covered())
                .saturating_sub(self.usage(now_ms)),
        })
    }

    /// Decide on `amount` (> 0) and, if admitted, take it. The state must
    /// have been rolled to `now_ms`.
    /// This quota's own window only (with its grants and rollover); see
    /// [`QuotaState::spend`] for every level.
    pub fn admit(&mut self, tz: Tz, now_ms: i64, amount: u64, how: Use) -> Decision {
        self.admit_own(tz, now_ms, amount, how, false, &mut Draws::new())
    }

    /// `force`: take the amount even if it does not fit (shadow mode); the
    /// decision still says what enforcing would have answered.
    pub(super) fn admit_own(
        &mut self,
        tz: Tz,
        now_ms: i64,
        amount: u64,
        how: Use,
        force: bool,
        draws: &mut Draws,
    ) -> Decision {
        match self.policy.kind {
            QuotaKind::Rate => self.admit_rate(now_ms, amount),
            QuotaKind::Counter | QuotaKind::Gauge => {
                self.admit_amount(tz, now_ms, amount, how, force, draws)
            }
        }
    }

    /// A gauge going down (storage freed, a user removed).
    pub fn lower(&mut self, tz: Tz, now_ms: i64, amount: u64) -> Decision {
        self.used -= amount.min(self.used);
        self.decision(tz, now_ms, true, Verdict::Allowed)
    }

    /// Charge `actual` for a reservation that held `held` and drew `draws`
    /// from grants for its last units: the charge keeps the draws its units
    /// reach (a grant voided since stays drawn for them), the rest go back.
    pub fn settle(
        &mut self,
        tz: Tz,
        now_ms: i64,
        held: u64,
        actual: u64,
        draws: &[(u32, u64)],
    ) -> Decision {
        self.reserved -= held.min(self.reserved);
        let drawn = draws.iter().fold(0u64, |n, d| n.saturating_add(d.1));
        let keep = actual.saturating_sub(held.saturating_sub(drawn)).min(drawn);
        self.undraw_last(draws, drawn - keep);
        // The work was done: the real cost is charged whatever the limit.
        // Beyond the allowance it draws from grants, and what they do not
        // cover is recorded as overage.
        let mut verdict = Verdict::Allowed;
        if let Some(cap) = self.allowance() {
            let before = self
                .used
                .saturating_add(self.reserved)
                .saturating_sub(self.covered().saturating_sub(keep));
            let after = before.saturating_add(actual - keep);
            let need = after.saturating_sub(before.max(cap));
            let from_grants = self.draw(now_ms, need, &mut Draws::new());
            if need > from_grants {
                self.overage = self.overage.saturating_add(need - from_grants);
                verdict = Verdict::AllowedOverage;
            }
        }
        self.used = self.used.saturating_add(actual);
        if verdict == Verdict::Allowed
            && self
                .policy
                .soft_limit
                .is_some_and(|s| self.usage(now_ms) > s)
        {
            verdict = Verdict::AllowedOverSoftLimit;
        }
        let mut d = self.decision(tz, now_ms, true, verdict);
        d.thresholds_crossed = self.fire_thresholds();
        d
    }

    /// Return a held amount.
    pub fn release(&mut self, amount: u64) {
        self.reserved -= amount.min(self.reserved);
    }

    fn admit_amount(
        &mut self,
        tz: Tz,
        now_ms: i64,
        amount: u64,
        how: Use,
        force: bool,
        draws: &mut Draws,
    ) -> Decision {
        let current = self.used.saturating_add(self.reserved);
        let after = current.saturating_add(amount);
        let mut verdict = Verdict::Allowed;
        // Units beyond the allowance: from grants, else the action decides.
        let mut need = 0;
        if let Some(cap) = self.allowance() {
            let uncovered = current.saturating_sub(self.covered());
            let wanted = uncovered.saturating_add(amount);
            if wanted > cap {
                need = wanted - uncovered.max(cap);
                if need > self.grant_balance(now_ms) {
                    verdict = match self.policy.action {
                        Action::Block => Verdict::Denied,
                        Action::Throttle => Verdict::Throttled,
                        Action::Alert => Verdict::AllowedOverSoftLimit,
                        Action::AllowOverage => Verdict::AllowedOverage,
                    };
                }
            }
        }
        if verdict == Verdict::Allowed && self.policy.soft_limit.is_some_and(|soft| after > soft) {
            verdict = Verdict::AllowedOverSoftLimit;
        }
        let allowed = !matches!(verdict, Verdict::Denied | Verdict::Throttled);
        if !allowed && !force {
            let mut d = self.decision(tz, now_ms, false, verdict);
            if verdict == Verdict::Throttled {
                d.retry_after_ms = d.reset_at_ms.map(|r| (r - now_ms).max(0) as u64);
            }
            return d;
        }
        let drawn = self.draw(now_ms, need, draws);
        if verdict == Verdict::AllowedOverage {
            self.overage = self.overage.saturating_add(need - drawn);
        }
        match how {
            Use::Consume => self.used = self.used.saturating_add(amount),
            Use::Hold => self.reserved = self.reserved.saturating_add(amount),
        }
        let mut d = self.decision(tz, now_ms, allowed, verdict);
        d.thresholds_crossed = self.fire_thresholds();
        d
    }

    fn window_ns(&self) -> i64 {
        window_ns(self.policy.period)
    }

    fn cost_ns(&self, amount: u64, limit: u64) -> i64 {
        cost_ns(self.policy.period, amount, limit)
    }

    fn rate_remaining(&self, limit: u64, now_ms: i64) -> u64 {
        if limit == 0 {
            return 0;
        }
        let backlog = (self.tat_ns - now_ns(now_ms)).max(0);
        let free = (self.window_ns() - backlog).max(0);
        let units = i128::from(free) * i128::from(limit) / i128::from(self.window_ns());
        (units as u64).min(limit)
    }

    /// GCRA: each unit pushes the theoretical arrival time by one emission
    /// interval (window / limit); an amount fits while that time stays
    /// within one window of now.
    fn admit_rate(&mut self, now_ms: i64, amount: u64) -> Decision {
        let Some(limit) = self.policy.limit else {
            return self.decision(chrono_tz::UTC, now_ms, true, Verdict::Allowed);
        };
        if let Some(new_tat) = gcra_take(self.policy.period, self.tat_ns, now_ms, amount, limit) {
            self.tat_ns = new_tat;
            return self.decision(chrono_tz::UTC, now_ms, true, Verdict::Allowed);
        }
        let now = now_ns(now_ms);
        let window = self.window_ns();
        let new_tat = self
            .tat_ns
            .max(now)
            .saturating_add(self.cost_ns(amount, limit));
        let verdict = match self.policy.action {
            Action::Block => Verdict::Denied,
            Action::Throttle => Verdict::Throttled,
            Action::Alert => Verdict::AllowedOverSoftLimit,
            Action::AllowOverage => {
                self.overage = self.overage.saturating_add(amount);
                Verdict::AllowedOverage
            }
        };
        let allowed = matches!(
            verdict,
            Verdict::AllowedOverSoftLimit | Verdict::AllowedOverage
        );
        let mut d = self.decision(chrono_tz::UTC, now_ms, allowed, verdict);
        if !allowed {
            if amount > limit {
                d.reason = Some(format!(
                    "amount {amount} exceeds the rate limit of {limit} per window"
                ));
            } else {
                let wait_ns = new_tat - window - now;
                d.retry_after_ms = Some((wait_ns.max(0) as u64).div_ceil(1_000_000));
            }
        }
        d
    }

    fn fire_thresholds(&mut self) -> Vec<u8> {
        let Some(limit) = self.policy.limit.filter(|l| *l > 0) else {
            return Vec::new();
        };
        let usage = u128::from(self.used.saturating_add(self.reserved));
        let mut crossed = Vec::new();
        for (i, pct) in self.policy.alert_thresholds.iter().enumerate().take(8) {
            let bit = 1u8 << i;
            if self.fired & bit == 0 && usage * 100 >= u128::from(*pct) * u128::from(limit) {
                self.fired |= bit;
                crossed.push(*pct);
            }
        }
        crossed
    }

    fn decision(&self, tz: Tz, now_ms: i64, allowed: bool, verdict: Verdict) -> Decision {
        Decision {
            allowed,
            verdict,
            usage: self.usage(now_ms),
            limit: self.policy.limit,
            soft_limit: self.policy.soft_limit,
            remaining: self.remaining(now_ms),
            reset_at_ms: self.reset_at_ms(tz, now_ms),
            retry_after_ms: None,
            thresholds_crossed: Vec::new(),
            reason: None,
            replayed: false,
            limited_by: Added::default(),
        }
    }
}

fn window_ns(period: Period) -> i64 {
    match period {
        Period::Second => 1_000_000_000,
        _ => 60_000_000_000,
    }
}

/// Nanoseconds `amount` units occupy in the bucket, rounded up: rounding
/// may admit a hair less than the limit, never more.
fn cost_ns(period: Period, amount: u64, limit: u64) -> i64 {
    let window = i128::from(window_ns(period));
    let limit = i128::from(limit.max(1));
    let units = i128::from(amount) * window;
    let cost = units.div_euclid(limit) + i128::from(units % limit != 0);
    cost.min(i128::from(i64::MAX / 4)) as i64
}

/// GCRA: the bucket's new theoretical arrival time if `amount` fits at
/// `now_ms` in a rate of `limit` per `period` whose arrival time is
/// `tat_ns`; `None` if it does not.
pub(super) fn gcra_take(
    period: Period,
    tat_ns: i64,
    now_ms: i64,
    amount: u64,
    limit: u64,
) -> Option<i64> {
    let now = now_ns(now_ms);
    let new_tat = tat_ns
        .max(now)
        .saturating_add(cost_ns(period, amount, limit));
    (new_tat - now <= window_ns(period) && amount <= limit && limit > 0).then_some(new_tat)
}
