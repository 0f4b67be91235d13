use super::convert;
use crate::Engine;
use crate::auth::Authenticator;
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{Caller, Principal, Scope, TenantId};
use crate::quota::QuotaError;
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_server::QuotaService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Response metadata naming the gRPC address of the node leading the
/// tenant's group, when the answering node is not that node.
pub const LEADER_HINT: &str = "quotad-leader";

/// One RPC in flight: its request id (the caller's `x-request-id`
/// metadata, or a new one, echoed back on the answer and in logs) and its
/// start, for the latency histogram.
struct Call {
    method: &'static str,
    started: std::time::Instant,
    request_id: String,
}

impl Call {
    fn start<T>(method: &'static str, req: &Request<T>) -> Call {
        let request_id = req
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Call {
            method,
            started: std::time::Instant::now(),
            request_id,
        }
    }

    fn reply<T>(&self, result: Result<T, EngineError>) -> Result<Response<T>, Status> {
        self.reply_hinted(result, None)
    }

    /// Reply, telling the caller where the tenant's group is led when that
    /// is another node (`quotad-leader`: its gRPC address), so it can go
    /// there directly next time.
    fn reply_for<T>(
        &self,
        engine: &Engine,
        tenant: Option<crate::model::TenantId>,
        result: Result<T, EngineError>,
    ) -> Result<Response<T>, Status> {
        let hint = tenant
            .and_then(|t| engine.leader_hint(&t))
            .and_then(|h| h.parse().ok());
        self.reply_hinted(result, hint)
    }

    fn reply_hinted<T>(
        &self,
        result: Result<T, EngineError>,
        hint: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    ) -> Result<Response<T>, Status> {
        let id = self.request_id.parse().ok();
        match result {
            Ok(v) => {
                let mut resp = Response::new(v);
                if let Some(id) = id {
                    resp.metadata_mut().insert("x-request-id", id);
                }
                if let Some(h) = hint {
                    resp.metadata_mut().insert(LEADER_HINT, h);
                }
                Ok(resp)
            }
            Err(e) => {
                if matches!(e.code(), ErrorCode::Internal | ErrorCode::Unavailable) {
                    tracing::error!(request_id = %self.request_id, method = self.method, error = %e, "request failed");
                } else {
                    tracing::debug!(request_id = %self.request_id, method = self.method, error = %e, "request refused");
                }
                let mut s = Status::from(e);
                if let Some(id) = id {
                    s.metadata_mut().insert("x-request-id", id);
                }
                if let Some(h) = hint {
                    s.metadata_mut().insert(LEADER_HINT, h);
                }
                Err(s)
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        metrics::histogram!(crate::telemetry::GRPC_DURATION, "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

pub struct QuotaGrpc {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
}

impl QuotaGrpc {
    pub fn new(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Self {
        QuotaGrpc { engine, auth }
    }

    /// The tenant a call names, if the caller may do `scope` to it.
    fn allowed(
        &self,
        caller: &Caller,
        raw: &str,
        scope: Scope,
        call: &Call,
    ) -> Result<TenantId, EngineError> {
        let tenant = convert::tenant_id(raw)?;
        self.auth
            .authorize(caller, &tenant, scope, &call.request_id)?;
        Ok(tenant)
    }

    /// Every item of a batch the caller may not do, refused as a whole:
    /// a call with one such item changes nothing.
    fn allowed_items(
        auth: &Arc<Authenticator>,
        caller: &Caller,
        items: &[pb::BatchItem],
        request_id: &str,
    ) -> Result<(), EngineError> {
        if matches!(caller, Caller::Platform { .. } | Caller::Anonymous) {
            return Ok(());
        }
        for item in items {
            let (raw, scope) = match &item.item {
                Some(pb::batch_item::Item::Check(c)) => (&c.tenant_id, Scope::Check),
                Some(pb::batch_item::Item::Increment(i)) => (&i.tenant_id, Scope::Increment),
                None => continue,
            };
            // An item whose tenant id does not parse fails alone, later.
            if let Ok(tenant) = convert::tenant_id(raw) {
                auth.authorize(caller, &tenant, scope, request_id)?;
            }
        }
        Ok(())
    }

    async fn check(
        &self,
        r: pb::CheckRequest,
        by: &Principal,
        call: &Call,
    ) -> Result<pb::Decision, EngineError> {
        let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Check, call)?;
        let quota = convert::quota(&r.quota)?;
        let via = convert::via(&r.sharing_policy_id, &r.permission)?;
        let scope = convert::scope(r.scope, via.as_ref())?;
        let d = match via {
            None => {
                self.engine
                    .check_in(by, tenant, quota, r.amount, scope)
                    .await?
            }
            Some(via) => {
                let d = self
                    .engine
                    .check_shared(by, tenant, quota, r.amount, via)
                    .await;
                self.account(by, tenant, via, call, d)?
            }
        };
        Ok(convert::decision(d))
    }

    /// Count and audit a use its grant refused (see
    /// [`Authenticator::sharing_refused`]); pass the answer on.
    fn account<T>(
        &self,
        by: &Principal,
        consumer: TenantId,
        via: crate::Via,
        call: &Call,
        answer: Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if let Err(e) = &answer
            && refused_by_grant(e)
        {
            self.auth.sharing_refused(
                &by.caller,
                consumer,
                via.policy,
                &e.to_string(),
                &call.request_id,
            );
        }
        answer
    }

    async fn increment(
        &self,
        r: pb::IncrementRequest,
        by: &Principal,
        call: &Call,
    ) -> Result<pb::Decision, EngineError> {
        let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Increment, call)?;
        let quota = convert::quota(&r.quota)?;
        let consistency = convert::consistency(r.consistency)?;
        let key = convert::key(r.idempotency_key);
        let via = convert::via(&r.sharing_policy_id, &r.permission)?;
        let scope = convert::scope(r.scope, via.as_ref())?;
        let d = match via {
            None => {
                self.engine
                    .increment_in(by, tenant, quota, r.amount, scope, key, consistency)
                    .await?
            }
            Some(via) => {
                let d = self
                    .engine
                    .increment_shared(by, tenant, quota, r.amount, key, consistency, via)
                    .await;
                self.account(by, tenant, via, call, d)?
            }
        };
        Ok(convert::decision(d))
    }
}

/// Whether `e` is a refusal by the consumer's grant (none, ended, expired,
/// a permission it lacks), here or on the node that decided.
fn refused_by_grant(e: &EngineError) -> bool {
    e.code() == ErrorCode::PermissionDenied && e.field() == Some("sharing_policy_id")
}

/// Decide `items` as one batch: items that do not parse fail alone; the rest
/// go to the engine, which hands each tenant's items to its actor in one
/// message. One result per item, in item order.
async fn decide(
    engine: &Engine,
    auth: &Arc<Authenticator>,
    by: &Principal,
    request_id: &str,
    items: Vec<pb::BatchItem>,
    default: i32,
) -> Vec<pb::BatchResult> {
    let n = items.len();
    let mut results: Vec<Option<Result<pb::Decision, EngineError>>> =
        (0..n).map(|_| None).collect();
    let mut indexes = Vec::with_capacity(n);
    let mut ops = Vec::with_capacity(n);
    for (i, item) in items.into_iter().enumerate() {
        match batch_op(item, default) {
            Ok(op) => {
                indexes.push(i);
                ops.push(op);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    // Uses through grants, for accounting their refusals.
    let vias: Vec<Option<(TenantId, crate::Via)>> = ops
        .iter()
        .map(|(tenant, op)| match op {
            crate::BatchOp::SharedCheck { via, .. }
            | crate::BatchOp::SharedIncrement { via, .. } => Some((*tenant, *via)),
            _ => None,
        })
        .collect();
    for ((i, d), via) in indexes
        .into_iter()
        .zip(engine.batch(by, ops).await)
        .zip(vias)
    {
        if let (Err(e), Some((consumer, via))) = (&d, via)
            && refused_by_grant(e)
        {
            auth.sharing_refused(&by.caller, consumer, via.policy, &e.to_string(), request_id);
        }
        results[i] = Some(d.map(convert::decision));
    }
    results
        .into_iter()
        .map(|r| pb::BatchResult {
            result: Some(match r.expect("every item answered") {
                Ok(d) => pb::batch_result::Result::Decision(d),
                Err(e) => pb::batch_result::Result::Error(convert::item_error(e)),
            }),
        })
        .collect()
}

/// Decisions one stream may have in flight; past it, the stream stops
/// reading until answers go out (HTTP/2 flow control then holds the caller).
const STREAM_IN_FLIGHT: u32 = 4096;

/// Serve one `Stream` call: read what has arrived, decide it as a batch
/// (concurrently with the next read), send each answer with its id.
async fn serve_stream(
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    by: Arc<Principal>,
    request_id: String,
    mut inbound: tonic::Streaming<pb::StreamRequest>,
    out: tokio::sync::mpsc::Sender<Result<pb::StreamResponse, Status>>,
    // The call's span, if it is traced (see `trace::stream_batch`).
    traced: Option<crate::trace::Parent>,
) {
    use futures::FutureExt;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(STREAM_IN_FLIGHT as usize));
    let mut open = true;
    while open {
        let first = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(s) => {
                let _ = out.send(Err(malformed_is_invalid(s))).await;
                break;
            }
        };
        let mut batch = vec![first];
        // Whatever else has already arrived joins this batch: batches grow
        // with the load instead of waiting on a timer. (`message()` is
        // cancel-safe: a pending read loses nothing when dropped.)
        while batch.len() < STREAM_IN_FLIGHT as usize {
            match inbound.message().now_or_never() {
                Some(Ok(Some(m))) => batch.push(m),
                Some(Ok(None)) => {
                    open = false;
                    break;
                }
                Some(Err(s)) => {
                    let _ = out.send(Err(malformed_is_invalid(s))).await;
                    open = false;
                    break;
                }
                None => break,
            }
        }
        let items: Vec<pb::BatchItem> = batch.iter().filter_map(|r| r.item.clone()).collect();
        if let Err(e) = QuotaGrpc::allowed_items(&auth, &by.caller, &items, &request_id) {
            let _ = out.send(Err(Status::from(e))).await;
            break;
        }
        let Ok(permit) = in_flight
            .clone()
            .acquire_many_owned(batch.len() as u32)
            .await
        else {
            break;
        };
        let (engine, out, by, auth, request_id) = (
            engine.clone(),
            out.clone(),
            by.clone(),
            auth.clone(),
            request_id.clone(),
        );
        let span = crate::trace::stream_batch(traced, batch.len());
        tokio::spawn(async move {
            let (ids, items): (Vec<u64>, Vec<pb::BatchItem>) = batch
                .into_iter()
                .map(|r| (r.id, r.item.unwrap_or(pb::BatchItem { item: None })))
                .unzip();
            let deciding = decide(&engine, &auth, &by, &request_id, items, 0);
            let results = match &span {
                // Boxed, so that an untraced batch's task stays its size.
                Some(s) => Box::pin(crate::trace::within(s.parent(), deciding)).await,
                None => deciding.await,
            };
            if let Some(s) = span {
                s.end();
            }
            for (id, result) in ids.into_iter().zip(results) {
                let answer = pb::StreamResponse {
                    id,
                    result: Some(result),
                };
                if out.send(Ok(answer)).await.is_err() {
                    break; // the caller went away
                }
            }
            drop(permit);
        });
    }
}

/// A stream message that is not a `StreamRequest` is the caller's error:
/// tonic's codec calls it INTERNAL (the node's layer turns unary answers
/// into INVALID_ARGUMENT; a stream's status is ours to set).
fn malformed_is_invalid(s: Status) -> Status {
    if s.code() == tonic::Code::Internal && s.message().starts_with("failed to decode Protobuf") {
        Status::invalid_argument(s.message().to_string())
    } else {
        s
    }
}

/// A Batch item as the engine takes it; `default` is the batch's consistency.
fn batch_op(
    item: pb::BatchItem,
    default: i32,
) -> Result<(crate::model::TenantId, crate::BatchOp), EngineError> {
    match item.item {
        Some(pb::batch_item::Item::Check(c)) => {
            let tenant = convert::tenant_id(&c.tenant_id)?;
            let quota = convert::quota(&c.quota)?.to_string();
            let via = convert::via(&c.sharing_policy_id, &c.permission)?;
            let op = match (via, convert::scope(c.scope, via.as_ref())?) {
                (None, None) => crate::BatchOp::Check {
                    quota,
                    amount: c.amount,
                },
                (None, Some(scope)) => crate::BatchOp::ScopedCheck {
                    quota,
                    amount: c.amount,
                    scope,
                },
                (Some(via), _) => crate::BatchOp::SharedCheck {
                    quota,
                    amount: c.amount,
                    via,
                },
            };
            Ok((tenant, op))
        }
        Some(pb::batch_item::Item::Increment(r)) => {
            let tenant = convert::tenant_id(&r.tenant_id)?;
            convert::quota(&r.quota)?;
            let mut consistency = convert::consistency(r.consistency)?;
            if consistency.is_none() {
                consistency = convert::consistency(default)?;
            }
            let idempotency_key = convert::key(r.idempotency_key);
            let via = convert::via(&r.sharing_policy_id, &r.permission)?;
            let op = match (via, convert::scope(r.scope, via.as_ref())?) {
                (None, None) => crate::BatchOp::Increment {
                    quota: r.quota,
                    amount: r.amount,
                    idempotency_key,
                    consistency,
                },
                (None, Some(scope)) => crate::BatchOp::ScopedIncrement {
                    quota: r.quota,
                    amount: r.amount,
                    scope,
                    idempotency_key,
                    consistency,
                },
                (Some(via), _) => crate::BatchOp::SharedIncrement {
                    quota: r.quota,
                    amount: r.amount,
                    idempotency_key,
                    consistency,
                    via,
                },
            };
            Ok((tenant, op))
        }
        None => Err(QuotaError::invalid("items", "an item is neither check nor increment").into()),
    }
}

#[tonic::async_trait]
impl QuotaService for QuotaGrpc {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let call = Call::start("Check", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let tenant = r.tenant_id.parse().ok();
        call.reply_for(&self.engine, tenant, self.check(r, &by, &call).await)
    }

    async fn increment(
        &self,
        req: Request<pb::IncrementRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let call = Call::start("Increment", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let tenant = r.tenant_id.parse().ok();
        call.reply_for(&self.engine, tenant, self.increment(r, &by, &call).await)
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let call = Call::start("Batch", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let req = req.into_inner();
        if req.items.len() > super::MAX_BATCH_ITEMS {
            return call.reply(Err(QuotaError::invalid(
                "items",
                format!(
                    "{} items; a batch holds at most {}",
                    req.items.len(),
                    super::MAX_BATCH_ITEMS
                ),
            )
            .into()));
        }
        if let Err(e) = convert::consistency(req.consistency) {
            return call.reply(Err(e));
        }
        if let Err(e) = Self::allowed_items(&self.auth, &by.caller, &req.items, &call.request_id) {
            return call.reply(Err(e));
        }
        let results = decide(
            &self.engine,
            &self.auth,
            &by,
            &call.request_id,
            req.items,
            req.consistency,
        )
        .await;
        call.reply(Ok(pb::BatchResponse { results }))
    }

    type StreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::StreamResponse, Status>> + Send + 'static>,
    >;

    async fn stream(
        &self,
        req: Request<tonic::Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let call = Call::start("Stream", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_IN_FLIGHT as usize);
        tokio::spawn(serve_stream(
            self.engine.clone(),
            self.auth.clone(),
            by,
            call.request_id.clone(),
            req.into_inner(),
            tx,
            // Its own task: the call's trace is handed over.
            crate::trace::current(),
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn reserve(
        &self,
        req: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let call = Call::start("Reserve", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Reserve, &call)?;
            let quota = convert::quota(&r.quota)?;
            let consistency = convert::consistency(r.consistency)?;
            let hold = crate::engine::Hold {
                amount: r.amount,
                ttl_ms: r.ttl_ms,
            };
            let key = convert::key(r.idempotency_key.clone());
            let via = convert::via(&r.sharing_policy_id, &r.permission)?;
            let scope = convert::scope(r.scope.clone(), via.as_ref())?;
            let res = match via {
                None => {
                    self.engine
                        .reserve_in(&by, tenant, quota, hold, scope, key, consistency)
                        .await?
                }
                Some(via) => {
                    let res = self
                        .engine
                        .reserve_shared(&by, tenant, quota, hold, key, consistency, via)
                        .await;
                    self.account(&by, tenant, via, &call, res)?
                }
            };
            Ok::<_, EngineError>(pb::ReserveResponse {
                decision: Some(convert::decision(res.decision)),
                reservation_id: res
                    .reservation_id
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                expires_at_unix_ms: res.expires_at_ms,
            })
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }

    async fn settle(
        &self,
        req: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let call = Call::start("Settle", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Reserve, &call)?;
            let id = convert::reservation_id(&r.reservation_id)?;
            let consistency = convert::consistency(r.consistency)?;
            let d = self
                .engine
                .settle(&by, tenant, id, r.actual, consistency)
                .await?;
            Ok::<_, EngineError>(convert::decision(d))
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let call = Call::start("Release", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Reserve, &call)?;
            let id = convert::reservation_id(&r.reservation_id)?;
            let consistency = convert::consistency(r.consistency)?;
            let released = self.engine.release(&by, tenant, id, consistency).await?;
            Ok::<_, EngineError>(pb::ReleaseResponse { released })
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }

    async fn get_usage(
        &self,
        req: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let call = Call::start("GetUsage", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::UsageRead, &call)?;
            let state = self.engine.tenant_as(&by, tenant).await?;
            let now = self.engine.now_ms();
            let tz = state.tenant.timezone;
            let quotas = if r.quota.is_empty() {
                state
                    .quotas
                    .iter()
                    .map(|(name, q)| convert::usage(name, q, tz, now))
                    .collect()
            } else {
                vec![convert::usage(&r.quota, state.quota(&r.quota)?, tz, now)]
            };
            Ok::<_, EngineError>(pb::GetUsageResponse {
                tenant_id: tenant.to_string(),
                quotas,
            })
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }

    async fn check_feature(
        &self,
        req: Request<pb::CheckFeatureRequest>,
    ) -> Result<Response<pb::CheckFeatureResponse>, Status> {
        let call = Call::start("CheckFeature", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Check, &call)?;
            let features = self.engine.catalog().features();
            let min = features.min_tier(&r.feature).map_err(|e| {
                EngineError::Quota(crate::quota::QuotaError::invalid("feature", e.to_string()))
            })?;
            let tier = self.engine.tenant_as(&by, tenant).await?.tenant.tier;
            let refused = features.requires(tier, &r.feature).err();
            metrics::counter!(crate::telemetry::FEATURE_CHECKS, "enabled" => if refused.is_none() { "true" } else { "false" })
                .increment(1);
            Ok::<_, EngineError>(pb::CheckFeatureResponse {
                enabled: refused.is_none(),
                tier: tier.to_string(),
                min_tier: min.to_string(),
                sla: features.sla(tier).as_str().to_string(),
                reason: refused.map(|e| e.to_string()).unwrap_or_default(),
            })
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }

    async fn evaluate_flags(
        &self,
        req: Request<pb::EvaluateFlagsRequest>,
    ) -> Result<Response<pb::EvaluateFlagsResponse>, Status> {
        let call = Call::start("EvaluateFlags", &req);
        let by = match self.auth.caller_of(&req).await {
            Ok(c) => c,
            Err(e) => return call.reply(Err(e)),
        };
        let r = req.into_inner();
        let go = async {
            let tenant = self.allowed(&by.caller, &r.tenant_id, Scope::Check, &call)?;
            let state = self.engine.tenant_as(&by, tenant).await?;
            let flag = |key: &str, e: Option<&crate::custom::Evaluation>| match e {
                Some(e) => {
                    metrics::counter!(crate::telemetry::FLAG_EVALUATIONS, "reason" => e.reason.as_str())
                        .increment(1);
                    pb::FlagEvaluation {
                        key: key.to_string(),
                        value_json: e.value.as_text().to_string(),
                        variant: e.variant.clone(),
                        reason: e.reason.as_str().to_string(),
                        error_code: String::new(),
                    }
                }
                None => pb::FlagEvaluation {
                    key: key.to_string(),
                    error_code: "FLAG_NOT_FOUND".to_string(),
                    ..Default::default()
                },
            };
            let flags = if r.keys.is_empty() {
                self.engine
                    .evaluate_flags(&state)
                    .iter()
                    .map(|(k, e)| flag(k, Some(e)))
                    .collect()
            } else {
                r.keys
                    .iter()
                    .map(|k| flag(k, self.engine.evaluate_flag(&state, k).as_ref()))
                    .collect()
            };
            Ok::<_, EngineError>(pb::EvaluateFlagsResponse { flags })
        };
        call.reply_for(&self.engine, r.tenant_id.parse().ok(), go.await)
    }
}
