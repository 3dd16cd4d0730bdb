//! Option A, "event then poll": commands the catalog routes to the edge itself. The body is
//! checked against the command's schema and its event produced straight to Kafka; the 202
//! follows Kafka's acknowledgement, as on the business-logic path, and has the same shape.
//!
//! What the business-logic hop adds is not done here, by design: business rules, aggregate
//! versions (`If-Match` cannot be judged) and the idempotency ledger (a retry writes the
//! event again under the same eventId, which the projections apply once, and its 202 names
//! the new record). The catalog chooses it per command, for high-volume flows where that is
//! fine; it is also the baseline that prices the NATS hop.

use contracts::{
    CatalogEntry, CommandAccepted, ErrorCode, Problem,
    envelope::{CommandOrigin, EventEnvelope},
};
use runtime::{KafkaArgs, ProduceArgs, producer::EventProducer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Result, context::RequestContext};

/// The producer of directly accepted commands.
pub struct DirectPath {
    producer: EventProducer,
}

impl DirectPath {
    /// An idempotent producer with the settings' bound and batching.
    pub fn new(kafka: &KafkaArgs, produce: &ProduceArgs) -> Result<Self> {
        let producer = EventProducer::new(
            "ackgate-edge",
            &kafka.kafka_bootstrap,
            produce.produce_timeout,
            produce.linger_ms,
        )?;
        Ok(Self { producer })
    }

    /// Validates a body of `entry` and produces its event to `topic` (in the namespace).
    /// `Ok` once Kafka acknowledged it.
    pub async fn accept(
        &self,
        ctx: &RequestContext,
        command_id: &str,
        entry: &CatalogEntry,
        topic: &str,
        body: &[u8],
    ) -> Result<CommandAccepted, Problem> {
        let refuse = |problem: Problem| problem.with_command_id(command_id);
        let validator = &entry.validator;
        let command: Value = validator
            .read(body)
            .map_err(|r| refuse(r.into_problem(validator.name(), &ctx.correlation_id)))?;
        let aggregate_id = entry.spec.aggregate_id(&command).ok_or_else(|| {
            let detail = "the schema let through a body without an aggregate id";
            refuse(ctx.problem(ErrorCode::Internal, detail))
        })?;
        let origin = CommandOrigin {
            command_id,
            correlation_id: &ctx.correlation_id,
            occurred_at: OffsetDateTime::now_utc(),
        };
        let event = EventEnvelope::of_command(&entry.spec, origin, aggregate_id, None, &command);
        let traceparent = ctx.traceparent.to_string();
        let position = self
            .producer
            .produce_event(topic, &event, Some(&traceparent))
            .await
            .map_err(|failure| {
                tracing::warn!(error = %failure, "direct command not accepted");
                let stored = failure.stored();
                let detail = format!(
                    "{stored}; retry with the same Idempotency-Key: the event keeps its id, so it is applied once"
                );
                refuse(ctx.problem(ErrorCode::KafkaUnavailable, detail))
            })?;
        tracing::info!(
            partition = position.partition,
            offset = position.offset,
            "event acknowledged (direct)"
        );
        Ok(CommandAccepted::of(&event, position))
    }
}
