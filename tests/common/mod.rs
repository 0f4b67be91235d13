//! A real `quotad` process on 127.0.0.1 with OS-chosen ports, and clients.
#![allow(dead_code)]
pub mod browser;
pub mod cluster;
pub mod console;
pub mod cpu_limit;
pub mod history;
pub mod load;
pub mod proxy;
mod rest;
pub mod soak;
pub mod tls;
pub mod tmpfs;

#[allow(unused_imports)] // each test binary uses some of them
pub use rest::{create_owned, grpcurl, rest_call};

use quotad_proto::credential::{AuthChannel, Bearer};
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nodes' JWT secret in tests.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// The join token of test clusters.
pub const JOIN_TOKEN: &str = "test-join-token-0123456789";

/// A `Cluster` client of a node's peer port, authenticated as a node of
/// its cluster with the key in its data dir (what only a node, or an
/// operator with the node's disk, holds).
pub async fn peer_client(
    node: &Node,
) -> quotad_proto::cluster::cluster_client::ClusterClient<AuthChannel> {
    let key = quotad_engine::peer_auth::PeerAuth::at(&node.data_dir, None)
        .expect("read the cluster key")
        .key()
        .expect("the node has a cluster key");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.peer))
        .unwrap()
        .connect()
        .await
        .expect("connect to the peer port");
    quotad_proto::cluster::cluster_client::ClusterClient::new(
        quotad_engine::peer_auth::bearer(&key).on(channel),
    )
}

/// The node's `/metrics` page, read as Prometheus would with a service
/// token.
pub async fn metrics_text(node: &Node) -> String {
    let r = http()
        .get(node.url("/metrics"))
        .bearer_auth(service_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "/metrics");
    r.text().await.unwrap()
}

/// A token signed with the test secret, valid for an hour (or expired,
/// with a negative lifetime).
pub fn token_for(sub: &str, tenant: Option<&str>, roles: &[&str], lifetime_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = quotad_control_plane::auth::Claims {
        sub: sub.into(),
        tenant_id: tenant.map(str::to_string),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        exp: (now + lifetime_secs) as u64,
        iat: Some(now as u64),
    };
    quotad_control_plane::auth::mint(SECRET.as_bytes(), &claims).unwrap()
}

pub fn operator() -> String {
    token_for("ops", None, &["operator"], 3600)
}

/// A platform service's token (role `service`): the data plane for every
/// tenant.
pub fn service_token() -> String {
    token_for("gateway", None, &["service"], 3600)
}

/// The service token as gRPC clients send it.
pub fn service_bearer() -> Bearer {
    Bearer::new(&service_token()).expect("a token is ASCII")
}

/// A QuotaService client of `url` sending the service token.
pub async fn grpc_at(url: &str) -> QuotaServiceClient<AuthChannel> {
    grpc_with(url, service_bearer()).await
}

/// A QuotaService client of `url` sending `bearer`; waits up to 20 s for
/// the port to accept.
pub async fn grpc_with(url: &str, bearer: Bearer) -> QuotaServiceClient<AuthChannel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(url.to_string()).expect("a node URL");
        if url.starts_with("https://") {
            endpoint = endpoint.tls_config(tls::grpc_client()).expect("TLS");
        }
        match endpoint.connect().await {
            Ok(c) => return QuotaServiceClient::new(bearer.on(c)),
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A routing client of the nodes at `seeds`, sending the service token.
pub async fn quota_client(seeds: Vec<String>) -> quotad_proto::client::QuotaClient {
    // Over TLS to nodes that serve it (their https:// URLs).
    let tls = seeds
        .iter()
        .any(|s| s.starts_with("https://"))
        .then(tls::grpc_client);
    quotad_proto::client::QuotaClient::connect_tls(seeds, service_bearer(), tls)
        .await
        .expect("connect a routing client")
}

/// An HTTP client that sends the operator's token.
pub fn http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", operator()).parse().unwrap(),
    );
    builder().default_headers(headers).build().unwrap()
}

/// An HTTP client that sends no credential of its own.
pub fn client() -> reqwest::Client {
    builder().build().unwrap()
}

/// Trusting the test's development CA for `https://` URLs, once TLS is on
/// (see [`tls`]).
fn builder() -> reqwest::ClientBuilder {
    // reqwest's rustls comes without a provider: the node's (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let b = reqwest::Client::builder();
    match tls::dir() {
        Some(_) => b.tls_backend_preconfigured(tls::rest_client()),
        None => b,
    }
}

/// `GET` a JSON document with the operator's token.
pub async fn get_json(url: &str) -> serde_json::Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

pub struct Node {
    child: Child,
    pub grpc: String,
    pub http: String,
    /// The peer (Raft) address it listens on.
    pub peer: String,
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// Where its log goes, when captured (see [`NodeOptions`]).
    pub log_file: Option<PathBuf>,
    /// `http://` address of `--metrics-addr`, when given.
    pub metrics: Option<String>,
}

/// How a node's process is started, beyond its arguments.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Append the node's log (stderr) to this file instead of the test's
    /// stderr, for a test that reads what the node logged.
    pub log_file: Option<PathBuf>,
    /// `RUST_LOG` for the node; default: `QUOTAD_TEST_LOG`, else
    /// `warn,openraft=error`.
    pub log_filter: Option<String>,
}

impl Node {
    /// Start a single `quotad serve` on `data_dir`, every port chosen by
    /// the OS, and wait for its listening line.
    pub fn start(data_dir: &Path) -> Node {
        Node::start_with(data_dir, &Node::local_args())
    }

    /// Every listener on 127.0.0.1 with a port chosen by the OS.
    pub fn local_args() -> Vec<String> {
        [
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--peer-addr",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Start `quotad serve --data-dir DATA_DIR ARGS...` with the tests'
    /// JWT secret ([`SECRET`]).
    pub fn start_with(data_dir: &Path, args: &[String]) -> Node {
        Node::spawn(data_dir, args, Some(SECRET), &NodeOptions::default())
    }

    /// [`Node::start_with`], with its log captured or filtered as `options` say.
    pub fn start_opts(data_dir: &Path, args: &[String], options: &NodeOptions) -> Node {
        Node::spawn(data_dir, args, Some(SECRET), options)
    }

    /// Start `quotad serve --data-dir DATA_DIR ARGS...` with no
    /// `JWT_SECRET` in its environment, so the node uses the secret it
    /// generates into its data dir, as in the README's walkthrough (where
    /// `quotad token --data-dir` reads it back).
    pub fn start_without_secret(data_dir: &Path, args: &[String]) -> Node {
        Node::spawn(data_dir, args, None, &NodeOptions::default())
    }

    /// `quotad serve ARGS...` with `secret` as `JWT_SECRET` (or none at
    /// all), on `data_dir`: added as `--data-dir DATA_DIR` unless ARGS
    /// already name it (a command line taken from the README does); waits
    /// for its listening line.
    fn spawn(
        data_dir: &Path,
        args: &[String],
        secret: Option<&str>,
        options: &NodeOptions,
    ) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quotad"));
        command.arg("serve").args(args);
        match data_dir_in(args) {
            Some(named) => assert_eq!(
                Path::new(named),
                data_dir,
                "the serve arguments {args:?} name another data dir"
            ),
            None => {
                command.arg("--data-dir").arg(data_dir);
            }
        }
        let filter = options.log_filter.clone().unwrap_or_else(|| {
            std::env::var("QUOTAD_TEST_LOG").unwrap_or_else(|_| "warn,openraft=error".into())
        });
        command.env("RUST_LOG", filter);
        let stderr = match &options.log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("open the node's log {}: {e}", path.display())),
            ),
            None => Stdio::inherit(),
        };
        match secret {
            Some(secret) => command.env("JWT_SECRET", secret),
            None => command.env_remove("JWT_SECRET"),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start quotad");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the node never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                // Its log says why, when it went to a file.
                let log = options
                    .log_file
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .map(|l| {
                        let tail: Vec<&str> = l.lines().rev().take(30).collect();
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    })
                    .unwrap_or_default();
                panic!(
                    "quotad did not report its addresses within 60 s ({e}); its log ends:\n{log}"
                )
            });
        let addr = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_string()
        };
        // Over TLS when the node serves it.
        let scheme = if args.iter().any(|a| a == "--tls-cert") {
            "https"
        } else {
            "http"
        };
        Node {
            grpc: format!("{scheme}://{}", addr("grpc=")),
            http: format!("{scheme}://{}", addr("http=")),
            peer: addr("peer="),
            node_id: addr("node=").parse().expect("node id"),
            data_dir: data_dir.to_path_buf(),
            log_file: options.log_file.clone(),
            metrics: line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("metrics="))
                .map(|a| format!("http://{a}")),
            child,
        }
    }

    /// What the node has logged so far (its log must be captured).
    pub fn log(&self) -> String {
        let path = self
            .log_file
            .as_ref()
            .expect("the node's log is not captured");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The node's process id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (`STOP`, `CONT`, ...) to the node's process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// A QuotaService client of this node sending the service token.
    pub async fn grpc(&self) -> QuotaServiceClient<AuthChannel> {
        grpc_at(&self.grpc).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.http, path)
    }

    /// A line of the process's `/proc/<pid>/status` in KiB: `VmRSS` (now)
    /// or `VmHWM` (the peak resident set since it started).
    pub fn memory_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the node's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the node's /proc status"))
    }
}

/// The value of `--data-dir` in serve arguments (`--data-dir DIR` or
/// `--data-dir=DIR`), if they name one.
fn data_dir_in(args: &[String]) -> Option<&str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if arg == "--data-dir" {
            args.get(i + 1).map(String::as_str)
        } else {
            arg.strip_prefix("--data-dir=")
        }
    })
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tenant's `api_requests` usage, over gRPC (GetUsage).
pub async fn api_requests_used(node: &Node, tenant: &str) -> u64 {
    let u = node
        .grpc()
        .await
        .get_usage(quotad_proto::v1::GetUsageRequest {
            tenant_id: tenant.into(),
            quota: "api_requests".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.quotas.len(), 1);
    u.quotas[0].used
}

/// `POST /api/v1/tenants`, returning the new tenant's id.
pub async fn create_tenant(node: &Node, slug: &str, tier: &str) -> String {
    let resp = http()
        .post(node.url("/api/v1/tenants"))
        .json(&serde_json::json!({"name": format!("Tenant {slug}"), "slug": slug, "tier": tier}))
        .send()
        .await
        .expect("create tenant");
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["tier"], tier);
    body["data"]["id"].as_str().unwrap().to_string()
}

pub async fn set_quota(
    node: &Node,
    tenant: &str,
    quota: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let resp = http()
        .put(node.url(&format!("/api/v1/tenants/{tenant}/quotas/{quota}")))
        .json(&body)
        .send()
        .await
        .expect("set quota");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}
