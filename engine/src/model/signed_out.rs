//! Console sessions that were signed out before they expired.
//!
//! A console session is a signed cookie that every node accepts on its own
//! (see the control plane's `console::session`); signing out must reach
//! every node too, so the session's id is recorded here, in the meta
//! group's replicated state, until the session would have expired anyway.
//! The list therefore stays as small as the number of sessions signed out
//! within one session lifetime.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A session's id: 16 random bytes, made when it was signed in.
pub type SessionId = [u8; 16];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOut {
    /// Session id -> when it would have expired (ms since the epoch).
    until: BTreeMap<SessionId, i64>,
}

impl SignedOut {
    /// Record `session` as signed out until `until_ms`, and forget every
    /// session that has expired by `at_ms` (the time the sign-out was
    /// proposed, carried in the command so that every replica forgets the
    /// same ones).
    pub fn sign_out(&mut self, session: SessionId, until_ms: i64, at_ms: i64) {
        self.until.retain(|_, until| *until > at_ms);
        if until_ms > at_ms {
            let entry = self.until.entry(session).or_insert(until_ms);
            *entry = (*entry).max(until_ms);
        }
    }

    /// Whether `session` was signed out (and has not expired since).
    pub fn contains(&self, session: &SessionId) -> bool {
        self.until.contains_key(session)
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_out_session_stays_out_until_it_expires_then_is_forgotten() {
        let mut s = SignedOut::default();
        s.sign_out([1; 16], 1_000, 10);
        assert!(s.contains(&[1; 16]));
        assert!(!s.contains(&[2; 16]));
        // A later sign-out, after the first session expired, prunes it.
        s.sign_out([2; 16], 5_000, 1_000);
        assert!(!s.contains(&[1; 16]));
        assert!(s.contains(&[2; 16]));
        assert_eq!(s.len(), 1);
        // Signing out a session that has already expired records nothing.
        s.sign_out([3; 16], 900, 1_000);
        assert!(!s.contains(&[3; 16]));
        // Signing out twice keeps the later expiry.
        s.sign_out([2; 16], 4_000, 1_001);
        s.sign_out([2; 16], 4_500, 4_200);
        assert!(s.contains(&[2; 16]));
    }
}
