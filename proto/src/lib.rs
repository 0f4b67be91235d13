//! quotad's gRPC API (`quotad.v1`), generated from `proto/quotad/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, the `QuotaService` client and server.
//! - [`raft`]: the node-to-node Raft transport.
//! - [`cluster`]: membership, routing, status, internal forwarding.
//! - [`client`]: a Rust client routing calls to group leaders.
//! - [`credential`]: the bearer credential clients send.
//! - [`routing`]: tenant -> shard group, shared with the engine.
//! - [`FILE_DESCRIPTOR_SET`], [`ENVOY_RLS_DESCRIPTOR_SET`]: encoded
//!   descriptors, for server reflection.
#![forbid(unsafe_code)]

pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("quotad.v1");
}

/// Node-to-node Raft transport (internal).
pub mod raft {
    #![allow(clippy::all)]
    tonic::include_proto!("quotad.raft.v1");
}

/// Cluster membership, routing and forwarding.
pub mod cluster {
    #![allow(clippy::all)]
    tonic::include_proto!("quotad.cluster.v1");
}

pub mod client;
pub mod credential;
pub mod routing;

/// Encoded `FileDescriptorSet` of every quotad .proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quotad_descriptor.bin"));

/// Encoded `FileDescriptorSet` of Envoy's `envoy.service.ratelimit.v3`
/// and its imports (from `proto/vendor`), for server reflection.
pub const ENVOY_RLS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_rls_descriptor.bin"));

/// The services a node's client port serves (and reflection lists).
pub const CLIENT_PORT_SERVICES: [&str; 5] = [
    "quotad.v1.QuotaService",
    "quotad.cluster.v1.Cluster",
    "envoy.service.ratelimit.v3.RateLimitService",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
