//! Members, roles and deletion.
use super::*;

#[test]
fn members_count_against_users_and_the_last_owner_stays() {
    let cat = TierCatalog::builtin();
    // FREE: 3 users, the owner is the first.
    let mut s = TenantState::create(
        tenant(chrono_tz::UTC),
        cat.defaults(Tier::Free).clone(),
        Some(&crate::model::NewOwner {
            user_id: "alice".into(),
            email: None,
        }),
        T0,
    );
    assert_eq!(s.role_of("alice"), Some(crate::model::Role::Owner));
    assert_eq!(s.quotas["users"].used, 1);
    let add = |u: &str, role| TenantOp::AddMember {
        user_id: u.into(),
        role,
    };
    use crate::model::Role::*;
    s.apply(&add("bob", Admin), T0).unwrap();
    s.apply(&add("carol", Viewer), T0).unwrap();
    let err = s.apply(&add("dave", Member), T0).unwrap_err();
    assert!(matches!(err, QuotaError::QuotaExceeded { .. }), "{err}");
    // Waiting frees nothing: a precondition, not a rate (409, not 429).
    assert_eq!(err.code().as_str(), "FAILED_PRECONDITION");
    assert!(matches!(
        s.apply(&add("bob", Viewer), T0),
        Err(QuotaError::MemberExists { .. })
    ));
    // The only owner can be neither removed nor demoted.
    let err = s
        .apply(
            &TenantOp::RemoveMember {
                user_id: "alice".into(),
            },
            T0,
        )
        .unwrap_err();
    assert!(matches!(err, QuotaError::LastOwner { .. }), "{err}");
    let demote = TenantOp::ChangeRole {
        user_id: "alice".into(),
        role: Admin,
    };
    assert!(matches!(
        s.apply(&demote, T0),
        Err(QuotaError::LastOwner { .. })
    ));
    // With a second owner, she can go.
    s.apply(
        &TenantOp::ChangeRole {
            user_id: "bob".into(),
            role: Owner,
        },
        T0,
    )
    .unwrap();
    s.apply(
        &TenantOp::RemoveMember {
            user_id: "alice".into(),
        },
        T0,
    )
    .unwrap();
    assert_eq!(s.quotas["users"].used, 2);
    s.apply(&add("dave", Member), T0).unwrap();
    assert_eq!(s.members.len(), 3);
    assert!(matches!(
        s.apply(
            &TenantOp::RemoveMember {
                user_id: "zed".into()
            },
            T0
        ),
        Err(QuotaError::MemberNotFound { .. })
    ));
}

#[test]
fn a_deleted_tenant_changes_status_only_by_restore_within_retention() {
    use crate::model::TenantStatus;
    let mut s = state_with("q", limited(10, Action::Block));
    s.apply(
        &TenantOp::Delete {
            retention_ms: 1_000,
        },
        T0,
    )
    .unwrap();
    let reactivate = TenantOp::Update(TenantUpdate {
        status: Some(TenantStatus::Active),
        ..Default::default()
    });
    assert_eq!(
        s.apply(&reactivate, T0 + 1).unwrap_err().field(),
        Some("status")
    );
    assert_eq!(
        s.apply(&TenantOp::Restore, T0 + 1_000).unwrap_err().field(),
        Some("status")
    );
    s.apply(&TenantOp::Restore, T0 + 999).unwrap();
    assert_eq!(s.tenant.status, TenantStatus::Active);
}
