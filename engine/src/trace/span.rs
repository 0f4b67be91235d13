//! A stage's span: an SDK span, created only for a sampled request, with
//! the times the stage measured.
use super::context::Parent;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The tracer spans go to; unset (and nothing traced) without
/// `--otlp-endpoint`.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();
/// A request without a caller's decision is sampled when a random u64 is
/// below this: `ratio × 2^64`, saturated (0: never, `u64::MAX`: always).
static THRESHOLD: AtomicU64 = AtomicU64::new(0);

pub(super) fn set_tracer(tracer: SdkTracer, ratio: f64) -> Result<(), &'static str> {
    TRACER
        .set(tracer)
        .map_err(|_| "a trace exporter is already installed")?;
    THRESHOLD.store(threshold(ratio), Ordering::Relaxed);
    Ok(())
}

fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio > 0.0 {
        (ratio * 2f64.powi(64)) as u64
    } else {
        0
    }
}

/// Whether spans are exported at all.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// Whether a request that arrives without a caller's decision is traced.
pub(super) fn sample_root() -> bool {
    match THRESHOLD.load(Ordering::Relaxed) {
        0 => false,
        u64::MAX => true,
        t => rand::random::<u64>() < t,
    }
}

pub struct Span(opentelemetry_sdk::trace::Span);

impl Span {
    /// A span that started at `at`, a child of `parent` (a new trace's
    /// root when `None`). `None` when nothing is exported.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<Parent>,
        at: SystemTime,
    ) -> Option<Span> {
        let tracer = TRACER.get()?;
        let cx = match parent {
            Some(p) => Context::new().with_remote_span_context(p.span_context()),
            None => Context::new(),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(at)
            .start_with_context(tracer, &cx);
        Some(Span(span))
    }

    /// A child of `parent` starting now.
    pub fn child(name: &'static str, parent: Parent) -> Option<Span> {
        Span::start(name, SpanKind::Internal, Some(parent), SystemTime::now())
    }

    /// The parent its own stages' spans name.
    pub fn parent(&self) -> Parent {
        let cx = self.0.span_context();
        Parent {
            trace: cx.trace_id(),
            span: cx.span_id(),
        }
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.set_attribute(KeyValue::new(key, value));
    }

    pub fn event_at(&mut self, name: impl Into<Cow<'static, str>>, at: SystemTime) {
        self.0.add_event_with_timestamp(name, at, Vec::new());
    }

    pub fn event(&mut self, name: impl Into<Cow<'static, str>>) {
        self.event_at(name, SystemTime::now());
    }

    /// Marks the span failed, with why.
    pub fn error(&mut self, why: impl std::fmt::Display) {
        self.0.set_status(Status::error(why.to_string()));
    }

    /// Record the outcome of a stage that returned `r`.
    pub fn result<T, E: std::fmt::Display>(&mut self, r: &Result<T, E>) {
        if let Err(e) = r {
            self.error(e);
        }
    }

    pub fn end(self) {
        self.end_at(SystemTime::now());
    }

    pub fn end_at(mut self, at: SystemTime) {
        self.0.end_with_timestamp(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_a_share_of_the_random_range() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(-1.0), 0);
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(0.5), 1 << 63);
        let one_percent = threshold(0.01) as f64 / 2f64.powi(64);
        assert!((one_percent - 0.01).abs() < 1e-12, "{one_percent}");
    }
}
