//! A tenant's single sign-on: its OIDC issuer, the client quotad is there,
//! which email domains may sign in, and how a claim maps to roles. Tokens
//! of that issuer (ID tokens, or JWT access tokens, for that client) act
//! for that tenant only, with the mapped role, while its tier has SSO.
use super::secret::Sealed;
use crate::model::Role;
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoSettings {
    /// The issuer's URL, exactly as its tokens' `iss`.
    pub issuer: String,
    pub client_id: String,
    /// Sealed (the console's sign-in exchanges codes with it).
    pub client_secret: Option<Sealed>,
    /// Emails of these domains only (`email` claim); empty: any.
    pub allowed_email_domains: Vec<String>,
    /// The claim whose value(s) map to roles (`groups`, `roles`, ...).
    pub role_claim: String,
    /// Claim value -> role; the highest matching role wins.
    pub role_mapping: BTreeMap<String, Role>,
    /// The role of a user no mapping matches; `None`: refused.
    pub default_role: Option<Role>,
    /// SAML metadata, stored and checked to be an EntityDescriptor only
    /// (sign-in is OIDC).
    pub saml_metadata: Option<String>,
}

/// What a caller gives (secret in clear, sealed by the engine).
#[derive(Debug, Clone, Default)]
pub struct SsoInput {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub allowed_email_domains: Vec<String>,
    pub role_claim: Option<String>,
    pub role_mapping: BTreeMap<String, String>,
    pub default_role: Option<String>,
    pub saml_metadata: Option<String>,
}

impl SsoInput {
    /// Validate everything but the secret; errors name the field.
    pub fn check(&self) -> Result<SsoSettings, QuotaError> {
        let issuer = url::Url::parse(&self.issuer).map_err(|e| {
            QuotaError::invalid(
                "issuer",
                format!(
                    "{:?} is not a URL: {e}",
                    crate::excerpt::short(&self.issuer)
                ),
            )
        })?;
        if !matches!(issuer.scheme(), "https" | "http") || issuer.host_str().is_none() {
            return Err(QuotaError::invalid("issuer", "must be an https:// URL"));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 256 {
            return Err(QuotaError::invalid(
                "clientId",
                "must be 1 to 256 characters",
            ));
        }
        let mut domains = Vec::new();
        for d in &self.allowed_email_domains {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            crate::quota::validate::domain(&d)
                .map_err(|e| QuotaError::invalid("allowedEmailDomains", e.reason()))?;
            domains.push(d);
        }
        let role = |field: &'static str, raw: &str| {
            raw.parse::<Role>().map_err(|_| {
                QuotaError::invalid(
                    field,
                    format!(
                        "{:?} is not a role (owner, admin, member, viewer)",
                        crate::excerpt::short(raw)
                    ),
                )
            })
        };
        let mut mapping = BTreeMap::new();
        for (value, r) in &self.role_mapping {
            mapping.insert(value.clone(), role("roleMapping", r)?);
        }
        let default_role = match &self.default_role {
            None => None,
            Some(r) => Some(role("defaultRole", r)?),
        };
        if let Some(xml) = &self.saml_metadata {
            check_saml(xml)?;
        }
        if self.client_secret.as_ref().is_some_and(|s| s.len() > 1024) {
            return Err(QuotaError::invalid(
                "clientSecret",
                "must be at most 1024 characters",
            ));
        }
        Ok(SsoSettings {
            issuer: self.issuer.trim_end_matches('/').to_string(),
            client_id: self.client_id.trim().to_string(),
            client_secret: None,
            allowed_email_domains: domains,
            role_claim: self.role_claim.clone().unwrap_or_else(|| "groups".into()),
            role_mapping: mapping,
            default_role,
            saml_metadata: self.saml_metadata.clone(),
        })
    }
}

/// SAML metadata is kept, not used: it must at least be an XML
/// `EntityDescriptor` with an `entityID`, of a sane size.
fn check_saml(xml: &str) -> Result<(), QuotaError> {
    let t = xml.trim();
    let ok = t.len() <= 256 * 1024
        && t.starts_with('<')
        && (t.contains("<EntityDescriptor") || t.contains(":EntityDescriptor"))
        && t.contains("entityID=");
    if ok {
        Ok(())
    } else {
        Err(QuotaError::invalid(
            "samlMetadata",
            "must be SAML metadata: an XML EntityDescriptor with an entityID (at most 256 KiB)",
        ))
    }
}

impl SsoSettings {
    /// The role a user with these claims gets, or why none.
    pub fn role_for(&self, claims: &serde_json::Value) -> Result<Role, String> {
        if !self.allowed_email_domains.is_empty() {
            let email = claims.get("email").and_then(|e| e.as_str()).unwrap_or("");
            let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| self.allowed_email_domains.contains(&d)) {
                return Err(format!("the email {email:?} is not of an allowed domain"));
            }
        }
        let values: Vec<String> = match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        values
            .iter()
            .filter_map(|v| self.role_mapping.get(v).copied())
            .max()
            .or(self.default_role)
            .ok_or_else(|| format!("no role for the values of claim {:?}", self.role_claim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> SsoInput {
        SsoInput {
            issuer: "https://idp.acme.test/".into(),
            client_id: "quotad".into(),
            allowed_email_domains: vec!["Acme.test".into()],
            role_mapping: BTreeMap::from([
                ("quota-admins".into(), "admin".into()),
                ("staff".into(), "member".into()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn claims_map_to_the_highest_role_and_other_domains_are_refused() {
        let s = input().check().unwrap();
        assert_eq!(s.issuer, "https://idp.acme.test");
        let role = |c| s.role_for(&c);
        assert_eq!(
            role(json!({"email": "a@acme.test", "groups": ["staff", "quota-admins"]})),
            Ok(Role::Admin)
        );
        assert_eq!(
            role(json!({"email": "a@acme.test", "groups": "staff"})),
            Ok(Role::Member)
        );
        assert!(
            role(json!({"email": "a@acme.test", "groups": ["x"]})).is_err(),
            "no default role"
        );
        assert!(
            role(json!({"email": "a@evil.test", "groups": ["quota-admins"]}))
                .unwrap_err()
                .contains("domain")
        );
        let with_default = SsoInput {
            default_role: Some("viewer".into()),
            ..input()
        }
        .check()
        .unwrap();
        assert_eq!(
            with_default.role_for(&json!({"email": "b@acme.test"})),
            Ok(Role::Viewer)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(SsoInput, &str)> = vec![
            (
                SsoInput {
                    issuer: "not a url".into(),
                    ..input()
                },
                "issuer",
            ),
            (
                SsoInput {
                    client_id: " ".into(),
                    ..input()
                },
                "clientId",
            ),
            (
                SsoInput {
                    allowed_email_domains: vec!["not a domain".into()],
                    ..input()
                },
                "allowedEmailDomains",
            ),
            (
                SsoInput {
                    role_mapping: BTreeMap::from([("x".into(), "god".into())]),
                    ..input()
                },
                "roleMapping",
            ),
            (
                SsoInput {
                    default_role: Some("root".into()),
                    ..input()
                },
                "defaultRole",
            ),
            (
                SsoInput {
                    saml_metadata: Some("hello".into()),
                    ..input()
                },
                "samlMetadata",
            ),
        ];
        for (i, field) in cases {
            assert_eq!(i.check().unwrap_err().field(), Some(field));
        }
        let saml = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.acme.test"/>"#;
        assert!(
            SsoInput {
                saml_metadata: Some(saml.into()),
                ..input()
            }
            .check()
            .is_ok()
        );
    }
}
