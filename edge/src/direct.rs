//! Option A, "event then poll": commands the edge accepts itself. The body is checked against
//! the command's schema and its event produced straight to Kafka; the 202 follows Kafka's
//! acknowledgement, as on the BL path, and has the same shape.
//!
//! What the BL hop adds is not done here, by design: business rules (a second registration
//! of a badge is accepted, and the projections mark it `superseded`) and the idempotency
//! ledger (a retry writes the event again under the same eventId, which the projections apply
//! once, and its 202 names the new record). Operators choose it per command type, for flows
//! where that is fine; it is also the baseline that prices the NATS hop.

use contracts::{
    CommandAccepted, ErrorCode, Problem,
    officer::{REGISTER_OFFICER, RegisterOfficer},
    schema::{self, SchemaValidator},
};
use runtime::{KafkaArgs, ProduceArgs, producer::EventProducer};
use time::OffsetDateTime;

use crate::{Error, Result, context::RequestContext};

/// The commands this edge accepts directly, with their compiled schemas and the producer.
pub struct DirectCommands {
    register_officer: Option<SchemaValidator>,
    producer: EventProducer,
}

impl DirectCommands {
    /// `None` when no command is accepted directly (the default): the edge then has no
    /// Kafka client at all. Events go to `topic` (the officer events topic of the namespace).
    pub fn from_settings(
        commands: &[String],
        topic: &str,
        kafka: &KafkaArgs,
        produce: &ProduceArgs,
    ) -> Result<Option<Self>> {
        if commands.is_empty() {
            return Ok(None);
        }
        let mut register_officer = None;
        for name in commands {
            match name.trim() {
                REGISTER_OFFICER => {
                    let validator = SchemaValidator::compile(schema::REGISTER_OFFICER_V1)
                        .map_err(|e| Error::DirectCommands(e.to_string()))?;
                    register_officer = Some(validator);
                }
                other => {
                    let known = REGISTER_OFFICER;
                    let detail = format!("unknown command {other:?}; known: {known}");
                    return Err(Error::DirectCommands(detail));
                }
            }
        }
        let producer = EventProducer::new(
            "ackgate-edge",
            &kafka.kafka_bootstrap,
            topic,
            produce.produce_timeout,
            produce.linger_ms,
        )?;
        Ok(Some(Self {
            register_officer,
            producer,
        }))
    }

    /// Whether `RegisterOfficer` is accepted here rather than by the officer service.
    pub fn takes_register_officer(&self) -> bool {
        self.register_officer.is_some()
    }

    /// Validates a `RegisterOfficer` body and produces its event. `Ok` once Kafka
    /// acknowledged it.
    pub async fn register_officer(
        &self,
        ctx: &RequestContext,
        command_id: &str,
        body: &[u8],
    ) -> Result<CommandAccepted, Problem> {
        let refuse = |problem: Problem| problem.with_command_id(command_id);
        let validator = self.register_officer.as_ref().ok_or_else(|| {
            refuse(ctx.problem(
                ErrorCode::Internal,
                "RegisterOfficer is not a direct command",
            ))
        })?;
        let command: RegisterOfficer = validator
            .read(body)
            .map_err(|r| refuse(r.into_problem(validator.name(), &ctx.correlation_id)))?;
        let event =
            command.requested_event(command_id, &ctx.correlation_id, OffsetDateTime::now_utc());
        let traceparent = ctx.traceparent.to_string();
        let position = self
            .producer
            .produce_event(&event, Some(&traceparent))
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
