//! The verified caller of a forwarded data-plane call, and the leader's
//! second look at it.
//!
//! The node a call arrives at verifies its credential and forwards the
//! call to the tenant's leader with the resulting [`Principal`] in the
//! `Forward` RPC's metadata ([`HEADER`]). The leader serves it only if the
//! principal still allows it there: the call is one a data-plane credential
//! may make (never an admin operation), for the credential's own tenant and
//! within its scopes, before the credential's end by the leader's clock,
//! and, for an API key, the key is still in the tenant's state with that
//! secret. A revocation committed on the leader therefore stops forwarded
//! calls at once, whatever the forwarding node's cache still holds.
//!
//! Metadata rather than the forwarded payload keeps a mixed-version cluster
//! working during an upgrade: an older leader ignores the header. A forward
//! without one is the node's own work (a REST request, already authorized
//! by the control plane and audited with its actor, or a cluster task),
//! which only a holder of the cluster key can send.
use crate::error::EngineError;
use crate::model::{ApiKeys, KeyProof, Principal, Refusal, Scope, Scopes, TenantId};
use crate::quota::TenantOp;
use crate::shard::{BatchItem, TenantCall};
use crate::telemetry;
use tonic::metadata::{BinaryMetadataValue, MetadataMap};

/// The `Forward` metadata carrying the caller's principal (binary:
/// `format::encode` of a [`Principal`]).
pub const HEADER: &str = "quotad-principal-bin";

/// The principal as forward metadata.
pub fn to_metadata(p: &Principal) -> Result<BinaryMetadataValue, String> {
    crate::format::encode(p)
        .map(|bytes| BinaryMetadataValue::from_bytes(&bytes))
        .map_err(|e| format!("cannot encode the caller's principal: {e}"))
}

/// The principal a forward carries, if any.
pub fn from_metadata(meta: &MetadataMap) -> Result<Option<Principal>, tonic::Status> {
    let Some(value) = meta.get_bin(HEADER) else {
        return Ok(None);
    };
    let bytes = value
        .to_bytes()
        .map_err(|_| tonic::Status::invalid_argument(format!("{HEADER} is not base64")))?;
    crate::format::decode(&bytes)
        .map(Some)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable {HEADER}: {e}")))
}

/// The scopes a call needs; an error for a call no data-plane credential
/// may make.
pub fn scopes_needed(call: &TenantCall) -> Result<Scopes, EngineError> {
    let of_op = |op: &TenantOp| match op {
        TenantOp::Increment { .. } | TenantOp::IncrementAll(_) | TenantOp::SharedUse(_) => {
            Ok(Scope::Increment)
        }
        TenantOp::Reserve { .. }
        | TenantOp::Settle { .. }
        | TenantOp::Release { .. }
        | TenantOp::SharedReserve(_) => Ok(Scope::Reserve),
        // A spend in a scope: an increment, or with a hold a reservation.
        TenantOp::Spend(s) if s.0.hold.is_some() => Ok(Scope::Reserve),
        TenantOp::Spend(_) => Ok(Scope::Increment),
        _ => Err(EngineError::Forbidden {
            reason: "a data-plane credential cannot make admin changes".into(),
        }),
    };
    Ok(match call {
        TenantCall::Check { .. } | TenantCall::SharedCheck(_) | TenantCall::ScopedCheck(_) => {
            Scopes::of([Scope::Check])
        }
        TenantCall::Read | TenantCall::Scopes(_) => Scopes::of([Scope::UsageRead]),
        TenantCall::Apply { op, .. } => Scopes::of([of_op(op)?]),
        TenantCall::Batch(items) => {
            let mut needed = Vec::with_capacity(2);
            for item in items {
                needed.push(match item {
                    BatchItem::Check { .. }
                    | BatchItem::SharedCheck(_)
                    | BatchItem::ScopedCheck(_) => Scope::Check,
                    BatchItem::Apply { op, .. } => of_op(op)?,
                });
            }
            Scopes::of(needed)
        }
    })
}

/// Whether `p` allows `call` on `tenant` at `now_ms`, as far as the
/// principal itself tells; an API key is then looked up with
/// [`key_still_opens`].
pub fn allows(
    p: &Principal,
    tenant: &TenantId,
    call: &TenantCall,
    now_ms: i64,
) -> Result<(), EngineError> {
    if p.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return Err(refused(EngineError::Unauthenticated {
            reason: "the credential expired before the tenant's leader served the call".into(),
        }));
    }
    for scope in scopes_needed(call).map_err(refused)?.iter() {
        match p.caller.may(tenant, scope) {
            Ok(()) => {}
            Err(Refusal::Scope(s)) => {
                return Err(refused(EngineError::Forbidden {
                    reason: format!("the credential lacks the {s} scope"),
                }));
            }
            Err(Refusal::OtherTenant { own }) => {
                metrics::counter!(telemetry::CROSS_TENANT_VIOLATIONS).increment(1);
                return Err(refused(EngineError::Forbidden {
                    reason: format!(
                        "the credential is tenant {own}'s; it cannot act for tenant {tenant}"
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Whether the presented key is still in `keys` (the tenant's, as the
/// leader has them; `None` if it has no such tenant) and the secret
/// presented with it still opens it.
pub fn key_still_opens(
    proof: &KeyProof,
    keys: Option<&ApiKeys>,
    now_ms: i64,
) -> Result<(), EngineError> {
    if keys
        .and_then(|k| k.0.get(&proof.id))
        .is_some_and(|key| key.opens(&proof.hash, now_ms))
    {
        Ok(())
    } else {
        Err(refused(EngineError::Unauthenticated {
            reason: "the API key is not valid (unknown or revoked)".into(),
        }))
    }
}

fn refused(e: EngineError) -> EngineError {
    metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "leader_recheck").increment(1);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, Caller, Consistency};

    fn tenant(n: u128) -> TenantId {
        TenantId::from_u128(n)
    }

    fn key_of(t: u128, scopes: Scopes) -> Principal {
        Principal {
            caller: Caller::Tenant {
                tenant: tenant(t),
                name: "api-key:00000000000000aa".into(),
                scopes,
            },
            expires_at_ms: Some(10_000),
            key: Some(KeyProof {
                id: "00000000000000aa".into(),
                hash: [7; 32],
            }),
        }
    }

    fn increment() -> TenantCall {
        TenantCall::Apply {
            op: TenantOp::Increment {
                quota: "api_requests".into(),
                amount: 1,
                idempotency_key: None,
            },
            audit: None,
            consistency: Consistency::Fast,
        }
    }

    fn code(r: Result<(), EngineError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(EngineError::Unauthenticated { .. }) => "unauthenticated",
            Err(EngineError::Forbidden { .. }) => "forbidden",
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_leader_allows_what_the_credential_allowed_and_nothing_more() {
        let check = TenantCall::Check {
            quota: "api_requests".into(),
            amount: 1,
        };
        let only_check = key_of(1, Scopes::of([Scope::Check]));
        let cases: Vec<(&str, &Principal, u128, TenantCall, i64, &str)> = vec![
            (
                "own tenant, own scope",
                &only_check,
                1,
                check.clone(),
                0,
                "ok",
            ),
            ("missing scope", &only_check, 1, increment(), 0, "forbidden"),
            (
                "other tenant",
                &only_check,
                2,
                check.clone(),
                0,
                "forbidden",
            ),
            (
                "expired by the leader's clock",
                &only_check,
                1,
                check.clone(),
                10_000,
                "unauthenticated",
            ),
            (
                "a batch needs every item's scope",
                &only_check,
                1,
                TenantCall::Batch(vec![
                    BatchItem::Check {
                        quota: "q".into(),
                        amount: 1,
                    },
                    BatchItem::Apply {
                        op: TenantOp::Increment {
                            quota: "q".into(),
                            amount: 1,
                            idempotency_key: None,
                        },
                        consistency: Consistency::Fast,
                    },
                ]),
                0,
                "forbidden",
            ),
        ];
        for (name, p, t, call, now, want) in cases {
            assert_eq!(code(allows(p, &tenant(t), &call, now)), want, "{name}");
        }
        // Even a platform credential never reaches admin operations this way.
        let service = Principal::platform("billing");
        let admin = TenantCall::Apply {
            op: TenantOp::Delete { retention_ms: 0 },
            audit: None,
            consistency: Consistency::Strict,
        };
        assert_eq!(code(allows(&service, &tenant(9), &increment(), 0)), "ok");
        assert_eq!(code(allows(&service, &tenant(9), &admin, 0)), "forbidden");
        // A spend in a scope is an increment, or with a hold a reservation.
        let spend = |hold| TenantCall::Apply {
            op: TenantOp::Spend(crate::format::Since(Box::new(crate::quota::ScopedSpend {
                quota: "q".into(),
                amount: 1,
                scope: "alice".into(),
                idempotency_key: None,
                max_scopes: [10; 4],
                hold,
            }))),
            audit: None,
            consistency: Consistency::Strict,
        };
        let increments = key_of(1, Scopes::of([Scope::Increment]));
        assert_eq!(code(allows(&service, &tenant(9), &spend(None), 0)), "ok");
        assert_eq!(code(allows(&increments, &tenant(1), &spend(None), 0)), "ok");
        let hold = spend(Some((1_000, uuid::Uuid::from_u128(1))));
        assert_eq!(code(allows(&increments, &tenant(1), &hold, 0)), "forbidden");
        let reserves = key_of(1, Scopes::of([Scope::Reserve]));
        assert_eq!(code(allows(&reserves, &tenant(1), &hold, 0)), "ok");
    }

    #[test]
    fn a_key_opens_only_while_the_leader_still_holds_it_with_that_secret() {
        let proof = KeyProof {
            id: "00000000000000aa".into(),
            hash: [7; 32],
        };
        let stored = ApiKey {
            id: proof.id.clone(),
            name: "ci".into(),
            scopes: Scopes::ALL,
            hash: [7; 32],
            last4: "abcd".into(),
            created_at_ms: 0,
            created_by: "owner".into(),
            expires_at_ms: None,
            previous: None,
            rotated_at_ms: None,
        };
        let keys = ApiKeys([(proof.id.clone(), stored.clone())].into());
        assert_eq!(code(key_still_opens(&proof, Some(&keys), 5)), "ok");
        assert_eq!(code(key_still_opens(&proof, None, 5)), "unauthenticated");
        let revoked = ApiKeys::default();
        assert_eq!(
            code(key_still_opens(&proof, Some(&revoked), 5)),
            "unauthenticated"
        );
        let rotated = ApiKeys(
            [(
                proof.id.clone(),
                ApiKey {
                    hash: [8; 32],
                    previous: Some(([7; 32], 100)),
                    ..stored
                },
            )]
            .into(),
        );
        assert_eq!(code(key_still_opens(&proof, Some(&rotated), 99)), "ok");
        assert_eq!(
            code(key_still_opens(&proof, Some(&rotated), 100)),
            "unauthenticated"
        );
    }

    #[test]
    fn the_header_round_trips_and_garbage_is_invalid_argument() {
        let p = key_of(1, Scopes::ALL);
        let mut meta = MetadataMap::new();
        assert_eq!(from_metadata(&meta).unwrap(), None);
        meta.insert_bin(HEADER, to_metadata(&p).unwrap());
        assert_eq!(from_metadata(&meta).unwrap(), Some(p));
        let mut bad = MetadataMap::new();
        bad.insert_bin(HEADER, BinaryMetadataValue::from_bytes(&[0xFF, 0x03]));
        let e = from_metadata(&bad).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
