//! quotad's gRPC API (`quotad.v1`), generated from `proto/quotad/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, the `QuotaService` client and server.
//! - [`raft`]: the node-to-node Raft transport.
//! - [`cluster`]: membership, routing, status, internal forwarding.
//! - [`client`]: a Rust client routing calls to group leaders.
//! - [`routing`]: tenant -> shard group, shared with the engine.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
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
pub mod routing;

/// Encoded `FileDescriptorSet` of every quotad .proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quotad_descriptor.bin"));
