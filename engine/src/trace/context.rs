//! Which sampled request a task is working for, and how that crosses to
//! other tasks and nodes.
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use std::future::Future;
use std::time::SystemTime;

/// The span a stage's span is a child of. Only sampled requests have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace: TraceId,
    pub span: SpanId,
}

tokio::task_local! {
    /// The innermost open span of the sampled request this task serves.
    static CURRENT: Parent;
}

/// The sampled request the calling task serves, if any.
pub fn current() -> Option<Parent> {
    CURRENT.try_with(|p| *p).ok()
}

/// Run `f` as part of `parent`'s span: stages it reaches (in this task)
/// become its children.
pub async fn within<F: Future>(parent: Parent, f: F) -> F::Output {
    CURRENT.scope(parent, f).await
}

/// A parent handed to another task (an actor's message, the batcher's
/// queue), with when it was handed over: the receiving stage's span starts
/// then, so its time in the queue is part of it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub parent: Parent,
    pub at: SystemTime,
}

impl Sent {
    /// The calling task's request, handed over now; boxed, so carrying
    /// none costs a message 8 bytes.
    pub fn current() -> Option<Box<Sent>> {
        current().map(|parent| Box::new(Sent::now(parent)))
    }

    pub fn now(parent: Parent) -> Sent {
        Sent {
            parent,
            at: SystemTime::now(),
        }
    }
}

impl Parent {
    pub(crate) fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace,
            self.span,
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        )
    }

    /// The W3C `traceparent` header naming this span, sampled.
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", self.trace, self.span)
    }

    /// A `traceparent` header: `Ok(Some)` for a sampled parent, `Ok(None)`
    /// for one its caller chose not to sample, `Err` for one that is not a
    /// valid version-00 header (ignored: the request is sampled as if it
    /// had none).
    pub fn from_header(value: &[u8]) -> Result<Option<Parent>, &'static str> {
        let text = std::str::from_utf8(value).map_err(|_| "not ASCII")?;
        let mut parts = text.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not version-traceid-spanid-flags");
        };
        // A later version may add fields after the flags; version 00 may not.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return Err("unsupported version");
        }
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then_some(())
        };
        hex(version, 2).ok_or("version is not lowercase hex")?;
        hex(trace, 32).ok_or("trace id is not 32 lowercase hex digits")?;
        hex(span, 16).ok_or("parent id is not 16 lowercase hex digits")?;
        hex(flags, 2).ok_or("flags are not 2 lowercase hex digits")?;
        let trace = TraceId::from_hex(trace).map_err(|_| "trace id")?;
        let span = SpanId::from_hex(span).map_err(|_| "parent id")?;
        if trace == TraceId::INVALID || span == SpanId::INVALID {
            return Err("an all-zero id");
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| "flags")?;
        Ok((flags & 1 == 1).then_some(Parent { trace, span }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn a_header_round_trips() {
        let p = Parent::from_header(format!("00-{TRACE}-{SPAN}-01").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(p.trace, TraceId::from_hex(TRACE).unwrap());
        assert_eq!(p.span, SpanId::from_hex(SPAN).unwrap());
        assert_eq!(p.header(), format!("00-{TRACE}-{SPAN}-01"));
    }

    #[test]
    fn an_unsampled_caller_is_followed_and_bad_headers_are_refused() {
        let unsampled = format!("00-{TRACE}-{SPAN}-00");
        assert_eq!(Parent::from_header(unsampled.as_bytes()), Ok(None));
        // A later version's extra field is allowed; version 00's is not.
        let later = format!("01-{TRACE}-{SPAN}-01-extra");
        assert!(Parent::from_header(later.as_bytes()).unwrap().is_some());
        for bad in [
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{TRACE}x-{SPAN}-01"),
            String::new(),
        ] {
            assert!(Parent::from_header(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_task_sees_the_request_it_serves_and_only_inside_it() {
        let p = Parent {
            trace: TraceId::from_hex(TRACE).unwrap(),
            span: SpanId::from_hex(SPAN).unwrap(),
        };
        assert_eq!(current(), None);
        assert_eq!(within(p, async { current() }).await, Some(p));
        assert_eq!(current(), None);
        // Another task does not inherit it: it is handed over explicitly.
        let other = within(p, async {
            tokio::spawn(async { current() }).await.unwrap()
        })
        .await;
        assert_eq!(other, None);
    }
}
