//! Envoy's rate limit service (`envoy.service.ratelimit.v3`), on the gRPC
//! port: each descriptor that names a tenant (see [`super::rls_config`])
//! spends `hits_addend` of its quota, and answers OK or OVER_LIMIT with the
//! remaining amount and the time until the quota's period resets. A
//! request's descriptors of one tenant are one all-or-nothing decision;
//! different tenants are decided independently.
use super::rls_config::RlsConfig;
use crate::Engine;
use crate::auth::Authenticator;
use crate::error::EngineError;
use crate::model::Consistency;
use crate::model::{Scope, TenantId};
use crate::quota::{Decision, QuotaError, Spend, validate};
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct EnvoyRls {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    config: RlsConfig,
}

pub fn server(
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    config: RlsConfig,
) -> RateLimitServiceServer<EnvoyRls> {
    RateLimitServiceServer::new(EnvoyRls {
        engine,
        auth,
        config,
    })
    .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
    .max_encoding_message_size(super::MAX_MESSAGE_BYTES)
}

fn ok_status() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        ..Default::default()
    }
}

impl EnvoyRls {
    /// A refusal reports the level that refused (a further window, the
    /// scope's rule), whose limit and reset are what Envoy's caller waits
    /// on; anything else, the quota.
    fn descriptor_status(&self, d: &Decision, quota: &str) -> DescriptorStatus {
        let now = self.engine.now_ms();
        let mut d = std::borrow::Cow::Borrowed(d);
        if let Some(l) = d.limited_by.0.as_deref().filter(|_| !d.allowed) {
            let (limit, remaining, reset_at_ms) = (l.limit, l.remaining, l.reset_at_ms);
            let d = d.to_mut();
            d.limit = limit;
            d.remaining = remaining;
            d.reset_at_ms = reset_at_ms;
        }
        DescriptorStatus {
            code: if d.allowed { Code::Ok } else { Code::OverLimit } as i32,
            current_limit: d.limit.map(|l| RateLimit {
                name: quota.to_string(),
                requests_per_unit: l.min(u64::from(u32::MAX)) as u32,
                // quotad's periods are calendar windows in the tenant's
                // timezone; `duration_until_reset` says when this one ends.
                unit: 0,
            }),
            limit_remaining: d
                .remaining
                .map_or(u32::MAX, |r| r.min(u64::from(u32::MAX)) as u32),
            duration_until_reset: d.reset_at_ms.map(|at| {
                let ms = (at - now).max(0);
                PbDuration {
                    seconds: ms / 1000,
                    nanos: ((ms % 1000) * 1_000_000) as i32,
                }
            }),
            quota: None,
        }
    }
}

#[tonic::async_trait]
impl RateLimitService for EnvoyRls {
    async fn should_rate_limit(
        &self,
        req: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        // Who asks (Envoy's credential, in its `initial_metadata`, or its
        // client certificate), before any work.
        let caller = self.auth.caller_of(&req).await.map_err(Status::from)?;
        let request_tag = req
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(128)
            .collect::<String>();
        let r = req.into_inner();
        let rule = self.config.domain(&r.domain).ok_or_else(|| {
            Status::from(EngineError::from(QuotaError::invalid(
                "domain",
                format!("no rate limit rules for domain {:?}", r.domain),
            )))
        })?;
        // Each descriptor either limits nothing (answered OK) or is one
        // spend of a tenant's; a tenant's spends are decided together.
        let mut statuses: Vec<Option<DescriptorStatus>> = vec![None; r.descriptors.len()];
        let mut by_tenant: Vec<(TenantId, Option<Consistency>, Vec<(usize, Spend)>)> = Vec::new();
        let mut request_id: Option<(usize, &str)> = None;
        // Descriptors through sharing grants, each decided on its own.
        let mut shared = Vec::new();
        for (i, desc) in r.descriptors.iter().enumerate() {
            let entries = desc
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()));
            if let Some(id) = rule.request_id(entries.clone()) {
                match request_id {
                    Some((j, other)) if other != id => {
                        return Err(Status::invalid_argument(format!(
                            "descriptors[{i}].{}: {id:?} differs from descriptors[{j}]'s {other:?}",
                            rule.request_id_key
                        )));
                    }
                    Some(_) => {}
                    None => request_id = Some((i, id)),
                }
            }
            let target = rule
                .target(entries)
                .map_err(|e| Status::from(EngineError::from(e)))?;
            let target = match target {
                // A sub-limit that cannot be a quota name limits nothing.
                Some(t) if !(t.sub_limit && validate::quota_name(&t.quota).is_err()) => t,
                _ => {
                    statuses[i] = Some(ok_status());
                    continue;
                }
            };
            if desc.is_negative_hits {
                // A refund: quotad spends only what it admitted, and gives
                // amounts back through reservations instead.
                return Err(Status::invalid_argument(format!(
                    "descriptors[{i}].is_negative_hits: refunds are not supported; use Reserve/Settle"
                )));
            }
            let amount = desc
                .hits_addend
                .map(|h| h.value)
                .unwrap_or(u64::from(r.hits_addend))
                .max(1);
            if amount > validate::MAX_AMOUNT {
                return Err(Status::invalid_argument(format!(
                    "descriptors[{i}].hits_addend: {amount} is larger than the maximum of {}",
                    validate::MAX_AMOUNT
                )));
            }
            if let Some(via) = target.via {
                shared.push((
                    i,
                    target.tenant,
                    target.consistency,
                    target.quota,
                    amount,
                    via,
                ));
                continue;
            }
            let spend = Spend {
                quota: target.quota,
                amount,
                optional: target.sub_limit,
                scope: crate::format::Added(target.scope),
            };
            match by_tenant.iter_mut().find(|(t, ..)| *t == target.tenant) {
                Some((_, _, spends)) => spends.push((i, spend)),
                None => by_tenant.push((target.tenant, target.consistency, vec![(i, spend)])),
            }
        }
        // Every tenant the request spends from, allowed before any spends.
        for (_, tenant, ..) in &shared {
            self.auth
                .authorize(&caller.caller, tenant, Scope::Increment, &request_tag)
                .map_err(Status::from)?;
        }
        for (tenant, ..) in &by_tenant {
            self.auth
                .authorize(&caller.caller, tenant, Scope::Increment, &request_tag)
                .map_err(Status::from)?;
        }
        let key = request_id.map(|(_, id)| id.to_string());
        // Tenants are decided independently and in parallel: one tenant's
        // refusal does not undo another's spend (each pays for what it
        // admitted); the request id makes a retry spend nothing twice.
        let decided = futures::future::join_all(by_tenant.into_iter().map(
            |(tenant, consistency, spends)| {
                let (key, caller) = (key.clone(), &caller);
                async move {
                    let (indexes, spends): (Vec<usize>, Vec<Spend>) = spends.into_iter().unzip();
                    let quotas: Vec<String> = spends.iter().map(|s| s.quota.clone()).collect();
                    let all = self
                        .engine
                        .increment_all(caller, tenant, spends, key, consistency)
                        .await;
                    (indexes, quotas, all)
                }
            },
        ))
        .await;
        // The most constrained limited descriptor, for the response headers.
        let mut tightest: Option<DescriptorStatus> = None;
        for (indexes, quotas, all) in decided {
            let all = all.map_err(Status::from)?;
            for ((i, quota), d) in indexes.into_iter().zip(quotas).zip(all.decisions) {
                let Some(d) = d else {
                    statuses[i] = Some(ok_status());
                    continue;
                };
                let s = self.descriptor_status(&d, &quota);
                if s.current_limit.is_some()
                    && tightest
                        .as_ref()
                        .is_none_or(|t| s.limit_remaining < t.limit_remaining)
                {
                    tightest = Some(s.clone());
                }
                statuses[i] = Some(s);
            }
        }
        for (i, tenant, consistency, quota, amount, via) in shared {
            // With the request's id, a retry spends nothing again.
            let key = key.as_ref().map(|k| format!("{k}:{i}"));
            let d = self
                .engine
                .increment_shared(
                    &caller,
                    tenant,
                    &quota,
                    amount as i64,
                    key,
                    consistency,
                    via,
                )
                .await;
            let d = match d {
                Ok(d) => d,
                Err(e) => {
                    if e.code() == crate::error_code::ErrorCode::PermissionDenied
                        && e.field() == Some("sharing_policy_id")
                    {
                        self.auth.sharing_refused(
                            &caller.caller,
                            tenant,
                            via.policy,
                            &e.to_string(),
                            &request_tag,
                        );
                    }
                    return Err(Status::from(e));
                }
            };
            let s = self.descriptor_status(&d, &quota);
            if s.current_limit.is_some()
                && tightest
                    .as_ref()
                    .is_none_or(|t| s.limit_remaining < t.limit_remaining)
            {
                tightest = Some(s.clone());
            }
            statuses[i] = Some(s);
        }
        let statuses: Vec<DescriptorStatus> = statuses
            .into_iter()
            .map(|s| s.unwrap_or_else(ok_status))
            .collect();
        let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
        let response_headers_to_add = tightest
            .map(|t| {
                let header = |key: &str, value: String| HeaderValue {
                    key: key.into(),
                    value,
                    raw_value: Vec::new(),
                };
                let mut h = vec![
                    header(
                        "x-ratelimit-limit",
                        t.current_limit
                            .map(|l| l.requests_per_unit.to_string())
                            .unwrap_or_default(),
                    ),
                    header("x-ratelimit-remaining", t.limit_remaining.to_string()),
                ];
                if let Some(reset) = t.duration_until_reset {
                    h.push(header("x-ratelimit-reset", reset.seconds.to_string()));
                }
                h
            })
            .unwrap_or_default();
        Ok(Response::new(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            response_headers_to_add,
            ..Default::default()
        }))
    }
}
