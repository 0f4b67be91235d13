//! Versioned binary encoding of everything quotad stores or sends between
//! nodes: Raft log entries, state-machine snapshots, Raft and forwarding
//! messages.
//!
//! Payloads are postcard, which is not self-describing: a new field changes
//! the bytes. So each encoding is written in the *oldest* format version
//! that can represent the value, and a value that needs a newer one is
//! prefixed with [`MAGIC`] and its version byte:
//!
//! ```text
//! version 0:   <postcard>                         (no prefix; every byte written before versions existed)
//! version N>0: FF FF FF FF FF FF FF FF FF FF  N   <postcard, format N>
//! ```
//!
//! Ten `0xFF` bytes are an overlong varint, which no postcard encoding can
//! start with, so an unprefixed payload is always version 0. Writing the
//! oldest sufficient version keeps a mixed-version cluster working during a
//! rolling upgrade until a feature that needs the new format is used; a node
//! too old for a payload refuses it with a decoding error instead of
//! misreading it.
//!
//! | version | adds |
//! |---|---|
//! | 0 | (original format) |
//! | 1 | `Member.email` |
//! | 2 | `TenantOp::IncrementAll` and its outcome (one atomic decision over several quotas: Envoy RLS), `Command::ArchiveTaken` (the archive acknowledges up to a position) |
//! | 3 | `TenantOp::PatchQuota` (a quota change resolved against the tier in apply) |
//! | 4 | a tenant's API keys (`TenantState.api_keys`, `TenantOp::{CreateApiKey, RotateApiKey, RevokeApiKey}`) |
//! | 5 | node labels and pools (`NodeInfo.{labels, reserved}`, `GroupPlacement.{learners, pool}`, `MembershipOp::{Members, DedicateIn}`) |
//! | 6 | cross-tenant sharing: the meta group's catalog (`MetaState.sharing`, `MetaOp::Sharing`, `CommandResponse::Sharing`), the grants a consumer holds (`TenantState.grants`, `TenantOp::HoldGrant`) |
//! | 7 | shared use and its usage records (`TenantOp::SharedUse`, `TenantState.shared`, the transfer ops `TenantOp::{SealTransfer, ReceiveUsage, AckTransfer}`, `TenantCall::SharedCheck`, `BatchItem::SharedCheck`) |
//! | 8 | reservations through a sharing grant (`TenantOp::SharedReserve`, `Reservation.via`, `HeldGrant.cap_held`) |
//! | 9 | subscription billing (`UsageKey.kind`, `HeldGrant.billed_period`, `TenantOp::BillSubscriptions`) |
//! | 10 | closed statement periods (`SharingCatalog.closed`, `SharingOp::ClosePeriod`, `SharedUsage.{closed, adjustments}`, `TenantOp::ClosePeriod`) |
//! | 11 | the sharing catalog brought back by a restore (`SharingOp::Restore`) |
//! | 12 | resource types named in the tier catalog beyond the four built in (`ResourceType` as its name) |
//! | 13 | statements in a configured zone (`SharingCatalog.statement_zone`, `SharingOp::SetStatementZone`, `Grant.statement_zone`) |
//! | 14 | grants paused while their provider may not share (`Grant.paused`, `SharingOp::ProviderStanding`) |
//! | 15 | console sessions signed out before they expire (`MetaState.signed_out`, `MetaOp::SignOut`) |
//! | 16 | tenant customization and platform flags (`TenantState.custom`, `TenantOp::{SetBranding, SetFlag}`, `MetaState.platform_flags`, `MetaOp::PlatformFlag`) |
//! | 17 | alerts, webhook endpoints and their outbox (`TenantState.alerts`, `TenantOp::Webhook`) |
//! | 18 | the operators' alerts and webhook endpoints (`MetaState.platform_alerts`, `MetaOp::PlatformAlerts`) |
//! | 19 | the quota model beyond one limit: rules on a policy (`QuotaPolicy.rules`: further windows, scopes, rollover, preserved overage, shadow; `PolicyPatch.rules`), their state (`QuotaState.layers`: window and scope meters, credit grants, carried allowance), `Reservation.{scope, draws}`, `TenantState.shadow`, `Decision.limited_by`, `Verdict::ShadowDenied`, `TenantOp::{Spend, CreditGrant, SetShadow}`, `OpOutcome::CreditGrant` |
//! | 20 | scopes in all-or-nothing spends (Envoy's `scope_key`): `Spend.scope`, `AllOrNothing.max_scopes` |
//!
//! Types whose layout depends on the version read [`decoding_version`] and
//! [`encoding_version`] in their serde impls (see `model::member`); a value
//! that exists only from some version on is wrapped in [`Since`]. Outside
//! [`encode`]/[`decode`] (JSON, say) both are [`CURRENT`].
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;

/// The newest format this build reads and writes.
pub const CURRENT: u8 = 20;

/// Marks a payload of a version above 0.
pub const MAGIC: [u8; 10] = [0xFF; 10];

thread_local! {
    static DECODING: Cell<u8> = const { Cell::new(CURRENT) };
    static ENCODING: Cell<u8> = const { Cell::new(CURRENT) };
    static NEEDS_NEWER: Cell<bool> = const { Cell::new(false) };
}

/// The format version of the payload being decoded on this thread.
pub fn decoding_version() -> u8 {
    DECODING.with(Cell::get)
}

/// The format version being written on this thread.
pub fn encoding_version() -> u8 {
    ENCODING.with(Cell::get)
}

/// Called by a serializer that cannot represent its value in the version
/// being written; [`encode`] then retries with a newer one.
pub fn needs_newer_version() {
    NEEDS_NEWER.with(|n| n.set(true));
}

/// Sets a thread-local for the duration of a call, restoring it after
/// (also on panic), so nested encodes and decodes see their own version.
struct Scoped {
    key: &'static std::thread::LocalKey<Cell<u8>>,
    before: u8,
}

impl Scoped {
    fn set(key: &'static std::thread::LocalKey<Cell<u8>>, v: u8) -> Scoped {
        let before = key.with(|c| c.replace(v));
        Scoped { key, before }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        self.key.with(|c| c.set(self.before));
    }
}

/// A value that exists only from format version `V` on, such as the
/// payload of an enum variant added in `V`: written in an older version it
/// asks [`encode`] for a newer one (the variant index alone would be read by
/// an older node as some other variant or as garbage), and it is refused in
/// a payload that claims an older version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since<const V: u8, T>(pub T);

impl<const V: u8, T: Serialize> Serialize for Since<V, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() && encoding_version() < V {
            needs_newer_version();
            return Err(serde::ser::Error::custom(format!(
                "this value needs format version {V}"
            )));
        }
        self.0.serialize(s)
    }
}

impl<'de, const V: u8, T: Deserialize<'de>> Deserialize<'de> for Since<V, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && decoding_version() < V {
            return Err(serde::de::Error::custom(format!(
                "a value of format version {V} in a payload of version {}",
                decoding_version()
            )));
        }
        T::deserialize(d).map(Since)
    }
}

/// A struct field added in format version `V`. Written in an older
/// version, its default value takes no bytes at all (so a value that does
/// not use the field keeps the bytes it always had) and any other value
/// asks [`encode`] for a newer version; read from an older payload, it is
/// the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Added<const V: u8, T>(pub T);

impl<const V: u8, T> std::ops::Deref for Added<V, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<const V: u8, T> std::ops::DerefMut for Added<V, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<const V: u8, T: Serialize + Default + PartialEq> Serialize for Added<V, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() && encoding_version() < V {
            if self.0 == T::default() {
                return s.serialize_unit();
            }
            needs_newer_version();
            return Err(serde::ser::Error::custom(format!(
                "this field needs format version {V}"
            )));
        }
        self.0.serialize(s)
    }
}

impl<'de, const V: u8, T: Deserialize<'de> + Default> Deserialize<'de> for Added<V, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && decoding_version() < V {
            <()>::deserialize(d)?;
            return Ok(Added(T::default()));
        }
        T::deserialize(d).map(Added)
    }
}

/// Encode `v` in the oldest format version that can represent it.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, postcard::Error> {
    for version in 0..=CURRENT {
        let _scope = Scoped::set(&ENCODING, version);
        NEEDS_NEWER.with(|n| n.set(false));
        let result = postcard::to_allocvec(v);
        if NEEDS_NEWER.with(|n| n.replace(false)) && version < CURRENT {
            continue;
        }
        let body = result?;
        if version == 0 {
            return Ok(body);
        }
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len());
        out.extend_from_slice(&MAGIC);
        out.push(version);
        out.extend_from_slice(&body);
        return Ok(out);
    }
    unreachable!("the loop returns at CURRENT")
}

/// An upper bound of `encode(v).len()`, without encoding: the size at the
/// newest version plus the version prefix. (An older version is never
/// larger: each version so far only adds fields.)
pub fn encoded_len<T: Serialize + ?Sized>(v: &T) -> usize {
    let _scope = Scoped::set(&ENCODING, CURRENT);
    postcard::experimental::serialized_size(v)
        .map_or(usize::MAX, |n| n.saturating_add(MAGIC.len() + 1))
}

/// The version of an encoded payload and its postcard body.
pub fn split(bytes: &[u8]) -> Result<(u8, &[u8]), postcard::Error> {
    match bytes.strip_prefix(&MAGIC[..]) {
        None => Ok((0, bytes)),
        Some([version, body @ ..]) if (1..=CURRENT).contains(version) => Ok((*version, body)),
        // A newer node's payload, or garbage: refuse rather than misread.
        Some(_) => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// Serializes a hash map with its keys in order (`serialize_with`): the
/// bytes of a replicated state must not depend on a replica's hash seeds or
/// insertion history, so that every replica's snapshot of the same state is
/// the same bytes. The layout is a map as before; only its order is fixed.
pub fn sorted_map<K, V, H, S>(
    map: &std::collections::HashMap<K, V, H>,
    s: S,
) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    S: Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    s.collect_map(entries)
}

/// Decode a payload written by [`encode`] (any version up to [`CURRENT`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let (version, body) = split(bytes)?;
    let _scope = Scoped::set(&DECODING, version);
    postcard::from_bytes(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_without_new_fields_keep_their_unprefixed_bytes() {
        let v = (7u32, "x".to_string());
        assert_eq!(encode(&v).unwrap(), postcard::to_allocvec(&v).unwrap());
        assert_eq!(decode::<(u32, String)>(&encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn unknown_versions_are_refused_not_misread() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(CURRENT + 1);
        bytes.push(0);
        assert!(decode::<u8>(&bytes).is_err());
        // The prefix is never a valid postcard varint.
        assert!(postcard::from_bytes::<u64>(&MAGIC).is_err());
        assert!(postcard::from_bytes::<usize>(&MAGIC).is_err());
    }

    /// Golden bytes: a version-2 value is prefixed with version 2; its
    /// absence keeps the older bytes; an older payload may not hold it.
    #[test]
    fn values_since_a_version_are_written_in_that_version() {
        let v: Option<Since<2, u8>> = Some(Since(7));
        assert_eq!(encode(&v).unwrap(), [MAGIC.as_slice(), &[2, 1, 7]].concat());
        assert_eq!(
            decode::<Option<Since<2, u8>>>(&encode(&v).unwrap()).unwrap(),
            v
        );
        let none: Option<Since<2, u8>> = None;
        assert_eq!(encode(&none).unwrap(), [0]);
        let claimed_v1 = [MAGIC.as_slice(), &[1, 1, 7]].concat();
        assert!(decode::<Option<Since<2, u8>>>(&claimed_v1).is_err());
        assert!(decode::<Option<Since<2, u8>>>(&[1, 7]).is_err());
    }

    /// A field added in version 6: absent (default) it takes no bytes and
    /// the value keeps its old encoding; set, it is written in version 6.
    #[test]
    fn an_added_field_costs_nothing_until_it_is_used() {
        let plain: (u8, Added<6, Vec<u8>>) = (7, Added(vec![]));
        assert_eq!(encode(&plain).unwrap(), [7]);
        assert_eq!(decode::<(u8, Added<6, Vec<u8>>)>(&[7]).unwrap(), plain);
        let used: (u8, Added<6, Vec<u8>>) = (7, Added(vec![1]));
        let bytes = encode(&used).unwrap();
        assert_eq!(bytes, [MAGIC.as_slice(), &[6, 7, 1, 1]].concat());
        assert_eq!(decode::<(u8, Added<6, Vec<u8>>)>(&bytes).unwrap(), used);
        // An older payload that claims to hold it is read without it.
        let v5 = [MAGIC.as_slice(), &[5, 7]].concat();
        assert_eq!(decode::<(u8, Added<6, Vec<u8>>)>(&v5).unwrap(), plain);
    }
}
