//! Client subcommands: REST for management, gRPC for enforcement. Tables by
//! default, `--json` for scripts.
use super::table;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct Conn {
    /// Control plane base URL.
    #[arg(
        long,
        env = "QUOTAD_HTTP",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    http: String,
    /// gRPC endpoint.
    #[arg(
        long,
        env = "QUOTAD_GRPC",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    grpc: String,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    json: bool,
    /// Bearer token for the control plane (see `quotad token`).
    #[arg(long, env = "QUOTAD_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

impl Conn {
    pub fn grpc_url(&self) -> &str {
        &self.grpc
    }

    pub fn json_output(&self) -> bool {
        self.json
    }

    pub fn http_url(&self) -> &str {
        &self.http
    }

    /// Add the bearer token, if one is configured.
    pub fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// FREE, STARTER, PROFESSIONAL or ENTERPRISE.
        #[arg(long, default_value = "FREE")]
        tier: String,
        /// IANA timezone for calendar periods.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long)]
        trial_days: Option<u32>,
        /// The first owner's user id (operators only; others own what they create).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show a tenant.
    Get { id: String },
    /// Move a tenant to another tier.
    Upgrade { id: String, tier: String },
}

#[derive(Subcommand, Debug)]
pub enum QuotaCmd {
    /// Set a quota's policy.
    Set {
        tenant: String,
        quota: String,
        /// A number, or "unlimited".
        #[arg(long)]
        limit: String,
        #[arg(long)]
        soft_limit: Option<u64>,
        /// hourly, daily, monthly, never, second, minute.
        #[arg(long)]
        period: Option<String>,
        /// block, throttle, alert, allow_overage.
        #[arg(long)]
        action: Option<String>,
        /// counter, rate, gauge.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Show a tenant's quotas, or one of them.
    Get {
        tenant: String,
        quota: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct SpendArgs {
    tenant: String,
    quota: String,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    amount: i64,
}

async fn rest(
    conn: &Conn,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let url = format!("{}{}", conn.http.trim_end_matches('/'), path);
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(t) = &conn.token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{url} answered {status} without a JSON body"))?;
    if body["success"] != json!(true) {
        let e = &body["error"];
        bail!(
            "{} ({}): {}",
            e["code"].as_str().unwrap_or("ERROR"),
            status.as_u16(),
            e["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body["data"].clone())
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_tenant(t: &Value) {
    table::print_kv(&[
        ("id", s(&t["id"])),
        ("slug", s(&t["slug"])),
        ("name", s(&t["name"])),
        ("tier", s(&t["tier"])),
        ("status", s(&t["status"])),
        ("timezone", s(&t["timezone"])),
        ("trial ends", s(&t["trialEndsAt"])),
        ("created", s(&t["createdAt"])),
    ]);
}

fn print_quotas(quotas: &[Value]) {
    let rows: Vec<Vec<String>> = quotas
        .iter()
        .map(|q| {
            let limit = if q["limit"].is_null() {
                "unlimited".into()
            } else {
                s(&q["limit"])
            };
            let pct = q["percentage"]
                .as_f64()
                .map(|p| format!("{p:.1}%"))
                .unwrap_or("-".into());
            vec![
                s(&q["type"]),
                s(&q["kind"]),
                s(&q["period"]),
                s(&q["action"]),
                s(&q["usage"]),
                limit,
                pct,
                s(&q["remaining"]),
                s(&q["resetAt"]),
            ]
        })
        .collect();
    table::print(
        &[
            "QUOTA",
            "KIND",
            "PERIOD",
            "ACTION",
            "USAGE",
            "LIMIT",
            "%",
            "REMAINING",
            "RESETS",
        ],
        &rows,
    );
}

pub async fn tenant(conn: &Conn, cmd: TenantCmd) -> anyhow::Result<()> {
    let data = match cmd {
        TenantCmd::Create {
            slug,
            name,
            tier,
            timezone,
            trial_days,
            owner,
        } => {
            let mut body = json!({"slug": slug, "name": name, "tier": tier, "timezone": timezone});
            if let Some(d) = trial_days {
                body["trialDays"] = json!(d);
            }
            if let Some(o) = owner {
                body["ownerId"] = json!(o);
            }
            rest(conn, reqwest::Method::POST, "/api/v1/tenants", Some(body)).await?
        }
        TenantCmd::Get { id } => {
            rest(
                conn,
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{id}"),
                None,
            )
            .await?
        }
        TenantCmd::Upgrade { id, tier } => {
            let data = rest(
                conn,
                reqwest::Method::POST,
                &format!("/api/v1/tenants/{id}/upgrade"),
                Some(json!({"tier": tier})),
            )
            .await?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&data)?);
            } else {
                print_tenant(&data["tenant"]);
                if let Some(over) = data["overLimit"].as_array().filter(|o| !o.is_empty()) {
                    println!(
                        "over the new limits: {}",
                        over.iter().map(s).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            return Ok(());
        }
    };
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print_tenant(&data);
    }
    Ok(())
}

pub async fn quota(conn: &Conn, cmd: QuotaCmd) -> anyhow::Result<()> {
    let data = match cmd {
        QuotaCmd::Set {
            tenant,
            quota,
            limit,
            soft_limit,
            period,
            action,
            kind,
        } => {
            let limit = match limit.as_str() {
                "unlimited" => Value::Null,
                n => json!(n.parse::<u64>().with_context(|| format!(
                    "--limit {n:?} is neither a number nor \"unlimited\""
                ))?),
            };
            let mut body = json!({ "limit": limit });
            for (k, v) in [("period", period), ("action", action), ("kind", kind)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(sl) = soft_limit {
                body["softLimit"] = json!(sl);
            }
            let q = rest(
                conn,
                reqwest::Method::PUT,
                &format!("/api/v1/tenants/{tenant}/quotas/{quota}"),
                Some(body),
            )
            .await?;
            Value::Array(vec![q])
        }
        QuotaCmd::Get {
            tenant,
            quota: None,
        } => {
            rest(
                conn,
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{tenant}/quotas"),
                None,
            )
            .await?
        }
        QuotaCmd::Get {
            tenant,
            quota: Some(q),
        } => Value::Array(vec![
            rest(
                conn,
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{tenant}/quotas/{q}"),
                None,
            )
            .await?,
        ]),
    };
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print_quotas(data.as_array().map(Vec::as_slice).unwrap_or_default());
    }
    Ok(())
}

async fn grpc(conn: &Conn) -> anyhow::Result<QuotaServiceClient<tonic::transport::Channel>> {
    QuotaServiceClient::connect(conn.grpc.clone())
        .await
        .with_context(|| format!("connecting to {}", conn.grpc))
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

fn print_decision(conn: &Conn, d: &pb::Decision) -> anyhow::Result<()> {
    if conn.json {
        let v = json!({
            "allowed": d.allowed,
            "verdict": d.verdict().as_str_name(),
            "usage": d.usage,
            "limit": d.limit,
            "remaining": d.remaining,
            "resetAtUnixMs": d.reset_at_unix_ms,
            "retryAfterMs": d.retry_after_ms,
            "thresholdsCrossed": d.thresholds_crossed,
            "replayed": d.replayed,
            "reason": d.reason,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("-".into());
    table::print_kv(&[
        ("allowed", d.allowed.to_string()),
        (
            "verdict",
            d.verdict()
                .as_str_name()
                .trim_start_matches("VERDICT_")
                .to_lowercase(),
        ),
        ("usage", d.usage.to_string()),
        (
            "limit",
            d.limit.map(|l| l.to_string()).unwrap_or("unlimited".into()),
        ),
        ("remaining", opt(d.remaining)),
        (
            "resets at (unix ms)",
            d.reset_at_unix_ms
                .map(|v| v.to_string())
                .unwrap_or("-".into()),
        ),
        ("retry after (ms)", opt(d.retry_after_ms)),
        (
            "thresholds crossed",
            if d.thresholds_crossed.is_empty() {
                "-".into()
            } else {
                d.thresholds_crossed
                    .iter()
                    .map(|t| format!("{t}%"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "reason",
            if d.reason.is_empty() {
                "-".into()
            } else {
                d.reason.clone()
            },
        ),
    ]);
    Ok(())
}

pub async fn check(conn: &Conn, a: SpendArgs) -> anyhow::Result<()> {
    let d = grpc(conn)
        .await?
        .check(pb::CheckRequest {
            tenant_id: a.tenant,
            quota: a.quota,
            amount: a.amount,
        })
        .await
        .map_err(status_err)?
        .into_inner();
    print_decision(conn, &d)
}

pub async fn increment(
    conn: &Conn,
    a: SpendArgs,
    key: Option<String>,
    fast: bool,
) -> anyhow::Result<()> {
    let consistency = if fast {
        pb::Consistency::Fast
    } else {
        pb::Consistency::Unspecified
    };
    let d = grpc(conn)
        .await?
        .increment(pb::IncrementRequest {
            tenant_id: a.tenant,
            quota: a.quota,
            amount: a.amount,
            idempotency_key: key.unwrap_or_default(),
            consistency: consistency as i32,
        })
        .await
        .map_err(status_err)?
        .into_inner();
    print_decision(conn, &d)
}

pub async fn usage(conn: &Conn, tenant: String, quota: Option<String>) -> anyhow::Result<()> {
    let u = grpc(conn)
        .await?
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant,
            quota: quota.unwrap_or_default(),
        })
        .await
        .map_err(status_err)?
        .into_inner();
    if conn.json {
        let quotas: Vec<Value> = u
            .quotas
            .iter()
            .map(|q| json!({"quota": q.quota, "kind": q.kind, "period": q.period, "used": q.used, "reserved": q.reserved, "limit": q.limit, "remaining": q.remaining, "overage": q.overage}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"tenantId": u.tenant_id, "quotas": quotas}))?
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = u
        .quotas
        .iter()
        .map(|q| {
            vec![
                q.quota.clone(),
                q.kind.clone(),
                q.period.clone(),
                q.used.to_string(),
                q.reserved.to_string(),
                q.limit.map(|l| l.to_string()).unwrap_or("unlimited".into()),
                q.remaining.map(|r| r.to_string()).unwrap_or("-".into()),
            ]
        })
        .collect();
    table::print(
        &[
            "QUOTA",
            "KIND",
            "PERIOD",
            "USED",
            "RESERVED",
            "LIMIT",
            "REMAINING",
        ],
        &rows,
    );
    Ok(())
}
