//! Kafka topic names. Topics are partitioned by aggregate id (the record key), so all events
//! of one aggregate keep their order.

/// Events of the officer domain (`RegisterOfficerRequested`, and later ones).
pub const OFFICER_EVENTS: &str = "ackgate.officer.events";
