//! A cluster of real `quotad serve` processes on loopback. Node i listens
//! for peers on 127.0.0.(10+i) and sends from that address, behind a proxy
//! that can cut it off from chosen nodes (see `proxy.rs`).
use super::Node;
use super::proxy::Proxy;
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
}

pub struct TestCluster {
    _dir: tempfile::TempDir,
    pub members: Vec<Member>,
    args: Vec<String>,
}

fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i as u8))
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
        let dir = tempfile::tempdir().unwrap();
        let mut c = TestCluster {
            _dir: dir,
            members: Vec::new(),
            args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..n {
            c.add_node().await;
        }
        c.wait_settled(Duration::from_secs(90)).await;
        c
    }

    /// Start one more node, joining through node 0.
    pub async fn add_node(&mut self) -> usize {
        let i = self.members.len();
        let ip = source_ip(i);
        let listen_peer = SocketAddr::new(ip, free_port(ip));
        let proxy = Proxy::start(listen_peer).await;
        let data_dir = self._dir.path().join(format!("node-{i}"));
        let mut m = Member {
            node: None,
            data_dir,
            listen_peer,
            proxy,
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            id: 0,
        };
        let join = self.members.first().map(|f| f.proxy.addr.to_string());
        let node = self.spawn(&m, join.as_deref(), &[]);
        m.grpc_addr = node.grpc.trim_start_matches("http://").to_string();
        m.http_addr = node.http.trim_start_matches("http://").to_string();
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
        if let Some(j) = join {
            args.extend(["--join".into(), j.to_string()]);
        }
        args.extend(self.args.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        Node::start_with(&m.data_dir, &args)
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

    pub fn grpc_addrs(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.node.is_some())
            .map(|m| m.grpc_addr.clone())
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

    /// The cluster status as node `i` sees it.
    pub async fn status_from(&self, i: usize) -> Option<ClusterStatus> {
        let mut c = ClusterClient::connect(self.node(i).grpc.clone())
            .await
            .ok()?;
        c.status(StatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
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

    /// Wait until every group's voters are its placement, at
    /// min(3, nodes) replicas, and it has a leader.
    pub async fn wait_settled(&self, timeout: Duration) -> ClusterStatus {
        let deadline = Instant::now() + timeout;
        let running = self.members.iter().filter(|m| m.node.is_some()).count();
        let want = running.min(3);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.status().await {
                let settled = s.nodes.len() >= running
                    && s.groups.iter().all(|g| {
                        let mut v = g.voters.clone();
                        let mut r = g.replicas.clone();
                        v.sort_unstable();
                        r.sort_unstable();
                        let size = if g.group == 0 { running } else { want };
                        v == r && v.len() == size && g.leader != 0
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
}
