//! Sending spans to an OTLP collector over gRPC.
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::time::Duration;

/// How long spans wait to be sent in a batch: short enough that a slow
/// request shows up while the operator is still looking at it.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Spans waiting to be sent at most; more are dropped (by the SDK, which
/// says so in its own log) rather than held while a collector is down.
const QUEUE: usize = 8_192;

/// The installed exporter: flushes what is queued when shut down.
pub struct Exporter {
    provider: SdkTracerProvider,
}

/// Export sampled requests' spans to the OTLP/gRPC collector at `endpoint`
/// (`http://host:port`), sampling `ratio` of the requests whose caller did
/// not decide. Once per process, inside the Tokio runtime (the exporter's
/// connection runs on it).
pub fn install(endpoint: &str, ratio: f64, node: u64) -> Result<Exporter, String> {
    check_endpoint(endpoint)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!(
            "otlp_sample_ratio: {ratio} is not a fraction between 0 and 1"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("otlp_endpoint: {e}"))?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_EVERY)
                .with_max_queue_size(QUEUE)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        // quotad decides which requests are traced before a span exists
        // (see `layer`); every span it starts is kept.
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(
            Resource::builder_empty()
                .with_service_name("quotad")
                .with_attributes([
                    KeyValue::new("service.instance.id", node.to_string()),
                    KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                ])
                .build(),
        )
        .build();
    super::span::set_tracer(provider.tracer("quotad"), ratio)?;
    Ok(Exporter { provider })
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("otlp_endpoint: {endpoint:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "otlp_endpoint: {endpoint:?}: only http:// (OTLP over gRPC in the clear) is \
             supported; run a collector next to the node and let it forward over TLS"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) || url.port_or_known_default().is_none() {
        return Err(format!(
            "otlp_endpoint: {endpoint:?} names no host and port"
        ));
    }
    Ok(())
}

impl Exporter {
    /// Send what is queued (waiting at most the export timeout) and stop.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "spans not sent at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_an_http_url_with_a_host() {
        assert!(check_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(check_endpoint("http://collector").is_ok());
        for (bad, says) in [
            ("127.0.0.1:4317", "not a URL"),
            ("https://collector:4317", "only http://"),
            ("grpc://collector:4317", "only http://"),
            ("", "not a URL"),
        ] {
            let e = check_endpoint(bad).unwrap_err();
            assert!(
                e.contains(says) && e.starts_with("otlp_endpoint"),
                "{bad}: {e}"
            );
        }
    }
}
