use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::Consistency;
use crate::model::TenantId;
use crate::quota::{Decision, OpClass, OpOutcome, QuotaError, TenantOp, TenantState};
use crate::raft::StampedOp;
use crate::shard::{
    BatchItem, PendingWrite, Shard, SharedCheck, SpawnActor, TenantAnswer, TenantCall, TenantMsg,
    TenantSync,
};
use crate::shed::Shed;
use crate::wire_error::WireError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// Where a call's answer goes.
type Reply = RpcReplyPort<Result<TenantAnswer, EngineError>>;

pub struct TenantActor;

/// How a shard starts a tenant's actor.
pub fn spawner() -> SpawnActor {
    Arc::new(|tenant, shard| {
        Box::pin(async move {
            Actor::spawn(None, TenantActor, (tenant, shard))
                .await
                .map(|(actor, _)| actor)
                .map_err(|e| e.to_string())
        })
    })
}

pub struct ActorState {
    tenant: TenantId,
    /// The tenant as this actor decides it. `None` until its first change:
    /// until then it is the group's committed state, read in place, so an
    /// activation copies nothing (a tenant's state can be large: its
    /// idempotency log holds up to a million keys). From its first change
    /// on, its own copy, ahead of commit; `Some(None)` when there is no
    /// such tenant (yet, or any more).
    own: Option<Option<TenantState>>,
    /// Time never goes backwards for a tenant, whatever the clock does.
    last_now: i64,
    sync: Arc<TenantSync>,
    shard: Arc<Shard>,
    /// When it last handled a request, on the engine's clock: idleness is
    /// time like any other, so tests move it instead of racing a timer.
    last_active_ms: i64,
    /// The span of the traced call being handled, if any: the parent of
    /// its commits' spans.
    trace: Option<crate::trace::Parent>,
}

impl ActorState {
    fn now(&mut self) -> i64 {
        self.last_now = self.last_now.max(self.shard.clock.now_ms());
        self.last_now
    }

    fn not_found(&self) -> EngineError {
        EngineError::Quota(QuotaError::TenantNotFound {
            tenant: self.tenant,
        })
    }

    fn poisoned(&self) -> EngineError {
        EngineError::Raft {
            group: self.shard.group.id,
            message: "state lock poisoned".into(),
        }
    }

    /// `f` of the tenant as this actor decides it.
    fn with_state<R>(&self, f: impl FnOnce(&TenantState) -> R) -> Result<R, EngineError> {
        match &self.own {
            Some(Some(s)) => Ok(f(s)),
            Some(None) => Err(self.not_found()),
            // No change of this actor's yet, and none of a predecessor's
            // pending (see `pre_start`): the committed state is the tenant.
            None => {
                let g = self.shard.group.state.read().map_err(|_| self.poisoned())?;
                g.tenants
                    .get(&self.tenant)
                    .map(|t| f(t))
                    .ok_or_else(|| self.not_found())
            }
        }
    }

    /// This actor's own copy, made from the committed state at its first
    /// change.
    fn own(&mut self) -> Result<&mut Option<TenantState>, EngineError> {
        if self.own.is_none() {
            let copy = self
                .shard
                .group
                .state
                .read()
                .map_err(|_| self.poisoned())?
                .tenants
                .get(&self.tenant)
                .map(|t| TenantState::clone(t));
            self.own = Some(copy);
        }
        Ok(self.own.as_mut().expect("set above"))
    }

    fn check(&mut self, quota: &str, amount: i64) -> Result<Decision, EngineError> {
        self.check_in(quota, amount, None)
    }

    fn check_in(
        &mut self,
        quota: &str,
        amount: i64,
        scope: Option<&str>,
    ) -> Result<Decision, EngineError> {
        let now = self.now();
        self.with_state(|s| s.check(quota, amount, scope, now))?
            .map_err(Into::into)
    }

    fn shared_check(&mut self, c: &SharedCheck) -> Result<Decision, EngineError> {
        let now = self.now();
        self.with_state(|s| s.check_shared(&c.quota, c.amount, c.policy, c.permission, now))?
            .map_err(Into::into)
    }

    /// Decide every item in order, as if each had come alone; reply at once
    /// when none waits for a commit, else once the last commit is in.
    fn batch(&mut self, items: Vec<BatchItem>, reply: Reply) {
        let mut answers = Vec::with_capacity(items.len());
        let mut waiting = Vec::new();
        for item in items {
            match item {
                BatchItem::Check { quota, amount } => {
                    answers.push(Some(self.check(&quota, amount)));
                }
                BatchItem::SharedCheck(Since(c)) => {
                    answers.push(Some(self.shared_check(&c)));
                }
                BatchItem::ScopedCheck(Since(c)) => {
                    answers.push(Some(self.check_in(&c.quota, c.amount, Some(&c.scope))));
                }
                BatchItem::Apply { op, consistency } => {
                    let (port, mut answer) = ractor::concurrency::oneshot();
                    self.apply(op, None, consistency, port.into());
                    match answer.try_recv() {
                        Ok(r) => answers.push(Some(r.and_then(outcome_decision))),
                        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                            waiting.push((answers.len(), answer));
                            answers.push(None);
                        }
                        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                            answers.push(Some(Err(EngineError::ShuttingDown)));
                        }
                    }
                }
            }
        }
        let finish = |answers: Vec<Option<Result<Decision, EngineError>>>| {
            TenantAnswer::Batch(
                answers
                    .into_iter()
                    .map(|a| {
                        a.unwrap_or(Err(EngineError::ShuttingDown))
                            .map_err(|e| WireError::from(&e))
                    })
                    .collect(),
            )
        };
        if waiting.is_empty() {
            let _ = reply.send(Ok(finish(answers)));
            return;
        }
        // Strict items wait for the batcher; the actor goes on meanwhile.
        tokio::spawn(async move {
            for (i, answer) in waiting {
                answers[i] = Some(
                    answer
                        .await
                        .unwrap_or(Err(EngineError::ShuttingDown))
                        .and_then(outcome_decision),
                );
            }
            let _ = reply.send(Ok(finish(answers)));
        });
    }

    fn apply(
        &mut self,
        op: TenantOp,
        audit: Option<AuditMeta>,
        consistency: Consistency,
        reply: Reply,
    ) {
        let now = self.now();
        // A commit-queue slot is taken before deciding, so a request that
        // could not be logged is refused with nothing changed, never
        // decided (and, in fast mode, answered) and then left unlogged.
        // A decision that turns out to change nothing gives its slot back.
        // The actor's own copy of the tenant, made at its first change.
        if let Err(e) = self.own() {
            let _ = reply.send(Err(e));
            return;
        }
        let slot = match self.shard.batcher.try_reserve() {
            Ok(slot) => slot,
            Err(mpsc::error::TrySendError::Full(())) => {
                let why = Shed::CommitQueue {
                    group: self.shard.group.id,
                    limit: self.shard.shedder.limits.commit_queue,
                };
                let _ = reply.send(Err(self.shard.shedder.shed(why, 1).into()));
                return;
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                // The batcher is gone: the node is shutting down.
                let _ = reply.send(Err(EngineError::ShuttingDown));
                return;
            }
        };
        let admin = op.class() == OpClass::Admin;
        let tenant = self.tenant;
        let state = self.own.as_mut().expect("made before the slot was taken");
        let applied = match (&mut *state, &op) {
            (
                None,
                TenantOp::Create {
                    tenant,
                    quotas,
                    owner,
                },
            ) => {
                *state = Some(TenantState::create(
                    (**tenant).clone(),
                    quotas.clone(),
                    owner.as_ref(),
                    now,
                ));
                Ok(crate::quota::Applied {
                    outcome: OpOutcome::Tenant,
                    changed: true,
                })
            }
            (None, _) => Err(QuotaError::TenantNotFound { tenant }),
            (Some(s), op) => {
                let before = s.alerts.raised;
                let applied = s.apply(op, now);
                // Counted here, where the leader decides, once: replicas
                // raise the same alerts when they apply the entry.
                for a in s.alerts.recent.iter().rev().take_while(|a| a.seq > before) {
                    metrics::counter!(crate::telemetry::ALERTS_RAISED, "type" => a.kind.as_str())
                        .increment(1);
                }
                applied
            }
        };
        if applied.is_ok() && op == TenantOp::Purge {
            *state = None;
        }
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        let strict = admin || consistency == Consistency::Strict;
        let op = if applied.changed {
            Some(StampedOp {
                tenant: self.tenant,
                at_ms: now,
                op,
                audit,
            })
        } else if strict
            && applied.outcome.is_replay()
            && self.sync.pending.load(Ordering::SeqCst) > 0
        {
            // The stored answer may belong to a change still in flight: a
            // strict caller hears it only once that change is durable.
            None
        } else {
            let _ = reply.send(Ok(TenantAnswer::Outcome(applied.outcome)));
            return;
        };
        self.sync.pending.fetch_add(1, Ordering::SeqCst);
        let reply = if strict {
            Some(reply)
        } else {
            let _ = reply.send(Ok(TenantAnswer::Outcome(applied.outcome.clone())));
            None
        };
        slot.send(PendingWrite {
            op,
            expected: applied.outcome,
            reply,
            sync: self.sync.clone(),
            trace: self.trace.map(|p| Box::new(crate::trace::Sent::now(p))),
        });
    }
}

impl Actor for TenantActor {
    type Msg = TenantMsg;
    type State = ActorState;
    type Arguments = (TenantId, Arc<Shard>);

    async fn pre_start(
        &self,
        myself: ActorRef<TenantMsg>,
        (tenant, shard): (TenantId, Arc<Shard>),
    ) -> Result<ActorState, ActorProcessingErr> {
        // Activation rebuilds from committed state, once every write of a
        // previous actor for this tenant is applied (it may have crashed
        // with writes in flight).
        let sync = shard.syncs.entry(tenant).or_default().clone();
        let mut waited = 0;
        while sync.pending.load(Ordering::SeqCst) > 0 {
            if waited >= 30_000 {
                return Err(
                    format!("tenant {tenant}: earlier writes still pending after 30 s").into(),
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            waited += 1;
        }
        sync.poisoned.store(false, Ordering::SeqCst);
        // Its time, and whether it exists; its state is copied only when
        // this actor first changes it (see `ActorState::own`).
        let last_at_ms = shard
            .group
            .state
            .read()
            .map_err(|_| "state lock poisoned")?
            .tenants
            .get(&tenant)
            .map(|t| t.last_at_ms);
        let check_every = (shard.idle_after / 2).max(std::time::Duration::from_millis(10));
        myself.send_interval(check_every, || TenantMsg::IdleCheck);
        Ok(ActorState {
            tenant,
            last_now: last_at_ms.unwrap_or(i64::MIN),
            own: if last_at_ms.is_some() {
                None
            } else {
                Some(None)
            },
            sync,
            last_active_ms: shard.clock.now_ms(),
            shard,
            trace: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        msg: TenantMsg,
        st: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        if st.sync.poisoned.load(Ordering::SeqCst) {
            // Our state may hold changes that never committed. Refuse work
            // (dropping the reply makes the caller retry) until our writes
            // have settled, then stop so a fresh actor activates from
            // committed state.
            if st.sync.pending.load(Ordering::SeqCst) == 0 {
                retire(&myself, st);
            }
            return Ok(());
        }
        if !matches!(msg, TenantMsg::IdleCheck) {
            st.last_active_ms = st.shard.clock.now_ms();
        }
        match msg {
            TenantMsg::Call {
                call,
                reply,
                trace: Some(sent),
            } => {
                // Traced: the span covers its wait in the queue and its
                // handling; its commits are its children.
                let span = crate::trace::Span::start(
                    "quotad.actor",
                    opentelemetry::trace::SpanKind::Internal,
                    Some(sent.parent),
                    sent.at,
                );
                if let Some(mut span) = span {
                    let waited = std::time::SystemTime::now()
                        .duration_since(sent.at)
                        .unwrap_or_default();
                    span.set("quotad.tenant_id", st.tenant.to_string());
                    span.set("quotad.group", st.shard.group.id as i64);
                    span.set("quotad.call", call.kind());
                    span.set("quotad.queued_us", waited.as_micros() as i64);
                    st.trace = Some(span.parent());
                    handle_call(st, call, reply);
                    st.trace = None;
                    span.end();
                } else {
                    handle_call(st, call, reply);
                }
            }
            TenantMsg::Call { call, reply, .. } => handle_call(st, call, reply),
            TenantMsg::IdleCheck => {
                let idle_ms = st.shard.clock.now_ms().saturating_sub(st.last_active_ms);
                let idle = idle_ms >= st.shard.idle_after.as_millis() as i64;
                if idle && st.sync.pending.load(Ordering::SeqCst) == 0 {
                    retire(&myself, st);
                }
            }
        }
        Ok(())
    }
}

/// Serve one call (the actor's state is `st`).
fn handle_call(st: &mut ActorState, call: TenantCall, reply: Reply) {
    match call {
        TenantCall::Apply {
            op,
            audit,
            consistency,
        } => st.apply(op, audit, consistency, reply),
        TenantCall::Check { quota, amount } => {
            let _ = reply.send(st.check(&quota, amount).map(TenantAnswer::Decision));
        }
        TenantCall::Batch(items) => st.batch(items, reply),
        TenantCall::SharedCheck(Since(c)) => {
            let _ = reply.send(st.shared_check(&c).map(TenantAnswer::Decision));
        }
        TenantCall::ScopedCheck(Since(c)) => {
            let _ = reply.send(
                st.check_in(&c.quota, c.amount, Some(&c.scope))
                    .map(TenantAnswer::Decision),
            );
        }
        TenantCall::Scopes(Since(q)) => {
            let now = st.now();
            let answer = st
                .with_state(|s| s.scopes_page(&q, now))
                .and_then(|r| r.map_err(Into::into))
                .map(|p| TenantAnswer::Scopes(Since(p)));
            let _ = reply.send(answer);
        }
        TenantCall::Read => {
            let now = st.now();
            let answer = st.with_state(|s| TenantAnswer::State(Box::new(s.view(now))));
            let _ = reply.send(answer);
        }
    }
}

fn outcome_decision(o: TenantAnswer) -> Result<Decision, EngineError> {
    match o {
        TenantAnswer::Outcome(OpOutcome::Decision(d)) => Ok(d),
        other => Err(EngineError::Unexpected {
            answer: format!("{other:?} to a batch item, not a decision"),
        }),
    }
}

/// Leave the registry, then stop. Messages already queued are dropped and
/// their callers retry against a new actor.
fn retire(myself: &ActorRef<TenantMsg>, st: &ActorState) {
    let id = myself.get_id();
    st.shard
        .actors
        .remove_if(&st.tenant, |_, a| a.get_id() == id);
    myself.stop(None);
}
