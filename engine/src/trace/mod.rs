//! Traces of sampled requests through the decision path, exported over
//! OTLP (`--otlp-endpoint`), so an operator sees where a slow decision
//! spent its time in any OpenTelemetry backend.
//!
//! ```text
//!  wire (gRPC method, SERVER)
//!   └─ quotad.route              group, local or forwarded, attempts
//!       ├─ Cluster/Forward       on the leader, when forwarded (SERVER)
//!       │   └─ quotad.actor ...
//!       └─ quotad.actor          queued + decided by the tenant's actor
//!           └─ quotad.commit     queued for the batcher, replicated, fsync'd
//!               └─ quotad.apply  the state machine applying its entry
//! ```
//!
//! A request is sampled once, where it enters (its caller's `traceparent`
//! decides if it has one; else `--otlp-sample-ratio`). An unsampled
//! request carries nothing: no span, no context, no allocation; each stage
//! only asks whether the task it runs in is inside a sampled request (a
//! task-local read). A sampled one carries its parent span's context to
//! the stages that run elsewhere: in the actor's message, in the batcher's
//! queue entry, and in the `traceparent` header of a forward.
//!
//! The spans are the SDK's; they are created only for sampled requests and
//! leave through its batch processor, on its own thread.
mod apply_clock;
mod context;
mod export;
mod layer;
mod span;

pub use apply_clock::ApplyClock;
pub use context::{Parent, Sent, current, within};
pub use export::{Exporter, install};
pub use layer::{TRACEPARENT, TraceLayer, TraceService, stream_batch};
pub use span::Span;
pub use span::enabled;
