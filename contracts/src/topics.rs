//! Kafka topic names. Topics are partitioned by aggregate id (the record key), so all events
//! of one aggregate keep their order.

/// Events of the officer domain (`RegisterOfficerRequested`, and later ones).
pub const OFFICER_EVENTS: &str = "ackgate.officer.events";

/// Dead-letter topic of the officer projections: events they could not apply, with headers
/// naming the source position and the error code (see [`crate::deadletter`]).
pub const OFFICER_EVENTS_DLQ: &str = "ackgate.officer.events.dlq";
