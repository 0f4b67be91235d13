//! A cluster of real `quotad serve` processes on loopback. Node i listens
//! for peers on 127.0.0.(10+i) and sends from that address, behind a proxy
//! that can cut it off from chosen nodes (see `proxy.rs`).
use super::proxy::Proxy;
use super::{Node, NodeOptions};
use quotad_proto::cluster::cluster_client::ClusterClient;
use quotad_proto::cluster::{ClusterStatus, StatusRequest};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Member {
    pub node: Option<Node>,
    pub data_dir: PathBuf,
    /// Where the node listens for peers, and the proxy others reach it by.
    pub listen_peer: SocketAddr,
    pub proxy: Proxy,
    /// Client addresses of the first start, reused on restart.
    pub grpc_addr: String,
    pub http_addr: String,
    pub id: u64,
    /// Log capture and filter, for every start of the node.
    pub options: NodeOptions,
    /// Arguments of this node alone (labels, say), for every start.
    pub extra: Vec<String>,
}

/// Where a member keeps its data and its log, chosen before its first
/// start (see [`TestCluster::start_with`]).
pub struct NodeSetup {
    /// Default: `node-<i>` in the cluster's temp dir.
    pub data_dir: PathBuf,
    pub options: NodeOptions,
}

pub struct TestCluster {
    _dir: tempfile::TempDir,
    pub members: Vec<Member>,
    args: Vec<String>,
}

fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i as u8))
}

/// `host:port` of a node's `http://` or `https://` URL.
fn host_port(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_string()
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestCluster {
    /// Start `n` nodes (node 0 founds, the others join it) and wait until
    /// every group is fully replicated.
    pub async fn start(n: usize, extra_args: &[&str]) -> TestCluster {
        TestCluster::start_with(n, extra_args, |_, _| {}).await
    }

    /// [`TestCluster::start`], with `prepare(i, setup)` choosing where node
    /// i keeps its data (a small tmpfs, say) and whether its log is
    /// captured, before it first starts.
    pub async fn start_with(
        n: usize,
        extra_args: &[&str],
        prepare: impl Fn(usize, &mut NodeSetup),
    ) -> TestCluster {
        TestCluster::start_inner(n, extra_args, prepare, false).await
    }

    /// [`TestCluster::start`] with TLS on every port of every node, client
    /// certificates required (mutual TLS between nodes), from a development
    /// CA that this test's clients then use too (see [`super::tls`]).
    pub async fn start_tls(n: usize, extra_args: &[&str]) -> TestCluster {
        TestCluster::start_inner(n, extra_args, |_, _| {}, true).await
    }

    async fn start_inner(
        n: usize,
        extra_args: &[&str],
        prepare: impl Fn(usize, &mut NodeSetup),
        tls: bool,
    ) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if tls {
            let certs = dir.path().join("tls");
            // Every address a node of this harness listens on or is
            // reached by.
            let ips: Vec<String> = (0..16).map(|i| source_ip(i).to_string()).collect();
            let mut hosts = vec!["127.0.0.1", "localhost"];
            hosts.extend(ips.iter().map(String::as_str));
            super::tls::enable(&certs, &hosts);
            args.extend(super::tls::serve_args(&certs));
        }
        let mut c = TestCluster {
            _dir: dir,
            members: Vec::new(),
            args,
        };
        for _ in 0..n {
            c.add_node_with(&prepare).await;
        }
        c.wait_settled(Duration::from_secs(90)).await;
        c
    }

    /// The cluster's temp dir (node data dirs by default; logs may go there).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Start one more node, joining through node 0.
    pub async fn add_node(&mut self) -> usize {
        self.add_node_with(|_, _| {}).await
    }

    /// Start one more node with arguments of its own (kept for restarts),
    /// joining through node 0.
    pub async fn add_node_args(&mut self, extra: &[&str]) -> usize {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        self.add_node_inner(|_, _| {}, extra).await
    }

    async fn add_node_with(&mut self, prepare: impl Fn(usize, &mut NodeSetup)) -> usize {
        self.add_node_inner(prepare, Vec::new()).await
    }

    async fn add_node_inner(
        &mut self,
        prepare: impl Fn(usize, &mut NodeSetup),
        extra: Vec<String>,
    ) -> usize {
        let i = self.members.len();
        let ip = source_ip(i);
        let listen_peer = SocketAddr::new(ip, free_port(ip));
        let proxy = Proxy::start(listen_peer).await;
        let mut setup = NodeSetup {
            data_dir: self._dir.path().join(format!("node-{i}")),
            options: NodeOptions::default(),
        };
        prepare(i, &mut setup);
        let mut m = Member {
            node: None,
            data_dir: setup.data_dir,
            listen_peer,
            proxy,
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            id: 0,
            options: setup.options,
            extra,
        };
        let join = self.members.first().map(|f| f.proxy.addr.to_string());
        let node = self.spawn(&m, join.as_deref(), &[]);
        m.grpc_addr = host_port(&node.grpc);
        m.http_addr = host_port(&node.http);
        m.id = node.node_id;
        m.node = Some(node);
        self.members.push(m);
        i
    }

    fn spawn(&self, m: &Member, join: Option<&str>, extra: &[&str]) -> Node {
        let mut args: Vec<String> = vec![
            "--grpc-addr".into(),
            m.grpc_addr.clone(),
            "--http-addr".into(),
            m.http_addr.clone(),
            "--peer-addr".into(),
            m.listen_peer.to_string(),
            "--advertise-peer-addr".into(),
            m.proxy.addr.to_string(),
        ];
        // Every member admits joins with the same token, and presents it.
        args.extend(["--join-token".into(), super::JOIN_TOKEN.into()]);
        if let Some(j) = join {
            args.extend(["--join".into(), j.to_string()]);
        }
        args.extend(self.args.iter().cloned());
        args.extend(m.extra.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        Node::start_opts(&m.data_dir, &args, &m.options)
    }

    pub fn node(&self, i: usize) -> &Node {
        self.members[i].node.as_ref().expect("node is running")
    }

    /// Index of the member with node id `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.members
            .iter()
            .position(|m| m.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The running nodes' gRPC ports (as `https://` URLs over TLS).
    pub fn grpc_addrs(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| m.node.as_ref())
            .map(|n| {
                if n.grpc.starts_with("https://") {
                    n.grpc.clone()
                } else {
                    host_port(&n.grpc)
                }
            })
            .collect()
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(n) = self.members[i].node.take() {
            n.kill9();
        }
    }

    /// Start a stopped node again on its data dir and addresses.
    pub fn restart(&mut self, i: usize) {
        self.restart_with(i, &[]);
    }

    /// Start a stopped node again, with `extra` arguments beside the
    /// cluster's.
    pub fn restart_with(&mut self, i: usize, extra: &[&str]) {
        assert!(self.members[i].node.is_none(), "node {i} is running");
        let node = self.spawn(&self.members[i], None, extra);
        assert_eq!(
            node.node_id, self.members[i].id,
            "a restarted node keeps its id"
        );
        self.members[i].node = Some(node);
    }

    /// Cut node `i` off from every other node, both ways.
    pub fn isolate(&self, i: usize) {
        let others: Vec<IpAddr> = (0..self.members.len())
            .filter(|j| *j != i)
            .map(source_ip)
            .collect();
        self.members[i].proxy.block(&others);
        for (j, m) in self.members.iter().enumerate() {
            if j != i {
                m.proxy.block(&[source_ip(i)]);
            }
        }
    }

    /// Black-hole node `from`'s connections to node `to`: accepted and
    /// held, no byte through, nothing closed (a hung peer, or a path that
    /// drops packets). Traffic from `to` to `from` still flows.
    pub fn black_hole(&self, from: usize, to: usize) {
        self.members[to].proxy.black_hole(&[source_ip(from)]);
    }

    pub fn heal(&self) {
        for m in &self.members {
            m.proxy.heal();
        }
    }

    /// The cluster status as node `i` sees it; none if it does not answer
    /// within 2 s (a paused node accepts connections but never answers).
    pub async fn status_from(&self, i: usize) -> Option<ClusterStatus> {
        let ask = async {
            let url = self.node(i).grpc.clone();
            let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone()).ok()?;
            if url.starts_with("https://") {
                endpoint = endpoint.tls_config(super::tls::grpc_client()).ok()?;
            }
            let channel = endpoint.connect().await.ok()?;
            let mut c = ClusterClient::new(super::service_bearer().on(channel));
            c.status(StatusRequest {})
                .await
                .ok()
                .map(|r| r.into_inner())
        };
        tokio::time::timeout(Duration::from_secs(2), ask)
            .await
            .ok()
            .flatten()
    }

    /// Status from the first running node that answers.
    pub async fn status(&self) -> Option<ClusterStatus> {
        for (i, m) in self.members.iter().enumerate() {
            if m.node.is_some()
                && let Some(s) = self.status_from(i).await
            {
                return Some(s);
            }
        }
        None
    }

    /// Wait until every group holds its placement, at min(3, nodes)
    /// replicas (the meta group on every node), the largest odd number of
    /// them voting and the rest learners, and it has a leader.
    pub async fn wait_settled(&self, timeout: Duration) -> ClusterStatus {
        let deadline = Instant::now() + timeout;
        let running = self.members.iter().filter(|m| m.node.is_some()).count();
        let want = running.min(3);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.status().await {
                let settled = s.nodes.len() >= running
                    && s.groups.iter().all(|g| {
                        let mut members: Vec<u64> =
                            g.voters.iter().chain(&g.learners).copied().collect();
                        let mut r = g.replicas.clone();
                        members.sort_unstable();
                        r.sort_unstable();
                        let size = if g.group == 0 { running } else { want };
                        members == r
                            && r.len() == size
                            && g.voters.len() == size - (1 - size % 2)
                            && g.leader != 0
                    });
                if settled {
                    return s;
                }
                last = Some(s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("cluster did not settle within {timeout:?}; last status: {last:#?}");
    }

    /// The node id leading `group`, as the cluster reports it.
    pub async fn leader_of(&self, group: u64) -> u64 {
        let s = self.status().await.expect("status");
        s.groups
            .iter()
            .find(|g| g.group == group)
            .map(|g| g.leader)
            .expect("group exists")
    }

    /// The node id leading `group` as node `i` sees it (0: none).
    pub async fn leader_seen_by(&self, i: usize, group: u64) -> u64 {
        self.status_from(i)
            .await
            .and_then(|s| s.groups.into_iter().find(|g| g.group == group))
            .map_or(0, |g| g.leader)
    }

    /// Wait until node `i` has applied, in `group`, everything its leader
    /// had logged when last asked; how long that took.
    pub async fn wait_caught_up(&self, group: u64, i: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            // The leader's log first, then the follower's progress: under
            // load the leader moves on, and this still ends.
            let leader = self.leader_seen_by(i, group).await;
            let leader_at = match self.members.iter().position(|m| m.id == leader) {
                Some(l) if self.members[l].node.is_some() => self
                    .status_from(l)
                    .await
                    .and_then(|s| s.groups.into_iter().find(|g| g.group == group)),
                _ => None,
            };
            let here = self
                .status_from(i)
                .await
                .and_then(|s| s.groups.into_iter().find(|g| g.group == group));
            if let (Some(l), Some(h)) = (&leader_at, &here)
                && l.leader == leader
                && h.applied_index >= l.last_log_index
            {
                return start.elapsed();
            }
            last = format!("leader {leader}: {leader_at:?}; node {i}: {here:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {i} did not catch up in group {group} within {timeout:?}: {last}");
    }
}
