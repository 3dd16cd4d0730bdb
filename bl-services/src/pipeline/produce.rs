//! The pipeline's side of Kafka: writing the event (settling earlier attempts first), and
//! parking a command whose event Kafka did not take.

use contracts::{CommandAccepted, ErrorCode, EventEnvelope, Problem, timeline::StepKind};
use serde_json::Value;
use time::OffsetDateTime;

use super::{CommandContext, Pipeline, Validated};
use crate::{dlq::ParkedCommand, kafka::ProduceError, ledger::Attempt};

impl Pipeline {
    /// Parks a command whose event Kafka did not take, and says so to the client.
    pub(super) async fn park(
        &self,
        ctx: &CommandContext,
        command: &Validated<'_>,
        attempt: &Attempt,
        failure: &ProduceError,
    ) -> Problem {
        let code = ErrorCode::KafkaUnavailable;
        if !self.stores.ledger.still_ours(attempt).await {
            // A zombie's late failure: the command belongs to the attempt that took over.
            tracing::warn!(error = %failure, "another attempt took this command over; not parking it");
            return ctx.problem(code, format!("{}; another attempt of this command took over. Retry with the same Idempotency-Key", failure.stored()));
        }
        let now = OffsetDateTime::now_utc();
        let spec = &command.entry.spec;
        let parked = ParkedCommand {
            command_type: spec.command.clone(),
            version: spec.version,
            subject: command.subject.to_owned(),
            command_id: ctx.command_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            traceparent: ctx.traceparent.clone(),
            aggregate_id: command.aggregate_id.clone(),
            code,
            reason: failure.to_string(),
            attempts: 1,
            first_parked_at: now,
            last_failed_at: now,
            command: command.body.clone(),
        };
        let stored = failure.stored();
        let detail = match self.stores.dlq.park(attempt.key(), parked).await {
            Ok(()) => {
                let unresolved = failure.unresolved().cloned();
                self.stores.ledger.park(attempt, code, unresolved).await;
                let notifier = &self.stores.notifier;
                notifier
                    .parked(ctx, &spec.command, &command.aggregate_id, code, now)
                    .await;
                ctx.trail.step(StepKind::DeadLettered { code });
                tracing::warn!(error = %failure, "command parked in the dead-letter queue");
                format!(
                    "{stored}; the command is parked for re-drive. Retry with the same Idempotency-Key: it converges to exactly one event"
                )
            }
            Err(e) => {
                tracing::error!(error = %failure, dlq_error = %e, "command not accepted and not parked");
                format!(
                    "{stored}; the command could not be parked either. Retry with the same Idempotency-Key"
                )
            }
        };
        ctx.problem(code, detail)
    }

    pub(super) async fn unpark(&self, key: &str) {
        match self.stores.dlq.remove(key).await {
            Ok(()) => tracing::info!("command left the dead-letter queue"),
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the command from the dead-letter queue; a re-drive will replay its answer")
            }
        }
    }

    /// Settles earlier attempts whose outcome is unknown, then writes the event unless one
    /// of them stored it already. A failure names what is left to settle, if anything.
    pub(super) async fn write_event(
        &self,
        ctx: &CommandContext,
        topic: &str,
        event: &EventEnvelope<&Value>,
        attempt: &Attempt,
    ) -> Result<CommandAccepted, ProduceError> {
        let producer = &self.stores.producer;
        if let Some(earlier) = &attempt.earlier {
            let event_id = event.event_id.to_string();
            match producer.settle(topic, earlier, &event_id).await {
                Ok(Some(position)) => {
                    tracing::warn!(
                        partition = position.partition,
                        offset = position.offset,
                        "an earlier attempt stored the event; accepting it"
                    );
                    return Ok(CommandAccepted::of(event, position));
                }
                Ok(None) => tracing::info!("earlier attempts settled: none stored the event"),
                Err(e) => {
                    return Err(ProduceError::Unresolved {
                        unresolved: earlier.clone(),
                        reason: format!("earlier attempts cannot be settled yet: {e}"),
                    });
                }
            }
        }
        let position = producer
            .produce_event_under(topic, event, ctx.traceparent.as_deref(), attempt.writer())
            .await?;
        tracing::info!(
            partition = position.partition,
            offset = position.offset,
            "event acknowledged"
        );
        Ok(CommandAccepted::of(event, position))
    }
}
