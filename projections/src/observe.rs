//! What the projections tell operators: consumer lag per partition (from librdkafka's
//! statistics), records handled by outcome, a `process <topic>` span per applied record in
//! the trace of the command that produced it, and a `process <subject>` span per query in
//! the trace of the request that asked.

use contracts::{EventPosition, headers::message, ids::TraceParent};
use rdkafka::Statistics;
use runtime::{metrics, telemetry::trace};
use tracing::Span;

use crate::{event::SourceRecord, store::Outcome};

/// How often librdkafka reports statistics (lag) while metrics are on.
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// Records the lag of every partition in `statistics`.
pub fn record_lag(statistics: &Statistics) {
    for (name, topic) in &statistics.topics {
        // Partition -1 is librdkafka's internal "unassigned" one.
        for partition in topic.partitions.values().filter(|p| p.partition >= 0) {
            let lag = match partition.consumer_lag_stored {
                stored if stored >= 0 => stored,
                _ => partition.consumer_lag,
            };
            if lag >= 0 {
                metrics::consumer().lag(name, partition.partition, lag);
            }
        }
    }
}

/// A span per record of `batch`, each a child of the span that produced it, for the records
/// whose trace is sampled when traces are exported; none otherwise (a batch may hold
/// thousands of records, and nine in ten are not sampled by default).
pub fn process_spans(batch: &[SourceRecord]) -> Vec<Span> {
    if !trace::exporting() {
        return Vec::new();
    }
    batch.iter().map(process_span).collect()
}

fn process_span(record: &SourceRecord) -> Span {
    let header = |name: &str| {
        let found = record.headers.iter().find(|(key, _)| key == name);
        found.map_or("", |(_, value)| value.as_str())
    };
    let parent = TraceParent::parse(header(message::TRACEPARENT));
    let Some(parent) = parent.filter(|parent| trace::sampled(Some(parent))) else {
        return Span::none();
    };
    let span = runtime::request_span!(
        traced: true,
        "apply",
        correlation_id = header(message::CORRELATION_ID),
        command_id = header(message::COMMAND_ID),
    );
    let EventPosition {
        topic,
        partition,
        offset,
    } = &record.position;
    let about = trace::Messaging {
        system: "kafka",
        operation: "process",
        destination: topic,
        key: Some(&record.key),
        position: Some((*partition, *offset)),
    };
    trace::messaging(&span, about);
    trace::join_trace(&span, Some(&parent));
    span
}

/// Counts what happened to each record of `batch`, and notes it on its span.
pub fn applied(batch: &[SourceRecord], outcomes: &[Outcome], spans: &[Span]) {
    for (index, (record, outcome)) in batch.iter().zip(outcomes).enumerate() {
        let outcome = outcome_label(*outcome);
        metrics::consumer().applied(&record.position.topic, outcome);
        if let Some(span) = spans.get(index) {
            trace::attributes(span, [trace::KeyValue::new("ackgate.outcome", outcome)]);
        }
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Registered => "registered",
        Outcome::Changed => "changed",
        Outcome::Observed => "observed",
        Outcome::Recorded => "recorded",
        Outcome::Superseded => "superseded",
        Outcome::Duplicate => "duplicate",
        Outcome::AlreadyApplied => "already-applied",
        Outcome::Parked => "parked",
    }
}

/// Joins a query's span to the trace of the request that sent it.
pub fn query_span(span: &Span, subject: &str, parent: Option<&TraceParent>) {
    let about = trace::Messaging {
        system: "nats",
        operation: "process",
        destination: subject,
        key: None,
        position: None,
    };
    trace::messaging(span, about);
    trace::join_trace(span, parent);
}
