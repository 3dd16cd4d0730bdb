//! OpenTelemetry traces: one trace per command, joined hop by hop through the W3C
//! `traceparent` the services already carry (HTTP, NATS headers, Kafka record headers).
//!
//! Exported by OTLP over HTTP/protobuf only when an endpoint is configured. Spans go through
//! a batch processor with a bounded queue on its own thread: a slow or dead collector makes
//! it drop spans, never wait, so the accept path does not feel it. Without an exporter the
//! same spans still carry `trace_id` and `span_id` for the logs, taken from the request's
//! `traceparent`, and the `traceparent` passed downstream is a child of the one received.
//!
//! Traces are sampled at the head: a request's `traceparent` decides for its whole trace
//! (parent-based), and a new trace is kept with probability [`DEFAULT_RATIO`] unless the
//! standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` say otherwise. Exporting
//! every command's spans cost Option B a fifth of its maximum (BENCHMARKS.md); the timeline,
//! not the trace backend, is the record of every command.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use contracts::ids::TraceParent;
pub use opentelemetry::KeyValue;

use opentelemetry::{
    Context,
    trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
    },
};
use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether spans are exported (an OTLP endpoint is configured and the layer installed).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Spans queued for export at most; past it new spans are dropped.
const QUEUE: usize = 4096;

/// Share of new traces (a request without a `traceparent`) exported when
/// `OTEL_TRACES_SAMPLER` is not set.
pub const DEFAULT_RATIO: f64 = 0.1;

/// The standard variable naming the sampler; the SDK reads it (and its argument) itself.
const SAMPLER_VARIABLE: &str = "OTEL_TRACES_SAMPLER";

/// A span for one hop of a request: its log fields plus the `trace_id` and `span_id` that
/// [`join_trace`] records and the `otel.*` fields [`messaging`] sets when exporting.
#[macro_export]
macro_rules! request_span {
    ($name:expr, $($fields:tt)*) => {
        tracing::info_span!(
            $name,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            $($fields)*
        )
    };
}

/// The tracer provider exporting to `endpoint` (`http://host:4318`), as `service`.
pub(super) fn provider(
    service: &'static str,
    endpoint: &str,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces)
        .with_timeout(Duration::from_secs(5))
        .build()?;
    let batches = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .with_scheduled_delay(Duration::from_millis(500))
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batches)
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name(service).build());
    if std::env::var_os(SAMPLER_VARIABLE).is_none() {
        builder = builder.with_sampler(default_sampler());
    }
    Ok(builder.build())
}

/// The caller's decision when it sent a `traceparent`, else [`DEFAULT_RATIO`] of new traces.
fn default_sampler() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(DEFAULT_RATIO)))
}

/// The layer turning `tracing` spans into OpenTelemetry spans. Log lines become span events
/// only from `WARN` up: every `info` line of a request as an event tripled the size of a
/// command's spans (BENCHMARKS.md), and the logs carry the trace id anyway.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    let tracer = provider.tracer("ackgate");
    let spans_and_warnings = tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_span() || *metadata.level() <= tracing::Level::WARN
    });
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(spans_and_warnings)
}

pub(super) fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Whether spans are exported: spans that only matter to a trace are created only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Makes `span` (made by [`request_span!`], named and attributed already: its OpenTelemetry
/// span starts here) a child of `parent`, the caller's trace
/// context, records its `trace_id` and `span_id`, and returns the `traceparent` to pass
/// downstream: the span's own when exporting, else a child of `parent` (or a new trace).
pub fn join_trace(span: &Span, parent: Option<&TraceParent>) -> TraceParent {
    let own = exporting()
        .then(|| {
            if let Some(remote) = parent.and_then(remote_context) {
                let _ = span.set_parent(remote);
            }
            traceparent_of(span)
        })
        .flatten()
        .unwrap_or_else(|| parent.map_or_else(TraceParent::new_root, TraceParent::child));
    span.record("trace_id", own.trace_id());
    span.record("span_id", own.span_id());
    own
}

/// The `traceparent` naming `span`, when it is exported; `None` otherwise.
pub fn traceparent_of(span: &Span) -> Option<TraceParent> {
    if !exporting() {
        return None;
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if !own.is_valid() {
        return None;
    }
    let (trace_id, span_id) = (own.trace_id().to_string(), own.span_id().to_string());
    TraceParent::from_parts(&trace_id, &span_id, own.is_sampled())
}

fn remote_context(parent: &TraceParent) -> Option<Context> {
    let trace_id = TraceId::from_hex(parent.trace_id()).ok()?;
    let span_id = SpanId::from_hex(parent.span_id()).ok()?;
    let flags = if parent.is_sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    Some(Context::new().with_remote_span_context(remote))
}

/// What a messaging span is about (OpenTelemetry messaging semantic conventions).
#[derive(Debug, Clone, Copy)]
pub struct Messaging<'a> {
    /// `nats` or `kafka`.
    pub system: &'static str,
    /// `send` (a producer) or `process` (a consumer).
    pub operation: &'static str,
    /// The subject or topic.
    pub destination: &'a str,
    /// The Kafka record key, if any.
    pub key: Option<&'a str>,
    /// The Kafka partition and offset, once known.
    pub position: Option<(i32, i64)>,
}

/// Names `span` `<operation> <destination>` and gives it its kind and messaging
/// attributes, when exporting (these are trace content, not log content).
pub fn messaging(span: &Span, about: Messaging<'_>) {
    if !exporting() || span.is_none() {
        return;
    }
    let kind = if about.operation == "send" {
        "producer"
    } else {
        "consumer"
    };
    span.record(
        "otel.name",
        format!("{} {}", about.operation, about.destination),
    );
    span.record("otel.kind", kind);
    span.set_attribute("messaging.system", about.system);
    span.set_attribute("messaging.operation.type", about.operation);
    span.set_attribute("messaging.operation.name", about.operation);
    span.set_attribute("messaging.destination.name", about.destination.to_owned());
    if let Some(key) = about.key {
        span.set_attribute("messaging.kafka.message.key", key.to_owned());
    }
    if let Some((partition, offset)) = about.position {
        at_position(span, partition, offset);
    }
}

/// A `send <destination>` producer span when the current request's trace is exported, else
/// none: it only matters to a trace, and its context is what the message carries (without
/// it, the caller passes its own `traceparent` on, unsampled flag and all).
pub fn publish_span(system: &'static str, destination: &str, key: Option<&str>) -> Span {
    if !exporting() || !current_is_sampled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "send",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty
    );
    let about = Messaging {
        system,
        operation: "send",
        destination,
        key,
        position: None,
    };
    messaging(&span, about);
    span
}

/// Whether the span the caller is in belongs to a sampled trace: spans that only a trace
/// needs are made for those alone, so an unsampled request costs about what it costs with
/// export off (BENCHMARKS.md).
fn current_is_sampled() -> bool {
    Span::current().context().span().span_context().is_sampled()
}

/// Records where Kafka stored (or a consumer read) the record of `span`.
pub fn at_position(span: &Span, partition: i32, offset: i64) {
    if exporting() {
        span.set_attribute("messaging.destination.partition.id", partition.to_string());
        span.set_attribute("messaging.kafka.offset", offset);
    }
}

/// Marks `span` failed, with why.
pub fn failed(span: &Span, error: &dyn std::fmt::Display) {
    if exporting() {
        span.set_status(opentelemetry::trace::Status::error(error.to_string()));
    }
}

/// Sets attributes of `span`, when exporting.
pub fn attributes(span: &Span, attributes: impl IntoIterator<Item = KeyValue>) {
    if exporting() {
        for attribute in attributes {
            span.set_attribute(attribute.key, attribute.value);
        }
    }
}
