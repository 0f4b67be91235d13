//! `quotad serve`: configuration (flags > env > file > defaults), then the
//! engine, the gRPC server and the REST control plane.
use super::listen::{PortsTls, serve_grpc, serve_http};
use crate::cli::out::outln;
use anyhow::{Context, Result, bail};
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use quotad_control_plane::metrics::MetricsAuth;
use quotad_engine::archive::{ArchiveChoice, ScyllaConfig};
use quotad_engine::auth::{Authenticator, DataPlaneAuth, jwt::JwtKeys};
use quotad_engine::cluster::ClusterService;
use quotad_engine::engine::Advertise;
use quotad_engine::grpc::rls_config::RlsConfig;
use quotad_engine::model::Consistency;
use quotad_engine::quota::TierCatalog;
use quotad_engine::raft::TransportService;
use quotad_engine::shed::Limits;
use quotad_engine::tls::TlsFiles;
use quotad_engine::trace::TraceLayer;
use quotad_engine::{Engine, EngineConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "QUOTAD_CONFIG")]
    config: Option<PathBuf>,
    /// Where the node keeps its Raft log and snapshots [default: ./quotad-data]
    #[arg(long, env = "QUOTAD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051]
    #[arg(long, env = "QUOTAD_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// REST listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "QUOTAD_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Node-to-node address: Raft for every group, forwarding, joins [default: 127.0.0.1:7947]
    #[arg(long, env = "QUOTAD_PEER_ADDR")]
    peer_addr: Option<SocketAddr>,
    /// Host other nodes and clients should use for this node, when it
    /// listens on a wildcard address [default: the listen addresses]
    #[arg(long, env = "QUOTAD_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// The peer address other nodes should use, when it differs from the
    /// listen address (a proxy or NAT in between) [default: the listen address]
    #[arg(long, env = "QUOTAD_ADVERTISE_PEER_ADDR")]
    advertise_peer_addr: Option<String>,
    /// Join the cluster of the node at this peer address (first start only).
    #[arg(long, env = "QUOTAD_JOIN")]
    join: Option<String>,
    /// The secret that admits nodes to the cluster (at least 16 characters):
    /// presented by a joining node, required by the node it joins through.
    /// Without it a node admits no joins [env: QUOTAD_JOIN_TOKEN]
    #[arg(long, env = "QUOTAD_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Labels placement reads, key=value, repeated or comma-separated:
    /// `pool` names the node pool, `zone` the failure domain replicas are
    /// spread over (e.g. --node-label pool=acme,zone=a) [env: QUOTAD_NODE_LABELS]
    #[arg(long = "node-label", env = "QUOTAD_NODE_LABELS", value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Reserve this node for its pool: only groups pinned to that pool are
    /// placed here [env: QUOTAD_RESERVED]
    #[arg(long, env = "QUOTAD_RESERVED")]
    reserved: bool,
    /// Replicas per shard group [default: 3]
    #[arg(long, env = "QUOTAD_REPLICATION")]
    replication: Option<usize>,
    /// Shard groups; fixed when the data dir is first used [default: 4]
    #[arg(long, env = "QUOTAD_SHARDS")]
    shards: Option<u64>,
    /// Default consistency of increments: strict or fast [default: strict]
    #[arg(long, env = "QUOTAD_CONSISTENCY")]
    consistency: Option<String>,
    /// Tier catalog TOML replacing the built-in one.
    #[arg(long, env = "QUOTAD_TIER_CATALOG")]
    tier_catalog: Option<PathBuf>,
    /// Stop a tenant actor after this many idle seconds [default: 300]
    #[arg(long, env = "QUOTAD_ACTOR_IDLE_SECS")]
    actor_idle_secs: Option<u64>,
    /// Snapshot a group after at least this many log entries, once its log
    /// since the last snapshot is as large as that snapshot [default: 5000]
    #[arg(long, env = "QUOTAD_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "QUOTAD_LOG_FORMAT")]
    log_format: Option<String>,
    /// Tenants with their own label in per-tenant metrics; others are "other" [default: 1000]
    #[arg(long, env = "QUOTAD_METRICS_MAX_TENANTS")]
    metrics_max_tenants: Option<usize>,
    /// Days a soft-deleted tenant can be restored before it is purged [default: 30]
    #[arg(long, env = "QUOTAD_DELETION_RETENTION_DAYS")]
    deletion_retention_days: Option<u64>,
    /// The platform's fee on shared resources, in percent with up to two
    /// decimals; an operator may set another per policy [default: 15]
    #[arg(long, env = "QUOTAD_PLATFORM_FEE_PERCENT")]
    platform_fee_percent: Option<String>,
    /// PEM RSA public key accepting RS256 tokens too.
    #[arg(long, env = "JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// TOML mapping Envoy rate-limit descriptors to tenants and quotas
    /// [default: any domain; `tenant_id` and `quota` entries]
    #[arg(long, env = "QUOTAD_ENVOY_CONFIG")]
    envoy_config: Option<PathBuf>,
    /// Send traces of sampled requests (wire, routing, actor, commit and
    /// apply spans) to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317
    #[arg(long, env = "QUOTAD_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Share of requests traced when their caller's `traceparent` does not
    /// decide, from 0 to 1 [default: 0.01]
    #[arg(long, env = "QUOTAD_OTLP_SAMPLE_RATIO")]
    otlp_sample_ratio: Option<f64>,
    /// Archive for usage history, audit events and snapshots: embedded
    /// (archive.redb in the data dir) or scylla [default: embedded]
    #[arg(long, env = "QUOTAD_ARCHIVE")]
    archive: Option<String>,
    /// Directory of the embedded archive [default: the data dir]; put it on
    /// other storage to restore after losing the data dir
    #[arg(long, env = "QUOTAD_ARCHIVE_DIR")]
    archive_dir: Option<PathBuf>,
    /// ScyllaDB contact points, host:port[,host:port...] (archive = scylla)
    #[arg(long, env = "QUOTAD_SCYLLA_NODES")]
    scylla_nodes: Option<String>,
    /// ScyllaDB keyspace, created by quotad, at most 21 characters (tenants' dedicated keyspaces add 27) [default: quotad]
    #[arg(long, env = "QUOTAD_SCYLLA_KEYSPACE")]
    scylla_keyspace: Option<String>,
    /// Replication per datacenter, dc:factor[,dc:factor...]
    /// (NetworkTopologyStrategy) [default: datacenter1:3]
    #[arg(long, env = "QUOTAD_SCYLLA_REPLICATION")]
    scylla_replication: Option<String>,
    /// Seconds between syncs of the state machine to the archive [default: 10]
    #[arg(long, env = "QUOTA_SYNC_INTERVAL")]
    sync_interval_secs: Option<u64>,
    /// Most milliseconds this node's time stamps may differ from the median
    /// of its cluster's clocks; 0 trusts the local clock alone [default: 1000]
    #[arg(long, env = "QUOTAD_MAX_CLOCK_SKEW_MS")]
    max_clock_skew_ms: Option<u64>,
    /// Shift this node's clock by this many milliseconds, for drills that
    /// show what a wrong clock does [default: 0]
    #[arg(long, env = "QUOTAD_CLOCK_OFFSET_MS", allow_hyphen_values = true)]
    clock_offset_ms: Option<i64>,
    /// Requests this node serves at once (Batch and Stream items count one
    /// each); more are refused with RESOURCE_EXHAUSTED / 429 [default: 16384]
    #[arg(long, env = "QUOTAD_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// Requests queued for one tenant's actor; more are refused [default: 1024]
    #[arg(long, env = "QUOTAD_TENANT_QUEUE")]
    tenant_queue: Option<usize>,
    /// Decided changes waiting for a Raft entry, per shard group; more are
    /// refused. Also bounds what a fast-mode leader crash can lose [default: 8192]
    #[arg(long, env = "QUOTAD_COMMIT_QUEUE")]
    commit_queue: Option<usize>,
    /// A gRPC or REST request not answered within this many seconds is
    /// ended (gRPC CANCELLED, HTTP 503) [default: 30]
    #[arg(long, env = "QUOTAD_REQUEST_TIMEOUT_SECS")]
    request_timeout_secs: Option<u64>,
    /// Concurrent HTTP/2 streams (calls) per client gRPC connection [default: 1024]
    #[arg(long, env = "QUOTAD_GRPC_MAX_STREAMS")]
    grpc_max_streams: Option<u32>,
    /// Seconds a request forwarded to its group's leader waits for the
    /// answer before it is answered UNAVAILABLE or OUTCOME_UNKNOWN [default: 6]
    #[arg(long, env = "QUOTAD_FORWARD_TIMEOUT_SECS")]
    forward_timeout_secs: Option<u64>,
    /// PEM certificate chain: serve TLS on the gRPC, REST and peer ports
    /// (with --tls-key). Reloaded when the file changes.
    #[arg(long, env = "QUOTAD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "QUOTAD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by them on
    /// the gRPC and peer ports (mutual TLS); nodes trust each other through
    /// it (required for a cluster of more than one node with TLS).
    #[arg(long, env = "QUOTAD_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Client certificate names (DNS names in their subject alternative
    /// names) registered as platform services: a gRPC call over mutual TLS
    /// with such a certificate and no authorization metadata acts as a
    /// service, for any tenant. Comma-separated or repeated [env: QUOTAD_TLS_SERVICE_IDENTITIES]
    #[arg(
        long = "tls-service-identity",
        env = "QUOTAD_TLS_SERVICE_IDENTITIES",
        value_delimiter = ','
    )]
    tls_service_identities: Vec<String>,
    /// Serve without TLS on an address other hosts can reach (refused
    /// otherwise).
    #[arg(long, env = "QUOTAD_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
    /// Whether QuotaService and Envoy RLS calls must carry a credential
    /// (`authorization: Bearer <token or API key>`): required or off [default: required]
    #[arg(long, env = "QUOTAD_DATA_PLANE_AUTH")]
    data_plane_auth: Option<String>,
    /// Whether /metrics on the REST port needs an operator or service token
    /// (it lists every tenant's usage): required or off [default: required]
    #[arg(long, env = "QUOTAD_METRICS_AUTH")]
    metrics_auth: Option<String>,
    /// Also serve /metrics, without a credential, on this address (for a
    /// Prometheus on a private network)
    #[arg(long, env = "QUOTAD_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Close a connection (any port) that moves no byte for this long
    /// [default: 300]
    #[arg(long, env = "QUOTAD_IDLE_TIMEOUT_SECS")]
    idle_timeout_secs: Option<u64>,
    /// How long a console session lasts before signing in again (at most
    /// as long as the token or API key it was opened with) [default: 60]
    #[arg(long, env = "QUOTAD_CONSOLE_SESSION_MINS")]
    console_session_mins: Option<u64>,
    /// Let webhook endpoints be on loopback, private or link-local
    /// addresses (refused otherwise: a tenant could make the node call its
    /// own network).
    #[arg(long, env = "QUOTAD_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
    /// How long a tenant keeps working after its billing system reports a
    /// failed payment [default: 7]
    #[arg(long, env = "QUOTAD_BILLING_GRACE_DAYS")]
    billing_grace_days: Option<u64>,
    /// Suspend a tenant whose payment is still failing when its grace
    /// period ends (a successful payment reactivates it)
    #[arg(long, env = "QUOTAD_BILLING_SUSPEND")]
    billing_suspend: bool,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
    advertise_host: Option<String>,
    advertise_peer_addr: Option<String>,
    join: Option<String>,
    join_token: Option<String>,
    node_labels: Option<std::collections::BTreeMap<String, String>>,
    reserved: Option<bool>,
    replication: Option<usize>,
    shards: Option<u64>,
    consistency: Option<String>,
    tier_catalog: Option<PathBuf>,
    actor_idle_secs: Option<u64>,
    snapshot_every: Option<u64>,
    log_format: Option<String>,
    jwt_public_key: Option<PathBuf>,
    deletion_retention_days: Option<u64>,
    /// A number (`15`, `12.5`) or a string of one.
    #[serde(default, deserialize_with = "number_text")]
    platform_fee_percent: Option<String>,
    metrics_max_tenants: Option<usize>,
    envoy_config: Option<PathBuf>,
    otlp_endpoint: Option<String>,
    otlp_sample_ratio: Option<f64>,
    archive: Option<String>,
    archive_dir: Option<PathBuf>,
    scylla_nodes: Option<String>,
    scylla_keyspace: Option<String>,
    scylla_replication: Option<String>,
    sync_interval_secs: Option<u64>,
    max_clock_skew_ms: Option<u64>,
    clock_offset_ms: Option<i64>,
    max_in_flight: Option<usize>,
    tenant_queue: Option<usize>,
    commit_queue: Option<usize>,
    request_timeout_secs: Option<u64>,
    grpc_max_streams: Option<u32>,
    forward_timeout_secs: Option<u64>,
    data_plane_auth: Option<String>,
    metrics_auth: Option<String>,
    metrics_addr: Option<SocketAddr>,
    idle_timeout_secs: Option<u64>,
    console_session_mins: Option<u64>,
    allow_private_webhooks: Option<bool>,
    billing_grace_days: Option<u64>,
    billing_suspend: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_service_identities: Option<Vec<String>>,
    allow_plaintext: Option<bool>,
}

/// Validated settings of a node.
#[derive(Debug)]
struct Settings {
    data_dir: PathBuf,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    peer_addr: SocketAddr,
    advertise_host: Option<String>,
    advertise_peer_addr: Option<String>,
    join: Option<String>,
    join_token: Option<String>,
    node_labels: std::collections::BTreeMap<String, String>,
    reserved: bool,
    replication: usize,
    shards: u64,
    consistency: Consistency,
    tier_catalog: Option<PathBuf>,
    actor_idle: Duration,
    snapshot_every: u64,
    json_logs: bool,
    jwt_public_key: Option<PathBuf>,
    deletion_retention: Duration,
    platform_fee_bp: u32,
    metrics_max_tenants: usize,
    envoy_config: Option<PathBuf>,
    archive: ArchiveChoice,
    sync_interval: Duration,
    /// Where traces go, and the share of requests sampled.
    otlp: Option<(String, f64)>,
    max_clock_skew: Option<Duration>,
    clock_offset_ms: i64,
    limits: Limits,
    request_timeout: Duration,
    grpc_max_streams: u32,
    forward_timeout: Duration,
    data_plane_auth: DataPlaneAuth,
    metrics_auth: MetricsAuth,
    metrics_addr: Option<SocketAddr>,
    idle_timeout: Duration,
    console_session: Duration,
    allow_private_webhooks: bool,
    billing: quotad_engine::engine::BillingConfig,
    /// `QUOTAD_SECRET_KEY` (environment only: never a flag or a file
    /// setting, which would show it in process lists and config files).
    secrets_key: Option<quotad_engine::custom::secret::SecretsKey>,
    tls: Option<TlsFiles>,
    tls_service_identities: Vec<String>,
}

/// The archive named by the settings, checked.
fn archive_choice(
    kind: Option<String>,
    dir: Option<PathBuf>,
    nodes: Option<String>,
    keyspace: Option<String>,
    replication: Option<String>,
) -> Result<ArchiveChoice> {
    match kind.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if nodes.is_some() {
                bail!("scylla_nodes: set, but archive is embedded (set archive = \"scylla\")");
            }
            Ok(dir.map_or(ArchiveChoice::Embedded, ArchiveChoice::EmbeddedAt))
        }
        "scylla" => {
            if dir.is_some() {
                bail!("archive_dir: only for the embedded archive");
            }
            let Some(nodes) = nodes else {
                bail!("scylla_nodes: required when archive is scylla");
            };
            let nodes = nodes
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            let mut config =
                ScyllaConfig::new(nodes, keyspace.unwrap_or_else(|| "quotad".to_string()));
            if let Some(r) = replication {
                let mut dcs = std::collections::BTreeMap::new();
                for part in r.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some((dc, rf)) = part.split_once(':') else {
                        bail!("scylla_replication: {part:?} is not dc:factor");
                    };
                    let Ok(rf) = rf.trim().parse::<u32>() else {
                        bail!("scylla_replication: {rf:?} (datacenter {dc}) is not a number");
                    };
                    dcs.insert(dc.trim().to_string(), rf);
                }
                config.replication = dcs;
            }
            config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(ArchiveChoice::Scylla(config))
        }
        other => bail!("archive: {other:?} is not embedded or scylla"),
    }
}

impl Settings {
    fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file: FileConfig = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let consistency = match args
            .consistency
            .or(file.consistency)
            .as_deref()
            .unwrap_or("strict")
        {
            "strict" => Consistency::Strict,
            "fast" => Consistency::Fast,
            other => bail!("consistency: {other:?} is neither \"strict\" nor \"fast\""),
        };
        let json_logs = match args
            .log_format
            .or(file.log_format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => false,
            "json" => true,
            other => bail!("log_format: {other:?} is neither \"text\" nor \"json\""),
        };
        let shards = args.shards.or(file.shards).unwrap_or(4);
        if !(1..=1024).contains(&shards) {
            bail!("shards: {shards} is not between 1 and 1024");
        }
        let replication = args.replication.or(file.replication).unwrap_or(3);
        if !(1..=7).contains(&replication) {
            bail!("replication: {replication} is not between 1 and 7");
        }
        let join = args.join.or(file.join);
        if let Some(j) = &join
            && j.parse::<SocketAddr>().is_err()
            && j.rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            bail!("join: {j:?} is not a host:port peer address");
        }
        let join_token = args.join_token.or(file.join_token);
        if let Some(t) = &join_token
            && t.trim().chars().count() < quotad_engine::peer_auth::MIN_JOIN_TOKEN_LEN
        {
            bail!(
                "join_token: at least {} characters (it is all a stranger needs to join)",
                quotad_engine::peer_auth::MIN_JOIN_TOKEN_LEN
            );
        }
        if join.is_some() && join_token.is_none() {
            bail!("join_token: required to join a cluster (--join-token or QUOTAD_JOIN_TOKEN)");
        }
        let node_labels = node_labels(&args.node_labels, file.node_labels)?;
        let reserved = args.reserved || file.reserved.unwrap_or(false);
        if reserved && !node_labels.contains_key(quotad_engine::model::membership::POOL_LABEL) {
            bail!(
                "reserved: a node is reserved for its pool; give it one (--node-label pool=NAME)"
            );
        }
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
            args.tls_client_ca.or(file.tls_client_ca),
        ) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (Some(_), None, _) => bail!("tls_key: required with tls_cert"),
            (None, Some(_), _) => bail!("tls_cert: required with tls_key"),
            (None, None, Some(_)) => {
                bail!("tls_client_ca: client certificates need TLS: give tls_cert and tls_key")
            }
            (None, None, None) => None,
        };
        if let Some(t) = &tls
            && t.client_ca.is_none()
            && join.is_some()
        {
            bail!(
                "tls_client_ca: the nodes of a TLS cluster reach each other over mutual TLS; give the cluster's CA"
            );
        }
        let tls_service_identities: Vec<String> = if args.tls_service_identities.is_empty() {
            file.tls_service_identities.unwrap_or_default()
        } else {
            args.tls_service_identities
        }
        .into_iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
        if !tls_service_identities.is_empty() && tls.as_ref().is_none_or(|t| t.client_ca.is_none())
        {
            bail!(
                "tls_service_identities: services are recognised by client certificates; give tls_client_ca (and tls_cert, tls_key)"
            );
        }
        for n in &tls_service_identities {
            if rustls::pki_types::DnsName::try_from(n.as_str()).is_err() {
                bail!("tls_service_identities: {n:?} is not a DNS name");
            }
        }
        let allow_plaintext = args.allow_plaintext || file.allow_plaintext.unwrap_or(false);
        let archive = archive_choice(
            args.archive.or(file.archive),
            args.archive_dir.or(file.archive_dir),
            args.scylla_nodes.or(file.scylla_nodes),
            args.scylla_keyspace.or(file.scylla_keyspace),
            args.scylla_replication.or(file.scylla_replication),
        )?;
        let sync_interval_secs = args
            .sync_interval_secs
            .or(file.sync_interval_secs)
            .unwrap_or(10);
        if sync_interval_secs == 0 {
            bail!("sync_interval_secs: must be at least 1");
        }
        let max_clock_skew_ms = args
            .max_clock_skew_ms
            .or(file.max_clock_skew_ms)
            .unwrap_or(1_000);
        if max_clock_skew_ms > 86_400_000 {
            bail!("max_clock_skew_ms: {max_clock_skew_ms} is more than a day");
        }
        let clock_offset_ms = args.clock_offset_ms.or(file.clock_offset_ms).unwrap_or(0);
        if clock_offset_ms.unsigned_abs() > 30 * 86_400_000 {
            bail!("clock_offset_ms: {clock_offset_ms} is more than 30 days");
        }
        let forward_timeout_secs = args
            .forward_timeout_secs
            .or(file.forward_timeout_secs)
            .unwrap_or(6);
        if !(1..=300).contains(&forward_timeout_secs) {
            bail!("forward_timeout_secs: {forward_timeout_secs} is not between 1 and 300");
        }
        let snapshot_every = args.snapshot_every.or(file.snapshot_every).unwrap_or(5_000);
        if snapshot_every == 0 {
            bail!("snapshot_every: must be at least 1");
        }
        let defaults = Limits::default();
        let limits = Limits {
            max_in_flight: at_least_1(
                "max_in_flight",
                args.max_in_flight
                    .or(file.max_in_flight)
                    .unwrap_or(defaults.max_in_flight),
            )?,
            tenant_queue: at_least_1(
                "tenant_queue",
                args.tenant_queue
                    .or(file.tenant_queue)
                    .unwrap_or(defaults.tenant_queue),
            )?,
            commit_queue: at_least_1(
                "commit_queue",
                args.commit_queue
                    .or(file.commit_queue)
                    .unwrap_or(defaults.commit_queue),
            )?,
        };
        let request_timeout_secs = args
            .request_timeout_secs
            .or(file.request_timeout_secs)
            .unwrap_or(30);
        at_least_1("request_timeout_secs", request_timeout_secs as usize)?;
        let grpc_max_streams = args
            .grpc_max_streams
            .or(file.grpc_max_streams)
            .unwrap_or(1_024);
        at_least_1("grpc_max_streams", grpc_max_streams as usize)?;
        let data_plane_auth = match args.data_plane_auth.or(file.data_plane_auth) {
            Some(v) => v
                .parse::<DataPlaneAuth>()
                .map_err(|e| anyhow::anyhow!("data_plane_auth: {e}"))?,
            None => DataPlaneAuth::Required,
        };
        let metrics_auth = match args.metrics_auth.or(file.metrics_auth) {
            Some(v) => v
                .parse::<MetricsAuth>()
                .map_err(|e| anyhow::anyhow!("metrics_auth: {e}"))?,
            None => MetricsAuth::Required,
        };
        let metrics_addr = args.metrics_addr.or(file.metrics_addr);
        let idle_timeout_secs = args
            .idle_timeout_secs
            .or(file.idle_timeout_secs)
            .unwrap_or(quotad_engine::idle::DEFAULT_IDLE.as_secs());
        at_least_1("idle_timeout_secs", idle_timeout_secs as usize)?;
        let console_session_mins = args
            .console_session_mins
            .or(file.console_session_mins)
            .unwrap_or(60);
        at_least_1("console_session_mins", console_session_mins as usize)?;
        let allow_private_webhooks =
            args.allow_private_webhooks || file.allow_private_webhooks.unwrap_or(false);
        let billing_grace_days = args
            .billing_grace_days
            .or(file.billing_grace_days)
            .unwrap_or(7);
        if billing_grace_days > 365 {
            bail!("billing_grace_days: {billing_grace_days} is more than a year");
        }
        let billing = quotad_engine::engine::BillingConfig {
            grace: Duration::from_secs(billing_grace_days * 86_400),
            suspend: args.billing_suspend || file.billing_suspend.unwrap_or(false),
        };
        let secrets_key = match std::env::var("QUOTAD_SECRET_KEY") {
            Ok(text) if !text.trim().is_empty() => Some(
                quotad_engine::custom::secret::SecretsKey::parse(&text)
                    .map_err(|e| anyhow::anyhow!("QUOTAD_SECRET_KEY: {e}"))?,
            ),
            _ => None,
        };
        let grpc_addr = args
            .grpc_addr
            .or(file.grpc_addr)
            .unwrap_or_else(|| "127.0.0.1:50051".parse().expect("valid address"));
        let http_addr = args
            .http_addr
            .or(file.http_addr)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address"));
        let peer_addr = args
            .peer_addr
            .or(file.peer_addr)
            .unwrap_or_else(|| "127.0.0.1:7947".parse().expect("valid address"));
        if tls.is_none() && !allow_plaintext {
            for (name, addr) in [
                ("grpc_addr", Some(grpc_addr)),
                ("http_addr", Some(http_addr)),
                ("peer_addr", Some(peer_addr)),
                ("metrics_addr", metrics_addr),
            ]
            .into_iter()
            .filter_map(|(name, addr)| Some((name, addr?)))
            {
                if !quotad_engine::tls::is_loopback(&addr) {
                    bail!(
                        "{name}: {addr} is reachable from other hosts and TLS is off: give \
                         --tls-cert and --tls-key, or --allow-plaintext to serve it in the clear"
                    );
                }
            }
        }
        Ok(Settings {
            data_plane_auth,
            metrics_auth,
            metrics_addr,
            idle_timeout: Duration::from_secs(idle_timeout_secs),
            console_session: Duration::from_secs(console_session_mins.saturating_mul(60)),
            allow_private_webhooks,
            billing,
            secrets_key,
            tls,
            tls_service_identities,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./quotad-data")),
            grpc_addr,
            http_addr,
            peer_addr,
            advertise_host: args.advertise_host.or(file.advertise_host),
            advertise_peer_addr: args.advertise_peer_addr.or(file.advertise_peer_addr),
            join,
            join_token: join_token.map(|t| t.trim().to_string()),
            node_labels,
            reserved,
            replication,
            shards,
            consistency,
            tier_catalog: args.tier_catalog.or(file.tier_catalog),
            actor_idle: Duration::from_secs(
                args.actor_idle_secs
                    .or(file.actor_idle_secs)
                    .unwrap_or(300)
                    .max(1),
            ),
            snapshot_every,
            archive,
            sync_interval: Duration::from_secs(sync_interval_secs),
            max_clock_skew: (max_clock_skew_ms > 0)
                .then(|| Duration::from_millis(max_clock_skew_ms)),
            clock_offset_ms,
            limits,
            request_timeout: Duration::from_secs(request_timeout_secs),
            grpc_max_streams,
            forward_timeout: Duration::from_secs(forward_timeout_secs),
            json_logs,
            jwt_public_key: args.jwt_public_key.or(file.jwt_public_key),
            envoy_config: args.envoy_config.or(file.envoy_config),
            otlp: otlp_settings(
                args.otlp_endpoint.or(file.otlp_endpoint),
                args.otlp_sample_ratio.or(file.otlp_sample_ratio),
            )?,
            metrics_max_tenants: args
                .metrics_max_tenants
                .or(file.metrics_max_tenants)
                .unwrap_or(1_000),
            deletion_retention: Duration::from_secs(
                args.deletion_retention_days
                    .or(file.deletion_retention_days)
                    .unwrap_or(30)
                    * 86_400,
            ),
            platform_fee_bp: match args.platform_fee_percent.or(file.platform_fee_percent) {
                Some(text) => {
                    quotad_engine::sharing::policy::percent_bp("--platform-fee-percent", &text)?
                }
                None => quotad_engine::sharing::DEFAULT_PLATFORM_FEE_BP,
            },
        })
    }
}

/// A TOML number or string, as its text (read exactly later).
fn number_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<toml::Value>::deserialize(d)? {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(toml::Value::Float(f)) => Ok(Some(f.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a percentage, found {}",
            other.type_str()
        ))),
    }
}

/// `--otlp-endpoint` and `--otlp-sample-ratio`: a ratio alone traces
/// nothing, so it is refused rather than ignored.
fn otlp_settings(endpoint: Option<String>, ratio: Option<f64>) -> Result<Option<(String, f64)>> {
    if let Some(r) = ratio
        && !(0.0..=1.0).contains(&r)
    {
        bail!("otlp_sample_ratio: {r} is not a fraction between 0 and 1");
    }
    match endpoint.filter(|e| !e.trim().is_empty()) {
        Some(e) => Ok(Some((e.trim().to_string(), ratio.unwrap_or(0.01)))),
        None if ratio.is_some() => {
            bail!("otlp_sample_ratio: set without otlp_endpoint, where traces would go")
        }
        None => Ok(None),
    }
}

fn at_least_1(name: &str, n: usize) -> Result<usize> {
    if n == 0 {
        bail!("{name}: must be at least 1");
    }
    Ok(n)
}

/// The engine settings a node's `Settings` give, before its addresses.
fn engine_config(s: &Settings) -> Result<EngineConfig> {
    let catalog = match &s.tier_catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading tier catalog {}", path.display()))?;
            TierCatalog::parse(&text)?
        }
        None => TierCatalog::builtin(),
    };
    let mut config = EngineConfig::new(&s.data_dir);
    config.shards = s.shards;
    config.default_consistency = s.consistency;
    config.catalog = catalog;
    config.idle_after = s.actor_idle;
    config.raft.snapshot_every = s.snapshot_every;
    config.deletion_retention = s.deletion_retention;
    config.platform_fee_bp = s.platform_fee_bp;
    config.metrics_max_tenants = s.metrics_max_tenants;
    config.archive = s.archive.clone();
    config.sync_interval = s.sync_interval;
    config.forward_timeout = s.forward_timeout;
    config.replication = s.replication;
    config.max_clock_skew = s.max_clock_skew;
    if s.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = s.clock_offset_ms,
            "this node's clock is shifted by --clock-offset-ms"
        );
        config.clock = std::sync::Arc::new(quotad_engine::clock_skew::OffsetClock {
            inner: config.clock.clone(),
            offset_ms: s.clock_offset_ms,
        });
    }
    config.limits = s.limits;
    config.secrets_key = s.secrets_key.clone();
    config.webhooks.allow_private = s.allow_private_webhooks;
    config.billing = s.billing.clone();
    Ok(config)
}

/// `quotad restore --from-archive`: found a node on `data_dir` (normally
/// empty) and rebuild every tenant the archive holds into it, then stop.
/// `quotad serve` on the same data dir then serves them; other nodes join
/// it as usual and receive the state through Raft.
pub async fn restore(from_archive: bool, args: ServeArgs) -> Result<()> {
    if !from_archive {
        bail!("restore: --from-archive is required (the archive is the only source)");
    }
    let s = Settings::resolve(args)?;
    super::logs::init(s.json_logs);
    if s.join.is_some() {
        bail!("join: a restore founds its cluster; join the other nodes to it afterwards");
    }
    let mut config = engine_config(&s)?;
    let peer = s
        .advertise_peer_addr
        .clone()
        .unwrap_or_else(|| s.peer_addr.to_string());
    config.advertise = Advertise {
        peer,
        grpc: s.grpc_addr.to_string(),
        http: s.http_addr.to_string(),
        labels: s.node_labels.clone(),
        reserved: s.reserved,
    };
    let engine = Engine::open(config)
        .await
        .with_context(|| format!("opening the node on {}", s.data_dir.display()))?;
    let archive = engine.archive().await.context("opening the archive")?;
    let report = match engine.restore_from_archive(archive.as_ref()).await {
        // The archive then holds the restored groups' snapshots at once
        // (theirs are newer than the ones restored from), should the node
        // be lost again before it takes its own.
        Ok(report) => engine
            .backup_to_archive()
            .await
            .map(|_| report)
            .context("archiving the restored state"),
        Err(e) => Err(anyhow::Error::new(e).context("restoring from the archive")),
    };
    engine.shutdown().await;
    let report = report?;
    outln!(
        "restored {} tenants ({} into dedicated groups) from {} archived snapshots ({} units of usage and {} audit events after them) into {}",
        report.tenants,
        report.dedicated,
        report.snapshots.len(),
        report.usage_added,
        report.audit_added,
        s.data_dir.display()
    )?;
    if report.sharing_policies > 0 {
        outln!(
            "restored {} sharing policies with their access requests and grants",
            report.sharing_policies
        )?;
    }
    Ok(())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let s = Settings::resolve(args)?;
    super::logs::init(s.json_logs);

    let mut config = engine_config(&s)?;
    let rls = match &s.envoy_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading Envoy rate limit config {}", path.display()))?;
            RlsConfig::parse(&text)
                .map_err(|e| anyhow::anyhow!("Envoy rate limit config {}: {e}", path.display()))?
        }
        None => RlsConfig::default(),
    };
    // Bind first: a busy port fails fast, before any state is touched.
    let grpc = tokio::net::TcpListener::bind(s.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", s.grpc_addr))?;
    let http = tokio::net::TcpListener::bind(s.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", s.http_addr))?;
    let peer = tokio::net::TcpListener::bind(s.peer_addr)
        .await
        .with_context(|| format!("binding peer address {}", s.peer_addr))?;
    let metrics_listener = match s.metrics_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics address {a}"))?,
        ),
        None => None,
    };
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    let peer_addr = peer.local_addr()?;
    let advertise = |a: SocketAddr| match &s.advertise_host {
        Some(h) => format!("{h}:{}", a.port()),
        None => a.to_string(),
    };

    // Prometheus: one recorder for the process (the `metrics` facade's
    // design); /metrics renders it. Installed before anything can count:
    // the engine keeps the counter handles it registers.
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            quotad_control_plane::metrics::LATENCY_BUCKETS,
        )?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    // Memory freed in bulk (a day's scope values swept at midnight) goes
    // back to the kernel instead of staying resident until reused.
    tokio::spawn(async {
        let mut every = tokio::time::interval(crate::memory::CHECK_EVERY);
        loop {
            every.tick().await;
            if let Ok(Some(free)) = tokio::task::spawn_blocking(crate::memory::maintain).await {
                tracing::debug!(
                    free_mib = free >> 20,
                    "returned the allocator's free memory to the system"
                );
            }
        }
    });

    // The peer port serves Raft and the cluster service from now on: a
    // joining node must receive its groups' entries while it starts.
    let transport = TransportService::default();
    let cluster = ClusterService::with_auth(transport.peer_auth().clone());
    // Peers multiplex Raft and every request they forward over one
    // connection: room for a peer's whole in-flight budget of forwards
    // plus Raft, so forwards never queue Raft heartbeats behind them.
    let peer_streams = u32::try_from(s.limits.max_in_flight)
        .unwrap_or(u32::MAX)
        .saturating_add(1_024);
    // TLS on every port when configured (files checked now: a wrong one
    // stops the start with its name).
    let tls = match &s.tls {
        Some(files) => Some(PortsTls::load(files).context("loading the TLS files")?),
        None => None,
    };
    let peer_router = limits(
        tonic::transport::Server::builder(),
        PEER_TIMEOUT,
        peer_streams,
        TraceLayer::peers(),
    )
    .add_service(transport.clone().server())
    .add_service(cluster.clone().server());
    let peer_task = serve_grpc(
        peer_router,
        peer,
        tls.as_ref().map(|t| &t.peer),
        s.idle_timeout,
    );

    // JWT_SECRET, or a secret generated once into the data dir.
    let jwt_secret = super::secret::resolve(&s.data_dir, true)?;
    let mut auth = JwtKeys::hs256(&jwt_secret)?;
    // Console sessions are signed with a key derived from the same
    // secret: every node of the deployment accepts them.
    let console = quotad_control_plane::console::ConsoleConfig {
        key: quotad_control_plane::console::session::SessionKey::derive(&jwt_secret),
        secure: s.tls.is_some(),
        session_ttl: s.console_session,
    };
    if let Some(pem) = &s.jwt_public_key {
        let key = std::fs::read(pem)
            .with_context(|| format!("reading JWT public key {}", pem.display()))?;
        auth = auth.with_rs256_pem(&key)?;
    }

    config.advertise = Advertise {
        peer: s
            .advertise_peer_addr
            .clone()
            .unwrap_or_else(|| advertise(peer_addr)),
        grpc: advertise(grpc_addr),
        http: advertise(http_addr),
        labels: s.node_labels.clone(),
        reserved: s.reserved,
    };
    config.join = s.join.clone();
    config.join_token = s.join_token.clone();
    config.peer_tls = match &s.tls {
        Some(files) if files.client_ca.is_some() => Some(files.peer_client()?),
        _ => None,
    };
    config.transport = transport;
    // Connections to peers leave from the peer address's host, so a node
    // is recognisable by source address (firewall rules, partition tests).
    config.peer_source_ip = Some(peer_addr.ip()).filter(|ip| !ip.is_unspecified());
    let engine = Engine::open(config)
        .await
        .with_context(|| format!("opening data dir {}", s.data_dir.display()))?;
    cluster.set_router(engine.router().clone());
    let traces = match &s.otlp {
        Some((endpoint, ratio)) => {
            let exporter = quotad_engine::trace::install(endpoint, *ratio, engine.node_id())
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(%endpoint, ratio, "sending traces of sampled requests over OTLP");
            Some(exporter)
        }
        None => None,
    };

    // Purge soft-deleted tenants whose retention has ended.
    let sweeper = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            match sweeper.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged deleted tenants past their retention"),
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed; retrying next minute")
                }
            }
        }
    });

    // Move cross-tenant usage records to their providers' totals.
    let mover = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            every.tick().await;
            if let Err(e) = mover.transfer_shared_usage().await {
                tracing::debug!(error = %e, "usage transfers not done; retrying");
            }
        }
    });

    if s.data_plane_auth == DataPlaneAuth::Off {
        tracing::warn!(
            "--data-plane-auth off: every QuotaService and Envoy RLS call is allowed without a credential"
        );
    }
    let data_auth = Authenticator::new(s.data_plane_auth, auth.clone(), engine.clone())
        .with_service_identities(s.tls_service_identities.clone());
    let (reflection, reflection_v1alpha) = quotad_engine::grpc::reflection()?;
    let grpc_server = limits(
        tonic::transport::Server::builder(),
        s.request_timeout,
        s.grpc_max_streams,
        TraceLayer::clients(),
    )
    .add_service(quotad_engine::grpc::service(
        engine.clone(),
        data_auth.clone(),
    ))
    .add_service(quotad_engine::grpc::cluster_port::server(
        cluster,
        data_auth.clone(),
    ))
    .add_service(quotad_engine::grpc::envoy_rls::server(
        engine.clone(),
        data_auth.clone(),
        rls,
    ))
    .add_service(reflection)
    .add_service(reflection_v1alpha);
    let grpc_task = serve_grpc(
        grpc_server,
        grpc,
        tls.as_ref().map(|t| &t.grpc),
        s.idle_timeout,
    );
    let http_task = serve_http(
        quotad_control_plane::router(
            engine.clone(),
            auth,
            Some(metrics.clone()),
            s.metrics_auth,
            s.request_timeout,
            console,
            data_auth,
        ),
        http,
        tls.as_ref().map(|t| &t.http),
        s.idle_timeout,
    );
    let metrics_addr = match metrics_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            // Over TLS like the REST port when TLS is on; its own task,
            // which ends with the others at the shutdown signal.
            serve_http(
                quotad_control_plane::metrics_router(engine.clone(), metrics),
                l,
                tls.as_ref().map(|t| &t.http),
                s.idle_timeout,
            );
            format!(" metrics={addr}")
        }
        None => String::new(),
    };

    let node = engine.node_id();
    tracing::info!(node, %grpc_addr, %http_addr, %peer_addr, data_dir = %s.data_dir.display(), "quotad serving");
    // One line on stdout, for scripts and tests that start with port 0.
    outln!(
        "quotad listening grpc={grpc_addr} http={http_addr} peer={peer_addr} node={node}{metrics_addr}"
    )?;

    let (g, h) = tokio::join!(grpc_task, http_task);
    engine.shutdown().await;
    if let Some(traces) = traces {
        // Sends what is queued: blocking, off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    g?.context("gRPC server")?;
    h?.context("HTTP server")?;
    peer_task.await?.context("peer server")?;
    Ok(())
}

/// The peer port's request timeout. Forwarded requests end well before
/// (their origin's own timeout), so this only bounds a stalled peer call;
/// it is long enough for a 64 MiB AppendEntries on a slow link.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP/2 keepalive on the gRPC and peer ports: a ping every 30 s on an
/// idle connection, closed if not answered within 20 s, so a vanished
/// client or peer (no FIN: a dead host, a cut link) does not hold its
/// streams and their in-flight places for the kernel's hours.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Server-wide limits of a gRPC port, and malformed requests answered
/// INVALID_ARGUMENT. Message sizes are per service (see
/// `quotad_engine::grpc::MAX_MESSAGE_BYTES` and the peer services).
fn limits(
    builder: tonic::transport::Server,
    timeout: Duration,
    max_streams: u32,
    traces: TraceLayer,
) -> tonic::transport::Server<Layers> {
    builder
        // Per call, until its answer (headers) is ready: a Stream's later
        // answers are not cut. A client's shorter grpc-timeout wins.
        .timeout(timeout)
        .max_concurrent_streams(max_streams)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(super::malformed::layer())
        // Around the services: a traced call's span is the whole call.
        .layer(traces)
}

/// A gRPC port's layers (see [`limits`]).
pub(crate) type Layers = tower::layer::util::Stack<TraceLayer, super::malformed::Layered>;

/// `--node-label key=value` flags (they win, key by key, over the file's
/// `node_labels` table), checked as the cluster checks them.
fn node_labels(
    flags: &[String],
    file: Option<std::collections::BTreeMap<String, String>>,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    use quotad_engine::model::membership::{MAX_LABELS, check_label};
    let mut labels = file.unwrap_or_default();
    for flag in flags.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        let Some((k, v)) = flag.split_once('=') else {
            bail!("node_labels: {flag:?} is not key=value");
        };
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    for (k, v) in &labels {
        check_label(k, v).map_err(|m| anyhow::anyhow!("node_labels: {m}"))?;
    }
    if labels.len() > MAX_LABELS {
        bail!("node_labels: at most {MAX_LABELS} labels");
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_settings_are_checked_and_bad_ones_named() {
        let s = |k: &str| Some(k.to_string());
        assert!(matches!(
            archive_choice(None, None, None, None, None).unwrap(),
            ArchiveChoice::Embedded
        ));
        assert!(matches!(
            archive_choice(None, Some("/backup".into()), None, None, None).unwrap(),
            ArchiveChoice::EmbeddedAt(d) if d == std::path::Path::new("/backup")
        ));
        match archive_choice(
            s("scylla"),
            None,
            s("10.0.0.1:9042, 10.0.0.2:9042"),
            None,
            s("eu:3,us:2"),
        )
        .unwrap()
        {
            ArchiveChoice::Scylla(c) => {
                assert_eq!(c.nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
                assert_eq!(c.keyspace, "quotad");
                assert_eq!(
                    c.replication.into_iter().collect::<Vec<_>>(),
                    [("eu".to_string(), 3), ("us".to_string(), 2)]
                );
            }
            other => panic!("{other:?}"),
        }
        let err = |k, n, ks, r| archive_choice(k, None, n, ks, r).unwrap_err().to_string();
        assert!(
            archive_choice(s("scylla"), Some("/x".into()), s("h:9042"), None, None)
                .unwrap_err()
                .to_string()
                .starts_with("archive_dir:")
        );
        assert!(err(s("cassandra"), None, None, None).starts_with("archive:"));
        assert!(err(s("scylla"), None, None, None).starts_with("scylla_nodes:"));
        assert!(err(None, s("h:9042"), None, None).starts_with("scylla_nodes:"));
        assert!(err(s("scylla"), s("h:9042"), None, s("eu")).starts_with("scylla_replication:"));
        assert!(err(s("scylla"), s("h:9042"), None, s("eu:x")).starts_with("scylla_replication:"));
        assert!(err(s("scylla"), s("h:9042"), s("bad-name"), None).contains("keyspace"));
    }

    #[test]
    fn example_config_file_resolves() {
        let args = ServeArgs {
            config: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/quotad.example.toml"
            ))),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(
            (s.shards, s.consistency, s.json_logs),
            (4, Consistency::Strict, false)
        );
    }

    #[test]
    fn node_labels_are_checked_and_flags_win_over_the_file() {
        let file: std::collections::BTreeMap<String, String> = [
            ("pool".to_string(), "a".to_string()),
            ("zone".to_string(), "x".to_string()),
        ]
        .into();
        let labels = node_labels(&["pool=acme".into()], Some(file)).unwrap();
        assert_eq!(labels["pool"], "acme");
        assert_eq!(labels["zone"], "x");
        let err = node_labels(&["pool=ACME".into()], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("node_labels: label value \"ACME\""),
            "{err}"
        );
        let err = node_labels(&["pool".into()], None).unwrap_err().to_string();
        assert_eq!(err, "node_labels: \"pool\" is not key=value");
    }

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_named() {
        let args = ServeArgs {
            config: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/quotad.example.toml"
            ))),
            shards: Some(8),
            consistency: Some("fast".into()),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!((s.shards, s.consistency), (8, Consistency::Fast));
        let s = Settings::resolve(ServeArgs {
            forward_timeout_secs: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            engine_config(&s).unwrap().forward_timeout,
            Duration::from_secs(2)
        );
        let err = Settings::resolve(ServeArgs {
            forward_timeout_secs: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("forward_timeout_secs:"),
            "{err}"
        );
        let err = Settings::resolve(ServeArgs {
            consistency: Some("eventual".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("consistency"), "{err}");
    }

    #[test]
    fn traces_need_an_endpoint_and_a_fraction() {
        let endpoint = Some("http://127.0.0.1:4317".to_string());
        assert_eq!(
            otlp_settings(endpoint.clone(), None).unwrap(),
            Some(("http://127.0.0.1:4317".into(), 0.01))
        );
        assert_eq!(otlp_settings(None, None).unwrap(), None);
        // The config file's keys, under the flags.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quotad.toml");
        std::fs::write(
            &file,
            "otlp_endpoint = \"http://127.0.0.1:4317\"\notlp_sample_ratio = 0.5\n",
        )
        .unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.otlp, Some(("http://127.0.0.1:4317".into(), 0.5)));
        let s = Settings::resolve(ServeArgs {
            config: Some(file),
            otlp_sample_ratio: Some(0.25),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.otlp, Some(("http://127.0.0.1:4317".into(), 0.25)));
        for (endpoint, ratio, says) in [
            (None, Some(0.5), "without otlp_endpoint"),
            (endpoint.clone(), Some(1.5), "otlp_sample_ratio: 1.5"),
            (endpoint, Some(-0.1), "otlp_sample_ratio: -0.1"),
        ] {
            let e = otlp_settings(endpoint, ratio).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn load_limits_default_can_be_set_and_zero_is_refused_by_name() {
        let s = Settings::resolve(ServeArgs::default()).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(
            (s.request_timeout, s.grpc_max_streams),
            (Duration::from_secs(30), 1_024)
        );
        let s = Settings::resolve(ServeArgs {
            max_in_flight: Some(100),
            tenant_queue: Some(10),
            commit_queue: Some(20),
            request_timeout_secs: Some(5),
            grpc_max_streams: Some(64),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.limits,
            Limits {
                max_in_flight: 100,
                tenant_queue: 10,
                commit_queue: 20
            }
        );
        assert_eq!(engine_config(&s).unwrap().limits, s.limits);
        assert_eq!(
            (s.request_timeout, s.grpc_max_streams),
            (Duration::from_secs(5), 64)
        );
        let zero = |args: ServeArgs| Settings::resolve(args).unwrap_err().to_string();
        for (err, name) in [
            (
                zero(ServeArgs {
                    max_in_flight: Some(0),
                    ..Default::default()
                }),
                "max_in_flight",
            ),
            (
                zero(ServeArgs {
                    tenant_queue: Some(0),
                    ..Default::default()
                }),
                "tenant_queue",
            ),
            (
                zero(ServeArgs {
                    commit_queue: Some(0),
                    ..Default::default()
                }),
                "commit_queue",
            ),
            (
                zero(ServeArgs {
                    request_timeout_secs: Some(0),
                    ..Default::default()
                }),
                "request_timeout_secs",
            ),
            (
                zero(ServeArgs {
                    grpc_max_streams: Some(0),
                    ..Default::default()
                }),
                "grpc_max_streams",
            ),
        ] {
            assert!(err.starts_with(name), "{err}");
        }
    }
}
