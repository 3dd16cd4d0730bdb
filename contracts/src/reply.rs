//! Reply bodies: the accepted reply and the RFC 9457 problem, identical on NATS and HTTP so
//! the edge can pass a BL reply through byte for byte.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Where an event was stored in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPosition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

impl EventPosition {
    /// The position token clients pass back for read-your-writes: `topic:partition:offset`.
    pub fn token(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }

    /// Reads a [`Self::token`]; the topic may itself contain colons.
    pub fn parse_token(token: &str) -> Result<Self, String> {
        let invalid = || format!("position {token:?} is not topic:partition:offset");
        let mut parts = token.rsplitn(3, ':');
        let offset = parts
            .next()
            .and_then(|o| o.parse().ok())
            .ok_or_else(invalid)?;
        let partition = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let topic = parts.next().filter(|t| !t.is_empty()).ok_or_else(invalid)?;
        if partition < 0 || offset < 0 {
            return Err(invalid());
        }
        Ok(Self {
            topic: topic.to_owned(),
            partition,
            offset,
        })
    }
}

/// Literal `"accepted"`: a reply means stored, never done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptedStatus {
    /// The event is in Kafka.
    Accepted,
}

/// Reply to a command whose event Kafka acknowledged (HTTP 202 body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    /// The request's tracing key.
    pub correlation_id: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// Always `accepted`.
    pub status: AcceptedStatus,
    /// Where the event was stored.
    pub event: EventPosition,
}

impl CommandAccepted {
    /// The reply for `event`, acknowledged at `position`: the ids are the event's, so every
    /// path that accepts a command (and a ledger rebuild) answers with the same body.
    pub fn of<P>(event: &crate::EventEnvelope<P>, position: EventPosition) -> Self {
        Self {
            correlation_id: event.correlation_id.clone(),
            command_id: event.command_id.clone(),
            status: AcceptedStatus::Accepted,
            event: position,
        }
    }
}

/// One schema violation, located by an RFC 6901 JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Where in the body (for a missing member: where it should be).
    pub pointer: String,
    /// The JSON Schema keyword that failed (`required`, `pattern`, `enum`, ...).
    pub keyword: String,
    /// What is wrong, in words.
    pub message: String,
}

/// RFC 9457 problem details, extended with the correlationId and a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:ackgate:error:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the code.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened to this request.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// The request's tracing key: quote it to support.
    pub correlation_id: String,
    /// The command's idempotency key, when the request was a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Every schema violation, for `schema-violation`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

impl Problem {
    /// A problem for `code`, with its status, title and type filled in.
    pub fn new(
        code: ErrorCode,
        detail: impl Into<String>,
        correlation_id: impl Into<String>,
    ) -> Self {
        Self {
            type_uri: code.type_uri(),
            title: code.title().to_owned(),
            status: code.status(),
            detail: detail.into(),
            code,
            correlation_id: correlation_id.into(),
            command_id: None,
            violations: Vec::new(),
        }
    }

    /// Adds the commandId.
    pub fn with_command_id(mut self, command_id: impl Into<String>) -> Self {
        self.command_id = Some(command_id.into());
        self
    }

    /// Adds schema violations.
    pub fn with_violations(mut self, violations: Vec<Violation>) -> Self {
        self.violations = violations;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_token_round_trips() {
        let position = EventPosition {
            topic: "ackgate.officer.events".to_owned(),
            partition: 2,
            offset: 41,
        };
        assert_eq!(position.token(), "ackgate.officer.events:2:41");
        assert_eq!(EventPosition::parse_token(&position.token()), Ok(position));
    }

    #[test]
    fn a_malformed_position_token_is_refused() {
        for token in ["", "t:1", ":1:2", "t:x:2", "t:1:-5", "t:-1:5"] {
            assert!(EventPosition::parse_token(token).is_err(), "{token}");
        }
    }
}
