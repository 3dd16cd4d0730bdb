//! Kafka topic names. Event topics are declared per command in the catalog; these are the
//! ones the read side names. Topics are partitioned by aggregate id (the record key), so all
//! events of one aggregate keep their order.

/// Events of the officer domain (registration and lifecycle).
pub const OFFICER_EVENTS: &str = "ackgate.officer.events";

/// Officers' field observations (`RecordObservationRequested`).
pub const OBSERVATION_EVENTS: &str = "ackgate.observation.events";

/// The dead-letter topic of an event topic: events the projections could not apply, with
/// headers naming the source position and the error code (see [`crate::deadletter`]).
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
