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

/// gRPC server reflection (v1) for every quotad service, so tools like
/// grpcurl work without the .proto files.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(quotad_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
}
