//! What the business-logic service tells operators: each command's `process <subject>` span
//! (joined to the edge's trace), the time of each pipeline stage, and the depth of the
//! command dead-letter queue.

use std::{future::Future, time::Duration, time::Instant};

use contracts::ids::TraceParent;
use runtime::{
    metrics::{self, Stage},
    telemetry::trace,
};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::{dlq::CommandDlq, pipeline::Served};

/// How often the dead-letter queue is counted.
const DEAD_LETTER_COUNT_EVERY: Duration = Duration::from_secs(15);

/// Joins `span` (the command's) to the caller's trace as the `process <subject>` span, and
/// returns the `traceparent` the command's event carries on.
pub fn process_span(span: &Span, served: &Served, parent: Option<&TraceParent>) -> String {
    let about = trace::Messaging {
        system: "nats",
        operation: "process",
        destination: &served.subject,
        key: None,
        position: None,
    };
    trace::messaging(span, about);
    trace::join_trace(span, parent).to_string()
}

/// Times a synchronous stage of `command`.
pub fn timed<T>(command: &str, stage: Stage, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let done = work();
    metrics::command().stage(command, stage, started.elapsed());
    done
}

/// Times an asynchronous stage of `command`.
pub async fn stage<T>(command: &str, stage: Stage, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let done = work.await;
    metrics::command().stage(command, stage, started.elapsed());
    done
}

/// Counts the parked commands every few seconds until `shutdown`, for
/// `ackgate_command_dead_letters`.
pub async fn count_dead_letters(dlq: CommandDlq, shutdown: CancellationToken) {
    if !metrics::enabled() {
        return;
    }
    loop {
        match dlq.depth().await {
            Ok(depth) => metrics::command().dead_letters(i64::try_from(depth).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error = %e, "dead-letter queue not counted"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(DEAD_LETTER_COUNT_EVERY) => {}
        }
    }
}
