//! NATS subjects, service names, queue groups and key/value buckets.

//! Command subjects are declared per command in the catalog (see [`crate::catalog`]).

/// Request subject answering "what happened to my command?" by correlationId.
pub const QUERY_COMMAND_STATUS: &str = "ackgate.query.command.status";

/// Request subject returning one officer by badge number.
pub const QUERY_OFFICER: &str = "ackgate.query.officer.get";

/// Request subject listing officers with filters and a cursor ([`crate::officer::OfficerListQuery`]).
pub const QUERY_OFFICER_LIST: &str = "ackgate.query.officer.list";

/// Request subject listing an officer's observations, newest first, a page at a time
/// ([`crate::observation::ObservationQuery`]).
pub const QUERY_OBSERVATIONS: &str = "ackgate.query.observation.list";

/// Request subject searching officer names ([`crate::officer::OfficerSearchQuery`]).
pub const QUERY_OFFICER_SEARCH: &str = "ackgate.query.officer.search";

/// Admin request subject listing events parked in the projections' dead-letter store
/// ([`crate::deadletter::DeadLetterListQuery`]).
pub const ADMIN_DEAD_LETTERS_LIST: &str = "ackgate.admin.projections.dead-letters.list";

/// Admin request subject re-applying parked events after a fix
/// ([`crate::deadletter::RedriveRequest`]).
pub const ADMIN_DEAD_LETTERS_REDRIVE: &str = "ackgate.admin.projections.dead-letters.redrive";

/// Admin request subject giving up one parked event, for a reason
/// ([`crate::deadletter::DiscardRequest`]).
pub const ADMIN_DEAD_LETTERS_DISCARD: &str = "ackgate.admin.projections.dead-letters.discard";

/// Request subject returning what a projection instance has applied
/// ([`crate::status::ProjectionStats`]); the body is ignored.
pub const QUERY_PROJECTION_STATS: &str = "ackgate.query.projection.stats";

/// Published (fire and forget) by a BL service after Kafka acknowledged an event, so the
/// command-status read model can say `accepted` before the event has been projected.
pub const COMMAND_ACCEPTED: &str = "ackgate.notify.command.accepted";

/// Published (fire and forget) by a BL service when it parks a command in the command
/// dead-letter queue, so the command-status read model can say `dead-lettered`.
pub const COMMAND_PARKED: &str = "ackgate.notify.command.parked";

/// Published (fire and forget) by every component: the steps it took for one request
/// ([`crate::timeline::TimelineNotice`]), kept by the [`TIMELINE_STREAM`] stream.
pub const TIMELINE_STEPS: &str = "ackgate.timeline.steps";

/// JetStream stream keeping timeline notices for the timeline's retention, so the
/// projections store them even after their store was down, and can rebuild from it.
pub const TIMELINE_STREAM: &str = "ackgate_timeline";

/// Durable JetStream consumer through which PostgreSQL-backed projections store timeline
/// steps (instances share it, so each notice is stored once).
pub const TIMELINE_CONSUMER: &str = "ackgate_projections_timeline";

/// Request subject returning one command's timeline ([`crate::timeline::TimelineQuery`]).
pub const QUERY_TIMELINE: &str = "ackgate.query.timeline.get";

/// Request subject searching timelines ([`crate::timeline::TimelineSearch`]).
pub const QUERY_TIMELINE_SEARCH: &str = "ackgate.query.timeline.search";

/// Prefix of the NATS service-API name and queue group of a domain's business-logic
/// service: `ackgate-officer` serves the commands of the `officer` aggregate type.
pub const DOMAIN_SERVICE_PREFIX: &str = "ackgate-";

/// NATS service-API name of the projections' query responders.
pub const PROJECTIONS_SERVICE: &str = "ackgate-projections";

/// Queue group of the projection query responders.
pub const PROJECTIONS_QUEUE_GROUP: &str = "ackgate-projections";

/// JetStream key/value bucket of aggregate state: one key per aggregate (`<type>.<id>`),
/// holding its version, its state and the command that took the version.
pub const AGGREGATES_BUCKET: &str = "ackgate_aggregates";

/// JetStream key/value bucket of the idempotency ledger: one key per command (its eventId),
/// holding the attempt in flight, the reply of the accepted command, or its parked state.
pub const COMMAND_LEDGER_BUCKET: &str = "ackgate_command_ledger";

/// JetStream key/value bucket of the command dead-letter queue: one key per parked command
/// (its eventId), holding the command and why Kafka did not take it.
pub const COMMAND_DLQ_BUCKET: &str = "ackgate_command_dlq";
