use serde::{Deserialize, Serialize};

/// A custom domain a tenant serves its console and API from. Requests whose
/// `Host` is a verified domain belong to that tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    pub verified: bool,
    /// What the tenant publishes (DNS TXT `_quotad-verify.<domain>`, or
    /// `_domain-verify.<domain>` under white label) to
    /// prove it controls the domain.
    pub token: String,
    pub added_at_ms: i64,
}
