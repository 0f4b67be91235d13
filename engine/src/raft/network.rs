//! Transport between replicas: openraft's RPCs over tonic, one port and one
//! lazily-opened connection per peer for all groups, the group id in every
//! message. Payloads are openraft's own types, encoded with postcard.
//!
//! A single-node deployment has no peers: every group has one voter and
//! openraft never sends an RPC.
//!
//! Every call has a deadline (openraft's time-to-live for Raft RPCs, the
//! forward timeout for forwards) and every connection HTTP/2 keepalive, so a
//! peer that accepts connections but never answers (a hung process, a
//! black-holed path) costs a caller its deadline, not the kernel's minutes.
//!
//! Size bounds, from the receiver's limit down:
//! - a peer decodes messages of up to [`MAX_MESSAGE_BYTES`] (64 MiB);
//! - an AppendEntries of several entries is sent only if it encodes within
//!   [`MAX_APPEND_BYTES`] (8 MiB); above it openraft is told the payload is
//!   too large, with how many entries fit, and resends fewer at once;
//! - the log store hands replication at most 2 MiB of entries at a time
//!   (`log_store::REPLICATION_READ_BYTES`), so that refusal is a backstop;
//! - one entry is always sent on its own, whatever its size. A group-commit
//!   entry holds at most max(1 MiB, one operation) (see `shard::batcher`),
//!   and one operation at most about what one client request can carry
//!   (5 MiB of gRPC, 2 MiB of REST body): far below the receiver's limit.
//!   Not bounded here: a `MoveIn` entry carries a whole tenant (its
//!   idempotency keys, audit log and usage history), as large as that is.
use super::type_config::{NodeId, TypeConfig};
use crate::clock::SharedClock;
use crate::clock_skew::{CLOCK_HEADER, PeerClocks};
use crate::peer_auth::{PeerAuth, PeerChannel};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
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
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The largest message a node decodes from a peer (Raft or forward).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The largest AppendEntries of more than one entry a node sends; an eighth
/// of what the receiver accepts, and small enough to be sent, decoded and
/// made durable within openraft's deadline for it (the heartbeat interval).
pub const MAX_APPEND_BYTES: usize = 8 << 20;

/// How long a new connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP/2 pings on every peer connection, idle or not: a peer that stops
/// answering them within [`KEEPALIVE_TIMEOUT`] has its connection closed
/// (failing the calls on it at once), and the next call opens a new one.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to peers, by address, shared by every group of a node.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<RwLock<HashMap<String, Channel>>>,
    source_ip: Option<std::net::IpAddr>,
    /// Where round trips report the peers' clocks (see `clock_skew`).
    clocks: Option<Arc<PeerClocks>>,
    /// This node's peer credential, added to every call.
    auth: Arc<PeerAuth>,
    /// Mutual TLS to peers, when the cluster runs it.
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Peers {
    /// Connections leave from `ip` (else the OS picks).
    pub fn with_source_ip(ip: Option<std::net::IpAddr>) -> Self {
        Peers {
            source_ip: ip,
            ..Default::default()
        }
    }

    /// Whether `node` answered a Raft call within `d` (always, when this
    /// node does not measure its peers).
    pub fn heard_from(&self, node: u64, d: std::time::Duration) -> bool {
        self.clocks.as_ref().is_none_or(|c| c.heard_within(node, d))
    }

    /// Measure peers' clocks over every RPC (see `clock_skew`).
    pub fn with_clocks(mut self, clocks: Arc<PeerClocks>) -> Self {
        self.clocks = Some(clocks);
        self
    }

    /// Reach peers over TLS with `tls` (`None`: plaintext).
    pub fn with_tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// Send `auth`'s credential with every call.
    pub fn with_auth(mut self, auth: Arc<PeerAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// A connection to the peer at `addr` whose calls carry this node's
    /// peer credential.
    pub(crate) fn channel(&self, addr: &str) -> Result<PeerChannel, String> {
        self.plain_channel(addr)
            .map(|c| tonic::service::interceptor::InterceptedService::new(c, self.auth.outgoing()))
    }

    fn plain_channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self
            .channels
            .read()
            .map_err(|_| "peer table poisoned")?
            .get(addr)
        {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("bad peer address {addr:?}: {e}"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS to {addr}: {e}"))?;
        }
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
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
    /// This node: the sender, as openraft's timeout errors name it.
    pub me: NodeId,
    pub peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            group: self.group,
            me: self.me,
            target,
            channel: self.peers.channel(&node.addr),
            clocks: self.peers.clocks.clone(),
        }
    }
}

pub struct PeerClient {
    group: u64,
    me: NodeId,
    target: NodeId,
    channel: Result<PeerChannel, String>,
    clocks: Option<Arc<PeerClocks>>,
}

/// Which RPC a message is.
#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl From<Rpc> for openraft::network::RPCTypes {
    fn from(r: Rpc) -> Self {
        match r {
            Rpc::AppendEntries => openraft::network::RPCTypes::AppendEntries,
            Rpc::Vote => openraft::network::RPCTypes::Vote,
            Rpc::InstallSnapshot => openraft::network::RPCTypes::InstallSnapshot,
        }
    }
}

/// How many of `entries` entries to send at once when all of them encode
/// to `bytes`, above `limit`: in proportion, at least one and fewer than
/// `entries`, so openraft's retries shrink the request until it fits.
fn entries_hint(entries: usize, bytes: usize, limit: usize) -> u64 {
    let fit = (entries as u128 * limit as u128 / bytes.max(1) as u128) as u64;
    fit.clamp(1, (entries as u64).saturating_sub(1).max(1))
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

/// Whether an error of type `E` is in `status`'s chain of causes: how tonic
/// tells a failed connection ([`tonic::ConnectError`]) or an expired
/// deadline ([`tonic::TimeoutExpired`]) from other failures.
pub(crate) fn caused_by<E: std::error::Error + 'static>(status: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(e) = cause {
        if e.is::<E>() {
            return true;
        }
        cause = e.source();
    }
    false
}

// openraft's error type is large; its trait signatures fix it.
#[allow(clippy::result_large_err)]
fn encode_request<Req: Serialize, Err: std::error::Error>(
    req: &Req,
) -> Result<Vec<u8>, RPCError<NodeId, BasicNode, Err>> {
    crate::format::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl PeerClient {
    /// Send one encoded message and wait for the reply, at most `ttl`; the
    /// reply is `Result<Resp, Err>` encoded by the peer.
    async fn call<Resp, Err>(
        &mut self,
        rpc: Rpc,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let channel = match &self.channel {
            Ok(c) => c.clone(),
            Err(why) => return Err(unreachable(self.target, why)),
        };
        let mut msg = tonic::Request::new(RaftMessage {
            group: self.group,
            payload,
        });
        let sent_ms = self.clocks.as_ref().map(|c| c.raw.now_ms());
        if let Some(ms) = sent_ms {
            msg.metadata_mut().insert(CLOCK_HEADER, ms.into());
        }
        // No grpc-timeout for the peer: openraft gives an append only a
        // heartbeat interval (100 ms), and a follower that finishes an
        // append after the leader stopped waiting has still made progress
        // for the retry. Cancelling it there instead livelocks replication
        // under load (every retry cut off half-way). The sender's wait is
        // bounded below.
        let mut client =
            RaftTransportClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let sent = async {
            match rpc {
                Rpc::AppendEntries => client.append_entries(msg).await,
                Rpc::Vote => client.vote(msg).await,
                Rpc::InstallSnapshot => client.install_snapshot(msg).await,
            }
        };
        // Enforced here as well: tonic starts the header's clock only once
        // a connection is ready, and openraft's own timer (if any) should
        // see this error, which names the RPC and the peer.
        let timeout = || {
            RPCError::Timeout(Timeout {
                action: rpc.into(),
                id: self.me,
                target: self.target,
                timeout: ttl,
            })
        };
        let reply = tokio::time::timeout(ttl, sent)
            .await
            .map_err(|_| timeout())?
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable => unreachable(self.target, s.message()),
                // The connection broke (the peer died mid-call): as
                // unreachable, so openraft backs off instead of retrying
                // (and logging) at once, thousands of times a second.
                _ if caused_by::<tonic::transport::Error>(&s)
                    || caused_by::<std::io::Error>(&s) =>
                {
                    unreachable(self.target, s.message())
                }
                _ if caused_by::<tonic::TimeoutExpired>(&s) => timeout(),
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
    /// After an unreachable peer: wait 100 ms, doubling to 3 s, between
    /// tries (openraft drops the backoff at the first success), so a dead
    /// peer costs a few calls a second per group, not a busy loop.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(
            (0..)
                .map(|i: u32| Duration::from_millis(100u64.saturating_mul(1 << i.min(5))))
                .map(|d| d.min(Duration::from_secs(3))),
        )
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let payload = encode_request(&rpc)?;
        // Too large for one request: openraft resends fewer entries at once
        // (an error it retries at once, unlike a network error, which would
        // resend the same payload forever). One entry always goes: there is
        // nothing smaller to send, and it is within the receiver's limit
        // (see the module comment).
        if payload.len() > MAX_APPEND_BYTES && rpc.entries.len() > 1 {
            let hint = entries_hint(rpc.entries.len(), payload.len(), MAX_APPEND_BYTES);
            tracing::debug!(
                group = self.group,
                target = self.target,
                entries = rpc.entries.len(),
                bytes = payload.len(),
                hint,
                "append entries too large for one request; splitting"
            );
            return Err(PayloadTooLarge::new_entries_hint(hint).into());
        }
        self.call(Rpc::AppendEntries, payload, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let payload = encode_request(&rpc)?;
        self.call(Rpc::InstallSnapshot, payload, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let payload = encode_request(&rpc)?;
        self.call(Rpc::Vote, payload, option.hard_ttl()).await
    }
}

/// The receiving side: hands each message to the node's group it names,
/// if it comes from a node of the cluster.
#[derive(Clone, Default)]
pub struct TransportService {
    groups: Arc<RwLock<HashMap<u64, Raft<TypeConfig>>>>,
    /// This node's clock, sent back with every reply (see `clock_skew`).
    clock: Arc<std::sync::OnceLock<SharedClock>>,
    /// Who may call: the cluster's nodes (shared with the node's
    /// `Cluster` service and its outgoing `Peers`).
    auth: Arc<PeerAuth>,
}

impl TransportService {
    /// A transport answering only callers `auth` accepts.
    pub fn with_auth(auth: Arc<PeerAuth>) -> Self {
        TransportService {
            auth,
            ..Default::default()
        }
    }

    pub fn peer_auth(&self) -> &Arc<PeerAuth> {
        &self.auth
    }

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
        RaftTransportServer::new(self).max_decoding_message_size(MAX_MESSAGE_BYTES)
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
        self.auth.check_peer(req.metadata())?;
        let m = req.into_inner();
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&m.payload)?;
        let reply = self.group(m.group)?.append_entries(rpc).await;
        self.encode(m.group, &reply)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        self.auth.check_peer(req.metadata())?;
        let m = req.into_inner();
        let rpc: VoteRequest<NodeId> = decode(&m.payload)?;
        let reply = self.group(m.group)?.vote(rpc).await;
        self.encode(m.group, &reply)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        self.auth.check_peer(req.metadata())?;
        let m = req.into_inner();
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&m.payload)?;
        let reply = self.group(m.group)?.install_snapshot(rpc).await;
        self.encode(m.group, &reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Command, MetaOp};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use std::time::Instant;

    const GROUP: u64 = 3;

    /// An entry of about `bytes` bytes (a slug claim with a long slug).
    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Meta(MetaOp::ClaimSlug {
                slug: format!("{index}-{}", "s".repeat(bytes)),
                tenant: uuid::Uuid::from_u128(1),
                at_ms: 0,
                replacing: None,
            })),
        }
    }

    fn append(entries: Vec<Entry<TypeConfig>>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        }
    }

    /// The cluster key of these tests' sender and receivers.
    fn test_key() -> Arc<PeerAuth> {
        static KEY: std::sync::OnceLock<Arc<PeerAuth>> = std::sync::OnceLock::new();
        KEY.get_or_init(|| Arc::new(PeerAuth::with_key(crate::peer_auth::ClusterKey::random())))
            .clone()
    }

    async fn client_to(addr: &str) -> PeerClient {
        let mut net = GroupNetwork {
            group: GROUP,
            me: 1,
            peers: Peers::default().with_auth(test_key()),
        };
        net.new_client(2, &BasicNode::new(addr)).await
    }

    /// A real peer port serving no group: whatever reaches it is decoded
    /// and answered "not served here".
    async fn empty_peer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TransportService::with_auth(test_key()).server())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    /// A peer that accepts connections and never reads or answers: a hung
    /// process, or a path that drops packets.
    async fn black_hole() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    #[test]
    fn the_entries_hint_shrinks_in_proportion_and_stays_between_one_and_fewer() {
        assert_eq!(entries_hint(300, 30 << 20, 8 << 20), 80);
        assert_eq!(entries_hint(10, 11, 10), 9, "always fewer than sent");
        assert_eq!(
            entries_hint(2, usize::MAX, 8 << 20),
            1,
            "always at least one"
        );
        assert_eq!(entries_hint(1000, 1 << 30, 1), 1);
    }

    #[tokio::test]
    async fn an_append_above_the_byte_bound_is_refused_as_too_large_with_a_hint_that_fits() {
        // 24 entries of 1 MiB: 24 MiB, three times the bound (and within
        // what a receiver decodes, so only the bound can refuse it).
        let entries: Vec<_> = (1..=24).map(|i| entry(i, 1 << 20)).collect();
        let bytes = crate::format::encode(&append(entries.clone()))
            .unwrap()
            .len();
        assert!(bytes > MAX_APPEND_BYTES && bytes < MAX_MESSAGE_BYTES);
        let addr = empty_peer().await;
        let mut client = client_to(&addr).await;
        let option = RPCOption::new(Duration::from_secs(10));
        match client.append_entries(append(entries.clone()), option).await {
            Err(RPCError::PayloadTooLarge(too_large)) => {
                let hint = too_large.entries_hint() as usize;
                assert!((1..24).contains(&hint), "hint {hint}");
                // What the hint asks for is sent.
                let fewer = append(entries[..hint].to_vec());
                let fewer_bytes = crate::format::encode(&fewer).unwrap().len();
                assert!(fewer_bytes <= MAX_APPEND_BYTES, "{fewer_bytes} bytes");
                let option = RPCOption::new(Duration::from_secs(10));
                let sent = client.append_entries(fewer, option).await;
                assert!(
                    matches!(&sent, Err(RPCError::Network(e)) if e.to_string().contains("does not serve raft group")),
                    "{sent:?}"
                );
            }
            other => panic!("expected payload too large, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_single_entry_above_the_byte_bound_is_still_sent() {
        let big = entry(1, MAX_APPEND_BYTES + (1 << 20));
        let addr = empty_peer().await;
        let mut client = client_to(&addr).await;
        let option = RPCOption::new(Duration::from_secs(10));
        let sent = client.append_entries(append(vec![big]), option).await;
        // The receiver decoded it and answered for itself.
        assert!(
            matches!(&sent, Err(RPCError::Network(e)) if e.to_string().contains("does not serve raft group")),
            "{sent:?}"
        );
    }

    #[tokio::test]
    async fn raft_rpcs_to_a_peer_that_never_answers_end_at_their_deadline() {
        let addr = black_hole().await;
        let mut client = client_to(&addr).await;
        let ttl = Duration::from_millis(300);
        let vote = VoteRequest::new(Vote::new(2, 1), None);
        let started = Instant::now();
        // Bounded here too, so that a missing deadline fails the test
        // instead of hanging it.
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            client.vote(vote, RPCOption::new(ttl)),
        )
        .await
        .expect("the vote returned");
        assert!(
            matches!(&answer, Err(RPCError::Timeout(t)) if t.target == 2 && t.id == 1),
            "{answer:?}"
        );
        assert!(started.elapsed() >= ttl);
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            client.append_entries(append(vec![entry(1, 10)]), RPCOption::new(ttl)),
        )
        .await
        .expect("the append returned");
        assert!(matches!(answer, Err(RPCError::Timeout(_))), "{answer:?}");
    }
}
