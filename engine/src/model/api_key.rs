//! A tenant's API key as the tenant's state records it: never the secret,
//! only its SHA-256 (the secret is 256 random bits, so a plain hash cannot
//! be reversed by guessing), with the last characters to recognise it by.
use super::Scopes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Live keys one tenant may hold.
pub const MAX_API_KEYS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// 16 lowercase hex digits, part of the key's text.
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    /// SHA-256 of the key's secret part.
    pub hash: [u8; 32],
    /// The key's last 4 characters, to tell keys apart in a list.
    pub last4: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub expires_at_ms: Option<i64>,
    /// After a rotation with a grace period: the previous secret's hash
    /// and until when it is still accepted.
    pub previous: Option<([u8; 32], i64)>,
    pub rotated_at_ms: Option<i64>,
}

impl ApiKey {
    /// Whether a secret hashing to `hash` opens this key at `now_ms`.
    pub fn opens(&self, hash: &[u8; 32], now_ms: i64) -> bool {
        if self.expires_at_ms.is_some_and(|at| now_ms >= at) {
            return false;
        }
        let current = constant_time_eq(&self.hash, hash);
        let previous = self
            .previous
            .is_some_and(|(old, until)| now_ms < until && constant_time_eq(&old, hash));
        current | previous
    }

    /// What may be shown of the key: everything but its hashes.
    pub fn view(&self) -> ApiKeyView<'_> {
        ApiKeyView {
            id: &self.id,
            name: &self.name,
            scopes: self.scopes.names(),
            last4: &self.last4,
            created_at_ms: self.created_at_ms,
            created_by: &self.created_by,
            expires_at_ms: self.expires_at_ms,
            rotated_at_ms: self.rotated_at_ms,
            previous_valid_until_ms: self.previous.map(|(_, until)| until),
        }
    }
}

/// An API key as the API and the audit chain show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub scopes: Vec<&'static str>,
    pub last4: &'a str,
    pub created_at_ms: i64,
    pub created_by: &'a str,
    pub expires_at_ms: Option<i64>,
    pub rotated_at_ms: Option<i64>,
    pub previous_valid_until_ms: Option<i64>,
}

/// Compares every byte whatever the first difference, so the time taken
/// says nothing about how much of a guessed hash was right.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A tenant's keys by id. Stored from format version 4 on (see
/// [`crate::format`]): written in an older version, no keys take no bytes
/// at all, so a tenant without keys keeps the bytes it always had; a
/// payload of an older version has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(pub BTreeMap<String, ApiKey>);

impl Serialize for ApiKeys {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() && crate::format::encoding_version() < 4 {
            if self.0.is_empty() {
                return s.serialize_unit();
            }
            crate::format::needs_newer_version();
            return Err(serde::ser::Error::custom("API keys need format version 4"));
        }
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ApiKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::format::decoding_version() < 4 {
            <()>::deserialize(d)?;
            return Ok(ApiKeys::default());
        }
        BTreeMap::deserialize(d).map(ApiKeys)
    }
}
