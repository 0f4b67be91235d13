//! The state of a quota's rules beyond its one limit (format 19), and one
//! decision across every level they add:
//!
//! ```text
//! spend(amount, scope)
//!   the quota's own window   limit + rolled-over allowance, then credit grants
//!   each further window      (a per-second burst under a monthly allowance)
//!   the scope's window       (each end user 100 a day; `premium_*` 1000)
//! admitted only if every level admits; a refusal takes nothing anywhere
//! shadow mode: a refusal is reported (`shadow_denied`) and admitted anyway
//! ```
//!
//! Levels are decided in that order on the live state and undone if a later
//! one refuses: a window or scope meter is a few words, so the undo record
//! is small and a refused spend costs no copy of a tenant's scope map.
use super::decision::{Decision, Limiter, Verdict};
use super::error::QuotaError;
use super::layer_state::{CreditGrant, Draws, Layers, MAX_GRANTS, Meter, NewCreditGrant, SpendCtx};
use super::quota_state::{QuotaState, Use};
use crate::model::quota_rules::MAX_WINDOWS;
use crate::model::{QuotaKind, SharedPolicy, TenantId};
use chrono_tz::Tz;
use compact_str::CompactString;
use smallvec::SmallVec;

/// What to put back if a later level (or a later part of an all-or-nothing
/// spend) refuses: the quota's own counters, its window meters and the
/// one scope meter a spend touches; grants are put back by the draws.
/// Kept inline: a spend that is admitted never reads it, so taking it must
/// cost no allocation and no map lookup.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    used: u64,
    reserved: u64,
    overage: u64,
    tat_ns: i64,
    fired: u8,
    layers: Option<(SmallVec<[Meter; MAX_WINDOWS]>, u64)>,
    /// The scope meter before the spend, once a level has touched it
    /// (`Some(None)`: it was not live).
    scope: Option<Option<Meter>>,
}

impl QuotaState {
    pub fn layers(&self) -> Option<&Layers> {
        self.layers.0.as_deref()
    }

    fn layers_mut(&mut self) -> &mut Layers {
        self.layers.0.get_or_insert_with(Default::default)
    }

    /// A window's or scope's meter as a state of `policy`, to decide on.
    pub(super) fn metered(policy: &SharedPolicy, m: Meter) -> QuotaState {
        QuotaState {
            policy: policy.clone(),
            window_start_ms: m.start_ms,
            window_end_ms: m.end_ms,
            used: m.used,
            reserved: m.reserved,
            overage: 0,
            tat_ns: m.tat_ns,
            fired: u8::MAX,
            layers: Default::default(),
        }
    }

    fn meter(&self) -> Meter {
        Meter {
            start_ms: self.window_start_ms,
            end_ms: self.window_end_ms,
            used: self.used,
            reserved: self.reserved,
            tat_ns: self.tat_ns,
        }
    }

    /// What `rollback` needs to undo a spend in `scope` (the scope meter
    /// is read now; `spend` lets the level that touches it record it).
    pub(crate) fn checkpoint(&self, scope: Option<&str>) -> Checkpoint {
        let mut c = self.checkpoint_own();
        c.scope = scope.map(|s| self.layers().and_then(|l| l.scopes.get(s).copied()));
        c
    }

    fn checkpoint_own(&self) -> Checkpoint {
        Checkpoint {
            used: self.used,
            reserved: self.reserved,
            overage: self.overage,
            tat_ns: self.tat_ns,
            fired: self.fired,
            layers: self
                .layers()
                .map(|l| (SmallVec::from_slice(&l.windows), l.from_grants)),
            scope: None,
        }
    }

    /// Put the state back as `checkpoint` found it; `draws`: what was drawn
    /// from grants since; `scope`: the value the spend named.
    pub(crate) fn rollback(&mut self, u: Checkpoint, draws: &Draws, scope: Option<&str>) {
        self.used = u.used;
        self.reserved = u.reserved;
        self.overage = u.overage;
        self.tat_ns = u.tat_ns;
        self.fired = u.fired;
        let Some((windows, from_grants)) = u.layers else {
            // It had no layers: whatever a spend started goes with them.
            self.layers.0 = None;
            return;
        };
        let l = self.layers_mut();
        l.windows.clear();
        l.windows.extend_from_slice(&windows);
        l.from_grants = from_grants;
        for (seq, n) in draws {
            if let Some(g) = l.grants.iter_mut().find(|g| g.seq == *seq) {
                g.used = g.used.saturating_sub(*n);
            }
        }
        match (u.scope, scope) {
            (Some(Some(m)), Some(k)) => {
                if let Some(live) = l.scopes.get_mut(k) {
                    *live = m;
                }
            }
            (Some(None), Some(k)) => {
                l.scopes.remove(k);
            }
            _ => {}
        }
    }

    /// Decide `amount` on every level at once and, if admitted (or in
    /// shadow mode), take it on every level. The state must have been
    /// rolled to `ctx.now_ms`. Errors change nothing.
    pub fn spend(
        &mut self,
        ctx: &SpendCtx<'_>,
        amount: u64,
        how: Use,
    ) -> Result<(Decision, Draws), QuotaError> {
        if self.policy.rules().is_none() {
            // A plain quota (most): its own window is the only level, and a
            // refusal there takes nothing, so an admitted spend needs no
            // checkpoint. A refusal is decided in full below.
            let mut draws = Draws::new();
            let d = self.admit_own(ctx.tz, ctx.now_ms, amount, how, false, &mut draws);
            if d.allowed {
                return Ok((d, draws));
            }
        }
        let scope_rule = self.scope_rule(ctx)?;
        let mut undo = self.checkpoint_own();
        let mut draws = Draws::new();
        let mut decision = self.admit_own(ctx.tz, ctx.now_ms, amount, how, false, &mut draws);
        let mut refused = (!decision.allowed).then(|| self.own_limiter(ctx.tz, ctx.now_ms));
        if refused.is_none() {
            refused = self.admit_further(ctx, scope_rule, amount, how, false, &mut undo.scope);
        }
        let Some(limiter) = refused else {
            return Ok((decision, draws));
        };
        let refusal = (
            decision.verdict,
            decision.retry_after_ms,
            decision.reason.take(),
        );
        self.rollback(undo, &draws, ctx.scope);
        draws.clear();
        if ctx.tenant_shadow || self.policy.shadow() {
            let mut d = self.admit_own(ctx.tz, ctx.now_ms, amount, how, true, &mut draws);
            self.admit_further(ctx, scope_rule, amount, how, true, &mut None);
            d.allowed = true;
            d.verdict = Verdict::ShadowDenied;
            d.retry_after_ms = None;
            d.limited_by.0 = Some(Box::new(limiter));
            return Ok((d, draws));
        }
        let (verdict, retry_after_ms, reason) = if limiter.level == "quota" {
            refusal
        } else {
            (
                limiter.verdict,
                limiter.retry_after_ms,
                limiter.reason.clone(),
            )
        };
        let mut d = self.refused(ctx.tz, ctx.now_ms, String::new());
        d.verdict = verdict;
        d.retry_after_ms = retry_after_ms;
        d.reason = reason;
        d.limited_by.0 = Some(Box::new(limiter));
        Ok((d, Draws::new()))
    }

    /// The scope rule a spend falls under (`None`: no scope named, or no
    /// rule for it), or the error a new value beyond the cap gets.
    fn scope_rule(&self, ctx: &SpendCtx<'_>) -> Result<Option<usize>, QuotaError> {
        let (Some(value), Some(rules)) = (
            ctx.scope,
            self.policy.rules().and_then(|r| r.scopes.as_ref()),
        ) else {
            return Ok(None);
        };
        let Some((index, _)) = rules.rule_for(value) else {
            return Ok(None);
        };
        // The cap matters only once reached: no lookup before.
        if !ctx.new_scope_fits && !self.layers().is_some_and(|l| l.scopes.contains_key(value)) {
            return Err(QuotaError::TooManyScopes {
                tenant: ctx.tenant,
                limit: ctx.max_scopes,
            });
        }
        Ok(Some(index))
    }

    /// The further windows, then the scope; `Some` names the first level
    /// that refused (the earlier ones have taken the amount: the caller
    /// undoes; `scope_before` gets the scope meter as it was). `force`:
    /// take the amount on every level whatever it says.
    fn admit_further(
        &mut self,
        ctx: &SpendCtx<'_>,
        scope_rule: Option<usize>,
        amount: u64,
        how: Use,
        force: bool,
        scope_before: &mut Option<Option<Meter>>,
    ) -> Option<Limiter> {
        // Borrow the policy and the meters apart rather than clone the
        // policy: it is shared by every tenant on the same rules, and its
        // reference count is a cache line every deciding thread would
        // write (the actor's and the state machine's: two contended atomic
        // writes per decision).
        let QuotaState { policy, layers, .. } = self;
        // A plain quota (most) has nothing further to decide.
        let rules = policy.rules()?;
        // Created on first use only, as `layers_mut` does.
        let layers = &mut layers.0;
        let (tz, now) = (ctx.tz, ctx.now_ms);
        for (i, policy) in rules.windows.iter().enumerate() {
            let l = layers.get_or_insert_with(Default::default);
            if l.windows.len() <= i {
                l.windows.resize(i + 1, Meter::default());
            }
            if !force && take_if_fits(policy, &mut l.windows[i], now, amount, how) {
                continue;
            }
            let mut q = QuotaState::metered(policy, l.windows[i]);
            q.roll(tz, now);
            let d = q.admit(tz, now, amount, how);
            if d.allowed || force {
                if !d.allowed {
                    q.force(amount, how);
                }
                l.windows[i] = q.meter();
            } else {
                return Some(Limiter::of(&q, &d, "window", None, None, tz, now));
            }
        }
        let (Some(index), Some(value), Some(scopes)) = (scope_rule, ctx.scope, &rules.scopes)
        else {
            return None;
        };
        let policy = match index {
            0 => scopes.default.as_ref()?,
            i => &scopes.overrides.get(i - 1)?.1,
        };
        let l = layers.get_or_insert_with(Default::default);
        // One lookup: a live value's meter is decided in place.
        if let Some(m) = l.scopes.get_mut(value) {
            let before = *m;
            *scope_before = Some(Some(before));
            if !force && take_if_fits(policy, m, now, amount, how) {
                let m = *m;
                l.note_idle(&m, policy.kind);
                return None;
            }
        } else {
            *scope_before = Some(None);
        }
        let mut q = QuotaState::metered(policy, l.scopes.get(value).copied().unwrap_or_default());
        q.roll(tz, now);
        let d = q.admit(tz, now, amount, how);
        if !d.allowed && !force {
            let rule = scopes.rule_name(index).to_string();
            return Some(Limiter::of(
                &q,
                &d,
                "scope",
                Some(value),
                Some(rule),
                tz,
                now,
            ));
        }
        if !d.allowed {
            q.force(amount, how);
        }
        let m = q.meter();
        l.note_idle(&m, policy.kind);
        match l.scopes.get_mut(value) {
            Some(live) => *live = m,
            None => {
                l.scopes.insert(CompactString::new(value), m);
            }
        }
        None
    }

    /// Take `amount` on a level that refused it (shadow mode): a counter
    /// counts it; a rate's bucket stays as a refusal leaves it, so its
    /// verdicts keep saying what enforcement would do.
    fn force(&mut self, amount: u64, how: Use) {
        if self.policy.kind != QuotaKind::Rate {
            match how {
                Use::Consume => self.used = self.used.saturating_add(amount),
                Use::Hold => self.reserved = self.reserved.saturating_add(amount),
            }
        }
    }

    fn own_limiter(&self, tz: Tz, now_ms: i64) -> Limiter {
        Limiter {
            level: "quota".into(),
            scope: None,
            rule: None,
            kind: self.policy.kind,
            period: self.policy.period,
            limit: self.policy.limit,
            remaining: self.remaining(now_ms),
            reset_at_ms: self.reset_at_ms(tz, now_ms),
            verdict: Verdict::Denied,
            retry_after_ms: None,
            reason: None,
        }
    }

    /// Units the quota may still draw from grants at `now_ms`.
    pub fn grant_balance(&self, now_ms: i64) -> u64 {
        self.layers().map_or(0, |l| {
            l.grants
                .iter()
                .filter(|g| g.active(now_ms))
                .fold(0u64, |s, g| s.saturating_add(g.remaining()))
        })
    }

    /// The allowance of the current period: the limit plus what rolled
    /// over into it.
    pub fn allowance(&self) -> Option<u64> {
        let carry = self.layers().map_or(0, |l| l.carry);
        self.policy.limit.map(|l| l.saturating_add(carry))
    }

    /// Units of usage beyond the allowance that are already accounted for:
    /// drawn from grants, or recorded as overage.
    pub(super) fn covered(&self) -> u64 {
        self.overage
            .saturating_add(self.layers().map_or(0, |l| l.from_grants))
    }

    /// Draw `need` units from active grants, lowest priority number first,
    /// then the soonest to expire; records each draw in `draws`. Returns
    /// what was drawn (less than `need` if the grants run out).
    pub(super) fn draw(&mut self, now_ms: i64, need: u64, draws: &mut Draws) -> u64 {
        if need == 0 || self.layers().is_none_or(|l| l.grants.is_empty()) {
            return 0;
        }
        let l = self.layers_mut();
        let mut order: Vec<usize> = (0..l.grants.len())
            .filter(|i| l.grants[*i].active(now_ms))
            .collect();
        order.sort_by_key(|i| {
            let g = &l.grants[*i];
            (g.priority, g.expires_at_ms.unwrap_or(i64::MAX), g.seq)
        });
        let mut left = need;
        for i in order {
            let g = &mut l.grants[i];
            let n = g.remaining().min(left);
            g.used += n;
            left -= n;
            draws.push((g.seq, n));
            if left == 0 {
                break;
            }
        }
        let drawn = need - left;
        l.from_grants = l.from_grants.saturating_add(drawn);
        drawn
    }

    /// Put back what a reservation drew from grants (it is settled or
    /// released: its hold is undone before the real cost is charged).
    pub fn undraw(&mut self, draws: &[(u32, u64)]) {
        if draws.is_empty() {
            return;
        }
        let l = self.layers_mut();
        for (seq, n) in draws {
            if let Some(g) = l.grants.iter_mut().find(|g| g.seq == *seq) {
                g.used = g.used.saturating_sub(*n);
            }
            l.from_grants = l.from_grants.saturating_sub(*n);
        }
    }

    /// End a reservation of `amount` in `scope` that drew `draws` from
    /// grants, without charging it (released or expired): its hold goes on
    /// every level, and what it drew goes back.
    pub fn end_hold(&mut self, amount: u64, draws: &[(u32, u64)], scope: Option<&str>) {
        self.release(amount);
        self.undraw(draws);
        self.release_layers(amount, scope);
    }

    /// A copy to decide a check on: everything but the scope meters other
    /// than `scope`'s (a tenant may have millions).
    pub fn probe(&self, scope: Option<&str>) -> QuotaState {
        let Some(l) = self.layers() else {
            return self.clone();
        };
        let layers = Layers {
            windows: l.windows.clone(),
            carry: l.carry,
            from_grants: l.from_grants,
            grants: l.grants.clone(),
            next_grant: l.next_grant,
            scopes: scope
                .and_then(|s| l.scopes.get_key_value(s))
                .map(|(k, m)| (k.clone(), *m))
                .into_iter()
                .collect(),
            scopes_idle_from_ms: l.scopes_idle_from_ms,
        };
        QuotaState {
            policy: self.policy.clone(),
            window_start_ms: self.window_start_ms,
            window_end_ms: self.window_end_ms,
            used: self.used,
            reserved: self.reserved,
            overage: self.overage,
            tat_ns: self.tat_ns,
            fired: self.fired,
            layers: crate::format::Added(Some(Box::new(layers))),
        }
    }

    /// Give back `n` units of `draws`, the last drawn first.
    pub(super) fn undraw_last(&mut self, draws: &[(u32, u64)], mut n: u64) {
        let mut back = Draws::new();
        for (seq, units) in draws.iter().rev() {
            if n == 0 {
                break;
            }
            let k = n.min(*units);
            back.push((*seq, k));
            n -= k;
        }
        self.undraw(&back);
    }

    /// Undo a reservation's hold on the further windows and its scope.
    pub fn release_layers(&mut self, amount: u64, scope: Option<&str>) {
        let policy = self.policy.clone();
        let Some(rules) = policy.rules() else {
            return;
        };
        let Some(l) = self.layers.0.as_deref_mut() else {
            return;
        };
        for (m, p) in l.windows.iter_mut().zip(&rules.windows) {
            if p.kind != QuotaKind::Rate {
                m.reserved = m.reserved.saturating_sub(amount);
            }
        }
        if let Some(m) = scope.and_then(|s| l.scopes.get_mut(s)) {
            m.reserved = m.reserved.saturating_sub(amount);
            let (m, kind) = (*m, scope_kind(rules, scope));
            l.note_idle(&m, kind);
        }
    }

    /// Charge `actual` on the further windows and the scope, whatever their
    /// limits (a settlement: the work was done).
    pub fn charge_layers(&mut self, tz: Tz, now_ms: i64, actual: u64, scope: Option<&str>) {
        let policy = self.policy.clone();
        let Some(rules) = policy.rules() else {
            return;
        };
        let l = self.layers_mut();
        for (i, p) in rules.windows.iter().enumerate() {
            if p.kind == QuotaKind::Rate || i >= l.windows.len() {
                continue;
            }
            let mut q = QuotaState::metered(p, l.windows[i]);
            q.roll(tz, now_ms);
            q.used = q.used.saturating_add(actual);
            l.windows[i] = q.meter();
        }
        let policy = scope.and_then(|s| {
            let rules = rules.scopes.as_ref()?;
            rules.rule_for(s).map(|(_, p)| (s, p))
        });
        if let Some((s, p)) = policy
            && p.kind != QuotaKind::Rate
        {
            let mut q = QuotaState::metered(p, l.scopes.get(s).copied().unwrap_or_default());
            q.roll(tz, now_ms);
            q.used = q.used.saturating_add(actual);
            let m = q.meter();
            l.note_idle(&m, p.kind);
            l.scopes.insert(CompactString::new(s), m);
        }
    }

    /// Drop the scope meters that read as fresh by `now_ms` (their period
    /// ended, or their bucket refilled, with nothing held): a tenant with
    /// ten million end users keeps only the active ones. Runs when the
    /// earliest of them is due, so about once a period.
    pub fn sweep_scopes(&mut self, now_ms: i64) {
        // Every quota of a tenant is asked on every operation, and almost
        // none has a scope value due: answer that before touching the
        // shared policy (its reference count is a cache line every thread
        // deciding for a tenant of the same tier writes).
        match self.layers.0.as_deref() {
            Some(l) if !l.scopes.is_empty() && now_ms >= l.scopes_idle_from_ms => {}
            _ => return,
        }
        let policy = self.policy.clone();
        let Some(rules) = policy.rules().and_then(|r| r.scopes.as_ref()) else {
            return;
        };
        let Some(l) = self.layers.0.as_deref_mut() else {
            return;
        };
        if l.scopes.is_empty() || now_ms < l.scopes_idle_from_ms {
            return;
        }
        let mut next = i64::MAX;
        l.scopes.retain(|value, m| {
            let kind = rules
                .rule_for(value)
                .map_or(QuotaKind::Counter, |(_, p)| p.kind);
            match m.idle_from_ms(kind) {
                Some(idle) if idle <= now_ms => false,
                Some(idle) => {
                    next = next.min(idle);
                    true
                }
                None => true,
            }
        });
        l.scopes.shrink_after_sweep();
        l.scopes_idle_from_ms = next;
    }

    /// How many scope values are live.
    pub fn live_scopes(&self) -> usize {
        self.layers().map_or(0, |l| l.scopes.len())
    }

    /// Add a credit grant. Counters only.
    pub fn add_grant(
        &mut self,
        g: &NewCreditGrant,
        now_ms: i64,
    ) -> Result<CreditGrant, QuotaError> {
        if self.policy.kind != QuotaKind::Counter {
            return Err(QuotaError::invalid(
                "quota",
                "credit grants add to a counter's allowance; this quota is not a counter",
            ));
        }
        let l = self.layers_mut();
        if let Some(key) = &g.idempotency_key
            && let Some(existing) = l
                .grants
                .iter()
                .find(|x| x.idempotency_key.as_ref() == Some(key))
        {
            let same = existing.amount == g.amount
                && existing.priority == g.priority
                && existing.reason == g.reason
                && existing.expires_at_ms == g.expires_at_ms
                && g.effective_at_ms
                    .is_none_or(|e| e == existing.effective_at_ms);
            return if same {
                Ok(existing.clone())
            } else {
                Err(QuotaError::IdempotencyKeyReused { key: key.clone() })
            };
        }
        if l.grants.len() >= MAX_GRANTS {
            match l.grants.iter().position(|x| x.finished(now_ms)) {
                Some(i) => {
                    l.grants.remove(i);
                }
                None => {
                    return Err(QuotaError::invalid(
                        "grants",
                        format!(
                            "this quota already holds {MAX_GRANTS} grants that are active or pending; void one first"
                        ),
                    ));
                }
            }
        }
        l.next_grant = l.next_grant.saturating_add(1);
        let grant = CreditGrant {
            seq: l.next_grant,
            amount: g.amount,
            used: 0,
            effective_at_ms: g.effective_at_ms.unwrap_or(now_ms),
            expires_at_ms: g.expires_at_ms,
            priority: g.priority,
            reason: g.reason.clone(),
            idempotency_key: g.idempotency_key.clone(),
            created_at_ms: now_ms,
            voided_at_ms: None,
        };
        l.grants.push(grant.clone());
        Ok(grant)
    }

    /// Void grant `seq`: nothing more is drawn from it; what was drawn
    /// stays drawn. Voiding a voided grant changes nothing.
    pub fn void_grant(
        &mut self,
        tenant: TenantId,
        quota: &str,
        seq: u32,
        now_ms: i64,
    ) -> Result<CreditGrant, QuotaError> {
        let not_found = || QuotaError::GrantNotFound {
            tenant,
            quota: quota.to_string(),
            grant: seq,
        };
        let l = self.layers.0.as_deref_mut().ok_or_else(not_found)?;
        let g = l
            .grants
            .iter_mut()
            .find(|g| g.seq == seq)
            .ok_or_else(not_found)?;
        g.voided_at_ms.get_or_insert(now_ms);
        Ok(g.clone())
    }

    /// Rollover and preserved overage from the period that began at
    /// `old_start_ms` into the one that begins at `new_start_ms`: per
    /// period, what is left of the allowance (limit + carry - usage not
    /// covered by grants) rolls over, capped; usage beyond it is carried
    /// as usage. Periods with no activity between pass their whole
    /// allowance on (and absorb carried usage), one by one; the iteration
    /// stops once nothing changes any more.
    pub(super) fn carry_over(&mut self, tz: Tz, old_start_ms: i64, new_start_ms: i64) {
        let policy = self.policy.clone();
        let (Some(rules), Some(limit)) = (policy.rules(), policy.limit) else {
            return;
        };
        if !rules.rollover && !rules.preserve_overage {
            return;
        }
        let max = rules.rollover_max.unwrap_or(limit);
        let (mut carry, from_grants) = self.layers().map_or((0, 0), |l| (l.carry, l.from_grants));
        let mut used = self.used.saturating_sub(from_grants);
        let mut start = old_start_ms;
        for _ in 0..1000 {
            let allowance = limit.saturating_add(carry);
            let next_carry = if rules.rollover {
                allowance.saturating_sub(used).min(max)
            } else {
                0
            };
            let next_used = if rules.preserve_overage {
                used.saturating_sub(allowance)
            } else {
                0
            };
            let Some(end) = super::period::window(self.policy.period, tz, start).end_ms else {
                break;
            };
            start = end;
            let settled = next_carry == carry && next_used == used;
            carry = next_carry;
            used = next_used;
            if start >= new_start_ms || (settled && used == 0) {
                break;
            }
        }
        self.used = used;
        let l = self.layers_mut();
        l.carry = carry;
        l.from_grants = 0;
    }
}

/// The kind of the rule `scope` falls under (a counter if none).
fn scope_kind(rules: &crate::model::QuotaRules, scope: Option<&str>) -> QuotaKind {
    scope
        .and_then(|s| rules.scopes.as_ref()?.rule_for(s))
        .map_or(QuotaKind::Counter, |(_, p)| p.kind)
}

impl Limiter {
    fn of(
        q: &QuotaState,
        d: &Decision,
        level: &str,
        scope: Option<&str>,
        rule: Option<String>,
        tz: Tz,
        now_ms: i64,
    ) -> Limiter {
        Limiter {
            level: level.into(),
            scope: scope.map(str::to_string),
            rule,
            kind: q.policy.kind,
            period: q.policy.period,
            limit: q.policy.limit,
            remaining: q.remaining(now_ms),
            reset_at_ms: q.reset_at_ms(tz, now_ms),
            verdict: d.verdict,
            retry_after_ms: d.retry_after_ms,
            reason: d.reason.clone(),
        }
    }
}

/// A further level's decision when it plainly admits: `amount` fits under
/// the limit of `policy` (no soft limit; a counter inside its current
/// period, a rate's bucket with room), taken on `m` as the full decision
/// would take it. `false`: decide in full (a refusal, an action that
/// admits over the limit, a period to roll), `m` unchanged. Admitted
/// spends are most spends: this spares them a whole decision per level.
fn take_if_fits(
    policy: &crate::model::QuotaPolicy,
    m: &mut Meter,
    now_ms: i64,
    amount: u64,
    how: Use,
) -> bool {
    let Some(limit) = policy.limit.filter(|_| policy.soft_limit.is_none()) else {
        return false;
    };
    match policy.kind {
        QuotaKind::Counter => {
            let after = m.used.saturating_add(m.reserved).saturating_add(amount);
            if !(m.start_ms..m.end_ms).contains(&now_ms) || after > limit {
                return false;
            }
            match how {
                Use::Consume => m.used = m.used.saturating_add(amount),
                Use::Hold => m.reserved = m.reserved.saturating_add(amount),
            }
            true
        }
        QuotaKind::Rate => {
            let Some(new_tat) =
                super::quota_state::gcra_take(policy.period, m.tat_ns, now_ms, amount, limit)
            else {
                return false;
            };
            m.tat_ns = new_tat;
            true
        }
        QuotaKind::Gauge => false,
    }
}
