//! `RegisterOfficer`: schema, then the badge-uniqueness rule, then the event in Kafka.
//! Every step that refuses the command does so before anything is written.

use contracts::{
    CommandAccepted, ErrorCode, EventEnvelope, Problem, ids,
    officer::{
        REGISTER_OFFICER, REGISTER_OFFICER_REQUESTED, REGISTER_OFFICER_VERSION, RegisterOfficer,
    },
    reply::AcceptedStatus,
    schema::{self, SchemaValidator},
};
use time::OffsetDateTime;

use crate::{
    kafka::{EventProducer, RecordIds},
    registry::{BadgeRegistry, Claim},
};

/// Who sent a command: the ids the edge put in the NATS headers.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// Tracing key.
    pub correlation_id: String,
    /// Idempotency key.
    pub command_id: String,
    /// W3C trace context, if any.
    pub traceparent: Option<String>,
}

impl CommandContext {
    fn problem(&self, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem::new(code, detail, &self.correlation_id).with_command_id(&self.command_id)
    }
}

/// An accepted registration: the reply, and what the status read model needs to know.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The reply to send.
    pub reply: CommandAccepted,
    /// The badge number.
    pub aggregate_id: String,
    /// When it was accepted.
    pub accepted_at: OffsetDateTime,
}

/// The officer command handler, shared by all concurrent requests of one instance.
pub struct OfficerCommands {
    validator: SchemaValidator,
    registry: BadgeRegistry,
    producer: EventProducer,
}

impl OfficerCommands {
    /// Compiles the command schema once and wires the registry and producer.
    pub fn new(registry: BadgeRegistry, producer: EventProducer) -> crate::Result<Self> {
        let validator = SchemaValidator::compile(schema::REGISTER_OFFICER_V1)?;
        Ok(Self {
            validator,
            registry,
            producer,
        })
    }

    /// Validates, applies the business rules and writes the event. `Ok` only after Kafka
    /// acknowledged the event.
    pub async fn register(&self, ctx: &CommandContext, body: &[u8]) -> Result<Accepted, Problem> {
        let command = self.validate(ctx, body)?;
        let revision = self.claim_badge(ctx, &command.badge_number).await?;
        let accepted_at = OffsetDateTime::now_utc();
        match self.write_event(ctx, &command, accepted_at).await {
            Ok(reply) => Ok(Accepted {
                reply,
                aggregate_id: command.badge_number,
                accepted_at,
            }),
            Err(problem) => {
                self.release_badge(&command.badge_number, revision).await;
                Err(problem)
            }
        }
    }

    fn validate(&self, ctx: &CommandContext, body: &[u8]) -> Result<RegisterOfficer, Problem> {
        let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ctx.problem(
                ErrorCode::MalformedJson,
                format!("body is not valid JSON: {e}"),
            )
        })?;
        let violations = self.validator.violations(&json);
        if !violations.is_empty() {
            let detail = format!(
                "{} schema violation(s) in RegisterOfficer v1",
                violations.len()
            );
            return Err(ctx
                .problem(ErrorCode::SchemaViolation, detail)
                .with_violations(violations));
        }
        serde_json::from_value(json).map_err(|e| {
            tracing::error!(error = %e, "schema-valid command does not deserialize");
            ctx.problem(ErrorCode::Internal, "the command could not be read")
        })
    }

    /// Returns the revision to release on failure, or `None` for a retry that already held it.
    async fn claim_badge(&self, ctx: &CommandContext, badge: &str) -> Result<Option<u64>, Problem> {
        let claim = self
            .registry
            .claim(badge, &ctx.command_id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "badge registry unavailable");
                ctx.problem(
                    ErrorCode::RegistryUnavailable,
                    "the badge registry is unavailable; retry later",
                )
            })?;
        match claim {
            Claim::Won { revision } => Ok(Some(revision)),
            Claim::AlreadyOurs => Ok(None),
            Claim::Taken { by } => {
                tracing::info!(badge, held_by = %by, "badge already registered");
                Err(ctx.problem(
                    ErrorCode::BadgeAlreadyRegistered,
                    format!("badge number {badge} is already registered to another officer"),
                ))
            }
        }
    }

    async fn write_event(
        &self,
        ctx: &CommandContext,
        command: &RegisterOfficer,
        occurred_at: OffsetDateTime,
    ) -> Result<CommandAccepted, Problem> {
        let event_id = ids::event_id(REGISTER_OFFICER, &ctx.command_id);
        let value = serde_json::to_vec(&EventEnvelope {
            event_id,
            event_type: REGISTER_OFFICER_REQUESTED.to_owned(),
            schema_version: REGISTER_OFFICER_VERSION,
            correlation_id: ctx.correlation_id.clone(),
            command_id: ctx.command_id.clone(),
            aggregate_id: command.badge_number.clone(),
            occurred_at,
            payload: command,
        })
        .map_err(|e| {
            ctx.problem(
                ErrorCode::Internal,
                format!("event does not serialize: {e}"),
            )
        })?;
        let event_id = event_id.to_string();
        let ids = RecordIds {
            event_id: &event_id,
            event_type: REGISTER_OFFICER_REQUESTED,
            schema_version: REGISTER_OFFICER_VERSION,
            correlation_id: &ctx.correlation_id,
            command_id: &ctx.command_id,
            traceparent: ctx.traceparent.as_deref(),
        };
        let event = self.producer.produce(&command.badge_number, &value, ids).await.map_err(|e| {
            tracing::warn!(error = %e, "event not acknowledged; command not accepted");
            ctx.problem(ErrorCode::KafkaUnavailable, "the event store did not acknowledge the command; nothing was accepted, retry later")
        })?;
        tracing::info!(
            partition = event.partition,
            offset = event.offset,
            "event acknowledged"
        );
        Ok(CommandAccepted {
            correlation_id: ctx.correlation_id.clone(),
            command_id: ctx.command_id.clone(),
            status: AcceptedStatus::Accepted,
            event,
        })
    }

    async fn release_badge(&self, badge: &str, revision: Option<u64>) {
        let Some(revision) = revision else { return };
        if let Err(e) = self.registry.release(badge, revision).await {
            tracing::error!(badge, error = %e, "could not release badge claim; a retry with the same Idempotency-Key still succeeds");
        }
    }
}
