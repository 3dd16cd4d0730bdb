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
    /// When the BL service accepted the command.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The command, as validated.
    pub payload: P,
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
