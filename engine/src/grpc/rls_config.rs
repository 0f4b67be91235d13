//! How Envoy rate-limit descriptors map to tenants and quotas.
//!
//! ```toml
//! [[domains]]
//! domain = "llm-gateway"     # Envoy's `domain` ("*": any domain)
//! tenant_key = "tenant_id"   # the entry whose value is the tenant id
//! quota_key = "quota"        # the entry whose value names the quota...
//! default_quota = "api_requests"  # ...or this when there is none
//! consistency = "strict"     # or "fast"
//! sub_limit_keys = ["model"] # entries that narrow the quota (see below)
//! scope_key = "user"         # the entry whose value is the scope
//! ```
//! **Scopes.** With `scope_key`, a descriptor that carries that entry
//! spends in the scope it names (an end user, an API key, a project):
//! the quota's scope rules limit that value and the tenant's quota limits
//! the sum, in one decision, as a gRPC Increment with `scope` does. A
//! descriptor without the entry spends the tenant's quota alone.
//! **Sub-limits.** A descriptor that also carries one of `sub_limit_keys`
//! spends the tenant's quota named `{quota}_{key}_{value}` instead (values
//! lowercased, other characters than letters and digits turned into `_`):
//! with `model = "gpt-4o"`, quota `llm_tokens` becomes
//! `llm_tokens_model_gpt_4o`. Envoy sends the parent descriptor and the
//! narrowed one side by side, so a request spends both and is limited by
//! either. A sub-limit the tenant has not defined limits nothing: that
//! descriptor is answered OK and not counted.
//! A descriptor without the tenant entry, or without a quota, is not limited
//! by quotad (answered OK), as Envoy's reference service does for
//! descriptors it has no rule for.
//!
//! **Shared resources.** A descriptor that carries `sharing_policy_key`
//! (default `sharing_policy_id`) is the tenant's use of another tenant's
//! resource through that policy's grant, needing the permission in
//! `permission_key` (default `permission`; else `execute`). It is decided on
//! its own, like a gRPC Increment with `sharing_policy_id`: refused with
//! PERMISSION_DENIED when the grant does not allow it, OVER_LIMIT when the
//! tenant's quota or the grant's cap is full.
//!
//! **One decision per tenant.** All descriptors of one request that name
//! the same tenant are decided together: all spent, or none. An entry named
//! `request_id_key` (default `request_id`; Envoy fills it from the
//! `x-request-id` header with a `request_headers` action) is the request's
//! idempotency key, so a retried request is answered as the first time and
//! spends nothing again.
use crate::model::Consistency;
use crate::model::TenantId;
use crate::quota::QuotaError;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlsConfig {
    #[serde(default)]
    pub domains: Vec<RlsDomain>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlsDomain {
    pub domain: String,
    #[serde(default = "tenant_key")]
    pub tenant_key: String,
    #[serde(default = "quota_key")]
    pub quota_key: String,
    #[serde(default)]
    pub default_quota: Option<String>,
    #[serde(default)]
    pub consistency: Option<String>,
    #[serde(default)]
    pub sub_limit_keys: Vec<String>,
    #[serde(default = "request_id_key")]
    pub request_id_key: String,
    #[serde(default = "sharing_policy_key")]
    pub sharing_policy_key: String,
    #[serde(default = "permission_key")]
    pub permission_key: String,
    #[serde(default)]
    pub scope_key: Option<String>,
}

fn sharing_policy_key() -> String {
    "sharing_policy_id".into()
}

fn permission_key() -> String {
    "permission".into()
}

fn request_id_key() -> String {
    "request_id".into()
}

fn tenant_key() -> String {
    "tenant_id".into()
}

fn quota_key() -> String {
    "quota".into()
}

impl Default for RlsConfig {
    /// Any domain; `tenant_id` and `quota` entries.
    fn default() -> Self {
        RlsConfig {
            domains: vec![RlsDomain {
                domain: "*".into(),
                tenant_key: tenant_key(),
                quota_key: quota_key(),
                sharing_policy_key: sharing_policy_key(),
                permission_key: permission_key(),
                default_quota: None,
                consistency: None,
                sub_limit_keys: Vec::new(),
                request_id_key: request_id_key(),
                scope_key: None,
            }],
        }
    }
}

/// What one descriptor asks of quotad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant: TenantId,
    pub quota: String,
    pub consistency: Option<Consistency>,
    /// Named by sub-limit entries: the tenant may not define it.
    pub sub_limit: bool,
    /// A use of another tenant's resource through a sharing grant.
    pub via: Option<crate::Via>,
    /// The scope value named by the domain's `scope_key` entry.
    pub scope: Option<String>,
}

impl RlsConfig {
    pub fn parse(text: &str) -> Result<RlsConfig, String> {
        let c: RlsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, d) in c.domains.iter().enumerate() {
            if d.domain.is_empty() {
                return Err(format!("domains[{i}].domain: must not be empty"));
            }
            if let Some(s) = &d.consistency
                && s != "strict"
                && s != "fast"
            {
                return Err(format!(
                    "domains[{i}].consistency: {s:?} is neither \"strict\" nor \"fast\""
                ));
            }
        }
        Ok(c)
    }

    /// The rule for `domain`: an exact match first, else `*`.
    pub fn domain(&self, domain: &str) -> Option<&RlsDomain> {
        self.domains
            .iter()
            .find(|d| d.domain == domain)
            .or_else(|| self.domains.iter().find(|d| d.domain == "*"))
    }
}

impl RlsDomain {
    /// The request id a descriptor carries, if any: the idempotency key.
    pub fn request_id<'a>(
        &self,
        mut entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Option<&'a str> {
        entries
            .find(|(k, _)| *k == self.request_id_key)
            .map(|(_, v)| v)
    }

    /// The tenant and quota a descriptor's entries name; `Ok(None)` when
    /// the descriptor is not one quotad limits.
    pub fn target<'a>(
        &self,
        entries: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<Option<Target>, QuotaError> {
        let value = |key: &str| entries.clone().find(|(k, _)| *k == key).map(|(_, v)| v);
        let Some(tenant) = value(&self.tenant_key) else {
            return Ok(None);
        };
        let tenant: TenantId = tenant.parse().map_err(|_| {
            QuotaError::invalid(
                "descriptors",
                format!("entry {:?}: {tenant:?} is not a tenant id", self.tenant_key),
            )
        })?;
        let mut quota = match value(&self.quota_key).or(self.default_quota.as_deref()) {
            Some(q) => q.to_string(),
            None => return Ok(None),
        };
        let mut sub_limit = false;
        for key in &self.sub_limit_keys {
            if let Some(v) = value(key) {
                sub_limit = true;
                quota.push('_');
                quota.push_str(&name_part(key));
                quota.push('_');
                quota.push_str(&name_part(v));
            }
        }
        let consistency = match self.consistency.as_deref() {
            Some("fast") => Some(Consistency::Fast),
            Some(_) => Some(Consistency::Strict),
            None => None,
        };
        let via = match value(&self.sharing_policy_key) {
            None => None,
            Some(policy) => {
                let bad = |what: &str, v: &str| {
                    QuotaError::invalid(
                        "descriptors",
                        format!(
                            "entry {what:?}: {:?} {}",
                            crate::excerpt::short(v),
                            "is not valid"
                        ),
                    )
                };
                let policy = uuid::Uuid::parse_str(policy)
                    .map_err(|_| bad(&self.sharing_policy_key, policy))?;
                let permission = match value(&self.permission_key) {
                    None => crate::sharing::Permission::Execute,
                    Some(p) => p.parse().map_err(|_| bad(&self.permission_key, p))?,
                };
                Some(crate::Via { policy, permission })
            }
        };
        let scope = match self.scope_key.as_deref().and_then(value) {
            None => None,
            Some(v) => {
                crate::quota::validate::scope(v).map_err(|e| {
                    QuotaError::invalid(
                        "descriptors",
                        format!(
                            "entry {:?}: {:?}: {}",
                            self.scope_key.as_deref().unwrap_or_default(),
                            crate::excerpt::short(v),
                            e.reason()
                        ),
                    )
                })?;
                if via.is_some() {
                    return Err(QuotaError::invalid(
                        "descriptors",
                        format!(
                            "entry {:?}: a use through a sharing grant spends the grant's cap, not a scope of the tenant's quota",
                            self.scope_key.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                Some(v.to_string())
            }
        };
        Ok(Some(Target {
            tenant,
            quota,
            consistency,
            sub_limit,
            via,
            scope,
        }))
    }
}

/// `value` as part of a quota name: lowercase letters, digits and `_`.
fn name_part(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "5f0c7d2e-8a55-4c1e-9a57-1c2b3d4e5f60";

    #[test]
    fn descriptors_map_to_tenant_and_quota() {
        let c = RlsConfig::parse(
            r#"
            [[domains]]
            domain = "gw"
            tenant_key = "org"
            default_quota = "api_requests"
            consistency = "fast"
            "#,
        )
        .unwrap();
        let d = c.domain("gw").unwrap();
        let t = d
            .target([("org", TENANT), ("path", "/v1")].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(t.quota, "api_requests");
        assert_eq!(t.consistency, Some(Consistency::Fast));
        assert_eq!(t.tenant.to_string(), TENANT);
        // An explicit quota entry wins over the default.
        let t = d
            .target([("org", TENANT), ("quota", "llm_tokens")].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(t.quota, "llm_tokens");
        // No tenant entry: not quotad's descriptor.
        assert_eq!(d.target([("path", "/v1")].into_iter()).unwrap(), None);
        // A bad tenant id names the field.
        let e = d.target([("org", "nope")].into_iter()).unwrap_err();
        assert_eq!(e.field(), Some("descriptors"));
        // Unknown domains: none configured, and no wildcard.
        assert!(c.domain("other").is_none());
        assert!(RlsConfig::default().domain("anything").is_some());
    }

    #[test]
    fn sub_limit_entries_narrow_the_quota() {
        let c = RlsConfig::parse(
            r#"
            [[domains]]
            domain = "gw"
            default_quota = "llm_tokens"
            sub_limit_keys = ["model", "region"]
            "#,
        )
        .unwrap();
        let d = c.domain("gw").unwrap();
        let parent = d
            .target([("tenant_id", TENANT)].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(
            (parent.quota.as_str(), parent.sub_limit),
            ("llm_tokens", false)
        );
        let sub = d
            .target([("tenant_id", TENANT), ("model", "GPT-4o")].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(sub.quota, "llm_tokens_model_gpt_4o");
        assert!(sub.sub_limit);
        // Several keys, in the configured order whatever the entry order.
        let both = d
            .target(
                [
                    ("region", "eu.west"),
                    ("tenant_id", TENANT),
                    ("model", "m1"),
                ]
                .into_iter(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(both.quota, "llm_tokens_model_m1_region_eu_west");
    }

    #[test]
    fn the_scope_entry_names_the_scope() {
        let c = RlsConfig::parse(
            "[[domains]]\ndomain = \"gw\"\ndefault_quota = \"api_requests\"\nscope_key = \"user\"",
        )
        .unwrap();
        let d = c.domain("gw").unwrap();
        let t = d
            .target([("tenant_id", TENANT), ("user", "alice@acme.test")].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(t.scope.as_deref(), Some("alice@acme.test"));
        let plain = d
            .target([("tenant_id", TENANT)].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(plain.scope, None);
        let e = d
            .target([("tenant_id", TENANT), ("user", "no spaces")].into_iter())
            .unwrap_err();
        assert!(e.to_string().contains("\"user\""), "{e}");
        let e = d
            .target(
                [
                    ("tenant_id", TENANT),
                    ("user", "bob"),
                    ("sharing_policy_id", TENANT),
                ]
                .into_iter(),
            )
            .unwrap_err();
        assert_eq!(e.field(), Some("descriptors"));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = RlsConfig::parse("[[domains]]\ndomain = \"x\"\nconsistency = \"eventual\"")
            .unwrap_err();
        assert!(e.contains("domains[0].consistency"), "{e}");
        let e = RlsConfig::parse("[[domains]]\ndomain = \"x\"\nbogus = 1").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
