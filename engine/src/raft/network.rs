//! Transport between replicas: openraft's RPCs over tonic, one port and one
//! lazily-opened connection per peer for all groups, the group id in every
//! message. Payloads are openraft's own types, encoded with postcard.
//!
//! A single-node deployment has no peers: every group has one voter and
//! openraft never sends an RPC.
use super::type_config::{NodeId, TypeConfig};
use crate::clock::SharedClock;
use crate::clock_skew::{CLOCK_HEADER, PeerClocks};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use quotad_proto::raft::RaftMessage;
use quotad_proto::raft::raft_transport_client::RaftTransportClient;
use quotad_proto::raft::raft_transport_server::{RaftTransport, RaftTransportServer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tonic::transport::{Channel, Endpoint};

/// Connections to peers, by address, shared by every group of a node.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<RwLock<HashMap<String, Channel>>>,
    source_ip: Option<std::net::IpAddr>,
    /// Where round trips report the peers' clocks (see `clock_skew`).
    clocks: Option<Arc<PeerClocks>>,
}

impl Peers {
    /// Connections leave from `ip` (else the OS picks).
    pub fn with_source_ip(ip: Option<std::net::IpAddr>) -> Self {
        Peers {
            source_ip: ip,
            ..Default::default()
        }
    }

    /// Measure peers' clocks over every RPC (see `clock_skew`).
    pub fn with_clocks(mut self, clocks: Arc<PeerClocks>) -> Self {
        self.clocks = Some(clocks);
        self
    }

    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self
            .channels
            .read()
            .map_err(|_| "peer table poisoned")?
            .get(addr)
        {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .local_address(self.source_ip)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        self.channels
            .write()
            .map_err(|_| "peer table poisoned")?
            .insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// openraft's network factory for one group.
#[derive(Clone)]
pub struct GroupNetwork {
    pub group: u64,
    pub peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            group: self.group,
            target,
            channel: self.peers.channel(&node.addr),
            clocks: self.peers.clocks.clone(),
        }
    }
}

pub struct PeerClient {
    group: u64,
    target: NodeId,
    channel: Result<Channel, String>,
    clocks: Option<Arc<PeerClocks>>,
}

fn unreachable<E: std::error::Error>(
    target: NodeId,
    why: impl std::fmt::Display,
) -> RPCError<NodeId, BasicNode, E> {
    let e = std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("node {target}: {why}"),
    );
    RPCError::Unreachable(Unreachable::new(&e))
}

impl PeerClient {
    /// Send one message; the reply is `Result<Resp, Err>` encoded by the peer.
    async fn call<Req, Resp, Err>(
        &mut self,
        rpc: &'static str,
        req: &Req,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let channel = match &self.channel {
            Ok(c) => c.clone(),
            Err(why) => return Err(unreachable(self.target, why)),
        };
        let payload =
            crate::format::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut msg = tonic::Request::new(RaftMessage {
            group: self.group,
            payload,
        });
        let sent_ms = self.clocks.as_ref().map(|c| c.raw.now_ms());
        if let Some(ms) = sent_ms {
            msg.metadata_mut().insert(CLOCK_HEADER, ms.into());
        }
        let mut client = RaftTransportClient::new(channel).max_decoding_message_size(64 << 20);
        let reply = match rpc {
            "append_entries" => client.append_entries(msg).await,
            "vote" => client.vote(msg).await,
            _ => client.install_snapshot(msg).await,
        }
        .map_err(|s| match s.code() {
            tonic::Code::Unavailable => unreachable(self.target, s.message()),
            _ => RPCError::Network(NetworkError::new(&std::io::Error::other(s.to_string()))),
        })?;
        if let (Some(clocks), Some(sent_ms)) = (&self.clocks, sent_ms)
            && let Some(peer_ms) = reply
                .metadata()
                .get(CLOCK_HEADER)
                .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
        {
            clocks.observe(self.target, sent_ms, peer_ms, clocks.raw.now_ms());
        }
        let decoded: Result<Resp, Err> = crate::format::decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("append_entries", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("install_snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("vote", &rpc).await
    }
}

/// The receiving side: hands each message to the node's group it names.
#[derive(Clone, Default)]
pub struct TransportService {
    groups: Arc<RwLock<HashMap<u64, Raft<TypeConfig>>>>,
    /// This node's clock, sent back with every reply (see `clock_skew`).
    clock: Arc<std::sync::OnceLock<SharedClock>>,
}

impl TransportService {
    pub fn register(&self, group: u64, raft: Raft<TypeConfig>) {
        if let Ok(mut g) = self.groups.write() {
            g.insert(group, raft);
        }
    }

    /// Answer every RPC with this node's (unbounded) clock.
    pub fn set_clock(&self, clock: SharedClock) {
        let _ = self.clock.set(clock);
    }

    pub fn server(self) -> RaftTransportServer<TransportService> {
        RaftTransportServer::new(self).max_decoding_message_size(64 << 20)
    }

    fn group(&self, id: u64) -> Result<Raft<TypeConfig>, tonic::Status> {
        self.groups
            .read()
            .ok()
            .and_then(|g| g.get(&id).cloned())
            .ok_or_else(|| {
                tonic::Status::not_found(format!("this node does not serve raft group {id}"))
            })
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, tonic::Status> {
    crate::format::decode(payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable raft message: {e}")))
}

impl TransportService {
    fn encode<T: Serialize>(
        &self,
        group: u64,
        v: &T,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let payload = crate::format::encode(v)
            .map_err(|e| tonic::Status::internal(format!("cannot encode reply: {e}")))?;
        let mut reply = tonic::Response::new(RaftMessage { group, payload });
        if let Some(clock) = self.clock.get() {
            reply
                .metadata_mut()
                .insert(CLOCK_HEADER, clock.now_ms().into());
        }
        Ok(reply)
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&m.payload)?;
        let reply = self.group(m.group)?.append_entries(rpc).await;
        self.encode(m.group, &reply)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let rpc: VoteRequest<NodeId> = decode(&m.payload)?;
        let reply = self.group(m.group)?.vote(rpc).await;
        self.encode(m.group, &reply)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&m.payload)?;
        let reply = self.group(m.group)?.install_snapshot(rpc).await;
        self.encode(m.group, &reply)
    }
}
