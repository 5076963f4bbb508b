//! Logs and traces for the process: a `tracing` subscriber writing to stderr
//! (filtered by `AIRLOCK_LOG`, default `warn`) and, only when
//! `[telemetry] otlp_endpoint` is set, an OpenTelemetry layer exporting the
//! request spans over OTLP/HTTP.
//!
//! The OTLP layer has its own filter (Airlock's `info` spans: the request and
//! its stages) so that turning traces on does not also turn the logs up.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

use airlock::config::TelemetryConfig;

/// Keeps the span exporter alive; dropping it flushes what is batched.
#[must_use = "dropping the guard stops exporting traces"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces to the OTLP endpoint: {e}");
        }
    }
}

/// Logs only (every command but `serve`).
pub fn init_logs() {
    let _ = Registry::default().with(log_layer()).try_init();
}

/// Logs, plus OTLP traces when the config asks for them. Must be called
/// outside the tokio runtime: the exporter runs a blocking HTTP client on
/// the batch processor's own thread, away from the request path.
pub fn init(telemetry: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        init_logs();
        return Ok(TelemetryGuard { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| anyhow::anyhow!("telemetry.otlp_endpoint {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("airlock");
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("airlock", LevelFilter::INFO));
    let _ = Registry::default().with(log_layer()).with(spans).try_init();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

fn log_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter)
}
