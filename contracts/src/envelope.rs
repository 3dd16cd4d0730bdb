//! The event envelope: the Kafka record value of every event.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Metadata every event carries, around a domain payload. The ids also travel as record
/// headers so consumers can route and dedupe without parsing the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope<P> {
    /// Deterministic from the commandId (see [`crate::ids::event_id`]).
    pub event_id: Uuid,
    /// `<Command>Requested`.
    pub event_type: String,
    /// Version of the payload schema.
    pub schema_version: u32,
    /// The request's tracing key.
    pub correlation_id: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// The aggregate the event belongs to; also the record key.
    pub aggregate_id: String,
    /// The aggregate's version after this event: 1 for its first, one more for each next.
    /// Absent on events accepted without the aggregate's state (Option A, and events written
    /// before versions existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_version: Option<u64>,
    /// When the BL service accepted the command.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The command, as validated.
    pub payload: P,
}

/// Who caused an event: the ids of its command, and when it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct CommandOrigin<'a> {
    /// The command's idempotency key.
    pub command_id: &'a str,
    /// The request's tracing key.
    pub correlation_id: &'a str,
    /// When the command was accepted.
    pub occurred_at: OffsetDateTime,
}

impl<P> EventEnvelope<P> {
    /// The event of a command declared by `spec`, with the eventId derived from the
    /// commandId: whichever path accepts it, and however often, it yields the same event.
    pub fn of_command(
        spec: &crate::CommandSpec,
        origin: CommandOrigin<'_>,
        aggregate_id: &str,
        aggregate_version: Option<u64>,
        payload: P,
    ) -> Self {
        Self {
            event_id: crate::ids::event_id(&spec.command, origin.command_id),
            event_type: spec.event.clone(),
            schema_version: spec.version,
            correlation_id: origin.correlation_id.to_owned(),
            command_id: origin.command_id.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            aggregate_version,
            occurred_at: origin.occurred_at,
            payload,
        }
    }
}

/// The envelope without its payload: enough to route an event of any type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeHead {
    /// See [`EventEnvelope::event_id`].
    pub event_id: Uuid,
    /// See [`EventEnvelope::event_type`].
    pub event_type: String,
    /// See [`EventEnvelope::schema_version`].
    pub schema_version: u32,
}
