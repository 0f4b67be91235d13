//! Console sign-outs, replicated through the meta group so that every node
//! refuses a signed-out session (see [`crate::model::SignedOut`]).
use super::Engine;
use crate::EngineError;
use crate::format::Since;
use crate::model::SessionId;
use crate::raft::{Command, MetaOp, SignOut};

impl Engine {
    /// Sign `session` out on every node until `until_ms`, when it would
    /// have expired anyway. Returns once this node refuses it.
    pub async fn sign_out_session(
        &self,
        session: SessionId,
        until_ms: i64,
    ) -> Result<(), EngineError> {
        let op = SignOut {
            session,
            until_ms,
            at_ms: self.now_ms(),
        };
        self.router
            .meta_write(Command::Meta(MetaOp::SignOut(Since(op))))
            .await?;
        self.router
            .await_meta(|m| m.signed_out.contains(&session) || until_ms <= self.now_ms())
            .await;
        Ok(())
    }

    /// Whether `session` was signed out, as this node's copy of the meta
    /// group knows.
    pub fn session_signed_out(&self, session: &SessionId) -> bool {
        match self.router.meta.state.read() {
            Ok(s) => s.signed_out.contains(session),
            Err(poisoned) => poisoned.into_inner().signed_out.contains(session),
        }
    }
}
