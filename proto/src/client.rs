//! A Rust client for a quotad cluster that routes each call straight to the
//! node leading the tenant's shard group.
//!
//! It keeps the cluster's shard map (groups, their leaders' gRPC addresses,
//! pinned tenants), computes a tenant's group the way the nodes do, and
//! sends the call there. When leadership moves it follows the
//! `quotad-leader` hint on answers, or refreshes the map, and retries:
//! UNAVAILABLE means the call was not applied; UNKNOWN (outcome unknown)
//! is retried only for increments, which always carry an idempotency key
//! (one is generated when the caller gives none), so a retry counts once.
use crate::cluster::ShardMapRequest;
use crate::cluster::cluster_client::ClusterClient;
use crate::credential::{AuthChannel, Bearer};
use crate::v1 as pb;
use crate::v1::quota_service_client::QuotaServiceClient;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

/// Response metadata naming the gRPC address of the group's leader.
pub const LEADER_HINT: &str = "quotad-leader";

#[derive(Debug, Clone, Default)]
struct RouteMap {
    shards: u64,
    /// group -> leader's gRPC address ("host:port").
    leaders: HashMap<u64, String>,
    pins: HashMap<u128, u64>,
}

/// How long a call keeps retrying across leader changes.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub budget: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(15),
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        }
    }
}

pub struct QuotaClient {
    seeds: Vec<String>,
    /// Which seed to try next when a group's leader is unknown.
    next_seed: std::sync::atomic::AtomicUsize,
    map: RwLock<RouteMap>,
    channels: Mutex<HashMap<String, Channel>>,
    retry: RetryPolicy,
    bearer: Bearer,
    /// TLS for every node (the shard map names them by host:port).
    tls: Option<ClientTlsConfig>,
}

fn url(addr: &str, tls: bool) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

impl QuotaClient {
    /// Connect through any of `seeds` (client gRPC addresses of nodes) and
    /// load the shard map; every call carries `bearer`.
    pub async fn connect(seeds: Vec<String>, bearer: Bearer) -> Result<QuotaClient, Status> {
        QuotaClient::connect_tls(seeds, bearer, None).await
    }

    /// [`QuotaClient::connect`] to nodes serving TLS: `tls` says whom to
    /// trust and, where client certificates are required, which to present.
    pub async fn connect_tls(
        seeds: Vec<String>,
        bearer: Bearer,
        tls: Option<ClientTlsConfig>,
    ) -> Result<QuotaClient, Status> {
        if seeds.is_empty() {
            return Err(Status::invalid_argument(
                "seeds: give at least one node address",
            ));
        }
        let client = QuotaClient {
            seeds,
            next_seed: std::sync::atomic::AtomicUsize::new(0),
            map: RwLock::new(RouteMap::default()),
            channels: Mutex::new(HashMap::new()),
            retry: RetryPolicy::default(),
            bearer,
            tls,
        };
        client.refresh().await?;
        Ok(client)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn channel(&self, addr: &str) -> Result<AuthChannel, Status> {
        self.plain_channel(addr).map(|c| self.bearer.on(c))
    }

    fn plain_channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().expect("channel table");
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let mut endpoint = Endpoint::from_shared(url(addr, self.tls.is_some()))
            .map_err(|e| Status::invalid_argument(format!("address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| Status::invalid_argument(format!("TLS for {addr:?}: {e}")))?;
        }
        let c = endpoint.connect_lazy();
        channels.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Reload the shard map from the first seed or known leader that answers.
    pub async fn refresh(&self) -> Result<(), Status> {
        let mut candidates: Vec<String> = self.seeds.clone();
        if let Ok(m) = self.map.read() {
            candidates.extend(m.leaders.values().cloned());
        }
        candidates.dedup();
        let mut last = Status::unavailable("no node answered");
        for addr in candidates {
            let mut c = ClusterClient::new(self.channel(&addr)?);
            match c.shard_map(ShardMapRequest {}).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let map = RouteMap {
                        shards: r.shards,
                        leaders: r
                            .groups
                            .into_iter()
                            .filter(|g| !g.leader_grpc_addr.is_empty())
                            .map(|g| (g.group, g.leader_grpc_addr))
                            .collect(),
                        pins: r
                            .pins
                            .into_iter()
                            .filter_map(|p| parse_uuid(&p.tenant_id).map(|t| (t, p.group)))
                            .collect(),
                    };
                    *self.map.write().expect("route map") = map;
                    return Ok(());
                }
                Err(s) => last = s,
            }
        }
        Err(last)
    }

    /// The group `tenant` lives in, and the address to call for it.
    pub fn route(&self, tenant: &str) -> (u64, String) {
        let m = self.map.read().expect("route map");
        let group = match parse_uuid(tenant) {
            Some(t) if m.shards > 0 => m
                .pins
                .get(&t)
                .copied()
                .unwrap_or_else(|| crate::routing::shard_of(t, m.shards)),
            _ => 0,
        };
        let addr = m.leaders.get(&group).cloned().unwrap_or_else(|| {
            // Any live node forwards to the leader (waiting out an
            // election), so rotate through the seeds.
            let i = self
                .next_seed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.seeds[i % self.seeds.len()].clone()
        });
        (group, addr)
    }

    fn learn(&self, group: u64, meta: &tonic::metadata::MetadataMap) {
        if let Some(hint) = meta.get(LEADER_HINT).and_then(|v| v.to_str().ok())
            && let Ok(mut m) = self.map.write()
        {
            m.leaders.insert(group, hint.to_string());
        }
    }

    /// Run `call` against the tenant's leader, following leader changes.
    async fn routed<Req, Resp, F, Fut>(
        &self,
        tenant: &str,
        retry_unknown: bool,
        req: Req,
        call: F,
    ) -> Result<Resp, Status>
    where
        Req: Clone,
        F: Fn(QuotaServiceClient<AuthChannel>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let deadline = Instant::now() + self.retry.budget;
        let mut backoff = self.retry.first_backoff;
        loop {
            let (group, addr) = self.route(tenant);
            let client = QuotaServiceClient::new(self.channel(&addr)?);
            let status = match call(client, req.clone()).await {
                Ok(resp) => {
                    self.learn(group, resp.metadata());
                    return Ok(resp.into_inner());
                }
                Err(s) => s,
            };
            let retry = match status.code() {
                Code::Unavailable => true,
                Code::Unknown => retry_unknown,
                _ => false,
            };
            if !retry || Instant::now() + backoff >= deadline {
                return Err(status);
            }
            if status.metadata().get(LEADER_HINT).is_some() {
                self.learn(group, status.metadata());
            } else {
                // Leader unknown or gone: forget it, and go through another
                // node, which forwards to whichever leader comes next.
                if let Ok(mut m) = self.map.write() {
                    m.leaders.remove(&group);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    pub async fn check(&self, req: pb::CheckRequest) -> Result<pb::Decision, Status> {
        let tenant = req.tenant_id.clone();
        self.routed(
            &tenant,
            true,
            req,
            |mut c, r| async move { c.check(r).await },
        )
        .await
    }

    /// Spend if admitted. Without an idempotency key one is generated, so
    /// retries across a failover count once.
    pub async fn increment(&self, mut req: pb::IncrementRequest) -> Result<pb::Decision, Status> {
        if req.idempotency_key.is_empty() {
            req.idempotency_key = fresh_key();
        }
        let tenant = req.tenant_id.clone();
        self.routed(&tenant, true, req, |mut c, r| async move {
            c.increment(r).await
        })
        .await
    }

    pub async fn get_usage(
        &self,
        req: pb::GetUsageRequest,
    ) -> Result<pb::GetUsageResponse, Status> {
        let tenant = req.tenant_id.clone();
        self.routed(&tenant, true, req, |mut c, r| async move {
            c.get_usage(r).await
        })
        .await
    }
}

fn parse_uuid(s: &str) -> Option<u128> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// A key unique enough for idempotency (process, time, counter).
fn fresh_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("qc-{}-{t:x}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_parse_with_or_without_dashes() {
        assert_eq!(parse_uuid("00000000-0000-0000-0000-000000000001"), Some(1));
        assert_eq!(
            parse_uuid("ffffffffffffffffffffffffffffffff"),
            Some(u128::MAX)
        );
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(fresh_key(), fresh_key());
    }
}
