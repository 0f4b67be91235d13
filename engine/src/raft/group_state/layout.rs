//! How a group's state is stored: one layout for both kinds of group, the
//! nine fields of the single state both had before they were split, in
//! that order (postcard reads fields by position). A meta group writes the
//! shard fields empty and a shard group the meta fields, so each writes the
//! very bytes it wrote before the split: data dirs, archives and nodes of
//! earlier releases read them, and they read those. Fields added since
//! (the sharing catalog, format 6; console sign-outs, format 15; platform
//! flags, format 16) come last and take no bytes while empty.
use super::{Claims, MetaState, ReplicatedState, ShardState, Unarchived};
use crate::alerts::PlatformAlerts;
use crate::audit::AuditLog;
use crate::custom::PlatformFlags;
use crate::format::Added;
use crate::model::membership::Membership;
use crate::model::{SignedOut, TenantId};
use crate::quota::TenantState;
use crate::raft::command::{Command, CommandResponse, MovedTenant};
use crate::sharing::SharingCatalog;
use crate::usage_history::UsageHistory;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;

/// Both parts at once: a snapshot as stored, whichever group wrote it, and
/// a state that replays a history of both kinds of command (tests, tools).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupState {
    pub meta: MetaState,
    pub shard: ShardState,
}

impl GroupState {
    /// Apply `cmd` to the part whose kind it is.
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        if MetaState::accepts(cmd) {
            self.meta.apply(cmd)
        } else {
            self.shard.apply(cmd)
        }
    }

    /// See [`ShardState::share_policies`].
    pub fn share_policies(&mut self) {
        self.shard.share_policies();
    }
}

impl ReplicatedState for GroupState {
    fn accepts(_: &Command) -> bool {
        true
    }

    fn apply(&mut self, cmd: &Command) -> CommandResponse {
        GroupState::apply(self, cmd)
    }

    fn loaded(&mut self) {
        self.share_policies();
    }
}

/// The stored layout, written from the two parts.
struct Layout<'a> {
    meta: &'a MetaState,
    shard: &'a ShardState,
}

/// A hash map written in key order (see `format::sorted_map`).
struct Sorted<'a, K, V>(&'a HashMap<K, V>);

impl<K: Ord + Serialize, V: Serialize> Serialize for Sorted<'_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::format::sorted_map(self.0, s)
    }
}

impl Serialize for Layout<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("GroupState", 13)?;
        st.serialize_field("tenants", &Sorted(&self.shard.tenants))?;
        st.serialize_field("slugs", &self.meta.slugs)?;
        st.serialize_field("domains", &self.meta.domains)?;
        st.serialize_field("audit", &Sorted(&self.shard.audit))?;
        st.serialize_field("usage", &Sorted(&self.shard.usage))?;
        st.serialize_field("membership", &self.meta.membership)?;
        st.serialize_field("moved", &Sorted(&self.shard.moved))?;
        st.serialize_field("unarchived", &Sorted(&self.shard.unarchived))?;
        st.serialize_field("moved_to", &Sorted(&self.shard.moved_to))?;
        st.serialize_field("sharing", &self.meta.sharing)?;
        st.serialize_field("signed_out", &self.meta.signed_out)?;
        st.serialize_field("platform_flags", &self.meta.platform_flags)?;
        st.serialize_field("platform_alerts", &self.meta.platform_alerts)?;
        st.end()
    }
}

/// The stored layout, read.
#[derive(Deserialize)]
#[serde(rename = "GroupState")]
struct Stored {
    tenants: HashMap<TenantId, Box<TenantState>>,
    slugs: Claims,
    domains: Claims,
    audit: HashMap<TenantId, AuditLog>,
    usage: HashMap<TenantId, UsageHistory>,
    membership: Membership,
    moved: HashMap<TenantId, MovedTenant>,
    unarchived: HashMap<TenantId, Unarchived>,
    moved_to: HashMap<TenantId, u64>,
    sharing: Added<6, SharingCatalog>,
    signed_out: Added<15, SignedOut>,
    platform_flags: Added<16, PlatformFlags>,
    platform_alerts: Added<18, PlatformAlerts>,
}

impl From<Stored> for GroupState {
    fn from(s: Stored) -> Self {
        GroupState {
            meta: MetaState {
                membership: s.membership,
                slugs: s.slugs,
                domains: s.domains,
                sharing: s.sharing,
                signed_out: s.signed_out,
                platform_flags: s.platform_flags,
                platform_alerts: s.platform_alerts,
            },
            shard: ShardState {
                tenants: s.tenants,
                audit: s.audit,
                usage: s.usage,
                moved: s.moved,
                unarchived: s.unarchived,
                moved_to: s.moved_to,
                policies: Default::default(),
            },
        }
    }
}

impl Serialize for GroupState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Layout {
            meta: &self.meta,
            shard: &self.shard,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for GroupState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Stored::deserialize(d).map(GroupState::from)
    }
}

impl Serialize for MetaState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Layout {
            meta: self,
            shard: &ShardState::default(),
        }
        .serialize(s)
    }
}

/// A snapshot's meta part; a shard part in it (none in a meta group's own
/// snapshots) is left out.
impl<'de> Deserialize<'de> for MetaState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        GroupState::deserialize(d).map(|g| g.meta)
    }
}

impl Serialize for ShardState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Layout {
            meta: &MetaState::default(),
            shard: self,
        }
        .serialize(s)
    }
}

/// A snapshot's shard part; a meta part in it (none in a shard group's own
/// snapshots) is left out.
impl<'de> Deserialize<'de> for ShardState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        GroupState::deserialize(d).map(|g| g.shard)
    }
}
