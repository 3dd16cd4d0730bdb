//! OpenTelemetry traces: one trace per command, joined hop by hop through the W3C
//! `traceparent` the services already carry (HTTP, NATS headers, Kafka record headers).
//!
//! Exported by OTLP over HTTP/protobuf only when an endpoint is configured. Spans go through
//! a batch processor with a bounded queue on its own thread: a slow or dead collector makes
//! it drop spans, never wait, so the accept path does not feel it. Without an exporter the
//! same spans still carry `trace_id` and `span_id` for the logs, taken from the request's
//! `traceparent`, and the `traceparent` passed downstream is a child of the one received.
//!
//! Traces are sampled at the head, once, when a request arrives ([`sampled`]): a request's
//! `traceparent` decides for its whole trace (parent-based), and a new trace is kept with
//! probability [`DEFAULT_RATIO`] unless the standard `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` say otherwise. Only a sampled request's spans reach the
//! OpenTelemetry layer (they have the target [`TRACED`]): an unsampled one is an ordinary
//! log span and costs what it costs with export off. Exporting every command's spans cost
//! Option B a fifth of its maximum (BENCHMARKS.md); the timeline, not the trace backend, is
//! the record of every command.

use std::{sync::OnceLock, time::Duration};

use contracts::ids::TraceParent;
pub use opentelemetry::KeyValue;

use opentelemetry::{
    Context,
    trace::{
        SamplingDecision, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId,
        TraceState, TracerProvider,
    },
};
use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, Config, IdGenerator, RandomIdGenerator, Sampler,
        SdkTracerProvider, ShouldSample,
    },
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The sampler deciding which requests are traced, once spans are exported.
static SAMPLER: OnceLock<Box<dyn ShouldSample>> = OnceLock::new();

/// The `tracing` target of the spans of sampled requests: the only spans the OpenTelemetry
/// layer sees.
pub const TRACED: &str = "ackgate::traced";

/// Spans queued for export at most; past it new spans are dropped.
const QUEUE: usize = 4096;

/// Share of new traces (a request without a `traceparent`) exported when
/// `OTEL_TRACES_SAMPLER` is not set.
pub const DEFAULT_RATIO: f64 = 0.1;

/// The standard variable naming the OTLP collector; without it nothing is exported.
pub const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The standard variable naming the sampler (with `OTEL_TRACES_SAMPLER_ARG`, its argument).
pub const SAMPLER_VARIABLE: &str = "OTEL_TRACES_SAMPLER";

/// A span for one hop of a request, [`TRACED`] when `$traced` (see [`sampled`]): its log
/// fields plus the `trace_id` and `span_id` that [`join_trace`] records, and for a traced
/// one the `otel.*` fields [`messaging`] sets.
#[macro_export]
macro_rules! request_span {
    (traced: $traced:expr, $name:expr, $($fields:tt)*) => {
        if $traced {
            tracing::info_span!(
                target: $crate::telemetry::trace::TRACED,
                $name,
                otel.name = tracing::field::Empty,
                otel.kind = tracing::field::Empty,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                $($fields)*
            )
        } else {
            tracing::info_span!(
                $name,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                $($fields)*
            )
        }
    };
}

/// The tracer provider exporting to `endpoint` (`http://host:4318`), as `service`; from
/// now on [`sampled`] decides with the configured sampler.
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
    // The decision is made once, by `sampled`, before a span exists: every span that
    // reaches the SDK is one to export.
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// The sampler the standard variables name (the SDK reads them), else the caller's decision
/// when it sent a `traceparent` and [`DEFAULT_RATIO`] of new traces.
fn configured_sampler() -> Box<dyn ShouldSample> {
    if std::env::var_os(SAMPLER_VARIABLE).is_some() {
        return Config::default().sampler;
    }
    Box::new(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        DEFAULT_RATIO,
    ))))
}

/// The layer turning `tracing` spans into OpenTelemetry spans: those of sampled requests
/// ([`TRACED`]) and, in them, log lines from `WARN` up (every `info` line of a request as an
/// event tripled the size of a command's spans (BENCHMARKS.md), and the logs carry the trace
/// id anyway).
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    let tracer = provider.tracer("ackgate");
    let traced_spans_and_warnings =
        tracing_subscriber::filter::filter_fn(|metadata| match metadata.is_span() {
            true => metadata.target() == TRACED,
            false => *metadata.level() <= tracing::Level::WARN,
        });
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(traced_spans_and_warnings)
}

/// Turns sampling on: called once the layer is installed.
pub(super) fn start_sampling() {
    let _first_wins = SAMPLER.set(configured_sampler());
}

/// Whether spans are exported at all (an OTLP endpoint is configured and the layer
/// installed).
pub fn exporting() -> bool {
    SAMPLER.get().is_some()
}

/// Whether a request whose caller sent `parent` (or none) is traced: decided here, once,
/// before its span is made, so that [`request_span!`] makes it [`TRACED`] or not.
pub fn sampled(parent: Option<&TraceParent>) -> bool {
    SAMPLER
        .get()
        .is_some_and(|sampler| decide(sampler.as_ref(), parent))
}

/// What `sampler` decides for a request whose caller sent `parent` (a new trace when none).
fn decide(sampler: &dyn ShouldSample, parent: Option<&TraceParent>) -> bool {
    let remote = parent.and_then(remote_context);
    let trace_id = remote.as_ref().map_or_else(
        || RandomIdGenerator::default().new_trace_id(),
        |cx| cx.span().span_context().trace_id(),
    );
    let result = sampler.should_sample(remote.as_ref(), trace_id, "", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// Whether `span` belongs to a sampled trace (it was made [`TRACED`]): only then does it
/// carry OpenTelemetry attributes, and only then are the spans that only a trace needs made.
pub fn is_traced(span: &Span) -> bool {
    span.metadata().is_some_and(|m| m.target() == TRACED)
}

/// Makes `span` (made by [`request_span!`], named and attributed already: its OpenTelemetry
/// span starts here) a child of `parent`, the caller's trace context, records its
/// `trace_id` and `span_id`, and returns the `traceparent` to pass downstream: the span's
/// own when it is traced, else a child of `parent` (or a new unsampled trace).
pub fn join_trace(span: &Span, parent: Option<&TraceParent>) -> TraceParent {
    let traced = is_traced(span);
    let own = traced
        .then(|| {
            if let Some(remote) = parent.and_then(remote_context) {
                let _ = span.set_parent(remote);
            }
            traceparent_of(span)
        })
        .flatten()
        .unwrap_or_else(|| {
            parent.map_or_else(|| TraceParent::new_root(traced), TraceParent::child)
        });
    span.record("trace_id", own.trace_id());
    span.record("span_id", own.span_id());
    own
}

/// The `traceparent` naming `span`, when it is traced; `None` otherwise.
pub fn traceparent_of(span: &Span) -> Option<TraceParent> {
    if !is_traced(span) {
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
/// attributes, when it is traced (these are trace content, not log content).
pub fn messaging(span: &Span, about: Messaging<'_>) {
    if !is_traced(span) {
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

/// A `send <destination>` producer span when the current request is traced, else none: it
/// only matters to a trace, and its context is what the message carries (without it, the
/// caller passes its own `traceparent` on, unsampled flag and all).
pub fn publish_span(system: &'static str, destination: &str, key: Option<&str>) -> Span {
    if !is_traced(&Span::current()) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TRACED,
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

/// Records where Kafka stored (or a consumer read) the record of `span`.
pub fn at_position(span: &Span, partition: i32, offset: i64) {
    if is_traced(span) {
        span.set_attribute("messaging.destination.partition.id", partition.to_string());
        span.set_attribute("messaging.kafka.offset", offset);
    }
}

/// Marks `span` failed, with why.
pub fn failed(span: &Span, error: &dyn std::fmt::Display) {
    if is_traced(span) {
        span.set_status(opentelemetry::trace::Status::error(error.to_string()));
    }
}

/// Sets attributes of `span`, when it is traced.
pub fn attributes(span: &Span, attributes: impl IntoIterator<Item = KeyValue>) {
    if is_traced(span) {
        for attribute in attributes {
            span.set_attribute(attribute.key, attribute.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(sampled: bool) -> TraceParent {
        TraceParent::new_root(sampled).child()
    }

    #[test]
    fn by_default_the_callers_decision_holds_and_a_tenth_of_new_traces_are_kept() {
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(DEFAULT_RATIO)));
        assert!(decide(&sampler, Some(&parent(true))));
        assert!(!decide(&sampler, Some(&parent(false))));
        let kept = (0..10_000).filter(|_| decide(&sampler, None)).count();
        // A tenth is 1,000; 800 and 1,200 lie more than six standard deviations away.
        assert!((800..=1_200).contains(&kept), "{kept} of 10,000 kept");
    }

    #[test]
    fn a_sampler_that_ignores_parents_overrides_the_caller() {
        assert!(decide(&Sampler::AlwaysOn, Some(&parent(false))));
        assert!(!decide(&Sampler::AlwaysOff, Some(&parent(true))));
    }

    #[test]
    fn without_an_exporter_nothing_is_traced() {
        assert!(!sampled(Some(&parent(true))));
        let span = crate::request_span!(traced: sampled(None), "request",);
        assert!(!is_traced(&span));
        assert!(!join_trace(&span, None).is_sampled());
    }
}
