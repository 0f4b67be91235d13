//! Client subcommands: REST for management, gRPC for enforcement. Tables by
//! default, `--json` for scripts.
use super::table;
use crate::cli::out::outln;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use quotad_proto::credential::{AuthChannel, Bearer};
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use serde_json::{Value, json};

/// Where a client command connects, and how it prints. Given before the
/// subcommand (`quotad --json tenant get ID`, read from the environment
/// too) or after it (`quotad tenant get ID --json`); `serve` and the other
/// node commands do not take them.
#[derive(Args, Debug, Default)]
pub struct Conn {
    /// Control plane base URL [env: QUOTAD_HTTP] [default: http://127.0.0.1:8080]
    #[arg(long, env = "QUOTAD_HTTP", hide_env = true)]
    http: Option<String>,
    /// gRPC endpoint [env: QUOTAD_GRPC] [default: http://127.0.0.1:50051]
    #[arg(long, env = "QUOTAD_GRPC", hide_env = true)]
    grpc: Option<String>,
    /// Print the raw JSON answer.
    #[arg(long)]
    json: bool,
    /// Bearer token for the control plane and the gRPC port (see `quotad token`) [env: QUOTAD_TOKEN]
    #[arg(long, env = "QUOTAD_TOKEN", hide_env = true, hide_env_values = true)]
    token: Option<String>,
    /// PEM CA to trust for a node's gRPC and REST ports over TLS (https:// URLs) [env: QUOTAD_CA_CERT]
    #[arg(long, env = "QUOTAD_CA_CERT", hide_env = true)]
    ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate, for a port that requires one (mutual TLS) [env: QUOTAD_CLIENT_CERT]
    #[arg(long, env = "QUOTAD_CLIENT_CERT", hide_env = true)]
    client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert [env: QUOTAD_CLIENT_KEY]
    #[arg(long, env = "QUOTAD_CLIENT_KEY", hide_env = true)]
    client_key: Option<std::path::PathBuf>,
}

/// The same flags after a client subcommand: they win over those before it.
#[derive(Args, Debug, Default)]
pub struct ConnFlags {
    /// Control plane base URL [env: QUOTAD_HTTP] [default: http://127.0.0.1:8080]
    #[arg(long = "http", global = true)]
    http: Option<String>,
    /// gRPC endpoint [env: QUOTAD_GRPC] [default: http://127.0.0.1:50051]
    #[arg(long = "grpc", global = true)]
    grpc: Option<String>,
    /// Print the raw JSON answer.
    #[arg(long = "json", global = true)]
    json: bool,
    /// Bearer token for the control plane and the gRPC port (see `quotad token`) [env: QUOTAD_TOKEN]
    #[arg(long = "token", global = true)]
    token: Option<String>,
}

impl Conn {
    /// These settings with the flags given after the subcommand on top.
    pub fn with(self, f: ConnFlags) -> Conn {
        Conn {
            http: f.http.or(self.http),
            grpc: f.grpc.or(self.grpc),
            json: f.json || self.json,
            token: f.token.or(self.token),
            ca_cert: self.ca_cert,
            client_cert: self.client_cert,
            client_key: self.client_key,
        }
    }
}

impl Conn {
    pub fn grpc_url(&self) -> &str {
        self.grpc.as_deref().unwrap_or("http://127.0.0.1:50051")
    }

    pub fn json_output(&self) -> bool {
        self.json
    }

    pub fn http_url(&self) -> &str {
        self.http.as_deref().unwrap_or("http://127.0.0.1:8080")
    }

    /// An endpoint for the gRPC port at `url`: over TLS for an https://
    /// URL, trusting --ca-cert and presenting --client-cert when given.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<tonic::transport::Endpoint> {
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else if self.ca_cert.is_some() {
            format!("https://{url}")
        } else {
            format!("http://{url}")
        };
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .with_context(|| format!("--grpc {url:?}"))?;
        if !url.starts_with("https://") {
            return Ok(endpoint);
        }
        endpoint
            .tls_config(self.grpc_tls()?)
            .with_context(|| format!("TLS for {url}"))
    }

    /// TLS for gRPC ports: trust --ca-cert, present --client-cert.
    pub fn grpc_tls(&self) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &self.ca_cert {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                tls = tls.identity(tonic::transport::Identity::from_pem(read(c)?, read(k)?));
            }
            (None, None) => {}
            _ => bail!("--client-cert and --client-key go together"),
        }
        Ok(tls)
    }

    /// A client for the REST port: over TLS for an https:// URL, trusting
    /// --ca-cert and presenting --client-cert when given.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let builder = reqwest::Client::builder();
        if !self.http_url().starts_with("https://") {
            return Ok(builder.build()?);
        }
        let Some(ca) = &self.ca_cert else {
            bail!(
                "--http {} is https://: give --ca-cert, the CA that signed the node's certificate",
                self.http_url()
            );
        };
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let certs = |p: &std::path::Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
            let pem = read(p)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: not PEM certificates", p.display()))?;
            if certs.is_empty() {
                bail!("{}: holds no certificate", p.display());
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca)? {
            roots
                .add(c)
                .with_context(|| format!("--ca-cert {}", ca.display()))?;
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                let key = PrivateKeyDer::from_pem_slice(&read(k)?).with_context(|| {
                    format!("--client-key {}: not a PEM private key", k.display())
                })?;
                config
                    .with_client_auth_cert(certs(c)?, key)
                    .context("--client-cert and --client-key do not make a pair")?
            }
            (None, None) => config.with_no_client_auth(),
            _ => bail!("--client-cert and --client-key go together"),
        };
        Ok(builder.tls_backend_preconfigured(config).build()?)
    }

    /// The token for the gRPC ports' `authorization` metadata.
    pub fn bearer(&self) -> anyhow::Result<Bearer> {
        match &self.token {
            Some(t) => Bearer::new(t).map_err(|s| anyhow::anyhow!("--token: {}", s.message())),
            None => Ok(Bearer::none()),
        }
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
        /// The first owner's email, kept on their membership.
        #[arg(long)]
        owner_email: Option<String>,
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
        /// A whole number (0 or more), or "unlimited".
        #[arg(long, allow_hyphen_values = true)]
        limit: String,
        /// A whole number (0 or more), at most the limit.
        #[arg(long, allow_hyphen_values = true)]
        soft_limit: Option<String>,
        /// hourly, daily, monthly, never, second, minute.
        #[arg(long)]
        period: Option<String>,
        /// block, throttle, alert, allow_overage.
        #[arg(long)]
        action: Option<String>,
        /// counter, rate, gauge.
        #[arg(long)]
        kind: Option<String>,
        /// A further window every spend must also fit, LIMIT/PERIOD (e.g.
        /// 50/second); repeat for more, "none" removes them.
        #[arg(long = "window")]
        windows: Vec<String>,
        /// The default limit of every scope value, LIMIT/PERIOD (e.g.
        /// 100/daily); "none" removes the scope rules.
        #[arg(long)]
        scope_default: Option<String>,
        /// A scope override, PATTERN=LIMIT/PERIOD (e.g. premium_*=1000/daily);
        /// repeat for more.
        #[arg(long = "scope-override")]
        scope_overrides: Vec<String>,
        /// Carry the unused allowance into the next period (true/false).
        #[arg(long)]
        rollover: Option<bool>,
        /// Carry at most this much.
        #[arg(long)]
        rollover_max: Option<String>,
        /// Carry usage beyond the limit into the next period (true/false).
        #[arg(long)]
        preserve_overage: Option<bool>,
        /// Decide and report, but admit (true/false).
        #[arg(long)]
        shadow: Option<bool>,
    },
    /// Show a tenant's quotas, or one of them (with `--scope`, one scope
    /// value's rule and usage).
    Get {
        tenant: String,
        quota: Option<String>,
        #[arg(long)]
        scope: Option<String>,
    },
    /// A quota's credit grants; operators add and void them.
    Grants {
        tenant: String,
        quota: String,
        #[command(subcommand)]
        cmd: Option<GrantCmd>,
    },
    /// A quota's live scope values, highest usage first.
    Scopes {
        tenant: String,
        quota: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum GrantCmd {
    /// Add units beyond the period allowance.
    Add {
        #[arg(long)]
        amount: u64,
        /// RFC 3339; default now.
        #[arg(long)]
        effective_at: Option<String>,
        /// RFC 3339; default never.
        #[arg(long)]
        expires_at: Option<String>,
        /// Lower is drawn first [default: 10].
        #[arg(long)]
        priority: Option<u8>,
        #[arg(long, default_value = "")]
        reason: String,
        /// The same key and fields answer the grant already added.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Draw nothing more from grant ID (what was drawn stays drawn).
    Void { id: u32 },
}

/// `LIMIT/PERIOD` as the body's `{limit, period}`.
fn limit_spec(flag: &str, v: &str) -> anyhow::Result<Value> {
    let (limit, period) = v
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("{flag}: {v:?} is not LIMIT/PERIOD (e.g. 50/second)"))?;
    Ok(json!({"limit": whole_number(flag, limit, "")?, "period": period}))
}

#[derive(Args, Debug)]
pub struct SpendArgs {
    tenant: String,
    quota: String,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    amount: i64,
    /// Use another tenant's resource through this sharing policy's grant
    /// (the tenant is the consumer).
    #[arg(long)]
    sharing_policy_id: Option<String>,
    /// The grant permission the use needs [default: execute].
    #[arg(long, requires = "sharing_policy_id")]
    permission: Option<String>,
    /// A scope value inside the tenant's quota (an end user, an API key, a
    /// project): its scope rule is decided with the tenant's quota.
    #[arg(long, conflicts_with = "sharing_policy_id")]
    scope: Option<String>,
}

async fn rest(
    conn: &Conn,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let url = format!("{}{}", conn.http_url().trim_end_matches('/'), path);
    let mut req = conn.http_client()?.request(method, &url);
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
        return Err(ServerError {
            code: e["code"].as_str().unwrap_or("UNKNOWN").to_string(),
            message: e["message"].as_str().unwrap_or("no message").to_string(),
            field: e["field"].as_str().map(str::to_string),
            via: format!("HTTP {}", status.as_u16()),
        }
        .into());
    }
    Ok(body["data"].clone())
}

/// A non-negative whole number given on the command line.
fn whole_number(flag: &str, raw: &str, or: &str) -> anyhow::Result<u64> {
    let or = if or.is_empty() {
        String::new()
    } else {
        format!(" {or}")
    };
    match raw.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) if raw.starts_with('-') => {
            bail!("{flag} {raw}: must be 0 or more{or}")
        }
        Err(_) => bail!(
            "{flag} {raw:?}: must be a whole number from 0 to {}{or}",
            u64::MAX
        ),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_tenant(t: &Value) -> std::io::Result<()> {
    table::print_kv(&[
        ("id", s(&t["id"])),
        ("slug", s(&t["slug"])),
        ("name", s(&t["name"])),
        ("tier", s(&t["tier"])),
        ("status", s(&t["status"])),
        ("timezone", s(&t["timezone"])),
        ("trial ends", s(&t["trialEndsAt"])),
        ("created", s(&t["createdAt"])),
    ])
}

fn print_grants(grants: &[Value]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            vec![
                s(&g["id"]),
                s(&g["amount"]),
                s(&g["used"]),
                s(&g["remaining"]),
                s(&g["status"]),
                s(&g["priority"]),
                s(&g["expiresAt"]),
                s(&g["reason"]),
            ]
        })
        .collect();
    table::print(
        &[
            "ID",
            "AMOUNT",
            "USED",
            "REMAINING",
            "STATUS",
            "PRIORITY",
            "EXPIRES",
            "REASON",
        ],
        &rows,
    )
}

fn print_scopes(page: &Value) -> std::io::Result<()> {
    let items = page["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            let l = &v["level"];
            vec![
                s(&v["value"]),
                s(&v["rule"]),
                s(&l["usage"]),
                s(&l["limit"]),
                s(&l["remaining"]),
                s(&l["resetAt"]),
            ]
        })
        .collect();
    table::print(
        &["SCOPE", "RULE", "USAGE", "LIMIT", "REMAINING", "RESETS"],
        &rows,
    )?;
    outln!("{} live scope values", s(&page["total"]))
}

/// What each quota carries beyond its one limit, a line each.
fn print_levels(quotas: &[Value]) -> std::io::Result<()> {
    for q in quotas {
        let name = s(&q["type"]);
        for w in q["windows"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            outln!(
                "{name}: also {} per {} ({} used, {} left)",
                s(&w["limit"]),
                s(&w["period"]),
                s(&w["usage"]),
                s(&w["remaining"])
            )?;
        }
        if q["grantBalance"].as_u64().is_some_and(|b| b > 0) {
            outln!("{name}: {} left in credit grants", s(&q["grantBalance"]))?;
        }
        if q["carriedOver"].as_u64().is_some_and(|c| c > 0) {
            outln!(
                "{name}: {} carried over into this period",
                s(&q["carriedOver"])
            )?;
        }
        if q["shadow"] == json!(true) {
            outln!("{name}: shadow mode (refusals reported, not enforced)")?;
        }
        if let Some(sc) = q["scope"].as_object() {
            let l = &sc["level"];
            outln!(
                "{name}: scope {} by rule {}: {} used of {}, {} left",
                s(&sc["value"]),
                s(&sc["rule"]),
                s(&l["usage"]),
                s(&l["limit"]),
                s(&l["remaining"])
            )?;
        }
    }
    Ok(())
}

fn print_quotas(quotas: &[Value]) -> std::io::Result<()> {
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
    )
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
            owner_email,
        } => {
            let mut body = json!({"slug": slug, "name": name, "tier": tier, "timezone": timezone});
            if let Some(d) = trial_days {
                body["trialDays"] = json!(d);
            }
            if let Some(o) = owner {
                body["ownerUserId"] = json!(o);
            }
            if let Some(e) = owner_email {
                body["ownerEmail"] = json!(e);
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
                outln!("{}", serde_json::to_string_pretty(&data)?)?;
            } else {
                print_tenant(&data["tenant"])?;
                if let Some(over) = data["overLimit"].as_array().filter(|o| !o.is_empty()) {
                    outln!(
                        "over the new limits: {}",
                        over.iter().map(s).collect::<Vec<_>>().join(", ")
                    )?;
                }
            }
            return Ok(());
        }
    };
    if conn.json {
        outln!("{}", serde_json::to_string_pretty(&data)?)?;
    } else {
        print_tenant(&data)?;
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
            windows,
            scope_default,
            scope_overrides,
            rollover,
            rollover_max,
            preserve_overage,
            shadow,
        } => {
            let limit = match limit.as_str() {
                "unlimited" => Value::Null,
                n => json!(whole_number("--limit", n, "or \"unlimited\"")?),
            };
            let mut body = json!({ "limit": limit });
            for (k, v) in [("period", period), ("action", action), ("kind", kind)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(sl) = soft_limit {
                body["softLimit"] = json!(whole_number("--soft-limit", &sl, "")?);
            }
            if windows.iter().any(|w| w == "none") {
                body["windows"] = json!([]);
            } else if !windows.is_empty() {
                body["windows"] = windows
                    .iter()
                    .map(|w| limit_spec("--window", w))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into();
            }
            if scope_default.as_deref() == Some("none") {
                body["scopes"] = Value::Null;
            } else if scope_default.is_some() || !scope_overrides.is_empty() {
                let mut overrides = serde_json::Map::new();
                for o in &scope_overrides {
                    let (pattern, spec) = o.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!(
                            "--scope-override: {o:?} is not PATTERN=LIMIT/PERIOD (e.g. premium_*=1000/daily)"
                        )
                    })?;
                    overrides.insert(pattern.into(), limit_spec("--scope-override", spec)?);
                }
                let default = match &scope_default {
                    Some(d) => limit_spec("--scope-default", d)?,
                    None => Value::Null,
                };
                body["scopes"] = json!({"default": default, "overrides": overrides});
            }
            for (k, v) in [
                ("rollover", rollover),
                ("preserveOverage", preserve_overage),
                ("shadow", shadow),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(m) = rollover_max {
                body["rolloverMax"] = match m.as_str() {
                    "none" => Value::Null,
                    n => json!(whole_number("--rollover-max", n, "or \"none\"")?),
                };
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
            scope: _,
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
            scope,
        } => {
            let query = scope
                .map(|s| {
                    format!(
                        "?scope={}",
                        quotad_control_plane::extract::encode_component(&s)
                    )
                })
                .unwrap_or_default();
            Value::Array(vec![
                rest(
                    conn,
                    reqwest::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/quotas/{q}{query}"),
                    None,
                )
                .await?,
            ])
        }
        QuotaCmd::Grants { tenant, quota, cmd } => {
            let path = format!("/api/v1/tenants/{tenant}/quotas/{quota}/grants");
            let data = match cmd {
                None => rest(conn, reqwest::Method::GET, &path, None).await?,
                Some(GrantCmd::Add {
                    amount,
                    effective_at,
                    expires_at,
                    priority,
                    reason,
                    idempotency_key,
                }) => {
                    let mut body = json!({"amount": amount, "reason": reason});
                    for (k, v) in [
                        ("effectiveAt", effective_at),
                        ("expiresAt", expires_at),
                        ("idempotencyKey", idempotency_key),
                    ] {
                        if let Some(v) = v {
                            body[k] = json!(v);
                        }
                    }
                    if let Some(p) = priority {
                        body["priority"] = json!(p);
                    }
                    Value::Array(vec![
                        rest(conn, reqwest::Method::POST, &path, Some(body)).await?,
                    ])
                }
                Some(GrantCmd::Void { id }) => Value::Array(vec![
                    rest(
                        conn,
                        reqwest::Method::POST,
                        &format!("{path}/{id}/void"),
                        None,
                    )
                    .await?,
                ]),
            };
            if conn.json {
                outln!("{}", serde_json::to_string_pretty(&data)?)?;
            } else {
                print_grants(data.as_array().map(Vec::as_slice).unwrap_or_default())?;
            }
            return Ok(());
        }
        QuotaCmd::Scopes {
            tenant,
            quota,
            offset,
            limit,
        } => {
            let page = rest(
                conn,
                reqwest::Method::GET,
                &format!(
                    "/api/v1/tenants/{tenant}/quotas/{quota}/scopes?offset={offset}&limit={limit}"
                ),
                None,
            )
            .await?;
            if conn.json {
                outln!("{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                print_scopes(&page)?;
            }
            return Ok(());
        }
    };
    if conn.json {
        outln!("{}", serde_json::to_string_pretty(&data)?)?;
    } else {
        let quotas = data.as_array().map(Vec::as_slice).unwrap_or_default();
        print_quotas(quotas)?;
        print_levels(quotas)?;
    }
    Ok(())
}

async fn grpc(conn: &Conn) -> anyhow::Result<QuotaServiceClient<AuthChannel>> {
    let channel = conn
        .endpoint(conn.grpc_url())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", conn.grpc_url()))?;
    Ok(QuotaServiceClient::new(conn.bearer()?.on(channel)))
}

/// An error answer from the node, printed the same way whether it came
/// over REST or gRPC: `NOT_FOUND: message (field: x; HTTP 404)`.
#[derive(Debug)]
pub struct ServerError {
    code: String,
    message: String,
    field: Option<String>,
    /// `HTTP 404` or `gRPC`.
    via: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (", self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, "field: {field}; ")?;
        }
        write!(f, "{})", self.via)
    }
}

impl std::error::Error for ServerError {}

/// gRPC codes in the same spelling as the REST envelope's.
fn grpc_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

pub fn status_err(s: tonic::Status) -> anyhow::Error {
    let field = s
        .metadata()
        .get("quotad-field")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ServerError {
        code: grpc_code_name(s.code()).to_string(),
        message: s.message().to_string(),
        field,
        via: "gRPC".into(),
    }
    .into()
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
            "limitedBy": d.limited_by.as_ref().map(|l| json!({
                "level": l.level,
                "scope": (!l.scope.is_empty()).then_some(&l.scope),
                "rule": (!l.rule.is_empty()).then_some(&l.rule),
                "kind": l.kind,
                "period": l.period,
                "limit": l.limit,
                "remaining": l.remaining,
                "resetAtUnixMs": l.reset_at_unix_ms,
                "retryAfterMs": l.retry_after_ms,
            })),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("-".into());
    let mut rows = vec![
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
    ];
    // Only refusals carry a reason (every one does).
    if !d.reason.is_empty() {
        rows.push(("reason", d.reason.clone()));
    }
    if let Some(l) = &d.limited_by {
        let mut level = format!("{} ({} {}", l.level, l.period, l.kind);
        if !l.scope.is_empty() {
            level.push_str(&format!(", scope {} by rule {}", l.scope, l.rule));
        }
        level.push(')');
        rows.push(("limited by", level));
    }
    table::print_kv(&rows)?;
    Ok(())
}

pub async fn check(conn: &Conn, a: SpendArgs) -> anyhow::Result<()> {
    let d = grpc(conn)
        .await?
        .check(pb::CheckRequest {
            tenant_id: a.tenant,
            quota: a.quota,
            amount: a.amount,
            sharing_policy_id: a.sharing_policy_id.unwrap_or_default(),
            permission: a.permission.unwrap_or_default(),
            scope: a.scope.unwrap_or_default(),
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
            sharing_policy_id: a.sharing_policy_id.unwrap_or_default(),
            permission: a.permission.unwrap_or_default(),
            scope: a.scope.unwrap_or_default(),
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
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"tenantId": u.tenant_id, "quotas": quotas}))?
        )?;
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
    )?;
    Ok(())
}
