//! Command status: the read model that answers "what happened to my command?".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{EventPosition, officer::Rank};

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
    /// Kafka holds the event, but the read models could not apply it (or it waits behind an
    /// earlier event of its aggregate that they could not apply): parked until an operator
    /// re-drives it after a fix, or discards the event it waits behind.
    Parked,
    /// An operator discarded the parked event: the read models will never apply it.
    Discarded,
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
    /// Why the read models parked its event, while `parked` or once `discarded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<ParkedReason>,
    /// When the read models applied it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub projected_at: Option<OffsetDateTime>,
}

/// Why the read models parked a command's event, and what an operator did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedReason {
    /// The failure (`blocked-by-earlier-event` when it waits behind another event).
    pub code: crate::deadletter::PoisonCode,
    /// The failure in words.
    pub detail: String,
    /// The operator's reason, once the event was discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded: Option<String>,
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

/// Body of a command-status query on [`crate::subjects::QUERY_COMMAND_STATUS`]: by the
/// request's correlationId (`{"correlationId": ...}`) or by the command's idempotency key
/// (`{"commandId": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandStatusQuery {
    /// The correlationId of the command's first request.
    CorrelationId(String),
    /// The commandId (the `Idempotency-Key`).
    CommandId(String),
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

/// `GET /v1/stats`: what the read models hold and how far behind the topic they are.
/// Counters cover the whole topic as applied to the current read models (a rebuild starts
/// them again from the topic).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStats {
    /// `memory` or `postgres`.
    pub store: String,
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
    /// Events parked in the dead-letter store (poison events and those behind them).
    pub parked_events: u64,
    /// Officers by rank.
    pub officers_by_rank: BTreeMap<Rank, u64>,
    /// Officers registered per day (UTC day of the event's `occurredAt`).
    pub registrations_by_day: BTreeMap<String, u64>,
    /// Published versus projected records, per partition.
    pub partitions: Vec<PartitionProgress>,
    /// Records published but not yet projected, over all partitions.
    pub lag_records: i64,
    /// When the newest applied event was accepted.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_event_at: Option<OffsetDateTime>,
    /// 0 when caught up; otherwise how long ago the newest applied event was accepted, an
    /// upper bound on the age of the oldest event still waiting.
    pub lag_seconds: f64,
}

/// Published versus projected records of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionProgress {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Records in the partition (its high watermark), as Kafka reports it.
    pub published: i64,
    /// Records the read models have consumed (applied, deduplicated or parked): the next
    /// offset to apply.
    pub projected: i64,
    /// `published - projected`.
    pub lag: i64,
}
