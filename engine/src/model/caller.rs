//! Who is calling the data plane, once a credential has been verified, and
//! what that caller may do to which tenant.
use super::TenantId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a data-plane call does, as far as a tenant credential is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `Check`, and checks inside `Batch` and `Stream`.
    Check,
    /// `Increment`, increments inside `Batch` and `Stream`, Envoy's
    /// `ShouldRateLimit`.
    Increment,
    /// `Reserve`, `Settle`, `Release`.
    Reserve,
    /// `GetUsage`.
    UsageRead,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::Check,
        Scope::Increment,
        Scope::Reserve,
        Scope::UsageRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Increment => "increment",
            Scope::Reserve => "reserve",
            Scope::UsageRead => "usage:read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {:?}: expected check, increment, reserve or usage:read",
    crate::excerpt::short(.0)
)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.chars().take(32).collect()))
    }
}

/// A set of [`Scope`]s, stored as one byte (bit `i` is `Scope::ALL[i]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(0b1111);

    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 & Scopes::ALL.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The scopes' names, in the order of [`Scope::ALL`].
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// A verified data-plane caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// A platform service or operator (a token with the `service` or
    /// `operator` role, or a client certificate registered as a service):
    /// acts for every tenant. `name` is who, for logs and audit;
    /// `operator` whether it may also run the cluster (remove nodes).
    Platform { name: String, operator: bool },
    /// A credential of one tenant (an API key, or a token scoped to the
    /// tenant): acts for that tenant only, within `scopes`.
    Tenant {
        tenant: TenantId,
        name: String,
        scopes: Scopes,
    },
    /// Data-plane authentication is off on this node
    /// (`--data-plane-auth off`): everything is allowed.
    Anonymous,
}

/// Why a verified caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The credential belongs to another tenant.
    OtherTenant { own: TenantId },
    /// The credential lacks the scope.
    Scope(Scope),
}

impl Caller {
    /// Whether this caller may do `scope` to `tenant`.
    pub fn may(&self, tenant: &TenantId, scope: Scope) -> Result<(), Refusal> {
        match self {
            Caller::Platform { .. } | Caller::Anonymous => Ok(()),
            Caller::Tenant {
                tenant: own,
                scopes,
                ..
            } => {
                if own != tenant {
                    Err(Refusal::OtherTenant { own: *own })
                } else if !scopes.contains(scope) {
                    Err(Refusal::Scope(scope))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Who, for logs and the audit chain.
    pub fn name(&self) -> &str {
        match self {
            Caller::Platform { name, .. } | Caller::Tenant { name, .. } => name,
            Caller::Anonymous => "anonymous",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_hold_as_a_set() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert!("admin".parse::<Scope>().is_err());
        let set = Scopes::of([Scope::Increment, Scope::UsageRead]);
        assert!(set.contains(Scope::Increment) && !set.contains(Scope::Check));
        assert_eq!(set.names(), ["increment", "usage:read"]);
        assert!(Scopes::default().is_empty());
        assert_eq!(Scopes::of(Scope::ALL), Scopes::ALL);
    }

    #[test]
    fn a_tenant_credential_acts_for_its_tenant_within_its_scopes_only() {
        let (a, b) = (TenantId::new_v4(), TenantId::new_v4());
        let key = Caller::Tenant {
            tenant: a,
            name: "key:1".into(),
            scopes: Scopes::of([Scope::Check]),
        };
        assert_eq!(key.may(&a, Scope::Check), Ok(()));
        assert_eq!(
            key.may(&a, Scope::Increment),
            Err(Refusal::Scope(Scope::Increment))
        );
        assert_eq!(
            key.may(&b, Scope::Check),
            Err(Refusal::OtherTenant { own: a })
        );
        let service = Caller::Platform {
            name: "billing".into(),
            operator: false,
        };
        assert_eq!(service.may(&b, Scope::Reserve), Ok(()));
    }
}
