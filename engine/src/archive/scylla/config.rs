//! Where the archive lives in ScyllaDB, checked before any of it reaches
//! CQL text, and the names of tenants' dedicated keyspaces.
use crate::archive::ArchiveError;
use crate::model::TenantId;
use std::collections::BTreeMap;
use std::time::Duration;

/// ScyllaDB's (and Cassandra's) longest keyspace name.
const MAX_NAME: usize = 48;

/// A tenant id in base32: 128 bits in 26 characters.
const TENANT_CHARS: usize = 26;

/// The longest deployment keyspace name: its tenants' dedicated keyspaces
/// add `_` and the tenant id.
pub const MAX_KEYSPACE: usize = MAX_NAME - 1 - TENANT_CHARS;

/// The keyspace of a tenant's dedicated schema. Lowercase, as CQL folds
/// unquoted names to lowercase anyway.
pub fn dedicated_keyspace(keyspace: &str, tenant: TenantId) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let id = tenant.as_u128();
    let mut name = String::with_capacity(keyspace.len() + 1 + TENANT_CHARS);
    name.push_str(keyspace);
    name.push('_');
    for i in (0..TENANT_CHARS).rev() {
        name.push(ALPHABET[((id >> (5 * i)) & 31) as usize] as char);
    }
    name
}

/// Where and how to keep the archive in ScyllaDB.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Replication factor per datacenter (NetworkTopologyStrategy).
    pub replication: BTreeMap<String, u32>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl ScyllaConfig {
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> Self {
        ScyllaConfig {
            nodes,
            keyspace: keyspace.into(),
            replication: BTreeMap::from([("datacenter1".to_string(), 3)]),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Check everything that goes into CQL text (names are not bind
    /// markers there).
    pub fn validate(&self) -> Result<(), ArchiveError> {
        let bad = |field, message: String| Err(ArchiveError::Config { field, message });
        if self.nodes.is_empty() {
            return bad("nodes", "at least one contact point is needed".into());
        }
        if !valid_name(&self.keyspace) || self.keyspace.len() > MAX_KEYSPACE {
            return bad(
                "keyspace",
                format!(
                    "{:?} is not a valid keyspace name (letters, digits, _; starts with a letter; \
                     at most {MAX_KEYSPACE} characters, so that a tenant's dedicated keyspace, \
                     the name plus 27, stays within ScyllaDB's {MAX_NAME})",
                    self.keyspace
                ),
            );
        }
        if self.replication.is_empty() {
            return bad("replication", "name at least one datacenter".into());
        }
        for (dc, rf) in &self.replication {
            if dc.is_empty()
                || !dc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return bad("replication", format!("{dc:?} is not a datacenter name"));
            }
            if *rf == 0 {
                return bad(
                    "replication",
                    format!("datacenter {dc}: factor must be at least 1"),
                );
            }
        }
        Ok(())
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked_before_it_reaches_cql() {
        let ok = ScyllaConfig::new(vec!["127.0.0.1:9042".into()], "quotad");
        assert!(ok.validate().is_ok());
        let field = |c: ScyllaConfig| match c.validate() {
            Err(ArchiveError::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut c = ok.clone();
        c.keyspace = "quotad; DROP KEYSPACE x".into();
        assert_eq!(field(c), "keyspace");
        let mut c = ok.clone();
        c.keyspace = "1quotad".into();
        assert_eq!(field(c), "keyspace");
        let mut c = ok.clone();
        c.nodes.clear();
        assert_eq!(field(c), "nodes");
        let mut c = ok.clone();
        c.replication = BTreeMap::from([("dc1".into(), 0)]);
        assert_eq!(field(c), "replication");
        let mut c = ok.clone();
        c.replication = BTreeMap::from([("dc1'}".into(), 3)]);
        assert_eq!(field(c), "replication");
        // Room for the tenants' dedicated keyspaces.
        let mut c = ok.clone();
        c.keyspace = "k".repeat(MAX_KEYSPACE);
        assert!(c.validate().is_ok());
        c.keyspace.push('k');
        assert_eq!(field(c), "keyspace");
    }

    #[test]
    fn dedicated_keyspaces_are_valid_distinct_and_stable() {
        let ks = "q".repeat(MAX_KEYSPACE);
        let (a, b) = (uuid::Uuid::from_u128(0), uuid::Uuid::from_u128(u128::MAX));
        let (na, nb) = (dedicated_keyspace(&ks, a), dedicated_keyspace(&ks, b));
        assert_eq!(na.len(), MAX_NAME);
        assert_eq!(nb.len(), MAX_NAME);
        assert!(valid_name(&na) && valid_name(&nb), "{na} {nb}");
        assert_eq!(&na[ks.len()..], "_aaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(&nb[ks.len()..], "_h7777777777777777777777777");
        // One bit apart, names apart.
        let c = uuid::Uuid::from_u128(1);
        assert_ne!(
            dedicated_keyspace("quotad", a),
            dedicated_keyspace("quotad", c)
        );
        assert_eq!(
            dedicated_keyspace("quotad", c),
            dedicated_keyspace("quotad", c)
        );
        assert_eq!(
            dedicated_keyspace("quotad", c),
            dedicated_keyspace("quotad", c).to_lowercase()
        );
    }
}
