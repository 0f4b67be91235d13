//! Alerts and their delivery as webhooks: plain data and pure rules.
//!
//! An alert is raised inside a tenant's replicated `apply` (a quota
//! threshold crossed, a soft limit passed, a quota exceeded, ...), so every
//! replica raises the same alerts with the same sequence numbers: a
//! failover neither loses nor repeats one. Raising one queues a delivery
//! for each of the tenant's endpoints that listens for its type, in the
//! same replicated state (the outbox). The group leader's delivery worker
//! sends what is due and records each attempt through Raft; the retry
//! schedule and its jitter are chosen by the leader and carried in the
//! entry, so `apply` stays deterministic.
//!
//! ```text
//! apply(op) --raises--> Alert --queues--> Delivery (pending, due now)
//!   leader worker: due? -> POST (Standard Webhooks) -> TenantOp::Delivered
//!        2xx -> delivered    5xx/408/429/timeout -> retry at next step
//!        other 4xx or schedule spent -> dead (replay re-queues it)
//! ```
//!
//! # Layout
//! - [`event`]: the alert types and an alert.
//! - [`due`]: alerts time raises (trial milestones, anomalies).
//! - [`endpoint`]: a tenant's webhook endpoints and their signing secrets.
//! - [`outbox`]: deliveries, attempts, the retry schedule.
//! - [`platform`]: the operators' alerts: every tenant's, handed on, and
//!   the platform's endpoints (meta group).
//! - [`signature`]: Standard Webhooks signing.
//! - [`tenant_alerts`]: a tenant's alerts, endpoints and outbox together.
pub mod due;
pub mod endpoint;
pub mod event;
pub mod outbox;
pub mod platform;
pub mod signature;
pub mod tenant_alerts;

pub use endpoint::{Endpoint, EndpointSpec};
pub use event::{Alert, AlertType};
pub use outbox::{Attempt, Delivery, DeliveryState, Outcome};
pub use platform::{PlatformAlertOp, PlatformAlerts, PlatformChange};
pub use tenant_alerts::TenantAlerts;
