//! Single sign-on as a service: a tenant's OIDC settings (checked against
//! the issuer's discovery document, the client secret sealed), and its
//! users' tokens verified against the issuer's keys (discovery and JWKS
//! fetched, cached, fetched again for a key id not seen: rotation).
use super::Engine;
use crate::audit::AuditMeta;
use crate::custom::sso::{SsoInput, SsoSettings};
use crate::custom::{Needs, features};
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, Role, TenantId};
use crate::quota::{QuotaError, TenantOp, TenantState};
use std::time::{Duration, Instant};

/// Keys are fetched again after this long, or for a key id not held once
/// this long has passed since the last fetch.
const KEYS_TTL: Duration = Duration::from_secs(600);
const REFETCH_AFTER: Duration = Duration::from_secs(5);

/// An issuer's keys as last fetched.
#[derive(Clone)]
pub(crate) struct IssuerKeys {
    keys: jsonwebtoken::jwk::JwkSet,
    fetched: Instant,
    /// From the discovery document: where users sign in, where codes are
    /// exchanged.
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// Who an SSO token signs in: the user's name and role in the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoUser {
    pub user: String,
    pub role: Role,
    /// The token's end (`exp`), in ms.
    pub expires_at_ms: Option<i64>,
    /// The token's `nonce` (the console's sign-in checks it).
    pub nonce: Option<String>,
}

impl Engine {
    /// GET a JSON document a tenant's settings point at, under the same
    /// rule as webhooks (no private addresses unless allowed).
    async fn fetch_json(
        &self,
        field: &'static str,
        url: &str,
    ) -> Result<serde_json::Value, QuotaError> {
        let addrs = self
            .webhook_addresses(url)
            .await
            .map_err(|e| QuotaError::invalid(field, e.reason()))?;
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addrs[0])
            .build()
            .map_err(|e| QuotaError::invalid(field, e.to_string()))?;
        let r =
            client.get(url).send().await.map_err(|e| {
                QuotaError::invalid(field, format!("{url} could not be fetched: {e}"))
            })?;
        if !r.status().is_success() {
            return Err(QuotaError::invalid(
                field,
                format!("{url} answered {}", r.status()),
            ));
        }
        r.json()
            .await
            .map_err(|e| QuotaError::invalid(field, format!("{url} is not JSON: {e}")))
    }

    /// The issuer's discovery document, checked: its `issuer` is the one
    /// configured, and it names its keys.
    async fn discover(&self, issuer: &str) -> Result<serde_json::Value, QuotaError> {
        let doc = self
            .fetch_json(
                "issuer",
                &format!("{issuer}/.well-known/openid-configuration"),
            )
            .await?;
        let said = doc.get("issuer").and_then(|i| i.as_str()).unwrap_or("");
        if said.trim_end_matches('/') != issuer {
            return Err(QuotaError::invalid(
                "issuer",
                format!("the discovery document names issuer {said:?}, not {issuer:?}"),
            ));
        }
        if doc.get("jwks_uri").and_then(|u| u.as_str()).is_none() {
            return Err(QuotaError::invalid(
                "issuer",
                "the discovery document has no jwks_uri",
            ));
        }
        Ok(doc)
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<IssuerKeys, QuotaError> {
        let discovery = self.discover(issuer).await?;
        let endpoint = |name: &str| {
            discovery
                .get(name)
                .and_then(|u| u.as_str())
                .map(str::to_string)
        };
        let jwks_uri = endpoint("jwks_uri").expect("checked by discover");
        let doc = self.fetch_json("issuer", &jwks_uri).await?;
        let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(doc).map_err(|e| {
            QuotaError::invalid("issuer", format!("the issuer's JWKS does not parse: {e}"))
        })?;
        let fetched = IssuerKeys {
            keys,
            fetched: Instant::now(),
            authorization_endpoint: endpoint("authorization_endpoint"),
            token_endpoint: endpoint("token_endpoint"),
        };
        self.sso_keys.insert(issuer.to_string(), fetched.clone());
        Ok(fetched)
    }

    /// Set (or, `None`, remove) the tenant's SSO. Needs the sso feature;
    /// the issuer must answer its discovery document.
    pub async fn set_sso(
        &self,
        tenant: TenantId,
        input: Option<SsoInput>,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let state = self.tenant(tenant).await?;
        let needs = Needs {
            feature: features::SSO.to_string(),
            tier: self
                .catalog
                .features()
                .min_tier(features::SSO)
                .expect("a checked feature"),
        };
        let settings = match input {
            None => None,
            Some(input) => {
                self.catalog
                    .requires(state.tenant.tier, features::SSO)
                    .map_err(QuotaError::NotInTier)?;
                let mut s: SsoSettings = input.check()?;
                self.fetch_keys(&s.issuer).await?;
                s.client_secret = match &input.client_secret {
                    Some(secret) => Some(
                        self.secrets
                            .key()
                            .map_err(|e| EngineError::Unexpected {
                                answer: e.to_string(),
                            })?
                            .seal(&format!("sso:{tenant}"), secret),
                    ),
                    // Left out: the one set before stays.
                    None => state
                        .custom
                        .sso
                        .as_ref()
                        .and_then(|o| o.client_secret.clone()),
                };
                Some(s)
            }
        };
        let op = TenantOp::SetSso(Since(Box::new((settings, needs))));
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    /// The tenant's user a token of its SSO issuer signs in, or why not.
    pub async fn sso_user(&self, tenant: &TenantState, token: &str) -> Result<SsoUser, String> {
        let Some(sso) = tenant.custom.sso.as_ref() else {
            return Err("the tenant has no single sign-on".into());
        };
        self.catalog
            .requires(tenant.tenant.tier, features::SSO)
            .map_err(|e| e.to_string())?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let kid = header.kid.clone().unwrap_or_default();
        let cached = self.sso_keys.get(&sso.issuer).map(|k| k.clone());
        let keys = match cached {
            Some(k)
                if k.fetched.elapsed() < KEYS_TTL
                    && (k.keys.find(&kid).is_some() || k.fetched.elapsed() < REFETCH_AFTER) =>
            {
                k
            }
            _ => self.fetch_keys(&sso.issuer).await.map_err(|e| e.reason())?,
        };
        let jwk = if kid.is_empty() && keys.keys.keys.len() == 1 {
            keys.keys.keys.first()
        } else {
            keys.keys.find(&kid)
        }
        .ok_or_else(|| format!("the issuer has no key {kid:?}"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("the issuer's key does not load: {e}"))?;
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.leeway = 5;
        v.set_issuer(&[sso.issuer.as_str(), &format!("{}/", sso.issuer)]);
        v.set_audience(&[sso.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| format!("the token does not verify for this tenant's issuer: {e}"))?;
        let claims = data.claims;
        let role = sso.role_for(&claims)?;
        let sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("");
        let user = claims.get("email").and_then(|e| e.as_str()).unwrap_or(sub);
        Ok(SsoUser {
            user: format!("sso:{user}"),
            role,
            expires_at_ms: claims
                .get("exp")
                .and_then(|e| e.as_i64())
                .map(|s| s.saturating_mul(1000)),
            nonce: claims
                .get("nonce")
                .and_then(|n| n.as_str())
                .map(str::to_string),
        })
    }
}

impl Engine {
    /// The tenant's issuer as last fetched (fetched again when stale).
    async fn issuer_keys(&self, tenant: &TenantState) -> Result<(SsoSettings, IssuerKeys), String> {
        let sso = tenant
            .custom
            .sso
            .0
            .clone()
            .ok_or("the tenant has no single sign-on")?;
        self.catalog
            .requires(tenant.tenant.tier, features::SSO)
            .map_err(|e| e.to_string())?;
        let keys = match self.sso_keys.get(&sso.issuer).map(|k| k.clone()) {
            Some(k) if k.fetched.elapsed() < KEYS_TTL => k,
            _ => self.fetch_keys(&sso.issuer).await.map_err(|e| e.reason())?,
        };
        Ok((sso, keys))
    }

    /// The tenant's issuer's sign-in page, for the console to send a user to.
    pub async fn sso_authorization_endpoint(&self, tenant: &TenantState) -> Result<String, String> {
        let (_, keys) = self.issuer_keys(tenant).await?;
        keys.authorization_endpoint
            .ok_or_else(|| "the issuer publishes no authorization_endpoint".to_string())
    }

    /// Exchange an authorization code at the tenant's issuer (with its
    /// client secret) for an ID token.
    pub async fn sso_exchange(
        &self,
        tenant: &TenantState,
        code: &str,
        redirect_uri: &str,
    ) -> Result<String, String> {
        let (sso, keys) = self.issuer_keys(tenant).await?;
        let token_endpoint = keys
            .token_endpoint
            .ok_or("the issuer publishes no token_endpoint")?;
        let secret = match &sso.client_secret {
            Some(sealed) => self
                .secrets
                .key()
                .and_then(|k| k.open(&format!("sso:{}", tenant.tenant.id), sealed))
                .map_err(|e| e.to_string())?,
            None => String::new(),
        };
        let addrs = self
            .webhook_addresses(&token_endpoint)
            .await
            .map_err(|e| e.reason())?;
        let host = url::Url::parse(&token_endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addrs[0])
            .build()
            .map_err(|e| e.to_string())?;
        let r = client
            .post(&token_endpoint)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", sso.client_id.as_str()),
                ("client_secret", secret.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("the issuer's token endpoint could not be reached: {e}"))?;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "the issuer refused the code ({status}): {}",
                body.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no reason given")
            ));
        }
        body.get("id_token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| "the issuer answered no id_token".to_string())
    }
}
