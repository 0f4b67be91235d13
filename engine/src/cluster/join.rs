//! Joining a cluster: a new node asks a member to admit it, and learns its
//! id and the cluster's shard count.
use super::membership::NodeInfo;
use crate::error::EngineError;
use crate::peer_auth::{ClusterKey, JOIN_TOKEN_HEADER};
use crate::quota::QuotaError;
use crate::raft::NodeId;
use quotad_proto::cluster::JoinRequest;
use quotad_proto::cluster::cluster_client::ClusterClient;
use std::time::{Duration, Instant};

/// How long one join request waits for the seed's answer.
const JOIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Ask the member at `seed` (its peer address) to admit this node,
/// presenting `join_token`; returns the node's id, the cluster's shard
/// count and its key.
pub async fn join(
    seed: &str,
    me: &NodeInfo,
    join_token: Option<&str>,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<(NodeId, u64, ClusterKey), EngineError> {
    let Some(token) = join_token else {
        return Err(QuotaError::invalid(
            "join_token",
            "joining a cluster needs its join token (--join-token or QUOTAD_JOIN_TOKEN)",
        )
        .into());
    };
    let token: tonic::metadata::MetadataValue<tonic::metadata::Ascii> = token
        .parse()
        .map_err(|_| EngineError::from(QuotaError::invalid("join_token", "not printable ASCII")))?;
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
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut endpoint =
                tonic::transport::Endpoint::from_shared(format!("{scheme}://{seed}"))
                    .map_err(|e| format!("bad seed address {seed:?}: {e}"))?
                    .connect_timeout(Duration::from_secs(2));
            if let Some(tls) = tls {
                endpoint = endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| format!("TLS to {seed}: {e}"))?;
            }
            let mut client = ClusterClient::connect(endpoint)
                .await
                .map_err(|e| format!("cannot reach {seed}: {e}"))?;
            let mut request = tonic::Request::new(JoinRequest {
                peer_addr: me.peer_addr.clone(),
                grpc_addr: me.grpc_addr.clone(),
                http_addr: me.http_addr.clone(),
                labels: me.labels.clone().into_iter().collect(),
                reserved: me.reserved,
            });
            request
                .metadata_mut()
                .insert(JOIN_TOKEN_HEADER, token.clone());
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
            Ok(r) => {
                let key = ClusterKey::from_bytes(&r.cluster_key).ok_or_else(|| {
                    EngineError::JoinFailed {
                        seed: seed.to_string(),
                        reason: "the seed sent no cluster key (a node of an older release?)".into(),
                    }
                })?;
                return Ok((r.node_id, r.shards, key));
            }
            // A wrong or missing token does not get better by retrying.
            Err(reason) if reason.contains("join token") || reason.contains("--join-token") => {
                return Err(EngineError::JoinFailed {
                    seed: seed.to_string(),
                    reason,
                });
            }
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
