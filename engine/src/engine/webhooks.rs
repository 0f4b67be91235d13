//! Webhooks as a service: a tenant's endpoints (secrets sealed before they
//! are proposed, shown once), the URL rule (no loopback, private or
//! link-local targets unless the node allows them), replays, and the
//! delivery worker that sends what is due on the groups this node leads.
use super::Engine;
use crate::alerts::outbox::{self, Attempt};
use crate::alerts::{Delivery, Endpoint, EndpointSpec, signature};
use crate::audit::AuditMeta;
use crate::custom::secret::{SecretError, SecretsKey};
use crate::custom::{Needs, features};
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, TenantId};
use crate::quota::{QuotaError, TenantOp, TenantState, WebhookChange};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How the node delivers webhooks.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Allow endpoints on loopback, private and link-local addresses
    /// (`--allow-private-webhooks`; tests, or a platform whose receivers
    /// are on its own network).
    pub allow_private: bool,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Deliveries in flight at once, per node.
    pub concurrency: usize,
    /// How often the worker looks for due deliveries.
    pub interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_private: false,
            timeout: Duration::from_secs(10),
            concurrency: 16,
            interval: Duration::from_millis(250),
        }
    }
}

/// Where the secrets key comes from: given, or derived from the cluster key.
pub(crate) struct Secrets {
    pub fixed: Option<SecretsKey>,
    pub peer_auth: Arc<crate::peer_auth::PeerAuth>,
}

impl Secrets {
    pub fn key(&self) -> Result<SecretsKey, SecretError> {
        if let Some(k) = &self.fixed {
            return Ok(k.clone());
        }
        self.peer_auth
            .key()
            .map(|k| SecretsKey::from_cluster_key(k.as_bytes()))
            .ok_or(SecretError::NoKey)
    }
}

/// Whose alerts a delivery carries: a tenant's, or the operators'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Feed {
    Tenant(TenantId),
    Platform,
}

/// Where a secret lives, bound into its sealing.
pub(crate) fn context(feed: Feed, endpoint: &str) -> String {
    match feed {
        Feed::Tenant(tenant) => format!("webhook:{tenant}:{endpoint}"),
        Feed::Platform => format!("webhook:platform:{endpoint}"),
    }
}

/// Whether an address is one webhooks may not reach by default.
pub fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

impl Engine {
    pub(crate) fn secrets_key(&self) -> Result<SecretsKey, EngineError> {
        self.secrets.key().map_err(|e| EngineError::Unexpected {
            answer: e.to_string(),
        })
    }

    /// The addresses `url` reaches, refused if any is private (unless the
    /// node allows it).
    pub async fn webhook_addresses(&self, url: &str) -> Result<Vec<SocketAddr>, QuotaError> {
        let parsed = url::Url::parse(url).map_err(|e| QuotaError::invalid("url", e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| QuotaError::invalid("url", "must name a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| QuotaError::invalid("url", format!("{host} does not resolve: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(QuotaError::invalid(
                "url",
                format!("{host} does not resolve"),
            ));
        }
        if !self.webhooks.allow_private
            && let Some(a) = addrs.iter().find(|a| private(a.ip()))
        {
            return Err(QuotaError::invalid(
                "url",
                format!(
                    "{host} resolves to {}, a loopback, private or link-local address; webhooks go to public addresses (a node started with --allow-private-webhooks allows these)",
                    a.ip()
                ),
            ));
        }
        Ok(addrs)
    }

    /// Register an endpoint; returns the tenant, the endpoint's id and its
    /// signing secret (shown this once).
    pub async fn add_webhook(
        &self,
        tenant: TenantId,
        spec: EndpointSpec,
        by: &AuditMeta,
    ) -> Result<(TenantState, String, String), EngineError> {
        let state = self.tenant(tenant).await?;
        self.catalog
            .requires(state.tenant.tier, features::WEBHOOKS)
            .map_err(QuotaError::NotInTier)?;
        self.webhook_addresses(&spec.url).await?;
        let id = format!("ep_{}", uuid::Uuid::new_v4().simple());
        let secret = signature::new_secret();
        let sealed = self
            .secrets_key()?
            .seal(&context(Feed::Tenant(tenant), &id), &secret);
        let endpoint = Endpoint::new(id.clone(), spec, sealed);
        let change = WebhookChange::Add {
            endpoint: Box::new(endpoint),
            limit: self.catalog.webhook_endpoints(state.tenant.tier),
            needs: Needs {
                feature: features::WEBHOOKS.to_string(),
                tier: self
                    .catalog
                    .features()
                    .min_tier(features::WEBHOOKS)
                    .expect("a checked feature"),
            },
        };
        let state = self.webhook_change(tenant, change, by).await?;
        Ok((state, id, secret))
    }

    pub async fn update_webhook(
        &self,
        tenant: TenantId,
        id: &str,
        spec: EndpointSpec,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        self.webhook_addresses(&spec.url).await?;
        let change = WebhookChange::Update {
            id: id.to_string(),
            spec,
        };
        self.webhook_change(tenant, change, by).await
    }

    /// A new signing secret; the old one keeps signing for `overlap`.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: TenantId,
        id: &str,
        overlap: Duration,
        by: &AuditMeta,
    ) -> Result<(TenantState, String), EngineError> {
        let secret = signature::new_secret();
        let sealed = self
            .secrets_key()?
            .seal(&context(Feed::Tenant(tenant), id), &secret);
        let change = WebhookChange::Rotate {
            id: id.to_string(),
            secret: sealed,
            overlap_until_ms: self.now_ms().saturating_add(overlap.as_millis() as i64),
        };
        Ok((self.webhook_change(tenant, change, by).await?, secret))
    }

    pub async fn webhook_change(
        &self,
        tenant: TenantId,
        change: WebhookChange,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::Webhook(Since(Box::new(change)));
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }
}

/// One delivery to send, with what it needs.
struct Due {
    /// Who the delivery says it is from (`user-agent`).
    sender: String,
    feed: Feed,
    delivery: Delivery,
    endpoint: Endpoint,
    message_id: String,
    body: String,
}

/// The `user-agent` of a tenant's deliveries: the platform's, or under
/// white label (in force for its tier) the tenant's product name, so the
/// platform's name reaches none of its receivers.
fn sender(catalog: &crate::quota::TierCatalog, t: &TenantState) -> String {
    let white = t.custom.branding.as_ref().filter(|b| {
        b.white_label
            && catalog
                .requires(t.tenant.tier, features::CUSTOM_BRANDING)
                .is_ok()
            && catalog
                .requires(t.tenant.tier, features::WHITE_LABEL)
                .is_ok()
    });
    match white {
        None => "quotad-webhooks".to_string(),
        Some(b) => {
            let name = b.product_name.as_deref().unwrap_or(&t.tenant.name);
            let clean: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("{}-webhooks", clean.trim_matches('-'))
        }
    }
}

/// The JSON a delivery posts: `{type, timestamp, data}`.
fn payload(alert: &crate::alerts::Alert) -> String {
    let data: serde_json::Value = serde_json::from_str(&alert.data).unwrap_or_default();
    let ts = chrono::DateTime::from_timestamp_millis(alert.at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    serde_json::json!({ "type": alert.kind.as_str(), "timestamp": ts, "data": data }).to_string()
}

impl Engine {
    /// The deliveries due now in the groups this node leads (the
    /// operators' too if it leads the meta group), not already being sent.
    fn due_deliveries(&self, in_flight: &HashSet<(Feed, u64)>) -> Vec<Due> {
        let now = self.now_ms();
        let mut out = Vec::new();
        if self.router.leader_of(crate::cluster::META_GROUP) == Some(self.router.node_id())
            && let Ok(meta) = self.router.meta.state.read()
        {
            let feed = &meta.platform_alerts.feed;
            for d in feed.due(now) {
                if in_flight.contains(&(Feed::Platform, d.id)) {
                    continue;
                }
                let (Some(endpoint), Some(alert)) =
                    (feed.endpoints.get(&d.endpoint), feed.alert(d.alert))
                else {
                    continue;
                };
                out.push(Due {
                    sender: "quotad-webhooks".to_string(),
                    feed: Feed::Platform,
                    delivery: d.clone(),
                    endpoint: endpoint.clone(),
                    message_id: crate::alerts::PlatformAlerts::message_id(alert.seq),
                    body: payload(alert),
                });
            }
        }
        for shard in self.router.served() {
            let Ok(state) = shard.group.state.read() else {
                continue;
            };
            for (tenant, t) in state.tenants.iter() {
                if t.alerts.deliveries.is_empty() {
                    continue;
                }
                for d in t.alerts.due(now) {
                    if in_flight.contains(&(Feed::Tenant(*tenant), d.id)) {
                        continue;
                    }
                    let (Some(endpoint), Some(alert)) =
                        (t.alerts.endpoints.get(&d.endpoint), t.alerts.alert(d.alert))
                    else {
                        continue;
                    };
                    out.push(Due {
                        sender: sender(&self.catalog, t),
                        feed: Feed::Tenant(*tenant),
                        delivery: d.clone(),
                        endpoint: endpoint.clone(),
                        message_id: alert.message_id(tenant),
                        body: payload(alert),
                    });
                }
            }
        }
        out
    }

    /// Send one delivery and record the attempt through Raft.
    async fn send(&self, due: Due) -> Result<(), EngineError> {
        let key = self.secrets_key()?;
        let ctx = context(due.feed, &due.endpoint.id);
        let now_ms = self.now_ms();
        let ts = now_ms / 1000;
        let mut signatures = Vec::new();
        let mut secrets = vec![&due.endpoint.secret];
        if let Some((old, until)) = &due.endpoint.previous
            && *until > now_ms
        {
            secrets.push(old);
        }
        for s in secrets {
            let text = key.open(&ctx, s).map_err(|e| EngineError::Unexpected {
                answer: e.to_string(),
            })?;
            let raw = signature::key_of(&text).unwrap_or_default();
            signatures.push(signature::sign(&raw, &due.message_id, ts, &due.body));
        }
        let started = Instant::now();
        let result = async {
            let addrs = self
                .webhook_addresses(&due.endpoint.url)
                .await
                .map_err(|e| e.reason())?;
            let host = url::Url::parse(&due.endpoint.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            // reqwest's rustls comes without a crypto provider: the
            // node's (ring), installed by the binary; installed here too
            // for an engine embedded without it. A second install is a no-op.
            let _ = rustls::crypto::ring::default_provider().install_default();
            // Connect to the address just checked, not one a second lookup
            // might give (DNS rebinding).
            let client = reqwest::Client::builder()
                .timeout(self.webhooks.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, addrs[0])
                .build()
                .map_err(|e| e.to_string())?;
            client
                .post(&due.endpoint.url)
                .header("content-type", "application/json")
                .header("user-agent", &due.sender)
                .header("webhook-id", &due.message_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signatures.join(" "))
                .body(due.body.clone())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| {
                    if e.is_timeout() {
                        "timed out".to_string()
                    } else if e.is_connect() {
                        "could not connect".to_string()
                    } else {
                        e.to_string()
                    }
                })
        }
        .await;
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let (status, error) = match result {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(crate::excerpt::short(&e).to_string())),
        };
        let jitter = rand::random_range(-100..=100);
        let outcome = outbox::outcome(due.delivery.tries + 1, status, self.now_ms(), jitter);
        metrics::counter!(crate::telemetry::WEBHOOK_ATTEMPTS, "result" => match outcome {
            outbox::Outcome::Delivered => "delivered",
            outbox::Outcome::Retry { .. } => "retry",
            outbox::Outcome::Dead => "dead",
        })
        .increment(1);
        let (id, attempt) = (
            due.delivery.id,
            Attempt {
                at_ms: now_ms,
                status,
                latency_ms,
                error,
            },
        );
        match due.feed {
            Feed::Tenant(tenant) => {
                let change = WebhookChange::Delivered {
                    id,
                    attempt,
                    outcome,
                };
                let op = TenantOp::Webhook(Since(Box::new(change)));
                self.apply(tenant, op, None, Some(Consistency::Strict))
                    .await?;
            }
            Feed::Platform => {
                let change = crate::alerts::PlatformChange::Delivered {
                    id,
                    attempt,
                    outcome,
                };
                self.platform_write(change, &AuditMeta::new("system", "webhooks"))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The delivery worker: every `interval`, what is due in the groups this
/// node leads is sent, at most `concurrency` at a time. A leader that dies
/// mid-send leaves the delivery pending: the next leader sends it again,
/// with the same `webhook-id`.
pub(super) fn spawn_deliveries(engine: Weak<Engine>, config: WebhookConfig) {
    tokio::spawn(async move {
        let in_flight: Arc<Mutex<HashSet<(Feed, u64)>>> = Arc::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
        loop {
            tokio::time::sleep(config.interval).await;
            let Some(e) = engine.upgrade() else { return };
            if e.router.is_closing() {
                return;
            }
            let taken = in_flight.lock().map(|s| s.clone()).unwrap_or_default();
            for due in e.due_deliveries(&taken) {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                let key = (due.feed, due.delivery.id);
                if let Ok(mut s) = in_flight.lock() {
                    s.insert(key);
                }
                let (e, in_flight) = (e.clone(), in_flight.clone());
                tokio::spawn(async move {
                    if let Err(err) = e.send(due).await {
                        tracing::debug!(error = %err, "a webhook attempt was not recorded; it stays due");
                    }
                    if let Ok(mut s) = in_flight.lock() {
                        s.remove(&key);
                    }
                    drop(permit);
                });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tenant, TenantStatus, Tier};

    #[test]
    fn white_label_deliveries_do_not_name_the_platform() {
        let catalog = crate::quota::TierCatalog::builtin();
        let tenant = |tier| Tenant {
            id: uuid::Uuid::nil(),
            slug: "glow".into(),
            name: "Glow Inc".into(),
            tier,
            status: TenantStatus::Active,
            timezone: chrono_tz::UTC,
            trial_ends_at_ms: None,
            settings_json: "{}".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            deleted: None,
        };
        let mut t = TenantState::new(tenant(Tier::Enterprise), Default::default());
        assert_eq!(sender(&catalog, &t), "quotad-webhooks");
        t.custom.branding = Some(crate::custom::Branding {
            white_label: true,
            product_name: Some("Glow AI".into()),
            ..Default::default()
        });
        assert_eq!(sender(&catalog, &t), "Glow-AI-webhooks");
        t.tenant.tier = Tier::Professional;
        assert_eq!(
            sender(&catalog, &t),
            "quotad-webhooks",
            "white label is ENTERPRISE"
        );
    }
}
