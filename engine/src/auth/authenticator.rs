//! Who is calling the data plane: the credential in a call's
//! `authorization` metadata, verified once and then cached, so a call
//! pays a map lookup rather than a signature check or a read of the
//! tenant's keys.
//!
//! A token's verification is cached until it expires. An API key's is
//! cached for at most [`KEY_RECHECK`]: a revocation or rotation, a
//! replicated change, stops the key on every node within that.
use super::api_key;
use super::jwt::{JwtKeys, OPERATOR, SERVICE};
use crate::Engine;
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{Caller, KeyProof, Principal, Refusal, Scope, Scopes, TenantId};
use crate::telemetry;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the data plane asks callers for a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPlaneAuth {
    #[default]
    Required,
    /// Every call is allowed, as [`Caller::Anonymous`].
    Off,
}

impl std::str::FromStr for DataPlaneAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(DataPlaneAuth::Required),
            "off" => Ok(DataPlaneAuth::Off),
            other => Err(format!("{other:?} is neither \"required\" nor \"off\"")),
        }
    }
}

/// How long a verified API key is trusted before its record is read again.
pub const KEY_RECHECK: Duration = Duration::from_millis(500);

/// Verified credentials kept; past it the cache starts over (a flood of
/// distinct credentials costs verifications, not memory).
const CACHE_CAP: usize = 65_536;

/// At most one audit event per caller and tenant in this long; the rest
/// are counted only.
const AUDIT_EVERY: Duration = Duration::from_secs(60);

struct Verified {
    /// The caller, with the credential's own end (a token's `exp`, a key's
    /// expiry) and the key it presented.
    principal: Arc<Principal>,
    /// Trusted without another look until then.
    fresh_until: Instant,
    /// For a tenant API key whose tenant lists networks (API settings, in
    /// force for its tier): where the key may be used from.
    allow: Option<Arc<Vec<crate::custom::api_settings::Cidr>>>,
}

/// Why a credential was refused before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Missing,
    Malformed,
    Invalid,
    Expired,
    NoGrant,
    IpNotAllowed,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Malformed => "malformed",
            Failure::Invalid => "invalid",
            Failure::Expired => "expired",
            Failure::NoGrant => "no_grant",
            Failure::IpNotAllowed => "ip_allowlist",
        }
    }
}

pub struct Authenticator {
    mode: DataPlaneAuth,
    jwt: JwtKeys,
    engine: Arc<Engine>,
    cache: DashMap<Box<str>, Verified>,
    anonymous: Arc<Principal>,
    audited: DashMap<(Box<str>, TenantId), Instant>,
    /// Client certificate names registered as platform services.
    services: Vec<String>,
    /// Client certificates (DER) seen, and the service each one is.
    certs: DashMap<Box<[u8]>, Option<Arc<Principal>>>,
}

impl Authenticator {
    pub fn new(mode: DataPlaneAuth, jwt: JwtKeys, engine: Arc<Engine>) -> Arc<Authenticator> {
        metrics::counter!(telemetry::CROSS_TENANT_VIOLATIONS).increment(0);
        Arc::new(Authenticator {
            mode,
            jwt,
            engine,
            cache: DashMap::new(),
            anonymous: Arc::new(Principal::anonymous()),
            audited: DashMap::new(),
            services: Vec::new(),
            certs: DashMap::new(),
        })
    }

    /// Register client certificate names (DNS names of their subject
    /// alternative names) as platform services: see [`Self::caller_of`].
    pub fn with_service_identities(mut self: Arc<Self>, names: Vec<String>) -> Arc<Self> {
        Arc::get_mut(&mut self)
            .expect("configured before it is shared")
            .services = names;
        self
    }

    /// The caller of a gRPC call: its `authorization` metadata or, without
    /// any, the client certificate it presented over mutual TLS when that
    /// certificate's name is registered as a service (the TLS handshake has
    /// already checked it against the client CA).
    pub async fn caller_of<T>(
        &self,
        req: &tonic::Request<T>,
    ) -> Result<Arc<Principal>, EngineError> {
        let authorization = req
            .metadata()
            .get("authorization")
            .map(tonic::metadata::MetadataValue::as_bytes);
        if authorization.is_none()
            && self.mode == DataPlaneAuth::Required
            && !self.services.is_empty()
            && let Some(leaf) = req.peer_certs().as_ref().and_then(|c| c.first().cloned())
            && let Some(service) = self.service_of(leaf.as_ref())
        {
            return Ok(service);
        }
        let peer = req.remote_addr().map(|a| a.ip());
        self.caller(authorization, peer).await
    }

    /// The service a client certificate identifies, if registered.
    fn service_of(&self, der: &[u8]) -> Option<Arc<Principal>> {
        if let Some(known) = self.certs.get(der) {
            return known.clone();
        }
        let service =
            webpki::EndEntityCert::try_from(&rustls::pki_types::CertificateDer::from(der))
                .ok()
                .and_then(|cert| {
                    self.services.iter().find(|name| {
                        rustls::pki_types::ServerName::try_from(name.as_str())
                            .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
                    })
                })
                .map(|name| {
                    Arc::new(Principal {
                        caller: Caller::Platform {
                            name: format!("mtls:{name}"),
                            operator: false,
                        },
                        expires_at_ms: None,
                        key: None,
                    })
                });
        if self.certs.len() >= CACHE_CAP {
            self.certs.clear();
        }
        self.certs.insert(der.into(), service.clone());
        service
    }

    pub fn mode(&self) -> DataPlaneAuth {
        self.mode
    }

    /// The caller of a call with this `authorization` metadata value, made
    /// from `peer` (a tenant API key is refused outside its tenant's IP
    /// allowlist; an unknown peer is outside any list).
    pub async fn caller(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Arc<Principal>, EngineError> {
        if self.mode == DataPlaneAuth::Off {
            return Ok(self.anonymous.clone());
        }
        let Some(raw) = authorization else {
            return Err(fail(
                Failure::Missing,
                "missing authorization metadata: send \"Bearer <token or API key>\"",
            ));
        };
        let credential = std::str::from_utf8(raw)
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                fail(
                    Failure::Malformed,
                    "authorization must be \"Bearer <token or API key>\"",
                )
            })?;
        let now = Instant::now();
        let now_ms = self.engine.now_ms();
        if let Some(v) = self.cache.get(credential)
            && now < v.fresh_until
        {
            if v.principal.expires_at_ms.is_some_and(|at| now_ms >= at) {
                return Err(fail(Failure::Expired, "the credential has expired"));
            }
            allowed_from(&v, peer)?;
            return Ok(v.principal.clone());
        }
        let verified = if api_key::is_api_key(credential) {
            self.verify_key(credential, now, now_ms).await?
        } else {
            self.verify_token(credential, now)?
        };
        let principal = verified.principal.clone();
        let checked = allowed_from(&verified, peer);
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
        }
        self.cache.insert(credential.into(), verified);
        checked.map(|()| principal)
    }

    fn verify_token(&self, token: &str, now: Instant) -> Result<Verified, EngineError> {
        let claims = self.jwt.verify(token).map_err(|why| {
            let failure = if why.contains("expired") {
                Failure::Expired
            } else if why.starts_with("malformed") {
                Failure::Malformed
            } else {
                Failure::Invalid
            };
            fail(failure, why)
        })?;
        let operator = claims.roles.iter().any(|r| r == OPERATOR);
        let caller = if operator || claims.roles.iter().any(|r| r == SERVICE) {
            Caller::Platform {
                name: claims.sub.clone(),
                operator,
            }
        } else if let Some(t) = &claims.tenant_id {
            let tenant = t.parse::<TenantId>().map_err(|_| {
                fail(
                    Failure::Malformed,
                    "the token's tenant_id is not a tenant id",
                )
            })?;
            Caller::Tenant {
                tenant,
                name: claims.sub.clone(),
                scopes: Scopes::ALL,
            }
        } else {
            return Err(EngineError::Forbidden {
                reason: format!(
                    "the token of {:?} grants no data-plane access: it needs the service role or a tenant_id",
                    short(&claims.sub)
                ),
            })
            .inspect_err(|_| count(Failure::NoGrant));
        };
        Ok(Verified {
            principal: Arc::new(Principal {
                caller,
                expires_at_ms: i64::try_from(claims.exp)
                    .ok()
                    .map(|s| s.saturating_mul(1000)),
                key: None,
            }),
            fresh_until: now + Duration::from_secs(3600),
            allow: None,
        })
    }

    async fn verify_key(
        &self,
        text: &str,
        now: Instant,
        now_ms: i64,
    ) -> Result<Verified, EngineError> {
        let invalid = || {
            fail(
                Failure::Invalid,
                "the API key is not valid (unknown or revoked)",
            )
        };
        let presented = api_key::parse(text)
            .ok_or_else(|| fail(Failure::Malformed, "the API key is not in the form qdk_…"))?;
        let state = match self.engine.tenant(presented.tenant).await {
            Ok(s) => s,
            Err(e) if e.code() == ErrorCode::NotFound => return Err(invalid()),
            Err(e) => return Err(e),
        };
        let key = state.api_keys.0.get(&presented.id).ok_or_else(invalid)?;
        if key.expires_at_ms.is_some_and(|at| now_ms >= at) {
            return Err(fail(Failure::Expired, "the API key has expired"));
        }
        if !key.opens(&presented.hash, now_ms) {
            return Err(invalid());
        }
        let until_ms = [
            key.expires_at_ms,
            key.previous
                .filter(|(old, _)| *old == presented.hash)
                .map(|(_, until)| until),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(Verified {
            principal: Arc::new(Principal {
                caller: Caller::Tenant {
                    tenant: presented.tenant,
                    name: format!("api-key:{}", key.id),
                    scopes: key.scopes,
                },
                expires_at_ms: until_ms,
                key: Some(KeyProof {
                    id: key.id.clone(),
                    hash: presented.hash,
                }),
            }),
            fresh_until: now + KEY_RECHECK,
            allow: self.allowlist_of(&state),
        })
    }

    /// The networks a key of this tenant may be used from, when its API
    /// settings list some and its tier has them.
    fn allowlist_of(
        &self,
        state: &crate::quota::TenantState,
    ) -> Option<Arc<Vec<crate::custom::api_settings::Cidr>>> {
        let nets = &state.custom.api.ip_allowlist;
        let in_force = self
            .engine
            .catalog()
            .requires(state.tenant.tier, crate::custom::features::API_SETTINGS)
            .is_ok();
        (in_force && !nets.is_empty()).then(|| Arc::new(nets.clone()))
    }

    /// Whether `caller` may do `scope` to `tenant`; a credential of another
    /// tenant is counted and audited on both tenants.
    pub fn authorize(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: &TenantId,
        scope: Scope,
        request_id: &str,
    ) -> Result<(), EngineError> {
        match caller.may(tenant, scope) {
            Ok(()) => Ok(()),
            Err(Refusal::Scope(s)) => Err(EngineError::Forbidden {
                reason: format!("the credential lacks the {s} scope"),
            }),
            Err(Refusal::OtherTenant { own }) => {
                self.violation(caller, own, *tenant, request_id);
                Err(EngineError::Forbidden {
                    reason: format!(
                        "the credential is tenant {own}'s; it cannot act for tenant {tenant}"
                    ),
                })
            }
        }
    }

    /// A use through a sharing grant that the grant does not allow: counted
    /// as a cross-tenant access violation, and audited on the consumer and
    /// the provider (once a minute per consumer and policy, like other
    /// violations: a client retrying a refused call must not fill the
    /// audit chains).
    pub fn sharing_refused(
        self: &Arc<Self>,
        caller: &Caller,
        consumer: TenantId,
        policy: uuid::Uuid,
        reason: &str,
        request_id: &str,
    ) {
        metrics::counter!(telemetry::CROSS_TENANT_VIOLATIONS).increment(1);
        tracing::info!(caller = caller.name(), %consumer, %policy, reason, request_id, "shared use refused");
        if !self.first_in_a_while(format!("sharing:{policy}").into(), consumer) {
            return;
        }
        let detail = serde_json::json!({
            "policy": policy.to_string(),
            "consumer": consumer.to_string(),
            "reason": reason,
        })
        .to_string();
        if let Some(provider) = self.engine.provider_of(policy) {
            self.engine.raise_alert_in_background(
                provider,
                crate::alerts::AlertType::SharingAccessViolation,
                format!("sharing:{policy}:{consumer}"),
                minute(self.engine.now_ms()),
                serde_json::json!({
                    "tenantId": provider.to_string(),
                    "policyId": policy.to_string(),
                    "consumerTenantId": consumer.to_string(),
                    "caller": caller.name(),
                    "reason": reason,
                }),
            );
        }
        let tenants = std::iter::once(consumer).chain(self.engine.provider_of(policy));
        let events = tenants
            .map(|t| (t, "sharing.use_refused", policy.to_string(), detail.clone()))
            .collect();
        self.audit_in_background(AuditMeta::new(caller.name(), request_id), events);
    }

    fn violation(
        self: &Arc<Self>,
        caller: &Caller,
        own: TenantId,
        target: TenantId,
        request_id: &str,
    ) {
        metrics::counter!(telemetry::CROSS_TENANT_VIOLATIONS).increment(1);
        tracing::warn!(caller = caller.name(), own = %own, target = %target, request_id, "cross-tenant data-plane call refused");
        if !self.first_in_a_while(caller.name().into(), target) {
            return;
        }
        let event = |tenant, detail: serde_json::Value| {
            (
                tenant,
                "access.denied",
                "cross_tenant".to_string(),
                detail.to_string(),
            )
        };
        self.engine.raise_alert_in_background(
            target,
            crate::alerts::AlertType::SharingAccessViolation,
            format!("cross_tenant:{}", caller.name()),
            minute(self.engine.now_ms()),
            serde_json::json!({
                "tenantId": target.to_string(),
                "source": "data plane",
                "caller": caller.name(),
                "credentialOf": own.to_string(),
            }),
        );
        let events = vec![
            event(
                target,
                serde_json::json!({"source": "data plane", "credentialOf": own.to_string()}),
            ),
            event(
                own,
                serde_json::json!({"source": "data plane", "named": target.to_string()}),
            ),
        ];
        self.audit_in_background(AuditMeta::new(caller.name(), request_id), events);
    }

    /// Whether `(what, tenant)` was not audited in the last [`AUDIT_EVERY`]
    /// (and note that it is now).
    fn first_in_a_while(&self, what: Box<str>, tenant: TenantId) -> bool {
        let now = Instant::now();
        let key = (what, tenant);
        if self
            .audited
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < AUDIT_EVERY)
        {
            return false;
        }
        if self.audited.len() >= CACHE_CAP {
            self.audited.clear();
        }
        self.audited.insert(key, now);
        true
    }

    /// Record `(tenant, action, target, detail)` events without holding up
    /// the call that caused them; a tenant that does not exist gets none.
    fn audit_in_background(
        self: &Arc<Self>,
        meta: AuditMeta,
        events: Vec<(TenantId, &'static str, String, String)>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            for (tenant, action, target, detail) in events {
                match this
                    .engine
                    .record_audit(tenant, &meta, action, &target, detail)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.code() == ErrorCode::NotFound => {}
                    Err(e) => {
                        tracing::warn!(error = %e, %tenant, action, "could not audit a refusal")
                    }
                }
            }
        });
    }
}

/// Refuse a key used from outside its tenant's networks.
fn allowed_from(v: &Verified, peer: Option<std::net::IpAddr>) -> Result<(), EngineError> {
    let Some(nets) = &v.allow else { return Ok(()) };
    if peer.is_some_and(|ip| nets.iter().any(|n| n.contains(ip))) {
        return Ok(());
    }
    count(Failure::IpNotAllowed);
    Err(EngineError::Forbidden {
        reason: format!(
            "this API key may not be used from {}: outside its tenant's IP allowlist",
            peer.map_or("an unknown address".to_string(), |p| p.to_string())
        ),
    })
}

/// The minute `now_ms` falls in: violations alert at most once a minute
/// per caller, like their audit events.
fn minute(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(60_000)
}

fn count(failure: Failure) {
    metrics::counter!(telemetry::AUTH_FAILURES, "reason" => failure.label()).increment(1);
}

fn fail(failure: Failure, reason: impl Into<String>) -> EngineError {
    count(failure);
    EngineError::Unauthenticated {
        reason: reason.into(),
    }
}

pub(crate) use crate::excerpt::short;
