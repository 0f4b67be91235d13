//! quotad's gRPC API (`quotad.v1`), generated from `proto/quotad/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, the `QuotaService` client and server.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
#![forbid(unsafe_code)]

pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("quotad.v1");
}

/// Encoded `FileDescriptorSet` of every quotad .proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quotad_descriptor.bin"));
