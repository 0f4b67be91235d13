//! The node's log: `RUST_LOG` filtering, text or JSON lines on stderr, and
//! warnings and errors that repeat word for word logged once with a count.
//!
//! A peer that died makes openraft retry replication to it for as long as
//! it is a member, logging each failed try; without this, an unreachable
//! node filled disks (hundreds of megabytes in minutes). A line identical
//! to the last one from the same place within a minute is counted, not
//! written; the count is written when the minute is up or the line changes.
use quotad_engine::repeats::{Log, Repeats};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(Dedup::new(fmt.json(), std::io::stderr, true))
            .init();
    } else {
        registry
            .with(Dedup::new(fmt, std::io::stderr, false))
            .init();
    }
}

/// Passes events to `inner`, holding back warnings and errors that repeat;
/// the counts go straight to `notes` (an event raised while one is being
/// logged would be dropped by tracing), as lines shaped like `inner`'s.
pub struct Dedup<L, W> {
    inner: L,
    repeats: Repeats,
    notes: W,
    json: bool,
}

impl<L, W> Dedup<L, W> {
    pub fn new(inner: L, notes: W, json: bool) -> Self {
        Dedup {
            inner,
            repeats: Repeats::default(),
            notes,
            json,
        }
    }
}

impl<L, W: for<'w> MakeWriter<'w>> Dedup<L, W> {
    fn note(&self, level: Level, times: u64, site: &str) {
        let what = if level == Level::ERROR {
            "error"
        } else {
            "warning"
        };
        let message = format!("the last {what} from here repeated {times} more times");
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let line = if self.json {
            let v = serde_json::json!({
                "timestamp": now.to_string(),
                "level": level.as_str(),
                "fields": {"message": message, "repeated": times, "from": site},
                "target": "quotad::logs",
            });
            format!("{v}\n")
        } else {
            format!(
                "{now} {:>5} quotad::logs: {message} repeated={times} from={site}\n",
                level.as_str()
            )
        };
        let _ = self.notes.make_writer().write_all(line.as_bytes());
    }
}

/// An event's fields as text: what makes two lines the same.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

/// Where an event comes from: its target and source line.
fn site(m: &Metadata<'_>) -> String {
    format!(
        "{}:{}:{}",
        m.target(),
        m.file().unwrap_or(""),
        m.line().unwrap_or(0)
    )
}

impl<S, L, W> Layer<S> for Dedup<L, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let m = event.metadata();
        // Warnings and errors only (tracing orders levels by verbosity).
        if *m.level() > Level::WARN {
            self.inner.on_event(event, ctx);
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let site = site(m);
        match self.repeats.failed(&site, &text.0, Instant::now()) {
            Log::Quiet => {}
            Log::New { previous } => {
                if previous > 0 {
                    self.note(*m.level(), previous, &site);
                }
                self.inner.on_event(event, ctx);
            }
            Log::Again { times } => {
                self.note(*m.level(), times.saturating_sub(1), &site);
                self.inner.on_event(event, ctx);
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f` logs through a `Dedup` layer (text, notes included).
    fn logged(f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let (out, notes_buf) = (buf.clone(), buf.clone());
        let notes = move || notes_buf.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false);
        let subscriber = tracing_subscriber::registry().with(Dedup::new(fmt, notes, false));
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_repeated_error_is_written_once_and_others_pass() {
        let text = logged(|| {
            for _ in 0..1000 {
                tracing::error!(err = "broken pipe", "RPCError");
            }
            for i in 0..3 {
                tracing::info!(i, "progress");
            }
            tracing::error!(err = "refused", "RPCError");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.iter().filter(|l| l.contains("broken pipe")).count(),
            1,
            "{text}"
        );
        assert_eq!(lines.iter().filter(|l| l.contains("progress")).count(), 3);
        // Each error line has its own call site here, so "refused" is new.
        assert!(text.contains("refused"), "{text}");
    }

    #[test]
    fn a_changed_error_says_how_often_the_last_one_repeated() {
        let text = logged(|| {
            for i in 0..12 {
                let err = if i < 10 { "broken pipe" } else { "refused" };
                tracing::error!(err, "RPCError");
            }
        });
        assert!(text.contains("repeated 9 more times"), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("refused")).count(), 1);
    }
}
