//! Requests one node hands to another: a tenant's request to its group's
//! leader, a meta-group write to the meta leader, a join. Encoded with
//! postcard inside the `Cluster.Forward` RPC.
//!
//! A forwarded request is served where it lands or refused with
//! `NotLeader`; it never hops again, so a stale map costs a retry, not a
//! loop.
use crate::audit::AuditPage;
use crate::audit::AuditQuery;
use crate::error::EngineError;
use crate::model::{Principal, TenantId};
use crate::peer_auth::PeerChannel;
use crate::raft::{Command, CommandResponse, MovedTenant};
use crate::raft::{MAX_MESSAGE_BYTES, caused_by};
use crate::shard::{TenantAnswer, TenantCall};
use crate::usage_history::{Granularity, Point, Statistics};
use crate::wire_error::WireError;
use quotad_proto::cluster::ForwardMessage;
use quotad_proto::cluster::cluster_client::ClusterClient;
use serde::{Deserialize, Serialize};
use std::time::Duration;

impl ForwardRequest {
    /// Whether serving it may change state; else a lost one is merely
    /// unanswered (UNAVAILABLE), never of unknown outcome.
    pub fn changes_state(&self) -> bool {
        match self {
            ForwardRequest::Tenant { call, .. } => call.changes_state(),
            ForwardRequest::Audit { .. } | ForwardRequest::Usage { .. } => false,
            ForwardRequest::Meta(_)
            | ForwardRequest::MoveOut { .. }
            | ForwardRequest::GroupWrite { .. } => true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    Tenant {
        tenant: TenantId,
        call: TenantCall,
    },
    Meta(Command),
    Audit {
        tenant: TenantId,
        query: AuditQuery,
    },
    Usage {
        tenant: TenantId,
        quota: String,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    },
    /// On the tenant's current group leader: stop deciding for it and hand
    /// its state over to `to_group`.
    MoveOut {
        tenant: TenantId,
        to_group: u64,
    },
    /// A command for a shard group, on its leader.
    GroupWrite {
        group: u64,
        cmd: Command,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Tenant(TenantAnswer),
    Meta(CommandResponse),
    Audit(AuditPage),
    Usage(Vec<Point>, Statistics),
    Moved(Box<MovedTenant>),
    Written(CommandResponse),
}

/// A reply of the wrong kind (a bug, or nodes of different versions).
pub fn unexpected(answer: impl std::fmt::Debug) -> EngineError {
    EngineError::unexpected(answer)
}

/// How a forward failed before any answer came back.
#[derive(Debug)]
pub enum SendError {
    /// The request never left (no connection): safe to send elsewhere.
    NotSent(String),
    /// It may have been received: only retry-safe requests go again.
    Lost(String),
}

/// Send `req` over `channel`, on behalf of `by` (the verified caller of a
/// data-plane call, which the leader checks again; see
/// [`super::principal`]), and wait for its answer, at most `timeout`.
/// No answer by then (a leader that hangs, a black-holed path) is
/// [`SendError::Lost`]: the request may have been received and applied.
pub async fn send(
    channel: PeerChannel,
    req: &ForwardRequest,
    by: Option<&Principal>,
    timeout: Duration,
) -> Result<Result<ForwardReply, EngineError>, SendError> {
    let payload = crate::format::encode(req)
        .map_err(|e| SendError::NotSent(format!("cannot encode request: {e}")))?;
    let mut client = ClusterClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut request = tonic::Request::new(ForwardMessage { payload });
    if let Some(p) = by {
        let value = super::principal::to_metadata(p).map_err(SendError::NotSent)?;
        request
            .metadata_mut()
            .insert_bin(super::principal::HEADER, value);
    }
    // A traced request stays one trace on the leader.
    if let Some(parent) = crate::trace::current()
        && let Ok(value) = parent.header().parse()
    {
        request
            .metadata_mut()
            .insert(crate::trace::TRACEPARENT, value);
    }
    // The receiver stops working on it too once the sender has given up.
    request.set_timeout(timeout);
    let no_answer = || SendError::Lost(format!("no answer within {} ms", timeout.as_millis()));
    // Enforced here as well: tonic starts the header's clock only once a
    // connection is ready.
    let reply = tokio::time::timeout(timeout, client.forward(request))
        .await
        .map_err(|_| no_answer())?
        .map_err(|s| {
            // Only a failure to connect proves nothing was written; a
            // connection that broke (or was closed by keepalive) after the
            // request went out may have delivered it.
            if caused_by::<tonic::ConnectError>(&s) {
                SendError::NotSent(s.message().to_string())
            } else if caused_by::<tonic::TimeoutExpired>(&s) {
                no_answer()
            } else {
                SendError::Lost(s.to_string())
            }
        })?;
    let decoded: Result<ForwardReply, WireError> =
        crate::format::decode(&reply.into_inner().payload)
            .map_err(|e| SendError::Lost(format!("undecodable reply: {e}")))?;
    Ok(decoded.map_err(EngineError::from))
}

pub fn encode_reply(r: &Result<ForwardReply, EngineError>) -> Result<Vec<u8>, tonic::Status> {
    let wire: Result<&ForwardReply, WireError> = r.as_ref().map_err(WireError::from);
    crate::format::encode(&wire)
        .map_err(|e| tonic::Status::internal(format!("cannot encode reply: {e}")))
}

pub fn decode_request(payload: &[u8]) -> Result<ForwardRequest, tonic::Status> {
    crate::format::decode(payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable forward: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Consistency;
    use crate::quota::TenantOp;
    use crate::raft::Peers;
    use std::time::Instant;
    use tokio::io::AsyncReadExt;

    fn read(tenant: u128) -> ForwardRequest {
        ForwardRequest::Tenant {
            tenant: uuid::Uuid::from_u128(tenant),
            call: TenantCall::Read,
        }
    }

    async fn listener() -> (tokio::net::TcpListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    /// Bounded, so that a forward without a deadline fails the test
    /// instead of hanging it.
    async fn send_to(addr: &str, timeout: Duration) -> Result<(), SendError> {
        let channel = Peers::default().channel(addr).unwrap();
        tokio::time::timeout(
            Duration::from_secs(20),
            send(channel, &read(1), None, timeout),
        )
        .await
        .expect("the forward returned")
        .map(|_| ())
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        let (l, addr) = listener().await;
        drop(l);
        let r = send_to(&addr, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(SendError::NotSent(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_costs_the_forward_timeout_and_may_have_received_it() {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = l.accept().await {
                held.push(socket);
            }
        });
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let r = send_to(&addr, timeout).await;
        assert!(
            matches!(&r, Err(SendError::Lost(why)) if why.contains("no answer within 300 ms")),
            "{r:?}"
        );
        assert!(started.elapsed() >= timeout);
    }

    #[tokio::test]
    async fn a_connection_that_breaks_after_the_request_left_may_have_delivered_it() {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = l.accept().await {
                // Read what the client sends (the request among it), then
                // close without answering.
                let mut buf = vec![0u8; 64 << 10];
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                drop(socket);
            }
        });
        let r = send_to(&addr, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(SendError::Lost(_))), "{r:?}");
    }

    #[test]
    fn only_changes_can_have_an_unknown_outcome() {
        assert!(!read(1).changes_state());
        let check = ForwardRequest::Tenant {
            tenant: uuid::Uuid::from_u128(1),
            call: TenantCall::Check {
                quota: "q".into(),
                amount: 1,
            },
        };
        assert!(!check.changes_state());
        let increment = ForwardRequest::Tenant {
            tenant: uuid::Uuid::from_u128(1),
            call: TenantCall::Apply {
                op: TenantOp::Increment {
                    quota: "q".into(),
                    amount: 1,
                    idempotency_key: None,
                },
                audit: None,
                consistency: Consistency::Strict,
            },
        };
        assert!(increment.changes_state());
    }
}
