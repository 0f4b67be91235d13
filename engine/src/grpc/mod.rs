//! The gRPC servers over the engine: `quotad.v1.QuotaService`, and Envoy's
//! rate limit service (`envoy_rls`, mapped by `rls_config`).
mod convert;
pub mod envoy_rls;
mod quota_service;
pub mod rls_config;

pub use quota_service::QuotaGrpc;

use crate::Engine;
use quotad_proto::v1::quota_service_server::QuotaServiceServer;
use std::sync::Arc;

/// Batches larger than this are refused (field `items`).
pub const MAX_BATCH_ITEMS: usize = 10_000;

pub fn service(engine: Arc<Engine>) -> QuotaServiceServer<QuotaGrpc> {
    QuotaServiceServer::new(QuotaGrpc::new(engine))
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
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
