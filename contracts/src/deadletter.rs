//! Poison events: events the projections could not apply. Each is parked (kept in the read
//! model store and published to the dead-letter topic with its source position and an error
//! code), and every later event of the same key is parked behind it, so a read model never
//! applies a key's events out of order. Operators list them and re-drive them after a fix.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::EventPosition;

/// Why an event was parked (the `Ackgate-Error-Code` header of its dead-letter record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoisonCode {
    /// The record value is not an event envelope (not JSON, or missing envelope members).
    Unparseable,
    /// The envelope names an event type this projection does not know.
    UnknownEventType,
    /// The envelope names a schema version this projection does not know.
    UnsupportedSchemaVersion,
    /// The envelope is readable but its payload does not match its type's schema, or
    /// contradicts the envelope (payload aggregate differs from the record's).
    InvalidPayload,
    /// The read model refused the change after bounded retries.
    HandlerFailed,
    /// Parked only because an earlier event of the same key is parked.
    BlockedByEarlierEvent,
}

impl PoisonCode {
    /// The kebab-case code, as in headers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unparseable => "unparseable",
            Self::UnknownEventType => "unknown-event-type",
            Self::UnsupportedSchemaVersion => "unsupported-schema-version",
            Self::InvalidPayload => "invalid-payload",
            Self::HandlerFailed => "handler-failed",
            Self::BlockedByEarlierEvent => "blocked-by-earlier-event",
        }
    }

    /// Reads [`Self::as_str`] back.
    pub fn parse(code: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
    }
}

impl std::fmt::Display for PoisonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parked event, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedEvent {
    /// Where the event is in its source topic.
    pub source: EventPosition,
    /// The record key (the aggregate id), which stays blocked while this is parked.
    pub key: String,
    /// The eventId, when the envelope was readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The correlationId, from the envelope when readable, else from the record's headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The commandId, from the envelope when readable, else from the record's headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Why it was parked.
    pub code: PoisonCode,
    /// The failure in words.
    pub detail: String,
    /// For [`PoisonCode::BlockedByEarlierEvent`]: the parked event of the same key it waits
    /// behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<EventPosition>,
    /// How many times applying it was tried (including re-drives).
    pub attempts: u32,
    /// When it was first parked.
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

/// Body of [`crate::subjects::ADMIN_DEAD_LETTERS_LIST`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterListQuery {
    /// Only this key's parked events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Reply of [`crate::subjects::ADMIN_DEAD_LETTERS_LIST`]: parked events in source order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// The parked events, by source partition and offset.
    pub parked: Vec<ParkedEvent>,
}

/// Body of [`crate::subjects::ADMIN_DEAD_LETTERS_REDRIVE`]: which keys to retry. Each key's
/// parked events are re-applied in source order, stopping at the first that fails again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveRequest {
    /// Keys to re-drive; empty with `all` re-drives every parked key.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Re-drive every parked key.
    #[serde(default)]
    pub all: bool,
}

/// Reply of [`crate::subjects::ADMIN_DEAD_LETTERS_REDRIVE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    /// Events applied (and removed from the dead-letter store).
    pub applied: u64,
    /// Events still parked (the first of a key failed again, and those behind it).
    pub still_parked: u64,
    /// Keys with nothing parked any more, whose new events now flow again.
    pub released_keys: Vec<String>,
}

/// Body of [`crate::subjects::ADMIN_DEAD_LETTERS_DISCARD`]: give up on one parked event,
/// for a reason that goes to the dead-letter topic and the command's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscardRequest {
    /// The parked event's source position.
    pub source: EventPosition,
    /// Why it is discarded (required: a discard is never silent).
    pub reason: String,
    /// Then re-drive the rest of its key.
    #[serde(default)]
    pub redrive: bool,
}

impl DiscardRequest {
    /// Longest reason kept.
    pub const MAX_REASON_LEN: usize = 500;

    /// `Ok` when the request can be carried out; otherwise why not.
    pub fn validate(&self) -> Result<(), String> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.len() > Self::MAX_REASON_LEN {
            return Err(format!(
                "reason must be 1-{} characters: say why the event is given up",
                Self::MAX_REASON_LEN
            ));
        }
        Ok(())
    }
}

/// Reply of [`crate::subjects::ADMIN_DEAD_LETTERS_DISCARD`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscardReport {
    /// The event given up, as it was parked.
    pub discarded: ParkedEvent,
    /// How re-driving the rest of its key went, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive: Option<RedriveReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_codes_round_trip_through_their_text() {
        for code in [
            PoisonCode::Unparseable,
            PoisonCode::UnknownEventType,
            PoisonCode::UnsupportedSchemaVersion,
            PoisonCode::InvalidPayload,
            PoisonCode::HandlerFailed,
            PoisonCode::BlockedByEarlierEvent,
        ] {
            assert_eq!(PoisonCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).expect("json"), code.as_str());
        }
    }
}
