//! Raft groups on three "nodes" in one process, each with its own store and
//! its own tonic transport on 127.0.0.1: replication, and a new leader when
//! the old one stops.
use openraft::{BasicNode, ServerState};
use quotad_engine::peer_auth::{ClusterKey, PeerAuth};
use quotad_engine::raft::{
    Command, CommandResponse, Group, GroupConfig, GroupState, MetaOp, Peers, TransportService,
};
use quotad_engine::storage::Store;
use std::collections::BTreeMap;
use std::time::Duration;

const GROUP: u64 = 7;

struct TestNode {
    id: u64,
    addr: String,
    /// Both kinds of command: the tests write slug claims and tenants.
    group: Group<GroupState>,
    _dir: tempfile::TempDir,
}

/// The key every node of these tests shares (as a cluster's nodes do).
fn cluster_key() -> std::sync::Arc<PeerAuth> {
    static KEY: std::sync::OnceLock<std::sync::Arc<PeerAuth>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| std::sync::Arc::new(PeerAuth::with_key(ClusterKey::random())))
        .clone()
}

async fn node(id: u64) -> (TestNode, tokio::task::JoinHandle<()>) {
    node_with(id, GroupConfig::default()).await
}

async fn node_with(id: u64, config: GroupConfig) -> (TestNode, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let group = Group::<GroupState>::open(
        id,
        GROUP,
        store,
        &config,
        Peers::default().with_auth(cluster_key()),
    )
    .await
    .unwrap();
    let transport = TransportService::with_auth(cluster_key());
    transport.register(GROUP, group.raft.clone());
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(transport.server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (
        TestNode {
            id,
            addr,
            group,
            _dir: dir,
        },
        server,
    )
}

fn claim(slug: &str) -> Command {
    Command::Meta(MetaOp::ClaimSlug {
        slug: slug.into(),
        tenant: uuid::Uuid::from_u128(1),
        at_ms: 0,
        replacing: None,
    })
}

async fn leader_of(nodes: &[&TestNode]) -> u64 {
    let metrics = nodes[0]
        .group
        .raft
        .wait(Some(Duration::from_secs(20)))
        .metrics(
            |m| {
                m.current_leader
                    .is_some_and(|l| nodes.iter().any(|n| n.id == l))
            },
            "a leader",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_replicate_over_the_transport_and_survive_a_leader_stop() {
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3 {
        let (n, s) = node(id).await;
        nodes.push(n);
        servers.push(s);
    }
    let members: BTreeMap<u64, BasicNode> = nodes
        .iter()
        .map(|n| (n.id, BasicNode::new(&n.addr)))
        .collect();
    nodes[0].group.raft.initialize(members).await.unwrap();

    let all: Vec<&TestNode> = nodes.iter().collect();
    let leader = leader_of(&all).await;
    let l = nodes.iter().find(|n| n.id == leader).unwrap();
    let written = l.group.raft.client_write(claim("acme")).await.unwrap();
    assert_eq!(written.data, CommandResponse::SlugClaimed);
    let applied = Some(written.log_id.index);
    // Every replica applies the entry.
    for n in &nodes {
        n.group
            .raft
            .wait(Some(Duration::from_secs(20)))
            .applied_index_at_least(applied, "replicated")
            .await
            .unwrap();
        assert!(
            n.group
                .state
                .read()
                .unwrap()
                .meta
                .slugs
                .contains_key("acme"),
            "node {}",
            n.id
        );
    }

    // Stop the leader: the other two elect one and keep taking writes.
    l.group.raft.shutdown().await.unwrap();
    let rest: Vec<&TestNode> = nodes.iter().filter(|n| n.id != leader).collect();
    let new_leader = rest[0]
        .group
        .raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.current_leader.is_some_and(|x| x != leader) && m.state != ServerState::Candidate,
            "a new leader",
        )
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let nl = rest.iter().find(|n| n.id == new_leader).unwrap();
    assert_eq!(
        nl.group.write(claim("beta")).await.unwrap(),
        CommandResponse::SlugClaimed
    );
    // A slug taken on the old leader is still taken on the new one.
    let taken = nl.group.write(Command::Meta(MetaOp::ClaimSlug {
        slug: "acme".into(),
        tenant: uuid::Uuid::from_u128(2),
        at_ms: 0,
        replacing: None,
    }));
    assert_eq!(
        taken.await.unwrap(),
        CommandResponse::SlugTaken {
            owner: uuid::Uuid::from_u128(1)
        }
    );
    for s in servers {
        s.abort();
    }
}

/// A replica added after the log was compacted catches up from the
/// leader's snapshot, sent in many small chunks over the transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_catches_up_from_a_snapshot_sent_in_chunks() {
    let config = GroupConfig {
        snapshot_every: 20,
        snapshot_chunk_bytes: 256,
        ..GroupConfig::default()
    };
    let (first, _s1) = node_with(1, config.clone()).await;
    let members = BTreeMap::from([(1, BasicNode::new(&first.addr))]);
    first.group.raft.initialize(members).await.unwrap();
    leader_of(&[&first]).await;
    for i in 0..100 {
        first
            .group
            .raft
            .client_write(claim(&format!("slug-{i}")))
            .await
            .unwrap();
    }
    // The log before the last snapshot is gone: only a snapshot can bring
    // a new replica up to date.
    let m = first
        .group
        .raft
        .wait(Some(Duration::from_secs(20)))
        .metrics(
            |m| m.purged.is_some() && m.snapshot.is_some(),
            "a compacted log",
        )
        .await
        .unwrap();
    assert!(m.purged.unwrap().index >= 20, "{:?}", m.purged);

    let (late, _s2) = node_with(2, config).await;
    first
        .group
        .raft
        .add_learner(2, BasicNode::new(&late.addr), true)
        .await
        .unwrap();
    let last = first.group.raft.metrics().borrow().last_applied;
    late.group
        .raft
        .wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(last.map(|l| l.index), "caught up")
        .await
        .unwrap();
    let state = late.group.state.read().unwrap();
    assert_eq!(state.meta.slugs.len(), 100);
    assert!(state.meta.slugs.contains_key("slug-0") && state.meta.slugs.contains_key("slug-99"));
    let snap = late.group.raft.metrics().borrow().snapshot;
    assert!(snap.is_some(), "the learner installed a snapshot");
}

/// A replica added to a group whose log is far larger than one message a
/// peer decodes (64 MiB) catches up by log: the leader sends it in requests
/// of bounded size instead of resending one oversized request forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_far_behind_catches_up_by_log_past_the_message_limit() {
    let config = GroupConfig {
        // No snapshot: the log is the only way to catch up.
        snapshot_every: 1_000_000,
        ..GroupConfig::default()
    };
    let (first, _s1) = node_with(1, config.clone()).await;
    let members = BTreeMap::from([(1, BasicNode::new(&first.addr))]);
    first.group.raft.initialize(members).await.unwrap();
    leader_of(&[&first]).await;
    // 68 entries of 1 MiB: 68 MiB of log behind the new replica.
    let long = "x".repeat(1 << 20);
    for i in 0..68 {
        first
            .group
            .raft
            .client_write(claim(&format!("{i}-{long}")))
            .await
            .unwrap();
    }
    let m = first.group.raft.metrics().borrow().clone();
    assert!(
        m.snapshot.is_none() && m.purged.is_none(),
        "the log is whole"
    );

    let (late, _s2) = node_with(2, config).await;
    first
        .group
        .raft
        .add_learner(2, BasicNode::new(&late.addr), false)
        .await
        .unwrap();
    let last = first.group.raft.metrics().borrow().last_applied;
    late.group
        .raft
        .wait(Some(Duration::from_secs(60)))
        .applied_index_at_least(last.map(|l| l.index), "caught up by log")
        .await
        .unwrap();
    let state = late.group.state.read().unwrap();
    assert_eq!(state.meta.slugs.len(), 68);
    assert!(state.meta.slugs.contains_key(&format!("67-{long}")));
    assert!(
        late.group.raft.metrics().borrow().snapshot.is_none(),
        "no snapshot was needed"
    );
}

/// A command of the other kind of group is refused before it is logged.
#[tokio::test]
async fn a_group_refuses_the_other_kinds_commands_before_logging_them() {
    use quotad_engine::raft::{MetaState, ShardState};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = GroupConfig::default();
    let shard = Group::<ShardState>::start(1, 3, store.clone(), &config)
        .await
        .unwrap();
    let meta = Group::<MetaState>::start(1, 0, store, &config)
        .await
        .unwrap();
    let claim = Command::Meta(MetaOp::ClaimSlug {
        slug: "acme".into(),
        tenant: uuid::Uuid::from_u128(1),
        at_ms: 0,
        replacing: None,
    });
    let applied = |g: &openraft::Raft<quotad_engine::raft::TypeConfig>| {
        g.metrics().borrow().last_applied.map(|l| l.index)
    };
    let before = applied(&shard.raft);
    let e = shard.write(claim.clone()).await.unwrap_err();
    assert_eq!(
        e.code(),
        quotad_engine::error_code::ErrorCode::Internal,
        "{e}"
    );
    assert_eq!(applied(&shard.raft), before, "nothing was logged");
    assert_eq!(
        meta.write(claim).await.unwrap(),
        CommandResponse::SlugClaimed
    );
    let batch = Command::Batch(vec![]);
    assert!(meta.write(batch).await.is_err());
    shard.shutdown().await;
    meta.shutdown().await;
}
