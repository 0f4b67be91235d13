//! `quotad bench`: the load generator. It drives `Check`, `Increment`,
//! `Batch` or Envoy's `ShouldRateLimit` with `connections x in_flight`
//! requests outstanding (closed loop) or at a fixed rate (open loop), over
//! uniform or Zipf-distributed tenants, for a duration or a request count,
//! and reports throughput and HDR latency percentiles as a table or JSON.
//!
//! Against quotad it creates its own ENTERPRISE tenants (unlimited quotas,
//! so every increment is admitted and written) and, unless `--direct`, sends
//! each call to the leader of the tenant's group through the routing client
//! ([`QuotaClient`]), as a production client would. `--synthetic-tenants`
//! skips the set-up and names tenants `tenant-0..N`, so `--op rls` can load
//! any Envoy rate limit server (e.g. Limitador) the same way. `--ceiling`
//! repeats the same load against `quotad ceiling` (an empty server on the
//! same stack) in the same run and reports each figure as a fraction of it.
use crate::cli::out::outln;
mod report;
mod zipf;

use super::client::Conn;
use super::table;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quotad_proto::client::QuotaClient;
use quotad_proto::credential::{AuthChannel, Bearer};
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use report::{Report, histogram, open_loop_offset};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use zipf::{KeyDist, Rng};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Op {
    Increment,
    Check,
    /// `Batch` of `--batch-size` increments, each for a drawn tenant.
    Batch,
    /// Envoy's `ShouldRateLimit`, one descriptor (`tenant_id`, `quota`).
    Rls,
    /// Increments over one `Stream` per connection, `in_flight` outstanding
    /// on each (closed loop only).
    Stream,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Fast,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Zipf,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// gRPC addresses to send to (comma-separated; the first loads the shard
    /// map) [default: --grpc]
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    #[arg(long, value_enum, default_value_t = Op::Increment)]
    op: Op,
    /// Consistency of increments.
    #[arg(long, value_enum, default_value_t = Mode::Strict)]
    consistency: Mode,
    /// Client connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests outstanding per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Run this long (seconds)...
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// ...or stop after this many requests, whichever comes first.
    #[arg(long)]
    requests: Option<u64>,
    /// Open loop: send this many requests per second in total, evenly
    /// spaced, whatever the answers' latency (which then includes the time
    /// a request waited for a free slot). Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Tenants to spread the load over.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// How tenants are drawn for each request.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Zipf exponent (1.0: the k-th tenant gets 1/k of the first's load).
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// Items per `Batch` request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Send each call to the connection's node as given, without routing
    /// (as Envoy does); the node forwards when it does not lead the group.
    #[arg(long)]
    direct: bool,
    /// Create nothing: tenants are named tenant-0..N (for `--op rls`
    /// against any Envoy rate limit server).
    #[arg(long)]
    synthetic_tenants: bool,
    /// Keep the created tenant ids in this file and reuse them next time.
    #[arg(long)]
    tenants_file: Option<PathBuf>,
    /// Envoy domain of `--op rls` requests.
    #[arg(long, default_value = "bench")]
    rls_domain: String,
    /// Also run the same load against an empty server on the same stack
    /// (`quotad ceiling`, started for the run) and report the fraction.
    #[arg(long)]
    ceiling: bool,
}

/// The load, the same for the target and the ceiling.
struct Load {
    op: Op,
    mode: Mode,
    connections: usize,
    in_flight: usize,
    duration: Duration,
    limit: u64,
    rate: Option<f64>,
    keys: KeyDist,
    batch_size: usize,
    domain: String,
}

/// One connection, as the op needs it.
#[derive(Clone)]
enum Client {
    Routed(Arc<QuotaClient>),
    Direct(QuotaServiceClient<AuthChannel>),
    Rls(RateLimitServiceClient<AuthChannel>),
}

/// A channel to `addr`: as `conn` reaches nodes (TLS for https:// or with
/// --ca-cert), or in plaintext (the ceiling server).
fn channel(addr: &str, conn: Option<&Conn>) -> anyhow::Result<Channel> {
    let endpoint = match conn {
        Some(conn) => conn.endpoint(addr)?,
        None => {
            let url = if addr.starts_with("http") {
                addr.to_string()
            } else {
                format!("http://{addr}")
            };
            tonic::transport::Endpoint::from_shared(url)
                .with_context(|| format!("address {addr:?}"))?
        }
    };
    Ok(endpoint.tcp_nodelay(true).connect_lazy())
}

async fn clients(
    load: &Load,
    nodes: &[String],
    routed: bool,
    bearer: &Bearer,
    conn: Option<&Conn>,
) -> anyhow::Result<Vec<Client>> {
    let channel = |addr: &str| channel(addr, conn);
    let mut out = Vec::with_capacity(load.connections);
    for c in 0..load.connections {
        // Spread the connections over the nodes, as several Envoys would.
        let addr = &nodes[c % nodes.len()];
        out.push(match load.op {
            Op::Rls => Client::Rls(RateLimitServiceClient::new(bearer.on(channel(addr)?))),
            // A batch or stream spans groups: it goes to one node, which
            // forwards.
            Op::Batch | Op::Stream => {
                Client::Direct(QuotaServiceClient::new(bearer.on(channel(addr)?)))
            }
            Op::Check | Op::Increment if routed => {
                let tls = match conn {
                    Some(c) if nodes.iter().any(|n| n.starts_with("https://")) => {
                        Some(c.grpc_tls()?)
                    }
                    _ => None,
                };
                Client::Routed(Arc::new(
                    QuotaClient::connect_tls(nodes.to_vec(), bearer.clone(), tls)
                        .await
                        .map_err(|s| anyhow::anyhow!("connecting: {}", s.message()))?,
                ))
            }
            Op::Check | Op::Increment => {
                Client::Direct(QuotaServiceClient::new(bearer.on(channel(addr)?)))
            }
        });
    }
    Ok(out)
}

fn consistency(mode: Mode) -> i32 {
    let c = match mode {
        Mode::Strict => pb::Consistency::Strict,
        Mode::Fast => pb::Consistency::Fast,
    };
    c as i32
}

fn increment(tenant: &str, mode: Mode) -> pb::IncrementRequest {
    pb::IncrementRequest {
        tenant_id: tenant.to_string(),
        quota: "api_requests".into(),
        amount: 1,
        idempotency_key: String::new(),
        consistency: consistency(mode),
        ..Default::default()
    }
}

fn check(tenant: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant_id: tenant.to_string(),
        quota: "api_requests".into(),
        amount: 1,
        ..Default::default()
    }
}

/// One descriptor naming the tenant and `api_requests` (quotad's default
/// Envoy mapping; a peer is configured with the same keys).
fn rls_request(domain: &str, tenant: &str) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_string(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                Entry {
                    key: "tenant_id".into(),
                    value: tenant.to_string(),
                },
                Entry {
                    key: "quota".into(),
                    value: "api_requests".into(),
                },
            ],
            ..Default::default()
        }],
        hits_addend: 1,
    }
}

/// Send one request; true when it (and every item of a batch) succeeded.
async fn send(client: &mut Client, load: &Load, tenants: &[String], rng: &mut Rng) -> bool {
    let mut tenant = || tenants[load.keys.sample(rng.unit())].as_str();
    match (client, load.op) {
        (Client::Rls(c), _) => c
            .should_rate_limit(rls_request(&load.domain, tenant()))
            .await
            .is_ok(),
        (Client::Routed(c), Op::Check) => c.check(check(tenant())).await.is_ok(),
        (Client::Routed(c), _) => c.increment(increment(tenant(), load.mode)).await.is_ok(),
        (Client::Direct(c), Op::Check) => c.check(check(tenant())).await.is_ok(),
        (Client::Direct(c), Op::Batch) => {
            let items = (0..load.batch_size)
                .map(|_| pb::BatchItem {
                    item: Some(pb::batch_item::Item::Increment(increment(
                        tenant(),
                        load.mode,
                    ))),
                })
                .collect();
            match c
                .batch(pb::BatchRequest {
                    items,
                    consistency: consistency(load.mode),
                })
                .await
            {
                Ok(r) => r
                    .get_ref()
                    .results
                    .iter()
                    .all(|r| matches!(r.result, Some(pb::batch_result::Result::Decision(_)))),
                Err(_) => false,
            }
        }
        (Client::Direct(c), _) => c.increment(increment(tenant(), load.mode)).await.is_ok(),
    }
}

/// `Op::Stream`: one stream per connection, `in_flight` requests
/// outstanding on each; latency from send to the answer with the same id.
async fn drive_streams(load: Arc<Load>, clients: Vec<Client>, tenants: Arc<Vec<String>>) -> Report {
    use futures::StreamExt;
    use std::collections::HashMap;
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let Client::Direct(mut client) = client else {
            unreachable!("streams use direct clients")
        };
        let (load, tenants, issued) = (load.clone(), tenants.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(load.in_flight);
            let sent = Arc::new(std::sync::Mutex::new(HashMap::<u64, Instant>::new()));
            let slots = Arc::new(tokio::sync::Semaphore::new(load.in_flight));
            let sender = {
                let (sent, slots, load) = (sent.clone(), slots.clone(), load.clone());
                tokio::spawn(async move {
                    let mut rng = Rng::new(c as u64 * 1_000_003 + 7919);
                    for id in 0u64.. {
                        let Ok(slot) = slots.acquire().await else {
                            break;
                        };
                        slot.forget();
                        if Instant::now() >= deadline
                            || issued.fetch_add(1, Ordering::Relaxed) >= load.limit
                        {
                            break;
                        }
                        let tenant = &tenants[load.keys.sample(rng.unit())];
                        let item = pb::BatchItem {
                            item: Some(pb::batch_item::Item::Increment(increment(
                                tenant, load.mode,
                            ))),
                        };
                        sent.lock().expect("sent times").insert(id, Instant::now());
                        let req = pb::StreamRequest {
                            id,
                            item: Some(item),
                        };
                        if tx.send(req).await.is_err() {
                            break;
                        }
                    }
                })
            };
            let mut h = histogram();
            let mut errors = 0u64;
            match client
                .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            {
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    while let Some(a) = answers.next().await {
                        let Ok(a) = a else {
                            errors += 1;
                            break;
                        };
                        let at = sent.lock().expect("sent times").remove(&a.id);
                        let ok = matches!(
                            a.result.and_then(|r| r.result),
                            Some(pb::batch_result::Result::Decision(_))
                        );
                        match (at, ok) {
                            (Some(at), true) => {
                                h.saturating_record(at.elapsed().as_micros().max(1) as u64)
                            }
                            _ => errors += 1,
                        }
                        slots.add_permits(1);
                    }
                }
                Err(_) => errors += 1,
            }
            slots.close();
            let _ = sender.await;
            (h, errors)
        }));
    }
    let mut all = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.expect("a stream task panicked");
        all.add(&h).expect("histograms with the same bounds");
        errors += e;
    }
    Report::new(&all, errors, 1, started.elapsed())
}

/// Run `load` over `clients` and measure it.
async fn drive(load: Arc<Load>, clients: Vec<Client>, tenants: Arc<Vec<String>>) -> Report {
    if load.op == Op::Stream {
        return drive_streams(load, clients, tenants).await;
    }
    let issued = Arc::new(AtomicU64::new(0));
    let tasks_n = clients.len() * load.in_flight;
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = Vec::with_capacity(tasks_n);
    for (c, client) in clients.into_iter().enumerate() {
        for f in 0..load.in_flight {
            let (mut client, load, tenants, issued) = (
                client.clone(),
                load.clone(),
                tenants.clone(),
                issued.clone(),
            );
            let task = c * load.in_flight + f;
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                let mut errors = 0u64;
                let mut rng = Rng::new(task as u64 * 1_000_003 + 7919);
                for k in 0.. {
                    // Open loop: the send is due at a fixed time. A request
                    // held back by the previous answer counts from when it
                    // was due (no coordinated omission); one that waited
                    // for its time counts from its actual send.
                    let mut from = None;
                    if let Some(rate) = load.rate {
                        let due = started + open_loop_offset(task, tasks_n, rate, k);
                        if due >= deadline {
                            break;
                        }
                        if due > Instant::now() {
                            tokio::time::sleep_until(due.into()).await;
                        } else {
                            from = Some(due);
                        }
                    }
                    if Instant::now() >= deadline
                        || issued.fetch_add(1, Ordering::Relaxed) >= load.limit
                    {
                        break;
                    }
                    let sent = from.unwrap_or_else(Instant::now);
                    if send(&mut client, &load, &tenants, &mut rng).await {
                        h.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                    } else {
                        errors += 1;
                    }
                }
                (h, errors)
            }));
        }
    }
    let mut all = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.expect("a load task panicked");
        all.add(&h).expect("histograms with the same bounds");
        errors += e;
    }
    let per_request = if load.op == Op::Batch {
        load.batch_size as u64
    } else {
        1
    };
    Report::new(&all, errors, per_request, started.elapsed())
}

async fn create_tenants(conn: &Conn, n: usize) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let http = conn.http_client()?;
    let run = std::process::id();
    let mut ids = Vec::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let req = conn
            .authorized(http.post(format!("{}/api/v1/tenants", conn.http_url())))
            .json(&json!({"name": format!("bench {run}-{i}"), "slug": format!("bench-{run}-{i}"), "tier": "ENTERPRISE"}));
        pending.push(async move {
            let resp = req.send().await.context("creating a bench tenant")?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await?;
            if !status.is_success() {
                bail!("creating a bench tenant: {status}: {body}");
            }
            body["data"]["id"]
                .as_str()
                .map(str::to_string)
                .context("tenant id in the answer")
        });
        if pending.len() >= 32
            && let Some(r) = pending.next().await
        {
            ids.push(r?);
        }
    }
    while let Some(r) = pending.next().await {
        ids.push(r?);
    }
    Ok(ids)
}

async fn tenants(conn: &Conn, a: &BenchArgs) -> anyhow::Result<Vec<String>> {
    if a.synthetic_tenants {
        return Ok((0..a.tenants).map(|i| format!("tenant-{i}")).collect());
    }
    if let Some(path) = &a.tenants_file
        && path.exists()
    {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ids: Vec<String> = text.lines().map(str::to_string).collect();
        if ids.len() >= a.tenants {
            return Ok(ids.into_iter().take(a.tenants).collect());
        }
        bail!(
            "--tenants-file {}: holds {} tenants, {} wanted",
            path.display(),
            ids.len(),
            a.tenants
        );
    }
    eprintln!("creating {} tenants...", a.tenants);
    let ids = create_tenants(conn, a.tenants).await?;
    if let Some(path) = &a.tenants_file {
        std::fs::write(path, ids.join("\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ids)
}

/// `quotad ceiling` as a child process on a free port, stopped on drop.
struct CeilingServer {
    child: tokio::process::Child,
    addr: String,
}

impl CeilingServer {
    async fn start() -> anyhow::Result<CeilingServer> {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("ceiling")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting quotad ceiling")?;
        let stdout = child.stdout.take().context("ceiling stdout")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await?;
        let addr = line
            .trim()
            .rsplit_once("grpc=")
            .map(|(_, a)| a.to_string())
            .with_context(|| format!("ceiling server said {line:?}"))?;
        Ok(CeilingServer { child, addr })
    }
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub async fn run(conn: &Conn, a: BenchArgs) -> anyhow::Result<()> {
    if a.connections == 0 || a.in_flight == 0 || a.tenants == 0 || a.batch_size == 0 {
        bail!("connections, in-flight, tenants and batch-size must each be at least 1");
    }
    if a.op == Op::Stream && a.rate.is_some() {
        bail!("rate: --op stream runs closed loop only");
    }
    if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("rate: must be a positive number of requests per second");
    }
    if !(a.zipf_exponent > 0.0 && a.zipf_exponent.is_finite()) {
        bail!("zipf-exponent: must be positive");
    }
    let nodes = if a.nodes.is_empty() {
        vec![conn.grpc_url().to_string()]
    } else {
        a.nodes.clone()
    };
    let tenants = Arc::new(tenants(conn, &a).await?);
    let load = Arc::new(Load {
        op: a.op,
        mode: a.consistency,
        connections: a.connections,
        in_flight: a.in_flight,
        duration: Duration::from_secs(a.duration_secs),
        limit: a.requests.unwrap_or(u64::MAX),
        rate: a.rate,
        keys: match a.distribution {
            Distribution::Uniform => KeyDist::uniform(tenants.len()),
            Distribution::Zipf => KeyDist::zipf(tenants.len(), a.zipf_exponent),
        },
        batch_size: a.batch_size,
        domain: a.rls_domain.clone(),
    });
    let routed = !a.direct && !a.synthetic_tenants;
    // The ceiling gets the same credential, so both carry the same bytes.
    let bearer = conn.bearer()?;
    let target = drive(
        load.clone(),
        clients(&load, &nodes, routed, &bearer, Some(conn)).await?,
        tenants.clone(),
    )
    .await;
    let ceiling = if a.ceiling {
        let server = CeilingServer::start().await?;
        let c = clients(
            &load,
            std::slice::from_ref(&server.addr),
            false,
            &bearer,
            None,
        )
        .await?;
        Some(drive(load.clone(), c, tenants).await)
    } else {
        None
    };
    print_report(conn, &a, &target, ceiling.as_ref())
}

fn print_report(
    conn: &Conn,
    a: &BenchArgs,
    r: &Report,
    ceiling: Option<&Report>,
) -> anyhow::Result<()> {
    if conn.json_output() {
        let mut out = json!({
            "op": format!("{:?}", a.op).to_lowercase(),
            "consistency": format!("{:?}", a.consistency).to_lowercase(),
            "connections": a.connections,
            "inFlight": a.in_flight,
            "rate": a.rate,
            "tenants": a.tenants,
            "distribution": format!("{:?}", a.distribution).to_lowercase(),
            "batchSize": if a.op == Op::Batch { Some(a.batch_size) } else { None },
        });
        let o = out.as_object_mut().expect("an object");
        o.extend(r.json().as_object().expect("an object").clone());
        if let Some(c) = ceiling {
            o.insert("ceiling".into(), c.json());
            o.insert("fractionOfCeiling".into(), json!(r.fraction_of(c)));
        }
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    eprintln!(
        "{} {} {}x{} {} over {} tenants ({})",
        format!("{:?}", a.op).to_lowercase(),
        format!("{:?}", a.consistency).to_lowercase(),
        a.connections,
        a.in_flight,
        a.rate
            .map_or("closed loop".to_string(), |r| format!("open loop at {r}/s")),
        a.tenants,
        format!("{:?}", a.distribution).to_lowercase(),
    );
    let mut rows = vec![r.row("target", ceiling.map(|c| r.fraction_of(c)))];
    if let Some(c) = ceiling {
        rows.push(c.row("ceiling", Some(1.0)));
    }
    table::print(&Report::HEADER, &rows)?;
    Ok(())
}
