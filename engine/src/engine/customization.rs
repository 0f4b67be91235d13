//! Customization as a service: tier features, branding, feature flags
//! (the tenant's values and the platform's definitions) and their
//! evaluation.
use super::Engine;
use crate::audit::AuditMeta;
use crate::custom::{
    Branding, Evaluation, FlagDef, FlagValue, Needs, PlatformFlagOp, features, flags,
};
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, TenantId};
use crate::quota::{BrandingChange, FlagChange, TenantOp, TenantState};
use crate::raft::{Command, MetaOp};
use std::collections::BTreeMap;

/// Where a flag's definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagSource {
    Catalog,
    Platform,
}

impl FlagSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagSource::Catalog => "catalog",
            FlagSource::Platform => "platform",
        }
    }
}

impl Engine {
    /// Every flag definition in force: the catalog's, with the platform's
    /// replacing those of the same key and adding more.
    pub fn flag_defs(&self) -> BTreeMap<String, (FlagDef, FlagSource)> {
        let mut defs: BTreeMap<String, (FlagDef, FlagSource)> = self
            .catalog
            .flags()
            .iter()
            .map(|(k, d)| (k.clone(), (d.clone(), FlagSource::Catalog)))
            .collect();
        self.with_meta(|m| {
            for (k, f) in &m.platform_flags.flags {
                defs.insert(k.clone(), (f.def.clone(), FlagSource::Platform));
            }
        });
        defs
    }

    /// The definition in force for `key`, if any.
    pub fn flag_def(&self, key: &str) -> Option<(FlagDef, FlagSource)> {
        let platform = self.with_meta(|m| m.platform_flags.flags.get(key).map(|f| f.def.clone()));
        if let Some(def) = platform {
            return Some((def, FlagSource::Platform));
        }
        self.catalog
            .flags()
            .get(key)
            .map(|d| (d.clone(), FlagSource::Catalog))
    }

    /// How `key` evaluates for the tenant; `None`: no such flag.
    pub fn evaluate_flag(&self, state: &TenantState, key: &str) -> Option<Evaluation> {
        let def = self.flag_def(key).map(|(d, _)| d);
        flags::evaluate(def.as_ref(), state.custom.flags.get(key), state.tenant.tier)
    }

    /// Every flag the tenant sees, evaluated, by key: the defined ones and
    /// its own.
    pub fn evaluate_flags(&self, state: &TenantState) -> BTreeMap<String, Evaluation> {
        let defs = self.flag_defs();
        let tier = state.tenant.tier;
        let mut out = BTreeMap::new();
        for (k, (d, _)) in &defs {
            if let Some(e) = flags::evaluate(Some(d), state.custom.flags.get(k), tier) {
                out.insert(k.clone(), e);
            }
        }
        for (k, v) in state.custom.flags.iter() {
            if !defs.contains_key(k)
                && let Some(e) = flags::evaluate(None, Some(v), tier)
            {
                out.insert(k.clone(), e);
            }
        }
        out
    }

    /// Set the tenant's branding (`None` removes it). Needs custom
    /// branding, and white label when it asks for it.
    pub async fn set_branding(
        &self,
        tenant: TenantId,
        branding: Option<Branding>,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let state = self.tenant(tenant).await?;
        let mut needs = Vec::new();
        if let Some(b) = &branding {
            needs.push(features::CUSTOM_BRANDING);
            if b.white_label {
                needs.push(features::WHITE_LABEL);
            }
        }
        let mut checked = Vec::new();
        for feature in needs {
            self.catalog
                .requires(state.tenant.tier, feature)
                .map_err(crate::quota::QuotaError::NotInTier)?;
            checked.push(Needs {
                feature: feature.to_string(),
                tier: self
                    .catalog
                    .features()
                    .min_tier(feature)
                    .expect("a checked feature"),
            });
        }
        let op = TenantOp::SetBranding(Since(Box::new(BrandingChange {
            branding,
            needs: checked,
        })));
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    /// Set the tenant's value of flag `key` (`None` removes it). A defined
    /// flag takes only values of its type, and only from its lowest tier
    /// up; a key no definition has is a flag of the tenant's own. The
    /// tier's limit counts the values a tenant sets.
    pub async fn set_tenant_flag(
        &self,
        tenant: TenantId,
        key: &str,
        value: Option<FlagValue>,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        features::check_name(key).map_err(|e| crate::quota::QuotaError::invalid("key", e))?;
        let state = self.tenant(tenant).await?;
        let def = self.flag_def(key).map(|(d, _)| d);
        let needs = def.as_ref().and_then(|d| d.min_tier).map(|tier| Needs {
            feature: format!("flag {key}"),
            tier,
        });
        let change = FlagChange {
            key: key.to_string(),
            kind: def.as_ref().map(|d| d.kind),
            needs,
            limit: self.catalog.feature_flags(state.tenant.tier),
            value,
        };
        let op = TenantOp::SetFlag(Since(Box::new(change)));
        op.validate_admin()?;
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    /// Define (or, `None`, remove) a platform-wide flag. Returns once this
    /// node sees the change.
    pub async fn set_platform_flag(
        &self,
        key: &str,
        def: Option<FlagDef>,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        features::check_name(key).map_err(|e| crate::quota::QuotaError::invalid("key", e))?;
        if let Some(d) = &def {
            d.check()?;
        }
        let exists = |m: &crate::raft::MetaState| m.platform_flags.flags.contains_key(key);
        if def.is_none() && !self.with_meta(exists) {
            return Err(EngineError::FlagNotFound {
                key: key.to_string(),
            });
        }
        let at_ms = self.now_ms();
        let op = PlatformFlagOp {
            key: key.to_string(),
            def: def.clone(),
            by: by.actor.clone(),
            request_id: by.request_id.clone(),
            at_ms,
        };
        self.router
            .meta_write(Command::Meta(MetaOp::PlatformFlag(Since(op))))
            .await?;
        self.router
            .await_meta(|m| m.platform_flags.flags.get(key).map(|f| &f.def) == def.as_ref())
            .await;
        Ok(())
    }

    /// The latest platform flag changes, newest first.
    pub fn platform_flag_history(&self) -> Vec<crate::custom::platform_flags::FlagRecord> {
        self.with_meta(|m| m.platform_flags.history.iter().rev().cloned().collect())
    }

    fn with_meta<T>(&self, f: impl FnOnce(&crate::raft::MetaState) -> T) -> T {
        match self.router.meta.state.read() {
            Ok(m) => f(&m),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

impl Engine {
    /// The platform's definition of `key`, with who set it and when.
    pub fn platform_flag(&self, key: &str) -> Option<crate::custom::platform_flags::PlatformFlag> {
        self.with_meta(|m| m.platform_flags.flags.get(key).cloned())
    }
}

impl Engine {
    /// Set the tenant's API settings (needs the api_settings feature).
    pub async fn set_api_settings(
        &self,
        tenant: TenantId,
        settings: crate::custom::api_settings::ApiSettings,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let state = self.tenant(tenant).await?;
        self.catalog
            .requires(state.tenant.tier, features::API_SETTINGS)
            .map_err(crate::quota::QuotaError::NotInTier)?;
        let needs = Needs {
            feature: features::API_SETTINGS.to_string(),
            tier: self
                .catalog
                .features()
                .min_tier(features::API_SETTINGS)
                .expect("a checked feature"),
        };
        let op = TenantOp::SetApiSettings(Since(Box::new((settings, needs))));
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }
}
