//! The `Cluster` service as the client port serves it: the shard map and
//! status for any authenticated caller, node removal and leader moves for
//! platform operators, and nothing node-to-node. `Join`, `Forward` and `Elect` are
//! served only on the peer port, to the cluster's own nodes: on this port
//! they are refused with PERMISSION_DENIED whoever asks.
use crate::auth::Authenticator;
use crate::cluster::ClusterService;
use crate::error::EngineError;
use crate::model::{Caller, Principal};
use quotad_proto::cluster::cluster_server::{Cluster, ClusterServer};
use quotad_proto::cluster::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClientCluster {
    inner: ClusterService,
    auth: Arc<Authenticator>,
}

/// The client port's `Cluster` service over the node's.
pub fn server(inner: ClusterService, auth: Arc<Authenticator>) -> ClusterServer<ClientCluster> {
    ClusterServer::new(ClientCluster { inner, auth })
        .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(super::MAX_MESSAGE_BYTES)
}

impl ClientCluster {
    async fn caller<T>(&self, req: &Request<T>) -> Result<Arc<Principal>, Status> {
        self.auth.caller_of(req).await.map_err(Status::from)
    }

    /// A node-to-node call on the client port: refused once the caller is
    /// known (an unauthenticated one is told that first).
    async fn peer_only<T, R>(&self, req: &Request<T>, method: &str) -> Result<R, Status> {
        self.caller(req).await?;
        Err(Status::from(EngineError::Forbidden {
            reason: format!(
                "Cluster/{method} is node-to-node: it is served only on the peer port, to the cluster's nodes"
            ),
        }))
    }
}

#[tonic::async_trait]
impl Cluster for ClientCluster {
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        self.peer_only(&req, "Join").await
    }

    async fn shard_map(
        &self,
        req: Request<ShardMapRequest>,
    ) -> Result<Response<ShardMapReply>, Status> {
        self.caller(&req).await?;
        Ok(Response::new(self.inner.router()?.shard_map()))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<ClusterStatus>, Status> {
        self.caller(&req).await?;
        Ok(Response::new(self.inner.router()?.cluster_status()))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeReply>, Status> {
        match &self.caller(&req).await?.caller {
            Caller::Platform { operator: true, .. } | Caller::Anonymous => {
                let left = self
                    .inner
                    .router()?
                    .remove_node(req.into_inner().node_id)
                    .await
                    .map_err(Status::from)?;
                Ok(Response::new(RemoveNodeReply {
                    remaining_replicas: left as u32,
                    removed: left == 0,
                }))
            }
            other => Err(Status::from(EngineError::Forbidden {
                reason: format!(
                    "only a platform operator may remove a node ({} is not one)",
                    other.name()
                ),
            })),
        }
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderReply>, Status> {
        match &self.caller(&req).await?.caller {
            Caller::Platform { operator: true, .. } | Caller::Anonymous => {
                self.inner
                    .router()?
                    .answer_move_leader(req.into_inner())
                    .await
            }
            other => Err(Status::from(EngineError::Forbidden {
                reason: format!(
                    "only a platform operator may move a group's leader ({} is not one)",
                    other.name()
                ),
            })),
        }
    }

    async fn forward(
        &self,
        req: Request<ForwardMessage>,
    ) -> Result<Response<ForwardMessage>, Status> {
        self.peer_only(&req, "Forward").await
    }

    async fn elect(&self, req: Request<ElectRequest>) -> Result<Response<ElectReply>, Status> {
        self.peer_only(&req, "Elect").await
    }
}
