//! quotad engine: the model, the quota math, tenant actors, Raft shard groups
//! and storage.
//!
//! # Layout
//! - [`model`]: tenants, tiers, quota policies (plain data).
//! - [`quota`]: windows, buckets, decisions; pure functions of state, input
//!   and time.
//! - [`actor`]: tenant actors (ractor), thin shells over `quota`.
//! - [`alerts`]: alerts, webhook endpoints, the outbox of deliveries (plain data).
//! - [`cluster`]: membership, placement, routing to group leaders.
//! - [`custom`]: tier features, branding, feature flags (plain data, pure rules).
//! - [`shard`]: tenant -> shard map, group-commit batcher, actor registry.
//! - [`raft`]: openraft groups: type config, state machine, log store.
//! - [`storage`]: the node's embedded redb store.
//! - [`engine`]: the facade the APIs call.
//! - [`shed`]: load shedding: the bounds on every queue before a decision.
//! - [`audit`]: per-tenant hash-chained audit log.
//! - [`auth`]: tokens, API keys, the data plane's authenticator.
//! - [`usage_history`]: hourly and daily usage buckets, statistics.
//! - [`grpc`]: the `quotad.v1.QuotaService` server.
//! - [`peer_auth`]: the cluster key, and who may use the peer port.
//! - [`tls`]: rustls for the node's ports, reloaded when files change.
//! - [`clock`]: the injected time source.
//! - [`format`]: versioned encoding of stored and replicated bytes.
//! - [`error`], [`error_code`], [`wire_error`]: the engine's errors and the one code type
//!   mapped to gRPC and HTTP statuses.
#![forbid(unsafe_code)]

pub mod actor;
pub mod alerts;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod clock_skew;
pub mod cluster;
pub mod custom;
pub mod engine;
pub mod error;
pub mod error_code;
pub mod excerpt;
pub mod format;
pub mod grpc;
#[cfg(test)]
mod hostile_bytes;
pub mod idle;
pub mod model;
pub mod peer_auth;
pub mod quota;
pub mod raft;
pub mod repeats;
pub mod shard;
pub mod sharing;
pub mod shed;
pub mod sparse;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod usage_history;
pub mod wire_error;

pub use audit::AuditPage;
pub use engine::{BatchOp, Engine, EngineConfig, MetricsSnapshot, NewTenant, Reserved, Via};
pub use error::EngineError;
