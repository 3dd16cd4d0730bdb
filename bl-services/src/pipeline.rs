//! The one path every business-logic command takes, whatever it is: schema, idempotency
//! ledger, a decision on the aggregate's current state, the event in Kafka, then the ledger
//! again. A refusal (4xx) leaves nothing behind; a Kafka failure parks the command for
//! re-drive; every 202 for one commandId carries the same bytes. Nothing here names a
//! domain: commands come from the catalog, their rules from [`crate::domain::Handlers`].

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use contracts::{
    CatalogEntry, ErrorCode, Names, Problem,
    envelope::{CommandOrigin, EventEnvelope},
    precondition::IfMatch,
    timeline::{LedgerOutcome, StepKind},
};
use runtime::{Timeline, Trail, metrics::Stage};
use serde_json::Value;
use time::OffsetDateTime;

mod produce;

use crate::{
    aggregates::{AggregateStore, Head},
    decision::{self, DecisionStores, NotDecided, Pending},
    dlq::{CommandDlq, Resend},
    domain::Handlers,
    kafka::EventProducer,
    ledger::{self, Attempt, Begin, CommandIdentity, CommandLedger},
    notices::Notifier,
    observe, ops,
};

/// Who sent a command: what the edge put in the NATS headers.
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
    /// The client's precondition on the aggregate's version.
    pub if_match: Option<IfMatch>,
    /// The steps this request takes, for the command's timeline.
    pub trail: Trail,
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

/// The stores and clients the pipeline writes to.
pub struct CommandStores {
    /// Aggregate state.
    pub aggregates: AggregateStore,
    /// Idempotency.
    pub ledger: CommandLedger,
    /// Parked commands.
    pub dlq: CommandDlq,
    /// Kafka.
    pub producer: EventProducer,
    /// Accepted and parked notices for the status read model.
    pub notifier: Notifier,
    /// NATS, to send an unsettled earlier command again.
    pub client: async_nats::Client,
    /// Where the steps of each request are published.
    pub timeline: Timeline,
}

/// A business-logic command of the catalog, with the subject it is served on (in the
/// namespace), where a parked command is re-driven to.
#[derive(Debug, Clone)]
pub struct Served {
    /// Its catalog entry.
    pub entry: CatalogEntry,
    /// Its subject, in the namespace.
    pub subject: String,
}

/// A command read and validated: what every later step needs.
struct Validated<'a> {
    entry: &'a CatalogEntry,
    subject: &'a str,
    body: Value,
    aggregate_id: String,
    identity: CommandIdentity,
}

/// The pipeline, shared by all concurrent requests of one instance.
pub struct Pipeline {
    handlers: Handlers,
    stores: CommandStores,
    names: Arc<Names>,
    /// Longest wait for an earlier command on the same aggregate to settle.
    turn_wait: Duration,
}

impl Pipeline {
    /// Wires the stores; parked commands are re-driven to their subjects in `names`.
    pub fn new(
        handlers: Handlers,
        stores: CommandStores,
        names: Arc<Names>,
        turn_wait: Duration,
    ) -> Self {
        Self {
            handlers,
            stores,
            names,
            turn_wait,
        }
    }

    /// Where the steps of each request are published.
    pub fn timeline(&self) -> &Timeline {
        &self.stores.timeline
    }

    /// Ready while the producer can write events (always, when not transactional).
    pub fn producer_readiness(&self) -> Option<runtime::Readiness> {
        self.stores.producer.readiness()
    }

    /// Validates, applies the idempotency and business rules, and writes the event of a
    /// command `served` here. `Ok` only once Kafka acknowledged the event (now, or for an
    /// earlier attempt).
    pub async fn handle(
        &self,
        served: &Served,
        ctx: &CommandContext,
        body: &[u8],
    ) -> Result<AcceptedReply, Problem> {
        let kind = &served.entry.spec.command;
        let command = observe::timed(kind, Stage::Validation, || validate(served, ctx, body))?;
        ctx.trail
            .identify(None, None, Some(command.aggregate_id.as_str()));
        let writer = self.stores.producer.transactional_id();
        let begin = self
            .stores
            .ledger
            .begin(&command.identity, writer.as_deref());
        let begun = observe::stage(kind, Stage::Ledger, begin)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "ledger unavailable; nothing done");
                ctx.problem(
                    ErrorCode::LedgerUnavailable,
                    "the idempotency ledger is unavailable; nothing was done, retry later",
                )
            })?;
        ctx.trail.step(StepKind::Ledger {
            outcome: ledger_outcome(&begun),
        });
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
            self.unpark(&command.identity.key()).await;
        }
        outcome
    }

    /// One attempt this instance owns: the decision, then the event, then the ledger.
    async fn attempt(
        &self,
        ctx: &CommandContext,
        command: &Validated<'_>,
        attempt: &Attempt,
    ) -> Result<AcceptedReply, Problem> {
        let kind = &command.entry.spec.command;
        let deciding = self.decide(ctx, command, attempt);
        let version = match observe::stage(kind, Stage::Decision, deciding).await {
            Ok(version) => version,
            Err(problem) => {
                self.stores.ledger.forget(attempt).await;
                return Err(problem);
            }
        };
        let accepted_at = OffsetDateTime::now_utc();
        let origin = CommandOrigin {
            command_id: &ctx.command_id,
            correlation_id: &ctx.correlation_id,
            occurred_at: accepted_at,
        };
        let spec = &command.entry.spec;
        let event = EventEnvelope::of_command(
            spec,
            origin,
            &command.aggregate_id,
            Some(version),
            &command.body,
        );
        let topic = self.names.namespace.dotted(&spec.topic);
        let writing = self.write_event(ctx, &topic, &event, attempt);
        let reply = match observe::stage(kind, Stage::Produce, writing).await {
            Ok(reply) => {
                let position = reply.event.clone();
                ctx.trail.step(StepKind::Appended { position });
                reply
            }
            Err(failure) => return Err(self.park(ctx, command, attempt, &failure).await),
        };
        let ours = Bytes::from(serde_json::to_vec(&reply).map_err(|e| {
            ctx.problem(
                ErrorCode::Internal,
                format!("reply does not serialize: {e}"),
            )
        })?);
        let recording = self.stores.ledger.accept(attempt, ours.clone());
        let sent = observe::stage(kind, Stage::Reply, recording).await.map_err(|e| {
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
            let notifier = &self.stores.notifier;
            notifier
                .accepted(&reply, &spec.command, &command.aggregate_id, accepted_at)
                .await;
        }
        Ok(AcceptedReply {
            body: sent,
            correlation_id: ctx.correlation_id.clone(),
            replayed,
        })
    }

    /// Takes the aggregate's next version for the command, or says why not.
    async fn decide(
        &self,
        ctx: &CommandContext,
        command: &Validated<'_>,
        attempt: &Attempt,
    ) -> Result<u64, Problem> {
        let spec = &command.entry.spec;
        let stores = DecisionStores {
            aggregates: &self.stores.aggregates,
            ledger: &self.stores.ledger,
            dlq: &self.stores.dlq,
        };
        let pending = Pending {
            spec,
            handler: self.handlers.get(&spec.command),
            aggregate_id: &command.aggregate_id,
            body: &command.body,
            if_match: ctx.if_match.as_ref(),
            head: Head {
                command_type: spec.command.clone(),
                command_id: ctx.command_id.clone(),
                ledger_key: attempt.key().to_owned(),
                resend: Some(Resend {
                    subject: command.subject.to_owned(),
                    command_id: ctx.command_id.clone(),
                    correlation_id: ctx.correlation_id.clone(),
                    traceparent: ctx.traceparent.clone(),
                    body: command.body.clone(),
                }),
            },
        };
        let mut decided = decision::decide(stores, &pending, self.turn_wait).await;
        // Settle an unsettled command ahead of this one, once, then decide again.
        if let Err(NotDecided::Unsettled(head)) = decided {
            tracing::warn!(head_command_id = %head.command_id, "an earlier command on this aggregate is unsettled; sending it again");
            let settled = ops::redrive(&self.stores.client, &head, self.turn_wait * 3).await;
            tracing::info!(outcome = ?settled.outcome, "the earlier command was sent again");
            decided = decision::decide(stores, &pending, self.turn_wait).await;
        }
        let decided = decided.map_err(|not| problem_of(ctx, not));
        ctx.trail.step(StepKind::Decided {
            version: decided.as_ref().ok().copied(),
            code: decided.as_ref().err().map(|problem| problem.code),
        });
        decided
    }
}

/// Schema check and identity: everything that can refuse a command before it is begun.
fn validate<'a>(
    served: &'a Served,
    ctx: &CommandContext,
    body: &[u8],
) -> Result<Validated<'a>, Problem> {
    let entry = &served.entry;
    let body: Value = entry.validator.read(body).map_err(|rejection| {
        rejection
            .into_problem(entry.validator.name(), &ctx.correlation_id)
            .with_command_id(&ctx.command_id)
    })?;
    let aggregate_id = entry
        .spec
        .aggregate_id(&body)
        .ok_or_else(|| {
            ctx.problem(
                ErrorCode::Internal,
                "the schema let through a body without an aggregate id",
            )
        })?
        .to_owned();
    let canonical = serde_json::to_vec(&body).map_err(|e| {
        ctx.problem(
            ErrorCode::Internal,
            format!("command does not serialize: {e}"),
        )
    })?;
    let identity = CommandIdentity {
        command_type: entry.spec.command.clone(),
        command_id: ctx.command_id.clone(),
        correlation_id: ctx.correlation_id.clone(),
        fingerprint: ledger::fingerprint(&canonical),
    };
    Ok(Validated {
        entry,
        subject: &served.subject,
        body,
        aggregate_id,
        identity,
    })
}

/// The answer to a command that could not take its turn.
fn problem_of(ctx: &CommandContext, not: NotDecided) -> Problem {
    match not {
        NotDecided::Refused(refusal) => {
            tracing::info!(code = %refusal.code, detail = %refusal.detail, "refused by a rule");
            ctx.problem(refusal.code, refusal.detail)
        }
        NotDecided::Busy(detail) => ctx.problem(ErrorCode::AggregateBusy, detail),
        NotDecided::Unsettled(head) => ctx.problem(
            ErrorCode::AggregateBusy,
            format!(
                "an earlier command on this aggregate ({}) is still unsettled after being sent again; retry shortly",
                head.command_id
            ),
        ),
        NotDecided::Unavailable(code, error) => {
            tracing::warn!(error, "cannot decide; nothing done");
            ctx.problem(
                code,
                "the aggregate's state cannot be read; nothing was done, retry later",
            )
        }
    }
}

/// What the ledger's answer means for the timeline.
fn ledger_outcome(begun: &Begin) -> LedgerOutcome {
    match begun {
        Begin::Started(attempt) if attempt.resumes_parked => LedgerOutcome::ResumesParked,
        Begin::Started(attempt) if attempt.earlier.is_some() => LedgerOutcome::TakenOver,
        Begin::Started(_) => LedgerOutcome::New,
        Begin::Replay { .. } => LedgerOutcome::Replayed,
        Begin::KeyReused => LedgerOutcome::KeyReused,
        Begin::InProgress => LedgerOutcome::InProgress,
    }
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
