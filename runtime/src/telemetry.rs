//! Logging and tracing with `tracing`. Request spans carry `correlation_id`, `command_id`,
//! `trace_id` and `span_id`, and both formats print span fields on every line, so one grep
//! follows a request through all services. With an OTLP endpoint, spans are also exported
//! as OpenTelemetry traces ([`trace`]).

mod json;
pub mod trace;

use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, fmt, fmt::format::JsonFields, layer::SubscriberExt,
    registry::LookupSpan, util::SubscriberInitExt,
};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Text,
    /// One JSON object per line, for log shippers: the event's fields and the fields of every
    /// span it is in, flattened (see [`json`]).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Keeps the trace exporter alive; dropping it sends the spans still queued (within a
/// bound: a collector that is down must not hold a stopping service).
#[must_use = "traces stop being exported when this is dropped"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(2))
        {
            tracing::warn!(error = %e, "spans not exported at shutdown");
        }
    }
}

/// Installs the global subscriber for `service`: logs in `format` on stdout (`RUST_LOG`
/// overrides `default_filter`), and traces exported to `otlp_endpoint` when given. Calling
/// it twice (tests) keeps the first subscriber.
pub fn init_telemetry(
    service: &'static str,
    default_filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let provider = otlp_endpoint.and_then(|endpoint| match trace::provider(service, endpoint) {
        Ok(provider) => Some(provider),
        Err(e) => {
            eprintln!("traces are not exported: {e}");
            None
        }
    });
    let exporting = provider.as_ref().map(trace::layer);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(log_layer(format))
        .with(exporting)
        .try_init();
    if installed.is_ok() && provider.is_some() {
        trace::start_sampling();
    }
    Telemetry { provider }
}

/// Lines in `format`, on stdout.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Text => fmt::layer().with_target(true).boxed(),
        LogFormat::Json => fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(json::FlatJson)
            .boxed(),
    }
}

/// Installs a text subscriber writing to stderr, for operator commands whose results go to
/// stdout.
pub fn init_cli_telemetry(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _already_set = Registry::default()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init();
}
