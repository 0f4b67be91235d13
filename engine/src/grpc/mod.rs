//! The gRPC servers over the engine: `quotad.v1.QuotaService`, Envoy's
//! rate limit service (`envoy_rls`, mapped by `rls_config`), and the
//! client port's view of the `Cluster` service (`cluster_port`).
pub mod cluster_port;
mod convert;
pub mod envoy_rls;
mod quota_service;
pub mod rls_config;

pub use quota_service::QuotaGrpc;

use crate::Engine;
use crate::auth::Authenticator;
use quotad_proto::v1::quota_service_server::QuotaServiceServer;
use std::sync::Arc;

/// Batches larger than this are refused (field `items`).
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// The largest message the client port decodes or encodes. The largest
/// valid request, a Batch of [`MAX_BATCH_ITEMS`] increments each with a
/// 64-byte quota name, a 256-byte idempotency key and a 128-byte scope (a
/// use through a sharing grant names a policy and permission instead,
/// fewer bytes), encodes to about 5.1 MB; its answer is smaller. A larger
/// message is refused (RESOURCE_EXHAUSTED from tonic) before it is decoded.
pub const MAX_MESSAGE_BYTES: usize = 5 << 20;

pub fn service(engine: Arc<Engine>, auth: Arc<Authenticator>) -> QuotaServiceServer<QuotaGrpc> {
    QuotaServiceServer::new(QuotaGrpc::new(engine, auth))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// gRPC server reflection for the client port, v1 and v1alpha (grpcurl
/// before 1.9 speaks only v1alpha), listing exactly the services the port
/// serves ([`quotad_proto::CLIENT_PORT_SERVICES`]): not the node-to-node
/// Raft transport, which only the peer port serves.
pub fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        quotad_proto::CLIENT_PORT_SERVICES.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(quotad_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(quotad_proto::ENVOY_RLS_DESCRIPTOR_SET)
                // Each version describes both reflection services, since
                // the port serves both.
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                ),
            |b, name| b.with_service_name(*name),
        )
    };
    Ok((
        builder()
            .build_v1()?
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        builder()
            .build_v1alpha()?
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quotad_proto::v1 as pb;

    /// The largest Batch the API accepts fits the message limit.
    #[test]
    fn the_largest_valid_batch_fits_the_message_limit() {
        use prost::Message;
        let item = pb::BatchItem {
            item: Some(pb::batch_item::Item::Increment(pb::IncrementRequest {
                tenant_id: uuid::Uuid::new_v4().to_string(),
                quota: "q".repeat(64),
                amount: -(crate::quota::validate::MAX_AMOUNT as i64),
                idempotency_key: "k".repeat(256),
                consistency: pb::Consistency::Strict as i32,
                // A scope, the longest: a use through a sharing grant
                // (policy id and permission, shorter) takes none.
                scope: "s".repeat(crate::model::quota_rules::MAX_SCOPE_LEN),
                ..Default::default()
            })),
        };
        let batch = pb::BatchRequest {
            items: vec![item; MAX_BATCH_ITEMS],
            consistency: pb::Consistency::Strict as i32,
        };
        let len = batch.encoded_len();
        assert!(len < MAX_MESSAGE_BYTES, "{len} bytes");
        assert!(
            len > MAX_MESSAGE_BYTES / 2,
            "{len} bytes: the limit could be lower"
        );
    }

    #[test]
    fn shed_requests_get_resource_exhausted_and_a_retry_pushback() {
        let e = crate::EngineError::Overloaded {
            why: crate::shed::Shed::CommitQueue { group: 3, limit: 8 },
        };
        let s = tonic::Status::from(e);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            s.metadata()
                .get("grpc-retry-pushback-ms")
                .map(|v| v.to_str().unwrap()),
            Some("100")
        );
        assert!(s.message().contains("group 3"), "{}", s.message());
        // Other refusals carry no pushback.
        let e = crate::EngineError::NoLeader { group: 3 };
        assert!(
            tonic::Status::from(e)
                .metadata()
                .get("grpc-retry-pushback-ms")
                .is_none()
        );
    }
}
