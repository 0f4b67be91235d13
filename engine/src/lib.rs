//! quotad engine: the model, the quota math, tenant actors, Raft shard groups
//! and storage.
//!
//! # Layout
//! - [`model`]: tenants, tiers, quota policies (plain data).
//! - [`quota`]: windows, buckets, decisions; pure functions of state, input
//!   and time.
//! - [`clock`]: the injected time source.
//! - [`error_code`]: the one code type mapped to gRPC and HTTP statuses.
#![forbid(unsafe_code)]

pub mod clock;
pub mod error_code;
pub mod model;
pub mod quota;
