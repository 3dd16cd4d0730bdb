//! Error codes: the `code` member of every problem body, with its HTTP status and title.

use serde::{Deserialize, Serialize};

/// Every way a request can fail. The HTTP status of each code is fixed here, so the edge,
/// the BL services and the documentation cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The body is not well-formed JSON.
    MalformedJson,
    /// A header (correlation id, idempotency key) has an invalid value.
    InvalidHeader,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    PayloadTooLarge,
    /// The body violates the command's JSON Schema; `violations` lists every one.
    SchemaViolation,
    /// Another officer already holds this badge number.
    BadgeAlreadyRegistered,
    /// The `Idempotency-Key` was already used for a command with a different body.
    IdempotencyKeyReused,
    /// An earlier attempt of this command is still in flight; retry with the same key.
    CommandInProgress,
    /// The requested resource does not exist (yet).
    NotFound,
    /// A query parameter (filter, cursor, limit, position) is invalid.
    InvalidQuery,
    /// The read models have not applied the position the query asked to see within the
    /// wait; retry shortly (read-your-writes).
    NotYetProjected,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// No business-logic service is listening for the command.
    BlUnavailable,
    /// The business-logic service did not answer in time; the outcome is unknown.
    BlTimeout,
    /// Kafka did not acknowledge the event in time; the command is parked for re-drive and
    /// a retry with the same key is safe.
    KafkaUnavailable,
    /// The aggregate state store (JetStream key/value) cannot be reached; nothing was done.
    AggregateStoreUnavailable,
    /// The command names an aggregate (an officer, ...) that does not exist.
    AggregateNotFound,
    /// The aggregate's current state does not allow this command (e.g. reinstating an
    /// officer who is not suspended, or any command on a retired officer).
    TransitionNotAllowed,
    /// The command would not change the aggregate (e.g. the rank it already holds).
    NoChange,
    /// `If-Match` names a version the aggregate no longer has (or it does not exist).
    PreconditionFailed,
    /// An earlier command on the same aggregate is still unsettled (in flight, or parked for
    /// re-drive); retry shortly.
    AggregateBusy,
    /// The idempotency ledger (JetStream key/value) cannot be reached; the outcome is unknown.
    LedgerUnavailable,
    /// No projection is listening for queries.
    ProjectionUnavailable,
    /// A projection did not answer a query in time.
    ProjectionTimeout,
    /// An unexpected failure; details are in the logs under the correlationId.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 25] = [
        Self::MalformedJson,
        Self::InvalidHeader,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::SchemaViolation,
        Self::BadgeAlreadyRegistered,
        Self::IdempotencyKeyReused,
        Self::CommandInProgress,
        Self::NotFound,
        Self::InvalidQuery,
        Self::NotYetProjected,
        Self::MethodNotAllowed,
        Self::BlUnavailable,
        Self::BlTimeout,
        Self::KafkaUnavailable,
        Self::AggregateStoreUnavailable,
        Self::AggregateNotFound,
        Self::TransitionNotAllowed,
        Self::NoChange,
        Self::PreconditionFailed,
        Self::AggregateBusy,
        Self::LedgerUnavailable,
        Self::ProjectionUnavailable,
        Self::ProjectionTimeout,
        Self::Internal,
    ];

    /// The HTTP status that carries this code.
    pub const fn status(self) -> u16 {
        match self {
            Self::MalformedJson | Self::InvalidHeader | Self::InvalidQuery => 400,
            Self::NotFound | Self::AggregateNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::BadgeAlreadyRegistered
            | Self::CommandInProgress
            | Self::TransitionNotAllowed
            | Self::NoChange
            | Self::AggregateBusy => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::SchemaViolation | Self::IdempotencyKeyReused => 422,
            Self::Internal => 500,
            Self::BlUnavailable
            | Self::KafkaUnavailable
            | Self::AggregateStoreUnavailable
            | Self::LedgerUnavailable
            | Self::ProjectionUnavailable
            | Self::NotYetProjected => 503,
            Self::BlTimeout | Self::ProjectionTimeout => 504,
        }
    }

    /// Short human-readable summary (the problem `title`).
    pub const fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "Malformed JSON",
            Self::InvalidHeader => "Invalid header",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "Payload too large",
            Self::SchemaViolation => "Command violates its schema",
            Self::BadgeAlreadyRegistered => "Badge number already registered",
            Self::IdempotencyKeyReused => "Idempotency key reused with a different body",
            Self::CommandInProgress => "Command already in progress",
            Self::NotFound => "Not found",
            Self::InvalidQuery => "Invalid query parameter",
            Self::NotYetProjected => "Not yet projected",
            Self::MethodNotAllowed => "Method not allowed",
            Self::BlUnavailable => "Command service unavailable",
            Self::BlTimeout => "Command service timed out",
            Self::KafkaUnavailable => "Event store unavailable",
            Self::AggregateStoreUnavailable => "Aggregate state unavailable",
            Self::AggregateNotFound => "No such aggregate",
            Self::TransitionNotAllowed => "Not allowed in the current state",
            Self::NoChange => "The command changes nothing",
            Self::PreconditionFailed => "Precondition failed",
            Self::AggregateBusy => "Aggregate busy",
            Self::LedgerUnavailable => "Idempotency ledger unavailable",
            Self::ProjectionUnavailable => "Query service unavailable",
            Self::ProjectionTimeout => "Query service timed out",
            Self::Internal => "Internal error",
        }
    }

    /// Seconds a client should wait before retrying, for transient failures (`Retry-After`).
    pub const fn retry_after_secs(self) -> Option<u32> {
        match self {
            Self::KafkaUnavailable | Self::AggregateStoreUnavailable => Some(5),
            Self::BlUnavailable | Self::ProjectionUnavailable | Self::LedgerUnavailable => Some(2),
            Self::CommandInProgress | Self::NotYetProjected | Self::AggregateBusy => Some(1),
            _ => None,
        }
    }

    /// The kebab-case code, as it appears in problem bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed-json",
            Self::InvalidHeader => "invalid-header",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::SchemaViolation => "schema-violation",
            Self::BadgeAlreadyRegistered => "badge-already-registered",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::CommandInProgress => "command-in-progress",
            Self::NotFound => "not-found",
            Self::InvalidQuery => "invalid-query",
            Self::NotYetProjected => "not-yet-projected",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::BlUnavailable => "bl-unavailable",
            Self::BlTimeout => "bl-timeout",
            Self::KafkaUnavailable => "kafka-unavailable",
            Self::AggregateStoreUnavailable => "aggregate-store-unavailable",
            Self::AggregateNotFound => "aggregate-not-found",
            Self::TransitionNotAllowed => "transition-not-allowed",
            Self::NoChange => "no-change",
            Self::PreconditionFailed => "precondition-failed",
            Self::AggregateBusy => "aggregate-busy",
            Self::LedgerUnavailable => "ledger-unavailable",
            Self::ProjectionUnavailable => "projection-unavailable",
            Self::ProjectionTimeout => "projection-timeout",
            Self::Internal => "internal",
        }
    }

    /// The problem `type` URI.
    pub fn type_uri(self) -> String {
        format!("urn:ackgate:error:{}", self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_the_serialized_form() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("serializes");
            assert_eq!(json, code.as_str(), "{code:?}");
        }
    }

    #[test]
    fn transient_failures_say_when_to_retry() {
        for code in ErrorCode::ALL {
            let retryable = code.status() == 503
                || matches!(
                    code,
                    ErrorCode::CommandInProgress | ErrorCode::AggregateBusy
                );
            assert_eq!(code.retry_after_secs().is_some(), retryable, "{code:?}");
        }
    }
}
