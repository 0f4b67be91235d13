//! `quotad bench`: a closed-loop load generator for a node or a cluster.
//! It creates its own ENTERPRISE tenants (unlimited quotas, so every
//! increment is admitted and written), then keeps `connections x in_flight`
//! requests outstanding for a duration or a request count, and reports
//! throughput and latency percentiles (HDR histogram) as a table or JSON.
//!
//! Each connection is a routing client ([`QuotaClient`]): it sends each
//! call to the leader of the tenant's group, as a production client would.
use super::client::Conn;
use super::table;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use hdrhistogram::Histogram;
use quotad_proto::client::QuotaClient;
use quotad_proto::v1 as pb;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Op {
    Increment,
    Check,
    /// Envoy's `ShouldRateLimit`, one descriptor (`tenant_id`, `quota`).
    Rls,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Fast,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// gRPC addresses of the nodes to send to (comma-separated; the first
    /// loads the shard map) [default: --grpc]
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    #[arg(long, value_enum, default_value_t = Op::Increment)]
    op: Op,
    /// Consistency of increments.
    #[arg(long, value_enum, default_value_t = Mode::Strict)]
    consistency: Mode,
    /// Client connections (each a routing client).
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
    /// Tenants to spread the load over (created first, over REST).
    #[arg(long, default_value_t = 100)]
    tenants: usize,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Report {
    /// Successful requests' latencies are in `h` (microseconds).
    pub fn new(h: &Histogram<u64>, errors: u64, elapsed: Duration) -> Report {
        let requests = h.len();
        Report {
            requests,
            errors,
            elapsed,
            per_second: requests as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn create_tenants(conn: &Conn, n: usize) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let run = std::process::id();
    let mut ids = Vec::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
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

pub async fn run(conn: &Conn, a: BenchArgs) -> anyhow::Result<()> {
    if a.connections == 0 || a.in_flight == 0 || a.tenants == 0 {
        bail!("connections, in-flight and tenants must each be at least 1");
    }
    let nodes = if a.nodes.is_empty() {
        vec![conn.grpc_url().to_string()]
    } else {
        a.nodes.clone()
    };
    eprintln!("creating {} tenants...", a.tenants);
    let tenants = Arc::new(create_tenants(conn, a.tenants).await?);
    let mut clients = Vec::new();
    let mut rls_clients = Vec::new();
    for c in 0..a.connections {
        clients.push(Arc::new(
            QuotaClient::connect(nodes.clone())
                .await
                .map_err(|s| anyhow::anyhow!("connecting: {}", s.message()))?,
        ));
        // Envoy talks to one address; spread the connections over the nodes.
        let addr = &nodes[c % nodes.len()];
        let url = if addr.starts_with("http") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        rls_clients.push(RateLimitServiceClient::new(
            tonic::transport::Endpoint::from_shared(url)?.connect_lazy(),
        ));
    }
    let issued = Arc::new(AtomicU64::new(0));
    let limit = a.requests.unwrap_or(u64::MAX);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.duration_secs);
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for f in 0..a.in_flight {
            let (client, tenants, issued) = (client.clone(), tenants.clone(), issued.clone());
            let mut rls = rls_clients[c].clone();
            let (op, mode) = (a.op, a.consistency);
            let seed = (c * 1_000_003 + f * 7919) as u64;
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                let mut errors = 0u64;
                let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                loop {
                    if Instant::now() >= deadline || issued.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        return (h, errors);
                    }
                    // xorshift: a uniform tenant without a shared RNG.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let tenant = tenants[(x % tenants.len() as u64) as usize].clone();
                    let sent = Instant::now();
                    let ok = match op {
                        Op::Increment => client
                            .increment(pb::IncrementRequest {
                                tenant_id: tenant,
                                quota: "api_requests".into(),
                                amount: 1,
                                idempotency_key: String::new(),
                                consistency: match mode {
                                    Mode::Strict => pb::Consistency::Strict,
                                    Mode::Fast => pb::Consistency::Fast,
                                } as i32,
                            })
                            .await
                            .is_ok(),
                        Op::Check => client
                            .check(pb::CheckRequest {
                                tenant_id: tenant,
                                quota: "api_requests".into(),
                                amount: 1,
                            })
                            .await
                            .is_ok(),
                        Op::Rls => rls.should_rate_limit(rls_request(tenant)).await.is_ok(),
                    };
                    if ok {
                        let us = sent.elapsed().as_micros().max(1) as u64;
                        h.saturating_record(us);
                    } else {
                        errors += 1;
                    }
                }
            }));
        }
    }
    let mut all = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        all.add(&h)?;
        errors += e;
    }
    let report = Report::new(&all, errors, started.elapsed());
    print_report(conn, &a, &report)
}

/// One descriptor naming the tenant and `api_requests`, in any domain
/// (quotad's default Envoy mapping).
fn rls_request(tenant: String) -> RateLimitRequest {
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                Entry {
                    key: "tenant_id".into(),
                    value: tenant,
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

fn print_report(conn: &Conn, a: &BenchArgs, r: &Report) -> anyhow::Result<()> {
    if conn.json_output() {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "op": format!("{:?}", a.op).to_lowercase(),
                "consistency": format!("{:?}", a.consistency).to_lowercase(),
                "connections": a.connections,
                "inFlight": a.in_flight,
                "tenants": a.tenants,
                "requests": r.requests,
                "errors": r.errors,
                "seconds": r.elapsed.as_secs_f64(),
                "perSecond": r.per_second,
                "p50Us": r.p50_us,
                "p99Us": r.p99_us,
                "p999Us": r.p999_us,
                "maxUs": r.max_us,
            }))?
        );
        return Ok(());
    }
    table::print(
        &[
            "OP", "MODE", "CONC", "REQUESTS", "ERRORS", "REQ/S", "P50", "P99", "P99.9", "MAX",
        ],
        &[vec![
            format!("{:?}", a.op).to_lowercase(),
            format!("{:?}", a.consistency).to_lowercase(),
            format!("{}x{}", a.connections, a.in_flight),
            r.requests.to_string(),
            r.errors.to_string(),
            format!("{:.0}", r.per_second),
            format!("{} µs", r.p50_us),
            format!("{} µs", r.p99_us),
            format!("{} µs", r.p999_us),
            format!("{} µs", r.max_us),
        ]],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_percentiles_come_from_the_recorded_latencies() {
        let mut h = histogram();
        // 1..=1000 µs, once each.
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let r = Report::new(&h, 7, Duration::from_secs(2));
        assert_eq!(r.requests, 1000);
        assert_eq!(r.errors, 7);
        assert_eq!(r.per_second, 500.0);
        // HDR at 3 significant digits is exact below 2048.
        assert_eq!(r.p50_us, 500);
        assert_eq!(r.p99_us, 990);
        assert_eq!(r.p999_us, 999);
        assert_eq!(r.max_us, 1000);
    }

    #[test]
    fn merged_histograms_add_up() {
        let (mut a, mut b) = (histogram(), histogram());
        for _ in 0..30 {
            a.record(100).unwrap();
        }
        for _ in 0..70 {
            b.record(5_000).unwrap();
        }
        a.add(&b).unwrap();
        let r = Report::new(&a, 0, Duration::from_secs(1));
        assert_eq!(r.requests, 100);
        assert_eq!(r.p50_us, h_equiv(5_000));
        assert_eq!(r.max_us, h_equiv(5_000));
    }

    /// The value HDR reports for `v` at 3 significant digits.
    fn h_equiv(v: u64) -> u64 {
        let mut h = histogram();
        h.record(v).unwrap();
        h.max()
    }
}
