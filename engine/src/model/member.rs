use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A member's role in a tenant, least to most privileged.
///
/// | role | can |
/// |---|---|
/// | viewer | read the tenant, its quotas and members |
/// | member | the same (members use quotas through the platform's services) |
/// | admin | also: change the tenant's settings, custom quotas and limits up to the tier's, add/remove members below owner |
/// | owner | also: change tier, make or remove owners |
///
/// Platform operators (token role `operator`) can do everything on every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {:?}: expected owner, admin, member or viewer",
    crate::excerpt::short(.0)
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub added_at_ms: i64,
    /// A contact address (`ownerEmail` at creation, `email` when added).
    /// Format version 1 (see [`crate::format`]).
    pub email: Option<String>,
}

/// Format version 0 of a member: no email.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Member")]
struct MemberV0<S> {
    user_id: S,
    role: Role,
    added_at_ms: i64,
}

/// Format version 1: with `email`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Member")]
struct MemberV1<S> {
    user_id: S,
    role: Role,
    added_at_ms: i64,
    email: Option<S>,
}

/// Self-describing formats (the audit chain's JSON): an absent email is
/// left out, so a member without one reads as it always has.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Member")]
struct MemberText<S> {
    user_id: S,
    role: Role,
    added_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<S>,
}

impl Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return MemberText {
                user_id: self.user_id.as_str(),
                role: self.role,
                added_at_ms: self.added_at_ms,
                email: self.email.as_deref(),
            }
            .serialize(s);
        }
        if crate::format::encoding_version() == 0 {
            if self.email.is_some() {
                crate::format::needs_newer_version();
                return Err(serde::ser::Error::custom(
                    "a member's email needs format version 1",
                ));
            }
            return MemberV0 {
                user_id: self.user_id.as_str(),
                role: self.role,
                added_at_ms: self.added_at_ms,
            }
            .serialize(s);
        }
        MemberV1 {
            user_id: self.user_id.as_str(),
            role: self.role,
            added_at_ms: self.added_at_ms,
            email: self.email.as_deref(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let m = MemberText::<String>::deserialize(d)?;
            return Ok(Member {
                user_id: m.user_id,
                role: m.role,
                added_at_ms: m.added_at_ms,
                email: m.email,
            });
        }
        if crate::format::decoding_version() == 0 {
            let m = MemberV0::<String>::deserialize(d)?;
            return Ok(Member {
                user_id: m.user_id,
                role: m.role,
                added_at_ms: m.added_at_ms,
                email: None,
            });
        }
        let m = MemberV1::<String>::deserialize(d)?;
        Ok(Member {
            user_id: m.user_id,
            role: m.role,
            added_at_ms: m.added_at_ms,
            email: m.email,
        })
    }
}

/// The first owner named when a tenant is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOwner {
    pub user_id: String,
    pub email: Option<String>,
}

/// Format version 1 of a new owner; version 0 was the user id alone.
#[derive(Serialize, Deserialize)]
#[serde(rename = "NewOwner")]
struct NewOwnerV1<S> {
    user_id: S,
    email: Option<S>,
}

impl Serialize for NewOwner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() && crate::format::encoding_version() == 0 {
            if self.email.is_some() {
                crate::format::needs_newer_version();
                return Err(serde::ser::Error::custom(
                    "an owner's email needs format version 1",
                ));
            }
            return s.serialize_str(&self.user_id);
        }
        NewOwnerV1 {
            user_id: self.user_id.as_str(),
            email: self.email.as_deref(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NewOwner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::format::decoding_version() == 0 {
            return Ok(NewOwner {
                user_id: String::deserialize(d)?,
                email: None,
            });
        }
        let o = NewOwnerV1::<String>::deserialize(d)?;
        Ok(NewOwner {
            user_id: o.user_id,
            email: o.email,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{MAGIC, decode, encode};
    use std::collections::BTreeMap;

    fn member(email: Option<&str>) -> Member {
        Member {
            user_id: "al".into(),
            role: Role::Owner,
            added_at_ms: 5,
            email: email.map(str::to_string),
        }
    }

    fn prefixed(version: u8, body: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.push(version);
        v.extend_from_slice(body);
        v
    }

    /// The bytes every data dir written before format versions holds:
    /// user id (length, bytes), role (variant index), time (zigzag varint).
    const MEMBER_V0: [u8; 5] = [2, b'a', b'l', 3, 10];

    #[test]
    fn a_member_without_email_keeps_the_version_0_bytes() {
        assert_eq!(encode(&member(None)).unwrap(), MEMBER_V0);
        assert_eq!(decode::<Member>(&MEMBER_V0).unwrap(), member(None));
    }

    #[test]
    fn a_member_with_email_is_written_as_version_1() {
        let golden = prefixed(1, &[2, b'a', b'l', 3, 10, 1, 3, b'a', b'@', b'b']);
        assert_eq!(encode(&member(Some("a@b"))).unwrap(), golden);
        assert_eq!(decode::<Member>(&golden).unwrap(), member(Some("a@b")));
        // Inside a larger value, one member with an email makes the whole
        // payload version 1, and every member reads back.
        let map: BTreeMap<String, Member> = [
            ("al".to_string(), member(Some("a@b"))),
            ("bo".to_string(), member(None)),
        ]
        .into();
        let bytes = encode(&map).unwrap();
        assert!(bytes.starts_with(&MAGIC));
        assert_eq!(decode::<BTreeMap<String, Member>>(&bytes).unwrap(), map);
    }

    #[test]
    fn a_new_owner_is_a_bare_user_id_in_version_0() {
        let plain = NewOwner {
            user_id: "al".into(),
            email: None,
        };
        assert_eq!(encode(&plain).unwrap(), [2, b'a', b'l']);
        assert_eq!(decode::<NewOwner>(&[2, b'a', b'l']).unwrap(), plain);
        let with = NewOwner {
            user_id: "al".into(),
            email: Some("a@b".into()),
        };
        let golden = prefixed(1, &[2, b'a', b'l', 1, 3, b'a', b'@', b'b']);
        assert_eq!(encode(&with).unwrap(), golden);
        assert_eq!(decode::<NewOwner>(&golden).unwrap(), with);
    }

    #[test]
    fn json_leaves_an_absent_email_out() {
        assert_eq!(
            serde_json::to_string(&member(None)).unwrap(),
            r#"{"user_id":"al","role":"owner","added_at_ms":5}"#
        );
        let with = serde_json::to_string(&member(Some("a@b"))).unwrap();
        assert_eq!(
            serde_json::from_str::<Member>(&with).unwrap(),
            member(Some("a@b"))
        );
    }
}
