//! `RegisterOfficer`: schema, then idempotency, then the badge-uniqueness rule, then the
//! event in Kafka, then the ledger. A refusal (4xx) leaves nothing behind; a Kafka failure
//! parks the command; every 202 for one commandId carries the same bytes.

use std::sync::Arc;

use bytes::Bytes;
use contracts::{
    CommandAccepted, ErrorCode, Names, Problem,
    officer::{REGISTER_OFFICER, RegisterOfficer},
    schema::{self, SchemaValidator},
};
use time::OffsetDateTime;

use crate::{
    dlq::{CommandDlq, ParkedCommand},
    kafka::{EventProducer, ProduceError},
    ledger::{self, Attempt, Begin, CommandIdentity, CommandLedger},
    notices::Notifier,
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
    /// An operator re-drives this command from the dead-letter queue.
    pub redrive: bool,
}

impl CommandContext {
    fn problem(&self, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem::new(code, detail, &self.correlation_id).with_command_id(&self.command_id)
    }

    /// The same request, under the correlationId the command was first sent with.
    fn bound_to(&self, correlation_id: &str) -> Self {
        Self {
            correlation_id: correlation_id.to_owned(),
            ..self.clone()
        }
    }
}

/// The answer to an accepted command.
#[derive(Debug, Clone)]
pub struct AcceptedReply {
    /// The reply body, byte for byte the same for every attempt of the command.
    pub body: Bytes,
    /// The command's correlationId (its first attempt's).
    pub correlation_id: String,
    /// The body is the stored reply of an earlier attempt.
    pub replayed: bool,
}

/// The stores and clients a command handler writes to.
pub struct CommandStores {
    /// Badge uniqueness.
    pub registry: BadgeRegistry,
    /// Idempotency.
    pub ledger: CommandLedger,
    /// Parked commands.
    pub dlq: CommandDlq,
    /// Kafka.
    pub producer: EventProducer,
    /// Accepted and parked notices for the status read model.
    pub notifier: Notifier,
}

/// The officer command handler, shared by all concurrent requests of one instance.
pub struct OfficerCommands {
    validator: SchemaValidator,
    stores: CommandStores,
    names: Arc<Names>,
}

impl OfficerCommands {
    /// Compiles the command schema once and wires the stores. A parked command is
    /// re-driven to its subject in `names`.
    pub fn new(stores: CommandStores, names: Arc<Names>) -> crate::Result<Self> {
        let validator = SchemaValidator::compile(schema::REGISTER_OFFICER_V1)?;
        Ok(Self {
            validator,
            stores,
            names,
        })
    }

    /// Ready while the producer can write events (always, when not transactional).
    pub fn producer_readiness(&self) -> Option<runtime::Readiness> {
        self.stores.producer.readiness()
    }

    /// Validates, applies the idempotency and business rules, and writes the event. `Ok`
    /// only once Kafka acknowledged the event (now, or for an earlier attempt).
    pub async fn register(
        &self,
        ctx: &CommandContext,
        body: &[u8],
    ) -> Result<AcceptedReply, Problem> {
        let command = self.validate(ctx, body)?;
        let identity = identity(ctx, &command)?;
        let writer = self.stores.producer.transactional_id();
        let begun = self.stores.ledger.begin(&identity, writer.as_deref()).await;
        let begun = begun.map_err(|e| {
            tracing::warn!(error = %e, "ledger unavailable; nothing done");
            ctx.problem(
                ErrorCode::LedgerUnavailable,
                "the idempotency ledger is unavailable; nothing was done, retry later",
            )
        })?;
        let (outcome, resolves_parked) = match begun {
            Begin::Started(attempt) => {
                let bound = ctx.bound_to(attempt.correlation_id());
                let outcome = self.attempt(&bound, &command, &attempt).await;
                (outcome, ctx.redrive || attempt.resumes_parked)
            }
            Begin::Replay {
                reply,
                correlation_id,
            } => {
                tracing::info!(original_correlation_id = %correlation_id, "retry of an accepted command; replaying its reply");
                let replay = AcceptedReply {
                    body: reply,
                    correlation_id,
                    replayed: true,
                };
                (Ok(replay), ctx.redrive)
            }
            Begin::KeyReused => (Err(key_reused(ctx)), ctx.redrive),
            Begin::InProgress => return Err(in_progress(ctx)),
        };
        let is_final = outcome.as_ref().map_or_else(|p| p.status < 500, |_| true);
        if resolves_parked && is_final {
            self.unpark(&identity.key()).await;
        }
        outcome
    }

    /// One attempt this instance owns: badge rule, then the event, then the ledger.
    async fn attempt(
        &self,
        ctx: &CommandContext,
        command: &RegisterOfficer,
        attempt: &Attempt,
    ) -> Result<AcceptedReply, Problem> {
        if let Err(problem) = self.claim_badge(ctx, &command.badge_number).await {
            self.stores.ledger.forget(attempt).await;
            return Err(problem);
        }
        let accepted_at = OffsetDateTime::now_utc();
        let reply = match self.write_event(ctx, command, attempt, accepted_at).await {
            Ok(reply) => reply,
            Err(failure) => return Err(self.park(ctx, command, attempt, &failure).await),
        };
        let ours = Bytes::from(serde_json::to_vec(&reply).map_err(|e| {
            ctx.problem(
                ErrorCode::Internal,
                format!("reply does not serialize: {e}"),
            )
        })?);
        let sent = self.stores.ledger.accept(attempt, ours.clone()).await.map_err(|e| {
            tracing::error!(error = %e, "event stored but reply not recorded");
            ctx.problem(
                ErrorCode::LedgerUnavailable,
                "the event is stored but its acceptance could not be recorded; retry with the same Idempotency-Key to get the reply",
            )
        })?;
        let replayed = sent != ours;
        if replayed {
            tracing::info!(
                "another attempt of this command was accepted first; replaying its reply"
            );
        } else {
            let stores = &self.stores;
            stores
                .notifier
                .accepted(&reply, REGISTER_OFFICER, &command.badge_number, accepted_at)
                .await;
        }
        Ok(AcceptedReply {
            body: sent,
            correlation_id: ctx.correlation_id.clone(),
            replayed,
        })
    }

    /// Parks a command whose event Kafka did not take, and says so to the client.
    async fn park(
        &self,
        ctx: &CommandContext,
        command: &RegisterOfficer,
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
        let parked = ParkedCommand {
            command_type: REGISTER_OFFICER.to_owned(),
            subject: self.names.register_officer.clone(),
            command_id: ctx.command_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            traceparent: ctx.traceparent.clone(),
            aggregate_id: command.badge_number.clone(),
            code,
            reason: failure.to_string(),
            attempts: 1,
            first_parked_at: now,
            last_failed_at: now,
            command: serde_json::to_value(command).unwrap_or_default(),
        };
        let stored = failure.stored();
        let detail = match self.stores.dlq.park(attempt.key(), parked).await {
            Ok(()) => {
                let unresolved = failure.unresolved().cloned();
                self.stores.ledger.park(attempt, code, unresolved).await;
                let notifier = &self.stores.notifier;
                notifier
                    .parked(ctx, REGISTER_OFFICER, &command.badge_number, code, now)
                    .await;
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

    async fn unpark(&self, key: &str) {
        match self.stores.dlq.remove(key).await {
            Ok(()) => tracing::info!("command left the dead-letter queue"),
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the command from the dead-letter queue; a re-drive will replay its answer")
            }
        }
    }

    fn validate(&self, ctx: &CommandContext, body: &[u8]) -> Result<RegisterOfficer, Problem> {
        self.validator.read(body).map_err(|rejection| {
            rejection
                .into_problem(self.validator.name(), &ctx.correlation_id)
                .with_command_id(&ctx.command_id)
        })
    }

    /// Claims the badge for this command. A parked or failed attempt keeps its claim: the
    /// badge stays reserved for the command until it is accepted.
    async fn claim_badge(&self, ctx: &CommandContext, badge: &str) -> Result<(), Problem> {
        let claim = self
            .stores
            .registry
            .claim(badge, &ctx.command_id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "badge registry unavailable");
                ctx.problem(
                    ErrorCode::RegistryUnavailable,
                    "the badge registry is unavailable; nothing was done, retry later",
                )
            })?;
        match claim {
            Claim::Won | Claim::AlreadyOurs => Ok(()),
            Claim::Taken { by } => {
                tracing::info!(badge, held_by = %by, "badge already registered");
                Err(ctx.problem(
                    ErrorCode::BadgeAlreadyRegistered,
                    format!("badge number {badge} is already registered to another officer"),
                ))
            }
        }
    }

    /// Settles earlier attempts whose outcome is unknown, then writes the event unless one
    /// of them stored it already. A failure names what is left to settle, if anything.
    async fn write_event(
        &self,
        ctx: &CommandContext,
        command: &RegisterOfficer,
        attempt: &Attempt,
        occurred_at: OffsetDateTime,
    ) -> Result<CommandAccepted, ProduceError> {
        let envelope = command.requested_event(&ctx.command_id, &ctx.correlation_id, occurred_at);
        let producer = &self.stores.producer;
        if let Some(earlier) = &attempt.earlier {
            let event_id = envelope.event_id.to_string();
            match producer.settle(earlier, &event_id).await {
                Ok(Some(event)) => {
                    tracing::warn!(
                        partition = event.partition,
                        offset = event.offset,
                        "an earlier attempt stored the event; accepting it"
                    );
                    return Ok(CommandAccepted::of(&envelope, event));
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
        let event = producer
            .produce_event_under(&envelope, ctx.traceparent.as_deref(), attempt.writer())
            .await?;
        tracing::info!(
            partition = event.partition,
            offset = event.offset,
            "event acknowledged"
        );
        Ok(CommandAccepted::of(&envelope, event))
    }
}

/// The ledger identity of a validated command: its fingerprint is taken over the typed
/// command re-serialized, the same bytes a ledger rebuild computes from the event payload.
fn identity(ctx: &CommandContext, command: &RegisterOfficer) -> Result<CommandIdentity, Problem> {
    let canonical = serde_json::to_vec(command).map_err(|e| {
        ctx.problem(
            ErrorCode::Internal,
            format!("command does not serialize: {e}"),
        )
    })?;
    Ok(CommandIdentity {
        command_type: REGISTER_OFFICER,
        command_id: ctx.command_id.clone(),
        correlation_id: ctx.correlation_id.clone(),
        fingerprint: ledger::fingerprint(&canonical),
    })
}

fn key_reused(ctx: &CommandContext) -> Problem {
    ctx.problem(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was already used for a different command body; use a new key for a new command",
    )
}

fn in_progress(ctx: &CommandContext) -> Problem {
    ctx.problem(
        ErrorCode::CommandInProgress,
        "an earlier attempt of this command is still in flight; retry with the same Idempotency-Key",
    )
}
