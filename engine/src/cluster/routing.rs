//! Routing: every request goes to its group's leader. A node serves the
//! groups it leads itself and forwards the rest, once, to the leader it
//! knows of; when there is none (an election), it waits and asks again,
//! up to `route_timeout`. Each forward waits at most `forward_timeout` for
//! its answer, so a client is answered within about route_timeout +
//! forward_timeout (16 s by default) even when the leader it is sent to has
//! gone silent: UNAVAILABLE if nothing can have been applied, else
//! OUTCOME_UNKNOWN.
use super::forward::{self, ForwardReply, ForwardRequest, SendError};
use super::placement::META_GROUP;
use super::principal;
use super::router::Router;
use crate::error::EngineError;
use crate::model::{Principal, TenantId};
use crate::quota::{QuotaError, TenantOp};
use crate::raft::{Command, CommandResponse, NodeId};
use crate::shard::{Shard, TenantAnswer, TenantCall};
use crate::trace::Span;
use std::sync::Arc;
use std::time::{Duration, Instant};

enum Route {
    Local(Arc<Shard>),
    Remote(String),
    /// No leader known, or it is this node and not serving yet.
    Wait,
}

impl Router {
    /// The group a tenant's state lives in: its dedicated group if pinned,
    /// else its hash shard.
    pub(crate) fn group_of(&self, tenant: &TenantId) -> u64 {
        if let Ok(s) = self.meta.state.read()
            && let Some(g) = s.membership.pins.get(tenant)
        {
            return *g;
        }
        self.map.shard_of(tenant)
    }

    /// The tenant's group, and whether it is dedicated to the tenant.
    pub fn placement_of(&self, tenant: &TenantId) -> (u64, bool) {
        let group = self.group_of(tenant);
        let dedicated = self
            .meta
            .state
            .read()
            .map(|s| s.membership.pins.contains_key(tenant))
            .unwrap_or(false);
        (group, dedicated)
    }

    /// Where `tenant` lives, replica by replica (see [`PlacementView`]).
    pub fn placement_view(&self, tenant: &TenantId) -> PlacementView {
        let (group, dedicated) = self.placement_of(tenant);
        let m = self.membership();
        let g = m.groups.get(&group).cloned().unwrap_or_default();
        let leader = self.leader_of(group);
        let pool = g.pool.clone();
        let level = match (&pool, dedicated) {
            (Some(_), true) => IsolationLevel::DedicatedInstance,
            (None, true) => IsolationLevel::DedicatedGroup,
            _ => IsolationLevel::Shared,
        };
        let replicas = g
            .replicas
            .iter()
            .map(|n| {
                let info = m.nodes.get(n);
                ReplicaView {
                    node: *n,
                    role: if g.voters.contains(n) {
                        ReplicaRole::Voter
                    } else if g.learners.contains(n) {
                        ReplicaRole::Learner
                    } else {
                        ReplicaRole::Joining
                    },
                    leader: leader == Some(*n),
                    peer_addr: info.map(|i| i.peer_addr.clone()).unwrap_or_default(),
                    labels: info.map(|i| i.labels.clone()).unwrap_or_default(),
                    reserved: info.is_some_and(|i| i.reserved),
                }
            })
            .collect();
        PlacementView {
            group,
            dedicated,
            level,
            pool,
            replicas,
        }
    }

    pub(crate) fn local_shard(&self, group: u64) -> Option<Arc<Shard>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    /// The group's leader: from its Raft metrics where this node is a
    /// member, else as last reported to the meta group.
    pub fn leader_of(&self, group: u64) -> Option<NodeId> {
        let raft = if group == META_GROUP {
            Some(self.meta.raft.clone())
        } else {
            self.local_shard(group).map(|s| s.group.raft.clone())
        };
        if let Some(raft) = raft {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if m.membership_config
                .membership()
                .get_node(&self.node_id)
                .is_some()
            {
                return m.current_leader;
            }
        }
        let s = self.meta.state.read().ok()?;
        s.membership.groups.get(&group)?.led_by.map(|(n, _)| n)
    }

    /// Why `group` stopped on this node, if its Raft ended on an error.
    pub(crate) fn group_failure(&self, group: u64) -> Option<String> {
        if group == META_GROUP {
            self.meta.failure()
        } else {
            self.local_shard(group)?.group.failure()
        }
    }

    pub(crate) fn peer_addr(&self, node: NodeId) -> Option<String> {
        let s = self.meta.state.read().ok()?;
        let addr = &s.membership.nodes.get(&node)?.peer_addr;
        (!addr.is_empty()).then(|| addr.clone())
    }

    /// The client gRPC address of the leader of `tenant`'s group, when that
    /// is another node: a hint for clients to go there directly.
    pub fn leader_hint(&self, tenant: &TenantId) -> Option<String> {
        let addr = self.leader_node(tenant)?.grpc_addr;
        (!addr.is_empty()).then_some(addr)
    }

    /// The node leading `tenant`'s group, when that is another node.
    pub fn leader_node(&self, tenant: &TenantId) -> Option<super::NodeInfo> {
        let group = self.group_of(tenant);
        if self.local_shard(group).is_some_and(|s| s.serving()) {
            return None;
        }
        let leader = self.leader_of(group)?;
        if leader == self.node_id {
            return None;
        }
        let s = self.meta.state.read().ok()?;
        s.membership.nodes.get(&leader).cloned()
    }

    fn route(&self, group: u64) -> Route {
        if let Some(s) = self.local_shard(group)
            && s.serving()
        {
            return Route::Local(s);
        }
        match self.leader_of(group) {
            Some(l) if l != self.node_id => self.peer_addr(l).map_or(Route::Wait, Route::Remote),
            _ => Route::Wait,
        }
    }

    /// Ask a tenant's actor, on whichever node leads its group.
    pub(crate) async fn call_tenant(
        &self,
        tenant: TenantId,
        call: TenantCall,
    ) -> Result<TenantAnswer, EngineError> {
        self.call_tenant_as(None, tenant, call).await
    }

    /// [`Router::call_tenant`] for a data-plane caller, `by`, whom the
    /// leader checks again if the call is forwarded.
    pub(crate) async fn call_tenant_as(
        &self,
        by: Option<&Principal>,
        tenant: TenantId,
        call: TenantCall,
    ) -> Result<TenantAnswer, EngineError> {
        // Held while the call waits, here or on the leader it is forwarded
        // to (who admits it again against its own bound).
        let _in_flight = self.shedder.admit(call.weight())?;
        let safe = call.retry_safe();
        match self
            .dispatch_tenant(tenant, ForwardRequest::Tenant { tenant, call }, by, safe)
            .await?
        {
            ForwardReply::Tenant(a) => Ok(a),
            other => Err(crate::cluster::forward::unexpected(other)),
        }
    }

    /// [`Router::dispatch`] to the tenant's group, following the tenant if
    /// it moves to another group meanwhile.
    pub(crate) async fn dispatch_tenant(
        &self,
        tenant: TenantId,
        req: ForwardRequest,
        by: Option<&Principal>,
        safe: bool,
    ) -> Result<ForwardReply, EngineError> {
        let deadline = Instant::now() + self.config.route_timeout;
        loop {
            // Re-read each time: a moving tenant is pinned to its new group
            // once the move completes. The request is lent, not copied: the
            // actor's message is the one copy a local call makes.
            let group = self.group_of(&tenant);
            match self.dispatch(group, &req, by, safe).await {
                Ok(answer) => return Ok(answer),
                Err(EngineError::TenantMoving { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(EngineError::NotLeader { group: g, .. })
                    if g != group && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Serve `req` here if this node leads `group`, else forward it to the
    /// leader, on behalf of `by`; retry while the group has no reachable
    /// leader. A request that may have reached a leader is sent again only
    /// if `retry_safe`.
    pub(crate) async fn dispatch(
        &self,
        group: u64,
        req: &ForwardRequest,
        by: Option<&Principal>,
        retry_safe: bool,
    ) -> Result<ForwardReply, EngineError> {
        // A traced request's routing is a span, each attempt an event. Its
        // future is boxed: inline, the span would grow every request's
        // future (and the copies made of it) by its size.
        if let Some(parent) = crate::trace::current() {
            return Box::pin(self.dispatch_traced(parent, group, req, by, retry_safe)).await;
        }
        self.attempts(group, req, by, retry_safe, None).await
    }

    async fn dispatch_traced(
        &self,
        parent: crate::trace::Parent,
        group: u64,
        req: &ForwardRequest,
        by: Option<&Principal>,
        retry_safe: bool,
    ) -> Result<ForwardReply, EngineError> {
        let Some(mut span) = Span::child("quotad.route", parent) else {
            return self.attempts(group, req, by, retry_safe, None).await;
        };
        span.set("quotad.group", group as i64);
        let me = span.parent();
        let answer = crate::trace::within(
            me,
            self.attempts(group, req, by, retry_safe, Some(&mut span)),
        )
        .await;
        span.result(&answer);
        span.end();
        answer
    }

    async fn attempts(
        &self,
        group: u64,
        req: &ForwardRequest,
        by: Option<&Principal>,
        retry_safe: bool,
        mut span: Option<&mut Span>,
    ) -> Result<ForwardReply, EngineError> {
        let deadline = Instant::now() + self.config.route_timeout;
        let mut delay = Duration::from_millis(2);
        // Why an earlier attempt of a change may have been applied: if no
        // later one gets an answer, the outcome is unknown, not "refused".
        let mut maybe_applied: Option<String> = None;
        loop {
            let route = self.route(group);
            if let Some(s) = span.as_deref_mut() {
                s.event(match &route {
                    Route::Local(_) => std::borrow::Cow::Borrowed("served here"),
                    Route::Remote(addr) => format!("forwarded to the leader at {addr}").into(),
                    Route::Wait => "no leader known".into(),
                });
            }
            let why = match route {
                Route::Local(shard) => match self.serve_local(&shard, req).await {
                    Err(e @ EngineError::NotLeader { .. }) => e,
                    other => return other,
                },
                Route::Remote(addr) => {
                    let unreachable = |reason| EngineError::PeerUnreachable {
                        peer: format!("the leader at {addr}"),
                        reason,
                    };
                    let channel = self.peers.channel(&addr).map_err(unreachable)?;
                    match forward::send(channel, req, by, self.config.forward_timeout).await {
                        // The receiver places the tenant in another group
                        // (a pin this node has not seen yet): re-route.
                        Ok(Err(e @ EngineError::NotLeader { group: g, .. })) if g != group => {
                            return Err(e);
                        }
                        Ok(Err(e @ EngineError::NotLeader { .. })) => e,
                        Ok(answer) => return answer,
                        Err(SendError::NotSent(why)) => unreachable(why),
                        Err(SendError::Lost(why)) => {
                            let why = format!("forwarded to the leader at {addr}: {why}");
                            if !req.changes_state() {
                                unreachable(why)
                            } else if retry_safe {
                                maybe_applied = Some(why.clone());
                                unreachable(why)
                            } else {
                                return Err(EngineError::OutcomeUnknown { group, reason: why });
                            }
                        }
                    }
                }
                // A group stopped here on an error has no leader this
                // node will learn of, and its state only ages: answer at
                // once, so the caller tries another node, rather than
                // waiting out `route_timeout` or previewing stale state.
                Route::Wait => match self.group_failure(group) {
                    Some(reason) => return Err(EngineError::GroupStopped { group, reason }),
                    None => EngineError::NoLeader { group },
                },
            };
            // While the group has no reachable leader, a check (a preview
            // that changes nothing) is answered from this replica's
            // committed state rather than waiting out the election.
            if matches!(
                why,
                EngineError::NoLeader { .. } | EngineError::PeerUnreachable { .. }
            ) && let Some(answer) = self.check_from_replica(group, req)
            {
                return answer;
            }
            tracing::debug!(group, error = %why, "no leader to serve the request yet; retrying");
            if Instant::now() + delay >= deadline || self.is_closing() {
                return Err(match maybe_applied {
                    Some(reason) => EngineError::OutcomeUnknown { group, reason },
                    None => why,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// A check answered from this node's copy of the group, if it holds
    /// the tenant. It may miss the last increments the old leader had not
    /// replicated: a preview, never an admission.
    fn check_from_replica(
        &self,
        group: u64,
        req: &ForwardRequest,
    ) -> Option<Result<ForwardReply, EngineError>> {
        let ForwardRequest::Tenant {
            tenant,
            call: TenantCall::Check { quota, amount },
        } = req
        else {
            return None;
        };
        let shard = self.local_shard(group)?;
        let state = shard.group.state.read().ok()?;
        let t = state.tenants.get(tenant)?;
        let now = self.config.clock.now_ms().max(t.last_at_ms);
        Some(
            t.check(quota, *amount, None, now)
                .map(|d| ForwardReply::Tenant(TenantAnswer::Decision(d)))
                .map_err(Into::into),
        )
    }

    /// A request forwarded by another node, on behalf of `by` if it is a
    /// data-plane caller's: served only if this node leads the group and
    /// `by` still allows it here, never forwarded again.
    pub async fn serve_forward(
        &self,
        req: ForwardRequest,
        by: Option<Principal>,
    ) -> Result<ForwardReply, EngineError> {
        let group = match &req {
            ForwardRequest::Meta(cmd) => {
                return self.meta.write(cmd.clone()).await.map(ForwardReply::Meta);
            }
            ForwardRequest::Tenant { tenant, .. }
            | ForwardRequest::Audit { tenant, .. }
            | ForwardRequest::Usage { tenant, .. }
            | ForwardRequest::MoveOut { tenant, .. } => self.group_of(tenant),
            ForwardRequest::GroupWrite { group, .. } => *group,
        };
        let _in_flight = match &req {
            ForwardRequest::Tenant { call, .. } => Some(self.shedder.admit(call.weight())?),
            _ => None,
        };
        match self.local_shard(group) {
            Some(shard) if shard.serving() => {
                if let Some(by) = &by {
                    self.recheck(&shard, by, &req)?;
                }
                self.serve_local(&shard, &req).await
            }
            _ => Err(EngineError::NotLeader {
                group,
                leader: self.leader_of(group),
            }),
        }
    }

    /// The leader's second look at a forwarded data-plane caller (see
    /// [`super::principal`]).
    fn recheck(
        &self,
        shard: &Shard,
        by: &Principal,
        req: &ForwardRequest,
    ) -> Result<(), EngineError> {
        let ForwardRequest::Tenant { tenant, call } = req else {
            return Err(EngineError::Forbidden {
                reason: "a data-plane caller can only make tenant calls".into(),
            });
        };
        let now_ms = self.config.clock.now_ms();
        principal::allows(by, tenant, call, now_ms)?;
        if let Some(proof) = &by.key {
            let state = shard.group.state.read().map_err(|_| EngineError::Raft {
                group: shard.group.id,
                message: "the group's state lock is poisoned".into(),
            })?;
            let keys = state.tenants.get(tenant).map(|t| &t.api_keys);
            principal::key_still_opens(proof, keys, now_ms)?;
        }
        Ok(())
    }

    async fn serve_local(
        &self,
        shard: &Arc<Shard>,
        req: &ForwardRequest,
    ) -> Result<ForwardReply, EngineError> {
        match req {
            ForwardRequest::Tenant { tenant, call } => {
                let creating = matches!(
                    call,
                    TenantCall::Apply {
                        op: TenantOp::Create { .. },
                        ..
                    }
                );
                if shard.is_moving(tenant) {
                    return Err(EngineError::TenantMoving { tenant: *tenant });
                }
                // Unknown tenants are refused before an actor starts.
                if !creating && !shard.actors.contains_key(tenant) && !shard.knows(tenant) {
                    return Err(QuotaError::TenantNotFound { tenant: *tenant }.into());
                }
                shard.call(*tenant, call).await.map(ForwardReply::Tenant)
            }
            ForwardRequest::Audit { tenant, query } => {
                shard.audit_page(*tenant, query).map(ForwardReply::Audit)
            }
            ForwardRequest::Usage {
                tenant,
                quota,
                granularity,
                from_ms,
                to_ms,
            } => shard
                .usage(*tenant, quota, *granularity, *from_ms, *to_ms)
                .map(|(p, s)| ForwardReply::Usage(p, s)),
            ForwardRequest::MoveOut { tenant, to_group } => {
                self.move_out(shard, *tenant, *to_group).await
            }
            ForwardRequest::GroupWrite { cmd, .. } => shard
                .group
                .write(cmd.clone())
                .await
                .map(ForwardReply::Written),
            ForwardRequest::Meta(_) => Err(EngineError::Unexpected {
                answer: "a meta write sent to a shard group".into(),
            }),
        }
    }

    /// Wait (up to the route timeout) until this node's copy of the meta
    /// state shows a change just written: a write commits through the meta
    /// leader, which may be another node, and reads on this node that follow
    /// it must see it.
    pub(crate) async fn await_meta(&self, seen: impl Fn(&crate::raft::MetaState) -> bool) {
        let deadline = Instant::now() + self.config.route_timeout;
        loop {
            let done = self.meta.state.read().map(|s| seen(&s)).unwrap_or(true);
            if done || Instant::now() >= deadline || self.is_closing() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Write to the meta group through its leader. Meta operations are
    /// idempotent, so they are retried across leader changes.
    pub(crate) async fn meta_write(&self, cmd: Command) -> Result<CommandResponse, EngineError> {
        let deadline = Instant::now() + self.config.route_timeout;
        let mut delay = Duration::from_millis(2);
        loop {
            let leader = self.leader_of(META_GROUP);
            let why = if leader == Some(self.node_id) {
                match self.meta.write(cmd.clone()).await {
                    Err(e @ EngineError::NotLeader { .. }) => e,
                    other => return other,
                }
            } else if let Some(addr) = leader.and_then(|l| self.peer_addr(l)) {
                let unreachable = |reason| EngineError::PeerUnreachable {
                    peer: format!("the meta leader at {addr}"),
                    reason,
                };
                let channel = self.peers.channel(&addr).map_err(unreachable)?;
                let req = ForwardRequest::Meta(cmd.clone());
                match forward::send(channel, &req, None, self.config.forward_timeout).await {
                    Ok(Ok(ForwardReply::Meta(r))) => return Ok(r),
                    Ok(Ok(other)) => {
                        return Err(crate::cluster::forward::unexpected(other));
                    }
                    Ok(Err(e @ EngineError::NotLeader { .. })) => e,
                    Ok(Err(e)) => return Err(e),
                    Err(SendError::NotSent(why) | SendError::Lost(why)) => unreachable(why),
                }
            } else {
                EngineError::NoLeader { group: META_GROUP }
            };
            if Instant::now() + delay >= deadline || self.is_closing() {
                return Err(why);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }
}

/// How isolated a tenant's state is: the product's three levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// A hash shard's group, shared with other tenants.
    Shared,
    /// A Raft group of its own, on nodes shared with other groups.
    DedicatedGroup,
    /// A group of its own on a node pool's nodes (reserved nodes hold
    /// nothing else).
    DedicatedInstance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaRole {
    Voter,
    /// A caught-up copy that does not vote (see `membership::voters_for`).
    Learner,
    /// Placed here, not caught up (or not reported) yet.
    Joining,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub node: NodeId,
    pub role: ReplicaRole,
    pub leader: bool,
    pub peer_addr: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub reserved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementView {
    pub group: u64,
    pub dedicated: bool,
    pub level: IsolationLevel,
    pub pool: Option<String>,
    pub replicas: Vec<ReplicaView>,
}
