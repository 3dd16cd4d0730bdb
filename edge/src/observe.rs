//! What the edge tells operators about each HTTP request: its server span (named
//! `<method> <route template>` per the OpenTelemetry HTTP conventions, the correlationId
//! on it) and its latency in `ackgate_http_request_duration_seconds`.

use std::time::Duration;

use axum::{extract::MatchedPath, extract::Request};
use contracts::ids::TraceParent;
use runtime::{
    metrics,
    telemetry::trace::{self, KeyValue},
};
use tracing::Span;

/// The route label of a request no route matched: keeps the label set bounded.
const UNMATCHED: &str = "unmatched";

/// The request's span, joined to the caller's trace, and the trace context to pass on.
pub fn server_span(
    request: &Request,
    correlation_id: &str,
    incoming: Option<&TraceParent>,
) -> (Span, TraceParent) {
    let span = runtime::request_span!(
        traced: trace::sampled(incoming),
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %correlation_id,
        command_id = tracing::field::Empty,
    );
    // Named and attributed before it joins the trace: its OpenTelemetry span starts then.
    if trace::is_traced(&span) {
        let route = route(request);
        span.record("otel.name", format!("{} {route}", request.method()));
        span.record("otel.kind", "server");
        trace::attributes(
            &span,
            [
                KeyValue::new("http.request.method", request.method().to_string()),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("url.path", request.uri().path().to_owned()),
            ],
        );
    }
    let traceparent = trace::join_trace(&span, incoming);
    (span, traceparent)
}

/// The route template a request matched (`/v1/officers/{badge_number}`).
pub fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

/// Records the answer: its status on the span, its latency in the metrics.
pub fn served(span: &Span, method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::http().observe(method, route, status, elapsed);
    trace::attributes(
        span,
        [KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        )],
    );
    if status >= 500 {
        trace::failed(span, &status);
    }
}

/// The span of a NATS request to `subject` when traces are exported (its context is what
/// the request carries), else none.
pub fn request_span(subject: &str) -> Span {
    trace::publish_span("nats", subject, None)
}
