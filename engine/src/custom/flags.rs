//! Feature flags: their definitions (from the tier catalog, or set by
//! operators for the whole platform), a tenant's values, and how one
//! evaluates for a tenant. Evaluation is a pure function of the
//! definition, the tenant's own value and its tier; its reasons are
//! OpenFeature's.
//!
//! ```text
//! no definition, no own value       -> not found
//! no definition, own value          -> own value      TARGETING_MATCH  (the tenant's own flag)
//! definition switched off           -> default        DISABLED
//! tier below the flag's min_tier    -> default        DISABLED         (own value kept, unused)
//! own value                         -> own value      TARGETING_MATCH
//! a value for the tenant's tier     -> tier's value   DEFAULT
//! otherwise                         -> default        STATIC
//! ```
use crate::model::Tier;
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A flag's type, as OpenFeature's typed evaluations know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagType {
    Boolean,
    String,
    Number,
    /// Any JSON object or array.
    Object,
}

impl FlagType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }

    pub fn parse(raw: &str) -> Result<FlagType, String> {
        match raw {
            "boolean" => Ok(FlagType::Boolean),
            "string" => Ok(FlagType::String),
            "number" => Ok(FlagType::Number),
            "object" | "json" => Ok(FlagType::Object),
            other => Err(format!(
                "unknown flag type {:?}: expected boolean, string, number or object",
                crate::excerpt::short(other)
            )),
        }
    }
}

/// A flag value: JSON text in canonical form (serde_json's, keys sorted),
/// so equal values are equal bytes in every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagValue(String);

/// The largest flag value, as JSON text.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

impl FlagValue {
    /// `v` as a flag value (field `field` names it in errors).
    pub fn of(field: &'static str, v: &serde_json::Value) -> Result<FlagValue, QuotaError> {
        if v.is_null() {
            return Err(QuotaError::invalid(
                field,
                "must be a boolean, string, number, object or array, not null",
            ));
        }
        let text = v.to_string();
        if text.len() > MAX_VALUE_BYTES {
            return Err(QuotaError::invalid(
                field,
                format!("must be at most {MAX_VALUE_BYTES} bytes of JSON"),
            ));
        }
        Ok(FlagValue(text))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    pub fn as_text(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> FlagType {
        match self.json() {
            serde_json::Value::Bool(_) => FlagType::Boolean,
            serde_json::Value::String(_) => FlagType::String,
            serde_json::Value::Number(_) => FlagType::Number,
            _ => FlagType::Object,
        }
    }

    /// Refuse a value of another type than `kind`.
    pub fn expect(&self, field: &'static str, kind: FlagType) -> Result<(), QuotaError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(QuotaError::invalid(
                field,
                format!(
                    "the flag is of type {}; {} is a {}",
                    kind.as_str(),
                    crate::excerpt::short(&self.0),
                    self.kind().as_str()
                ),
            ))
        }
    }
}

/// A flag's definition: from the tier catalog (`[flags.KEY]`) or set by an
/// operator for the platform (which replaces the catalog's of that key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagDef {
    pub kind: FlagType,
    pub default: FlagValue,
    /// The value for tenants of a tier, where it differs from `default`.
    pub tiers: BTreeMap<Tier, FlagValue>,
    /// Tenants below this tier get `default` (DISABLED) and may not set
    /// their own value.
    pub min_tier: Option<Tier>,
    /// Off: every tenant gets `default` (DISABLED).
    pub enabled: bool,
    pub description: String,
}

impl FlagDef {
    /// Check that every value is of the flag's type.
    pub fn check(&self) -> Result<(), QuotaError> {
        self.default.expect("default", self.kind)?;
        for v in self.tiers.values() {
            v.expect("tiers", self.kind)?;
        }
        if self.description.chars().count() > 500 {
            return Err(QuotaError::invalid(
                "description",
                "must be at most 500 characters",
            ));
        }
        Ok(())
    }

    /// Whether a tenant of `tier` may use the flag (and set its own value).
    pub fn allows(&self, tier: Tier) -> bool {
        self.min_tier.is_none_or(|min| tier >= min)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Static,
    Default,
    TargetingMatch,
    Disabled,
}

impl Reason {
    /// As OFREP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Default => "DEFAULT",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Disabled => "DISABLED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub value: FlagValue,
    /// `default`, `tenant`, or the tier's name in lowercase.
    pub variant: String,
    pub reason: Reason,
}

/// How a flag evaluates for a tenant of `tier` whose own value is `own`
/// (see the module's table); `None`: no such flag.
pub fn evaluate(def: Option<&FlagDef>, own: Option<&FlagValue>, tier: Tier) -> Option<Evaluation> {
    let at = |value: &FlagValue, variant: &str, reason| Evaluation {
        value: value.clone(),
        variant: variant.to_string(),
        reason,
    };
    let Some(def) = def else {
        return own.map(|v| at(v, "tenant", Reason::TargetingMatch));
    };
    if !def.enabled || !def.allows(tier) {
        return Some(at(&def.default, "default", Reason::Disabled));
    }
    if let Some(v) = own {
        return Some(at(v, "tenant", Reason::TargetingMatch));
    }
    if let Some(v) = def.tiers.get(&tier) {
        return Some(at(v, &tier.as_str().to_lowercase(), Reason::Default));
    }
    Some(at(&def.default, "default", Reason::Static))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(j: serde_json::Value) -> FlagValue {
        FlagValue::of("value", &j).unwrap()
    }

    fn def() -> FlagDef {
        FlagDef {
            kind: FlagType::Number,
            default: v(json!(8192)),
            tiers: BTreeMap::from([(Tier::Enterprise, v(json!(131072)))]),
            min_tier: Some(Tier::Starter),
            enabled: true,
            description: String::new(),
        }
    }

    #[test]
    fn evaluation_follows_the_table() {
        use Reason::*;
        let d = def();
        let own = v(json!(4096));
        type Case<'a> = (
            Option<&'a FlagDef>,
            Option<&'a FlagValue>,
            Tier,
            Option<(serde_json::Value, &'a str, Reason)>,
        );
        let cases: [Case; 7] = [
            (None, None, Tier::Free, None),
            (
                None,
                Some(&own),
                Tier::Free,
                Some((json!(4096), "tenant", TargetingMatch)),
            ),
            (
                Some(&d),
                Some(&own),
                Tier::Free,
                Some((json!(8192), "default", Disabled)),
            ),
            (
                Some(&d),
                Some(&own),
                Tier::Starter,
                Some((json!(4096), "tenant", TargetingMatch)),
            ),
            (
                Some(&d),
                None,
                Tier::Enterprise,
                Some((json!(131072), "enterprise", Default)),
            ),
            (
                Some(&d),
                None,
                Tier::Professional,
                Some((json!(8192), "default", Static)),
            ),
            (
                Some(&FlagDef {
                    enabled: false,
                    ..def()
                }),
                Some(&own),
                Tier::Enterprise,
                Some((json!(8192), "default", Disabled)),
            ),
        ];
        for (i, (d, own, tier, want)) in cases.into_iter().enumerate() {
            let got = evaluate(d, own, tier).map(|e| (e.value.json(), e.variant, e.reason));
            let want = want.map(|(j, var, r)| (j, var.to_string(), r));
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn values_are_typed_and_canonical() {
        assert_eq!(
            v(json!({"b": 1, "a": [true]})).as_text(),
            r#"{"a":[true],"b":1}"#
        );
        assert_eq!(v(json!("x")).kind(), FlagType::String);
        assert_eq!(v(json!([1])).kind(), FlagType::Object);
        assert!(FlagValue::of("value", &json!(null)).is_err());
        let e = v(json!("x"))
            .expect("value", FlagType::Boolean)
            .unwrap_err();
        assert!(e.to_string().contains("type boolean"), "{e}");
        let bad = FlagDef {
            default: v(json!(true)),
            ..def()
        };
        assert_eq!(bad.check().unwrap_err().field(), Some("default"));
    }
}
