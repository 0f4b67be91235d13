//! The wire stage: a layer on a gRPC port that decides whether a request is
//! traced and, if it is, spans the call (a SERVER span named after its
//! method) and runs the handler inside it.
use super::context::{Parent, within};
use super::span::{self, Span};
use futures::future::{BoxFuture, Either};
use opentelemetry::trace::SpanKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;
use tonic::codegen::http::{Request, Response};

/// The W3C trace context header (gRPC metadata is HTTP/2 headers).
pub const TRACEPARENT: &str = "traceparent";

/// Requests a second that clients may have traced by sending a sampled
/// `traceparent`, on top of the ones `--otlp-sample-ratio` picks: tracing
/// costs the node work, and clients are not trusted to ration it.
pub const CALLER_TRACES_PER_SEC: u32 = 1_000;

static CALLER_BUDGET: Budget = Budget::new(CALLER_TRACES_PER_SEC);

/// At most `per_sec` takes in each second of the system clock.
struct Budget {
    per_sec: u32,
    /// The current second (high 32 bits) and the takes in it (low 32).
    window: AtomicU64,
}

impl Budget {
    const fn new(per_sec: u32) -> Budget {
        Budget {
            per_sec,
            window: AtomicU64::new(0),
        }
    }

    fn take(&self) -> bool {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        self.take_at(second)
    }

    fn take_at(&self, second: u32) -> bool {
        let mut seen = self.window.load(Ordering::Relaxed);
        loop {
            let (at, taken) = ((seen >> 32) as u32, seen as u32);
            let next = match (at == second, taken < self.per_sec) {
                (true, true) => seen + 1,
                (true, false) => return false,
                (false, _) => (u64::from(second) << 32) | 1,
            };
            match self.window.compare_exchange_weak(
                seen,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    /// Whether a request its caller did not sample may start a trace
    /// (`--otlp-sample-ratio`): on the client port, not on the peer port,
    /// where only forwards of traced requests are traced.
    roots: bool,
}

impl TraceLayer {
    /// For the port clients call.
    pub fn clients() -> TraceLayer {
        TraceLayer { roots: true }
    }

    /// For the peer port: a forwarded request is traced when its sender's
    /// was, and Raft's own traffic never.
    pub fn peers() -> TraceLayer {
        TraceLayer { roots: false }
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            roots: self.roots,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
    roots: bool,
}

impl<S, B, R> tower::Service<Request<B>> for TraceService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !span::enabled() {
            return Either::Left(self.inner.call(req));
        }
        let parent = match req.headers().get(TRACEPARENT) {
            Some(h) => match Parent::from_header(h.as_bytes()) {
                // A client cannot make the node trace everything it sends:
                // past the budget, its sampled requests are not traced.
                Ok(Some(_)) if self.roots && !CALLER_BUDGET.take() => None,
                Ok(Some(p)) => Some(Some(p)),
                // The caller chose not to trace it.
                Ok(None) => None,
                // Not a header we can follow: as if there were none.
                Err(_) => (self.roots && span::sample_root()).then_some(None),
            },
            None => (self.roots && span::sample_root()).then_some(None),
        };
        let Some(parent) = parent else {
            return Either::Left(self.inner.call(req));
        };
        let path = req.uri().path().trim_start_matches('/');
        let Some(mut span) = Span::start(
            path.to_string(),
            SpanKind::Server,
            parent,
            SystemTime::now(),
        ) else {
            return Either::Left(self.inner.call(req));
        };
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        span.set("rpc.system", "grpc");
        span.set("rpc.service", service.to_string());
        span.set("rpc.method", method.to_string());
        let fut = self.inner.call(req);
        let me = span.parent();
        Either::Right(Box::pin(async move {
            let answer = within(me, fut).await;
            if let Ok(response) = &answer {
                // A call that failed before its answer has its status in
                // the headers (trailers-only); a served one, in trailers.
                if let Some(code) = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|s| s.to_str().ok())
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    span.set("rpc.grpc.status_code", code);
                    if code != 0 {
                        span.error(format!("gRPC status {code}"));
                    }
                }
            }
            span.end();
            answer
        }))
    }
}

/// The span of one batch of a `Stream` call's messages: the call's own
/// span ends once the stream is open, so each batch read from it is traced
/// on its own — as a child of the call's span when the call was traced (up
/// to the callers' budget), else sampled like a call.
pub fn stream_batch(call: Option<Parent>, items: usize) -> Option<Span> {
    if !span::enabled() {
        return None;
    }
    let mut span = match call {
        Some(p) if CALLER_BUDGET.take() => Span::child("quotad.stream.batch", p)?,
        Some(_) => return None,
        None if span::sample_root() => Span::start(
            "quotad.stream.batch",
            SpanKind::Server,
            None,
            SystemTime::now(),
        )?,
        None => return None,
    };
    span.set("quotad.items", items as i64);
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_allows_so_many_a_second_then_starts_again() {
        let b = Budget::new(3);
        assert_eq!(
            (0..5).map(|_| b.take_at(7)).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert!(b.take_at(8), "a new second");
        assert!(b.take_at(8) && b.take_at(8) && !b.take_at(8));
    }
}
