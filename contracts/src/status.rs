//! Command status: the read model that answers "what happened to my command?".

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::EventPosition;

/// Lifecycle of an accepted command, as the projections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandState {
    /// Kafka holds the event; the read models have not applied it yet.
    Accepted,
    /// The read models have applied the event.
    Projected,
    /// The event reached the read models but lost a race: another command registered the
    /// same aggregate first (possible only when a produce timed out ambiguously).
    Superseded,
    /// Kafka did not take the event; the command is parked in the command dead-letter queue
    /// until the client retries it or an operator re-drives it.
    DeadLettered,
}

/// The command-status view returned by `GET /v1/commands/{correlationId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandStatusView {
    /// The request's tracing key.
    pub correlation_id: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// The aggregate the command targeted.
    pub aggregate_id: String,
    /// Where the command stands.
    pub status: CommandState,
    /// Where its event is stored (absent while dead-lettered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventPosition>,
    /// When the BL service accepted it (the event's `occurredAt`).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub accepted_at: Option<OffsetDateTime>,
    /// Why and when it was parked, while `dead-lettered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// When the read models applied it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub projected_at: Option<OffsetDateTime>,
}

/// Why a command is in the command dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The failure that parked it (`kafka-unavailable`).
    pub code: crate::ErrorCode,
    /// When it was parked.
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

/// Body of a command-status query on [`crate::subjects::QUERY_COMMAND_STATUS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandStatusQuery {
    /// Which command.
    pub correlation_id: String,
}

/// What a BL service publishes on [`crate::subjects::COMMAND_ACCEPTED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAcceptedNotice {
    /// The reply the client received.
    pub reply: crate::CommandAccepted,
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// The aggregate the command targeted.
    pub aggregate_id: String,
    /// When the command was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub accepted_at: OffsetDateTime,
}

/// What a BL service publishes on [`crate::subjects::COMMAND_PARKED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandParkedNotice {
    /// The command's tracing key.
    pub correlation_id: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// The aggregate the command targeted.
    pub aggregate_id: String,
    /// Why it was parked.
    pub code: crate::ErrorCode,
    /// When it was parked.
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

/// What one projection instance has applied since it started (its read models are rebuilt
/// from the topic on start, so these count the whole topic once it caught up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStats {
    /// Distinct events applied (by eventId).
    pub applied_events: u64,
    /// Records skipped because their eventId was applied before (re-produced duplicates).
    pub duplicate_records: u64,
    /// Events that lost a race for their aggregate (see [`CommandState::Superseded`]).
    pub superseded: u64,
    /// Records that could not be read as a known event, skipped.
    pub unreadable: u64,
    /// Command statuses held.
    pub commands: u64,
    /// Officers held.
    pub officers: u64,
}
