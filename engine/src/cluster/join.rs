//! Joining a cluster: a new node asks a member to admit it, and learns its
//! id and the cluster's shard count.
use super::membership::NodeInfo;
use crate::error::EngineError;
use crate::quota::QuotaError;
use crate::raft::NodeId;
use quotad_proto::cluster::JoinRequest;
use quotad_proto::cluster::cluster_client::ClusterClient;
use std::time::{Duration, Instant};

/// How long one join request waits for the seed's answer.
const JOIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Ask the member at `seed` (its peer address) to admit this node; returns
/// the node's id and the cluster's shard count.
pub async fn join(seed: &str, me: &NodeInfo) -> Result<(NodeId, u64), EngineError> {
    if me.peer_addr.is_empty() {
        return Err(QuotaError::invalid(
            "advertise_peer_addr",
            "joining a cluster needs this node's peer address",
        )
        .into());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{seed}"))
                .map_err(|e| format!("bad seed address {seed:?}: {e}"))?
                .connect_timeout(Duration::from_secs(2));
            let mut client = ClusterClient::connect(endpoint)
                .await
                .map_err(|e| format!("cannot reach {seed}: {e}"))?;
            let request = JoinRequest {
                peer_addr: me.peer_addr.clone(),
                grpc_addr: me.grpc_addr.clone(),
                http_addr: me.http_addr.clone(),
            };
            // A seed that accepts but never answers costs one attempt, not
            // the whole start. It may be waiting out an election in the
            // meta group (up to its 10 s route timeout) before it answers.
            tokio::time::timeout(JOIN_ATTEMPT_TIMEOUT, client.join(request))
                .await
                .map_err(|_| {
                    format!(
                        "{seed} did not answer the join within {} s",
                        JOIN_ATTEMPT_TIMEOUT.as_secs()
                    )
                })?
                .map(|r| r.into_inner())
                .map_err(|s| format!("{seed} refused the join: {}", s.message()))
        };
        match attempt.await {
            Ok(r) => return Ok((r.node_id, r.shards)),
            Err(reason) if Instant::now() >= deadline => {
                return Err(EngineError::JoinFailed {
                    seed: seed.to_string(),
                    reason,
                });
            }
            Err(why) => {
                tracing::info!(%why, "join: retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
